//! `verifier install --ossec DIR | --wazuh DIR`: installs the shim and the integration kit.
use std::{path::{Path, PathBuf}, process::ExitCode};

#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// OSSEC installation directory (e.g. /var/ossec).
    #[arg(long, conflicts_with = "wazuh")]
    pub ossec: Option<PathBuf>,
    /// Wazuh installation directory (e.g. /var/ossec).
    #[arg(long)]
    pub wazuh: Option<PathBuf>,
}

pub fn run(config: Option<&Path>, args: &InstallArgs) -> anyhow::Result<ExitCode> {
    let _ = (super::load_config(config)?, args);
    anyhow::bail!("install is not implemented yet")
}
