//! The host's package-transaction lock (`/tmp/verifier-dpkg.lock`, taken with `flock` by everything
//! that runs dpkg/rpm transactions on a shared machine). The benchmarks install packages and time
//! package-database readers, so they hold it for the whole run — unless an ancestor process already
//! holds it (`flock /tmp/verifier-dpkg.lock cargo xtask bench`), which would otherwise deadlock.
use std::{fs::File, os::fd::AsRawFd as _, os::unix::fs::MetadataExt as _, path::Path};

use anyhow::Context as _;

pub const LOCK_PATH: &str = "/tmp/verifier-dpkg.lock";

/// Held until dropped (closing the file releases the lock).
pub struct PackageLock {
    _file: Option<File>,
}

/// Takes the lock, waiting for other holders; returns at once if an ancestor holds it.
pub fn acquire() -> anyhow::Result<PackageLock> {
    let path = Path::new(LOCK_PATH);
    let file = File::options()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {LOCK_PATH}"))?;
    if try_lock(&file, libc::LOCK_EX | libc::LOCK_NB)? {
        return Ok(PackageLock { _file: Some(file) });
    }
    let holders = holders(&file);
    let ancestors = ancestors();
    if holders.iter().any(|pid| ancestors.contains(pid)) {
        eprintln!("xtask: {LOCK_PATH} is held by a parent process; not taking it again");
        return Ok(PackageLock { _file: None });
    }
    eprintln!("xtask: waiting for {LOCK_PATH} (held by pid {holders:?})");
    try_lock(&file, libc::LOCK_EX)?;
    Ok(PackageLock { _file: Some(file) })
}

/// As [`acquire`], for steps inside a benchmark run: when this process already holds the lock
/// (`cargo xtask bench` takes it for the whole run), a second `flock` from here would wait on
/// ourselves, so nothing more is taken.
pub fn acquire_within_run() -> anyhow::Result<PackageLock> {
    let file = File::options()
        .create(true)
        .append(true)
        .open(LOCK_PATH)
        .with_context(|| format!("opening {LOCK_PATH}"))?;
    let own_pid = i32::try_from(std::process::id()).unwrap_or(-1);
    if holders(&file).contains(&own_pid) {
        return Ok(PackageLock { _file: None });
    }
    acquire()
}

fn try_lock(file: &File, operation: libc::c_int) -> anyhow::Result<bool> {
    loop {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
            return Ok(true);
        }
        let error = std::io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Ok(false),
            _ => return Err(error).with_context(|| format!("flock {LOCK_PATH}")),
        }
    }
}

/// Pids holding a flock on this file, from /proc/locks (`… FLOCK ADVISORY WRITE <pid> maj:min:ino …`).
fn holders(file: &File) -> Vec<i32> {
    let Ok(metadata) = file.metadata() else {
        return Vec::new();
    };
    let inode = metadata.ino().to_string();
    let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    locks
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let device_inode = words.get(5)?;
            (device_inode.rsplit(':').next() == Some(inode.as_str()))
                .then(|| words.get(4)?.parse().ok())
                .flatten()
        })
        .collect()
}

/// This process and its ancestors, from /proc/<pid>/stat.
fn ancestors() -> Vec<i32> {
    let mut pids = Vec::new();
    let mut pid = i32::try_from(std::process::id()).unwrap_or(0);
    while pid > 1 && pids.len() < 64 {
        pids.push(pid);
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The command name may hold spaces and parentheses: the ppid follows the last ')'.
        pid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0);
    }
    pids
}
