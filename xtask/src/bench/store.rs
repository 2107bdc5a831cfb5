//! Provenance-store apply throughput (release build, `examples/store_bench.rs`): events per second
//! against the 100,000 events/s requirement, per scenario, as ratios.
use std::process::Command;

use anyhow::Context as _;

use super::{Options, Report};
use crate::process::{cargo, run_checked, workspace_root};

/// The requirement the ratios are taken against.
const REQUIRED_EVENTS_PER_SECOND: f64 = 100_000.0;

pub fn run(_options: &Options, report: &mut Report) -> anyhow::Result<()> {
    run_checked(cargo().args([
        "build",
        "--release",
        "-p",
        "verifier-userspace",
        "--example",
        "store_bench",
    ]))?;
    let scratch = tempdir()?;
    let binary = workspace_root().join("target/release/examples/store_bench");
    let output = Command::new(&binary)
        .arg(&scratch)
        .output()
        .with_context(|| format!("running {}", binary.display()))?;
    let _ = std::fs::remove_dir_all(&scratch);
    anyhow::ensure!(
        output.status.success(),
        "store_bench failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<serde_json::Value> =
        serde_json::from_slice(&output.stdout).context("store_bench output")?;
    let mut section = String::from(
        "### Provenance store: events applied per second (release, batches of 1,024)\n\n\
         | scenario | events/s (wall) | ratio to 100,000/s | events per CPU-second | bytes on disk |\n|---|---|---|---|---|\n",
    );
    for result in &results {
        let per_second = result["events_per_second"].as_f64().unwrap_or(f64::NAN);
        section.push_str(&format!(
            "| {} | {per_second:.0} | {:.2}× | {:.0} | {} |\n",
            result["scenario"].as_str().unwrap_or("?"),
            per_second / REQUIRED_EVENTS_PER_SECOND,
            result["events_per_cpu_second"].as_f64().unwrap_or(f64::NAN),
            result["bytes_on_disk"]
        ));
    }
    report.sections.push(section);
    report
        .raw
        .push(("store".into(), serde_json::Value::Array(results)));
    Ok(())
}

fn tempdir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("verifier-store-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
