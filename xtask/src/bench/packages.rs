//! Package-database benchmarks: `verifier audit` over this machine's whole package database
//! against `dpkg --verify`, `debsums -s` and `paketkoll check`, and single-path lookup against
//! `dpkg -S`. Everything runs once in the same invocation, after one warm-up pass that puts the
//! files in the page cache, so every tool reads warm; ratios are baseline time / our time.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context as _;

use crate::process::{cargo, run_checked};

/// One timed command.
pub struct Timing {
    pub name: String,
    /// `None` when the tool is not installed.
    pub wall: Option<Duration>,
    pub note: String,
}

/// Results of [`run`].
pub struct PackagesBench {
    pub audit: Duration,
    pub baselines: Vec<Timing>,
    /// One JSON object from the in-process benchmark (load time, memory, lookup latency, hashing).
    pub in_process: String,
    pub lookup_ns: Option<f64>,
    pub dpkg_s: Duration,
    pub lookup_path: PathBuf,
}

impl PackagesBench {
    /// A markdown report with ratios.
    pub fn to_markdown(&self) -> String {
        let mut out =
            String::from("### Package verification (whole dpkg database, warm cache)\n\n");
        out.push_str("| tool | wall time | verifier audit is faster by |\n|---|---|---|\n");
        out.push_str(&format!(
            "| verifier audit | {:.2} s | 1.0x |\n",
            self.audit.as_secs_f64()
        ));
        for baseline in &self.baselines {
            match baseline.wall {
                Some(wall) => out.push_str(&format!(
                    "| {} | {:.2} s | {:.1}x |\n",
                    baseline.name,
                    wall.as_secs_f64(),
                    wall.as_secs_f64() / self.audit.as_secs_f64()
                )),
                None => out.push_str(&format!(
                    "| {} | not run: {} | - |\n",
                    baseline.name, baseline.note
                )),
            }
        }
        out.push_str(&format!(
            "\n### Single-path lookup ({})\n\n| method | latency | ratio |\n|---|---|---|\n",
            self.lookup_path.display()
        ));
        if let Some(lookup_ns) = self.lookup_ns {
            let dpkg_ns = self.dpkg_s.as_secs_f64() * 1e9;
            out.push_str(&format!(
                "| PackageIndex::owners | {lookup_ns:.0} ns | 1x |\n"
            ));
            out.push_str(&format!(
                "| dpkg -S | {:.1} ms | {:.0}x slower |\n",
                dpkg_ns / 1e6,
                dpkg_ns / lookup_ns
            ));
        }
        out.push_str(&format!(
            "\nIn-process measurements: `{}`\n",
            self.in_process.trim()
        ));
        out
    }
}

/// Runs a command to completion with its output discarded and returns its wall time, or
/// `None` when the program does not exist. Exit codes are ignored: verifiers exit non-zero when
/// they find modified files, which a real system has.
fn time_command(program: &str, args: &[&str]) -> anyhow::Result<Option<Duration>> {
    let started = Instant::now();
    match Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => Ok(Some(started.elapsed())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("running {program}")),
    }
}

fn baseline(name: &str, program: &str, args: &[&str]) -> anyhow::Result<Timing> {
    let wall = time_command(program, args)?;
    Ok(Timing {
        name: name.to_owned(),
        note: if wall.is_none() {
            format!("{program} is not installed")
        } else {
            String::new()
        },
        wall,
    })
}

/// Builds what it needs in release mode, runs every measurement once and returns the results.
pub fn run(workspace: &Path) -> anyhow::Result<PackagesBench> {
    run_checked(cargo().args([
        "build",
        "--release",
        "-p",
        "verifier-userspace",
        "--bin",
        "verifier",
        "--example",
        "packages_bench",
    ]))?;
    let release = workspace.join("target/release");
    let verifier = release.join("verifier");
    let verifier = verifier.to_str().context("non-UTF-8 target path")?;
    let in_process_bin = release.join("examples/packages_bench");
    let lookup_path = PathBuf::from("/usr/bin/bash");

    // Warm-up: read every package file once so each tool below finds it in the page cache.
    time_command(verifier, &["audit", "--json"])?;

    let audit = time_command(verifier, &["audit", "--json"])?.context("verifier binary missing")?;
    let baselines = vec![
        baseline("dpkg --verify", "dpkg", &["--verify"])?,
        baseline("debsums -s", "debsums", &["-s"])?,
        baseline("paketkoll check", "paketkoll", &["check"])?,
    ];

    let output = Command::new(&in_process_bin)
        .arg(&lookup_path)
        .stderr(Stdio::null())
        .output()
        .with_context(|| format!("running {}", in_process_bin.display()))?;
    let in_process = String::from_utf8_lossy(&output.stdout).into_owned();
    let lookup_ns = in_process
        .split("\"lookup_ns\":")
        .nth(1)
        .and_then(|rest| rest.split([',', '}']).next())
        .and_then(|value| value.trim().parse::<f64>().ok());

    // dpkg -S only knows the name its file list records: /bin/bash on a usr-merged Debian 12
    // (it answers "no path found" for /usr/bin/bash, which the index resolves).
    let rounds = 20u32;
    let started = Instant::now();
    for _ in 0..rounds {
        time_command("dpkg", &["-S", "/bin/bash"])?;
    }
    let dpkg_s = started.elapsed() / rounds;

    Ok(PackagesBench {
        audit,
        baselines,
        in_process,
        lookup_ns,
        dpkg_s,
        lookup_path,
    })
}
