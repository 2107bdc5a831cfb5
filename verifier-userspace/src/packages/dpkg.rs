//! Reads a dpkg admindir (`status`, `info/*.list`, `info/*.md5sums`, `diversions`,
//! `statoverride`) into [`FileEntry`]s. Keeps each info file's parse keyed by its stamp
//! (inode, size, mtime, ctime), so [`DpkgDb::read`] after a transaction re-reads only the status
//! file and the info files that changed.

use std::{
    collections::HashMap,
    fs, io,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{
    DbError, DbKind, Digest, FileEntry, FileFlags, FileKind, PackageInfo, PackageState,
    PackagesError,
    dpkg_files::{self, Diversion, StatOverride, StatusRecord},
};

/// Identity of one version of a file: any rewrite changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Stamp {
    fn of(metadata: &fs::Metadata) -> Self {
        Self {
            ino: metadata.ino(),
            size: metadata.size(),
            mtime_ns: i128::from(metadata.mtime()) * 1_000_000_000
                + i128::from(metadata.mtime_nsec()),
            ctime_ns: i128::from(metadata.ctime()) * 1_000_000_000
                + i128::from(metadata.ctime_nsec()),
        }
    }
}

/// A parsed file and the stamp it was parsed at.
struct Cached<T> {
    stamp: Option<Stamp>,
    value: Arc<T>,
}

/// What one package's info files say.
struct InfoFiles {
    paths: Arc<Vec<PathBuf>>,
    md5sums: Arc<HashMap<PathBuf, Digest>>,
}

/// Counts of what the last [`DpkgDb::read`] actually read from disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadCounts {
    pub status_parsed: bool,
    pub info_files_parsed: usize,
}

/// The dpkg database of one admindir, with parse caches for refreshes.
pub struct DpkgDb {
    admindir: PathBuf,
    status: Option<Cached<Vec<StatusRecord>>>,
    lists: HashMap<PathBuf, Cached<Vec<PathBuf>>>,
    md5sums: HashMap<PathBuf, Cached<HashMap<PathBuf, Digest>>>,
    diversions: Option<Cached<Vec<Diversion>>>,
    overrides: Option<Cached<Vec<StatOverride>>>,
    pub last_read: ReadCounts,
    last_fingerprint: Option<Fingerprint>,
}

/// Stamps of status, diversions and statoverride, and the update journal's files. dpkg changes
/// one of them in every run that changes anything else in the database.
type Fingerprint = ([Option<Stamp>; 3], Vec<(std::ffi::OsString, u64)>);

/// Everything the index needs from dpkg.
pub struct DpkgContents {
    pub packages: Vec<Arc<PackageInfo>>,
    pub entries: Vec<FileEntry>,
    pub overrides: Arc<Vec<StatOverride>>,
}

impl DpkgDb {
    pub fn new(admindir: &Path) -> Self {
        Self {
            admindir: admindir.to_owned(),
            status: None,
            lists: HashMap::new(),
            md5sums: HashMap::new(),
            diversions: None,
            overrides: None,
            last_read: ReadCounts::default(),
            last_fingerprint: None,
        }
    }

    /// Whether nothing changed since the last [`DpkgDb::read`] (a few `stat` calls).
    pub fn is_unchanged(&self) -> bool {
        self.last_fingerprint
            .as_ref()
            .is_some_and(|last| *last == self.status_fingerprint())
    }

    /// Forgets the parsed files kept for incremental refreshes (for one-shot readers such as
    /// `verifier audit`): the next read after a change parses everything again.
    pub fn drop_parse_caches(&mut self) {
        self.status = None;
        self.lists = HashMap::new();
        self.md5sums = HashMap::new();
        self.diversions = None;
        self.overrides = None;
    }

    pub fn admindir(&self) -> &Path {
        &self.admindir
    }

    /// Reads the database, re-parsing only files whose stamp changed since the last read.
    /// A missing or unreadable status file is fatal; any other problem is collected. When a
    /// dpkg run changes the status or its journal during the read (files listed in a status
    /// read a moment ago may be gone), the read is repeated, up to three times.
    pub fn read(&mut self) -> Result<(DpkgContents, Vec<DbError>), PackagesError> {
        self.last_read = ReadCounts::default();
        let mut attempt = 1;
        loop {
            let before = self.status_fingerprint();
            let (contents, errors) = self.read_once()?;
            let after = self.status_fingerprint();
            if attempt == 3 || errors.is_empty() || after == before {
                // The state read is at least as new as `before`; a change during the read
                // shows as a difference at the next refresh.
                self.last_fingerprint = Some(before);
                return Ok((contents, errors));
            }
            tracing::debug!(
                attempt,
                "dpkg database changed while it was read; reading again"
            );
            attempt += 1;
        }
    }

    /// Identity of the status file and its update journal.
    fn status_fingerprint(&self) -> Fingerprint {
        let stamp = |name: &str| {
            fs::metadata(self.admindir.join(name))
                .ok()
                .map(|metadata| Stamp::of(&metadata))
        };
        let status = [stamp("status"), stamp("diversions"), stamp("statoverride")];
        let mut journal: Vec<_> = fs::read_dir(self.admindir.join("updates"))
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|entry| {
                (
                    entry.file_name(),
                    entry.metadata().map_or(0, |metadata| metadata.size()),
                )
            })
            .collect();
        journal.sort();
        (status, journal)
    }

    fn read_once(&mut self) -> Result<(DpkgContents, Vec<DbError>), PackagesError> {
        let mut errors = Vec::new();
        let status_path = self.admindir.join("status");
        let (status, parsed) = refresh_cached(
            &mut self.status,
            &status_path,
            true,
            &mut errors,
            dpkg_files::parse_status,
        )
        .map_err(|source| PackagesError::Read {
            path: status_path.clone(),
            source,
        })?;
        self.last_read.status_parsed |= parsed;
        let status = self.apply_update_journal(status, &mut errors);
        let diversions = self.read_optional(
            "diversions",
            &mut errors,
            dpkg_files::parse_diversions,
            |db| &mut db.diversions,
        );
        let overrides = self.read_optional(
            "statoverride",
            &mut errors,
            dpkg_files::parse_statoverride,
            |db| &mut db.overrides,
        );
        let diversions_by_from: HashMap<&Path, &Diversion> = diversions
            .iter()
            .map(|diversion| (diversion.from.as_path(), diversion))
            .collect();

        let mut packages = Vec::with_capacity(status.len());
        let mut entries = Vec::new();
        let mut previous = InfoCache {
            lists: std::mem::take(&mut self.lists),
            md5sums: std::mem::take(&mut self.md5sums),
        };
        for record in status
            .iter()
            .filter(|record| record.state != PackageState::NotInstalled)
        {
            let package = Arc::new(PackageInfo {
                db: DbKind::Dpkg,
                name: record.package.clone(),
                version: record.version.clone(),
                arch: record.arch.clone(),
                state: record.state,
                reinstall_required: record.reinstall_required,
                replaces: record.replaces.clone(),
            });
            let info = self.read_info(record, &mut errors, &mut previous);
            push_package_entries(record, &package, &info, &diversions_by_from, &mut entries);
            packages.push(package);
        }
        Ok((
            DpkgContents {
                packages,
                entries,
                overrides,
            },
            errors,
        ))
    }

    /// dpkg records each change of a running transaction in `updates/NNNN` (one stanza each)
    /// and folds them into `status` only later; as dpkg does, later entries win.
    fn apply_update_journal(
        &mut self,
        status: Arc<Vec<StatusRecord>>,
        errors: &mut Vec<DbError>,
    ) -> Arc<Vec<StatusRecord>> {
        let updates_dir = self.admindir.join("updates");
        let mut journal: Vec<(u64, PathBuf)> = match fs::read_dir(&updates_dir) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .filter_map(|entry| {
                    let number = entry.file_name().to_str()?.parse::<u64>().ok()?;
                    Some((number, entry.path()))
                })
                .collect(),
            Err(_) => return status,
        };
        if journal.is_empty() {
            return status;
        }
        journal.sort();
        let mut records = status.as_ref().clone();
        for (_, path) in journal {
            let Ok(bytes) = fs::read(&path) else {
                continue;
            };
            self.last_read.info_files_parsed += 1;
            let (updates, mut update_errors) = dpkg_files::parse_status(&path, &bytes);
            errors.append(&mut update_errors);
            for update in updates {
                match records
                    .iter_mut()
                    .find(|record| record.package == update.package && record.arch == update.arch)
                {
                    Some(record) => *record = update,
                    None => records.push(update),
                }
            }
        }
        Arc::new(records)
    }

    fn read_optional<T>(
        &mut self,
        name: &str,
        errors: &mut Vec<DbError>,
        parse: fn(&Path, &[u8]) -> (T, Vec<DbError>),
        slot: fn(&mut Self) -> &mut Option<Cached<T>>,
    ) -> Arc<T>
    where
        T: Default,
    {
        let path = self.admindir.join(name);
        match refresh_cached(slot(self), &path, false, errors, parse) {
            Ok((value, _)) => value,
            Err(error) => {
                errors.push(DbError::new(&path, None, error));
                Arc::default()
            }
        }
    }

    /// The package's `.list` and `.md5sums`, from the previous read's cache when unchanged;
    /// moves what it used into the new cache.
    fn read_info(
        &mut self,
        record: &StatusRecord,
        errors: &mut Vec<DbError>,
        previous: &mut InfoCache,
    ) -> InfoFiles {
        let info_dir = self.admindir.join("info");
        let qualified = info_dir.join(format!("{}:{}.list", record.package, record.arch));
        let plain = info_dir.join(format!("{}.list", record.package));
        let prefer_qualified = record.multi_arch_same || !plain.exists();
        let list_path = if prefer_qualified && qualified.exists() {
            qualified
        } else {
            plain
        };
        let md5_path = list_path.with_extension("md5sums");

        let mut list_slot = previous.lists.remove(&list_path);
        let paths = match refresh_cached(
            &mut list_slot,
            &list_path,
            true,
            errors,
            dpkg_files::parse_list,
        ) {
            Ok((paths, parsed)) => {
                self.last_read.info_files_parsed += usize::from(parsed);
                paths
            }
            Err(error) => {
                errors.push(DbError::new(
                    &list_path,
                    None,
                    format!("package {}: file list unreadable: {error}", record.package),
                ));
                Arc::default()
            }
        };
        if let Some(cached) = list_slot {
            self.lists.insert(list_path, cached);
        }

        let mut md5_slot = previous.md5sums.remove(&md5_path);
        let parse_md5sums = |file: &Path, bytes: &[u8]| {
            let (sums, errors) = dpkg_files::parse_md5sums(file, bytes);
            (sums.into_iter().collect::<HashMap<_, _>>(), errors)
        };
        let md5sums = match refresh_cached(&mut md5_slot, &md5_path, false, errors, parse_md5sums) {
            Ok((sums, parsed)) => {
                self.last_read.info_files_parsed += usize::from(parsed);
                sums
            }
            Err(error) => {
                errors.push(DbError::new(&md5_path, None, error));
                Arc::default()
            }
        };
        if let Some(cached) = md5_slot {
            self.md5sums.insert(md5_path, cached);
        }
        InfoFiles { paths, md5sums }
    }
}

/// The info-file caches of the previous read.
struct InfoCache {
    lists: HashMap<PathBuf, Cached<Vec<PathBuf>>>,
    md5sums: HashMap<PathBuf, Cached<HashMap<PathBuf, Digest>>>,
}

/// Parses `path` unless its stamp matches the cached one. A missing optional file is an empty
/// value; a missing required file is an error. Returns the value and whether it was parsed now.
fn refresh_cached<T: Default>(
    slot: &mut Option<Cached<T>>,
    path: &Path,
    required: bool,
    errors: &mut Vec<DbError>,
    parse: impl FnOnce(&Path, &[u8]) -> (T, Vec<DbError>),
) -> io::Result<(Arc<T>, bool)> {
    let stamp = match fs::metadata(path) {
        Ok(metadata) => Some(Stamp::of(&metadata)),
        Err(error) if error.kind() == io::ErrorKind::NotFound && !required => None,
        Err(error) => return Err(error),
    };
    if let Some(cached) = slot.as_ref()
        && cached.stamp == stamp
    {
        return Ok((Arc::clone(&cached.value), false));
    }
    let value = match stamp {
        None => Arc::new(T::default()),
        Some(_) => {
            let bytes = fs::read(path)?;
            let (value, mut file_errors) = parse(path, &bytes);
            errors.append(&mut file_errors);
            Arc::new(value)
        }
    };
    *slot = Some(Cached {
        stamp,
        value: Arc::clone(&value),
    });
    Ok((value, stamp.is_some()))
}

/// Entries for one package: every listed path, with the md5sums digest or, for conffiles, the
/// status file's digest; diverted paths moved to where dpkg put them.
fn push_package_entries(
    record: &StatusRecord,
    package: &Arc<PackageInfo>,
    info: &InfoFiles,
    diversions: &HashMap<&Path, &Diversion>,
    entries: &mut Vec<FileEntry>,
) {
    let conffiles: HashMap<&Path, &dpkg_files::Conffile> = record
        .conffiles
        .iter()
        .map(|conffile| (conffile.path.as_path(), conffile))
        .collect();
    // Conffiles the status file tracks but the file list lacks (dpkg keeps their hash); not
    // those dpkg itself removed (obsolete, remove-on-upgrade), as `dpkg --verify` does.
    let unlisted_conffiles = record
        .conffiles
        .iter()
        .filter(|conffile| !conffile.obsolete && !conffile.remove_on_upgrade)
        .map(|conffile| &conffile.path)
        .filter(|path| !info.paths.contains(path));
    for listed in info.paths.iter().chain(unlisted_conffiles) {
        let conffile = conffiles.get(listed.as_path());
        let digest = match conffile {
            Some(conffile) => conffile.digest.clone(),
            None => info.md5sums.get(listed).cloned(),
        };
        let mut flags = FileFlags::default();
        if let Some(conffile) = conffile {
            flags.insert(FileFlags::CONFIG);
            if conffile.obsolete {
                flags.insert(FileFlags::OBSOLETE);
            }
            if conffile.remove_on_upgrade {
                flags.insert(FileFlags::REMOVE_ON_UPGRADE);
            }
        }
        let diverted_to = diversions
            .get(listed.as_path())
            .filter(|diversion| diversion.by.as_deref() != Some(record.package.as_str()))
            .map(|diversion| diversion.to.clone());
        entries.push(FileEntry {
            path: diverted_to.clone().unwrap_or_else(|| listed.clone()),
            diverted_from: diverted_to.map(|_| listed.clone()),
            package: Arc::clone(package),
            kind: if digest.is_some() {
                FileKind::Regular
            } else {
                FileKind::Unknown
            },
            digest,
            mode: None,
            owner: None,
            group: None,
            size: None,
            link_target: None,
            conffile: conffile.is_some(),
            flags,
        });
    }
}
