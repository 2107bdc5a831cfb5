//! Running Active Response programs as the execds do: OSSEC's argv (`add - - <alertid> <ruleid>
//! syscheck <path>`, stdin /dev/null, cwd /) or Wazuh's stdin message with the `check_keys`
//! handshake, a batch at a time with a bounded number running at once, timing each run and the batch.
use std::{
    io::{BufRead as _, BufReader, Write as _},
    path::Path,
    process::{Command, Stdio},
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;

use crate::alerts::{Alert, RULE_ID, WazuhMessages};

/// How one program is run.
pub enum Invocation<'a> {
    /// OSSEC argv; `env` is added to the environment.
    Ossec {
        program: &'a Path,
        env: &'a [(&'a str, &'a Path)],
    },
    /// Wazuh stdin and handshake, one message pair per alert (same order).
    Wazuh {
        program: &'a Path,
        env: &'a [(&'a str, &'a Path)],
        messages: &'a [WazuhMessages],
    },
}

/// One run's spawn-to-exit time and exit code.
type RunResult = (Duration, Option<i32>);

/// Timings of one batch.
#[derive(Debug, Clone)]
pub struct Batch {
    pub wall: Duration,
    /// Spawn-to-exit time of each run, in alert order.
    pub runs: Vec<Duration>,
    /// Exit codes in alert order (`None`: killed by a signal).
    pub exit_codes: Vec<Option<i32>>,
}

/// Runs the program once per alert, at most `concurrency` at a time.
pub fn run_batch(
    invocation: &Invocation<'_>,
    alerts: &[Alert],
    concurrency: usize,
) -> anyhow::Result<Batch> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<RunResult>>> = Mutex::new(vec![None; alerts.len()]);
    let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..concurrency.max(1) {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(alert) = alerts.get(index) else {
                        return;
                    };
                    match run_one(invocation, alert, index) {
                        Ok(result) => {
                            if let Ok(mut results) = results.lock() {
                                results[index] = Some(result);
                            }
                        }
                        Err(error) => {
                            if let Ok(mut slot) = first_error.lock() {
                                slot.get_or_insert(error);
                            }
                            // Stop handing out work.
                            next.store(alerts.len(), Ordering::Relaxed);
                            return;
                        }
                    }
                }
            });
        }
    });
    let wall = started.elapsed();
    if let Some(error) = first_error.into_inner().ok().flatten() {
        return Err(error);
    }
    let results = results
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a runner thread panicked"))?;
    let mut runs = Vec::with_capacity(results.len());
    let mut exit_codes = Vec::with_capacity(results.len());
    for result in results {
        let (duration, code) = result.context("an alert was not run")?;
        runs.push(duration);
        exit_codes.push(code);
    }
    Ok(Batch {
        wall,
        runs,
        exit_codes,
    })
}

fn run_one(invocation: &Invocation<'_>, alert: &Alert, index: usize) -> anyhow::Result<RunResult> {
    match invocation {
        Invocation::Ossec { program, env } => {
            let mut command = Command::new(program);
            command
                .args(["add", "-", "-", &alert.id, RULE_ID, "syscheck", &alert.path])
                .current_dir("/")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            for (key, value) in *env {
                command.env(key, value);
            }
            let started = Instant::now();
            let status = command
                .status()
                .with_context(|| format!("running {}", program.display()))?;
            Ok((started.elapsed(), status.code()))
        }
        Invocation::Wazuh {
            program,
            env,
            messages,
        } => {
            let messages = messages
                .get(index)
                .context("no Wazuh message for this alert")?;
            let mut command = Command::new(program);
            command
                .current_dir("/")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null());
            for (key, value) in *env {
                command.env(key, value);
            }
            let started = Instant::now();
            let mut child = command
                .spawn()
                .with_context(|| format!("running {}", program.display()))?;
            let mut stdin = child.stdin.take().context("shim stdin")?;
            let stdout = child.stdout.take().context("shim stdout")?;
            // A shim that fails early closes stdout without check_keys: the reply is then moot.
            let _ = stdin.write_all(format!("{}\n", messages.add).as_bytes());
            let mut check_keys = String::new();
            let read = BufReader::new(stdout)
                .read_line(&mut check_keys)
                .unwrap_or(0);
            if read > 0 && check_keys.contains("check_keys") {
                let _ = stdin.write_all(format!("{}\n", messages.continue_reply).as_bytes());
            }
            drop(stdin);
            let status = child.wait().context("waiting for the shim")?;
            Ok((started.elapsed(), status.code()))
        }
    }
}
