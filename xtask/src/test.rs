//! `cargo xtask test`: the project's whole test run, as CI runs it. Lints first (fmt, clippy for
//! userspace and for the eBPF target), then unit tests, then the integration tests in `tests/`, which
//! load real eBPF programs and run real dpkg/rpm transactions (root required) one at a time.
use std::time::Instant;

use crate::process::{cargo, require_root, run_checked};

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Skip fmt and clippy.
    #[arg(long)]
    pub no_lint: bool,
    /// Skip the kernel matrix (the recorder tests on other kernels under qemu).
    #[arg(long)]
    pub no_vm: bool,
    /// Only run tests whose name contains this filter (skips the kernel matrix).
    pub filter: Option<String>,
}

/// The recorder tests that need no package manager in the guest, on each kernel the recorder
/// supports besides this one (see the README's kernel table), from the same build.
const PORTABLE_RECORDER_TESTS: &[&str] = &[
    "file_operations",
    "relative_dirfd",
    "ia32_syscalls",
    "io_uring_use",
    "files_open_for_write",
    "a_full_ring_buffer",
    "every_program_is_attached",
    "the_backend_follows",
];

/// Each portable test runs once per backend in every guest: `lsm` (what `auto` picks there) and
/// `tracepoint` forced, from the same build and boot.
const MATRIX_BACKENDS: &[&str] = &["lsm", "tracepoint"];

fn kernel_matrix() -> anyhow::Result<()> {
    let mut command = cargo();
    command.args([
        "xtask",
        "vm",
        "--kernel",
        "6.1",
        "--kernel",
        "6.12",
        "--test",
        "recorder",
        // Two backends per boot: twice the tests of one (600 s was exceeded on 6.12).
        "--timeout",
        "1500",
    ]);
    for backend in MATRIX_BACKENDS {
        command.args(["--backend", backend]);
    }
    command.arg("--");
    command.args(PORTABLE_RECORDER_TESTS);
    run_checked(&mut command)
}

pub fn run(options: &Options) -> anyhow::Result<()> {
    require_root("test")?;
    let mut timings = Vec::new();
    let mut step = |name: &'static str, f: &mut dyn FnMut() -> anyhow::Result<()>| {
        let started = Instant::now();
        let result = f();
        timings.push((name, started.elapsed()));
        result
    };
    if !options.no_lint {
        step("fmt", &mut lint_format)?;
        step("clippy", &mut lint_clippy)?;
        step("clippy (eBPF)", &mut lint_clippy_ebpf)?;
    }
    let filter = options.filter.clone();
    step("unit tests", &mut || unit_tests(filter.as_deref()))?;
    // The scenario suite records each verdict even when an assertion fails: render the table
    // before reporting the test run's result.
    let suite_started = std::time::SystemTime::now();
    let integration = step("integration tests", &mut || {
        integration_tests(filter.as_deref())
    });
    if crate::scenarios::results_written_since(suite_started) {
        step("scenario table", &mut || {
            crate::scenarios::run(&crate::scenarios::Options {
                results: None,
                readme: "README.md".into(),
            })
        })?;
    }
    integration?;
    if options.filter.is_none() && !options.no_vm {
        step("kernel matrix (qemu)", &mut kernel_matrix)?;
    }
    for (name, elapsed) in &timings {
        eprintln!("xtask: {name}: {:.1}s", elapsed.as_secs_f64());
    }
    Ok(())
}

fn lint_format() -> anyhow::Result<()> {
    run_checked(cargo().args(["fmt", "--all", "--", "--check"]))
}

fn lint_clippy() -> anyhow::Result<()> {
    run_checked(cargo().args(["clippy", "--all-targets", "--", "-D", "warnings"]))
}

fn lint_clippy_ebpf() -> anyhow::Result<()> {
    run_checked(
        cargo()
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["clippy", "--package", "verifier-ebpf", "--release"])
            .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"])
            .args(["--", "-D", "warnings"]),
    )
}

fn unit_tests(filter: Option<&str>) -> anyhow::Result<()> {
    let mut command = cargo();
    command.args([
        "test",
        "--package",
        "verifier-common",
        "--package",
        "verifier-userspace",
    ]);
    command.args(["--package", "xtask"]);
    if let Some(filter) = filter {
        command.args(["--", filter]);
    }
    run_checked(&mut command)
}

/// The `tests` crate shares kernel state (programs, dpkg database), so its tests run serially. They
/// run the real binaries, which cargo does not build for another package's tests: build them first.
fn integration_tests(filter: Option<&str>) -> anyhow::Result<()> {
    run_checked(cargo().args(["build", "--package", "verifier-userspace", "--bins"]))?;
    let mut command = cargo();
    command.args(["test", "--package", "tests", "--", "--test-threads=1"]);
    if let Some(filter) = filter {
        command.arg(filter);
    }
    run_checked(&mut command)
}
