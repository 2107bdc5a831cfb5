//! Gathering [`super::Evidence`] for one alert: the path as the kernel names it, the file as it is
//! now, and whether the verification itself relies on it. The provenance and package parts are filled
//! by the daemon from the store and the package index.

use std::{
    collections::BTreeMap,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use super::{FileState, PackageEvidence};
use crate::{
    config::Config,
    packages::{FileKind, PathVerification},
};

/// Checks an alerted path and names it as the kernel does: absolute, no `.`/`..`, no NUL, and with
/// its directory resolved through symlinks (syscheck may report `/bin/x` where the kernel sees
/// `/usr/bin/x`). The last component is never followed: a symlink there is what gets verified.
pub fn kernel_path(reported: &str) -> Result<PathBuf, String> {
    if reported.is_empty() {
        return Err("empty path".into());
    }
    if reported.contains('\0') {
        return Err("path contains a NUL byte".into());
    }
    let path = Path::new(reported);
    if !path.is_absolute() {
        return Err(format!("{reported:?} is not an absolute path"));
    }
    // Path::components() silently drops inner `.`: look at the raw components.
    if reported.split('/').any(|part| part == "." || part == "..") {
        return Err(format!("{reported:?} contains . or .. components"));
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(format!("{reported:?} names no file"));
    };
    match dir.canonicalize() {
        Ok(dir) => Ok(dir.join(name)),
        // The directory is gone (a removed package's directory): keep the path as reported.
        Err(_) => Ok(path.to_owned()),
    }
}

/// The file as lstat sees it now; `None` when it does not exist.
pub fn current_state(path: &Path) -> Option<FileState> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    Some(FileState {
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.size(),
        mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
    })
}

/// Files the verification itself relies on, by their canonical path, with why.
#[derive(Debug, Clone, Default)]
pub struct SelfCritical {
    paths: BTreeMap<PathBuf, String>,
}

impl SelfCritical {
    /// The daemon's own binaries, its configuration, the package managers, the mail transport and
    /// whatever the policy adds.
    pub fn from_config(config: &Config, config_path: Option<&Path>) -> Self {
        let mut critical = Self::default();
        if let Ok(exe) = std::env::current_exe() {
            if let Some(dir) = exe.parent() {
                critical.add(&dir.join("verify-file"), "the verify-file shim");
            }
            critical.add(&exe, "the verifier daemon binary");
        }
        if let Some(path) = config_path {
            critical.add(path, "the verifier configuration");
        }
        for manager in &config.recorder.package_managers {
            critical.add(manager, "a package manager the verification trusts");
        }
        if config.mail.enabled {
            critical.add(&config.mail.sendmail_path, "the mail transport");
        }
        for path in &config.policy.self_critical_paths {
            critical.add(path, "listed in policy.self_critical_paths");
        }
        critical
    }

    /// Adds the path and, if it resolves elsewhere, its canonical form.
    pub fn add(&mut self, path: &Path, why: &str) {
        self.paths.insert(path.to_owned(), why.to_owned());
        if let Ok(canonical) = path.canonicalize() {
            self.paths.insert(canonical, why.to_owned());
        }
    }

    /// Why `path` is critical, if it is.
    pub fn reason(&self, path: &Path) -> Option<String> {
        self.paths.get(path).cloned().or_else(|| {
            let canonical = path.canonicalize().ok()?;
            self.paths.get(&canonical).cloned()
        })
    }
}

/// What the package databases say about the file now, from a fresh verification of it.
pub fn package_evidence(verification: &PathVerification) -> PackageEvidence {
    let owners = verification
        .owners
        .iter()
        .map(|owner| owner.package.to_string())
        .collect();
    let unsettled_state = verification
        .owners
        .iter()
        .find(|owner| !owner.package.state.is_settled() || owner.package.reinstall_required)
        .map(|owner| {
            if owner.package.reinstall_required {
                "reinstall-required".to_owned()
            } else {
                owner.package.state.to_string()
            }
        });
    let mut mismatches: Vec<String> = verification
        .mismatches()
        .map(|(package, mismatch)| format!("{mismatch} ({})", package.name))
        .collect();
    // dpkg records no target for symlinks and nothing for directories: for those the writer
    // evidence stands alone. A regular file must have had its content compared.
    let regular_file = verification.owners.iter().any(|owner| {
        owner
            .outcome
            .observed
            .is_some_and(|observed| observed.kind == FileKind::Regular)
    });
    if regular_file && verification.all_clean() && !verification.content_verified() {
        mismatches.push("the package database records no digest to compare".into());
    }
    PackageEvidence {
        owners,
        unsettled_state,
        is_conffile: verification.conffile(),
        mismatches,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unusable_paths() {
        for bad in [
            "",
            "relative/x",
            "/usr/../etc/passwd",
            "/usr/./bin",
            "/a\0b",
        ] {
            assert!(kernel_path(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn resolves_directory_symlinks_but_not_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("alias")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", real.join("link")).unwrap();
        let reported = dir.path().join("alias/link");
        let resolved = kernel_path(reported.to_str().unwrap()).unwrap();
        assert_eq!(resolved, real.canonicalize().unwrap().join("link"));
    }

    #[test]
    fn self_critical_matches_through_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("dpkg-real");
        std::fs::write(&target, b"x").unwrap();
        let link = dir.path().join("dpkg");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let mut critical = SelfCritical::default();
        critical.add(&link, "a package manager");
        assert!(critical.reason(&target).is_some());
        assert!(critical.reason(&dir.path().join("other")).is_none());
    }

    #[test]
    fn current_state_of_missing_file_is_none() {
        assert!(current_state(Path::new("/nonexistent/verifier/x")).is_none());
        assert!(current_state(Path::new("/etc/hostname")).is_some());
    }
}
