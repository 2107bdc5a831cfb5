//! Verifying every installed package file at once, in parallel, as `dpkg --verify`, `debsums`
//! and `rpm -Va` do. Entries without anything to compare (dpkg directories and symlinks) are
//! still checked to exist, as `dpkg --verify` does. Each inode is hashed once, however many
//! names it has ([`DigestCache`]). Findings are then annotated, one by one, by an [`Explainer`]
//! (the provenance store's history of the file).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use rayon::prelude::*;
use serde::Serialize;

use super::{
    DbError, FileEntry, PackageIndex, PackageInfo,
    verify::{DigestCache, Mismatch, verify_file_cached},
};

/// Explains why a mismatching file changed, from the provenance store's write history. Called
/// once per finding, after the parallel verification; audit works without one.
pub trait Explainer {
    /// What is recorded about `path`, or `None` when nothing is.
    fn explain(&self, path: &Path) -> Option<FileHistory>;
}

impl<F: Fn(&Path) -> Option<FileHistory>> Explainer for F {
    fn explain(&self, path: &Path) -> Option<FileHistory> {
        self(path)
    }
}

/// What the provenance store recorded about a mismatching file since it was last trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileHistory {
    /// One line for a person.
    pub summary: String,
    /// Operations recorded on the file since it was last trusted (or since monitoring began).
    pub operations: usize,
    /// The most recent content or metadata change, when one is recorded.
    pub last_write: Option<LastWrite>,
    /// The store's history may lack operations (gaps are not checked here: see `verifier explain`).
    pub incomplete: bool,
}

/// Who last changed a file, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastWrite {
    /// Nanoseconds since the Unix epoch, and the same in UTC for a person.
    pub time_ns: u64,
    pub time: String,
    /// `open_write`, `truncate`, `rename`, `chmod`, ...
    pub operation: String,
    pub pid: u32,
    pub uid: u32,
    /// The process name (`comm`).
    pub process: String,
    /// The executable it ran, when the recorder saw its exec.
    pub exe: Option<String>,
    /// The write happened inside a package transaction (by the package manager or a descendant).
    pub in_transaction: bool,
    /// The transaction, when it did.
    pub transaction: Option<TransactionSummary>,
}

/// The package transaction a write happened in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransactionSummary {
    pub id: u64,
    /// The transaction's root command line (arguments separated by spaces).
    pub command: String,
    pub root_pid: u32,
    /// `None` while it runs.
    pub exit_status: Option<i32>,
    /// How deep below the package manager the writer was (0: the package manager itself).
    pub depth: u32,
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
    /// From the [`Explainer`], when one is given and knows the file.
    pub history: Option<FileHistory>,
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
    /// Why findings carry no history (no provenance store), when they do not.
    pub history_note: Option<String>,
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
    let digests = DigestCache::new();
    let on_progress = options.on_progress;
    let mut findings: Vec<Finding> = entries
        .par_iter()
        .filter_map(|entry| {
            let outcome = verify_file_cached(entry, &entry.path, Some(&digests));
            if let Some(progress) = on_progress {
                progress();
            }
            (!outcome.is_clean()).then(|| Finding {
                path: entry.path.clone(),
                package: Arc::clone(&entry.package),
                conffile: entry.conffile,
                flags: entry.flags,
                mismatches: outcome.mismatches,
                history: None,
            })
        })
        .collect();
    drop(digests);
    findings.sort_by(|a, b| {
        a.path
            .cmp(&b.path)
            .then_with(|| a.package.name.cmp(&b.package.name))
    });
    if let Some(explainer) = options.explainer {
        for finding in &mut findings {
            finding.history = explainer.explain(&finding.path);
        }
    }
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
        history_note: None,
        duration: started.elapsed(),
    }
}
