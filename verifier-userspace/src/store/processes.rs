//! The live process table: what each process (pid, start time) runs, so that a file operation,
//! which names only its actor, can be attributed to an executable. Kept in memory; a process is
//! written to disk only once it matters (it wrote a watched file, ran a transaction, used
//! io_uring).

use crate::events::{Actor, ExecEvent, FileId, ForkEvent, TransactionRef, WallNanos};

/// A process across pid reuse: (pid, start time in boot-clock ns).
pub type ProcessKey = (u32, u64);

pub fn key_of(actor: &Actor) -> ProcessKey {
    (actor.pid, actor.start_time_ns)
}

/// What the store knows of one process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessInfo {
    pub parent: Option<ProcessKey>,
    pub exe: Option<Vec<u8>>,
    pub exe_file: Option<FileId>,
    pub argv0: Option<Vec<u8>>,
    pub cmdline: Option<Vec<u8>>,
    pub uid: u32,
    pub euid: u32,
    pub comm: Vec<u8>,
    pub exec_time: Option<WallNanos>,
    pub exit: Option<(WallNanos, i32)>,
    pub transaction: Option<TransactionRef>,
    /// A row for it exists on disk (and must be kept up to date).
    pub persisted: bool,
    pub(super) last_used: u64,
}

impl ProcessInfo {
    fn from_actor(actor: &Actor) -> Self {
        Self {
            uid: actor.uid,
            euid: actor.euid,
            comm: actor.comm.clone(),
            transaction: actor.transaction,
            ..Self::default()
        }
    }
}

/// Bounded map of processes; exited processes leave it, and if exits were lost the least
/// recently used eighth is dropped when it is full.
#[derive(Debug)]
pub struct ProcessTable {
    processes: foldhash::HashMap<ProcessKey, ProcessInfo>,
    capacity: usize,
    clock: u64,
}

impl ProcessTable {
    pub fn new(capacity: usize) -> Self {
        Self {
            processes: foldhash::HashMap::default(),
            capacity: capacity.max(8),
            clock: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.processes.len()
    }

    pub fn get_mut(&mut self, key: ProcessKey) -> Option<&mut ProcessInfo> {
        self.clock += 1;
        let clock = self.clock;
        let info = self.processes.get_mut(&key)?;
        info.last_used = clock;
        Some(info)
    }

    /// Inserts (or replaces) what is known of a process and returns it.
    pub fn insert(&mut self, key: ProcessKey, mut info: ProcessInfo) -> &mut ProcessInfo {
        self.make_room();
        self.clock += 1;
        info.last_used = self.clock;
        self.processes.entry(key).insert_entry(info).into_mut()
    }

    /// Applies an exec: the process now runs the new image.
    pub fn on_exec(&mut self, exec: &ExecEvent) -> &mut ProcessInfo {
        let key = key_of(&exec.actor);
        if !self.processes.contains_key(&key) {
            self.make_room();
        }
        self.clock += 1;
        let info = self
            .processes
            .entry(key)
            .or_insert_with(|| ProcessInfo::from_actor(&exec.actor));
        info.last_used = self.clock;
        info.exe = Some(exec.exe.bytes.clone());
        info.exe_file = Some(exec.exe_file);
        info.argv0 = Some(exec.argv0.clone());
        info.cmdline = Some(exec.cmdline.clone());
        info.exec_time = Some(exec.time);
        info.uid = exec.actor.uid;
        info.euid = exec.actor.euid;
        info.comm = exec.actor.comm.clone();
        info.transaction = exec.actor.transaction;
        info
    }

    /// Applies a fork: the child runs its parent's image until it execs.
    pub fn on_fork(&mut self, fork: &ForkEvent) {
        let parent_key = key_of(&fork.parent);
        let inherited = match self.get_mut(parent_key) {
            Some(parent) => ProcessInfo {
                parent: Some(parent_key),
                exe: parent.exe.clone(),
                exe_file: parent.exe_file,
                argv0: parent.argv0.clone(),
                cmdline: parent.cmdline.clone(),
                uid: fork.parent.uid,
                euid: fork.parent.euid,
                comm: fork.parent.comm.clone(),
                transaction: fork.parent.transaction.map(|transaction| TransactionRef {
                    id: transaction.id,
                    depth: transaction.depth + 1,
                }),
                ..ProcessInfo::default()
            },
            None => ProcessInfo {
                parent: Some(parent_key),
                ..ProcessInfo::from_actor(&fork.parent)
            },
        };
        self.insert((fork.child_pid, fork.child_start_time_ns), inherited);
    }

    /// Removes an exited process, returning what was known of it.
    pub fn remove(&mut self, key: ProcessKey) -> Option<ProcessInfo> {
        self.processes.remove(&key)
    }

    fn make_room(&mut self) {
        if self.processes.len() < self.capacity {
            return;
        }
        let mut by_age: Vec<(u64, ProcessKey)> = self
            .processes
            .iter()
            .map(|(key, info)| (info.last_used, *key))
            .collect();
        by_age.sort_unstable();
        let drop_count = (self.capacity / 8).max(1);
        tracing::warn!(
            dropped = drop_count,
            "process table full (exit events lost?): forgetting the least recently used processes"
        );
        for (_, key) in by_age.into_iter().take(drop_count) {
            self.processes.remove(&key);
        }
    }
}
