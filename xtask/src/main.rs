//! Developer tasks for the verifier workspace: `cargo xtask <task>`.
mod bench;
mod build_ebpf;
mod demo;
mod process;
mod release;
mod scenarios;
mod test;
mod vm;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(about = "verifier developer tasks")]
struct Args {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Build the eBPF object directly (shows compiler errors verbatim).
    BuildEbpf(build_ebpf::Options),
    /// Build the release binaries as installed (`verifier`, and the static `verify-file` shim).
    Release(release::Options),
    /// Run every check and test: fmt, clippy, unit, integration and root/eBPF tests.
    Test(test::Options),
    /// The main job: the daemon judging a real dpkg upgrade, a tampered file and a hand-made change.
    Demo(demo::Options),
    /// Run the benchmarks and write a report with ratios against each baseline.
    Bench(bench::Options),
    /// Run the test binaries under stock Debian kernels in qemu and probe their BPF support.
    Vm(vm::Options),
    /// Render the scenario suite's last results into the README's scenario table.
    ScenariosTable(scenarios::Options),
}

fn main() -> anyhow::Result<()> {
    match Args::parse().task {
        Task::BuildEbpf(options) => build_ebpf::run(&options),
        Task::Release(options) => release::run(&options),
        Task::Test(options) => test::run(&options),
        Task::Demo(options) => demo::run(&options),
        Task::Bench(options) => bench::run(&options),
        Task::Vm(options) => vm::run(&options),
        Task::ScenariosTable(options) => scenarios::run(&options),
    }
}
