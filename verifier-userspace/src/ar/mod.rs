//! OSSEC and Wazuh Active Response formats: syscheck alerts (alerts.log, alerts.json), the argv and
//! stdin an AR program receives, and the AR log lines the stock decoders parse.
//!
//! - [`alert_id`]: the `<epoch>.<byte offset>` alert id.
//! - [`alerts_log`]: seeking to one alert block in OSSEC/Wazuh `alerts.log` and reading it.
//! - [`argv`]: the argv OSSEC's execd hands an AR program, and its cross-check against the alert.
//! - [`wazuh`]: the JSON message Wazuh's execd writes on stdin, and the `check_keys` handshake.
//! - [`log`]: the AR log line (OSSEC `ar_log` and Wazuh `ar_log_json` layouts), sanitised.
//! - [`shim`]: the `verify-file` program itself.

pub mod alert_id;
pub mod alerts_log;
pub mod argv;
pub mod log;
pub mod shim;
pub mod wazuh;

/// A path syscheck reported, checked for what we refuse to hand to the daemon.
///
/// Control characters (C0, DEL, C1) never appear in a packaged file name and would let a name
/// masquerade as several log lines; a relative or empty path cannot be a syscheck file path.
pub fn check_reported_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("the alert names an empty path");
    }
    if !path.starts_with('/') {
        return Err("the alert path is not an absolute Unix path");
    }
    if path.chars().any(char::is_control) {
        return Err("the alert path contains control characters");
    }
    Ok(())
}
