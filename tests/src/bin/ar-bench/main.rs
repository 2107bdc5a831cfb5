//! `ar-bench`: the Active Response benchmarks, run by `cargo xtask bench` (section `ar`), which
//! prints the raw numbers as one JSON object on stdout (progress on stderr).
//!
//! 1. Shim round trip: `verify-file` run one at a time, as ossec-execd runs it (argv + alerts.log)
//!    and as wazuh-execd runs it (stdin JSON + `check_keys` handshake), against the real release
//!    daemon, each run about a distinct file a real dpkg upgrade just rewrote; the origin script
//!    run the same way on the first alerts is the baseline.
//! 2. Upgrade verdicts: a throwaway package with `--files` files under /usr/lib is upgraded with
//!    dpkg while the daemon records (one new version per round); one file is then changed by an
//!    ordinary process; one stock 550 alert per file goes to alerts.log; then our shim runs for
//!    every alert and the origin script for a fixed random subset (always including the changed
//!    file), both forked `--concurrency` at a time. Verdicts of both are read back and compared.
//!
//! The daemon gets its own state directory, socket, AR log and alerts.log (policy `enroll =
//! false`: enrollment hashes every package file of the machine once, in the background; it would
//! compete with the measurements and does not concern the files the upgrade rewrote, whose history
//! starts with dpkg's writes). Packages are purged and the daemon stopped on every exit path,
//! including panics; leftovers of an interrupted run are purged at the next start.
mod alerts;
mod origin;
mod packages;
mod runner;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::{Context as _, bail};
use tests::{
    daemon::TestDaemon,
    debs::{self, Installed},
    workspace_binary,
};

use crate::{
    alerts::Alert,
    origin::OriginScript,
    packages::{FileHashes, Package},
    runner::{Batch, Invocation},
};

/// What to run; see `usage()`.
#[derive(Debug, Clone)]
struct Params {
    files: usize,
    subset: usize,
    repeats: usize,
    concurrency: usize,
    round_trips: usize,
    origin_sequential: usize,
    origin_script: PathBuf,
}

fn usage() -> &'static str {
    "usage: ar-bench --origin-script PATH [--files N] [--subset N] [--repeats N] [--concurrency N] \
     [--round-trips N] [--origin-sequential N]"
}

fn parse_args() -> anyhow::Result<Params> {
    let mut params = Params {
        files: 5000,
        subset: 250,
        repeats: 3,
        concurrency: 8,
        round_trips: 300,
        origin_sequential: 20,
        origin_script: PathBuf::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value\n{}", usage()))?;
        let number = || {
            value
                .parse::<usize>()
                .with_context(|| format!("{flag} {value:?} is not a number"))
        };
        match flag.as_str() {
            "--files" => params.files = number()?,
            "--subset" => params.subset = number()?,
            "--repeats" => params.repeats = number()?,
            "--concurrency" => params.concurrency = number()?,
            "--round-trips" => params.round_trips = number()?,
            "--origin-sequential" => params.origin_sequential = number()?,
            "--origin-script" => params.origin_script = PathBuf::from(&value),
            other => bail!("unknown argument {other:?}\n{}", usage()),
        }
    }
    if params.origin_script.as_os_str().is_empty() {
        bail!("--origin-script is required\n{}", usage());
    }
    if params.files == 0 || params.repeats == 0 || params.round_trips == 0 {
        bail!("--files, --repeats and --round-trips must be at least 1");
    }
    params.subset = params.subset.clamp(1, params.files);
    params.origin_sequential = params.origin_sequential.clamp(1, params.round_trips);
    params.concurrency = params.concurrency.max(1);
    Ok(params)
}

fn main() -> ExitCode {
    match parse_args().and_then(|params| run(&params)) {
        Ok(report) => {
            let text = serde_json::to_string_pretty(&report).unwrap_or_default();
            let _ = writeln!(std::io::stdout(), "{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("ar-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn progress(text: &str) {
    eprintln!("ar-bench: {text}");
}

/// Fails with a clear message when something the benchmark needs is missing.
fn check_prerequisites(params: &Params) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("ar-bench must run as root: it loads eBPF programs and installs packages");
    }
    if !params.origin_script.is_file() {
        bail!(
            "the origin script {} is missing",
            params.origin_script.display()
        );
    }
    for tool in [
        "dpkg",
        "dpkg-deb",
        "dpkg-query",
        "md5sum",
        "sha1sum",
        "sha256sum",
        "date",
        "ps",
        "awk",
        "sed",
        "egrep",
        "realpath",
        "hostname",
    ] {
        let found = std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()));
        if !found {
            bail!("`{tool}` is not installed (run scripts/setup.sh)");
        }
    }
    for binary in ["verifier", "verify-file"] {
        let exe = std::env::current_exe().context("own path")?;
        let dir = exe.parent().context("own directory")?;
        if !dir.join(binary).is_file() {
            bail!(
                "{binary} is missing next to {}: run `cargo build --release -p verifier-userspace --bins`",
                exe.display()
            );
        }
    }
    Ok(())
}

fn run(params: &Params) -> anyhow::Result<serde_json::Value> {
    check_prerequisites(params)?;
    for leftover in packages::leftovers() {
        progress(&format!("purging {leftover}, left by an interrupted run"));
        debs::purge(&leftover);
    }
    let work = tempfile::tempdir().context("temp dir")?;
    let name = format!("{}-{}", packages::NAME_PREFIX, std::process::id());
    progress(&format!(
        "building {} versions of {name} ({} files each) and {name}-rt ({} files)",
        params.repeats + 1,
        params.files,
        2 * params.round_trips
    ));
    let bulk = packages::build(work.path(), &name, params.files, params.repeats + 1)?;
    let rt = packages::build(
        work.path(),
        &format!("{name}-rt"),
        2 * params.round_trips,
        2,
    )?;
    // Declared before the daemon, so dropped (purged) after it stops.
    let _bulk_installed = Installed(bulk.name.clone());
    let _rt_installed = Installed(rt.name.clone());
    let install_v1 = packages::install(&[&bulk.versions[0].deb, &rt.versions[0].deb])?;
    progress(&format!(
        "installed version 1 in {:.1} s; starting the daemon",
        install_v1.as_secs_f64()
    ));

    let mut daemon = TestDaemon::start("[policy]\nenroll = false\n");
    let bin_dir = work.path().join("active-response/bin");
    fs::create_dir_all(&bin_dir).context("creating the AR bin directory")?;
    let shim = bin_dir.join("verify-file");
    fs::copy(workspace_binary("verify-file"), &shim).context("copying verify-file")?;
    let origin = origin::prepare(
        &params.origin_script,
        &bin_dir,
        work.path(),
        &daemon.alerts_log,
    )?;
    let env: [(&str, &Path); 1] = [("VERIFIER_CONFIG", daemon.config.as_path())];
    let shim_ossec = Invocation::Ossec {
        program: &shim,
        env: &env,
    };
    let origin_ossec = Invocation::Ossec {
        program: &origin.script,
        env: &[],
    };

    let round_trip = round_trip(
        params,
        &daemon,
        &rt,
        &shim,
        &env,
        &shim_ossec,
        &origin_ossec,
        &origin,
    )?;

    let subset = subset_indices(params.files, params.subset);
    let mut rounds = Vec::new();
    for round in 0..params.repeats {
        progress(&format!(
            "round {}/{}: upgrading {} to version {}",
            round + 1,
            params.repeats,
            bulk.name,
            round + 2
        ));
        rounds.push(upgrade_round(
            params,
            &daemon,
            &bulk,
            round + 1,
            &subset,
            &shim_ossec,
            &origin_ossec,
            &origin,
        )?);
    }

    let status_output = daemon.cli(&["status", "--json"]);
    let status: serde_json::Value =
        serde_json::from_slice(&status_output.stdout).unwrap_or_default();
    let stopped = daemon.stop();
    if !stopped.success() {
        bail!("daemon exit {stopped}:\n{}", daemon.log_text());
    }
    Ok(serde_json::json!({
        "params": {
            "files": params.files,
            "subset": params.subset,
            "repeats": params.repeats,
            "concurrency": params.concurrency,
            "round_trips": params.round_trips,
            "origin_sequential": params.origin_sequential,
            "daemon_policy": "enroll = false",
        },
        "origin_script": {
            "published": in_workspace(&params.origin_script),
            "substitutions": origin.substitutions.iter().map(|(from, to)| serde_json::json!({"from": from, "to": to})).collect::<Vec<_>>(),
        },
        "round_trip": round_trip,
        "rounds": rounds,
        "daemon_status": {
            "events_stored": status["intake"]["events_stored"],
            "events_lost": status["recorder"]["counters"]["lost"],
            "store_bytes_on_disk": status["store"]["stats"]["bytes_on_disk"],
        },
    }))
}

/// Part 1: sequential round trips, OSSEC then Wazuh, then the origin script on the first alerts.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site; the parts of one run"
)]
fn round_trip(
    params: &Params,
    daemon: &TestDaemon,
    rt: &Package,
    shim: &Path,
    env: &[(&str, &Path)],
    shim_ossec: &Invocation<'_>,
    origin_ossec: &Invocation<'_>,
    origin: &OriginScript,
) -> anyhow::Result<serde_json::Value> {
    let upgrade = packages::install(&[&rt.versions[1].deb])?;
    let alerts = append_alerts(daemon, rt, 0, 1, None)?;
    let (ossec_alerts, wazuh_alerts) = alerts.split_at(params.round_trips);
    progress(&format!(
        "round trip: {} OSSEC runs, {} Wazuh runs, one at a time",
        ossec_alerts.len(),
        wazuh_alerts.len()
    ));
    let ossec = runner::run_batch(shim_ossec, ossec_alerts, 1)?;
    let messages = wazuh_alerts
        .iter()
        .map(|alert| {
            let before = &rt.versions[0].hashes[&alert.path];
            let after = &rt.versions[1].hashes[&alert.path];
            alerts::wazuh_messages(alert, before, after)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let wazuh = runner::run_batch(
        &Invocation::Wazuh {
            program: shim,
            env,
            messages: &messages,
        },
        wazuh_alerts,
        1,
    )?;
    let origin_alerts = &ossec_alerts[..params.origin_sequential];
    progress(&format!(
        "round trip: origin script on {} alerts, one at a time",
        origin_alerts.len()
    ));
    let origin_runs = runner::run_batch(origin_ossec, origin_alerts, 1)?;
    let paths_only = origin::run_paths_only(origin, &ossec_alerts[0].id);
    let ours = origin::statuses_by_alert(&daemon.ar_log);
    Ok(serde_json::json!({
        "dpkg_upgrade_s": upgrade.as_secs_f64(),
        "ossec_runs_s": seconds(&ossec.runs),
        "ossec_verdicts": count_ours(&ours, ossec_alerts),
        "wazuh_runs_s": seconds(&wazuh.runs),
        "wazuh_verdicts": count_ours(&ours, wazuh_alerts),
        "origin_runs_s": seconds(&origin_runs.runs),
        "origin_verdicts": count_origin(origin, origin_alerts),
        "origin_with_only_paths_adjusted": paths_only,
    }))
}

/// Part 2, one round: upgrade, change one file by hand, alert for every file, run both tools.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site; the parts of one run"
)]
fn upgrade_round(
    params: &Params,
    daemon: &TestDaemon,
    bulk: &Package,
    version: usize,
    subset: &[usize],
    shim_ossec: &Invocation<'_>,
    origin_ossec: &Invocation<'_>,
    origin: &OriginScript,
) -> anyhow::Result<serde_json::Value> {
    let upgrade = packages::install(&[&bulk.versions[version].deb])?;
    let tampered_path = &bulk.paths[TAMPERED];
    fs::OpenOptions::new()
        .append(true)
        .open(tampered_path)
        .and_then(|mut file| file.write_all(b"# changed by hand after the upgrade\n"))
        .with_context(|| format!("changing {tampered_path}"))?;
    let tampered_hashes = packages::hash_file(tampered_path)?;
    let alerts = append_alerts(daemon, bulk, version - 1, version, Some(&tampered_hashes))?;
    let in_subset: HashSet<usize> = subset.iter().copied().collect();
    let subset_alerts: Vec<Alert> = subset.iter().map(|&index| alerts[index].clone()).collect();
    let rest_alerts: Vec<Alert> = (0..alerts.len())
        .filter(|index| !in_subset.contains(index))
        .map(|index| alerts[index].clone())
        .collect();
    let concurrency = params.concurrency;
    progress(&format!(
        "  dpkg upgrade {:.1} s; verify-file for {} alerts ({concurrency} at a time)",
        upgrade.as_secs_f64(),
        alerts.len()
    ));
    let ours_subset = runner::run_batch(shim_ossec, &subset_alerts, concurrency)?;
    let ours_rest = runner::run_batch(shim_ossec, &rest_alerts, concurrency)?;
    let ours_total = ours_subset.wall + ours_rest.wall;
    progress(&format!(
        "  verify-file: {:.2} s in all; origin script for the {} subset alerts",
        ours_total.as_secs_f64(),
        subset_alerts.len()
    ));
    let origin_subset = runner::run_batch(origin_ossec, &subset_alerts, concurrency)?;
    progress(&format!(
        "  origin script: {:.1} s for {} alerts",
        origin_subset.wall.as_secs_f64(),
        subset_alerts.len()
    ));
    let ours = origin::statuses_by_alert(&daemon.ar_log);
    let tampered_alert = &alerts[TAMPERED];
    let failures = unexpected_failures(&daemon.ar_log, &alerts, &tampered_alert.id);
    let explained = explain_failures(daemon, &failures);
    let agreement = agreement(&ours, origin, &subset_alerts);
    Ok(serde_json::json!({
        "version": version + 1,
        "dpkg_upgrade_s": upgrade.as_secs_f64(),
        "alerts": alerts.len(),
        "subset_alerts": subset_alerts.len(),
        "ours_subset_s": ours_subset.wall.as_secs_f64(),
        "ours_rest_s": ours_rest.wall.as_secs_f64(),
        "ours_total_s": ours_total.as_secs_f64(),
        "ours_run_s": spread(&[&ours_subset, &ours_rest]),
        "origin_subset_s": origin_subset.wall.as_secs_f64(),
        "origin_run_s": spread(&[&origin_subset]),
        "ours_verdicts": count_ours(&ours, &alerts),
        "ours_exit_codes": exit_codes(&[&ours_subset, &ours_rest]),
        "origin_verdicts": count_origin(origin, &subset_alerts),
        "origin_exit_codes": exit_codes(&[&origin_subset]),
        "changed_by_hand": {
            "path": tampered_alert.path,
            "ours": ours.get(&tampered_alert.id),
            "origin": origin_class(origin, &tampered_alert.id),
        },
        "agreement_on_subset": agreement,
        "ours_unexpected_failures": failures,
        "ours_unexpected_explained": explained,
    }))
}

/// `path` relative to the workspace when it lies in it (the raw report names no machine's paths).
fn in_workspace(path: &Path) -> String {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(|root| root.canonicalize().ok());
    let path = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    workspace
        .and_then(|root| path.strip_prefix(root).ok().map(Path::to_owned))
        .unwrap_or(path)
        .display()
        .to_string()
}

/// `verifier explain` of the file of each unexpected failure (at most three), for the raw output.
fn explain_failures(daemon: &TestDaemon, failures: &[String]) -> Vec<String> {
    failures
        .iter()
        .take(3)
        .filter_map(|line| origin::ossec_verdict(line)?.path)
        .map(|path| String::from_utf8_lossy(&daemon.cli(&["explain", path]).stdout).into_owned())
        .collect()
}

/// Our AR log lines (reason included) that fail an alert of `alerts` other than `expected`: the
/// false alerts of a round, at most ten, so that the report shows what decided them.
fn unexpected_failures(ar_log: &Path, alerts: &[Alert], expected: &str) -> Vec<String> {
    let ids: HashSet<&str> = alerts
        .iter()
        .map(|alert| alert.id.as_str())
        .filter(|id| *id != expected)
        .collect();
    fs::read_to_string(ar_log)
        .unwrap_or_default()
        .lines()
        .filter(|line| {
            origin::ossec_verdict(line)
                .is_some_and(|verdict| verdict.status == "failed" && ids.contains(verdict.alert_id))
        })
        .take(10)
        .map(str::to_owned)
        .collect()
}

/// The file changed by an ordinary process after each upgrade.
const TAMPERED: usize = 0;

/// One 550 block per file of `package`, from version `before` to `after` (indexes into its
/// versions); the tampered file's "after" hashes are what is on disk.
fn append_alerts(
    daemon: &TestDaemon,
    package: &Package,
    before: usize,
    after: usize,
    tampered: Option<&FileHashes>,
) -> anyhow::Result<Vec<Alert>> {
    let changes: Vec<(&str, &FileHashes, &FileHashes)> = package
        .paths
        .iter()
        .enumerate()
        .map(|(index, path)| {
            let old = &package.versions[before].hashes[path];
            let new = match tampered {
                Some(hashes) if index == TAMPERED => hashes,
                _ => &package.versions[after].hashes[path],
            };
            (path.as_str(), old, new)
        })
        .collect();
    alerts::append_changed(&daemon.alerts_log, &changes)
}

/// `count` distinct indexes below `total`, always including [`TAMPERED`], from a fixed seed (the
/// same subset every round and every run).
fn subset_indices(total: usize, count: usize) -> Vec<usize> {
    let mut indexes: Vec<usize> = (0..total).collect();
    let mut state: u64 = 0x005e_ed0f_a11a_1e27;
    // Fisher–Yates with splitmix64.
    for i in (1..total).rev() {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let j = usize::try_from(z % (i as u64 + 1)).unwrap_or(0);
        indexes.swap(i, j);
    }
    let mut chosen: Vec<usize> = indexes.into_iter().take(count).collect();
    if !chosen.contains(&TAMPERED) {
        chosen[0] = TAMPERED;
    }
    chosen.sort_unstable();
    chosen
}

fn seconds(durations: &[Duration]) -> Vec<f64> {
    durations.iter().map(Duration::as_secs_f64).collect()
}

/// Median, p99, min and max of the individual runs of some batches.
fn spread(batches: &[&Batch]) -> serde_json::Value {
    let mut all: Vec<f64> = batches
        .iter()
        .flat_map(|batch| seconds(&batch.runs))
        .collect();
    all.sort_by(f64::total_cmp);
    let at = |q: f64| {
        if all.is_empty() {
            f64::NAN
        } else {
            let rank = (q * all.len() as f64).ceil() as usize;
            all[rank.clamp(1, all.len()) - 1]
        }
    };
    serde_json::json!({
        "p50": at(0.5), "p99": at(0.99),
        "min": all.first(), "max": all.last(), "count": all.len(),
    })
}

fn exit_codes(batches: &[&Batch]) -> BTreeMap<String, usize> {
    let mut codes = BTreeMap::new();
    for code in batches.iter().flat_map(|batch| &batch.exit_codes) {
        let key = code.map_or_else(|| "signal".to_owned(), |code| code.to_string());
        *codes.entry(key).or_insert(0) += 1;
    }
    codes
}

/// Our verdicts for these alerts, by status ("missing": no AR line).
fn count_ours(statuses: &HashMap<String, String>, alerts: &[Alert]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for alert in alerts {
        let status = statuses
            .get(&alert.id)
            .cloned()
            .unwrap_or_else(|| "missing".to_owned());
        *counts.entry(status).or_insert(0) += 1;
    }
    counts
}

/// What the origin script did with an alert: `alerted` (it sent a mail), `accepted` (a
/// `succeeded` line and no mail), `failed` (its own failure line), `missing` (nothing at all).
fn origin_class(origin: &OriginScript, alert_id: &str) -> String {
    let mailed = origin::mailed_alert_ids(&origin.mail_dir);
    let statuses = origin::statuses_by_alert(&origin.ar_log);
    classify(&mailed, &statuses, alert_id)
}

fn classify(
    mailed: &HashMap<String, usize>,
    statuses: &HashMap<String, String>,
    alert_id: &str,
) -> String {
    if mailed.contains_key(alert_id) {
        return "alerted".to_owned();
    }
    match statuses.get(alert_id).map(String::as_str) {
        Some("succeeded") => "accepted".to_owned(),
        Some(other) => other.to_owned(),
        None => "missing".to_owned(),
    }
}

fn count_origin(origin: &OriginScript, alerts: &[Alert]) -> BTreeMap<String, usize> {
    let mailed = origin::mailed_alert_ids(&origin.mail_dir);
    let statuses = origin::statuses_by_alert(&origin.ar_log);
    let mut counts = BTreeMap::new();
    for alert in alerts {
        *counts
            .entry(classify(&mailed, &statuses, &alert.id))
            .or_insert(0) += 1;
    }
    counts
}

/// Both tools on the same alerts: ours `succeeded` ⇔ origin `accepted`, ours `failed` ⇔ origin
/// `alerted`.
fn agreement(
    ours: &HashMap<String, String>,
    origin: &OriginScript,
    alerts: &[Alert],
) -> serde_json::Value {
    let mailed = origin::mailed_alert_ids(&origin.mail_dir);
    let statuses = origin::statuses_by_alert(&origin.ar_log);
    let mut agree = 0usize;
    let mut disagree = Vec::new();
    for alert in alerts {
        let theirs = classify(&mailed, &statuses, &alert.id);
        let mine = ours.get(&alert.id).map_or("missing", String::as_str);
        match (mine, theirs.as_str()) {
            ("succeeded", "accepted") | ("failed", "alerted") => agree += 1,
            _ => disagree.push(serde_json::json!({
                "path": alert.path, "ours": mine, "origin": theirs,
            })),
        }
    }
    serde_json::json!({"agree": agree, "disagree": disagree})
}
