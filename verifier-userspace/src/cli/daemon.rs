//! `verifier daemon`: load the configuration and run the daemon until SIGINT/SIGTERM.
use std::{path::Path, process::ExitCode};

pub fn run(config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = super::load_config(config)?;
    crate::daemon::run(config)?;
    Ok(ExitCode::SUCCESS)
}
