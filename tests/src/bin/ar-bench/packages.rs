//! The throwaway packages the benchmark upgrades: a bulk package with many small files (one
//! version per upgrade round) and a round-trip package (two versions), all under one unique
//! directory in /usr/lib (a watched root). Also the md5/sha1/sha256 of every file of each version,
//! for the alert blocks syscheck would write.
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};
use tests::debs::Deb;

/// Every installed package of a benchmark run starts with this (leftovers are purged by it).
pub const NAME_PREFIX: &str = "verifier-arbench";

/// One file's sizes and hashes in one version.
#[derive(Debug, Clone, Default)]
pub struct FileHashes {
    pub size: usize,
    pub md5: String,
    pub sha1: String,
    pub sha256: String,
}

/// One built version of a package.
pub struct Version {
    pub deb: PathBuf,
    /// By install path.
    pub hashes: HashMap<String, FileHashes>,
}

/// A package with its install paths and built versions (index 0 is installed first).
pub struct Package {
    pub name: String,
    pub paths: Vec<String>,
    pub versions: Vec<Version>,
}

/// Builds `versions` versions of a package with `files` files under `/usr/lib/<name>/`.
pub fn build(work: &Path, name: &str, files: usize, versions: usize) -> anyhow::Result<Package> {
    let paths: Vec<String> = (0..files)
        .map(|index| format!("/usr/lib/{name}/data/f{index:05}.txt"))
        .collect();
    let mut built = Vec::with_capacity(versions);
    for version in 1..=versions {
        let version_text = format!("{version}.0");
        let mut deb = Deb::new(name, &version_text);
        for (index, path) in paths.iter().enumerate() {
            deb = deb.file(path, content(name, version, index), 0o644);
        }
        let deb_path = deb.build(work);
        let root = work.join(format!("{name}-{version_text}-root"));
        let hashes = hash_tree(&root, &paths)?;
        built.push(Version {
            deb: deb_path,
            hashes,
        });
    }
    Ok(Package {
        name: name.to_owned(),
        paths,
        versions: built,
    })
}

/// 2–4 KiB of text that differs in every version and file.
fn content(name: &str, version: usize, index: usize) -> Vec<u8> {
    let lines = 40 + index % 40;
    let mut text = String::with_capacity(lines * 60);
    for line in 0..lines {
        text.push_str(&format!(
            "{name} version {version} file {index:05} line {line:03} {}\n",
            (version * 7919 + index * 104_729 + line * 31) % 1_000_003
        ));
    }
    text.into_bytes()
}

/// md5/sha1/sha256 of every file of a package build tree, from coreutils (three processes).
fn hash_tree(root: &Path, paths: &[String]) -> anyhow::Result<HashMap<String, FileHashes>> {
    let mut hashes: HashMap<String, FileHashes> = paths
        .iter()
        .map(|path| (path.clone(), FileHashes::default()))
        .collect();
    for path in paths {
        let on_disk = root.join(path.trim_start_matches('/'));
        let size = std::fs::metadata(&on_disk)
            .with_context(|| format!("stat {}", on_disk.display()))?
            .len();
        if let Some(entry) = hashes.get_mut(path) {
            entry.size = usize::try_from(size).unwrap_or(usize::MAX);
        }
    }
    for tool in ["md5sum", "sha1sum", "sha256sum"] {
        let relative: Vec<&str> = paths
            .iter()
            .map(|path| path.trim_start_matches('/'))
            .collect();
        let output = Command::new(tool)
            .args(&relative)
            .current_dir(root)
            .output()
            .with_context(|| format!("running {tool}"))?;
        if !output.status.success() {
            bail!("{tool} failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let Some((digest, file)) = line.split_once("  ") else {
                bail!("unexpected {tool} line {line:?}");
            };
            let Some(entry) = hashes.get_mut(&format!("/{file}")) else {
                bail!("{tool} named an unknown file {file:?}");
            };
            match tool {
                "md5sum" => entry.md5 = digest.to_owned(),
                "sha1sum" => entry.sha1 = digest.to_owned(),
                _ => entry.sha256 = digest.to_owned(),
            }
        }
    }
    Ok(hashes)
}

/// Installed packages left by an earlier, interrupted run.
pub fn leftovers() -> Vec<String> {
    let Ok(output) = Command::new("dpkg-query")
        .args(["-W", "-f", "${Package} ${db:Status-Abbrev}\n"])
        .arg(format!("{NAME_PREFIX}-*"))
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let (name, status) = line.split_once(' ')?;
            (!status.trim().starts_with("un") && !status.trim().is_empty()).then(|| name.to_owned())
        })
        .collect()
}

/// `dpkg -i` of several packages in one transaction, timed.
pub fn install(debs: &[&Path]) -> anyhow::Result<std::time::Duration> {
    let started = std::time::Instant::now();
    let output = Command::new("dpkg")
        .arg("-i")
        .args(debs)
        .output()
        .context("running dpkg -i")?;
    if !output.status.success() {
        bail!(
            "dpkg -i {debs:?} failed: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(started.elapsed())
}

/// Size and hashes of one file on disk (a file changed outside the package).
pub fn hash_file(path: &str) -> anyhow::Result<FileHashes> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("stat {path}"))?
        .len();
    let mut hashes = FileHashes {
        size: usize::try_from(size).unwrap_or(usize::MAX),
        ..FileHashes::default()
    };
    for tool in ["md5sum", "sha1sum", "sha256sum"] {
        let output = Command::new(tool)
            .arg(path)
            .output()
            .with_context(|| format!("running {tool}"))?;
        let text = String::from_utf8_lossy(&output.stdout);
        let digest = text
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        match tool {
            "md5sum" => hashes.md5 = digest,
            "sha1sum" => hashes.sha1 = digest,
            _ => hashes.sha256 = digest,
        }
    }
    Ok(hashes)
}
