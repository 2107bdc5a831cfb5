//! The bounded memory cache of operations outside the watched roots, least recently used by
//! inode, so that a file prepared elsewhere and renamed (or linked) into a watched root keeps its
//! history. It also remembers which inode each cached name points at.

use std::collections::BTreeMap;

use super::model::{EntryOp, HistoryEntry};
use crate::events::{FileId, FileOp};

/// Most operations kept per inode; older ones are dropped (and the history marked incomplete).
const MAX_ENTRIES_PER_INODE: usize = 32;
/// Operations kept in all, per inode of capacity: bounds memory when many inodes are busy.
const ENTRIES_PER_CAPACITY_SLOT: usize = 4;

/// `O_CREAT | O_EXCL`: an open with both created the file.
const CREATE_EXCLUSIVE: u64 = (libc::O_CREAT | libc::O_EXCL) as u64;

/// What the cache knows of one inode.
#[derive(Debug, Default)]
pub struct CachedInode {
    pub entries: Vec<HistoryEntry>,
    names: Vec<Vec<u8>>,
    /// Operations before the first kept one may be missing.
    pub prior_unknown: bool,
    stamp: u64,
}

#[derive(Debug)]
pub struct MemoryCache {
    inodes: foldhash::HashMap<FileId, CachedInode>,
    by_age: BTreeMap<u64, FileId>,
    names: foldhash::HashMap<Vec<u8>, FileId>,
    capacity: usize,
    total_entries: usize,
    clock: u64,
    evictions: u64,
}

/// `O_TMPFILE` (includes `O_DIRECTORY`): an open that made a new, nameless inode.
pub const TMPFILE: u64 = libc::O_TMPFILE as u64;

/// The entry brings its inode into existence: nothing can have happened to it before.
pub fn creates_inode(entry: &HistoryEntry) -> bool {
    match entry.op {
        EntryOp::File(FileOp::OpenWrite) => {
            entry.flags & CREATE_EXCLUSIVE == CREATE_EXCLUSIVE || entry.flags & TMPFILE == TMPFILE
        }
        EntryOp::File(FileOp::Mknod | FileOp::Symlink) => true,
        _ => false,
    }
}

impl MemoryCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            inodes: foldhash::HashMap::default(),
            by_age: BTreeMap::new(),
            names: foldhash::HashMap::default(),
            capacity: capacity.max(1),
            total_entries: 0,
            clock: 0,
            evictions: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.inodes.len()
    }

    /// Inodes dropped for room so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Adds an operation on `inode`.
    pub fn record(&mut self, inode: FileId, entry: HistoryEntry) {
        self.clock += 1;
        let stamp = self.clock;
        if !self.inodes.contains_key(&inode) {
            self.make_room();
            // Once anything was evicted, an inode seen for the first time may have lost history,
            // unless this very operation created it.
            let prior_unknown = self.evictions > 0 && !creates_inode(&entry);
            self.inodes.insert(
                inode,
                CachedInode {
                    prior_unknown,
                    ..CachedInode::default()
                },
            );
        }
        let Some(cached) = self.inodes.get_mut(&inode) else {
            return;
        };
        self.by_age.remove(&cached.stamp);
        cached.stamp = stamp;
        self.by_age.insert(stamp, inode);
        if cached.entries.len() >= MAX_ENTRIES_PER_INODE {
            cached.entries.remove(0);
            cached.prior_unknown = true;
            self.total_entries -= 1;
        }
        cached.entries.push(entry);
        self.total_entries += 1;
        while self.total_entries > self.capacity.saturating_mul(ENTRIES_PER_CAPACITY_SLOT) {
            if !self.evict_oldest_except(inode) {
                break;
            }
        }
    }

    /// Evicts the least recently used inode other than `keep`; false if there is none.
    fn evict_oldest_except(&mut self, keep: FileId) -> bool {
        let oldest = self.by_age.values().copied().find(|inode| *inode != keep);
        match oldest {
            Some(oldest) => {
                self.take(&oldest);
                self.evictions += 1;
                true
            }
            None => false,
        }
    }

    /// Cached names below directory `directory` (for a directory moved into a watched root).
    pub fn names_below(&self, directory: &[u8]) -> Vec<(Vec<u8>, FileId)> {
        self.names
            .iter()
            .filter(|(name, _)| {
                name.len() > directory.len() + 1
                    && name.starts_with(directory)
                    && name[directory.len()] == b'/'
            })
            .map(|(name, inode)| (name.clone(), *inode))
            .collect()
    }

    /// `path` now names `inode`.
    pub fn set_name(&mut self, path: &[u8], inode: FileId) {
        if let Some(cached) = self.inodes.get_mut(&inode) {
            if !cached.names.iter().any(|name| name == path) {
                cached.names.push(path.to_vec());
            }
            self.names.insert(path.to_vec(), inode);
        }
    }

    /// `path` no longer names anything.
    pub fn remove_name(&mut self, path: &[u8]) {
        self.names.remove(path);
    }

    pub fn lookup_name(&self, path: &[u8]) -> Option<FileId> {
        self.names.get(path).copied()
    }

    /// What is cached for `inode`, without removing it.
    pub fn peek(&self, inode: &FileId) -> Option<&CachedInode> {
        self.inodes.get(inode)
    }

    /// Removes and returns what is cached for `inode` (it is going to disk).
    pub fn take(&mut self, inode: &FileId) -> Option<CachedInode> {
        let cached = self.inodes.remove(inode)?;
        self.by_age.remove(&cached.stamp);
        self.total_entries -= cached.entries.len();
        for name in &cached.names {
            if self.names.get(name) == Some(inode) {
                self.names.remove(name);
            }
        }
        Some(cached)
    }

    fn make_room(&mut self) {
        while self.inodes.len() >= self.capacity {
            let Some((_, oldest)) = self.by_age.pop_first() else {
                return;
            };
            if self.take(&oldest).is_some() {
                self.evictions += 1;
            }
        }
    }
}
