//! File histories: everything recorded about a path's inode since it was last trusted (through
//! any of its names), the path's own namespace changes, what may be missing; and `mark_trusted`,
//! which starts a file's history afresh.

use std::{collections::HashSet, os::unix::ffi::OsStrExt, path::Path};

use super::statements::CachedStatements as _;
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    Store, StoreError,
    bytes::ByteText,
    cache::creates_inode,
    model::{
        Baseline, EntryOp, EntrySource, FileHistory, HistoryEntry, HistoryStart, Incompleteness,
    },
    records::baseline_of,
    roots::could_be_tail_of,
    rows::{self, ENTRY_COLUMNS, ENTRY_SOURCE, from_sql, to_sql},
};
use crate::events::{FileId, FileOp, PathOrigin, WallNanos};

/// What the names table says about a path.
struct NameRow {
    file: FileId,
    removed: bool,
}

impl Store {
    /// The history of `path` since it was last trusted. `current` is the inode the caller sees
    /// at the path now (`None` if it does not exist); without it the last recorded inode is used.
    pub fn file_history(
        &self,
        path: &Path,
        current: Option<FileId>,
    ) -> Result<FileHistory, StoreError> {
        let path = super::store_key(path);
        let path = path.as_os_str().as_bytes();
        let name = name_of(&self.connection, path)?;
        let memory_name = self
            .writer
            .as_ref()
            .and_then(|writer| writer.cache.lookup_name(path));
        let recorded_file = name.as_ref().map(|name| name.file).or(memory_name);
        let file = current.or(recorded_file);
        let baseline = baseline_of(&self.connection, path)?;
        let trusted_time = baseline
            .as_ref()
            .filter(|baseline| Some(baseline.file) == file)
            .map(|baseline| baseline.time);
        let path_cutoff = baseline.as_ref().map_or(0, |baseline| baseline.time);

        let mut seen = HashSet::new();
        let mut entries = match file {
            Some(file) => self.inode_entries(file, trusted_time.unwrap_or(0), &mut seen)?,
            None => Vec::new(),
        };
        // Operations naming the path whose inode is unknown may have been on this file.
        let (unknown_inode, path_events): (Vec<_>, Vec<_>) = self
            .path_entries(path, path_cutoff, &mut seen)?
            .into_iter()
            .partition(|entry| entry.file.is_none());
        entries.extend(unknown_inode);
        entries.sort_by_key(|entry| entry.time);
        let possibly_related = self.unanchored_entries(path, path_cutoff, &seen)?;
        if let Some(file) = file {
            entries.extend(self.memory_only_entries(file, trusted_time.unwrap_or(0)));
            entries.sort_by_key(|entry| entry.time);
        }

        if let Some(file) = file {
            self.drop_earlier_file_entries(file, &mut entries, path_cutoff)?;
        }
        let mut created = file
            .and_then(|file| last_creation(&entries, file))
            .map(|creation| creation.time)
            .or_else(|| {
                // A first operation creating an inode the recorder could not name.
                entries
                    .first()
                    .filter(|first| creates_inode(first) && !first.prior_history_unknown)
                    .map(|first| first.time)
            });
        let mut symlink_renamed_in = false;
        if created.is_none()
            && trusted_time.is_none()
            && let Some(made) =
                self.symlink_renamed_into_place(path, &entries, &path_events, path_cutoff, file)?
        {
            created = made.first().map(|creation| creation.time);
            entries.extend(made);
            entries.sort_by_key(|entry| entry.time);
            symlink_renamed_in = true;
        }
        let start = match (trusted_time, created) {
            (Some(time), _) => HistoryStart::Trusted { time },
            (None, Some(time)) => HistoryStart::Created { time },
            (None, None) => HistoryStart::Unknown,
        };
        let earliest_relevant = match start {
            HistoryStart::Trusted { time } | HistoryStart::Created { time } => time,
            HistoryStart::Unknown => 0,
        };
        let other_names = match file {
            Some(file) => other_names(&self.connection, file, path)?,
            None => Vec::new(),
        };
        let mut replaced_files = Vec::new();
        for event in entries.iter().chain(&path_events) {
            if let Some(replaced) = event.replaced
                && event
                    .target
                    .as_ref()
                    .is_some_and(|target| target.path.as_bytes() == path)
                && !replaced_files.contains(&replaced)
            {
                replaced_files.push(replaced);
            }
        }
        let mut history = FileHistory {
            path: ByteText(path.to_vec()),
            file,
            recorded_file,
            recorded_deleted: name.as_ref().is_some_and(|name| name.removed),
            baseline,
            start,
            earliest_relevant,
            entries,
            path_events,
            possibly_related,
            other_names,
            replaced_files,
            incomplete: Vec::new(),
        };
        history.incomplete = incompleteness(&history, current, symlink_renamed_in);
        Ok(history)
    }

    /// Inode numbers are reused: once a file is gone, the next file created may get its number,
    /// and what was recorded under that number before belongs to the earlier file. Those entries
    /// are left out when the store saw the earlier file end (a name of it unlinked, or replaced
    /// by a rename) before this file was created, provably: either the process that then created
    /// this file did it (program order), or the removal's timestamp lies more than
    /// [`REUSE_MARGIN`] before the start of the package transaction that created this file (its
    /// root's exec, which precedes every operation of the transaction). A removal's record can
    /// be delayed past a reuse of the number, so without that proof the earlier entries stay and
    /// are judged (fails closed).
    fn drop_earlier_file_entries(
        &self,
        file: FileId,
        entries: &mut Vec<HistoryEntry>,
        after: u64,
    ) -> Result<(), StoreError> {
        let Some(creation) = last_creation(entries, file).cloned() else {
            return Ok(());
        };
        let earlier: Vec<&HistoryEntry> = entries
            .iter()
            .filter(|entry| entry.file == Some(file) && entry.time < creation.time)
            .collect();
        if earlier.is_empty() {
            return Ok(());
        }
        let transaction_started = match creation.writer.transaction_key() {
            Some(key) => self.transaction(&key)?.map(|record| record.started),
            None => None,
        };
        let proven_before_creation = |removal: &HistoryEntry| {
            removal.time <= creation.time
                && (process_of(removal) == process_of(&creation)
                    || transaction_started
                        .is_some_and(|started| removal.time.saturating_add(REUSE_MARGIN) < started))
        };
        let mut ended = earlier
            .iter()
            .filter(|entry| entry.op == EntryOp::File(FileOp::Unlink))
            .filter(|entry| proven_before_creation(entry))
            .map(|entry| entry.time)
            .max();
        let mut names: Vec<Vec<u8>> = earlier
            .iter()
            .flat_map(|entry| std::iter::once(&entry.path).chain(entry.target.as_ref()))
            .map(|recorded| recorded.path.as_bytes().to_vec())
            .collect();
        names.sort();
        names.dedup();
        for name in names {
            let replacements =
                self.select_entries("target = ?1 AND time > ?2", params![name, to_sql(after)])?;
            let replaced_here = replacements
                .into_iter()
                .map(|(_, entry)| entry)
                .filter(|entry| entry.replaced == Some(file) && names_as_destination(entry, &name))
                .filter(|entry| proven_before_creation(entry))
                .map(|entry| entry.time)
                .max();
            ended = ended.max(replaced_here);
        }
        if let Some(ended) = ended {
            // The removal itself concerns the earlier file too.
            entries.retain(|entry| {
                *entry == creation || !(entry.file == Some(file) && entry.time <= ended)
            });
        }
        Ok(())
    }

    /// With syscall tracepoints `symlink()` reports no inode (and an LSM hook runs before the
    /// inode exists), so a symlink made under a temporary name and renamed into place — dpkg's
    /// `x.dpkg-new` → `x` — has no recorded creation. Returns that creation, and the metadata
    /// changes of the source name after it, when the last operation that put a file at `path` is
    /// a plain rename by the process that, as the last operation on the rename's source name
    /// other than metadata changes, created a symlink there, and nothing but metadata changes
    /// named `path` since. The file at `path` is then that symlink: a symlink's text
    /// cannot be rewritten in place, and any other way to put a file there names the path.
    fn symlink_renamed_into_place(
        &self,
        path: &[u8],
        entries: &[HistoryEntry],
        path_events: &[HistoryEntry],
        after: u64,
        current: Option<FileId>,
    ) -> Result<Option<Vec<HistoryEntry>>, StoreError> {
        let mut naming: Vec<&HistoryEntry> = entries
            .iter()
            .chain(path_events)
            .filter(|entry| names_as_destination(entry, path) || names_as_source(entry, path))
            .collect();
        naming.sort_by_key(|entry| entry.time);
        let Some(rename) = naming.iter().rev().find(|entry| !is_metadata_change(entry)) else {
            return Ok(None);
        };
        if rename.op != EntryOp::File(FileOp::Rename)
            || !names_as_destination(rename, path)
            || rename.path.is_unanchored()
            || rename.file.is_some_and(|moved| Some(moved) != current)
        {
            return Ok(None);
        }
        let source = rename.path.path.as_bytes();
        let mut on_source: Vec<HistoryEntry> = self
            .path_entries(source, after, &mut HashSet::new())?
            .into_iter()
            .filter(|entry| entry.time <= rename.time && entry != *rename)
            .filter(|entry| names_as_destination(entry, source) || names_as_source(entry, source))
            .collect();
        on_source.sort_by_key(|entry| entry.time);
        // The symlink's own ownership and times (dpkg's lchown and utimensat) may follow it.
        let Some(creation_index) = on_source
            .iter()
            .rposition(|entry| !is_metadata_change(entry))
        else {
            return Ok(None);
        };
        let creation = &on_source[creation_index];
        let made_here = creation.op == EntryOp::File(FileOp::Symlink)
            && creation.file.is_none()
            && !creation.path.is_unanchored()
            && !creation.prior_history_unknown
            && process_of(creation) == process_of(rename);
        // Its metadata changes are the file's own history: their writers are judged too.
        Ok(made_here.then(|| on_source.split_off(creation_index)))
    }

    fn select_entries(
        &self,
        condition: &str,
        parameters: impl rusqlite::Params,
    ) -> Result<Vec<(i64, HistoryEntry)>, StoreError> {
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM {ENTRY_SOURCE} WHERE {condition} \
             ORDER BY time, file_events.id"
        );
        let mut statement = self.connection.prepare_cached(&sql)?;
        let rows = statement.query_map(parameters, rows::entry_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn inode_entries(
        &self,
        file: FileId,
        after: u64,
        seen: &mut HashSet<i64>,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let rows = self.select_entries(
            "dev = ?1 AND ino = ?2 AND time > ?3",
            params![to_sql(file.dev), to_sql(file.ino), to_sql(after)],
        )?;
        Ok(rows
            .into_iter()
            .filter(|(id, _)| seen.insert(*id))
            .map(|(_, entry)| entry)
            .collect())
    }

    fn path_entries(
        &self,
        path: &[u8],
        after: u64,
        seen: &mut HashSet<i64>,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let mut rows =
            self.select_entries("path = ?1 AND time > ?2", params![path, to_sql(after)])?;
        rows.extend(
            self.select_entries("target = ?1 AND time > ?2", params![path, to_sql(after)])?,
        );
        rows.sort_by_key(|(id, entry)| (entry.time, *id));
        Ok(rows
            .into_iter()
            .filter(|(id, _)| seen.insert(*id))
            .map(|(_, entry)| entry)
            .collect())
    }

    /// Operations whose truncated or unresolved path could be a tail of `path`.
    fn unanchored_entries(
        &self,
        path: &[u8],
        after: u64,
        seen: &HashSet<i64>,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let rows = self.select_entries("unanchored = 1 AND time > ?1", params![to_sql(after)])?;
        let may_name = |recorded: &super::model::RecordedPath| {
            recorded.is_unanchored()
                && could_be_tail_of(
                    recorded.path.as_bytes(),
                    path,
                    !recorded.truncated && recorded.origin == PathOrigin::UserUnresolved,
                )
        };
        Ok(rows
            .into_iter()
            .filter(|(id, _)| !seen.contains(id))
            .map(|(_, entry)| entry)
            .filter(|entry| {
                may_name(&entry.path)
                    || (matches!(
                        entry.op,
                        EntryOp::File(FileOp::Rename | FileOp::RenameExchange | FileOp::Link)
                    ) && entry.target.as_ref().is_some_and(may_name))
            })
            .collect())
    }

    /// Operations on `file` still only in the daemon's memory cache.
    fn memory_only_entries(&self, file: FileId, after: u64) -> Vec<HistoryEntry> {
        let Some(cached) = self
            .writer
            .as_ref()
            .and_then(|writer| writer.cache.peek(&file))
        else {
            return Vec::new();
        };
        cached
            .entries
            .iter()
            .enumerate()
            .filter(|(_, entry)| entry.time > after)
            .map(|(index, entry)| HistoryEntry {
                source: EntrySource::MemoryOnly,
                prior_history_unknown: entry.prior_history_unknown
                    || (index == 0 && cached.prior_unknown),
                ..entry.clone()
            })
            .collect()
    }

    /// Records that `path` was verified: its baseline is stored and its history before
    /// `baseline.time` is discarded (for its inode, the path's own operations, and inodes that
    /// were replaced or deleted at the path and have no other name).
    pub fn mark_trusted(&mut self, path: &Path, baseline: Baseline) -> Result<(), StoreError> {
        let (connection, writer) = self.writer()?;
        let transaction = connection.transaction()?;
        writer.writer_ids.begin();
        mark_trusted_in(&transaction, writer, path, &baseline)?;
        transaction.commit()?;
        writer.writer_ids.committed();
        forget_trusted_name(writer, path, baseline.file);
        Ok(())
    }
}

/// The writes of [`Store::mark_trusted`], inside the caller's transaction; after its commit,
/// [`forget_trusted_name`] updates the writer's memos.
pub(super) fn mark_trusted_in(
    transaction: &rusqlite::Transaction<'_>,
    writer: &mut super::WriterState,
    path: &Path,
    baseline: &Baseline,
) -> Result<(), StoreError> {
    let path = super::store_key(path);
    let path = path.as_os_str().as_bytes();
    let cutoff = to_sql(baseline.time);
    transaction.execute_cached(
        "INSERT OR REPLACE INTO baselines (path, dev, ino, size, mtime, ctime, digest, \
         algorithm, time) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            path,
            to_sql(baseline.file.dev),
            to_sql(baseline.file.ino),
            to_sql(baseline.size),
            baseline.mtime_ns,
            baseline.ctime_ns,
            baseline.digest,
            baseline.algorithm,
            cutoff
        ],
    )?;
    let former = former_inodes(transaction, path, cutoff)?;
    transaction.execute_cached(
        "DELETE FROM file_events WHERE dev = ?1 AND ino = ?2 AND time <= ?3",
        params![to_sql(baseline.file.dev), to_sql(baseline.file.ino), cutoff],
    )?;
    transaction.execute_cached(
        "DELETE FROM file_events WHERE path = ?1 AND time <= ?2",
        params![path, cutoff],
    )?;
    transaction.execute_cached(
        "DELETE FROM file_events WHERE target = ?1 AND time <= ?2",
        params![path, cutoff],
    )?;
    for old in former.into_iter().filter(|old| *old != baseline.file) {
        transaction.execute_cached(
            "DELETE FROM file_events WHERE dev = ?1 AND ino = ?2 AND time <= ?3 \
             AND NOT EXISTS (SELECT 1 FROM names WHERE dev = ?1 AND ino = ?2 \
             AND removed_at IS NULL)",
            params![to_sql(old.dev), to_sql(old.ino), cutoff],
        )?;
    }
    transaction.execute_cached(
        "INSERT INTO names (path, dev, ino, since, removed_at) VALUES (?1, ?2, ?3, ?4, NULL) \
         ON CONFLICT(path) DO UPDATE SET dev = excluded.dev, ino = excluded.ino, \
         since = excluded.since, removed_at = NULL",
        params![
            path,
            to_sql(baseline.file.dev),
            to_sql(baseline.file.ino),
            cutoff
        ],
    )?;
    if let Some(cached) = writer.cache.take(&baseline.file) {
        for entry in cached
            .entries
            .iter()
            .filter(|entry| entry.time > baseline.time)
        {
            let stored = HistoryEntry {
                source: EntrySource::MemoryCache,
                ..entry.clone()
            };
            rows::insert_entry(transaction, &mut writer.writer_ids, writer.boot_no, &stored)?;
        }
    }
    Ok(())
}

/// After a committed [`mark_trusted_in`]: the path's name row was rewritten, and its inode now
/// has a name under a watched root.
pub(super) fn forget_trusted_name(writer: &mut super::WriterState, path: &Path, file: FileId) {
    let path = super::store_key(path);
    writer.known_names.remove(path.as_os_str().as_bytes());
    writer.watched_inodes.insert(file);
}

fn name_of(connection: &Connection, path: &[u8]) -> Result<Option<NameRow>, StoreError> {
    Ok(connection
        .prepare_cached("SELECT dev, ino, removed_at FROM names WHERE path = ?1")?
        .query_row(params![path], |row| {
            Ok(NameRow {
                file: FileId {
                    dev: from_sql(row.get(0)?),
                    ino: from_sql(row.get(1)?),
                },
                removed: row.get::<_, Option<i64>>(2)?.is_some(),
            })
        })
        .optional()?)
}

fn other_names(
    connection: &Connection,
    file: FileId,
    path: &[u8],
) -> Result<Vec<ByteText>, StoreError> {
    let mut statement = connection.prepare_cached(
        "SELECT path FROM names WHERE dev = ?1 AND ino = ?2 AND removed_at IS NULL \
         AND path != ?3 ORDER BY path",
    )?;
    let rows = statement.query_map(params![to_sql(file.dev), to_sql(file.ino), path], |row| {
        Ok(ByteText(row.get(0)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Inodes that were at `path` (acted on there, or replaced by a rename onto it) up to `cutoff`.
fn former_inodes(
    connection: &Connection,
    path: &[u8],
    cutoff: i64,
) -> Result<Vec<FileId>, StoreError> {
    let mut statement = connection.prepare_cached(
        "SELECT dev, ino FROM file_events WHERE path = ?1 AND time <= ?2 AND dev IS NOT NULL \
         UNION SELECT replaced_dev, replaced_ino FROM file_events WHERE target = ?1 \
         AND time <= ?2 AND replaced_dev IS NOT NULL",
    )?;
    let rows = statement.query_map(params![path, cutoff], |row| {
        Ok(FileId {
            dev: from_sql(row.get(0)?),
            ino: from_sql(row.get(1)?),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// What made the file now at the path, if the store saw it: the last successful exclusive
/// creation (`O_CREAT|O_EXCL`, `O_TMPFILE`, mknod, symlink) of `file`'s inode number. Such a
/// creation always makes a new inode, so nothing before it can have been done to this file:
/// operations recorded under the same (dev, ino) before it concern earlier files that had that
/// number (the kernel reuses a freed number at once, so dpkg replacing a path twice often gets the
/// first file's number back), and path operations before it concern the files it replaced. Those
/// operations stay in the history and their writers are judged all the same (unless the earlier
/// file provably ended first: `Store::drop_earlier_file_entries`, since an operation recorded just
/// before the creation may be on the new file); the window for gaps and "predates monitoring"
/// starts at the creation. A creation of an inode that came from
/// outside the watched roots without a history does not count.
pub(crate) fn last_creation(entries: &[HistoryEntry], file: FileId) -> Option<&HistoryEntry> {
    entries.iter().rev().find(|entry| {
        entry.file == Some(file) && creates_inode(entry) && !entry.prior_history_unknown
    })
}

/// How far a removal's timestamp must lie before a transaction's start to be known to precede it:
/// event times are the kernel's boot clock converted to wall time, and the conversion is
/// recalibrated as the daemon runs.
const REUSE_MARGIN: WallNanos = 1_000_000_000;

/// The process that made `entry`: boot, pid and start time.
fn process_of(entry: &HistoryEntry) -> (&str, u32, u64) {
    (
        entry.writer.boot.as_str(),
        entry.writer.pid,
        entry.writer.start_time_ns,
    )
}

/// `entry` put a file at `path` under a new name (rename or link destination).
fn names_as_destination(entry: &HistoryEntry, path: &[u8]) -> bool {
    matches!(
        entry.op,
        EntryOp::File(FileOp::Rename | FileOp::RenameExchange | FileOp::Link)
    ) && entry
        .target
        .as_ref()
        .is_some_and(|target| target.path.as_bytes() == path)
}

/// `entry` acted on the file at `path` by that name.
fn names_as_source(entry: &HistoryEntry, path: &[u8]) -> bool {
    entry.path.path.as_bytes() == path
}

/// Metadata changes leave the file at its name in place.
fn is_metadata_change(entry: &HistoryEntry) -> bool {
    matches!(
        entry.op,
        EntryOp::File(
            FileOp::Chmod | FileOp::Chown | FileOp::SetXattr | FileOp::RemoveXattr | FileOp::Utimes
        )
    )
}

/// What may be missing from `history`. `symlink_renamed_in`: the current file was identified as
/// a symlink renamed into place (see `Store::symlink_renamed_into_place`), whose inode no
/// operation could name.
fn incompleteness(
    history: &FileHistory,
    current: Option<FileId>,
    symlink_renamed_in: bool,
) -> Vec<Incompleteness> {
    let mut reasons = Vec::new();
    if let Some(current) = current {
        let trusted_here = history
            .baseline
            .as_ref()
            .is_some_and(|baseline| baseline.file == current);
        let mismatch = match history.recorded_file {
            Some(recorded) => recorded != current || history.recorded_deleted,
            // Nothing recorded this path's inode: only a problem if we claim a full story.
            None => history.start != HistoryStart::Unknown && !trusted_here && !symlink_renamed_in,
        };
        if mismatch {
            reasons.push(Incompleteness::InodeNotRecorded {
                recorded: history.recorded_file,
                current,
            });
        }
    }
    if !history.possibly_related.is_empty() {
        reasons.push(Incompleteness::UnresolvedPaths {
            count: history.possibly_related.len() as u64,
        });
    }
    for entry in &history.entries {
        if entry.op == EntryOp::PreexistingWriter {
            reasons.push(Incompleteness::WriterPredatesMonitoring {
                pid: entry.writer.pid,
                comm: entry.writer.comm.clone(),
            });
        } else if entry.prior_history_unknown {
            reasons.push(Incompleteness::PriorHistoryUnknown { time: entry.time });
        }
    }
    reasons
}
