//! Which BPF program types a kernel accepts: tiny programs in `probe.bpf.c`, one per object,
//! compiled with clang for the BPF target and loaded with `bpftool prog load` (on the host and in
//! every guest). The guest-side script prints one `VMPROBE <name>=ok|fail <reason>` line each.
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

/// Where the probe objects and script live inside the guest.
pub const GUEST_DIR: &str = "/vm/probe";

/// The script that loads every `*.o` in its directory argument and reports each result.
pub const SCRIPT: &str = r#"#!/bin/sh
# Loads each BPF probe object with bpftool and prints VMPROBE <name>=ok|fail <reason>.
dir=$1
# Pin files directly in bpffs: some kernels refuse mkdir there.
pin=/sys/fs/bpf/vmprobe_$$
if ! grep -q ' /sys/fs/bpf bpf ' /proc/mounts; then
  echo "VMPROBE error=bpffs is not mounted at /sys/fs/bpf"
  exit 0
fi
for obj in "$dir"/*.o; do
  name=$(basename "$obj" .o)
  if out=$(bpftool prog load "$obj" "${pin}_$name" 2>&1); then
    echo "VMPROBE $name=ok"
  else
    reason=$(printf '%s\n' "$out" | sed -n 's/.*BPF program load failed: //p' | head -n 1)
    [ -n "$reason" ] || reason=$(printf '%s\n' "$out" | grep -m 1 'libbpf:' | sed 's/^libbpf: //')
    verifier=$(printf '%s\n' "$out" | grep -B 1 -e '-- END PROG LOAD LOG --' | head -n 1)
    echo "VMPROBE $name=fail $reason${verifier:+ | $verifier}"
  fi
  rm -f "${pin}_$name"
done
"#;

/// Compiles every probe into `out_dir/<name>.o`; returns the objects.
pub fn build(out_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/vm/probe.bpf.c");
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let clang = clang()?;
    let mut objects = Vec::new();
    for probe in PROBES {
        let object = out_dir.join(format!("{}.o", probe.name));
        let status = Command::new(&clang)
            .args(["-target", "bpf", "-O2", "-g", "-D", probe.define, "-c"])
            .arg(&source)
            .arg("-o")
            .arg(&object)
            .status()
            .with_context(|| format!("cannot start {clang}"))?;
        if !status.success() {
            bail!("{clang} failed to build probe {}: {status}", probe.name);
        }
        objects.push(object);
    }
    Ok(objects)
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

/// Probe results by name ("ok" or "fail <reason>") from `VMPROBE` lines.
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
            "VMPROBE lsm=ok",
            "VMPROBE fentry=fail Operation not permitted",
        ]);
        assert_eq!(results["lsm"], "ok");
        assert_eq!(results["fentry"], "fail Operation not permitted");
        assert_eq!(results.len(), 2);
    }
}
