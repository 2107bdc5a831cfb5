//! Package databases: dpkg and rpm readers, the in-memory path index and file verification.
//!
//! - [`dpkg_files`]: parsers for dpkg's status, `info/*.list`, `info/*.md5sums`, diversions and
//!   statoverride files (pure functions over bytes, fuzzed).
//! - [`dpkg`]: reads a dpkg admindir into file entries, re-reading only what changed.
//! - [`rpm_header`]: the bounds-checked parser of rpm header blobs (fuzzed).
//! - [`rpm`]: reads rpm's sqlite database (rpm >= 4.16) read-only, re-reading only changed packages.
//! - [`index`]: [`PackageIndex`], path → owning entries, with usr-merge aliasing and diversions.
//! - [`verify`]: verifying one installed file against its entry from one file descriptor.
//! - [`audit`]: verifying every installed file in parallel (`verifier audit`).

pub mod audit;
pub mod dpkg;
pub mod dpkg_files;
pub mod index;
pub mod rpm;
pub mod rpm_header;
pub mod verify;

use std::{fmt, path::PathBuf, sync::Arc};

use serde::Serialize;

pub use index::{IndexStats, OwnershipChange, PackageIndex, PathVerification, UsrMerge};
pub use verify::{Mismatch, VerifyOutcome, verify_file};

/// Which package database an entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DbKind {
    Dpkg,
    Rpm,
}

/// Installation state of a package as its database records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PackageState {
    Installed,
    /// dpkg: removed, only its conffiles remain.
    ConfigFiles,
    /// dpkg: unpacking started and did not finish; files may be half old, half new.
    HalfInstalled,
    /// dpkg: unpacked but not configured.
    Unpacked,
    /// dpkg: unpacked, configuration started and did not finish.
    HalfConfigured,
    TriggersAwaiting,
    TriggersPending,
    NotInstalled,
}

impl PackageState {
    /// Parses dpkg's third `Status:` word.
    pub fn from_dpkg(word: &str) -> Option<Self> {
        Some(match word {
            "installed" => Self::Installed,
            "config-files" => Self::ConfigFiles,
            "half-installed" => Self::HalfInstalled,
            "unpacked" => Self::Unpacked,
            "half-configured" => Self::HalfConfigured,
            "triggers-awaited" => Self::TriggersAwaiting,
            "triggers-pending" => Self::TriggersPending,
            "not-installed" => Self::NotInstalled,
            _ => return None,
        })
    }

    /// Whether the package's files are all in place as the database describes them, so a
    /// verdict may trust a match. Half-installed and unpacked packages are not settled.
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            Self::Installed | Self::TriggersAwaiting | Self::TriggersPending
        )
    }
}

impl fmt::Display for PackageState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Installed => "installed",
            Self::ConfigFiles => "config-files",
            Self::HalfInstalled => "half-installed",
            Self::Unpacked => "unpacked",
            Self::HalfConfigured => "half-configured",
            Self::TriggersAwaiting => "triggers-awaited",
            Self::TriggersPending => "triggers-pending",
            Self::NotInstalled => "not-installed",
        })
    }
}

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageInfo {
    pub db: DbKind,
    pub name: String,
    /// dpkg: the version string; rpm: `[epoch:]version-release`.
    pub version: String,
    pub arch: String,
    pub state: PackageState,
    /// dpkg's `reinstreq` flag: the package is broken and must be reinstalled.
    pub reinstall_required: bool,
    /// Packages whose files this one may take over (dpkg `Replaces:`; empty for rpm).
    pub replaces: Vec<String>,
}

impl fmt::Display for PackageInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.name, self.version, self.arch)?;
        if self.state != PackageState::Installed {
            write!(f, " ({})", self.state)?;
        }
        Ok(())
    }
}

/// Hash algorithms package databases use for file digests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DigestAlgo {
    Md5,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl DigestAlgo {
    /// The algorithm for an rpm `FILEDIGESTALGO` value (OpenPGP hash algorithm numbers).
    pub fn from_pgp(id: u32) -> Option<Self> {
        Some(match id {
            1 => Self::Md5,
            2 => Self::Sha1,
            8 => Self::Sha256,
            9 => Self::Sha384,
            10 => Self::Sha512,
            11 => Self::Sha224,
            _ => return None,
        })
    }

    pub fn output_len(self) -> usize {
        match self {
            Self::Md5 => 16,
            Self::Sha1 => 20,
            Self::Sha224 => 28,
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }
}

impl fmt::Display for DigestAlgo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Md5 => "md5",
            Self::Sha1 => "sha1",
            Self::Sha224 => "sha224",
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
        })
    }
}

/// A file digest with its algorithm.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Digest {
    pub algo: DigestAlgo,
    pub bytes: Box<[u8]>,
}

impl Digest {
    /// Parses a hex digest, requiring exactly the algorithm's length.
    pub fn from_hex(algo: DigestAlgo, hex: &[u8]) -> Option<Self> {
        if hex.len() != algo.output_len() * 2 {
            return None;
        }
        let bytes = hex
            .as_chunks::<2>()
            .0
            .iter()
            .map(|[high, low]| Some(hex_value(*high)? << 4 | hex_value(*low)?))
            .collect::<Option<Box<[u8]>>>()?;
        Some(Self { algo, bytes })
    }

    pub fn to_hex(&self) -> String {
        to_hex(&self.bytes)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algo, self.to_hex())
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    text
}

/// What kind of file system object an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    Regular,
    Directory,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
    /// The database does not say (dpkg lists directories and symlinks without a digest).
    Unknown,
}

impl FileKind {
    /// The kind encoded in the `S_IFMT` bits of a mode.
    pub fn from_mode(mode: u32) -> Self {
        match mode & libc::S_IFMT {
            libc::S_IFREG => Self::Regular,
            libc::S_IFDIR => Self::Directory,
            libc::S_IFLNK => Self::Symlink,
            libc::S_IFCHR => Self::CharDevice,
            libc::S_IFBLK => Self::BlockDevice,
            libc::S_IFIFO => Self::Fifo,
            libc::S_IFSOCK => Self::Socket,
            _ => Self::Unknown,
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Regular => "regular file",
            Self::Directory => "directory",
            Self::Symlink => "symlink",
            Self::CharDevice => "character device",
            Self::BlockDevice => "block device",
            Self::Fifo => "fifo",
            Self::Socket => "socket",
            Self::Unknown => "unknown",
        })
    }
}

/// Per-file flags from either database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FileFlags(pub u32);

impl FileFlags {
    /// rpm `%config`; dpkg conffile.
    pub const CONFIG: Self = Self(1 << 0);
    pub const DOC: Self = Self(1 << 1);
    pub const MISSINGOK: Self = Self(1 << 3);
    pub const NOREPLACE: Self = Self(1 << 4);
    /// rpm `%ghost`: owned but not shipped; content is not verified, absence is fine.
    pub const GHOST: Self = Self(1 << 6);
    pub const LICENSE: Self = Self(1 << 7);
    pub const README: Self = Self(1 << 8);
    pub const ARTIFACT: Self = Self(1 << 12);
    /// dpkg: a conffile the package no longer ships.
    pub const OBSOLETE: Self = Self(1 << 20);
    /// dpkg: a conffile dpkg removes on the next upgrade.
    pub const REMOVE_ON_UPGRADE: Self = Self(1 << 21);
    /// rpm file state: not installed (excluded docs, other color, netshared path).
    pub const NOT_INSTALLED: Self = Self(1 << 22);
    /// rpm file state: replaced by another package's file.
    pub const REPLACED: Self = Self(1 << 23);

    const NAMES: [(Self, &'static str); 12] = [
        (Self::CONFIG, "config"),
        (Self::DOC, "doc"),
        (Self::MISSINGOK, "missingok"),
        (Self::NOREPLACE, "noreplace"),
        (Self::GHOST, "ghost"),
        (Self::LICENSE, "license"),
        (Self::README, "readme"),
        (Self::ARTIFACT, "artifact"),
        (Self::OBSOLETE, "obsolete"),
        (Self::REMOVE_ON_UPGRADE, "remove-on-upgrade"),
        (Self::NOT_INSTALLED, "not-installed"),
        (Self::REPLACED, "replaced"),
    ];

    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn insert(&mut self, other: Self) {
        self.0 |= other.0;
    }

    pub fn names(self) -> Vec<&'static str> {
        Self::NAMES
            .iter()
            .filter(|(flag, _)| self.contains(*flag))
            .map(|(_, name)| *name)
            .collect()
    }
}

impl Serialize for FileFlags {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.names().serialize(serializer)
    }
}

/// What one package database says about one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileEntry {
    /// Where the file lives, as the database spells it (after dpkg diversions).
    pub path: PathBuf,
    /// The name the package database records, when a diversion moved the file elsewhere.
    pub diverted_from: Option<PathBuf>,
    pub package: Arc<PackageInfo>,
    pub digest: Option<Digest>,
    pub kind: FileKind,
    /// Permission bits (`0o7777`), when recorded (rpm; dpkg statoverride).
    pub mode: Option<u32>,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub size: Option<u64>,
    pub link_target: Option<PathBuf>,
    /// A dpkg conffile or rpm `%config` file.
    pub conffile: bool,
    pub flags: FileFlags,
}

/// Where in a database file a problem was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Position {
    /// 1-based line of a text file.
    Line(usize),
    /// Byte offset inside a binary record.
    Byte(usize),
    /// The rpm Packages row (`hnum`), and the byte offset inside its header blob.
    RpmHeader { hnum: i64, byte: usize },
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Line(line) => write!(f, "line {line}"),
            Self::Byte(byte) => write!(f, "byte {byte}"),
            Self::RpmHeader { hnum, byte } => write!(f, "package header {hnum}, byte {byte}"),
        }
    }
}

/// A problem in one database file; the rest of the index still loads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct DbError {
    pub file: PathBuf,
    pub position: Option<Position>,
    pub message: String,
}

impl DbError {
    pub fn new(
        file: impl Into<PathBuf>,
        position: Option<Position>,
        message: impl fmt::Display,
    ) -> Self {
        Self {
            file: file.into(),
            position,
            message: message.to_string(),
        }
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(position) => write!(f, "{} ({position}): {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// A problem that stops the index from loading at all.
#[derive(Debug, thiserror::Error)]
pub enum PackagesError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("rpm database {path}: {message}")]
    RpmDatabase { path: PathBuf, message: String },
}
