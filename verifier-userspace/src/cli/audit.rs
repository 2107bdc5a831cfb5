//! `verifier audit`: verify every installed package file, in parallel, explaining mismatches.
//! Human output by default, one JSON document with `--json`; exit 0 when clean, 1 otherwise.

use std::{
    io::{IsTerminal, Write},
    path::Path,
    process::ExitCode,
};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};

use crate::packages::{
    PackageIndex,
    audit::{AuditOptions, AuditReport, Explainer, audit, auditable_entries},
};

pub fn run(config: Option<&Path>, package: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    run_with_explainer(config, package, json, None)
}

/// As [`run`], annotating findings with `explainer` (the provenance store, once wired in).
pub fn run_with_explainer(
    config: Option<&Path>,
    package: Option<&str>,
    json: bool,
    explainer: Option<&dyn Explainer>,
) -> anyhow::Result<ExitCode> {
    let config = super::load_config(config)?;
    let (index, database_errors) =
        PackageIndex::load(&config.packages).context("loading the package databases")?;
    if let Some(name) = package
        && !index
            .packages()
            .iter()
            .any(|candidate| candidate.name == name)
    {
        anyhow::bail!("package {name} is not installed");
    }
    let progress = progress_bar(auditable_entries(&index, package).len());
    let tick = || progress.inc(1);
    let options = AuditOptions {
        package,
        on_progress: Some(&tick),
        explainer,
    };
    let mut report = audit(&index, &options);
    progress.finish_and_clear();
    report.database_errors = database_errors;
    let mut stdout = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut stdout, &report)?;
        writeln!(stdout)?;
    } else {
        write_human(&mut stdout, &report, &index)?;
    }
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A progress bar on a terminal; a hidden one otherwise.
fn progress_bar(total: usize) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} files {elapsed} (eta {eta})")
    {
        bar.set_style(style);
    }
    bar
}

fn write_human(
    out: &mut impl Write,
    report: &AuditReport,
    index: &PackageIndex,
) -> std::io::Result<()> {
    for error in &report.database_errors {
        writeln!(out, "database problem: {error}")?;
    }
    for package in &report.unsettled_packages {
        writeln!(out, "package not settled: {package}")?;
    }
    for finding in &report.findings {
        let marker = if finding.conffile { " [conffile]" } else { "" };
        writeln!(
            out,
            "{}{marker} ({}):",
            finding.path.display(),
            finding.package
        )?;
        for mismatch in &finding.mismatches {
            writeln!(out, "    {mismatch}")?;
        }
        if let Some(explanation) = &finding.explanation {
            writeln!(out, "    history: {explanation}")?;
        }
    }
    let stats = index.stats();
    writeln!(
        out,
        "{} files of {} packages verified in {:.2?} ({} mismatching, {} database problems; index of {} files built in {:.2?})",
        report.files_checked,
        report.packages_checked,
        report.duration,
        report.findings.len(),
        report.database_errors.len(),
        stats.files,
        stats.build_time,
    )
}
