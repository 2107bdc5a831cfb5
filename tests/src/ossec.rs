//! OSSEC inputs as OSSEC 3.7 produces them: syscheck alert blocks appended to an `alerts.log`
//! (the alert id is `<epoch>.<byte offset of the block>`), and the argv ossec-execd gives an Active
//! Response program configured with `<expect></expect>` under a local rule group.
use std::{
    fs::OpenOptions,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{SystemTime, UNIX_EPOCH},
};

/// The syscheck events and the local rule ids the integration kit assigns them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyscheckEvent {
    Changed,
    Deleted,
    Added,
}

impl SyscheckEvent {
    /// (local rule id, level, description, message line for `path`)
    fn rule(self, path: &str) -> (&'static str, u8, &'static str, String) {
        match self {
            Self::Changed => (
                "100210",
                7,
                "Integrity checksum changed.",
                format!("Integrity checksum changed for: '{path}'"),
            ),
            Self::Deleted => (
                "100213",
                7,
                "File deleted. Unable to retrieve checksum.",
                format!("File '{path}' was deleted. Unable to retrieve checksum."),
            ),
            Self::Added => (
                "100214",
                5,
                "File added to the system.",
                format!("New file '{path}' added to the file system."),
            ),
        }
    }
}

/// One alert written to alerts.log.
#[derive(Debug, Clone)]
pub struct WrittenAlert {
    pub id: String,
    pub rule_id: String,
    pub path: String,
}

/// An `alerts.log` that tests append syscheck alerts to.
pub struct AlertsLog {
    pub path: PathBuf,
}

impl AlertsLog {
    pub fn new(path: &Path) -> Self {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("alerts.log directory");
        }
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("create alerts.log");
        Self {
            path: path.to_owned(),
        }
    }

    /// Appends a block exactly as OSSEC 3.7's OS_Log writes it and returns its alert id.
    pub fn append(&self, event: SyscheckEvent, path: &str) -> WrittenAlert {
        let mut file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .expect("open alerts.log");
        let offset = file.metadata().expect("alerts.log metadata").len();
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        let id = format!("{epoch}.{offset}");
        let (rule_id, level, description, message) = event.rule(path);
        let date = block_date(epoch).expect("date");
        let block = format!(
            "** Alert {id}: mail  - local,syscheck,verifier_check,\n\
             {date} debian12->syscheck\n\
             Rule: {rule_id} (level {level}) -> '{description}'\n\
             {message}\n\n"
        );
        file.write_all(block.as_bytes()).expect("append alert");
        WrittenAlert {
            id,
            rule_id: rule_id.to_owned(),
            path: path.to_owned(),
        }
    }
}

/// The hashes a syscheck scan prints for some content.
#[derive(Debug, Clone)]
pub struct ContentHashes {
    pub md5: String,
    pub sha1: String,
    pub sha256: String,
}

impl ContentHashes {
    /// Hashes `content` with coreutils' `md5sum`, `sha1sum` and `sha256sum`.
    pub fn of(content: &[u8]) -> Self {
        let hash = |tool: &str| {
            let mut child = Command::new(tool)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(content)
                .expect("feed hasher");
            let output = child.wait_with_output().expect("hasher output");
            String::from_utf8_lossy(&output.stdout)
                .split_whitespace()
                .next()
                .expect("a digest")
                .to_owned()
        };
        Self {
            md5: hash("md5sum"),
            sha1: hash("sha1sum"),
            sha256: hash("sha256sum"),
        }
    }
}

impl AlertsLog {
    /// Appends a 550-style block with the hashes after the change, as OSSEC 3.7 prints them
    /// (`New md5sum is : '…'`, `New sha1sum is : '…'`).
    pub fn append_changed_with_hashes(&self, path: &str, after: &ContentHashes) -> WrittenAlert {
        let mut file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .expect("open alerts.log");
        let offset = file.metadata().expect("alerts.log metadata").len();
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        let id = format!("{epoch}.{offset}");
        let (rule_id, level, description, message) = SyscheckEvent::Changed.rule(path);
        let date = block_date(epoch).expect("date");
        let block = format!(
            "** Alert {id}: mail  - local,syscheck,verifier_check,\n\
             {date} debian12->syscheck\n\
             Rule: {rule_id} (level {level}) -> '{description}'\n\
             {message}\n\
             Old md5sum was: 'e761f261ceb75cf44e84184212cef143'\n\
             New md5sum is : '{md5}'\n\
             Old sha1sum was: 'e9e1084feafb483df32ff185042068cb5eb35e34'\n\
             New sha1sum is : '{sha1}'\n\n",
            md5 = after.md5,
            sha1 = after.sha1,
        );
        file.write_all(block.as_bytes()).expect("append alert");
        WrittenAlert {
            id,
            rule_id: rule_id.to_owned(),
            path: path.to_owned(),
        }
    }
}

/// The line wazuh-execd writes to an AR program's stdin for a 550 alert about `path` with
/// `after` as its hashes (from the Wazuh 4.x fixture).
pub fn wazuh_add_message(alert_id: &str, path: &str, after: &ContentHashes) -> String {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/ar-formats/wazuh-4.x-ar-stdin-add-550.json"
    );
    let text = std::fs::read_to_string(fixture).expect("wazuh fixture");
    let mut message: serde_json::Value = serde_json::from_str(&text).expect("fixture JSON");
    let alert = &mut message["parameters"]["alert"];
    alert["id"] = alert_id.into();
    let syscheck = &mut alert["syscheck"];
    syscheck["path"] = path.into();
    syscheck["md5_after"] = after.md5.as_str().into();
    syscheck["sha1_after"] = after.sha1.as_str().into();
    syscheck["sha256_after"] = after.sha256.as_str().into();
    message.to_string()
}

/// Runs the shim as wazuh-execd does: no arguments, `message` on stdin, then the `continue`
/// reply to its `check_keys` line.
pub fn run_wazuh_shim(shim: &Path, config: &Path, message: &str) -> Output {
    use std::io::{BufRead as _, BufReader};
    let mut child = Command::new(shim)
        .env("VERIFIER_CONFIG", config)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run verify-file");
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "{message}").expect("write message");
    let mut keys = String::new();
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    stdout.read_line(&mut keys).expect("read check_keys");
    assert!(keys.contains("check_keys"), "no check_keys line: {keys:?}");
    let reply = message.replacen("\"command\":\"add\"", "\"command\":\"continue\"", 1);
    writeln!(stdin, "{reply}").expect("write continue");
    drop(stdin);
    child.wait_with_output().expect("wait for verify-file")
}

/// `YYYY Mon DD HH:MM:SS` in UTC, as OSSEC prints the second line of a block.
pub fn block_date(epoch: u64) -> std::io::Result<String> {
    let output = Command::new("date")
        .env("LC_ALL", "C")
        .env("TZ", "UTC")
        .arg("-d")
        .arg(format!("@{epoch}"))
        .arg("+%Y %b %d %H:%M:%S")
        .output()?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Runs the shim as ossec-execd does with `<expect></expect>`: argv
/// `add - - <alertid> <ruleid> syscheck -`, stdin /dev/null, cwd /.
pub fn run_shim(shim: &Path, config: &Path, alert: &WrittenAlert) -> Output {
    Command::new(shim)
        .args(["add", "-", "-", &alert.id, &alert.rule_id, "syscheck", "-"])
        .env("VERIFIER_CONFIG", config)
        .current_dir("/")
        .stdin(Stdio::null())
        .output()
        .expect("run verify-file")
}
