//! The records the store hands out and takes in: histories, transactions, gaps, baselines,
//! verdicts, pending requests and statistics. All serialize to JSON (paths escaped, see
//! [`ByteText`]).

use serde::{Deserialize, Serialize};

use super::bytes::ByteText;
use crate::{
    events::{FileId, FileOp, PathOrigin, TransactionRef, WallNanos},
    protocol::{AlertRef, Outcome},
};

/// A package transaction, unique across boots.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TransactionKey {
    /// `/proc/sys/kernel/random/boot_id` of the boot the transaction ran in.
    pub boot: String,
    /// The kernel's per-boot transaction id.
    pub id: u64,
}

/// A package transaction as recorded: its root process and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionRecord {
    pub key: TransactionKey,
    pub root_pid: u32,
    pub root_start_time_ns: u64,
    pub exe: ByteText,
    pub exe_file: FileId,
    pub argv0: ByteText,
    /// argv joined by NUL (shown as `\x00`), possibly truncated by the kernel.
    pub cmdline: ByteText,
    pub uid: u32,
    pub started: WallNanos,
    /// When the root exited; `None` while running (or if its boot ended before it did).
    pub ended: Option<WallNanos>,
    /// The root's wait status (`exit_code`): `>> 8` is the exit code, low 7 bits the signal.
    pub exit_status: Option<i32>,
    /// The package-database lock the root opened for write (dpkg `lock*`, rpm `.rpm.lock`).
    pub package_lock: Option<ByteText>,
    pub package_lock_time: Option<WallNanos>,
}

impl TransactionRecord {
    /// The root exited normally with code 0.
    pub fn succeeded(&self) -> bool {
        self.exit_status == Some(0)
    }

    pub fn is_running(&self) -> bool {
        self.ended.is_none()
    }
}

/// What kind of hole in the evidence a gap is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapKind {
    /// Nothing was recorded before the store was first created.
    MonitoringNotStarted,
    /// The daemon was not running (between a clean stop or its last sign of life and a start).
    DaemonDown,
    /// The recorder reported lost records.
    EventsLost,
    /// A process used io_uring, whose file operations bypass the recorder.
    IoUring,
    /// Events reached the store but could not be stored.
    StoreFailure,
    /// Anything else the daemon reports.
    Other,
}

impl GapKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::MonitoringNotStarted => "monitoring_not_started",
            Self::DaemonDown => "daemon_down",
            Self::EventsLost => "events_lost",
            Self::IoUring => "io_uring",
            Self::StoreFailure => "store_failure",
            Self::Other => "other",
        }
    }

    pub(crate) fn parse(text: &str) -> Self {
        match text {
            "monitoring_not_started" => Self::MonitoringNotStarted,
            "daemon_down" => Self::DaemonDown,
            "events_lost" => Self::EventsLost,
            "io_uring" => Self::IoUring,
            "store_failure" => Self::StoreFailure,
            _ => Self::Other,
        }
    }
}

/// A time range in which the evidence may be incomplete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    pub id: i64,
    pub from: WallNanos,
    /// `None`: still open (an io_uring process that has not exited).
    pub to: Option<WallNanos>,
    pub kind: GapKind,
    pub detail: String,
}

/// A new gap to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGap {
    pub from: WallNanos,
    pub to: Option<WallNanos>,
    pub kind: GapKind,
    pub detail: String,
}

/// The state of a file when it was last trusted (verified against the package database).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    pub file: FileId,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    /// Lower-case hex digest of the content.
    pub digest: String,
    /// `md5`, `sha256`, ...
    pub algorithm: String,
    /// When the file was trusted: history before this instant is discarded.
    pub time: WallNanos,
}

/// What a history entry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryOp {
    File(FileOp),
    /// The file was open for write by this process before monitoring started.
    PreexistingWriter,
}

impl EntryOp {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::File(op) => match op {
                FileOp::OpenWrite => "open_write",
                FileOp::Truncate => "truncate",
                FileOp::Rename => "rename",
                FileOp::RenameExchange => "rename_exchange",
                FileOp::Unlink => "unlink",
                FileOp::Rmdir => "rmdir",
                FileOp::Link => "link",
                FileOp::Symlink => "symlink",
                FileOp::Mknod => "mknod",
                FileOp::Chmod => "chmod",
                FileOp::Chown => "chown",
                FileOp::SetXattr => "setxattr",
                FileOp::RemoveXattr => "removexattr",
                FileOp::Utimes => "utimes",
            },
            Self::PreexistingWriter => "preexisting_writer",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        let op = match text {
            "open_write" => FileOp::OpenWrite,
            "truncate" => FileOp::Truncate,
            "rename" => FileOp::Rename,
            "rename_exchange" => FileOp::RenameExchange,
            "unlink" => FileOp::Unlink,
            "rmdir" => FileOp::Rmdir,
            "link" => FileOp::Link,
            "symlink" => FileOp::Symlink,
            "mknod" => FileOp::Mknod,
            "chmod" => FileOp::Chmod,
            "chown" => FileOp::Chown,
            "setxattr" => FileOp::SetXattr,
            "removexattr" => FileOp::RemoveXattr,
            "utimes" => FileOp::Utimes,
            "preexisting_writer" => return Some(Self::PreexistingWriter),
            _ => return None,
        };
        Some(Self::File(op))
    }
}

/// A path as recorded, with how trustworthy it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedPath {
    pub path: ByteText,
    pub origin: PathOrigin,
    pub truncated: bool,
}

impl RecordedPath {
    /// The recorder could not say exactly which file this is.
    pub fn is_unanchored(&self) -> bool {
        self.truncated || self.origin == PathOrigin::UserUnresolved
    }
}

/// The process that acted, with the executable it ran at the time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Writer {
    pub boot: String,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub start_time_ns: u64,
    pub uid: u32,
    pub euid: u32,
    pub comm: ByteText,
    /// From the process's last exec (or its parent's, for a forked child that never exec'd);
    /// `None` when the process started before monitoring and was never seen exec'ing.
    pub exe: Option<ByteText>,
    pub exe_file: Option<FileId>,
    pub transaction: Option<TransactionRef>,
}

impl Writer {
    pub fn transaction_key(&self) -> Option<TransactionKey> {
        self.transaction.map(|transaction| TransactionKey {
            boot: self.boot.clone(),
            id: transaction.id,
        })
    }
}

/// Where an entry's evidence came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntrySource {
    /// Recorded on disk when it happened (inside a watched root, or on a watched inode).
    Recorded,
    /// Kept in the memory cache outside the watched roots, stored when the file came in.
    MemoryCache,
    /// Still only in the daemon's memory cache (not yet on disk).
    MemoryOnly,
    /// Reported at start-up: a writer that predates monitoring.
    Preexisting,
}

impl EntrySource {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Recorded => "recorded",
            Self::MemoryCache => "memory_cache",
            Self::MemoryOnly => "memory_only",
            Self::Preexisting => "preexisting",
        }
    }

    pub(crate) fn parse(text: &str) -> Self {
        match text {
            "memory_cache" => Self::MemoryCache,
            "memory_only" => Self::MemoryOnly,
            "preexisting" => Self::Preexisting,
            _ => Self::Recorded,
        }
    }
}

/// One recorded operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub time: WallNanos,
    pub op: EntryOp,
    /// The file's inode (the source, for renames and links), when known.
    pub file: Option<FileId>,
    pub path: RecordedPath,
    /// Destination of renames and links, link text of symlinks.
    pub target: Option<RecordedPath>,
    /// The inode a rename's destination name pointed at before.
    pub replaced: Option<FileId>,
    /// Open flags, rename flags or mode, as the recorder reported them.
    pub flags: u64,
    pub writer: Writer,
    pub source: EntrySource,
    /// Operations on this inode before this one may be missing (memory cache evicted it, or the
    /// inode arrived from outside the watched roots without a history).
    pub prior_history_unknown: bool,
}

/// From when a file's history is known to be complete (gaps permitting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HistoryStart {
    /// The inode was verified at this time (its baseline matches the file).
    Trusted { time: WallNanos },
    /// The inode was created (exclusively) at this time: nothing happened to it before.
    Created { time: WallNanos },
    /// Neither: the inode existed before anything the store knows.
    Unknown,
}

/// Why a history may lack operations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Incompleteness {
    /// The path's current inode is not the one the store recorded for it: a change happened
    /// that the store never saw.
    InodeNotRecorded {
        recorded: Option<FileId>,
        current: FileId,
    },
    /// Operations whose path was truncated or could not be resolved may concern this file.
    UnresolvedPaths { count: u64 },
    /// A process had the file open for write before monitoring started.
    WriterPredatesMonitoring { pid: u32, comm: ByteText },
    /// The inode came from outside the watched roots and its earlier history is not known.
    PriorHistoryUnknown { time: WallNanos },
}

/// A file's history since it was last trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHistory {
    pub path: ByteText,
    /// The inode whose history this is: the current one if given, else the last one recorded
    /// at this path (for a deleted file, the one that was deleted).
    pub file: Option<FileId>,
    /// The inode the store last saw at this path.
    pub recorded_file: Option<FileId>,
    /// The path was unlinked (or renamed away) last, as far as the store knows.
    pub recorded_deleted: bool,
    pub baseline: Option<Baseline>,
    pub start: HistoryStart,
    /// Gaps must be checked from here on: the start's time, or 0 when unknown.
    pub earliest_relevant: WallNanos,
    /// Operations on the inode (through any name), and operations naming this path whose inode
    /// is unknown (they may have been on this file), chronological.
    pub entries: Vec<HistoryEntry>,
    /// Operations naming this path that concern other inodes (previous files replaced or
    /// deleted here), chronological.
    pub path_events: Vec<HistoryEntry>,
    /// Operations with truncated/unresolved paths that may concern this file.
    pub possibly_related: Vec<HistoryEntry>,
    /// Other current names of the inode.
    pub other_names: Vec<ByteText>,
    /// Inodes that a rename onto this path replaced.
    pub replaced_files: Vec<FileId>,
    pub incomplete: Vec<Incompleteness>,
}

impl FileHistory {
    pub fn is_complete(&self) -> bool {
        self.incomplete.is_empty() && self.start != HistoryStart::Unknown
    }

    /// Distinct transactions the entries ran in.
    pub fn transaction_keys(&self) -> Vec<TransactionKey> {
        let mut keys: Vec<TransactionKey> = Vec::new();
        for entry in self.entries.iter().chain(&self.path_events) {
            if let Some(key) = entry.writer.transaction_key()
                && !keys.contains(&key)
            {
                keys.push(key);
            }
        }
        keys
    }
}

/// A verdict with the reasoning behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerdictRecord {
    pub time: WallNanos,
    pub path: ByteText,
    pub alert_id: Option<String>,
    pub outcome: Outcome,
    pub reason: String,
    /// The decision engine's full reasoning.
    pub reasoning: serde_json::Value,
}

/// A request whose verdict waits for a running transaction; survives restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRequest {
    pub alert: AlertRef,
    pub received: WallNanos,
    /// When it is decided (failing) even if the transaction has not ended.
    pub deadline: WallNanos,
    pub waiting_for: Vec<TransactionKey>,
}

/// Size and row counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStats {
    /// Database, WAL and shared-memory files together.
    pub bytes_on_disk: u64,
    pub file_events: u64,
    pub names: u64,
    pub processes: u64,
    pub transactions: u64,
    pub gaps: u64,
    pub baselines: u64,
    pub verdicts: u64,
    pub pending: u64,
    /// Inodes in the memory cache (outside the watched roots).
    pub memory_cache_inodes: u64,
    /// Processes the daemon tracks in memory.
    pub live_processes: u64,
}

/// Rows removed by [`Store::prune`](super::Store::prune).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PruneReport {
    pub verdicts: u64,
    pub file_events: u64,
    pub names: u64,
    pub processes: u64,
}
