//! Counting and emitting: the per-program counters, the common record header, and the copy of a
//! finished record into the ring buffer (a full ring buffer is counted, never waited on).
use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        generated::{bpf_get_current_task, bpf_ktime_get_boot_ns},
    },
};
use verifier_common::{LOSS_SUMMARY_SLOT, ProgramCounters, ProgramId, RecordHeader};

use crate::{
    kernel::{off, read_ptr, read_u32, read_u64},
    maps::{COUNTERS, EVENTS, RING_WAKEUP_BYTES, TRANSACTIONS},
};

/// Which counter to bump.
#[derive(Clone, Copy)]
pub enum Count {
    Total,
    Emitted,
    Ignored,
    RingbufFull,
    PathTruncated,
    Error,
}

#[inline(always)]
pub fn count(program: ProgramId, what: Count) {
    let Some(counters) = COUNTERS.get_ptr_mut(program as u32) else {
        return;
    };
    // SAFETY: a per-CPU slot: no other writer runs on this CPU for this program at once.
    let counters: &mut ProgramCounters = unsafe { &mut *counters };
    let slot = match what {
        Count::Total => &mut counters.total,
        Count::Emitted => &mut counters.emitted,
        Count::Ignored => &mut counters.ignored,
        Count::RingbufFull => &mut counters.ringbuf_full,
        Count::PathTruncated => &mut counters.path_truncated,
        Count::Error => &mut counters.errors,
    };
    *slot += 1;
    if matches!(what, Count::RingbufFull | Count::Error) {
        count_loss_summary(what);
    }
}

/// Bumps the loss summary slot (see `LOSS_SUMMARY_SLOT`).
#[inline(always)]
fn count_loss_summary(what: Count) {
    let Some(summary) = COUNTERS.get_ptr_mut(LOSS_SUMMARY_SLOT) else {
        return;
    };
    // SAFETY: a per-CPU slot: no other writer runs on this CPU at once.
    let summary: &mut ProgramCounters = unsafe { &mut *summary };
    if matches!(what, Count::RingbufFull) {
        summary.ringbuf_full += 1;
    } else {
        summary.errors += 1;
    }
}

/// The current task (`struct task_struct *`).
#[inline(always)]
pub fn current_task() -> u64 {
    // SAFETY: helper without preconditions.
    unsafe { bpf_get_current_task() }
}

/// Fills the header from the current task.
#[inline(always)]
pub fn fill_header(header: &mut RecordHeader, kind: u32, program: ProgramId) {
    let task = current_task();
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    header.kind = kind;
    header.program = program as u32;
    // SAFETY: helper without preconditions.
    header.time_boot_ns = unsafe { bpf_ktime_get_boot_ns() };
    header.pid = tgid;
    header.tid = pid_tgid as u32;
    header.uid = bpf_get_current_uid_gid() as u32;
    header.euid = read_ptr(task + off!(task_cred))
        .and_then(|cred| read_u32(cred + off!(cred_euid)))
        .unwrap_or(u32::MAX);
    header.ppid = read_ptr(task + off!(task_real_parent))
        .and_then(|parent| read_u32(parent + off!(task_tgid)))
        .unwrap_or(0);
    header.start_time_ns = read_ptr(task + off!(task_group_leader))
        .and_then(|leader| read_u64(leader + off!(task_start_boottime)))
        .unwrap_or(0);
    header.comm = bpf_get_current_comm().unwrap_or([0; 16]);
    // SAFETY: the value is copied out at once.
    match unsafe { TRANSACTIONS.get(&tgid) } {
        Some(txn) => {
            header.txn_id = txn.id;
            header.txn_depth = txn.depth;
        }
        None => {
            header.txn_id = 0;
            header.txn_depth = 0;
        }
    }
}

/// Whether to wake the reader after this record: only when it takes the waiting bytes across
/// `RING_WAKEUP_BYTES` (or that is 0). Above the threshold the reader is awake already or drains
/// on its own timer, so a reader that falls behind is not sent a wakeup per record.
#[inline(always)]
fn wakeup_flags(len: u64) -> u64 {
    // SAFETY: volatile read of a static userspace sets before load.
    let threshold = unsafe { core::ptr::read_volatile(&raw const RING_WAKEUP_BYTES) };
    let waiting = EVENTS.query(BPF_RB_AVAIL_DATA as u64);
    if threshold == 0 || (waiting < threshold && waiting + len + RECORD_OVERHEAD >= threshold) {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

/// Ring-buffer header per record (`BPF_RINGBUF_HDR_SZ`), before rounding to 8 bytes.
const RECORD_OVERHEAD: u64 = 8;

/// Copies `len` bytes at `record` into the ring buffer, counting the outcome.
#[inline(always)]
pub fn submit(program: ProgramId, record: *const u8, len: usize) {
    // SAFETY: the caller bounds `len` within the object `record` points into.
    let bytes = unsafe { core::slice::from_raw_parts(record, len) };
    match EVENTS.output(bytes, wakeup_flags(len as u64)) {
        Ok(()) => count(program, Count::Emitted),
        Err(_) => count(program, Count::RingbufFull),
    }
}

/// Submits a small fixed-size record built on the stack.
#[inline(always)]
pub fn submit_value<T>(program: ProgramId, record: &T) {
    match EVENTS.output(record, wakeup_flags(core::mem::size_of::<T>() as u64)) {
        Ok(()) => count(program, Count::Emitted),
        Err(_) => count(program, Count::RingbufFull),
    }
}
