//! One syscheck alert read from OSSEC/Wazuh `alerts.log` by its id: seek to the byte offset the
//! id carries (no scan of the file), check that the `** Alert <id>:` header is there, and read
//! the path and the event from the alert text.
//!
//! Layouts covered (see `tests/fixtures/ar-formats/`): OSSEC 2.8–3.2 and 3.3–3.7 (local and agent
//! locations), Wazuh 4.x. The event is decided by the text of the first full-log line, never by
//! the rule id, because the rule that fired may be a local one (e.g. 200001 with `if_sid` 550):
//!
//! | text                                                        | event    |
//! |-------------------------------------------------------------|----------|
//! | `Integrity checksum changed for: '<path>'` (OSSEC)          | modified |
//! | `File '<path>' was deleted. Unable to retrieve checksum.`   | deleted  |
//! | `File '<path>' was re-added.` (OSSEC 3.x)                   | added    |
//! | `New file '<path>' added to the file system.` (OSSEC)       | added    |
//! | `File '<path>' modified` / `deleted` / `added` (Wazuh 4.x)   | as named |

use std::{
    fs::File,
    os::unix::fs::FileExt as _,
    path::{Path, PathBuf},
};

use crate::{
    ar::{alert_id::AlertId, check_reported_path},
    protocol::ChangeKind,
};

/// Most bytes read from the alert's offset. The lines we need come first in the block; a block
/// whose needed lines do not fit is refused rather than guessed at.
pub const MAX_BLOCK_BYTES: usize = 64 * 1024;
/// OSSEC prints syscheck paths with `%.756s`: a path this long may have been cut.
pub const OSSEC_PATH_PRINT_LIMIT: usize = 756;

/// Which product wrote the block, as told by its event text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockLayout {
    Ossec,
    Wazuh,
}

/// A syscheck alert as read from `alerts.log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyscheckAlert {
    pub alert_id: String,
    pub rule_id: String,
    /// The location as printed (`debian12->syscheck`, `(web01) 192.168.56.10->syscheck`).
    pub location: String,
    pub layout: BlockLayout,
    pub change: ChangeKind,
    pub path: String,
    pub md5_after: Option<String>,
    pub sha1_after: Option<String>,
    pub sha256_after: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AlertsLogError {
    #[error("cannot open alerts log {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read alerts log {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("alert {id} lies past the end of {path} ({len} bytes): rotated or wrong file")]
    PastEnd { id: String, path: PathBuf, len: u64 },
    #[error("alert {id} does not start a line in {path}: not an alert offset")]
    NotLineStart { id: String, path: PathBuf },
    #[error(
        "no `** Alert {id}:` header at offset {offset} (found {found:?}): rotated or wrong file"
    )]
    HeaderMismatch {
        id: String,
        offset: u64,
        found: String,
    },
    #[error("alert {id} is incomplete within {limit} bytes: {missing}")]
    Incomplete {
        id: String,
        limit: usize,
        missing: &'static str,
    },
    #[error("alert {id}, line {line}: {problem}")]
    Malformed {
        id: String,
        line: usize,
        problem: String,
    },
    #[error("alert {id} is not a syscheck file alert: {problem}")]
    NotSyscheck { id: String, problem: String },
    #[error("alert {id}: {problem}")]
    BadPath { id: String, problem: String },
}

/// Reads the alert `id` from `alerts_log` by seeking to its offset.
pub fn read_alert(alerts_log: &Path, id: &AlertId) -> Result<SyscheckAlert, AlertsLogError> {
    let read_error = |source| AlertsLogError::Read {
        path: alerts_log.to_owned(),
        source,
    };
    let file = File::open(alerts_log).map_err(|source| AlertsLogError::Open {
        path: alerts_log.to_owned(),
        source,
    })?;
    let len = file.metadata().map_err(read_error)?.len();
    if id.offset >= len {
        return Err(AlertsLogError::PastEnd {
            id: id.to_string(),
            path: alerts_log.to_owned(),
            len,
        });
    }
    if id.offset > 0 {
        let mut previous = [0u8; 1];
        file.read_exact_at(&mut previous, id.offset - 1)
            .map_err(read_error)?;
        if previous[0] != b'\n' {
            return Err(AlertsLogError::NotLineStart {
                id: id.to_string(),
                path: alerts_log.to_owned(),
            });
        }
    }
    let wanted =
        usize::try_from(len - id.offset).map_or(MAX_BLOCK_BYTES, |rest| rest.min(MAX_BLOCK_BYTES));
    let mut block = vec![0u8; wanted];
    let mut filled = 0;
    while filled < wanted {
        let offset = id.offset + filled as u64;
        match file.read_at(&mut block[filled..], offset) {
            Ok(0) => break,
            Ok(count) => filled += count,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(read_error(error)),
        }
    }
    block.truncate(filled);
    parse_block(&block, id)
}

/// Reads the alert from `alerts_log`, or, when it is not there because OSSEC rotated the log at
/// midnight between writing the alert and running us, from the day's rotated log
/// (`<alerts dir>/<YYYY>/<Mon>/ossec-alerts-<DD>.log`, named from the alert's epoch).
pub fn read_alert_or_rotated(
    alerts_log: &Path,
    id: &AlertId,
) -> Result<SyscheckAlert, AlertsLogError> {
    match read_alert(alerts_log, id) {
        Err(error @ (AlertsLogError::PastEnd { .. } | AlertsLogError::HeaderMismatch { .. })) => {
            let rotated = rotated_path(alerts_log, id.epoch);
            match rotated {
                Some(rotated) if rotated.is_file() => read_alert(&rotated, id),
                _ => Err(error),
            }
        }
        other => other,
    }
}

/// Where OSSEC moves `alerts.log` for the day of `epoch`.
pub fn rotated_path(alerts_log: &Path, epoch: u64) -> Option<PathBuf> {
    let (year, month, day) = crate::ar::log::local_date(epoch);
    let dir = alerts_log.parent()?;
    Some(dir.join(format!("{year}/{month}/ossec-alerts-{day:02}.log")))
}

/// Parses the block that starts at the beginning of `block` (bytes from the alert's offset on).
pub fn parse_block(block: &[u8], id: &AlertId) -> Result<SyscheckAlert, AlertsLogError> {
    let id_text = id.to_string();
    let mut lines = CompleteLines::new(block);
    let incomplete = |missing| AlertsLogError::Incomplete {
        id: id_text.clone(),
        limit: MAX_BLOCK_BYTES,
        missing,
    };

    let header = lines.next().ok_or_else(|| incomplete("header line"))?;
    check_header(header, id, &id_text)?;

    let location_line = lines
        .next()
        .ok_or_else(|| incomplete("date and location line"))?;
    let location = parse_location_line(location_line).ok_or_else(|| AlertsLogError::Malformed {
        id: id_text.clone(),
        line: 2,
        problem: format!(
            "not a `YYYY Mon DD HH:MM:SS location` line: {}",
            excerpt(location_line)
        ),
    })?;
    if !(location == "syscheck" || location.ends_with("->syscheck")) {
        return Err(AlertsLogError::NotSyscheck {
            id: id_text,
            problem: format!("location is {location:?}"),
        });
    }

    let rule_line = lines.next().ok_or_else(|| incomplete("rule line"))?;
    let rule_id = parse_rule_line(rule_line).ok_or_else(|| AlertsLogError::Malformed {
        id: id_text.clone(),
        line: 3,
        problem: format!(
            "not a `Rule: <id> (level <n>) -> '…'` line: {}",
            excerpt(rule_line)
        ),
    })?;

    // OS_Log prints these optional lines between the rule and the full log.
    let mut event_line = lines.next().ok_or_else(|| incomplete("event line"))?;
    while OPTIONAL_HEADER_LINES
        .iter()
        .any(|prefix| event_line.starts_with(prefix.as_bytes()))
    {
        event_line = lines.next().ok_or_else(|| incomplete("event line"))?;
    }
    let event = parse_event_line(event_line).ok_or_else(|| AlertsLogError::NotSyscheck {
        id: id_text.clone(),
        problem: format!("unrecognised event text {}", excerpt(event_line)),
    })?;
    let path = std::str::from_utf8(event.path).map_err(|_| AlertsLogError::BadPath {
        id: id_text.clone(),
        problem: format!("the path is not valid UTF-8: {}", excerpt(event.path)),
    })?;
    check_reported_path(path).map_err(|problem| AlertsLogError::BadPath {
        id: id_text.clone(),
        problem: problem.to_owned(),
    })?;
    if event.layout == BlockLayout::Ossec && path.len() >= OSSEC_PATH_PRINT_LIMIT {
        return Err(AlertsLogError::BadPath {
            id: id_text,
            problem: format!(
                "the path is {} bytes long; OSSEC prints at most {OSSEC_PATH_PRINT_LIMIT}, so it may be cut",
                path.len()
            ),
        });
    }

    let hashes = read_hashes(&mut lines, event.change, event.layout, &id_text)?;
    Ok(SyscheckAlert {
        alert_id: id_text,
        rule_id,
        location,
        layout: event.layout,
        change: event.change,
        path: path.to_owned(),
        md5_after: hashes.md5,
        sha1_after: hashes.sha1,
        sha256_after: hashes.sha256,
    })
}

const OPTIONAL_HEADER_LINES: [&str; 7] = [
    "Src IP: ",
    "Src Location: ",
    "Src Port: ",
    "Dst IP: ",
    "Dst Location: ",
    "Dst Port: ",
    "User: ",
];

/// Lines ended by `'\n'`; a trailing partial line (cut by the read limit) is never returned.
struct CompleteLines<'a> {
    rest: &'a [u8],
}

impl<'a> CompleteLines<'a> {
    fn new(block: &'a [u8]) -> Self {
        Self { rest: block }
    }
}

impl<'a> Iterator for CompleteLines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let end = self.rest.iter().position(|&byte| byte == b'\n')?;
        let line = &self.rest[..end];
        self.rest = &self.rest[end + 1..];
        Some(line)
    }
}

fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(120)]);
    format!("{text:?}")
}

fn check_header(header: &[u8], id: &AlertId, id_text: &str) -> Result<(), AlertsLogError> {
    let expected = format!("** Alert {id_text}:");
    let matches = header
        .strip_prefix(expected.as_bytes())
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(b" ") || rest.starts_with(b"-"));
    if matches {
        Ok(())
    } else {
        Err(AlertsLogError::HeaderMismatch {
            id: id_text.to_owned(),
            offset: id.offset,
            found: String::from_utf8_lossy(&header[..header.len().min(80)]).into_owned(),
        })
    }
}

/// `2024 Jan 15 10:22:31 debian12->syscheck` → `debian12->syscheck`.
fn parse_location_line(line: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(line).ok()?;
    let mut fields = text.splitn(5, ' ');
    let year = fields.next()?;
    let month = fields.next()?;
    let day = fields.next()?;
    let time = fields.next()?;
    let location = fields.next()?;
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let time_ok = time.len() == 8
        && time.bytes().enumerate().all(|(i, b)| {
            if i == 2 || i == 5 {
                b == b':'
            } else {
                b.is_ascii_digit()
            }
        });
    let month_ok = month.len() == 3 && month.bytes().all(|b| b.is_ascii_alphabetic());
    (digits(year, 4) && month_ok && digits(day, 2) && time_ok && !location.is_empty())
        .then(|| location.to_owned())
}

/// `Rule: 550 (level 7) -> 'Integrity checksum changed.'` → `550`.
fn parse_rule_line(line: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(line).ok()?;
    let rest = text.strip_prefix("Rule: ")?;
    let (rule_id, rest) = rest.split_once(' ')?;
    let rest = rest.strip_prefix("(level ")?;
    let (level, rest) = rest.split_once(')')?;
    let well_formed = crate::ar::alert_id::is_rule_id(rule_id)
        && !level.is_empty()
        && level.bytes().all(|b| b.is_ascii_digit())
        && rest.starts_with(" -> '")
        && rest.ends_with('\'');
    well_formed.then(|| rule_id.to_owned())
}

struct EventLine<'a> {
    layout: BlockLayout,
    change: ChangeKind,
    path: &'a [u8],
}

/// (prefix, suffix, layout, change); the path is what lies between. Every suffix is distinct in
/// its last bytes, so at most one entry matches a line.
const EVENT_FORMS: [(&str, &str, BlockLayout, ChangeKind); 7] = [
    (
        "Integrity checksum changed for: '",
        "'",
        BlockLayout::Ossec,
        ChangeKind::Modified,
    ),
    (
        "File '",
        "' was deleted. Unable to retrieve checksum.",
        BlockLayout::Ossec,
        ChangeKind::Deleted,
    ),
    (
        "File '",
        "' was re-added.",
        BlockLayout::Ossec,
        ChangeKind::Added,
    ),
    (
        "New file '",
        "' added to the file system.",
        BlockLayout::Ossec,
        ChangeKind::Added,
    ),
    (
        "File '",
        "' modified",
        BlockLayout::Wazuh,
        ChangeKind::Modified,
    ),
    (
        "File '",
        "' deleted",
        BlockLayout::Wazuh,
        ChangeKind::Deleted,
    ),
    ("File '", "' added", BlockLayout::Wazuh, ChangeKind::Added),
];

fn parse_event_line(line: &[u8]) -> Option<EventLine<'_>> {
    EVENT_FORMS
        .iter()
        .find_map(|&(prefix, suffix, layout, change)| {
            let inner = line
                .strip_prefix(prefix.as_bytes())?
                .strip_suffix(suffix.as_bytes())?;
            Some(EventLine {
                layout,
                change,
                path: inner,
            })
        })
}

#[derive(Default)]
struct Hashes {
    md5: Option<String>,
    sha1: Option<String>,
    sha256: Option<String>,
}

/// Reads the hashes after the change from the lines that follow the event line, up to the end
/// of the full log (an empty line) and, for Wazuh, its `Attributes:` section. Diff text
/// (`What changed:`) and anything after is never read. A deleted file has no "after" hashes.
fn read_hashes(
    lines: &mut CompleteLines<'_>,
    change: ChangeKind,
    layout: BlockLayout,
    id: &str,
) -> Result<Hashes, AlertsLogError> {
    let mut hashes = Hashes::default();
    if change == ChangeKind::Deleted {
        return Ok(hashes);
    }
    let mut in_attributes = false;
    for line in lines {
        if line.is_empty() {
            if layout == BlockLayout::Wazuh && !in_attributes {
                continue;
            }
            break;
        }
        if line.starts_with(b"What changed:") || line.starts_with(b"** Alert ") {
            break;
        }
        if line == b"Attributes:" {
            in_attributes = true;
            continue;
        }
        let Ok(text) = std::str::from_utf8(line) else {
            continue;
        };
        let (md5, sha1, sha256) = if in_attributes {
            (
                text.strip_prefix(" - MD5: "),
                text.strip_prefix(" - SHA1: "),
                text.strip_prefix(" - SHA256: "),
            )
        } else {
            (
                quoted_value(text, "New md5sum is : "),
                quoted_value(text, "New sha1sum is : "),
                quoted_value(text, "New sha256sum is : "),
            )
        };
        if let Some(value) = md5 {
            merge_hash(&mut hashes.md5, value, 32, id)?;
        }
        if let Some(value) = sha1 {
            merge_hash(&mut hashes.sha1, value, 40, id)?;
        }
        if let Some(value) = sha256 {
            merge_hash(&mut hashes.sha256, value, 64, id)?;
        }
    }
    Ok(hashes)
}

fn quoted_value<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.strip_prefix(prefix)?
        .strip_prefix('\'')?
        .strip_suffix('\'')
}

/// Keeps a well-formed hex digest; `xxx` (checksum disabled) and other junk count as absent.
/// Two different well-formed values for the same hash make the alert ambiguous.
fn merge_hash(
    slot: &mut Option<String>,
    value: &str,
    hex_len: usize,
    id: &str,
) -> Result<(), AlertsLogError> {
    let well_formed = value.len() == hex_len && value.bytes().all(|b| b.is_ascii_hexdigit());
    if !well_formed {
        return Ok(());
    }
    let value = value.to_ascii_lowercase();
    match slot {
        Some(existing) if *existing != value => Err(AlertsLogError::Malformed {
            id: id.to_owned(),
            line: 0,
            problem: format!("two different hashes after the change: {existing} and {value}"),
        }),
        _ => {
            *slot = Some(value);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
