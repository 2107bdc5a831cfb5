//! Feeds the provenance store from the recorder, one SQLite transaction per batch, and keeps track
//! of how far the evidence is stored ("applied through"): a verdict waits until every event from
//! before its alert is in the store. When a package transaction ends, the package index is
//! refreshed and the verdicts waiting for that transaction are decided.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tracing::{error, info, warn};

use super::{Daemon, verdicts};
use crate::{
    events::{Event, WallNanos},
    intake::{EventStream, wall_clock_now},
    packages::OwnershipChange,
    store::{GapKind, NewGap},
};

/// Most events applied in one store transaction.
const BATCH: usize = 8192;
/// On a quiet host, how often the reader re-drains to mark that everything so far is stored.
const IDLE_MARK_EVERY: Duration = Duration::from_millis(50);
/// The window over which the event rate is measured.
const RATE_WINDOW: Duration = Duration::from_secs(10);

/// How far the intake has come; shared with verdicts and status.
#[derive(Debug)]
pub(crate) struct Progress {
    /// Every event recorded before this instant is stored; waiting verdicts watch it.
    applied_through: tokio::sync::watch::Sender<WallNanos>,
    /// A verdict is waiting: the reader drains the ring buffer now instead of at its next tick.
    drain_now: tokio::sync::Notify,
    events_applied: AtomicU64,
    failed_batches: AtomicU64,
    rate: Mutex<Rate>,
}

#[derive(Debug)]
struct Rate {
    window_start: Instant,
    window_events: u64,
    per_second: f64,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            applied_through: tokio::sync::watch::Sender::new(0),
            drain_now: tokio::sync::Notify::new(),
            events_applied: AtomicU64::new(0),
            failed_batches: AtomicU64::new(0),
            rate: Mutex::new(Rate {
                window_start: Instant::now(),
                window_events: 0,
                per_second: 0.0,
            }),
        }
    }
}

impl Progress {
    /// Waits until every event recorded before `time` is in the store; false on timeout. Asks
    /// the reader to drain at once, so on a quiet host the wait is one drain and one store
    /// transaction, not the reader's idle tick.
    pub(crate) async fn wait_until_applied(&self, time: WallNanos, timeout: Duration) -> bool {
        let mut applied = self.applied_through.subscribe();
        if *applied.borrow_and_update() >= time {
            return true;
        }
        self.drain_now.notify_one();
        matches!(
            tokio::time::timeout(timeout, applied.wait_for(|through| *through >= time)).await,
            Ok(Ok(_))
        )
    }

    fn mark_applied_through(&self, time: WallNanos) {
        self.applied_through.send_if_modified(|through| {
            let advanced = time > *through;
            *through = (*through).max(time);
            advanced
        });
    }

    fn count(&self, events: usize) {
        let events = events as u64;
        let total = self.events_applied.fetch_add(events, Ordering::Relaxed) + events;
        let mut rate = self
            .rate
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let elapsed = rate.window_start.elapsed();
        if elapsed >= RATE_WINDOW {
            rate.per_second = (total - rate.window_events) as f64 / elapsed.as_secs_f64();
            rate.window_start = Instant::now();
            rate.window_events = total;
        }
    }

    pub(crate) fn events_applied(&self) -> u64 {
        self.events_applied.load(Ordering::Relaxed)
    }

    pub(crate) fn failed_batches(&self) -> u64 {
        self.failed_batches.load(Ordering::Relaxed)
    }

    pub(crate) fn events_per_second(&self) -> f64 {
        self.rate.lock().map_or(0.0, |rate| rate.per_second)
    }

    pub(crate) fn applied_through(&self) -> WallNanos {
        *self.applied_through.borrow()
    }
}

/// Batches read from the ring buffer, waiting to be stored.
const QUEUED_CHUNKS: usize = 256;

/// Events read from the ring buffer. `drained_at`: every event recorded before that instant is in
/// this chunk or an earlier one.
struct Chunk {
    events: Vec<Event>,
    drained_at: Option<WallNanos>,
}

/// Runs until the ring buffer cannot be read any more (then records an open gap). Reading and
/// storing are separate: the reader is an async task that only drains the ring buffer, the writer
/// a thread of its own that stores batches and refreshes the package index, so neither SQLite nor
/// an index refresh ever holds up the ring buffer or the runtime. If storing falls far behind,
/// the queue fills, the kernel counts lost records and they become a gap.
pub(crate) async fn run(daemon: Arc<Daemon>, events: EventStream) {
    let (chunks, queued) = tokio::sync::mpsc::channel(QUEUED_CHUNKS);
    let writer_daemon = Arc::clone(&daemon);
    let runtime = tokio::runtime::Handle::current();
    let writer = std::thread::Builder::new()
        .name("verifier-store".into())
        .spawn(move || store_chunks(&writer_daemon, queued, &runtime));
    if let Err(error) = writer {
        error!(%error, "cannot start the store writer: no evidence is recorded");
        record_gap(
            &daemon,
            wall_clock_now(),
            None,
            GapKind::StoreFailure,
            format!("the store writer could not start: {error}"),
        );
        return;
    }
    read_ring(events, chunks, &daemon.intake).await;
    error!("the recorder's event stream ended: no further evidence is recorded");
    record_gap(
        &daemon,
        wall_clock_now(),
        None,
        GapKind::Other,
        "the recorder's event stream ended while the daemon ran".into(),
    );
}

/// The writer thread: stores each chunk, then marks how far the evidence is stored.
fn store_chunks(
    daemon: &Arc<Daemon>,
    mut queued: tokio::sync::mpsc::Receiver<Chunk>,
    runtime: &tokio::runtime::Handle,
) {
    while let Some(chunk) = queued.blocking_recv() {
        let chunk = coalesce(chunk, &mut queued);
        // Each chunk also writes the verdicts queued since the last one (the reader sends a
        // chunk at least every idle tick).
        if chunk.events.is_empty() {
            drop(daemon.store_written());
        } else {
            apply(daemon, &chunk.events, runtime);
        }
        if let Some(time) = chunk.drained_at {
            daemon.intake.mark_applied_through(time);
        }
    }
}

/// Joins the chunks already queued behind `first` (up to `BATCH` events) into one, so a busy
/// host's many small reads are stored in few SQL transactions.
fn coalesce(first: Chunk, queued: &mut tokio::sync::mpsc::Receiver<Chunk>) -> Chunk {
    let mut chunk = first;
    while chunk.events.len() < BATCH {
        match queued.try_recv() {
            Ok(next) => {
                chunk.events.extend(next.events);
                chunk.drained_at = chunk.drained_at.max(next.drained_at);
            }
            Err(_) => break,
        }
    }
    chunk
}

async fn read_ring(
    mut events: EventStream,
    chunks: tokio::sync::mpsc::Sender<Chunk>,
    progress: &Progress,
) {
    loop {
        let before_drain = wall_clock_now();
        let batch = events.try_next_batch(BATCH);
        let idle = batch.is_empty();
        // A short batch means the ring buffer was read until empty after `before_drain`: every
        // event recorded before that instant is in this chunk or an earlier one. (Waiting for an
        // empty batch instead would never mark progress on a busy host.)
        let drained_at = (batch.len() < BATCH).then_some(before_drain);
        if chunks
            .send(Chunk {
                events: batch,
                drained_at,
            })
            .await
            .is_err()
        {
            return;
        }
        if idle {
            // Wait for the next event, but not for long: on a quiet host the next drain marks
            // the progress a verdict may be waiting for, and a waiting verdict asks for it at
            // once. (`next` is cancel-safe: records stay in the ring or its queue.)
            let first = tokio::select! {
                next = events.next() => match next {
                    Some(first) => first,
                    None => return,
                },
                () = progress.drain_now.notified() => continue,
                () = tokio::time::sleep(IDLE_MARK_EVERY) => continue,
            };
            let chunk = Chunk {
                events: vec![first],
                drained_at: None,
            };
            if chunks.send(chunk).await.is_err() {
                return;
            }
        }
    }
}

fn apply(daemon: &Arc<Daemon>, batch: &[Event], runtime: &tokio::runtime::Handle) {
    let result = daemon.store_written().apply(batch);
    daemon.intake.count(batch.len());
    if let Err(error) = result {
        daemon.intake.failed_batches.fetch_add(1, Ordering::Relaxed);
        let (from, to) = time_span(batch);
        error!(%error, events = batch.len(), "events could not be stored; recording a gap");
        record_gap(
            daemon,
            from,
            Some(to),
            GapKind::StoreFailure,
            format!("{} events could not be stored: {error}", batch.len()),
        );
    }
    let ended = ended_transactions(batch);
    if !ended.is_empty() {
        info!(transactions = ?ended, "package transactions ended");
        let takeovers = refresh_index(daemon);
        record_ownership_changes(daemon, &takeovers);
        daemon.refresh_trusted_package_managers();
        runtime.spawn(verdicts::transactions_ended(Arc::clone(daemon), ended));
    }
}

/// The package databases changed: re-read what changed. Returns the files that changed owner
/// (paths canonical, as the kernel names them).
fn refresh_index(daemon: &Daemon) -> Vec<OwnershipChange> {
    let started = Instant::now();
    let mut index = daemon
        .index
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match index.refresh() {
        Ok(problems) => {
            for problem in problems {
                warn!(%problem, "package database problem after refresh");
            }
        }
        Err(error) => error!(%error, "package index refresh failed; answers may be stale"),
    }
    info!(
        ms = started.elapsed().as_millis(),
        "package index refreshed"
    );
    let mut changes = index.take_ownership_changes();
    for change in &mut changes {
        change.path = index.usr_merge().canonical(&change.path);
    }
    changes
}

/// Stores each takeover so later verdicts on the file see it; a failure to store one is a gap.
fn record_ownership_changes(daemon: &Daemon, changes: &[OwnershipChange]) {
    let now = wall_clock_now();
    for change in changes {
        warn!(
            path = %change.path.display(),
            from = %change.previous_owner,
            to = %change.new_owner,
            replaces = change.replaces_declared,
            "a package took over another package's file"
        );
        if let Err(error) = daemon.lock_store().record_ownership_change(now, change) {
            error!(%error, ?change, "cannot record an ownership change");
            record_gap(
                daemon,
                now,
                Some(now),
                GapKind::StoreFailure,
                format!(
                    "the takeover of {} by {} could not be stored: {error}",
                    change.path.display(),
                    change.new_owner
                ),
            );
        }
    }
}

fn ended_transactions(batch: &[Event]) -> Vec<u64> {
    batch
        .iter()
        .filter_map(|event| match event {
            Event::Exit(exit) if exit.ends_transaction => exit.actor.transaction.map(|t| t.id),
            _ => None,
        })
        .collect()
}

fn time_span(batch: &[Event]) -> (WallNanos, WallNanos) {
    let times = batch.iter().map(event_time);
    let from = times.clone().min().unwrap_or_else(wall_clock_now);
    let to = times.max().unwrap_or_else(wall_clock_now);
    (from, to)
}

fn event_time(event: &Event) -> WallNanos {
    match event {
        Event::Exec(e) => e.time,
        Event::Fork(e) => e.time,
        Event::Exit(e) => e.time,
        Event::File(e) => e.time,
        Event::IoUring(e) => e.time,
        Event::PreexistingWriter(e) => e.time,
        Event::Loss(e) => e.to,
    }
}

fn record_gap(
    daemon: &Daemon,
    from: WallNanos,
    to: Option<WallNanos>,
    kind: GapKind,
    detail: String,
) {
    let gap = NewGap {
        from,
        to,
        kind,
        detail,
    };
    if let Err(error) = daemon.lock_store().record_gap(&gap) {
        error!(%error, ?gap, "cannot record a gap in the evidence");
    }
}
