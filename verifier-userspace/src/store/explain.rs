//! The recorded story of one file, for `verifier explain`: its history, the transactions its
//! writers ran in, gaps since its history began, its baseline, verdicts and pending requests.
//! Serializes to JSON; `Display` renders it for a person (bytes escaped, times in UTC).

use std::{
    fmt::{self, Display, Formatter},
    os::unix::{ffi::OsStrExt, fs::MetadataExt},
    path::Path,
};

use serde::Serialize;

use super::{
    Store, StoreError,
    bytes::ByteText,
    model::{
        EntryOp, EntrySource, FileHistory, Gap, HistoryEntry, HistoryStart, Incompleteness,
        PendingRequest, RecordedPath, TransactionRecord, VerdictRecord,
    },
    now,
};
use crate::events::{FileId, FileOp, PathOrigin, WallNanos};

/// Most gaps and verdicts an explanation lists (the most recent ones).
const MAX_LISTED: u32 = 50;

/// The file as it is on disk now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CurrentFile {
    pub file: FileId,
    pub size: u64,
    pub mode: u32,
    pub mtime_ns: i64,
}

/// Everything the store knows about one path.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub path: ByteText,
    /// The path with its directory resolved (symlinks such as usr-merge `/bin` followed), when
    /// that differs: the recorder reports resolved paths, so the history is looked up by it.
    pub resolved_path: Option<ByteText>,
    pub generated_at: WallNanos,
    /// `None`: the path does not exist now (or cannot be examined).
    pub current: Option<CurrentFile>,
    pub history: FileHistory,
    pub transactions: Vec<TransactionRecord>,
    /// Gaps since the history's start, most recent [`MAX_LISTED`].
    pub gaps: Vec<Gap>,
    pub gaps_not_listed: usize,
    pub verdicts: Vec<VerdictRecord>,
    pub pending: Vec<PendingRequest>,
}

impl Store {
    /// The story of `path` (examining the file now with `lstat`).
    pub fn explain(&self, requested: &Path) -> Result<Explanation, StoreError> {
        let resolved = resolve_directory(requested);
        let path = resolved.as_deref().unwrap_or(requested);
        let current = std::fs::symlink_metadata(path)
            .ok()
            .map(|metadata| CurrentFile {
                file: FileId {
                    dev: metadata.dev(),
                    ino: metadata.ino(),
                },
                size: metadata.size(),
                mode: metadata.mode(),
                mtime_ns: metadata.mtime() * 1_000_000_000 + metadata.mtime_nsec(),
            });
        let history = self.file_history(path, current.as_ref().map(|current| current.file))?;
        let mut transactions = Vec::new();
        for key in history.transaction_keys() {
            if let Some(record) = self.transaction(&key)? {
                transactions.push(record);
            }
        }
        let generated_at = now();
        let mut gaps = self.gaps_overlapping(history.earliest_relevant, generated_at)?;
        let gaps_not_listed = gaps.len().saturating_sub(MAX_LISTED as usize);
        gaps.drain(..gaps_not_listed);
        // Verdicts and requests may name the path as syscheck saw it or resolved.
        let mut verdicts = self.verdicts_for(path, MAX_LISTED)?;
        if path != requested {
            verdicts.extend(self.verdicts_for(requested, MAX_LISTED)?);
            verdicts.sort_by_key(|verdict| verdict.time);
        }
        let names = [
            requested.as_os_str().as_bytes(),
            path.as_os_str().as_bytes(),
        ];
        let pending = self
            .pending()?
            .into_iter()
            .filter(|request| names.contains(&request.alert.path.as_bytes()))
            .collect();
        Ok(Explanation {
            path: ByteText(requested.as_os_str().as_bytes().to_vec()),
            resolved_path: resolved.map(|path| ByteText(path.as_os_str().as_bytes().to_vec())),
            generated_at,
            current,
            history,
            transactions,
            gaps,
            gaps_not_listed,
            verdicts,
            pending,
        })
    }
}

/// `path` with its parent directory canonicalized, if that changes it.
pub fn resolve_directory(path: &Path) -> Option<std::path::PathBuf> {
    let name = path.file_name()?;
    let parent = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())?;
    let resolved = std::fs::canonicalize(parent).ok()?.join(name);
    (resolved != path).then_some(resolved)
}

/// A wall-clock time in UTC with milliseconds.
pub fn format_time(time: WallNanos) -> String {
    let nanos = i64::try_from(time).unwrap_or(i64::MAX);
    chrono::DateTime::from_timestamp_nanos(nanos)
        .format("%Y-%m-%d %H:%M:%S%.3f UTC")
        .to_string()
}

struct Inode(FileId);

impl Display for Inode {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let dev = self.0.dev;
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
        let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
        write!(f, "inode {} on device {major}:{minor}", self.0.ino)
    }
}

fn describe_path(path: &RecordedPath) -> String {
    let mut text = path.path.to_string();
    if path.truncated {
        text = format!("…{text} (truncated)");
    }
    match path.origin {
        PathOrigin::Kernel => {}
        PathOrigin::UserResolved => text.push_str(" (as the caller wrote it, resolved)"),
        PathOrigin::UserUnresolved => text.push_str(" (as the caller wrote it, unresolved)"),
    }
    text
}

/// A NUL-separated command line as shell-like words: each escaped, quoted when it has spaces.
fn describe_cmdline(cmdline: &[u8]) -> String {
    let cmdline = cmdline.strip_suffix(b"\0").unwrap_or(cmdline);
    cmdline
        .split(|&byte| byte == 0)
        .map(|word| {
            let text = super::bytes::escape(word);
            if text.is_empty() || text.contains([' ', '\'', '"']) {
                format!("'{}'", text.replace('\'', "\\'"))
            } else {
                text
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Open flags by name (access mode and the flags that matter for provenance).
fn describe_open_flags(flags: u64) -> String {
    let flags = flags as libc::c_int;
    let mut names = vec![match flags & libc::O_ACCMODE {
        libc::O_RDONLY => "O_RDONLY",
        libc::O_WRONLY => "O_WRONLY",
        _ => "O_RDWR",
    }];
    for (flag, name) in [
        (libc::O_CREAT, "O_CREAT"),
        (libc::O_EXCL, "O_EXCL"),
        (libc::O_TRUNC, "O_TRUNC"),
        (libc::O_APPEND, "O_APPEND"),
        (libc::O_TMPFILE & !libc::O_DIRECTORY, "O_TMPFILE"),
    ] {
        if flags & flag == flag {
            names.push(name);
        }
    }
    names.join("|")
}

fn describe_status(status: i32) -> String {
    let signal = status & 0x7f;
    if signal == 0 {
        format!("exit code {}", (status >> 8) & 0xff)
    } else {
        format!("killed by signal {signal}")
    }
}

fn write_entry(f: &mut Formatter<'_>, entry: &HistoryEntry) -> fmt::Result {
    write!(
        f,
        "  {}  {:<16} {}",
        format_time(entry.time),
        entry.op.as_str(),
        describe_path(&entry.path)
    )?;
    if let Some(target) = &entry.target {
        write!(f, " -> {}", describe_path(target))?;
    }
    writeln!(f)?;
    if let Some(file) = entry.file {
        write!(f, "      {}", Inode(file))?;
        if let Some(replaced) = entry.replaced {
            write!(f, ", replacing {}", Inode(replaced))?;
        }
        writeln!(f)?;
    }
    let writer = &entry.writer;
    let exe = writer
        .exe
        .as_ref()
        .map_or_else(|| "executable unknown".to_owned(), ToString::to_string);
    write!(
        f,
        "      by pid {} ({}) running {exe}, uid {} euid {}",
        writer.pid, writer.comm, writer.uid, writer.euid
    )?;
    match writer.transaction {
        Some(transaction) => writeln!(
            f,
            ", in transaction {} at depth {}",
            transaction.id, transaction.depth
        )?,
        None => writeln!(f, ", outside any package transaction")?,
    }
    if entry.op == EntryOp::File(FileOp::OpenWrite) {
        writeln!(f, "      opened {}", describe_open_flags(entry.flags))?;
    } else if entry.flags != 0 {
        writeln!(f, "      flags {:#o}", entry.flags)?;
    }
    match entry.source {
        EntrySource::Recorded => {}
        EntrySource::MemoryCache => writeln!(
            f,
            "      (recorded outside the watched roots, kept when the file came in)"
        )?,
        EntrySource::MemoryOnly => writeln!(f, "      (only in the daemon's memory so far)")?,
        EntrySource::Preexisting => writeln!(
            f,
            "      (this process had the file open for write before monitoring started)"
        )?,
    }
    if entry.prior_history_unknown {
        writeln!(f, "      earlier operations on this inode may be missing")?;
    }
    Ok(())
}

fn write_incompleteness(f: &mut Formatter<'_>, reason: &Incompleteness) -> fmt::Result {
    match reason {
        Incompleteness::InodeNotRecorded { recorded, current } => match recorded {
            Some(recorded) => writeln!(
                f,
                "  - the path is now {} but the store last recorded {} there",
                Inode(*current),
                Inode(*recorded)
            ),
            None => writeln!(
                f,
                "  - the path is now {} but no recorded operation put it there",
                Inode(*current)
            ),
        },
        Incompleteness::UnresolvedPaths { count } => writeln!(
            f,
            "  - {count} operation(s) with truncated or unresolved paths may concern this file"
        ),
        Incompleteness::WriterPredatesMonitoring { pid, comm } => writeln!(
            f,
            "  - pid {pid} ({comm}) had the file open for write before monitoring started"
        ),
        Incompleteness::PriorHistoryUnknown { time } => writeln!(
            f,
            "  - operations on this inode before {} may be missing",
            format_time(*time)
        ),
    }
}

fn write_transaction(f: &mut Formatter<'_>, record: &TransactionRecord) -> fmt::Result {
    writeln!(
        f,
        "  transaction {} (boot {}): {} as pid {}, uid {}",
        record.key.id, record.key.boot, record.exe, record.root_pid, record.uid
    )?;
    writeln!(
        f,
        "      command line: {}",
        describe_cmdline(record.cmdline.as_bytes())
    )?;
    let end = match (record.ended, record.exit_status) {
        (Some(ended), Some(status)) => {
            format!(
                "ended {} with {}",
                format_time(ended),
                describe_status(status)
            )
        }
        (Some(ended), None) => format!("ended {}", format_time(ended)),
        (None, _) => "still running (or its boot ended first)".to_owned(),
    };
    writeln!(f, "      started {}, {end}", format_time(record.started))?;
    match &record.package_lock {
        Some(lock) => writeln!(f, "      opened the package database lock {lock}"),
        None => writeln!(f, "      never opened the package database lock"),
    }
}

impl Display for Explanation {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let history = &self.history;
        writeln!(f, "{}", self.path)?;
        if let Some(resolved) = &self.resolved_path {
            writeln!(f, "  resolved: {resolved}")?;
        }
        match &self.current {
            Some(current) => writeln!(
                f,
                "  now: {}, {} bytes, mode {:o}",
                Inode(current.file),
                current.size,
                current.mode
            )?,
            None => writeln!(f, "  now: does not exist")?,
        }
        match history.recorded_file {
            Some(file) if history.recorded_deleted => writeln!(
                f,
                "  recorded: {} was last removed from this path",
                Inode(file)
            )?,
            Some(file) => writeln!(f, "  recorded: {}", Inode(file))?,
            None => writeln!(f, "  recorded: no operation ever named this path's inode")?,
        }
        match &history.baseline {
            Some(baseline) => writeln!(
                f,
                "  last trusted: {} ({}, {} bytes, {} {})",
                format_time(baseline.time),
                Inode(baseline.file),
                baseline.size,
                baseline.algorithm,
                baseline.digest
            )?,
            None => writeln!(f, "  last trusted: never")?,
        }
        match history.start {
            HistoryStart::Trusted { time } => writeln!(
                f,
                "  history: since it was trusted at {}",
                format_time(time)
            )?,
            HistoryStart::Created { time } => writeln!(
                f,
                "  history: since the inode was created at {}",
                format_time(time)
            )?,
            HistoryStart::Unknown => writeln!(
                f,
                "  history: the inode predates everything recorded (start unknown)"
            )?,
        }
        for name in &history.other_names {
            writeln!(f, "  also named: {name}")?;
        }
        if history.incomplete.is_empty() {
            writeln!(f, "  completeness: nothing known to be missing (see gaps)")?;
        } else {
            writeln!(f, "  completeness: the history may be incomplete:")?;
            for reason in &history.incomplete {
                write_incompleteness(f, reason)?;
            }
        }
        writeln!(f)?;
        writeln!(f, "Operations on the file ({}):", history.entries.len())?;
        for entry in &history.entries {
            write_entry(f, entry)?;
        }
        if !history.path_events.is_empty() {
            writeln!(
                f,
                "\nOther operations naming this path ({}):",
                history.path_events.len()
            )?;
            for entry in &history.path_events {
                write_entry(f, entry)?;
            }
        }
        if !history.possibly_related.is_empty() {
            writeln!(
                f,
                "\nOperations with unresolved paths that may concern it ({}):",
                history.possibly_related.len()
            )?;
            for entry in &history.possibly_related {
                write_entry(f, entry)?;
            }
        }
        writeln!(f, "\nTransactions ({}):", self.transactions.len())?;
        for record in &self.transactions {
            write_transaction(f, record)?;
        }
        writeln!(
            f,
            "\nGaps in the evidence since the history began ({}):",
            self.gaps.len() + self.gaps_not_listed
        )?;
        if self.gaps_not_listed > 0 {
            writeln!(f, "  ({} older gaps not listed)", self.gaps_not_listed)?;
        }
        for gap in &self.gaps {
            let to = gap.to.map_or_else(|| "now (open)".to_owned(), format_time);
            let kind = gap.kind.as_str().replace('_', " ");
            writeln!(
                f,
                "  {} .. {to}  {kind}: {}",
                format_time(gap.from),
                gap.detail
            )?;
        }
        writeln!(f, "\nVerdicts ({}):", self.verdicts.len())?;
        for verdict in &self.verdicts {
            writeln!(
                f,
                "  {}  {:?}  alert {}: {}",
                format_time(verdict.time),
                verdict.outcome,
                verdict.alert_id.as_deref().unwrap_or("-"),
                verdict.reason
            )?;
        }
        if !self.pending.is_empty() {
            writeln!(f, "\nPending requests ({}):", self.pending.len())?;
            for request in &self.pending {
                writeln!(
                    f,
                    "  alert {} received {}, decided by {}",
                    request.alert.alert_id,
                    format_time(request.received),
                    format_time(request.deadline)
                )?;
            }
        }
        Ok(())
    }
}
