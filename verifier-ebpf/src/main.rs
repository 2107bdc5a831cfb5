//! Kernel programs of the verifier: process lineage and package-transaction marking, file
//! modifications from the syscall tracepoints, and io_uring use. Each probe family lives in its own
//! module under `probes/`; every entry point is a one-line call into it.
#![no_std]
#![no_main]
// The BPF atomic add (`emit::add_transaction_members`) is written as inline assembly.
#![feature(asm_experimental_arch)]

mod emit;
mod kernel;
mod maps;
mod path;
mod probes;

use aya_ebpf::{
    macros::{btf_tracepoint, lsm},
    programs::{BtfTracePointContext, LsmContext},
};

use crate::probes::{file, io_uring, iter, lsm as hooks, process};

#[btf_tracepoint(function = "sched_process_exec")]
pub fn sched_process_exec(ctx: BtfTracePointContext) -> i32 {
    run(process::on_exec(&ctx))
}

#[btf_tracepoint(function = "sched_process_fork")]
pub fn sched_process_fork(ctx: BtfTracePointContext) -> i32 {
    run(process::on_fork(&ctx))
}

#[btf_tracepoint(function = "sched_process_exit")]
pub fn sched_process_exit(ctx: BtfTracePointContext) -> i32 {
    run(process::on_exit(&ctx))
}

#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit(ctx: BtfTracePointContext) -> i32 {
    run(file::on_sys_exit(&ctx))
}

#[btf_tracepoint(function = "io_uring_create")]
pub fn io_uring_create(ctx: BtfTracePointContext) -> i32 {
    run(io_uring::on_create(&ctx))
}

#[btf_tracepoint(function = "io_uring_submit_req")]
pub fn io_uring_submit_req(ctx: BtfTracePointContext) -> i32 {
    run(io_uring::on_submit(&ctx))
}

// The LSM backend: file modifications from BPF LSM hooks (they only record: always 0, allow).

#[lsm(hook = "file_open")]
pub fn lsm_file_open(ctx: LsmContext) -> i32 {
    run(hooks::on_file_open(&ctx))
}

#[lsm(hook = "file_truncate")]
pub fn lsm_file_truncate(ctx: LsmContext) -> i32 {
    run(hooks::on_file_truncate(&ctx))
}

#[lsm(hook = "path_truncate")]
pub fn lsm_path_truncate(ctx: LsmContext) -> i32 {
    run(hooks::on_path_truncate(&ctx))
}

#[lsm(hook = "path_rename")]
pub fn lsm_path_rename(ctx: LsmContext) -> i32 {
    run(hooks::on_path_rename(&ctx))
}

#[lsm(hook = "path_unlink")]
pub fn lsm_path_unlink(ctx: LsmContext) -> i32 {
    run(hooks::on_path_unlink(&ctx))
}

#[lsm(hook = "path_rmdir")]
pub fn lsm_path_rmdir(ctx: LsmContext) -> i32 {
    run(hooks::on_path_rmdir(&ctx))
}

#[lsm(hook = "path_link")]
pub fn lsm_path_link(ctx: LsmContext) -> i32 {
    run(hooks::on_path_link(&ctx))
}

#[lsm(hook = "path_symlink")]
pub fn lsm_path_symlink(ctx: LsmContext) -> i32 {
    run(hooks::on_path_symlink(&ctx))
}

#[lsm(hook = "path_mknod")]
pub fn lsm_path_mknod(ctx: LsmContext) -> i32 {
    run(hooks::on_path_mknod(&ctx))
}

#[lsm(hook = "path_chmod")]
pub fn lsm_path_chmod(ctx: LsmContext) -> i32 {
    run(hooks::on_path_chmod(&ctx))
}

#[lsm(hook = "path_chown")]
pub fn lsm_path_chown(ctx: LsmContext) -> i32 {
    run(hooks::on_path_chown(&ctx))
}

#[lsm(hook = "inode_setxattr")]
pub fn lsm_inode_setxattr(ctx: LsmContext) -> i32 {
    run(hooks::on_inode_setxattr(&ctx))
}

#[lsm(hook = "inode_removexattr")]
pub fn lsm_inode_removexattr(ctx: LsmContext) -> i32 {
    run(hooks::on_inode_removexattr(&ctx))
}

#[lsm(hook = "inode_setattr")]
pub fn lsm_inode_setattr(ctx: LsmContext) -> i32 {
    run(hooks::on_inode_setattr(&ctx))
}

/// `inode_setattr` with the older parameter list (no idmap); userspace loads one of the two.
#[lsm(hook = "inode_setattr")]
pub fn lsm_inode_setattr_2(ctx: LsmContext) -> i32 {
    run(hooks::on_inode_setattr_2(&ctx))
}

/// `iter/task_file`: files open for write (no aya-ebpf macro exists for iterators; this is what
/// the macros generate for other program types).
#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/task_file")]
pub fn task_file_writers(ctx: *mut core::ffi::c_void) -> i32 {
    run(iter::on_task_file(ctx))
}

/// Tracing programs' return value is ignored, and LSM programs return 0 (allow); every outcome
/// was counted where it happened.
#[inline(always)]
fn run(_outcome: Option<()>) -> i32 {
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
