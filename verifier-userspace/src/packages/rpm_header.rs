//! The rpm header blob as rpm >= 4.16 stores it in the `Packages` table: big-endian
//! `index_count`, `data_length`, `index_count` 16-byte entries (tag, type, offset, count), then
//! `data_length` bytes of data. Headers are untrusted: every count and offset is bounds-checked,
//! and errors name the byte offset inside the blob. Fuzzed.

use std::{ffi::OsStr, os::unix::ffi::OsStrExt, path::PathBuf, sync::Arc};

use super::{
    DbKind, Digest, DigestAlgo, FileEntry, FileFlags, FileKind, PackageInfo, PackageState,
};

/// rpm's own limits (`hdrblobVerifyInfo`): at most this many index entries and data bytes.
const MAX_INDEX_ENTRIES: usize = 0xffff;
const MAX_DATA_BYTES: usize = 256 * 1024 * 1024;
const INDEX_ENTRY_BYTES: usize = 16;

pub mod tag {
    pub const NAME: u32 = 1000;
    pub const VERSION: u32 = 1001;
    pub const RELEASE: u32 = 1002;
    pub const EPOCH: u32 = 1003;
    pub const ARCH: u32 = 1022;
    pub const FILESIZES: u32 = 1028;
    pub const FILESTATES: u32 = 1029;
    pub const FILEMODES: u32 = 1030;
    pub const FILEDIGESTS: u32 = 1035;
    pub const FILELINKTOS: u32 = 1036;
    pub const FILEFLAGS: u32 = 1037;
    pub const FILEUSERNAME: u32 = 1039;
    pub const FILEGROUPNAME: u32 = 1040;
    pub const DIRINDEXES: u32 = 1116;
    pub const BASENAMES: u32 = 1117;
    pub const DIRNAMES: u32 = 1118;
    pub const LONGFILESIZES: u32 = 5008;
    pub const FILEDIGESTALGO: u32 = 5011;
}

mod kind {
    pub const CHAR: u32 = 1;
    pub const INT8: u32 = 2;
    pub const INT16: u32 = 3;
    pub const INT32: u32 = 4;
    pub const INT64: u32 = 5;
    pub const STRING: u32 = 6;
    pub const STRING_ARRAY: u32 = 8;
    pub const I18NSTRING: u32 = 9;
}

/// A malformed header, with the byte offset inside the blob where the problem is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("byte {byte}: {message}")]
pub struct HeaderError {
    pub byte: usize,
    pub message: String,
}

fn error(byte: usize, message: impl Into<String>) -> HeaderError {
    HeaderError {
        byte,
        message: message.into(),
    }
}

#[derive(Debug, Clone, Copy)]
struct IndexEntry {
    tag: u32,
    kind: u32,
    offset: usize,
    count: usize,
    /// Where this entry sits in the blob, for errors.
    at: usize,
}

/// A parsed header borrowing its blob.
#[derive(Debug)]
pub struct Header<'a> {
    entries: Vec<IndexEntry>,
    data: &'a [u8],
    data_start: usize,
}

fn be_u32(bytes: &[u8], at: usize) -> Result<u32, HeaderError> {
    bytes
        .get(at..at + 4)
        .and_then(|slice| slice.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| error(at, "header ends inside a 32-bit field"))
}

impl<'a> Header<'a> {
    /// Parses the index of a header blob and checks the data area's bounds.
    pub fn parse(blob: &'a [u8]) -> Result<Self, HeaderError> {
        let index_count = be_u32(blob, 0)? as usize;
        let data_length = be_u32(blob, 4)? as usize;
        if index_count == 0 || index_count > MAX_INDEX_ENTRIES {
            return Err(error(
                0,
                format!("implausible index entry count {index_count}"),
            ));
        }
        if data_length > MAX_DATA_BYTES {
            return Err(error(4, format!("implausible data length {data_length}")));
        }
        let data_start = 8 + index_count * INDEX_ENTRY_BYTES;
        let data_end = data_start + data_length;
        if blob.len() < data_end {
            return Err(error(
                blob.len(),
                format!("header is {} bytes, its index says {data_end}", blob.len()),
            ));
        }
        let data = &blob[data_start..data_end];
        let entries = (0..index_count)
            .map(|number| {
                let at = 8 + number * INDEX_ENTRY_BYTES;
                Ok(IndexEntry {
                    tag: be_u32(blob, at)?,
                    kind: be_u32(blob, at + 4)?,
                    offset: be_u32(blob, at + 8)? as usize,
                    count: be_u32(blob, at + 12)? as usize,
                    at,
                })
            })
            .collect::<Result<Vec<_>, HeaderError>>()?;
        for entry in &entries {
            if entry.offset > data.len() {
                return Err(error(
                    entry.at + 8,
                    format!(
                        "tag {} data offset {} beyond data length {}",
                        entry.tag,
                        entry.offset,
                        data.len()
                    ),
                ));
            }
        }
        Ok(Self {
            entries,
            data,
            data_start,
        })
    }

    fn entry(&self, tag: u32) -> Option<&IndexEntry> {
        self.entries.iter().find(|entry| entry.tag == tag)
    }

    /// The bytes of a fixed-size array entry, checked against the data area.
    fn fixed(&self, entry: &IndexEntry, width: usize) -> Result<&'a [u8], HeaderError> {
        let length = entry
            .count
            .checked_mul(width)
            .filter(|length| {
                entry
                    .offset
                    .checked_add(*length)
                    .is_some_and(|end| end <= self.data.len())
            })
            .ok_or_else(|| {
                error(
                    entry.at + 12,
                    format!(
                        "tag {} count {} runs past the data area",
                        entry.tag, entry.count
                    ),
                )
            })?;
        Ok(&self.data[entry.offset..entry.offset + length])
    }

    fn expect_kind(&self, entry: &IndexEntry, kinds: &[u32]) -> Result<(), HeaderError> {
        if kinds.contains(&entry.kind) {
            Ok(())
        } else {
            Err(error(
                entry.at + 4,
                format!(
                    "tag {} has type {}, expected one of {kinds:?}",
                    entry.tag, entry.kind
                ),
            ))
        }
    }

    /// `count` NUL-terminated strings starting at the entry's offset.
    fn strings(&self, entry: &IndexEntry) -> Result<Vec<&'a [u8]>, HeaderError> {
        let mut rest = &self.data[entry.offset..];
        if entry.count > rest.len() {
            return Err(error(
                entry.at + 12,
                format!(
                    "tag {} claims {} strings in {} bytes",
                    entry.tag,
                    entry.count,
                    rest.len()
                ),
            ));
        }
        let mut strings = Vec::with_capacity(entry.count);
        for number in 0..entry.count {
            let end = rest.iter().position(|byte| *byte == 0).ok_or_else(|| {
                error(
                    self.data_start + self.data.len(),
                    format!("tag {} string {number} is not NUL-terminated", entry.tag),
                )
            })?;
            strings.push(&rest[..end]);
            rest = &rest[end + 1..];
        }
        Ok(strings)
    }

    /// A single string tag, `None` when absent.
    pub fn string(&self, tag: u32) -> Result<Option<&'a [u8]>, HeaderError> {
        let Some(entry) = self.entry(tag) else {
            return Ok(None);
        };
        self.expect_kind(entry, &[kind::STRING, kind::I18NSTRING])?;
        Ok(self
            .strings(&IndexEntry { count: 1, ..*entry })?
            .first()
            .copied())
    }

    pub fn string_array(&self, tag: u32) -> Result<Option<Vec<&'a [u8]>>, HeaderError> {
        let Some(entry) = self.entry(tag) else {
            return Ok(None);
        };
        self.expect_kind(entry, &[kind::STRING_ARRAY])?;
        self.strings(entry).map(Some)
    }

    /// An integer array of any width, widened to u64.
    pub fn integers(&self, tag: u32) -> Result<Option<Vec<u64>>, HeaderError> {
        let Some(entry) = self.entry(tag) else {
            return Ok(None);
        };
        let width = match entry.kind {
            kind::CHAR | kind::INT8 => 1,
            kind::INT16 => 2,
            kind::INT32 => 4,
            kind::INT64 => 8,
            _ => {
                self.expect_kind(entry, &[kind::INT16, kind::INT32, kind::INT64])?;
                return Ok(None);
            }
        };
        let bytes = self.fixed(entry, width)?;
        Ok(Some(
            bytes
                .chunks_exact(width)
                .map(|chunk| {
                    chunk
                        .iter()
                        .fold(0u64, |value, byte| value << 8 | u64::from(*byte))
                })
                .collect(),
        ))
    }
}

/// One package from one header: who it is and its files.
#[derive(Debug, Clone)]
pub struct RpmPackage {
    pub info: Arc<PackageInfo>,
    pub files: Vec<FileEntry>,
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A per-file array must have exactly one value per file when present.
fn per_file<T>(
    values: Option<Vec<T>>,
    files: usize,
    tag: u32,
) -> Result<Option<Vec<T>>, HeaderError> {
    match values {
        Some(values) if values.len() != files => Err(error(
            0,
            format!("tag {tag} has {} values for {files} files", values.len()),
        )),
        other => Ok(other),
    }
}

/// Reads the package identity and every file from a header blob.
pub fn read_package(blob: &[u8]) -> Result<RpmPackage, HeaderError> {
    let header = Header::parse(blob)?;
    let name = header
        .string(tag::NAME)?
        .ok_or_else(|| error(0, "header without a package name"))?;
    let version = header.string(tag::VERSION)?.unwrap_or_default();
    let release = header.string(tag::RELEASE)?.unwrap_or_default();
    let epoch = header
        .integers(tag::EPOCH)?
        .and_then(|values| values.first().copied());
    let arch = header.string(tag::ARCH)?.unwrap_or_default();
    let mut full_version = String::new();
    if let Some(epoch) = epoch {
        full_version.push_str(&format!("{epoch}:"));
    }
    full_version.push_str(&lossy(version));
    if !release.is_empty() {
        full_version.push('-');
        full_version.push_str(&lossy(release));
    }
    let info = Arc::new(PackageInfo {
        db: DbKind::Rpm,
        name: lossy(name),
        version: full_version,
        arch: lossy(arch),
        state: PackageState::Installed,
        reinstall_required: false,
        replaces: Vec::new(),
    });
    let files = read_files(&header, &info)?;
    Ok(RpmPackage { info, files })
}

fn read_files<'a>(
    header: &Header<'a>,
    package: &Arc<PackageInfo>,
) -> Result<Vec<FileEntry>, HeaderError> {
    let Some(basenames) = header.string_array(tag::BASENAMES)? else {
        return Ok(Vec::new());
    };
    let count = basenames.len();
    let dirnames = header.string_array(tag::DIRNAMES)?.unwrap_or_default();
    let dirindexes = per_file(header.integers(tag::DIRINDEXES)?, count, tag::DIRINDEXES)?
        .ok_or_else(|| error(0, "files without DIRINDEXES"))?;
    let sizes = match header.integers(tag::LONGFILESIZES)? {
        Some(sizes) => Some(sizes),
        None => header.integers(tag::FILESIZES)?,
    };
    let sizes = per_file(sizes, count, tag::FILESIZES)?;
    let modes = per_file(header.integers(tag::FILEMODES)?, count, tag::FILEMODES)?;
    let states = per_file(header.integers(tag::FILESTATES)?, count, tag::FILESTATES)?;
    let flags = per_file(header.integers(tag::FILEFLAGS)?, count, tag::FILEFLAGS)?;
    let digests = per_file(
        header.string_array(tag::FILEDIGESTS)?,
        count,
        tag::FILEDIGESTS,
    )?;
    let links = per_file(
        header.string_array(tag::FILELINKTOS)?,
        count,
        tag::FILELINKTOS,
    )?;
    let users = per_file(
        header.string_array(tag::FILEUSERNAME)?,
        count,
        tag::FILEUSERNAME,
    )?;
    let groups = per_file(
        header.string_array(tag::FILEGROUPNAME)?,
        count,
        tag::FILEGROUPNAME,
    )?;
    let algo_id = header
        .integers(tag::FILEDIGESTALGO)?
        .and_then(|values| values.first().copied())
        .unwrap_or(1);
    let algo = u32::try_from(algo_id)
        .ok()
        .and_then(DigestAlgo::from_pgp)
        .ok_or_else(|| error(0, format!("unknown file digest algorithm {algo_id}")))?;

    let mut files = Vec::with_capacity(count);
    for (number, basename) in basenames.iter().enumerate() {
        let dir_index = usize::try_from(dirindexes[number]).unwrap_or(usize::MAX);
        let dirname = dirnames.get(dir_index).ok_or_else(|| {
            error(
                0,
                format!(
                    "file {number} has directory index {dir_index} of {}",
                    dirnames.len()
                ),
            )
        })?;
        let mut path = dirname.to_vec();
        path.extend_from_slice(basename);
        let mode = modes.as_ref().map(|modes| (modes[number] & 0xffff) as u32);
        let raw_flags = flags.as_ref().map_or(0, |flags| flags[number] as u32);
        let mut file_flags = FileFlags(raw_flags & RPM_FLAG_MASK);
        match states.as_ref().map(|states| states[number]) {
            Some(1) => file_flags.insert(FileFlags::REPLACED),
            Some(2 | 3 | 5) => file_flags.insert(FileFlags::NOT_INSTALLED),
            _ => {}
        }
        let digest = match digests.as_ref().map(|digests| digests[number]) {
            None | Some(b"") => None,
            Some(hex) => Some(Digest::from_hex(algo, hex).ok_or_else(|| {
                error(
                    0,
                    format!("file {number}: bad {algo} digest {:?}", lossy(hex)),
                )
            })?),
        };
        let non_empty = |values: &Option<Vec<&'a [u8]>>| -> Option<&'a [u8]> {
            values
                .as_ref()
                .map(|values| values[number])
                .filter(|value| !value.is_empty())
        };
        files.push(FileEntry {
            path: PathBuf::from(OsStr::from_bytes(&path)),
            diverted_from: None,
            package: Arc::clone(package),
            digest,
            kind: mode.map_or(FileKind::Unknown, FileKind::from_mode),
            mode: mode.map(|mode| mode & 0o7777),
            owner: non_empty(&users).map(lossy),
            group: non_empty(&groups).map(lossy),
            size: sizes.as_ref().map(|sizes| sizes[number]),
            link_target: non_empty(&links).map(|target| PathBuf::from(OsStr::from_bytes(target))),
            conffile: file_flags.contains(FileFlags::CONFIG),
            flags: file_flags,
        });
    }
    Ok(files)
}

/// rpm file flags we carry over; our [`FileFlags`] use the same bits for them.
const RPM_FLAG_MASK: u32 = FileFlags::CONFIG.0
    | FileFlags::DOC.0
    | FileFlags::MISSINGOK.0
    | FileFlags::NOREPLACE.0
    | FileFlags::GHOST.0
    | FileFlags::LICENSE.0
    | FileFlags::README.0
    | FileFlags::ARTIFACT.0;

/// Builds a header blob from entries, for tests and fuzz seeds.
pub fn build_blob(entries: &[(u32, u32, u32, &[u8])]) -> Vec<u8> {
    let mut index = Vec::new();
    let mut data = Vec::new();
    for (tag, kind, count, bytes) in entries {
        let alignment = match *kind {
            kind::INT16 => 2,
            kind::INT32 => 4,
            kind::INT64 => 8,
            _ => 1,
        };
        while data.len() % alignment != 0 {
            data.push(0);
        }
        for value in [*tag, *kind, data.len() as u32, *count] {
            index.extend_from_slice(&value.to_be_bytes());
        }
        data.extend_from_slice(bytes);
    }
    let mut blob = Vec::new();
    blob.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    blob.extend_from_slice(&(data.len() as u32).to_be_bytes());
    blob.extend_from_slice(&index);
    blob.extend_from_slice(&data);
    blob
}

/// Type numbers for [`build_blob`].
pub mod types {
    pub const INT16: u32 = super::kind::INT16;
    pub const INT32: u32 = super::kind::INT32;
    pub const STRING: u32 = super::kind::STRING;
    pub const STRING_ARRAY: u32 = super::kind::STRING_ARRAY;
    pub const CHAR: u32 = super::kind::CHAR;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        build_blob(&[
            (tag::NAME, types::STRING, 1, b"demo\0"),
            (tag::VERSION, types::STRING, 1, b"1.0\0"),
            (tag::RELEASE, types::STRING, 1, b"1\0"),
            (tag::ARCH, types::STRING, 1, b"noarch\0"),
            (tag::BASENAMES, types::STRING_ARRAY, 2, b"demo.conf\0link\0"),
            (tag::DIRNAMES, types::STRING_ARRAY, 1, b"/etc/\0"),
            (tag::DIRINDEXES, types::INT32, 2, &[0, 0, 0, 0, 0, 0, 0, 0]),
            (
                tag::FILEMODES,
                types::INT16,
                2,
                &[0o100644u16.to_be_bytes(), 0o120777u16.to_be_bytes()].concat(),
            ),
            (tag::FILEFLAGS, types::INT32, 2, &[0, 0, 0, 1, 0, 0, 0, 0]),
            (tag::FILESTATES, types::CHAR, 2, &[0, 0]),
            (
                tag::FILEDIGESTS,
                types::STRING_ARRAY,
                2,
                b"d41d8cd98f00b204e9800998ecf8427e\0\0",
            ),
            (tag::FILELINKTOS, types::STRING_ARRAY, 2, b"\0demo.conf\0"),
            (tag::FILEUSERNAME, types::STRING_ARRAY, 2, b"root\0root\0"),
            (tag::FILEGROUPNAME, types::STRING_ARRAY, 2, b"root\0root\0"),
        ])
    }

    #[test]
    fn reads_files_from_a_well_formed_header() {
        let package = read_package(&sample()).unwrap();
        assert_eq!(package.info.name, "demo");
        assert_eq!(package.info.version, "1.0-1");
        assert_eq!(package.files.len(), 2);
        let conf = &package.files[0];
        assert_eq!(conf.path, PathBuf::from("/etc/demo.conf"));
        assert!(conf.conffile);
        assert_eq!(conf.mode, Some(0o644));
        assert_eq!(conf.kind, FileKind::Regular);
        assert_eq!(conf.digest.as_ref().unwrap().algo, DigestAlgo::Md5);
        let link = &package.files[1];
        assert_eq!(link.kind, FileKind::Symlink);
        assert_eq!(link.link_target, Some(PathBuf::from("demo.conf")));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let blob = sample();
        for length in 0..blob.len() {
            assert!(read_package(&blob[..length]).is_err(), "length {length}");
        }
    }

    #[test]
    fn offset_beyond_data_names_the_byte() {
        let mut blob = sample();
        // First index entry's offset field.
        blob[8 + 8..8 + 12].copy_from_slice(&u32::MAX.to_be_bytes());
        let error = read_package(&blob).unwrap_err();
        assert_eq!(error.byte, 16);
    }

    #[test]
    fn huge_counts_are_rejected() {
        let mut blob = sample();
        let basenames_entry = 8 + 4 * 16;
        blob[basenames_entry + 12..basenames_entry + 16].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(read_package(&blob).is_err());
        let mut blob = sample();
        blob[0..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(read_package(&blob).is_err());
    }

    #[test]
    fn dir_index_out_of_range_is_an_error() {
        let blob = build_blob(&[
            (tag::NAME, types::STRING, 1, b"x\0"),
            (tag::BASENAMES, types::STRING_ARRAY, 1, b"a\0"),
            (tag::DIRNAMES, types::STRING_ARRAY, 1, b"/\0"),
            (tag::DIRINDEXES, types::INT32, 1, &[0, 0, 0, 7]),
        ]);
        assert!(
            read_package(&blob)
                .unwrap_err()
                .message
                .contains("directory index")
        );
    }
}
