//! `verify-file`, the Active Response program OSSEC and Wazuh run for each syscheck alert.
//!
//! Which product called is decided by the shape of the invocation:
//! - **OSSEC 2.x/3.x**: at least 6 arguments (`action user srcip alertid ruleid location
//!   [filename…]`). stdin is `/dev/null` and is never read. The alert is read from `alerts.log`
//!   at the offset its id carries; the argv words are only a cross-check.
//! - **Wazuh 4.x**: no arguments. One JSON line is read from stdin (waiting at most
//!   [`STDIN_TIMEOUT`], so a closed or idle stdin can never block forever); for `add` the
//!   `check_keys` handshake follows.
//! - Anything else is refused (a `failed` line).
//!
//! The shim asks the daemon (`Verify`) and the daemon writes the AR log line. Whenever the shim
//! cannot get a logged verdict — configuration unreadable, alert unreadable or inconsistent,
//! daemon unreachable, slow, erroring, answering garbage or `logged: false` — it writes a
//! `failed` line itself with the reason. `delete` runs and execd `abort`s are logged as
//! `ignored`. Deferred verdicts are logged later by the daemon. Exit status: 0 for succeeded,
//! deferred and ignored; 1 for failed.

use std::{
    ffi::OsString,
    fs::File,
    io::{Read as _, Write as _},
    mem::ManuallyDrop,
    os::fd::{AsRawFd as _, FromRawFd as _},
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use crate::{
    ar::{
        alert_id::AlertId,
        alerts_log,
        argv::{self, Action},
        log::{self, LogRecord, LogStatus},
        wazuh::{self, Command},
    },
    config::{ArFlavor, Config},
    protocol::{AlertRef, AlertSource, Outcome, Request, RequestBody, ResponseBody},
    socket::client,
};

/// Longest wait for Wazuh's stdin message and for execd's `continue`/`abort` reply.
pub const STDIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How the shim ended; [`ShimExit::code`] is the process exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShimExit {
    Succeeded,
    Deferred,
    Ignored,
    Failed,
}

impl ShimExit {
    pub fn code(self) -> u8 {
        match self {
            Self::Failed => 1,
            Self::Succeeded | Self::Deferred | Self::Ignored => 0,
        }
    }
}

/// Which product called, by the invocation's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvocationShape {
    Ossec,
    Wazuh,
    Unrecognised,
}

/// The rule documented at the top of this module. `args` includes argv[0].
pub fn invocation_shape(args: &[OsString]) -> InvocationShape {
    match args.len() {
        0 | 1 => InvocationShape::Wazuh,
        count if count >= 7 => InvocationShape::Ossec,
        _ => InvocationShape::Unrecognised,
    }
}

/// What is known about the alert so far, for the `failed` line.
#[derive(Debug, Clone, Default)]
struct Known {
    alert_id: String,
    rule_id: String,
    path: String,
}

struct Shim {
    config: Config,
    program: String,
    source: AlertSource,
}

/// Runs the shim with the process's arguments (including argv[0]), stdin and stdout.
pub fn run(args: Vec<OsString>) -> ShimExit {
    let program = absolute_program(args.first());
    let (config_path, explicitly_named) = Config::resolve_path(None);
    let loaded = Config::load(&config_path, explicitly_named);
    let shape = invocation_shape(&args);
    let mut shim = Shim {
        config: Config::default(),
        program,
        source: AlertSource::Ossec,
    };
    let config = match loaded {
        Ok(config) => config,
        Err(error) => {
            // The log path of a broken configuration is unknown: use the default one.
            shim.source = match shape {
                InvocationShape::Wazuh => AlertSource::Wazuh,
                _ => AlertSource::Ossec,
            };
            return shim.fail(
                &Known::default(),
                &format!("configuration unusable: {error}"),
            );
        }
    };
    shim.source = match config.active_response.flavor {
        ArFlavor::Ossec => AlertSource::Ossec,
        ArFlavor::Wazuh => AlertSource::Wazuh,
    };
    shim.config = config;
    match shape {
        InvocationShape::Ossec => {
            shim.source = AlertSource::Ossec;
            shim.run_ossec(&args)
        }
        InvocationShape::Wazuh => {
            shim.source = AlertSource::Wazuh;
            shim.run_wazuh()
        }
        InvocationShape::Unrecognised => shim.fail(
            &Known::default(),
            &format!(
                "unrecognised invocation with {} arguments: neither OSSEC argv (6 or more) nor Wazuh stdin (none)",
                args.len().saturating_sub(1)
            ),
        ),
    }
}

impl Shim {
    fn run_ossec(&self, args: &[OsString]) -> ShimExit {
        let invocation = match argv::parse_ossec_argv(args) {
            Ok(invocation) => invocation,
            Err(error) => {
                return self.fail(&Known::default(), &format!("bad OSSEC arguments: {error}"));
            }
        };
        let mut known = Known {
            alert_id: invocation.alert_id.clone(),
            rule_id: invocation.rule_id.clone(),
            path: invocation
                .filename
                .as_ref()
                .map(|name| String::from_utf8_lossy(&name.bytes).into_owned())
                .unwrap_or_default(),
        };
        match &invocation.action {
            Action::Add => {}
            Action::Delete => {
                return self.ignored(&known, "timeout 'delete' run: nothing to verify");
            }
            Action::Other(other) => {
                return self.fail(
                    &known,
                    &format!("unknown action {other:?} (expected add or delete)"),
                );
            }
        }
        let id: AlertId = match invocation.alert_id.parse() {
            Ok(id) => id,
            Err(error) => return self.fail(&known, &error.to_string()),
        };
        let alerts_log_path = &self.config.active_response.alerts_log;
        let alert = match alerts_log::read_alert_or_rotated(alerts_log_path, &id) {
            Ok(alert) => alert,
            Err(error) => return self.fail(&known, &format!("cannot read the alert: {error}")),
        };
        known.path = alert.path.clone();
        if let Err(error) = argv::cross_check(&invocation, &alert) {
            return self.fail(&known, &format!("argv and alerts.log disagree: {error}"));
        }
        self.decide(AlertRef {
            source: AlertSource::Ossec,
            alert_id: alert.alert_id,
            rule_id: alert.rule_id,
            change: alert.change,
            path: alert.path,
            program: self.program.clone(),
            sha256_after: alert.sha256_after,
            md5_after: alert.md5_after,
            sha1_after: alert.sha1_after,
        })
    }

    fn run_wazuh(&self) -> ShimExit {
        let mut stdin = StdinLines::default();
        let line = match stdin.next_line(Instant::now() + STDIN_TIMEOUT) {
            Ok(line) => line,
            Err(problem) => {
                return self.fail(
                    &Known::default(),
                    &format!("no Wazuh message on stdin: {problem}"),
                );
            }
        };
        let message = match wazuh::parse_message(&line) {
            Ok(message) => message,
            Err(error) => return self.fail(&Known::default(), &error.to_string()),
        };
        let known = match &message.alert {
            Ok(alert) => Known {
                alert_id: alert.alert_id.clone(),
                rule_id: alert.rule_id.clone(),
                path: alert.path.clone(),
            },
            Err(_) => Known::default(),
        };
        match message.command {
            Command::Add => {}
            Command::Delete => {
                return self.ignored(&known, "timeout 'delete' message: nothing to verify");
            }
            other => {
                return self.fail(
                    &known,
                    &format!("unexpected command {other:?} on stdin (expected add or delete)"),
                );
            }
        }
        let alert = match message.alert {
            Ok(alert) => alert,
            Err(error) => return self.fail(&known, &error.to_string()),
        };
        if let Err(problem) = self.handshake(&mut stdin, &alert.path) {
            return match problem {
                Handshake::Aborted => self.ignored(
                    &known,
                    "wazuh-execd answered 'abort': an entry for this file is pending in its timeout list (configure the command without a timeout)",
                ),
                Handshake::Failed(reason) => self.fail(&known, &format!("check_keys handshake failed: {reason}")),
            };
        }
        self.decide(AlertRef {
            source: AlertSource::Wazuh,
            alert_id: alert.alert_id,
            rule_id: alert.rule_id,
            change: alert.change,
            path: alert.path,
            program: self.program.clone(),
            sha256_after: alert.sha256_after,
            md5_after: alert.md5_after,
            sha1_after: alert.sha1_after,
        })
    }

    /// Prints `check_keys` (execd blocks until it reads it) and waits for `continue`/`abort`.
    fn handshake(&self, stdin: &mut StdinLines, path: &str) -> Result<(), Handshake> {
        let name = Path::new(&self.program)
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "verify-file".to_owned());
        let line = wazuh::check_keys_line(&name, path);
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(line.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(|error| {
                Handshake::Failed(format!("cannot write check_keys to stdout: {error}"))
            })?;
        drop(stdout);
        let reply = stdin
            .next_line(Instant::now() + STDIN_TIMEOUT)
            .map_err(|problem| {
                Handshake::Failed(format!("no reply from wazuh-execd: {problem}"))
            })?;
        match wazuh::parse_message(&reply).map(|message| message.command) {
            Ok(Command::Continue) => Ok(()),
            Ok(Command::Abort) => Err(Handshake::Aborted),
            Ok(other) => Err(Handshake::Failed(format!(
                "unexpected reply command {other:?}"
            ))),
            Err(error) => Err(Handshake::Failed(error.to_string())),
        }
    }

    /// Asks the daemon and turns its answer into an exit, logging `failed` whenever the daemon's
    /// verdict was not logged by the daemon itself.
    fn decide(&self, alert: AlertRef) -> ShimExit {
        let known = Known {
            alert_id: alert.alert_id.clone(),
            rule_id: alert.rule_id.clone(),
            path: alert.path.clone(),
        };
        let timeout = self.config.active_response.request_timeout();
        let request = Request::new(RequestBody::Verify { alert });
        let response = match client::request(&self.config.socket, &request, timeout) {
            Ok(response) => response,
            Err(error) => {
                return self.fail(&known, &format!("verifier daemon not answering: {error}"));
            }
        };
        let verdict = match response.body {
            ResponseBody::Verdict(verdict) => verdict,
            ResponseBody::Error { message } => {
                return self.fail(&known, &format!("verifier daemon error: {message}"));
            }
            other => {
                let kind = match other {
                    ResponseBody::Status { .. } => "status",
                    ResponseBody::Explain { .. } => "explain",
                    _ => "unknown",
                };
                return self.fail(
                    &known,
                    &format!("verifier daemon sent a {kind} answer to a verify request"),
                );
            }
        };
        match (verdict.outcome, verdict.logged) {
            (Outcome::Deferred, _) => {
                tracing::info!(path = %known.path, reason = %verdict.reason, "verdict deferred; the daemon logs it when decided");
                ShimExit::Deferred
            }
            (Outcome::Succeeded, true) => ShimExit::Succeeded,
            (Outcome::Failed, true) => {
                tracing::warn!(path = %known.path, reason = %verdict.reason, "verification failed");
                ShimExit::Failed
            }
            (outcome, false) => self.fail(
                &known,
                &format!(
                    "verifier daemon could not log its verdict ({outcome:?}: {})",
                    verdict.reason
                ),
            ),
        }
    }

    fn fail(&self, known: &Known, reason: &str) -> ShimExit {
        tracing::error!(alert_id = %known.alert_id, path = %known.path, "{reason}");
        self.write(known, LogStatus::Failed, reason);
        ShimExit::Failed
    }

    fn ignored(&self, known: &Known, reason: &str) -> ShimExit {
        tracing::info!(alert_id = %known.alert_id, path = %known.path, "{reason}");
        self.write(known, LogStatus::Ignored, reason);
        ShimExit::Ignored
    }

    fn write(&self, known: &Known, status: LogStatus, reason: &str) {
        let record = LogRecord {
            program: &self.program,
            status,
            alert_id: &known.alert_id,
            rule_id: &known.rule_id,
            path: &known.path,
            reason,
        };
        let line = log::format_line(self.source, SystemTime::now(), &record);
        let log_path = &self.config.active_response.log_path;
        if let Err(error) = log::append_line(log_path, &line) {
            // Nothing else can carry the verdict: say it on stderr, loudly.
            eprintln!("verify-file: {error}; the line was: {}", line.trim_end());
        }
    }
}

enum Handshake {
    Aborted,
    Failed(String),
}

/// argv[0] made absolute against the working directory (Wazuh passes a relative
/// `active-response/bin/<exe>` and runs us in its installation directory), so the log line
/// matches the decoders' `/…/active-response/bin/` prefix. Symlinks are kept as named.
fn absolute_program(argv0: Option<&OsString>) -> String {
    let named = argv0
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("verify-file"));
    let absolute = if named.is_absolute() {
        named
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(&named))
            .unwrap_or(named)
    };
    absolute.to_string_lossy().into_owned()
}

/// Reads `'\n'`-terminated lines from fd 0 with a deadline, straight from the descriptor (no
/// hidden read-ahead, so `poll` sees exactly what is pending).
#[derive(Default)]
struct StdinLines {
    pending: Vec<u8>,
}

impl StdinLines {
    fn next_line(&mut self, deadline: Instant) -> Result<Vec<u8>, String> {
        // SAFETY: fd 0 stays open for the life of the process; ManuallyDrop never closes it.
        let mut stdin = ManuallyDrop::new(unsafe { File::from_raw_fd(0) });
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            if let Some(end) = self.pending.iter().position(|&byte| byte == b'\n') {
                let rest = self.pending.split_off(end + 1);
                let mut line = std::mem::replace(&mut self.pending, rest);
                line.pop();
                return Ok(line);
            }
            if self.pending.len() > wazuh::MAX_MESSAGE_BYTES {
                return Err(format!(
                    "line longer than {} bytes",
                    wazuh::MAX_MESSAGE_BYTES
                ));
            }
            let left = deadline
                .checked_duration_since(Instant::now())
                .ok_or_else(|| format!("nothing within {STDIN_TIMEOUT:?}"))?;
            let mut poll = libc::pollfd {
                fd: stdin.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let millis = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
            // SAFETY: one valid pollfd.
            let ready = unsafe { libc::poll(&mut poll, 1, millis) };
            if ready < 0 {
                let error = std::io::Error::last_os_error();
                if error.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(format!("poll on stdin: {error}"));
            }
            if ready == 0 {
                return Err(format!("nothing within {STDIN_TIMEOUT:?}"));
            }
            match stdin.read(&mut chunk) {
                Ok(0) if self.pending.is_empty() => {
                    return Err("stdin is empty (end of file)".to_owned());
                }
                Ok(0) => return Err("stdin ended inside a line".to_owned()),
                Ok(count) => self.pending.extend_from_slice(&chunk[..count]),
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(format!("reading stdin: {error}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(count: usize) -> Vec<OsString> {
        (0..count)
            .map(|i| OsString::from(format!("a{i}")))
            .collect()
    }

    #[test]
    fn shape_rule() {
        assert_eq!(invocation_shape(&args(1)), InvocationShape::Wazuh);
        assert_eq!(invocation_shape(&args(0)), InvocationShape::Wazuh);
        assert_eq!(invocation_shape(&args(7)), InvocationShape::Ossec);
        assert_eq!(invocation_shape(&args(31)), InvocationShape::Ossec);
        for count in 2..7 {
            assert_eq!(
                invocation_shape(&args(count)),
                InvocationShape::Unrecognised
            );
        }
    }

    #[test]
    fn exit_codes() {
        assert_eq!(ShimExit::Failed.code(), 1);
        assert_eq!(ShimExit::Deferred.code(), 0);
        assert_eq!(ShimExit::Ignored.code(), 0);
        assert_eq!(ShimExit::Succeeded.code(), 0);
    }

    #[test]
    fn relative_program_becomes_absolute() {
        let program = absolute_program(Some(&OsString::from("active-response/bin/verify-file")));
        assert!(program.starts_with('/'));
        assert!(program.ends_with("/active-response/bin/verify-file"));
        assert_eq!(absolute_program(Some(&OsString::from("/x/y"))), "/x/y");
    }
}
