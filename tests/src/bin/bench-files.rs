//! Workload (a) of the recorder benchmark (`cargo xtask bench recorder`): in `<dir>`, `<count>`
//! times, create a small file, write it, close it, rename it and unlink it — with plain syscalls
//! and no other work, so the syscalls (and whatever the recorder adds to them) dominate.
//!
//! Usage: `bench-files <dir> <count>`; prints the wall time in seconds on stdout.

use std::{ffi::CString, os::unix::ffi::OsStrExt as _, path::PathBuf, time::Instant};

use anyhow::{Context as _, bail};

/// The bytes each file holds.
const CONTENT: &[u8] = b"a small file written by the verifier recorder benchmark\n";

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), Some(count)) = (args.next(), args.next()) else {
        bail!("usage: bench-files <dir> <count>");
    };
    let dir = PathBuf::from(dir);
    let count: u64 = count
        .to_str()
        .context("count is not UTF-8")?
        .parse()
        .context("count is not a number")?;
    let started = Instant::now();
    for i in 0..count {
        let written = path(&dir, &format!("f{i}.tmp"))?;
        let renamed = path(&dir, &format!("f{i}"))?;
        create_and_write(&written)?;
        // SAFETY: valid NUL-terminated paths.
        check(
            unsafe { libc::rename(written.as_ptr(), renamed.as_ptr()) },
            "rename",
        )?;
        // SAFETY: a valid NUL-terminated path.
        check(unsafe { libc::unlink(renamed.as_ptr()) }, "unlink")?;
    }
    println!("{}", started.elapsed().as_secs_f64());
    Ok(())
}

fn path(dir: &std::path::Path, name: &str) -> anyhow::Result<CString> {
    CString::new(dir.join(name).as_os_str().as_bytes()).context("NUL in the workload directory")
}

fn create_and_write(path: &CString) -> anyhow::Result<()> {
    // SAFETY: a valid NUL-terminated path.
    let fd = check(
        unsafe {
            libc::openat(
                libc::AT_FDCWD,
                path.as_ptr(),
                libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC | libc::O_CLOEXEC,
                0o644,
            )
        },
        "openat",
    )?;
    // SAFETY: fd is ours; CONTENT is valid for its length.
    let written = unsafe { libc::write(fd, CONTENT.as_ptr().cast(), CONTENT.len()) };
    // SAFETY: fd is ours and closed once.
    unsafe { libc::close(fd) };
    if written != CONTENT.len() as isize {
        bail!("short write: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

fn check(ret: libc::c_int, what: &str) -> anyhow::Result<libc::c_int> {
    if ret < 0 {
        bail!("{what}: {}", std::io::Error::last_os_error());
    }
    Ok(ret)
}
