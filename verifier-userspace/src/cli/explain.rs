//! `verifier explain PATH`: the recorded story of one file, for a person or as JSON.
use std::{path::Path, process::ExitCode};

pub fn run(config: Option<&Path>, path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let _ = (super::load_config(config)?, path, json);
    anyhow::bail!("explain is not implemented yet")
}
