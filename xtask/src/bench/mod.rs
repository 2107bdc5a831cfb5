//! `cargo xtask bench`: every benchmark in one run. Each compares the verifier against its baseline
//! measured in the same run and reports ratios; the report (Markdown) and the raw samples (JSON) go to
//! `bench-results/`. Timings are medians over repeated runs, with min and max.
mod packages;
mod report;
mod store;
mod vm;

use std::path::PathBuf;

use crate::process::{cargo, require_root, run_checked as run_command, workspace_root};
pub use report::Report;

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Repetitions per measurement.
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// Where the report goes.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Only benchmarks whose name contains this.
    pub filter: Option<String>,
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
    ("recorder-backends-vm", vm::run),
];

/// `verifier audit` against dpkg --verify, debsums and paketkoll; lookup against dpkg -S.
fn bench_packages(_options: &Options, report: &mut Report) -> anyhow::Result<()> {
    let results = packages::run(&workspace_root())?;
    report.sections.push(results.to_markdown());
    report.raw.push((
        "packages".into(),
        serde_json::from_str(&results.in_process).unwrap_or(serde_json::Value::Null),
    ));
    Ok(())
}

pub fn run(options: &Options) -> anyhow::Result<()> {
    require_root("bench")?;
    run_command(cargo().args(["build", "--release", "--package", "verifier-userspace"]))?;
    let mut report = Report::default();
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
    Ok(())
}
