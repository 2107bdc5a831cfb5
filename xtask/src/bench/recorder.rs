//! Recorder overhead: wall time of two write-heavy workloads with the daemon running against the
//! same workloads without it, in the same run, runs alternating (without/with, then with/without)
//! so drift on a shared machine falls on both sides alike.
//!
//! (a) `bench-files` (the tests crate): create + write + close + rename + unlink of 100,000 small
//! files, syscalls only; (b) `dpkg -i` of a throwaway package with 5,000 files (built once),
//! purged after each run. The daemon is the release binary with a configuration of its own
//! (state directory, socket, logs in a scratch directory; no enrollment) whose watched roots
//! contain the workload, so every event is stored: the worst case. Each daemon run also reports
//! the events the kernel could not hand over (target 0), the daemon's peak RSS (`VmHWM`) and its
//! RSS once the store caught up (`VmRSS`), the store size after the load, the daemon's CPU time,
//! and how long after the workload ended the store had caught up (every event recorded before the
//! end stored). One more daemon run per workload, not timed against the others, has the kernel's
//! BPF run-time statistics on and reports how long the daemon's programs ran inside the
//! workload's syscalls: the part of the overhead that is the kernel side's, without the noise of
//! the wall-time ratio.
use std::{
    collections::HashSet,
    fmt::Write as _,
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, bail, ensure};

use super::{
    Options, Report,
    lock::{self, PackageLock},
    report::{Comparison, Samples},
};
use crate::process::{cargo, run_checked, workspace_root};

/// Files in workload (a).
const FILE_COUNT: u64 = 100_000;
/// Directories × files per directory in the package of workload (b).
const DEB_DIRS: usize = 50;
const DEB_FILES_PER_DIR: usize = 100;
/// The target: at most this much wall time with the daemon running.
const TARGET_OVERHEAD: f64 = 1.05;
/// Serialises dpkg runs with the tests and benchmarks of parallel sessions.
/// Longest wait for the daemon to start, and for the store to catch up after a workload.
const DAEMON_READY_TIMEOUT: Duration = Duration::from_secs(120);
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(600);
/// How often the store's progress is asked while it catches up.
const CATCH_UP_POLL: Duration = Duration::from_millis(100);
/// Quiet time before each timed run, after dirty pages were written back (daemon start-up work
/// settles).
const SETTLE: Duration = Duration::from_millis(1500);

pub fn run(options: &Options, report: &mut Report) -> anyhow::Result<()> {
    run_checked(cargo().args([
        "build",
        "--release",
        "-p",
        "verifier-userspace",
        "--bin",
        "verifier",
        "-p",
        "tests",
        "--bin",
        "bench-files",
    ]))?;
    let scratch = Scratch::create()?;
    let rounds = options.repeat.max(1);
    let files_workload = FilesWorkload::new(&scratch)?;
    let mut files = measure(&scratch, &files_workload, rounds)?;
    files.kernel = kernel_program_time(&scratch, &files_workload, rounds)?;
    let deb = DebWorkload::build(&scratch)?;
    let mut dpkg = measure(&scratch, &deb, rounds)?;
    dpkg.kernel = kernel_program_time(&scratch, &deb, rounds)?;
    drop(deb);
    for result in [&files, &dpkg] {
        result.add_to(report);
    }
    report.sections.push(section(&[&files, &dpkg]));
    report.raw.push((
        "recorder".into(),
        serde_json::json!({ "files": files.json(), "dpkg": dpkg.json() }),
    ));
    Ok(())
}

/// A scratch directory for daemon state, sockets, logs and workloads, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn create() -> anyhow::Result<Self> {
        // Not /tmp: it may be a tmpfs, and the workloads should hit the disk the system uses.
        let dir = PathBuf::from(format!(
            "/var/tmp/verifier-recorder-bench-{}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// One workload, run with and without the daemon.
trait Workload {
    /// Short name (report rows, raw JSON, state directory names).
    fn name(&self) -> &'static str;
    fn description(&self) -> String;
    /// The roots the daemon watches while this workload runs.
    fn watched_roots(&self) -> Vec<PathBuf>;
    /// Prepares (untimed), e.g. takes the dpkg lock.
    fn prepare(&self) -> anyhow::Result<Option<PackageLock>>;
    /// Runs it once and returns its wall time.
    fn run_once(&self) -> anyhow::Result<Duration>;
    /// Cleans up after one run (untimed; the daemon may still be watching).
    fn clean(&self) -> anyhow::Result<()>;
}

/// Workload (a): `bench-files` in a directory under a watched root.
struct FilesWorkload {
    binary: PathBuf,
    dir: PathBuf,
}

impl FilesWorkload {
    fn new(scratch: &Scratch) -> anyhow::Result<Self> {
        let dir = scratch.path().join("files");
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self {
            binary: workspace_root().join("target/release/bench-files"),
            dir,
        })
    }
}

impl Workload for FilesWorkload {
    fn name(&self) -> &'static str {
        "files"
    }

    fn description(&self) -> String {
        format!(
            "(a) create+write+rename+unlink of {} small files",
            thousands(FILE_COUNT)
        )
    }

    fn watched_roots(&self) -> Vec<PathBuf> {
        vec![self.dir.clone()]
    }

    fn prepare(&self) -> anyhow::Result<Option<PackageLock>> {
        Ok(None)
    }

    fn run_once(&self) -> anyhow::Result<Duration> {
        let output = Command::new(&self.binary)
            .arg(&self.dir)
            .arg(FILE_COUNT.to_string())
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("running {}", self.binary.display()))?;
        ensure!(
            output.status.success(),
            "bench-files failed: {}",
            output.status
        );
        let seconds: f64 = String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .context("bench-files printed no wall time")?;
        Ok(Duration::from_secs_f64(seconds))
    }

    fn clean(&self) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Workload (b): `dpkg -i` of a package with `DEB_DIRS × DEB_FILES_PER_DIR` files.
struct DebWorkload {
    package: String,
    deb: PathBuf,
    install_root: PathBuf,
}

impl DebWorkload {
    fn build(scratch: &Scratch) -> anyhow::Result<Self> {
        let package = format!("verifier-bench-files-{}", std::process::id());
        let install_root = PathBuf::from("/opt").join(&package);
        let root = scratch.path().join("deb-root");
        let payload = root.join(install_root.strip_prefix("/").unwrap_or(&install_root));
        for d in 0..DEB_DIRS {
            let dir = payload.join(format!("d{d:02}"));
            fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for f in 0..DEB_FILES_PER_DIR {
                let file = dir.join(format!("f{f:03}"));
                fs::write(&file, format!("benchmark file {d}/{f}\n"))
                    .with_context(|| format!("writing {}", file.display()))?;
            }
        }
        let debian = root.join("DEBIAN");
        fs::create_dir_all(&debian)?;
        fs::write(
            debian.join("control"),
            format!(
                "Package: {package}\nVersion: 1.0\nArchitecture: all\n\
                 Maintainer: verifier benchmark <root@localhost>\n\
                 Description: throwaway package of the recorder benchmark\n"
            ),
        )?;
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755))?;
        let deb = scratch.path().join(format!("{package}_1.0_all.deb"));
        run_checked(
            Command::new("dpkg-deb")
                .args(["--root-owner-group", "-Zgzip", "--build"])
                .arg(&root)
                .arg(&deb)
                .stdout(Stdio::null()),
        )?;
        fs::remove_dir_all(&root).ok();
        let workload = Self {
            package,
            deb,
            install_root,
        };
        let _lock = lock::acquire_within_run()?;
        workload.purge()?;
        Ok(workload)
    }

    fn purge(&self) -> anyhow::Result<()> {
        let output = Command::new("dpkg")
            .args(["--purge", &self.package])
            .output()
            .context("running dpkg --purge")?;
        ensure!(
            output.status.success(),
            "dpkg --purge {} failed: {}",
            self.package,
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(())
    }
}

impl Workload for DebWorkload {
    fn name(&self) -> &'static str {
        "dpkg"
    }

    fn description(&self) -> String {
        format!(
            "(b) dpkg -i of a package with {} files",
            thousands((DEB_DIRS * DEB_FILES_PER_DIR) as u64)
        )
    }

    fn watched_roots(&self) -> Vec<PathBuf> {
        // The package's files and dpkg's own database: every write dpkg makes is stored.
        vec![PathBuf::from("/opt"), PathBuf::from("/var/lib/dpkg")]
    }

    fn prepare(&self) -> anyhow::Result<Option<PackageLock>> {
        lock::acquire_within_run().map(Some)
    }

    fn run_once(&self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let output = Command::new("dpkg")
            .arg("-i")
            .arg(&self.deb)
            .output()
            .context("running dpkg -i")?;
        let wall = started.elapsed();
        ensure!(
            output.status.success(),
            "dpkg -i {} failed: {}",
            self.deb.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(wall)
    }

    fn clean(&self) -> anyhow::Result<()> {
        self.purge()
    }
}

impl Drop for DebWorkload {
    fn drop(&mut self) {
        if self.install_root.exists()
            && let Ok(_lock) = lock::acquire_within_run()
        {
            let _ = self.purge();
        }
    }
}

/// What one run with the daemon measured besides the wall time.
#[derive(Debug, Default, Clone)]
struct DaemonFigures {
    lost: f64,
    emitted: f64,
    stored: f64,
    gaps: f64,
    failed_batches: f64,
    caught_up_secs: f64,
    peak_rss_mib: f64,
    rss_mib: f64,
    store_mib: f64,
    cpu_secs: f64,
}

/// The daemon's kernel programs during one run of a workload, with BPF run-time statistics on.
#[derive(Debug, Clone, Copy)]
struct KernelTime {
    /// Time the programs ran (inside the workload's syscalls and the other events they watch).
    program: Duration,
    /// Times they ran.
    runs: u64,
    /// The workload's wall time in that run (statistics on: not comparable with the rounds).
    wall: Duration,
}

/// Everything measured for one workload.
struct WorkloadResult {
    name: &'static str,
    description: String,
    without: Vec<Duration>,
    with: Vec<Duration>,
    /// The extra run with BPF statistics on (`None` if they could not be enabled).
    kernel: Option<KernelTime>,
    daemon: Vec<DaemonFigures>,
    /// Other processes' `sys_exit` programs attached during each run (noise indicator).
    foreign_recorders: Vec<usize>,
}

fn measure(
    scratch: &Scratch,
    workload: &dyn Workload,
    rounds: usize,
) -> anyhow::Result<WorkloadResult> {
    let mut result = WorkloadResult {
        name: workload.name(),
        description: workload.description(),
        without: Vec::new(),
        with: Vec::new(),
        kernel: None,
        daemon: Vec::new(),
        foreign_recorders: Vec::new(),
    };
    for round in 0..rounds {
        // Alternate the order so a drifting machine weighs on both sides alike.
        let order = if round.is_multiple_of(2) {
            [false, true]
        } else {
            [true, false]
        };
        for with_daemon in order {
            eprintln!(
                "xtask: recorder bench {} round {}/{rounds} {}",
                workload.name(),
                round + 1,
                if with_daemon {
                    "with daemon"
                } else {
                    "without daemon"
                }
            );
            if with_daemon {
                let (wall, figures, foreign) = run_with_daemon(scratch, workload, round)?;
                result.with.push(wall);
                result.daemon.push(figures);
                result.foreign_recorders.push(foreign);
            } else {
                settle();
                let foreign = attached_sys_exit_programs();
                let lock = workload.prepare()?;
                let wall = workload.run_once()?;
                workload.clean()?;
                drop(lock);
                result.without.push(wall);
                result.foreign_recorders.push(foreign);
            }
        }
    }
    Ok(result)
}

/// Starts every timed run from the same state: the previous run's dirty pages (100,000 unlinked
/// files, a purged package) written back, so no run pays for its predecessor's writeback, then a
/// quiet pause. (dpkg's first round stays several times faster than the later ones on both
/// sides even so; the cause is not this.)
fn settle() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    thread::sleep(SETTLE);
}

fn run_with_daemon(
    scratch: &Scratch,
    workload: &dyn Workload,
    round: usize,
) -> anyhow::Result<(Duration, DaemonFigures, usize)> {
    let daemon = BenchDaemon::start(scratch, workload, round)?;
    settle();
    let foreign = attached_sys_exit_programs().saturating_sub(1);
    let before = daemon.status()?;
    let lock = workload.prepare()?;
    let wall = workload.run_once()?;
    let ended = wall_clock_ns();
    let ended_at = Instant::now();
    let caught_up = daemon.wait_caught_up(ended)?;
    let caught_up_secs = caught_up.saturating_duration_since(ended_at).as_secs_f64();
    let after = daemon.status()?;
    let number = |status: &serde_json::Value, pointer: &str| {
        status
            .pointer(pointer)
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(f64::NAN)
    };
    let delta = |pointer: &str| number(&after, pointer) - number(&before, pointer);
    let figures = DaemonFigures {
        lost: delta("/recorder/counters/lost"),
        emitted: delta("/recorder/counters/emitted"),
        stored: delta("/intake/events_stored"),
        gaps: delta("/store/stats/gaps"),
        failed_batches: number(&after, "/intake/failed_batches"),
        caught_up_secs,
        peak_rss_mib: daemon.status_kib("VmHWM")? / 1024.0,
        rss_mib: daemon.status_kib("VmRSS")? / 1024.0,
        store_mib: number(&after, "/store/stats/bytes_on_disk") / (1024.0 * 1024.0),
        cpu_secs: daemon.cpu_seconds()?,
    };
    workload.clean()?;
    drop(lock);
    daemon.stop()?;
    Ok((wall, figures, foreign))
}

/// One run of `workload` with the daemon and the kernel's BPF run-time statistics on (they cost
/// two clock reads per program run, so this run is not one of the timed rounds): how long the
/// daemon's programs ran. `None`, with a warning, when the statistics cannot be enabled.
fn kernel_program_time(
    scratch: &Scratch,
    workload: &dyn Workload,
    round: usize,
) -> anyhow::Result<Option<KernelTime>> {
    eprintln!(
        "xtask: recorder bench {}: one more run with BPF run-time statistics",
        workload.name()
    );
    let others = loaded_program_ids();
    let daemon = BenchDaemon::start(scratch, workload, round)?;
    let ours = |id: &u32| !others.contains(id);
    settle();
    let statistics = match aya::sys::enable_stats(aya::sys::Stats::RunTime) {
        Ok(fd) => fd,
        Err(error) => {
            eprintln!("xtask: cannot enable BPF run-time statistics ({error}); not measured");
            daemon.stop()?;
            return Ok(None);
        }
    };
    let lock = workload.prepare()?;
    // Every process's syscalls run the programs: on a quiet machine, the workload's.
    let before = program_time(ours);
    let wall = workload.run_once()?;
    let after = program_time(ours);
    drop(statistics);
    workload.clean()?;
    drop(lock);
    daemon.stop()?;
    Ok(Some(KernelTime {
        program: after.0.saturating_sub(before.0),
        runs: after.1.saturating_sub(before.1),
        wall,
    }))
}

/// Ids of the BPF programs loaded now.
fn loaded_program_ids() -> HashSet<u32> {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .map(|program| program.id())
        .collect()
}

/// Total run time and run count of the loaded programs `pick` selects by id.
fn program_time(pick: impl Fn(&u32) -> bool) -> (Duration, u64) {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter(|program| pick(&program.id()))
        .fold((Duration::ZERO, 0), |(time, runs), program| {
            (time + program.run_time(), runs + program.run_count())
        })
}

/// The release daemon with a benchmark configuration in the scratch directory.
struct BenchDaemon {
    child: Option<Child>,
    config: PathBuf,
    state_dir: PathBuf,
    log: PathBuf,
}

impl BenchDaemon {
    fn start(scratch: &Scratch, workload: &dyn Workload, round: usize) -> anyhow::Result<Self> {
        let dir = scratch
            .path()
            .join(format!("daemon-{}-{round}", workload.name()));
        fs::create_dir_all(dir.join("logs"))?;
        let state_dir = dir.join("state");
        let socket = dir.join("verifier.sock");
        let roots: Vec<String> = workload
            .watched_roots()
            .iter()
            .map(|root| format!("{:?}", root.display().to_string()))
            .collect();
        let config = dir.join("config.toml");
        fs::write(
            &config,
            format!(
                "state_dir = {:?}\nsocket = {:?}\n\n[recorder]\nwatched_roots = [{}]\n\n\
                 [policy]\nenroll = false\n\n[active_response]\nlog_path = {:?}\nalerts_log = {:?}\n",
                state_dir.display().to_string(),
                socket.display().to_string(),
                roots.join(", "),
                dir.join("logs/active-responses.log").display().to_string(),
                dir.join("logs/alerts.log").display().to_string(),
            ),
        )?;
        let log = dir.join("daemon.log");
        let child = Command::new(verifier_binary())
            .arg("--config")
            .arg(&config)
            .arg("daemon")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log)?)
            .spawn()
            .context("starting the verifier daemon")?;
        let mut daemon = Self {
            child: Some(child),
            config,
            state_dir,
            log,
        };
        let started = Instant::now();
        while !socket.exists() {
            if let Some(child) = daemon.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                daemon.child = None;
                bail!(
                    "the daemon exited at start ({status}):\n{}",
                    daemon.log_text()
                );
            }
            ensure!(
                started.elapsed() < DAEMON_READY_TIMEOUT,
                "the daemon was not ready within {DAEMON_READY_TIMEOUT:?}:\n{}",
                daemon.log_text()
            );
            thread::sleep(Duration::from_millis(50));
        }
        Ok(daemon)
    }

    fn pid(&self) -> anyhow::Result<u32> {
        self.child
            .as_ref()
            .map(Child::id)
            .context("the daemon is not running")
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `verifier status --json`.
    fn status(&self) -> anyhow::Result<serde_json::Value> {
        let output = Command::new(verifier_binary())
            .arg("--config")
            .arg(&self.config)
            .args(["status", "--json"])
            .output()
            .context("running verifier status")?;
        ensure!(
            output.status.success(),
            "verifier status failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).context("verifier status --json output")
    }

    /// Waits until the store holds every event recorded before `time` (ns since the epoch);
    /// returns when it first saw so.
    fn wait_caught_up(&self, time: u64) -> anyhow::Result<Instant> {
        let started = Instant::now();
        loop {
            let status = self.status()?;
            let through = status
                .pointer("/intake/stored_through_ns")
                .and_then(serde_json::Value::as_u64)
                .context("status has no intake.stored_through_ns")?;
            if through >= time {
                return Ok(Instant::now());
            }
            ensure!(
                started.elapsed() < CATCH_UP_TIMEOUT,
                "the store did not catch up within {CATCH_UP_TIMEOUT:?}"
            );
            thread::sleep(CATCH_UP_POLL);
        }
    }

    /// A memory figure of the daemon's `/proc` status (`VmHWM`, `VmRSS`), in KiB.
    fn status_kib(&self, field: &str) -> anyhow::Result<f64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid()?))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no {field} in the daemon's /proc status"))
    }

    /// User + system CPU time of the daemon so far.
    fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid()?))?;
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let rest = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |index: usize| -> f64 {
            fields
                .get(index)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        // SAFETY: sysconf has no preconditions.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        Ok((ticks(11) + ticks(12)) / per_second)
    }

    fn stop(mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = i32::try_from(child.id())?;
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let status = child.wait()?;
        ensure!(
            status.success(),
            "the daemon exited with {status}:\n{}",
            self.log_text()
        );
        let _ = fs::remove_dir_all(&self.state_dir);
        Ok(())
    }
}

impl Drop for BenchDaemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(pid) = i32::try_from(child.id()) {
                // SAFETY: kill(2) on our own child.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let _ = child.wait();
        }
    }
}

fn verifier_binary() -> PathBuf {
    workspace_root().join("target/release/verifier")
}

/// `sys_exit` programs loaded on the machine right now (each verifier daemon has one).
fn attached_sys_exit_programs() -> usize {
    Command::new("bpftool")
        .args(["prog", "show"])
        .output()
        .map(|output| {
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .filter(|line| line.contains("name sys_exit"))
                .count()
        })
        .unwrap_or(0)
}

fn wall_clock_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
        })
}

impl WorkloadResult {
    /// Median with the daemon over median without it.
    fn overhead(&self) -> f64 {
        seconds(&self.with).median() / seconds(&self.without).median()
    }

    /// The median of each round's own ratio (its two runs follow each other, so slow drift of a
    /// shared machine cancels out within the pair).
    fn paired_overhead(&self) -> f64 {
        Samples {
            unit: "×",
            values: self
                .with
                .iter()
                .zip(&self.without)
                .map(|(with, without)| with.as_secs_f64() / without.as_secs_f64())
                .collect(),
        }
        .median()
    }

    /// Whether both overhead estimates are within the target and nothing was lost.
    fn met(&self) -> bool {
        self.overhead() <= TARGET_OVERHEAD
            && self.paired_overhead() <= TARGET_OVERHEAD
            && self.figure(|f| f.lost, "events").max() == 0.0
    }

    fn figure(&self, pick: fn(&DaemonFigures) -> f64, unit: &'static str) -> Samples {
        Samples {
            unit,
            values: self.daemon.iter().map(pick).collect(),
        }
    }

    fn figures(&self) -> Vec<(&'static str, Samples)> {
        vec![
            ("events lost (target 0)", self.figure(|f| f.lost, "events")),
            (
                "events emitted by the kernel",
                self.figure(|f| f.emitted, "events"),
            ),
            ("events stored", self.figure(|f| f.stored, "events")),
            ("gaps recorded", self.figure(|f| f.gaps, "gaps")),
            (
                "store caught up after the workload",
                self.figure(|f| f.caught_up_secs, "s"),
            ),
            (
                "daemon peak RSS (VmHWM)",
                self.figure(|f| f.peak_rss_mib, "MiB"),
            ),
            (
                "daemon RSS once caught up (VmRSS)",
                self.figure(|f| f.rss_mib, "MiB"),
            ),
            (
                "store size after the load",
                self.figure(|f| f.store_mib, "MiB"),
            ),
            (
                "daemon CPU time (start to caught up)",
                self.figure(|f| f.cpu_secs, "s"),
            ),
        ]
    }

    /// The kernel programs' time as a share of the median run without the daemon.
    fn kernel_share(&self) -> Option<f64> {
        self.kernel
            .map(|kernel| kernel.program.as_secs_f64() / seconds(&self.without).median())
    }

    fn add_to(&self, report: &mut Report) {
        report.comparisons.push(Comparison {
            benchmark: format!("recorder {}", self.description),
            ours: ("daemon running".into(), seconds(&self.with)),
            baseline: ("no daemon".into(), seconds(&self.without)),
            target: format!(
                "≥ {:.3}× (≤ {TARGET_OVERHEAD}× wall time)",
                1.0 / TARGET_OVERHEAD
            ),
        });
        for (name, samples) in self.figures() {
            report
                .figures
                .push((format!("recorder {}: {name}", self.name), samples));
        }
        if let (Some(kernel), Some(share)) = (self.kernel, self.kernel_share()) {
            let one = |unit, value| Samples {
                unit,
                values: vec![value],
            };
            report.figures.push((
                format!(
                    "recorder {}: kernel programs' run time (one run, BPF statistics on)",
                    self.name
                ),
                one("s", kernel.program.as_secs_f64()),
            ));
            report.figures.push((
                format!(
                    "recorder {}: kernel programs' run time / median without the daemon",
                    self.name
                ),
                one("%", share * 100.0),
            ));
        }
    }

    fn json(&self) -> serde_json::Value {
        let secs = |walls: &[Duration]| walls.iter().map(Duration::as_secs_f64).collect::<Vec<_>>();
        serde_json::json!({
            "description": self.description,
            "without_daemon_s": secs(&self.without),
            "with_daemon_s": secs(&self.with),
            "overhead": self.overhead(),
            "paired_overhead": self.paired_overhead(),
            "target_overhead": TARGET_OVERHEAD,
            "foreign_recorder_programs": self.foreign_recorders,
            "kernel_programs": self.kernel.map(|kernel| serde_json::json!({
                "run_time_s": kernel.program.as_secs_f64(),
                "runs": kernel.runs,
                "workload_wall_s": kernel.wall.as_secs_f64(),
                "share_of_median_without_daemon": self.kernel_share(),
            })),
            "daemon": self.daemon.iter().map(|f| serde_json::json!({
                "lost": f.lost, "emitted": f.emitted, "stored": f.stored, "gaps": f.gaps,
                "failed_batches": f.failed_batches, "caught_up_s": f.caught_up_secs,
                "peak_rss_mib": f.peak_rss_mib, "rss_mib": f.rss_mib, "store_mib": f.store_mib,
                "cpu_s": f.cpu_secs,
            })).collect::<Vec<_>>(),
        })
    }
}

fn seconds(walls: &[Duration]) -> Samples {
    Samples::from_durations(walls)
}

/// The recorder's own table: overhead as the issue states it (with / without, lower is better).
fn section(results: &[&WorkloadResult]) -> String {
    let mut md = String::from(
        "### Recorder overhead (daemon running vs not, every event under a watched root)\n\n\
         Overhead is given two ways: the median with the daemon over the median without it, and \
         the median of each round's own ratio (the two runs of a round follow each other). The \
         target is met when both are within it and no event was lost.\n\n\
         | workload | no daemon | daemon running | overhead (medians) | overhead (paired) | target \
         | met | events lost | store caught up after | peak RSS | RSS once caught up | store size |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let without = seconds(&r.without);
        let with = seconds(&r.with);
        let overhead = r.overhead();
        let paired = r.paired_overhead();
        let lost = r.figure(|f| f.lost, "events");
        let met = r.met();
        let _ = writeln!(
            md,
            "| {} | {:.3} s ({:.3}–{:.3}) | {:.3} s ({:.3}–{:.3}) | {overhead:.3}× | {paired:.3}× | ≤ {TARGET_OVERHEAD}×, 0 lost | {} | {:.0} (max {:.0}) | {:.2} s | {:.1} MiB | {:.1} MiB | {:.1} MiB |",
            r.description,
            without.median(),
            without.min(),
            without.max(),
            with.median(),
            with.min(),
            with.max(),
            if met { "yes" } else { "**no**" },
            lost.median(),
            lost.max(),
            r.figure(|f| f.caught_up_secs, "s").median(),
            r.figure(|f| f.peak_rss_mib, "MiB").max(),
            r.figure(|f| f.rss_mib, "MiB").median(),
            r.figure(|f| f.store_mib, "MiB").median(),
        );
    }
    md.push_str(
        "\nThe daemon's kernel programs run inside the workload's syscalls, so their run time adds to \
         its wall time one for one. One more run per workload, with the kernel's BPF run-time \
         statistics on (not one of the timed rounds), measures it:\n\n\
         | workload | programs' run time | program runs | share of the median without the daemon \
         | workload's wall time in that run | share of that run's wall time |\n\
         |---|---|---|---|---|---|\n",
    );
    for r in results {
        match (r.kernel, r.kernel_share()) {
            (Some(kernel), Some(share)) => {
                let _ = writeln!(
                    md,
                    "| {} | {:.3} s | {} | {:.1}% | {:.3} s | {:.1}% |",
                    r.description,
                    kernel.program.as_secs_f64(),
                    thousands(kernel.runs),
                    share * 100.0,
                    kernel.wall.as_secs_f64(),
                    100.0 * kernel.program.as_secs_f64() / kernel.wall.as_secs_f64(),
                );
            }
            _ => {
                let _ = writeln!(md, "| {} | not measured | | | | |", r.description);
            }
        }
    }
    let foreign: usize = results
        .iter()
        .flat_map(|r| r.foreign_recorders.iter())
        .sum();
    if foreign > 0 {
        let _ = writeln!(
            md,
            "\nOther verifier daemons were running during some runs ({foreign} foreign `sys_exit` \
             programs counted over all runs): their probes slow both sides; the ratios are noisy."
        );
    }
    md
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(without: &[f64], with: &[f64], lost: f64) -> WorkloadResult {
        let walls = |values: &[f64]| {
            values
                .iter()
                .copied()
                .map(Duration::from_secs_f64)
                .collect()
        };
        WorkloadResult {
            name: "files",
            description: "test".into(),
            without: walls(without),
            with: walls(with),
            daemon: with
                .iter()
                .map(|_| DaemonFigures {
                    lost,
                    ..DaemonFigures::default()
                })
                .collect(),
            foreign_recorders: Vec::new(),
            kernel: None,
        }
    }

    /// A machine that slows down between rounds: each round's pair shows the daemon's 4%, the
    /// medians of the two sides do not line up.
    #[test]
    fn paired_overhead_is_the_median_of_each_rounds_ratio() {
        let drifting = result(&[4.0, 5.0, 6.0], &[4.16, 5.2, 6.24], 0.0);
        assert!((drifting.paired_overhead() - 1.04).abs() < 1e-9);
        assert!((drifting.overhead() - 1.04).abs() < 1e-9);
        let one_slow_round = result(&[4.0, 5.0, 4.2], &[4.16, 5.2, 5.5], 0.0);
        assert!((one_slow_round.paired_overhead() - 1.04).abs() < 1e-9);
        assert!(one_slow_round.overhead() > 1.2);
    }

    /// The target is met only when both estimates are within it and nothing was lost.
    #[test]
    fn the_target_needs_both_estimates_and_no_loss() {
        assert!(result(&[4.0, 5.0, 6.0], &[4.16, 5.2, 6.24], 0.0).met());
        assert!(!result(&[4.0, 5.0, 4.2], &[4.16, 5.2, 5.5], 0.0).met());
        assert!(!result(&[4.0, 5.0, 6.0], &[4.16, 5.2, 6.24], 1.0).met());
    }
}
