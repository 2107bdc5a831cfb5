//! `verifier status`: the daemon's health, asked over the query socket.
use std::{path::Path, process::ExitCode};

pub fn run(config: Option<&Path>, json: bool) -> anyhow::Result<ExitCode> {
    let _ = (super::load_config(config)?, json);
    anyhow::bail!("status is not implemented yet")
}
