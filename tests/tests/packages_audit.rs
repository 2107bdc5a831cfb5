//! End to end: `verifier audit` explains a mismatch from the provenance store. A throwaway
//! package is installed, the real daemon records an ordinary process (`sh`) appending to one of
//! its files, and `verifier audit --package P --json` reports the mismatch with that writer.
//! Run under `flock /tmp/verifier-dpkg.lock` (dpkg transactions).

use std::{
    process::Command,
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;
use tests::{
    daemon::TestDaemon,
    debs::{self, Deb, Installed},
    require_root, unique,
};

/// Enrollment hashes every package file; this test does not need it.
const NO_ENROLL: &str = "[policy]\nenroll = false\n";

fn audit_json(daemon: &TestDaemon, package: &str) -> Value {
    let output = daemon.cli(&["audit", "--package", package, "--json"]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "audit should find the mismatch: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("audit JSON")
}

#[test]
fn audit_names_the_process_that_changed_a_package_file() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let name = unique("verifier-audit");
    let tool = format!("/usr/bin/{name}");
    let deb = Deb::new(&name, "1.0")
        .file(&tool, "#!/bin/sh\necho original\n", 0o755)
        .build(work.path());
    let _installed = Installed(name.clone());
    debs::install(&deb, &[]);

    let daemon = TestDaemon::start(NO_ENROLL);
    let writer = Command::new("sh")
        .arg("-c")
        .arg(format!("printf '# tampered\\n' >> {tool}"))
        .spawn()
        .expect("start sh");
    let writer_pid = writer.id();
    let status = writer.wait_with_output().expect("wait for sh").status;
    assert!(status.success());

    // The daemon stores the write within a few drains; poll until the audit sees it.
    let started = Instant::now();
    let finding = loop {
        let report = audit_json(&daemon, &name);
        let findings = report["findings"].as_array().expect("findings").clone();
        assert_eq!(findings.len(), 1, "one mismatching file: {report:#}");
        if !findings[0]["history"].is_null() || started.elapsed() > Duration::from_secs(20) {
            break findings[0].clone();
        }
        thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(finding["path"], tool.as_str());
    assert_eq!(finding["mismatches"][0]["reason"], "digest");
    let last = &finding["history"]["last_write"];
    assert!(
        last.is_object(),
        "no history for {tool}: {finding:#}\ndaemon log:\n{}",
        daemon.log_text()
    );
    assert_eq!(last["pid"], writer_pid, "{finding:#}");
    assert_eq!(last["process"], "sh", "{finding:#}");
    assert_eq!(last["in_transaction"], false, "{finding:#}");
    assert!(
        last["exe"].as_str().is_some_and(|exe| exe.ends_with("sh")),
        "{finding:#}"
    );
    assert!(last["time_ns"].as_u64().is_some_and(|time| time > 0));
    let summary = finding["history"]["summary"].as_str().unwrap_or_default();
    assert!(
        summary.contains("outside any package transaction"),
        "{summary}"
    );

    // Human output carries the same story.
    let text = daemon.cli(&["audit", "--package", &name]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains(&format!("by pid {writer_pid} sh")), "{text}");
}

/// Without a provenance store the audit says so once and still reports the mismatch.
#[test]
fn audit_without_a_store_says_so_and_goes_on() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let name = unique("verifier-audit-nostore");
    let tool = format!("/usr/bin/{name}");
    let deb = Deb::new(&name, "1.0")
        .file(&tool, "#!/bin/sh\necho original\n", 0o755)
        .build(work.path());
    let _installed = Installed(name.clone());
    debs::install(&deb, &[]);
    std::fs::write(&tool, "#!/bin/sh\necho changed\n").unwrap();

    let config = work.path().join("config.toml");
    let state_dir = work.path().join("no-state");
    std::fs::write(&config, format!("state_dir = {state_dir:?}\n")).unwrap();
    let output = Command::new(tests::workspace_binary("verifier"))
        .arg("--config")
        .arg(&config)
        .args(["audit", "--package", &name, "--json"])
        .output()
        .expect("run verifier audit");
    assert_eq!(output.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&output.stdout).expect("audit JSON");
    assert!(
        report["history_note"]
            .as_str()
            .is_some_and(|note| note.contains("no provenance store")),
        "{report:#}"
    );
    let findings = report["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 1, "{report:#}");
    assert!(findings[0]["history"].is_null());
}
