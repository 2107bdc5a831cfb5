//! The database schema and its migrations, versioned by SQLite's `user_version`.
//!
//! Integers that are `u64` in Rust (inode numbers, device numbers, nanosecond times) are stored as
//! their `i64` bit pattern; times are nanoseconds since the Unix epoch.

use rusqlite::{Connection, Transaction};

use super::StoreError;

/// Each entry migrates from version `index` to `index + 1`.
pub(super) const MIGRATIONS: &[&str] = &[
    // Version 1.
    r#"
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE boots (
    id INTEGER PRIMARY KEY,
    boot_id TEXT NOT NULL UNIQUE
);

-- Every operation on a watched path or a watched inode (and memory-cached operations flushed
-- when their inode entered a watched root).
CREATE TABLE file_events (
    id INTEGER PRIMARY KEY,
    time INTEGER NOT NULL,
    op TEXT NOT NULL,
    dev INTEGER,
    ino INTEGER,
    path BLOB NOT NULL,
    path_origin TEXT NOT NULL,
    path_truncated INTEGER NOT NULL,
    target BLOB,
    target_origin TEXT,
    target_truncated INTEGER,
    replaced_dev INTEGER,
    replaced_ino INTEGER,
    flags INTEGER NOT NULL,
    -- path or target truncated or unresolved: may concern a file it does not name
    unanchored INTEGER NOT NULL,
    boot INTEGER NOT NULL REFERENCES boots(id),
    pid INTEGER NOT NULL,
    tid INTEGER NOT NULL,
    ppid INTEGER NOT NULL,
    start_time INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    euid INTEGER NOT NULL,
    comm BLOB NOT NULL,
    exe BLOB,
    exe_dev INTEGER,
    exe_ino INTEGER,
    txn_id INTEGER,
    txn_depth INTEGER,
    source TEXT NOT NULL,
    prior_unknown INTEGER NOT NULL
);
CREATE INDEX file_events_inode ON file_events(dev, ino, time);
CREATE INDEX file_events_path ON file_events(path, time);
CREATE INDEX file_events_target ON file_events(target, time) WHERE target IS NOT NULL;
CREATE INDEX file_events_unanchored ON file_events(time) WHERE unanchored = 1;

-- Which inode each watched path names, as far as the recorded operations tell.
CREATE TABLE names (
    path BLOB PRIMARY KEY,
    dev INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    since INTEGER NOT NULL,
    removed_at INTEGER
) WITHOUT ROWID;
CREATE INDEX names_inode ON names(dev, ino);

-- Processes that wrote watched files, ran transactions or used io_uring.
CREATE TABLE processes (
    boot INTEGER NOT NULL REFERENCES boots(id),
    pid INTEGER NOT NULL,
    start_time INTEGER NOT NULL,
    parent_pid INTEGER,
    parent_start_time INTEGER,
    exe BLOB,
    exe_dev INTEGER,
    exe_ino INTEGER,
    argv0 BLOB,
    cmdline BLOB,
    uid INTEGER NOT NULL,
    euid INTEGER NOT NULL,
    comm BLOB NOT NULL,
    exec_time INTEGER,
    exit_time INTEGER,
    exit_status INTEGER,
    txn_id INTEGER,
    txn_depth INTEGER,
    PRIMARY KEY (boot, pid, start_time)
) WITHOUT ROWID;

CREATE TABLE transactions (
    boot INTEGER NOT NULL REFERENCES boots(id),
    id INTEGER NOT NULL,
    root_pid INTEGER NOT NULL,
    root_start_time INTEGER NOT NULL,
    exe BLOB NOT NULL,
    exe_dev INTEGER NOT NULL,
    exe_ino INTEGER NOT NULL,
    argv0 BLOB NOT NULL,
    cmdline BLOB NOT NULL,
    uid INTEGER NOT NULL,
    started INTEGER NOT NULL,
    ended INTEGER,
    exit_status INTEGER,
    lock_path BLOB,
    lock_time INTEGER,
    PRIMARY KEY (boot, id)
) WITHOUT ROWID;
CREATE INDEX transactions_running ON transactions(boot) WHERE ended IS NULL;

CREATE TABLE gaps (
    id INTEGER PRIMARY KEY,
    from_time INTEGER NOT NULL,
    to_time INTEGER,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    boot INTEGER,
    pid INTEGER,
    start_time INTEGER
);
CREATE INDEX gaps_from ON gaps(from_time);
CREATE INDEX gaps_open ON gaps(boot, pid, start_time) WHERE to_time IS NULL;

CREATE TABLE baselines (
    path BLOB PRIMARY KEY,
    dev INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime INTEGER NOT NULL,
    ctime INTEGER NOT NULL,
    digest TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    time INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE verdicts (
    id INTEGER PRIMARY KEY,
    time INTEGER NOT NULL,
    path BLOB NOT NULL,
    alert_id TEXT,
    outcome TEXT NOT NULL,
    reason TEXT NOT NULL,
    reasoning TEXT NOT NULL
);
CREATE INDEX verdicts_path ON verdicts(path, time);

CREATE TABLE pending (
    alert_id TEXT PRIMARY KEY,
    received INTEGER NOT NULL,
    deadline INTEGER NOT NULL,
    request TEXT NOT NULL
) WITHOUT ROWID;
"#,
    // Version 2: files a package took over from another, still installed, package.
    r#"
CREATE TABLE ownership_changes (
    id INTEGER PRIMARY KEY,
    time INTEGER NOT NULL,
    path BLOB NOT NULL,
    previous_owner TEXT NOT NULL,
    previous_name TEXT NOT NULL,
    new_owner TEXT NOT NULL,
    replaces_declared INTEGER NOT NULL
);
CREATE INDEX ownership_changes_path ON ownership_changes(path, time);
"#,
    // Version 3: each distinct writer (the process and what it was at the time: ids, name,
    // executable, transaction) stored once in `writers`, referenced by the operations it made,
    // instead of thirteen columns on every operation.
    r#"
CREATE TABLE writers (
    id INTEGER PRIMARY KEY,
    boot INTEGER NOT NULL REFERENCES boots(id),
    pid INTEGER NOT NULL,
    tid INTEGER NOT NULL,
    ppid INTEGER NOT NULL,
    start_time INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    euid INTEGER NOT NULL,
    comm BLOB NOT NULL,
    exe BLOB,
    exe_dev INTEGER,
    exe_ino INTEGER,
    txn_id INTEGER,
    txn_depth INTEGER
);
CREATE INDEX writers_process ON writers(boot, pid, start_time);

INSERT INTO writers (boot, pid, tid, ppid, start_time, uid, euid, comm, exe, exe_dev, exe_ino,
                     txn_id, txn_depth)
SELECT DISTINCT boot, pid, tid, ppid, start_time, uid, euid, comm, exe, exe_dev, exe_ino,
       txn_id, txn_depth
FROM file_events;

CREATE TABLE file_events_v3 (
    id INTEGER PRIMARY KEY,
    time INTEGER NOT NULL,
    op TEXT NOT NULL,
    dev INTEGER,
    ino INTEGER,
    path BLOB NOT NULL,
    path_origin TEXT NOT NULL,
    path_truncated INTEGER NOT NULL,
    target BLOB,
    target_origin TEXT,
    target_truncated INTEGER,
    replaced_dev INTEGER,
    replaced_ino INTEGER,
    flags INTEGER NOT NULL,
    -- path or target truncated or unresolved: may concern a file it does not name
    unanchored INTEGER NOT NULL,
    -- a writers(id), not declared a foreign key: the check would cost every insert, and
    -- pruning writers would scan this table once per writer deleted
    writer INTEGER NOT NULL,
    source TEXT NOT NULL,
    prior_unknown INTEGER NOT NULL
);

INSERT INTO file_events_v3 (id, time, op, dev, ino, path, path_origin, path_truncated, target,
                            target_origin, target_truncated, replaced_dev, replaced_ino, flags,
                            unanchored, writer, source, prior_unknown)
SELECT e.id, e.time, e.op, e.dev, e.ino, e.path, e.path_origin, e.path_truncated, e.target,
       e.target_origin, e.target_truncated, e.replaced_dev, e.replaced_ino, e.flags,
       e.unanchored,
       (SELECT w.id FROM writers w
        WHERE w.boot = e.boot AND w.pid = e.pid AND w.start_time = e.start_time
          AND w.tid = e.tid AND w.ppid = e.ppid AND w.uid = e.uid AND w.euid = e.euid
          AND w.comm = e.comm AND w.exe IS e.exe AND w.exe_dev IS e.exe_dev
          AND w.exe_ino IS e.exe_ino AND w.txn_id IS e.txn_id
          AND w.txn_depth IS e.txn_depth),
       e.source, e.prior_unknown
FROM file_events e;

DROP TABLE file_events;
ALTER TABLE file_events_v3 RENAME TO file_events;
CREATE INDEX file_events_inode ON file_events(dev, ino, time);
CREATE INDEX file_events_path ON file_events(path, time);
CREATE INDEX file_events_target ON file_events(target, time) WHERE target IS NOT NULL;
CREATE INDEX file_events_unanchored ON file_events(time) WHERE unanchored = 1;
"#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

pub fn version(connection: &Connection) -> Result<u32, StoreError> {
    Ok(connection.pragma_query_value(None, "user_version", |row| row.get(0))?)
}

/// Brings the database to [`SCHEMA_VERSION`], each step in the given transaction.
pub fn migrate(transaction: &Transaction<'_>) -> Result<(), StoreError> {
    let found = version(transaction)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        transaction
            .execute_batch(migration)
            .map_err(|source| StoreError::Migration {
                to_version: index as u32 + 1,
                source,
            })?;
    }
    transaction.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    Ok(())
}
