//! File modifications from BPF LSM hooks (the LSM backend): every way into the VFS passes them,
//! including io_uring requests, so they need no syscall numbers, no user strings and no
//! io_uring special case. Paths are walked from the kernel's (dentry, mount), identities read
//! from the inodes.
//!
//! The hooks run before the operation, after the permission checks that precede them, and cannot
//! see its result: each record is an *attempt* (`syscall` = `SYSCALL_NONE_LSM`). Counting an
//! attempt that then failed as a write only ever makes a verdict stricter (never a silent
//! accept). Every program returns 0: it records, it never denies.
use aya_ebpf::programs::LsmContext;
use verifier_common::{
    FILE_FIXED, FileRecord, PATH_CAP, ProgramId, SYSCALL_NONE_LSM, file_op, kind,
};

use crate::{
    emit::{Count, count, current_task, fill_header, submit},
    kernel::{off, offsets_ready, read_ptr, read_u32},
    maps::{PATH_SCRATCH, RECORD_SCRATCH},
    path::{Request, assemble, copy_into, verbatim_kernel_request},
};

/// `FMODE_WRITE`.
const FMODE_WRITE: u32 = 0x2;
const O_CREAT: u32 = 0o100;
const O_TRUNC: u32 = 0o1000;
const RENAME_EXCHANGE: u32 = 1 << 1;
/// `ia_valid` bits (`include/linux/fs.h`).
const ATTR_MODE: u32 = 1 << 0;
const ATTR_UID: u32 = 1 << 1;
const ATTR_GID: u32 = 1 << 2;
const ATTR_SIZE: u32 = 1 << 3;
const ATTR_ATIME: u32 = 1 << 4;
const ATTR_MTIME: u32 = 1 << 5;
const DATA_MASK: u32 = (2 * PATH_CAP as u32) - 1;

/// What one hook reports.
struct Report {
    op: u32,
    flags: u64,
    path: Path,
    target: Path,
    /// For renames: the dentry at the destination (its inode, if any, is replaced or exchanged).
    replaced_dentry: u64,
}

/// How a path of the report is found (resolved to a [`Request`] only when the record is built,
/// since string reads use the same scratch).
#[derive(Clone, Copy)]
enum Path {
    None,
    /// A `struct path *`.
    Kernel(u64),
    /// A `struct file *`.
    File(u64),
    /// A dentry under the mount of a parent directory's `struct path *`.
    Child {
        dir: u64,
        dentry: u64,
    },
    /// A dentry alone: the mount is the acting task's (see [`task_mount_for`]).
    Dentry(u64),
    /// A kernel string kept verbatim (a symlink's text).
    Text(u64),
}

/// `file_open(struct file *file)`: opens with write access, O_CREAT or O_TRUNC.
pub fn on_file_open(ctx: &LsmContext) -> Option<()> {
    let program = ProgramId::LsmFileOpen;
    ready()?;
    let file: u64 = ctx.arg(0);
    let mode = read_u32(file + off!(file_mode))?;
    let flags = read_u32(file + off!(file_flags))?;
    if mode & FMODE_WRITE == 0 && flags & (O_CREAT | O_TRUNC) == 0 {
        return None;
    }
    emit(
        program,
        &simple(file_op::OPEN_WRITE, flags as u64, Path::File(file)),
    )
}

/// `file_truncate(struct file *file)` (6.2+: ftruncate and O_TRUNC).
pub fn on_file_truncate(ctx: &LsmContext) -> Option<()> {
    ready()?;
    let file: u64 = ctx.arg(0);
    emit(
        ProgramId::LsmFileTruncate,
        &simple(file_op::TRUNCATE, 0, Path::File(file)),
    )
}

/// `path_truncate(const struct path *path)`.
pub fn on_path_truncate(ctx: &LsmContext) -> Option<()> {
    ready()?;
    let path: u64 = ctx.arg(0);
    emit(
        ProgramId::LsmPathTruncate,
        &simple(file_op::TRUNCATE, 0, Path::Kernel(path)),
    )
}

/// `path_rename(const struct path *old_dir, struct dentry *old_dentry, const struct path
/// *new_dir, struct dentry *new_dentry, unsigned int flags)`.
pub fn on_path_rename(ctx: &LsmContext) -> Option<()> {
    ready()?;
    let (old_dir, old_dentry): (u64, u64) = (ctx.arg(0), ctx.arg(1));
    let (new_dir, new_dentry): (u64, u64) = (ctx.arg(2), ctx.arg(3));
    let flags: u32 = ctx.arg(4);
    let op = if flags & RENAME_EXCHANGE != 0 {
        file_op::RENAME_EXCHANGE
    } else {
        file_op::RENAME
    };
    let report = Report {
        op,
        flags: flags as u64,
        path: Path::Child {
            dir: old_dir,
            dentry: old_dentry,
        },
        target: Path::Child {
            dir: new_dir,
            dentry: new_dentry,
        },
        replaced_dentry: new_dentry,
    };
    emit(ProgramId::LsmPathRename, &report)
}

/// `path_unlink(const struct path *dir, struct dentry *dentry)`.
pub fn on_path_unlink(ctx: &LsmContext) -> Option<()> {
    ready()?;
    let child = Path::Child {
        dir: ctx.arg(0),
        dentry: ctx.arg(1),
    };
    emit(ProgramId::LsmPathUnlink, &simple(file_op::UNLINK, 0, child))
}

/// `path_rmdir(const struct path *dir, struct dentry *dentry)`.
pub fn on_path_rmdir(ctx: &LsmContext) -> Option<()> {
    ready()?;
    let child = Path::Child {
        dir: ctx.arg(0),
        dentry: ctx.arg(1),
    };
    emit(ProgramId::LsmPathRmdir, &simple(file_op::RMDIR, 0, child))
}

/// `path_link(struct dentry *old_dentry, const struct path *new_dir, struct dentry
/// *new_dentry)`: a hard link never crosses mounts, so the old dentry sits under `new_dir`'s.
pub fn on_path_link(ctx: &LsmContext) -> Option<()> {
    ready()?;
    let (old_dentry, new_dir, new_dentry): (u64, u64, u64) = (ctx.arg(0), ctx.arg(1), ctx.arg(2));
    let report = Report {
        target: Path::Child {
            dir: new_dir,
            dentry: new_dentry,
        },
        ..simple(
            file_op::LINK,
            0,
            Path::Child {
                dir: new_dir,
                dentry: old_dentry,
            },
        )
    };
    emit(ProgramId::LsmPathLink, &report)
}

/// `path_symlink(const struct path *dir, struct dentry *dentry, const char *old_name)`.
pub fn on_path_symlink(ctx: &LsmContext) -> Option<()> {
    ready()?;
    let report = Report {
        target: Path::Text(ctx.arg(2)),
        ..simple(
            file_op::SYMLINK,
            0,
            Path::Child {
                dir: ctx.arg(0),
                dentry: ctx.arg(1),
            },
        )
    };
    emit(ProgramId::LsmPathSymlink, &report)
}

/// `path_mknod(const struct path *dir, struct dentry *dentry, umode_t mode, unsigned int dev)`.
pub fn on_path_mknod(ctx: &LsmContext) -> Option<()> {
    ready()?;
    let mode: u32 = ctx.arg(2);
    let child = Path::Child {
        dir: ctx.arg(0),
        dentry: ctx.arg(1),
    };
    emit(
        ProgramId::LsmPathMknod,
        &simple(file_op::MKNOD, (mode & 0xffff) as u64, child),
    )
}

/// `path_chmod(const struct path *path, umode_t mode)`.
pub fn on_path_chmod(ctx: &LsmContext) -> Option<()> {
    ready()?;
    let mode: u32 = ctx.arg(1);
    emit(
        ProgramId::LsmPathChmod,
        &simple(
            file_op::CHMOD,
            (mode & 0xffff) as u64,
            Path::Kernel(ctx.arg(0)),
        ),
    )
}

/// `path_chown(const struct path *path, kuid_t uid, kgid_t gid)`.
pub fn on_path_chown(ctx: &LsmContext) -> Option<()> {
    ready()?;
    let uid: u32 = ctx.arg(1);
    let gid: u32 = ctx.arg(2);
    let ids = ((uid as u64) << 32) | gid as u64;
    emit(
        ProgramId::LsmPathChown,
        &simple(file_op::CHOWN, ids, Path::Kernel(ctx.arg(0))),
    )
}

/// `inode_setxattr(<idmap or mnt_userns>, struct dentry *dentry, const char *name, ...)` (5.12+).
pub fn on_inode_setxattr(ctx: &LsmContext) -> Option<()> {
    ready()?;
    let dentry: u64 = ctx.arg(1);
    emit(
        ProgramId::LsmInodeSetxattr,
        &simple(file_op::SET_XATTR, 0, Path::Dentry(dentry)),
    )
}

/// `inode_removexattr(<idmap or mnt_userns>, struct dentry *dentry, const char *name)` (5.12+).
pub fn on_inode_removexattr(ctx: &LsmContext) -> Option<()> {
    ready()?;
    let dentry: u64 = ctx.arg(1);
    emit(
        ProgramId::LsmInodeRemovexattr,
        &simple(file_op::REMOVE_XATTR, 0, Path::Dentry(dentry)),
    )
}

/// `inode_setattr(struct mnt_idmap *idmap, struct dentry *dentry, struct iattr *attr)` (6.10+;
/// the kernel verifier refuses a context read at a position it cannot prove, so kernels with the
/// older two-parameter hook get [`on_inode_setattr_2`], chosen by userspace from BTF).
pub fn on_inode_setattr(ctx: &LsmContext) -> Option<()> {
    setattr(ctx.arg(1), ctx.arg(2))
}

/// `inode_setattr(struct dentry *dentry, struct iattr *attr)` (before 6.10).
pub fn on_inode_setattr_2(ctx: &LsmContext) -> Option<()> {
    setattr(ctx.arg(0), ctx.arg(1))
}

/// Only time changes (utimes family); mode, owner and size changes come from the `path_*` hooks.
#[inline(always)]
fn setattr(dentry: u64, attr: u64) -> Option<()> {
    ready()?;
    let valid = read_u32(attr + off!(iattr_valid))?;
    if valid & (ATTR_ATIME | ATTR_MTIME) == 0
        || valid & (ATTR_MODE | ATTR_UID | ATTR_GID | ATTR_SIZE) != 0
    {
        return None;
    }
    emit(
        ProgramId::LsmInodeSetattr,
        &simple(file_op::UTIMES, 0, Path::Dentry(dentry)),
    )
}

#[inline(always)]
fn ready() -> Option<()> {
    offsets_ready().then_some(())
}

#[inline(always)]
fn simple(op: u32, flags: u64, path: Path) -> Report {
    Report {
        op,
        flags,
        path,
        target: Path::None,
        replaced_dentry: 0,
    }
}

/// The mount a dentry-only hook's path is walked under: the acting task's root mount when the
/// dentry is on its filesystem, else its cwd's; and whether the path is in doubt (the dentry is
/// on neither, or that mount shows a subtree rather than the filesystem's root, so the dentry may
/// not be under it).
#[inline(always)]
fn task_mount_for(dentry: u64) -> Option<(u64, bool)> {
    let sb = read_ptr(dentry + off!(dentry_sb))?;
    let fs = read_ptr(current_task() + off!(task_fs))?;
    let root_mnt = read_ptr(fs + off!(fs_root) + off!(path_mnt))?;
    let pwd_mnt = read_ptr(fs + off!(fs_pwd) + off!(path_mnt))?;
    let (mnt, found) = if read_ptr(root_mnt + off!(vfsmount_sb)) == Some(sb) {
        (root_mnt, true)
    } else if read_ptr(pwd_mnt + off!(vfsmount_sb)) == Some(sb) {
        (pwd_mnt, true)
    } else {
        (root_mnt, false)
    };
    let mnt_root = read_ptr(mnt + off!(vfsmount_mnt_root))?;
    let sb_root = read_ptr(sb + off!(sb_root))?;
    Some((mnt, !found || mnt_root != sb_root))
}

/// The request for one path, and whether it is in doubt.
#[inline(always)]
fn request(scratch: *mut u8, path: Path) -> (Request, bool) {
    match path {
        Path::None => (Request::NONE, false),
        Path::Kernel(path) => (Request::path(path), false),
        Path::File(file) => (Request::open_file(file), false),
        Path::Child { dir, dentry } => match read_ptr(dir + off!(path_mnt)) {
            Some(mnt) => (Request::dentry(dentry, mnt), false),
            None => (Request::NONE, false),
        },
        Path::Dentry(dentry) => match task_mount_for(dentry) {
            Some((mnt, doubt)) => (Request::dentry(dentry, mnt), doubt),
            None => (Request::NONE, false),
        },
        Path::Text(string) => (verbatim_kernel_request(scratch, string), false),
    }
}

/// (kernel dev, ino) of a dentry's inode, if it has one.
#[inline(always)]
fn dentry_identity(dentry: u64) -> Option<(u64, u64)> {
    let inode = read_ptr(dentry + off!(dentry_inode))?;
    crate::kernel::inode_identity(inode)
}

#[inline(always)]
fn emit(program: ProgramId, report: &Report) -> Option<()> {
    count(program, Count::Total);
    let record = RECORD_SCRATCH.get_ptr_mut(0)?.cast::<FileRecord>();
    let scratch = PATH_SCRATCH.get_ptr_mut(0)?.cast::<u8>();
    // SAFETY: the scratch slot is at least as large as a FileRecord.
    let record = unsafe { &mut *record };
    fill_header(&mut record.header, current_task(), kind::FILE, program);
    record.op = report.op;
    record.syscall = SYSCALL_NONE_LSM;
    record.flags = report.flags;
    record._pad = [0; 6];
    let data = (&raw mut record.data).cast::<u8>();

    let (path_request, path_doubt) = request(scratch, report.path);
    let path = assemble(scratch, &path_request);
    record.path = copy_into(data, 0, scratch, &path);
    if record.path.len == 0 {
        count(program, Count::Error);
        return None;
    }
    if path_doubt {
        record.path.truncated = 1;
    }
    let (dev, ino) = path.file.unwrap_or((0, 0));
    record.has_file = path.file.is_some() as u8;
    record.dev = dev;
    record.ino = ino;
    let replaced = if report.replaced_dentry != 0 {
        dentry_identity(report.replaced_dentry)
    } else {
        None
    };
    let (replaced_dev, replaced_ino) = replaced.unwrap_or((0, 0));
    record.has_replaced = replaced.is_some() as u8;
    record.replaced_dev = replaced_dev;
    record.replaced_ino = replaced_ino;

    let (target_request, _) = request(scratch, report.target);
    let target = assemble(scratch, &target_request);
    record.target = copy_into(data, record.path.len as u32, scratch, &target);
    if record.path.truncated != 0 || record.target.truncated != 0 {
        count(program, Count::PathTruncated);
    }
    let used = (record.path.len as u32 + record.target.len as u32) & DATA_MASK;
    submit(
        program,
        (record as *const FileRecord).cast(),
        FILE_FIXED + used as usize,
    );
    Some(())
}
