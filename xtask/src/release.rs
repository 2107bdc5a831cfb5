//! `cargo xtask release`: the release binaries as they are installed. `verifier` (daemon and CLI)
//! as `cargo build --release` makes it; the `verify-file` shim relinked statically
//! (`crt-static`): ossec-execd and wazuh-execd start one shim per alert, and a static binary skips
//! the dynamic loader's work (mapping libc and libgcc_s, relocating, binding every symbol), which
//! was a fifth of each short run's CPU time.
use crate::process::{cargo, run_checked};

#[derive(Debug, clap::Args)]
pub struct Options {}

pub fn run(_options: &Options) -> anyhow::Result<()> {
    build()?;
    eprintln!("xtask: target/release/verifier and target/release/verify-file (static) are ready");
    Ok(())
}

/// Builds `target/release/verifier` and the static `target/release/verify-file`.
pub fn build() -> anyhow::Result<()> {
    run_checked(cargo().args([
        "build",
        "--release",
        "--package",
        "verifier-userspace",
        "--bins",
    ]))?;
    run_checked(cargo().args([
        "rustc",
        "--release",
        "--package",
        "verifier-userspace",
        "--bin",
        "verify-file",
        "--",
        "-C",
        "target-feature=+crt-static",
    ]))
}
