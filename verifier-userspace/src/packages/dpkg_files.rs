//! Parsers for dpkg's database files: `status`, `info/<pkg>.list`, `info/<pkg>.md5sums`,
//! `diversions` and `statoverride`. Each takes the file's bytes and returns what it could parse
//! plus one [`DbError`] per bad line or stanza; none panics on any input (they are fuzzed).

use std::{
    ffi::OsStr,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

use super::{DbError, Digest, DigestAlgo, PackageState, Position};

/// A conffile as the status file records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conffile {
    pub path: PathBuf,
    /// `None` for `newconffile` (unpacked, not yet configured).
    pub digest: Option<Digest>,
    pub obsolete: bool,
    pub remove_on_upgrade: bool,
}

/// One package stanza of the status file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRecord {
    pub package: String,
    pub version: String,
    pub arch: String,
    pub state: PackageState,
    pub reinstall_required: bool,
    pub multi_arch_same: bool,
    pub conffiles: Vec<Conffile>,
    /// Package names in `Replaces:` (version constraints and architecture qualifiers dropped).
    pub replaces: Vec<String>,
    /// Line of the stanza's first field.
    pub line: usize,
}

/// Lines of `bytes` with their 1-based numbers (no line terminators).
fn numbered_lines(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let trimmed = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let empty = trimmed.is_empty();
    trimmed
        .split(|byte| *byte == b'\n')
        .enumerate()
        .filter(move |_| !empty)
        .map(|(index, line)| (index + 1, line))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn path_of(bytes: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(bytes))
}

/// Parses the status file. `file` names it in errors.
pub fn parse_status(file: &Path, bytes: &[u8]) -> (Vec<StatusRecord>, Vec<DbError>) {
    let mut records = Vec::new();
    let mut errors = Vec::new();
    let mut stanza = StanzaBuilder::default();
    for (line_number, line) in numbered_lines(bytes) {
        if line.iter().all(|byte| byte.is_ascii_whitespace()) {
            stanza.finish(file, &mut records, &mut errors);
            continue;
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            stanza.continuation(file, line_number, line, &mut errors);
            continue;
        }
        let Some(colon) = line.iter().position(|byte| *byte == b':') else {
            errors.push(DbError::new(
                file,
                Some(Position::Line(line_number)),
                format!("not a `Field: value` line: {:?}", text(truncate(line))),
            ));
            stanza.broken = true;
            continue;
        };
        let name = &line[..colon];
        let value = trim(&line[colon + 1..]);
        stanza.field(line_number, name, value);
    }
    stanza.finish(file, &mut records, &mut errors);
    (records, errors)
}

fn truncate(line: &[u8]) -> &[u8] {
    &line[..line.len().min(80)]
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|byte| !byte.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|byte| !byte.is_ascii_whitespace())
        .map_or(start, |last| last + 1);
    &bytes[start..end.max(start)]
}

/// Accumulates one stanza's fields until the blank line that ends it.
#[derive(Default)]
struct StanzaBuilder {
    first_line: Option<usize>,
    package: Option<String>,
    version: Option<String>,
    arch: Option<String>,
    status: Option<(usize, String)>,
    multi_arch_same: bool,
    replaces: Vec<String>,
    in_conffiles: bool,
    conffiles: Vec<(usize, Vec<u8>)>,
    broken: bool,
}

impl StanzaBuilder {
    fn field(&mut self, line_number: usize, name: &[u8], value: &[u8]) {
        self.first_line.get_or_insert(line_number);
        self.in_conffiles = false;
        match name.to_ascii_lowercase().as_slice() {
            b"package" => self.package = Some(text(value)),
            b"version" => self.version = Some(text(value)),
            b"architecture" => self.arch = Some(text(value)),
            b"status" => self.status = Some((line_number, text(value))),
            b"multi-arch" => self.multi_arch_same = value == b"same",
            b"replaces" => self.replaces = parse_relation_names(value),
            b"conffiles" => {
                self.in_conffiles = true;
                if !value.is_empty() {
                    self.conffiles.push((line_number, value.to_vec()));
                }
            }
            _ => {}
        }
    }

    fn continuation(
        &mut self,
        file: &Path,
        line_number: usize,
        line: &[u8],
        errors: &mut Vec<DbError>,
    ) {
        if self.first_line.is_none() {
            errors.push(DbError::new(
                file,
                Some(Position::Line(line_number)),
                "continuation line outside any field",
            ));
            self.broken = true;
        } else if self.in_conffiles {
            self.conffiles.push((line_number, trim(line).to_vec()));
        }
    }

    fn finish(&mut self, file: &Path, records: &mut Vec<StatusRecord>, errors: &mut Vec<DbError>) {
        let stanza = std::mem::take(self);
        let Some(first_line) = stanza.first_line else {
            return;
        };
        let at = Some(Position::Line(first_line));
        let Some(package) = stanza.package.filter(|name| !name.is_empty()) else {
            errors.push(DbError::new(file, at, "stanza without a Package field"));
            return;
        };
        let Some((status_line, status)) = stanza.status else {
            errors.push(DbError::new(
                file,
                at,
                format!("package {package}: stanza without a Status field (file truncated?)"),
            ));
            return;
        };
        let words: Vec<&str> = status.split_ascii_whitespace().collect();
        let (flag, state) = match words.as_slice() {
            [_want, flag, state] => (*flag, PackageState::from_dpkg(state)),
            _ => ("", None),
        };
        let Some(state) = state.filter(|_| matches!(flag, "ok" | "reinstreq")) else {
            errors.push(DbError::new(
                file,
                Some(Position::Line(status_line)),
                format!("package {package}: bad Status {status:?}"),
            ));
            return;
        };
        let conffiles = stanza
            .conffiles
            .iter()
            .filter_map(|(line_number, line)| match parse_conffile_line(line) {
                Ok(conffile) => Some(conffile),
                Err(message) => {
                    errors.push(DbError::new(
                        file,
                        Some(Position::Line(*line_number)),
                        format!("package {package}: {message}"),
                    ));
                    None
                }
            })
            .collect();
        if stanza.broken {
            errors.push(DbError::new(
                file,
                at,
                format!("package {package}: stanza has malformed lines; kept the fields it has"),
            ));
        }
        records.push(StatusRecord {
            package,
            version: stanza.version.unwrap_or_default(),
            arch: stanza.arch.unwrap_or_default(),
            state,
            reinstall_required: flag == "reinstreq",
            multi_arch_same: stanza.multi_arch_same,
            conffiles,
            replaces: stanza.replaces,
            line: first_line,
        });
    }
}

/// The package names of a relationship field such as `Replaces: a (<< 2), b:any | c`: each name
/// without its version constraint or architecture qualifier.
fn parse_relation_names(value: &[u8]) -> Vec<String> {
    text(value)
        .split([',', '|'])
        .filter_map(|relation| {
            let name = relation
                .trim()
                .split(|c: char| c == '(' || c == ':' || c.is_whitespace())
                .next()?;
            (!name.is_empty()).then(|| name.to_owned())
        })
        .collect()
}

/// ` /etc/foo.conf <md5|newconffile> [obsolete] [remove-on-upgrade]`: the path may contain
/// spaces, so the hash and marks are taken from the right.
fn parse_conffile_line(line: &[u8]) -> Result<Conffile, String> {
    let mut rest = trim(line);
    let mut obsolete = false;
    let mut remove_on_upgrade = false;
    loop {
        let (head, last) = split_last_word(rest);
        match last {
            b"obsolete" if !head.is_empty() => obsolete = true,
            b"remove-on-upgrade" if !head.is_empty() => remove_on_upgrade = true,
            _ => break,
        }
        rest = head;
    }
    let (path, hash) = split_last_word(rest);
    if path.is_empty() || !path.starts_with(b"/") {
        return Err(format!(
            "conffile line without a path: {:?}",
            text(truncate(line))
        ));
    }
    let digest = match hash {
        b"newconffile" => None,
        hex => Some(Digest::from_hex(DigestAlgo::Md5, hex).ok_or_else(|| {
            format!("conffile {}: bad md5 {:?}", text(path), text(truncate(hex)))
        })?),
    };
    Ok(Conffile {
        path: path_of(path),
        digest,
        obsolete,
        remove_on_upgrade,
    })
}

fn split_last_word(bytes: &[u8]) -> (&[u8], &[u8]) {
    match bytes
        .iter()
        .rposition(|byte| *byte == b' ' || *byte == b'\t')
    {
        Some(space) => (trim(&bytes[..space]), &bytes[space + 1..]),
        None => (&[], bytes),
    }
}

/// Parses `info/<pkg>.list`: one absolute path per line (`/.` is the root directory).
pub fn parse_list(file: &Path, bytes: &[u8]) -> (Vec<PathBuf>, Vec<DbError>) {
    let mut paths = Vec::new();
    let mut errors = Vec::new();
    for (line_number, line) in numbered_lines(bytes) {
        match line {
            b"" => {}
            b"/." => paths.push(PathBuf::from("/")),
            path if path.starts_with(b"/") && !path.contains(&0) => paths.push(path_of(path)),
            other => errors.push(DbError::new(
                file,
                Some(Position::Line(line_number)),
                format!("not an absolute path: {:?}", text(truncate(other))),
            )),
        }
    }
    (paths, errors)
}

/// Parses `info/<pkg>.md5sums`: `<32 hex>  <path without leading slash>` per line.
pub fn parse_md5sums(file: &Path, bytes: &[u8]) -> (Vec<(PathBuf, Digest)>, Vec<DbError>) {
    let mut sums = Vec::new();
    let mut errors = Vec::new();
    for (line_number, line) in numbered_lines(bytes) {
        if line.is_empty() {
            continue;
        }
        match parse_md5sums_line(line) {
            Ok(sum) => sums.push(sum),
            Err(message) => errors.push(DbError::new(
                file,
                Some(Position::Line(line_number)),
                message,
            )),
        }
    }
    (sums, errors)
}

fn parse_md5sums_line(line: &[u8]) -> Result<(PathBuf, Digest), String> {
    let (hex, rest) = line.split_at_checked(32).ok_or_else(|| {
        format!(
            "line too short for an md5 and a path: {:?}",
            text(truncate(line))
        )
    })?;
    let digest =
        Digest::from_hex(DigestAlgo::Md5, hex).ok_or_else(|| format!("bad md5 {:?}", text(hex)))?;
    let path = match rest {
        [b' ', b' ' | b'*', path @ ..] | [b' ', path @ ..] => path,
        _ => return Err("no separator between md5 and path".to_owned()),
    };
    let path = path.strip_prefix(b"/").unwrap_or(path);
    if path.is_empty() || path.contains(&0) {
        return Err(format!("md5 {} without a path", text(hex)));
    }
    let mut absolute = Vec::with_capacity(path.len() + 1);
    absolute.push(b'/');
    absolute.extend_from_slice(path);
    Ok((path_of(&absolute), digest))
}

/// One `dpkg-divert` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diversion {
    pub from: PathBuf,
    pub to: PathBuf,
    /// The diverting package; `None` for a local (administrator) diversion (`:`).
    pub by: Option<String>,
}

/// Parses `diversions`: records of three lines (from, to, package or `:`).
pub fn parse_diversions(file: &Path, bytes: &[u8]) -> (Vec<Diversion>, Vec<DbError>) {
    let lines: Vec<(usize, &[u8])> = numbered_lines(bytes).collect();
    let mut diversions = Vec::new();
    let mut errors = Vec::new();
    for record in lines.chunks(3) {
        let &[(line, from), (_, to), (_, by)] = record else {
            let line = record.first().map_or(0, |(line, _)| *line);
            errors.push(DbError::new(
                file,
                Some(Position::Line(line)),
                "incomplete diversion record (needs from, to and package lines)",
            ));
            continue;
        };
        if !from.starts_with(b"/") || !to.starts_with(b"/") || by.is_empty() {
            errors.push(DbError::new(
                file,
                Some(Position::Line(line)),
                format!(
                    "malformed diversion record starting {:?}",
                    text(truncate(from))
                ),
            ));
            continue;
        }
        diversions.push(Diversion {
            from: path_of(from),
            to: path_of(to),
            by: (by != b":").then(|| text(by)),
        });
    }
    (diversions, errors)
}

/// One `dpkg-statoverride` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatOverride {
    /// A user name, or `#uid`.
    pub owner: String,
    /// A group name, or `#gid`.
    pub group: String,
    pub mode: u32,
    pub path: PathBuf,
}

/// Parses `statoverride`: `owner group octal-mode path` per line.
pub fn parse_statoverride(file: &Path, bytes: &[u8]) -> (Vec<StatOverride>, Vec<DbError>) {
    let mut overrides = Vec::new();
    let mut errors = Vec::new();
    for (line_number, line) in numbered_lines(bytes) {
        if line.is_empty() {
            continue;
        }
        match parse_statoverride_line(line) {
            Some(record) => overrides.push(record),
            None => errors.push(DbError::new(
                file,
                Some(Position::Line(line_number)),
                format!("not `owner group mode path`: {:?}", text(truncate(line))),
            )),
        }
    }
    (overrides, errors)
}

fn parse_statoverride_line(line: &[u8]) -> Option<StatOverride> {
    let mut fields = line.splitn(4, |byte| *byte == b' ');
    let owner = fields.next().filter(|field| !field.is_empty())?;
    let group = fields.next().filter(|field| !field.is_empty())?;
    let mode = std::str::from_utf8(fields.next()?).ok()?;
    let mode = u32::from_str_radix(mode, 8)
        .ok()
        .filter(|mode| *mode <= 0o7777)?;
    let path = fields.next().filter(|path| path.starts_with(b"/"))?;
    Some(StatOverride {
        owner: text(owner),
        group: text(group),
        mode,
        path: path_of(path),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &[u8] = b"Package: foo
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Version: 1.0-1
Conffiles:
 /etc/foo.conf 0123456789abcdef0123456789abcdef
 /etc/with space.conf 0123456789abcdef0123456789abcdef obsolete
 /etc/new.conf newconffile
 /etc/gone.conf 0123456789abcdef0123456789abcdef remove-on-upgrade
Description: a
 long description

Package: bar
Status: install reinstreq half-installed
Version: 2
Architecture: all
";

    fn status(bytes: &[u8]) -> (Vec<StatusRecord>, Vec<DbError>) {
        parse_status(Path::new("status"), bytes)
    }

    #[test]
    fn replaces_names_without_versions_or_arch() {
        let (records, errors) = status(
            b"Package: new\nStatus: install ok installed\nVersion: 1\n\
              Replaces: old (<< 2.0), other:any,third\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(records[0].replaces, ["old", "other", "third"]);
    }

    #[test]
    fn status_fields_and_conffile_marks() {
        let (records, errors) = status(STATUS);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(records.len(), 2);
        let foo = &records[0];
        assert_eq!(
            (foo.package.as_str(), foo.version.as_str()),
            ("foo", "1.0-1")
        );
        assert!(foo.multi_arch_same);
        assert_eq!(foo.state, PackageState::Installed);
        assert_eq!(foo.conffiles.len(), 4);
        assert_eq!(foo.conffiles[1].path, PathBuf::from("/etc/with space.conf"));
        assert!(foo.conffiles[1].obsolete);
        assert!(foo.conffiles[2].digest.is_none());
        assert!(foo.conffiles[3].remove_on_upgrade);
        assert_eq!(records[1].state, PackageState::HalfInstalled);
        assert!(records[1].reinstall_required);
    }

    #[test]
    fn status_cut_mid_stanza_names_the_line() {
        let cut = &STATUS[..STATUS.len() - 40];
        let (records, errors) = status(cut);
        assert_eq!(records.len(), 1, "the complete stanza still loads");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].position, Some(Position::Line(15)));
        assert!(errors[0].to_string().contains("bar"), "{}", errors[0]);
    }

    #[test]
    fn status_conffile_cut_mid_hash_is_an_error_for_that_conffile() {
        let (records, errors) =
            status(b"Package: a\nStatus: install ok installed\nConffiles:\n /etc/a 0123\n");
        assert_eq!(records.len(), 1);
        assert!(records[0].conffiles.is_empty());
        assert_eq!(errors[0].position, Some(Position::Line(4)));
    }

    #[test]
    fn status_garbage_does_not_panic_and_reports() {
        let (records, errors) = status(b"\xff\xfe\x00garbage\n \x01\nPackage\n:\n");
        assert!(records.is_empty());
        assert!(!errors.is_empty());
        let (_, errors) = status(b"Package: x\nStatus: install ok exploded\n");
        assert!(errors[0].message.contains("bad Status"));
    }

    #[test]
    fn list_rejects_relative_paths() {
        let (paths, errors) = parse_list(Path::new("x.list"), b"/.\n/usr\nusr/bin\n/usr/bin/x\n");
        assert_eq!(paths.len(), 3);
        assert_eq!(paths[0], PathBuf::from("/"));
        assert_eq!(errors[0].position, Some(Position::Line(3)));
    }

    #[test]
    fn md5sums_line_without_path_is_an_error() {
        let bytes = b"0123456789abcdef0123456789abcdef  usr/bin/x\n0123456789abcdef0123456789abcdef  \nzz\n0123456789abcdef0123456789abcdeg  usr/y\n";
        let (sums, errors) = parse_md5sums(Path::new("x.md5sums"), bytes);
        assert_eq!(sums.len(), 1);
        assert_eq!(sums[0].0, PathBuf::from("/usr/bin/x"));
        let lines: Vec<_> = errors.iter().map(|error| error.position).collect();
        assert_eq!(
            lines,
            [2, 3, 4].map(|line| Some(Position::Line(line))).to_vec()
        );
    }

    #[test]
    fn md5sums_multibyte_at_cut_does_not_panic() {
        let (_, errors) = parse_md5sums(Path::new("m"), "ééééééééééééééééé  x".as_bytes());
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn diversions_triples_and_truncation() {
        let (diversions, errors) = parse_diversions(
            Path::new("diversions"),
            b"/bin/sh\n/bin/sh.distrib\ndash\n/etc/x\n/etc/x.local\n:\n/usr/bin/y\n",
        );
        assert_eq!(diversions.len(), 2);
        assert_eq!(diversions[0].by.as_deref(), Some("dash"));
        assert_eq!(diversions[1].by, None);
        assert_eq!(errors[0].position, Some(Position::Line(7)));
    }

    #[test]
    fn statoverride_lines() {
        let (overrides, errors) = parse_statoverride(
            Path::new("statoverride"),
            b"root postdrop 2555 /usr/sbin/postqueue\nroot root 99999 /x\nroot root 644\n#0 #5 0640 /etc/a b\n",
        );
        assert_eq!(overrides.len(), 2);
        assert_eq!(overrides[0].mode, 0o2555);
        assert_eq!(overrides[1].path, PathBuf::from("/etc/a b"));
        assert_eq!(errors.len(), 2);
    }
}
