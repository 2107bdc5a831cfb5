//! `cargo xtask bench store`: how many recorder events per second the provenance store applies
//! (release mode), in batches, against the 100,000 events/s requirement. Needs `verifier-userspace`
//! as a dependency of xtask; the scenarios themselves live in `verifier::store::bench`.
use std::path::Path;

use anyhow::Context as _;
use verifier::store::bench::{REQUIRED_EVENTS_PER_SECOND, ThroughputResult, apply_throughput};

/// Events per scenario and events per batch used by default.
pub const DEFAULT_EVENTS: usize = 200_000;
pub const DEFAULT_BATCH: usize = 1_024;

/// Runs the store benchmark with stores under `scratch` and prints one line per scenario
/// (or JSON); returns the results for the caller's summary.
pub fn run(
    scratch: &Path,
    events: usize,
    batch: usize,
    json: bool,
) -> anyhow::Result<Vec<ThroughputResult>> {
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: store benchmark built without optimisations; numbers are not meaningful"
        );
    }
    let results = apply_throughput(scratch, events, batch)
        .with_context(|| format!("store benchmark in {}", scratch.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        for result in &results {
            println!(
                "store apply {:<17} {:>8} events, batch {:>5}: {:>7.3} s wall {:>9.0} events/s \
                 ({:.2}x the required {:.0}/s); {:>7.3} s CPU {:>9.0} events/CPU-s; {} bytes on disk",
                result.scenario,
                result.events,
                result.batch_size,
                result.seconds,
                result.events_per_second,
                result.ratio_to_required,
                REQUIRED_EVENTS_PER_SECOND,
                result.cpu_seconds,
                result.events_per_cpu_second,
                result.bytes_on_disk
            );
        }
    }
    Ok(results)
}
