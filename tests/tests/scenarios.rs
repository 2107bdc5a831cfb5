//! The adversarial scenario suite (issue 6): every way a package-managed file can change that must
//! alert, and every genuine package transaction that must not. Each scenario runs the real daemon
//! with its kernel programs, real dpkg (and apt) transactions on throwaway packages built here, and
//! the real `verify-file` shim run as OSSEC's execd runs it (argv plus a block in alerts.log). Each
//! asserts the verdict and the reason read back from the AR log, and records both in
//! `target/scenarios/<id>.json`, which `cargo xtask scenarios-table` renders into the README.
//!
//! Run with `flock /tmp/verifier-dpkg.lock cargo test -p tests --test scenarios -- --test-threads=1`.

use std::{
    fs,
    io::Write as _,
    os::unix::fs::{PermissionsExt as _, symlink},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use tests::{
    daemon::TestDaemon,
    debs::{self, Deb, Installed},
    ossec::{AlertsLog, SyscheckEvent, run_shim},
    require_root, unique, workspace_binary,
};

/// Enrollment hashes every package file on the host; no scenario needs it.
const NO_ENROLL: &str = "[policy]\nenroll = false\n";
/// The policy option that lets matching managed conffiles under /etc pass.
const ACCEPT_CONFFILES: &str = "[policy]\nenroll = false\naccept_managed_conffiles = true\n";

// ---------------------------------------------------------------------------------------------
// Recording results for the README table.

/// Where each scenario's result goes: `<target>/scenarios/<id>.json`.
fn results_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    target.join("scenarios")
}

/// One row of the scenario table. Records itself when dropped without a verdict (the test failed
/// before reaching one), so the table never shows a stale success.
struct Scenario {
    id: &'static str,
    title: &'static str,
    expected: &'static str,
    note: String,
    recorded: bool,
}

impl Scenario {
    fn new(id: &'static str, title: &'static str, expected: &'static str) -> Self {
        require_root();
        Self {
            id,
            title,
            expected,
            note: String::new(),
            recorded: false,
        }
    }

    fn note(&mut self, note: impl Into<String>) {
        self.note = note.into();
    }

    fn record(&mut self, actual: &str, decided_by: &str) {
        self.recorded = true;
        let row = serde_json::json!({
            "id": self.id,
            "scenario": self.title,
            "expected": self.expected,
            "actual": actual,
            "decided_by": decided_by,
            "note": self.note,
            "recorded_at": SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        });
        let dir = results_dir();
        let _ = fs::create_dir_all(&dir);
        let _ = fs::write(
            dir.join(format!("{}.json", self.id)),
            serde_json::to_vec_pretty(&row).unwrap_or_default(),
        );
    }

    /// Records the verdict, then asserts it is the expected one with a reason containing `reason`.
    fn check(&mut self, daemon: &TestDaemon, verdict: &Verdict, reason: &str) {
        self.record(&verdict.status, &verdict.reason);
        assert!(
            verdict.status == self.expected && verdict.reason.contains(reason),
            "scenario {} ({}): expected {} with a reason containing {reason:?}, got {} ({})\n\
             line: {}\ndaemon log:\n{}",
            self.id,
            self.title,
            self.expected,
            verdict.status,
            verdict.reason,
            verdict.line,
            daemon.log_text()
        );
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        if !self.recorded {
            self.record("error", "the test failed before a verdict (see its output)");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The shim, as OSSEC runs it.

/// A verdict as the AR log shows it.
#[derive(Debug)]
struct Verdict {
    status: String,
    reason: String,
    line: String,
}

/// Appends a syscheck alert for `path`, runs the shim as execd does, and reads the verdict line
/// the daemon wrote for it.
fn verdict(daemon: &TestDaemon, event: SyscheckEvent, path: &str) -> Verdict {
    let alerts = AlertsLog::new(&daemon.alerts_log);
    let alert = alerts.append(event, path);
    let output = run_shim(&workspace_binary("verify-file"), &daemon.config, &alert);
    let marker = format!(" - - {} {} ", alert.id, alert.rule_id);
    let line = daemon
        .ar_log_text()
        .lines()
        .find(|line| line.contains(&marker))
        .map(str::to_owned)
        .unwrap_or_else(|| {
            panic!(
                "no AR log line for alert {} ({path})\nshim stderr: {}\ndaemon log:\n{}",
                alert.id,
                String::from_utf8_lossy(&output.stderr),
                daemon.log_text()
            )
        });
    parse_line(&line, &marker)
}

/// `<date> <program> <status> - - <id> <rule> <path> <reason>`; the test paths have no spaces.
fn parse_line(line: &str, marker: &str) -> Verdict {
    let (head, tail) = line.split_once(marker).unwrap_or((line, ""));
    let status = head.rsplit(' ').next().unwrap_or_default().to_owned();
    let reason = tail.split_once(' ').map_or("", |(_path, reason)| reason);
    Verdict {
        status,
        reason: reason.to_owned(),
        line: line.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Setup helpers.

/// Files and directories a scenario created outside packages, removed at the end even on failure.
#[derive(Default)]
struct Cleanup(Vec<PathBuf>);

impl Cleanup {
    fn add(&mut self, path: impl Into<PathBuf>) {
        self.0.push(path.into());
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for path in self.0.iter().rev() {
            if path.is_dir() && !path.is_symlink() {
                let _ = fs::remove_dir_all(path);
            } else {
                let _ = fs::remove_file(path);
            }
        }
    }
}

/// A throwaway package `name` with one program in /usr/bin, one data file in /usr/lib/<name>/ and
/// a conffile in /etc; `version` goes into each file's content.
struct Pkg {
    name: String,
    tool: String,
    data: String,
    conf: String,
}

impl Pkg {
    fn new(prefix: &str) -> Self {
        let name = unique(prefix);
        Self {
            tool: format!("/usr/bin/{name}"),
            data: format!("/usr/lib/{name}/written.txt"),
            conf: format!("/etc/{name}.conf"),
            name,
        }
    }

    fn deb(&self, version: &str) -> Deb {
        Deb::new(&self.name, version)
            .file(&self.tool, format!("#!/bin/sh\necho {version}\n"), 0o755)
            .file(&self.data, format!("data {version}\n"), 0o644)
            .conffile(&self.conf, format!("setting = {version}\n"))
    }

    fn installed(&self) -> Installed {
        Installed(self.name.clone())
    }
}

fn append(path: &str, bytes: &[u8]) {
    fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {path}: {e}"))
        .write_all(bytes)
        .unwrap_or_else(|e| panic!("write {path}: {e}"));
}

fn sh(script: &str) {
    let output = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert!(
        output.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// Must fail.

/// 1. A package file modified by an ordinary process after a genuine upgrade.
#[test]
fn s01_modified_after_upgrade() {
    let mut scenario = Scenario::new(
        "01",
        "package file modified by an ordinary process after an upgrade",
        "failed",
    );
    let work = tempfile::tempdir().unwrap();
    let pkg = Pkg::new("vsc-tamper");
    let (v1, v2) = (
        pkg.deb("1.0").build(work.path()),
        pkg.deb("2.0").build(work.path()),
    );
    let _installed = pkg.installed();
    debs::install(&v1, &[]);
    let daemon = TestDaemon::start(NO_ENROLL);
    debs::install(&v2, &["--force-confnew"]);
    append(&pkg.tool, b"# tampered\n");
    let verdict = verdict(&daemon, SyscheckEvent::Changed, &pkg.tool);
    scenario.check(&daemon, &verdict, "outside any package transaction");
}

/// 2a. A writer whose argv[0] is "dpkg" (`exec -a dpkg`).
#[test]
fn s02a_exec_a_dpkg() {
    let mut scenario = Scenario::new(
        "02a",
        "file written by a process named \"dpkg\" (`exec -a dpkg`)",
        "failed",
    );
    let work = tempfile::tempdir().unwrap();
    let pkg = Pkg::new("vsc-execa");
    let v1 = pkg.deb("1.0").build(work.path());
    let _installed = pkg.installed();
    debs::install(&v1, &[]);
    let daemon = TestDaemon::start(NO_ENROLL);
    let output = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "exec -a dpkg /bin/sh -c 'echo evil >> {}'",
            pkg.tool
        ))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let verdict = verdict(&daemon, SyscheckEvent::Changed, &pkg.tool);
    scenario.check(&daemon, &verdict, "outside any package transaction");
}

/// 2b. A writer that renamed itself "dpkg" with `prctl(PR_SET_NAME)`.
#[test]
fn s02b_comm_dpkg() {
    let mut scenario = Scenario::new(
        "02b",
        "file written by a process named \"dpkg\" (`prctl(PR_SET_NAME)`)",
        "failed",
    );
    let work = tempfile::tempdir().unwrap();
    let pkg = Pkg::new("vsc-comm");
    let v1 = pkg.deb("1.0").build(work.path());
    let _installed = pkg.installed();
    debs::install(&v1, &[]);
    let daemon = TestDaemon::start(NO_ENROLL);
    let dir = format!("/usr/lib/{}", pkg.name);
    let output = Command::new(workspace_binary("rec-actor"))
        .args(["comm", &dir])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let verdict = verdict(&daemon, SyscheckEvent::Changed, &pkg.data);
    scenario.check(&daemon, &verdict, "outside any package transaction");
}

/// 2c. A copy of the dpkg binary at another path, running a real install.
#[test]
fn s02c_copy_of_dpkg() {
    let mut scenario = Scenario::new(
        "02c",
        "file written by a copy of the dpkg binary at another path (a real `dpkg -i` run)",
        "failed",
    );
    let work = tempfile::tempdir().unwrap();
    let pkg = Pkg::new("vsc-dpkgcopy");
    let (v1, v2) = (
        pkg.deb("1.0").build(work.path()),
        pkg.deb("2.0").build(work.path()),
    );
    let _installed = pkg.installed();
    debs::install(&v1, &[]);
    let copy = work.path().join("dpkg");
    fs::copy("/usr/bin/dpkg", &copy).unwrap();
    let daemon = TestDaemon::start(NO_ENROLL);
    let output = Command::new(&copy)
        .args(["--force-confnew", "-i"])
        .arg(&v2)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let verdict = verdict(&daemon, SyscheckEvent::Changed, &pkg.tool);
    scenario.check(&daemon, &verdict, "outside any package transaction");
}

/// 3. An unrelated process writes, during a real dpkg transaction, a file that transaction installs.
#[test]
fn s03_foreign_write_during_transaction() {
    let mut scenario = Scenario::new(
        "03",
        "unrelated process writing a file during the dpkg transaction that installs it",
        "failed",
    );
    let work = tempfile::tempdir().unwrap();
    let pkg = Pkg::new("vsc-during");
    let (ready, go) = (work.path().join("ready"), work.path().join("go"));
    let v1 = pkg.deb("1.0").build(work.path());
    // The postinst holds the transaction open until the test has written.
    let v2 = pkg
        .deb("2.0")
        .postinst(&format!(
            "#!/bin/sh\ntouch {}\ni=0\nwhile [ ! -e {} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n",
            ready.display(),
            go.display()
        ))
        .build(work.path());
    let _installed = pkg.installed();
    debs::install(&v1, &[]);
    let daemon = TestDaemon::start(NO_ENROLL);
    let mut dpkg = Command::new("dpkg")
        .args(["--force-confnew", "-i"])
        .arg(&v2)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !ready.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "postinst never ran"
        );
        thread::sleep(Duration::from_millis(20));
    }
    append(&pkg.tool, b"# written while dpkg ran\n");
    fs::write(&go, b"").unwrap();
    assert!(dpkg.wait().unwrap().success());
    let verdict = verdict(&daemon, SyscheckEvent::Changed, &pkg.tool);
    scenario.check(&daemon, &verdict, "outside any package transaction");
}

/// 4. Right content, wrong writer: a prepared copy renamed over the package file.
#[test]
fn s04_rename_identical_content() {
    let mut scenario = Scenario::new(
        "04",
        "non-package process renaming a prepared file with the package's own content over it",
        "failed",
    );
    let work = tempfile::tempdir().unwrap();
    let pkg = Pkg::new("vsc-rename");
    let v1 = pkg.deb("1.0").build(work.path());
    let _installed = pkg.installed();
    debs::install(&v1, &[]);
    let daemon = TestDaemon::start(NO_ENROLL);
    let prepared = format!("{}.new", pkg.tool);
    let mut cleanup = Cleanup::default();
    cleanup.add(&prepared);
    fs::write(&prepared, fs::read(&pkg.tool).unwrap()).unwrap();
    fs::set_permissions(&prepared, fs::Permissions::from_mode(0o755)).unwrap();
    fs::rename(&prepared, &pkg.tool).unwrap();
    let verdict = verdict(&daemon, SyscheckEvent::Changed, &pkg.tool);
    scenario.check(&daemon, &verdict, "outside any package transaction");
}

/// 5. A package file modified through a hard link at a path outside the watched roots.
#[test]
fn s05_hard_link() {
    let mut scenario = Scenario::new(
        "05",
        "package file modified through a hard link at another path (outside the watched roots)",
        "failed",
    );
    let work = tempfile::tempdir().unwrap();
    let pkg = Pkg::new("vsc-hardlink");
    let v1 = pkg.deb("1.0").build(work.path());
    let _installed = pkg.installed();
    debs::install(&v1, &[]);
    let link = format!("/var/tmp/{}-link", pkg.name);
    let mut cleanup = Cleanup::default();
    cleanup.add(&link);
    // The link exists before the daemon starts: only the write through it is seen.
    fs::hard_link(&pkg.tool, &link).unwrap();
    let daemon = TestDaemon::start(NO_ENROLL);
    append(&link, b"# through the link\n");
    let verdict = verdict(&daemon, SyscheckEvent::Changed, &pkg.tool);
    scenario.check(&daemon, &verdict, "outside any package transaction");
}

/// 6. Truncate and rewrite, keeping the size and the mtime.
#[test]
fn s06_truncate_keep_size_and_mtime() {
    let mut scenario = Scenario::new(
        "06",
        "truncate and rewrite keeping size and mtime",
        "failed",
    );
    let work = tempfile::tempdir().unwrap();
    let pkg = Pkg::new("vsc-trunc");
    let v1 = pkg.deb("1.0").build(work.path());
    let _installed = pkg.installed();
    debs::install(&v1, &[]);
    let daemon = TestDaemon::start(NO_ENROLL);
    let before = fs::metadata(&pkg.tool).unwrap();
    let mut content = fs::read(&pkg.tool).unwrap();
    if let Some(byte) = content.iter_mut().rev().nth(1) {
        *byte = b'X';
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&pkg.tool)
        .unwrap();
    file.write_all(&content).unwrap();
    file.set_modified(before.modified().unwrap()).unwrap();
    drop(file);
    let after = fs::metadata(&pkg.tool).unwrap();
    assert_eq!(
        (before.len(), before.modified().unwrap()),
        (after.len(), after.modified().unwrap())
    );
    let verdict = verdict(&daemon, SyscheckEvent::Changed, &pkg.tool);
    scenario.check(&daemon, &verdict, "outside any package transaction");
}

/// 7a. chmod of a package file.
#[test]
fn s07a_chmod() {
    let mut scenario = Scenario::new("07a", "chmod of a package file", "failed");
    let work = tempfile::tempdir().unwrap();
    let pkg = Pkg::new("vsc-chmod");
    let v1 = pkg.deb("1.0").build(work.path());
    let _installed = pkg.installed();
    debs::install(&v1, &[]);
    let daemon = TestDaemon::start(NO_ENROLL);
    fs::set_permissions(&pkg.tool, fs::Permissions::from_mode(0o4755)).unwrap();
    let verdict = verdict(&daemon, SyscheckEvent::Changed, &pkg.tool);
    scenario.check(&daemon, &verdict, "outside any package transaction");
}

/// 7b. chown of a package file.
#[test]
fn s07b_chown() {
    let mut scenario = Scenario::new("07b", "chown of a package file", "failed");
    let work = tempfile::tempdir().unwrap();
    let pkg = Pkg::new("vsc-chown");
    let v1 = pkg.deb("1.0").build(work.path());
    let _installed = pkg.installed();
    debs::install(&v1, &[]);
    let daemon = TestDaemon::start(NO_ENROLL);
    std::os::unix::fs::chown(&pkg.tool, Some(1), Some(1)).unwrap();
    let verdict = verdict(&daemon, SyscheckEvent::Changed, &pkg.tool);
    scenario.check(&daemon, &verdict, "outside any package transaction");
}

/// 8. A change made while the daemon was stopped (stop, change, restart).
#[test]
fn s08_change_while_stopped() {
    let mut scenario = Scenario::new("08", "change made while the daemon was stopped", "failed");
    let work = tempfile::tempdir().unwrap();
    let pkg = Pkg::new("vsc-stopped");
    let v1 = pkg.deb("1.0").build(work.path());
    let _installed = pkg.installed();
    debs::install(&v1, &[]);
    let mut daemon = TestDaemon::start(NO_ENROLL);
    assert!(daemon.stop().success(), "{}", daemon.log_text());
    append(&pkg.tool, b"# while nobody watched\n");
    daemon.start_again();
    let verdict = verdict(&daemon, SyscheckEvent::Changed, &pkg.tool);
    scenario.check(&daemon, &verdict, "no complete evidence");
}

/// Scenario 9: lost events, forced with the smallest ring buffer and a burst of file operations
/// while dpkg upgrades the package.
#[test]
fn s09_lost_events() {
    let mut scenario = Scenario::new(
        "09",
        "lost events (4 KiB ring buffer, a burst of writes during a dpkg upgrade)",
        "failed",
    );
    let work = tempfile::tempdir().unwrap();
    let pkg = Pkg::new("vsc-lost");
    let (v1, v2) = (
        pkg.deb("1.0").build(work.path()),
        pkg.deb("2.0").build(work.path()),
    );
    let _installed = pkg.installed();
    debs::install(&v1, &[]);
    let burst_dir = format!("/usr/lib/{}-burst", pkg.name);
    let mut cleanup = Cleanup::default();
    cleanup.add(&burst_dir);
    fs::create_dir_all(&burst_dir).unwrap();
    let daemon = TestDaemon::start(&format!(
        "{NO_ENROLL}\n[recorder]\nring_buffer_bytes = 4096\n"
    ));
    let mut burst = Command::new(workspace_binary("rec-actor"))
        .args(["burst", &burst_dir, "30000"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    debs::install(&v2, &["--force-confnew"]);
    assert!(burst.wait().unwrap().success());
    let verdict = verdict(&daemon, SyscheckEvent::Changed, &pkg.tool);
    scenario.check(&daemon, &verdict, "lost");
}

/// 10. A change through io_uring, which the syscall tracepoints cannot see.
#[test]
fn s10_io_uring() {
    let mut scenario = Scenario::new("10", "write (truncation) through io_uring", "failed");
    let work = tempfile::tempdir().unwrap();
    let pkg = Pkg::new("vsc-uring");
    let v1 = pkg.deb("1.0").build(work.path());
    let _installed = pkg.installed();
    debs::install(&v1, &[]);
    let daemon = TestDaemon::start(NO_ENROLL);
    let output = Command::new(workspace_binary("rec-actor"))
        .args(["iouring-truncate", &pkg.data])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(fs::metadata(&pkg.data).unwrap().len(), 0, "not truncated");
    let verdict = verdict(&daemon, SyscheckEvent::Changed, &pkg.data);
    // Without enrollment the file has no baseline, so the earliest gap (monitoring not started)
    // is named first; the io_uring gap is among the findings.
    scenario.check(&daemon, &verdict, "no complete evidence");
}

/// 11. A maintainer script writes a file outside its package's file list.
#[test]
fn s11_maintainer_script_outside_file_list() {
    let mut scenario = Scenario::new(
        "11",
        "maintainer script writing outside its package's file list",
        "failed",
    );
    let work = tempfile::tempdir().unwrap();
    let pkg = Pkg::new("vsc-postinst");
    let planted = format!("/usr/lib/{}-planted/tool", pkg.name);
    let mut cleanup = Cleanup::default();
    cleanup.add(format!("/usr/lib/{}-planted", pkg.name));
    let v1 = pkg
        .deb("1.0")
        .postinst(&format!(
            "#!/bin/sh\nmkdir -p /usr/lib/{}-planted\necho planted > {planted}\n",
            pkg.name
        ))
        .build(work.path());
    let _installed = pkg.installed();
    let daemon = TestDaemon::start(NO_ENROLL);
    debs::install(&v1, &[]);
    let verdict = verdict(&daemon, SyscheckEvent::Added, &planted);
    scenario.check(&daemon, &verdict, "outside its package's file list");
}

/// Scenario 12: after a genuine upgrade, the file is swapped for a symlink to a copy with the
/// package's content between the alert and the verification.
#[test]
fn s12_symlink_swapped_before_verification() {
    let mut scenario = Scenario::new(
        "12",
        "symlink (to a copy with the package's content) swapped in between alert and verification",
        "failed",
    );
    let work = tempfile::tempdir().unwrap();
    let pkg = Pkg::new("vsc-swap");
    let (v1, v2) = (
        pkg.deb("1.0").build(work.path()),
        pkg.deb("2.0").build(work.path()),
    );
    let _installed = pkg.installed();
    debs::install(&v1, &[]);
    let daemon = TestDaemon::start(NO_ENROLL);
    debs::install(&v2, &["--force-confnew"]);
    let alerts = AlertsLog::new(&daemon.alerts_log);
    let alert = alerts.append(SyscheckEvent::Changed, &pkg.tool);
    // Between the alert and the shim: a decoy with the genuine content, symlinked into place.
    let decoy = format!("/var/tmp/{}-decoy", pkg.name);
    let swap = format!("{}.swap", pkg.tool);
    let mut cleanup = Cleanup::default();
    cleanup.add(&decoy);
    cleanup.add(&swap);
    fs::copy(&pkg.tool, &decoy).unwrap();
    symlink(&decoy, &swap).unwrap();
    fs::rename(&swap, &pkg.tool).unwrap();
    let output = run_shim(&workspace_binary("verify-file"), &daemon.config, &alert);
    let marker = format!(" - - {} {} ", alert.id, alert.rule_id);
    let line = daemon
        .ar_log_text()
        .lines()
        .find(|line| line.contains(&marker))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no verdict: {output:?}"));
    let verdict = parse_line(&line, &marker);
    scenario.check(&daemon, &verdict, "outside any package transaction");
}

/// 13. A conffile edited by the admin, with managed conffiles otherwise accepted.
#[test]
fn s13_conffile_edited() {
    let mut scenario = Scenario::new(
        "13",
        "conffile edited by the admin (accept_managed_conffiles on)",
        "failed",
    );
    let work = tempfile::tempdir().unwrap();
    let pkg = Pkg::new("vsc-confedit");
    let v1 = pkg.deb("1.0").build(work.path());
    let _installed = pkg.installed();
    debs::install(&v1, &[]);
    let daemon = TestDaemon::start(ACCEPT_CONFFILES);
    append(&pkg.conf, b"admin = yes\n");
    let verdict = verdict(&daemon, SyscheckEvent::Changed, &pkg.conf);
    scenario.check(&daemon, &verdict, "outside any package transaction");
}

/// 14. `dpkg -i --force-overwrite` of a local package taking over another package's file.
#[test]
fn s14_force_overwrite_takeover() {
    let mut scenario = Scenario::new(
        "14",
        "`dpkg -i --force-overwrite` of a local package overwriting another installed package's file",
        "failed",
    );
    let work = tempfile::tempdir().unwrap();
    let victim = Pkg::new("vsc-victim");
    let intruder = unique("vsc-intruder");
    let victim_deb = victim.deb("1.0").build(work.path());
    let intruder_deb = Deb::new(&intruder, "1.0")
        .file(&victim.tool, "#!/bin/sh\necho intruder\n", 0o755)
        .build(work.path());
    let _victim = victim.installed();
    let _intruder = Installed(intruder.clone());
    debs::install(&victim_deb, &[]);
    let daemon = TestDaemon::start(NO_ENROLL);
    debs::install(&intruder_deb, &["--force-overwrite"]);
    let verdict = verdict(&daemon, SyscheckEvent::Changed, &victim.tool);
    scenario.check(&daemon, &verdict, "Replaces");
}

// ---------------------------------------------------------------------------------------------
// Must succeed.

/// Install of a throwaway package: its program and (accepted by policy) its conffile.
#[test]
fn ok01_install() {
    let mut program = Scenario::new("ok-install", "install (program in /usr/bin)", "succeeded");
    let mut conffile = Scenario::new(
        "ok-install-conffile",
        "install (conffile in /etc, accept_managed_conffiles on)",
        "succeeded",
    );
    let work = tempfile::tempdir().unwrap();
    let pkg = Pkg::new("vsc-install");
    let v1 = pkg.deb("1.0").build(work.path());
    let _installed = pkg.installed();
    let daemon = TestDaemon::start(ACCEPT_CONFFILES);
    debs::install(&v1, &[]);
    let tool = verdict(&daemon, SyscheckEvent::Added, &pkg.tool);
    let conf = verdict(&daemon, SyscheckEvent::Added, &pkg.conf);
    conffile.record(&conf.status, &conf.reason);
    program.check(&daemon, &tool, "written only by package transaction");
    conffile.check(&daemon, &conf, "written only by package transaction");
}

fn transition(
    (id, title): (&'static str, &'static str),
    (conf_id, conf_title): (&'static str, &'static str),
    first: &str,
    second: &str,
) {
    let mut program = Scenario::new(id, title, "succeeded");
    let mut conffile = Scenario::new(conf_id, conf_title, "succeeded");
    let work = tempfile::tempdir().unwrap();
    let pkg = Pkg::new("vsc-trans");
    let from = pkg.deb(first).build(work.path());
    let to = if first == second {
        from.clone()
    } else {
        pkg.deb(second).build(work.path())
    };
    let _installed = pkg.installed();
    debs::install(&from, &[]);
    let daemon = if first == second {
        // A reinstall leaves the unchanged conffile alone: nothing writes it, so only the
        // enrollment baseline (on by default) can vouch for it. The roots are narrowed to the
        // package's directories so that enrollment hashes a few files, not the whole system.
        let daemon = TestDaemon::start(&format!(
            "[policy]\naccept_managed_conffiles = true\n\n[recorder]\nwatched_roots = \
             [\"/etc\", \"{}\", \"/usr/lib/{}\"]\n",
            pkg.tool, pkg.name
        ));
        daemon.wait_for_log("enrollment done", Duration::from_secs(120));
        daemon
    } else {
        TestDaemon::start(ACCEPT_CONFFILES)
    };
    debs::install(&to, &["--force-confnew"]);
    let tool = verdict(&daemon, SyscheckEvent::Changed, &pkg.tool);
    let conf = verdict(&daemon, SyscheckEvent::Changed, &pkg.conf);
    conffile.record(&conf.status, &conf.reason);
    program.check(&daemon, &tool, "written only by package transaction");
    let conf_reason = if first == second {
        "no write recorded since it was trusted"
    } else {
        "written only by package transaction"
    };
    conffile.check(&daemon, &conf, conf_reason);
}

#[test]
fn ok02_upgrade() {
    transition(
        ("ok-upgrade", "upgrade 1.0 → 2.0 (program)"),
        (
            "ok-upgrade-conffile",
            "upgrade 1.0 → 2.0 (conffile, --force-confnew)",
        ),
        "1.0",
        "2.0",
    );
}

#[test]
fn ok03_downgrade() {
    transition(
        ("ok-downgrade", "downgrade 2.0 → 1.0 (program)"),
        ("ok-downgrade-conffile", "downgrade 2.0 → 1.0 (conffile)"),
        "2.0",
        "1.0",
    );
}

#[test]
fn ok04_reinstall() {
    transition(
        ("ok-reinstall", "reinstall of the same version (program)"),
        (
            "ok-reinstall-conffile",
            "reinstall of the same version (conffile)",
        ),
        "1.0",
        "1.0",
    );
}

/// Removal: the program's deletion (dpkg -r) and the conffile's (purge).
#[test]
fn ok05_removal() {
    let mut program = Scenario::new("ok-remove", "removal (program deleted)", "succeeded");
    let mut conffile = Scenario::new("ok-purge-conffile", "purge (conffile deleted)", "succeeded");
    let work = tempfile::tempdir().unwrap();
    let pkg = Pkg::new("vsc-remove");
    let v1 = pkg.deb("1.0").build(work.path());
    let _installed = pkg.installed();
    debs::install(&v1, &[]);
    let daemon = TestDaemon::start(ACCEPT_CONFFILES);
    debs::purge(&pkg.name);
    let tool = verdict(&daemon, SyscheckEvent::Deleted, &pkg.tool);
    let conf = verdict(&daemon, SyscheckEvent::Deleted, &pkg.conf);
    conffile.record(&conf.status, &conf.reason);
    program.check(&daemon, &tool, "no installed package owns it any more");
    conffile.check(&daemon, &conf, "no installed package owns it any more");
}

/// A local diversion set up by the admin: dpkg installs the package's file at the diverted path.
#[test]
fn ok06_diversion() {
    let mut scenario = Scenario::new(
        "ok-diversion",
        "install of a file under a local diversion (dpkg-divert --rename)",
        "succeeded",
    );
    let work = tempfile::tempdir().unwrap();
    let pkg = Pkg::new("vsc-divert");
    let diverted = format!("{}.distrib", pkg.tool);
    let v1 = pkg.deb("1.0").build(work.path());
    struct Undivert(String);
    impl Drop for Undivert {
        fn drop(&mut self) {
            let _ = Command::new("dpkg-divert")
                .args(["--local", "--rename", "--remove", &self.0])
                .output();
        }
    }
    sh(&format!(
        "dpkg-divert --local --rename --divert {diverted} --add {}",
        pkg.tool
    ));
    let _undivert = Undivert(pkg.tool.clone());
    let _installed = pkg.installed();
    let daemon = TestDaemon::start(NO_ENROLL);
    debs::install(&v1, &[]);
    assert!(Path::new(&diverted).exists(), "dpkg ignored the diversion");
    let verdict = verdict(&daemon, SyscheckEvent::Added, &diverted);
    scenario.check(&daemon, &verdict, "written only by package transaction");
}

/// A packaged symlink whose target changes in an upgrade.
#[test]
fn ok07_symlink() {
    let mut scenario = Scenario::new(
        "ok-symlink",
        "upgrade changing a packaged symlink's target",
        "succeeded",
    );
    let work = tempfile::tempdir().unwrap();
    let pkg = Pkg::new("vsc-symlink");
    let link = format!("/usr/lib/{}/current", pkg.name);
    let v1 = pkg
        .deb("1.0")
        .symlink(&link, "written.txt")
        .build(work.path());
    let v2 = pkg
        .deb("2.0")
        .symlink(&link, "../../bin/true")
        .build(work.path());
    let _installed = pkg.installed();
    debs::install(&v1, &[]);
    let daemon = TestDaemon::start(NO_ENROLL);
    debs::install(&v2, &["--force-confnew"]);
    let verdict = verdict(&daemon, SyscheckEvent::Changed, &link);
    scenario.check(&daemon, &verdict, "written only by package transaction");
}

/// A package that lists /bin/<name> on a usr-merged system (the file lives in /usr/bin), alerted
/// under both names.
#[test]
fn ok08_usr_merged() {
    let mut via_bin = Scenario::new(
        "ok-usrmerge-bin",
        "usr-merged path: package lists /bin/X, alert names /bin/X",
        "succeeded",
    );
    let mut via_usr = Scenario::new(
        "ok-usrmerge-usr",
        "usr-merged path: package lists /bin/X, alert names /usr/bin/X",
        "succeeded",
    );
    let work = tempfile::tempdir().unwrap();
    let name = unique("vsc-usrmerge");
    let bin = format!("/bin/{name}");
    let usr = format!("/usr/bin/{name}");
    let v1 = Deb::new(&name, "1.0")
        .file(&bin, "#!/bin/sh\necho 1\n", 0o755)
        .build(work.path());
    let v2 = Deb::new(&name, "2.0")
        .file(&bin, "#!/bin/sh\necho 2\n", 0o755)
        .build(work.path());
    let _installed = Installed(name.clone());
    debs::install(&v1, &[]);
    let daemon = TestDaemon::start(NO_ENROLL);
    debs::install(&v2, &[]);
    let first = verdict(&daemon, SyscheckEvent::Changed, &bin);
    let second = verdict(&daemon, SyscheckEvent::Changed, &usr);
    via_usr.record(&second.status, &second.reason);
    via_bin.check(&daemon, &first, "written only by package transaction");
    // The first verdict made the file trusted again: the second is answered from that baseline.
    via_usr.check(&daemon, &second, "");
}

/// `dpkg -i --force-overwrite` of a package that declares `Replaces:` on the old owner: a normal
/// file handover between packages.
#[test]
fn ok09_takeover_with_replaces() {
    let mut scenario = Scenario::new(
        "ok-replaces",
        "a package taking over another package's file with `Replaces:`",
        "succeeded",
    );
    let work = tempfile::tempdir().unwrap();
    let old = Pkg::new("vsc-oldowner");
    let new = unique("vsc-newowner");
    let old_deb = old.deb("1.0").build(work.path());
    let new_deb = Deb::new(&new, "1.0")
        .file(&old.tool, "#!/bin/sh\necho new owner\n", 0o755)
        .replaces(&old.name)
        .build(work.path());
    let _old = old.installed();
    let _new = Installed(new.clone());
    debs::install(&old_deb, &[]);
    let daemon = TestDaemon::start(NO_ENROLL);
    debs::install(&new_deb, &[]);
    let verdict = verdict(&daemon, SyscheckEvent::Changed, &old.tool);
    scenario.check(&daemon, &verdict, "written only by package transaction");
}

/// The known gap: a hand-built package (here a fake new version of an installed package, with a
/// changed program) installed with `dpkg -i` matches its own md5sums and is accepted.
#[test]
fn gap01_hand_built_package() {
    let mut scenario = Scenario::new(
        "gap-dpkg-i",
        "KNOWN GAP: hand-built package installed with `dpkg -i`, files matching its own md5sums",
        "succeeded",
    );
    scenario.note(
        "known gap: accepted by design of the rules; `verifier explain` names the command line",
    );
    let work = tempfile::tempdir().unwrap();
    let pkg = Pkg::new("vsc-gap");
    let genuine = pkg.deb("1.0").build(work.path());
    let forged = Deb::new(&pkg.name, "1.0+local")
        .file(&pkg.tool, "#!/bin/sh\necho backdoor\n", 0o755)
        .file(&pkg.data, "data 1.0\n", 0o644)
        .conffile(&pkg.conf, "setting = 1.0\n")
        .build(work.path());
    let _installed = pkg.installed();
    debs::install(&genuine, &[]);
    let daemon = TestDaemon::start(NO_ENROLL);
    debs::install(&forged, &[]);
    let verdict = verdict(&daemon, SyscheckEvent::Changed, &pkg.tool);
    scenario.check(&daemon, &verdict, "dpkg -i");
}

// ---------------------------------------------------------------------------------------------
// A real package from Debian's registry, through apt.

/// The small installed package the apt scenarios use: /usr/bin/hostname, from `hostname`.
const APT_PACKAGE: &str = "hostname";
const APT_FILE: &str = "/usr/bin/hostname";

fn apt_get(args: &[&str]) -> std::process::Output {
    Command::new("apt-get")
        .args(["-y", "-q", "-o", "Dpkg::Options::=--force-confold"])
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .unwrap()
}

fn installed_version(package: &str) -> String {
    let output = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", package])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Versions of `package` the configured apt sources offer.
fn available_versions(package: &str) -> Vec<String> {
    let output = Command::new("apt-cache")
        .args(["madison", package])
        .output()
        .unwrap();
    let mut versions: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split('|').nth(1))
        .map(|version| version.trim().to_owned())
        .collect();
    versions.dedup();
    versions
}

#[test]
fn ok10_apt_reinstall_real_package() {
    let mut scenario = Scenario::new(
        "ok-apt-reinstall",
        "real Debian package reinstalled with `apt-get install --reinstall` (hostname)",
        "succeeded",
    );
    assert!(
        !installed_version(APT_PACKAGE).is_empty(),
        "{APT_PACKAGE} is not installed"
    );
    let daemon = TestDaemon::start(NO_ENROLL);
    let output = apt_get(&["install", "--reinstall", APT_PACKAGE]);
    if !output.status.success() {
        scenario.note(format!(
            "apt-get failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
        panic!("{output:?}");
    }
    let verdict = verdict(&daemon, SyscheckEvent::Changed, APT_FILE);
    scenario.check(&daemon, &verdict, "written only by package transaction");
}

/// Installed packages the upgrade scenario may use, with the file it asks about: the first one
/// the apt sources offer in two versions. `unzip` (installed by `scripts/setup.sh`) has a stable
/// point release (`bookworm-security`) next to the release version on Debian 12; `hostname` has
/// one version there.
const APT_UPGRADE_CANDIDATES: [(&str, &str); 2] = [
    ("hostname", "/usr/bin/hostname"),
    ("unzip", "/usr/bin/unzip"),
];

/// A real Debian package taken to an older version in the sources with apt, then upgraded to the
/// newest with apt while the daemon records; it ends at the newest version. Without a package
/// offering two versions the row says so instead of pretending.
#[test]
fn ok11_apt_upgrade_real_package() {
    let mut scenario = Scenario::new(
        "ok-apt-upgrade",
        "real Debian package upgraded with apt (hostname or unzip, whichever has two versions)",
        "succeeded",
    );
    let candidate = APT_UPGRADE_CANDIDATES.iter().find_map(|&(package, file)| {
        if installed_version(package).is_empty() {
            return None;
        }
        // apt-cache madison lists the newest first.
        let versions = available_versions(package);
        let newest = versions.first()?.clone();
        let older = versions.iter().find(|version| **version != newest)?.clone();
        Some((package, file, older, newest))
    });
    let Some((package, file, older, newest)) = candidate else {
        scenario.record(
            "not run",
            "no installed candidate package is offered in two versions by the apt sources",
        );
        return;
    };
    scenario.note(format!("{package} {older} → {newest}, verdict on {file}"));
    let daemon = TestDaemon::start(NO_ENROLL);
    let output = apt_get(&[
        "install",
        "--allow-downgrades",
        &format!("{package}={older}"),
    ]);
    assert!(output.status.success(), "{output:?}");
    let output = apt_get(&["install", &format!("{package}={newest}")]);
    assert!(output.status.success(), "{output:?}");
    let verdict = verdict(&daemon, SyscheckEvent::Changed, file);
    scenario.check(&daemon, &verdict, "written only by package transaction");
}
