//! Decoding one ring-buffer record into an [`Event`]: every length is checked against the bytes
//! received before anything is read; anything inconsistent is a [`DecodeError`] (counted as loss).

use verifier_common::{
    COMM_LEN, EXEC_FIXED, ExecRecord, ExitRecord, FILE_FIXED, FileRecord, ForkRecord,
    IoUringRecord, PathInfo, RecordHeader, file_op, kind, origin,
};

use crate::{
    ebpf::devno,
    events::{
        Actor, Event, ExecEvent, ExitEvent, FileEvent, FileId, FileOp, ForkEvent, IoUringEvent,
        PathOrigin, ReportedPath, TransactionRef,
    },
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record of {len} bytes is shorter than its fixed part ({need})")]
    Short { len: usize, need: usize },
    #[error("unknown record kind {0}")]
    UnknownKind(u32),
    #[error("unknown file operation {0}")]
    UnknownOp(u32),
    #[error("unknown path origin {0}")]
    UnknownOrigin(u8),
}

/// Converts kernel boot-clock times to wall-clock nanoseconds.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// wall − boot, in ns.
    pub boot_to_wall: i128,
}

impl Clock {
    pub fn wall(&self, boot_ns: u64) -> u64 {
        (boot_ns as i128 + self.boot_to_wall).clamp(0, u64::MAX as i128) as u64
    }
}

/// A `#[repr(C)]` record read from the front of `bytes`, after a length check.
fn read_fixed<T: Copy>(bytes: &[u8]) -> Result<T, DecodeError> {
    let need = size_of::<T>();
    if bytes.len() < need {
        return Err(DecodeError::Short {
            len: bytes.len(),
            need,
        });
    }
    // SAFETY: at least size_of::<T>() bytes are present; T is plain old data (every bit pattern
    // is valid for the wire structs); read_unaligned needs no alignment.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// A record whose data area is only partly sent: the fixed part plus `data_len` bytes.
fn read_prefix<T: Copy>(bytes: &[u8], fixed: usize) -> Result<T, DecodeError> {
    if bytes.len() < fixed {
        return Err(DecodeError::Short {
            len: bytes.len(),
            need: fixed,
        });
    }
    let mut full = vec![0u8; size_of::<T>()];
    let take = bytes.len().min(full.len());
    full[..take].copy_from_slice(&bytes[..take]);
    read_fixed(&full)
}

fn slice_at(data: &[u8], at: usize, len: usize, total: usize) -> Result<&[u8], DecodeError> {
    data.get(at..at + len).ok_or(DecodeError::Short {
        len: total,
        need: at + len,
    })
}

fn trim_nul(bytes: &[u8]) -> Vec<u8> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    bytes[..end].to_vec()
}

fn actor(header: &RecordHeader) -> Actor {
    Actor {
        pid: header.pid,
        tid: header.tid,
        ppid: header.ppid,
        uid: header.uid,
        euid: header.euid,
        start_time_ns: header.start_time_ns,
        comm: trim_nul(&header.comm[..COMM_LEN]),
        transaction: (header.txn_id != 0).then_some(TransactionRef {
            id: header.txn_id,
            depth: header.txn_depth,
        }),
    }
}

fn path_origin(code: u8) -> Result<PathOrigin, DecodeError> {
    match code {
        origin::KERNEL => Ok(PathOrigin::Kernel),
        origin::USER_RESOLVED => Ok(PathOrigin::UserResolved),
        origin::USER_UNRESOLVED => Ok(PathOrigin::UserUnresolved),
        other => Err(DecodeError::UnknownOrigin(other)),
    }
}

fn reported_path(info: &PathInfo, bytes: &[u8]) -> Result<ReportedPath, DecodeError> {
    Ok(ReportedPath {
        bytes: bytes.to_vec(),
        origin: path_origin(info.origin)?,
        truncated: info.truncated != 0,
    })
}

fn file_op_of(code: u32) -> Result<FileOp, DecodeError> {
    Ok(match code {
        file_op::OPEN_WRITE => FileOp::OpenWrite,
        file_op::TRUNCATE => FileOp::Truncate,
        file_op::RENAME => FileOp::Rename,
        file_op::RENAME_EXCHANGE => FileOp::RenameExchange,
        file_op::UNLINK => FileOp::Unlink,
        file_op::RMDIR => FileOp::Rmdir,
        file_op::LINK => FileOp::Link,
        file_op::SYMLINK => FileOp::Symlink,
        file_op::MKNOD => FileOp::Mknod,
        file_op::CHMOD => FileOp::Chmod,
        file_op::CHOWN => FileOp::Chown,
        file_op::SET_XATTR => FileOp::SetXattr,
        file_op::REMOVE_XATTR => FileOp::RemoveXattr,
        file_op::UTIMES => FileOp::Utimes,
        other => return Err(DecodeError::UnknownOp(other)),
    })
}

/// Decodes one record.
pub fn decode(bytes: &[u8], clock: &Clock) -> Result<Event, DecodeError> {
    let header: RecordHeader = read_fixed(bytes)?;
    let time = clock.wall(header.time_boot_ns);
    match header.kind {
        kind::EXEC => decode_exec(bytes, time),
        kind::FILE => decode_file(bytes, time),
        kind::FORK => {
            let record: ForkRecord = read_fixed(bytes)?;
            Ok(Event::Fork(ForkEvent {
                time,
                parent: actor(&record.header),
                child_pid: record.child_pid,
                child_start_time_ns: record.child_start_time_ns,
            }))
        }
        kind::EXIT => {
            let record: ExitRecord = read_fixed(bytes)?;
            Ok(Event::Exit(ExitEvent {
                time,
                actor: actor(&record.header),
                exit_status: record.exit_code,
                ends_transaction: record.ends_transaction != 0,
            }))
        }
        kind::IO_URING => {
            let record: IoUringRecord = read_fixed(bytes)?;
            Ok(Event::IoUring(IoUringEvent {
                time,
                actor: actor(&record.header),
                opcode: (record.has_opcode != 0).then_some(record.opcode),
            }))
        }
        other => Err(DecodeError::UnknownKind(other)),
    }
}

fn decode_exec(bytes: &[u8], time: u64) -> Result<Event, DecodeError> {
    let record: ExecRecord = read_prefix(bytes, EXEC_FIXED)?;
    let data = &bytes[EXEC_FIXED..];
    let exe_len = record.exe.len as usize;
    let exe_bytes = slice_at(data, 0, exe_len, bytes.len())?;
    let cmdline = slice_at(data, exe_len, record.cmdline_len as usize, bytes.len())?;
    let cmdline = cmdline.strip_suffix(&[0]).unwrap_or(cmdline).to_vec();
    let argv0 = trim_nul(&cmdline);
    let exe = if record.exe.origin == origin::NONE {
        ReportedPath {
            bytes: Vec::new(),
            origin: PathOrigin::UserUnresolved,
            truncated: true,
        }
    } else {
        reported_path(&record.exe, exe_bytes)?
    };
    Ok(Event::Exec(ExecEvent {
        time,
        actor: actor(&record.header),
        exe,
        exe_file: FileId {
            dev: devno::kernel_to_user(record.exe_dev),
            ino: record.exe_ino,
        },
        argv0,
        cmdline,
        cgroup_id: record.cgroup_id,
        starts_transaction: record.starts_transaction != 0,
    }))
}

fn decode_file(bytes: &[u8], time: u64) -> Result<Event, DecodeError> {
    let record: FileRecord = read_prefix(bytes, FILE_FIXED)?;
    let data = &bytes[FILE_FIXED..];
    let path_len = record.path.len as usize;
    let path = reported_path(&record.path, slice_at(data, 0, path_len, bytes.len())?)?;
    let target = if record.target.origin == origin::NONE {
        None
    } else {
        let target_bytes = slice_at(data, path_len, record.target.len as usize, bytes.len())?;
        Some(reported_path(&record.target, target_bytes)?)
    };
    Ok(Event::File(FileEvent {
        time,
        actor: actor(&record.header),
        op: file_op_of(record.op)?,
        path,
        file: (record.has_file != 0).then_some(FileId {
            dev: devno::kernel_to_user(record.dev),
            ino: record.ino,
        }),
        flags: record.flags,
        target,
        replaced: (record.has_replaced != 0).then_some(FileId {
            dev: devno::kernel_to_user(record.replaced_dev),
            ino: record.replaced_ino,
        }),
    }))
}

#[cfg(test)]
mod tests {
    use verifier_common::PATH_CAP;

    use super::*;

    fn header(kind: u32) -> RecordHeader {
        RecordHeader {
            kind,
            program: 4,
            time_boot_ns: 1_000,
            pid: 10,
            tid: 11,
            ppid: 1,
            uid: 0,
            euid: 0,
            txn_depth: 2,
            start_time_ns: 5,
            txn_id: 7,
            comm: *b"dpkg\0\0\0\0\0\0\0\0\0\0\0\0",
        }
    }

    fn as_bytes<T>(value: &T) -> &[u8] {
        // SAFETY: reading the bytes of a plain #[repr(C)] value.
        unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
    }

    const CLOCK: Clock = Clock {
        boot_to_wall: 1_000_000,
    };

    #[test]
    fn file_record_with_two_paths_round_trips() {
        let mut record = FileRecord {
            header: header(kind::FILE),
            op: file_op::RENAME,
            syscall: 316,
            flags: 0,
            dev: (8 << 20) | 300,
            ino: 42,
            path: PathInfo {
                len: 4,
                origin: origin::USER_RESOLVED,
                truncated: 0,
            },
            target: PathInfo {
                len: 3,
                origin: origin::KERNEL,
                truncated: 1,
            },
            has_file: 1,
            has_replaced: 0,
            _pad: [0; 6],
            replaced_dev: 0,
            replaced_ino: 0,
            data: [0; 2 * PATH_CAP],
        };
        record.data[..7].copy_from_slice(b"/a/b/cd");
        let bytes = &as_bytes(&record)[..FILE_FIXED + 7];
        let Event::File(event) = decode(bytes, &CLOCK).expect("decodes") else {
            panic!("not a file event");
        };
        assert_eq!(event.time, 1_001_000);
        assert_eq!(event.op, FileOp::Rename);
        assert_eq!(event.path.bytes, b"/a/b");
        assert_eq!(event.path.origin, PathOrigin::UserResolved);
        let target = event.target.expect("target");
        assert_eq!(target.bytes, b"/cd");
        assert!(target.truncated);
        assert_eq!(
            event.file,
            Some(FileId {
                dev: libc::makedev(8, 300),
                ino: 42
            })
        );
        assert_eq!(event.actor.comm, b"dpkg");
        assert_eq!(
            event.actor.transaction,
            Some(TransactionRef { id: 7, depth: 2 })
        );
    }

    #[test]
    fn short_records_are_errors_not_panics() {
        let record = FileRecord {
            header: header(kind::FILE),
            op: file_op::OPEN_WRITE,
            syscall: 257,
            flags: 0,
            dev: 0,
            ino: 0,
            path: PathInfo {
                len: 100,
                origin: origin::KERNEL,
                truncated: 0,
            },
            target: PathInfo::default(),
            has_file: 0,
            has_replaced: 0,
            _pad: [0; 6],
            replaced_dev: 0,
            replaced_ino: 0,
            data: [0; 2 * PATH_CAP],
        };
        let bytes = &as_bytes(&record)[..FILE_FIXED + 10];
        assert!(matches!(
            decode(bytes, &CLOCK),
            Err(DecodeError::Short { .. })
        ));
        assert!(matches!(
            decode(&bytes[..20], &CLOCK),
            Err(DecodeError::Short { .. })
        ));
        assert!(decode(&[], &CLOCK).is_err());
    }

    #[test]
    fn unknown_kinds_are_errors() {
        let record = ExitRecord {
            header: header(99),
            exit_code: 0,
            ends_transaction: 0,
            _pad: [0; 3],
        };
        assert_eq!(
            decode(as_bytes(&record), &CLOCK),
            Err(DecodeError::UnknownKind(99))
        );
    }
}
