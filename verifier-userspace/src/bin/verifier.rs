//! `verifier`: the daemon and its command line (status, explain, audit, install).
use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use verifier::cli;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Explains file changes by package transactions for OSSEC/Wazuh"
)]
struct Args {
    /// Configuration file (default /etc/verifier/config.toml).
    #[arg(long, global = true, env = verifier::config::CONFIG_ENV)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon in the foreground until SIGINT/SIGTERM.
    Daemon,
    /// Show the daemon's programs, event rates, losses, store size, transactions in flight.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Tell the recorded story of a file: writers, transactions, renames, gaps, verdicts.
    Explain {
        path: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Verify every installed package file against the package databases.
    Audit {
        /// Only this package.
        #[arg(long)]
        package: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Install the verify-file shim and print or apply the OSSEC/Wazuh configuration.
    Install(cli::install::InstallArgs),
}

fn main() -> ExitCode {
    let args = Args::parse();
    cli::init_logging();
    let config_path = args.config.as_deref();
    let result = match args.command {
        Command::Daemon => cli::daemon::run(config_path),
        Command::Status { json } => cli::status::run(config_path, json),
        Command::Explain { path, json } => cli::explain::run(config_path, &path, json),
        Command::Audit { package, json } => cli::audit::run(config_path, package.as_deref(), json),
        Command::Install(install) => cli::install::run(config_path, &install),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("verifier: {error:#}");
            ExitCode::FAILURE
        }
    }
}
