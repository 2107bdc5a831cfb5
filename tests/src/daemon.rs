//! An isolated daemon instance for one test: its own state directory, socket, AR log and alerts.log
//! in a temp directory, the real `verifier daemon` process, and a clean stop (SIGTERM) at the end.
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::workspace_binary;

pub struct TestDaemon {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub ar_log: PathBuf,
    pub alerts_log: PathBuf,
    pub state_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl TestDaemon {
    /// Starts a daemon; `extra_toml` is appended to the generated configuration (sections only).
    pub fn start(extra_toml: &str) -> Self {
        Self::start_with("", extra_toml)
    }

    /// Starts a daemon with more `[active_response]` keys (`active_response_keys`, `key = value`
    /// lines) and `extra_toml` appended (sections only).
    pub fn start_with(active_response_keys: &str, extra_toml: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        let state_dir = root.join("state");
        let socket = root.join("run/verifier.sock");
        let ar_log = root.join("logs/active-responses.log");
        let alerts_log = root.join("logs/alerts/alerts.log");
        fs::create_dir_all(root.join("logs/alerts")).expect("logs dir");
        let config = root.join("config.toml");
        let text = format!(
            "state_dir = {state_dir:?}\nsocket = {socket:?}\n\n[active_response]\n\
             log_path = {ar_log:?}\nalerts_log = {alerts_log:?}\n{active_response_keys}\n\n{extra_toml}\n"
        );
        fs::write(&config, text).expect("write config");
        let log = root.join("daemon.log");
        let mut daemon = Self {
            config,
            socket,
            ar_log,
            alerts_log,
            state_dir,
            log,
            child: None,
            dir,
        };
        daemon.spawn();
        daemon
    }

    fn spawn(&mut self) {
        let log = fs::File::create(&self.log).expect("daemon log");
        let child = Command::new(workspace_binary("verifier"))
            .arg("--config")
            .arg(&self.config)
            .arg("daemon")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start verifier daemon");
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(120));
    }

    fn wait_ready(&mut self, timeout: Duration) {
        let started = Instant::now();
        while !self.socket.exists() {
            let child = self.child.as_mut().expect("daemon running");
            if let Some(status) = child.try_wait().expect("poll daemon") {
                panic!("daemon exited early ({status}):\n{}", self.log_text());
            }
            assert!(
                started.elapsed() < timeout,
                "daemon not ready within {timeout:?}:\n{}",
                self.log_text()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the daemon with SIGTERM and returns its exit status.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("daemon running");
        let pid = i32::try_from(child.id()).expect("pid");
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        child.wait().expect("wait for daemon")
    }

    /// Starts the daemon again after [`TestDaemon::stop`], with the same state.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the daemon is still running");
        self.spawn();
    }

    /// Stops and starts the daemon again with the same state.
    pub fn restart(&mut self) {
        let status = self.stop();
        assert!(
            status.success(),
            "daemon exit {status}:\n{}",
            self.log_text()
        );
        self.spawn();
    }

    /// The daemon's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A `kB` line of the daemon's `/proc/PID/status` (`VmHWM`, `VmRSS`...), in bytes.
    pub fn memory_bytes(&self, field: &str) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let value = status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?;
        let kib: u64 = value.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kib * 1024)
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the daemon's log contains `needle`; panics after `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: std::time::Duration) {
        let deadline = std::time::Instant::now() + timeout;
        while !self.log_text().contains(needle) {
            assert!(
                std::time::Instant::now() < deadline,
                "the daemon did not log {needle:?} within {timeout:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    pub fn ar_log_text(&self) -> String {
        fs::read_to_string(&self.ar_log).unwrap_or_default()
    }

    /// Runs `verifier <args>` against this instance.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(workspace_binary("verifier"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("run verifier")
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop();
        }
    }
}
