//! `verifier install` against temporary directories laid out like /var/ossec: the shim's owner and
//! mode, what is printed or written, idempotency, and the XML (parsed with roxmltree) with the
//! right rule ids and groups. The group database is a temporary file, so the ossec/wazuh group
//! "exists" without touching /etc/group.

use std::{
    fs,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::Command,
};

use tempfile::TempDir;
use verifier::{
    cli::install::{
        AR_GROUP, BEGIN_MARKER, END_MARKER, InstallError, InstallPlan, InstallReport, Outcome,
        install, render,
    },
    config::{ArFlavor, Config},
};

const FAKE_GID: u32 = 4242;
const SHIM_CONTENT: &[u8] = b"#!/bin/sh\n# stand-in for verify-file\nexit 0\n";
const STOCK_OSSEC_CONF: &str = "<ossec_config>\n  <global>\n    <email_notification>no</email_notification>\n  </global>\n</ossec_config>\n";
const STOCK_WAZUH_CONF: &str = "<ossec_config>\n  <localfile>\n    <log_format>syslog</log_format>\n    <location>/var/ossec/logs/active-responses.log</location>\n  </localfile>\n</ossec_config>\n";
const STOCK_LOCAL_RULES: &str = "<group name=\"local,syslog,sshd,\">\n  <rule id=\"100001\" level=\"5\">\n    <if_sid>5716</if_sid>\n    <srcip>1.1.1.1</srcip>\n    <description>sshd: authentication failed from IP 1.1.1.1.</description>\n  </rule>\n</group>\n";

struct Installation {
    temp: TempDir,
    flavor: ArFlavor,
}

impl Installation {
    /// A directory laid out like /var/ossec for `flavor`, a shim to install and a group file in
    /// which the flavour's group has gid 4242.
    fn new(flavor: ArFlavor) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("ossec");
        for sub in ["active-response/bin", "etc", "logs/alerts"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        match flavor {
            ArFlavor::Ossec => {
                fs::create_dir_all(dir.join("rules")).unwrap();
                fs::write(dir.join("etc/ossec.conf"), STOCK_OSSEC_CONF).unwrap();
                fs::write(dir.join("rules/local_rules.xml"), STOCK_LOCAL_RULES).unwrap();
            }
            ArFlavor::Wazuh => {
                fs::create_dir_all(dir.join("etc/rules")).unwrap();
                let conf = STOCK_WAZUH_CONF.replace("/var/ossec", &dir.display().to_string());
                fs::write(dir.join("etc/ossec.conf"), conf).unwrap();
                fs::write(dir.join("etc/rules/local_rules.xml"), STOCK_LOCAL_RULES).unwrap();
            }
        }
        fs::set_permissions(
            dir.join("etc/ossec.conf"),
            fs::Permissions::from_mode(0o660),
        )
        .unwrap();
        fs::write(temp.path().join("verify-file"), SHIM_CONTENT).unwrap();
        let group = match flavor {
            ArFlavor::Ossec => "ossec",
            ArFlavor::Wazuh => "wazuh",
        };
        fs::write(
            temp.path().join("group"),
            format!("root:x:0:\n{group}:x:{FAKE_GID}:\n"),
        )
        .unwrap();
        Self { temp, flavor }
    }

    fn dir(&self) -> PathBuf {
        self.temp.path().join("ossec")
    }

    fn config_path(&self) -> PathBuf {
        self.temp.path().join("etc-verifier/config.toml")
    }

    fn plan(&self, apply: bool) -> InstallPlan {
        InstallPlan {
            flavor: self.flavor,
            dir: self.dir(),
            shim_source: self.temp.path().join("verify-file"),
            group: None,
            apply,
            config_path: self.config_path(),
            group_file: self.temp.path().join("group"),
        }
    }

    fn rules_path(&self) -> PathBuf {
        match self.flavor {
            ArFlavor::Ossec => self.dir().join("rules/local_rules.xml"),
            ArFlavor::Wazuh => self.dir().join("etc/rules/verifier_rules.xml"),
        }
    }

    fn read(&self, path: &Path) -> String {
        fs::read_to_string(path).unwrap()
    }
}

/// Parses an OSSEC XML fragment (several top-level elements and comments) as one document.
fn parse_fragment(text: &str) -> roxmltree::Document<'_> {
    // roxmltree borrows the text, so the wrapped copy must live as long as the document.
    let wrapped: &'static str = Box::leak(format!("<root>{text}</root>").into_boxed_str());
    roxmltree::Document::parse(wrapped).unwrap_or_else(|error| panic!("{error}:\n{text}"))
}

fn child_text<'a>(node: roxmltree::Node<'a, 'a>, name: &str) -> Option<&'a str> {
    node.children()
        .find(|child| child.has_tag_name(name))
        .map(|child| child.text().unwrap_or(""))
}

/// A rule's id, its if_sid and its full group string (enclosing `<group name>` plus own `<group>`).
struct RuleView {
    id: u32,
    level: u32,
    if_sid: String,
    groups: String,
    node_text: String,
}

fn rules(text: &str) -> Vec<RuleView> {
    let document = parse_fragment(text);
    document
        .descendants()
        .filter(|node| node.has_tag_name("rule"))
        .map(|rule| {
            let enclosing = rule
                .ancestors()
                .find(|node| node.has_tag_name("group"))
                .and_then(|group| group.attribute("name"))
                .unwrap_or("");
            let own = child_text(rule, "group").unwrap_or("");
            let node_text = rule
                .children()
                .filter(|child| child.is_element())
                .map(|child| {
                    let attributes: Vec<String> = child
                        .attributes()
                        .map(|attribute| format!("{}={}", attribute.name(), attribute.value()))
                        .collect();
                    format!(
                        "{}[{}]={}",
                        child.tag_name().name(),
                        attributes.join(","),
                        child.text().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join(";");
            RuleView {
                id: rule.attribute("id").unwrap().parse().unwrap(),
                level: rule.attribute("level").unwrap().parse().unwrap(),
                if_sid: child_text(rule, "if_sid").unwrap_or("").to_owned(),
                groups: format!("{enclosing}{own}"),
                node_text,
            }
        })
        .collect()
}

fn assert_rules(text: &str, flavor: ArFlavor) {
    let all = rules(text);
    let syscheck: &[(u32, &str)] = match flavor {
        ArFlavor::Ossec => &[
            (100210, "550"),
            (100211, "551"),
            (100212, "552"),
            (100213, "553"),
            (100214, "554"),
        ],
        ArFlavor::Wazuh => &[(100210, "550"), (100213, "553"), (100214, "554")],
    };
    for (id, parent) in syscheck {
        let rule = all.iter().find(|rule| rule.id == *id).unwrap();
        assert_eq!(rule.if_sid, *parent);
        assert!(rule.level >= 1, "rule {id} must be logged (level >= 1)");
        assert!(
            rule.groups.split(',').any(|group| group == AR_GROUP),
            "{}",
            rule.groups
        );
    }
    assert!((100200..=100299).contains(&all.iter().map(|rule| rule.id).max().unwrap()));
    assert!(all.iter().all(|rule| (100200..=100299).contains(&rule.id)));
    let failures: Vec<&RuleView> = all.iter().filter(|rule| rule.level == 10).collect();
    let expected_failures = match flavor {
        ArFlavor::Ossec => vec![(100201, "600")],
        ArFlavor::Wazuh => vec![(100201, "650"), (100202, "600")],
    };
    assert_eq!(failures.len(), expected_failures.len());
    for (id, parent) in expected_failures {
        let rule = failures.iter().find(|rule| rule.id == id).unwrap();
        assert_eq!(rule.if_sid, parent);
        assert!(
            !rule.groups.contains(AR_GROUP),
            "failure rule {id} group {:?} contains the AR group: it would trigger the AR again",
            rule.groups
        );
        let matches_failed = rule.node_text.contains("status[]=failed")
            || rule.node_text.contains("field[name=type]=failed");
        assert!(
            matches_failed,
            "rule {id} must match status failed: {}",
            rule.node_text
        );
        let matches_program = rule.node_text.contains("action[]=verify-file")
            || rule.node_text.contains("field[name=script]=verify-file")
            || rule
                .node_text
                .contains("match[]=active-response/bin/verify-file");
        assert!(
            matches_program,
            "rule {id} must match our program: {}",
            rule.node_text
        );
    }
}

fn assert_conf_block(text: &str, flavor: ArFlavor, dir: &Path, expect_localfile: bool) {
    let document = parse_fragment(text);
    let config = document
        .descendants()
        .find(|node| node.has_tag_name("ossec_config"))
        .unwrap();
    let command = config
        .children()
        .find(|node| node.has_tag_name("command"))
        .unwrap();
    assert_eq!(child_text(command, "name"), Some("verify-file"));
    assert_eq!(child_text(command, "executable"), Some("verify-file"));
    assert_eq!(child_text(command, "timeout_allowed"), Some("no"));
    if flavor == ArFlavor::Ossec {
        assert_eq!(child_text(command, "expect"), Some(""));
    }
    let response = config
        .children()
        .find(|node| node.has_tag_name("active-response"))
        .unwrap();
    assert_eq!(child_text(response, "command"), Some("verify-file"));
    assert_eq!(child_text(response, "location"), Some("local"));
    assert_eq!(child_text(response, "rules_group"), Some(AR_GROUP));
    let localfile = config
        .children()
        .find(|node| node.has_tag_name("localfile"));
    assert_eq!(localfile.is_some(), expect_localfile);
    if let Some(localfile) = localfile {
        let location = dir.join("logs/active-responses.log").display().to_string();
        assert_eq!(child_text(localfile, "location"), Some(location.as_str()));
        assert_eq!(child_text(localfile, "log_format"), Some("syslog"));
    }
}

fn outcomes(report: &InstallReport) -> [Outcome; 3] {
    [
        report.ossec_conf.outcome.clone(),
        report.rules.outcome.clone(),
        report.config.outcome.clone(),
    ]
}

fn assert_shim(path: &Path) {
    let metadata = fs::metadata(path).unwrap();
    assert_eq!(metadata.mode() & 0o7777, 0o750);
    assert_eq!((metadata.uid(), metadata.gid()), (0, FAKE_GID));
    assert_eq!(fs::read(path).unwrap(), SHIM_CONTENT);
}

#[test]
fn ossec_without_apply_installs_the_shim_and_only_prints_the_rest() {
    let installation = Installation::new(ArFlavor::Ossec);
    let report = install(&installation.plan(false)).unwrap();
    assert!(report.shim_copied);
    assert_eq!(report.shim_group.as_deref(), Some("ossec"));
    assert_shim(&installation.dir().join("active-response/bin/verify-file"));
    assert_eq!(
        outcomes(&report),
        [Outcome::ToAdd, Outcome::ToAdd, Outcome::ToAdd]
    );
    // Nothing else was touched.
    assert_eq!(
        installation.read(&installation.dir().join("etc/ossec.conf")),
        STOCK_OSSEC_CONF
    );
    assert_eq!(
        installation.read(&installation.rules_path()),
        STOCK_LOCAL_RULES
    );
    assert!(!installation.config_path().exists());

    let printed = render(&report);
    for step in [&report.ossec_conf, &report.rules, &report.config] {
        assert!(printed.contains(&step.text), "{printed}");
        assert!(printed.contains(&format!("== add to {} ==", step.target.display())));
    }
    assert!(printed.contains("--apply"));
    assert_conf_block(
        &report.ossec_conf.text,
        ArFlavor::Ossec,
        &installation.dir(),
        true,
    );
    assert_rules(&report.rules.text, ArFlavor::Ossec);
}

#[test]
fn ossec_apply_writes_blocks_once_and_is_idempotent() {
    let installation = Installation::new(ArFlavor::Ossec);
    let conf_path = installation.dir().join("etc/ossec.conf");
    let report = install(&installation.plan(true)).unwrap();
    assert!(report.complete());
    assert_eq!(
        outcomes(&report),
        [Outcome::Written, Outcome::Written, Outcome::Written]
    );

    let conf = installation.read(&conf_path);
    assert!(
        conf.starts_with(STOCK_OSSEC_CONF),
        "existing content must stay first:\n{conf}"
    );
    assert_eq!(conf.matches(BEGIN_MARKER).count(), 1);
    assert_eq!(conf.matches(END_MARKER).count(), 1);
    // The whole file, stock part and ours, is well-formed.
    assert_conf_block(
        &conf[STOCK_OSSEC_CONF.len()..],
        ArFlavor::Ossec,
        &installation.dir(),
        true,
    );
    parse_fragment(&conf);
    assert_eq!(
        fs::metadata(&conf_path).unwrap().mode() & 0o7777,
        0o660,
        "mode preserved"
    );
    assert_eq!(
        installation.read(&installation.dir().join("etc/ossec.conf.before-verifier")),
        STOCK_OSSEC_CONF
    );

    let local_rules = installation.read(&installation.rules_path());
    assert!(local_rules.starts_with(STOCK_LOCAL_RULES));
    assert_rules(&local_rules[STOCK_LOCAL_RULES.len()..], ArFlavor::Ossec);
    assert_eq!(rules(&local_rules).len(), 7, "the stock rule plus our six");

    let config_text = installation.read(&installation.config_path());
    let config = Config::from_toml(&config_text, &installation.config_path()).unwrap();
    assert_eq!(config.active_response.flavor, ArFlavor::Ossec);
    assert_eq!(
        config.active_response.log_path,
        installation.dir().join("logs/active-responses.log")
    );
    assert_eq!(
        config.active_response.alerts_log,
        installation.dir().join("logs/alerts/alerts.log")
    );
    assert_eq!(config.socket_group.as_deref(), Some("ossec"));

    // Second run: nothing changes, byte for byte.
    let snapshot = [
        installation.read(&conf_path),
        installation.read(&installation.rules_path()),
        config_text,
    ];
    let again = install(&installation.plan(true)).unwrap();
    assert!(!again.shim_copied);
    assert_eq!(
        outcomes(&again),
        [Outcome::Unchanged, Outcome::Unchanged, Outcome::Unchanged]
    );
    assert_eq!(
        [
            installation.read(&conf_path),
            installation.read(&installation.rules_path()),
            installation.read(&installation.config_path()),
        ],
        snapshot
    );
    assert!(render(&again).contains("Already in place"));
}

#[test]
fn an_older_block_is_replaced_in_place() {
    let installation = Installation::new(ArFlavor::Ossec);
    let conf_path = installation.dir().join("etc/ossec.conf");
    install(&installation.plan(true)).unwrap();
    let current = installation.read(&conf_path);
    let old = current.replace(
        "<rules_group>verifier_check</rules_group>",
        "<rules_group>old</rules_group>",
    );
    fs::write(
        &conf_path,
        format!("{old}<!-- the admin's own trailer -->\n"),
    )
    .unwrap();

    let printed_only = install(&installation.plan(false)).unwrap();
    assert_eq!(printed_only.ossec_conf.outcome, Outcome::ToUpdate);

    let report = install(&installation.plan(true)).unwrap();
    assert_eq!(report.ossec_conf.outcome, Outcome::Updated);
    let updated = installation.read(&conf_path);
    assert_eq!(
        updated,
        format!("{current}<!-- the admin's own trailer -->\n")
    );
}

#[test]
fn clashes_are_reported_not_written() {
    let installation = Installation::new(ArFlavor::Ossec);
    let conf_path = installation.dir().join("etc/ossec.conf");
    let hand_made = format!(
        "{STOCK_OSSEC_CONF}<ossec_config><command><name>verify-file</name><executable>x</executable></command></ossec_config>\n"
    );
    fs::write(&conf_path, &hand_made).unwrap();
    let clashing_rules = STOCK_LOCAL_RULES.replace("100001", "100201");
    fs::write(installation.rules_path(), &clashing_rules).unwrap();

    let report = install(&installation.plan(true)).unwrap();
    assert!(matches!(report.ossec_conf.outcome, Outcome::Conflict(_)));
    assert!(
        matches!(&report.rules.outcome, Outcome::Conflict(reason) if reason.contains("100201")),
        "{:?}",
        report.rules.outcome
    );
    assert!(!report.complete());
    assert_eq!(installation.read(&conf_path), hand_made);
    assert_eq!(
        installation.read(&installation.rules_path()),
        clashing_rules
    );
    let printed = render(&report);
    assert!(printed.contains("NOT written"));
    assert!(printed.contains(&report.rules.text));
}

#[test]
fn wazuh_apply_writes_its_own_rules_file() {
    let installation = Installation::new(ArFlavor::Wazuh);
    let report = install(&installation.plan(true)).unwrap();
    assert_eq!(report.shim_group.as_deref(), Some("wazuh"));
    assert_shim(&installation.dir().join("active-response/bin/verify-file"));
    assert_eq!(
        outcomes(&report),
        [Outcome::Written, Outcome::Written, Outcome::Written]
    );

    // Wazuh already reads active-responses.log, so our block has no <localfile>.
    let conf = installation.read(&installation.dir().join("etc/ossec.conf"));
    let stock = STOCK_WAZUH_CONF.replace("/var/ossec", &installation.dir().display().to_string());
    assert_conf_block(
        &conf[stock.len()..],
        ArFlavor::Wazuh,
        &installation.dir(),
        false,
    );

    let rules_path = installation.rules_path();
    let rules_text = installation.read(&rules_path);
    assert_eq!(rules_text, report.rules.text);
    assert_rules(&rules_text, ArFlavor::Wazuh);
    let metadata = fs::metadata(&rules_path).unwrap();
    assert_eq!(
        (metadata.mode() & 0o7777, metadata.gid()),
        (0o640, FAKE_GID)
    );
    // The stock local_rules.xml is left alone.
    assert_eq!(
        installation.read(&installation.dir().join("etc/rules/local_rules.xml")),
        STOCK_LOCAL_RULES
    );

    let config = Config::from_toml(
        &installation.read(&installation.config_path()),
        Path::new("c"),
    )
    .unwrap();
    assert_eq!(config.active_response.flavor, ArFlavor::Wazuh);
    assert_eq!(config.socket_group.as_deref(), Some("wazuh"));

    let again = install(&installation.plan(true)).unwrap();
    assert_eq!(
        outcomes(&again),
        [Outcome::Unchanged, Outcome::Unchanged, Outcome::Unchanged]
    );
}

#[test]
fn wazuh_without_the_ar_log_localfile_gets_one() {
    let installation = Installation::new(ArFlavor::Wazuh);
    fs::write(installation.dir().join("etc/ossec.conf"), STOCK_OSSEC_CONF).unwrap();
    let report = install(&installation.plan(false)).unwrap();
    assert_conf_block(
        &report.ossec_conf.text,
        ArFlavor::Wazuh,
        &installation.dir(),
        true,
    );
}

#[test]
fn ossec_that_already_reads_the_ar_log_gets_no_second_localfile() {
    let installation = Installation::new(ArFlavor::Ossec);
    let conf = STOCK_WAZUH_CONF.replace("/var/ossec", &installation.dir().display().to_string());
    fs::write(installation.dir().join("etc/ossec.conf"), conf).unwrap();
    let report = install(&installation.plan(false)).unwrap();
    assert_conf_block(
        &report.ossec_conf.text,
        ArFlavor::Ossec,
        &installation.dir(),
        false,
    );
}

#[test]
fn existing_different_config_is_kept() {
    let installation = Installation::new(ArFlavor::Ossec);
    fs::create_dir_all(installation.config_path().parent().unwrap()).unwrap();
    let mine = "[active_response]\nflavor = \"wazuh\"\n";
    fs::write(installation.config_path(), mine).unwrap();
    let report = install(&installation.plan(true)).unwrap();
    assert!(matches!(report.config.outcome, Outcome::Conflict(_)));
    assert_eq!(installation.read(&installation.config_path()), mine);
}

#[test]
fn a_directory_that_is_not_an_installation_is_refused() {
    let installation = Installation::new(ArFlavor::Ossec);
    fs::remove_dir_all(installation.dir().join("active-response")).unwrap();
    let error = install(&installation.plan(false)).unwrap_err();
    assert!(
        matches!(error, InstallError::NotAnInstallation { .. }),
        "{error}"
    );
}

#[test]
fn missing_group_leaves_the_shim_root_owned() {
    let installation = Installation::new(ArFlavor::Ossec);
    fs::write(installation.temp.path().join("group"), "root:x:0:\n").unwrap();
    let report = install(&installation.plan(true)).unwrap();
    assert_eq!(report.shim_group, None);
    let metadata = fs::metadata(&report.shim).unwrap();
    assert_eq!((metadata.gid(), metadata.mode() & 0o7777), (0, 0o750));
    let config = installation.read(&installation.config_path());
    assert!(
        Config::from_toml(&config, Path::new("c"))
            .unwrap()
            .socket_group
            .is_none()
    );
}

/// The real `verifier` binary: `verifier install --wazuh DIR --group mail --apply`, with the
/// shim taken from next to the executable.
#[test]
fn the_verifier_command_installs_the_shim_next_to_it() {
    let binaries = built_binaries();
    let installation = Installation::new(ArFlavor::Wazuh);
    let output = Command::new(binaries.join("verifier"))
        .arg("--config")
        .arg(installation.config_path())
        .args(["install", "--wazuh"])
        .arg(installation.dir())
        .args(["--group", "mail", "--apply"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("Wrote"), "{stdout}");
    let shim = installation.dir().join("active-response/bin/verify-file");
    assert_eq!(
        fs::read(&shim).unwrap(),
        fs::read(binaries.join("verify-file")).unwrap()
    );
    let metadata = fs::metadata(&shim).unwrap();
    assert_eq!(metadata.mode() & 0o7777, 0o750);
    let mail_gid = fs::read_to_string("/etc/group")
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("mail:x:"))
        .and_then(|rest| rest.split(':').next())
        .and_then(|gid| gid.parse::<u32>().ok())
        .unwrap();
    assert_eq!(metadata.gid(), mail_gid);
    let config = installation.read(&installation.config_path());
    assert!(config.contains("socket_group = \"mail\""), "{config}");
}

/// `target/<profile>/`, with `verifier` and `verify-file` freshly built: cargo builds only this
/// package's binaries for its tests, and these belong to verifier-userspace.
fn built_binaries() -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    let profile_dir = deps.parent().unwrap().parent().unwrap().to_owned();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut build = Command::new(cargo);
    build
        .args(["build", "-p", "verifier-userspace", "--bins"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile_dir
        .file_name()
        .is_some_and(|name| name == "release")
    {
        build.arg("--release");
    }
    assert!(build.status().unwrap().success());
    profile_dir
}

#[test]
fn systemd_unit_runs_the_daemon_with_bpf_capabilities() {
    let unit = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/systemd/verifier.service"),
    )
    .unwrap();
    let settings: Vec<(&str, &str)> = unit
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .collect();
    let value = |key: &str| {
        settings
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, value)| *value)
    };
    assert_eq!(value("Type"), Some("simple"));
    assert_eq!(value("Restart"), Some("on-failure"));
    assert_eq!(value("RuntimeDirectory"), Some("verifier"));
    assert_eq!(value("StateDirectory"), Some("verifier"));
    assert!(value("ExecStart").unwrap().ends_with("verifier daemon"));
    let capabilities = value("CapabilityBoundingSet").unwrap();
    for needed in [
        "CAP_BPF",
        "CAP_PERFMON",
        "CAP_SYS_ADMIN",
        "CAP_DAC_READ_SEARCH",
    ] {
        assert!(
            capabilities.split(' ').any(|cap| cap == needed),
            "{needed} missing"
        );
    }
    // Settings that would block loading or attaching the eBPF programs.
    for blocking in [
        "ProtectKernelTunables",
        "PrivateDevices",
        "SystemCallFilter",
        "User",
        "DynamicUser",
    ] {
        assert_eq!(value(blocking), None, "{blocking} must not be set");
    }
    if let Ok(output) = Command::new("systemd-analyze")
        .arg("verify")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/systemd/verifier.service"))
        .output()
    {
        // The only complaint allowed is the binary not being installed on this machine.
        let complaints = String::from_utf8_lossy(&output.stderr);
        for line in complaints.lines().filter(|line| !line.trim().is_empty()) {
            assert!(
                line.contains("is not executable"),
                "systemd-analyze: {line}"
            );
        }
    }
}
