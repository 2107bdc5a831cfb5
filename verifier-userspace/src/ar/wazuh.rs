//! Wazuh 4.x Active Response: the JSON message `wazuh-execd` writes on the program's stdin, and
//! the stateful `check_keys` handshake.
//!
//! For `add`, execd blocks reading one line from the program's stdout (the `check_keys` message)
//! and answers with the full original message whose `command` is `continue` or `abort` (`abort`
//! only when the AR has a timeout and an entry with the same keys is still pending). `delete`
//! arrives when such a timeout expires; execd does not read stdout then.

use serde::{Deserialize, Serialize};

use crate::{
    ar::{alert_id::AlertId, alert_id::is_rule_id, check_reported_path},
    protocol::ChangeKind,
};

/// Longest stdin line accepted (execd's own messages are bounded by OS_MAXSTR, 64 KiB, but a
/// `diff` can make them long); longer input is refused, never truncated.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// The `command` of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Add,
    Delete,
    Continue,
    Abort,
    Other(String),
}

/// A syscheck alert as carried in `parameters.alert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WazuhAlert {
    pub alert_id: String,
    pub rule_id: String,
    pub change: ChangeKind,
    pub path: String,
    pub md5_after: Option<String>,
    pub sha1_after: Option<String>,
    pub sha256_after: Option<String>,
}

/// One stdin message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WazuhMessage {
    pub command: Command,
    /// `parameters.program` (relative to the Wazuh directory, e.g. `active-response/bin/x`).
    pub program: Option<String>,
    /// The alert, when the message is about a syscheck file alert. Absent for `continue`/`abort`
    /// checks that only need the command.
    pub alert: Result<WazuhAlert, WazuhError>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WazuhError {
    #[error("stdin message is {len} bytes, more than the {MAX_MESSAGE_BYTES} accepted")]
    TooLong { len: usize },
    #[error("stdin message is not valid JSON for Wazuh AR: {0}")]
    Json(String),
    #[error("stdin message version {0} is not supported (expected 1)")]
    Version(u64),
    #[error("stdin message has no {0}")]
    Missing(&'static str),
    #[error("stdin message field {field} is invalid: {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
    #[error("alert is not a syscheck file alert: {0}")]
    NotSyscheck(String),
}

#[derive(Deserialize)]
struct RawMessage {
    version: Option<u64>,
    command: Option<String>,
    parameters: Option<RawParameters>,
}

#[derive(Deserialize)]
struct RawParameters {
    alert: Option<RawAlert>,
    program: Option<String>,
}

#[derive(Deserialize)]
struct RawAlert {
    id: Option<String>,
    rule: Option<RawRule>,
    syscheck: Option<RawSyscheck>,
}

#[derive(Deserialize)]
struct RawRule {
    id: Option<String>,
}

#[derive(Deserialize)]
struct RawSyscheck {
    path: Option<String>,
    event: Option<String>,
    md5_after: Option<String>,
    sha1_after: Option<String>,
    sha256_after: Option<String>,
}

/// Parses one stdin line (with or without its `'\n'`).
pub fn parse_message(line: &[u8]) -> Result<WazuhMessage, WazuhError> {
    if line.len() > MAX_MESSAGE_BYTES {
        return Err(WazuhError::TooLong { len: line.len() });
    }
    let raw: RawMessage =
        serde_json::from_slice(line).map_err(|error| WazuhError::Json(error.to_string()))?;
    match raw.version {
        Some(1) => {}
        Some(other) => return Err(WazuhError::Version(other)),
        None => return Err(WazuhError::Missing("version")),
    }
    let command = match raw.command.as_deref() {
        Some("add") => Command::Add,
        Some("delete") => Command::Delete,
        Some("continue") => Command::Continue,
        Some("abort") => Command::Abort,
        Some(other) => Command::Other(other.to_owned()),
        None => return Err(WazuhError::Missing("command")),
    };
    let parameters = raw.parameters.ok_or(WazuhError::Missing("parameters"))?;
    Ok(WazuhMessage {
        command,
        program: parameters.program,
        alert: parameters
            .alert
            .ok_or(WazuhError::Missing("parameters.alert"))
            .and_then(alert_from_raw),
    })
}

fn alert_from_raw(raw: RawAlert) -> Result<WazuhAlert, WazuhError> {
    let alert_id = raw.id.ok_or(WazuhError::Missing("parameters.alert.id"))?;
    if alert_id.parse::<AlertId>().is_err() {
        return Err(invalid(
            "parameters.alert.id",
            format!("{alert_id:?} is not <epoch>.<offset>"),
        ));
    }
    let rule_id = raw
        .rule
        .and_then(|rule| rule.id)
        .ok_or(WazuhError::Missing("parameters.alert.rule.id"))?;
    if !is_rule_id(&rule_id) {
        return Err(invalid(
            "parameters.alert.rule.id",
            format!("{rule_id:?} is not a rule id"),
        ));
    }
    let syscheck = raw
        .syscheck
        .ok_or_else(|| WazuhError::NotSyscheck("no parameters.alert.syscheck".to_owned()))?;
    let path = syscheck
        .path
        .ok_or(WazuhError::Missing("parameters.alert.syscheck.path"))?;
    check_reported_path(&path)
        .map_err(|problem| invalid("parameters.alert.syscheck.path", problem.to_owned()))?;
    let change = match syscheck.event.as_deref() {
        Some("modified") => ChangeKind::Modified,
        Some("deleted") => ChangeKind::Deleted,
        Some("added") => ChangeKind::Added,
        Some(other) => return Err(WazuhError::NotSyscheck(format!("syscheck event {other:?}"))),
        None => return Err(WazuhError::Missing("parameters.alert.syscheck.event")),
    };
    let after = |value: Option<String>, hex_len: usize| {
        value
            .filter(|_| change != ChangeKind::Deleted)
            .filter(|v| v.len() == hex_len && v.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(|v| v.to_ascii_lowercase())
    };
    Ok(WazuhAlert {
        alert_id,
        rule_id,
        change,
        path,
        md5_after: after(syscheck.md5_after, 32),
        sha1_after: after(syscheck.sha1_after, 40),
        sha256_after: after(syscheck.sha256_after, 64),
    })
}

fn invalid(field: &'static str, problem: String) -> WazuhError {
    WazuhError::Invalid { field, problem }
}

#[derive(Serialize)]
struct CheckKeys<'a> {
    version: u32,
    origin: Origin<'a>,
    command: &'static str,
    parameters: Keys<'a>,
}

#[derive(Serialize)]
struct Origin<'a> {
    name: &'a str,
    module: &'static str,
}

#[derive(Serialize)]
struct Keys<'a> {
    keys: [&'a str; 1],
}

/// The `check_keys` line (with its `'\n'`) keyed by the file path, so execd's timeout list (if
/// the AR has a timeout) tracks one entry per file.
pub fn check_keys_line(program_name: &str, path: &str) -> String {
    let message = CheckKeys {
        version: 1,
        origin: Origin {
            name: program_name,
            module: "active-response",
        },
        command: "check_keys",
        parameters: Keys { keys: [path] },
    };
    let mut line = serde_json::to_string(&message).unwrap_or_else(|_| {
        r#"{"version":1,"origin":{"name":"verify-file","module":"active-response"},"command":"check_keys","parameters":{"keys":[]}}"#.to_owned()
    });
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADD: &str =
        include_str!("../../../tests/fixtures/ar-formats/wazuh-4.x-ar-stdin-add-550.json");
    const ADD_WHODATA: &str =
        include_str!("../../../tests/fixtures/ar-formats/wazuh-4.x-ar-stdin-add-550-whodata.json");
    const HANDSHAKE: &str =
        include_str!("../../../tests/fixtures/ar-formats/wazuh-4.x-ar-handshake.jsonl");
    const EXECQ: &str =
        include_str!("../../../tests/fixtures/ar-formats/wazuh-4.x-execq-message.json");

    #[test]
    fn stdin_add_550() {
        let message = parse_message(ADD.as_bytes()).unwrap();
        assert_eq!(message.command, Command::Add);
        assert_eq!(
            message.program.as_deref(),
            Some("active-response/bin/pkgverify")
        );
        let alert = message.alert.unwrap();
        assert_eq!(alert.alert_id, "1705314151.0");
        assert_eq!(alert.rule_id, "550");
        assert_eq!(alert.change, ChangeKind::Modified);
        assert_eq!(alert.path, "/usr/bin/curl");
        assert_eq!(
            alert.md5_after.as_deref(),
            Some("1323de69f7b423af59147549752a692f")
        );
        assert_eq!(
            alert.sha256_after.as_deref(),
            Some("1d92f94a27afd786a69e3b0c2a42893d9d04a2bd905cb32f172c59b4230a8f30")
        );
        assert_eq!(
            alert.sha1_after.as_deref(),
            Some("e7e2fe286ac5523c707865c10261db06bc83375a")
        );
    }

    #[test]
    fn stdin_add_whodata() {
        let alert = parse_message(ADD_WHODATA.as_bytes())
            .unwrap()
            .alert
            .unwrap();
        assert_eq!(alert.alert_id, "1705314211.1212");
        assert_eq!(alert.path, "/etc/default/grub");
        assert_eq!(
            alert.md5_after.as_deref(),
            Some("539816332f43401865a335da0f935025")
        );
    }

    #[test]
    fn handshake_lines() {
        let lines: Vec<&str> = HANDSHAKE.lines().collect();
        let ours = check_keys_line("pkgverify", "/usr/bin/curl");
        assert_eq!(ours.trim_end(), lines[0]);
        assert_eq!(
            parse_message(lines[1].as_bytes()).unwrap().command,
            Command::Continue
        );
        assert_eq!(
            parse_message(lines[2].as_bytes()).unwrap().command,
            Command::Abort
        );
        let delete = parse_message(lines[3].as_bytes()).unwrap();
        assert_eq!(delete.command, Command::Delete);
        assert_eq!(delete.alert.unwrap().path, "/usr/bin/curl");
    }

    #[test]
    fn execq_message_is_not_an_add() {
        let message = parse_message(EXECQ.as_bytes()).unwrap();
        assert_eq!(message.command, Command::Other("pkgverify0".to_owned()));
    }

    #[test]
    fn deleted_event_has_no_after_hashes() {
        let text = ADD.replace("\"event\":\"modified\"", "\"event\":\"deleted\"");
        let alert = parse_message(text.as_bytes()).unwrap().alert.unwrap();
        assert_eq!(alert.change, ChangeKind::Deleted);
        assert_eq!(alert.md5_after, None);
    }

    #[test]
    fn check_keys_escapes_hostile_paths() {
        let line = check_keys_line("verify-file", "/tmp/a\"b\n\\c");
        assert_eq!(line.matches('\n').count(), 1);
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back["parameters"]["keys"][0], "/tmp/a\"b\n\\c");
    }

    #[test]
    fn hostile_messages_fail_cleanly() {
        let cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"not json".to_vec(),
            b"{}".to_vec(),
            b"{\"version\":2,\"command\":\"add\",\"parameters\":{}}".to_vec(),
            b"{\"version\":1,\"command\":\"add\",\"parameters\":{\"alert\":{}}}".to_vec(),
            ADD.replace("\"path\":\"/usr/bin/curl\"", "\"path\":\"usr/bin/curl\"").into_bytes(),
            ADD.replace("\"path\":\"/usr/bin/curl\"", "\"path\":\"/usr/bin/cu\\nrl\"").into_bytes(),
            ADD.replace("\"id\":\"1705314151.0\"", "\"id\":\"1705314151.0; rm -rf /\"").into_bytes(),
            ADD.replace("\"event\":\"modified\"", "\"event\":\"renamed\"").into_bytes(),
            ADD.replace("\"id\":\"550\"", "\"id\":550").into_bytes(),
            b"{\"version\":1,\"command\":\"add\",\"parameters\":{\"alert\":{\"id\":\"1.0\",\"rule\":{\"id\":\"550\"},\"syscheck\":{\"path\":\"/\xff\",\"event\":\"added\"}}}}".to_vec(),
        ];
        for case in cases {
            let result = parse_message(&case).and_then(|message| message.alert);
            assert!(result.is_err(), "{}", String::from_utf8_lossy(&case));
        }
        let huge = vec![b' '; MAX_MESSAGE_BYTES + 1];
        assert!(matches!(
            parse_message(&huge),
            Err(WazuhError::TooLong { .. })
        ));
    }
}
