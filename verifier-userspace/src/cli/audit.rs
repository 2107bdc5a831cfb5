//! `verifier audit`: verify every installed package file, in parallel, explaining mismatches.
use std::{path::Path, process::ExitCode};

pub fn run(config: Option<&Path>, package: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let _ = (super::load_config(config)?, package, json);
    anyhow::bail!("audit is not implemented yet")
}
