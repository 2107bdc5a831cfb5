//! The decision engine: evidence from the provenance store, the package index and the file itself
//! → a verdict with its reasons. [`decide`] is pure: gathering the evidence lives in [`gather`], so
//! every rule here is tested on its own.
//!
//! A change is accepted only if
//! 1. every write to the file since it was last trusted came from the package manager itself
//!    (transaction depth 0), in a transaction that has completed with status 0 while holding the
//!    package database lock, with no gap in the evidence; and
//! 2. the file now matches the package database.
//!
//! Everything else fails, with the first reason that decided it and every finding listed.

pub mod evidence;
pub mod gather;

use std::path::Path;

pub use evidence::*;

use crate::{
    config::PolicyConfig,
    protocol::{ChangeKind, Outcome},
};

/// A verdict and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Decision {
    pub outcome: Outcome,
    /// The reason that decided it (one line).
    pub reason: String,
    /// Everything the engine noticed, in order, including what passed.
    pub findings: Vec<String>,
    /// For a deferred verdict: the transaction being waited for.
    pub waiting_for: Option<u64>,
}

impl Decision {
    fn failed(reason: impl Into<String>, findings: Vec<String>) -> Self {
        Self {
            outcome: Outcome::Failed,
            reason: reason.into(),
            findings,
            waiting_for: None,
        }
    }
}

/// Decides on one alert. Pure: same evidence, same verdict.
pub fn decide(evidence: &Evidence, policy: &PolicyConfig) -> Decision {
    let mut findings = Vec::new();
    match first_failure(evidence, policy, &mut findings) {
        Err(Verdict::Fail(reason)) => Decision::failed(reason, findings),
        Err(Verdict::Defer(transaction, reason)) => Decision {
            outcome: Outcome::Deferred,
            reason,
            findings,
            waiting_for: Some(transaction),
        },
        Ok(reason) => Decision {
            outcome: Outcome::Succeeded,
            reason,
            findings,
            waiting_for: None,
        },
    }
}

/// Why the engine stopped before accepting.
enum Verdict {
    Fail(String),
    Defer(u64, String),
}

fn fail(reason: impl Into<String>) -> Verdict {
    Verdict::Fail(reason.into())
}

/// Runs the rules in order; `Ok` carries the acceptance reason.
fn first_failure(
    evidence: &Evidence,
    policy: &PolicyConfig,
    findings: &mut Vec<String>,
) -> Result<String, Verdict> {
    if let Some(problem) = &evidence.unusable_path {
        return Err(fail(format!("cannot verify this path: {problem}")));
    }
    check_self_critical(evidence)?;
    if evidence.change != ChangeKind::Deleted {
        // A write by anything but the package manager decides on its own, gaps or not, and is
        // the most useful reason to give.
        check_no_foreign_writer(&evidence.writes, &evidence.package)?;
    }
    check_evidence_complete(evidence, findings)?;
    if evidence.change == ChangeKind::Deleted {
        return check_deletion(evidence, findings);
    }
    let Some(current) = &evidence.current else {
        return Err(fail(
            "the file no longer exists (or is not readable) although the alert reports it present",
        ));
    };
    check_alert_content(&evidence.alert_content, findings)?;
    if evidence.writes.is_empty() {
        return untouched_since_baseline(evidence, current, findings);
    }
    let transaction = check_writers(&evidence.writes, &evidence.package, findings)?;
    check_package_database(evidence, policy, findings)?;
    Ok(format!(
        "written only by package transaction {} ({}), which completed with status 0; matches {}",
        transaction.id,
        transaction.describe_root(),
        evidence.package.describe_owners()
    ))
}

/// Files the verification relies on alert even when they verify (as the origin script did).
fn check_self_critical(evidence: &Evidence) -> Result<(), Verdict> {
    match &evidence.self_critical {
        Some(why) => Err(fail(format!(
            "the verification itself depends on this file ({why}); review the change by hand"
        ))),
        None => Ok(()),
    }
}

/// Fails on the first write not made by a package manager itself (depth 0 of a transaction). A
/// maintainer script or helper writing a path no installed package lists is named as such.
fn check_no_foreign_writer(
    writes: &[WriteEvidence],
    package: &PackageEvidence,
) -> Result<(), Verdict> {
    for write in writes {
        match &write.transaction {
            None => {
                return Err(fail(format!(
                    "written by {} outside any package transaction",
                    write.describe_process()
                )));
            }
            Some(transaction) if write.depth > 0 && package.owners.is_empty() => {
                return Err(fail(format!(
                    "written by {} at depth {} of transaction {} ({}): a maintainer script or helper wrote outside its package's file list (no installed package owns this path)",
                    write.describe_process(),
                    write.depth,
                    transaction.id,
                    transaction.describe_root()
                )));
            }
            Some(transaction) if write.depth > 0 => {
                return Err(fail(format!(
                    "written by {} at depth {} of transaction {} (a maintainer script or helper, not the package manager itself)",
                    write.describe_process(),
                    write.depth,
                    transaction.id
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// No evidence means no acceptance: gaps, lost events, io_uring, writers older than monitoring.
/// How the gap before the store existed is described (see `gather::describe_gap`).
const MONITORING_NOT_STARTED: &str = "monitoring_not_started";

fn check_evidence_complete(evidence: &Evidence, findings: &mut Vec<String>) -> Result<(), Verdict> {
    if let Some(first) = evidence.gaps.first() {
        for gap in &evidence.gaps {
            findings.push(format!("gap in evidence: {gap}"));
        }
        // Name the most recent gap other than "monitoring not started" when there is one (lost
        // events, io_uring, a daemon stop): it says more than the gap every store begins with.
        let headline = evidence
            .gaps
            .iter()
            .rev()
            .find(|gap| !gap.starts_with(MONITORING_NOT_STARTED))
            .unwrap_or(first);
        return Err(fail(format!("no complete evidence: {headline}")));
    }
    if let Some(problem) = evidence.incomplete.first() {
        findings.extend(evidence.incomplete.iter().cloned());
        return Err(fail(format!("no complete evidence: {problem}")));
    }
    findings.push("evidence complete since the file was last trusted".into());
    Ok(())
}

/// 553: accepted only if a completed transaction removed it and no package owns it any more.
fn check_deletion(evidence: &Evidence, findings: &mut Vec<String>) -> Result<String, Verdict> {
    if evidence.current.is_some() {
        return Err(fail("reported deleted, but the path exists again"));
    }
    let removal = evidence
        .writes
        .iter()
        .rev()
        .find(|write| write.removed_path)
        .ok_or_else(|| {
            fail("deleted, but no recorded process removed it (change predates monitoring?)")
        })?;
    // Earlier writes raised their own alerts; what is decided here is who removed the file.
    let transaction = check_writers(std::slice::from_ref(removal), &evidence.package, findings)?;
    if !evidence.package.owners.is_empty() {
        return Err(fail(format!(
            "deleted by transaction {}, but {} still owns it",
            transaction.id,
            evidence.package.describe_owners()
        )));
    }
    Ok(format!(
        "removed by package transaction {} ({}) at {}; no installed package owns it any more",
        transaction.id,
        transaction.describe_root(),
        removal.time
    ))
}

/// The verdict must be about the content syscheck alerted on. When the file now holds other
/// content, it changed again after the scan: that content can no longer be checked against its
/// writers or the package, so the alert fails even if what is there now would verify (the next
/// scan alerts on the new content, and that alert gets its own verdict).
fn check_alert_content(content: &AlertContent, findings: &mut Vec<String>) -> Result<(), Verdict> {
    match content {
        AlertContent::Same { algorithms } => {
            findings.push(format!(
                "the file is the content syscheck alerted on ({} match)",
                algorithms.join(", ")
            ));
            Ok(())
        }
        AlertContent::NotCompared { why } => {
            findings.push(format!("not compared with the alert's hashes: {why}"));
            Ok(())
        }
        AlertContent::Differs { detail } => Err(fail(format!(
            "the file changed again since the alert: {detail}; the content syscheck reported can no longer be verified"
        ))),
        AlertContent::Unreadable { error } => Err(fail(format!(
            "cannot compare the file with the alert's hashes: {error}"
        ))),
    }
}

/// A file nobody wrote since enrollment is accepted only if it is exactly the baseline file.
fn untouched_since_baseline(
    evidence: &Evidence,
    current: &FileState,
    findings: &mut Vec<String>,
) -> Result<String, Verdict> {
    match &evidence.baseline {
        Some(baseline) if baseline.matches(current) => {
            findings.push(format!(
                "unchanged since trusted at {}",
                baseline.trusted_at
            ));
            Ok(format!(
                "no write recorded since it was trusted at {}; same inode, size and times",
                baseline.trusted_at
            ))
        }
        Some(_) => Err(fail(
            "changed since it was trusted, but no write was recorded: the change predates monitoring or bypassed it",
        )),
        None => Err(fail(
            "no write recorded and no trusted baseline: the change predates monitoring",
        )),
    }
}

/// Every write must come from a verified package manager (depth 0) in a completed, successful
/// transaction that held the database lock. Returns that transaction.
fn check_writers<'e>(
    writes: &'e [WriteEvidence],
    package: &PackageEvidence,
    findings: &mut Vec<String>,
) -> Result<&'e TransactionEvidence, Verdict> {
    findings.extend(writes.iter().map(|write| format!("write: {write}")));
    check_no_foreign_writer(writes, package)?;
    let mut accepted: Option<&TransactionEvidence> = None;
    for transaction in writes.iter().filter_map(|write| write.transaction.as_ref()) {
        check_transaction(transaction)?;
        accepted = Some(transaction);
    }
    accepted.ok_or_else(|| fail("no write recorded"))
}

fn check_transaction(transaction: &TransactionEvidence) -> Result<(), Verdict> {
    let Some(ended) = &transaction.ended else {
        return Err(Verdict::Defer(
            transaction.id,
            format!(
                "package transaction {} ({}) is still running; verdict deferred until it ends",
                transaction.id,
                transaction.describe_root()
            ),
        ));
    };
    if ended.exit_status != 0 {
        return Err(fail(format!(
            "package transaction {} ({}) ended with status {}",
            transaction.id,
            transaction.describe_root(),
            ended.describe_status()
        )));
    }
    if !transaction.held_database_lock {
        return Err(fail(format!(
            "package manager run {} ({}) never took the package database lock: not a real transaction",
            transaction.id,
            transaction.describe_root()
        )));
    }
    Ok(())
}

/// The file must match its package now; sensitive areas alert unless policy accepts managed
/// conffiles that match.
fn check_package_database(
    evidence: &Evidence,
    policy: &PolicyConfig,
    findings: &mut Vec<String>,
) -> Result<(), Verdict> {
    let package = &evidence.package;
    if package.owners.is_empty() {
        return Err(fail(
            "written by the package manager, but no installed package owns this file (written outside its package's file list)",
        ));
    }
    if let Some(state) = &package.unsettled_state {
        return Err(fail(format!(
            "{} is in state {state}: not a settled installation",
            package.describe_owners()
        )));
    }
    check_takeovers(package, findings)?;
    if !package.mismatches.is_empty() {
        findings.extend(package.mismatches.iter().map(|m| format!("mismatch: {m}")));
        return Err(fail(format!(
            "does not match {}: {}",
            package.describe_owners(),
            package.mismatches.join("; ")
        )));
    }
    findings.push(format!("matches {}", package.describe_owners()));
    if let Some(prefix) = sensitive_prefix(&evidence.path, policy) {
        let accepted = policy.accept_managed_conffiles && package.is_conffile;
        if !accepted {
            return Err(fail(format!(
                "changes under {} always alert{}",
                prefix.display(),
                if package.is_conffile {
                    " (managed conffile; policy.accept_managed_conffiles is off)"
                } else {
                    ""
                }
            )));
        }
        findings.push("managed conffile under a sensitive prefix, accepted by policy".into());
    }
    Ok(())
}

/// A file handed from one installed package to another is a normal handover only when the new
/// owner declares `Replaces:` on the old one; otherwise it was forced (`dpkg --force-overwrite`).
fn check_takeovers(package: &PackageEvidence, findings: &mut Vec<String>) -> Result<(), Verdict> {
    findings.extend(
        package
            .takeovers
            .iter()
            .map(|takeover| format!("ownership: {takeover}")),
    );
    match package
        .takeovers
        .iter()
        .find(|takeover| !takeover.replaces_declared)
    {
        Some(forced) => Err(fail(format!(
            "{} took this file over from {}, which is still installed, without declaring Replaces: {} (forced overwrite)",
            forced.new_owner, forced.previous_owner, forced.previous_name
        ))),
        None => Ok(()),
    }
}

/// The always-alert prefix containing `path`, matching whole components.
pub fn sensitive_prefix<'p>(path: &Path, policy: &'p PolicyConfig) -> Option<&'p Path> {
    policy
        .always_alert_prefixes
        .iter()
        .map(|prefix| prefix.as_path())
        .find(|prefix| path.starts_with(prefix))
}

#[cfg(test)]
mod tests;
