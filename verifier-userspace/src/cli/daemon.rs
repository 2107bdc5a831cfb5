//! `verifier daemon`: load the configuration and run the daemon until SIGINT/SIGTERM.
use std::{path::Path, process::ExitCode};

use crate::config::Config;

pub fn run(config_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (path, explicit) = Config::resolve_path(config_path);
    let config = Config::load(&path, explicit)?;
    crate::daemon::run(config, path.exists().then_some(path))?;
    Ok(ExitCode::SUCCESS)
}
