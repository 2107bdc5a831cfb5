//! One kernel's outcome and the markdown report of the whole matrix (the README's kernel-support
//! table comes from it).
use std::{fmt::Write as _, time::Duration};

use super::{
    ProbeResults,
    guest::{self, KERNEL_MARKER, LSM_MARKER, marker_value},
    probe::{self, PROBES},
};

/// What happened on one kernel.
#[derive(Debug)]
pub struct KernelResult {
    pub name: String,
    pub package: String,
    pub release: String,
    pub lsm: String,
    pub probes: ProbeResults,
    pub binaries: Vec<(String, i32)>,
    pub rc: Option<i32>,
    pub error: Option<String>,
    pub fetch_time: Option<Duration>,
    pub boot_time: Option<Duration>,
    pub run_time: Option<Duration>,
}

impl KernelResult {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            package: String::new(),
            release: String::new(),
            lsm: String::new(),
            probes: ProbeResults::new(),
            binaries: Vec::new(),
            rc: None,
            error: None,
            fetch_time: None,
            boot_time: None,
            run_time: None,
        }
    }

    /// Takes the release, LSM list, probe results and per-binary exit codes from marker lines.
    pub fn read_guest_lines<'a>(&mut self, lines: impl IntoIterator<Item = &'a str> + Clone) {
        for line in lines.clone() {
            if let Some(release) = marker_value(line, KERNEL_MARKER) {
                self.release = release.to_owned();
            }
            if let Some(lsm) = marker_value(line, LSM_MARKER) {
                self.lsm = lsm.to_owned();
            }
        }
        self.probes = probe::parse_results(lines.clone());
        self.binaries = guest::binary_results(lines);
    }

    /// Passed: no harness error, the marker came back 0. Probe failures are facts, not failures.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.rc == Some(0)
    }
}

fn seconds(duration: Option<Duration>) -> String {
    duration.map_or_else(|| "-".to_owned(), |d| format!("{:.1}s", d.as_secs_f64()))
}

/// "yes" (loaded, attached and ran), "no (<stage>)" for the stage that failed, or "?" (no result).
fn probe_cell(result: &KernelResult, name: &str) -> String {
    match result.probes.get(name) {
        Some(outcome) if outcome.starts_with("ok") => "yes".to_owned(),
        Some(outcome) => {
            let stage = outcome
                .strip_prefix("fail ")
                .and_then(|rest| rest.split_once(':'))
                .map_or("?", |(stage, _)| stage);
            format!("no ({stage})")
        }
        None => "?".to_owned(),
    }
}

/// The markdown report: support table, test outcomes and timings, then every probe failure reason.
pub fn render(results: &[KernelResult], build_time: Duration, total: Duration) -> String {
    let mut out = String::from("## Kernel matrix\n\n| kernel | release | BPF LSM active |");
    for probe in PROBES {
        let _ = write!(out, " {} |", probe.name);
    }
    out.push_str(" tests | fetch | boot | boot+tests |\n|---|---|---|");
    out.push_str(&"---|".repeat(PROBES.len() + 4));
    out.push('\n');
    for result in results {
        let lsm_active = if result.lsm.split(',').any(|lsm| lsm == "bpf") {
            "yes"
        } else {
            "no"
        };
        let _ = write!(
            out,
            "| {} | {} | {lsm_active} |",
            result.name, result.release
        );
        for probe in PROBES {
            let _ = write!(out, " {} |", probe_cell(result, probe.name));
        }
        let outcome = if result.passed() { "pass" } else { "FAIL" };
        let _ = writeln!(
            out,
            " {outcome} | {} | {} | {} |",
            seconds(result.fetch_time),
            seconds(result.boot_time),
            seconds(result.run_time)
        );
    }
    out.push_str(
        "\nProbe cells: yes = loaded, attached and ran; no (stage) = failed at that stage. ",
    );
    out.push_str("Probes: ");
    let abouts: Vec<String> = PROBES
        .iter()
        .map(|p| format!("`{}` = {}", p.name, p.about))
        .collect();
    out.push_str(&abouts.join("; "));
    out.push_str(".\n\n");
    for result in results {
        let _ = writeln!(out, "- {} ({}):", result.name, result.package);
        for (binary, rc) in &result.binaries {
            let _ = writeln!(out, "  - test `{binary}`: exit {rc}");
        }
        for (name, outcome) in result
            .probes
            .iter()
            .filter(|(_, outcome)| !outcome.starts_with("ok"))
        {
            let _ = writeln!(out, "  - probe `{name}`: {outcome}");
        }
        if let Some(error) = &result.error {
            let _ = writeln!(out, "  - error: {error}");
        }
    }
    let _ = writeln!(
        out,
        "\nBuild (tests, probes): {:.1}s; whole run: {:.1}s.",
        build_time.as_secs_f64(),
        total.as_secs_f64()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_cells_name_the_failed_stage() {
        let mut result = KernelResult::new("6.1");
        result.read_guest_lines([
            "VMTEST_KERNEL=6.1.0-56-cloud-amd64",
            "VMTEST_LSM=lockdown,capability,bpf",
            "VMPROBE lsm=ok hits=3",
            "VMPROBE lsm_d_path_path_unlink=fail load: Invalid argument | helper call is not allowed",
            "VMTEST_BIN=vm_smoke rc=0",
        ]);
        result.rc = Some(0);
        assert_eq!(probe_cell(&result, "lsm"), "yes");
        assert_eq!(probe_cell(&result, "lsm_d_path_path_unlink"), "no (load)");
        assert_eq!(probe_cell(&result, "fentry"), "?");
        let report = render(&[result], Duration::ZERO, Duration::ZERO);
        assert!(report.contains("| 6.1 | 6.1.0-56-cloud-amd64 | yes |"));
        assert!(report.contains("helper call is not allowed"));
    }

    #[test]
    fn a_guest_without_the_marker_fails() {
        let result = KernelResult::new("6.12");
        assert!(!result.passed());
    }
}
