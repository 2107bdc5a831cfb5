//! What the decision engine decides from: the file now, its writers since it was last trusted,
//! their transactions, gaps in the evidence, its trusted baseline and its package database entry.
//! Plain data, filled by [`super::gather`] and by tests.

use std::{fmt, path::PathBuf};

use serde::{Deserialize, Serialize};

use crate::protocol::ChangeKind;

/// Everything known about one alerted path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub path: PathBuf,
    pub change: ChangeKind,
    /// Why the path cannot be verified at all (relative, NUL byte, not normalised...).
    pub unusable_path: Option<String>,
    /// `Some(why)` when the verification itself relies on this file.
    pub self_critical: Option<String>,
    /// The file as it is now (lstat); `None` when absent.
    pub current: Option<FileState>,
    /// Writes (and removals) since the file was last trusted, oldest first.
    pub writes: Vec<WriteEvidence>,
    /// Gaps in the evidence overlapping that period.
    pub gaps: Vec<String>,
    /// Other reasons the history may be incomplete (truncated paths, writers older than monitoring).
    pub incomplete: Vec<String>,
    pub baseline: Option<BaselineEvidence>,
    pub package: PackageEvidence,
    /// The file's content against the hashes syscheck put in the alert.
    pub alert_content: AlertContent,
}

/// How the file being verified compares with the content syscheck hashed for the alert
/// (`New md5sum is : '…'`, Wazuh `md5_after`/`sha1_after`/`sha256_after`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum AlertContent {
    /// Nothing to compare (a deletion, checksums disabled, not a regular file...).
    NotCompared { why: String },
    /// Every hash the alert carried matches the file that was verified.
    Same { algorithms: Vec<String> },
    /// The file holds other content than syscheck hashed: it changed again after the scan.
    Differs { detail: String },
    /// The file could not be hashed.
    Unreadable { error: String },
}

impl Default for AlertContent {
    fn default() -> Self {
        Self::NotCompared {
            why: "the alert's hashes were not looked at".into(),
        }
    }
}

/// A file's identity and times, as lstat reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

/// One recorded modification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteEvidence {
    /// Human-readable time.
    pub time: String,
    /// What was done ("open for write", "rename into place", "unlink", ...).
    pub operation: String,
    pub pid: u32,
    pub exe: String,
    pub comm: String,
    pub uid: u32,
    /// Depth in its transaction (0: the package manager itself).
    pub depth: u32,
    pub transaction: Option<TransactionEvidence>,
    /// This operation removed the path (unlink, or rename away).
    pub removed_path: bool,
}

impl WriteEvidence {
    pub fn describe_process(&self) -> String {
        format!("pid {} ({}, uid {})", self.pid, self.exe, self.uid)
    }
}

impl fmt::Display for WriteEvidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} by {}",
            self.time,
            self.operation,
            self.describe_process()
        )?;
        if let Some(transaction) = &self.transaction {
            write!(
                f,
                " in transaction {} at depth {}",
                transaction.id, self.depth
            )?;
        }
        Ok(())
    }
}

/// A package transaction as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionEvidence {
    pub id: u64,
    pub root_pid: u32,
    pub root_exe: String,
    pub command_line: String,
    pub ended: Option<TransactionEnd>,
    pub held_database_lock: bool,
}

impl TransactionEvidence {
    pub fn describe_root(&self) -> String {
        if self.command_line.is_empty() {
            format!("{} pid {}", self.root_exe, self.root_pid)
        } else {
            format!("`{}` pid {}", self.command_line, self.root_pid)
        }
    }
}

/// How a transaction ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionEnd {
    pub time: String,
    /// The wait status: exit code in bits 8–15, terminating signal in bits 0–6.
    pub exit_status: i32,
}

impl TransactionEnd {
    pub fn describe_status(&self) -> String {
        let signal = self.exit_status & 0x7f;
        if signal != 0 {
            format!("killed by signal {signal}")
        } else {
            format!("exit code {}", (self.exit_status >> 8) & 0xff)
        }
    }
}

/// The trusted state recorded at enrollment or at the last accepted verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaselineEvidence {
    pub trusted_at: String,
    pub state: FileState,
}

impl BaselineEvidence {
    /// Same inode, size and times: nothing touched the file since.
    pub fn matches(&self, current: &FileState) -> bool {
        self.state == *current
    }
}

/// What the package databases say about the path now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageEvidence {
    /// "name version arch" of each owning package.
    pub owners: Vec<String>,
    /// A package state that is not a settled installation (half-installed, unpacked...).
    pub unsettled_state: Option<String>,
    pub is_conffile: bool,
    /// Every way the file differs from its database entry.
    pub mismatches: Vec<String>,
    /// Packages that took the file over from another installed package since it was last trusted.
    pub takeovers: Vec<TakeoverEvidence>,
}

/// A file handed from one installed package to another by a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakeoverEvidence {
    pub time: String,
    /// "name version arch" of the previous and the new owner.
    pub previous_owner: String,
    pub previous_name: String,
    pub new_owner: String,
    /// The new owner declares `Replaces:` on the previous one: a normal handover.
    pub replaces_declared: bool,
}

impl fmt::Display for TakeoverEvidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} took it over from {}",
            self.time, self.new_owner, self.previous_owner
        )?;
        if self.replaces_declared {
            write!(f, " (declares Replaces: {})", self.previous_name)?;
        } else {
            write!(f, " without declaring Replaces: {}", self.previous_name)?;
        }
        Ok(())
    }
}

impl PackageEvidence {
    pub fn describe_owners(&self) -> String {
        match self.owners.as_slice() {
            [] => "no package".to_owned(),
            [one] => format!("package {one}"),
            many => format!("packages {}", many.join(", ")),
        }
    }
}
