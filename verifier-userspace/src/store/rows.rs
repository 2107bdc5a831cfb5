//! Conversions between history entries and `file_events` rows, and the small column codecs
//! (u64 as i64 bit patterns, path origins, file identities).

use rusqlite::{Row, Statement, Transaction, params};

use super::{
    StoreError,
    bytes::ByteText,
    model::{EntryOp, EntrySource, HistoryEntry, RecordedPath, Writer},
    processes::ProcessInfo,
    writers::WriterIds,
};
use crate::events::{FileEvent, FileId, FileOp, PathOrigin, ReportedPath, TransactionRef};

/// u64 → i64 keeping the bit pattern (SQLite integers are signed).
pub fn to_sql(value: u64) -> i64 {
    value as i64
}

/// i64 → u64 keeping the bit pattern.
pub fn from_sql(value: i64) -> u64 {
    value as u64
}

pub fn origin_str(origin: PathOrigin) -> &'static str {
    match origin {
        PathOrigin::Kernel => "kernel",
        PathOrigin::UserResolved => "user_resolved",
        PathOrigin::UserUnresolved => "user_unresolved",
    }
}

pub fn parse_origin(text: &str) -> PathOrigin {
    match text {
        "kernel" => PathOrigin::Kernel,
        "user_resolved" => PathOrigin::UserResolved,
        _ => PathOrigin::UserUnresolved,
    }
}

pub fn file_id(dev: Option<i64>, ino: Option<i64>) -> Option<FileId> {
    Some(FileId {
        dev: from_sql(dev?),
        ino: from_sql(ino?),
    })
}

pub fn recorded(path: &ReportedPath) -> RecordedPath {
    RecordedPath {
        path: ByteText(path.bytes.clone()),
        origin: path.origin,
        truncated: path.truncated,
    }
}

/// A history entry for a file event, attributed to what the process ran at the time.
pub fn entry_from_event(
    event: &FileEvent,
    inode: Option<FileId>,
    process: Option<&ProcessInfo>,
    boot: &str,
) -> HistoryEntry {
    let actor = &event.actor;
    HistoryEntry {
        time: event.time,
        op: EntryOp::File(event.op),
        file: inode,
        path: recorded(&event.path),
        target: event.target.as_ref().map(recorded),
        replaced: event.replaced,
        flags: event.flags,
        writer: Writer {
            boot: boot.to_owned(),
            pid: actor.pid,
            tid: actor.tid,
            ppid: actor.ppid,
            start_time_ns: actor.start_time_ns,
            uid: actor.uid,
            euid: actor.euid,
            comm: ByteText(actor.comm.clone()),
            exe: process.and_then(|info| info.exe.clone()).map(ByteText),
            exe_file: process.and_then(|info| info.exe_file),
            transaction: actor.transaction,
        },
        source: EntrySource::Recorded,
        prior_history_unknown: false,
    }
}

/// The columns every entry query selects from [`ENTRY_SOURCE`], in [`entry_from_row`]'s order.
pub const ENTRY_COLUMNS: &str = "time, op, dev, ino, path, path_origin, path_truncated, target, \
    target_origin, target_truncated, replaced_dev, replaced_ino, flags, \
    (SELECT boot_id FROM boots WHERE boots.id = writers.boot), pid, tid, ppid, start_time, \
    uid, euid, comm, exe, exe_dev, exe_ino, txn_id, txn_depth, source, prior_unknown, \
    file_events.id";

/// The operations with their writers: what entry queries select from.
pub const ENTRY_SOURCE: &str = "file_events JOIN writers ON writers.id = file_events.writer";

pub fn entry_from_row(row: &Row<'_>) -> rusqlite::Result<(i64, HistoryEntry)> {
    let op_text: String = row.get(1)?;
    let op = EntryOp::parse(&op_text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            1,
            rusqlite::types::Type::Text,
            format!("unknown operation {op_text:?}").into(),
        )
    })?;
    let origin: String = row.get(5)?;
    let target = match row.get::<_, Option<Vec<u8>>>(7)? {
        Some(bytes) => Some(RecordedPath {
            path: ByteText(bytes),
            origin: parse_origin(&row.get::<_, Option<String>>(8)?.unwrap_or_default()),
            truncated: row.get::<_, Option<bool>>(9)?.unwrap_or(false),
        }),
        None => None,
    };
    let transaction = match (
        row.get::<_, Option<i64>>(24)?,
        row.get::<_, Option<i64>>(25)?,
    ) {
        (Some(id), Some(depth)) => Some(TransactionRef {
            id: from_sql(id),
            depth: depth as u32,
        }),
        _ => None,
    };
    let entry = HistoryEntry {
        time: from_sql(row.get(0)?),
        op,
        file: file_id(row.get(2)?, row.get(3)?),
        path: RecordedPath {
            path: ByteText(row.get(4)?),
            origin: parse_origin(&origin),
            truncated: row.get(6)?,
        },
        target,
        replaced: file_id(row.get(10)?, row.get(11)?),
        flags: from_sql(row.get(12)?),
        writer: Writer {
            boot: row.get::<_, Option<String>>(13)?.unwrap_or_default(),
            pid: row.get(14)?,
            tid: row.get(15)?,
            ppid: row.get(16)?,
            start_time_ns: from_sql(row.get(17)?),
            uid: row.get(18)?,
            euid: row.get(19)?,
            comm: ByteText(row.get(20)?),
            exe: row.get::<_, Option<Vec<u8>>>(21)?.map(ByteText),
            exe_file: file_id(row.get(22)?, row.get(23)?),
            transaction,
        },
        source: EntrySource::parse(&row.get::<_, String>(26)?),
        prior_history_unknown: row.get(27)?,
    };
    Ok((row.get(28)?, entry))
}

/// A path column pair, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct PathRef<'a> {
    pub bytes: &'a [u8],
    pub origin: PathOrigin,
    pub truncated: bool,
}

impl PathRef<'_> {
    fn is_unanchored(&self) -> bool {
        self.truncated || self.origin == PathOrigin::UserUnresolved
    }
}

impl<'a> From<&'a ReportedPath> for PathRef<'a> {
    fn from(path: &'a ReportedPath) -> Self {
        Self {
            bytes: &path.bytes,
            origin: path.origin,
            truncated: path.truncated,
        }
    }
}

impl<'a> From<&'a RecordedPath> for PathRef<'a> {
    fn from(path: &'a RecordedPath) -> Self {
        Self {
            bytes: path.path.as_bytes(),
            origin: path.origin,
            truncated: path.truncated,
        }
    }
}

/// One `file_events` row, borrowed: what [`insert_entry`] writes, without copying the event.
#[derive(Debug, Clone, Copy)]
pub struct EntryRow<'a> {
    pub time: u64,
    pub op: EntryOp,
    pub file: Option<FileId>,
    pub path: PathRef<'a>,
    pub target: Option<PathRef<'a>>,
    pub replaced: Option<FileId>,
    pub flags: u64,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub start_time_ns: u64,
    pub uid: u32,
    pub euid: u32,
    pub comm: &'a [u8],
    pub exe: Option<&'a [u8]>,
    pub exe_file: Option<FileId>,
    pub transaction: Option<TransactionRef>,
    pub source: EntrySource,
    pub prior_history_unknown: bool,
}

impl<'a> EntryRow<'a> {
    /// The row of a file event, attributed to what the process runs.
    pub fn of_event(
        event: &'a FileEvent,
        inode: Option<FileId>,
        process: Option<&'a ProcessInfo>,
    ) -> Self {
        let actor = &event.actor;
        Self {
            time: event.time,
            op: EntryOp::File(event.op),
            file: inode,
            path: (&event.path).into(),
            target: event.target.as_ref().map(PathRef::from),
            replaced: event.replaced,
            flags: event.flags,
            pid: actor.pid,
            tid: actor.tid,
            ppid: actor.ppid,
            start_time_ns: actor.start_time_ns,
            uid: actor.uid,
            euid: actor.euid,
            comm: &actor.comm,
            exe: process.and_then(|info| info.exe.as_deref()),
            exe_file: process.and_then(|info| info.exe_file),
            transaction: actor.transaction,
            source: EntrySource::Recorded,
            prior_history_unknown: false,
        }
    }

    /// The row of an owned entry.
    pub fn of_entry(entry: &'a HistoryEntry) -> Self {
        let writer = &entry.writer;
        Self {
            time: entry.time,
            op: entry.op,
            file: entry.file,
            path: (&entry.path).into(),
            target: entry.target.as_ref().map(PathRef::from),
            replaced: entry.replaced,
            flags: entry.flags,
            pid: writer.pid,
            tid: writer.tid,
            ppid: writer.ppid,
            start_time_ns: writer.start_time_ns,
            uid: writer.uid,
            euid: writer.euid,
            comm: writer.comm.as_bytes(),
            exe: writer.exe.as_ref().map(ByteText::as_bytes),
            exe_file: writer.exe_file,
            transaction: writer.transaction,
            source: entry.source,
            prior_history_unknown: entry.prior_history_unknown,
        }
    }
}

/// Inserts one entry (of the given boot number).
pub fn insert_entry(
    transaction: &Transaction<'_>,
    writers: &mut WriterIds,
    boot: i64,
    entry: &HistoryEntry,
) -> Result<(), StoreError> {
    let mut statement = transaction.prepare_cached(INSERT_ROW)?;
    insert_row_with(
        &mut statement,
        transaction,
        writers,
        boot,
        &EntryRow::of_entry(entry),
    )
}

/// The statement [`insert_row_with`] runs.
pub const INSERT_ROW: &str = "INSERT INTO file_events (time, op, dev, ino, path, path_origin, \
    path_truncated, target, target_origin, target_truncated, replaced_dev, replaced_ino, flags, \
    unanchored, writer, source, prior_unknown) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, \
    ?11, ?12, ?13, ?14, ?15, ?16, ?17)";

/// Inserts one row (of the given boot number) through `statement`, a prepared [`INSERT_ROW`],
/// and its writer's row if `writers` knows none yet.
pub fn insert_row_with(
    statement: &mut Statement<'_>,
    transaction: &Transaction<'_>,
    writers: &mut WriterIds,
    boot: i64,
    row: &EntryRow<'_>,
) -> Result<(), StoreError> {
    let writer = writers.id_for(transaction, boot, row)?;
    let target = row.target;
    let unanchored = row.path.is_unanchored()
        || (matches!(
            row.op,
            EntryOp::File(FileOp::Rename | FileOp::RenameExchange | FileOp::Link)
        ) && target.is_some_and(|target| target.is_unanchored()));
    statement.execute(params![
        to_sql(row.time),
        row.op.as_str(),
        row.file.map(|file| to_sql(file.dev)),
        row.file.map(|file| to_sql(file.ino)),
        row.path.bytes,
        origin_str(row.path.origin),
        row.path.truncated,
        target.map(|target| target.bytes),
        target.map(|target| origin_str(target.origin)),
        target.map(|target| target.truncated),
        row.replaced.map(|file| to_sql(file.dev)),
        row.replaced.map(|file| to_sql(file.ino)),
        to_sql(row.flags),
        unanchored,
        writer,
        row.source.as_str(),
        row.prior_history_unknown,
    ])?;
    Ok(())
}
