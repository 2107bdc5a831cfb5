//! The query-socket wire format: one JSON object per line each way, versioned. Shared by the daemon
//! (server), the `verify-file` shim and the `verifier` CLI (clients).

use serde::{Deserialize, Serialize};

/// Version of this protocol; a server answers requests of another version with an error.
pub const PROTOCOL_VERSION: u32 = 1;
/// Longest request line the server reads; longer lines are refused, never truncated.
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;

/// What syscheck says happened to the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Rules 550/551/552: checksum changed.
    #[default]
    Modified,
    /// Rule 553: deleted.
    Deleted,
    /// Rule 554: added or re-added.
    Added,
}

/// Which OSSEC/Wazuh flavour raised the alert: decides the AR log layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertSource {
    Ossec,
    Wazuh,
}

/// One syscheck alert as the shim understood it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRef {
    pub source: AlertSource,
    /// `<epoch>.<offset>` as OSSEC/Wazuh print it.
    pub alert_id: String,
    /// The rule that fired (may be a local rule id such as 200001).
    pub rule_id: String,
    pub change: ChangeKind,
    /// The file, as syscheck reported it (may be a usr-merge alias).
    pub path: String,
    /// The AR program as OSSEC/Wazuh name it in the AR log (its argv[0]).
    pub program: String,
    /// syscheck's hashes after the change, when the alert carried them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha1_after: Option<String>,
}

/// A request to the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub version: u32,
    #[serde(flatten)]
    pub body: RequestBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RequestBody {
    /// Decide on a syscheck alert. The daemon writes the AR log line itself (now or, for a
    /// deferred verdict, when it decides) and answers with the verdict.
    Verify { alert: AlertRef },
    /// The daemon's health and counters.
    Status,
    /// The recorded story of one path.
    Explain { path: String },
}

/// The outcome the AR log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The change is explained by a completed package transaction and matches the database.
    Succeeded,
    /// Anything else: an alert.
    Failed,
    /// The file's transaction is still running; the daemon will log the verdict when it ends.
    Deferred,
}

/// The daemon's answer to a `Verify` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub outcome: Outcome,
    /// One line, for the AR log and the mail.
    pub reason: String,
    /// Whether the daemon has written the AR log line (false only if that write failed, in
    /// which case the shim writes a "failed" line itself).
    pub logged: bool,
}

/// A response from the daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub version: u32,
    #[serde(flatten)]
    pub body: ResponseBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseBody {
    Verdict(Verdict),
    /// Free-form JSON documents for `status` and `explain` (rendered by the CLI).
    Status {
        status: serde_json::Value,
    },
    Explain {
        explanation: serde_json::Value,
    },
    /// The request could not be served; the client must treat this as a failure.
    Error {
        message: String,
    },
}

impl Request {
    pub fn new(body: RequestBody) -> Self {
        Self {
            version: PROTOCOL_VERSION,
            body,
        }
    }
}

impl Response {
    pub fn new(body: ResponseBody) -> Self {
        Self {
            version: PROTOCOL_VERSION,
            body,
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Self::new(ResponseBody::Error {
            message: message.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_request_round_trips_as_one_line() {
        let request = Request::new(RequestBody::Verify {
            alert: AlertRef {
                source: AlertSource::Ossec,
                alert_id: "1705314151.0".into(),
                rule_id: "200001".into(),
                change: ChangeKind::Modified,
                path: "/usr/bin/with\nnewline".into(),
                program: "/var/ossec/active-response/bin/verify-file".into(),
                sha256_after: None,
                md5_after: None,
                sha1_after: None,
            },
        });
        let line = serde_json::to_string(&request).unwrap();
        assert!(!line.contains('\n'));
        assert!(line.contains("\"type\":\"verify\""));
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), request);
    }

    #[test]
    fn response_error_is_tagged() {
        let line = serde_json::to_string(&Response::error("boom")).unwrap();
        assert_eq!(line, r#"{"version":1,"type":"error","message":"boom"}"#);
    }
}
