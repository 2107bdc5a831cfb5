//! The kernel/user wire format: `#[repr(C)]` records the eBPF programs write to the ring buffer and
//! the keys and values of the maps both sides share. Nothing else lives here.
//!
//! Every record starts with a [`RecordHeader`]; its `kind` says which record follows. Records with
//! paths end in a variable-length data area: only the bytes in use are sent, so userspace must
//! length-check before reading (see `verifier::intake`). Device numbers in records and maps use the
//! kernel's internal encoding (`major << 20 | minor`); userspace converts them in one place.
#![no_std]

pub mod offsets;

pub use offsets::KernelOffsets;

/// Longest path a record carries (bytes, without NUL). Longer paths are marked truncated.
pub const PATH_CAP: usize = 4096;
/// Longest command line an exec record carries.
pub const CMDLINE_CAP: usize = 1024;
/// `TASK_COMM_LEN`.
pub const COMM_LEN: usize = 16;

/// Record kinds (`RecordHeader::kind`).
pub mod kind {
    pub const EXEC: u32 = 1;
    pub const FORK: u32 = 2;
    pub const EXIT: u32 = 3;
    pub const FILE: u32 = 4;
    pub const IO_URING: u32 = 5;
}

/// How a path in a record was obtained (`PathInfo::origin`).
pub mod origin {
    /// No path.
    pub const NONE: u8 = 0;
    /// Walked from the kernel's dentry and mount.
    pub const KERNEL: u8 = 1;
    /// A user string anchored at the kernel path of the dirfd or cwd (or absolute).
    pub const USER_RESOLVED: u8 = 2;
    /// A user string the kernel side could not anchor, kept verbatim.
    pub const USER_UNRESOLVED: u8 = 3;
}

/// File operations (`FileRecord::op`); mirrors `verifier::events::FileOp`.
pub mod file_op {
    pub const OPEN_WRITE: u32 = 1;
    pub const TRUNCATE: u32 = 2;
    pub const RENAME: u32 = 3;
    pub const RENAME_EXCHANGE: u32 = 4;
    pub const UNLINK: u32 = 5;
    pub const RMDIR: u32 = 6;
    pub const LINK: u32 = 7;
    pub const SYMLINK: u32 = 8;
    pub const MKNOD: u32 = 9;
    pub const CHMOD: u32 = 10;
    pub const CHOWN: u32 = 11;
    pub const SET_XATTR: u32 = 12;
    pub const REMOVE_XATTR: u32 = 13;
    pub const UTIMES: u32 = 14;
}

/// The programs, each with its own counter slot (`COUNTERS[program]`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgramId {
    Exec = 0,
    Fork = 1,
    Exit = 2,
    SysExit = 3,
    IoUringCreate = 4,
    IoUringSubmit = 5,
    LsmFileOpen = 6,
    LsmFileTruncate = 7,
    LsmPathTruncate = 8,
    LsmPathRename = 9,
    LsmPathUnlink = 10,
    LsmPathRmdir = 11,
    LsmPathLink = 12,
    LsmPathSymlink = 13,
    LsmPathMknod = 14,
    LsmPathChmod = 15,
    LsmPathChown = 16,
    LsmInodeSetxattr = 17,
    LsmInodeRemovexattr = 18,
    LsmInodeSetattr = 19,
}

/// Number of [`ProgramId`]s.
pub const PROGRAM_COUNT: u32 = 20;

/// The counters map's extra slot after the programs' own: every program also counts its lost
/// records (`ringbuf_full`, `errors`) there, so that userspace learns whether anything was lost
/// from one lookup, and reads the per-program slots only when something was.
pub const LOSS_SUMMARY_SLOT: u32 = PROGRAM_COUNT;

/// Size of the counters map: one slot per program and the loss summary.
pub const COUNTER_SLOTS: u32 = PROGRAM_COUNT + 1;

/// `FileRecord::syscall` of records from the LSM backend: the hook runs before the operation, so
/// the record is an attempt that passed the earlier permission checks (see the README).
pub const SYSCALL_NONE_LSM: u32 = u32::MAX;

impl ProgramId {
    pub const ALL: [ProgramId; PROGRAM_COUNT as usize] = [
        ProgramId::Exec,
        ProgramId::Fork,
        ProgramId::Exit,
        ProgramId::SysExit,
        ProgramId::IoUringCreate,
        ProgramId::IoUringSubmit,
        ProgramId::LsmFileOpen,
        ProgramId::LsmFileTruncate,
        ProgramId::LsmPathTruncate,
        ProgramId::LsmPathRename,
        ProgramId::LsmPathUnlink,
        ProgramId::LsmPathRmdir,
        ProgramId::LsmPathLink,
        ProgramId::LsmPathSymlink,
        ProgramId::LsmPathMknod,
        ProgramId::LsmPathChmod,
        ProgramId::LsmPathChown,
        ProgramId::LsmInodeSetxattr,
        ProgramId::LsmInodeRemovexattr,
        ProgramId::LsmInodeSetattr,
    ];

    /// The program's symbol name in the object (what userspace attaches by).
    pub const fn name(self) -> &'static str {
        match self {
            ProgramId::Exec => "sched_process_exec",
            ProgramId::Fork => "sched_process_fork",
            ProgramId::Exit => "sched_process_exit",
            ProgramId::SysExit => "sys_exit",
            ProgramId::IoUringCreate => "io_uring_create",
            ProgramId::IoUringSubmit => "io_uring_submit_req",
            ProgramId::LsmFileOpen => "lsm_file_open",
            ProgramId::LsmFileTruncate => "lsm_file_truncate",
            ProgramId::LsmPathTruncate => "lsm_path_truncate",
            ProgramId::LsmPathRename => "lsm_path_rename",
            ProgramId::LsmPathUnlink => "lsm_path_unlink",
            ProgramId::LsmPathRmdir => "lsm_path_rmdir",
            ProgramId::LsmPathLink => "lsm_path_link",
            ProgramId::LsmPathSymlink => "lsm_path_symlink",
            ProgramId::LsmPathMknod => "lsm_path_mknod",
            ProgramId::LsmPathChmod => "lsm_path_chmod",
            ProgramId::LsmPathChown => "lsm_path_chown",
            ProgramId::LsmInodeSetxattr => "lsm_inode_setxattr",
            ProgramId::LsmInodeRemovexattr => "lsm_inode_removexattr",
            ProgramId::LsmInodeSetattr => "lsm_inode_setattr",
        }
    }
}

/// Per-program, per-CPU counters.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgramCounters {
    /// Invocations that concerned us (after the cheapest filter).
    pub total: u64,
    /// Records written to the ring buffer.
    pub emitted: u64,
    /// Invocations deliberately not reported (failed syscalls, read-only opens, throttled).
    pub ignored: u64,
    /// Records lost because the ring buffer was full.
    pub ringbuf_full: u64,
    /// Records whose path was truncated (they were still sent, marked).
    pub path_truncated: u64,
    /// Records lost to other errors (map full, missing stash, unreadable kernel memory).
    pub errors: u64,
}
const _: () = assert!(size_of::<ProgramCounters>() == 48);

/// Fixed start of every record: who acted, when, in which transaction.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RecordHeader {
    pub kind: u32,
    pub program: u32,
    /// `bpf_ktime_get_boot_ns()`.
    pub time_boot_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub euid: u32,
    /// Depth in the transaction (valid when `txn_id != 0`).
    pub txn_depth: u32,
    /// Process start time (boot clock ns; `task->group_leader->start_boottime`).
    pub start_time_ns: u64,
    /// 0: not in a package transaction.
    pub txn_id: u64,
    pub comm: [u8; COMM_LEN],
}
const _: () = assert!(size_of::<RecordHeader>() == 72);

/// Length and provenance of one path in a record's data area.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct PathInfo {
    pub len: u16,
    pub origin: u8,
    pub truncated: u8,
}
const _: () = assert!(size_of::<PathInfo>() == 4);

/// A file-modifying operation: one that succeeded (tracepoint backend, `syscall` is its x86_64
/// number) or one attempted past the permission checks (LSM backend, `syscall` is
/// [`SYSCALL_NONE_LSM`]). Data: `path` bytes then `target` bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FileRecord {
    pub header: RecordHeader,
    pub op: u32,
    pub syscall: u32,
    pub flags: u64,
    /// Kernel encoding; valid when `has_file != 0`.
    pub dev: u64,
    pub ino: u64,
    pub path: PathInfo,
    pub target: PathInfo,
    pub has_file: u8,
    /// 1: `replaced_dev`/`replaced_ino` name the inode a rename replaced (or exchanged with).
    pub has_replaced: u8,
    pub _pad: [u8; 6],
    /// Kernel encoding; valid when `has_replaced != 0`.
    pub replaced_dev: u64,
    pub replaced_ino: u64,
    pub data: [u8; 2 * PATH_CAP],
}
/// Bytes of a [`FileRecord`] before its data area.
pub const FILE_FIXED: usize = 136;
const _: () = assert!(core::mem::offset_of!(FileRecord, data) == FILE_FIXED);

/// A process exec'd. Data: exe path bytes then the command line (argv joined by NUL).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ExecRecord {
    pub header: RecordHeader,
    pub exe_dev: u64,
    pub exe_ino: u64,
    pub cgroup_id: u64,
    pub exe: PathInfo,
    pub cmdline_len: u16,
    pub starts_transaction: u8,
    pub cmdline_truncated: u8,
    pub data: [u8; PATH_CAP + CMDLINE_CAP],
}
/// Bytes of an [`ExecRecord`] before its data area.
pub const EXEC_FIXED: usize = 104;
const _: () = assert!(core::mem::offset_of!(ExecRecord, data) == EXEC_FIXED);

/// A new thread group; the header describes the parent.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ForkRecord {
    pub header: RecordHeader,
    pub child_pid: u32,
    pub _pad: u32,
    pub child_start_time_ns: u64,
}
const _: () = assert!(size_of::<ForkRecord>() == 88);

/// A thread group ended.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ExitRecord {
    pub header: RecordHeader,
    pub exit_code: i32,
    pub ends_transaction: u8,
    pub _pad: [u8; 3],
}
const _: () = assert!(size_of::<ExitRecord>() == 80);

/// A process created or submitted to an io_uring.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct IoUringRecord {
    pub header: RecordHeader,
    pub opcode: u8,
    pub has_opcode: u8,
    pub _pad: [u8; 6],
}
const _: () = assert!(size_of::<IoUringRecord>() == 80);

/// A file open for write, as the `iter/task_file` program writes it to its seq file: this fixed
/// part, then `path.len` path bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct OpenWriterRecord {
    pub pid: u32,
    pub fd: u32,
    /// Kernel encoding.
    pub dev: u64,
    pub ino: u64,
    pub comm: [u8; COMM_LEN],
    pub f_mode: u32,
    pub path: PathInfo,
    pub data: [u8; PATH_CAP],
}
/// Bytes of an [`OpenWriterRecord`] before its path.
pub const OPEN_WRITER_FIXED: usize = 48;
const _: () = assert!(core::mem::offset_of!(OpenWriterRecord, data) == OPEN_WRITER_FIXED);

/// Key of the package-manager map: an executable's identity (kernel device encoding).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
}

/// Transaction membership of a thread group (map keyed by tgid).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TxnState {
    pub id: u64,
    pub depth: u32,
    pub root_tgid: u32,
}

/// Key of the io_uring throttle map: report each (process, opcode) once.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct IoUringKey {
    pub tgid: u32,
    /// Opcode, or 0xffff for ring creation.
    pub opcode: u32,
    pub start_time_ns: u64,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all are #[repr(C)] plain data with explicit padding and no invalid bit patterns.
    unsafe impl aya::Pod for super::ProgramCounters {}
    unsafe impl aya::Pod for super::FileKey {}
    unsafe impl aya::Pod for super::TxnState {}
    unsafe impl aya::Pod for super::KernelOffsets {}
}
