//! Alert mail through the real local MTA (postfix): sendmail and SMTP on 127.0.0.1:25, read back
//! from root's mailbox. Each test mails `root+<unique marker>@localhost`, so postfix delivers to
//! `/var/mail/root` and its `X-Original-To` header tells this run's mails apart from any other.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use verifier::{
    alerting::mail::{
        MailAlert, MailError, MailTransaction, Mailer, MailerOptions, local_hostname,
    },
    config::{MailConfig, MailTransport},
};

const MAILBOX: &str = "/var/mail/root";
const DELIVERY_WAIT: Duration = Duration::from_secs(30);

/// A marker unique to this test run and test.
fn marker(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{test}{}x{nanos}", std::process::id())
}

fn ensure_postfix_running() {
    let running = Command::new("postfix")
        .arg("status")
        .status()
        .is_ok_and(|status| status.success());
    if !running {
        let started = Command::new("postfix").arg("start").status().unwrap();
        assert!(started.success(), "postfix start failed");
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn config(transport: MailTransport, recipient: &str, window_secs: u64) -> MailConfig {
    MailConfig {
        enabled: true,
        transport,
        from: None,
        to: vec![recipient.to_owned()],
        sendmail_path: PathBuf::from("/usr/sbin/sendmail"),
        smtp_host: "127.0.0.1".to_owned(),
        smtp_port: 25,
        batch_window_secs: window_secs,
    }
}

fn alert(marker: &str, index: usize) -> MailAlert {
    MailAlert {
        path: format!("/usr/bin/{marker}-file{index}"),
        alert_id: format!("1705314211.{}", 443 + index),
        rule_id: "100210".to_owned(),
        reason: format!("written outside any package transaction ({index})"),
        transaction: None,
        writer: Some(format!("pid {} /usr/bin/vim", 1000 + index)),
        time: SystemTime::now(),
    }
}

/// One delivered message: its header block and its decoded body.
#[derive(Debug)]
struct Delivered {
    headers: String,
    body: String,
}

impl Delivered {
    /// The header's value, with folded continuation lines joined (RFC 5322 unfolding).
    fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        let mut lines = self.headers.lines();
        let first = lines.find(|line| line.to_ascii_lowercase().starts_with(&prefix))?;
        let mut value = first[prefix.len()..].trim().to_owned();
        for continuation in lines.take_while(|line| line.starts_with([' ', '\t'])) {
            value.push(' ');
            value.push_str(continuation.trim());
        }
        Some(value)
    }
}

/// Every message in root's mailbox that was addressed to `recipient`.
fn delivered_to(recipient: &str) -> Vec<Delivered> {
    let Ok(mbox) = std::fs::read_to_string(MAILBOX) else {
        return Vec::new();
    };
    let wanted = format!("X-Original-To: {recipient}");
    mbox.split("\nFrom ")
        .filter(|message| message.lines().any(|line| line.trim_end() == wanted))
        .map(|message| {
            let (headers, body) = message.split_once("\n\n").unwrap_or((message, ""));
            let quoted_printable = headers
                .to_ascii_lowercase()
                .contains("content-transfer-encoding: quoted-printable");
            let body = if quoted_printable {
                decode_quoted_printable(body)
            } else {
                body.to_owned()
            };
            Delivered {
                headers: headers.to_owned(),
                body,
            }
        })
        .collect()
}

fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'='
            && index + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&joined[index + 1..index + 3], 16)
        {
            out.push(byte);
            index += 3;
            continue;
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Waits until `count` messages for `recipient` are in the mailbox, then returns them.
fn wait_for_mail(recipient: &str, count: usize) -> Vec<Delivered> {
    let start = Instant::now();
    loop {
        let found = delivered_to(recipient);
        if found.len() >= count || start.elapsed() > DELIVERY_WAIT {
            return found;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn assert_lists_alerts(mail: &Delivered, marker: &str, indexes: std::ops::Range<usize>) {
    for index in indexes {
        let expected = alert(marker, index);
        assert!(
            mail.body.contains(&format!(". {}\n", expected.path)),
            "path {} missing:\n{}",
            expected.path,
            mail.body
        );
        assert!(
            mail.body
                .contains(&format!("alert id:    {}", expected.alert_id))
        );
        assert!(
            mail.body
                .contains(&format!("reason:      {}", expected.reason))
        );
        assert!(
            mail.body
                .contains(&format!("written by:  pid {} /usr/bin/vim", 1000 + index))
        );
    }
    assert!(mail.body.contains("rule id:     100210"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sendmail_batches_a_window_of_alerts_into_one_mail() {
    ensure_postfix_running();
    let marker = marker("sendmailbatch");
    let recipient = format!("root+{marker}@localhost");
    let handle = Mailer::start(&config(MailTransport::Sendmail, &recipient, 2)).unwrap();
    for index in 0..7 {
        handle.alert(alert(&marker, index));
    }
    // The window ends two seconds after the first alert: the mail goes out without a flush.
    let mails = wait_for_mail(&recipient, 1);
    assert_eq!(mails.len(), 1, "expected exactly one mail for the window");
    let mail = &mails[0];
    let hostname = local_hostname();
    assert_eq!(
        mail.header("Subject").unwrap(),
        format!("Verifier Notification - {hostname} - File Verification Alert (7 failed)")
    );
    assert_eq!(mail.header("From").unwrap(), format!("verifier@{hostname}"));
    assert!(mail.body.contains(&format!(
        "verifier on {hostname} could not explain 7 file changes"
    )));
    assert_lists_alerts(mail, &marker, 0..7);
    assert!(mail.body.contains("transaction: none\n"));

    handle.flush_and_stop().await.unwrap();
    // Stopping with nothing pending sends nothing more.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(delivered_to(&recipient).len(), 1);
}

/// The failure of `alert(marker, index)` caused by package transaction `id`.
fn transaction_alert(marker: &str, index: usize, id: u64) -> MailAlert {
    MailAlert {
        transaction: Some(MailTransaction {
            id,
            description: format!("`dpkg -i {marker}-{id}.deb` pid {id}"),
        }),
        ..alert(marker, index)
    }
}

/// Failures of one transaction leave as one mail, naming it, as soon as its verdicts are done,
/// while the window's mail (other failures) and another transaction's mail wait for their time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_mail_per_transaction_when_its_verdicts_are_done() {
    ensure_postfix_running();
    let marker = marker("pertransaction");
    let recipient = format!("root+{marker}@localhost");
    // A window far longer than the test: only transaction_done and stop send mail.
    let handle = Mailer::start(&config(MailTransport::Sendmail, &recipient, 3600)).unwrap();
    handle.alert(transaction_alert(&marker, 0, 71));
    handle.alert(alert(&marker, 1));
    handle.alert(transaction_alert(&marker, 2, 72));
    handle.alert(transaction_alert(&marker, 3, 71));
    handle.alert(transaction_alert(&marker, 4, 71));
    handle.transaction_done(71);
    let first = wait_for_mail(&recipient, 1);
    assert_eq!(first.len(), 1, "exactly transaction 71's mail goes out");
    let mail = &first[0];
    assert!(
        mail.header("Subject")
            .unwrap()
            .ends_with("File Verification Alert (3 failed) - package transaction 71"),
        "{:?}",
        mail.header("Subject")
    );
    assert!(
        mail.body.contains(&format!(
            "All of them were written during package transaction 71: `dpkg -i {marker}-71.deb` pid 71."
        )),
        "{}",
        mail.body
    );
    for index in [0, 3, 4] {
        assert!(
            mail.body.contains(&alert(&marker, index).path),
            "{}",
            mail.body
        );
    }
    for index in [1, 2] {
        assert!(
            !mail.body.contains(&alert(&marker, index).path),
            "{}",
            mail.body
        );
    }
    // Nothing else leaves before the window ends or the mailer stops.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(delivered_to(&recipient).len(), 1);
    handle.flush_and_stop().await.unwrap();
    let all = wait_for_mail(&recipient, 3);
    assert_eq!(all.len(), 3, "transaction 71, transaction 72, the window");
    let other = all
        .iter()
        .find(|mail| mail.body.contains(&alert(&marker, 2).path))
        .unwrap();
    assert!(
        other
            .header("Subject")
            .unwrap()
            .ends_with("(1 failed) - package transaction 72")
    );
    let window = all
        .iter()
        .find(|mail| mail.body.contains(&alert(&marker, 1).path))
        .unwrap();
    assert!(window.header("Subject").unwrap().ends_with("(1 failed)"));
    assert!(window.body.contains("transaction: none\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_on_loopback_delivers_the_batch_on_stop() {
    ensure_postfix_running();
    let marker = marker("smtpstop");
    let recipient = format!("root+{marker}@localhost");
    // A window far longer than the test: only flush_and_stop sends the mail.
    let handle = Mailer::start(&config(MailTransport::Smtp, &recipient, 3600)).unwrap();
    for index in 0..4 {
        handle.alert(alert(&marker, index));
    }
    handle.clone().flush_and_stop().await.unwrap();
    let stats = handle.stats();
    assert_eq!(
        (stats.queued, stats.mails_sent, stats.alerts_mailed),
        (4, 1, 4)
    );
    let mails = wait_for_mail(&recipient, 1);
    assert_eq!(mails.len(), 1);
    let hostname = local_hostname();
    assert_eq!(
        mails[0].header("Subject").unwrap(),
        format!("Verifier Notification - {hostname} - File Verification Alert (4 failed)")
    );
    assert_lists_alerts(&mails[0], &marker, 0..4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_sends_one_mail_per_window_and_flush_sends_early() {
    ensure_postfix_running();
    let marker = marker("smtpwindows");
    let recipient = format!("root+{marker}@localhost");
    let handle = Mailer::start(&config(MailTransport::Smtp, &recipient, 3600)).unwrap();
    for index in 0..3 {
        handle.alert(alert(&marker, index));
    }
    handle.flush();
    let first = wait_for_mail(&recipient, 1);
    assert_eq!(first.len(), 1);
    assert_lists_alerts(&first[0], &marker, 0..3);
    for index in 3..5 {
        handle.alert(alert(&marker, index));
    }
    handle.flush_and_stop().await.unwrap();
    let both = wait_for_mail(&recipient, 2);
    assert_eq!(both.len(), 2);
    let second = both
        .iter()
        .find(|mail| mail.body.contains(&alert(&marker, 3).path))
        .unwrap();
    assert!(second.header("Subject").unwrap().ends_with("(2 failed)"));
    assert_lists_alerts(second, &marker, 3..5);
    assert!(!second.body.contains(&alert(&marker, 0).path));
}

/// On a current-thread runtime the mailer task cannot run between these `alert` calls, so the
/// bounded queue fills deterministically.
#[tokio::test(flavor = "current_thread")]
async fn overflow_is_counted_and_reported_in_the_next_mail() {
    ensure_postfix_running();
    let marker = marker("overflow");
    let recipient = format!("root+{marker}@localhost");
    let options = MailerOptions {
        queue_capacity: 3,
        ..MailerOptions::default()
    };
    let handle =
        Mailer::start_with(&config(MailTransport::Sendmail, &recipient, 3600), options).unwrap();
    for index in 0..10 {
        handle.alert(alert(&marker, index));
    }
    let stats = handle.stats();
    assert_eq!((stats.queued, stats.overflowed), (3, 7));
    handle.flush_and_stop().await.unwrap();
    let mails = wait_for_mail(&recipient, 1);
    assert_eq!(mails.len(), 1);
    assert!(mails[0].header("Subject").unwrap().ends_with("(10 failed)"));
    assert_lists_alerts(&mails[0], &marker, 0..3);
    assert!(
        mails[0]
            .body
            .contains("WARNING: 7 failed verdicts could not be queued for mail"),
        "{}",
        mails[0].body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_failure_is_retried_then_reported() {
    // Nothing listens on port 1: every attempt is refused.
    let mut config = config(MailTransport::Smtp, "root@localhost", 3600);
    config.smtp_port = 1;
    let options = MailerOptions {
        max_attempts: 3,
        first_retry_delay: Duration::from_millis(50),
        ..MailerOptions::default()
    };
    let handle = Mailer::start_with(&config, options).unwrap();
    handle.alert(alert("failure", 0));
    let started = Instant::now();
    let error = handle.clone().flush_and_stop().await.unwrap_err();
    match &error {
        MailError::Delivery(failure) => {
            assert_eq!(failure.attempts, 3);
            assert_eq!(failure.transport, "smtp");
        }
        other => panic!("expected a delivery failure, got {other}"),
    }
    // Two pauses: 50 ms then 100 ms.
    assert!(started.elapsed() >= Duration::from_millis(150));
    let stats = handle.stats();
    assert_eq!((stats.mails_sent, stats.mails_failed), (0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_sendmail_is_a_delivery_failure() {
    let mut config = config(MailTransport::Sendmail, "root@localhost", 3600);
    config.sendmail_path = PathBuf::from("/nonexistent/sendmail");
    let options = MailerOptions {
        max_attempts: 2,
        first_retry_delay: Duration::from_millis(10),
        ..MailerOptions::default()
    };
    let handle = Mailer::start_with(&config, options).unwrap();
    handle.alert(alert("nosendmail", 0));
    let error = handle.flush_and_stop().await.unwrap_err();
    assert!(
        matches!(error, MailError::Delivery(ref failure) if failure.attempts == 2),
        "{error}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn disabled_mail_ignores_alerts() {
    let handle = Mailer::start(&MailConfig::default()).unwrap();
    assert!(!handle.is_enabled());
    handle.alert(alert("disabled", 0));
    assert_eq!(handle.stats().queued, 0);
    handle.flush_and_stop().await.unwrap();
}

#[test]
fn starting_outside_a_runtime_is_an_error() {
    let result = Mailer::start(&config(MailTransport::Sendmail, "root@localhost", 1));
    assert!(matches!(result, Err(MailError::NoRuntime)));
}

/// A sendmail that fails its first `failures` runs (counted in a file beside it) and then hands
/// the mail to the real /usr/sbin/sendmail.
fn flaky_sendmail(dir: &Path, failures: u32) -> PathBuf {
    let script = dir.join("flaky-sendmail");
    let counter = dir.join("runs");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nruns=$(cat '{counter}' 2>/dev/null || echo 0)\nruns=$((runs + 1))\necho $runs > '{counter}'\nif [ $runs -le {failures} ]; then cat >/dev/null; echo 'flaky-sendmail: refusing run' $runs >&2; exit 75; fi\nexec /usr/sbin/sendmail \"$@\"\n",
            counter = counter.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attempt_is_retried_and_the_mail_arrives() {
    ensure_postfix_running();
    let temp = tempfile::tempdir().unwrap();
    let marker = marker("retry");
    let recipient = format!("root+{marker}@localhost");
    let mut config = config(MailTransport::Sendmail, &recipient, 3600);
    config.sendmail_path = flaky_sendmail(temp.path(), 2);
    let options = MailerOptions {
        max_attempts: 3,
        first_retry_delay: Duration::from_millis(50),
        ..MailerOptions::default()
    };
    let handle = Mailer::start_with(&config, options).unwrap();
    handle.alert(alert(&marker, 0));
    handle.clone().flush_and_stop().await.unwrap();
    assert_eq!(
        std::fs::read_to_string(temp.path().join("runs"))
            .unwrap()
            .trim(),
        "3"
    );
    let mails = wait_for_mail(&recipient, 1);
    assert_eq!(mails.len(), 1);
    assert_lists_alerts(&mails[0], &marker, 0..1);
    assert_eq!(handle.stats().mails_failed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_mail_is_reported_in_the_next_one() {
    ensure_postfix_running();
    let temp = tempfile::tempdir().unwrap();
    let marker = marker("lost");
    let recipient = format!("root+{marker}@localhost");
    let mut config = config(MailTransport::Sendmail, &recipient, 3600);
    config.sendmail_path = flaky_sendmail(temp.path(), 1);
    let options = MailerOptions {
        max_attempts: 1,
        ..MailerOptions::default()
    };
    let handle = Mailer::start_with(&config, options).unwrap();
    for index in 0..3 {
        handle.alert(alert(&marker, index));
    }
    handle.flush();
    // The first mail fails its only attempt; wait until the mailer has given it up.
    let start = Instant::now();
    while handle.stats().mails_failed == 0 {
        assert!(
            start.elapsed() < DELIVERY_WAIT,
            "the first mail was never given up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    handle.alert(alert(&marker, 3));
    handle.clone().flush_and_stop().await.unwrap();
    let mails = wait_for_mail(&recipient, 1);
    assert_eq!(mails.len(), 1);
    assert_lists_alerts(&mails[0], &marker, 3..4);
    assert!(
        mails[0].body.contains(
            "WARNING: an earlier alert mail listing 3 failed verdicts could not be delivered"
        ),
        "{}",
        mails[0].body
    );
    let stats = handle.stats();
    assert_eq!((stats.mails_failed, stats.mails_sent), (1, 1));
}

/// Collects what the fmt subscriber writes.
#[derive(Clone, Default)]
struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// On a current-thread runtime the mailer task runs on this thread, under this thread's
/// subscriber.
#[tokio::test(flavor = "current_thread")]
async fn delivery_failures_are_logged_at_error_level() {
    let log = CapturedLog::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::ERROR)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut config = config(MailTransport::Smtp, "root@localhost", 3600);
    config.smtp_port = 1;
    let options = MailerOptions {
        max_attempts: 2,
        first_retry_delay: Duration::from_millis(10),
        ..MailerOptions::default()
    };
    let handle = Mailer::start_with(&config, options).unwrap();
    handle.alert(alert("logged", 0));
    assert!(handle.flush_and_stop().await.is_err());
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let failures = text
        .lines()
        .filter(|line| line.contains("ERROR") && line.contains("alert mail delivery failed"))
        .count();
    assert_eq!(failures, 2, "{text}");
    assert!(text.contains("alert mail given up"), "{text}");
}

/// End to end with the real daemon and a real dpkg transaction whose postinst fails: Active
/// Responses for three files dpkg wrote arrive while the transaction runs (realtime syscheck) and
/// are deferred; when dpkg ends with status 1 they are decided `failed`, and the three failures
/// leave as ONE mail naming the transaction and its command line — long before the hour-long
/// window. An unrelated failure in the same period stays out of it and leaves with the window
/// (here: at the daemon's stop).
#[test]
fn a_failed_transaction_sends_one_mail_when_its_deferred_verdicts_are_decided() {
    use tests::{
        daemon::TestDaemon,
        debs::{Deb, Installed},
        ossec::{AlertsLog, SyscheckEvent, run_shim},
        require_root, unique, workspace_binary,
    };
    require_root();
    ensure_postfix_running();
    let marker = marker("txmail");
    let recipient = format!("root+{marker}@localhost");
    let work = tempfile::tempdir().unwrap();
    let name = unique("verifier-txmail");
    let go = work.path().join("go");
    let started = work.path().join("started");
    let files: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|file| format!("/usr/lib/{name}/{file}"))
        .collect();
    let mut deb = Deb::new(&name, "1.0").postinst(&format!(
        "#!/bin/sh\ntouch '{started}'\nwhile [ ! -e '{go}' ]; do sleep 0.1; done\necho 'postinst fails on purpose' >&2\nexit 1\n",
        started = started.display(),
        go = go.display()
    ));
    for file in &files {
        deb = deb.file(file, format!("{file}\n"), 0o644);
    }
    let deb = deb.build(work.path());
    let _installed = Installed(name.clone());

    let mut daemon = TestDaemon::start(&format!(
        "[policy]\nenroll = false\n\n[mail]\nenabled = true\ntransport = \"sendmail\"\nto = [\"{recipient}\"]\nbatch_window_secs = 3600\n"
    ));
    let alerts = AlertsLog::new(&daemon.alerts_log);
    let mut dpkg = std::process::Command::new("dpkg")
        .arg("-i")
        .arg(&deb)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let waiting = Instant::now();
    while !started.exists() {
        assert!(
            waiting.elapsed() < Duration::from_secs(60),
            "postinst never ran"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let shim = workspace_binary("verify-file");
    for file in &files {
        let alert = alerts.append(SyscheckEvent::Added, file);
        let output = run_shim(&shim, &daemon.config, &alert);
        assert_eq!(
            output.status.code(),
            Some(0),
            "deferred while dpkg runs: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            daemon.log_text()
        );
    }
    assert_eq!(
        daemon.ar_log_text(),
        "",
        "deferred verdicts are not logged yet"
    );
    // Unrelated: an untouched file without a baseline fails at once, outside any transaction.
    let unrelated = alerts.append(SyscheckEvent::Changed, "/usr/bin/true");
    assert_eq!(
        run_shim(&shim, &daemon.config, &unrelated).status.code(),
        Some(1)
    );

    std::fs::write(&go, "").unwrap();
    let status = dpkg.wait().unwrap();
    assert_eq!(status.code(), Some(1), "the postinst makes dpkg fail");
    let mails = wait_for_mail(&recipient, 1);
    assert_eq!(
        mails.len(),
        1,
        "one mail for the transaction:\n{}",
        daemon.log_text()
    );
    let mail = &mails[0];
    let subject = mail.header("Subject").unwrap();
    assert!(
        subject.contains("File Verification Alert (3 failed) - package transaction "),
        "{subject}"
    );
    assert!(
        mail.body
            .contains("All of them were written during package transaction ")
            && mail.body.contains(&format!("dpkg -i {}", deb.display())),
        "{}",
        mail.body
    );
    for file in &files {
        assert!(
            mail.body.contains(&format!(". {file}\n")),
            "{file} missing:\n{}",
            mail.body
        );
    }
    assert!(
        mail.body.contains("ended with status exit code 1"),
        "{}",
        mail.body
    );
    assert!(!mail.body.contains("/usr/bin/true"), "{}", mail.body);
    let log = daemon.ar_log_text();
    assert_eq!(
        log.lines()
            .filter(|line| line.contains(" failed - - "))
            .count(),
        4,
        "{log}"
    );

    let status = daemon.stop();
    assert!(status.success(), "{}", daemon.log_text());
    let both = wait_for_mail(&recipient, 2);
    assert_eq!(both.len(), 2);
    let window = both
        .iter()
        .find(|mail| mail.body.contains("/usr/bin/true"))
        .expect("the window's mail at stop");
    assert!(window.header("Subject").unwrap().ends_with("(1 failed)"));
}
