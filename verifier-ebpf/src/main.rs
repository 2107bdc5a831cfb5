//! Kernel programs of the verifier: process lineage and package-transaction marking, file
//! modifications from the syscall tracepoints, and io_uring use. Each probe family lives in its own
//! module under `probes/`; every entry point is a one-line call into it.
#![no_std]
#![no_main]

mod emit;
mod kernel;
mod maps;
mod path;
mod probes;

use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};

use crate::probes::{file, io_uring, iter, process};

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

#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter(ctx: BtfTracePointContext) -> i32 {
    run(file::on_sys_enter(&ctx))
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

/// `iter/task_file`: files open for write (no aya-ebpf macro exists for iterators; this is what
/// the macros generate for other program types).
#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/task_file")]
pub fn task_file_writers(ctx: *mut core::ffi::c_void) -> i32 {
    run(iter::on_task_file(ctx))
}

/// Tracing programs' return value is ignored; every outcome was counted where it happened.
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
