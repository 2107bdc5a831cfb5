//! The main job (`cargo xtask demo`): the whole story on a fresh machine. A daemon with its own state
//! directory records a real dpkg install and upgrade of a throwaway package; then one of the
//! package's files is tampered with and a file in /usr/local/bin is changed by hand. The shim runs for
//! each change exactly as OSSEC's execd runs it, and the verdicts, one `explain` and the daemon's
//! status are printed.
use std::{fs, io::Write as _, process::ExitCode};

use tests::{
    daemon::TestDaemon,
    debs::{self, Deb, Installed},
    ossec::{AlertsLog, SyscheckEvent, WrittenAlert, run_shim},
    require_root, workspace_binary,
};

const PACKAGE: &str = "verifier-demo";

fn main() -> ExitCode {
    require_root();
    let work = tempfile::tempdir().expect("temp dir");
    let tool = format!("/usr/bin/{PACKAGE}");
    let helper = format!("/usr/bin/{PACKAGE}-helper");
    let build = |version: &str| {
        Deb::new(PACKAGE, version)
            .file(
                &tool,
                format!("#!/bin/sh\necho {PACKAGE} {version}\n"),
                0o755,
            )
            .file(
                &helper,
                format!("#!/bin/sh\necho helper {version}\n"),
                0o755,
            )
            .conffile(
                format!("/etc/{PACKAGE}.conf"),
                format!("version = {version}\n"),
            )
            .build(work.path())
    };
    let (v1, v2) = (build("1.0"), build("2.0"));
    debs::purge(PACKAGE);
    let _installed = Installed(PACKAGE.to_owned());

    step("starting the daemon (isolated state directory, default policy)");
    let mut daemon = TestDaemon::start("[policy]\nenroll = false\n");
    let alerts = AlertsLog::new(&daemon.alerts_log);
    println!(
        "   socket {}, AR log {}",
        daemon.socket.display(),
        daemon.ar_log.display()
    );

    step(&format!(
        "dpkg -i {PACKAGE} 1.0, then upgrade to 2.0 with dpkg"
    ));
    debs::install(&v1, &[]);
    debs::install(&v2, &["--force-confnew"]);

    step(&format!(
        "tampering with {helper} after the upgrade (an ordinary shell append)"
    ));
    append(&helper, "# tampered\n");

    let local = format!("/usr/local/bin/{PACKAGE}-by-hand");
    step(&format!("changing {local} by hand"));
    fs::write(&local, "#!/bin/sh\necho by hand\n").expect("write /usr/local/bin file");

    step("syscheck alerts in alerts.log; verify-file run for each as ossec-execd runs it");
    let changes = [
        (SyscheckEvent::Changed, tool.clone()),
        (SyscheckEvent::Changed, helper.clone()),
        (SyscheckEvent::Added, local.clone()),
    ];
    for (event, path) in &changes {
        let alert = alerts.append(*event, path);
        println!("   {}", verdict(&daemon, &alert));
    }

    step(&format!("verifier explain {tool}"));
    print!(
        "{}",
        String::from_utf8_lossy(&daemon.cli(&["explain", &tool]).stdout)
    );
    step("verifier status (summary)");
    print_status(&daemon);

    let _ = fs::remove_file(&local);
    let status = daemon.stop();
    step(&format!("daemon stopped: {status}"));
    if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn step(text: &str) {
    println!("\n== {text}");
}

fn append(path: &str, text: &str) {
    fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .expect("append to package file");
}

/// The AR log line the shim's request produced.
fn verdict(daemon: &TestDaemon, alert: &WrittenAlert) -> String {
    let before = daemon.ar_log_text().lines().count();
    run_shim(&workspace_binary("verify-file"), &daemon.config, alert);
    daemon
        .ar_log_text()
        .lines()
        .skip(before)
        .collect::<Vec<_>>()
        .join("\n")
}

fn print_status(daemon: &TestDaemon) {
    let output = daemon.cli(&["status", "--json"]);
    let Ok(status) = serde_json::from_slice::<serde_json::Value>(&output.stdout) else {
        println!(
            "   status unavailable: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        return;
    };
    let programs: Vec<String> = status["recorder"]["programs_attached"]
        .as_array()
        .map(|programs| {
            programs
                .iter()
                .map(|p| {
                    format!(
                        "{} ({})",
                        p["hook"].as_str().unwrap_or("?"),
                        p["type"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    println!("   healthy: {}", status["healthy"]);
    println!("   programs attached: {}", programs.join(", "));
    println!(
        "   events stored: {}, lost: {}",
        status["intake"]["events_stored"], status["recorder"]["counters"]["lost"]
    );
    println!(
        "   store: {} bytes on disk",
        status["store"]["stats"]["bytes_on_disk"]
    );
}
