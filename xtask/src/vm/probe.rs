//! Which BPF program types a kernel accepts: tiny programs in `probe.bpf.c`, one per object,
//! compiled with clang for the BPF target, and `probe_loader.c` (built with the host's cc and
//! libbpf), which loads, attaches and triggers each one and reads its run counter, on the host and
//! in every guest. It prints one `VMPROBE <name>=ok hits=<n>` or `=fail <stage>: <reason>` line each.
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

/// A probe: its report name, the macro that selects its program, and what it shows.
pub struct Probe {
    pub name: &'static str,
    pub define: &'static str,
    pub about: &'static str,
}

pub const PROBES: &[Probe] = &[
    Probe {
        name: "tp_btf",
        define: "PROBE_TP_BTF",
        about: "tp_btf/sched_process_exec",
    },
    Probe {
        name: "raw_tp",
        define: "PROBE_RAW_TP",
        about: "raw_tp/sched_process_exec",
    },
    Probe {
        name: "fentry",
        define: "PROBE_FENTRY",
        about: "fentry/security_file_open",
    },
    Probe {
        name: "fexit",
        define: "PROBE_FEXIT",
        about: "fexit/security_file_open",
    },
    Probe {
        name: "fentry_d_path",
        define: "PROBE_FENTRY_D_PATH",
        about: "fentry/security_file_open calling bpf_d_path (CO-RE field offset)",
    },
    Probe {
        name: "lsm",
        define: "PROBE_LSM",
        about: "lsm/file_open",
    },
    Probe {
        name: "lsm_sleepable",
        define: "PROBE_LSM_SLEEPABLE",
        about: "lsm.s/file_open",
    },
    Probe {
        name: "lsm_d_path_file_open",
        define: "PROBE_LSM_D_PATH_FILE_OPEN",
        about: "lsm/file_open calling bpf_d_path (CO-RE field offset)",
    },
    Probe {
        name: "lsm_d_path_path_unlink",
        define: "PROBE_LSM_D_PATH_PATH_UNLINK",
        about: "lsm/path_unlink calling bpf_d_path",
    },
];

/// Where the loader and the probe objects live inside the guest.
pub const GUEST_DIR: &str = "/vm/probe";
/// The loader's file name (host and guest).
pub const LOADER: &str = "probe-loader";

/// The built probe: the loader and one object per probe.
pub struct Built {
    pub loader: PathBuf,
    pub objects: Vec<PathBuf>,
}

/// Compiles every probe into `out_dir/<name>.o` and the loader into `out_dir/probe-loader`.
pub fn build(out_dir: &Path) -> anyhow::Result<Built> {
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/vm");
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let clang = clang()?;
    let mut objects = Vec::new();
    for probe in PROBES {
        let object = out_dir.join(format!("{}.o", probe.name));
        run(Command::new(&clang)
            // -mcpu=v2: clang 22's default (v3) turns even an unused __sync_fetch_and_add into
            // atomic_fetch_add, which kernels before 5.12 reject ("BPF_STX uses reserved fields").
            .args([
                "-target",
                "bpf",
                "-mcpu=v2",
                "-O2",
                "-g",
                "-D",
                probe.define,
                "-c",
            ])
            .arg(sources.join("probe.bpf.c"))
            .arg("-o")
            .arg(&object))?;
        objects.push(object);
    }
    let loader = out_dir.join(LOADER);
    if !Path::new("/usr/include/bpf/libbpf.h").exists() {
        bail!("libbpf-dev is missing: run scripts/setup-vm.sh");
    }
    run(Command::new("cc")
        .args(["-O2", "-Wall", "-o"])
        .arg(&loader)
        .arg(sources.join("probe_loader.c"))
        .arg("-lbpf"))?;
    Ok(Built { loader, objects })
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot start {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok(())
}

fn clang() -> anyhow::Result<String> {
    ["clang-22", "clang"]
        .into_iter()
        .find(|candidate| {
            Command::new(candidate)
                .arg("--version")
                .output()
                .is_ok_and(|output| output.status.success())
        })
        .map(str::to_owned)
        .context("clang-22 is missing (scripts/setup.sh installs it)")
}

/// Probe results by name ("ok hits=<n>" or "fail <stage>: <reason>") from `VMPROBE` lines.
pub fn parse_results<'a>(lines: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, String> {
    lines
        .into_iter()
        .filter_map(|line| line.trim().strip_prefix("VMPROBE "))
        .filter_map(|result| result.split_once('='))
        .map(|(name, outcome)| (name.to_owned(), outcome.trim().to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_read_from_marker_lines() {
        let results = parse_results([
            "noise",
            "VMPROBE lsm=ok hits=3",
            "VMPROBE fentry=fail load: Operation not permitted",
        ]);
        assert_eq!(results["lsm"], "ok hits=3");
        assert_eq!(results["fentry"], "fail load: Operation not permitted");
        assert_eq!(results.len(), 2);
    }
}
