//! `verify-file`: the Active Response program OSSEC/Wazuh run for each syscheck alert. All the
//! logic lives in [`verifier::ar::shim`]; this keeps start-up to argument collection and a
//! stderr logger (no async runtime).

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

/// Environment variable with a `tracing` filter for the shim's stderr (default `warn`).
const LOG_ENV: &str = "VERIFY_FILE_LOG";

fn main() -> ExitCode {
    let filter = EnvFilter::try_from_env(LOG_ENV).unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_ansi(false)
        .init();
    let exit = verifier::ar::shim::run(std::env::args_os().collect());
    ExitCode::from(exit.code())
}
