//! Process lineage and package-transaction marking: exec, fork (new thread groups) and exit.
//!
//! A process that execs a verified package manager (by device and inode) becomes a transaction
//! root; forked descendants inherit the transaction one level deeper; exec keeps membership; the
//! transaction ends when its root exits.
use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid,
        generated::{bpf_get_current_cgroup_id, bpf_get_smp_processor_id, bpf_probe_read_user},
    },
    programs::BtfTracePointContext,
};
use verifier_common::{
    CMDLINE_CAP, EXEC_FIXED, ExecRecord, ExitRecord, FileKey, ForkRecord, PATH_CAP, ProgramId,
    RecordHeader, TxnState, kind,
};

use crate::{
    emit::{
        Count, count, current_task, fill_header, submit, submit_value, transaction_member_added,
        transaction_member_removed,
    },
    kernel::{off, offsets_ready, read_ptr, read_u32, read_u64},
    maps::{PACKAGE_MANAGERS, PATH_SCRATCH, RECORD_SCRATCH, TRANSACTION_SEQ, TRANSACTIONS},
    path::{copy_into, file_path},
};

const CMDLINE_MASK: u64 = (CMDLINE_CAP as u64) - 1;

/// `sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)`.
pub fn on_exec(ctx: &BtfTracePointContext) -> Option<()> {
    let program = ProgramId::Exec;
    if !offsets_ready() {
        return None;
    }
    count(program, Count::Total);
    let task: u64 = ctx.arg(0);
    let bprm: u64 = ctx.arg(2);
    let record = RECORD_SCRATCH.get_ptr_mut(0)?.cast::<ExecRecord>();
    let scratch = PATH_SCRATCH.get_ptr_mut(0)?.cast::<u8>();
    // SAFETY: the scratch slot is at least as large as an ExecRecord.
    let record = unsafe { &mut *record };

    let exe_file = read_ptr(bprm + off!(binprm_file))?;
    let built = file_path(scratch, exe_file);
    let (dev, ino) = built.file.unwrap_or((0, 0));
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let starts = begin_transaction_if_package_manager(tgid, dev, ino);

    fill_header(&mut record.header, current_task(), kind::EXEC, program);
    record.exe_dev = dev;
    record.exe_ino = ino;
    // SAFETY: helper without preconditions.
    record.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    record.starts_transaction = starts as u8;
    let data = (&raw mut record.data).cast::<u8>();
    record.exe = copy_into(data, 0, scratch, &built);
    if record.exe.truncated != 0 {
        count(program, Count::PathTruncated);
    }
    let exe_len = record.exe.len as u64 & (PATH_CAP as u64 - 1);
    let (cmdline_len, cmdline_truncated) = read_cmdline(task, data, exe_len);
    record.cmdline_len = cmdline_len as u16;
    record.cmdline_truncated = cmdline_truncated as u8;
    let used = (exe_len & (PATH_CAP as u64 - 1)) + (cmdline_len & CMDLINE_MASK);
    submit(
        program,
        (record as *const ExecRecord).cast(),
        EXEC_FIXED + used as usize,
    );
    Some(())
}

/// Copies `mm->arg_start..arg_end` (user memory of the new image) after the exe path.
#[inline(always)]
fn read_cmdline(task: u64, data: *mut u8, at: u64) -> (u64, bool) {
    let Some(mm) = read_ptr(task + off!(task_mm)) else {
        return (0, false);
    };
    let (Some(start), Some(end)) = (
        read_u64(mm + off!(mm_arg_start)),
        read_u64(mm + off!(mm_arg_end)),
    ) else {
        return (0, false);
    };
    if end <= start {
        return (0, false);
    }
    let mut len = end - start;
    let truncated = len > CMDLINE_MASK;
    if truncated {
        len = CMDLINE_MASK;
    }
    // SAFETY: offset masked to the path part, size to the command-line part of the data area.
    let ret = unsafe {
        bpf_probe_read_user(
            data.add((at & (PATH_CAP as u64 - 1)) as usize).cast(),
            (len & CMDLINE_MASK) as u32,
            start as *const _,
        )
    };
    if ret < 0 {
        (0, true)
    } else {
        (len & CMDLINE_MASK, truncated)
    }
}

/// Starts a transaction when `(dev, ino)` is a trusted package manager and the process is not
/// already inside one (a package manager run by a package manager stays in the outer one).
#[inline(always)]
fn begin_transaction_if_package_manager(tgid: u32, dev: u64, ino: u64) -> bool {
    let key = FileKey { dev, ino };
    // SAFETY: only presence is checked.
    if unsafe { PACKAGE_MANAGERS.get(&key) }.is_none() {
        return false;
    }
    // SAFETY: only presence is checked.
    if unsafe { TRANSACTIONS.get(&tgid) }.is_some() {
        return false;
    }
    let Some(id) = next_transaction_id() else {
        return false;
    };
    let state = TxnState {
        id,
        depth: 0,
        root_tgid: tgid,
    };
    transaction_member_added();
    if TRANSACTIONS.insert(&tgid, &state, 0).is_err() {
        transaction_member_removed();
        count(ProgramId::Exec, Count::Error);
        return false;
    }
    true
}

/// A transaction id unique per boot: the CPU number in the top 16 bits, that CPU's sequence below
/// (the BPF target has no atomic fetch-add; a per-CPU counter needs none).
#[inline(always)]
fn next_transaction_id() -> Option<u64> {
    let seq = TRANSACTION_SEQ.get_ptr_mut(0)?;
    // SAFETY: a per-CPU slot; helper without preconditions.
    unsafe {
        *seq += 1;
        let cpu = bpf_get_smp_processor_id() as u64;
        Some(((cpu + 1) << 48) | (*seq & 0xffff_ffff_ffff))
    }
}

/// `sched_process_fork(struct task_struct *parent, struct task_struct *child)`.
pub fn on_fork(ctx: &BtfTracePointContext) -> Option<()> {
    let program = ProgramId::Fork;
    if !offsets_ready() {
        return None;
    }
    let child: u64 = ctx.arg(1);
    let child_pid = read_u32(child + off!(task_pid))?;
    let child_tgid = read_u32(child + off!(task_tgid))?;
    if child_pid != child_tgid {
        // A new thread: same process, nothing to record.
        return None;
    }
    count(program, Count::Total);
    let parent_tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: the value is copied out at once.
    if let Some(txn) = unsafe { TRANSACTIONS.get(&parent_tgid) } {
        let inherited = TxnState {
            id: txn.id,
            depth: txn.depth + 1,
            root_tgid: txn.root_tgid,
        };
        transaction_member_added();
        if TRANSACTIONS.insert(&child_tgid, &inherited, 0).is_err() {
            transaction_member_removed();
            count(program, Count::Error);
        }
    }
    let mut record = ForkRecord {
        header: empty_header(),
        child_pid,
        _pad: 0,
        child_start_time_ns: read_u64(child + off!(task_start_boottime)).unwrap_or(0),
    };
    fill_header(&mut record.header, current_task(), kind::FORK, program);
    submit_value(program, &record);
    Some(())
}

/// `sched_process_exit(struct task_struct *p, ...)`: only the task argument is used (6.12 has one
/// argument, 6.18 two). Reported once per thread group, when its last thread exits.
pub fn on_exit(ctx: &BtfTracePointContext) -> Option<()> {
    let program = ProgramId::Exit;
    if !offsets_ready() {
        return None;
    }
    let task: u64 = ctx.arg(0);
    let pid_tgid = bpf_get_current_pid_tgid();
    let signal = read_ptr(task + off!(task_signal))?;
    let live = read_u32(signal + off!(signal_live))?;
    if live != 0 {
        return None;
    }
    count(program, Count::Total);
    let tgid = (pid_tgid >> 32) as u32;
    let exit_code = read_u32(task + off!(task_exit_code)).unwrap_or(0) as i32;
    let mut record = ExitRecord {
        header: empty_header(),
        exit_code,
        ends_transaction: 0,
        _pad: [0; 3],
    };
    fill_header(&mut record.header, current_task(), kind::EXIT, program);
    // SAFETY: the value is copied out at once.
    if let Some(txn) = unsafe { TRANSACTIONS.get(&tgid) } {
        record.ends_transaction = (txn.root_tgid == tgid) as u8;
        if TRANSACTIONS.remove(&tgid).is_ok() {
            transaction_member_removed();
        }
    }
    submit_value(program, &record);
    Some(())
}

/// A zeroed header (every byte of a record is initialised before it is sent).
#[inline(always)]
pub fn empty_header() -> RecordHeader {
    RecordHeader {
        kind: 0,
        program: 0,
        time_boot_ns: 0,
        pid: 0,
        tid: 0,
        ppid: 0,
        uid: 0,
        euid: 0,
        txn_depth: 0,
        start_time_ns: 0,
        txn_id: 0,
        comm: [0; 16],
    }
}
