//! Apply-throughput benchmark of the store, for `cargo xtask bench` (run it in release mode):
//! synthetic dpkg-like, busy-host and recorder-workload-(a) event streams applied in batches to a
//! fresh store in a temporary directory, reported as events per second beside the 100,000 events/s
//! requirement.

use std::{path::Path, time::Instant};

use serde::Serialize;

use super::{Store, StoreError};
use crate::{
    config::RecorderConfig,
    events::{
        Actor, Event, ExecEvent, ExitEvent, FileEvent, FileId, FileOp, ForkEvent, PathOrigin,
        ReportedPath, TransactionRef,
    },
};

/// The file-operation rate the store must sustain.
pub const REQUIRED_EVENTS_PER_SECOND: f64 = 100_000.0;

/// One measured scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputResult {
    pub scenario: &'static str,
    pub events: usize,
    pub batch_size: usize,
    /// Wall-clock time of applying all batches.
    pub seconds: f64,
    pub events_per_second: f64,
    /// CPU time (user + system) of the applying thread: unaffected by other load on the host.
    pub cpu_seconds: f64,
    pub events_per_cpu_second: f64,
    /// `events_per_second / REQUIRED_EVENTS_PER_SECOND`: above 1 meets the requirement.
    pub ratio_to_required: f64,
    pub bytes_on_disk: u64,
}

/// Which mix of events a scenario applies.
#[derive(Debug, Clone, Copy)]
enum Mix {
    /// Every operation inside a watched root (worst case: everything goes to disk).
    AllWatched,
    /// 5% inside watched roots, the rest elsewhere (a busy host: logs, temp files).
    MostlyUnwatched,
    /// The recorder benchmark's workload (a) inside a watched root: one process creating
    /// `fN.tmp`, renaming it to `fN` and unlinking it, a fresh inode each time.
    CreateRenameUnlink,
}

/// Runs the scenarios (all, or only the one named `only`) with `events` file events each, batches
/// of `batch_size`, in stores under `scratch` (a fresh subdirectory per scenario, removed
/// afterwards).
pub fn apply_throughput(
    scratch: &Path,
    events: usize,
    batch_size: usize,
    only: Option<&str>,
) -> Result<Vec<ThroughputResult>, StoreError> {
    let mut results = Vec::new();
    for (scenario, mix) in [
        ("all_watched", Mix::AllWatched),
        ("mostly_unwatched", Mix::MostlyUnwatched),
        ("create_rename_unlink", Mix::CreateRenameUnlink),
    ] {
        if only.is_some_and(|only| only != scenario) {
            continue;
        }
        let dir = scratch.join(format!("store-bench-{scenario}-{}", std::process::id()));
        let result = run_scenario(&dir, scenario, mix, events, batch_size.max(1));
        let _ = std::fs::remove_dir_all(&dir);
        results.push(result?);
    }
    Ok(results)
}

fn run_scenario(
    dir: &Path,
    scenario: &'static str,
    mix: Mix,
    count: usize,
    batch_size: usize,
) -> Result<ThroughputResult, StoreError> {
    let recorder = RecorderConfig::default();
    let mut store = Store::open_for_boot(dir, &recorder, "bench-boot")?;
    let stream = match mix {
        Mix::CreateRenameUnlink => create_rename_unlink(count),
        mix => synthetic_events(mix, count),
    };
    let started = Instant::now();
    let cpu_started = thread_cpu_seconds();
    for batch in stream.chunks(batch_size) {
        store.apply(batch)?;
    }
    let cpu_seconds = thread_cpu_seconds() - cpu_started;
    let seconds = started.elapsed().as_secs_f64();
    let events_per_second = stream.len() as f64 / seconds.max(f64::EPSILON);
    Ok(ThroughputResult {
        scenario,
        events: stream.len(),
        batch_size,
        seconds,
        events_per_second,
        cpu_seconds,
        events_per_cpu_second: stream.len() as f64 / cpu_seconds.max(f64::EPSILON),
        ratio_to_required: events_per_second / REQUIRED_EVENTS_PER_SECOND,
        bytes_on_disk: store.stats()?.bytes_on_disk,
    })
}

/// User plus system CPU time of the calling thread.
fn thread_cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a full `rusage` into the pointer it is given.
    let status = unsafe { libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()) };
    if status != 0 {
        return 0.0;
    }
    // SAFETY: initialised by the successful call above (and zeroed before it).
    let usage = unsafe { usage.assume_init() };
    let seconds = |time: libc::timeval| time.tv_sec as f64 + time.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

fn actor(pid: u32, transaction: Option<TransactionRef>) -> Actor {
    Actor {
        pid,
        tid: pid,
        ppid: 1,
        uid: 0,
        euid: 0,
        start_time_ns: u64::from(pid) * 1_000,
        comm: b"writer".to_vec(),
        transaction,
    }
}

fn path(bytes: Vec<u8>) -> ReportedPath {
    ReportedPath {
        bytes,
        origin: PathOrigin::Kernel,
        truncated: false,
    }
}

/// A stream of `count` file events from 64 processes (each exec'd first), with a fork and exit
/// now and then; every tenth file event a rename of a fresh `.dpkg-new` file.
fn synthetic_events(mix: Mix, count: usize) -> Vec<Event> {
    let mut events = Vec::with_capacity(count + count / 50 + 64);
    let processes = 64u32;
    for pid in 1000..1000 + processes {
        events.push(Event::Exec(ExecEvent {
            time: 1,
            actor: actor(pid, None),
            exe: path(format!("/usr/bin/tool{pid}").into_bytes()),
            exe_file: FileId {
                dev: 2049,
                ino: u64::from(pid),
            },
            argv0: b"tool".to_vec(),
            cmdline: b"tool\0--flag".to_vec(),
            cgroup_id: 1,
            starts_transaction: false,
        }));
    }
    for index in 0..count {
        let time = 1_000 + index as u64 * 10;
        let pid = 1000 + (index as u32 % processes);
        let watched = match mix {
            Mix::AllWatched | Mix::CreateRenameUnlink => true,
            Mix::MostlyUnwatched => index % 20 == 0,
        };
        let directory: &[u8] = if watched {
            b"/usr/lib/bench"
        } else {
            b"/var/tmp/bench"
        };
        let ino = 100_000 + (index as u64 % 50_000);
        let mut name = directory.to_vec();
        name.extend_from_slice(format!("/file{}", ino).as_bytes());
        let (op, target) = if index % 10 == 9 {
            let mut target = name.clone();
            name.extend_from_slice(b".dpkg-new");
            (FileOp::Rename, Some(path(target.split_off(0))))
        } else {
            (FileOp::OpenWrite, None)
        };
        events.push(Event::File(FileEvent {
            time,
            actor: actor(pid, None),
            op,
            path: path(name),
            file: Some(FileId { dev: 2049, ino }),
            flags: (libc::O_WRONLY | libc::O_TRUNC) as u64,
            target,
            replaced: None,
        }));
        if index % 100 == 50 {
            let child = 50_000 + index as u32;
            events.push(Event::Fork(ForkEvent {
                time,
                parent: actor(pid, None),
                child_pid: child,
                child_start_time_ns: u64::from(child) * 1_000,
            }));
            events.push(Event::Exit(ExitEvent {
                time: time + 1,
                actor: actor(child, None),
                exit_status: 0,
                ends_transaction: false,
            }));
        }
    }
    events
}

/// About `count` events of workload (a): per file an exec'd writer's create, rename and unlink.
fn create_rename_unlink(count: usize) -> Vec<Event> {
    let pid = 4242;
    let mut events = vec![Event::Exec(ExecEvent {
        time: 1,
        actor: actor(pid, None),
        exe: path(b"/usr/local/bin/bench-files".to_vec()),
        exe_file: FileId { dev: 2049, ino: 7 },
        argv0: b"bench-files".to_vec(),
        cmdline: b"bench-files\x00/usr/lib/bench\x00100000".to_vec(),
        cgroup_id: 1,
        starts_transaction: false,
    })];
    for index in 0..count.div_ceil(3) {
        let time = 1_000 + index as u64 * 30;
        let file = Some(FileId {
            dev: 2049,
            ino: 1_000_000 + index as u64,
        });
        let written = path(format!("/usr/lib/bench/f{index}.tmp").into_bytes());
        let renamed = path(format!("/usr/lib/bench/f{index}").into_bytes());
        let event = |time, op, path: &ReportedPath, target: Option<&ReportedPath>, flags| {
            Event::File(FileEvent {
                time,
                actor: actor(pid, None),
                op,
                path: path.clone(),
                file,
                flags,
                target: target.cloned(),
                replaced: None,
            })
        };
        let created = (libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC) as u64;
        events.push(event(time, FileOp::OpenWrite, &written, None, created));
        events.push(event(
            time + 10,
            FileOp::Rename,
            &written,
            Some(&renamed),
            0,
        ));
        events.push(event(time + 20, FileOp::Unlink, &renamed, None, 0));
    }
    events
}
