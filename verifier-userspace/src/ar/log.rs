//! The Active Response log line, shared by the daemon and the `verify-file` shim.
//!
//! Two layouts, chosen by the alert's [`AlertSource`]:
//! - OSSEC `ar_log` (also parsed by Wazuh's `ar_log`): `<date> <program> <status> - - <alertid>
//!   <ruleid> <path> <reason>`, the date as `date` prints it in the C locale
//!   (`%a %b %e %H:%M:%S %Z %Y`). The stock decoder needs the user field to be `-`, an English
//!   date, a zone made of word characters, an `<digits>.<digits>` id and a numeric rule id, so
//!   those fields are forced into shape here: a line that does not decode would hide a failure.
//! - Wazuh `ar_log_json`: `YYYY/MM/DD HH:MM:SS <program>: {"status":…,"path":…,"reason":…,
//!   "rule":…,"alert_id":…}`.
//!
//! Everything that came from an alert (path, reason, ids, program) is sanitised so that no
//! newline or other control character can start a forged line, and capped in length so that the
//! log reader never splits the line. Each line is written with one `write` on an `O_APPEND` file.

use std::{
    fs::OpenOptions,
    io::Write as _,
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use serde::Serialize;

use crate::{
    ar::alert_id::{AlertId, is_rule_id},
    protocol::{AlertRef, AlertSource, Outcome},
};

/// Longest path kept in a line (OSSEC itself prints at most 756 bytes of a syscheck path).
pub const MAX_PATH_BYTES: usize = 1024;
/// Longest reason kept in a line.
pub const MAX_REASON_BYTES: usize = 512;

/// The status word of a line. `Deferred` verdicts are never logged, so they have no status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStatus {
    Succeeded,
    Failed,
    /// A run that verified nothing on purpose (the timeout `delete` run, an execd `abort`).
    Ignored,
}

impl LogStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Ignored => "ignored",
        }
    }
}

/// A deferred verdict has no line yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a deferred verdict is not logged until it is decided")]
pub struct DeferredNotLogged;

impl TryFrom<Outcome> for LogStatus {
    type Error = DeferredNotLogged;

    fn try_from(outcome: Outcome) -> Result<Self, Self::Error> {
        match outcome {
            Outcome::Succeeded => Ok(Self::Succeeded),
            Outcome::Failed => Ok(Self::Failed),
            Outcome::Deferred => Err(DeferredNotLogged),
        }
    }
}

/// What one AR log line says. Fields may hold anything; [`format_line`] makes them safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRecord<'a> {
    /// The AR program as OSSEC/Wazuh know it (absolute path under `active-response/bin/`).
    pub program: &'a str,
    pub status: LogStatus,
    pub alert_id: &'a str,
    pub rule_id: &'a str,
    /// The file; empty when the alert could not be read.
    pub path: &'a str,
    pub reason: &'a str,
}

impl<'a> LogRecord<'a> {
    /// The line for a verdict on `alert`.
    pub fn for_alert(alert: &'a AlertRef, status: LogStatus, reason: &'a str) -> Self {
        Self {
            program: &alert.program,
            status,
            alert_id: &alert.alert_id,
            rule_id: &alert.rule_id,
            path: &alert.path,
            reason,
        }
    }
}

/// The AR log could not be written.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot open the AR log {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write to the AR log {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("short write to the AR log {path}: {written} of {wanted} bytes")]
    ShortWrite {
        path: PathBuf,
        written: usize,
        wanted: usize,
    },
}

/// Formats one complete line (ending in `'\n'`) in the layout of `source`.
pub fn format_line(source: AlertSource, when: SystemTime, record: &LogRecord<'_>) -> String {
    let program = sanitize_word(record.program, "verify-file");
    let mut reason = record.reason.to_owned();
    let alert_id = if record.alert_id.parse::<AlertId>().is_ok() {
        record.alert_id.to_owned()
    } else {
        if !record.alert_id.is_empty() && record.alert_id != "-" {
            reason.push_str(&format!(" (alert id as received: {:?})", record.alert_id));
        }
        "0.0".to_owned()
    };
    let rule_id = if is_rule_id(record.rule_id) {
        record.rule_id.to_owned()
    } else {
        if !record.rule_id.is_empty() && record.rule_id != "-" {
            reason.push_str(&format!(" (rule id as received: {:?})", record.rule_id));
        }
        "0".to_owned()
    };
    let path = sanitize(record.path, MAX_PATH_BYTES);
    let reason = sanitize(&reason, MAX_REASON_BYTES);
    match source {
        AlertSource::Ossec => {
            let path = if path.is_empty() {
                "-".to_owned()
            } else {
                path
            };
            let mut line = format!(
                "{} {program} {} - - {alert_id} {rule_id} {path}",
                ossec_date(when),
                record.status.as_str(),
            );
            if !reason.is_empty() {
                line.push(' ');
                line.push_str(&reason);
            }
            line.push('\n');
            line
        }
        AlertSource::Wazuh => {
            let body = WazuhStatus {
                status: record.status.as_str(),
                path: &path,
                reason: &reason,
                rule: &rule_id,
                alert_id: &alert_id,
            };
            // Serialising plain strings cannot fail; fall back to a fixed object regardless.
            let json = serde_json::to_string(&body)
                .unwrap_or_else(|_| format!(r#"{{"status":"{}"}}"#, record.status.as_str()));
            format!("{} {program}: {json}\n", wazuh_date(when))
        }
    }
}

#[derive(Serialize)]
struct WazuhStatus<'a> {
    status: &'a str,
    path: &'a str,
    reason: &'a str,
    rule: &'a str,
    alert_id: &'a str,
}

/// Appends one formatted line with a single `write(2)` on an `O_APPEND` descriptor, so lines
/// from concurrent writers (the daemon, many shims, OSSEC's own scripts) never interleave.
pub fn append_line(path: &Path, line: &str) -> Result<(), LogError> {
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
        .map_err(|source| LogError::Open {
            path: path.to_owned(),
            source,
        })?;
    let written = file
        .write(line.as_bytes())
        .map_err(|source| LogError::Write {
            path: path.to_owned(),
            source,
        })?;
    if written != line.len() {
        return Err(LogError::ShortWrite {
            path: path.to_owned(),
            written,
            wanted: line.len(),
        });
    }
    Ok(())
}

/// Formats and appends the line for `record`, dated now.
pub fn log_record(
    log_path: &Path,
    source: AlertSource,
    record: &LogRecord<'_>,
) -> Result<(), LogError> {
    append_line(log_path, &format_line(source, SystemTime::now(), record))
}

/// Escapes control characters (C0, DEL, C1, line and paragraph separators) and backslashes, and
/// caps the result at `max_bytes` (on a character boundary, marked with `…`).
pub fn sanitize(text: &str, max_bytes: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_bytes));
    for character in text.chars() {
        let escaped = match character {
            '\\' => "\\\\".to_owned(),
            c if c.is_control() && (c as u32) < 0x100 => format!("\\x{:02x}", c as u32),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                format!("\\u{{{:04x}}}", c as u32)
            }
            c => c.to_string(),
        };
        if out.len() + escaped.len() > max_bytes.saturating_sub('…'.len_utf8()) {
            out.push('…');
            return out;
        }
        out.push_str(&escaped);
    }
    out
}

/// A field that must stay one word: whitespace and control characters become `_`.
fn sanitize_word(text: &str, fallback: &str) -> String {
    let word: String = sanitize(text, MAX_PATH_BYTES)
        .chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect();
    if word.is_empty() {
        fallback.to_owned()
    } else {
        word
    }
}

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Broken-down time as `localtime_r` gives it, with the zone abbreviation.
struct CivilTime {
    year: i64,
    month0: usize,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    weekday: usize,
    zone: String,
}

/// `date` in the C locale: `Mon Jan 15 10:22:31 UTC 2024` (day padded with a space).
pub fn ossec_date(when: SystemTime) -> String {
    let t = civil_time(when);
    format!(
        "{} {} {:>2} {:02}:{:02}:{:02} {} {}",
        WEEKDAYS[t.weekday % 7],
        MONTHS[t.month0 % 12],
        t.day,
        t.hour,
        t.minute,
        t.second,
        t.zone,
        t.year
    )
}

/// Wazuh's `write_debug_file` date: `2024/01/15 10:22:32`, local time.
pub fn wazuh_date(when: SystemTime) -> String {
    let t = civil_time(when);
    format!(
        "{:04}/{:02}/{:02} {:02}:{:02}:{:02}",
        t.year,
        t.month0 + 1,
        t.day,
        t.hour,
        t.minute,
        t.second
    )
}

/// The local calendar date of `epoch` as (year, English month abbreviation, day of month): how
/// OSSEC names its rotated alert logs (`alerts/<YYYY>/<Mon>/ossec-alerts-<DD>.log`).
pub fn local_date(epoch: u64) -> (i64, &'static str, i64) {
    let t = civil_time(UNIX_EPOCH + std::time::Duration::from_secs(epoch));
    (t.year, MONTHS[t.month0 % 12], t.day)
}

/// Local time via the C library (chrono cannot name the zone the way `date` does). A zone whose
/// abbreviation the `ar_log` decoder would not accept (e.g. `+03`) is replaced by UTC.
fn civil_time(when: SystemTime) -> CivilTime {
    let seconds = when
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    let seconds = libc::time_t::try_from(seconds).unwrap_or(libc::time_t::MAX);
    if let Some(local) = broken_down(seconds, true)
        && !local.zone.is_empty()
        && local
            .zone
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'@'))
    {
        return local;
    }
    broken_down(seconds, false).unwrap_or(CivilTime {
        year: 1970,
        month0: 0,
        day: 1,
        hour: 0,
        minute: 0,
        second: 0,
        weekday: 4,
        zone: "UTC".to_owned(),
    })
}

fn broken_down(seconds: libc::time_t, local: bool) -> Option<CivilTime> {
    // SAFETY: `tm` is plain data; localtime_r/gmtime_r fill it and return null on failure. The
    // zone pointer, when set, points at a NUL-terminated string owned by the C library that
    // stays valid at least until the next tzset; we copy it immediately.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        let result = if local {
            libc::localtime_r(&seconds, &mut tm)
        } else {
            libc::gmtime_r(&seconds, &mut tm)
        };
        if result.is_null() {
            return None;
        }
        let zone = if local && !tm.tm_zone.is_null() {
            std::ffi::CStr::from_ptr(tm.tm_zone)
                .to_string_lossy()
                .into_owned()
        } else {
            "UTC".to_owned()
        };
        Some(CivilTime {
            year: i64::from(tm.tm_year) + 1900,
            month0: usize::try_from(tm.tm_mon).ok()?,
            day: i64::from(tm.tm_mday),
            hour: i64::from(tm.tm_hour),
            minute: i64::from(tm.tm_min),
            second: i64::from(tm.tm_sec),
            weekday: usize::try_from(tm.tm_wday).ok()?,
            zone,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Mon Jan 15 10:22:31 UTC 2024.
    fn fixture_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_705_314_151)
    }

    fn record<'a>(path: &'a str, reason: &'a str) -> LogRecord<'a> {
        LogRecord {
            program: "/var/ossec/active-response/bin/pkgverify",
            status: LogStatus::Succeeded,
            alert_id: "1705314151.0",
            rule_id: "550",
            path,
            reason,
        }
    }

    fn in_utc<T>(body: impl FnOnce() -> T) -> T {
        // SAFETY: unit tests in this module are the only code touching TZ, and they only ever
        // set it to the same value.
        unsafe {
            std::env::set_var("TZ", "UTC");
            libc_tzset();
        }
        body()
    }

    unsafe extern "C" {
        #[link_name = "tzset"]
        fn libc_tzset();
    }

    #[test]
    fn ossec_line_matches_fixture_layout() {
        let line = in_utc(|| {
            format_line(
                AlertSource::Ossec,
                fixture_time(),
                &record("/usr/bin/curl", ""),
            )
        });
        assert_eq!(
            line,
            "Mon Jan 15 10:22:31 UTC 2024 /var/ossec/active-response/bin/pkgverify succeeded - - 1705314151.0 550 /usr/bin/curl\n"
        );
    }

    #[test]
    fn ossec_date_pads_single_digit_day_with_space() {
        let date = in_utc(|| ossec_date(UNIX_EPOCH + Duration::from_secs(1_304_738_877)));
        assert_eq!(date, "Sat May  7 03:27:57 UTC 2011");
    }

    #[test]
    fn wazuh_line_is_json_with_reason_after_path() {
        let mut failed = record("/etc/default/grub", "written by vim, not a package");
        failed.status = LogStatus::Failed;
        failed.alert_id = "1705314211.1212";
        let line = in_utc(|| format_line(AlertSource::Wazuh, fixture_time(), &failed));
        assert_eq!(
            line,
            "2024/01/15 10:22:31 /var/ossec/active-response/bin/pkgverify: {\"status\":\"failed\",\"path\":\"/etc/default/grub\",\"reason\":\"written by vim, not a package\",\"rule\":\"550\",\"alert_id\":\"1705314211.1212\"}\n"
        );
    }

    #[test]
    fn injected_newlines_cannot_forge_a_line() {
        let forged = "/tmp/x\nMon Jan 15 10:22:31 UTC 2024 /var/ossec/active-response/bin/pkgverify succeeded - - 1.1 550 /usr/bin/curl";
        for source in [AlertSource::Ossec, AlertSource::Wazuh] {
            let mut hostile = record(forged, "reason\r\nwith\u{2028}breaks\u{85}");
            hostile.program = "/bin/x\nforged";
            hostile.alert_id = "1.2\n3";
            hostile.rule_id = "550 extra";
            let line = format_line(source, fixture_time(), &hostile);
            assert_eq!(line.matches('\n').count(), 1, "{line}");
            assert!(line.ends_with('\n'));
            assert!(!line.contains('\r') && !line.contains('\u{2028}') && !line.contains('\u{85}'));
        }
    }

    #[test]
    fn malformed_ids_become_decodable_placeholders() {
        let mut hostile = record("/usr/bin/curl", "r");
        hostile.alert_id = "abc";
        hostile.rule_id = "";
        let line = in_utc(|| format_line(AlertSource::Ossec, fixture_time(), &hostile));
        assert!(
            line.contains(" - - 0.0 0 /usr/bin/curl r (alert id as received: \"abc\")"),
            "{line}"
        );
    }

    #[test]
    fn program_with_spaces_stays_one_word() {
        let mut spaced = record("/x", "");
        spaced.program = "/opt/my dir/verify-file";
        let line = format_line(AlertSource::Ossec, fixture_time(), &spaced);
        assert!(
            line.contains(" /opt/my_dir/verify-file succeeded - - "),
            "{line}"
        );
    }

    #[test]
    fn sanitize_caps_length_on_char_boundary() {
        let long = "é".repeat(1000);
        let capped = sanitize(&long, 101);
        assert!(capped.len() <= 101);
        assert!(capped.ends_with('…'));
        assert_eq!(sanitize("a\\b\tc", 100), "a\\\\b\\x09c");
    }

    #[test]
    fn deferred_has_no_status() {
        assert!(LogStatus::try_from(Outcome::Deferred).is_err());
        assert_eq!(LogStatus::try_from(Outcome::Failed), Ok(LogStatus::Failed));
    }

    #[test]
    fn append_line_appends_whole_lines() {
        let dir = std::env::temp_dir().join(format!("verifier-arlog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("active-responses.log");
        let _ = std::fs::remove_file(&path);
        append_line(&path, "one\n").unwrap();
        append_line(&path, "two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
