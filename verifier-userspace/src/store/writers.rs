//! The `writers` table: each distinct writer of file operations (the process, and what it was
//! when it acted: ids, name, executable, transaction) is one row, which its operations reference.
//! A memo finds the row of a writer seen before without a query; rows inserted by a transaction
//! enter the memo only once it committed.

use std::hash::BuildHasher as _;

use rusqlite::{Transaction, params};

use super::{StoreError, rows::EntryRow, rows::to_sql};
use crate::events::{FileId, TransactionRef};

/// Writers the memo holds at most; it starts over when full.
const MEMO_CAPACITY: usize = 65_536;

/// Everything a `writers` row holds but its id.
#[derive(Debug, PartialEq, Eq)]
struct WriterKey {
    boot: i64,
    pid: u32,
    tid: u32,
    ppid: u32,
    start_time_ns: u64,
    uid: u32,
    euid: u32,
    comm: Vec<u8>,
    exe: Option<Vec<u8>>,
    exe_file: Option<FileId>,
    transaction: Option<TransactionRef>,
}

impl WriterKey {
    fn of(boot: i64, row: &EntryRow<'_>) -> Self {
        Self {
            boot,
            pid: row.pid,
            tid: row.tid,
            ppid: row.ppid,
            start_time_ns: row.start_time_ns,
            uid: row.uid,
            euid: row.euid,
            comm: row.comm.to_vec(),
            exe: row.exe.map(<[u8]>::to_vec),
            exe_file: row.exe_file,
            transaction: row.transaction,
        }
    }

    /// Whether this is the writer of `row` (without copying the row's bytes).
    fn is_writer_of(&self, boot: i64, row: &EntryRow<'_>) -> bool {
        self.boot == boot
            && self.pid == row.pid
            && self.tid == row.tid
            && self.ppid == row.ppid
            && self.start_time_ns == row.start_time_ns
            && self.uid == row.uid
            && self.euid == row.euid
            && self.comm == row.comm
            && self.exe.as_deref() == row.exe
            && self.exe_file == row.exe_file
            && self.transaction == row.transaction
    }
}

/// The writers' row ids this store wrote, by a hash of the writer.
#[derive(Debug, Default)]
pub(super) struct WriterIds {
    committed: foldhash::HashMap<u64, (WriterKey, i64)>,
    /// Inserted by the transaction in progress.
    fresh: foldhash::HashMap<u64, (WriterKey, i64)>,
}

impl WriterIds {
    /// Call when a transaction that may insert writers begins: forgets what an earlier one
    /// inserted without committing.
    pub(super) fn begin(&mut self) {
        self.fresh.clear();
    }

    /// Call once the transaction committed: what it inserted is in the database.
    pub(super) fn committed(&mut self) {
        if self.committed.len() + self.fresh.len() > MEMO_CAPACITY {
            self.committed.clear();
        }
        self.committed.extend(self.fresh.drain());
    }

    /// Forgets every row id (their rows may have been deleted).
    pub(super) fn clear(&mut self) {
        self.committed.clear();
        self.fresh.clear();
    }

    /// The id of the `writers` row for the writer of `row` (of boot number `boot`), inserted if
    /// the memo knows none.
    pub(super) fn id_for(
        &mut self,
        transaction: &Transaction<'_>,
        boot: i64,
        row: &EntryRow<'_>,
    ) -> Result<i64, StoreError> {
        let hash = hash_of(boot, row);
        for memo in [&self.committed, &self.fresh] {
            if let Some((key, id)) = memo.get(&hash)
                && key.is_writer_of(boot, row)
            {
                return Ok(*id);
            }
        }
        let id = insert(transaction, boot, row)?;
        // A different writer with the same hash is replaced: it only costs a row.
        self.fresh.insert(hash, (WriterKey::of(boot, row), id));
        Ok(id)
    }
}

fn hash_of(boot: i64, row: &EntryRow<'_>) -> u64 {
    foldhash::fast::FixedState::with_seed(0).hash_one((
        boot,
        row.pid,
        row.tid,
        row.ppid,
        row.start_time_ns,
        row.uid,
        row.euid,
        row.comm,
        row.exe,
        row.exe_file,
        row.transaction,
    ))
}

fn insert(transaction: &Transaction<'_>, boot: i64, row: &EntryRow<'_>) -> Result<i64, StoreError> {
    let mut statement = transaction.prepare_cached(
        "INSERT INTO writers (boot, pid, tid, ppid, start_time, uid, euid, comm, exe, exe_dev, \
         exe_ino, txn_id, txn_depth) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?;
    statement.execute(params![
        boot,
        row.pid,
        row.tid,
        row.ppid,
        to_sql(row.start_time_ns),
        row.uid,
        row.euid,
        row.comm,
        row.exe,
        row.exe_file.map(|file| to_sql(file.dev)),
        row.exe_file.map(|file| to_sql(file.ino)),
        row.transaction.map(|transaction| to_sql(transaction.id)),
        row.transaction.map(|transaction| transaction.depth),
    ])?;
    Ok(transaction.last_insert_rowid())
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;
    use crate::{
        events::{FileOp, PathOrigin},
        store::{
            model::{EntryOp, EntrySource},
            rows::PathRef,
            schema,
        },
    };

    fn row(euid: u32) -> EntryRow<'static> {
        EntryRow {
            time: 1,
            op: EntryOp::File(FileOp::OpenWrite),
            file: None,
            path: PathRef {
                bytes: b"/etc/motd",
                origin: PathOrigin::Kernel,
                truncated: false,
            },
            target: None,
            replaced: None,
            flags: 0,
            pid: 10,
            tid: 10,
            ppid: 1,
            start_time_ns: 5,
            uid: 0,
            euid,
            comm: b"sh",
            exe: Some(b"/usr/bin/sh"),
            exe_file: None,
            transaction: None,
            source: EntrySource::Recorded,
            prior_history_unknown: false,
        }
    }

    fn stored_euid(connection: &Connection, id: i64) -> Option<u32> {
        connection
            .query_row("SELECT euid FROM writers WHERE id = ?1", [id], |row| {
                row.get(0)
            })
            .ok()
    }

    #[test]
    fn a_writer_is_found_again_but_not_one_a_rolled_back_transaction_inserted() {
        let mut connection = Connection::open_in_memory().unwrap();
        let mut ids = WriterIds::default();
        let transaction = connection.transaction().unwrap();
        schema::migrate(&transaction).unwrap();
        transaction
            .execute_batch("INSERT INTO boots (id, boot_id) VALUES (1, 'a'), (2, 'b')")
            .unwrap();
        ids.begin();
        let root = ids.id_for(&transaction, 1, &row(0)).unwrap();
        assert_eq!(ids.id_for(&transaction, 1, &row(0)).unwrap(), root);
        transaction.commit().unwrap();
        ids.committed();

        let transaction = connection.transaction().unwrap();
        ids.begin();
        ids.id_for(&transaction, 1, &row(1000)).unwrap();
        drop(transaction);

        let transaction = connection.transaction().unwrap();
        ids.begin();
        let user = ids.id_for(&transaction, 1, &row(1000)).unwrap();
        assert_eq!(ids.id_for(&transaction, 1, &row(0)).unwrap(), root);
        assert_eq!(ids.id_for(&transaction, 2, &row(0)).ok(), Some(root + 2));
        transaction.commit().unwrap();
        ids.committed();
        assert_eq!(stored_euid(&connection, user), Some(1000));
        assert_eq!(stored_euid(&connection, root), Some(0));
        let rows: i64 = connection
            .query_row("SELECT COUNT(*) FROM writers", [], |row| row.get(0))
            .unwrap();
        assert_eq!(
            rows, 3,
            "root of boot 1, euid 1000 of boot 1, root of boot 2"
        );
    }
}
