//! File-modifying syscalls from `sys_exit`, reported only when the syscall succeeded. The
//! arguments are read at exit from the task's saved user registers: the kernel leaves them as they
//! were at entry (ptrace and seccomp may rewrite them only before the syscall runs), so nothing
//! runs at entry and nothing is stashed per thread. fd-based operations are reported with the
//! kernel path and inode of the open file; path-based ones with the user string anchored at the
//! dirfd's or cwd's kernel path. Syscall numbers are x86_64's; ia32 (compat) syscalls of 32-bit
//! code are translated to them, their arguments taken from the ia32 registers.
use core::ptr::write_volatile;

use aya_ebpf::{helpers::bpf_probe_read_user, programs::BtfTracePointContext};
use verifier_common::{FILE_FIXED, FileRecord, PATH_CAP, ProgramId, file_op, kind};

use crate::{
    emit::{Count, count, current_task, fill_header, submit},
    kernel::{file_of_fd, load_u32, load_u64, off, offsets_ready},
    maps::{PATH_SCRATCH, RECORD_SCRATCH},
    path::{AT_FDCWD, Built, Request, Slot, assemble, at_request, copy_into, verbatim_request},
};

mod nr {
    pub const OPEN: u64 = 2;
    pub const TRUNCATE: u64 = 76;
    pub const FTRUNCATE: u64 = 77;
    pub const RENAME: u64 = 82;
    pub const RMDIR: u64 = 84;
    pub const CREAT: u64 = 85;
    pub const LINK: u64 = 86;
    pub const UNLINK: u64 = 87;
    pub const SYMLINK: u64 = 88;
    pub const CHMOD: u64 = 90;
    pub const FCHMOD: u64 = 91;
    pub const CHOWN: u64 = 92;
    pub const FCHOWN: u64 = 93;
    pub const LCHOWN: u64 = 94;
    pub const UTIME: u64 = 132;
    pub const MKNOD: u64 = 133;
    pub const SETXATTR: u64 = 188;
    pub const LSETXATTR: u64 = 189;
    pub const FSETXATTR: u64 = 190;
    pub const REMOVEXATTR: u64 = 197;
    pub const LREMOVEXATTR: u64 = 198;
    pub const FREMOVEXATTR: u64 = 199;
    pub const UTIMES: u64 = 235;
    pub const OPENAT: u64 = 257;
    pub const MKNODAT: u64 = 259;
    pub const FCHOWNAT: u64 = 260;
    pub const FUTIMESAT: u64 = 261;
    pub const UNLINKAT: u64 = 263;
    pub const RENAMEAT: u64 = 264;
    pub const LINKAT: u64 = 265;
    pub const SYMLINKAT: u64 = 266;
    pub const FCHMODAT: u64 = 268;
    pub const UTIMENSAT: u64 = 280;
    pub const OPEN_BY_HANDLE_AT: u64 = 304;
    pub const RENAMEAT2: u64 = 316;
    pub const OPENAT2: u64 = 437;
    pub const FCHMODAT2: u64 = 452;
    pub const SETXATTRAT: u64 = 463;
    pub const REMOVEXATTRAT: u64 = 466;
}

const O_ACCMODE: u64 = 0o3;
const O_WRONLY: u64 = 0o1;
const O_CREAT: u64 = 0o100;
const O_TRUNC: u64 = 0o1000;
const RENAME_EXCHANGE: u64 = 1 << 1;
const AT_REMOVEDIR: u64 = 0x200;
const DATA_MASK: u32 = (2 * PATH_CAP as u32) - 1;

/// Whether `syscall` is one we report.
#[inline(always)]
const fn tracked(syscall: u64) -> bool {
    matches!(
        syscall,
        nr::OPEN
            | nr::TRUNCATE
            | nr::FTRUNCATE
            | nr::RENAME
            | nr::RMDIR
            | nr::CREAT
            | nr::LINK
            | nr::UNLINK
            | nr::SYMLINK
            | nr::CHMOD
            | nr::FCHMOD
            | nr::CHOWN
            | nr::FCHOWN
            | nr::LCHOWN
            | nr::UTIME
            | nr::MKNOD
            | nr::SETXATTR
            | nr::LSETXATTR
            | nr::FSETXATTR
            | nr::REMOVEXATTR
            | nr::LREMOVEXATTR
            | nr::FREMOVEXATTR
            | nr::UTIMES
            | nr::OPENAT
            | nr::MKNODAT
            | nr::FCHOWNAT
            | nr::FUTIMESAT
            | nr::UNLINKAT
            | nr::RENAMEAT
            | nr::LINKAT
            | nr::SYMLINKAT
            | nr::FCHMODAT
            | nr::UTIMENSAT
            | nr::OPEN_BY_HANDLE_AT
            | nr::RENAMEAT2
            | nr::OPENAT2
            | nr::FCHMODAT2
            | nr::SETXATTRAT
            | nr::REMOVEXATTRAT
    )
}

/// Syscall numbers below this are looked up in the bitmaps; every one we report is below it.
const BITMAP_LIMIT: u64 = 512;
type Bitmap = [u64; (BITMAP_LIMIT / 64) as usize];

/// The x86_64 (or, with `ia32`, the ia32) numbers below `BITMAP_LIMIT` we report, as a bitmap.
const fn bitmap(ia32: bool) -> Bitmap {
    let mut bits = [0u64; (BITMAP_LIMIT / 64) as usize];
    let mut syscall = 0;
    while syscall < BITMAP_LIMIT {
        let reported = if ia32 {
            native_of_ia32(syscall).is_some()
        } else {
            tracked(syscall)
        };
        if reported {
            bits[(syscall / 64) as usize] |= 1 << (syscall % 64);
        }
        syscall += 1;
    }
    bits
}

/// x86_64 syscalls we report, and ia32 syscalls we report (by their ia32 number). The first
/// tests on every syscall of every process, so they are bit tests, not chains of comparisons.
const NATIVE: Bitmap = bitmap(false);
const IA32: Bitmap = bitmap(true);

#[inline(always)]
fn in_bitmap(bits: &Bitmap, syscall: u64) -> bool {
    syscall < BITMAP_LIMIT && bits[(syscall / 64) as usize] & (1 << (syscall % 64)) != 0
}

/// Whether `syscall` may be one we report: a native one, or an ia32 one in a compat syscall
/// (checked only for numbers that are ia32 candidates and not native ones).
#[inline(always)]
fn candidate(syscall: u64) -> bool {
    in_bitmap(&NATIVE, syscall) || (in_bitmap(&IA32, syscall) && in_compat_syscall(current_task()))
}

/// `TS_COMPAT` in `thread_info.status`: the current syscall is an ia32 one.
const TS_COMPAT: u32 = 0x0002;

/// The x86_64 number of an ia32 syscall we report (`None` for every other ia32 syscall).
#[inline(always)]
const fn native_of_ia32(syscall: u64) -> Option<u64> {
    Some(match syscall {
        5 => nr::OPEN,
        8 => nr::CREAT,
        9 => nr::LINK,
        10 => nr::UNLINK,
        14 => nr::MKNOD,
        15 => nr::CHMOD,
        16 | 198 => nr::LCHOWN,
        30 => nr::UTIME,
        38 => nr::RENAME,
        40 => nr::RMDIR,
        83 => nr::SYMLINK,
        92 | 193 => nr::TRUNCATE,
        93 | 194 => nr::FTRUNCATE,
        94 => nr::FCHMOD,
        95 | 207 => nr::FCHOWN,
        182 | 212 => nr::CHOWN,
        226 => nr::SETXATTR,
        227 => nr::LSETXATTR,
        228 => nr::FSETXATTR,
        235 => nr::REMOVEXATTR,
        236 => nr::LREMOVEXATTR,
        237 => nr::FREMOVEXATTR,
        271 => nr::UTIMES,
        295 => nr::OPENAT,
        297 => nr::MKNODAT,
        298 => nr::FCHOWNAT,
        299 => nr::FUTIMESAT,
        301 => nr::UNLINKAT,
        302 => nr::RENAMEAT,
        303 => nr::LINKAT,
        304 => nr::SYMLINKAT,
        306 => nr::FCHMODAT,
        320 | 412 => nr::UTIMENSAT,
        342 => nr::OPEN_BY_HANDLE_AT,
        353 => nr::RENAMEAT2,
        437 => nr::OPENAT2,
        452 => nr::FCHMODAT2,
        463 => nr::SETXATTRAT,
        466 => nr::REMOVEXATTRAT,
        _ => return None,
    })
}

/// Whether the current task is in an ia32 syscall.
#[inline(always)]
fn in_compat_syscall(task: u64) -> bool {
    let status = load_u32(task, off!(task_thread_info) + off!(thread_info_status));
    status & TS_COMPAT != 0
}

/// The syscall as an x86_64 number and whether it is an ia32 one, for syscalls we report.
#[inline(always)]
fn classify(task: u64, syscall: u64) -> Option<(u64, bool)> {
    if in_compat_syscall(task) {
        // 0 for "none", not an Option: its payload would be left undefined on the `None` path,
        // and the BPF verifier refuses a copy of an unset register.
        match native_of_ia32(syscall).unwrap_or(0) {
            0 => None,
            native => Some((native, true)),
        }
    } else if tracked(syscall) {
        Some((syscall, false))
    } else {
        None
    }
}

/// The six arguments of an ia32 syscall (ebx, ecx, edx, esi, edi, ebp), zero-extended, from the
/// entry frame `regs`.
#[inline(always)]
fn ia32_syscall_args(regs: u64) -> [u64; 6] {
    [
        load_u64(regs, off!(regs_bx)),
        load_u64(regs, off!(regs_cx)),
        load_u64(regs, off!(regs_dx)),
        load_u64(regs, off!(regs_si)),
        load_u64(regs, off!(regs_di)),
        load_u64(regs, off!(regs_bp)),
    ]
    .map(|arg| arg & 0xffff_ffff)
}

/// The six arguments of an x86_64 syscall, from the entry frame `regs`.
#[inline(always)]
fn syscall_args(regs: u64) -> [u64; 6] {
    [
        load_u64(regs, off!(regs_di)),
        load_u64(regs, off!(regs_si)),
        load_u64(regs, off!(regs_dx)),
        load_u64(regs, off!(regs_r10)),
        load_u64(regs, off!(regs_r8)),
        load_u64(regs, off!(regs_r9)),
    ]
}

/// Open flags of an open-family syscall; `None` for other syscalls.
#[inline(always)]
fn open_flags(syscall: u64, args: &[u64; 6]) -> Option<u64> {
    match syscall {
        nr::OPEN => Some(args[1]),
        nr::CREAT => Some(O_CREAT | O_WRONLY | O_TRUNC),
        nr::OPENAT | nr::OPEN_BY_HANDLE_AT => Some(args[2]),
        // struct open_how { u64 flags; ... } in user memory.
        // SAFETY: bpf_probe_read_user tolerates any address.
        nr::OPENAT2 => Some(unsafe { bpf_probe_read_user(args[2] as *const u64) }.unwrap_or(0)),
        _ => None,
    }
}

/// How one path of a record is obtained.
#[derive(Clone, Copy)]
enum Source {
    None,
    /// `*at()` path: user string (or NULL/empty) against a dirfd.
    At {
        dirfd: i64,
        user: u64,
    },
    /// An fd argument.
    Fd(i64),
    /// The fd the syscall returned; the user string is the fallback if it is gone already.
    Returned {
        dirfd: i64,
        user: u64,
    },
    /// A user string that is not a path to anchor (symlink text).
    Verbatim(u64),
}

/// What to report for one successful syscall.
struct Plan {
    op: u32,
    flags: u64,
    path: Source,
    target: Source,
}

#[inline(always)]
fn at(dirfd: u64, user: u64) -> Source {
    Source::At {
        dirfd: dirfd as i32 as i64,
        user,
    }
}

#[inline(always)]
fn cwd(user: u64) -> Source {
    Source::At {
        dirfd: AT_FDCWD,
        user,
    }
}

#[inline(always)]
fn fd(fd: u64) -> Source {
    Source::Fd(fd as i32 as i64)
}

/// What the syscall did, from its x86_64 number, arguments and (for opens) flags.
#[inline(always)]
fn plan(syscall: u64, open_flags: u64, a: &[u64; 6]) -> Option<Plan> {
    let chown_ids = |uid: u64, gid: u64| ((uid & 0xffff_ffff) << 32) | (gid & 0xffff_ffff);
    let (op, flags, path, target) = match syscall {
        nr::OPEN | nr::CREAT => (
            file_op::OPEN_WRITE,
            open_flags,
            Source::Returned {
                dirfd: AT_FDCWD,
                user: a[0],
            },
            Source::None,
        ),
        nr::OPENAT | nr::OPENAT2 => (
            file_op::OPEN_WRITE,
            open_flags,
            Source::Returned {
                dirfd: a[0] as i32 as i64,
                user: a[1],
            },
            Source::None,
        ),
        nr::OPEN_BY_HANDLE_AT => (
            file_op::OPEN_WRITE,
            open_flags,
            Source::Returned { dirfd: -1, user: 0 },
            Source::None,
        ),
        nr::TRUNCATE => (file_op::TRUNCATE, 0, cwd(a[0]), Source::None),
        nr::FTRUNCATE => (file_op::TRUNCATE, 0, fd(a[0]), Source::None),
        nr::RENAME => (file_op::RENAME, 0, cwd(a[0]), cwd(a[1])),
        nr::RENAMEAT => (file_op::RENAME, 0, at(a[0], a[1]), at(a[2], a[3])),
        nr::RENAMEAT2 => {
            let op = if a[4] & RENAME_EXCHANGE != 0 {
                file_op::RENAME_EXCHANGE
            } else {
                file_op::RENAME
            };
            (op, a[4], at(a[0], a[1]), at(a[2], a[3]))
        }
        nr::UNLINK => (file_op::UNLINK, 0, cwd(a[0]), Source::None),
        nr::RMDIR => (file_op::RMDIR, 0, cwd(a[0]), Source::None),
        nr::UNLINKAT => {
            let op = if a[2] & AT_REMOVEDIR != 0 {
                file_op::RMDIR
            } else {
                file_op::UNLINK
            };
            (op, a[2], at(a[0], a[1]), Source::None)
        }
        nr::LINK => (file_op::LINK, 0, cwd(a[0]), cwd(a[1])),
        nr::LINKAT => (file_op::LINK, a[4], at(a[0], a[1]), at(a[2], a[3])),
        nr::SYMLINK => (file_op::SYMLINK, 0, cwd(a[1]), Source::Verbatim(a[0])),
        nr::SYMLINKAT => (file_op::SYMLINK, 0, at(a[1], a[2]), Source::Verbatim(a[0])),
        nr::MKNOD => (file_op::MKNOD, a[1], cwd(a[0]), Source::None),
        nr::MKNODAT => (file_op::MKNOD, a[2], at(a[0], a[1]), Source::None),
        nr::CHMOD => (file_op::CHMOD, a[1], cwd(a[0]), Source::None),
        nr::FCHMOD => (file_op::CHMOD, a[1], fd(a[0]), Source::None),
        nr::FCHMODAT | nr::FCHMODAT2 => (file_op::CHMOD, a[2], at(a[0], a[1]), Source::None),
        nr::CHOWN | nr::LCHOWN => (
            file_op::CHOWN,
            chown_ids(a[1], a[2]),
            cwd(a[0]),
            Source::None,
        ),
        nr::FCHOWN => (
            file_op::CHOWN,
            chown_ids(a[1], a[2]),
            fd(a[0]),
            Source::None,
        ),
        nr::FCHOWNAT => (
            file_op::CHOWN,
            chown_ids(a[2], a[3]),
            at(a[0], a[1]),
            Source::None,
        ),
        nr::SETXATTR | nr::LSETXATTR => (file_op::SET_XATTR, 0, cwd(a[0]), Source::None),
        nr::FSETXATTR => (file_op::SET_XATTR, 0, fd(a[0]), Source::None),
        nr::SETXATTRAT => (file_op::SET_XATTR, 0, at(a[0], a[1]), Source::None),
        nr::REMOVEXATTR | nr::LREMOVEXATTR => (file_op::REMOVE_XATTR, 0, cwd(a[0]), Source::None),
        nr::FREMOVEXATTR => (file_op::REMOVE_XATTR, 0, fd(a[0]), Source::None),
        nr::REMOVEXATTRAT => (file_op::REMOVE_XATTR, 0, at(a[0], a[1]), Source::None),
        nr::UTIME | nr::UTIMES => (file_op::UTIMES, 0, cwd(a[0]), Source::None),
        nr::UTIMENSAT | nr::FUTIMESAT => (file_op::UTIMES, 0, at(a[0], a[1]), Source::None),
        _ => return None,
    };
    Some(Plan {
        op,
        flags,
        path,
        target,
    })
}

/// What to assemble for one path of the record (no walk yet: see `path::assemble`).
#[inline(always)]
fn request(scratch: *mut u8, slot: Slot, task: u64, source: Source, ret: i64) -> Request {
    match source {
        Source::None => Request::NONE,
        Source::At { dirfd, user } => at_request(scratch, slot, task, dirfd, user),
        Source::Fd(fd) => match file_of_fd(task, fd) {
            Some(file) => Request::open_file(file),
            None => Request::NONE,
        },
        Source::Returned { dirfd, user } => match file_of_fd(task, ret) {
            Some(file) => Request::open_file(file),
            None if user != 0 => at_request(scratch, slot, task, dirfd, user),
            None => Request::NONE,
        },
        Source::Verbatim(user) => verbatim_request(slot, user),
    }
}

/// Assembles one path in the scratch, or (a whole user string) in the record at `slot`.
#[inline(always)]
fn build(scratch: *mut u8, slot: Slot, task: u64, source: Source, ret: i64) -> Built {
    let request = request(scratch, slot, task, source, ret);
    assemble(scratch, &request)
}

/// Zeroes `has_file`, `has_replaced` and the padding (one aligned word) and the replaced inode (a
/// tracepoint cannot see what a rename replaced). Stores of their own: as field assignments the
/// compiler merges them into a call to a byte-by-byte `memset`.
#[inline(always)]
fn clear_flags_and_replaced(record: &mut FileRecord) {
    const FLAGS_AT: usize = core::mem::offset_of!(FileRecord, has_file);
    const _: () = assert!(FLAGS_AT.is_multiple_of(8));
    const _: () = assert!(core::mem::offset_of!(FileRecord, replaced_dev) == FLAGS_AT + 8);
    // SAFETY: the record scratch is 8-aligned and the word at FLAGS_AT (has_file, has_replaced,
    // _pad) lies inside the record, as do the two fields after it.
    unsafe {
        write_volatile(
            (record as *mut FileRecord)
                .cast::<u8>()
                .add(FLAGS_AT)
                .cast::<u64>(),
            0,
        );
        write_volatile(&raw mut record.replaced_dev, 0);
        write_volatile(&raw mut record.replaced_ino, 0);
    }
}

/// `sys_exit(struct pt_regs *regs, long ret)`.
pub fn on_sys_exit(ctx: &BtfTracePointContext) -> Option<()> {
    if !offsets_ready() {
        return None;
    }
    // The entry frame, typed by the tracepoint's BTF: its fields are loaded directly.
    let regs: u64 = ctx.arg(0);
    let raw = load_u64(regs, off!(regs_orig_ax));
    if !candidate(raw) {
        return None;
    }
    let task = current_task();
    let (syscall, compat) = classify(task, raw)?;
    let program = ProgramId::SysExit;
    count(program, Count::Total);
    let ret: i64 = ctx.arg(1);
    let ret = if compat { ret as i32 as i64 } else { ret };
    if ret < 0 {
        count(program, Count::Ignored);
        return None;
    }
    let args = if compat {
        ia32_syscall_args(regs)
    } else {
        syscall_args(regs)
    };
    let flags = open_flags(syscall, &args);
    if let Some(flags) = flags
        && flags & O_ACCMODE == 0
        && flags & (O_CREAT | O_TRUNC) == 0
    {
        count(program, Count::Ignored);
        return None;
    }
    let plan = plan(syscall, flags.unwrap_or(0), &args)?;
    emit_file(program, task, &plan, syscall as u32, ret)
}

#[inline(always)]
fn emit_file(program: ProgramId, task: u64, plan: &Plan, syscall: u32, ret: i64) -> Option<()> {
    let record = RECORD_SCRATCH.get_ptr_mut(0)?.cast::<FileRecord>();
    let scratch = PATH_SCRATCH.get_ptr_mut(0)?.cast::<u8>();
    // SAFETY: the scratch slot is at least as large as a FileRecord.
    let record = unsafe { &mut *record };
    fill_header(&mut record.header, task, kind::FILE, program);
    record.op = plan.op;
    record.syscall = syscall;
    record.flags = plan.flags;
    clear_flags_and_replaced(record);
    let data = (&raw mut record.data).cast::<u8>();

    let path = build(scratch, Slot { data, at: 0 }, task, plan.path, ret);
    record.path = copy_into(data, 0, scratch, &path);
    if record.path.len == 0 {
        count(program, Count::Error);
        return None;
    }
    let (dev, ino) = path.file.unwrap_or((0, 0));
    record.has_file = path.file.is_some() as u8;
    record.dev = dev;
    record.ino = ino;

    // Read back from the record: the verifier then sees one range for it whichever way the path
    // was built, and explores the target once, not once per way.
    // SAFETY: a field of the record scratch.
    let target_at = unsafe { core::ptr::read_volatile(&raw const record.path.len) } as u32;
    let target = build(
        scratch,
        Slot {
            data,
            at: target_at,
        },
        task,
        plan.target,
        ret,
    );
    record.target = copy_into(data, target_at, scratch, &target);
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
