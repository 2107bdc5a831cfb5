//! Applying recorder events: one SQL transaction per batch. File operations on watched paths or
//! inodes go to disk with their writer's executable; the rest go to the memory cache until their
//! inode enters a watched root. Exec/fork/exit keep the process table and transactions current;
//! losses and io_uring use become gaps.

use std::collections::BTreeMap;

use rusqlite::{CachedStatement, OptionalExtension, Transaction, params};

use super::{
    Store, StoreError, WriterState,
    bytes::escape,
    cache::TMPFILE,
    model::{EntryOp, EntrySource, GapKind, HistoryEntry, NewGap, Writer},
    pending_names::PendingNames,
    processes::{ProcessInfo, ProcessKey, ProcessTable, key_of},
    records::insert_gap,
    rows::{self, EntryRow, from_sql, to_sql},
    set_meta,
};
use crate::events::{
    Actor, Event, ExecEvent, ExitEvent, FileEvent, FileId, FileOp, IoUringEvent, LossEvent,
    PathOrigin, PreexistingWriterEvent, ReportedPath, WallNanos,
};

impl Store {
    /// Applies a batch of events in one database transaction. If storing fails, nothing of the
    /// batch is kept and a gap covering it is recorded (when the database still accepts that).
    pub fn apply(&mut self, events: &[Event]) -> Result<(), StoreError> {
        let (connection, writer) = self.writer()?;
        let transaction = connection.transaction()?;
        writer.writer_ids.begin();
        let result = apply_batch(&transaction, writer, events);
        match result {
            Ok(()) => {
                transaction.commit()?;
                writer.writer_ids.committed();
                Ok(())
            }
            Err(error) => {
                drop(transaction);
                // The memo may name rows that were just rolled back.
                writer.known_names.clear();
                let (from, to) = time_span(events);
                let gap = NewGap {
                    from,
                    to: Some(to),
                    kind: GapKind::StoreFailure,
                    detail: format!("{} events could not be stored: {error}", events.len()),
                };
                if let Err(gap_error) = insert_gap(connection, &gap, None) {
                    tracing::error!(%gap_error, "cannot record the gap for a failed batch either");
                }
                Err(error)
            }
        }
    }
}

/// What file events share within a batch: the statements they run, prepared once per batch
/// (taking them from the connection's statement cache for each event hashes their SQL text twice
/// and clears their bindings, about a tenth of the store's instructions on a stream of file
/// creations), and the name changes written at the batch's end.
struct BatchStatements<'t> {
    insert_row: CachedStatement<'t>,
    names_below: CachedStatement<'t>,
    names: PendingNames,
}

impl<'t> BatchStatements<'t> {
    fn prepare(transaction: &'t Transaction<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            insert_row: transaction.prepare_cached(rows::INSERT_ROW)?,
            names_below: transaction.prepare_cached(
                "SELECT path, dev, ino, removed_at FROM names WHERE path > ?1 AND path < ?2",
            )?,
            names: PendingNames::default(),
        })
    }
}

fn apply_batch(
    transaction: &Transaction<'_>,
    writer: &mut WriterState,
    events: &[Event],
) -> Result<(), StoreError> {
    let mut statements = BatchStatements::prepare(transaction)?;
    let mut latest = 0;
    for event in events {
        latest = latest.max(event_time(event));
        match event {
            Event::Exec(exec) => apply_exec(transaction, writer, exec)?,
            Event::Fork(fork) => writer.processes.on_fork(fork),
            Event::Exit(exit) => apply_exit(transaction, writer, exit)?,
            Event::File(file) => apply_file(transaction, &mut statements, writer, file)?,
            Event::IoUring(io_uring) => apply_io_uring(transaction, writer, io_uring)?,
            Event::PreexistingWriter(preexisting) => {
                apply_preexisting(transaction, writer, preexisting)?
            }
            Event::Loss(loss) => apply_loss(transaction, loss)?,
        }
    }
    statements.names.write(transaction)?;
    if latest > 0 {
        set_meta(transaction, "last_event", latest)?;
    }
    Ok(())
}

fn event_time(event: &Event) -> WallNanos {
    match event {
        Event::Exec(exec) => exec.time,
        Event::Fork(fork) => fork.time,
        Event::Exit(exit) => exit.time,
        Event::File(file) => file.time,
        Event::IoUring(io_uring) => io_uring.time,
        Event::PreexistingWriter(preexisting) => preexisting.time,
        Event::Loss(loss) => loss.to,
    }
}

fn time_span(events: &[Event]) -> (WallNanos, WallNanos) {
    let times = events.iter().map(|event| match event {
        Event::Loss(loss) => (loss.from, loss.to),
        other => (event_time(other), event_time(other)),
    });
    times.fold((u64::MAX, 0), |(low, high), (from, to)| {
        (low.min(from), high.max(to))
    })
}

// ---------------------------------------------------------------------------------------------
// Processes and transactions

fn apply_exec(
    transaction: &Transaction<'_>,
    writer: &mut WriterState,
    exec: &ExecEvent,
) -> Result<(), StoreError> {
    let key = key_of(&exec.actor);
    let info = writer.processes.on_exec(exec);
    if exec.starts_transaction {
        match exec.actor.transaction {
            Some(txn) => {
                transaction
                    .prepare_cached(
                        "INSERT OR REPLACE INTO transactions (boot, id, root_pid, \
                         root_start_time, exe, exe_dev, exe_ino, argv0, cmdline, uid, started) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    )?
                    .execute(params![
                        writer.boot_no,
                        to_sql(txn.id),
                        exec.actor.pid,
                        to_sql(exec.actor.start_time_ns),
                        exec.exe.bytes,
                        to_sql(exec.exe_file.dev),
                        to_sql(exec.exe_file.ino),
                        exec.argv0,
                        exec.cmdline,
                        exec.actor.uid,
                        to_sql(exec.time),
                    ])?;
                persist_process(transaction, writer.boot_no, key, info)?;
            }
            None => tracing::warn!(
                pid = exec.actor.pid,
                "exec starts a transaction but carries no transaction id; not recorded"
            ),
        }
    } else if info.persisted {
        persist_process(transaction, writer.boot_no, key, info)?;
    }
    Ok(())
}

/// Writes (or rewrites) a process row and marks it persisted.
fn persist_process(
    transaction: &Transaction<'_>,
    boot_no: i64,
    key: ProcessKey,
    info: &mut ProcessInfo,
) -> Result<(), StoreError> {
    transaction
        .prepare_cached(
            "INSERT OR REPLACE INTO processes (boot, pid, start_time, parent_pid, \
             parent_start_time, exe, exe_dev, exe_ino, argv0, cmdline, uid, euid, comm, \
             exec_time, exit_time, exit_status, txn_id, txn_depth) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
        )?
        .execute(params![
            boot_no,
            key.0,
            to_sql(key.1),
            info.parent.map(|parent| parent.0),
            info.parent.map(|parent| to_sql(parent.1)),
            info.exe,
            info.exe_file.map(|file| to_sql(file.dev)),
            info.exe_file.map(|file| to_sql(file.ino)),
            info.argv0,
            info.cmdline,
            info.uid,
            info.euid,
            info.comm,
            info.exec_time.map(to_sql),
            info.exit.map(|(time, _)| to_sql(time)),
            info.exit.map(|(_, status)| status),
            info.transaction.map(|txn| to_sql(txn.id)),
            info.transaction.map(|txn| txn.depth),
        ])?;
    info.persisted = true;
    Ok(())
}

fn apply_exit(
    transaction: &Transaction<'_>,
    writer: &mut WriterState,
    exit: &ExitEvent,
) -> Result<(), StoreError> {
    let key = key_of(&exit.actor);
    let mut ended_transaction = None;
    if let Some(mut info) = writer.processes.remove(key) {
        ended_transaction = info.transaction;
        info.exit = Some((exit.time, exit.exit_status));
        if info.persisted {
            persist_process(transaction, writer.boot_no, key, &mut info)?;
        }
    } else {
        transaction
            .prepare_cached(
                "UPDATE processes SET exit_time = ?1, exit_status = ?2 \
                 WHERE boot = ?3 AND pid = ?4 AND start_time = ?5",
            )?
            .execute(params![
                to_sql(exit.time),
                exit.exit_status,
                writer.boot_no,
                key.0,
                to_sql(key.1)
            ])?;
    }
    if exit.ends_transaction {
        match exit.actor.transaction.or(ended_transaction) {
            Some(txn) => {
                transaction
                    .prepare_cached(
                        "UPDATE transactions SET ended = ?1, exit_status = ?2 \
                         WHERE boot = ?3 AND id = ?4",
                    )?
                    .execute(params![
                        to_sql(exit.time),
                        exit.exit_status,
                        writer.boot_no,
                        to_sql(txn.id)
                    ])?;
                writer.locked_transactions.remove(&txn.id);
            }
            None => tracing::warn!(
                pid = exit.actor.pid,
                "exit ends a transaction but carries no transaction id"
            ),
        }
    }
    if let Some(gap) = writer.open_io_uring_gaps.remove(&key) {
        transaction
            .prepare_cached("UPDATE gaps SET to_time = ?1 WHERE id = ?2")?
            .execute(params![to_sql(exit.time), gap])?;
    }
    Ok(())
}

/// What the store knows of the actor's process; loads a row of a previous session or makes a
/// placeholder (executable unknown) for a process that started before monitoring.
fn process_of<'p>(
    transaction: &Transaction<'_>,
    processes: &'p mut ProcessTable,
    boot_no: i64,
    actor: &Actor,
) -> Result<&'p mut ProcessInfo, StoreError> {
    let key = key_of(actor);
    if processes.get_mut(key).is_none() {
        let loaded = load_process(transaction, boot_no, key)?;
        let info = loaded.unwrap_or_else(|| ProcessInfo {
            uid: actor.uid,
            euid: actor.euid,
            comm: actor.comm.clone(),
            transaction: actor.transaction,
            ..ProcessInfo::default()
        });
        return Ok(processes.insert(key, info));
    }
    processes
        .get_mut(key)
        .ok_or(StoreError::Sql(rusqlite::Error::QueryReturnedNoRows))
}

fn load_process(
    transaction: &Transaction<'_>,
    boot_no: i64,
    key: ProcessKey,
) -> Result<Option<ProcessInfo>, StoreError> {
    let mut statement = transaction.prepare_cached(
        "SELECT parent_pid, parent_start_time, exe, exe_dev, exe_ino, argv0, cmdline, uid, \
         euid, comm, exec_time, txn_id, txn_depth FROM processes \
         WHERE boot = ?1 AND pid = ?2 AND start_time = ?3",
    )?;
    let info = statement
        .query_row(params![boot_no, key.0, to_sql(key.1)], |row| {
            let parent = match (row.get::<_, Option<u32>>(0)?, row.get::<_, Option<i64>>(1)?) {
                (Some(pid), Some(start)) => Some((pid, from_sql(start))),
                _ => None,
            };
            let transaction = match (
                row.get::<_, Option<i64>>(11)?,
                row.get::<_, Option<u32>>(12)?,
            ) {
                (Some(id), Some(depth)) => Some(crate::events::TransactionRef {
                    id: from_sql(id),
                    depth,
                }),
                _ => None,
            };
            Ok(ProcessInfo {
                parent,
                exe: row.get(2)?,
                exe_file: rows::file_id(row.get(3)?, row.get(4)?),
                argv0: row.get(5)?,
                cmdline: row.get(6)?,
                uid: row.get(7)?,
                euid: row.get(8)?,
                comm: row.get(9)?,
                exec_time: row.get::<_, Option<i64>>(10)?.map(from_sql),
                transaction,
                persisted: true,
                ..ProcessInfo::default()
            })
        })
        .optional()?;
    Ok(info)
}

// ---------------------------------------------------------------------------------------------
// File operations

/// Renames, exchanges and links bring an inode to a second path.
fn names_target(op: FileOp) -> bool {
    matches!(op, FileOp::Rename | FileOp::RenameExchange | FileOp::Link)
}

fn apply_file(
    transaction: &Transaction<'_>,
    statements: &mut BatchStatements<'_>,
    writer: &mut WriterState,
    event: &FileEvent,
) -> Result<(), StoreError> {
    note_package_lock(transaction, writer, event)?;
    let inode = match event.file {
        Some(file) => Some(file),
        None => resolve_name(transaction, &statements.names, writer, &event.path)?,
    };
    let target = event.target.as_ref().filter(|_| names_target(event.op));
    let keeps_source = writer.roots.keeps(&event.path);
    let keeps_target = target.is_some_and(|target| writer.roots.keeps(target));
    let watched_inode = inode.is_some_and(|file| writer.watched_inodes.contains(&file));
    let exchanged = (event.op == FileOp::RenameExchange)
        .then_some(event.replaced)
        .flatten();
    let watched_exchanged = exchanged.is_some_and(|file| writer.watched_inodes.contains(&file));

    let process = process_of(
        transaction,
        &mut writer.processes,
        writer.boot_no,
        &event.actor,
    )?;
    let persist_writer = keeps_source || keeps_target || watched_inode || watched_exchanged;
    if !persist_writer {
        let entry = rows::entry_from_event(event, inode, Some(process), &writer.boot_id);
        cache_file_event(writer, event, inode, entry);
        return Ok(());
    }
    let key = key_of(&event.actor);
    if !process.persisted {
        persist_process(transaction, writer.boot_no, key, process)?;
    }

    let mut flushed = false;
    for file in inode.iter().chain(exchanged.iter()) {
        flushed |= flush_cached(transaction, writer, *file)?;
    }
    let arrives_from_outside = names_target(event.op) && !keeps_source && keeps_target;
    let process = writer.processes.get_mut(key).map(|process| &*process);
    let mut row = EntryRow::of_event(event, inode, process);
    if arrives_from_outside && !watched_inode && !flushed && writer.cache.evictions() > 0 {
        // The memory cache has dropped inodes: this one's earlier operations may be among them.
        row.prior_history_unknown = true;
    }
    let boot_no = writer.boot_no;
    let mut insert = |row: &EntryRow<'_>| {
        rows::insert_row_with(
            &mut statements.insert_row,
            transaction,
            &mut writer.writer_ids,
            boot_no,
            row,
        )
    };
    insert(&row)?;
    if let (Some(other), Some(target), Some(file)) = (exchanged, target, inode) {
        // The exchanged inode now sits at the source name: record the exchange in its history.
        let mirrored = EntryRow {
            file: Some(other),
            path: target.into(),
            target: Some(row.path),
            replaced: Some(file),
            ..row
        };
        insert(&mirrored)?;
    }
    update_names(transaction, statements, writer, event, inode)?;
    if let Some(file) = inode {
        // Its later operations go to disk under any name.
        writer.watched_inodes.insert(file);
    }
    Ok(())
}

/// Keeps an operation outside the watched roots in memory, and the names it establishes.
fn cache_file_event(
    writer: &mut WriterState,
    event: &FileEvent,
    inode: Option<FileId>,
    entry: HistoryEntry,
) {
    let Some(file) = inode else {
        // Without an inode nothing could ever connect this operation to a watched file.
        return;
    };
    writer.cache.record(file, entry);
    match event.op {
        FileOp::Rename => {
            writer.cache.remove_name(&event.path.bytes);
            if let Some(target) = &event.target {
                writer.cache.set_name(&target.bytes, file);
            }
        }
        FileOp::RenameExchange => {
            if let (Some(target), Some(other)) = (&event.target, event.replaced) {
                writer.cache.set_name(&target.bytes, file);
                writer.cache.set_name(&event.path.bytes, other);
            }
        }
        FileOp::Link => {
            if let Some(target) = &event.target {
                writer.cache.set_name(&target.bytes, file);
            }
        }
        FileOp::Unlink | FileOp::Rmdir => writer.cache.remove_name(&event.path.bytes),
        _ if event.path.origin != PathOrigin::UserUnresolved && !event.path.truncated => {
            writer.cache.set_name(&event.path.bytes, file)
        }
        _ => {}
    }
}

/// Moves the memory cache's operations on `file` to disk; returns whether there were any.
fn flush_cached(
    transaction: &Transaction<'_>,
    writer: &mut WriterState,
    file: FileId,
) -> Result<bool, StoreError> {
    let Some(cached) = writer.cache.take(&file) else {
        return Ok(false);
    };
    for (index, entry) in cached.entries.iter().enumerate() {
        let stored = HistoryEntry {
            source: EntrySource::MemoryCache,
            prior_history_unknown: entry.prior_history_unknown
                || (index == 0 && cached.prior_unknown),
            ..entry.clone()
        };
        rows::insert_entry(transaction, &mut writer.writer_ids, writer.boot_no, &stored)?;
    }
    writer.watched_inodes.insert(file);
    Ok(!cached.entries.is_empty())
}

/// The inode a path names according to the store (disk for watched paths, else the cache).
fn resolve_name(
    transaction: &Transaction<'_>,
    pending: &PendingNames,
    writer: &WriterState,
    path: &ReportedPath,
) -> Result<Option<FileId>, StoreError> {
    if path.truncated || path.origin == PathOrigin::UserUnresolved {
        return Ok(None);
    }
    if let Some(file) = writer.cache.lookup_name(&path.bytes) {
        return Ok(Some(file));
    }
    if let Some(decided) = pending.current(&path.bytes) {
        return Ok(decided);
    }
    // Watched paths, and other names of watched inodes, are in the names table.
    let mut statement = transaction
        .prepare_cached("SELECT dev, ino FROM names WHERE path = ?1 AND removed_at IS NULL")?;
    let found = statement
        .query_row(params![path.bytes], |row| {
            Ok(FileId {
                dev: from_sql(row.get(0)?),
                ino: from_sql(row.get(1)?),
            })
        })
        .optional()?;
    Ok(found)
}

/// Keeps the path → inode table of watched paths current.
fn update_names(
    transaction: &Transaction<'_>,
    statements: &mut BatchStatements<'_>,
    writer: &mut WriterState,
    event: &FileEvent,
    inode: Option<FileId>,
) -> Result<(), StoreError> {
    let source = &event.path;
    match event.op {
        FileOp::Rename | FileOp::RenameExchange | FileOp::Link => {
            let Some(target) = &event.target else {
                return Ok(());
            };
            if event.op == FileOp::Rename {
                remove_name(statements, writer, source, event.time);
                move_names_below(transaction, statements, writer, source, target, event.time)?;
            }
            if event.op == FileOp::RenameExchange
                && let Some(other) = event.replaced
            {
                set_name(statements, writer, source, other, event.time);
            }
            match inode {
                Some(file) => {
                    // Stored events make the inode watched: all its names go to the names table.
                    writer.watched_inodes.insert(file);
                    set_name(statements, writer, target, file, event.time);
                    writer.cache.remove_name(&target.bytes);
                }
                // The target now names an unknown inode: forget what it named before.
                None => forget_name(statements, writer, target),
            }
        }
        FileOp::Unlink | FileOp::Rmdir => remove_name(statements, writer, source, event.time),
        // An O_TMPFILE open names the directory, not the new inode.
        FileOp::OpenWrite if event.flags & TMPFILE == TMPFILE => {}
        _ => {
            if let Some(file) = inode {
                set_name(statements, writer, source, file, event.time);
            }
        }
    }
    Ok(())
}

/// Drops what the store believed `path` named.
fn forget_name(
    statements: &mut BatchStatements<'_>,
    writer: &mut WriterState,
    path: &ReportedPath,
) {
    writer.cache.remove_name(&path.bytes);
    writer.known_names.remove(&path.bytes);
    statements.names.delete(&path.bytes);
}

/// A renamed directory takes the names below it along: recorded names move, and cached inodes
/// below a directory moved into a watched root go to disk with their history.
fn move_names_below(
    transaction: &Transaction<'_>,
    statements: &mut BatchStatements<'_>,
    writer: &mut WriterState,
    source: &ReportedPath,
    target: &ReportedPath,
    time: WallNanos,
) -> Result<(), StoreError> {
    let anchored =
        |path: &ReportedPath| !path.truncated && path.origin != PathOrigin::UserUnresolved;
    if !anchored(source) || !anchored(target) {
        return Ok(());
    }
    let renamed = |name: &[u8]| {
        let mut moved = target.bytes.clone();
        moved.extend_from_slice(&name[source.bytes.len()..]);
        moved
    };
    let below = recorded_names_below(statements, &source.bytes)?;
    if !below.is_empty() {
        writer.known_names.clear();
    }
    for (name, (file, current)) in below {
        statements.names.delete(&name);
        if current {
            // Named afresh: the row says since when it has this name.
            let moved = renamed(&name);
            statements.names.delete(&moved);
            statements.names.set(&moved, file, time);
        }
    }
    if writer.roots.contains(&target.bytes) && !writer.roots.contains(&source.bytes) {
        for (name, file) in writer.cache.names_below(&source.bytes) {
            flush_cached(transaction, writer, file)?;
            let moved = ReportedPath {
                bytes: renamed(&name),
                origin: target.origin,
                truncated: false,
            };
            set_name(statements, writer, &moved, file, time);
        }
    }
    Ok(())
}

/// The names table's rows for paths below `directory`, with this batch's pending changes: each
/// path's inode and whether the name is current.
fn recorded_names_below(
    statements: &mut BatchStatements<'_>,
    directory: &[u8],
) -> Result<BTreeMap<Vec<u8>, (FileId, bool)>, StoreError> {
    // Below `directory/`: from `directory/` (exclusive) to `directory0` ('/' + 1, exclusive).
    let bound = |last: u8| [directory, &[last]].concat();
    let (lower, upper) = (bound(b'/'), bound(b'/' + 1));
    let mut below: BTreeMap<Vec<u8>, (FileId, bool)> = statements
        .names_below
        .query_map(params![lower, upper], |row| {
            let file = FileId {
                dev: from_sql(row.get(1)?),
                ino: from_sql(row.get(2)?),
            };
            Ok((row.get(0)?, (file, row.get::<_, Option<i64>>(3)?.is_none())))
        })?
        .collect::<Result<_, _>>()?;
    for (name, change) in statements.names.below(directory) {
        match change.applied_to(below.get(name).copied()) {
            Some(state) => {
                below.insert(name.to_vec(), state);
            }
            None => {
                below.remove(name);
            }
        }
    }
    Ok(below)
}

fn set_name(
    statements: &mut BatchStatements<'_>,
    writer: &mut WriterState,
    path: &ReportedPath,
    file: FileId,
    time: WallNanos,
) {
    let named_here = writer.roots.contains(&path.bytes) || writer.watched_inodes.contains(&file);
    if path.truncated || path.origin == PathOrigin::UserUnresolved || !named_here {
        return;
    }
    if writer.known_names.get(&path.bytes) == Some(&file) {
        return;
    }
    statements.names.set(&path.bytes, file, time);
    writer.watched_inodes.insert(file);
    if writer.known_names.len() >= KNOWN_NAMES_CAPACITY {
        writer.known_names.clear();
    }
    writer.known_names.insert(path.bytes.clone(), file);
}

/// Most names remembered as already recorded (the memo is simply cleared when full).
const KNOWN_NAMES_CAPACITY: usize = 65_536;

fn remove_name(
    statements: &mut BatchStatements<'_>,
    writer: &mut WriterState,
    path: &ReportedPath,
    time: WallNanos,
) {
    if path.truncated || path.origin == PathOrigin::UserUnresolved {
        return;
    }
    writer.cache.remove_name(&path.bytes);
    writer.known_names.remove(&path.bytes);
    statements.names.remove(&path.bytes, time);
}

/// A transaction root opening the package database lock for write is recorded on its
/// transaction (first time only).
fn note_package_lock(
    transaction: &Transaction<'_>,
    writer: &mut WriterState,
    event: &FileEvent,
) -> Result<(), StoreError> {
    let Some(txn) = event.actor.transaction else {
        return Ok(());
    };
    if txn.depth != 0
        || event.op != FileOp::OpenWrite
        || event.path.truncated
        || event.path.origin == PathOrigin::UserUnresolved
        || writer.locked_transactions.contains(&txn.id)
        || !writer.locks.is_lock(&event.path.bytes)
    {
        return Ok(());
    }
    transaction
        .prepare_cached(
            "UPDATE transactions SET lock_path = ?1, lock_time = ?2 \
             WHERE boot = ?3 AND id = ?4 AND lock_path IS NULL",
        )?
        .execute(params![
            event.path.bytes,
            to_sql(event.time),
            writer.boot_no,
            to_sql(txn.id)
        ])?;
    writer.locked_transactions.insert(txn.id);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Gaps and preexisting writers

fn apply_io_uring(
    transaction: &Transaction<'_>,
    writer: &mut WriterState,
    event: &IoUringEvent,
) -> Result<(), StoreError> {
    let key = key_of(&event.actor);
    if writer.open_io_uring_gaps.contains_key(&key) {
        return Ok(());
    }
    let boot_no = writer.boot_no;
    let process = process_of(
        transaction,
        &mut writer.processes,
        writer.boot_no,
        &event.actor,
    )?;
    let exe = process
        .exe
        .as_deref()
        .map_or_else(|| "unknown executable".to_owned(), escape);
    let opcode = event
        .opcode
        .map_or_else(String::new, |opcode| format!(" (opcode {opcode})"));
    let detail = format!(
        "pid {} ({}, {exe}) used io_uring{opcode}: its file operations are not recorded from \
         this time until it exits (scope: from first use until exit)",
        event.actor.pid,
        escape(&event.actor.comm),
    );
    if !process.persisted {
        persist_process(transaction, boot_no, key, process)?;
    }
    let gap = NewGap {
        from: event.time,
        to: None,
        kind: GapKind::IoUring,
        detail,
    };
    let id = insert_gap(transaction, &gap, Some((boot_no, key.0, key.1)))?;
    writer.open_io_uring_gaps.insert(key, id);
    Ok(())
}

fn apply_loss(transaction: &Transaction<'_>, loss: &LossEvent) -> Result<(), StoreError> {
    let total: u64 = loss.lost.iter().map(|(_, count)| count).sum();
    let parts: Vec<String> = loss
        .lost
        .iter()
        .map(|(program, count)| format!("{program}: {count}"))
        .collect();
    let gap = NewGap {
        from: loss.from,
        to: Some(loss.to),
        kind: GapKind::EventsLost,
        detail: format!("{total} records lost ({})", parts.join(", ")),
    };
    insert_gap(transaction, &gap, None)?;
    Ok(())
}

fn apply_preexisting(
    transaction: &Transaction<'_>,
    writer: &mut WriterState,
    event: &PreexistingWriterEvent,
) -> Result<(), StoreError> {
    let entry = HistoryEntry {
        time: event.time,
        op: EntryOp::PreexistingWriter,
        file: Some(event.file),
        path: rows::recorded(&event.path),
        target: None,
        replaced: None,
        flags: 0,
        writer: Writer {
            boot: writer.boot_id.clone(),
            pid: event.pid,
            tid: event.pid,
            ppid: 0,
            start_time_ns: 0,
            uid: 0,
            euid: 0,
            comm: event.comm.clone().into(),
            exe: None,
            exe_file: None,
            transaction: None,
        },
        source: EntrySource::Preexisting,
        prior_history_unknown: true,
    };
    let keep = writer.roots.keeps(&event.path) || writer.watched_inodes.contains(&event.file);
    if !keep {
        writer.cache.record(event.file, entry);
        return Ok(());
    }
    flush_cached(transaction, writer, event.file)?;
    rows::insert_entry(transaction, &mut writer.writer_ids, writer.boot_no, &entry)?;
    writer.watched_inodes.insert(event.file);
    Ok(())
}
