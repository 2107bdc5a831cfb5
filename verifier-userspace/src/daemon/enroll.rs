//! Enrollment: on first start, every installed package file under the watched roots that verifies
//! against its package (content included) and that nothing has written since monitoring began is
//! recorded as trusted. A later alert about a file untouched since then is answered from this
//! baseline — this keeps the first syscheck scan (a 554 for every file) from becoming a flood.

use std::{path::PathBuf, time::Instant};

use tracing::{error, info};

use super::Daemon;
use crate::{
    decision::gather::{baseline_of, current_state},
    packages::{FileKind, verify_file},
    store::Baseline,
};

pub(crate) fn enroll_if_first_start(daemon: &Daemon) {
    match daemon.lock_store().stats() {
        Ok(stats) if stats.baselines > 0 => return,
        Ok(_) => {}
        Err(error) => {
            error!(%error, "cannot tell whether enrollment ran; skipping it");
            return;
        }
    }
    let started = Instant::now();
    let candidates = candidates(daemon);
    info!(
        files = candidates.len(),
        "enrolling installed package files as trusted"
    );
    let mut trusted = 0usize;
    for (path, baseline) in candidates {
        let mut store = daemon.lock_store();
        let untouched = store
            .file_history(&path, Some(baseline.file))
            .is_ok_and(|history| history.entries.is_empty() && history.path_events.is_empty());
        if untouched && store.mark_trusted(&path, baseline).is_ok() {
            trusted += 1;
        }
    }
    info!(
        trusted,
        seconds = started.elapsed().as_secs_f64(),
        "enrollment done"
    );
}

/// Files under the watched roots that verify now, with the baseline to record.
fn candidates(daemon: &Daemon) -> Vec<(PathBuf, Baseline)> {
    let index = daemon.read_index();
    let roots = &daemon.config.recorder.watched_roots;
    index
        .entries()
        .iter()
        .filter(|entry| entry.kind == FileKind::Regular && entry.digest.is_some())
        .filter(|entry| roots.iter().any(|root| entry.path.starts_with(root)))
        .filter_map(|entry| {
            let outcome = verify_file(entry, &entry.path);
            if !outcome.is_clean() || !outcome.content_verified {
                return None;
            }
            let state = current_state(&entry.path)?;
            let digest = entry.digest.as_ref()?;
            let baseline = baseline_of(&state, digest.algo.to_string(), digest.to_hex())?;
            Some((entry.path.clone(), baseline))
        })
        .collect()
}
