//! `cargo xtask build-ebpf`: build `verifier-ebpf` for the BPF target directly, so compiler errors show
//! verbatim (through the userspace build script they arrive as warnings).
use crate::process::{cargo, run_checked as run_command};

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Build without optimisations (the verifier usually rejects these; for compiler errors only).
    #[arg(long)]
    pub debug: bool,
}

pub fn run(options: &Options) -> anyhow::Result<()> {
    let mut command = cargo();
    command
        .env("RUSTC_BOOTSTRAP", "1")
        .args(["build", "--package", "verifier-ebpf", "--bins"])
        .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"]);
    if !options.debug {
        command.arg("--release");
    }
    run_command(&mut command)?;
    eprintln!("xtask: eBPF object in target/bpfel-unknown-none/");
    Ok(())
}
