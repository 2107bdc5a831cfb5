//! Verifying one installed file against its [`FileEntry`] from one file descriptor, so a rename
//! between the checks cannot swap the file. A file the database expects to be regular with a
//! digest is opened once for reading (`O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOATIME`), and its
//! type, mode, owner, size and content all come from that descriptor (`fstat`, then reads); it
//! is never read unless `fstat` says it is a regular file. Everything else (directories,
//! symlinks, entries without a digest) is opened with `O_PATH | O_NOFOLLOW`, so devices and
//! fifos the database lists are never opened. A [`DigestCache`] lets an audit hash each inode
//! once, however many names (hard links, usr-merge aliases, several packages) it has.

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
    verify_file_cached(entry, path, None)
}

/// As [`verify_file`], taking a digest from `cache` when the same inode, unchanged (size,
/// mtime, ctime), was already hashed with the same algorithm, and adding new digests to it.
pub fn verify_file_cached(
    entry: &FileEntry,
    path: &Path,
    cache: Option<&DigestCache>,
) -> VerifyOutcome {
    let mut outcome = VerifyOutcome::new(path);
    if entry.flags.contains(FileFlags::NOT_INSTALLED) {
        outcome.skipped = Some("the database marks this file as not installed");
        return outcome;
    }
    if entry.flags.contains(FileFlags::REPLACED) {
        outcome.skipped = Some("the database marks this file as replaced by another package");
        return outcome;
    }
    let handle = match open_entry(entry, path) {
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
    let (observed, identity) = match fstat_identity(handle.fd()) {
        Ok(stat) => stat,
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
    let size_differs = outcome
        .mismatches
        .iter()
        .any(|mismatch| matches!(mismatch, Mismatch::Size { .. }));
    match (observed.kind, &handle) {
        (FileKind::Symlink, Handle::Path(handle)) => {
            check_link_target(entry, handle, &mut outcome);
        }
        // A size that differs already says the content does: hashing would add nothing.
        (FileKind::Regular, _) if !entry.flags.contains(FileFlags::GHOST) && !size_differs => {
            if let Some(expected) = &entry.digest {
                let digest = cached_digest(cache, &identity, expected.algo, || {
                    hash_handle(&handle, &observed, expected.algo)
                });
                compare_digest(expected, digest, &mut outcome);
            }
        }
        _ => {}
    }
    outcome
}

/// An open file: readable (a regular file with a digest to check) or `O_PATH` only.
enum Handle {
    Readable(File),
    Path(OwnedFd),
}

impl Handle {
    fn fd(&self) -> &dyn AsRawFd {
        match self {
            Self::Readable(file) => file,
            Self::Path(fd) => fd,
        }
    }
}

/// Whether the entry's content is read: a regular file (or one of unknown kind) with a digest.
fn reads_content(entry: &FileEntry) -> bool {
    entry.digest.is_some()
        && !entry.flags.contains(FileFlags::GHOST)
        && matches!(entry.kind, FileKind::Regular | FileKind::Unknown)
}

/// Opens `path` the cheapest way that lets everything about `entry` be checked from one
/// descriptor: for reading when its content is checked, with `O_PATH` otherwise. A symlink or
/// socket found where a readable file was expected is reopened with `O_PATH` (to report it).
fn open_entry(entry: &FileEntry, path: &Path) -> io::Result<Handle> {
    let name = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    if reads_content(entry) {
        match open_readable(&name) {
            Ok(file) => return Ok(Handle::Readable(file)),
            Err(error) if matches!(error.raw_os_error(), Some(libc::ELOOP | libc::ENXIO)) => {}
            Err(error) => return Err(error),
        }
    }
    open_path(&name).map(Handle::Path)
}

/// Opens for reading without following a final symlink, blocking on nothing (a fifo opens at
/// once), without updating the access time when the caller may (owner or `CAP_FOWNER`).
fn open_readable(name: &CString) -> io::Result<File> {
    let flags =
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
    let open = |flags| {
        // SAFETY: `name` is a valid NUL-terminated string; the descriptor is owned below.
        let fd = unsafe { libc::open(name.as_ptr(), flags) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a freshly opened descriptor nobody else owns.
        Ok(unsafe { File::from_raw_fd(fd) })
    };
    match open(flags | libc::O_NOATIME) {
        Err(error) if error.raw_os_error() == Some(libc::EPERM) => open(flags),
        result => result,
    }
}

/// The content digest of the regular file `handle` refers to.
fn hash_handle(handle: &Handle, observed: &Observed, algo: DigestAlgo) -> io::Result<Vec<u8>> {
    match handle {
        Handle::Readable(file) => hash_reader(file, algo),
        Handle::Path(fd) => hash_same_file(fd, observed, algo),
    }
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

fn compare_digest(expected: &Digest, found: io::Result<Vec<u8>>, outcome: &mut VerifyOutcome) {
    match found {
        Ok(found) if *found == *expected.bytes => outcome.content_verified = true,
        Ok(found) => outcome.mismatches.push(Mismatch::Digest {
            algo: expected.algo,
            expected: expected.to_hex(),
            found: to_hex(&found),
        }),
        Err(error) => outcome.mismatches.push(unreadable(&error)),
    }
}

/// What identifies one unchanged file content: the inode with its size and change times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// Digests already computed during one audit, by inode and algorithm: a file with several
/// names (hard links, usr-merge aliases, a path several packages list) is hashed once.
#[derive(Default)]
pub struct DigestCache {
    digests: Mutex<DigestsByInode>,
}

/// A digest per (inode identity, algorithm).
type DigestsByInode = HashMap<(Identity, DigestAlgo), Box<[u8]>>;

impl DigestCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many digests it holds.
    pub fn len(&self) -> usize {
        self.digests.lock().map_or(0, |digests| digests.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn cached_digest(
    cache: Option<&DigestCache>,
    identity: &Identity,
    algo: DigestAlgo,
    compute: impl FnOnce() -> io::Result<Vec<u8>>,
) -> io::Result<Vec<u8>> {
    let Some(cache) = cache else {
        return compute();
    };
    let key = (*identity, algo);
    if let Ok(digests) = cache.digests.lock()
        && let Some(digest) = digests.get(&key)
    {
        return Ok(digest.to_vec());
    }
    let digest = compute()?;
    if let Ok(mut digests) = cache.digests.lock() {
        digests.insert(key, digest.clone().into_boxed_slice());
    }
    Ok(digest)
}

/// Opens `name` without following a final symlink and without reading access (`O_PATH`).
fn open_path(name: &CString) -> io::Result<OwnedFd> {
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

fn fstat(handle: &(impl AsRawFd + ?Sized)) -> io::Result<Observed> {
    fstat_identity(handle).map(|(observed, _)| observed)
}

fn fstat_identity(handle: &(impl AsRawFd + ?Sized)) -> io::Result<(Observed, Identity)> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: the descriptor is open and `stat` points at writable memory of the right size.
    if unsafe { libc::fstat(handle.as_raw_fd(), stat.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstat succeeded, so it filled the structure.
    let stat = unsafe { stat.assume_init() };
    let size = u64::try_from(stat.st_size).unwrap_or(0);
    let observed = Observed {
        dev: stat.st_dev,
        ino: stat.st_ino,
        kind: FileKind::from_mode(stat.st_mode),
        mode: stat.st_mode & 0o7777,
        uid: stat.st_uid,
        gid: stat.st_gid,
        size,
    };
    let identity = Identity {
        dev: stat.st_dev,
        ino: stat.st_ino,
        size,
        mtime: (stat.st_mtime, stat.st_mtime_nsec),
        ctime: (stat.st_ctime, stat.st_ctime_nsec),
    };
    Ok((observed, identity))
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
    let name = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    let mut file = match open_readable(&name) {
        Ok(file) => file,
        // A symlink, socket or device: report what is there, hash nothing.
        Err(error) if matches!(error.raw_os_error(), Some(libc::ELOOP | libc::ENXIO)) => {
            return Ok((fstat(&open_path(&name)?)?, Vec::new()));
        }
        Err(error) => return Err(error),
    };
    let observed = fstat(&file)?;
    if observed.kind != FileKind::Regular {
        return Ok((observed, Vec::new()));
    }
    let mut hashers = algos
        .iter()
        .map(|&algo| Hasher::new(algo))
        .collect::<io::Result<Vec<_>>>()?;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(count) => {
                for hasher in &mut hashers {
                    hasher.update(&buffer[..count])?;
                }
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    let digests = hashers
        .into_iter()
        .map(Hasher::finish)
        .collect::<io::Result<Vec<_>>>()?;
    Ok((observed, digests))
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
        let mut hasher = Hasher::new(algo)?;
        loop {
            match reader.read(buffer) {
                Ok(0) => return hasher.finish(),
                Ok(count) => hasher.update(&buffer[..count])?,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
    })
}

/// One streaming hasher per supported algorithm: MD5 from libcrypto (the fastest here), the
/// others from RustCrypto (SHA-2 uses the CPU's SHA extensions when present).
pub enum Hasher {
    Md5(openssl::md_ctx::MdCtx),
    Sha1(sha1::Sha1),
    Sha224(sha2::Sha224),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

/// libcrypto's MD5, fetched once: OpenSSL 3 looks an implicitly fetched digest up again on
/// every initialisation, which costs more than hashing a small file.
fn libcrypto_md5() -> io::Result<&'static openssl::md::Md> {
    static MD5: OnceLock<Result<openssl::md::Md, String>> = OnceLock::new();
    MD5.get_or_init(|| openssl::md::Md::fetch(None, "MD5", None).map_err(|error| error.to_string()))
        .as_ref()
        .map_err(|error| io::Error::other(format!("libcrypto has no MD5: {error}")))
}

fn crypto_error(error: openssl::error::ErrorStack) -> io::Error {
    io::Error::other(format!("libcrypto: {error}"))
}

impl Hasher {
    pub fn new(algo: DigestAlgo) -> io::Result<Self> {
        use sha2::Digest as _;
        Ok(match algo {
            DigestAlgo::Md5 => {
                let mut context = openssl::md_ctx::MdCtx::new().map_err(crypto_error)?;
                context
                    .digest_init(libcrypto_md5()?)
                    .map_err(crypto_error)?;
                Self::Md5(context)
            }
            DigestAlgo::Sha1 => Self::Sha1(sha1::Sha1::new()),
            DigestAlgo::Sha224 => Self::Sha224(sha2::Sha224::new()),
            DigestAlgo::Sha256 => Self::Sha256(sha2::Sha256::new()),
            DigestAlgo::Sha384 => Self::Sha384(sha2::Sha384::new()),
            DigestAlgo::Sha512 => Self::Sha512(sha2::Sha512::new()),
        })
    }

    pub fn update(&mut self, bytes: &[u8]) -> io::Result<()> {
        use sha2::Digest as _;
        match self {
            Self::Md5(context) => context.digest_update(bytes).map_err(crypto_error)?,
            Self::Sha1(hasher) => hasher.update(bytes),
            Self::Sha224(hasher) => hasher.update(bytes),
            Self::Sha256(hasher) => hasher.update(bytes),
            Self::Sha384(hasher) => hasher.update(bytes),
            Self::Sha512(hasher) => hasher.update(bytes),
        }
        Ok(())
    }

    pub fn finish(self) -> io::Result<Vec<u8>> {
        use sha2::Digest as _;
        Ok(match self {
            Self::Md5(mut context) => {
                let mut digest = vec![0u8; DigestAlgo::Md5.output_len()];
                let written = context.digest_final(&mut digest).map_err(crypto_error)?;
                digest.truncate(written);
                digest
            }
            Self::Sha1(hasher) => hasher.finalize().to_vec(),
            Self::Sha224(hasher) => hasher.finalize().to_vec(),
            Self::Sha256(hasher) => hasher.finalize().to_vec(),
            Self::Sha384(hasher) => hasher.finalize().to_vec(),
            Self::Sha512(hasher) => hasher.finalize().to_vec(),
        })
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
