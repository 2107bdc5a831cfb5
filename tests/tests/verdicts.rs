//! End to end: the real daemon with its kernel programs, real dpkg transactions on throwaway
//! packages, and the real `verify-file` shim run exactly as OSSEC's execd runs it (argv plus a
//! block in alerts.log). Each verdict is read back from the AR log.

use std::{fs, io::Write as _};

use tests::{
    daemon::TestDaemon,
    debs::{self, Deb, Installed},
    ossec::{
        AlertsLog, ContentHashes, SyscheckEvent, WrittenAlert, run_shim, run_wazuh_shim,
        wazuh_add_message,
    },
    require_root, unique, workspace_binary,
};

/// Enrollment hashes every package file; these tests do not need it.
const NO_ENROLL: &str = "[policy]\nenroll = false\n";

/// Runs the shim for `alert` and returns the AR log line it produced (the daemon writes it).
fn verdict_line(daemon: &TestDaemon, alert: &WrittenAlert) -> String {
    let before = daemon.ar_log_text().lines().count();
    let output = run_shim(&workspace_binary("verify-file"), &daemon.config, alert);
    let lines: Vec<String> = daemon.ar_log_text().lines().map(str::to_owned).collect();
    let new: Vec<&String> = lines.iter().skip(before).collect();
    assert_eq!(
        new.len(),
        1,
        "expected one AR log line for {}, got {new:?}\nshim stderr: {}\ndaemon log:\n{}",
        alert.path,
        String::from_utf8_lossy(&output.stderr),
        daemon.log_text()
    );
    new[0].clone()
}

fn assert_verdict(daemon: &TestDaemon, line: &str, status: &str, reason: &str) {
    assert!(
        line.contains(&format!(" {status} - - ")) && line.contains(reason),
        "expected {status} with reason {reason:?}: {line}\ndaemon log:\n{}",
        daemon.log_text()
    );
}

/// The main story: a genuine dpkg upgrade is accepted; tampering afterwards, a conffile under /etc,
/// a file changed by hand in /usr/local/bin, and a removal are each decided with the right reason.
#[test]
fn dpkg_upgrade_accepted_and_everything_else_alerts() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let name = unique("verifier-e2e");
    let tool = format!("/usr/bin/{name}");
    let conf = format!("/etc/{name}.conf");
    let v1 = Deb::new(&name, "1.0")
        .file(&tool, "#!/bin/sh\necho v1\n", 0o755)
        .conffile(&conf, "setting = 1\n")
        .build(work.path());
    let v2 = Deb::new(&name, "2.0")
        .file(&tool, "#!/bin/sh\necho v2\n", 0o755)
        .conffile(&conf, "setting = 2\n")
        .build(work.path());
    let _installed = Installed(name.clone());
    debs::install(&v1, &[]);

    let daemon = TestDaemon::start(NO_ENROLL);
    let alerts = AlertsLog::new(&daemon.alerts_log);
    debs::install(&v2, &["--force-confnew"]);

    let upgraded = verdict_line(&daemon, &alerts.append(SyscheckEvent::Changed, &tool));
    assert_verdict(
        &daemon,
        &upgraded,
        "succeeded",
        "written only by package transaction",
    );

    let conffile = verdict_line(&daemon, &alerts.append(SyscheckEvent::Changed, &conf));
    assert_verdict(&daemon, &conffile, "failed", "always alert");

    // An ordinary process appends to the upgraded binary: right package, wrong writer.
    fs::OpenOptions::new()
        .append(true)
        .open(&tool)
        .unwrap()
        .write_all(b"# tampered\n")
        .unwrap();
    let tampered = verdict_line(&daemon, &alerts.append(SyscheckEvent::Changed, &tool));
    assert_verdict(
        &daemon,
        &tampered,
        "failed",
        "outside any package transaction",
    );

    let local = format!("/usr/local/bin/{name}");
    fs::write(&local, "#!/bin/sh\n").unwrap();
    let by_hand = verdict_line(&daemon, &alerts.append(SyscheckEvent::Added, &local));
    fs::remove_file(&local).unwrap();
    assert_verdict(&daemon, &by_hand, "failed", &name);

    debs::purge(&name);
    let removed = verdict_line(&daemon, &alerts.append(SyscheckEvent::Deleted, &tool));
    assert_verdict(
        &daemon,
        &removed,
        "succeeded",
        "no installed package owns it any more",
    );

    let explain = daemon.cli(&["explain", &tool]);
    let story = String::from_utf8_lossy(&explain.stdout);
    assert!(explain.status.success(), "explain failed: {story}");
    assert!(
        story.contains("dpkg"),
        "explain does not name dpkg:\n{story}"
    );
}

/// The AR log line for `alert_id`, written by the daemon for a Wazuh run.
fn wazuh_verdict(
    daemon: &TestDaemon,
    alert_id: &str,
    content: &ContentHashes,
    path: &str,
) -> serde_json::Value {
    let output = run_wazuh_shim(
        &workspace_binary("verify-file"),
        &daemon.config,
        &wazuh_add_message(alert_id, path, content),
    );
    let log = daemon.ar_log_text();
    let line = log
        .lines()
        .rev()
        .find(|line| line.contains(&format!("\"alert_id\":\"{alert_id}\"")))
        .unwrap_or_else(|| {
            panic!(
                "no Wazuh line for {alert_id}; shim stderr: {}\nAR log:\n{log}\ndaemon log:\n{}",
                String::from_utf8_lossy(&output.stderr),
                daemon.log_text()
            )
        });
    let (_, json) = line.split_once(": {").expect("Wazuh AR log layout");
    serde_json::from_str(&format!("{{{json}")).expect("Wazuh verdict JSON")
}

/// syscheck's hashes in the alert are compared with the file as it is verified. An alert whose
/// hashes are not those of the file now (it changed again after the scan) fails even though
/// what the file holds verifies — dpkg wrote it and it matches its package — because the content
/// syscheck reported cannot be vouched for; the alert about the current content succeeds. OSSEC
/// (md5/sha1 in alerts.log) and Wazuh (md5/sha1/sha256 on stdin) alike.
#[test]
fn alert_hashes_must_match_the_verified_content() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let name = unique("verifier-hashes");
    let tool = format!("/usr/bin/{name}");
    let contents = [
        "#!/bin/sh\necho v1\n",
        "#!/bin/sh\necho v2\n",
        "#!/bin/sh\necho v3\n",
    ];
    // Packages of v1 and v2 only: v3's hashes stand for content the file never holds.
    let debs: Vec<_> = contents[..2]
        .iter()
        .enumerate()
        .map(|(index, content)| {
            Deb::new(&name, &format!("{}.0", index + 1))
                .file(&tool, *content, 0o755)
                .build(work.path())
        })
        .collect();
    let [v1, v2, v3] = [0, 1, 2].map(|index| ContentHashes::of(contents[index].as_bytes()));
    let _installed = Installed(name.clone());
    debs::install(&debs[0], &[]);
    let daemon = TestDaemon::start(NO_ENROLL);
    let alerts = AlertsLog::new(&daemon.alerts_log);

    // The alert's hashes are of v1 (syscheck scanned before the upgrade, or a later change was
    // undone): the file dpkg wrote since is not the content the alert reports.
    debs::install(&debs[1], &[]);
    let stale = verdict_line(&daemon, &alerts.append_changed_with_hashes(&tool, &v1));
    assert_verdict(&daemon, &stale, "failed", "changed again since the alert");
    assert!(
        stale.contains(&v1.sha1),
        "names the hash syscheck saw: {stale}"
    );

    // The scan of v2: the content the alert describes, written by dpkg, matching its package.
    let fresh = verdict_line(&daemon, &alerts.append_changed_with_hashes(&tool, &v2));
    assert_verdict(&daemon, &fresh, "succeeded", "");

    // Wazuh: stdin JSON with sha256 too.
    let same = wazuh_verdict(&daemon, "1705314151.10", &v2, &tool);
    assert_eq!(same["status"], "succeeded", "{same}");
    let old = wazuh_verdict(&daemon, "1705314151.20", &v3, &tool);
    assert_eq!(old["status"], "failed", "{old}");
    let reason = old["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("changed again since the alert") && reason.contains(&v3.sha256),
        "{reason}"
    );

    // The stored reasoning says what was compared.
    let explain = daemon.cli(&["explain", "--json", &tool]);
    let story = String::from_utf8_lossy(&explain.stdout);
    assert!(
        story.contains("sha256, sha1, md5 match"),
        "explain:\n{story}"
    );
}

/// The daemon not running is a failure the shim logs itself: never a silent success.
#[test]
fn shim_fails_loudly_when_daemon_is_down() {
    require_root();
    let mut daemon = TestDaemon::start(NO_ENROLL);
    let status = daemon.stop();
    assert!(
        status.success(),
        "daemon exit {status}:\n{}",
        daemon.log_text()
    );
    let alerts = AlertsLog::new(&daemon.alerts_log);
    let alert = alerts.append(SyscheckEvent::Changed, "/usr/bin/true");
    let line = verdict_line(&daemon, &alert);
    assert_verdict(&daemon, &line, "failed", "");
}

/// A change made while the daemon was stopped is not explained by anything: it alerts with the gap
/// as reason, even though the writer was dpkg and the file matches its package.
#[test]
fn change_while_daemon_stopped_alerts() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let name = unique("verifier-gap");
    let tool = format!("/usr/bin/{name}");
    let v1 = Deb::new(&name, "1.0")
        .file(&tool, "v1\n", 0o755)
        .build(work.path());
    let v2 = Deb::new(&name, "2.0")
        .file(&tool, "v2\n", 0o755)
        .build(work.path());
    let _installed = Installed(name.clone());
    debs::install(&v1, &[]);
    let mut daemon = TestDaemon::start(NO_ENROLL);
    let status = daemon.stop();
    assert!(status.success());
    debs::install(&v2, &[]);
    daemon.start_again();
    let alerts = AlertsLog::new(&daemon.alerts_log);
    let line = verdict_line(&daemon, &alerts.append(SyscheckEvent::Changed, &tool));
    assert_verdict(&daemon, &line, "failed", "no complete evidence");
}

/// `verifier status` answers with the attached programs and the daemon's memory while it runs.
#[test]
fn status_reports_attached_programs() {
    require_root();
    let daemon = TestDaemon::start(NO_ENROLL);
    let output = daemon.cli(&["status", "--json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(status["healthy"], true, "{status:#}");
    let programs = status["recorder"]["programs_attached"].as_array().unwrap();
    assert!(programs.len() >= 5, "{status:#}");
    // Durations are seconds, not serde's `{secs, nanos}`.
    assert!(status["packages"]["build_time_secs"].is_f64(), "{status:#}");
    let resident = status["resident_bytes"].as_u64().unwrap_or(0);
    assert!(resident > 1024 * 1024, "{status:#}");
    let text = daemon.cli(&["status"]);
    let text = String::from_utf8_lossy(&text.stdout);
    let build_line = text
        .lines()
        .find(|line| line.trim_start().starts_with("build_time:"))
        .unwrap_or_else(|| panic!("no build time line:\n{text}"));
    assert!(
        build_line.ends_with(" s") && !build_line.contains("nanos"),
        "{build_line}"
    );
    let memory_line = text
        .lines()
        .find(|line| line.starts_with("resident:"))
        .unwrap_or_else(|| panic!("no resident memory line:\n{text}"));
    assert!(memory_line.ends_with(" MiB"), "{memory_line}");
}

/// Three versions of one throwaway package with a single binary in /usr/bin; returns the path
/// and the three .deb files.
fn three_versions(work: &std::path::Path, name: &str) -> (String, [std::path::PathBuf; 3]) {
    let tool = format!("/usr/bin/{name}");
    let debs = [1, 2, 3].map(|version| {
        Deb::new(name, &format!("{version}.0"))
            .file(&tool, format!("#!/bin/sh\necho v{version}\n"), 0o755)
            .build(work)
    });
    (tool, debs)
}

/// Installed before the daemon started, then upgraded twice by dpkg in one daemon run: the file
/// at the path now was created entirely by dpkg during monitoring, so the verdict after the second
/// upgrade is accepted even though an earlier inode at that path predates monitoring.
#[test]
fn two_upgrades_after_start_of_preinstalled_file_accepted() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let name = unique("verifier-twice");
    let (tool, debs) = three_versions(work.path(), &name);
    let _installed = Installed(name.clone());
    debs::install(&debs[0], &[]);
    let daemon = TestDaemon::start(NO_ENROLL);
    let alerts = AlertsLog::new(&daemon.alerts_log);
    debs::install(&debs[1], &[]);
    debs::install(&debs[2], &[]);
    let line = verdict_line(&daemon, &alerts.append(SyscheckEvent::Changed, &tool));
    assert_verdict(
        &daemon,
        &line,
        "succeeded",
        "written only by package transaction",
    );
}

/// Installed before the daemon, upgraded and accepted, then upgraded again: the second verdict
/// starts from the baseline the first one recorded and is accepted too.
#[test]
fn upgrade_verdict_upgrade_verdict_of_preinstalled_file_accepted() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let name = unique("verifier-again");
    let (tool, debs) = three_versions(work.path(), &name);
    let _installed = Installed(name.clone());
    debs::install(&debs[0], &[]);
    let daemon = TestDaemon::start(NO_ENROLL);
    let alerts = AlertsLog::new(&daemon.alerts_log);
    debs::install(&debs[1], &[]);
    let first = verdict_line(&daemon, &alerts.append(SyscheckEvent::Changed, &tool));
    assert_verdict(
        &daemon,
        &first,
        "succeeded",
        "written only by package transaction",
    );
    debs::install(&debs[2], &[]);
    let second = verdict_line(&daemon, &alerts.append(SyscheckEvent::Changed, &tool));
    assert_verdict(
        &daemon,
        &second,
        "succeeded",
        "written only by package transaction",
    );
}

/// Installed and upgraded twice while the daemon runs: one verdict at the end is accepted.
#[test]
fn install_and_two_upgrades_during_monitoring_accepted() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let name = unique("verifier-fresh");
    let (tool, debs) = three_versions(work.path(), &name);
    let _installed = Installed(name.clone());
    let daemon = TestDaemon::start(NO_ENROLL);
    let alerts = AlertsLog::new(&daemon.alerts_log);
    for deb in &debs {
        debs::install(deb, &[]);
    }
    let line = verdict_line(&daemon, &alerts.append(SyscheckEvent::Changed, &tool));
    assert_verdict(
        &daemon,
        &line,
        "succeeded",
        "written only by package transaction",
    );
}

/// Fail-closed is kept: a file that predates monitoring, rewritten in place (the same inode,
/// truncated, with exactly its package's content) by an ordinary process, still fails, with the
/// foreign writer as reason.
#[test]
fn preinstalled_file_written_in_place_still_fails() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let name = unique("verifier-inplace");
    let (tool, debs) = three_versions(work.path(), &name);
    let _installed = Installed(name.clone());
    debs::install(&debs[0], &[]);
    let daemon = TestDaemon::start(NO_ENROLL);
    let alerts = AlertsLog::new(&daemon.alerts_log);
    // The same inode that existed before monitoring, truncated and rewritten with v1's content.
    fs::write(&tool, "#!/bin/sh\necho v1\n").unwrap();
    let line = verdict_line(&daemon, &alerts.append(SyscheckEvent::Changed, &tool));
    assert_verdict(&daemon, &line, "failed", "outside any package transaction");
}
