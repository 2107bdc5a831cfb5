//! `cargo xtask bench`: every benchmark in one run. Each compares the verifier against its baseline
//! measured in the same run and reports ratios; the report (Markdown) and the raw samples (JSON) go to
//! `bench-results/`, and a full run (no `--quick`, no filter) is also published to the tracked
//! `docs/benchmarks/latest.{md,json}`. Timings are medians over repeated runs, with min and max.
//!
//! Adding a benchmark: a module with `pub fn run(&Options, &mut Report) -> anyhow::Result<()>`
//! that pushes [`Comparison`]s (ours vs a baseline), figures, a Markdown section and its raw JSON,
//! listed in [`BENCHMARKS`]. `options.quick` asks for fewer repeats and smaller inputs.
mod ar;
mod lock;
mod packages;
mod recorder;
mod report;
mod store;
mod vm;

use std::path::PathBuf;

use anyhow::Context as _;

use crate::process::{require_root, workspace_root};
pub use report::{Comparison, Machine, Report, Samples};

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Repetitions per measurement.
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// Where the report goes.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Development run: fewer repeats and smaller inputs (minutes, not tens of minutes); the
    /// report is not published to docs/benchmarks/.
    #[arg(long)]
    pub quick: bool,
    /// Only benchmarks whose name contains this (then nothing is published either).
    pub filter: Option<String>,
}

impl Options {
    /// Repetitions to use: `--repeat`, or at most 2 with `--quick`.
    #[allow(dead_code, reason = "for the benchmarks that repeat in-process")]
    pub fn repeats(&self) -> usize {
        if self.quick {
            self.repeat.clamp(1, 2)
        } else {
            self.repeat.max(1)
        }
    }

    fn describe(&self) -> String {
        let mut text = format!("cargo xtask bench --repeat {}", self.repeat);
        if self.quick {
            text.push_str(" --quick");
        }
        if let Some(filter) = &self.filter {
            text.push(' ');
            text.push_str(filter);
        }
        text
    }
}

/// One benchmark: a name and a function adding its comparisons to the report.
type Benchmark = (
    &'static str,
    fn(&Options, &mut Report) -> anyhow::Result<()>,
);

/// The benchmarks, in report order.
const BENCHMARKS: &[Benchmark] = &[
    ("packages", bench_packages),
    ("store", store::run),
    ("ar", ar::run),
    ("recorder", recorder::run),
    ("backends-vm", vm::run),
];

/// `verifier audit` against dpkg --verify, debsums and paketkoll; lookup against dpkg -S.
fn bench_packages(options: &Options, report: &mut Report) -> anyhow::Result<()> {
    let results = packages::run(&workspace_root(), options.repeat)?;
    report.comparisons.extend(results.comparisons);
    report.sections.push(results.section);
    report.raw.push(("packages".into(), results.raw));
    Ok(())
}

pub fn run(options: &Options) -> anyhow::Result<()> {
    require_root("bench")?;
    let mut report = Report {
        machine: Machine::detect(&workspace_root(), options.describe()),
        ..Report::default()
    };
    crate::release::build()?;
    // Benchmarks install packages and time package-database readers: no other transaction meanwhile.
    let _lock = lock::acquire()?;
    for (name, benchmark) in BENCHMARKS {
        if options
            .filter
            .as_deref()
            .is_some_and(|filter| !name.contains(filter))
        {
            continue;
        }
        eprintln!("xtask: benchmark {name}");
        benchmark(options, &mut report)?;
    }
    let out = options
        .out
        .clone()
        .unwrap_or_else(|| workspace_root().join("bench-results"));
    report.write(&out)?;
    eprintln!(
        "xtask: report written to {}",
        out.join("report.md").display()
    );
    if !options.quick && options.filter.is_none() {
        publish(&out)?;
    }
    Ok(())
}

/// Copies a full run's report to the tracked `docs/benchmarks/latest.{md,json}` the README links.
fn publish(out: &std::path::Path) -> anyhow::Result<()> {
    let docs = workspace_root().join("docs/benchmarks");
    std::fs::create_dir_all(&docs).with_context(|| format!("creating {}", docs.display()))?;
    for (from, to) in [("report.md", "latest.md"), ("raw.json", "latest.json")] {
        std::fs::copy(out.join(from), docs.join(to))
            .with_context(|| format!("copying {from} to {}", docs.join(to).display()))?;
    }
    eprintln!("xtask: published to {}", docs.join("latest.md").display());
    Ok(())
}
