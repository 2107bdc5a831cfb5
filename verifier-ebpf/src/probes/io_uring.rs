//! io_uring use: its file operations bypass the syscall hooks, so any process that creates a ring
//! or submits requests is reported (once per process for ring creation, once per process and
//! opcode for submissions) and verdicts about its writes fail closed.
use aya_ebpf::{helpers::bpf_get_current_pid_tgid, programs::BtfTracePointContext};
use verifier_common::{IoUringKey, IoUringRecord, ProgramId, kind};

use crate::{
    emit::{Count, count, current_task, fill_header, submit_value},
    kernel::{off, offsets_ready, read_ptr, read_u8, read_u64},
    maps::IO_URING_SEEN,
    probes::process::empty_header,
};

/// Opcode value used in the throttle key for ring creation.
const CREATE: u32 = 0xffff;

/// `io_uring_create(int fd, void *ctx, u32 sq_entries, u32 cq_entries, u32 flags)`.
pub fn on_create(_ctx: &BtfTracePointContext) -> Option<()> {
    report(ProgramId::IoUringCreate, CREATE)
}

/// `io_uring_submit_req(struct io_kiocb *req)`.
pub fn on_submit(ctx: &BtfTracePointContext) -> Option<()> {
    if !offsets_ready() {
        return None;
    }
    let req: u64 = ctx.arg(0);
    let opcode = read_u8(req + off!(io_kiocb_opcode))?;
    report(ProgramId::IoUringSubmit, opcode as u32)
}

#[inline(always)]
fn report(program: ProgramId, opcode: u32) -> Option<()> {
    if !offsets_ready() {
        return None;
    }
    count(program, Count::Total);
    let task = current_task();
    let start_time_ns = read_ptr(task + off!(task_group_leader))
        .and_then(|leader| read_u64(leader + off!(task_start_boottime)))
        .unwrap_or(0);
    let key = IoUringKey {
        tgid: (bpf_get_current_pid_tgid() >> 32) as u32,
        opcode,
        start_time_ns,
    };
    // SAFETY: only presence is checked.
    if unsafe { IO_URING_SEEN.get(&key) }.is_some() {
        count(program, Count::Ignored);
        return None;
    }
    let _ = IO_URING_SEEN.insert(&key, &1, 0);
    let mut record = IoUringRecord {
        header: empty_header(),
        opcode: opcode as u8,
        has_opcode: (opcode != CREATE) as u8,
        _pad: [0; 6],
    };
    fill_header(&mut record.header, task, kind::IO_URING, program);
    submit_value(program, &record);
    Some(())
}
