//! `cargo xtask demo`: the main job. Builds the release binaries, starts the daemon with the default
//! configuration except for a state directory and socket inside `target/demo/`, shows what it attached
//! and that it is healthy, then stops it with SIGTERM and checks it exits cleanly.
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::process::{cargo, require_root, run_checked as run_command, workspace_root};

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Longest wait for the daemon to become ready.
    #[arg(long, default_value_t = 120)]
    pub ready_timeout_secs: u64,
}

/// A demo instance: its directory, configuration and binaries.
struct Instance {
    dir: PathBuf,
    config: PathBuf,
    socket: PathBuf,
    verifier: PathBuf,
}

impl Instance {
    fn prepare() -> anyhow::Result<Self> {
        let root = workspace_root();
        let dir = root.join("target/demo");
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        fs::create_dir_all(dir.join("state"))?;
        let socket = dir.join("verifier.sock");
        let config = dir.join("config.toml");
        let text = format!(
            "# Demo: defaults, except that state and socket live under target/demo.\n\
             state_dir = {:?}\nsocket = {:?}\n",
            dir.join("state"),
            socket
        );
        fs::write(&config, text).with_context(|| format!("writing {}", config.display()))?;
        Ok(Self {
            dir,
            config,
            socket,
            verifier: root.join("target/release/verifier"),
        })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.verifier);
        command.arg("--config").arg(&self.config).args(args);
        command
    }
}

pub fn run(options: &Options) -> anyhow::Result<()> {
    require_root("demo")?;
    run_command(cargo().args(["build", "--release", "--package", "verifier-userspace"]))?;
    let instance = Instance::prepare()?;
    println!(
        "== starting the daemon (state in {})",
        instance.dir.display()
    );
    let mut daemon = instance
        .command(&["daemon"])
        .spawn()
        .context("starting verifier daemon")?;
    let outcome = show_daemon(&instance, &mut daemon, options);
    stop(&mut daemon)?;
    outcome
}

fn show_daemon(instance: &Instance, daemon: &mut Child, options: &Options) -> anyhow::Result<()> {
    wait_ready(
        &instance.socket,
        daemon,
        Duration::from_secs(options.ready_timeout_secs),
    )?;
    println!("== verifier status");
    run_command(&mut instance.command(&["status"]))
}

fn wait_ready(socket: &Path, daemon: &mut Child, timeout: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    while !socket.exists() {
        if let Some(status) = daemon.try_wait()? {
            bail!("the daemon exited before it was ready: {status}");
        }
        if started.elapsed() > timeout {
            bail!(
                "the daemon did not open {} within {timeout:?}",
                socket.display()
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// SIGTERM, then wait: a clean exit detaches every program.
fn stop(daemon: &mut Child) -> anyhow::Result<()> {
    let pid = i32::try_from(daemon.id()).context("daemon pid")?;
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = daemon.wait().context("waiting for the daemon")?;
    println!("== daemon stopped: {status}");
    if !status.success() {
        bail!("the daemon did not exit cleanly: {status}");
    }
    Ok(())
}
