//! Each rule of the decision engine on its own.
use super::*;

fn state(ino: u64) -> FileState {
    FileState {
        dev: 2049,
        ino,
        size: 10,
        mtime_ns: 1,
        ctime_ns: 2,
    }
}

fn completed_transaction(id: u64) -> TransactionEvidence {
    TransactionEvidence {
        id,
        root_pid: 100,
        root_exe: "/usr/bin/dpkg".into(),
        command_line: "dpkg -i pkg.deb".into(),
        ended: Some(TransactionEnd {
            time: "t2".into(),
            exit_status: 0,
        }),
        held_database_lock: true,
    }
}

fn write_by(transaction: Option<TransactionEvidence>, depth: u32) -> WriteEvidence {
    WriteEvidence {
        time: "t1".into(),
        operation: "rename into place".into(),
        pid: 100,
        exe: "/usr/bin/dpkg".into(),
        comm: "dpkg".into(),
        uid: 0,
        depth,
        transaction,
        removed_path: false,
    }
}

/// A package upgrade of /usr/bin/tool: dpkg wrote it, the transaction ended well, it matches.
fn genuine_upgrade() -> Evidence {
    Evidence {
        path: "/usr/bin/tool".into(),
        change: ChangeKind::Modified,
        current: Some(state(7)),
        writes: vec![write_by(Some(completed_transaction(1)), 0)],
        package: PackageEvidence {
            owners: vec!["tool 2.0 amd64".into()],
            ..Default::default()
        },
        ..Default::default()
    }
}

fn decide_default(evidence: &Evidence) -> Decision {
    decide(evidence, &PolicyConfig::default())
}

fn assert_failed(decision: &Decision, reason_contains: &str) {
    assert_eq!(decision.outcome, Outcome::Failed, "{decision:?}");
    assert!(
        decision.reason.contains(reason_contains),
        "reason {:?} lacks {reason_contains:?}",
        decision.reason
    );
}

#[test]
fn genuine_upgrade_succeeds() {
    let decision = decide_default(&genuine_upgrade());
    assert_eq!(decision.outcome, Outcome::Succeeded, "{decision:?}");
    assert!(decision.reason.contains("transaction 1"));
}

#[test]
fn write_outside_transaction_fails() {
    let mut evidence = genuine_upgrade();
    let mut intruder = write_by(None, 0);
    intruder.exe = "/usr/bin/vim.basic".into();
    evidence.writes.push(intruder);
    assert_failed(
        &decide_default(&evidence),
        "outside any package transaction",
    );
}

#[test]
fn maintainer_script_write_fails() {
    let mut evidence = genuine_upgrade();
    evidence.writes = vec![write_by(Some(completed_transaction(1)), 2)];
    assert_failed(&decide_default(&evidence), "depth 2");
}

#[test]
fn maintainer_script_writing_outside_any_file_list_is_named() {
    let mut evidence = genuine_upgrade();
    evidence.writes = vec![write_by(Some(completed_transaction(1)), 1)];
    evidence.package.owners.clear();
    assert_failed(
        &decide_default(&evidence),
        "a maintainer script or helper wrote outside its package's file list",
    );
}

fn takeover(replaces_declared: bool) -> TakeoverEvidence {
    TakeoverEvidence {
        time: "t3".into(),
        previous_owner: "old 1.0 all".into(),
        previous_name: "old".into(),
        new_owner: "tool 2.0 amd64".into(),
        replaces_declared,
    }
}

#[test]
fn forced_takeover_of_another_packages_file_fails() {
    let mut evidence = genuine_upgrade();
    evidence.package.takeovers = vec![takeover(false)];
    assert_failed(
        &decide_default(&evidence),
        "without declaring Replaces: old",
    );
}

#[test]
fn takeover_declared_with_replaces_succeeds() {
    let mut evidence = genuine_upgrade();
    evidence.package.takeovers = vec![takeover(true)];
    let decision = decide_default(&evidence);
    assert_eq!(decision.outcome, Outcome::Succeeded, "{decision:?}");
    assert!(
        decision
            .findings
            .iter()
            .any(|f| f.contains("declares Replaces: old")),
        "{decision:?}"
    );
}

#[test]
fn running_transaction_defers() {
    let mut evidence = genuine_upgrade();
    let mut running = completed_transaction(9);
    running.ended = None;
    evidence.writes = vec![write_by(Some(running), 0)];
    let decision = decide_default(&evidence);
    assert_eq!(decision.outcome, Outcome::Deferred);
    assert_eq!(decision.waiting_for, Some(9));
}

#[test]
fn failed_transaction_fails() {
    let mut evidence = genuine_upgrade();
    let mut failed = completed_transaction(3);
    failed.ended = Some(TransactionEnd {
        time: "t".into(),
        exit_status: 2 << 8,
    });
    evidence.writes = vec![write_by(Some(failed), 0)];
    assert_failed(&decide_default(&evidence), "exit code 2");
}

#[test]
fn transaction_without_lock_fails() {
    let mut evidence = genuine_upgrade();
    let mut lockless = completed_transaction(4);
    lockless.held_database_lock = false;
    evidence.writes = vec![write_by(Some(lockless), 0)];
    assert_failed(&decide_default(&evidence), "lock");
}

#[test]
fn gap_fails_even_for_genuine_upgrade() {
    let mut evidence = genuine_upgrade();
    evidence.gaps.push("daemon not running from a to b".into());
    assert_failed(&decide_default(&evidence), "daemon not running");
}

#[test]
fn foreign_writer_is_named_before_any_gap() {
    let mut evidence = genuine_upgrade();
    evidence.gaps.push("monitoring_not_started".into());
    evidence.writes.push(write_by(None, 0));
    assert_failed(
        &decide_default(&evidence),
        "outside any package transaction",
    );
}

#[test]
fn incomplete_history_fails() {
    let mut evidence = genuine_upgrade();
    evidence
        .incomplete
        .push("process 5 used io_uring: its file operations are unattributable".into());
    assert_failed(&decide_default(&evidence), "io_uring");
}

#[test]
fn mismatch_with_package_fails() {
    let mut evidence = genuine_upgrade();
    evidence.package.mismatches.push("md5 differs".into());
    assert_failed(&decide_default(&evidence), "md5 differs");
}

#[test]
fn unowned_file_written_by_package_manager_fails() {
    let mut evidence = genuine_upgrade();
    evidence.package.owners.clear();
    assert_failed(&decide_default(&evidence), "no installed package owns");
}

#[test]
fn unsettled_package_fails() {
    let mut evidence = genuine_upgrade();
    evidence.package.unsettled_state = Some("half-installed".into());
    assert_failed(&decide_default(&evidence), "half-installed");
}

#[test]
fn sensitive_prefix_fails_unless_policy_accepts_conffile() {
    let mut evidence = genuine_upgrade();
    evidence.path = "/etc/tool.conf".into();
    evidence.package.is_conffile = true;
    assert_failed(&decide_default(&evidence), "under /etc always alert");
    let policy = PolicyConfig {
        accept_managed_conffiles: true,
        ..PolicyConfig::default()
    };
    assert_eq!(decide(&evidence, &policy).outcome, Outcome::Succeeded);
    evidence.package.is_conffile = false;
    assert_eq!(decide(&evidence, &policy).outcome, Outcome::Failed);
}

#[test]
fn prefix_matches_whole_components() {
    let policy = PolicyConfig::default();
    assert!(sensitive_prefix(Path::new("/etc/passwd"), &policy).is_some());
    assert!(sensitive_prefix(Path::new("/etcetera/x"), &policy).is_none());
}

#[test]
fn self_critical_file_fails_even_when_verified() {
    let mut evidence = genuine_upgrade();
    evidence.self_critical = Some("package manager binary".into());
    assert_failed(&decide_default(&evidence), "depends on this file");
}

#[test]
fn untouched_file_matching_baseline_succeeds() {
    let mut evidence = genuine_upgrade();
    evidence.change = ChangeKind::Added;
    evidence.writes.clear();
    evidence.baseline = Some(BaselineEvidence {
        trusted_at: "enrollment".into(),
        state: state(7),
    });
    assert_eq!(decide_default(&evidence).outcome, Outcome::Succeeded);
    evidence.current = Some(state(8));
    assert_failed(&decide_default(&evidence), "no write was recorded");
    evidence.baseline = None;
    assert_failed(&decide_default(&evidence), "predates monitoring");
}

#[test]
fn deletion_by_transaction_of_unowned_path_succeeds() {
    let mut evidence = genuine_upgrade();
    evidence.change = ChangeKind::Deleted;
    evidence.current = None;
    evidence.package.owners.clear();
    evidence.writes[0].removed_path = true;
    assert_eq!(decide_default(&evidence).outcome, Outcome::Succeeded);
}

#[test]
fn deletion_by_transaction_after_earlier_tampering_succeeds() {
    let mut evidence = genuine_upgrade();
    evidence.change = ChangeKind::Deleted;
    evidence.current = None;
    evidence.package.owners.clear();
    let mut tampering = write_by(None, 0);
    tampering.exe = "/usr/bin/vim.basic".into();
    let mut removal = write_by(Some(completed_transaction(5)), 0);
    removal.removed_path = true;
    evidence.writes = vec![tampering, removal];
    assert_eq!(decide_default(&evidence).outcome, Outcome::Succeeded);
}

#[test]
fn deletion_by_ordinary_process_fails() {
    let mut evidence = genuine_upgrade();
    evidence.change = ChangeKind::Deleted;
    evidence.current = None;
    evidence.package.owners.clear();
    let mut removal = write_by(None, 0);
    removal.removed_path = true;
    evidence.writes = vec![removal];
    assert_failed(
        &decide_default(&evidence),
        "outside any package transaction",
    );
}

#[test]
fn deletion_of_still_owned_path_fails() {
    let mut evidence = genuine_upgrade();
    evidence.change = ChangeKind::Deleted;
    evidence.current = None;
    evidence.writes[0].removed_path = true;
    assert_failed(&decide_default(&evidence), "still owns it");
}

#[test]
fn deletion_without_recorded_removal_fails() {
    let mut evidence = genuine_upgrade();
    evidence.change = ChangeKind::Deleted;
    evidence.current = None;
    evidence.package.owners.clear();
    assert_failed(&decide_default(&evidence), "no recorded process removed it");
}

#[test]
fn missing_file_reported_modified_fails() {
    let mut evidence = genuine_upgrade();
    evidence.current = None;
    assert_failed(&decide_default(&evidence), "no longer exists");
}

#[test]
fn content_other_than_syscheck_hashed_fails_even_if_it_verifies() {
    let mut evidence = genuine_upgrade();
    evidence.alert_content = AlertContent::Differs {
        detail: "syscheck hashed md5 aaaa, the file now has bbbb".into(),
    };
    let decision = decide_default(&evidence);
    assert_failed(&decision, "changed again since the alert");
    assert!(decision.reason.contains("md5 aaaa"), "{decision:?}");
}

#[test]
fn content_syscheck_hashed_is_noted_and_accepted() {
    let mut evidence = genuine_upgrade();
    evidence.alert_content = AlertContent::Same {
        algorithms: vec!["sha256".into(), "md5".into()],
    };
    let decision = decide_default(&evidence);
    assert_eq!(decision.outcome, Outcome::Succeeded, "{decision:?}");
    assert!(
        decision
            .findings
            .iter()
            .any(|finding| finding.contains("sha256, md5 match")),
        "{decision:?}"
    );
}

#[test]
fn content_that_cannot_be_hashed_fails() {
    let mut evidence = genuine_upgrade();
    evidence.alert_content = AlertContent::Unreadable {
        error: "Permission denied".into(),
    };
    assert_failed(&decide_default(&evidence), "cannot compare");
}

#[test]
fn a_foreign_writer_is_named_before_the_content_check() {
    let mut evidence = genuine_upgrade();
    evidence.writes.push(write_by(None, 0));
    evidence.alert_content = AlertContent::Differs { detail: "x".into() };
    assert_failed(
        &decide_default(&evidence),
        "outside any package transaction",
    );
}
