//! Reads rpm's sqlite database (`rpmdb.sqlite`, rpm >= 4.16) read-only. Header blobs are parsed
//! in-process by [`super::rpm_header`]; packages are keyed by their `hnum` row id, which rpm
//! never reuses for a different header, so a refresh parses only rows it has not seen.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::Duration,
};

use rusqlite::{Connection, OpenFlags};

use super::{
    DbError, PackagesError, Position,
    rpm_header::{self, RpmPackage},
};

/// File name of the sqlite database inside `%_dbpath`.
pub const SQLITE_FILE: &str = "rpmdb.sqlite";

/// Where rpm keeps its database: the configured path, else what `rpm --eval %_dbpath` says
/// (Debian's rpm 4.18 answers `/root/.rpmdb`). `None` when rpm is not installed.
pub fn discover_dbpath(configured: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = configured {
        return Some(path.to_owned());
    }
    let output = Command::new("rpm")
        .args(["--eval", "%_dbpath"])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let path = PathBuf::from(text.trim());
    path.is_absolute().then_some(path)
}

/// Change stamp of the database and its write-ahead log.
type DbStamp = Option<(i64, i64, u64, i64, i64, u64)>;

fn db_stamp(file: &Path) -> DbStamp {
    let main = fs::metadata(file).ok()?;
    let wal = fs::metadata(file.with_extension("sqlite-wal")).ok();
    Some((
        main.mtime(),
        main.mtime_nsec(),
        main.size(),
        wal.as_ref().map_or(0, |wal| wal.mtime()),
        wal.as_ref().map_or(0, |wal| wal.mtime_nsec()),
        wal.as_ref().map_or(0, |wal| wal.size()),
    ))
}

/// The rpm database with its parsed packages, for refreshes.
pub struct RpmDb {
    dbpath: PathBuf,
    stamp: DbStamp,
    packages: BTreeMap<i64, Arc<RpmPackage>>,
    /// Headers parsed by the last [`RpmDb::read`].
    pub last_parsed: usize,
}

impl RpmDb {
    pub fn new(dbpath: &Path) -> Self {
        Self {
            dbpath: dbpath.to_owned(),
            stamp: None,
            packages: BTreeMap::new(),
            last_parsed: 0,
        }
    }

    /// Whether the database files are unchanged since the last [`RpmDb::read`].
    pub fn is_unchanged(&self) -> bool {
        self.stamp.is_some() && db_stamp(&self.sqlite_file()) == self.stamp
    }

    /// Forgets the parsed headers (for one-shot readers such as `verifier audit`): the next
    /// read parses the whole database again.
    pub fn drop_parse_caches(&mut self) {
        self.packages = BTreeMap::new();
        self.stamp = None;
    }

    pub fn dbpath(&self) -> &Path {
        &self.dbpath
    }

    pub fn sqlite_file(&self) -> PathBuf {
        self.dbpath.join(SQLITE_FILE)
    }

    /// Current packages, reading only rows added since the last read. A database file that does
    /// not exist is an empty database (rpm installed but never used).
    pub fn read(&mut self) -> Result<(Vec<Arc<RpmPackage>>, Vec<DbError>), PackagesError> {
        self.last_parsed = 0;
        let file = self.sqlite_file();
        let stamp = db_stamp(&file);
        if stamp.is_none() {
            self.packages.clear();
            self.stamp = None;
            return Ok((Vec::new(), Vec::new()));
        }
        let mut errors = Vec::new();
        if stamp != self.stamp {
            self.read_changed_rows(&file, &mut errors)
                .map_err(|error| PackagesError::RpmDatabase {
                    path: file.clone(),
                    message: error.to_string(),
                })?;
            self.stamp = stamp;
        }
        Ok((self.packages.values().cloned().collect(), errors))
    }

    fn read_changed_rows(
        &mut self,
        file: &Path,
        errors: &mut Vec<DbError>,
    ) -> rusqlite::Result<()> {
        let connection = Connection::open_with_flags(
            file,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        connection.busy_timeout(Duration::from_secs(10))?;
        // One read transaction: the row list and the blobs come from the same snapshot.
        connection.execute_batch("BEGIN")?;
        let current: BTreeSet<i64> = connection
            .prepare("SELECT hnum FROM Packages")?
            .query_map([], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        self.packages.retain(|hnum, _| current.contains(hnum));
        let mut select_blob = connection.prepare("SELECT blob FROM Packages WHERE hnum = ?1")?;
        let unseen: Vec<i64> = current
            .iter()
            .filter(|hnum| !self.packages.contains_key(hnum))
            .copied()
            .collect();
        for hnum in &unseen {
            let blob: Vec<u8> = match select_blob.query_row([hnum], |row| row.get(0)) {
                Ok(blob) => blob,
                Err(error) => {
                    errors.push(DbError::new(
                        file,
                        Some(Position::RpmHeader {
                            hnum: *hnum,
                            byte: 0,
                        }),
                        error,
                    ));
                    continue;
                }
            };
            self.last_parsed += 1;
            match rpm_header::read_package(&blob) {
                Ok(package) => {
                    self.packages.insert(*hnum, Arc::new(package));
                }
                Err(error) => errors.push(DbError::new(
                    file,
                    Some(Position::RpmHeader {
                        hnum: *hnum,
                        byte: error.byte,
                    }),
                    error.message,
                )),
            }
        }
        drop(select_blob);
        connection.execute_batch("COMMIT")?;
        Ok(())
    }
}
