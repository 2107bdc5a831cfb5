//! The provenance store: per inode and path, who wrote what since the file was last trusted;
//! processes, package transactions, evidence gaps, baselines, verdicts and deferred requests.
//!
//! One SQLite database in WAL mode (`<state_dir>/provenance.sqlite`, mode 0600). The daemon owns
//! the only writable [`Store`] and applies recorder events in batches (one SQL transaction per
//! batch); the CLI opens it read-only at the same time ([`Store::open_read_only`]).
//! Only operations under `recorder.watched_roots` (or on inodes already known there) reach the
//! disk; the rest wait in a bounded memory cache in case their inode is renamed into a root.

mod apply;
pub mod bench;
pub mod bytes;
mod cache;
mod explain;
mod history;
pub mod model;
mod pending_names;
mod processes;
mod records;
mod roots;
mod rows;
mod schema;
mod statements;
#[cfg(test)]
mod tests;
mod writers;

use std::{
    collections::{HashMap, HashSet},
    fs,
    io::ErrorKind,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

pub use self::{
    bytes::ByteText,
    explain::{Explanation, format_time, resolve_directory},
    model::*,
    roots::PackageLocks,
    schema::SCHEMA_VERSION,
};
use self::{
    cache::MemoryCache,
    processes::{ProcessKey, ProcessTable},
    roots::WatchedRoots,
    rows::{from_sql, to_sql},
};
use crate::{
    config::RecorderConfig,
    events::{FileId, WallNanos},
};

/// The database file inside `state_dir`.
pub const DATABASE_FILE: &str = "provenance.sqlite";
/// Where the current boot's id is read from.
pub const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";
/// Most processes tracked in memory (exits normally keep the table far smaller).
const PROCESS_TABLE_CAPACITY: usize = 131_072;
/// How long a read-only reader waits for the writer's lock.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create state directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create or secure database file {path}: {source}")]
    CreateFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no provenance store at {path} (has the daemon ever run with this state_dir?)")]
    Missing { path: PathBuf },
    #[error("cannot open provenance store {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot read the boot id from {path}: {source}")]
    BootId {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("store schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew { found: u32, supported: u32 },
    #[error(
        "store schema version {found} is older than this build's ({expected}): the daemon of \
         this build migrates it when it starts"
    )]
    SchemaTooOld { found: u32, expected: u32 },
    #[error("store schema migration to version {to_version} failed: {source}")]
    Migration {
        to_version: u32,
        #[source]
        source: rusqlite::Error,
    },
    #[error("the store was opened read-only")]
    ReadOnly,
    #[error("stored {what} is not valid JSON: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("provenance store database error: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// State only the writing (daemon) store has.
struct WriterState {
    boot_id: String,
    boot_no: i64,
    roots: WatchedRoots,
    locks: PackageLocks,
    processes: ProcessTable,
    cache: MemoryCache,
    /// Inodes with a name under a watched root: their operations go to disk under any name.
    /// (The per-event maps use foldhash, seeded per process: SipHash was a few percent of the
    /// store's instructions.)
    watched_inodes: foldhash::HashSet<FileId>,
    /// Names whose row is known to say exactly this (current, not removed): spares the upsert.
    known_names: foldhash::HashMap<Vec<u8>, FileId>,
    /// Transactions (this boot) whose package-lock open is already recorded.
    locked_transactions: HashSet<u64>,
    /// io_uring gaps still open, by process.
    open_io_uring_gaps: HashMap<ProcessKey, i64>,
    /// The daemon-down gap recorded at open, which the daemon may extend to when recording began.
    startup_gap: Option<i64>,
    /// Verdicts (and the baselines they establish) not yet written: see `Store::queue_verdict`.
    queued_verdicts: Vec<QueuedVerdict>,
    /// Row ids of the writers already stored.
    writer_ids: writers::WriterIds,
}

/// A verdict record and, for an accepted change, the baseline it establishes.
struct QueuedVerdict {
    record: model::VerdictRecord,
    trust: Option<(PathBuf, model::Baseline)>,
}

/// The provenance store. Used from one thread; `Send`.
pub struct Store {
    connection: Connection,
    database: PathBuf,
    writer: Option<WriterState>,
}

/// The spelling under which the store keeps `path`: usr-merge aliases (`/bin/x`) become their
/// `/usr` path, as the recorder's events are stored (see intake), so a package listing `/bin/x`
/// and an alert about either name find the same history and baseline.
pub(crate) fn store_key(path: &Path) -> PathBuf {
    static USR_MERGE: std::sync::OnceLock<crate::packages::UsrMerge> = std::sync::OnceLock::new();
    USR_MERGE
        .get_or_init(crate::packages::UsrMerge::detect)
        .canonical(path)
}

/// Nanoseconds since the Unix epoch now.
pub fn now() -> WallNanos {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
        })
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`).
pub fn current_boot_id() -> Result<String, StoreError> {
    fs::read_to_string(BOOT_ID_PATH)
        .map(|text| text.trim().to_owned())
        .map_err(|source| StoreError::BootId {
            path: PathBuf::from(BOOT_ID_PATH),
            source,
        })
}

impl Store {
    /// Opens (creating if needed) the store for writing, for the current boot.
    pub fn open(state_dir: &Path, recorder: &RecorderConfig) -> Result<Store, StoreError> {
        Self::open_for_boot(state_dir, recorder, &current_boot_id()?)
    }

    /// Opens the store for writing as if running in boot `boot_id` (tests, replays).
    /// Records the gap since the daemon's last sign of life (or since ever, for a new store).
    pub fn open_for_boot(
        state_dir: &Path,
        recorder: &RecorderConfig,
        boot_id: &str,
    ) -> Result<Store, StoreError> {
        let database = prepare_files(state_dir)?;
        let mut connection = Connection::open(&database).map_err(|source| StoreError::Open {
            path: database.clone(),
            source,
        })?;
        connection
            .pragma_update_and_check(None, "journal_mode", "wal", |_| Ok(()))
            .map_err(|source| StoreError::Open {
                path: database.clone(),
                source,
            })?;
        // WAL + NORMAL: a crash (of the daemon or the host) never corrupts the database; a power
        // loss may drop the last batches, which the next start covers with a gap from the last
        // heartbeat. A 16 MiB page cache: 64 MiB cost 60 MiB more RSS and saved no CPU (300,000
        // and 1,000,000 events of `store_bench`); misses are served by the kernel's page cache.
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.pragma_update(None, "cache_size", -16_384)?;
        // Checkpoint (two fsyncs) every ~32 MiB of WAL rather than every 4 MiB.
        connection.pragma_update(None, "wal_autocheckpoint", 8_192)?;
        connection.busy_timeout(BUSY_TIMEOUT)?;
        statements::configure(&connection)?;
        {
            let transaction = connection.transaction()?;
            schema::migrate(&transaction)?;
            transaction.commit()?;
        }
        let mut store = Store {
            connection,
            database,
            writer: None,
        };
        let writer = store.start_session(recorder, boot_id)?;
        store.writer = Some(writer);
        Ok(store)
    }

    /// Opens an existing store read-only (the CLI, while the daemon runs or not).
    pub fn open_read_only(state_dir: &Path) -> Result<Store, StoreError> {
        let database = state_dir.join(DATABASE_FILE);
        if !database.exists() {
            return Err(StoreError::Missing { path: database });
        }
        let connection = Connection::open_with_flags(
            &database,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StoreError::Open {
            path: database.clone(),
            source,
        })?;
        connection.busy_timeout(BUSY_TIMEOUT)?;
        statements::configure(&connection)?;
        let found = schema::version(&connection).map_err(|error| match error {
            StoreError::Sql(source) => StoreError::Open {
                path: database.clone(),
                source,
            },
            other => other,
        })?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found == 0 {
            return Err(StoreError::Missing { path: database });
        }
        if found < SCHEMA_VERSION {
            // Its queries would fail on tables and columns this build expects.
            return Err(StoreError::SchemaTooOld {
                found,
                expected: SCHEMA_VERSION,
            });
        }
        Ok(Store {
            connection,
            database,
            writer: None,
        })
    }

    /// The database file.
    pub fn database_path(&self) -> &Path {
        &self.database
    }

    fn writer(&mut self) -> Result<(&mut Connection, &mut WriterState), StoreError> {
        match &mut self.writer {
            Some(writer) => Ok((&mut self.connection, writer)),
            None => Err(StoreError::ReadOnly),
        }
    }

    /// Sets which paths count as package-database locks (from the packages configuration).
    pub fn set_package_locks(&mut self, locks: PackageLocks) -> Result<(), StoreError> {
        self.writer()?.1.locks = locks;
        Ok(())
    }

    /// Records that the daemon is alive now (call every few seconds): a crash later leaves a
    /// gap from the last heartbeat (or last applied event) only.
    pub fn heartbeat(&mut self) -> Result<(), StoreError> {
        let (connection, _) = self.writer()?;
        set_meta(connection, "last_heartbeat", now())
    }

    /// Records a clean stop: the next open starts the daemon-down gap here.
    pub fn mark_clean_stop(&mut self) -> Result<(), StoreError> {
        self.write_queued_verdicts()?;
        let (connection, _) = self.writer()?;
        let at = now();
        set_meta(connection, "last_heartbeat", at)?;
        set_meta(connection, "clean_stop", at)
    }

    /// Moves the end of the daemon-down gap recorded at open to `at` (when the recorder began
    /// delivering events).
    pub fn end_startup_gap(&mut self, at: WallNanos) -> Result<(), StoreError> {
        let (connection, writer) = self.writer()?;
        if let Some(id) = writer.startup_gap {
            connection.execute(
                "UPDATE gaps SET to_time = MAX(to_time, ?1) WHERE id = ?2",
                params![to_sql(at), id],
            )?;
        }
        Ok(())
    }

    fn start_session(
        &mut self,
        recorder: &RecorderConfig,
        boot_id: &str,
    ) -> Result<WriterState, StoreError> {
        let transaction = self.connection.transaction()?;
        transaction.execute(
            "INSERT OR IGNORE INTO boots (boot_id) VALUES (?1)",
            params![boot_id],
        )?;
        let boot_no: i64 = transaction.query_row(
            "SELECT id FROM boots WHERE boot_id = ?1",
            params![boot_id],
            |row| row.get(0),
        )?;
        let started = now();
        let startup_gap = Some(record_downtime(&transaction, started)?);
        let open_io_uring_gaps = adopt_open_gaps(&transaction, boot_no)?;
        let watched_inodes = load_watched_inodes(&transaction)?;
        transaction.execute("DELETE FROM meta WHERE key = 'clean_stop'", [])?;
        set_meta(&transaction, "last_heartbeat", started)?;
        transaction.commit()?;
        Ok(WriterState {
            boot_id: boot_id.to_owned(),
            boot_no,
            roots: WatchedRoots::new(&recorder.watched_roots),
            locks: PackageLocks::default(),
            processes: ProcessTable::new(PROCESS_TABLE_CAPACITY),
            cache: MemoryCache::new(recorder.memory_cache_entries),
            watched_inodes,
            known_names: foldhash::HashMap::default(),
            locked_transactions: HashSet::new(),
            open_io_uring_gaps,
            startup_gap,
            queued_verdicts: Vec::new(),
            writer_ids: writers::WriterIds::default(),
        })
    }
}

/// Creates the state directory (0700) and the database file (0600) if missing; returns the
/// database path.
fn prepare_files(state_dir: &Path) -> Result<PathBuf, StoreError> {
    if !state_dir.is_dir() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)
            .map_err(|source| StoreError::CreateDir {
                path: state_dir.to_owned(),
                source,
            })?;
    }
    let database = state_dir.join(DATABASE_FILE);
    let create_error = |source| StoreError::CreateFile {
        path: database.clone(),
        source,
    };
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&database)
    {
        Ok(_) => {}
        Err(error) if error.kind() == ErrorKind::AlreadyExists => {}
        Err(error) => return Err(create_error(error)),
    }
    let mode = fs::metadata(&database)
        .map_err(create_error)?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(&database, fs::Permissions::from_mode(0o600)).map_err(create_error)?;
    }
    Ok(database)
}

fn get_meta(connection: &Connection, key: &str) -> Result<Option<u64>, StoreError> {
    Ok(connection
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            params![key],
            |row| row.get::<_, i64>(0),
        )
        .optional()?
        .map(from_sql))
}

fn set_meta(connection: &Connection, key: &str, value: u64) -> Result<(), StoreError> {
    connection
        .prepare_cached("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value")?
        .execute(params![key, to_sql(value)])?;
    Ok(())
}

/// Records the gap between the daemon's last sign of life and `now`, returning its id.
fn record_downtime(connection: &Connection, now: WallNanos) -> Result<i64, StoreError> {
    let heartbeat = get_meta(connection, "last_heartbeat")?;
    let last_event = get_meta(connection, "last_event")?;
    let clean_stop = get_meta(connection, "clean_stop")?;
    let gap = match (heartbeat, clean_stop) {
        (None, _) => NewGap {
            from: 0,
            to: Some(now),
            kind: GapKind::MonitoringNotStarted,
            detail: "nothing was recorded before the provenance store was created".to_owned(),
        },
        (Some(_), Some(stop)) => NewGap {
            from: stop,
            to: Some(now),
            kind: GapKind::DaemonDown,
            detail: "the daemon was stopped cleanly and not running".to_owned(),
        },
        (Some(beat), None) => NewGap {
            from: beat.max(last_event.unwrap_or(0)),
            to: Some(now),
            kind: GapKind::DaemonDown,
            detail: "the daemon stopped without a clean stop (crash, kill or power loss); \
                     the gap starts at its last heartbeat or stored event"
                .to_owned(),
        },
    };
    records::insert_gap(connection, &gap, None)
}

/// Takes over io_uring gaps left open by the previous session: those of this boot stay open
/// until their process exits; those of an earlier boot ended with it.
fn adopt_open_gaps(
    connection: &Connection,
    boot_no: i64,
) -> Result<HashMap<ProcessKey, i64>, StoreError> {
    let last_alive = get_meta(connection, "last_heartbeat")?.unwrap_or(0);
    connection.execute(
        "UPDATE gaps SET to_time = ?1 WHERE to_time IS NULL AND boot IS NOT ?2",
        params![to_sql(last_alive), boot_no],
    )?;
    let mut statement = connection.prepare(
        "SELECT id, pid, start_time FROM gaps WHERE to_time IS NULL AND boot = ?1 \
         AND pid IS NOT NULL AND start_time IS NOT NULL",
    )?;
    let rows = statement.query_map(params![boot_no], |row| {
        Ok((
            (row.get::<_, u32>(1)?, from_sql(row.get(2)?)),
            row.get::<_, i64>(0)?,
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn load_watched_inodes(connection: &Connection) -> Result<foldhash::HashSet<FileId>, StoreError> {
    let mut statement = connection.prepare("SELECT DISTINCT dev, ino FROM names")?;
    let rows = statement.query_map([], |row| {
        Ok(FileId {
            dev: from_sql(row.get(0)?),
            ino: from_sql(row.get(1)?),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
