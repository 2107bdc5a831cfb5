//! Event intake: drains the kernel ring buffer without ever making the kernel wait, decodes each
//! record into an [`crate::events::Event`] and counts what it cannot decode.
//!
//! Losses are reported in-band: whenever the kernel's loss counters (ring buffer full, errors) or
//! the undecodable-record count grew since the last check, a [`LossEvent`] covering the window
//! since that check is delivered before further events.

mod decode;

use std::{collections::VecDeque, time::Duration};

use aya::maps::{MapData, PerCpuArray, RingBuf};
use tokio::io::{Interest, unix::AsyncFd};
use tracing::warn;
use verifier_common::{ProgramCounters, ProgramId};

pub use decode::{Clock, DecodeError, decode};

use crate::{
    ebpf::Counters,
    events::{Event, FileOp, LossEvent, ReportedPath, WallNanos},
    packages::UsrMerge,
};

/// Name under which undecodable records appear in a [`LossEvent`].
pub const DECODE_FAILURES: &str = "intake_decode";
/// How often loss counters are checked while events keep flowing.
const LOSS_CHECK_EVERY: Duration = Duration::from_millis(100);
/// How long to wait for the ring buffer before draining it anyway: the kernel wakes the reader
/// only once a CPU has emitted its share of an eighth of the ring buffer since its last wakeup
/// (`ebpf::recorder`), so this bounds how late a record is read.
const IDLE_WAIT: Duration = Duration::from_millis(25);

/// Nanoseconds since the Unix epoch, now.
pub fn wall_clock_now() -> WallNanos {
    clock_ns(libc::CLOCK_REALTIME)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec pointer is passed.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}

/// The current wall − boot clock difference.
pub fn current_clock() -> Clock {
    let boot = clock_ns(libc::CLOCK_BOOTTIME) as i128;
    let wall = clock_ns(libc::CLOCK_REALTIME) as i128;
    Clock {
        boot_to_wall: wall - boot,
    }
}

/// The recorder's events, in ring-buffer order, with losses reported in-band.
pub struct EventStream {
    ring: AsyncFd<RingBuf<MapData>>,
    counters: PerCpuArray<MapData, ProgramCounters>,
    clock: Clock,
    /// `/bin` → `/usr/bin` and the like: paths taken from user strings name the same files as
    /// the kernel's, so history and lookups agree on one spelling.
    usr_merge: UsrMerge,
    pending: VecDeque<Event>,
    /// Losses per program at the last check.
    seen_losses: Vec<(&'static str, u64)>,
    /// The loss summary when the per-program counters were last read.
    seen_loss_summary: u64,
    decode_failures: u64,
    reported_decode_failures: u64,
    last_check: WallNanos,
    last_check_instant: std::time::Instant,
}

impl EventStream {
    pub(crate) fn new(
        ring: RingBuf<MapData>,
        counters: PerCpuArray<MapData, ProgramCounters>,
        loaded_at: WallNanos,
    ) -> std::io::Result<Self> {
        // SAFETY: the ring buffer owns its fd, which stays open as long as the AsyncFd owns it.
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(std::io::Error::from)?;
        let mut stream = EventStream {
            ring,
            counters,
            clock: current_clock(),
            usr_merge: UsrMerge::detect(),
            pending: VecDeque::new(),
            seen_losses: Vec::new(),
            seen_loss_summary: 0,
            decode_failures: 0,
            reported_decode_failures: 0,
            // Losses between loading and taking the stream fall in the first window.
            last_check: loaded_at,
            last_check_instant: std::time::Instant::now(),
        };
        // Losses before the stream existed are reported from the first check on.
        stream.seen_losses = ProgramId::ALL.iter().map(|id| (id.name(), 0)).collect();
        Ok(stream)
    }

    /// The next event; `None` only when the ring buffer can no longer be read.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            if self.last_check_instant.elapsed() >= LOSS_CHECK_EVERY {
                self.check_losses();
            }
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            if self.drain() > 0 {
                continue;
            }
            self.check_losses();
            if !self.pending.is_empty() {
                continue;
            }
            match tokio::time::timeout(IDLE_WAIT, self.ring.readable_mut()).await {
                Ok(Ok(mut guard)) => guard.clear_ready(),
                Ok(Err(error)) => {
                    warn!(%error, "ring buffer unreadable; event stream ends");
                    return None;
                }
                Err(_elapsed) => {}
            }
        }
    }

    /// Up to `max` events that are ready now, without waiting. A short batch (fewer than `max`)
    /// means the ring buffer was read until empty and the loss counters checked after that, so
    /// every loss before the call is reported in it or earlier.
    pub fn try_next_batch(&mut self, max: usize) -> Vec<Event> {
        if self.pending.len() < max {
            self.drain();
        }
        if self.pending.len() < max || self.last_check_instant.elapsed() >= LOSS_CHECK_EVERY {
            self.check_losses();
        }
        let take = self.pending.len().min(max);
        self.pending.drain(..take).collect()
    }

    /// Moves every record available now into `pending`; returns how many.
    fn drain(&mut self) -> usize {
        let ring = self.ring.get_mut();
        let mut drained = 0;
        while let Some(item) = ring.next() {
            drained += 1;
            match decode(&item, &self.clock) {
                Ok(mut event) => {
                    canonicalize_paths(&mut event, &self.usr_merge);
                    self.pending.push_back(event);
                }
                Err(error) => {
                    self.decode_failures += 1;
                    warn!(%error, bytes = ?&item[..item.len().min(136)], "undecodable record");
                }
            }
        }
        drained
    }

    /// Turns any growth of the loss counters into a [`LossEvent`] queued after what was drained.
    /// Reads the loss summary (one map lookup); only when it grew, the per-program counters.
    fn check_losses(&mut self) {
        let now = wall_clock_now();
        self.last_check_instant = std::time::Instant::now();
        let counters = crate::ebpf::recorder_loss_summary(&self.counters).and_then(|summary| {
            if summary == self.seen_loss_summary {
                return Ok(None);
            }
            let counters = crate::ebpf::recorder_counters(&self.counters)?;
            self.seen_loss_summary = summary;
            Ok(Some(counters))
        });
        let counters = match counters {
            Ok(counters) => counters,
            Err(error) => {
                warn!(%error, "cannot read loss counters; reporting a loss");
                self.pending.push_back(Event::Loss(LossEvent {
                    from: self.last_check,
                    to: now,
                    lost: vec![("counters_unreadable".to_owned(), 1)],
                }));
                self.last_check = now;
                return;
            }
        };
        let lost = self.new_losses(counters.as_ref());
        if !lost.is_empty() {
            self.pending.push_back(Event::Loss(LossEvent {
                from: self.last_check,
                to: now,
                lost,
            }));
        }
        self.clock = current_clock();
        self.last_check = now;
    }

    /// Per-program losses since the last report (when the counters were read), then decode
    /// failures.
    fn new_losses(&mut self, counters: Option<&Counters>) -> Vec<(String, u64)> {
        let mut lost = Vec::new();
        if let Some(counters) = counters {
            for (name, seen) in &mut self.seen_losses {
                let total = counters
                    .per_program
                    .get(name)
                    .map(|c| c.ringbuf_full + c.errors)
                    .unwrap_or(0);
                if total > *seen {
                    lost.push(((*name).to_owned(), total - *seen));
                    *seen = total;
                }
            }
        }
        if self.decode_failures > self.reported_decode_failures {
            lost.push((
                DECODE_FAILURES.to_owned(),
                self.decode_failures - self.reported_decode_failures,
            ));
            self.reported_decode_failures = self.decode_failures;
        }
        lost
    }
}

/// Rewrites usr-merge aliases in the paths of `event` (`/bin/x` → `/usr/bin/x`). Kernel paths
/// already are canonical; user strings (renames, links, unlinks without a kernel object) may not
/// be. Truncated and unresolved paths, and symlink text, are left as they are.
fn canonicalize_paths(event: &mut Event, usr_merge: &UsrMerge) {
    if usr_merge.aliases().is_empty() {
        return;
    }
    if let Event::File(file) = event {
        canonicalize(&mut file.path, usr_merge);
        if matches!(
            file.op,
            FileOp::Rename | FileOp::RenameExchange | FileOp::Link
        ) && let Some(target) = &mut file.target
        {
            canonicalize(target, usr_merge);
        }
    }
}

fn canonicalize(path: &mut ReportedPath, usr_merge: &UsrMerge) {
    use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
    if path.truncated || !path.bytes.starts_with(b"/") || usr_merge.is_canonical(&path.bytes) {
        return;
    }
    let original = std::path::Path::new(std::ffi::OsStr::from_bytes(&path.bytes));
    let canonical = usr_merge.canonical(original);
    if canonical != original {
        path.bytes = canonical.into_os_string().into_vec();
    }
}
