//! Reading kernel memory: every struct field is at `base + offset`, the offset coming from the
//! running kernel's BTF (`OFFSETS`), so no layout of any one kernel is compiled in. Fields of
//! pointers the verifier knows the type of are loaded directly (`load_*`); the rest are read with
//! `bpf_probe_read_kernel` (`read_*`, and the block reads).
use aya_ebpf::helpers::{bpf_probe_read_kernel, generated};

use crate::maps::OFFSETS;

/// The offset of one field of the kernel-layout table, read so the compiler cannot fold it.
macro_rules! off {
    ($field:ident) => {
        // SAFETY: OFFSETS is a static; a volatile read of one u32 field.
        (unsafe { core::ptr::read_volatile(&raw const crate::maps::OFFSETS.$field) } as u64)
    };
}
pub(crate) use off;

/// Whether userspace filled the offsets table.
#[inline(always)]
pub fn offsets_ready() -> bool {
    // SAFETY: volatile read of a static field.
    unsafe { core::ptr::read_volatile(&raw const OFFSETS.valid) == 1 }
}

#[inline(always)]
pub fn read_u64(addr: u64) -> Option<u64> {
    // SAFETY: bpf_probe_read_kernel tolerates any address.
    unsafe { bpf_probe_read_kernel(addr as *const u64).ok() }
}

#[inline(always)]
pub fn read_u32(addr: u64) -> Option<u32> {
    // SAFETY: as above.
    unsafe { bpf_probe_read_kernel(addr as *const u32).ok() }
}

#[inline(always)]
pub fn read_u16(addr: u64) -> Option<u16> {
    // SAFETY: as above.
    unsafe { bpf_probe_read_kernel(addr as *const u16).ok() }
}

#[inline(always)]
pub fn read_u8(addr: u64) -> Option<u8> {
    // SAFETY: as above.
    unsafe { bpf_probe_read_kernel(addr as *const u8).ok() }
}

/// A field of a kernel object whose pointer the verifier knows the BTF type of (a tracing
/// program's typed argument, `bpf_get_current_task_btf()`, or a pointer field loaded from one),
/// loaded directly: the verifier checks the access against the kernel's BTF and the JIT turns it
/// into a plain load that reads 0 on a fault. The offset must be a load-time constant (`off!`).
#[inline(always)]
pub fn load_u64(object: u64, offset: u64) -> u64 {
    // SAFETY: a fault-tolerant load (BPF_PROBE_MEM) of a typed kernel pointer.
    unsafe { core::ptr::read_volatile((object + offset) as *const u64) }
}

#[inline(always)]
pub fn load_u32(object: u64, offset: u64) -> u32 {
    // SAFETY: as above.
    unsafe { core::ptr::read_volatile((object + offset) as *const u32) }
}

/// A non-null pointer field.
#[inline(always)]
pub fn read_ptr(addr: u64) -> Option<u64> {
    match read_u64(addr) {
        Some(0) | None => None,
        some => some,
    }
}

/// A dentry's `d_parent` and `d_name` (`struct qstr`: hash, len, name), read at once: they are
/// adjacent in every kernel, and userspace checks the running kernel's layout before load.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DentryHead {
    pub parent: u64,
    pub hash: u32,
    pub len: u32,
    pub name: u64,
}

/// Bytes of the inline name buffer (`d_iname`, `d_shortname` since 6.14) read with the head: the
/// smallest size any kernel gives it. Shorter names stored inline need no read of their own.
pub const INLINE_NAME_BYTES: u32 = 32;

/// A dentry from `d_parent` through the start of its inline name buffer, read at once: the
/// head, `d_inode`, then `INLINE_NAME_BYTES` of the inline name (userspace checks the layout).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DentryBlock {
    pub head: DentryHead,
    pub inode: u64,
    pub inline_name: [u8; INLINE_NAME_BYTES as usize],
}

/// Reads the block of `dentry` into `block` (map memory); false if it cannot be read.
#[inline(always)]
pub fn read_dentry_block(block: *mut DentryBlock, dentry: u64) -> bool {
    let at = dentry + off!(dentry_parent);
    // SAFETY: bpf_probe_read_kernel tolerates any source address; the destination is
    // `size_of::<DentryBlock>()` bytes of map memory.
    unsafe {
        generated::bpf_probe_read_kernel(
            block.cast(),
            core::mem::size_of::<DentryBlock>() as u32,
            at as *const _,
        ) == 0
    }
}

/// `task->files->fdt->fd[fd]` of the current task (`task` from `emit::current_task`: typed, so
/// the chain to the fd array is loaded directly; the array slot is read).
#[inline(always)]
pub fn file_of_fd(task: u64, fd: i64) -> Option<u64> {
    if fd < 0 {
        return None;
    }
    let files = nonnull(load_u64(task, off!(task_files)))?;
    let fdt = nonnull(load_u64(files, off!(files_fdt)))?;
    let max = load_u32(fdt, off!(fdtable_max_fds)) as i64;
    if fd >= max {
        return None;
    }
    let array = nonnull(load_u64(fdt, off!(fdtable_fd)))?;
    read_ptr(array + (fd as u64) * 8)
}

/// `Some(pointer)` unless it is null.
#[inline(always)]
pub fn nonnull(pointer: u64) -> Option<u64> {
    (pointer != 0).then_some(pointer)
}

/// (kernel device, inode number) of a file object.
#[inline(always)]
pub fn file_identity(file: u64) -> Option<(u64, u64)> {
    let inode = read_ptr(file + off!(file_inode))?;
    inode_identity(inode)
}

#[inline(always)]
pub fn inode_identity(inode: u64) -> Option<(u64, u64)> {
    let ino = read_u64(inode + off!(inode_ino))?;
    let sb = read_ptr(inode + off!(inode_sb))?;
    let dev = read_u32(sb + off!(sb_dev))?;
    Some((dev as u64, ino))
}

/// `struct path`: `mnt`, `dentry` (userspace checks the kernel's layout before load).
#[repr(C)]
#[derive(Clone, Copy)]
struct KernelPath {
    mnt: u64,
    dentry: u64,
}

/// (dentry, vfsmount) of a `struct path` at `path`, read at once.
#[inline(always)]
pub fn path_parts(path: u64) -> Option<(u64, u64)> {
    // SAFETY: bpf_probe_read_kernel tolerates any address.
    let parts = unsafe { bpf_probe_read_kernel(path as *const KernelPath) }.ok()?;
    if parts.mnt == 0 || parts.dentry == 0 {
        return None;
    }
    Some((parts.dentry, parts.mnt))
}
