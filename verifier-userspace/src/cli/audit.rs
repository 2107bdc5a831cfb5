//! `verifier audit`: verify every installed package file, in parallel, explaining each mismatch
//! from the provenance store when it has history for the file (store absent: said once, audit
//! goes on). Human output by default, one JSON document with `--json`; exit 0 when clean, 1
//! otherwise.

use std::{
    io::{IsTerminal, Write},
    path::Path,
    process::ExitCode,
};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};

use super::audit_history::StoreExplainer;
use crate::packages::{
    PackageIndex,
    audit::{AuditOptions, AuditReport, Explainer, audit, auditable_entries},
};

pub fn run(
    config_path: Option<&Path>,
    package: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let config = super::load_config(config_path)?;
    match StoreExplainer::open(&config.state_dir) {
        Ok(explainer) => run_with_explainer(config_path, package, json, Some(&explainer), None),
        Err(error) => {
            let note = format!("mismatches are not explained: no provenance store ({error})");
            run_with_explainer(config_path, package, json, None, Some(note))
        }
    }
}

/// As [`run`], annotating findings with `explainer`; `history_note` says why there is none.
pub fn run_with_explainer(
    config: Option<&Path>,
    package: Option<&str>,
    json: bool,
    explainer: Option<&dyn Explainer>,
    history_note: Option<String>,
) -> anyhow::Result<ExitCode> {
    let config = super::load_config(config)?;
    let (mut index, database_errors) =
        PackageIndex::load(&config.packages).context("loading the package databases")?;
    index.release_parse_caches();
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
    report.history_note = history_note;
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
    if let Some(note) = &report.history_note {
        writeln!(out, "note: {note}")?;
    }
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
        if let Some(history) = &finding.history {
            writeln!(out, "    history: {}", history.summary)?;
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
