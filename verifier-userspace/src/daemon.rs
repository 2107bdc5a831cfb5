//! `verifier daemon`: wires recorder, store, package index, decision engine and socket together.

use crate::config::Config;

/// Runs the daemon in the foreground until SIGINT or SIGTERM.
pub fn run(config: Config) -> anyhow::Result<()> {
    let _ = config;
    anyhow::bail!("the daemon is not implemented yet")
}
