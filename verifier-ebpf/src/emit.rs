//! Counting and emitting: the per-program counters, the common record header, and the copy of a
//! finished record into the ring buffer (a full ring buffer is counted, never waited on).
use aya_ebpf::{
    bindings::{BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::generated::{bpf_get_current_task_btf, bpf_ktime_get_boot_ns},
};
use verifier_common::{LOSS_SUMMARY_SLOT, ProgramCounters, ProgramId, RecordHeader};

use crate::{
    kernel::{load_u32, load_u64, off},
    maps::{
        COUNTERS, EVENTS, RING_WAKEUP_BYTES, TRANSACTION_MEMBERS, TRANSACTIONS, WAKEUP_PENDING,
    },
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

/// The current task (`struct task_struct *`) as a pointer the verifier knows the type of, so its
/// fields (and the objects they point to) can be loaded directly (see `kernel::load_u64`).
#[inline(always)]
pub fn current_task() -> u64 {
    // SAFETY: helper without preconditions.
    unsafe { bpf_get_current_task_btf() as u64 }
}

/// Fills the header from `task`, the current task (from [`current_task`], which the caller has
/// at hand: every helper call costs). Every field but the time is a direct load from the task,
/// and the transaction map is looked up only while some process is in a transaction: the header
/// is written for every reported operation.
#[inline(always)]
pub fn fill_header(header: &mut RecordHeader, task: u64, kind: u32, program: ProgramId) {
    let tgid = load_u32(task, off!(task_tgid));
    header.kind = kind;
    header.program = program as u32;
    // SAFETY: helper without preconditions.
    header.time_boot_ns = unsafe { bpf_ktime_get_boot_ns() };
    header.pid = tgid;
    header.tid = load_u32(task, off!(task_pid));
    let cred = load_u64(task, off!(task_cred));
    header.uid = load_u32(cred, off!(cred_uid));
    header.euid = load_u32(cred, off!(cred_euid));
    header.ppid = load_u32(load_u64(task, off!(task_real_parent)), off!(task_tgid));
    header.start_time_ns = load_u64(
        load_u64(task, off!(task_group_leader)),
        off!(task_start_boottime),
    );
    let comm = [
        load_u64(task, off!(task_comm)),
        load_u64(task, off!(task_comm) + 8),
    ];
    // SAFETY: two u64 are 16 bytes, the size of `comm`.
    header.comm = unsafe { core::mem::transmute::<[u64; 2], [u8; 16]>(comm) };
    let membership = if any_transaction_member() {
        // SAFETY: the value is copied out at once.
        unsafe { TRANSACTIONS.get(&tgid) }
    } else {
        None
    };
    match membership {
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

/// Whether `TRANSACTIONS` may hold an entry: its member count (see `TRANSACTION_MEMBERS`) is not 0.
#[inline(always)]
fn any_transaction_member() -> bool {
    match TRANSACTION_MEMBERS.get_ptr(0) {
        // SAFETY: a map slot; other CPUs update it atomically, a plain read sees a whole value.
        Some(members) => (unsafe { core::ptr::read_volatile(members) }) != 0,
        None => true,
    }
}

/// Counts an entry about to be added to `TRANSACTIONS` (before it is inserted, so a reader that
/// sees 0 cannot miss it).
#[inline(always)]
pub fn transaction_member_added() {
    add_transaction_members(1);
}

/// Counts an entry removed from `TRANSACTIONS` (after it is gone), or an insert that failed.
#[inline(always)]
pub fn transaction_member_removed() {
    add_transaction_members(u64::MAX);
}

#[inline(always)]
fn add_transaction_members(delta: u64) {
    let Some(members) = TRANSACTION_MEMBERS.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: a map slot of a u64, shared by every CPU: updated with the BPF atomic add, which
    // every kernel with BPF has (`core`'s atomics offer the BPF target no read-modify-write).
    unsafe {
        core::arch::asm!(
            "lock *(u64 *)({slot} + 0) += {delta}",
            slot = in(reg) members,
            delta = in(reg) delta,
        );
    }
}

/// Whether to wake the reader after this record: when the bytes this CPU emitted since its last
/// wakeup reach `RING_WAKEUP_BYTES` (or that is 0). Otherwise the reader drains on its own timer,
/// so a busy host does not pay a wakeup (nor a query of the ring's fill) per record.
#[inline(always)]
fn wakeup_flags(len: u64) -> u64 {
    // SAFETY: volatile read of a static userspace sets before load.
    let threshold = unsafe { core::ptr::read_volatile(&raw const RING_WAKEUP_BYTES) };
    let Some(pending) = WAKEUP_PENDING.get_ptr_mut(0) else {
        return BPF_RB_FORCE_WAKEUP as u64;
    };
    // SAFETY: a per-CPU slot: no other writer runs on this CPU at once.
    let pending = unsafe { &mut *pending };
    *pending += len + RECORD_OVERHEAD;
    if *pending >= threshold {
        *pending = 0;
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
