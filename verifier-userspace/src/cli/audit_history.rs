//! The provenance store's account of a mismatching file for `verifier audit`: who last changed
//! it (process, executable, pid, time) and whether inside a package transaction, read from the
//! store opened read-only (WAL: the daemon may be writing, or not running at all).

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use crate::{
    events::FileId,
    packages::audit::{Explainer, FileHistory, LastWrite, TransactionSummary},
    store::{self, HistoryEntry, Store, StoreError},
};

/// Explains findings from the provenance store.
pub struct StoreExplainer {
    store: Store,
}

impl StoreExplainer {
    /// Opens the store in `state_dir` read-only.
    pub fn open(state_dir: &Path) -> Result<Self, StoreError> {
        Store::open_read_only(state_dir).map(|store| Self { store })
    }

    fn last_write(&self, entry: &HistoryEntry) -> LastWrite {
        let writer = &entry.writer;
        let transaction = writer.transaction_key().map(|key| {
            let record = self.store.transaction(&key).ok().flatten();
            TransactionSummary {
                id: key.id,
                command: record.as_ref().map_or_else(String::new, |record| {
                    record
                        .cmdline
                        .as_bytes()
                        .split(|byte| *byte == 0)
                        .filter(|argument| !argument.is_empty())
                        .map(|argument| store::ByteText::from(argument).to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                }),
                root_pid: record.as_ref().map_or(0, |record| record.root_pid),
                exit_status: record.as_ref().and_then(|record| record.exit_status),
                depth: writer
                    .transaction
                    .map_or(0, |transaction| transaction.depth),
            }
        });
        LastWrite {
            time_ns: entry.time,
            time: store::format_time(entry.time),
            operation: entry.op.as_str().to_owned(),
            pid: writer.pid,
            uid: writer.uid,
            process: writer.comm.to_string(),
            exe: writer.exe.as_ref().map(ToString::to_string),
            in_transaction: transaction.is_some(),
            transaction,
        }
    }
}

impl Explainer for StoreExplainer {
    fn explain(&self, path: &Path) -> Option<FileHistory> {
        // The recorder names files with their directories resolved (usr-merge `/bin`).
        let resolved: PathBuf = store::resolve_directory(path).unwrap_or_else(|| path.to_owned());
        let current = std::fs::symlink_metadata(&resolved)
            .ok()
            .map(|metadata| FileId {
                dev: metadata.dev(),
                ino: metadata.ino(),
            });
        let history = match self.store.file_history(&resolved, current) {
            Ok(history) => history,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot read the file's history");
                return None;
            }
        };
        let operations = history.entries.len() + history.path_events.len();
        let last = history
            .entries
            .last()
            .or_else(|| history.path_events.last())?;
        let last_write = self.last_write(last);
        let summary = summary(&last_write, operations);
        Some(FileHistory {
            summary,
            operations,
            last_write: Some(last_write),
            incomplete: !history.is_complete(),
        })
    }
}

fn summary(last: &LastWrite, operations: usize) -> String {
    let exe = last.exe.as_deref().unwrap_or("executable unknown");
    let context = match &last.transaction {
        Some(transaction) => format!(
            "in package transaction {} ({}, root pid {}, depth {}, {})",
            transaction.id,
            transaction.command,
            transaction.root_pid,
            transaction.depth,
            transaction.exit_status.map_or_else(
                || "running".to_owned(),
                |status| format!("wait status {status}")
            )
        ),
        None => "outside any package transaction".to_owned(),
    };
    format!(
        "last changed {} ({}) by pid {} {} ({exe}, uid {}) {context}; {operations} operation(s) recorded since it was last trusted",
        last.time, last.operation, last.pid, last.process, last.uid
    )
}
