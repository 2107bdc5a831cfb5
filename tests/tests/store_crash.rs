//! Crash safety of the provenance store: a writer process applying batches is killed with
//! SIGKILL mid-stream; every batch it reported committed must be intact on reopen, and the
//! reopened store must record a daemon-down gap from the writer's last sign of life.
//!
//! The writer is this test binary re-executed with `STORE_CRASH_WRITER=<state dir>`.

use std::{
    io::{BufRead, BufReader},
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use verifier::{
    config::RecorderConfig,
    events::{Actor, Event, FileEvent, FileId, FileOp, PathOrigin, ReportedPath},
    store::{GapKind, Store},
};

const WRITER_ENV: &str = "STORE_CRASH_WRITER";
const BATCH: u64 = 500;
const WATCHED: &str = "/usr/lib/store-crash-test";

fn recorder() -> RecorderConfig {
    RecorderConfig {
        watched_roots: vec![PathBuf::from(WATCHED)],
        ..RecorderConfig::default()
    }
}

/// Batch `n`: `BATCH` writes to `/usr/lib/store-crash-test/file<n>` (inode 1000 + n).
fn batch(n: u64) -> Vec<Event> {
    let path = format!("{WATCHED}/file{n}");
    (0..BATCH)
        .map(|index| {
            Event::File(FileEvent {
                time: 1_000_000 + n * BATCH + index,
                actor: Actor {
                    pid: 77,
                    tid: 77,
                    ppid: 1,
                    uid: 0,
                    euid: 0,
                    start_time_ns: 5,
                    comm: b"writer".to_vec(),
                    transaction: None,
                },
                op: FileOp::OpenWrite,
                path: ReportedPath {
                    bytes: path.as_bytes().to_vec(),
                    origin: PathOrigin::Kernel,
                    truncated: false,
                },
                file: Some(FileId {
                    dev: 1,
                    ino: 1000 + n,
                }),
                flags: libc::O_WRONLY as u64,
                target: None,
                replaced: None,
            })
        })
        .collect()
}

/// The writer: applies batches forever, reporting each commit on stdout.
fn run_writer(state: &Path) -> ! {
    let mut store = Store::open(state, &recorder()).unwrap();
    let mut n = 0;
    loop {
        store.apply(&batch(n)).unwrap();
        store.heartbeat().unwrap();
        println!("committed {n}");
        n += 1;
    }
}

#[test]
fn committed_batches_survive_sigkill() {
    if let Some(state) = std::env::var_os(WRITER_ENV) {
        run_writer(Path::new(&state));
    }
    let state = std::env::temp_dir().join(format!("verifier-store-crash-{}", std::process::id()));
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "committed_batches_survive_sigkill",
            "--nocapture",
        ])
        .env(WRITER_ENV, &state)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut last_committed = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("committed ") {
            let n: u64 = n.parse().unwrap();
            last_committed = Some(n);
            if n >= 20 {
                break;
            }
        }
    }
    // SIGKILL while it is in the middle of further batches.
    child.kill().unwrap();
    child.wait().unwrap();
    let last_committed = last_committed.expect("the writer committed nothing");

    let store = Store::open(&state, &recorder()).unwrap();
    for n in 0..=last_committed {
        let path = format!("{WATCHED}/file{n}");
        let history = store
            .file_history(
                Path::new(std::ffi::OsStr::from_bytes(path.as_bytes())),
                None,
            )
            .unwrap();
        assert_eq!(history.entries.len() as u64, BATCH, "batch {n} incomplete");
    }
    // A batch is all or nothing: the one being written when killed is whole or absent.
    let next = format!("{WATCHED}/file{}", last_committed + 1);
    let partial = store.file_history(Path::new(&next), None).unwrap();
    assert!(partial.entries.is_empty() || partial.entries.len() as u64 == BATCH);

    let gaps = store.gaps_overlapping(1, u64::MAX).unwrap();
    assert!(
        gaps.iter()
            .any(|gap| gap.kind == GapKind::DaemonDown
                && gap.detail.contains("without a clean stop")),
        "{gaps:?}"
    );
    drop(store);
    std::fs::remove_dir_all(&state).unwrap();
}
