//! Files already open for write when the recorder starts: their writers acted (or may still act)
//! before any event could report them. Found by the kernel's `iter/task_file` iterator (decoded
//! here), or, where it cannot be loaded, by scanning `/proc/<pid>/fdinfo` flags.

use std::{
    fs,
    os::unix::{ffi::OsStrExt, fs::MetadataExt},
    path::Path,
};

use tracing::debug;

use verifier_common::{COMM_LEN, OPEN_WRITER_FIXED, OpenWriterRecord, origin};

use crate::{
    ebpf::devno,
    events::{FileId, PathOrigin, PreexistingWriterEvent, ReportedPath},
};

/// Decodes the iterator's output: a sequence of `OpenWriterRecord` fixed parts, each followed by
/// its path bytes. Our own process is left out. A cut-off tail is ignored (it cannot happen:
/// the kernel writes each record whole or not at all).
pub fn decode_iterator_output(bytes: &[u8], now: u64, own_pid: u32) -> Vec<PreexistingWriterEvent> {
    let mut found = Vec::new();
    let mut rest = bytes;
    while rest.len() >= OPEN_WRITER_FIXED {
        let mut fixed = [0u8; size_of::<OpenWriterRecord>()];
        fixed[..OPEN_WRITER_FIXED].copy_from_slice(&rest[..OPEN_WRITER_FIXED]);
        // SAFETY: the buffer is as large as the record, which is plain old data.
        let record: OpenWriterRecord = unsafe { std::ptr::read_unaligned(fixed.as_ptr().cast()) };
        let path_len = record.path.len as usize;
        let Some(path) = rest.get(OPEN_WRITER_FIXED..OPEN_WRITER_FIXED + path_len) else {
            break;
        };
        rest = &rest[OPEN_WRITER_FIXED + path_len..];
        if record.pid == own_pid {
            continue;
        }
        let comm = &record.comm[..COMM_LEN];
        let comm_len = comm.iter().position(|&b| b == 0).unwrap_or(COMM_LEN);
        found.push(PreexistingWriterEvent {
            time: now,
            pid: record.pid,
            comm: comm[..comm_len].to_vec(),
            path: ReportedPath {
                bytes: path.to_vec(),
                origin: if record.path.origin == origin::KERNEL {
                    PathOrigin::Kernel
                } else {
                    PathOrigin::UserUnresolved
                },
                truncated: record.path.truncated != 0 || record.path.origin == origin::NONE,
            },
            file: FileId {
                dev: devno::kernel_to_user(record.dev),
                ino: record.ino,
            },
        });
    }
    found
}

const O_ACCMODE: u32 = 0o3;

/// Every open file with write access under `proc_root` (normally `/proc`), except our own.
pub fn scan_proc(proc_root: &Path) -> std::io::Result<Vec<PreexistingWriterEvent>> {
    let now = crate::intake::wall_clock_now();
    let own_pid = std::process::id();
    let mut found = Vec::new();
    for entry in fs::read_dir(proc_root)? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == own_pid {
            continue;
        }
        // Processes come and go while we scan: a vanished one is simply skipped.
        if let Err(error) = scan_process(&entry.path(), pid, now, &mut found) {
            debug!(pid, %error, "skipping process");
        }
    }
    Ok(found)
}

fn scan_process(
    dir: &Path,
    pid: u32,
    now: u64,
    found: &mut Vec<PreexistingWriterEvent>,
) -> std::io::Result<()> {
    let comm = fs::read(dir.join("comm"))
        .map(|mut c| {
            if c.last() == Some(&b'\n') {
                c.pop();
            }
            c
        })
        .unwrap_or_default();
    for fd in fs::read_dir(dir.join("fd"))? {
        let Ok(fd) = fd else { continue };
        let name = fd.file_name();
        let Ok(info) = fs::read_to_string(dir.join("fdinfo").join(&name)) else {
            continue;
        };
        let Some(flags) = info
            .lines()
            .find_map(|line| line.strip_prefix("flags:"))
            .and_then(|value| u32::from_str_radix(value.trim(), 8).ok())
        else {
            continue;
        };
        if flags & O_ACCMODE == 0 {
            continue;
        }
        let Ok(target) = fs::read_link(fd.path()) else {
            continue;
        };
        // Only files with a path (not pipes, sockets, anon inodes).
        if !target.as_os_str().as_bytes().starts_with(b"/") {
            continue;
        }
        let Ok(meta) = fs::metadata(fd.path()) else {
            continue;
        };
        if !meta.file_type().is_file() {
            continue;
        }
        found.push(PreexistingWriterEvent {
            time: now,
            pid,
            comm: comm.clone(),
            path: ReportedPath {
                bytes: target.as_os_str().as_bytes().to_vec(),
                origin: PathOrigin::Kernel,
                truncated: false,
            },
            file: FileId {
                dev: meta.dev(),
                ino: meta.ino(),
            },
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use verifier_common::{PATH_CAP, PathInfo};

    use super::*;

    fn record(pid: u32, path: &[u8]) -> Vec<u8> {
        let mut record = OpenWriterRecord {
            pid,
            fd: 3,
            dev: (254 << 20) | 1,
            ino: 77,
            comm: *b"holder\0\0\0\0\0\0\0\0\0\0",
            f_mode: 0x2,
            path: PathInfo {
                len: path.len() as u16,
                origin: origin::KERNEL,
                truncated: 0,
            },
            data: [0; PATH_CAP],
        };
        record.data[..path.len()].copy_from_slice(path);
        // SAFETY: the bytes of a plain #[repr(C)] value.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&record as *const OpenWriterRecord).cast::<u8>(),
                OPEN_WRITER_FIXED + path.len(),
            )
        };
        bytes.to_vec()
    }

    #[test]
    fn iterator_records_are_split_and_our_own_pid_is_left_out() {
        let mut stream = record(10, b"/var/log/a.log");
        stream.extend(record(99, b"/mine"));
        stream.extend(record(11, b"/tmp/b"));
        // A cut-off tail is ignored.
        stream.extend(&record(12, b"/cut")[..20]);
        let found = decode_iterator_output(&stream, 5, 99);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].pid, 10);
        assert_eq!(found[0].path.bytes, b"/var/log/a.log");
        assert_eq!(found[0].comm, b"holder");
        assert_eq!(
            found[0].file,
            FileId {
                dev: libc::makedev(254, 1),
                ino: 77
            }
        );
        assert_eq!(found[1].path.bytes, b"/tmp/b");
    }
}
