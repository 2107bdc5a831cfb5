//! Verdicts: gathering evidence for an alert, deciding, and concluding — the AR log line, the stored
//! verdict with its reasoning, the new trusted baseline, alert mail — or deferring until the file's
//! transaction ends. Deferred requests live in the store, so a restart decides them again.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::sync::watch;
use tracing::{error, info, warn};

use super::Daemon;
use crate::{
    alerting::mail::{MailAlert, MailTransaction},
    ar::log::{LogRecord, LogStatus, log_record},
    decision::{
        Decision, Evidence,
        gather::{
            alert_content, baseline_evidence, baseline_of, current_state, describe_gap,
            kernel_path, narrow_to_last_removal, package_evidence, provenance_evidence,
            takeover_evidence,
        },
    },
    events::{FileId, WallNanos},
    intake::wall_clock_now,
    protocol::{AlertRef, ChangeKind, Outcome, Verdict},
    store::{Baseline, PendingRequest, Store, TransactionKey, VerdictRecord, current_boot_id},
};

/// A decision and what it was made from.
struct Decided {
    decision: Decision,
    evidence: Evidence,
    path: PathBuf,
    /// The digest the package database records, for the new baseline: (algorithm, hex).
    digest: Option<(String, String)>,
}

impl Daemon {
    /// Decides on one alert and concludes it (logs, stores, mails or defers).
    pub(crate) async fn verify(&self, alert: AlertRef) -> Verdict {
        let _in_flight = InFlight::enter(&self.verdicts_in_flight);
        let received = wall_clock_now();
        let caught_up = self
            .intake
            .wait_until_applied(received, self.intake_wait())
            .await;
        if !caught_up {
            warn!(
                received,
                stored_through = self.intake.applied_through(),
                "events from before the alert are not stored yet"
            );
        }
        let decided = tokio::task::block_in_place(|| self.decide_alert(&alert, caught_up));
        self.conclude(&alert, decided, received)
    }

    /// Longest wait for the intake to store the events from before an alert (and to refresh the
    /// package index after transactions that ended before it): half the request deadline, leaving
    /// the other half for the decision itself.
    fn intake_wait(&self) -> Duration {
        self.config.active_response.request_timeout() / 2
    }

    /// Gathers the evidence and runs the decision engine.
    fn decide_alert(&self, alert: &AlertRef, caught_up: bool) -> Decided {
        let mut evidence = Evidence {
            change: alert.change,
            ..Evidence::default()
        };
        let path = match kernel_path(&alert.path) {
            Ok(path) => path,
            Err(problem) => {
                evidence.path = PathBuf::from(&alert.path);
                evidence.unusable_path = Some(problem);
                return self.finish(evidence, None);
            }
        };
        evidence.path = path.clone();
        evidence.self_critical = self.self_critical.reason(&path);
        evidence.current = current_state(&path);
        if !caught_up {
            evidence
                .incomplete
                .push("the recorder's events up to the alert were not stored in time".into());
        }
        if self.intake.failed_batches() > 0 {
            evidence.incomplete.push(format!(
                "{} batches of events could not be stored since the daemon started",
                self.intake.failed_batches()
            ));
        }
        let since = self.gather_provenance(&path, &mut evidence);
        let digest = self.gather_package(&path, &mut evidence);
        self.gather_takeovers(&path, since, &mut evidence);
        evidence.alert_content = alert_content(&path, alert, evidence.current.as_ref());
        if current_state(&path) != evidence.current {
            evidence
                .package
                .mismatches
                .push("the file changed while it was being verified".into());
        }
        self.finish(evidence, digest)
    }

    fn finish(&self, evidence: Evidence, digest: Option<(String, String)>) -> Decided {
        let decision = crate::decision::decide(&evidence, &self.config.policy);
        Decided {
            path: evidence.path.clone(),
            decision,
            evidence,
            digest,
        }
    }

    /// Writers, transactions, gaps and baseline from the store. Returns the time from which the
    /// history matters (0: since ever).
    fn gather_provenance(&self, path: &Path, evidence: &mut Evidence) -> WallNanos {
        let current_id = evidence.current.as_ref().map(|state| FileId {
            dev: state.dev,
            ino: state.ino,
        });
        let mut store = self.lock_store();
        if store.trust_queued_for(path)
            && let Err(error) = store.write_queued_verdicts()
        {
            error!(%error, "cannot store the queued verdicts");
        }
        store.in_read_snapshot(|store| read_provenance(store, path, current_id, evidence))
    }

    /// Packages that took the file over from another installed package since `since`.
    fn gather_takeovers(&self, path: &Path, since: WallNanos, evidence: &mut Evidence) {
        match self.lock_store().ownership_changes(path, since) {
            Ok(changes) => {
                evidence.package.takeovers = changes
                    .into_iter()
                    .map(|(time, change)| takeover_evidence(time, change))
                    .collect();
            }
            Err(error) => evidence.incomplete.push(format!(
                "the recorded ownership changes could not be read: {error}"
            )),
        }
    }

    /// Verifies the file against the package databases; returns the recorded digest.
    fn gather_package(&self, path: &Path, evidence: &mut Evidence) -> Option<(String, String)> {
        let index = self.read_index();
        let verification = index.verify_path(path);
        evidence.package = package_evidence(&verification);
        if let Some(current) = &evidence.current {
            let swapped = verification.owners.iter().any(|owner| {
                owner
                    .outcome
                    .observed
                    .is_some_and(|seen| (seen.dev, seen.ino) != (current.dev, current.ino))
            });
            if swapped {
                evidence
                    .package
                    .mismatches
                    .push("the file was replaced while it was being verified".into());
            }
        }
        index
            .owners(path)
            .into_iter()
            .find_map(|entry| entry.digest.as_ref())
            .map(|digest| (digest.algo.to_string(), digest.to_hex()))
    }

    /// Logs, stores and mails a decision, or stores the request until its transaction ends.
    fn conclude(&self, alert: &AlertRef, decided: Decided, received: WallNanos) -> Verdict {
        let Decided {
            decision,
            evidence,
            path,
            digest,
        } = decided;
        if decision.outcome == Outcome::Deferred {
            match self.defer(alert, &decision, received) {
                Ok(()) => {
                    info!(alert = %alert.alert_id, reason = %decision.reason, "verdict deferred");
                    return Verdict {
                        outcome: Outcome::Deferred,
                        reason: decision.reason,
                        logged: true,
                    };
                }
                Err(error) => {
                    let failed = Decision {
                        outcome: Outcome::Failed,
                        reason: format!(
                            "{}; but the request could not be kept: {error}",
                            decision.reason
                        ),
                        ..decision
                    };
                    return self.log_and_record(alert, failed, &evidence, &path, None);
                }
            }
        }
        self.log_and_record(alert, decision, &evidence, &path, digest)
    }

    fn defer(
        &self,
        alert: &AlertRef,
        decision: &Decision,
        received: WallNanos,
    ) -> anyhow::Result<()> {
        let boot = current_boot_id()?;
        let timeout = self.config.policy.deferred_verdict_timeout();
        let pending = PendingRequest {
            alert: alert.clone(),
            received,
            deadline: received
                .saturating_add(u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX)),
            waiting_for: decision
                .waiting_for
                .map(|id| TransactionKey { boot, id })
                .into_iter()
                .collect(),
        };
        self.lock_store().add_pending(&pending)?;
        Ok(())
    }

    /// The AR log line first (the primary channel), then the store, the baseline and the mail.
    fn log_and_record(
        &self,
        alert: &AlertRef,
        decision: Decision,
        evidence: &Evidence,
        path: &Path,
        digest: Option<(String, String)>,
    ) -> Verdict {
        let status = if decision.outcome == Outcome::Succeeded {
            LogStatus::Succeeded
        } else {
            LogStatus::Failed
        };
        let record = LogRecord::for_alert(alert, status, &decision.reason);
        let logged = match log_record(&self.config.active_response.log_path, alert.source, &record)
        {
            Ok(()) => true,
            Err(error) => {
                error!(%error, alert = %alert.alert_id, "cannot write the AR log line; the shim will");
                false
            }
        };
        info!(alert = %alert.alert_id, path = %alert.path, outcome = ?decision.outcome, reason = %decision.reason, "verdict");
        let mut store = self.lock_store();
        let reasoning = serde_json::json!({ "decision": decision, "evidence": evidence });
        let stored = VerdictRecord {
            time: wall_clock_now(),
            path: path.as_os_str().as_encoded_bytes().into(),
            alert_id: Some(alert.alert_id.clone()),
            outcome: decision.outcome,
            reason: decision.reason.clone(),
            reasoning,
        };
        let trust = if decision.outcome == Outcome::Succeeded {
            new_baseline(evidence, digest).map(|baseline| (path.to_path_buf(), baseline))
        } else {
            None
        };
        if let Err(error) = store.queue_verdict(stored, trust) {
            error!(%error, "cannot store the verdict");
        }
        // Alone, it is written now; in a burst, with the others (by the last one in flight, the
        // intake's next chunk, or once the queue is long).
        let alone = self.verdicts_in_flight.load(Ordering::Relaxed) <= 1;
        if (alone || store.queued_verdicts() >= MAX_QUEUED_VERDICTS)
            && let Err(error) = store.write_queued_verdicts()
        {
            error!(%error, "cannot store the verdicts and their baselines");
        }
        drop(store);
        let verdict = Verdict {
            outcome: decision.outcome,
            reason: decision.reason,
            logged,
        };
        if verdict.outcome == Outcome::Failed {
            let writer = evidence.writes.last().map(|write| write.describe_process());
            // The failure is this transaction's when the file's last writer belonged to it.
            let transaction = evidence
                .writes
                .last()
                .and_then(|write| write.transaction.as_ref())
                .map(|transaction| MailTransaction {
                    id: transaction.id,
                    description: transaction.describe_root(),
                });
            self.mailer.alert(MailAlert::from_verdict(
                alert,
                &verdict,
                transaction,
                writer,
            ));
        }
        verdict
    }
}

/// The provenance part of the evidence, read from the store (in one snapshot); returns the time
/// from which the history matters (0: since ever).
fn read_provenance(
    store: &Store,
    path: &Path,
    current_id: Option<FileId>,
    evidence: &mut Evidence,
) -> WallNanos {
    let mut history = match store.file_history(path, current_id) {
        Ok(history) => history,
        Err(error) => {
            evidence
                .incomplete
                .push(format!("the provenance store could not be read: {error}"));
            return 0;
        }
    };
    if evidence.change == ChangeKind::Deleted {
        narrow_to_last_removal(&mut history, path);
    }
    let (writes, incomplete) =
        provenance_evidence(path, &history, |key| match store.transaction(key) {
            Ok(record) => record,
            Err(error) => {
                error!(%error, ?key, "cannot read a transaction");
                None
            }
        });
    evidence.writes = writes;
    evidence.incomplete.extend(incomplete);
    evidence.baseline = history.baseline.as_ref().map(baseline_evidence);
    match store.gaps_overlapping(history.earliest_relevant, wall_clock_now()) {
        Ok(gaps) => evidence.gaps = gaps.iter().map(describe_gap).collect(),
        Err(error) => evidence
            .incomplete
            .push(format!("the recorded gaps could not be read: {error}")),
    }
    history.earliest_relevant
}

/// Queued verdicts written at once, at most: one transaction's worth in a burst of alerts.
const MAX_QUEUED_VERDICTS: usize = 64;

/// Counts a verify request as in flight until dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The file as it is now, trusted from now on.
fn new_baseline(evidence: &Evidence, digest: Option<(String, String)>) -> Option<Baseline> {
    let (algorithm, digest) = digest.unwrap_or_default();
    baseline_of(evidence.current.as_ref()?, algorithm, digest)
}

/// Decides the requests waiting for any of `ended` (transaction ids of this boot).
pub(crate) async fn transactions_ended(daemon: Arc<Daemon>, ended: Vec<u64>) {
    let Ok(boot) = current_boot_id() else {
        error!("cannot read the boot id; deferred verdicts wait for their deadline");
        return;
    };
    let waiting: Vec<PendingRequest> = pending(&daemon)
        .into_iter()
        .filter(|request| {
            request
                .waiting_for
                .iter()
                .any(|key| key.boot == boot && ended.contains(&key.id))
        })
        .collect();
    for request in waiting {
        redecide(&daemon, request, false).await;
    }
    // Their verdicts are done: each transaction's failures leave as one mail now.
    for id in ended {
        daemon.mailer.transaction_done(id);
    }
}

/// After a restart, every stored request is decided again (failing where evidence was lost).
pub(crate) async fn redecide_pending_after_restart(daemon: &Arc<Daemon>) {
    let waiting = pending(daemon);
    if !waiting.is_empty() {
        info!(
            count = waiting.len(),
            "deciding requests left pending before the restart"
        );
    }
    for request in waiting {
        redecide(daemon, request, false).await;
    }
}

/// Every few seconds: requests past their deadline are decided, failing if still waiting.
pub(crate) async fn decide_overdue(daemon: Arc<Daemon>, mut shutdown: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(super::DEADLINE_CHECK_EVERY);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.changed() => return,
        }
        let now = wall_clock_now();
        for request in pending(&daemon).into_iter().filter(|r| r.deadline <= now) {
            redecide(&daemon, request, true).await;
        }
    }
}

fn pending(daemon: &Daemon) -> Vec<PendingRequest> {
    match daemon.lock_store().pending() {
        Ok(pending) => pending,
        Err(error) => {
            error!(%error, "cannot read pending requests");
            Vec::new()
        }
    }
}

/// Decides a stored request again; `overdue` turns a still-deferred verdict into a failure.
async fn redecide(daemon: &Arc<Daemon>, request: PendingRequest, overdue: bool) {
    let caught_up = daemon
        .intake
        .wait_until_applied(wall_clock_now(), daemon.intake_wait())
        .await;
    let mut decided =
        tokio::task::block_in_place(|| daemon.decide_alert(&request.alert, caught_up));
    if decided.decision.outcome == Outcome::Deferred {
        if !overdue {
            update_waiting(daemon, &request, &decided.decision);
            return;
        }
        decided.decision.outcome = Outcome::Failed;
        decided.decision.reason = format!(
            "{} — still running at the deadline ({} s)",
            decided.decision.reason, daemon.config.policy.deferred_verdict_timeout_secs
        );
    }
    let alert_id = request.alert.alert_id.clone();
    let verdict = daemon.conclude(&request.alert, decided, request.received);
    if !verdict.logged {
        warn!(alert = %alert_id, "deferred verdict could not be logged");
    }
    if let Err(error) = daemon.lock_store().remove_pending(&alert_id) {
        error!(%error, alert = %alert_id, "cannot remove a decided request");
    }
}

/// A request now waits for another transaction: keep it, pointing at that one.
fn update_waiting(daemon: &Daemon, request: &PendingRequest, decision: &Decision) {
    let Ok(boot) = current_boot_id() else { return };
    let mut updated = request.clone();
    updated.waiting_for = decision
        .waiting_for
        .map(|id| TransactionKey { boot, id })
        .into_iter()
        .collect();
    let mut store = daemon.lock_store();
    if let Err(error) = store
        .remove_pending(&request.alert.alert_id)
        .and_then(|_| store.add_pending(&updated))
    {
        error!(%error, "cannot update a pending request");
    }
}
