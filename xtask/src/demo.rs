//! `cargo xtask demo`: the main job. Builds the release binaries and runs the demo program in
//! `tests/src/bin/demo.rs`: a daemon with its own state directory records a real dpkg install and
//! upgrade, a tampered package file and a hand-made change; the `verify-file` shim runs for each as
//! OSSEC would, and the verdicts, an `explain` and the daemon's status are printed.
use crate::process::{cargo, require_root, run_checked};

#[derive(Debug, clap::Args)]
pub struct Options {}

pub fn run(_options: &Options) -> anyhow::Result<()> {
    require_root("demo")?;
    crate::release::build()?;
    run_checked(cargo().args([
        "run",
        "--quiet",
        "--release",
        "--package",
        "tests",
        "--bin",
        "demo",
    ]))
}
