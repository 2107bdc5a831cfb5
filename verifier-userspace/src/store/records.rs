//! Transactions, gaps, baselines, verdicts, pending requests and statistics: the store's
//! records other than file histories.

use std::{
    os::unix::ffi::OsStringExt as _,
    path::{Path, PathBuf},
};

use super::statements::CachedStatements as _;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{
    ByteText, QueuedVerdict, Store, StoreError, current_boot_id,
    model::{
        Baseline, Gap, GapKind, NewGap, PendingRequest, PruneReport, StoreStats, TransactionKey,
        TransactionRecord, VerdictRecord,
    },
    rows::{from_sql, to_sql},
};
use crate::{
    events::{FileId, WallNanos},
    packages::OwnershipChange,
    protocol::Outcome,
};

const TRANSACTION_COLUMNS: &str = "(SELECT boot_id FROM boots WHERE boots.id = transactions.boot), \
    id, root_pid, root_start_time, exe, exe_dev, exe_ino, argv0, cmdline, uid, started, ended, \
    exit_status, lock_path, lock_time";

fn transaction_from_row(row: &Row<'_>) -> rusqlite::Result<TransactionRecord> {
    Ok(TransactionRecord {
        key: TransactionKey {
            boot: row.get::<_, Option<String>>(0)?.unwrap_or_default(),
            id: from_sql(row.get(1)?),
        },
        root_pid: row.get(2)?,
        root_start_time_ns: from_sql(row.get(3)?),
        exe: ByteText(row.get(4)?),
        exe_file: FileId {
            dev: from_sql(row.get(5)?),
            ino: from_sql(row.get(6)?),
        },
        argv0: ByteText(row.get(7)?),
        cmdline: ByteText(row.get(8)?),
        uid: row.get(9)?,
        started: from_sql(row.get(10)?),
        ended: row.get::<_, Option<i64>>(11)?.map(from_sql),
        exit_status: row.get(12)?,
        package_lock: row.get::<_, Option<Vec<u8>>>(13)?.map(ByteText),
        package_lock_time: row.get::<_, Option<i64>>(14)?.map(from_sql),
    })
}

const GAP_COLUMNS: &str = "id, from_time, to_time, kind, detail";

fn gap_from_row(row: &Row<'_>) -> rusqlite::Result<Gap> {
    Ok(Gap {
        id: row.get(0)?,
        from: from_sql(row.get(1)?),
        to: row.get::<_, Option<i64>>(2)?.map(from_sql),
        kind: GapKind::parse(&row.get::<_, String>(3)?),
        detail: row.get(4)?,
    })
}

/// Inserts a gap, optionally owned by a process (boot number, pid, start time).
pub(super) fn insert_gap(
    connection: &Connection,
    gap: &NewGap,
    process: Option<(i64, u32, u64)>,
) -> Result<i64, StoreError> {
    connection
        .prepare_cached(
            "INSERT INTO gaps (from_time, to_time, kind, detail, boot, pid, start_time) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            to_sql(gap.from),
            gap.to.map(to_sql),
            gap.kind.as_str(),
            gap.detail,
            process.map(|(boot, _, _)| boot),
            process.map(|(_, pid, _)| pid),
            process.map(|(_, _, start)| to_sql(start)),
        ])?;
    Ok(connection.last_insert_rowid())
}

fn outcome_str(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Succeeded => "succeeded",
        Outcome::Failed => "failed",
        Outcome::Deferred => "deferred",
    }
}

fn parse_outcome(text: &str) -> Outcome {
    match text {
        "succeeded" => Outcome::Succeeded,
        "deferred" => Outcome::Deferred,
        _ => Outcome::Failed,
    }
}

fn path_bytes(path: &Path) -> &[u8] {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes()
}

impl Store {
    /// The boot id "now": the daemon's, or the running system's for a read-only store.
    pub(super) fn boot_id(&self) -> Result<String, StoreError> {
        match &self.writer {
            Some(writer) => Ok(writer.boot_id.clone()),
            None => current_boot_id(),
        }
    }

    /// A transaction by its key.
    pub fn transaction(
        &self,
        key: &TransactionKey,
    ) -> Result<Option<TransactionRecord>, StoreError> {
        let sql = format!(
            "SELECT {TRANSACTION_COLUMNS} FROM transactions \
             WHERE boot = (SELECT id FROM boots WHERE boot_id = ?1) AND id = ?2"
        );
        Ok(self
            .connection
            .query_row_cached(
                &sql,
                params![key.boot, to_sql(key.id)],
                transaction_from_row,
            )
            .optional()?)
    }

    /// Transactions of the current boot whose root has not exited.
    pub fn transactions_in_flight(&self) -> Result<Vec<TransactionRecord>, StoreError> {
        let boot = self.boot_id()?;
        let sql = format!(
            "SELECT {TRANSACTION_COLUMNS} FROM transactions \
             WHERE boot = (SELECT id FROM boots WHERE boot_id = ?1) AND ended IS NULL \
             ORDER BY started"
        );
        let mut statement = self.connection.prepare_cached(&sql)?;
        let rows = statement.query_map(params![boot], transaction_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Recent transactions, newest first.
    pub fn recent_transactions(&self, limit: u32) -> Result<Vec<TransactionRecord>, StoreError> {
        let sql = format!(
            "SELECT {TRANSACTION_COLUMNS} FROM transactions ORDER BY started DESC LIMIT ?1"
        );
        let mut statement = self.connection.prepare_cached(&sql)?;
        let rows = statement.query_map(params![limit], transaction_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Gaps that overlap `[from, to]` (open gaps overlap everything after their start).
    pub fn gaps_overlapping(&self, from: WallNanos, to: WallNanos) -> Result<Vec<Gap>, StoreError> {
        let sql = format!(
            "SELECT {GAP_COLUMNS} FROM gaps WHERE from_time <= ?2 \
             AND (to_time IS NULL OR to_time >= ?1) ORDER BY from_time, id"
        );
        let mut statement = self.connection.prepare_cached(&sql)?;
        let clamp = |time: WallNanos| i64::try_from(time).unwrap_or(i64::MAX);
        let rows = statement.query_map(params![clamp(from), clamp(to)], gap_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records a gap the daemon noticed itself; returns its id.
    pub fn record_gap(&mut self, gap: &NewGap) -> Result<i64, StoreError> {
        let (connection, _) = self.writer()?;
        insert_gap(connection, gap, None)
    }

    /// Records that a package took `change.path` over from another installed package.
    pub fn record_ownership_change(
        &mut self,
        time: WallNanos,
        change: &OwnershipChange,
    ) -> Result<i64, StoreError> {
        let (connection, _) = self.writer()?;
        connection.execute_cached(
            "INSERT INTO ownership_changes \
             (time, path, previous_owner, previous_name, new_owner, replaces_declared) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                to_sql(time),
                path_bytes(&super::store_key(&change.path)),
                change.previous_owner,
                change.previous_name,
                change.new_owner,
                change.replaces_declared
            ],
        )?;
        Ok(connection.last_insert_rowid())
    }

    /// The ownership changes of `path` recorded at or after `since`, oldest first.
    pub fn ownership_changes(
        &self,
        path: &Path,
        since: WallNanos,
    ) -> Result<Vec<(WallNanos, OwnershipChange)>, StoreError> {
        let mut statement = self.connection.prepare_cached(
            "SELECT time, path, previous_owner, previous_name, new_owner, replaces_declared \
             FROM ownership_changes WHERE path = ?1 AND time >= ?2 ORDER BY time, id",
        )?;
        let since = i64::try_from(since).unwrap_or(i64::MAX);
        let rows =
            statement.query_map(params![path_bytes(&super::store_key(path)), since], |row| {
                let path: Vec<u8> = row.get(1)?;
                Ok((
                    from_sql(row.get(0)?),
                    OwnershipChange {
                        path: std::path::PathBuf::from(std::ffi::OsString::from_vec(path)),
                        previous_owner: row.get(2)?,
                        previous_name: row.get(3)?,
                        new_owner: row.get(4)?,
                        replaces_declared: row.get(5)?,
                    },
                ))
            })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The baseline of a path, if it was ever trusted.
    pub fn baseline(&self, path: &Path) -> Result<Option<Baseline>, StoreError> {
        baseline_of(&self.connection, path_bytes(&super::store_key(path)))
    }

    /// Records a verdict; returns its id.
    pub fn record_verdict(&mut self, verdict: &VerdictRecord) -> Result<i64, StoreError> {
        let (connection, _) = self.writer()?;
        insert_verdict(connection, verdict)
    }

    /// Runs `read` inside one read transaction: one snapshot and one WAL read lock for all its
    /// queries instead of one per query (each costs file-lock calls on the shared-memory file).
    /// Without a transaction (one already open, or BEGIN failing) the queries run as they are.
    pub fn in_read_snapshot<R>(&self, read: impl FnOnce(&Store) -> R) -> R {
        let began =
            self.connection.is_autocommit() && self.connection.execute_cached("BEGIN", []).is_ok();
        let result = read(self);
        if began && let Err(error) = self.connection.execute_cached("COMMIT", []) {
            tracing::warn!(%error, "cannot end a read transaction");
        }
        result
    }

    /// Queues a verdict and, for an accepted change, the baseline it establishes (as
    /// [`Store::mark_trusted`] would record it), to be written with the other queued verdicts
    /// in one transaction by [`Store::write_queued_verdicts`]. Under an upgrade's burst of alerts
    /// this turns a commit per verdict into a commit per batch. Until then a history read for
    /// the path still shows the operations before the new baseline: it judges more, never less.
    pub fn queue_verdict(
        &mut self,
        record: VerdictRecord,
        trust: Option<(PathBuf, Baseline)>,
    ) -> Result<(), StoreError> {
        let (_, writer) = self.writer()?;
        // Kept under the store's key of the path, which `trust_queued_for` compares against.
        let trust = trust.map(|(path, baseline)| (super::store_key(&path), baseline));
        writer.queued_verdicts.push(QueuedVerdict { record, trust });
        Ok(())
    }

    /// Verdicts queued and not yet written.
    pub fn queued_verdicts(&self) -> usize {
        self.writer
            .as_ref()
            .map_or(0, |writer| writer.queued_verdicts.len())
    }

    /// Whether a queued verdict establishes a baseline for `path`.
    pub fn trust_queued_for(&self, path: &Path) -> bool {
        let key = super::store_key(path);
        self.writer.as_ref().is_some_and(|writer| {
            writer.queued_verdicts.iter().any(|queued| {
                queued
                    .trust
                    .as_ref()
                    .is_some_and(|(trusted, _)| *trusted == key)
            })
        })
    }

    /// Writes the queued verdicts and baselines in one transaction; returns how many. On error
    /// nothing is written and the queue is dropped (the AR log has every verdict already; a
    /// lost baseline only makes a later verdict on the file fail closed).
    pub fn write_queued_verdicts(&mut self) -> Result<usize, StoreError> {
        let (connection, writer) = self.writer()?;
        if writer.queued_verdicts.is_empty() {
            return Ok(0);
        }
        let queued = std::mem::take(&mut writer.queued_verdicts);
        let transaction = connection.transaction()?;
        writer.writer_ids.begin();
        for verdict in &queued {
            insert_verdict(&transaction, &verdict.record)?;
            if let Some((path, baseline)) = &verdict.trust {
                super::history::mark_trusted_in(&transaction, writer, path, baseline)?;
            }
        }
        transaction.commit()?;
        writer.writer_ids.committed();
        for (path, baseline) in queued.iter().filter_map(|verdict| verdict.trust.as_ref()) {
            super::history::forget_trusted_name(writer, path, baseline.file);
        }
        Ok(queued.len())
    }
}

/// Inserts a verdict row; returns its id.
fn insert_verdict(connection: &Connection, verdict: &VerdictRecord) -> Result<i64, StoreError> {
    let reasoning =
        serde_json::to_string(&verdict.reasoning).map_err(|source| StoreError::Json {
            what: "verdict reasoning",
            source,
        })?;
    connection.execute_cached(
        "INSERT INTO verdicts (time, path, alert_id, outcome, reason, reasoning) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            to_sql(verdict.time),
            verdict.path.as_bytes(),
            verdict.alert_id,
            outcome_str(verdict.outcome),
            verdict.reason,
            reasoning
        ],
    )?;
    Ok(connection.last_insert_rowid())
}

impl Store {
    /// Verdicts on a path, oldest first (at most `limit`, the most recent ones).
    pub fn verdicts_for(&self, path: &Path, limit: u32) -> Result<Vec<VerdictRecord>, StoreError> {
        let mut statement = self.connection.prepare_cached(
            "SELECT time, path, alert_id, outcome, reason, reasoning FROM \
             (SELECT * FROM verdicts WHERE path = ?1 ORDER BY time DESC, id DESC LIMIT ?2) \
             ORDER BY time, id",
        )?;
        let rows = statement.query_map(params![path_bytes(path), limit], |row| {
            Ok((
                from_sql(row.get(0)?),
                ByteText(row.get(1)?),
                row.get::<_, Option<String>>(2)?,
                parse_outcome(&row.get::<_, String>(3)?),
                row.get::<_, String>(4)?,
                row.get::<_, String>(5)?,
            ))
        })?;
        let mut verdicts = Vec::new();
        for row in rows {
            let (time, path, alert_id, outcome, reason, reasoning) = row?;
            let reasoning =
                serde_json::from_str(&reasoning).map_err(|source| StoreError::Json {
                    what: "verdict reasoning",
                    source,
                })?;
            verdicts.push(VerdictRecord {
                time,
                path,
                alert_id,
                outcome,
                reason,
                reasoning,
            });
        }
        Ok(verdicts)
    }

    /// Stores (or replaces, by alert id) a deferred request.
    pub fn add_pending(&mut self, request: &PendingRequest) -> Result<(), StoreError> {
        let (connection, _) = self.writer()?;
        let json = serde_json::to_string(request).map_err(|source| StoreError::Json {
            what: "pending request",
            source,
        })?;
        connection.execute_cached(
            "INSERT OR REPLACE INTO pending (alert_id, received, deadline, request) \
             VALUES (?1, ?2, ?3, ?4)",
            params![
                request.alert.alert_id,
                to_sql(request.received),
                to_sql(request.deadline),
                json
            ],
        )?;
        Ok(())
    }

    /// Removes a deferred request; returns whether it existed.
    pub fn remove_pending(&mut self, alert_id: &str) -> Result<bool, StoreError> {
        let (connection, _) = self.writer()?;
        Ok(connection
            .execute_cached("DELETE FROM pending WHERE alert_id = ?1", params![alert_id])?
            > 0)
    }

    /// All deferred requests, oldest first.
    pub fn pending(&self) -> Result<Vec<PendingRequest>, StoreError> {
        let mut statement = self
            .connection
            .prepare_cached("SELECT request FROM pending ORDER BY received, alert_id")?;
        let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
        let mut requests = Vec::new();
        for row in rows {
            requests.push(
                serde_json::from_str(&row?).map_err(|source| StoreError::Json {
                    what: "pending request",
                    source,
                })?,
            );
        }
        Ok(requests)
    }

    /// Drops what no longer matters from before `before`: verdicts; operations on inodes that
    /// no path names any more (deleted or replaced files) and their removed names; processes
    /// that exited and are referenced by no remaining operation or transaction. Histories of
    /// existing files, transactions and gaps are kept.
    pub fn prune(&mut self, before: WallNanos) -> Result<PruneReport, StoreError> {
        let (connection, writer) = self.writer()?;
        // Writers no remaining operation references are deleted below.
        writer.writer_ids.clear();
        let cutoff = i64::try_from(before).unwrap_or(i64::MAX);
        let transaction = connection.transaction()?;
        let verdicts =
            transaction.execute_cached("DELETE FROM verdicts WHERE time < ?1", params![cutoff])?;
        let file_events = transaction.execute_cached(
            "DELETE FROM file_events WHERE time < ?1 AND dev IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM names WHERE names.dev = file_events.dev \
              AND names.ino = file_events.ino AND names.removed_at IS NULL)",
            params![cutoff],
        )?;
        let names = transaction.execute_cached(
            "DELETE FROM names WHERE removed_at IS NOT NULL AND removed_at < ?1",
            params![cutoff],
        )?;
        // One scan of `file_events` (an index on its writer would cost every insert).
        transaction.execute_cached(
            "DELETE FROM writers WHERE id NOT IN (SELECT writer FROM file_events)",
            [],
        )?;
        let processes = transaction.execute_cached(
            "DELETE FROM processes WHERE exit_time IS NOT NULL AND exit_time < ?1 \
             AND NOT EXISTS (SELECT 1 FROM writers WHERE writers.boot = processes.boot \
              AND writers.pid = processes.pid \
              AND writers.start_time = processes.start_time) \
             AND NOT EXISTS (SELECT 1 FROM transactions WHERE transactions.boot = processes.boot \
              AND transactions.root_pid = processes.pid \
              AND transactions.root_start_time = processes.start_time)",
            params![cutoff],
        )?;
        transaction.commit()?;
        Ok(PruneReport {
            verdicts: verdicts as u64,
            file_events: file_events as u64,
            names: names as u64,
            processes: processes as u64,
        })
    }

    /// Size on disk and row counts.
    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let count = |table: &str| -> Result<u64, StoreError> {
            let sql = format!("SELECT COUNT(*) FROM {table}");
            Ok(self
                .connection
                .query_row_cached(&sql, [], |row| row.get::<_, i64>(0))? as u64)
        };
        let mut bytes_on_disk = 0;
        for suffix in ["", "-wal", "-shm"] {
            let mut name = self.database.clone().into_os_string();
            name.push(suffix);
            bytes_on_disk += std::fs::metadata(&name).map_or(0, |metadata| metadata.len());
        }
        let (memory_cache_inodes, live_processes) = match &self.writer {
            Some(writer) => (writer.cache.len() as u64, writer.processes.len() as u64),
            None => (0, 0),
        };
        Ok(StoreStats {
            bytes_on_disk,
            file_events: count("file_events")?,
            names: count("names")?,
            processes: count("processes")?,
            transactions: count("transactions")?,
            gaps: count("gaps")?,
            baselines: count("baselines")?,
            verdicts: count("verdicts")?,
            pending: count("pending")?,
            memory_cache_inodes,
            live_processes,
        })
    }
}

pub(super) fn baseline_of(
    connection: &Connection,
    path: &[u8],
) -> Result<Option<Baseline>, StoreError> {
    Ok(connection
        .query_row_cached(
            "SELECT dev, ino, size, mtime, ctime, digest, algorithm, time FROM baselines \
             WHERE path = ?1",
            params![path],
            |row| {
                Ok(Baseline {
                    file: FileId {
                        dev: from_sql(row.get(0)?),
                        ino: from_sql(row.get(1)?),
                    },
                    size: from_sql(row.get(2)?),
                    mtime_ns: row.get(3)?,
                    ctime_ns: row.get(4)?,
                    digest: row.get(5)?,
                    algorithm: row.get(6)?,
                    time: from_sql(row.get(7)?),
                })
            },
        )
        .optional()?)
}
