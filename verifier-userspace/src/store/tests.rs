//! Store tests: sequences of real-shaped recorder events applied to a store in a temporary
//! directory, then the histories, transactions and gaps the decision engine will read.

use std::{os::unix::fs::PermissionsExt, path::Path};

use tempfile::TempDir;

use super::*;
use crate::{
    config::RecorderConfig,
    events::{
        Actor, Event, ExecEvent, ExitEvent, FileEvent, FileId, FileOp, ForkEvent, IoUringEvent,
        LossEvent, PathOrigin, PreexistingWriterEvent, ReportedPath, TransactionRef,
    },
    protocol::{AlertRef, AlertSource, ChangeKind, Outcome},
};

const BOOT: &str = "11111111-2222-3333-4444-555555555555";
const DEV: u64 = 2049;
const CREATE_EXCLUSIVE: u64 = (libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL) as u64;
const WRITE: u64 = libc::O_WRONLY as u64;

fn recorder() -> RecorderConfig {
    RecorderConfig {
        watched_roots: vec!["/usr/bin".into(), "/etc".into()],
        ..RecorderConfig::default()
    }
}

fn open(dir: &TempDir) -> Store {
    Store::open_for_boot(dir.path(), &recorder(), BOOT).unwrap()
}

fn inode(ino: u64) -> FileId {
    FileId { dev: DEV, ino }
}

fn kernel_path(path: &[u8]) -> ReportedPath {
    ReportedPath {
        bytes: path.to_vec(),
        origin: PathOrigin::Kernel,
        truncated: false,
    }
}

/// A process as the recorder reports it.
#[derive(Clone)]
struct Proc {
    pid: u32,
    start: u64,
    comm: &'static [u8],
    transaction: Option<TransactionRef>,
}

impl Proc {
    fn new(pid: u32, comm: &'static [u8]) -> Self {
        Self {
            pid,
            start: u64::from(pid) * 7,
            comm,
            transaction: None,
        }
    }

    fn in_transaction(mut self, id: u64, depth: u32) -> Self {
        self.transaction = Some(TransactionRef { id, depth });
        self
    }

    fn actor(&self) -> Actor {
        Actor {
            pid: self.pid,
            tid: self.pid,
            ppid: 1,
            uid: 0,
            euid: 0,
            start_time_ns: self.start,
            comm: self.comm.to_vec(),
            transaction: self.transaction,
        }
    }

    fn exec(&self, time: u64, exe: &[u8], exe_ino: u64, cmdline: &[u8], starts: bool) -> Event {
        Event::Exec(ExecEvent {
            time,
            actor: self.actor(),
            exe: kernel_path(exe),
            exe_file: inode(exe_ino),
            argv0: cmdline
                .split(|&byte| byte == 0)
                .next()
                .unwrap_or_default()
                .to_vec(),
            cmdline: cmdline.to_vec(),
            cgroup_id: 1,
            starts_transaction: starts,
        })
    }

    fn file(&self, time: u64, op: FileOp, path: &[u8], file: Option<u64>) -> FileEvent {
        FileEvent {
            time,
            actor: self.actor(),
            op,
            path: kernel_path(path),
            file: file.map(inode),
            flags: 0,
            target: None,
            replaced: None,
        }
    }

    fn write(&self, time: u64, path: &[u8], ino: u64, flags: u64) -> Event {
        Event::File(FileEvent {
            flags,
            ..self.file(time, FileOp::OpenWrite, path, Some(ino))
        })
    }

    fn rename(&self, time: u64, from: &[u8], to: &[u8], ino: u64, replaced: Option<u64>) -> Event {
        Event::File(FileEvent {
            target: Some(kernel_path(to)),
            replaced: replaced.map(inode),
            ..self.file(time, FileOp::Rename, from, Some(ino))
        })
    }

    fn exit(&self, time: u64, status: i32, ends: bool) -> Event {
        Event::Exit(ExitEvent {
            time,
            actor: self.actor(),
            exit_status: status,
            ends_transaction: ends,
        })
    }

    fn fork(&self, time: u64, child: &Proc) -> Event {
        Event::Fork(ForkEvent {
            time,
            parent: self.actor(),
            child_pid: child.pid,
            child_start_time_ns: child.start,
        })
    }
}

fn dpkg() -> Proc {
    Proc::new(500, b"dpkg").in_transaction(7, 0)
}

/// dpkg unpacks `/usr/bin/hello` the way it really does: lock, `.dpkg-new`, rename, exit 0.
fn dpkg_upgrade_events() -> Vec<Event> {
    let dpkg = dpkg();
    vec![
        dpkg.exec(100, b"/usr/bin/dpkg", 1, b"dpkg\0-i\0hello.deb", true),
        dpkg.write(
            110,
            b"/var/lib/dpkg/lock",
            2,
            (libc::O_RDWR | libc::O_CREAT) as u64,
        ),
        dpkg.write(120, b"/usr/bin/hello.dpkg-new", 42, CREATE_EXCLUSIVE),
        dpkg.rename(
            130,
            b"/usr/bin/hello.dpkg-new",
            b"/usr/bin/hello",
            42,
            Some(41),
        ),
        dpkg.exit(140, 0, true),
    ]
}

fn ops(entries: &[HistoryEntry]) -> Vec<(u64, EntryOp)> {
    entries.iter().map(|entry| (entry.time, entry.op)).collect()
}

#[test]
fn dpkg_pattern_is_one_complete_transaction() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    store.apply(&dpkg_upgrade_events()).unwrap();

    let history = store
        .file_history(Path::new("/usr/bin/hello"), Some(inode(42)))
        .unwrap();
    assert_eq!(
        ops(&history.entries),
        vec![
            (120, EntryOp::File(FileOp::OpenWrite)),
            (130, EntryOp::File(FileOp::Rename))
        ]
    );
    assert_eq!(history.start, HistoryStart::Created { time: 120 });
    assert_eq!(history.earliest_relevant, 120);
    assert!(history.incomplete.is_empty(), "{:?}", history.incomplete);
    assert!(history.is_complete());
    assert_eq!(history.replaced_files, vec![inode(41)]);
    assert_eq!(history.recorded_file, Some(inode(42)));
    for entry in &history.entries {
        assert_eq!(
            entry.writer.exe.as_ref().unwrap().as_bytes(),
            b"/usr/bin/dpkg"
        );
        assert_eq!(entry.writer.exe_file, Some(inode(1)));
        assert_eq!(
            entry.writer.transaction,
            Some(TransactionRef { id: 7, depth: 0 })
        );
        assert_eq!(entry.writer.boot, BOOT);
    }

    let keys = history.transaction_keys();
    assert_eq!(
        keys,
        vec![TransactionKey {
            boot: BOOT.into(),
            id: 7
        }]
    );
    let record = store.transaction(&keys[0]).unwrap().unwrap();
    assert_eq!(record.root_pid, 500);
    assert_eq!(record.exe.as_bytes(), b"/usr/bin/dpkg");
    assert_eq!(record.cmdline.as_bytes(), b"dpkg\0-i\0hello.deb");
    assert_eq!((record.started, record.ended), (100, Some(140)));
    assert!(record.succeeded());
    assert_eq!(
        record.package_lock.unwrap().as_bytes(),
        b"/var/lib/dpkg/lock"
    );
    assert!(store.transactions_in_flight().unwrap().is_empty());
}

#[test]
fn transaction_in_flight_until_root_exits() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    let events = dpkg_upgrade_events();
    store.apply(&events[..4]).unwrap();
    let running = store.transactions_in_flight().unwrap();
    assert_eq!(running.len(), 1);
    assert!(running[0].is_running());
    store.apply(&events[4..]).unwrap();
    assert!(store.transactions_in_flight().unwrap().is_empty());
}

#[test]
fn forked_child_that_never_execs_is_attributed_to_parent_exe() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    let dpkg = dpkg();
    let child = Proc::new(501, b"dpkg").in_transaction(7, 1);
    store
        .apply(&[
            dpkg.exec(100, b"/usr/bin/dpkg", 1, b"dpkg\0-i\0x.deb", true),
            dpkg.fork(105, &child),
            child.write(110, b"/etc/hello.conf", 50, CREATE_EXCLUSIVE),
        ])
        .unwrap();
    let history = store
        .file_history(Path::new("/etc/hello.conf"), Some(inode(50)))
        .unwrap();
    let writer = &history.entries[0].writer;
    assert_eq!(writer.pid, 501);
    assert_eq!(writer.exe.as_ref().unwrap().as_bytes(), b"/usr/bin/dpkg");
    assert_eq!(writer.transaction, Some(TransactionRef { id: 7, depth: 1 }));
}

#[test]
fn writes_outside_watched_roots_keep_history_when_renamed_in() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    let shell = Proc::new(900, b"sh");
    store
        .apply(&[
            shell.exec(10, b"/usr/bin/bash", 3, b"sh", false),
            shell.write(20, b"/tmp/evil", 77, CREATE_EXCLUSIVE),
            shell.write(30, b"/tmp/evil", 77, WRITE),
        ])
        .unwrap();
    assert_eq!(
        store.stats().unwrap().file_events,
        0,
        "nothing outside roots on disk yet"
    );
    store
        .apply(&[shell.rename(40, b"/tmp/evil", b"/usr/bin/ls", 77, Some(60))])
        .unwrap();
    let history = store
        .file_history(Path::new("/usr/bin/ls"), Some(inode(77)))
        .unwrap();
    assert_eq!(
        ops(&history.entries),
        vec![
            (20, EntryOp::File(FileOp::OpenWrite)),
            (30, EntryOp::File(FileOp::OpenWrite)),
            (40, EntryOp::File(FileOp::Rename))
        ]
    );
    assert_eq!(history.entries[0].source, EntrySource::MemoryCache);
    assert_eq!(history.entries[0].path.path.as_bytes(), b"/tmp/evil");
    assert_eq!(history.entries[2].source, EntrySource::Recorded);
    assert_eq!(history.start, HistoryStart::Created { time: 20 });
    assert!(
        history
            .entries
            .iter()
            .all(|entry| entry.writer.transaction.is_none())
    );
    assert_eq!(history.replaced_files, vec![inode(60)]);
}

#[test]
fn evicted_memory_cache_marks_history_incomplete() {
    let dir = TempDir::new().unwrap();
    let recorder = RecorderConfig {
        memory_cache_entries: 2,
        ..recorder()
    };
    let mut store = Store::open_for_boot(dir.path(), &recorder, BOOT).unwrap();
    let shell = Proc::new(900, b"sh");
    store
        .apply(&[
            shell.write(10, b"/tmp/a", 1001, WRITE),
            shell.write(11, b"/tmp/b", 1002, WRITE),
            shell.write(12, b"/tmp/c", 1003, WRITE),
            // /tmp/a's first write was evicted; this later one is all that is left.
            shell.write(13, b"/tmp/a", 1001, WRITE),
            shell.rename(14, b"/tmp/a", b"/usr/bin/a", 1001, None),
        ])
        .unwrap();
    let history = store
        .file_history(Path::new("/usr/bin/a"), Some(inode(1001)))
        .unwrap();
    assert!(
        history
            .incomplete
            .contains(&Incompleteness::PriorHistoryUnknown { time: 13 }),
        "{:?}",
        history.incomplete
    );
    assert!(!history.is_complete());
}

#[test]
fn write_through_an_unwatched_hard_link_is_recorded() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    let shell = Proc::new(900, b"sh");
    store
        .apply(&[
            Event::File(FileEvent {
                target: Some(kernel_path(b"/var/tmp/h")),
                ..shell.file(10, FileOp::Link, b"/usr/bin/z", Some(70))
            }),
            shell.write(20, b"/var/tmp/h", 70, WRITE),
        ])
        .unwrap();
    // Even after the daemon restarts, the inode stays watched.
    drop(store);
    let mut store = open(&dir);
    store
        .apply(&[shell.write(30, b"/var/tmp/h", 70, WRITE)])
        .unwrap();
    let history = store
        .file_history(Path::new("/usr/bin/z"), Some(inode(70)))
        .unwrap();
    assert_eq!(
        ops(&history.entries),
        vec![
            (10, EntryOp::File(FileOp::Link)),
            (20, EntryOp::File(FileOp::OpenWrite)),
            (30, EntryOp::File(FileOp::OpenWrite))
        ]
    );
    assert_eq!(history.other_names, vec![ByteText(b"/var/tmp/h".to_vec())]);
    assert!(store.stats().unwrap().memory_cache_inodes == 0);
}

#[test]
fn unlinked_file_is_still_explained() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    let rm = Proc::new(910, b"rm");
    store
        .apply(&[
            rm.exec(10, b"/usr/bin/rm", 4, b"rm\0/etc/gone.conf", false),
            Event::File(rm.file(20, FileOp::Unlink, b"/etc/gone.conf", None)),
        ])
        .unwrap();
    // Nothing recorded the inode before: the unlink is kept by path.
    let history = store
        .file_history(Path::new("/etc/gone.conf"), None)
        .unwrap();
    assert_eq!(
        ops(&history.entries),
        vec![(20, EntryOp::File(FileOp::Unlink))]
    );

    let writer = Proc::new(911, b"vi");
    store
        .apply(&[
            writer.write(30, b"/etc/other.conf", 90, WRITE),
            Event::File(writer.file(40, FileOp::Unlink, b"/etc/other.conf", None)),
        ])
        .unwrap();
    let history = store
        .file_history(Path::new("/etc/other.conf"), None)
        .unwrap();
    assert_eq!(
        history.file,
        Some(inode(90)),
        "the deleted inode, from the names table"
    );
    assert!(history.recorded_deleted);
    assert_eq!(
        ops(&history.entries),
        vec![
            (30, EntryOp::File(FileOp::OpenWrite)),
            (40, EntryOp::File(FileOp::Unlink))
        ]
    );
    let text = store
        .explain(Path::new("/etc/other.conf"))
        .unwrap()
        .to_string();
    assert!(text.contains("unlink"), "{text}");
    assert!(text.contains("does not exist"), "{text}");
    assert!(text.contains("was last removed"), "{text}");
}

#[test]
fn new_store_records_that_nothing_was_monitored_before() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let gaps = store.gaps_overlapping(0, now()).unwrap();
    assert_eq!(gaps.len(), 1);
    assert_eq!(gaps[0].kind, GapKind::MonitoringNotStarted);
    assert_eq!(gaps[0].from, 0);
}

#[test]
fn restart_without_clean_stop_leaves_a_gap_from_last_sign_of_life() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    store.heartbeat().unwrap();
    let shell = Proc::new(900, b"sh");
    let late = now() + 1_000_000_000;
    store
        .apply(&[shell.write(late, b"/etc/x", 5, WRITE)])
        .unwrap();
    drop(store); // a crash: no clean stop
    let store = open(&dir);
    let gaps = store.gaps_overlapping(1, u64::MAX).unwrap();
    let down: Vec<_> = gaps
        .iter()
        .filter(|gap| gap.kind == GapKind::DaemonDown)
        .collect();
    assert_eq!(down.len(), 1, "{gaps:?}");
    assert_eq!(down[0].from, late, "starts at the last stored event");
    assert!(
        down[0].detail.contains("without a clean stop"),
        "{}",
        down[0].detail
    );
}

#[test]
fn clean_stop_gap_starts_at_the_stop() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    let before = now();
    store.mark_clean_stop().unwrap();
    drop(store);
    let mut store = open(&dir);
    let gaps = store.gaps_overlapping(1, u64::MAX).unwrap();
    let down: Vec<_> = gaps
        .iter()
        .filter(|gap| gap.kind == GapKind::DaemonDown)
        .collect();
    assert_eq!(down.len(), 1, "{gaps:?}");
    assert!(down[0].from >= before && down[0].to.unwrap() >= down[0].from);
    assert!(down[0].detail.contains("stopped cleanly"));
    let extended = now() + 5;
    store.end_startup_gap(extended).unwrap();
    let gaps = store.gaps_overlapping(extended, extended).unwrap();
    assert!(gaps.iter().any(|gap| gap.id == down[0].id));
}

#[test]
fn crash_keeps_committed_batches() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    store.apply(&dpkg_upgrade_events()).unwrap();
    std::mem::forget(store); // not even a destructor: as if killed
    let store = open(&dir);
    let history = store
        .file_history(Path::new("/usr/bin/hello"), Some(inode(42)))
        .unwrap();
    assert_eq!(history.entries.len(), 2);
    let record = store
        .transaction(&TransactionKey {
            boot: BOOT.into(),
            id: 7,
        })
        .unwrap()
        .unwrap();
    assert!(record.succeeded());
}

#[test]
fn mark_trusted_truncates_history() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    let editor = Proc::new(920, b"vi");
    store
        .apply(&[
            editor.write(10, b"/etc/app.conf", 30, WRITE),
            editor.write(20, b"/etc/app.conf", 30, WRITE),
        ])
        .unwrap();
    let baseline = Baseline {
        file: inode(30),
        size: 12,
        mtime_ns: 20,
        ctime_ns: 20,
        digest: "ab".repeat(32),
        algorithm: "sha256".into(),
        time: 25,
    };
    store
        .mark_trusted(Path::new("/etc/app.conf"), baseline.clone())
        .unwrap();
    store
        .apply(&[editor.write(30, b"/etc/app.conf", 30, WRITE)])
        .unwrap();
    let history = store
        .file_history(Path::new("/etc/app.conf"), Some(inode(30)))
        .unwrap();
    assert_eq!(
        ops(&history.entries),
        vec![(30, EntryOp::File(FileOp::OpenWrite))]
    );
    assert_eq!(history.start, HistoryStart::Trusted { time: 25 });
    assert_eq!(history.earliest_relevant, 25);
    assert_eq!(
        store.baseline(Path::new("/etc/app.conf")).unwrap(),
        Some(baseline)
    );
    assert_eq!(store.stats().unwrap().file_events, 1, "older rows deleted");
}

#[test]
fn trusted_path_replaced_by_new_inode_keeps_its_early_writes() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    let dpkg = dpkg();
    store
        .apply(&[dpkg.exec(5, b"/usr/bin/dpkg", 1, b"dpkg", true)])
        .unwrap();
    // The new inode is written before the old one is trusted, renamed in after.
    store
        .apply(&[dpkg.write(10, b"/usr/bin/t.dpkg-new", 43, CREATE_EXCLUSIVE)])
        .unwrap();
    let baseline = Baseline {
        file: inode(41),
        size: 1,
        mtime_ns: 1,
        ctime_ns: 1,
        digest: "00".into(),
        algorithm: "md5".into(),
        time: 15,
    };
    store
        .mark_trusted(Path::new("/usr/bin/t"), baseline)
        .unwrap();
    store
        .apply(&[dpkg.rename(20, b"/usr/bin/t.dpkg-new", b"/usr/bin/t", 43, Some(41))])
        .unwrap();
    let history = store
        .file_history(Path::new("/usr/bin/t"), Some(inode(43)))
        .unwrap();
    assert_eq!(
        ops(&history.entries),
        vec![
            (10, EntryOp::File(FileOp::OpenWrite)),
            (20, EntryOp::File(FileOp::Rename))
        ]
    );
    assert_eq!(history.start, HistoryStart::Created { time: 10 });
}

#[test]
fn unrecorded_inode_change_is_flagged() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    store.apply(&dpkg_upgrade_events()).unwrap();
    let history = store
        .file_history(Path::new("/usr/bin/hello"), Some(inode(99)))
        .unwrap();
    assert!(
        history
            .incomplete
            .contains(&Incompleteness::InodeNotRecorded {
                recorded: Some(inode(42)),
                current: inode(99)
            })
    );
}

#[test]
fn unresolved_and_truncated_paths_may_concern_a_file() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    let shell = Proc::new(900, b"sh");
    let mut relative = shell.file(10, FileOp::Truncate, b"bin/tool", None);
    relative.path.origin = PathOrigin::UserUnresolved;
    let mut truncated = shell.file(11, FileOp::OpenWrite, b"ool", None);
    truncated.path.truncated = true;
    let mut unrelated = shell.file(12, FileOp::OpenWrite, b"other", None);
    unrelated.path.origin = PathOrigin::UserUnresolved;
    store
        .apply(&[
            Event::File(relative),
            Event::File(truncated),
            Event::File(unrelated),
        ])
        .unwrap();
    let history = store
        .file_history(Path::new("/usr/bin/tool"), None)
        .unwrap();
    assert_eq!(history.possibly_related.len(), 2);
    assert!(
        history
            .incomplete
            .contains(&Incompleteness::UnresolvedPaths { count: 2 })
    );
}

#[test]
fn preexisting_writer_is_attached_to_the_file() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    store
        .apply(&[Event::PreexistingWriter(PreexistingWriterEvent {
            time: 10,
            pid: 77,
            comm: b"daemon".to_vec(),
            path: kernel_path(b"/etc/held.conf"),
            file: inode(12),
        })])
        .unwrap();
    let history = store
        .file_history(Path::new("/etc/held.conf"), Some(inode(12)))
        .unwrap();
    assert_eq!(history.entries[0].op, EntryOp::PreexistingWriter);
    assert!(
        history
            .incomplete
            .contains(&Incompleteness::WriterPredatesMonitoring {
                pid: 77,
                comm: ByteText(b"daemon".to_vec())
            })
    );
}

#[test]
fn io_uring_gap_is_open_until_the_process_exits() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    let user = Proc::new(930, b"fio");
    let event = Event::IoUring(IoUringEvent {
        time: 1_000,
        actor: user.actor(),
        opcode: Some(18),
    });
    store
        .apply(&[
            user.exec(900, b"/usr/bin/fio", 8, b"fio", false),
            event.clone(),
            event,
        ])
        .unwrap();
    let gaps: Vec<Gap> = store
        .gaps_overlapping(5_000, 6_000)
        .unwrap()
        .into_iter()
        .filter(|gap| gap.kind == GapKind::IoUring)
        .collect();
    assert_eq!(gaps.len(), 1);
    assert_eq!((gaps[0].from, gaps[0].to), (1_000, None));
    assert!(
        gaps[0].detail.contains("/usr/bin/fio"),
        "{}",
        gaps[0].detail
    );
    store.apply(&[user.exit(2_000, 0, false)]).unwrap();
    let gaps = store.gaps_overlapping(1_500, 1_500).unwrap();
    let io_uring: Vec<_> = gaps
        .iter()
        .filter(|gap| gap.kind == GapKind::IoUring)
        .collect();
    assert_eq!(io_uring[0].to, Some(2_000));
    assert!(
        store
            .gaps_overlapping(5_000, 6_000)
            .unwrap()
            .iter()
            .all(|gap| gap.kind != GapKind::IoUring)
    );
}

#[test]
fn lost_events_become_a_gap() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    store
        .apply(&[Event::Loss(LossEvent {
            from: 100,
            to: 200,
            lost: vec![("file_open".into(), 3), ("exec".into(), 1)],
        })])
        .unwrap();
    let gaps = store.gaps_overlapping(150, 150).unwrap();
    let lost: Vec<_> = gaps
        .iter()
        .filter(|gap| gap.kind == GapKind::EventsLost)
        .collect();
    assert_eq!(lost.len(), 1);
    assert!(
        lost[0].detail.contains("4 records lost"),
        "{}",
        lost[0].detail
    );
}

#[test]
fn rename_exchange_records_both_inodes() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    let shell = Proc::new(900, b"sh");
    store
        .apply(&[
            shell.write(10, b"/etc/a", 1, WRITE),
            shell.write(11, b"/etc/b", 2, WRITE),
            Event::File(FileEvent {
                target: Some(kernel_path(b"/etc/b")),
                replaced: Some(inode(2)),
                ..shell.file(12, FileOp::RenameExchange, b"/etc/a", Some(1))
            }),
        ])
        .unwrap();
    let at_a = store
        .file_history(Path::new("/etc/a"), Some(inode(2)))
        .unwrap();
    assert_eq!(
        ops(&at_a.entries),
        vec![
            (11, EntryOp::File(FileOp::OpenWrite)),
            (12, EntryOp::File(FileOp::RenameExchange))
        ]
    );
    assert!(at_a.incomplete.is_empty(), "{:?}", at_a.incomplete);
    let at_b = store
        .file_history(Path::new("/etc/b"), Some(inode(1)))
        .unwrap();
    assert_eq!(at_b.recorded_file, Some(inode(1)));
    assert_eq!(at_b.entries.len(), 2);
}

#[test]
fn pending_requests_survive_reopen() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    let request = PendingRequest {
        alert: AlertRef {
            source: AlertSource::Ossec,
            alert_id: "1705314151.42".into(),
            rule_id: "550".into(),
            change: ChangeKind::Modified,
            path: "/usr/bin/hello".into(),
            program: "verify-file".into(),
            sha256_after: None,
            md5_after: None,
            sha1_after: None,
        },
        received: 10,
        deadline: 20,
        waiting_for: vec![TransactionKey {
            boot: BOOT.into(),
            id: 7,
        }],
    };
    store.add_pending(&request).unwrap();
    store.mark_clean_stop().unwrap();
    drop(store);
    let mut store = open(&dir);
    assert_eq!(store.pending().unwrap(), vec![request]);
    assert!(store.remove_pending("1705314151.42").unwrap());
    assert!(!store.remove_pending("1705314151.42").unwrap());
    assert!(store.pending().unwrap().is_empty());
}

#[test]
fn verdicts_keep_their_reasoning() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    let verdict = VerdictRecord {
        time: 50,
        path: ByteText(b"/usr/bin/hello".to_vec()),
        alert_id: Some("1.2".into()),
        outcome: Outcome::Succeeded,
        reason: "written by dpkg transaction 7, matches md5sums".into(),
        reasoning: serde_json::json!({"writers": ["dpkg"], "gaps": []}),
    };
    store.record_verdict(&verdict).unwrap();
    assert_eq!(
        store.verdicts_for(Path::new("/usr/bin/hello"), 10).unwrap(),
        vec![verdict]
    );
}

#[test]
fn hostile_bytes_in_paths_round_trip_and_print_escaped() {
    use std::os::unix::ffi::OsStrExt;
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    let hostile: &[u8] = b"/etc/evil\nname\xff\x1b[2J";
    let shell = Proc::new(900, b"s\xffh\n");
    store
        .apply(&[shell.write(10, hostile, 66, CREATE_EXCLUSIVE)])
        .unwrap();
    let path = Path::new(std::ffi::OsStr::from_bytes(hostile));
    let history = store.file_history(path, Some(inode(66))).unwrap();
    assert_eq!(history.entries[0].path.path.as_bytes(), hostile);

    let explanation = store.explain(path).unwrap();
    let text = explanation.to_string();
    assert!(text.contains("/etc/evil\\nname\\xff\\x1b[2J"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "no raw escape sequences reach the terminal"
    );
    assert!(text.contains("s\\xffh\\n"), "{text}");
    let json = serde_json::to_value(&explanation).unwrap();
    let recovered = bytes::unescape(json["path"].as_str().unwrap()).unwrap();
    assert_eq!(recovered, hostile);
}

#[test]
fn read_only_store_sees_the_daemons_writes_and_cannot_write() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    store.apply(&dpkg_upgrade_events()).unwrap();
    let mut reader = Store::open_read_only(dir.path()).unwrap();
    let history = reader
        .file_history(Path::new("/usr/bin/hello"), Some(inode(42)))
        .unwrap();
    assert_eq!(history.entries.len(), 2);
    assert!(matches!(reader.heartbeat(), Err(StoreError::ReadOnly)));
    assert!(matches!(reader.apply(&[]), Err(StoreError::ReadOnly)));
    // New writes become visible to the open reader.
    let editor = Proc::new(920, b"vi");
    store
        .apply(&[editor.write(200, b"/usr/bin/hello", 42, WRITE)])
        .unwrap();
    let history = reader
        .file_history(Path::new("/usr/bin/hello"), Some(inode(42)))
        .unwrap();
    assert_eq!(history.entries.len(), 3);
}

#[test]
fn read_only_open_of_missing_store_says_so() {
    let dir = TempDir::new().unwrap();
    assert!(matches!(
        Store::open_read_only(dir.path()),
        Err(StoreError::Missing { .. })
    ));
}

#[test]
fn database_is_private_and_versioned() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let mode = std::fs::metadata(store.database_path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(schema::version(&store.connection).unwrap(), SCHEMA_VERSION);
    let nested = dir.path().join("a/b");
    let nested_store = Store::open_for_boot(&nested, &recorder(), BOOT).unwrap();
    let dir_mode = std::fs::metadata(&nested).unwrap().permissions().mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    drop(nested_store);
}

#[test]
fn newer_schema_is_refused() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    store
        .connection
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(store);
    assert!(matches!(
        Store::open_for_boot(dir.path(), &recorder(), BOOT),
        Err(StoreError::SchemaTooNew { .. })
    ));
}

#[test]
fn explain_json_and_text_tell_the_dpkg_story() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    store.apply(&dpkg_upgrade_events()).unwrap();
    let explanation = store.explain(Path::new("/usr/bin/hello")).unwrap();
    assert_eq!(explanation.transactions.len(), 1);
    let text = explanation.to_string();
    for expected in [
        "open_write",
        "/usr/bin/hello.dpkg-new -> /usr/bin/hello",
        "running /usr/bin/dpkg",
        "transaction 7",
        "command line: dpkg -i hello.deb",
        "exit code 0",
        "/var/lib/dpkg/lock",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    let json = serde_json::to_value(&explanation).unwrap();
    assert_eq!(json["transactions"][0]["exit_status"], 0);
    assert_eq!(json["history"]["entries"][1]["op"]["file"], "Rename");
}

#[test]
fn store_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Store>();
}

#[test]
fn directory_moved_into_a_watched_root_brings_its_files_histories() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    let shell = Proc::new(900, b"sh");
    store
        .apply(&[
            shell.write(10, b"/tmp/kit/evil", 81, CREATE_EXCLUSIVE),
            shell.rename(20, b"/tmp/kit", b"/usr/bin/kit", 80, None),
        ])
        .unwrap();
    let history = store
        .file_history(Path::new("/usr/bin/kit/evil"), Some(inode(81)))
        .unwrap();
    assert_eq!(
        ops(&history.entries),
        vec![(10, EntryOp::File(FileOp::OpenWrite))]
    );
    assert_eq!(history.entries[0].source, EntrySource::MemoryCache);
    assert_eq!(history.recorded_file, Some(inode(81)));

    // A watched directory renamed within the roots: recorded names follow.
    store
        .apply(&[
            shell.write(30, b"/etc/app/conf", 91, WRITE),
            shell.rename(40, b"/etc/app", b"/etc/app.old", 90, None),
        ])
        .unwrap();
    let moved = store
        .file_history(Path::new("/etc/app.old/conf"), Some(inode(91)))
        .unwrap();
    assert_eq!(moved.recorded_file, Some(inode(91)));
    assert!(moved.incomplete.is_empty(), "{:?}", moved.incomplete);
    let old = store
        .file_history(Path::new("/etc/app/conf"), None)
        .unwrap();
    assert_eq!(old.recorded_file, None);
}

#[test]
fn memory_cache_is_bounded_in_entries() {
    let mut cache = cache::MemoryCache::new(4);
    let shell = Proc::new(900, b"sh");
    for index in 0..100u64 {
        let Event::File(event) = shell.write(index, b"/tmp/x", 1 + index % 8, WRITE) else {
            unreachable!()
        };
        cache.record(
            inode(1 + index % 8),
            rows::entry_from_event(&event, None, None, BOOT),
        );
    }
    assert!(cache.len() <= 4);
    assert!(cache.evictions() > 0);
}

#[test]
fn explain_follows_a_symlinked_directory_like_usr_merge() {
    use std::os::unix::{ffi::OsStrExt, fs::MetadataExt};
    let dir = TempDir::new().unwrap();
    let base = std::fs::canonicalize(dir.path()).unwrap();
    let real = base.join("usr-bin");
    std::fs::create_dir(&real).unwrap();
    std::os::unix::fs::symlink(&real, base.join("bin")).unwrap();
    let file = real.join("tool");
    std::fs::write(&file, b"x").unwrap();
    let ino = std::fs::metadata(&file).unwrap().ino();
    let dev = std::fs::metadata(&file).unwrap().dev();

    let recorder = RecorderConfig {
        watched_roots: vec![real.clone()],
        ..RecorderConfig::default()
    };
    let mut store = Store::open_for_boot(&base.join("state"), &recorder, BOOT).unwrap();
    let mut write = match Proc::new(900, b"sh").write(10, file.as_os_str().as_bytes(), 0, WRITE) {
        Event::File(event) => event,
        _ => unreachable!(),
    };
    write.file = Some(FileId { dev, ino });
    store.apply(&[Event::File(write)]).unwrap();

    let explanation = store.explain(&base.join("bin/tool")).unwrap();
    assert_eq!(
        explanation.resolved_path.as_ref().unwrap().as_bytes(),
        file.as_os_str().as_bytes()
    );
    assert_eq!(explanation.history.entries.len(), 1);
    assert_eq!(explanation.history.recorded_file, Some(FileId { dev, ino }));
    assert!(explanation.history.incomplete.is_empty());
}

#[test]
fn tmpfile_linked_into_place_is_a_created_inode() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    let installer = Proc::new(940, b"install");
    store
        .apply(&[
            installer.write(10, b"/usr/bin", 55, cache::TMPFILE | WRITE),
            Event::File(FileEvent {
                target: Some(kernel_path(b"/usr/bin/fresh")),
                ..installer.file(20, FileOp::Link, b"/proc/self/fd/3", Some(55))
            }),
        ])
        .unwrap();
    let history = store
        .file_history(Path::new("/usr/bin/fresh"), Some(inode(55)))
        .unwrap();
    assert_eq!(history.start, HistoryStart::Created { time: 10 });
    assert!(history.incomplete.is_empty(), "{:?}", history.incomplete);
    let directory = store.file_history(Path::new("/usr/bin"), None).unwrap();
    assert_eq!(
        directory.recorded_file, None,
        "the directory is not the tmpfile"
    );
}

#[test]
fn rename_of_an_unknown_inode_forgets_the_target_name() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    let shell = Proc::new(900, b"sh");
    store
        .apply(&[
            shell.write(10, b"/etc/motd", 20, WRITE),
            Event::File(FileEvent {
                target: Some(kernel_path(b"/etc/motd")),
                ..shell.file(20, FileOp::Rename, b"/etc/motd.new", None)
            }),
        ])
        .unwrap();
    let history = store
        .file_history(Path::new("/etc/motd"), Some(inode(21)))
        .unwrap();
    assert_eq!(history.recorded_file, None);
    assert_eq!(
        ops(&history.entries),
        vec![(20, EntryOp::File(FileOp::Rename))]
    );
    assert_eq!(
        ops(&history.path_events),
        vec![(10, EntryOp::File(FileOp::OpenWrite))]
    );
}

#[test]
fn prune_drops_deleted_files_but_keeps_existing_histories() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    let shell = Proc::new(900, b"sh");
    store
        .apply(&[
            shell.exec(5, b"/usr/bin/sh", 3, b"sh", false),
            shell.write(10, b"/etc/kept", 1, WRITE),
            shell.write(11, b"/etc/gone", 2, WRITE),
            Event::File(shell.file(12, FileOp::Unlink, b"/etc/gone", None)),
            shell.exit(13, 0, false),
        ])
        .unwrap();
    let report = store.prune(100).unwrap();
    assert_eq!(report.file_events, 2, "{report:?}");
    assert_eq!(report.names, 1);
    assert_eq!(report.processes, 0, "still referenced by /etc/kept's write");
    let kept = store
        .file_history(Path::new("/etc/kept"), Some(inode(1)))
        .unwrap();
    assert_eq!(kept.entries.len(), 1);
    let gone = store.file_history(Path::new("/etc/gone"), None).unwrap();
    assert!(gone.entries.is_empty());
}

/// dpkg upgrading `/usr/bin/hello` twice, as it really does: the old file hard-linked to
/// `.dpkg-tmp`, the new one created exclusively as `.dpkg-new` and renamed over the path, the
/// backup unlinked. The file before the first upgrade is inode 41 (it predates monitoring), the
/// first upgrade's is 42, and the second upgrade's gets 41 back: the kernel reuses freed numbers.
fn dpkg_two_upgrades_reusing_an_inode_number(base: u64) -> Vec<Event> {
    let mut events = Vec::new();
    for (step, (id, old, new)) in [(7, 41, 42), (8, 42, 41)].into_iter().enumerate() {
        let dpkg = Proc::new(500 + step as u32, b"dpkg").in_transaction(id, 0);
        let at = base + step as u64 * 100;
        events.extend([
            dpkg.exec(at, b"/usr/bin/dpkg", 1, b"dpkg\0-i\0hello.deb", true),
            dpkg.write(
                at + 10,
                b"/var/lib/dpkg/lock",
                2,
                (libc::O_RDWR | libc::O_CREAT) as u64,
            ),
            Event::File(FileEvent {
                target: Some(kernel_path(b"/usr/bin/hello.dpkg-tmp")),
                ..dpkg.file(at + 20, FileOp::Link, b"/usr/bin/hello", Some(old))
            }),
            dpkg.write(at + 30, b"/usr/bin/hello.dpkg-new", new, CREATE_EXCLUSIVE),
            dpkg.rename(
                at + 40,
                b"/usr/bin/hello.dpkg-new",
                b"/usr/bin/hello",
                new,
                Some(old),
            ),
            Event::File(dpkg.file(
                at + 50,
                FileOp::Unlink,
                b"/usr/bin/hello.dpkg-tmp",
                Some(old),
            )),
            dpkg.exit(at + 60, 0, true),
        ]);
    }
    events
}

#[test]
fn reused_inode_number_starts_the_history_at_its_last_creation() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    store
        .apply(&dpkg_two_upgrades_reusing_an_inode_number(1000))
        .unwrap();
    let history = store
        .file_history(Path::new("/usr/bin/hello"), Some(inode(41)))
        .unwrap();
    assert_eq!(history.start, HistoryStart::Created { time: 1130 });
    assert_eq!(history.earliest_relevant, 1130);
    // The first file numbered 41 (linked at 1020, unlinked at 1050) is not this one, but what
    // was done to it stays in the history: its writers are judged all the same.
    assert_eq!(
        ops(&history.entries),
        vec![
            (1020, EntryOp::File(FileOp::Link)),
            (1050, EntryOp::File(FileOp::Unlink)),
            (1130, EntryOp::File(FileOp::OpenWrite)),
            (1140, EntryOp::File(FileOp::Rename))
        ],
    );
    assert!(history.is_complete(), "{:?}", history.incomplete);
}

#[test]
fn preexisting_inode_written_in_place_still_has_an_unknown_start() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    let dpkg = dpkg();
    store
        .apply(&[
            dpkg.exec(100, b"/usr/bin/dpkg", 1, b"dpkg\0-i\0hello.deb", true),
            // Not exclusive: the inode that predates monitoring, truncated and rewritten.
            dpkg.write(
                110,
                b"/usr/bin/hello",
                41,
                (libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC) as u64,
            ),
            dpkg.exit(140, 0, true),
        ])
        .unwrap();
    let history = store
        .file_history(Path::new("/usr/bin/hello"), Some(inode(41)))
        .unwrap();
    assert_eq!(history.start, HistoryStart::Unknown);
    assert_eq!(history.earliest_relevant, 0);
    assert!(!history.is_complete());
}

#[test]
fn operation_before_the_creation_stays_in_the_history() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    let shell = Proc::new(900, b"sh");
    let mut events = vec![Event::File(shell.file(
        1005,
        FileOp::Truncate,
        b"/usr/bin/hello",
        None,
    ))];
    events.extend(dpkg_two_upgrades_reusing_an_inode_number(1000));
    store.apply(&events).unwrap();
    let history = store
        .file_history(Path::new("/usr/bin/hello"), Some(inode(41)))
        .unwrap();
    // It ended before the file now at the path was created, so it cannot concern it, but it
    // stays in the history, where its writer (no package manager) fails the verdict.
    assert_eq!(
        history
            .entries
            .first()
            .map(|entry| (entry.time, entry.writer.pid)),
        Some((1005, 900)),
    );
    assert_eq!(history.start, HistoryStart::Created { time: 1130 });
}

/// The window whose gaps a verdict checks: after two upgrades during monitoring of a file that
/// predates it, the "monitoring not started" gap lies before the current file was created.
#[test]
fn reused_inode_number_window_excludes_the_gap_before_monitoring() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    let after_start = crate::intake::wall_clock_now() + 1_000_000_000;
    store
        .apply(&dpkg_two_upgrades_reusing_an_inode_number(after_start))
        .unwrap();
    let history = store
        .file_history(Path::new("/usr/bin/hello"), Some(inode(41)))
        .unwrap();
    assert_eq!(history.earliest_relevant, after_start + 130);
    let gaps = store
        .gaps_overlapping(history.earliest_relevant, after_start + 1000)
        .unwrap();
    assert!(gaps.is_empty(), "{gaps:?}");
    // The file before the first upgrade (inode 41 too, never trusted) would have seen the gap.
    assert_eq!(
        store
            .gaps_overlapping(0, after_start + 1000)
            .unwrap()
            .first()
            .map(|gap| gap.kind),
        Some(GapKind::MonitoringNotStarted)
    );
}

/// The store's connection keeps one plan per cached statement: without the query planner
/// stability guarantee, SQLite (built with STAT4) re-prepared every history query whenever its
/// path parameter changed, which was a fifth of the daemon's CPU time during an alert burst.
#[test]
fn cached_statements_are_not_reprepared_for_new_parameters() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let sql = "SELECT time FROM ownership_changes WHERE path = ?1 AND time >= ?2 ORDER BY time, id";
    for path in [b"/usr/bin/a".as_slice(), b"/usr/bin/b", b"/usr/bin/c"] {
        let mut statement = store.connection.prepare_cached(sql).unwrap();
        let rows = statement
            .query_map(params![path, 5i64], |_| Ok(()))
            .unwrap();
        assert_eq!(rows.count(), 0);
    }
    let statement = store.connection.prepare_cached(sql).unwrap();
    assert_eq!(statement.get_status(rusqlite::StatementStatus::Run), 3);
    assert_eq!(
        statement.get_status(rusqlite::StatementStatus::RePrepare),
        0
    );
}

/// dpkg's way with a packaged symlink, as syscall tracepoints report it: `symlink()` and
/// `rename()` without inodes, the link's ownership and times set by name in between.
fn symlink_upgrade_events(renamer: &Proc) -> Vec<Event> {
    let dpkg = dpkg();
    let symlink = Event::File(FileEvent {
        target: Some(ReportedPath {
            bytes: b"hello".to_vec(),
            origin: PathOrigin::UserUnresolved,
            truncated: false,
        }),
        ..dpkg.file(120, FileOp::Symlink, b"/usr/bin/link.dpkg-new", None)
    });
    let rename = Event::File(FileEvent {
        target: Some(kernel_path(b"/usr/bin/link")),
        ..renamer.file(130, FileOp::Rename, b"/usr/bin/link.dpkg-new", None)
    });
    vec![
        dpkg.exec(100, b"/usr/bin/dpkg", 1, b"dpkg\0-i\0link.deb", true),
        symlink,
        Event::File(dpkg.file(121, FileOp::Chown, b"/usr/bin/link.dpkg-new", None)),
        Event::File(dpkg.file(122, FileOp::Utimes, b"/usr/bin/link.dpkg-new", None)),
        rename,
        dpkg.exit(140, 0, true),
    ]
}

#[test]
fn symlink_renamed_into_place_starts_its_history_at_the_symlink() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    store.apply(&symlink_upgrade_events(&dpkg())).unwrap();
    let history = store
        .file_history(Path::new("/usr/bin/link"), Some(inode(77)))
        .unwrap();
    assert_eq!(history.start, HistoryStart::Created { time: 120 });
    assert!(history.incomplete.is_empty(), "{:?}", history.incomplete);
    assert_eq!(
        ops(&history.entries),
        vec![
            (120, EntryOp::File(FileOp::Symlink)),
            (121, EntryOp::File(FileOp::Chown)),
            (122, EntryOp::File(FileOp::Utimes)),
            (130, EntryOp::File(FileOp::Rename)),
        ]
    );
}

#[test]
fn symlink_renamed_into_place_by_another_process_has_no_known_start() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    let intruder = Proc::new(900, b"mv");
    store.apply(&symlink_upgrade_events(&intruder)).unwrap();
    let history = store
        .file_history(Path::new("/usr/bin/link"), Some(inode(77)))
        .unwrap();
    assert_eq!(history.start, HistoryStart::Unknown);
}

#[test]
fn queued_verdicts_and_baselines_are_written_together() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    store.apply(&dpkg_upgrade_events()).unwrap();
    let path = Path::new("/usr/bin/hello");
    let verdict = |alert: &str| VerdictRecord {
        time: 150,
        path: ByteText(b"/usr/bin/hello".to_vec()),
        alert_id: Some(alert.into()),
        outcome: Outcome::Succeeded,
        reason: "written only by package transaction 7".into(),
        reasoning: serde_json::json!({}),
    };
    let baseline = Baseline {
        file: inode(42),
        size: 5,
        mtime_ns: 130,
        ctime_ns: 130,
        digest: "00".repeat(16),
        algorithm: "md5".into(),
        time: 150,
    };
    store.queue_verdict(verdict("1.1"), None).unwrap();
    store
        .queue_verdict(verdict("1.2"), Some((path.to_owned(), baseline.clone())))
        .unwrap();
    assert_eq!(store.queued_verdicts(), 2);
    assert!(store.trust_queued_for(path));
    assert!(!store.trust_queued_for(Path::new("/usr/bin/other")));
    assert!(store.verdicts_for(path, 10).unwrap().is_empty());
    assert_eq!(store.baseline(path).unwrap(), None);

    assert_eq!(store.write_queued_verdicts().unwrap(), 2);
    assert_eq!(store.queued_verdicts(), 0);
    assert_eq!(store.verdicts_for(path, 10).unwrap().len(), 2);
    assert_eq!(store.baseline(path).unwrap(), Some(baseline));
    let history = store.file_history(path, Some(inode(42))).unwrap();
    assert_eq!(history.start, HistoryStart::Trusted { time: 150 });
    assert!(history.entries.is_empty(), "{:?}", ops(&history.entries));
}

#[test]
fn a_clean_stop_writes_the_queued_verdicts() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    store
        .queue_verdict(
            VerdictRecord {
                time: 10,
                path: ByteText(b"/etc/x".to_vec()),
                alert_id: None,
                outcome: Outcome::Failed,
                reason: "no write recorded".into(),
                reasoning: serde_json::json!({}),
            },
            None,
        )
        .unwrap();
    store.mark_clean_stop().unwrap();
    assert_eq!(
        store.verdicts_for(Path::new("/etc/x"), 10).unwrap().len(),
        1
    );
}

/// dpkg installs /usr/bin/a (inode 42), someone appends to it, dpkg (`replacer`) renames a new
/// /usr/bin/a over it, then dpkg creates /usr/bin/b and gets the freed number 42 back.
fn inode_reuse_events(replacer: &Proc) -> Vec<Event> {
    let dpkg = dpkg();
    let admin = Proc::new(900, b"sh");
    vec![
        dpkg.exec(100, b"/usr/bin/dpkg", 1, b"dpkg\0-i\0ab.deb", true),
        dpkg.write(110, b"/usr/bin/a.dpkg-new", 42, CREATE_EXCLUSIVE),
        dpkg.rename(111, b"/usr/bin/a.dpkg-new", b"/usr/bin/a", 42, None),
        admin.write(200, b"/usr/bin/a", 42, libc::O_APPEND as u64),
        dpkg.write(300, b"/usr/bin/a.dpkg-new", 43, CREATE_EXCLUSIVE),
        replacer.rename(310, b"/usr/bin/a.dpkg-new", b"/usr/bin/a", 43, Some(42)),
        dpkg.write(320, b"/usr/bin/b.dpkg-new", 42, CREATE_EXCLUSIVE),
        dpkg.rename(330, b"/usr/bin/b.dpkg-new", b"/usr/bin/b", 42, None),
        dpkg.exit(400, 0, true),
    ]
}

#[test]
fn operations_on_an_earlier_file_with_the_same_inode_number_are_left_out() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    store.apply(&inode_reuse_events(&dpkg())).unwrap();
    let history = store
        .file_history(Path::new("/usr/bin/b"), Some(inode(42)))
        .unwrap();
    assert_eq!(history.start, HistoryStart::Created { time: 320 });
    assert_eq!(
        ops(&history.entries),
        vec![
            (320, EntryOp::File(FileOp::OpenWrite)),
            (330, EntryOp::File(FileOp::Rename)),
        ]
    );
}

#[test]
fn an_earlier_file_ended_by_another_process_keeps_its_operations_in_the_history() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    let other = Proc::new(700, b"mv");
    store.apply(&inode_reuse_events(&other)).unwrap();
    let history = store
        .file_history(Path::new("/usr/bin/b"), Some(inode(42)))
        .unwrap();
    assert!(
        history
            .entries
            .iter()
            .any(|entry| entry.writer.pid == 900 && entry.time == 200),
        "{:?}",
        ops(&history.entries)
    );
}

/// dpkg's upgrade backs the old /usr/bin/a (inode 42, appended to by an admin) up as a hard link
/// and unlinks that at `unlinked`; a later dpkg run, started at `second_start`, creates /usr/bin/b
/// and gets number 42 back.
fn inode_reuse_across_runs(unlinked: u64, second_start: u64) -> Vec<Event> {
    const S: u64 = 1_000_000_000;
    let first = dpkg();
    let second = Proc::new(600, b"dpkg").in_transaction(8, 0);
    let admin = Proc::new(900, b"sh");
    let link = Event::File(FileEvent {
        target: Some(kernel_path(b"/usr/bin/a.dpkg-tmp")),
        ..first.file(S + 10, FileOp::Link, b"/usr/bin/a", Some(42))
    });
    vec![
        first.exec(S, b"/usr/bin/dpkg", 1, b"dpkg\0-i\0a.deb", true),
        admin.write(S + 5, b"/usr/bin/a", 42, libc::O_APPEND as u64),
        link,
        first.write(S + 20, b"/usr/bin/a.dpkg-new", 43, CREATE_EXCLUSIVE),
        first.rename(S + 30, b"/usr/bin/a.dpkg-new", b"/usr/bin/a", 43, Some(42)),
        Event::File(first.file(unlinked, FileOp::Unlink, b"/usr/bin/a.dpkg-tmp", Some(42))),
        first.exit(unlinked + 10, 0, true),
        second.exec(second_start, b"/usr/bin/dpkg", 1, b"dpkg\0-i\0b.deb", true),
        second.write(
            second_start + 10,
            b"/usr/bin/b.dpkg-new",
            42,
            CREATE_EXCLUSIVE,
        ),
        second.rename(
            second_start + 20,
            b"/usr/bin/b.dpkg-new",
            b"/usr/bin/b",
            42,
            None,
        ),
        second.exit(second_start + 30, 0, true),
    ]
}

#[test]
fn an_earlier_file_removed_well_before_the_next_transaction_is_left_out() {
    const S: u64 = 1_000_000_000;
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    store.apply(&inode_reuse_across_runs(2 * S, 5 * S)).unwrap();
    let history = store
        .file_history(Path::new("/usr/bin/b"), Some(inode(42)))
        .unwrap();
    assert!(
        history.entries.iter().all(|entry| entry.writer.pid == 600),
        "{:?}",
        ops(&history.entries)
    );
}

#[test]
fn an_earlier_file_removed_just_before_the_next_transaction_stays_in() {
    const S: u64 = 1_000_000_000;
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    store
        .apply(&inode_reuse_across_runs(S + 100, S + 500_000_000))
        .unwrap();
    let history = store
        .file_history(Path::new("/usr/bin/b"), Some(inode(42)))
        .unwrap();
    assert!(
        history.entries.iter().any(|entry| entry.writer.pid == 900),
        "{:?}",
        ops(&history.entries)
    );
}

/// One row of the names table: path, dev, ino, since, removed_at.
type NameRowValues = (Vec<u8>, i64, i64, i64, Option<i64>);

/// The names table's rows, in path order.
fn names_rows(store: &Store) -> Vec<NameRowValues> {
    let mut statement = store
        .connection
        .prepare("SELECT path, dev, ino, since, removed_at FROM names ORDER BY path")
        .unwrap();
    statement
        .query_map([], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Name changes are coalesced per batch: whatever the batching, the names table ends the same.
#[test]
fn names_end_the_same_whether_events_come_in_one_batch_or_one_by_one() {
    let shell = Proc::new(900, b"sh");
    let unlink =
        |time, path: &'static [u8]| Event::File(shell.file(time, FileOp::Unlink, path, None));
    let link = |time, from: &'static [u8], to: &'static [u8], ino| {
        Event::File(FileEvent {
            target: Some(kernel_path(to)),
            ..shell.file(time, FileOp::Link, from, Some(ino))
        })
    };
    let exchange = |time, a: &'static [u8], b: &'static [u8], ino, other| {
        Event::File(FileEvent {
            target: Some(kernel_path(b)),
            replaced: Some(inode(other)),
            ..shell.file(time, FileOp::RenameExchange, a, Some(ino))
        })
    };
    let earlier = [
        shell.write(1, b"/etc/kept", 1, WRITE),
        shell.write(2, b"/etc/gone", 2, WRITE),
        shell.write(3, b"/etc/app/conf", 3, WRITE),
        shell.write(4, b"/etc/app/old", 4, WRITE),
        unlink(5, b"/etc/app/old"),
        shell.write(6, b"/etc/a", 6, WRITE),
        shell.write(7, b"/etc/b", 7, WRITE),
        shell.write(8, b"/etc/back", 40, WRITE),
        shell.write(9, b"/etc/s", 50, WRITE),
    ];
    let later = [
        // Written again: keeps its first `since`.
        shell.write(10, b"/etc/kept", 1, WRITE),
        // Created, renamed into place and deleted.
        shell.write(11, b"/etc/x.tmp", 11, CREATE_EXCLUSIVE),
        shell.rename(12, b"/etc/x.tmp", b"/etc/x", 11, None),
        unlink(13, b"/etc/x"),
        // Deleted, then created again under the same name with another inode.
        unlink(14, b"/etc/gone"),
        shell.write(15, b"/etc/gone", 15, CREATE_EXCLUSIVE),
        unlink(16, b"/etc/gone"),
        shell.write(17, b"/etc/gone", 17, CREATE_EXCLUSIVE),
        // A directory holding stored and new names, renamed; its new name's file removed.
        shell.write(18, b"/etc/app/new", 18, CREATE_EXCLUSIVE),
        shell.rename(19, b"/etc/app", b"/etc/app.old", 30, None),
        unlink(20, b"/etc/app.old/new"),
        // A name replaced by an unknown inode, a hard link, an exchange.
        Event::File(FileEvent {
            target: Some(kernel_path(b"/etc/kept")),
            ..shell.file(21, FileOp::Rename, b"/etc/unknown", None)
        }),
        link(22, b"/etc/a", b"/etc/a.link", 6),
        exchange(23, b"/etc/a", b"/etc/b", 6, 7),
        unlink(24, b"/etc/a.link"),
        // Renamed away and back: named afresh.
        shell.rename(25, b"/etc/back", b"/etc/back.save", 40, None),
        shell.rename(26, b"/etc/back.save", b"/etc/back", 40, None),
        // Moved aside, replaced, and put back over its replacement.
        shell.rename(27, b"/etc/s", b"/etc/s.old", 50, None),
        shell.write(28, b"/etc/s", 51, CREATE_EXCLUSIVE),
        shell.rename(29, b"/etc/s.old", b"/etc/s", 50, Some(51)),
    ];

    let batched_dir = TempDir::new().unwrap();
    let mut batched = open(&batched_dir);
    batched.apply(&earlier).unwrap();
    batched.apply(&later).unwrap();

    let single_dir = TempDir::new().unwrap();
    let mut single = open(&single_dir);
    for event in earlier.iter().chain(&later) {
        single.apply(std::slice::from_ref(event)).unwrap();
    }

    let rows = names_rows(&batched);
    assert_eq!(rows, names_rows(&single));
    let row = |path: &[u8]| rows.iter().find(|row| row.0 == path).cloned();
    assert_eq!(
        row(b"/etc/x.tmp"),
        Some((b"/etc/x.tmp".to_vec(), DEV as i64, 11, 11, Some(12)))
    );
    assert_eq!(
        row(b"/etc/x"),
        Some((b"/etc/x".to_vec(), DEV as i64, 11, 12, Some(13)))
    );
    assert_eq!(
        row(b"/etc/gone"),
        Some((b"/etc/gone".to_vec(), DEV as i64, 17, 17, None))
    );
    assert_eq!(
        row(b"/etc/app.old/conf").map(|row| (row.2, row.3)),
        Some((3, 19))
    );
    assert_eq!(row(b"/etc/app.old/new").and_then(|row| row.4), Some(20));
    assert_eq!(row(b"/etc/app/conf"), None);
    assert_eq!(row(b"/etc/kept"), None);
    assert_eq!(
        row(b"/etc/back").map(|row| (row.2, row.3, row.4)),
        Some((40, 26, None))
    );
    assert_eq!(
        row(b"/etc/s").map(|row| (row.2, row.3, row.4)),
        Some((50, 29, None))
    );
}

fn writer_rows(store: &Store) -> i64 {
    store
        .connection
        .query_row("SELECT COUNT(*) FROM writers", [], |row| row.get(0))
        .unwrap()
}

#[test]
fn each_distinct_writer_is_stored_once_and_pruned_with_its_operations() {
    let dir = TempDir::new().unwrap();
    let mut store = open(&dir);
    let shell = Proc::new(900, b"sh");
    let as_user = |event: Event| match event {
        Event::File(mut file) => {
            file.actor.euid = 1000;
            Event::File(file)
        }
        other => other,
    };
    store
        .apply(&[
            shell.exec(5, b"/usr/bin/sh", 3, b"sh", false),
            shell.write(10, b"/etc/kept", 1, WRITE),
            shell.write(11, b"/etc/kept", 1, WRITE),
        ])
        .unwrap();
    store
        .apply(&[
            shell.write(12, b"/etc/kept", 1, WRITE),
            as_user(shell.write(13, b"/etc/gone", 2, WRITE)),
            Event::File(shell.file(14, FileOp::Unlink, b"/etc/gone", None)),
        ])
        .unwrap();
    assert_eq!(writer_rows(&store), 2, "root and euid 1000, across batches");
    let kept = store
        .file_history(Path::new("/etc/kept"), Some(inode(1)))
        .unwrap();
    let writers: Vec<_> = kept
        .entries
        .iter()
        .map(|entry| {
            (
                entry.writer.pid,
                entry.writer.euid,
                entry.writer.exe.clone(),
            )
        })
        .collect();
    let sh = Some(ByteText(b"/usr/bin/sh".to_vec()));
    assert_eq!(writers, vec![(900, 0, sh.clone()); 3]);

    store.prune(100).unwrap();
    assert_eq!(
        writer_rows(&store),
        1,
        "euid 1000 wrote only the deleted file"
    );
    // The memo forgot the pruned row: the same writer again gets a row of its own.
    store
        .apply(&[as_user(shell.write(110, b"/etc/kept", 1, WRITE))])
        .unwrap();
    assert_eq!(writer_rows(&store), 2);
    let kept = store
        .file_history(Path::new("/etc/kept"), Some(inode(1)))
        .unwrap();
    let last = kept.entries.last().unwrap();
    assert_eq!(
        (last.time, last.writer.euid, last.writer.exe.clone()),
        (110, 1000, sh)
    );
}

/// time, pid, comm, exe, transaction id of a version 2 `file_events` row.
type OldRowValues = (i64, i64, &'static [u8], Option<&'static [u8]>, Option<i64>);

#[test]
fn a_version_2_store_keeps_its_writers_through_the_writers_table_migration() {
    let dir = TempDir::new().unwrap();
    let database = dir.path().join(DATABASE_FILE);
    {
        let mut connection = rusqlite::Connection::open(&database).unwrap();
        let transaction = connection.transaction().unwrap();
        for migration in &schema::MIGRATIONS[..2] {
            transaction.execute_batch(migration).unwrap();
        }
        transaction
            .execute(
                "INSERT INTO boots (id, boot_id) VALUES (1, ?1)",
                params![BOOT],
            )
            .unwrap();
        // Two rows of one writer (dpkg in transaction 7), one of a writer without executable.
        let rows: [OldRowValues; 3] = [
            (120, 500, b"dpkg", Some(b"/usr/bin/dpkg"), Some(7)),
            (130, 500, b"dpkg", Some(b"/usr/bin/dpkg"), Some(7)),
            (140, 600, b"vi", None, None),
        ];
        for (time, pid, comm, exe, txn) in rows {
            transaction
                .execute(
                    "INSERT INTO file_events (time, op, dev, ino, path, path_origin, \
                     path_truncated, flags, unanchored, boot, pid, tid, ppid, start_time, uid, \
                     euid, comm, exe, exe_dev, exe_ino, txn_id, txn_depth, source, \
                     prior_unknown) VALUES (?1, 'open_write', ?2, 42, \
                     CAST('/etc/motd' AS BLOB), 'kernel', 0, 1, 0, 1, ?3, ?3, 1, 77, 0, 0, ?4, \
                     ?5, ?6, ?7, ?8, ?9, 'recorded', 0)",
                    params![
                        time,
                        DEV as i64,
                        pid,
                        comm,
                        exe,
                        exe.map(|_| DEV as i64),
                        exe.map(|_| 3),
                        txn,
                        txn.map(|_| 0),
                    ],
                )
                .unwrap();
        }
        transaction.pragma_update(None, "user_version", 2).unwrap();
        transaction.commit().unwrap();
    }
    assert!(matches!(
        Store::open_read_only(dir.path()),
        Err(StoreError::SchemaTooOld { found: 2, .. })
    ));
    let store = open(&dir);
    assert_eq!(schema::version(&store.connection).unwrap(), SCHEMA_VERSION);
    assert_eq!(writer_rows(&store), 2);
    let history = store
        .file_history(Path::new("/etc/motd"), Some(inode(42)))
        .unwrap();
    let writers: Vec<_> = history
        .entries
        .iter()
        .map(|entry| {
            let writer = &entry.writer;
            (
                entry.time,
                writer.pid,
                writer.comm.clone(),
                writer.exe.clone(),
                writer.exe_file,
                writer.transaction,
            )
        })
        .collect();
    let dpkg = |time| {
        (
            time,
            500,
            ByteText(b"dpkg".to_vec()),
            Some(ByteText(b"/usr/bin/dpkg".to_vec())),
            Some(inode(3)),
            Some(TransactionRef { id: 7, depth: 0 }),
        )
    };
    let vi = (140, 600, ByteText(b"vi".to_vec()), None, None, None);
    assert_eq!(writers, vec![dpkg(120), dpkg(130), vi]);
}
