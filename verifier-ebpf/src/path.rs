//! Path assembly in the per-CPU path scratch: kernel walks (dentry → root across mounts) and user
//! strings anchored at a dirfd or the cwd. Bounded so the verifier accepts it; anything cut short
//! is marked truncated, never silently wrong.
//!
//! Layout of the scratch: a kernel walk writes backwards and ends at `PATH_HALF`; a user suffix is
//! read to `PATH_HALF + 1`, with `/` joining them at `PATH_HALF`.
use core::ptr::{read_volatile, write_volatile};

use aya_ebpf::helpers::generated::{bpf_probe_read_kernel, bpf_probe_read_user_str};
use verifier_common::{PATH_CAP, PathInfo, origin};

use crate::{
    kernel::{file_identity, file_of_fd, inode_identity, off, path_parts, read_ptr, read_u32},
    maps::{PATH_HALF, WALK_STATE},
};

/// Most dentries and mount crossings one walk follows.
const MAX_WALK: u32 = 64;
/// Longest name component (`NAME_MAX`).
const NAME_MASK: u32 = 255;
const HALF_MASK: u32 = (PATH_HALF as u32) - 1;
const CAP_MASK: u32 = (PATH_CAP as u32) - 1;
/// `AT_FDCWD`.
pub const AT_FDCWD: i64 = -100;

/// A path assembled in the scratch: bytes `[start, end)`.
#[derive(Clone, Copy)]
pub struct Built {
    pub start: u32,
    pub end: u32,
    pub origin: u8,
    pub truncated: bool,
    /// (kernel dev, ino) when the path came from a kernel object.
    pub file: Option<(u64, u64)>,
}

impl Built {
    pub const NONE: Built = Built {
        start: 0,
        end: 0,
        origin: origin::NONE,
        truncated: false,
        file: None,
    };
}

/// Loop-carried state of a walk, kept in map memory (not registers) on purpose: the verifier does
/// not track values in map memory, so every iteration looks alike to it and is pruned, instead of
/// each distinct write offset being explored separately (which exceeds the 1M-instruction limit).
#[repr(C)]
pub struct WalkState {
    pub at: u32,
    pub truncated: u32,
}

/// Walks `dentry`/`vfsmnt` up to the root, writing the path so that it ends at `PATH_HALF`.
/// Returns the start offset (== `PATH_HALF` for the root itself) and whether it was cut short.
#[inline(always)]
fn walk(scratch: *mut u8, dentry: u64, vfsmnt: u64) -> Option<(u32, bool)> {
    let state = WALK_STATE.get_ptr_mut(0)?;
    // SAFETY: a per-CPU map slot of the right type.
    unsafe {
        write_volatile(&raw mut (*state).at, PATH_HALF as u32);
        write_volatile(&raw mut (*state).truncated, 1);
    }
    let mut dentry = dentry;
    let mut vfsmnt = vfsmnt;
    let mut mount = vfsmnt - off!(mount_mnt);
    for _ in 0..MAX_WALK {
        let mnt_root = read_ptr(vfsmnt + off!(vfsmount_mnt_root))?;
        let parent = read_ptr(dentry + off!(dentry_parent))?;
        if dentry == mnt_root || dentry == parent {
            let mount_parent = read_ptr(mount + off!(mount_parent))?;
            if dentry != mnt_root || mount == mount_parent {
                // SAFETY: as above.
                unsafe { write_volatile(&raw mut (*state).truncated, 0) };
                break;
            }
            dentry = read_ptr(mount + off!(mount_mountpoint))?;
            mount = mount_parent;
            vfsmnt = mount + off!(mount_mnt);
            continue;
        }
        let name = read_ptr(dentry + off!(dentry_name) + off!(qstr_name))?;
        let len = read_u32(dentry + off!(dentry_name) + off!(qstr_len))?;
        // SAFETY: as above.
        let at = unsafe { read_volatile(&raw const (*state).at) };
        if len > NAME_MASK || len + 1 > at {
            break;
        }
        let at = at - (len + 1);
        // SAFETY: offsets and size are masked inside the 2 * PATH_HALF scratch.
        unsafe {
            write_volatile(&raw mut (*state).at, at);
            bpf_probe_read_kernel(
                scratch.add(((at + 1) & HALF_MASK) as usize).cast(),
                len & NAME_MASK,
                name as *const _,
            );
            *scratch.add((at & HALF_MASK) as usize) = b'/';
        }
        dentry = parent;
    }
    // SAFETY: as above.
    let (at, truncated) = unsafe {
        (
            read_volatile(&raw const (*state).at),
            read_volatile(&raw const (*state).truncated),
        )
    };
    Some((at & (2 * HALF_MASK + 1), truncated != 0))
}

/// The kernel path of a `struct path` (at address `path`) plus the inode it names.
#[inline(always)]
fn kernel_path(scratch: *mut u8, path: u64) -> Option<Built> {
    let (dentry, vfsmnt) = path_parts(path)?;
    let (start, truncated) = walk(scratch, dentry, vfsmnt)?;
    let file = read_ptr(dentry + off!(dentry_inode)).and_then(inode_identity);
    let end = PATH_HALF as u32;
    Some(if start == end {
        // The root: "/" written at PATH_HALF.
        // SAFETY: PATH_HALF < 2 * PATH_HALF.
        unsafe { *scratch.add(PATH_HALF) = b'/' };
        Built {
            start,
            end: end + 1,
            origin: origin::KERNEL,
            truncated,
            file,
        }
    } else {
        Built {
            start,
            end,
            origin: origin::KERNEL,
            truncated,
            file,
        }
    })
}

/// The kernel path of an open file.
#[inline(always)]
pub fn file_path(scratch: *mut u8, file: u64) -> Built {
    match kernel_path(scratch, file + off!(file_path)) {
        Some(mut built) => {
            built.file = file_identity(file).or(built.file);
            built
        }
        None => Built::NONE,
    }
}

/// The `struct path` address a dirfd stands for: the open file's path, or the cwd for AT_FDCWD.
#[inline(always)]
fn dir_path_of(task: u64, dirfd: i64) -> Option<u64> {
    if dirfd == AT_FDCWD {
        let fs = read_ptr(task + off!(task_fs))?;
        Some(fs + off!(fs_pwd))
    } else {
        let file = file_of_fd(task, dirfd)?;
        Some(file + off!(file_path))
    }
}

/// A `*at()` path argument: `user` resolved against `dirfd` (or the cwd). A NULL or empty `user`
/// means the dirfd itself (AT_EMPTY_PATH, utimensat(fd, NULL)), reported from the kernel.
#[inline(always)]
pub fn at_path(scratch: *mut u8, task: u64, dirfd: i64, user: u64) -> Built {
    let mut user_len: u32 = 0;
    let mut user_truncated = false;
    if user != 0 {
        // SAFETY: the destination is inside the scratch, the size bounded by its second half.
        let got = unsafe {
            bpf_probe_read_user_str(
                scratch.add(PATH_HALF + 1).cast(),
                (PATH_HALF - 1) as u32,
                user as *const _,
            )
        };
        if got <= 0 {
            return Built::NONE;
        }
        user_len = (got as u32 - 1) & HALF_MASK;
        user_truncated = got as u32 >= (PATH_HALF - 1) as u32;
    }
    let Some(dir) = dir_path_of(task, dirfd) else {
        return if user_len == 0 {
            Built::NONE
        } else {
            Built {
                start: PATH_HALF as u32 + 1,
                end: PATH_HALF as u32 + 1 + user_len,
                origin: origin::USER_UNRESOLVED,
                truncated: user_truncated,
                file: None,
            }
        };
    };
    if user_len == 0 {
        return kernel_path(scratch, dir).unwrap_or(Built::NONE);
    }
    // SAFETY: PATH_HALF + 1 is inside the scratch.
    let absolute = unsafe { *scratch.add(PATH_HALF + 1) } == b'/';
    let end = PATH_HALF as u32 + 1 + user_len;
    if absolute {
        return Built {
            start: PATH_HALF as u32 + 1,
            end,
            origin: origin::USER_RESOLVED,
            truncated: user_truncated,
            file: None,
        };
    }
    let Some((dentry, vfsmnt)) = path_parts(dir) else {
        return Built {
            start: PATH_HALF as u32 + 1,
            end,
            origin: origin::USER_UNRESOLVED,
            truncated: user_truncated,
            file: None,
        };
    };
    match walk(scratch, dentry, vfsmnt) {
        Some((start, dir_truncated)) => {
            // SAFETY: PATH_HALF is inside the scratch.
            unsafe { *scratch.add(PATH_HALF) = b'/' };
            Built {
                start,
                end,
                origin: origin::USER_RESOLVED,
                truncated: user_truncated || dir_truncated,
                file: None,
            }
        }
        None => Built {
            start: PATH_HALF as u32 + 1,
            end,
            origin: origin::USER_UNRESOLVED,
            truncated: user_truncated,
            file: None,
        },
    }
}

/// A user string kept verbatim (a symlink's target text).
#[inline(always)]
pub fn verbatim(scratch: *mut u8, user: u64) -> Built {
    // SAFETY: as in `at_path`.
    let got = unsafe {
        bpf_probe_read_user_str(
            scratch.add(PATH_HALF + 1).cast(),
            (PATH_HALF - 1) as u32,
            user as *const _,
        )
    };
    if got <= 0 {
        return Built::NONE;
    }
    Built {
        start: PATH_HALF as u32 + 1,
        end: PATH_HALF as u32 + 1 + ((got as u32 - 1) & HALF_MASK),
        origin: origin::USER_UNRESOLVED,
        truncated: got as u32 >= (PATH_HALF - 1) as u32,
        file: None,
    }
}

/// Copies a built path into a record's data area at `data_at`; returns its `PathInfo`.
#[inline(always)]
pub fn copy_into(data: *mut u8, data_at: u32, scratch: *const u8, built: &Built) -> PathInfo {
    if built.origin == origin::NONE || built.end <= built.start {
        return PathInfo::default();
    }
    let mut len = built.end - built.start;
    let mut truncated = built.truncated;
    if len > CAP_MASK {
        len = CAP_MASK;
        truncated = true;
    }
    // SAFETY: destination offset and size are masked inside the data area (2 * PATH_CAP);
    // the source is kernel memory of the scratch.
    unsafe {
        bpf_probe_read_kernel(
            data.add((data_at & CAP_MASK) as usize).cast(),
            len & CAP_MASK,
            scratch
                .add((built.start & (2 * HALF_MASK + 1)) as usize)
                .cast(),
        );
    }
    PathInfo {
        len: (len & CAP_MASK) as u16,
        origin: built.origin,
        truncated: truncated as u8,
    }
}
