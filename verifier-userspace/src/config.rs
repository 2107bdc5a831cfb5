//! The configuration: one TOML file (default `/etc/verifier/config.toml`, overridden by `--config`
//! or `VERIFIER_CONFIG`), parsed strictly (unknown keys are errors) and validated at start-up with
//! errors that name the offending key.

use std::{
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

/// Where the configuration is read from when neither `--config` nor `VERIFIER_CONFIG` says.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/verifier/config.toml";
/// Environment variable naming the configuration file.
pub const CONFIG_ENV: &str = "VERIFIER_CONFIG";

/// A configuration problem, naming the key (dotted path) it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("configuration {path} is not valid TOML for verifier: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

fn invalid(key: &'static str, message: impl fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.to_string(),
    }
}

/// The whole configuration. Every section has defaults, so an empty file is valid.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory of the provenance store and everything else the daemon keeps.
    pub state_dir: PathBuf,
    /// The query socket the shim and the CLI talk to.
    pub socket: PathBuf,
    /// Group owning the socket (the group OSSEC/Wazuh runs Active Response under); `None` keeps root's.
    pub socket_group: Option<String>,
    pub recorder: RecorderConfig,
    pub packages: PackagesConfig,
    pub policy: PolicyConfig,
    pub active_response: ActiveResponseConfig,
    pub mail: MailConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from("/var/lib/verifier"),
            socket: PathBuf::from("/run/verifier/verifier.sock"),
            socket_group: None,
            recorder: RecorderConfig::default(),
            packages: PackagesConfig::default(),
            policy: PolicyConfig::default(),
            active_response: ActiveResponseConfig::default(),
            mail: MailConfig::default(),
        }
    }
}

/// Which kernel hooks record file writes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Probe what the kernel accepts and pick the best.
    #[default]
    Auto,
    Lsm,
    Fentry,
    Tracepoint,
}

/// The eBPF recorder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RecorderConfig {
    pub backend: Backend,
    /// Paths whose write history is kept on disk. Writes elsewhere are kept in a bounded memory
    /// cache, so a file prepared elsewhere and renamed into a watched root keeps its history.
    pub watched_roots: Vec<PathBuf>,
    /// Package-manager executables. Each is verified against the package database before its
    /// device and inode are handed to the kernel; a process that execs one starts a transaction.
    pub package_managers: Vec<PathBuf>,
    /// Size of the kernel→user ring buffer in bytes (a power of two, multiple of the page size).
    pub ring_buffer_bytes: u32,
    /// Entries in the in-memory history cache for files outside the watched roots.
    pub memory_cache_entries: usize,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Auto,
            watched_roots: [
                "/etc",
                "/usr/bin",
                "/usr/sbin",
                "/bin",
                "/sbin",
                "/boot",
                "/usr/lib",
                "/lib",
            ]
            .into_iter()
            .map(PathBuf::from)
            .collect(),
            package_managers: ["/usr/bin/dpkg", "/usr/bin/rpm"]
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            ring_buffer_bytes: 16 * 1024 * 1024,
            memory_cache_entries: 65_536,
        }
    }
}

/// Where the package databases live.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PackagesConfig {
    /// dpkg's administrative directory; `None` disables dpkg.
    pub dpkg_admindir: Option<PathBuf>,
    /// rpm's database directory; `None` asks rpm (`%_dbpath`) when rpm is installed.
    pub rpm_dbpath: Option<PathBuf>,
    /// Read the rpm database at all.
    pub rpm_enabled: bool,
}

impl Default for PackagesConfig {
    fn default() -> Self {
        Self {
            dpkg_admindir: Some(PathBuf::from("/var/lib/dpkg")),
            rpm_dbpath: None,
            rpm_enabled: true,
        }
    }
}

/// What is accepted and what always alerts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Changes under these prefixes always alert (as in the origin script).
    pub always_alert_prefixes: Vec<PathBuf>,
    /// Accept package-managed conffiles under an always-alert prefix when their hash matches.
    pub accept_managed_conffiles: bool,
    /// Files the verification itself relies on, beyond the built-in list; alert even when verified.
    pub self_critical_paths: Vec<PathBuf>,
    /// How long a request waits for a running transaction to end before it is decided (failing).
    pub deferred_verdict_timeout_secs: u64,
    /// On first start, verify every installed package file under the watched roots and record it
    /// as trusted, so the first syscheck scan (a 554 for every file) is answered from that baseline.
    pub enroll: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            always_alert_prefixes: ["/etc", "/home", "/root", "/boot", "/var/ossec"]
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            accept_managed_conffiles: false,
            self_critical_paths: Vec::new(),
            deferred_verdict_timeout_secs: 3600,
            enroll: true,
        }
    }
}

impl PolicyConfig {
    pub fn deferred_verdict_timeout(&self) -> Duration {
        Duration::from_secs(self.deferred_verdict_timeout_secs)
    }
}

/// Which Active Response flavour writes the AR log.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ArFlavor {
    /// OSSEC 2.x/3.x: argv plus alerts.log, `ar_log` layout.
    #[default]
    Ossec,
    /// Wazuh 4.x: JSON on stdin, `ar_log_json` layout.
    Wazuh,
}

/// Active Response integration: where OSSEC/Wazuh keep their logs, and request limits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ActiveResponseConfig {
    pub flavor: ArFlavor,
    /// The AR log OSSEC/Wazuh read verdict lines from.
    pub log_path: PathBuf,
    /// OSSEC's alerts.log, where the shim seeks to the alert by its id.
    pub alerts_log: PathBuf,
    /// Longest a shim waits for the daemon's answer.
    pub request_timeout_ms: u64,
    /// Requests decided at once; more wait in the queue.
    pub max_concurrent_requests: usize,
    /// Requests waiting beyond that; more are refused (the shim then logs "failed").
    pub queue_depth: usize,
}

impl Default for ActiveResponseConfig {
    fn default() -> Self {
        Self {
            flavor: ArFlavor::Ossec,
            log_path: PathBuf::from("/var/ossec/logs/active-responses.log"),
            alerts_log: PathBuf::from("/var/ossec/logs/alerts/alerts.log"),
            request_timeout_ms: 10_000,
            max_concurrent_requests: 64,
            queue_depth: 8192,
        }
    }
}

impl ActiveResponseConfig {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

/// How alert mail leaves the host.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    #[default]
    Sendmail,
    Smtp,
}

/// Alert mail, batched per transaction or time window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    pub enabled: bool,
    pub transport: MailTransport,
    /// Sender; `None` means `verifier@<hostname>`.
    pub from: Option<String>,
    pub to: Vec<String>,
    pub sendmail_path: PathBuf,
    pub smtp_host: String,
    pub smtp_port: u16,
    /// Alerts raised within this window go out in one mail.
    pub batch_window_secs: u64,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            transport: MailTransport::Sendmail,
            from: None,
            to: Vec::new(),
            sendmail_path: PathBuf::from("/usr/sbin/sendmail"),
            smtp_host: "localhost".to_owned(),
            smtp_port: 25,
            batch_window_secs: 60,
        }
    }
}

impl Config {
    /// Parses and validates a configuration text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|error| ConfigError::Parse {
            path: origin.to_owned(),
            message: error.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads the configuration from `path`. A missing file at the default location means
    /// "all defaults"; a missing file someone named explicitly is an error.
    pub fn load(path: &Path, explicitly_named: bool) -> Result<Self, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_toml(&text, path),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && !explicitly_named => {
                let config = Self::default();
                config.validate()?;
                Ok(config)
            }
            Err(source) => Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// The configuration path from `--config`, else `VERIFIER_CONFIG`, else the default, and
    /// whether somebody named it explicitly.
    pub fn resolve_path(cli: Option<&Path>) -> (PathBuf, bool) {
        if let Some(path) = cli {
            return (path.to_owned(), true);
        }
        match std::env::var_os(CONFIG_ENV) {
            Some(path) if !path.is_empty() => (PathBuf::from(path), true),
            _ => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        }
    }

    /// Checks every value that TOML typing alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        require_absolute("state_dir", &self.state_dir)?;
        require_absolute("socket", &self.socket)?;
        if let Some(group) = &self.socket_group
            && (group.is_empty() || group.contains(['\0', ':', '\n']))
        {
            return Err(invalid(
                "socket_group",
                format!("{group:?} is not a group name"),
            ));
        }
        self.recorder.validate()?;
        if let Some(dir) = &self.packages.dpkg_admindir {
            require_absolute("packages.dpkg_admindir", dir)?;
        }
        if let Some(dir) = &self.packages.rpm_dbpath {
            require_absolute("packages.rpm_dbpath", dir)?;
        }
        for prefix in &self.policy.always_alert_prefixes {
            require_absolute("policy.always_alert_prefixes", prefix)?;
        }
        for path in &self.policy.self_critical_paths {
            require_absolute("policy.self_critical_paths", path)?;
        }
        if self.policy.deferred_verdict_timeout_secs == 0 {
            return Err(invalid(
                "policy.deferred_verdict_timeout_secs",
                "must be at least 1",
            ));
        }
        self.active_response.validate()?;
        self.mail.validate()
    }
}

impl RecorderConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.watched_roots.is_empty() {
            return Err(invalid(
                "recorder.watched_roots",
                "must name at least one directory",
            ));
        }
        for root in &self.watched_roots {
            require_absolute("recorder.watched_roots", root)?;
        }
        for path in &self.package_managers {
            require_absolute("recorder.package_managers", path)?;
        }
        let size = self.ring_buffer_bytes;
        if !size.is_power_of_two() || size < 4096 {
            return Err(invalid(
                "recorder.ring_buffer_bytes",
                format!("{size} is not a power of two of at least 4096"),
            ));
        }
        if self.memory_cache_entries == 0 {
            return Err(invalid(
                "recorder.memory_cache_entries",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

impl ActiveResponseConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        require_absolute("active_response.log_path", &self.log_path)?;
        require_absolute("active_response.alerts_log", &self.alerts_log)?;
        if self.request_timeout_ms == 0 {
            return Err(invalid(
                "active_response.request_timeout_ms",
                "must be at least 1",
            ));
        }
        if self.max_concurrent_requests == 0 {
            return Err(invalid(
                "active_response.max_concurrent_requests",
                "must be at least 1",
            ));
        }
        if self.queue_depth == 0 {
            return Err(invalid("active_response.queue_depth", "must be at least 1"));
        }
        Ok(())
    }
}

impl MailConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        if self.to.is_empty() {
            return Err(invalid("mail.to", "mail is enabled but names no recipient"));
        }
        for address in &self.to {
            if !address.contains('@') {
                return Err(invalid(
                    "mail.to",
                    format!("{address:?} is not a mail address"),
                ));
            }
        }
        if let Some(from) = &self.from
            && !from.contains('@')
        {
            return Err(invalid(
                "mail.from",
                format!("{from:?} is not a mail address"),
            ));
        }
        match self.transport {
            MailTransport::Sendmail => require_absolute("mail.sendmail_path", &self.sendmail_path),
            MailTransport::Smtp if self.smtp_host.is_empty() => {
                Err(invalid("mail.smtp_host", "must not be empty"))
            }
            MailTransport::Smtp => Ok(()),
        }
    }
}

fn require_absolute(key: &'static str, path: &Path) -> Result<(), ConfigError> {
    if path.is_absolute() {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("{} is not an absolute path", path.display()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("test.toml"))
    }

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn overrides_state_dir_and_socket() {
        let config = parse("state_dir = \"/tmp/x\"\nsocket = \"/tmp/x/s.sock\"\n").unwrap();
        assert_eq!(config.state_dir, PathBuf::from("/tmp/x"));
        assert_eq!(config.socket, PathBuf::from("/tmp/x/s.sock"));
    }

    #[test]
    fn unknown_key_is_named() {
        let error = parse("[recorder]\nring_bufer_bytes = 4096\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("ring_bufer_bytes"), "{error}");
    }

    #[test]
    fn invalid_value_names_dotted_key() {
        let error = parse("[recorder]\nring_buffer_bytes = 5000\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("recorder.ring_buffer_bytes"), "{error}");
        let error = parse("state_dir = \"relative\"\n").unwrap_err().to_string();
        assert!(error.contains("`state_dir`"), "{error}");
    }

    #[test]
    fn mail_enabled_requires_recipient() {
        let error = parse("[mail]\nenabled = true\n").unwrap_err().to_string();
        assert!(error.contains("mail.to"), "{error}");
    }

    #[test]
    fn missing_default_file_is_defaults_but_named_file_is_error() {
        let missing = Path::new("/nonexistent/verifier.toml");
        assert_eq!(Config::load(missing, false).unwrap(), Config::default());
        assert!(matches!(
            Config::load(missing, true),
            Err(ConfigError::Read { .. })
        ));
    }
}
