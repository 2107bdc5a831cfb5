//! [`PackageIndex`]: every file of every installed dpkg and rpm package in memory, keyed by
//! canonical path, so "who owns this path and does it match" is a hash lookup plus one file
//! verification. Usr-merge aliases (`/bin` → `/usr/bin`, ... as the symlinks on this system
//! say) map to one key; dpkg diversions are already applied by [`super::dpkg`].

use std::{
    collections::HashMap,
    fs,
    hash::{BuildHasher, RandomState},
    path::{Component, Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use serde::Serialize;

use super::{
    DbError, DbKind, FileEntry, FileKind, PackageInfo, PackagesError,
    dpkg::DpkgDb,
    dpkg_files::StatOverride,
    rpm::{self, RpmDb},
    verify::{Mismatch, VerifyOutcome, verify_file},
};
use crate::{config::PackagesConfig, events::FileId, heap};

/// Top-level directories that usr-merged systems replace with symlinks into `/usr`.
const USR_MERGE_CANDIDATES: [&str; 7] =
    ["bin", "sbin", "lib", "lib32", "lib64", "libx32", "libo32"];

/// The usr-merge symlinks that exist on this system: `/bin` ↔ `/usr/bin`, ...
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsrMerge {
    /// (alias, canonical) pairs, e.g. (`/bin`, `/usr/bin`).
    aliases: Vec<(PathBuf, PathBuf)>,
}

impl UsrMerge {
    /// Reads the top-level symlinks of `/`.
    pub fn detect() -> Self {
        Self::detect_under(Path::new("/"))
    }

    /// Reads the top-level symlinks of `root` (paths in the result are still absolute from `/`).
    pub fn detect_under(root: &Path) -> Self {
        let aliases = USR_MERGE_CANDIDATES
            .iter()
            .filter_map(|name| {
                let target = fs::read_link(root.join(name)).ok()?;
                let usr_dir = Path::new("usr").join(name);
                let points_into_usr = target == usr_dir || target == Path::new("/").join(&usr_dir);
                points_into_usr.then(|| (Path::new("/").join(name), Path::new("/").join(usr_dir)))
            })
            .collect();
        Self { aliases }
    }

    pub fn aliases(&self) -> &[(PathBuf, PathBuf)] {
        &self.aliases
    }

    /// Whether [`Self::canonical`] returns the absolute `path` unchanged, told from its bytes
    /// alone: no doubled or trailing `/`, no `.` component, no alias as the first component. The
    /// recorder's intake asks this for every path; most are canonical already.
    pub fn is_canonical(&self, path: &[u8]) -> bool {
        use std::os::unix::ffi::OsStrExt as _;
        let lexically_normal = path.starts_with(b"/")
            && (path.len() == 1 || !path.ends_with(b"/"))
            && !path.ends_with(b"/.")
            && !path.windows(2).any(|pair| pair == b"//")
            && !path.windows(3).any(|triple| triple == b"/./");
        lexically_normal
            && !self.aliases.iter().any(|(alias, _)| {
                let alias = alias.as_os_str().as_bytes();
                path.starts_with(alias) && matches!(path.get(alias.len()), None | Some(b'/'))
            })
    }

    /// The key a path is indexed under: lexically normalised (`//`, `/./`, trailing `/`), and
    /// with a usr-merge alias prefix replaced by the `/usr` directory it points to.
    pub fn canonical(&self, path: &Path) -> PathBuf {
        let normalised: PathBuf = path
            .components()
            .filter(|component| !matches!(component, Component::CurDir))
            .collect();
        for (alias, canonical) in &self.aliases {
            if let Ok(rest) = normalised.strip_prefix(alias) {
                return if rest.as_os_str().is_empty() {
                    canonical.clone()
                } else {
                    canonical.join(rest)
                };
            }
        }
        normalised
    }
}

/// Size and cost of the index.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IndexStats {
    /// File entries (a path owned by two packages counts twice).
    pub files: usize,
    /// Distinct canonical paths.
    pub paths: usize,
    pub packages: usize,
    pub dpkg_packages: usize,
    pub rpm_packages: usize,
    /// Time of the initial load (in JSON: `build_time_secs`, seconds as a number).
    #[serde(rename = "build_time_secs", serialize_with = "seconds")]
    pub build_time: Duration,
    /// Time of the last refresh, if any (in JSON: `last_refresh_time_secs`).
    #[serde(rename = "last_refresh_time_secs", serialize_with = "optional_seconds")]
    pub last_refresh_time: Option<Duration>,
    /// Database files (dpkg info files, rpm headers) the last load or refresh actually parsed.
    pub last_parsed_files: usize,
    /// Estimated heap and inline bytes held by the index.
    pub approx_memory_bytes: usize,
}

/// A duration as seconds with millisecond precision (serde's default is `{secs, nanos}`).
fn seconds<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64((duration.as_secs_f64() * 1000.0).round() / 1000.0)
}

fn optional_seconds<S: serde::Serializer>(
    duration: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match duration {
        Some(duration) => seconds(duration, serializer),
        None => serializer.serialize_none(),
    }
}

/// One owner's view of a verified path.
#[derive(Debug, Clone, Serialize)]
pub struct OwnerCheck {
    pub package: Arc<PackageInfo>,
    pub conffile: bool,
    pub flags: super::FileFlags,
    pub diverted_from: Option<PathBuf>,
    pub outcome: VerifyOutcome,
}

/// Everything the databases say about one path, checked against the file system.
#[derive(Debug, Clone, Serialize)]
pub struct PathVerification {
    pub path: PathBuf,
    /// Some package database lists this path.
    pub owned: bool,
    pub owners: Vec<OwnerCheck>,
}

impl PathVerification {
    /// Owned, and every owner's entry matches the file.
    pub fn all_clean(&self) -> bool {
        self.owned && self.owners.iter().all(|owner| owner.outcome.is_clean())
    }

    /// Every owner's entry matches and at least one compared the content (digest or link
    /// target): the file is exactly what a package shipped.
    pub fn content_verified(&self) -> bool {
        self.all_clean()
            && self
                .owners
                .iter()
                .any(|owner| owner.outcome.content_verified)
    }

    /// Some owner's entry is a conffile (dpkg) or `%config` file (rpm).
    pub fn conffile(&self) -> bool {
        self.owners.iter().any(|owner| owner.conffile)
    }

    /// Every owning package is fully installed (not half-installed, unpacked, ...).
    pub fn packages_settled(&self) -> bool {
        self.owned
            && self
                .owners
                .iter()
                .all(|owner| owner.package.state.is_settled())
    }

    /// Every mismatch of every owner, with the package it concerns.
    pub fn mismatches(&self) -> impl Iterator<Item = (&PackageInfo, &Mismatch)> {
        self.owners.iter().flat_map(|owner| {
            owner
                .outcome
                .mismatches
                .iter()
                .map(|mismatch| (owner.package.as_ref(), mismatch))
        })
    }
}

/// Why a package-manager executable is not trusted.
#[derive(Debug, thiserror::Error)]
pub enum ExecutableError {
    #[error("{path}: no installed package owns it")]
    NotOwned { path: PathBuf },
    #[error("{path}: owned by {package}, which is not fully installed")]
    NotSettled { path: PathBuf, package: String },
    #[error("{path}: the package database records no digest for it")]
    NoDigest { path: PathBuf },
    #[error("{path}: does not match {package}: {reasons}")]
    Mismatch {
        path: PathBuf,
        package: String,
        reasons: String,
    },
}

/// The entries at one canonical path; most paths have exactly one owner.
#[derive(Debug, Clone)]
enum Owners {
    One(u32),
    Many(Vec<u32>),
}

impl Owners {
    fn push(&mut self, number: u32) {
        match self {
            Self::One(first) => *self = Self::Many(vec![*first, number]),
            Self::Many(numbers) => numbers.push(number),
        }
    }

    fn as_slice(&self) -> &[u32] {
        match self {
            Self::One(number) => std::slice::from_ref(number),
            Self::Many(numbers) => numbers,
        }
    }
}

/// Path → entries for every installed package file. The map is keyed by a 64-bit hash of the
/// canonical path (the path text lives once, in the entry); lookups compare the full path, so
/// a hash collision can never return a wrong owner.
pub struct PackageIndex {
    usr_merge: UsrMerge,
    dpkg: Option<DpkgDb>,
    rpm: Option<RpmDb>,
    entries: Vec<FileEntry>,
    by_path: HashMap<u64, Owners>,
    path_hasher: RandomState,
    packages: Vec<Arc<PackageInfo>>,
    stats: IndexStats,
    /// Files that changed owner in the last refresh (see [`OwnershipChange`]).
    ownership_changes: Vec<OwnershipChange>,
}

/// A file that a package took over from another package which is still installed but no longer
/// lists it: what `dpkg -i` does with `Replaces:`, or without it under `--force-overwrite`. Only
/// the refresh at the end of a transaction knows both owners.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnershipChange {
    /// The file, as the new owner lists it.
    pub path: PathBuf,
    /// "name version arch" of the package that owned it before.
    pub previous_owner: String,
    pub previous_name: String,
    /// "name version arch" of the package that owns it now.
    pub new_owner: String,
    /// The new owner declares `Replaces:` on the previous one.
    pub replaces_declared: bool,
}

impl PackageIndex {
    /// Loads every configured database. Problems in single database files are returned next to
    /// the index; only an unreadable dpkg status file or rpm database stops the load.
    pub fn load(config: &PackagesConfig) -> Result<(Self, Vec<DbError>), PackagesError> {
        Self::load_with(config, UsrMerge::detect())
    }

    /// As [`PackageIndex::load`], with explicit usr-merge aliases.
    pub fn load_with(
        config: &PackagesConfig,
        usr_merge: UsrMerge,
    ) -> Result<(Self, Vec<DbError>), PackagesError> {
        let started = Instant::now();
        let dpkg = config.dpkg_admindir.as_deref().map(DpkgDb::new);
        let rpm = config
            .rpm_enabled
            .then(|| rpm::discover_dbpath(config.rpm_dbpath.as_deref()))
            .flatten()
            .map(|dbpath| RpmDb::new(&dbpath));
        let mut index = Self {
            usr_merge,
            dpkg,
            rpm,
            entries: Vec::new(),
            by_path: HashMap::new(),
            path_hasher: RandomState::new(),
            packages: Vec::new(),
            stats: IndexStats::default(),
            ownership_changes: Vec::new(),
        };
        let errors = index.rebuild()?;
        index.stats.build_time = started.elapsed();
        tracing::info!(
            files = index.stats.files,
            packages = index.stats.packages,
            build_ms = index.stats.build_time.as_millis() as u64,
            memory_kib = index.stats.approx_memory_bytes / 1024,
            db_errors = errors.len(),
            "package index loaded"
        );
        Ok((index, errors))
    }

    /// Re-reads what changed since the last load or refresh (dpkg: status and changed info
    /// files; rpm: new package rows) and rebuilds the path map. Call when a transaction ends.
    pub fn refresh(&mut self) -> Result<Vec<DbError>, PackagesError> {
        let started = Instant::now();
        let dpkg_unchanged = self.dpkg.as_ref().is_none_or(DpkgDb::is_unchanged);
        let rpm_unchanged = self.rpm.as_ref().is_none_or(RpmDb::is_unchanged);
        if dpkg_unchanged && rpm_unchanged {
            self.stats.last_parsed_files = 0;
            self.stats.last_refresh_time = Some(started.elapsed());
            return Ok(Vec::new());
        }
        let errors = self.rebuild()?;
        self.stats.last_refresh_time = Some(started.elapsed());
        Ok(errors)
    }

    fn rebuild(&mut self) -> Result<Vec<DbError>, PackagesError> {
        let mut errors = Vec::new();
        let mut entries = Vec::new();
        let mut packages = Vec::new();
        let mut overrides: Arc<Vec<StatOverride>> = Arc::default();
        let mut parsed = 0;
        if let Some(dpkg) = self.dpkg.as_mut() {
            let (contents, mut dpkg_errors) = dpkg.read()?;
            errors.append(&mut dpkg_errors);
            parsed += usize::from(dpkg.last_read.status_parsed) + dpkg.last_read.info_files_parsed;
            entries = contents.entries;
            packages = contents.packages;
            overrides = contents.overrides;
        }
        if let Some(rpm) = self.rpm.as_mut() {
            let (rpm_packages, mut rpm_errors) = rpm.read()?;
            errors.append(&mut rpm_errors);
            parsed += rpm.last_parsed;
            for package in rpm_packages {
                entries.extend(package.files.iter().cloned());
                packages.push(Arc::clone(&package.info));
            }
        }
        let mut by_path: HashMap<u64, Owners> = HashMap::with_capacity(entries.len());
        for (number, entry) in entries.iter().enumerate() {
            let Ok(number) = u32::try_from(number) else {
                break;
            };
            let key = self.path_key(&self.usr_merge.canonical(&entry.path));
            by_path
                .entry(key)
                .and_modify(|owners| owners.push(number))
                .or_insert(Owners::One(number));
        }
        for entry_override in overrides.iter() {
            let canonical = self.usr_merge.canonical(&entry_override.path);
            let key = self.path_key(&canonical);
            for &number in by_path.get(&key).map_or(&[][..], Owners::as_slice) {
                let entry = &mut entries[number as usize];
                if entry.package.db == DbKind::Dpkg
                    && self.usr_merge.canonical(&entry.path) == canonical
                {
                    entry.owner = Some(entry_override.owner.clone());
                    entry.group = Some(entry_override.group.clone());
                    entry.mode = Some(entry_override.mode);
                }
            }
        }
        if !self.entries.is_empty() {
            let changes = self.ownership_changes_to(&entries, &by_path, &packages);
            self.ownership_changes.extend(changes);
        }
        self.entries = entries;
        self.by_path = by_path;
        self.packages = packages;
        self.stats.files = self.entries.len();
        self.stats.paths = self.by_path.len();
        self.stats.packages = self.packages.len();
        self.stats.dpkg_packages = self
            .packages
            .iter()
            .filter(|package| package.db == DbKind::Dpkg)
            .count();
        self.stats.rpm_packages = self.stats.packages - self.stats.dpkg_packages;
        self.stats.last_parsed_files = parsed;
        self.stats.approx_memory_bytes = self.approx_memory();
        // The previous index and the parse's temporaries were just freed, below live data.
        heap::release_free_memory();
        Ok(errors)
    }

    /// Regular dpkg files whose owner in the new index (`entries`, `by_path`) differs from this
    /// index while the previous owner is still installed: a takeover, with or without `Replaces:`.
    /// Symlinks and directories carry no digest in dpkg's database and are not compared.
    fn ownership_changes_to(
        &self,
        entries: &[FileEntry],
        by_path: &HashMap<u64, Owners>,
        packages: &[Arc<PackageInfo>],
    ) -> Vec<OwnershipChange> {
        let installed = |name: &str| {
            packages
                .iter()
                .any(|package| package.db == DbKind::Dpkg && package.name == name)
        };
        let mut changes = Vec::new();
        for entry in entries
            .iter()
            .filter(|entry| entry.package.db == DbKind::Dpkg && entry.digest.is_some())
        {
            let canonical = self.usr_merge.canonical(&entry.path);
            let key = self.path_key(&canonical);
            let Some(previous) = self.by_path.get(&key) else {
                continue;
            };
            let owners_now: Vec<&str> = by_path
                .get(&key)
                .map_or(&[][..], Owners::as_slice)
                .iter()
                .filter_map(|number| entries.get(*number as usize))
                .filter(|other| self.usr_merge.canonical(&other.path) == canonical)
                .map(|other| other.package.name.as_str())
                .collect();
            for old in previous
                .as_slice()
                .iter()
                .filter_map(|number| self.entries.get(*number as usize))
                .filter(|old| {
                    old.package.db == DbKind::Dpkg
                        && old.package.name != entry.package.name
                        && !owners_now.contains(&old.package.name.as_str())
                        && self.usr_merge.canonical(&old.path) == canonical
                        && installed(&old.package.name)
                })
            {
                changes.push(OwnershipChange {
                    path: entry.path.clone(),
                    previous_owner: old.package.to_string(),
                    previous_name: old.package.name.clone(),
                    new_owner: entry.package.to_string(),
                    replaces_declared: entry.package.replaces.contains(&old.package.name),
                });
            }
        }
        changes
    }

    /// The ownership changes found by refreshes since the last call.
    pub fn take_ownership_changes(&mut self) -> Vec<OwnershipChange> {
        std::mem::take(&mut self.ownership_changes)
    }

    fn approx_memory(&self) -> usize {
        let entry_bytes: usize = self
            .entries
            .iter()
            .map(|entry| {
                entry.path.capacity()
                    + entry.diverted_from.as_ref().map_or(0, PathBuf::capacity)
                    + entry.digest.as_ref().map_or(0, |digest| digest.bytes.len())
                    + entry.owner.as_ref().map_or(0, String::capacity)
                    + entry.group.as_ref().map_or(0, String::capacity)
                    + entry.link_target.as_ref().map_or(0, PathBuf::capacity)
            })
            .sum();
        let map_bytes: usize = self
            .by_path
            .values()
            .map(|owners| match owners {
                Owners::One(_) => 0,
                Owners::Many(numbers) => numbers.capacity() * 4,
            })
            .sum::<usize>()
            + self.by_path.capacity() * (std::mem::size_of::<(u64, Owners)>() + 1);
        let package_bytes: usize = self
            .packages
            .iter()
            .map(|package| {
                std::mem::size_of::<PackageInfo>()
                    + package.name.capacity()
                    + package.version.capacity()
                    + package.arch.capacity()
            })
            .sum();
        self.entries.capacity() * std::mem::size_of::<FileEntry>()
            + entry_bytes
            + map_bytes
            + package_bytes
    }

    /// Frees what only incremental refreshes need (the databases' parse caches) and returns
    /// freed heap memory to the system. For one-shot users (`verifier audit`): a later
    /// [`PackageIndex::refresh`] still works but parses everything again.
    pub fn release_parse_caches(&mut self) {
        if let Some(dpkg) = self.dpkg.as_mut() {
            dpkg.drop_parse_caches();
        }
        if let Some(rpm) = self.rpm.as_mut() {
            rpm.drop_parse_caches();
        }
        heap::release_free_memory();
    }

    pub fn stats(&self) -> &IndexStats {
        &self.stats
    }

    pub fn usr_merge(&self) -> &UsrMerge {
        &self.usr_merge
    }

    /// Every entry, in database order.
    pub fn entries(&self) -> &[FileEntry] {
        &self.entries
    }

    pub fn packages(&self) -> &[Arc<PackageInfo>] {
        &self.packages
    }

    /// The entries of every package that owns `path` (or its usr-merge alias; for a diverted
    /// file, the package whose file now lives there).
    pub fn owners(&self, path: &Path) -> Vec<&FileEntry> {
        let canonical = self.usr_merge.canonical(path);
        let Some(owners) = self.by_path.get(&self.path_key(&canonical)) else {
            return Vec::new();
        };
        owners
            .as_slice()
            .iter()
            .filter_map(|number| self.entries.get(*number as usize))
            .filter(|entry| {
                entry.path == canonical || self.usr_merge.canonical(&entry.path) == canonical
            })
            .collect()
    }

    fn path_key(&self, canonical: &Path) -> u64 {
        self.path_hasher.hash_one(canonical)
    }

    /// Verifies the file at `path` against every entry that owns it.
    pub fn verify_path(&self, path: &Path) -> PathVerification {
        let owners: Vec<OwnerCheck> = self
            .owners(path)
            .into_iter()
            .map(|entry| OwnerCheck {
                package: Arc::clone(&entry.package),
                conffile: entry.conffile,
                flags: entry.flags,
                diverted_from: entry.diverted_from.clone(),
                outcome: verify_file(entry, path),
            })
            .collect();
        PathVerification {
            path: path.to_owned(),
            owned: !owners.is_empty(),
            owners,
        }
    }

    /// Checks that a package-manager executable is exactly what its settled package shipped
    /// (content digest included) and returns the identity of the file that was hashed.
    pub fn verify_executable(&self, path: &Path) -> Result<FileId, ExecutableError> {
        let owners = self.owners(path);
        if owners.is_empty() {
            return Err(ExecutableError::NotOwned {
                path: path.to_owned(),
            });
        }
        let mut identity = None;
        for entry in owners {
            if !entry.package.state.is_settled() {
                return Err(ExecutableError::NotSettled {
                    path: path.to_owned(),
                    package: entry.package.to_string(),
                });
            }
            if entry.digest.is_none() || entry.kind == FileKind::Unknown {
                return Err(ExecutableError::NoDigest {
                    path: path.to_owned(),
                });
            }
            let outcome = verify_file(entry, path);
            let observed = match (
                &outcome.observed,
                outcome.is_clean() && outcome.content_verified,
            ) {
                (Some(observed), true) => observed,
                _ => {
                    let reasons = outcome
                        .mismatches
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ");
                    return Err(ExecutableError::Mismatch {
                        path: path.to_owned(),
                        package: entry.package.to_string(),
                        reasons: if reasons.is_empty() {
                            "content not verified".to_owned()
                        } else {
                            reasons
                        },
                    });
                }
            };
            let id = FileId {
                dev: observed.dev,
                ino: observed.ino,
            };
            if identity.is_some_and(|seen| seen != id) {
                return Err(ExecutableError::Mismatch {
                    path: path.to_owned(),
                    package: entry.package.to_string(),
                    reasons: "the file was replaced while it was being verified".to_owned(),
                });
            }
            identity = Some(id);
        }
        identity.ok_or_else(|| ExecutableError::NotOwned {
            path: path.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dpkg admin directory with the packages given as (name, replaces, files).
    fn write_admindir(dir: &Path, packages: &[(&str, &str, &[&str])]) {
        fs::create_dir_all(dir.join("info")).unwrap();
        let mut status = String::new();
        for (name, replaces, files) in packages {
            status.push_str(&format!(
                "Package: {name}\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n"
            ));
            if !replaces.is_empty() {
                status.push_str(&format!("Replaces: {replaces}\n"));
            }
            status.push('\n');
            let list: String = files.iter().map(|file| format!("{file}\n")).collect();
            fs::write(dir.join(format!("info/{name}.list")), list).unwrap();
            let sums: String = files
                .iter()
                .map(|file| format!("{:032x}  {}\n", 7, &file[1..]))
                .collect();
            fs::write(dir.join(format!("info/{name}.md5sums")), sums).unwrap();
        }
        fs::write(dir.join("status"), status).unwrap();
    }

    fn load(dir: &Path) -> PackageIndex {
        let config = PackagesConfig {
            dpkg_admindir: Some(dir.to_owned()),
            rpm_dbpath: None,
            rpm_enabled: false,
        };
        PackageIndex::load(&config).unwrap().0
    }

    #[test]
    fn refresh_reports_a_file_taken_over_from_an_installed_package() {
        let dir = tempfile::tempdir().unwrap();
        write_admindir(
            dir.path(),
            &[("old", "", &["/usr/bin/shared", "/usr/bin/old"])],
        );
        let mut index = load(dir.path());
        assert!(index.take_ownership_changes().is_empty());
        // What `dpkg -i --force-overwrite new.deb` leaves: the file moved to new's list.
        write_admindir(
            dir.path(),
            &[
                ("old", "", &["/usr/bin/old"]),
                ("new", "", &["/usr/bin/shared"]),
                ("handover", "old (<< 2)", &[]),
            ],
        );
        index.refresh().unwrap();
        let changes = index.take_ownership_changes();
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].path, PathBuf::from("/usr/bin/shared"));
        assert_eq!(changes[0].previous_name, "old");
        assert!(changes[0].new_owner.starts_with("new "));
        assert!(!changes[0].replaces_declared);
        assert!(index.take_ownership_changes().is_empty());
    }

    #[test]
    fn refresh_notes_replaces_and_ignores_removed_packages() {
        let dir = tempfile::tempdir().unwrap();
        write_admindir(
            dir.path(),
            &[
                ("old", "", &["/usr/bin/a", "/usr/bin/keep"]),
                ("gone", "", &["/usr/bin/b"]),
            ],
        );
        let mut index = load(dir.path());
        write_admindir(
            dir.path(),
            &[
                ("old", "", &["/usr/bin/keep"]),
                ("new", "old (<< 2.0)", &["/usr/bin/a", "/usr/bin/b"]),
            ],
        );
        index.refresh().unwrap();
        let changes = index.take_ownership_changes();
        // /usr/bin/b's previous owner was removed: a plain removal and install, not a takeover.
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].path, PathBuf::from("/usr/bin/a"));
        assert!(changes[0].replaces_declared);
    }

    #[test]
    fn usr_merge_maps_aliases_and_normalises() {
        let merge = UsrMerge {
            aliases: vec![(PathBuf::from("/bin"), PathBuf::from("/usr/bin"))],
        };
        assert_eq!(
            merge.canonical(Path::new("/bin/sh")),
            PathBuf::from("/usr/bin/sh")
        );
        assert_eq!(
            merge.canonical(Path::new("//bin/./sh")),
            PathBuf::from("/usr/bin/sh")
        );
        assert_eq!(
            merge.canonical(Path::new("/bin")),
            PathBuf::from("/usr/bin")
        );
        assert_eq!(
            merge.canonical(Path::new("/binx/sh")),
            PathBuf::from("/binx/sh")
        );
        assert_eq!(
            merge.canonical(Path::new("/usr/bin/sh/")),
            PathBuf::from("/usr/bin/sh")
        );
    }

    #[test]
    fn is_canonical_agrees_with_canonical() {
        use std::os::unix::ffi::OsStrExt as _;
        let merge = UsrMerge {
            aliases: vec![(PathBuf::from("/bin"), PathBuf::from("/usr/bin"))],
        };
        let samples: [&[u8]; 18] = [
            b"/",
            b"/bin",
            b"/bin/",
            b"/bin/sh",
            b"/binx/sh",
            b"/usr/bin/sh",
            b"/usr/bin/sh/",
            b"//usr/bin",
            b"/usr//bin",
            b"/usr/./bin",
            b"/usr/bin/.",
            b"/usr/bin/..",
            b"/usr/../bin/sh",
            b"/.hidden",
            b"/a/.b",
            b"/a/b.",
            b"/a b/\n\xff",
            b"/usr/bin/.x",
        ];
        for sample in samples {
            let path = Path::new(std::ffi::OsStr::from_bytes(sample));
            let unchanged = merge.canonical(path).as_os_str().as_bytes() == sample;
            assert_eq!(merge.is_canonical(sample), unchanged, "{path:?}");
        }
    }
}
