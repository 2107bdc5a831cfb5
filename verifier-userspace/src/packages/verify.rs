//! Verifying one installed file against its [`FileEntry`]: the name is opened once with
//! `O_PATH | O_NOFOLLOW`, and everything (type, mode, owner, size, link target, content digest)
//! is read from that descriptor, so a rename between the checks cannot swap the file. Regular
//! files are hashed through a read-only reopen of the same descriptor (`/proc/self/fd/N`),
//! checked to be the same inode; devices and fifos are never opened for reading.

use std::{
    collections::HashMap,
    ffi::{CString, OsString},
    fmt,
    fs::File,
    io::{self, Read},
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::ffi::{OsStrExt, OsStringExt},
    },
    path::{Path, PathBuf},
    sync::{Mutex, OnceLock},
};

use serde::Serialize;

use super::{Digest, DigestAlgo, FileEntry, FileFlags, FileKind, to_hex};

/// What the file system holds at the verified path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Observed {
    pub dev: u64,
    pub ino: u64,
    pub kind: FileKind,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
}

/// One way the file differs from the database, with what was expected and found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum Mismatch {
    Missing,
    Unreadable {
        error: String,
    },
    Kind {
        expected: FileKind,
        found: FileKind,
    },
    Digest {
        algo: DigestAlgo,
        expected: String,
        found: String,
    },
    Size {
        expected: u64,
        found: u64,
    },
    Mode {
        expected: u32,
        found: u32,
    },
    Owner {
        expected: String,
        found: String,
    },
    Group {
        expected: String,
        found: String,
    },
    LinkTarget {
        expected: PathBuf,
        found: PathBuf,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("missing"),
            Self::Unreadable { error } => write!(f, "unreadable: {error}"),
            Self::Kind { expected, found } => write!(f, "is a {found}, expected a {expected}"),
            Self::Digest {
                algo,
                expected,
                found,
            } => write!(f, "{algo} digest {found} differs from expected {expected}"),
            Self::Size { expected, found } => {
                write!(f, "size {found} differs from expected {expected}")
            }
            Self::Mode { expected, found } => {
                write!(f, "mode {found:04o} differs from expected {expected:04o}")
            }
            Self::Owner { expected, found } => {
                write!(f, "owner {found} differs from expected {expected}")
            }
            Self::Group { expected, found } => {
                write!(f, "group {found} differs from expected {expected}")
            }
            Self::LinkTarget { expected, found } => write!(
                f,
                "symlink points to {} instead of {}",
                found.display(),
                expected.display()
            ),
        }
    }
}

impl Mismatch {
    /// A short stable name for the reason (`digest`, `mode`, ...).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Unreadable { .. } => "unreadable",
            Self::Kind { .. } => "kind",
            Self::Digest { .. } => "digest",
            Self::Size { .. } => "size",
            Self::Mode { .. } => "mode",
            Self::Owner { .. } => "owner",
            Self::Group { .. } => "group",
            Self::LinkTarget { .. } => "link-target",
        }
    }
}

/// The result of verifying one file against one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyOutcome {
    pub path: PathBuf,
    pub mismatches: Vec<Mismatch>,
    /// The content was compared and matched: a digest for a regular file, the target for a
    /// symlink. False when the database records neither (dpkg directories and symlinks).
    pub content_verified: bool,
    /// Why nothing was checked (rpm `%ghost` absent, file state not-installed/replaced).
    pub skipped: Option<&'static str>,
    pub observed: Option<Observed>,
}

impl VerifyOutcome {
    pub fn is_clean(&self) -> bool {
        self.mismatches.is_empty()
    }

    fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            mismatches: Vec::new(),
            content_verified: false,
            skipped: None,
            observed: None,
        }
    }
}

/// Verifies the file at `path` (where `entry` says it lives, or an alias of it) against `entry`.
pub fn verify_file(entry: &FileEntry, path: &Path) -> VerifyOutcome {
    let mut outcome = VerifyOutcome::new(path);
    if entry.flags.contains(FileFlags::NOT_INSTALLED) {
        outcome.skipped = Some("the database marks this file as not installed");
        return outcome;
    }
    if entry.flags.contains(FileFlags::REPLACED) {
        outcome.skipped = Some("the database marks this file as replaced by another package");
        return outcome;
    }
    let handle = match open_path(path) {
        Ok(handle) => handle,
        Err(error) if matches!(error.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
            if entry.flags.contains(FileFlags::GHOST) || entry.flags.contains(FileFlags::MISSINGOK)
            {
                outcome.skipped = Some("absent, which the database allows (%ghost/%missingok)");
            } else {
                outcome.mismatches.push(Mismatch::Missing);
            }
            return outcome;
        }
        Err(error) => {
            outcome.mismatches.push(unreadable(&error));
            return outcome;
        }
    };
    let observed = match fstat(&handle) {
        Ok(observed) => observed,
        Err(error) => {
            outcome.mismatches.push(unreadable(&error));
            return outcome;
        }
    };
    outcome.observed = Some(observed);
    if entry.kind != FileKind::Unknown && observed.kind != entry.kind {
        outcome.mismatches.push(Mismatch::Kind {
            expected: entry.kind,
            found: observed.kind,
        });
        return outcome;
    }
    check_metadata(entry, &observed, &mut outcome.mismatches);
    match observed.kind {
        FileKind::Symlink => check_link_target(entry, &handle, &mut outcome),
        FileKind::Regular if !entry.flags.contains(FileFlags::GHOST) => {
            if let Some(expected) = &entry.digest {
                check_digest(expected, &handle, &observed, &mut outcome);
            }
        }
        _ => {}
    }
    outcome
}

fn unreadable(error: &io::Error) -> Mismatch {
    Mismatch::Unreadable {
        error: error.to_string(),
    }
}

fn check_metadata(entry: &FileEntry, observed: &Observed, mismatches: &mut Vec<Mismatch>) {
    if let Some(expected) = entry.mode
        && observed.kind != FileKind::Symlink
        && expected & 0o7777 != observed.mode
    {
        mismatches.push(Mismatch::Mode {
            expected: expected & 0o7777,
            found: observed.mode,
        });
    }
    if let Some(expected) = &entry.owner
        && lookup_id(IdKind::User, expected) != Some(observed.uid)
    {
        mismatches.push(Mismatch::Owner {
            expected: expected.clone(),
            found: id_name(IdKind::User, observed.uid),
        });
    }
    if let Some(expected) = &entry.group
        && lookup_id(IdKind::Group, expected) != Some(observed.gid)
    {
        mismatches.push(Mismatch::Group {
            expected: expected.clone(),
            found: id_name(IdKind::Group, observed.gid),
        });
    }
    if let Some(expected) = entry.size
        && observed.kind == FileKind::Regular
        && !entry.flags.contains(FileFlags::GHOST)
        && expected != observed.size
    {
        mismatches.push(Mismatch::Size {
            expected,
            found: observed.size,
        });
    }
}

fn check_link_target(entry: &FileEntry, handle: &OwnedFd, outcome: &mut VerifyOutcome) {
    let Some(expected) = &entry.link_target else {
        return;
    };
    match read_link(handle) {
        Ok(found) if found == *expected => outcome.content_verified = true,
        Ok(found) => outcome.mismatches.push(Mismatch::LinkTarget {
            expected: expected.clone(),
            found,
        }),
        Err(error) => outcome.mismatches.push(unreadable(&error)),
    }
}

fn check_digest(
    expected: &Digest,
    handle: &OwnedFd,
    observed: &Observed,
    outcome: &mut VerifyOutcome,
) {
    match hash_same_file(handle, observed, expected.algo) {
        Ok(found) if *found == *expected.bytes => outcome.content_verified = true,
        Ok(found) => outcome.mismatches.push(Mismatch::Digest {
            algo: expected.algo,
            expected: expected.to_hex(),
            found: to_hex(&found),
        }),
        Err(error) => outcome.mismatches.push(unreadable(&error)),
    }
}

/// Opens `path` without following a final symlink and without reading access (`O_PATH`).
fn open_path(path: &Path) -> io::Result<OwnedFd> {
    let name = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: `name` is a valid NUL-terminated string; the returned descriptor is owned below.
    let fd = unsafe {
        libc::open(
            name.as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a freshly opened descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn fstat(handle: &impl AsRawFd) -> io::Result<Observed> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: the descriptor is open and `stat` points at writable memory of the right size.
    if unsafe { libc::fstat(handle.as_raw_fd(), stat.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstat succeeded, so it filled the structure.
    let stat = unsafe { stat.assume_init() };
    Ok(Observed {
        dev: stat.st_dev,
        ino: stat.st_ino,
        kind: FileKind::from_mode(stat.st_mode),
        mode: stat.st_mode & 0o7777,
        uid: stat.st_uid,
        gid: stat.st_gid,
        size: u64::try_from(stat.st_size).unwrap_or(0),
    })
}

/// The target of the symlink `handle` (an `O_PATH | O_NOFOLLOW` descriptor) refers to.
fn read_link(handle: &OwnedFd) -> io::Result<PathBuf> {
    let mut buffer = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: an empty name with an O_PATH descriptor of a symlink reads that symlink; the
    // buffer is writable for its whole length.
    let length = unsafe {
        libc::readlinkat(
            handle.as_raw_fd(),
            c"".as_ptr(),
            buffer.as_mut_ptr().cast(),
            buffer.len(),
        )
    };
    let length = usize::try_from(length).map_err(|_| io::Error::last_os_error())?;
    buffer.truncate(length);
    Ok(PathBuf::from(OsString::from_vec(buffer)))
}

/// Reopens the `O_PATH` descriptor for reading, checks it is still the same inode, and hashes it.
fn hash_same_file(handle: &OwnedFd, observed: &Observed, algo: DigestAlgo) -> io::Result<Vec<u8>> {
    let file = reopen_for_reading(handle)?;
    let reopened = fstat(&file)?;
    if (reopened.dev, reopened.ino) != (observed.dev, observed.ino) {
        return Err(io::Error::other("file changed while it was being verified"));
    }
    hash_reader(file, algo)
}

fn reopen_for_reading(handle: &OwnedFd) -> io::Result<File> {
    let proc_path = format!("/proc/self/fd/{}\0", handle.as_raw_fd());
    // SAFETY: `proc_path` is NUL-terminated; the returned descriptor is owned below.
    let fd = unsafe {
        libc::open(
            proc_path.as_ptr().cast(),
            libc::O_RDONLY | libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a freshly opened descriptor nobody else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Opens `path` without following a final symlink, as [`verify_file`] does, and hashes a
/// regular file with every algorithm in `algos` in one read. Returns what was opened and the
/// digests in the order of `algos` (none for anything but a regular file).
pub fn hash_path(path: &Path, algos: &[DigestAlgo]) -> io::Result<(Observed, Vec<Vec<u8>>)> {
    let handle = open_path(path)?;
    let observed = fstat(&handle)?;
    if observed.kind != FileKind::Regular {
        return Ok((observed, Vec::new()));
    }
    let mut file = reopen_for_reading(&handle)?;
    let reopened = fstat(&file)?;
    if (reopened.dev, reopened.ino) != (observed.dev, observed.ino) {
        return Err(io::Error::other("file changed while it was being hashed"));
    }
    let mut hashers: Vec<Hasher> = algos.iter().map(|&algo| Hasher::new(algo)).collect();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(count) => {
                for hasher in &mut hashers {
                    hasher.update(&buffer[..count]);
                }
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok((observed, hashers.into_iter().map(Hasher::finish).collect()))
}

/// Hashes everything `reader` yields with `algo`, through one reused buffer per thread (a fresh
/// zeroed buffer per file cost more CPU than hashing small files).
pub fn hash_reader(mut reader: impl Read, algo: DigestAlgo) -> io::Result<Vec<u8>> {
    thread_local! {
        static BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 256 * 1024]);
    }
    BUFFER.with(|buffer| {
        let mut fallback = Vec::new();
        let mut borrowed = buffer.try_borrow_mut();
        let buffer: &mut [u8] = match borrowed.as_deref_mut() {
            Ok(buffer) => buffer,
            Err(_) => {
                fallback.resize(256 * 1024, 0);
                &mut fallback
            }
        };
        let mut hasher = Hasher::new(algo);
        loop {
            match reader.read(buffer) {
                Ok(0) => return Ok(hasher.finish()),
                Ok(count) => hasher.update(&buffer[..count]),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
    })
}

/// One streaming hasher per supported algorithm.
pub enum Hasher {
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
    Sha224(sha2::Sha224),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn new(algo: DigestAlgo) -> Self {
        use sha2::Digest as _;
        match algo {
            DigestAlgo::Md5 => Self::Md5(md5::Md5::new()),
            DigestAlgo::Sha1 => Self::Sha1(sha1::Sha1::new()),
            DigestAlgo::Sha224 => Self::Sha224(sha2::Sha224::new()),
            DigestAlgo::Sha256 => Self::Sha256(sha2::Sha256::new()),
            DigestAlgo::Sha384 => Self::Sha384(sha2::Sha384::new()),
            DigestAlgo::Sha512 => Self::Sha512(sha2::Sha512::new()),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        use sha2::Digest as _;
        match self {
            Self::Md5(hasher) => hasher.update(bytes),
            Self::Sha1(hasher) => hasher.update(bytes),
            Self::Sha224(hasher) => hasher.update(bytes),
            Self::Sha256(hasher) => hasher.update(bytes),
            Self::Sha384(hasher) => hasher.update(bytes),
            Self::Sha512(hasher) => hasher.update(bytes),
        }
    }

    pub fn finish(self) -> Vec<u8> {
        use sha2::Digest as _;
        match self {
            Self::Md5(hasher) => hasher.finalize().to_vec(),
            Self::Sha1(hasher) => hasher.finalize().to_vec(),
            Self::Sha224(hasher) => hasher.finalize().to_vec(),
            Self::Sha256(hasher) => hasher.finalize().to_vec(),
            Self::Sha384(hasher) => hasher.finalize().to_vec(),
            Self::Sha512(hasher) => hasher.finalize().to_vec(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum IdKind {
    User,
    Group,
}

/// Name → id lookups through NSS, cached (audit asks the same few names many times).
fn lookup_id(kind: IdKind, name: &str) -> Option<u32> {
    if let Some(number) = name.strip_prefix('#') {
        return number.parse().ok();
    }
    type IdCache = Mutex<HashMap<(IdKind, String), Option<u32>>>;
    static CACHE: OnceLock<IdCache> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    if let Ok(cache) = cache.lock()
        && let Some(id) = cache.get(&(kind, name.to_owned()))
    {
        return *id;
    }
    let id = resolve_name(kind, name);
    if let Ok(mut cache) = cache.lock() {
        cache.insert((kind, name.to_owned()), id);
    }
    id
}

fn resolve_name(kind: IdKind, name: &str) -> Option<u32> {
    let name = CString::new(name).ok()?;
    let mut buffer = vec![0u8; 16 * 1024];
    let mut result = std::ptr::null_mut();
    match kind {
        IdKind::User => {
            let mut entry = std::mem::MaybeUninit::<libc::passwd>::uninit();
            // SAFETY: all pointers are valid for the sizes given; `result` is set to `entry` on success.
            let status = unsafe {
                libc::getpwnam_r(
                    name.as_ptr(),
                    entry.as_mut_ptr(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                    &mut result,
                )
            };
            // SAFETY: a non-null result means the entry was filled.
            (status == 0 && !result.is_null()).then(|| unsafe { entry.assume_init() }.pw_uid)
        }
        IdKind::Group => {
            let mut entry = std::mem::MaybeUninit::<libc::group>::uninit();
            let mut group_result = std::ptr::null_mut();
            // SAFETY: as above, for groups.
            let status = unsafe {
                libc::getgrnam_r(
                    name.as_ptr(),
                    entry.as_mut_ptr(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                    &mut group_result,
                )
            };
            // SAFETY: a non-null result means the entry was filled.
            (status == 0 && !group_result.is_null()).then(|| unsafe { entry.assume_init() }.gr_gid)
        }
    }
}

/// The name of a uid/gid for messages, or `#id` when it has none.
fn id_name(kind: IdKind, id: u32) -> String {
    let mut buffer = vec![0u8; 16 * 1024];
    let name = match kind {
        IdKind::User => {
            let mut entry = std::mem::MaybeUninit::<libc::passwd>::uninit();
            let mut result = std::ptr::null_mut();
            // SAFETY: all pointers are valid for the sizes given.
            let status = unsafe {
                libc::getpwuid_r(
                    id,
                    entry.as_mut_ptr(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                    &mut result,
                )
            };
            // SAFETY: a non-null result means the entry, whose name points into `buffer`, was filled.
            (status == 0 && !result.is_null()).then(|| {
                unsafe { std::ffi::CStr::from_ptr(entry.assume_init().pw_name) }
                    .to_string_lossy()
                    .into_owned()
            })
        }
        IdKind::Group => {
            let mut entry = std::mem::MaybeUninit::<libc::group>::uninit();
            let mut result = std::ptr::null_mut();
            // SAFETY: all pointers are valid for the sizes given.
            let status = unsafe {
                libc::getgrgid_r(
                    id,
                    entry.as_mut_ptr(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                    &mut result,
                )
            };
            // SAFETY: a non-null result means the entry, whose name points into `buffer`, was filled.
            (status == 0 && !result.is_null()).then(|| {
                unsafe { std::ffi::CStr::from_ptr(entry.assume_init().gr_name) }
                    .to_string_lossy()
                    .into_owned()
            })
        }
    };
    name.unwrap_or_else(|| format!("#{id}"))
}
