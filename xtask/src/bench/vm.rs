//! Recorder overhead per backend, inside one VM (a stock Debian kernel under qemu, which accepts
//! BPF LSM): the same file workload (the test actor creating, writing and removing files) with no
//! recorder, with the tracepoint backend and with the LSM backend, interleaved, in one boot.
//! Reported as ratios to the no-recorder baseline. Absolute times are TCG-emulated (slow); the
//! ratios are what carries over.
use std::time::Duration;

use super::{
    Options, Report,
    report::{Comparison, Samples},
};
use crate::vm;

/// The kernel the benchmark boots (accepts both backends).
const KERNEL: &str = "6.12";
/// The guest-side benchmark (an ignored test of `tests/tests/recorder.rs`).
const GUEST_BENCHMARK: &str = "backend_overhead_benchmark";
const MARKER: &str = "VMBENCH ";

pub fn run(_options: &Options, report: &mut Report) -> anyhow::Result<()> {
    let args = ["--exact", GUEST_BENCHMARK, "--nocapture"].map(str::to_owned);
    let (lines, rc) = vm::run_tests_in_guest(
        KERNEL,
        &["recorder".to_owned()],
        &args,
        Duration::from_secs(900),
    )?;
    anyhow::ensure!(
        rc == Some(0),
        "the guest benchmark failed (rc {rc:?}):\n{}",
        lines.join("\n")
    );
    let samples = parse(&lines);
    let baseline = samples_of(&samples, "none")?;
    let mut raw = serde_json::Map::new();
    for (mode, values) in &samples {
        raw.insert(mode.clone(), serde_json::json!(values));
    }
    for mode in ["tracepoint", "lsm"] {
        let Ok(ours) = samples_of(&samples, mode) else {
            continue;
        };
        report.comparisons.push(Comparison {
            benchmark: format!("file workload in a {KERNEL} VM: {mode} backend vs no recorder"),
            ours: (format!("{mode} backend"), ours),
            baseline: ("no recorder".to_owned(), baseline.clone()),
            target: "close to 1× (1× = no overhead)".to_owned(),
        });
    }
    let mut section = format!(
        "### Recorder overhead per backend ({KERNEL} VM under qemu TCG, same workload, same boot)\n\n\
         | mode | runs | median s | slowdown vs no recorder |\n|---|---|---|---|\n"
    );
    for (mode, values) in &samples {
        let median = Samples {
            unit: "s",
            values: values.clone(),
        }
        .median();
        section.push_str(&format!(
            "| {mode} | {} | {median:.3} | {:.2}× |\n",
            values.len(),
            median / baseline.median()
        ));
    }
    report.sections.push(section);
    report.raw.push((
        "recorder_backends_vm".into(),
        serde_json::Value::Object(raw),
    ));
    Ok(())
}

/// `(mode, seconds of each run)` from `VMBENCH mode=<mode> seconds=<s>` lines.
fn parse(lines: &[String]) -> Vec<(String, Vec<f64>)> {
    let mut samples: Vec<(String, Vec<f64>)> = Vec::new();
    for line in lines {
        let Some(rest) = line.trim().strip_prefix(MARKER) else {
            continue;
        };
        let mut mode = None;
        let mut seconds = None;
        for field in rest.split_whitespace() {
            match field.split_once('=') {
                Some(("mode", value)) => mode = Some(value.to_owned()),
                Some(("seconds", value)) => seconds = value.parse::<f64>().ok(),
                _ => {}
            }
        }
        if let (Some(mode), Some(seconds)) = (mode, seconds) {
            match samples.iter_mut().find(|(known, _)| *known == mode) {
                Some((_, values)) => values.push(seconds),
                None => samples.push((mode, vec![seconds])),
            }
        }
    }
    samples
}

fn samples_of(samples: &[(String, Vec<f64>)], mode: &str) -> anyhow::Result<Samples> {
    let values = samples
        .iter()
        .find(|(known, _)| known == mode)
        .map(|(_, values)| values.clone())
        .ok_or_else(|| anyhow::anyhow!("no {mode} runs in the guest output"))?;
    Ok(Samples { unit: "s", values })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_lines_are_grouped_by_mode() {
        let lines = [
            "VMBENCH mode=none seconds=1.5",
            "noise",
            "VMBENCH mode=lsm seconds=2.0\r",
            "VMBENCH mode=none seconds=1.0",
        ]
        .map(str::to_owned);
        let samples = parse(&lines);
        assert_eq!(
            samples,
            [
                ("none".to_owned(), vec![1.5, 1.0]),
                ("lsm".to_owned(), vec![2.0])
            ]
        );
    }
}
