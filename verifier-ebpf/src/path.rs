//! Path assembly in the per-CPU path scratch: kernel walks (dentry → root across mounts) and user
//! strings anchored at a dirfd or the cwd. Bounded so the verifier accepts it; anything cut short
//! is marked truncated, never silently wrong.
//!
//! Layout of the scratch: a kernel walk writes backwards and ends at `PATH_HALF`; a user suffix is
//! put at `PATH_HALF + 1`, with `/` joining them at `PATH_HALF`. User strings are read into the
//! record first: an absolute path or a symlink's text stays there (no walk, no copy), a relative
//! one is copied to the scratch.
use core::ptr::{read_volatile, write_volatile};

use aya_ebpf::helpers::generated::{
    bpf_probe_read_kernel, bpf_probe_read_kernel_str, bpf_probe_read_user_str,
};
use verifier_common::{PATH_CAP, PathInfo, origin};

use crate::{
    kernel::{
        DentryBlock, INLINE_NAME_BYTES, file_identity, file_of_fd, inode_identity, load_u64,
        nonnull, off, path_parts, read_dentry_block, read_ptr,
    },
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
    /// The path is a user string already at its place in the record (see [`Request::in_record`]):
    /// nothing to copy.
    pub in_record: bool,
}

impl Built {
    pub const NONE: Built = Built {
        start: 0,
        end: 0,
        origin: origin::NONE,
        truncated: false,
        file: None,
        in_record: false,
    };
}

/// Loop-carried state of a walk, kept in map memory (not registers) on purpose: the verifier does
/// not track values in map memory, so every iteration looks alike to it and is pruned, instead of
/// each distinct write offset being explored separately (which exceeds the 1M-instruction limit).
#[repr(C)]
pub struct WalkState {
    pub at: u32,
    pub truncated: u32,
    /// The dentry being walked (see `kernel::DentryBlock`).
    pub block: DentryBlock,
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
    let mut mount = vfsmnt - off!(mount_mnt);
    let mut mnt_root = read_ptr(vfsmnt + off!(vfsmount_mnt_root))?;
    // SAFETY: a field of the map slot above.
    let block = unsafe { &raw mut (*state).block };
    for _ in 0..MAX_WALK {
        if !read_dentry_block(block, dentry) {
            return None;
        }
        // SAFETY: just written by the read above.
        let head = unsafe { (*block).head };
        let parent = head.parent;
        if parent == 0 {
            return None;
        }
        if dentry == mnt_root || dentry == parent {
            let mount_parent = read_ptr(mount + off!(mount_parent))?;
            if dentry != mnt_root || mount == mount_parent {
                // SAFETY: as above.
                unsafe { write_volatile(&raw mut (*state).truncated, 0) };
                break;
            }
            dentry = read_ptr(mount + off!(mount_mountpoint))?;
            mount = mount_parent;
            mnt_root = read_ptr(mount + off!(mount_mnt) + off!(vfsmount_mnt_root))?;
            continue;
        }
        let (name, len) = (head.name, head.len);
        if name == 0 {
            return None;
        }
        // SAFETY: as above.
        let end = unsafe { read_volatile(&raw const (*state).at) };
        if len > NAME_MASK || len + 1 > end {
            break;
        }
        let at = end - (len + 1);
        // SAFETY: as above.
        unsafe { write_volatile(&raw mut (*state).at, at) };
        let inline = name == dentry + off!(dentry_inline_name);
        if inline && len < INLINE_NAME_BYTES && end >= INLINE_NAME_BYTES {
            place_inline_name(scratch, block, end, len);
        } else {
            // SAFETY: offset and size are masked inside the 2 * PATH_HALF scratch.
            unsafe {
                bpf_probe_read_kernel(
                    scratch.add(((at + 1) & HALF_MASK) as usize).cast(),
                    len & NAME_MASK,
                    name as *const _,
                );
            }
        }
        // SAFETY: as above.
        unsafe { *scratch.add((at & HALF_MASK) as usize) = b'/' };
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

/// Puts an inline name of `len` (< `INLINE_NAME_BYTES`) bytes, already read with its dentry's
/// block, so that it ends at `end` in the scratch: as the `INLINE_NAME_BYTES` of the block that
/// end with the name, copied in words. The bytes before the name land in the part of the scratch
/// not written yet (the walk writes backwards), which the walk overwrites or leaves outside the
/// path. No helper call is needed: the copy compiles to 32 byte loads and stores (the BPF target
/// splits misaligned words), which still costs less than a `bpf_probe_read_kernel` of the name.
#[inline(always)]
fn place_inline_name(scratch: *mut u8, block: *const DentryBlock, end: u32, len: u32) {
    const WORDS: usize = (INLINE_NAME_BYTES / 8) as usize;
    let name_end =
        core::mem::offset_of!(DentryBlock, inline_name) as u32 + (len & (INLINE_NAME_BYTES - 1));
    let from = name_end - INLINE_NAME_BYTES;
    let to = (end - INLINE_NAME_BYTES) & HALF_MASK;
    for word in 0..WORDS {
        // SAFETY: `from` + 32 stays inside the block and `to` + 32 inside the scratch (both
        // bounded by the masks above).
        unsafe {
            let value = core::ptr::read_unaligned(
                block
                    .cast::<u8>()
                    .add(from as usize + 8 * word)
                    .cast::<u64>(),
            );
            core::ptr::write_unaligned(scratch.add(to as usize + 8 * word).cast::<u64>(), value);
        }
    }
}

/// What to assemble: an optional kernel `struct path` to walk (`base`), and whether the user
/// string already read to `PATH_HALF + 1` (`user_len` bytes) follows it. Requests are built first
/// and walked in one place, so each program has one walk per path it reports (which keeps the
/// verifier's work, and the load time, small).
#[derive(Clone, Copy)]
pub struct Request {
    /// Address of a `struct path` to walk, or 0.
    pub base: u64,
    /// Without `base`: a (dentry, vfsmount) pair to walk (LSM hooks get a parent directory's
    /// `struct path` and a child dentry), or 0.
    pub dentry: u64,
    pub mnt: u64,
    /// Bytes of user string at `PATH_HALF + 1`.
    pub user_len: u32,
    pub user_truncated: bool,
    /// The user string is joined to the walked base with `/`.
    pub join: bool,
    pub origin: u8,
    pub file: Option<(u64, u64)>,
    /// The user string is the whole path and was read straight into the record's data area (an
    /// absolute path, a symlink's text), not into the scratch: no walk and no copy.
    pub in_record: bool,
}

impl Request {
    pub const NONE: Request = Request {
        base: 0,
        dentry: 0,
        mnt: 0,
        user_len: 0,
        user_truncated: false,
        join: false,
        origin: origin::NONE,
        file: None,
        in_record: false,
    };

    /// The kernel path of an open file, with the file's identity.
    #[inline(always)]
    pub fn open_file(file: u64) -> Request {
        Request {
            base: file + off!(file_path),
            origin: origin::KERNEL,
            file: file_identity(file),
            ..Request::NONE
        }
    }

    /// The kernel path of `dentry` under the mount `mnt` (identity from the dentry's inode).
    #[inline(always)]
    pub fn dentry(dentry: u64, mnt: u64) -> Request {
        Request {
            dentry,
            mnt,
            origin: origin::KERNEL,
            ..Request::NONE
        }
    }

    /// The kernel path of a `struct path` at `path` (identity from its dentry's inode).
    #[inline(always)]
    pub fn path(path: u64) -> Request {
        Request {
            base: path,
            origin: origin::KERNEL,
            ..Request::NONE
        }
    }
}

/// Assembles a request in the scratch (the one path walk).
#[inline(always)]
pub fn assemble(scratch: *mut u8, request: &Request) -> Built {
    let half = PATH_HALF as u32;
    let user_end = half + 1 + (request.user_len & HALF_MASK);
    if request.origin == origin::NONE {
        return Built::NONE;
    }
    if request.base == 0 && request.dentry == 0 {
        return Built {
            start: half + 1,
            end: user_end,
            origin: request.origin,
            truncated: request.user_truncated,
            file: None,
            in_record: request.in_record,
        };
    }
    let parts = if request.base != 0 {
        path_parts(request.base)
    } else {
        Some((request.dentry, request.mnt))
    };
    let walked = parts.and_then(|(dentry, vfsmnt)| {
        let (start, truncated) = walk(scratch, dentry, vfsmnt)?;
        Some((start, truncated, dentry))
    });
    let Some((start, truncated, dentry)) = walked else {
        return if request.join {
            Built {
                start: half + 1,
                end: user_end,
                origin: origin::USER_UNRESOLVED,
                truncated: request.user_truncated,
                file: None,
                in_record: false,
            }
        } else {
            Built::NONE
        };
    };
    if request.join {
        // SAFETY: PATH_HALF is inside the scratch.
        unsafe { *scratch.add(PATH_HALF) = b'/' };
        return Built {
            start,
            end: user_end,
            origin: request.origin,
            truncated: truncated || request.user_truncated,
            file: None,
            in_record: false,
        };
    }
    let file = match request.file {
        Some(file) => Some(file),
        None => read_ptr(dentry + off!(dentry_inode)).and_then(inode_identity),
    };
    if start == half {
        // The root itself: "/" at PATH_HALF.
        // SAFETY: PATH_HALF is inside the scratch.
        unsafe { *scratch.add(PATH_HALF) = b'/' };
        Built {
            start,
            end: half + 1,
            origin: request.origin,
            truncated,
            file,
            in_record: false,
        }
    } else {
        Built {
            start,
            end: half,
            origin: request.origin,
            truncated,
            file,
            in_record: false,
        }
    }
}

/// The kernel path of an open file.
#[inline(always)]
pub fn file_path(scratch: *mut u8, file: u64) -> Built {
    assemble(scratch, &Request::open_file(file))
}

/// The `struct path` address a dirfd stands for: the open file's path, or the cwd for AT_FDCWD.
#[inline(always)]
fn dir_path_of(task: u64, dirfd: i64) -> Option<u64> {
    if dirfd == AT_FDCWD {
        nonnull(load_u64(task, off!(task_fs))).map(|fs| fs + off!(fs_pwd))
    } else {
        let file = file_of_fd(task, dirfd)?;
        Some(file + off!(file_path))
    }
}

/// Where a record's path goes: the record's data area and the offset in it.
#[derive(Clone, Copy)]
pub struct Slot {
    pub data: *mut u8,
    pub at: u32,
}

impl Slot {
    #[inline(always)]
    fn start(self) -> *mut u8 {
        // SAFETY: the offset is masked below PATH_CAP, inside the 2 * PATH_CAP data area.
        unsafe { self.data.add((self.at & CAP_MASK) as usize) }
    }
}

/// Reads a user string straight into the record at `slot`: (length without NUL, possibly cut), or
/// `None`. The record is the string's final place when it is a whole path (absolute, or a
/// symlink's text), which saves a copy; otherwise it is copied to the scratch.
#[inline(always)]
fn read_user(slot: Slot, user: u64) -> Option<(u32, bool)> {
    // SAFETY: the destination starts below PATH_CAP in the 2 * PATH_CAP data area and the size is
    // less than PATH_CAP.
    let got = unsafe {
        bpf_probe_read_user_str(
            slot.start().cast(),
            (PATH_HALF - 1) as u32,
            user as *const _,
        )
    };
    string_read(got)
}

/// Copies a user string of `len` bytes read into the record at `slot` to `PATH_HALF + 1` in the
/// scratch, where a walked base can be put before it.
#[inline(always)]
fn user_to_scratch(scratch: *mut u8, slot: Slot, len: u32) {
    // SAFETY: the destination is the scratch's second half and the size (a string read by
    // `read_user`, under PATH_HALF - 1 bytes) fits in it; the source is inside the data area.
    unsafe {
        bpf_probe_read_kernel(
            scratch.add(PATH_HALF + 1).cast(),
            len & HALF_MASK,
            slot.start().cast(),
        );
    }
}

/// Reads a kernel string to `PATH_HALF + 1` in the scratch: (length without NUL, possibly cut), or
/// `None`.
#[inline(always)]
fn read_kernel(scratch: *mut u8, string: u64) -> Option<(u32, bool)> {
    // SAFETY: as above.
    let got = unsafe {
        bpf_probe_read_kernel_str(
            scratch.add(PATH_HALF + 1).cast(),
            (PATH_HALF - 1) as u32,
            string as *const _,
        )
    };
    string_read(got)
}

/// (length without NUL, possibly cut) of a string read returning `got`.
#[inline(always)]
fn string_read(got: i64) -> Option<(u32, bool)> {
    if got <= 0 {
        return None;
    }
    Some((
        (got as u32 - 1) & HALF_MASK,
        got as u32 >= (PATH_HALF - 1) as u32,
    ))
}

/// A `*at()` path argument: `user` resolved against `dirfd` (or the cwd). A NULL or empty `user`
/// means the dirfd itself (AT_EMPTY_PATH, utimensat(fd, NULL)), reported from the kernel. The
/// string is read into the record at `slot`, where an absolute one stays.
#[inline(always)]
pub fn at_request(scratch: *mut u8, slot: Slot, task: u64, dirfd: i64, user: u64) -> Request {
    let (user_len, user_truncated) = if user == 0 {
        (0, false)
    } else {
        match read_user(slot, user) {
            Some(read) => read,
            None => return Request::NONE,
        }
    };
    if user_len == 0 {
        return match dir_path_of(task, dirfd) {
            Some(base) => Request {
                base,
                origin: origin::KERNEL,
                ..Request::NONE
            },
            None => Request::NONE,
        };
    }
    // SAFETY: the first byte of the string just read.
    let absolute = unsafe { *slot.start() } == b'/';
    let user_only = Request {
        user_len,
        user_truncated,
        ..Request::NONE
    };
    if absolute {
        return Request {
            origin: origin::USER_RESOLVED,
            in_record: true,
            ..user_only
        };
    }
    user_to_scratch(scratch, slot, user_len);
    match dir_path_of(task, dirfd) {
        Some(base) => Request {
            base,
            join: true,
            origin: origin::USER_RESOLVED,
            ..user_only
        },
        None => Request {
            origin: origin::USER_UNRESOLVED,
            ..user_only
        },
    }
}

/// A user string kept verbatim (a symlink's target text), read into the record at `slot`.
#[inline(always)]
pub fn verbatim_request(slot: Slot, user: u64) -> Request {
    match read_user(slot, user) {
        Some((user_len, user_truncated)) => Request {
            user_len,
            user_truncated,
            origin: origin::USER_UNRESOLVED,
            in_record: true,
            ..Request::NONE
        },
        None => Request::NONE,
    }
}

/// A kernel string kept verbatim (a symlink's target text as the LSM hook sees it).
#[inline(always)]
pub fn verbatim_kernel_request(scratch: *mut u8, string: u64) -> Request {
    verbatim(read_kernel(scratch, string))
}

#[inline(always)]
fn verbatim(read: Option<(u32, bool)>) -> Request {
    match read {
        Some((user_len, user_truncated)) => Request {
            user_len,
            user_truncated,
            origin: origin::USER_UNRESOLVED,
            ..Request::NONE
        },
        None => Request::NONE,
    }
}

/// Copies a built path into a record's data area at `data_at` (unless it is there already: see
/// [`Built::in_record`]); returns its `PathInfo`.
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
    if !built.in_record {
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
    }
    PathInfo {
        len: (len & CAP_MASK) as u16,
        origin: built.origin,
        truncated: truncated as u8,
    }
}
