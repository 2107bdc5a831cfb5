//! Verifying every installed package file at once, in parallel, as `dpkg --verify`, `debsums`
//! and `rpm -Va` do. Entries without anything to compare (dpkg directories and symlinks) are
//! still checked to exist, as `dpkg --verify` does. Findings can be annotated by an
//! [`Explainer`] (the provenance store).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use rayon::prelude::*;
use serde::Serialize;

use super::{DbError, FileEntry, PackageIndex, PackageInfo, verify::Mismatch, verify_file};

/// Explains why a mismatching file changed, e.g. from the provenance store's write history.
/// The lead wires the store in here; audit works without one.
pub trait Explainer: Sync {
    fn explain(&self, path: &Path) -> Option<String>;
}

impl<F: Fn(&Path) -> Option<String> + Sync> Explainer for F {
    fn explain(&self, path: &Path) -> Option<String> {
        self(path)
    }
}

/// What to audit and how.
#[derive(Default)]
pub struct AuditOptions<'a> {
    /// Only this package's files.
    pub package: Option<&'a str>,
    /// Called once per verified file (for a progress bar).
    pub on_progress: Option<&'a (dyn Fn() + Sync)>,
    pub explainer: Option<&'a dyn Explainer>,
}

/// One file that does not match its package.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub path: PathBuf,
    pub package: Arc<PackageInfo>,
    pub conffile: bool,
    pub flags: super::FileFlags,
    pub mismatches: Vec<Mismatch>,
    /// From the [`Explainer`], when one is given and knows.
    pub explanation: Option<String>,
}

/// The result of an audit.
#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    pub files_checked: usize,
    pub packages_checked: usize,
    pub findings: Vec<Finding>,
    /// Packages whose state is not settled (half-installed, unpacked, ...): their files may not
    /// match yet.
    pub unsettled_packages: Vec<Arc<PackageInfo>>,
    pub database_errors: Vec<DbError>,
    pub duration: Duration,
}

impl AuditReport {
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty() && self.database_errors.is_empty()
    }
}

/// The entries an audit verifies: every entry of the selected packages (those without a
/// digest are checked to exist and have the recorded type, mode and owner).
pub fn auditable_entries<'a>(index: &'a PackageIndex, package: Option<&str>) -> Vec<&'a FileEntry> {
    index
        .entries()
        .iter()
        .filter(|entry| package.is_none_or(|name| entry.package.name == name))
        .collect()
}

/// Verifies every auditable entry in parallel.
pub fn audit(index: &PackageIndex, options: &AuditOptions<'_>) -> AuditReport {
    let started = Instant::now();
    let entries = auditable_entries(index, options.package);
    let mut findings: Vec<Finding> = entries
        .par_iter()
        .filter_map(|entry| {
            let outcome = verify_file(entry, &entry.path);
            if let Some(progress) = options.on_progress {
                progress();
            }
            (!outcome.is_clean()).then(|| Finding {
                path: entry.path.clone(),
                package: Arc::clone(&entry.package),
                conffile: entry.conffile,
                flags: entry.flags,
                mismatches: outcome.mismatches,
                explanation: options
                    .explainer
                    .and_then(|explainer| explainer.explain(&entry.path)),
            })
        })
        .collect();
    findings.sort_by(|a, b| {
        a.path
            .cmp(&b.path)
            .then_with(|| a.package.name.cmp(&b.package.name))
    });
    let packages_checked = index
        .packages()
        .iter()
        .filter(|package| options.package.is_none_or(|name| package.name == name))
        .count();
    let unsettled_packages = index
        .packages()
        .iter()
        .filter(|package| options.package.is_none_or(|name| package.name == name))
        .filter(|package| !package.state.is_settled())
        .cloned()
        .collect();
    AuditReport {
        files_checked: entries.len(),
        packages_checked,
        findings,
        unsettled_packages,
        database_errors: Vec::new(),
        duration: started.elapsed(),
    }
}
