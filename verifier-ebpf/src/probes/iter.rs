//! Files open for write right now: an `iter/task_file` program run once at start-up. For every
//! (process, fd) whose file is a regular file opened with write access it writes an
//! `OpenWriterRecord` (kernel path walked like everywhere else) to the iterator's seq file.
use core::ffi::c_void;

use aya_ebpf::helpers::generated::bpf_seq_write;
use verifier_common::{OPEN_WRITER_FIXED, OpenWriterRecord, PATH_CAP};

use crate::{
    kernel::{off, offsets_ready, read_ptr, read_u16, read_u32},
    maps::{PATH_SCRATCH, RECORD_SCRATCH},
    path::{copy_into, file_path},
};

/// `FMODE_WRITE`.
const FMODE_WRITE: u32 = 0x2;
const S_IFMT: u16 = 0o170000;
const S_IFREG: u16 = 0o100000;

/// `struct bpf_iter__task_file { bpf_iter_meta *meta; task_struct *task; u32 fd; file *file; }`
/// (the layout of iterator contexts is fixed by the kernel's BPF ABI).
#[repr(C)]
struct TaskFileContext {
    meta: *const IterMeta,
    task: u64,
    fd: u32,
    file: u64,
}

/// `struct bpf_iter_meta { struct seq_file *seq; ... }`.
#[repr(C)]
struct IterMeta {
    seq: *mut c_void,
}

pub fn on_task_file(ctx: *mut c_void) -> Option<()> {
    if !offsets_ready() {
        return None;
    }
    let ctx = ctx.cast::<TaskFileContext>();
    // SAFETY: the kernel passes a bpf_iter__task_file; the loads are checked by the verifier.
    let (meta, task, fd, file) = unsafe { ((*ctx).meta, (*ctx).task, (*ctx).fd, (*ctx).file) };
    if task == 0 || file == 0 || meta.is_null() {
        return None;
    }
    let f_mode = read_u32(file + off!(file_mode))?;
    if f_mode & FMODE_WRITE == 0 {
        return None;
    }
    let inode = read_ptr(file + off!(file_inode))?;
    if read_u16(inode + off!(inode_mode))? & S_IFMT != S_IFREG {
        return None;
    }
    let record = RECORD_SCRATCH.get_ptr_mut(0)?.cast::<OpenWriterRecord>();
    let scratch = PATH_SCRATCH.get_ptr_mut(0)?.cast::<u8>();
    // SAFETY: the scratch slot is larger than an OpenWriterRecord.
    let record = unsafe { &mut *record };
    let built = file_path(scratch, file);
    let (dev, ino) = built.file.unwrap_or((0, 0));
    record.pid = read_u32(task + off!(task_tgid))?;
    record.fd = fd;
    record.dev = dev;
    record.ino = ino;
    record.f_mode = f_mode;
    record.comm = [0; 16];
    let comm = task + off!(task_comm);
    // SAFETY: reading 16 bytes of task->comm into the record.
    unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_kernel(
            (&raw mut record.comm).cast(),
            16,
            comm as *const c_void,
        );
    }
    let data = (&raw mut record.data).cast::<u8>();
    record.path = copy_into(data, 0, scratch, &built);
    let len = OPEN_WRITER_FIXED as u32 + (record.path.len as u32 & (PATH_CAP as u32 - 1));
    // SAFETY: `seq` is the iterator's seq file; the length is bounded by the record.
    unsafe {
        bpf_seq_write(
            (*meta).seq.cast(),
            (record as *const OpenWriterRecord).cast(),
            len,
        );
    }
    Some(())
}
