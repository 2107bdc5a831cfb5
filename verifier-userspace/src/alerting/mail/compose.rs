//! Turns one batch of failed verdicts into the subject and plain-text body of an alert mail.

use std::{fmt::Write as _, time::SystemTime};

use chrono::{DateTime, SecondsFormat, Utc};

use super::{MailAlert, MailTransaction};

/// Everything one mail reports.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// The package transaction every alert of this mail was caused by; `None` for a time window.
    pub transaction: Option<MailTransaction>,
    /// The alerts listed in full, in arrival order.
    pub alerts: Vec<MailAlert>,
    /// Alerts that reached the mailer after the listing was full.
    pub not_listed: u64,
    /// Alerts refused by the full queue (or sent after the mailer stopped) since the last mail.
    pub overflowed: u64,
    /// Alerts listed in earlier mails that could not be delivered.
    pub undelivered_earlier: u64,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
            && self.not_listed == 0
            && self.overflowed == 0
            && self.undelivered_earlier == 0
    }

    /// How many alerts this mail is about (listed or only counted).
    pub fn alert_count(&self) -> u64 {
        self.alerts.len() as u64 + self.not_listed + self.overflowed
    }
}

/// `Verifier Notification - <host> - File Verification Alert (<n> failed)`, in the style of the
/// origin script's `OSSEC Notification - <host> - File Verification Alert`.
pub(crate) fn subject(hostname: &str, batch: &Batch) -> String {
    let mut subject = format!(
        "Verifier Notification - {} - File Verification Alert ({} failed)",
        printable(hostname),
        batch.alert_count()
    );
    if let Some(transaction) = &batch.transaction {
        let _ = write!(subject, " - package transaction {}", transaction.id);
    }
    subject
}

pub(crate) fn body(hostname: &str, batch: &Batch) -> String {
    let mut text = String::new();
    let host = printable(hostname);
    let count = batch.alert_count();
    let _ = writeln!(
        text,
        "verifier on {host} could not explain {count} file change{}\nby a completed package transaction.",
        plural(count)
    );
    if let Some(transaction) = &batch.transaction {
        let _ = writeln!(
            text,
            "All of them were written during package transaction {}: {}.",
            transaction.id,
            printable(&transaction.description)
        );
    }
    let _ = writeln!(
        text,
        "Each one is logged as \"failed\" in the Active Response log (the primary record).\n"
    );
    for (index, alert) in batch.alerts.iter().enumerate() {
        write_alert(&mut text, index + 1, alert);
    }
    if batch.not_listed > 0 {
        let _ = writeln!(
            text,
            "NOTE: {} more failed verdict{} arrived in this window and are not listed here; see the AR log.\n",
            batch.not_listed,
            plural(batch.not_listed)
        );
    }
    if batch.overflowed > 0 {
        let _ = writeln!(
            text,
            "WARNING: {} failed verdict{} could not be queued for mail (mail queue full); see the AR log.\n",
            batch.overflowed,
            plural(batch.overflowed)
        );
    }
    if batch.undelivered_earlier > 0 {
        let _ = writeln!(
            text,
            "WARNING: an earlier alert mail listing {} failed verdict{} could not be delivered; see the AR log and the daemon's log.\n",
            batch.undelivered_earlier,
            plural(batch.undelivered_earlier)
        );
    }
    text
}

fn write_alert(text: &mut String, number: usize, alert: &MailAlert) {
    let _ = writeln!(text, "{number}. {}", printable(&alert.path));
    let _ = writeln!(text, "   alert id:    {}", printable(&alert.alert_id));
    let _ = writeln!(text, "   rule id:     {}", printable(&alert.rule_id));
    let _ = writeln!(text, "   reason:      {}", printable(&alert.reason));
    match &alert.transaction {
        Some(transaction) => {
            let _ = writeln!(
                text,
                "   transaction: {} ({})",
                transaction.id,
                printable(&transaction.description)
            );
        }
        None => {
            let _ = writeln!(text, "   transaction: none");
        }
    }
    if let Some(writer) = &alert.writer {
        let _ = writeln!(text, "   written by:  {}", printable(writer));
    }
    let _ = writeln!(text, "   decided at:  {}\n", utc(alert.time));
}

fn utc(time: SystemTime) -> String {
    DateTime::<Utc>::from(time).to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn plural(count: u64) -> &'static str {
    if count == 1 { "" } else { "s" }
}

/// The text with control characters escaped, so a file name cannot forge lines in the mail.
pub(crate) fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        if character.is_control() {
            out.extend(character.escape_default());
        } else {
            out.push(character);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(path: &str, transaction: Option<u64>) -> MailAlert {
        MailAlert {
            path: path.to_owned(),
            alert_id: "1705314211.443".to_owned(),
            rule_id: "550".to_owned(),
            reason: "written outside any package transaction".to_owned(),
            transaction: transaction.map(|id| MailTransaction {
                id,
                description: "`dpkg -i x.deb` pid 9".to_owned(),
            }),
            writer: Some("pid 4242 /usr/bin/vim".to_owned()),
            time: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn subject_names_host_and_count() {
        let batch = Batch {
            alerts: vec![alert("/etc/a", None), alert("/etc/b", Some(7))],
            overflowed: 1,
            ..Batch::default()
        };
        assert_eq!(
            subject("web01", &batch),
            "Verifier Notification - web01 - File Verification Alert (3 failed)"
        );
    }

    #[test]
    fn body_lists_every_field_and_escapes_newlines() {
        let batch = Batch {
            alerts: vec![alert("/etc/evil\nrule id: 0", Some(7))],
            ..Batch::default()
        };
        let text = body("web01", &batch);
        assert!(text.contains("1. /etc/evil\\nrule id: 0\n"), "{text}");
        assert!(text.contains("   alert id:    1705314211.443\n"));
        assert!(text.contains("   rule id:     550\n"));
        assert!(text.contains("   transaction: 7 (`dpkg -i x.deb` pid 9)\n"));
        assert!(text.contains("   written by:  pid 4242 /usr/bin/vim\n"));
        assert!(text.contains("   decided at:  1970-01-01T00:00:00Z\n"));
    }

    #[test]
    fn a_transaction_mail_names_it_in_subject_and_body() {
        let batch = Batch {
            transaction: alert("/usr/lib/a", Some(12)).transaction,
            alerts: vec![alert("/usr/lib/a", Some(12)), alert("/usr/lib/b", Some(12))],
            ..Batch::default()
        };
        assert!(subject("h", &batch).ends_with("(2 failed) - package transaction 12"));
        assert!(
            body("h", &batch).contains(
                "All of them were written during package transaction 12: `dpkg -i x.deb` pid 9.\n"
            ),
            "{}",
            body("h", &batch)
        );
    }

    #[test]
    fn body_reports_overflow_and_undelivered_mail() {
        let batch = Batch {
            overflowed: 5,
            undelivered_earlier: 2,
            not_listed: 3,
            ..Batch::default()
        };
        let text = body("h", &batch);
        assert!(
            text.contains("5 failed verdicts could not be queued"),
            "{text}"
        );
        assert!(
            text.contains("listing 2 failed verdicts could not be delivered"),
            "{text}"
        );
        assert!(text.contains("3 more failed verdicts"), "{text}");
    }
}
