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
        let date = ossec_block_date(epoch);
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

/// `YYYY Mon DD HH:MM:SS` in UTC, as OSSEC prints the second line of a block.
fn ossec_block_date(epoch: u64) -> String {
    let output = Command::new("date")
        .env("LC_ALL", "C")
        .env("TZ", "UTC")
        .arg("-d")
        .arg(format!("@{epoch}"))
        .arg("+%Y %b %d %H:%M:%S")
        .output()
        .expect("date");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
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
