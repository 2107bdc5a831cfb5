//! The `verifier` command line: one module per subcommand. Each returns the process exit code.

pub mod audit;
mod audit_history;
pub mod daemon;
pub mod explain;
pub mod install;
pub mod status;

use std::path::Path;

use crate::config::Config;

/// Logs go to stderr; `RUST_LOG` filters them (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Loads the configuration named by `--config`, `VERIFIER_CONFIG` or the default location.
pub fn load_config(cli_path: Option<&Path>) -> anyhow::Result<Config> {
    let (path, explicit) = Config::resolve_path(cli_path);
    Ok(Config::load(&path, explicit)?)
}
