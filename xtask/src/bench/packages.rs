//! Package-database benchmarks: `verifier audit` over this machine's whole package database
//! against `dpkg --verify`, `debsums -s` and `paketkoll check`, and single-path lookup against
//! `dpkg -S`. One warm-up pass first puts every package file in the page cache, so every tool
//! reads warm; then the tools run round-robin (each round runs every tool still short of
//! samples), so load from elsewhere falls on all of them alike. Slow tools get fewer rounds:
//! each tool's repeats are capped so that it spends about [`TOOL_BUDGET`] in all (debsums, at
//! about 4 minutes a run, runs once). Ratios are baseline median / our median.

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context as _;

use super::report::{Comparison, Samples};
use crate::process::{cargo, run_checked};

/// About how long each tool may take in all, over its repeats (at least one run each).
const TOOL_BUDGET: Duration = Duration::from_secs(100);
/// `dpkg -S` calls per repeat.
const DPKG_S_CALLS: u32 = 10;
/// The path looked up: dpkg -S only knows the name its file list records, `/bin/bash` on a
/// usr-merged Debian 12 (it answers "no path found" for /usr/bin/bash, which the index resolves).
const DPKG_S_PATH: &str = "/bin/bash";
const LOOKUP_PATH: &str = "/usr/bin/bash";

/// One command run repeatedly.
struct Tool {
    name: &'static str,
    program: PathBuf,
    args: Vec<String>,
    samples: Vec<f64>,
    /// Lines of output of the last run (verifiers print one per problem).
    output_lines: usize,
    repeats: usize,
}

impl Tool {
    fn new(name: &'static str, program: PathBuf, args: &[&str], repeats: usize) -> Self {
        Self {
            name,
            program,
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
            samples: Vec::new(),
            output_lines: 0,
            repeats,
        }
    }

    fn wants_more(&self) -> bool {
        self.samples.len() < self.repeats
    }

    /// Runs once; after the first run, caps the repeats to the time budget.
    fn run_once(&mut self) -> anyhow::Result<()> {
        let (wall, lines) = time_command(&self.program, &self.args)?;
        self.samples.push(wall.as_secs_f64());
        self.output_lines = lines;
        if self.samples.len() == 1 {
            let affordable = (TOOL_BUDGET.as_secs_f64() / wall.as_secs_f64().max(1e-3)) as usize;
            self.repeats = self.repeats.min(affordable.max(1));
        }
        Ok(())
    }

    fn samples(&self) -> Samples {
        Samples {
            unit: "s",
            values: self.samples.clone(),
        }
    }
}

/// Results of [`run`].
pub struct PackagesBench {
    pub comparisons: Vec<Comparison>,
    /// Markdown with the details (output sizes, what was not run, in-process figures).
    pub section: String,
    /// The raw numbers.
    pub raw: serde_json::Value,
}

/// Runs `program` to completion, counting its output lines, and returns its wall time. Exit
/// codes are ignored: verifiers exit non-zero when they find modified files, which a real
/// system has.
fn time_command(program: &Path, args: &[String]) -> anyhow::Result<(Duration, usize)> {
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("running {}", program.display()))?;
    let lines = child
        .stdout
        .take()
        .map_or(0, |stdout| BufReader::new(stdout).split(b'\n').count());
    child
        .wait()
        .with_context(|| format!("waiting for {}", program.display()))?;
    Ok((started.elapsed(), lines))
}

/// The paketkoll release installed for the benchmark when the machine has none.
const PAKETKOLL_VERSION: &str = "0.3.16";
/// Where that install goes, below the workspace (build output, not tracked).
const BENCH_TOOLS: &str = "target/bench-tools";

/// A baseline's program: on PATH, in cargo's bin directory or the benchmark's own tools; paketkoll
/// (from crates.io, not Debian) is installed there when missing. `None`: not available.
fn locate_baseline(workspace: &Path, program: &str) -> Option<PathBuf> {
    let own = workspace.join(BENCH_TOOLS).join("bin").join(program);
    if let Some(found) = find_program(program).or_else(|| own.is_file().then(|| own.clone())) {
        return Some(found);
    }
    if program != "paketkoll" {
        return None;
    }
    let installed = run_checked(
        cargo()
            .args(["install", "--locked", "--root"])
            .arg(workspace.join(BENCH_TOOLS))
            .arg(format!("paketkoll@{PAKETKOLL_VERSION}")),
    );
    match installed {
        Ok(()) if own.is_file() => Some(own),
        Ok(()) => {
            eprintln!(
                "xtask: packages: paketkoll installed, but not at {}",
                own.display()
            );
            None
        }
        Err(error) => {
            eprintln!("xtask: packages: installing paketkoll failed ({error:#}); not compared");
            None
        }
    }
}

/// `program` on PATH, or in cargo's bin directory (where `cargo install` puts paketkoll).
fn find_program(program: &str) -> Option<PathBuf> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(cargo_home.map(|home| home.join("bin")))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Builds what it needs in release mode, measures, and returns comparisons and details.
pub fn run(workspace: &Path, repeat: usize) -> anyhow::Result<PackagesBench> {
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
    let repeat = repeat.max(1);
    // A configuration without a provenance store: the audit verifies exactly what the
    // baselines verify (explaining findings from a store is extra work they do not do).
    let scratch = tempfile_dir()?;
    let config = scratch.join("config.toml");
    std::fs::write(
        &config,
        format!("state_dir = {:?}\n", scratch.join("no-store")),
    )
    .with_context(|| format!("writing {}", config.display()))?;
    let config = config.to_str().context("non-UTF-8 temp path")?.to_owned();

    let mut audit = Tool::new(
        "verifier audit",
        release.join("verifier"),
        &["--config", &config, "audit", "--json"],
        repeat,
    );
    let mut baselines: Vec<Tool> = Vec::new();
    let mut missing: Vec<&str> = Vec::new();
    for (name, program, args) in [
        ("dpkg --verify", "dpkg", &["--verify"][..]),
        ("debsums -s", "debsums", &["-s"][..]),
        ("paketkoll check", "paketkoll", &["check"][..]),
    ] {
        match locate_baseline(workspace, program) {
            Some(path) => baselines.push(Tool::new(name, path, args, repeat)),
            None => missing.push(name),
        }
    }

    eprintln!("xtask: packages: warm-up (reading every package file once)");
    time_command(&audit.program, &audit.args)?;
    let mut round = 0;
    while audit.wants_more() || baselines.iter().any(Tool::wants_more) {
        round += 1;
        for tool in std::iter::once(&mut audit).chain(baselines.iter_mut()) {
            if tool.wants_more() {
                eprintln!("xtask: packages: round {round}: {}", tool.name);
                tool.run_once()?;
            }
        }
    }

    let mut comparisons: Vec<Comparison> = baselines
        .iter()
        .map(|baseline| Comparison {
            benchmark: "whole-database audit (warm cache)".into(),
            ours: (audit.name.into(), audit.samples()),
            baseline: (baseline.name.into(), baseline.samples()),
            target: "> 1× (faster)".into(),
        })
        .collect();

    let in_process = run_in_process(&release.join("examples/packages_bench"), repeat)?;
    let lookup = Samples {
        unit: "µs",
        values: in_process
            .iter()
            .filter_map(|run| run["lookup_ns"].as_f64())
            .map(|nanos| nanos / 1e3)
            .collect(),
    };
    let dpkg_s = time_dpkg_s(repeat)?;
    comparisons.push(Comparison {
        benchmark: format!("single-path lookup ({LOOKUP_PATH})"),
        ours: ("PackageIndex::owners".into(), lookup),
        baseline: (format!("dpkg -S {DPKG_S_PATH}"), dpkg_s),
        target: "≫ 1×".into(),
    });

    let section = details(&audit, &baselines, &missing, &in_process);
    let raw = serde_json::json!({
        "audit_output_lines": audit.output_lines,
        "baseline_output_lines": baselines.iter().map(|tool| (tool.name, tool.output_lines)).collect::<std::collections::BTreeMap<_, _>>(),
        "in_process": in_process,
    });
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(PackagesBench {
        comparisons,
        section,
        raw,
    })
}

/// The in-process benchmark (index load, memory, lookup, hashing), `repeat` times.
fn run_in_process(binary: &Path, repeat: usize) -> anyhow::Result<Vec<serde_json::Value>> {
    (0..repeat)
        .map(|_| {
            let output = Command::new(binary)
                .arg(LOOKUP_PATH)
                .stderr(Stdio::null())
                .output()
                .with_context(|| format!("running {}", binary.display()))?;
            anyhow::ensure!(output.status.success(), "{} failed", binary.display());
            serde_json::from_slice(&output.stdout).context("packages_bench output")
        })
        .collect()
}

/// Mean wall time of one `dpkg -S` call in µs, `repeat` samples of [`DPKG_S_CALLS`] calls each.
fn time_dpkg_s(repeat: usize) -> anyhow::Result<Samples> {
    let args = vec!["-S".to_owned(), DPKG_S_PATH.to_owned()];
    let mut values = Vec::new();
    for _ in 0..repeat {
        let mut total = Duration::ZERO;
        for _ in 0..DPKG_S_CALLS {
            total += time_command(Path::new("dpkg"), &args)?.0;
        }
        values.push((total / DPKG_S_CALLS).as_secs_f64() * 1e6);
    }
    Ok(Samples {
        unit: "µs", values
    })
}

fn details(
    audit: &Tool,
    baselines: &[Tool],
    missing: &[&str],
    in_process: &[serde_json::Value],
) -> String {
    let mut out = String::from(
        "### Package verification details\n\n\
         Whole dpkg database, warm page cache, tools run round-robin; slow tools get fewer runs.\n\n\
         | tool | runs | median (min–max) | output lines |\n|---|---|---|---|\n",
    );
    for tool in std::iter::once(audit).chain(baselines) {
        let samples = tool.samples();
        out.push_str(&format!(
            "| {} | {} | {:.2} s ({:.2}–{:.2}) | {} |\n",
            tool.name,
            tool.samples.len(),
            samples.median(),
            samples.min(),
            samples.max(),
            tool.output_lines
        ));
    }
    for name in missing {
        out.push_str(&format!("| {name} | not run: not installed | - | - |\n"));
    }
    let figure = |key: &str| Samples {
        unit: "",
        values: in_process
            .iter()
            .filter_map(|run| run[key].as_f64())
            .collect(),
    };
    out.push_str("\n| in-process figure | median (min–max) |\n|---|---|\n");
    for (key, label) in [
        ("files", "index entries"),
        ("load_ms", "index load + build (ms)"),
        ("index_estimated_mib", "index size, estimated (MiB)"),
        ("rss_growth_mib", "process RSS growth over the load (MiB)"),
        (
            "rss_growth_without_caches_mib",
            "the same after release_parse_caches (MiB; what verifier audit keeps)",
        ),
        ("lookup_ns", "lookup (ns, wall)"),
        ("verify_path_us", "verify /usr/bin/bash (µs, wall)"),
        ("md5_mib_s", "md5 (MiB per CPU-second, one core)"),
        ("sha256_mib_s", "sha256 (MiB per CPU-second, one core)"),
    ] {
        let samples = figure(key);
        out.push_str(&format!(
            "| {label} | {:.1} ({:.1}–{:.1}) |\n",
            samples.median(),
            samples.min(),
            samples.max()
        ));
    }
    out
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("verifier-packages-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
