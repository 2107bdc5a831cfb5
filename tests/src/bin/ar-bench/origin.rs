//! The baseline: the origin write-up's Active Response script, as published, with only the paths
//! it needs adjusted, its mail step pointed at a local sink and the one fix it needs to run at all
//! (see `xtask/bench-assets/README.md`). Also reading both tools' verdicts back.
use std::{
    collections::HashMap,
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};

/// The published line that aborts the script (a "Bad substitution" in dash and bash).
const BROKEN_HOSTNAME: &str = r#"HOSTNAME="${$(/bin/hostname -f 2>/dev/null):-unknown}""#;
/// Its minimal fix: the intended meaning, without ending the script under `set -e`.
const FIXED_HOSTNAME: &str =
    r#"HOSTNAME="$(/bin/hostname -f 2>/dev/null || true)"; HOSTNAME="${HOSTNAME:-unknown}""#;

/// The adjusted script and where its outputs go.
pub struct OriginScript {
    pub script: PathBuf,
    /// The same with every substitution but the hostname fix: shows what the fix is for.
    pub paths_only: PathBuf,
    pub ar_log: PathBuf,
    pub mail_dir: PathBuf,
    /// (published text, replacement), in the order applied.
    pub substitutions: Vec<(String, String)>,
}

/// Writes the adjusted script to `bin_dir/verify-file-deb.sh` and the mail sink next to it.
pub fn prepare(
    published: &Path,
    bin_dir: &Path,
    work: &Path,
    alerts_log: &Path,
) -> anyhow::Result<OriginScript> {
    let text = fs::read_to_string(published)
        .with_context(|| format!("reading the origin script {}", published.display()))?;
    let ar_log = work.join("origin-active-responses.log");
    let mail_dir = work.join("origin-mail");
    fs::create_dir_all(&mail_dir).with_context(|| format!("creating {}", mail_dir.display()))?;
    let sink = bin_dir.join("mail-sink.sh");
    write_executable(
        &sink,
        &format!(
            "#!/bin/sh\n# Local mail sink for the origin script: one file per message.\ncat > \"$(mktemp {}/msg.XXXXXXXX)\"\n",
            mail_dir.display()
        ),
    )?;
    let substitutions = vec![
        (
            r#"ACTIVE_RESPONSE_LOG="/var/ossec/logs/active-responses.log""#.to_owned(),
            format!(r#"ACTIVE_RESPONSE_LOG="{}""#, ar_log.display()),
        ),
        (
            r#""/var/ossec/logs/alerts/alerts.log""#.to_owned(),
            format!(r#""{}""#, alerts_log.display()),
        ),
        (
            "| /usr/sbin/sendmail -oi -t".to_owned(),
            format!("| {} -oi -t", sink.display()),
        ),
        (BROKEN_HOSTNAME.to_owned(), FIXED_HOSTNAME.to_owned()),
    ];
    let mut adjusted = text;
    let mut paths_only = String::new();
    for (from, to) in &substitutions {
        if from == BROKEN_HOSTNAME {
            paths_only = adjusted.clone();
        }
        let count = adjusted.matches(from.as_str()).count();
        if count != 1 {
            bail!(
                "the origin script {} has {count} occurrences of {from:?} (expected exactly 1): not the published script?",
                published.display()
            );
        }
        adjusted = adjusted.replacen(from.as_str(), to, 1);
    }
    let script = bin_dir.join("verify-file-deb.sh");
    write_executable(&script, &adjusted)?;
    let paths_only_script = bin_dir.join("verify-file-deb-paths-only.sh");
    write_executable(&paths_only_script, &paths_only)?;
    Ok(OriginScript {
        script,
        paths_only: paths_only_script,
        ar_log,
        mail_dir,
        substitutions,
    })
}

fn write_executable(path: &Path, text: &str) -> anyhow::Result<()> {
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod {}", path.display()))
}

/// What the script does with one alert when only its paths and mail step are adjusted (shell,
/// exit code, stderr, AR log lines written): the evidence for the hostname fix.
pub fn run_paths_only(origin: &OriginScript, alert_id: &str) -> serde_json::Value {
    let shell = fs::read_link("/bin/sh")
        .map(|target| target.display().to_string())
        .unwrap_or_else(|_| "sh".to_owned());
    let lines_before = line_count(&origin.ar_log);
    let output = std::process::Command::new(&origin.paths_only)
        .args(["add", "-", "-", alert_id, "550", "syscheck", "-"])
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .output();
    match output {
        Ok(output) => serde_json::json!({
            "bin_sh": shell,
            "exit_code": output.status.code(),
            "stderr": String::from_utf8_lossy(&output.stderr).trim(),
            "ar_log_lines_written": line_count(&origin.ar_log) - lines_before,
        }),
        Err(error) => serde_json::json!({"bin_sh": shell, "error": error.to_string()}),
    }
}

fn line_count(path: &Path) -> i64 {
    fs::read_to_string(path).map_or(0, |text| text.lines().count() as i64)
}

/// The last status an AR log gives each alert id (OSSEC layout:
/// `<date> <program> <status> - - <alertid> <ruleid> …`; Wazuh layout: a JSON object with
/// `status` and `alert_id`).
pub fn statuses_by_alert(ar_log: &Path) -> HashMap<String, String> {
    let text = fs::read_to_string(ar_log).unwrap_or_default();
    let mut statuses = HashMap::new();
    for line in text.lines() {
        if let Some(json) = line.find(": {").map(|at| &line[at + 2..])
            && let Ok(value) = serde_json::from_str::<serde_json::Value>(json)
        {
            if let (Some(status), Some(id)) = (value["status"].as_str(), value["alert_id"].as_str())
            {
                statuses.insert(id.to_owned(), status.to_owned());
            }
            continue;
        }
        if let Some(verdict) = ossec_verdict(line) {
            statuses.insert(verdict.alert_id.to_owned(), verdict.status.to_owned());
        }
    }
    statuses
}

/// The fields of an AR log line in the OSSEC layout that ar-bench reads.
pub struct OssecVerdict<'a> {
    pub status: &'a str,
    pub alert_id: &'a str,
    /// The path after the rule id (paths here have no spaces).
    pub path: Option<&'a str>,
}

/// Parses `… <program> <status> - - <alert id> <rule id> <path> …`.
pub fn ossec_verdict(line: &str) -> Option<OssecVerdict<'_>> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.windows(4).position(|window| {
        matches!(window[0], "succeeded" | "failed" | "deferred" | "ignored")
            && window[1] == "-"
            && window[2] == "-"
    })?;
    Some(OssecVerdict {
        status: words[at],
        alert_id: words[at + 3],
        path: words.get(at + 5).copied(),
    })
}

/// Alert ids named by the mails the origin script sent (its real alerts).
pub fn mailed_alert_ids(mail_dir: &Path) -> HashMap<String, usize> {
    let mut ids = HashMap::new();
    let Ok(entries) = fs::read_dir(mail_dir) else {
        return ids;
    };
    for entry in entries.flatten() {
        let text = fs::read_to_string(entry.path()).unwrap_or_default();
        let id = text.lines().find_map(|line| {
            line.strip_prefix("** Alert ")
                .or_else(|| line.strip_prefix("Alert ID: "))
                .map(|rest| rest.split(':').next().unwrap_or(rest).trim().to_owned())
        });
        *ids.entry(id.unwrap_or_else(|| "?".to_owned())).or_insert(0) += 1;
    }
    ids
}
