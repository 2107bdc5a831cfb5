//! `cargo xtask vm`: runs the project's test binaries under stock Debian kernels booted with qemu
//! (software emulation), and optionally on this machine (`--kernel host`), to prove that the eBPF
//! programs load and work on the kernels users run. Also probes which BPF program types each kernel
//! accepts (BPF LSM, fentry, tp_btf, ...) and prints a markdown table of the results.
//! Needs `scripts/setup-vm.sh` (qemu from bookworm-backports, busybox-static, libbpf-dev).
//!
//! Each guest boots from one initramfs (busybox, the test binaries at their host paths, the probe)
//! whose `/init` prints `VMTEST_RC=<rc>` before powering off; no marker means crash or hang.
mod apt;
mod cpio;
mod guest;
mod initramfs;
mod kernels;
mod probe;
mod qemu;
mod report;
mod testbins;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::process::workspace_root;
use report::KernelResult;

/// The kernel name that means "this machine, no VM".
const HOST: &str = "host";
/// The kernel name that means every VM kernel and the host.
const ALL: &str = "all";

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Kernel to run on (repeatable): 5.10, 6.1, 6.12, `host` for this machine without a VM, or
    /// `all` (every VM kernel, then the host). Default: every VM kernel.
    #[arg(long = "kernel", value_name = "NAME")]
    pub kernels: Vec<String>,
    /// Integration test of the `tests` package to run (repeatable). Default: `recorder` when it
    /// exists, and `vm_smoke`.
    #[arg(long = "test", value_name = "TARGET")]
    pub tests: Vec<String>,
    /// Limit for one kernel's boot and tests, in seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// A host program to copy into the guest at the same path, with its libraries (repeatable).
    /// `bpftool` is always copied when installed.
    #[arg(long = "with", value_name = "PROGRAM")]
    pub with: Vec<PathBuf>,
    /// Give the guest dpkg (dpkg, dpkg-deb, tar, ...) with an empty package database, for tests
    /// that build and install throwaway packages.
    #[arg(long)]
    pub dpkg: bool,
    /// Recorder backend to run every test with (repeatable: each test runs once per backend,
    /// through `VERIFIER_TEST_BACKEND`): auto, lsm or tracepoint. Default: the tests' own (auto).
    #[arg(long = "backend", value_name = "BACKEND")]
    pub backends: Vec<String>,
    /// Skip the BPF program-type probe.
    #[arg(long)]
    pub no_probe: bool,
    /// Arguments for every test binary (after `--include-ignored --test-threads=1`), e.g. a filter.
    #[arg(last = true)]
    pub test_args: Vec<String>,
}

pub fn run(options: &Options) -> anyhow::Result<()> {
    let started = Instant::now();
    let kernel_names = selected_kernels(options)?;
    let root = workspace_root();
    let cache = root.join("target/vm-cache");
    let targets = selected_tests(options, &root);
    let workspace_binaries = testbins::build_workspace_binaries()?;
    let built = testbins::build_tests(&targets)?;
    let probes = if options.no_probe {
        None
    } else {
        Some(probe::build(&cache.join("probe"))?)
    };
    let mut test_args = vec![
        "--include-ignored".to_owned(),
        "--test-threads=1".to_owned(),
    ];
    test_args.extend(options.test_args.iter().cloned());
    let build_time = started.elapsed();

    // One initramfs serves every VM kernel; built on first use (not for `--kernel host` alone).
    let mut initrd: Option<PathBuf> = None;
    let mut results = Vec::new();
    for name in &kernel_names {
        eprintln!("xtask vm: ===== kernel {name} =====");
        if name == HOST {
            results.push(run_on_host(
                &built.tests,
                &options.backends,
                &test_args,
                probes.as_ref(),
                &root,
            ));
            continue;
        }
        let spec = kernels::find(name).with_context(|| format!("unknown kernel {name}"))?;
        let initrd = match &initrd {
            Some(path) => path.clone(),
            None => {
                let inputs = GuestInputs {
                    extra_programs: &guest_programs(&options.with, options.dpkg)?,
                    dpkg_database: options.dpkg,
                    tests: &built.tests,
                    test_helpers: &built.helpers,
                    workdir: &root.join("tests"),
                    workspace_binaries: &workspace_binaries,
                    probes: probes.as_ref(),
                    backends: &options.backends,
                    args: &test_args,
                };
                initrd.insert(build_initramfs(&inputs, &cache)?).clone()
            }
        };
        let timeout = Duration::from_secs(options.timeout);
        results.push(run_in_vm(spec, &initrd, &cache, timeout));
    }
    let report = report::render(&results, build_time, started.elapsed());
    println!("{report}");
    let report_path = cache.join("report.md");
    std::fs::write(&report_path, &report)
        .with_context(|| format!("writing {}", report_path.display()))?;
    eprintln!("xtask vm: report written to {}", report_path.display());
    let failed = results.iter().filter(|result| !result.passed()).count();
    println!("vm: {} passed, {failed} failed", results.len() - failed);
    if failed > 0 {
        bail!("{failed} of {} kernels failed", results.len());
    }
    Ok(())
}

fn selected_kernels(options: &Options) -> anyhow::Result<Vec<String>> {
    let vm_kernels = || kernels::CATALOGUE.iter().map(|spec| spec.name.to_owned());
    if options.kernels.is_empty() {
        return Ok(vm_kernels().collect());
    }
    if options.kernels.iter().any(|name| name == ALL) {
        return Ok(vm_kernels().chain([HOST.to_owned()]).collect());
    }
    for name in &options.kernels {
        if name != HOST && kernels::find(name).is_none() {
            let known: Vec<_> = kernels::CATALOGUE.iter().map(|spec| spec.name).collect();
            bail!(
                "unknown kernel {name}: choose from {}, {HOST} or {ALL}",
                known.join(", ")
            );
        }
    }
    Ok(options.kernels.clone())
}

fn selected_tests(options: &Options, root: &Path) -> Vec<String> {
    if !options.tests.is_empty() {
        return options.tests.clone();
    }
    let mut tests = Vec::new();
    if root.join("tests/tests/recorder.rs").exists() {
        tests.push("recorder".to_owned());
    }
    tests.push("vm_smoke".to_owned());
    tests
}

/// Everything that goes into the guest besides busybox.
struct GuestInputs<'a> {
    /// Host programs the tests run, copied to their host paths.
    extra_programs: &'a [PathBuf],
    /// Whether the guest gets an empty dpkg database.
    dpkg_database: bool,
    tests: &'a [testbins::Executable],
    /// Other executables the tests package builds (e.g. processes the tests start).
    test_helpers: &'a [testbins::Executable],
    /// The tests' working directory (the `tests` package directory, as under cargo).
    workdir: &'a Path,
    workspace_binaries: &'a [testbins::Executable],
    probes: Option<&'a probe::Built>,
    backends: &'a [String],
    args: &'a [String],
}

/// Builds the initramfs shared by every VM kernel; returns its path.
fn build_initramfs(inputs: &GuestInputs<'_>, cache: &Path) -> anyhow::Result<PathBuf> {
    let started = Instant::now();
    let stage = cache.join("stage");
    std::fs::create_dir_all(&stage).with_context(|| format!("creating {}", stage.display()))?;
    let mut initramfs = initramfs::Initramfs::new()?;
    initramfs.add_bytes(
        "/etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\n".to_vec(),
        0o644,
    );
    initramfs.add_bytes("/etc/group", b"root:x:0:\n".to_vec(), 0o644);
    // Every binary sits at its host path: tests find the workspace's binaries next to their own
    // `deps/` directory, and helper binaries through paths compiled in (`CARGO_BIN_EXE_*`).
    for binary in inputs.workspace_binaries.iter().chain(inputs.test_helpers) {
        let guest = binary.path.to_string_lossy();
        initramfs.add_executable(&guest, &without_debug_info(&binary.path, &stage)?)?;
    }
    for program in inputs.extra_programs {
        initramfs.add_executable(&program.to_string_lossy(), program)?;
    }
    if inputs.dpkg_database {
        for file in ["status", "available"] {
            initramfs.add_bytes(&format!("/var/lib/dpkg/{file}"), Vec::new(), 0o644);
        }
        for directory in ["info", "updates", "triggers"] {
            initramfs.add_directory(&format!("/var/lib/dpkg/{directory}"));
        }
        initramfs.add_directory("/var/log");
    }
    let mut guest_tests = Vec::new();
    for test in inputs.tests {
        let guest = test.path.to_string_lossy().into_owned();
        initramfs.add_executable(&guest, &without_debug_info(&test.path, &stage)?)?;
        guest_tests.push((test.target.clone(), guest));
    }
    let probe_dir = match inputs.probes {
        None => None,
        Some(probes) => {
            let loader = format!("{}/{}", probe::GUEST_DIR, probe::LOADER);
            initramfs.add_executable(&loader, &probes.loader)?;
            for object in &probes.objects {
                let guest = format!("{}/{}", probe::GUEST_DIR, file_name(object)?);
                initramfs.add_host_file(&guest, object, 0o644)?;
            }
            Some(probe::GUEST_DIR)
        }
    };
    let tests: Vec<_> = guest_tests
        .iter()
        .map(|(name, guest_path)| guest::GuestTest { name, guest_path })
        .collect();
    let init = guest::init_script(
        &tests,
        inputs.backends,
        inputs.args,
        &inputs.workdir.to_string_lossy(),
        probe_dir,
    );
    initramfs.add_bytes("/init", init.into_bytes(), 0o755);
    let path = cache.join("initramfs.cpio");
    let size = initramfs.write(&path)?;
    eprintln!(
        "xtask vm: initramfs {} ({:.1} MB) built in {:.1}s",
        path.display(),
        size as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    Ok(path)
}

/// What dpkg needs to build and install a package: itself, its helpers, GNU tar (dpkg-deb runs
/// it), and the programs dpkg insists on finding in `PATH` when run as root.
const DPKG_PROGRAMS: &[&str] = &[
    "dpkg",
    "dpkg-deb",
    "dpkg-query",
    "dpkg-split",
    "dpkg-trigger",
    "tar",
    "bash",
    "ldconfig",
    "start-stop-daemon",
];

/// The programs to copy into the guest: `bpftool` when installed, dpkg's set with `--dpkg`, and
/// every `--with` program (a bare name is looked up in `PATH`).
fn guest_programs(with: &[PathBuf], dpkg: bool) -> anyhow::Result<Vec<PathBuf>> {
    let mut programs: Vec<PathBuf> = find_program(Path::new("bpftool")).into_iter().collect();
    let dpkg_programs = DPKG_PROGRAMS.iter().filter(|_| dpkg).map(PathBuf::from);
    for program in with.iter().cloned().chain(dpkg_programs) {
        let found = find_program(&program)
            .with_context(|| format!("--with {}: no such program", program.display()))?;
        programs.push(found);
    }
    Ok(programs)
}

fn find_program(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program.is_file().then(|| program.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn file_name(path: &Path) -> anyhow::Result<String> {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .with_context(|| format!("{} has no file name", path.display()))
}

/// A copy of `binary` without DWARF sections (the guest needs no debugger; the initramfs shrinks
/// several times), or `binary` itself when `strip` is not installed.
fn without_debug_info(binary: &Path, stage: &Path) -> anyhow::Result<PathBuf> {
    let stripped = stage.join(file_name(binary)?);
    let status = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&stripped)
        .arg(binary)
        .status();
    match status {
        Ok(status) if status.success() => Ok(stripped),
        _ => Ok(binary.to_path_buf()),
    }
}

fn run_in_vm(
    spec: &kernels::KernelSpec,
    initrd: &Path,
    cache: &Path,
    timeout: Duration,
) -> KernelResult {
    let mut result = KernelResult::new(spec.name);
    let fetch_started = Instant::now();
    let kernel = match kernels::fetch(spec, &cache.join("kernels")) {
        Ok(kernel) => kernel,
        Err(error) => {
            result.error = Some(format!("cannot fetch the kernel: {error:#}"));
            return result;
        }
    };
    result.fetch_time = Some(fetch_started.elapsed());
    result.package = format!("{} {}: {}", kernel.package, kernel.version, spec.about);
    match qemu::boot(&kernel.vmlinuz, initrd, timeout) {
        Ok(boot) => {
            result.read_guest_lines(boot.lines.iter().map(String::as_str));
            result.rc = boot.rc;
            result.boot_time = boot.boot_time;
            result.run_time = Some(boot.elapsed);
            if boot.timed_out {
                result.error = Some(format!("timed out after {}s", timeout.as_secs()));
            } else if boot.rc.is_none() {
                result.error = Some("no VMTEST_RC marker: the guest crashed or hung".to_owned());
            }
        }
        Err(error) => result.error = Some(format!("{error:#}")),
    }
    result
}

/// Runs the probe and the test binaries directly on this machine.
fn run_on_host(
    tests: &[testbins::Executable],
    backends: &[String],
    args: &[String],
    probes: Option<&probe::Built>,
    root: &Path,
) -> KernelResult {
    let started = Instant::now();
    let mut result = KernelResult::new(HOST);
    result.package = "this machine".to_owned();
    let mut lines = vec![
        format!(
            "{}{}",
            guest::KERNEL_MARKER,
            read_trimmed("/proc/sys/kernel/osrelease")
        ),
        format!(
            "{}{}",
            guest::LSM_MARKER,
            read_trimmed("/sys/kernel/security/lsm")
        ),
    ];
    if let Some(probes) = probes {
        match Command::new(&probes.loader).args(&probes.objects).output() {
            Ok(output) => {
                let text = String::from_utf8_lossy(&output.stdout);
                print!("{text}");
                lines.extend(text.lines().map(str::to_owned));
            }
            Err(error) => result.error = Some(format!("cannot run the probe: {error}")),
        }
    }
    let mut rc = 0;
    let runs: Vec<Option<&String>> = if backends.is_empty() {
        vec![None]
    } else {
        backends.iter().map(Some).collect()
    };
    for test in tests {
        for backend in &runs {
            let mut command = Command::new(&test.path);
            command.args(args).current_dir(root.join("tests"));
            let mut name = test.target.clone();
            if let Some(backend) = backend {
                command.env(guest::BACKEND_ENV, backend);
                name = format!("{name}@{backend}");
            }
            let code = match command.status() {
                Ok(status) => status.code().unwrap_or(-1),
                Err(error) => {
                    eprintln!("xtask vm: cannot start {}: {error}", test.path.display());
                    -1
                }
            };
            lines.push(format!("{}{name} rc={code}", guest::BIN_MARKER));
            if code != 0 {
                rc = code;
            }
        }
    }
    result.read_guest_lines(lines.iter().map(String::as_str));
    result.rc = Some(rc);
    result.run_time = Some(started.elapsed());
    result
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|text| text.trim().to_owned())
        .unwrap_or_default()
}

/// Probe outcomes by probe name, as `report` reads them.
pub type ProbeResults = BTreeMap<String, String>;

/// Boots `kernel` (a catalogue name) with the given integration tests of the `tests` package and
/// returns the guest's output lines and its exit-code marker (for benchmarks that run inside a
/// VM; `--include-ignored --test-threads=1` come before `test_args`).
pub fn run_tests_in_guest(
    kernel: &str,
    targets: &[String],
    test_args: &[String],
    timeout: Duration,
) -> anyhow::Result<(Vec<String>, Option<i32>)> {
    let root = workspace_root();
    let cache = root.join("target/vm-cache");
    let spec = kernels::find(kernel).with_context(|| format!("unknown kernel {kernel}"))?;
    let workspace_binaries = testbins::build_workspace_binaries()?;
    let built = testbins::build_tests(targets)?;
    let mut args = vec![
        "--include-ignored".to_owned(),
        "--test-threads=1".to_owned(),
    ];
    args.extend(test_args.iter().cloned());
    let inputs = GuestInputs {
        extra_programs: &guest_programs(&[], false)?,
        dpkg_database: false,
        tests: &built.tests,
        test_helpers: &built.helpers,
        workdir: &root.join("tests"),
        workspace_binaries: &workspace_binaries,
        probes: None,
        backends: &[],
        args: &args,
    };
    let initrd = build_initramfs(&inputs, &cache)?;
    let kernel = kernels::fetch(spec, &cache.join("kernels"))?;
    let boot = qemu::boot(&kernel.vmlinuz, &initrd, timeout)?;
    if boot.timed_out {
        bail!("the guest timed out after {}s", timeout.as_secs());
    }
    Ok((boot.lines, boot.rc))
}
