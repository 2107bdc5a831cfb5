//! The real `verify-file` binary run as OSSEC 2.x/3.x and Wazuh 4.x run it, against no daemon
//! and against a tiny in-test socket server that answers canned responses: every way of not
//! getting a logged verdict must end in a `failed` line that the stock `ar_log` decoder reads.
//!
//! Needs the binary built first (`cargo build -p verifier-userspace --bins`; `cargo xtask test`
//! does it).

use std::{
    ffi::OsString,
    fs,
    io::{BufRead as _, BufReader, Write as _},
    os::unix::{ffi::OsStringExt as _, net::UnixListener},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use tests::daemon::TestDaemon;
use verifier::protocol::{
    AlertSource, ChangeKind, Outcome, Request, RequestBody, Response, ResponseBody, Verdict,
};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/ar-formats");

/// One isolated OSSEC/Wazuh installation: config, alerts.log, AR log, socket path, and the shim
/// reachable as `<dir>/active-response/bin/verify-file` (as execd names it).
struct Install {
    dir: tempfile::TempDir,
    program: PathBuf,
}

impl Install {
    fn new(flavor: &str, alerts_fixture: Option<&str>) -> Self {
        Self::with_timeout(flavor, alerts_fixture, 3000)
    }

    fn with_timeout(flavor: &str, alerts_fixture: Option<&str>, timeout_ms: u64) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let bin_dir = dir.path().join("active-response/bin");
        fs::create_dir_all(&bin_dir).unwrap();
        let program = bin_dir.join("verify-file");
        std::os::unix::fs::symlink(tests::workspace_binary("verify-file"), &program).unwrap();
        if let Some(name) = alerts_fixture {
            fs::copy(
                Path::new(FIXTURES).join(name),
                dir.path().join("alerts.log"),
            )
            .unwrap();
        }
        let root = dir.path().display();
        let config = format!(
            "state_dir = \"{root}/state\"\nsocket = \"{root}/verifier.sock\"\n\
             [active_response]\nflavor = \"{flavor}\"\nlog_path = \"{root}/active-responses.log\"\n\
             alerts_log = \"{root}/alerts.log\"\nrequest_timeout_ms = {timeout_ms}\n"
        );
        fs::write(dir.path().join("config.toml"), config).unwrap();
        Self { dir, program }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("verifier.sock")
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command
            .env("VERIFIER_CONFIG", self.dir.path().join("config.toml"))
            .env_remove("VERIFY_FILE_LOG")
            .current_dir("/");
        command
    }

    /// Runs as ossec-execd does: argv, stdin /dev/null, cwd /.
    fn run_ossec(&self, args: &[&str]) -> Output {
        self.run_ossec_os(&args.iter().map(OsString::from).collect::<Vec<_>>())
    }

    fn run_ossec_os(&self, args: &[OsString]) -> Output {
        self.command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run verify-file")
    }

    /// Runs as wazuh-execd does: no arguments, the message on stdin; answers the check_keys line
    /// with `reply` (a full message) when given.
    fn run_wazuh(&self, message: &str, reply: Option<&str>) -> (Output, String) {
        let mut child = self
            .command()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn verify-file");
        let mut stdin = child.stdin.take().unwrap();
        // The shim may stop reading early (hostile input): a broken pipe here is expected.
        let _ = stdin.write_all(message.as_bytes());
        if !message.ends_with('\n') {
            let _ = stdin.write_all(b"\n");
        }
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut keys = String::new();
        if let Some(reply) = reply {
            let _ = stdout.read_line(&mut keys);
            let _ = writeln!(stdin, "{reply}");
        }
        drop(stdin);
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut rest);
        keys.push_str(&rest);
        (child.wait_with_output().unwrap(), keys)
    }

    fn ar_log(&self) -> Vec<String> {
        fs::read_to_string(self.dir.path().join("active-responses.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn only_line(&self) -> String {
        let lines = self.ar_log();
        assert_eq!(lines.len(), 1, "expected one AR log line, got {lines:#?}");
        lines.into_iter().next().unwrap()
    }
}

/// The stock OSSEC `ar_log` decoder, as a function: prematch
/// `^\w\w\w \w\w\w\s+\d+ \d\d:\d\d:\d\d \w+ \d+ /\S+/active-response/bin/`, then
/// `^(\S+) (\w+) - (\S+) (\d+.\d+) (\d+)` → (action, status, srcip, id, extra_data).
fn decode_ar_log(line: &str) -> Option<(String, String, String, String, String)> {
    let word = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-@_".contains(&b))
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (weekday, rest) = line.split_at_checked(4)?;
    let (month, rest) = rest.split_at_checked(4)?;
    if !(weekday.ends_with(' ')
        && month.ends_with(' ')
        && word(weekday.trim_end())
        && word(month.trim_end()))
    {
        return None;
    }
    let rest = rest.trim_start();
    let mut fields = rest.splitn(5, ' ');
    let (day, time, zone, year, rest) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    let time_ok = time.len() == 8 && time.as_bytes()[2] == b':' && time.as_bytes()[5] == b':';
    if !(digits(day) && time_ok && word(zone) && digits(year)) {
        return None;
    }
    let marker = "/active-response/bin/";
    if !rest.starts_with('/') {
        return None;
    }
    let at = rest.find(marker)?;
    if rest[..at].contains(char::is_whitespace) {
        return None;
    }
    let rest = &rest[at + marker.len()..];
    let mut fields = rest.splitn(7, ' ');
    let action = fields.next()?;
    let status = fields.next()?;
    let user = fields.next()?;
    let srcip = fields.next()?;
    let id = fields.next()?;
    let extra = fields.next()?;
    let id_ok = id
        .split_once('.')
        .is_some_and(|(a, b)| digits(a) && digits(b));
    (word(status) && user == "-" && id_ok && digits(extra) && !action.contains(char::is_whitespace))
        .then(|| {
            (
                action.to_owned(),
                status.to_owned(),
                srcip.to_owned(),
                id.to_owned(),
                extra.to_owned(),
            )
        })
}

/// Asserts an OSSEC-layout `failed` line that decodes, and returns its text after the rule id.
fn assert_failed_line(line: &str, alert_id: &str, rule_id: &str) -> String {
    let (action, status, srcip, id, extra) =
        decode_ar_log(line).unwrap_or_else(|| panic!("stock decoder would not read: {line}"));
    assert_eq!(
        (action.as_str(), status.as_str(), srcip.as_str()),
        ("verify-file", "failed", "-"),
        "{line}"
    );
    assert_eq!((id.as_str(), extra.as_str()), (alert_id, rule_id), "{line}");
    let marker = format!(" {alert_id} {rule_id} ");
    line.split_once(&marker)
        .map(|(_, tail)| tail.to_owned())
        .unwrap_or_default()
}

/// What the fake daemon does with one connection.
#[derive(Clone)]
enum Answer {
    Line(String),
    Raw(Vec<u8>),
    Silence(Duration),
}

fn verdict(outcome: Outcome, reason: &str, logged: bool) -> Answer {
    let response = Response::new(ResponseBody::Verdict(Verdict {
        outcome,
        reason: reason.to_owned(),
        logged,
    }));
    Answer::Line(serde_json::to_string(&response).unwrap())
}

/// A socket server answering every connection with `answer`, recording the requests.
struct FakeDaemon {
    requests: Arc<Mutex<Vec<Request>>>,
}

impl FakeDaemon {
    fn start(socket: &Path, answer: Answer) -> Self {
        let listener = UnixListener::bind(socket).expect("bind fake daemon");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let answer = answer.clone();
                let seen = Arc::clone(&seen);
                thread::spawn(move || {
                    let mut reader = BufReader::new(stream);
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    if let Ok(request) = serde_json::from_str::<Request>(&line) {
                        seen.lock().unwrap().push(request);
                    }
                    let stream = reader.get_mut();
                    match answer {
                        Answer::Line(text) => {
                            let _ = stream.write_all(format!("{text}\n").as_bytes());
                        }
                        Answer::Raw(bytes) => {
                            let _ = stream.write_all(&bytes);
                        }
                        Answer::Silence(how_long) => thread::sleep(how_long),
                    }
                });
            }
        });
        Self { requests }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

fn fixture_text(name: &str) -> String {
    fs::read_to_string(Path::new(FIXTURES).join(name)).unwrap()
}

const CURL: [&str; 7] = [
    "add",
    "-",
    "-",
    "1705314151.0",
    "550",
    "syscheck",
    "/usr/bin/curl",
];

// ---------------------------------------------------------------- OSSEC, no daemon listening

#[test]
fn ossec_without_daemon_logs_failed_with_reason() {
    let install = Install::new("ossec", Some("ossec-3.7-local-alerts.log"));
    let output = install.run_ossec(&CURL);
    assert_eq!(output.status.code(), Some(1));
    let tail = assert_failed_line(&install.only_line(), "1705314151.0", "550");
    assert!(
        tail.starts_with("/usr/bin/curl verifier daemon not answering: cannot connect"),
        "{tail}"
    );
}

#[test]
fn every_fixture_alert_without_daemon_is_failed_not_silent() {
    let cases: [(&str, &[&str]); 4] = [
        (
            "ossec-2.8-local-alerts.log",
            &[
                "1705314151.0 550",
                "1705314211.443 550",
                "1705314271.949 551",
                "1705314331.1467 552",
                "1705314391.1934 553",
            ],
        ),
        (
            "ossec-3.7-local-alerts.log",
            &[
                "1705314151.0 550",
                "1705314211.443 550",
                "1705314271.1287 551",
                "1705314331.1806 552",
                "1705314391.2273 553",
                "1705314451.2506 554",
                "1705314511.2688 554",
            ],
        ),
        ("ossec-3.7-server-agent-alert.log", &["1705314571.0 550"]),
        (
            "wazuh-4.x-local-alerts.log",
            &[
                "1705314151.0 550",
                "1705314211.1212 550",
                "1705314391.2827 553",
                "1705314511.3501 554",
            ],
        ),
    ];
    for (fixture, alerts) in cases {
        let install = Install::new("ossec", Some(fixture));
        for alert in alerts {
            let (id, rule) = alert.split_once(' ').unwrap();
            let output = install.run_ossec(&["add", "-", "-", id, rule, "syscheck", "-"]);
            assert_eq!(output.status.code(), Some(1), "{fixture} {id}");
        }
        let lines = install.ar_log();
        assert_eq!(lines.len(), alerts.len(), "{fixture}: {lines:#?}");
        for (line, alert) in lines.iter().zip(alerts) {
            let (id, rule) = alert.split_once(' ').unwrap();
            let tail = assert_failed_line(line, id, rule);
            assert!(
                tail.contains("verifier daemon not answering"),
                "{fixture}: {tail}"
            );
        }
    }
}

#[test]
fn delete_run_is_logged_as_ignored_without_asking_the_daemon() {
    let install = Install::new("ossec", Some("ossec-3.7-local-alerts.log"));
    let daemon = FakeDaemon::start(&install.socket(), verdict(Outcome::Failed, "x", true));
    let mut args = CURL;
    args[0] = "delete";
    let output = install.run_ossec(&args);
    assert_eq!(output.status.code(), Some(0));
    let line = install.only_line();
    let (_, status, ..) = decode_ar_log(&line).expect("decodes");
    assert_eq!(status, "ignored");
    assert!(daemon.requests().is_empty());
}

// ---------------------------------------------------------------- hostile OSSEC input

fn assert_hostile_fails(install: &Install, args: &[OsString], expected_reason: &str) {
    let output = install.run_ossec_os(args);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines = install.ar_log();
    let line = lines
        .last()
        .unwrap_or_else(|| panic!("no line for {args:?}"));
    assert!(
        decode_ar_log(line).is_some_and(|(_, status, ..)| status == "failed"),
        "{line}"
    );
    assert!(
        line.contains(expected_reason),
        "{expected_reason:?} not in {line}"
    );
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

#[test]
fn hostile_ossec_input_gives_failed_with_reason() {
    let install = Install::new("ossec", Some("ossec-3.7-local-alerts.log"));
    let daemon = FakeDaemon::start(&install.socket(), verdict(Outcome::Succeeded, "ok", true));
    let cases: Vec<(Vec<OsString>, &str)> = vec![
        (
            os(&["add", "-", "-", "1705314151.999999", "550", "syscheck", "-"]),
            "past the end",
        ),
        (
            os(&["add", "-", "-", "1705314151.47", "550", "syscheck", "-"]),
            "no `** Alert 1705314151.47:` header",
        ),
        (
            os(&["add", "-", "-", "1705314151.45", "550", "syscheck", "-"]),
            "does not start a line",
        ),
        (
            os(&["add", "-", "-", "1705314212.949", "100201", "syscheck", "-"]),
            "not a syscheck file alert",
        ),
        (
            os(&["add", "-", "-", "1705314151.0", "200001", "syscheck", "-"]),
            "disagree",
        ),
        (
            os(&[
                "add",
                "-",
                "-",
                "1705314151.0",
                "550",
                "syscheck",
                "/usr/bin/curl\nMon Jan 15 10:22:31 UTC 2024 /var/ossec/active-response/bin/verify-file succeeded - - 1.1 550 /x",
            ]),
            "disagree",
        ),
        (
            os(&[
                "add",
                "-",
                "-",
                "1705314151.0",
                "550",
                "syscheck",
                "/usr/bin/curl'",
                "$(reboot)",
                ";",
                "`id`",
            ]),
            "disagree",
        ),
        (
            os(&["add", "-", "-", "1705314151.0\n1.1", "550", "syscheck", "-"]),
            "not an alert id",
        ),
        (
            os(&["add", "-", "-", "abc", "550", "syscheck", "-"]),
            "not an alert id",
        ),
        (os(&["add", "-", "-"]), "unrecognised invocation"),
        (
            os(&[
                "frobnicate",
                "-",
                "-",
                "1705314151.0",
                "550",
                "syscheck",
                "-",
            ]),
            "unknown action",
        ),
        (
            vec![
                OsString::from("add"),
                "-".into(),
                "-".into(),
                OsString::from_vec(b"1705314151.\xff".to_vec()),
                "550".into(),
                "syscheck".into(),
                "-".into(),
            ],
            "not valid UTF-8",
        ),
        (
            os(&[
                "add",
                "-",
                "-",
                &format!("1.{}", "9".repeat(100_000)),
                "550",
                "syscheck",
                "-",
            ]),
            "not an alert id",
        ),
        (
            os(&[
                "add",
                "-",
                "-",
                "1705314151.0",
                "550",
                "syscheck",
                &"/a".repeat(60_000),
            ]),
            "disagree",
        ),
    ];
    for (args, reason) in cases {
        assert_hostile_fails(&install, &args, reason);
    }
    assert!(
        daemon.requests().is_empty(),
        "hostile input reached the daemon"
    );
    for line in install.ar_log() {
        assert!(line.len() < 4096, "line not capped: {} bytes", line.len());
    }
}

#[test]
fn hostile_alerts_log_gives_failed_with_reason() {
    let install = Install::new("ossec", None);
    let _daemon = FakeDaemon::start(&install.socket(), verdict(Outcome::Succeeded, "ok", true));
    let header = "** Alert 1705314151.0: mail  - ossec,syscheck,\n2024 Jan 15 10:22:31 debian12->syscheck\nRule: 550 (level 7) -> 'Integrity checksum changed.'\n";
    let mut huge = header.as_bytes().to_vec();
    huge.extend_from_slice(b"Integrity checksum changed for: '/");
    huge.extend(std::iter::repeat_n(b'a', 1 << 20));
    huge.extend_from_slice(b"'\n\n");
    let mut non_utf8 = header.as_bytes().to_vec();
    non_utf8.extend_from_slice(b"Integrity checksum changed for: '/usr/bin/\xff'\n\n");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (huge, "incomplete"),
        (non_utf8, "not valid UTF-8"),
        (
            format!("{header}Integrity checksum changed for: '/usr/bin/a\tb'\n\n").into_bytes(),
            "control characters",
        ),
        (
            format!("{header}Integrity checksum changed for: 'relative'\n\n").into_bytes(),
            "not an absolute",
        ),
        (
            format!("{header}Something else entirely\n\n").into_bytes(),
            "unrecognised event text",
        ),
        (header.as_bytes()[..60].to_vec(), "incomplete"),
    ];
    for (content, reason) in cases {
        fs::write(install.dir.path().join("alerts.log"), &content).unwrap();
        assert_hostile_fails(
            &install,
            &os(&["add", "-", "-", "1705314151.0", "550", "syscheck", "-"]),
            reason,
        );
    }
    fs::remove_file(install.dir.path().join("alerts.log")).unwrap();
    assert_hostile_fails(
        &install,
        &os(&["add", "-", "-", "1705314151.0", "550", "syscheck", "-"]),
        "cannot open alerts log",
    );
}

// ---------------------------------------------------------------- against a fake daemon

#[test]
fn succeeded_verdict_logged_by_daemon_exits_zero_and_shim_logs_nothing() {
    let install = Install::new("ossec", Some("ossec-3.7-local-alerts.log"));
    let daemon = FakeDaemon::start(&install.socket(), verdict(Outcome::Succeeded, "dpkg", true));
    let output = install.run_ossec(&CURL);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(install.ar_log().is_empty());
    let requests = daemon.requests();
    assert_eq!(requests.len(), 1);
    let RequestBody::Verify { alert } = &requests[0].body else {
        panic!("not a verify request")
    };
    assert_eq!(alert.source, AlertSource::Ossec);
    assert_eq!(alert.alert_id, "1705314151.0");
    assert_eq!(alert.rule_id, "550");
    assert_eq!(alert.change, ChangeKind::Modified);
    assert_eq!(alert.path, "/usr/bin/curl");
    assert_eq!(
        alert.md5_after.as_deref(),
        Some("1323de69f7b423af59147549752a692f")
    );
    assert!(
        alert.program.ends_with("/active-response/bin/verify-file"),
        "{}",
        alert.program
    );
}

#[test]
fn local_rule_agent_location_and_spaced_names_reach_the_daemon() {
    let install = Install::new("ossec", Some("ossec-3.7-server-agent-alert.log"));
    let daemon = FakeDaemon::start(&install.socket(), verdict(Outcome::Succeeded, "ok", true));
    let output = install.run_ossec(&[
        "add",
        "-",
        "-",
        "1705314571.0",
        "550",
        "(web01)",
        "192.168.56.10->syscheck",
        "/usr/bin/curl",
    ]);
    assert_eq!(output.status.code(), Some(0), "{:?}", install.ar_log());

    let spaced = Install::new("ossec", None);
    let daemon2 = FakeDaemon::start(&spaced.socket(), verdict(Outcome::Succeeded, "ok", true));
    let block = "** Alert 1705314151.0: - local,syscheck,\n2024 Jan 15 10:22:31 debian12->syscheck\nRule: 200001 (level 3) -> 'Integrity checksum changed.'\nIntegrity checksum changed for: '/etc/my file.conf'\n\n";
    fs::write(spaced.dir.path().join("alerts.log"), block).unwrap();
    let output = spaced.run_ossec(&[
        "add",
        "-",
        "-",
        "1705314151.0",
        "200001",
        "syscheck",
        "/etc/my\\",
        "file.conf",
    ]);
    assert_eq!(output.status.code(), Some(0), "{:?}", spaced.ar_log());
    let RequestBody::Verify { alert } = &daemon2.requests()[0].body else {
        panic!()
    };
    assert_eq!(
        (alert.rule_id.as_str(), alert.path.as_str()),
        ("200001", "/etc/my file.conf")
    );
    assert_eq!(daemon.requests().len(), 1);
}

#[test]
fn failed_verdict_logged_by_daemon_exits_one_and_shim_logs_nothing() {
    let install = Install::new("ossec", Some("ossec-3.7-local-alerts.log"));
    let _daemon = FakeDaemon::start(
        &install.socket(),
        verdict(Outcome::Failed, "written by vim", true),
    );
    let output = install.run_ossec(&CURL);
    assert_eq!(output.status.code(), Some(1));
    assert!(install.ar_log().is_empty());
}

#[test]
fn deferred_verdict_exits_zero_and_logs_nothing() {
    let install = Install::new("ossec", Some("ossec-3.7-local-alerts.log"));
    let _daemon = FakeDaemon::start(
        &install.socket(),
        verdict(Outcome::Deferred, "dpkg running", false),
    );
    let output = install.run_ossec(&CURL);
    assert_eq!(output.status.code(), Some(0));
    assert!(install.ar_log().is_empty());
}

#[test]
fn verdict_the_daemon_could_not_log_is_logged_failed_by_the_shim() {
    for outcome in [Outcome::Succeeded, Outcome::Failed] {
        let install = Install::new("ossec", Some("ossec-3.7-local-alerts.log"));
        let _daemon = FakeDaemon::start(&install.socket(), verdict(outcome, "disk full", false));
        let output = install.run_ossec(&CURL);
        assert_eq!(output.status.code(), Some(1));
        let tail = assert_failed_line(&install.only_line(), "1705314151.0", "550");
        assert!(
            tail.contains("could not log its verdict") && tail.contains("disk full"),
            "{tail}"
        );
    }
}

#[test]
fn daemon_errors_garbage_and_silence_are_logged_failed() {
    let cases = [
        (Answer::Line(serde_json::to_string(&Response::error("queue full")).unwrap()), "verifier daemon error: queue full"),
        (Answer::Line("garbage".to_owned()), "not a valid response"),
        (Answer::Raw(b"{\"version\":1,\"type\":\"verd".to_vec()), "closed the connection"),
        (Answer::Line(serde_json::to_string(&Response::new(ResponseBody::Status { status: serde_json::json!({}) })).unwrap()), "status answer"),
        (Answer::Line("{\"version\":9,\"type\":\"verdict\",\"outcome\":\"succeeded\",\"reason\":\"\",\"logged\":true}".to_owned()), "protocol version 9"),
        (Answer::Raw(vec![b'x'; 2 << 20]), "exceeds"),
        (Answer::Silence(Duration::from_secs(5)), "no answer"),
    ];
    for (answer, reason) in cases {
        let install = Install::with_timeout("ossec", Some("ossec-3.7-local-alerts.log"), 500);
        let _daemon = FakeDaemon::start(&install.socket(), answer);
        let started = Instant::now();
        let output = install.run_ossec(&CURL);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{reason}: took {:?}",
            started.elapsed()
        );
        assert_eq!(output.status.code(), Some(1), "{reason}");
        let tail = assert_failed_line(&install.only_line(), "1705314151.0", "550");
        assert!(tail.contains(reason), "{reason:?} not in {tail}");
    }
}

// ---------------------------------------------------------------- Wazuh 4.x

#[test]
fn wazuh_add_handshake_then_verify() {
    let install = Install::new("wazuh", None);
    let daemon = FakeDaemon::start(&install.socket(), verdict(Outcome::Succeeded, "ok", true));
    let handshake = fixture_text("wazuh-4.x-ar-handshake.jsonl");
    let continue_line = handshake.lines().nth(1).unwrap();
    let (output, stdout) = install.run_wazuh(
        &fixture_text("wazuh-4.x-ar-stdin-add-550.json"),
        Some(continue_line),
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout,
        "{\"version\":1,\"origin\":{\"name\":\"verify-file\",\"module\":\"active-response\"},\"command\":\"check_keys\",\"parameters\":{\"keys\":[\"/usr/bin/curl\"]}}\n"
    );
    let RequestBody::Verify { alert } = &daemon.requests()[0].body else {
        panic!()
    };
    assert_eq!(alert.source, AlertSource::Wazuh);
    assert_eq!(alert.path, "/usr/bin/curl");
    assert_eq!(
        alert.sha256_after.as_deref(),
        Some("1d92f94a27afd786a69e3b0c2a42893d9d04a2bd905cb32f172c59b4230a8f30")
    );
    assert!(install.ar_log().is_empty());
}

#[test]
fn wazuh_whodata_without_daemon_logs_json_failed() {
    let install = Install::new("wazuh", None);
    let continue_line = fixture_text("wazuh-4.x-ar-handshake.jsonl")
        .lines()
        .nth(1)
        .unwrap()
        .to_owned();
    let (output, _) = install.run_wazuh(
        &fixture_text("wazuh-4.x-ar-stdin-add-550-whodata.json"),
        Some(&continue_line),
    );
    assert_eq!(output.status.code(), Some(1));
    let line = install.only_line();
    let (prefix, json) = line.split_once(": {").expect("wazuh layout");
    assert!(
        prefix.ends_with("/active-response/bin/verify-file"),
        "{prefix}"
    );
    let status: serde_json::Value = serde_json::from_str(&format!("{{{json}")).unwrap();
    assert_eq!(status["status"], "failed");
    assert_eq!(status["path"], "/etc/default/grub");
    assert_eq!(status["alert_id"], "1705314211.1212");
    assert_eq!(status["rule"], "550");
    assert!(status["reason"].as_str().unwrap().contains("not answering"));
}

#[test]
fn wazuh_abort_and_delete_are_ignored() {
    let install = Install::new("wazuh", None);
    let daemon = FakeDaemon::start(&install.socket(), verdict(Outcome::Succeeded, "ok", true));
    let handshake = fixture_text("wazuh-4.x-ar-handshake.jsonl");
    let lines: Vec<&str> = handshake.lines().collect();
    let (output, stdout) = install.run_wazuh(
        &fixture_text("wazuh-4.x-ar-stdin-add-550.json"),
        Some(lines[2]),
    );
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout.contains("check_keys"));
    let (output, stdout) = install.run_wazuh(lines[3], None);
    assert_eq!(output.status.code(), Some(0));
    assert!(
        stdout.is_empty(),
        "delete must not print check_keys: {stdout}"
    );
    let log = install.ar_log();
    assert_eq!(log.len(), 2, "{log:#?}");
    assert!(
        log.iter()
            .all(|line| line.contains("\"status\":\"ignored\"")),
        "{log:#?}"
    );
    assert!(daemon.requests().is_empty());
}

#[test]
fn wazuh_hostile_stdin_gives_failed() {
    let install = Install::new("wazuh", None);
    let _daemon = FakeDaemon::start(&install.socket(), verdict(Outcome::Succeeded, "ok", true));
    let add = fixture_text("wazuh-4.x-ar-stdin-add-550.json");
    let cases = [
        ("not json".to_owned(), "not valid JSON"),
        (
            add.replace("\"/usr/bin/curl\"", "\"/usr/bin/cu\\nrl\""),
            "control characters",
        ),
        (
            add.replace("\"event\":\"modified\"", "\"event\":\"renamed\""),
            "renamed",
        ),
        (
            add.replace("\"command\":\"add\"", "\"command\":\"continue\""),
            "unexpected command",
        ),
        (
            format!("{{\"pad\":\"{}\"}}", "a".repeat(2 << 20)),
            "line longer than",
        ),
    ];
    for (message, reason) in cases {
        let (output, _) = install.run_wazuh(&message, None);
        assert_eq!(output.status.code(), Some(1), "{reason}");
        let log = install.ar_log();
        let line = log.last().unwrap();
        assert!(
            line.contains("\"status\":\"failed\"") && line.contains(reason),
            "{reason:?} not in {line}"
        );
    }
    // A garbage reply to check_keys.
    let (output, _) = install.run_wazuh(&add, Some("nonsense"));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        install
            .ar_log()
            .last()
            .unwrap()
            .contains("check_keys handshake failed")
    );
}

#[test]
fn wazuh_shape_with_empty_stdin_fails_fast() {
    let install = Install::new("wazuh", None);
    let started = Instant::now();
    let output = install.command().stdin(Stdio::null()).output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(output.status.code(), Some(1));
    assert!(install.only_line().contains("stdin is empty"));
}

// ---------------------------------------------------------------- load, against the real daemon

/// Shims forked at once, as ossec-execd forks one per alert without waiting.
const PARALLEL_SHIMS: usize = 2000;
/// The daemon's peak resident memory (VmHWM) must stay under this during the burst. Measured on
/// this project's machine (3 runs, loaded): 134–137 MiB at rest (package index of ~125,000
/// files, eBPF maps, the 16 MiB ring buffer) and 143–211 MiB after 2,000 simultaneous requests.
const DAEMON_PEAK_RSS_BOUND: u64 = 320 << 20;
/// How much the burst may add to the daemon's peak (measured: 9–77 MiB).
const BURST_RSS_GROWTH_BOUND: u64 = 128 << 20;

/// What a shim may take beyond its request timeout: exec, reading its configuration and the
/// alert, writing its line, exiting, and this test's 10 ms polling, on a loaded 2-core machine.
const START_AND_EXIT_SLACK: Duration = Duration::from_secs(5);

/// Raises this process's soft limits (inherited by the daemon and the shims) so that forking
/// 2,000 shims and queueing 2,000 connections is limited by the code under test, not by a
/// CI runner's default `ulimit -n 1024`: the daemon holds one descriptor per queued connection.
/// RLIMIT_NPROC is raised too, although root is not held to it (CAP_SYS_RESOURCE).
fn raise_limits_for_the_burst() {
    for (resource, wanted) in [(libc::RLIMIT_NOFILE, 16_384), (libc::RLIMIT_NPROC, 65_536)] {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit on this process with a valid, initialised struct.
        unsafe {
            assert_eq!(libc::getrlimit(resource, &mut limit), 0);
            if limit.rlim_cur < wanted {
                if limit.rlim_max < wanted {
                    // Root may raise the hard limit too.
                    limit.rlim_max = wanted;
                }
                limit.rlim_cur = wanted;
                assert_eq!(
                    libc::setrlimit(resource, &limit),
                    0,
                    "cannot raise rlimit {resource}: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
    }
}

/// `count` OSSEC 3.7 syscheck blocks (local rule 100210) about real, untouched system files,
/// appended to `alerts_log`; returns each (alert id, path).
fn write_alerts(alerts_log: &Path, count: usize) -> Vec<(String, String)> {
    const PATHS: [&str; 4] = [
        "/usr/bin/true",
        "/usr/bin/env",
        "/usr/bin/cat",
        "/usr/bin/ls",
    ];
    let epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut text = String::new();
    let mut alerts = Vec::with_capacity(count);
    for index in 0..count {
        let id = format!("{epoch}.{}", text.len());
        let path = PATHS[index % PATHS.len()];
        text.push_str(&format!(
            "** Alert {id}: mail  - local,syscheck,verifier_check,\n\
             2024 Jan 15 10:22:31 debian12->syscheck\n\
             Rule: 100210 (level 7) -> 'Integrity checksum changed.'\n\
             Integrity checksum changed for: '{path}'\n\n"
        ));
        alerts.push((id, path.to_owned()));
    }
    fs::write(alerts_log, text).unwrap();
    alerts
}

/// How one shim run ended.
struct ShimRun {
    exit_code: Option<i32>,
    took: Duration,
}

/// Forks one shim per alert as fast as possible (execd's way: argv, stdin /dev/null, cwd /),
/// then reaps them, noting how long each one ran (to within the 10 ms polling step).
fn run_shims_at_once(config: &Path, alerts: &[(String, String)]) -> (Vec<ShimRun>, Duration) {
    // Reached as execd names it, so the AR log lines carry `.../active-response/bin/verify-file`.
    let bin_dir = config.with_file_name("active-response/bin");
    fs::create_dir_all(&bin_dir).unwrap();
    let shim = bin_dir.join("verify-file");
    if !shim.exists() {
        std::os::unix::fs::symlink(tests::workspace_binary("verify-file"), &shim).unwrap();
    }
    let started = Instant::now();
    let mut running = Vec::with_capacity(alerts.len());
    for (id, _) in alerts {
        let child = Command::new(&shim)
            .args(["add", "-", "-", id, "100210", "syscheck", "-"])
            .env("VERIFIER_CONFIG", config)
            .env_remove("VERIFY_FILE_LOG")
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("fork verify-file");
        running.push(Some((child, Instant::now())));
    }
    let spawned_in = started.elapsed();
    let mut runs: Vec<Option<ShimRun>> = (0..alerts.len()).map(|_| None).collect();
    let mut left = alerts.len();
    while left > 0 {
        for (slot, run) in running.iter_mut().zip(runs.iter_mut()) {
            let Some((child, spawned)) = slot else {
                continue;
            };
            if let Some(status) = child.try_wait().expect("poll verify-file") {
                *run = Some(ShimRun {
                    exit_code: status.code(),
                    took: spawned.elapsed(),
                });
                *slot = None;
                left -= 1;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "{left} shims still running after 5 minutes"
        );
        thread::sleep(Duration::from_millis(10));
    }
    (runs.into_iter().flatten().collect(), spawned_in)
}

/// Checks that every alert has a `failed` line in the AR log (none lost) and that no line is
/// anything but `failed` (none succeeded), and returns how many lines carry `shim_reason` (lines
/// the shim wrote itself because the daemon refused the request). An alert may have two lines
/// when the shim gave up waiting (its timeout) and the daemon logged its own verdict afterwards:
/// both say `failed`; their number is printed.
fn assert_every_alert_failed_loudly(
    ar_log: &str,
    alerts: &[(String, String)],
    shim_reason: &str,
) -> usize {
    let lines: Vec<&str> = ar_log.lines().collect();
    let mut seen = std::collections::HashMap::new();
    let mut refused = 0;
    for line in &lines {
        let (action, status, _, id, rule) =
            decode_ar_log(line).unwrap_or_else(|| panic!("stock decoder would not read: {line}"));
        assert_eq!(
            (action.as_str(), status.as_str(), rule.as_str()),
            ("verify-file", "failed", "100210"),
            "{line}"
        );
        if line.contains(shim_reason) {
            refused += 1;
        }
        *seen.entry(id).or_insert(0) += 1;
    }
    for (id, path) in alerts {
        assert!(
            seen.contains_key(id),
            "alert {id} ({path}) has no AR log line"
        );
    }
    assert_eq!(seen.len(), alerts.len(), "lines for alerts never raised");
    let twice = lines.len() - alerts.len();
    if twice > 0 {
        eprintln!(
            "{twice} alerts logged twice (the shim's timeout line, then the daemon's verdict)"
        );
    }
    refused
}

/// 2,000 shims forked at once against the real daemon, with a real alerts.log: every run ends
/// with its verdict line in the AR log and within the request timeout, and the daemon's memory
/// stays bounded. First with room for everything in the bounded queue (8 requests decided at a
/// time, 4,096 waiting): every verdict comes from the daemon. Then with a queue of 16: the
/// daemon refuses the overflow at once and each refused shim logs `failed` itself — backpressure
/// ends as alerts, never as a hang or a silent success.
#[test]
fn two_thousand_parallel_shims_against_the_real_daemon_are_all_answered() {
    tests::require_root();
    raise_limits_for_the_burst();
    const TIMEOUT_MS: u64 = 60_000;
    let mut daemon = TestDaemon::start_with(
        &format!(
            "request_timeout_ms = {TIMEOUT_MS}\nmax_concurrent_requests = 8\nqueue_depth = 4096"
        ),
        "[policy]\nenroll = false\n",
    );
    let alerts = write_alerts(&daemon.alerts_log, PARALLEL_SHIMS);
    let at_rest = daemon.memory_bytes("VmHWM").expect("daemon VmHWM");
    let burst = Instant::now();
    let (runs, spawned_in) = run_shims_at_once(&daemon.config, &alerts);
    let burst_took = burst.elapsed();
    let peak = daemon.memory_bytes("VmHWM").expect("daemon VmHWM");
    let slowest = runs.iter().map(|run| run.took).max().unwrap_or_default();
    eprintln!(
        "{PARALLEL_SHIMS} shims: forked in {spawned_in:?}, all done in {burst_took:?}, slowest {slowest:?}; \
         daemon VmHWM {} MiB at rest, {} MiB after",
        at_rest >> 20,
        peak >> 20
    );
    assert!(
        runs.iter().all(|run| run.exit_code == Some(1)),
        "every verdict is failed (history before monitoring started): exit codes {:?}",
        runs.iter()
            .map(|run| run.exit_code)
            .collect::<std::collections::BTreeSet<_>>()
    );
    assert!(
        slowest < Duration::from_millis(TIMEOUT_MS) + START_AND_EXIT_SLACK,
        "a shim ran {slowest:?}, past its {TIMEOUT_MS} ms timeout"
    );
    let ar_log = daemon.ar_log_text();
    let refused = assert_every_alert_failed_loudly(&ar_log, &alerts, "verifier daemon");
    assert_eq!(
        refused, 0,
        "the queue had room: every verdict must come from the daemon"
    );
    assert!(
        ar_log
            .lines()
            .all(|line| line.contains("no complete evidence: monitoring_not_started")),
        "unexpected reason: {:?}",
        ar_log
            .lines()
            .find(|line| !line.contains("no complete evidence: monitoring_not_started"))
    );
    assert!(
        peak < DAEMON_PEAK_RSS_BOUND,
        "daemon peak RSS {} MiB over the {} MiB bound",
        peak >> 20,
        DAEMON_PEAK_RSS_BOUND >> 20
    );
    assert!(
        peak - at_rest < BURST_RSS_GROWTH_BOUND,
        "the burst grew the daemon's peak RSS by {} MiB",
        (peak - at_rest) >> 20
    );
    let status = daemon.stop();
    assert!(
        status.success(),
        "daemon exit {status}:\n{}",
        daemon.log_text()
    );

    // Backpressure: one request decided at a time, 16 waiting, the rest refused at once.
    let mut small_queue = TestDaemon::start_with(
        "request_timeout_ms = 30000\nmax_concurrent_requests = 1\nqueue_depth = 16",
        "[policy]\nenroll = false\n",
    );
    let alerts = write_alerts(&small_queue.alerts_log, PARALLEL_SHIMS);
    let (runs, _) = run_shims_at_once(&small_queue.config, &alerts);
    let slowest = runs.iter().map(|run| run.took).max().unwrap_or_default();
    assert!(runs.iter().all(|run| run.exit_code == Some(1)));
    assert!(
        slowest < Duration::from_secs(30) + START_AND_EXIT_SLACK,
        "a shim ran {slowest:?}, past its 30 s timeout"
    );
    let refused = assert_every_alert_failed_loudly(
        &small_queue.ar_log_text(),
        &alerts,
        "verifier daemon error: daemon overloaded",
    );
    eprintln!("queue of 16: {refused} of {PARALLEL_SHIMS} refused and logged failed by the shim");
    assert!(
        refused > 0,
        "a queue of 16 never overflowed under 2,000 requests"
    );
    assert!(refused < PARALLEL_SHIMS, "the daemon decided nothing");
    let status = small_queue.stop();
    assert!(
        status.success(),
        "daemon exit {status}:\n{}",
        small_queue.log_text()
    );
}
