//! The decoded, owned form of what the kernel programs report. The intake produces these from the
//! `verifier-common` wire records; the provenance store and the decision engine consume them.
//! Paths are raw bytes: file names on Linux need not be UTF-8.

use serde::{Deserialize, Serialize};

/// Nanoseconds since the Unix epoch (converted from the kernel's boot-time clock by the intake).
pub type WallNanos = u64;

/// The package transaction a process belonged to when it acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TransactionRef {
    /// Unique per boot; assigned by the kernel program when a verified package manager is exec'd.
    pub id: u64,
    /// 0 for the package manager process itself, n for its n-th generation descendant.
    pub depth: u32,
}

/// Who acted: the process (thread group) and thread, credentials, and transaction membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub euid: u32,
    /// Process start time (boot-clock ns): with `pid`, identifies a process across pid reuse.
    pub start_time_ns: u64,
    pub comm: Vec<u8>,
    pub transaction: Option<TransactionRef>,
}

/// How a path was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PathOrigin {
    /// Walked from the kernel's dentry and mount: what the file really is.
    Kernel,
    /// A user-supplied string resolved against the dirfd or cwd path from the kernel.
    UserResolved,
    /// A user-supplied string the kernel side could not anchor (kept verbatim).
    UserUnresolved,
}

/// A path as reported, with how trustworthy it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedPath {
    pub bytes: Vec<u8>,
    pub origin: PathOrigin,
    /// The path did not fit the kernel buffer (or walk bound): a suffix is known, not the whole.
    pub truncated: bool,
}

/// A file identity on one filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// The kinds of file modification the recorder reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FileOp {
    /// open/openat/openat2/creat/open_by_handle_at with write access, O_CREAT or O_TRUNC.
    OpenWrite,
    Truncate,
    /// rename family; `path` is the source, `target` the destination.
    Rename,
    /// renameat2 with RENAME_EXCHANGE: both names now point at each other's inode.
    RenameExchange,
    Unlink,
    Rmdir,
    /// link family; `path` is the existing file, `target` the new name.
    Link,
    /// symlink family; `path` is the new link, `target` the (unresolved) link text.
    Symlink,
    Mknod,
    Chmod,
    Chown,
    SetXattr,
    RemoveXattr,
    Utimes,
}

/// One file-modifying operation that succeeded (failed operations are dropped in the kernel or
/// intake: they create no evidence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEvent {
    pub time: WallNanos,
    pub actor: Actor,
    pub op: FileOp,
    /// The file acted on (for renames and links, the source).
    pub path: ReportedPath,
    /// The file's identity when the kernel had it (opens, truncates via fd, ...).
    pub file: Option<FileId>,
    /// Open flags for `OpenWrite`, rename flags for renames, mode for chmod/mknod, else 0.
    pub flags: u64,
    /// The second path of renames, links and symlinks.
    pub target: Option<ReportedPath>,
    /// For renames: the inode that the target name pointed at before (replaced), when known.
    pub replaced: Option<FileId>,
}

/// A process replaced its image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecEvent {
    pub time: WallNanos,
    pub actor: Actor,
    pub exe: ReportedPath,
    pub exe_file: FileId,
    pub argv0: Vec<u8>,
    /// The command line (argv joined by NUL), possibly truncated.
    pub cmdline: Vec<u8>,
    pub cgroup_id: u64,
    /// The exec'd binary is a verified package manager and this process became a transaction root.
    pub starts_transaction: bool,
}

/// A new process (thread group) was forked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkEvent {
    pub time: WallNanos,
    pub parent: Actor,
    pub child_pid: u32,
    pub child_start_time_ns: u64,
}

/// A process (thread group) exited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitEvent {
    pub time: WallNanos,
    pub actor: Actor,
    /// The wait status as the kernel keeps it (`exit_code`): `status >> 8` is the exit code,
    /// the low 7 bits the terminating signal.
    pub exit_status: i32,
    /// This process was a transaction root, whose exit ends the transaction.
    pub ends_transaction: bool,
}

/// A process used io_uring: its file operations bypass the syscall hooks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoUringEvent {
    pub time: WallNanos,
    pub actor: Actor,
    /// The io_uring opcode submitted, when known.
    pub opcode: Option<u8>,
}

/// A file that was already open for write when monitoring started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreexistingWriterEvent {
    pub time: WallNanos,
    pub pid: u32,
    pub comm: Vec<u8>,
    pub path: ReportedPath,
    pub file: FileId,
}

/// Evidence was lost between two instants (ring buffer full, truncated paths, decode failures).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LossEvent {
    pub from: WallNanos,
    pub to: WallNanos,
    /// Program name → records lost.
    pub lost: Vec<(String, u64)>,
}

/// Everything the intake can deliver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    Exec(ExecEvent),
    Fork(ForkEvent),
    Exit(ExitEvent),
    File(FileEvent),
    IoUring(IoUringEvent),
    PreexistingWriter(PreexistingWriterEvent),
    Loss(LossEvent),
}
