//! Which paths the store keeps on disk (under a watched root, matched on whole components) and
//! which paths are a package database lock (a transaction root opening one is the package
//! manager really at work).

use std::{os::unix::ffi::OsStrExt, path::PathBuf};

use crate::events::ReportedPath;

/// `path` is `root` or lies below it, comparing whole components.
pub fn is_under(path: &[u8], root: &[u8]) -> bool {
    let root = trim_trailing_slashes(root);
    if root.is_empty() {
        return path.starts_with(b"/");
    }
    match path.strip_prefix(root) {
        Some(rest) => rest.is_empty() || rest.starts_with(b"/"),
        None => false,
    }
}

fn trim_trailing_slashes(path: &[u8]) -> &[u8] {
    let mut end = path.len();
    while end > 0 && path[end - 1] == b'/' {
        end -= 1;
    }
    &path[..end]
}

/// `suffix` (a truncated or relative path) could be the tail of `path`, on whole components.
pub fn could_be_tail_of(suffix: &[u8], path: &[u8], whole_components: bool) -> bool {
    let suffix = suffix.strip_prefix(b"./").unwrap_or(suffix);
    if suffix.is_empty() || !path.ends_with(suffix) {
        return false;
    }
    if !whole_components {
        return true;
    }
    let before = path.len() - suffix.len();
    before == 0 || path[before - 1] == b'/' || suffix.starts_with(b"/")
}

/// The watched roots from the configuration.
#[derive(Debug, Clone)]
pub struct WatchedRoots {
    roots: Vec<Vec<u8>>,
}

impl WatchedRoots {
    pub fn new(roots: &[PathBuf]) -> Self {
        Self {
            roots: roots
                .iter()
                .map(|root| root.as_os_str().as_bytes().to_vec())
                .collect(),
        }
    }

    /// Whether operations on this path are kept on disk. A path the recorder could not anchor
    /// (truncated, or relative and unresolved) might be anywhere, so it is kept too.
    pub fn keeps(&self, path: &ReportedPath) -> bool {
        if path.truncated || path.origin == crate::events::PathOrigin::UserUnresolved {
            return true;
        }
        self.contains(&path.bytes)
    }

    pub fn contains(&self, path: &[u8]) -> bool {
        self.roots.iter().any(|root| is_under(path, root))
    }
}

/// Paths whose write-open by a transaction root shows the package database being locked.
#[derive(Debug, Clone)]
pub struct PackageLocks {
    dpkg_admindirs: Vec<Vec<u8>>,
    rpm_dbpaths: Vec<Vec<u8>>,
}

impl Default for PackageLocks {
    fn default() -> Self {
        Self {
            dpkg_admindirs: vec![b"/var/lib/dpkg".to_vec()],
            rpm_dbpaths: vec![b"/var/lib/rpm".to_vec(), b"/usr/lib/sysimage/rpm".to_vec()],
        }
    }
}

impl PackageLocks {
    /// Lock paths for a given dpkg admin directory and rpm database directory (added to the
    /// defaults: a package manager may be pointed at either).
    pub fn new(
        dpkg_admindir: Option<&std::path::Path>,
        rpm_dbpath: Option<&std::path::Path>,
    ) -> Self {
        let mut locks = Self::default();
        if let Some(dir) = dpkg_admindir {
            locks
                .dpkg_admindirs
                .push(dir.as_os_str().as_bytes().to_vec());
        }
        if let Some(dir) = rpm_dbpath {
            locks.rpm_dbpaths.push(dir.as_os_str().as_bytes().to_vec());
        }
        locks
    }

    /// dpkg: `<admindir>/lock`, `lock-frontend` (any `lock*` directly in the admin dir);
    /// rpm: `<dbpath>/.rpm.lock` or the database files in the dbpath.
    pub fn is_lock(&self, path: &[u8]) -> bool {
        let Some((directory, name)) = split_last_component(path) else {
            return false;
        };
        let same = |dirs: &[Vec<u8>]| {
            dirs.iter()
                .any(|dir| trim_trailing_slashes(dir) == directory)
        };
        (same(&self.dpkg_admindirs) && name.starts_with(b"lock"))
            || (same(&self.rpm_dbpaths)
                && (name == b".rpm.lock" || name == b"rpmdb.sqlite" || name == b"Packages"))
    }
}

fn split_last_component(path: &[u8]) -> Option<(&[u8], &[u8])> {
    let slash = path.iter().rposition(|&byte| byte == b'/')?;
    Some((&path[..slash], &path[slash + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_component_prefix() {
        assert!(is_under(b"/etc", b"/etc"));
        assert!(is_under(b"/etc/passwd", b"/etc"));
        assert!(is_under(b"/etc/passwd", b"/etc/"));
        assert!(!is_under(b"/etcetera/x", b"/etc"));
        assert!(!is_under(b"/usr/binx/y", b"/usr/bin"));
        assert!(is_under(b"/anything", b"/"));
    }

    #[test]
    fn tails() {
        assert!(could_be_tail_of(b"bin/ls", b"/usr/bin/ls", true));
        assert!(!could_be_tail_of(b"in/ls", b"/usr/bin/ls", true));
        assert!(could_be_tail_of(b"in/ls", b"/usr/bin/ls", false));
        assert!(could_be_tail_of(b"./ls", b"/usr/bin/ls", true));
    }

    #[test]
    fn package_locks() {
        let locks = PackageLocks::default();
        assert!(locks.is_lock(b"/var/lib/dpkg/lock"));
        assert!(locks.is_lock(b"/var/lib/dpkg/lock-frontend"));
        assert!(!locks.is_lock(b"/var/lib/dpkg/status"));
        assert!(!locks.is_lock(b"/var/lib/dpkg/info/lock"));
        assert!(locks.is_lock(b"/var/lib/rpm/.rpm.lock"));
        assert!(locks.is_lock(b"/usr/lib/sysimage/rpm/rpmdb.sqlite"));
        assert!(!locks.is_lock(b"/tmp/lock"));
    }
}
