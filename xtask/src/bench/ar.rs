//! Active Response benchmarks (`tests/src/bin/ar-bench`): the `verify-file` round trip as OSSEC
//! and Wazuh run it, and the verdicts for every file of a many-file dpkg upgrade against the origin
//! write-up's script (`xtask/bench-assets/verify-file-deb.sh`) run on the same alerts.
use std::{
    fmt::Write as _,
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};
use serde_json::Value;

use super::{Comparison, Options, Report, Samples};
use crate::process::{cargo, run_checked, workspace_root};

/// The parameters of one run.
struct Params {
    files: usize,
    subset: usize,
    repeats: usize,
    concurrency: usize,
    round_trips: usize,
    origin_sequential: usize,
}

impl Params {
    fn for_options(options: &Options) -> Self {
        if options.quick {
            Self {
                files: 1000,
                subset: 40,
                repeats: 1,
                concurrency: 8,
                round_trips: 50,
                origin_sequential: 5,
            }
        } else {
            Self {
                files: 5000,
                subset: 250,
                repeats: options.repeat.clamp(1, 3),
                concurrency: 8,
                round_trips: 300,
                origin_sequential: 20,
            }
        }
    }
}

pub fn run(options: &Options, report: &mut Report) -> anyhow::Result<()> {
    crate::release::build()?;
    run_checked(cargo().args(["build", "--release", "-p", "tests", "--bin", "ar-bench"]))?;
    let root = workspace_root();
    let binary = root.join("target/release/ar-bench");
    let script = root.join("xtask/bench-assets/verify-file-deb.sh");
    let params = Params::for_options(options);
    let mut command = Command::new(&binary);
    command
        .arg("--origin-script")
        .arg(&script)
        .args(["--files", &params.files.to_string()])
        .args(["--subset", &params.subset.to_string()])
        .args(["--repeats", &params.repeats.to_string()])
        .args(["--concurrency", &params.concurrency.to_string()])
        .args(["--round-trips", &params.round_trips.to_string()])
        .args(["--origin-sequential", &params.origin_sequential.to_string()])
        .stderr(Stdio::inherit());
    eprintln!("xtask: running {command:?}");
    let output = command
        .output()
        .with_context(|| format!("running {}", binary.display()))?;
    if !output.status.success() {
        bail!(
            "ar-bench failed ({}); see its messages above",
            output.status
        );
    }
    let results: Value = serde_json::from_slice(&output.stdout).context("ar-bench output")?;
    add_comparisons(&results, report);
    report.sections.push(section(&results));
    report.raw.push(("ar".into(), results));
    Ok(())
}

fn samples(value: &Value) -> Samples {
    Samples {
        unit: "s",
        values: value
            .as_array()
            .map(|values| values.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default(),
    }
}

fn per_round(results: &Value, key: &str) -> Samples {
    Samples {
        unit: "s",
        values: results["rounds"]
            .as_array()
            .map(|rounds| rounds.iter().filter_map(|r| r[key].as_f64()).collect())
            .unwrap_or_default(),
    }
}

fn number(value: &Value) -> usize {
    value
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0)
}

/// The run's package size, origin subset size and concurrency.
fn sizes(results: &Value) -> (usize, usize, usize) {
    let params = &results["params"];
    (
        number(&params["files"]),
        number(&params["subset"]),
        number(&params["concurrency"]),
    )
}

fn add_comparisons(results: &Value, report: &mut Report) {
    let (files, subset, concurrency) = sizes(results);
    let round_trip = &results["round_trip"];
    report.comparisons.push(Comparison {
        benchmark: "AR round trip per alert, one at a time (OSSEC argv + alerts.log)".into(),
        ours: (
            "verify-file + daemon".into(),
            samples(&round_trip["ossec_runs_s"]),
        ),
        baseline: (
            "origin script".into(),
            samples(&round_trip["origin_runs_s"]),
        ),
        target: "p50/p99 reported".into(),
    });
    report.comparisons.push(Comparison {
        benchmark: format!(
            "{files}-file upgrade: the same {subset} alerts, {concurrency} at a time (measured)"
        ),
        ours: (
            "verify-file + daemon".into(),
            per_round(results, "ours_subset_s"),
        ),
        baseline: (
            "origin script".into(),
            per_round(results, "origin_subset_s"),
        ),
        target: "≥ 100×".into(),
    });
    let scale = files as f64 / subset.max(1) as f64;
    let mut extrapolated = per_round(results, "origin_subset_s");
    extrapolated.values.iter_mut().for_each(|v| *v *= scale);
    let baseline_name = if subset < files {
        format!("origin script, EXTRAPOLATED from {subset} alerts (×{scale:.0})")
    } else {
        "origin script".to_owned()
    };
    report.comparisons.push(Comparison {
        benchmark: format!("{files}-file upgrade: every alert, {concurrency} at a time (total)"),
        ours: (
            "verify-file + daemon".into(),
            per_round(results, "ours_total_s"),
        ),
        baseline: (baseline_name, extrapolated),
        target: "≥ 100×".into(),
    });
    report.figures.push((
        "AR round trip per alert, one at a time (Wazuh stdin + check_keys)".into(),
        samples(&round_trip["wazuh_runs_s"]),
    ));
    report.figures.push((
        format!("dpkg upgrade of {files} files with the daemon recording"),
        per_round(results, "dpkg_upgrade_s"),
    ));
}

/// p50/p99/min/max of a list of seconds, in milliseconds.
fn latency_row(name: &str, value: &Value) -> String {
    let samples = samples(value);
    format!(
        "| {name} | {} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
        samples.values.len(),
        samples.percentile(0.5) * 1e3,
        samples.percentile(0.99) * 1e3,
        samples.min() * 1e3,
        samples.max() * 1e3
    )
}

fn counts(value: &Value) -> String {
    value
        .as_object()
        .map(|map| {
            map.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_else(|| "?".to_owned())
}

fn section(results: &Value) -> String {
    let (files, subset, concurrency) = sizes(results);
    let round_trip = &results["round_trip"];
    let mut md = String::from("### Active Response: shim round trip\n\n");
    md.push_str(
        "Each run is `verify-file` started as ossec-execd starts it (argv `add - - <alertid> 550 \
         syscheck <path>`, stdin /dev/null, cwd /; the alert read from alerts.log by its id) or as \
         wazuh-execd does (stdin JSON, `check_keys`, `continue`), until it exits; the release daemon \
         (own state dir, socket, AR log; `[policy] enroll = false`) has written the verdict by then. \
         One run at a time, each about a distinct file that a real `dpkg -i` upgrade just rewrote.\n\n\
         | program | runs | p50 ms | p99 ms | min ms | max ms |\n|---|---|---|---|---|---|\n",
    );
    md.push_str(&latency_row(
        "verify-file, OSSEC argv",
        &round_trip["ossec_runs_s"],
    ));
    md.push_str(&latency_row(
        "verify-file, Wazuh stdin",
        &round_trip["wazuh_runs_s"],
    ));
    md.push_str(&latency_row(
        "origin script (same OSSEC alerts)",
        &round_trip["origin_runs_s"],
    ));
    let _ = writeln!(
        md,
        "\nVerdicts: OSSEC {}; Wazuh {}; origin script {}.\n",
        counts(&round_trip["ossec_verdicts"]),
        counts(&round_trip["wazuh_verdicts"]),
        counts(&round_trip["origin_verdicts"])
    );

    let _ = write!(
        md,
        "### Active Response: {files}-file upgrade against the origin script\n\n\
         Per round: a throwaway package of {files} files under /usr/lib is upgraded with `dpkg -i` \
         while the daemon records; one of its files is then appended to by an ordinary process; one \
         stock rule-550 block per file is appended to alerts.log (OSSEC 3.7 layout, with size and \
         hash lines). Our shim then runs for every alert, the origin script for a fixed random \
         subset of {subset} alerts (always including the hand-changed file); both are forked {concurrency} \
         at a time with the same argv. Our total = the subset batch + the rest. The origin total \
         for every alert is **extrapolated** (subset time × {files}/{subset}) when the subset is \
         smaller than the package.\n\n\
         | round | dpkg upgrade s | ours: all {files} s | ours: subset s | origin: subset s | origin: all s (extrapolated) | subset ratio | total ratio |\n\
         |---|---|---|---|---|---|---|---|\n"
    );
    let scale = files as f64 / subset.max(1) as f64;
    let rounds = results["rounds"].as_array().cloned().unwrap_or_default();
    for (index, round) in rounds.iter().enumerate() {
        let f = |key: &str| round[key].as_f64().unwrap_or(f64::NAN);
        let _ = writeln!(
            md,
            "| {} | {:.1} | {:.2} | {:.2} | {:.1} | {:.0} | {:.0}× | {:.0}× |",
            index + 1,
            f("dpkg_upgrade_s"),
            f("ours_total_s"),
            f("ours_subset_s"),
            f("origin_subset_s"),
            f("origin_subset_s") * scale,
            f("origin_subset_s") / f("ours_subset_s"),
            f("origin_subset_s") * scale / f("ours_total_s"),
        );
    }
    md.push_str(
        "\n| round | per-run p50/p99 ms, ours | per-run p50/p99 ms, origin | verdicts, ours (all alerts) | verdicts, origin (subset) | hand-changed file: ours / origin | agreement on the subset |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for (index, round) in rounds.iter().enumerate() {
        let pct = |key: &str| {
            format!(
                "{:.0} / {:.0}",
                round[key]["p50"].as_f64().unwrap_or(f64::NAN) * 1e3,
                round[key]["p99"].as_f64().unwrap_or(f64::NAN) * 1e3
            )
        };
        let disagree = round["agreement_on_subset"]["disagree"]
            .as_array()
            .map_or(0, Vec::len);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} / {} | {} agree, {disagree} disagree |",
            index + 1,
            pct("ours_run_s"),
            pct("origin_run_s"),
            counts(&round["ours_verdicts"]),
            counts(&round["origin_verdicts"]),
            round["changed_by_hand"]["ours"].as_str().unwrap_or("?"),
            round["changed_by_hand"]["origin"].as_str().unwrap_or("?"),
            round["agreement_on_subset"]["agree"],
        );
    }
    for (index, round) in rounds.iter().enumerate() {
        let failures = round["ours_unexpected_failures"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !failures.is_empty() {
            let _ = writeln!(
                md,
                "\nRound {}: our unexpected failures (false alerts), as logged:\n",
                index + 1
            );
            for line in failures {
                let _ = writeln!(md, "- {}", line.as_str().unwrap_or("?"));
            }
        }
    }
    md.push_str(
        "\nOrigin verdicts: `accepted` = a `succeeded` AR line and no mail; `alerted` = it sent a \
         mail (its alert channel; it then still logs `succeeded`); `failed` = its own failure line.\n\n\
         The origin script (`xtask/bench-assets/verify-file-deb.sh`, as published) runs with these \
         substitutions and nothing else:\n\n",
    );
    for substitution in results["origin_script"]["substitutions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let _ = writeln!(
            md,
            "- `{}` → `{}`",
            substitution["from"].as_str().unwrap_or("?"),
            substitution["to"].as_str().unwrap_or("?")
        );
    }
    let unfixed = &round_trip["origin_with_only_paths_adjusted"];
    let _ = writeln!(
        md,
        "\nThe last one is the only fix. With only the paths and mail adjusted, `/bin/sh` → `{}` \
         ends the script with exit code {} and {} AR log lines, saying: `{}` — it never reaches \
         the dpkg checks and logs nothing, so every alert would pass in silence.",
        unfixed["bin_sh"].as_str().unwrap_or("?"),
        unfixed["exit_code"],
        unfixed["ar_log_lines_written"],
        unfixed["stderr"]
            .as_str()
            .unwrap_or("?")
            .replace('\n', " / ")
    );
    let status = &results["daemon_status"];
    let _ = writeln!(
        md,
        "\nDaemon after the run: {} events stored, {} lost, store {} bytes on disk.",
        status["events_stored"], status["events_lost"], status["store_bytes_on_disk"]
    );
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape ar-bench prints, trimmed: every table renders and the ratios are baseline/ours.
    #[test]
    fn renders_comparisons_and_section() {
        let results = serde_json::json!({
            "params": {"files": 1000, "subset": 40, "concurrency": 8},
            "round_trip": {
                "ossec_runs_s": [0.05, 0.06], "wazuh_runs_s": [0.02], "origin_runs_s": [0.5],
                "ossec_verdicts": {"succeeded": 2}, "wazuh_verdicts": {"succeeded": 1},
                "origin_verdicts": {"accepted": 1},
                "origin_with_only_paths_adjusted": {"bin_sh": "dash", "exit_code": 127,
                    "ar_log_lines_written": 0, "stderr": "16: Bad substitution\n1: log_failure: not found"},
            },
            "rounds": [{
                "dpkg_upgrade_s": 3.4, "ours_total_s": 7.2, "ours_subset_s": 1.2,
                "origin_subset_s": 21.6, "ours_run_s": {"p50": 0.04, "p99": 0.19},
                "origin_run_s": {"p50": 4.2, "p99": 5.1},
                "ours_verdicts": {"failed": 1, "succeeded": 999},
                "origin_verdicts": {"accepted": 39, "alerted": 1},
                "changed_by_hand": {"ours": "failed", "origin": "alerted"},
                "agreement_on_subset": {"agree": 40, "disagree": []},
            }],
            "origin_script": {"substitutions": [{"from": "a", "to": "b"}]},
            "daemon_status": {"events_stored": 1, "events_lost": 0, "store_bytes_on_disk": 2},
        });
        let mut report = Report::default();
        add_comparisons(&results, &mut report);
        assert_eq!(report.comparisons.len(), 3);
        assert!((report.comparisons[1].ratio() - 18.0).abs() < 1e-9);
        assert!((report.comparisons[2].ratio() - 75.0).abs() < 1e-9);
        let md = section(&results);
        assert!(
            md.contains("| 1 | 3.4 | 7.20 | 1.20 | 21.6 | 540 | 18× | 75× |"),
            "{md}"
        );
        assert!(md.contains("40 agree, 0 disagree"), "{md}");
        assert!(
            md.contains("EXTRAPOLATED")
                || report.comparisons[2].baseline.0.contains("EXTRAPOLATED")
        );
    }
}
