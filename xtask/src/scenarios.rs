//! `cargo xtask scenarios-table`: renders the results the scenario suite (`tests/tests/scenarios.rs`)
//! recorded in `target/scenarios/<id>.json` into the README, between the
//! `<!-- scenarios:begin -->` and `<!-- scenarios:end -->` markers. Every scenario of the catalogue
//! gets a row; one without a result says "not implemented".
use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use anyhow::Context as _;

const BEGIN: &str = "<!-- scenarios:begin -->";
const END: &str = "<!-- scenarios:end -->";

/// Every scenario issue 6 names: (id, scenario, expected verdict), in table order.
const CATALOGUE: &[(&str, &str, &str)] = &[
    (
        "01",
        "package file modified by an ordinary process after an upgrade",
        "failed",
    ),
    (
        "02a",
        "file written by a process named \"dpkg\" (`exec -a dpkg`)",
        "failed",
    ),
    (
        "02b",
        "file written by a process named \"dpkg\" (`prctl(PR_SET_NAME)`)",
        "failed",
    ),
    (
        "02c",
        "file written by a copy of the dpkg binary at another path (a real `dpkg -i` run)",
        "failed",
    ),
    (
        "03",
        "unrelated process writing a file during the dpkg transaction that installs it",
        "failed",
    ),
    (
        "04",
        "non-package process renaming a prepared file with the package's own content over it",
        "failed",
    ),
    (
        "05",
        "package file modified through a hard link at another path (outside the watched roots)",
        "failed",
    ),
    (
        "06",
        "truncate and rewrite keeping size and mtime",
        "failed",
    ),
    ("07a", "chmod of a package file", "failed"),
    ("07b", "chown of a package file", "failed"),
    ("08", "change made while the daemon was stopped", "failed"),
    (
        "09",
        "lost events (4 KiB ring buffer, a burst of writes during a dpkg upgrade)",
        "failed",
    ),
    ("10", "write (truncation) through io_uring", "failed"),
    (
        "11",
        "maintainer script writing outside its package's file list",
        "failed",
    ),
    (
        "12",
        "symlink (to a copy with the package's content) swapped in between alert and verification",
        "failed",
    ),
    (
        "13",
        "conffile edited by the admin (accept_managed_conffiles on)",
        "failed",
    ),
    (
        "14",
        "`dpkg -i --force-overwrite` of a local package overwriting another installed package's file",
        "failed",
    ),
    ("ok-install", "install (program in /usr/bin)", "succeeded"),
    (
        "ok-install-conffile",
        "install (conffile in /etc, accept_managed_conffiles on)",
        "succeeded",
    ),
    ("ok-upgrade", "upgrade 1.0 → 2.0 (program)", "succeeded"),
    (
        "ok-upgrade-conffile",
        "upgrade 1.0 → 2.0 (conffile, --force-confnew)",
        "succeeded",
    ),
    ("ok-downgrade", "downgrade 2.0 → 1.0 (program)", "succeeded"),
    (
        "ok-downgrade-conffile",
        "downgrade 2.0 → 1.0 (conffile)",
        "succeeded",
    ),
    (
        "ok-reinstall",
        "reinstall of the same version (program)",
        "succeeded",
    ),
    (
        "ok-reinstall-conffile",
        "reinstall of the same version (conffile)",
        "succeeded",
    ),
    ("ok-remove", "removal (program deleted)", "succeeded"),
    ("ok-purge-conffile", "purge (conffile deleted)", "succeeded"),
    (
        "ok-diversion",
        "install of a file under a local diversion (dpkg-divert --rename)",
        "succeeded",
    ),
    (
        "ok-symlink",
        "upgrade changing a packaged symlink's target",
        "succeeded",
    ),
    (
        "ok-usrmerge-bin",
        "usr-merged path: package lists /bin/X, alert names /bin/X",
        "succeeded",
    ),
    (
        "ok-usrmerge-usr",
        "usr-merged path: package lists /bin/X, alert names /usr/bin/X",
        "succeeded",
    ),
    (
        "ok-replaces",
        "a package taking over another package's file with `Replaces:`",
        "succeeded",
    ),
    (
        "ok-apt-reinstall",
        "real Debian package reinstalled with `apt-get install --reinstall` (hostname)",
        "succeeded",
    ),
    (
        "ok-apt-upgrade",
        "real Debian package upgraded with apt (hostname)",
        "succeeded",
    ),
    (
        "gap-dpkg-i",
        "KNOWN GAP: hand-built package installed with `dpkg -i`, files matching its own md5sums",
        "succeeded",
    ),
];

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Where the suite wrote its results (default: target/scenarios).
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// The README to update.
    #[arg(long, default_value = "README.md")]
    pub readme: PathBuf,
}

/// One recorded result.
#[derive(Debug)]
struct Row {
    id: String,
    scenario: String,
    expected: String,
    actual: String,
    decided_by: String,
    note: String,
}

impl Row {
    fn from_json(value: &serde_json::Value) -> Option<Self> {
        let field = |name: &str| value.get(name).and_then(|v| v.as_str()).map(str::to_owned);
        Some(Self {
            id: field("id")?,
            scenario: field("scenario")?,
            expected: field("expected")?,
            actual: field("actual")?,
            decided_by: field("decided_by").unwrap_or_default(),
            note: field("note").unwrap_or_default(),
        })
    }
}

pub fn run(options: &Options) -> anyhow::Result<()> {
    let results = options
        .results
        .clone()
        .unwrap_or_else(|| crate::process::workspace_root().join("target/scenarios"));
    let rows = read_results(&results)?;
    let table = render(&rows);
    let readme = crate::process::workspace_root().join(&options.readme);
    let text = fs::read_to_string(&readme).with_context(|| format!("read {}", readme.display()))?;
    let updated = replace_between_markers(&text, &table)
        .with_context(|| format!("{} lacks the {BEGIN} / {END} markers", readme.display()))?;
    fs::write(&readme, updated).with_context(|| format!("write {}", readme.display()))?;
    eprintln!(
        "xtask: scenario table ({} results) written to {}",
        rows.len(),
        readme.display()
    );
    Ok(())
}

/// True when the suite recorded a result after `since` (it ran in this `cargo xtask test`).
pub fn results_written_since(since: std::time::SystemTime) -> bool {
    let dir = crate::process::workspace_root().join("target/scenarios");
    fs::read_dir(dir).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|entry| {
            entry
                .metadata()
                .and_then(|meta| meta.modified())
                .is_ok_and(|modified| modified >= since)
        })
    })
}

fn read_results(dir: &Path) -> anyhow::Result<BTreeMap<String, Row>> {
    let mut rows = BTreeMap::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(rows);
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_none_or(|ext| ext != "json") {
            continue;
        }
        let text = fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("parse {}", path.display()))?;
        let row = Row::from_json(&value)
            .with_context(|| format!("{}: missing fields", path.display()))?;
        rows.insert(row.id.clone(), row);
    }
    Ok(rows)
}

/// The Markdown table, catalogue order first, then any result the catalogue does not name.
fn render(rows: &BTreeMap<String, Row>) -> String {
    let mut out = String::from(
        "| # | scenario | expected | actual | decided by |\n| --- | --- | --- | --- | --- |\n",
    );
    for (id, scenario, expected) in CATALOGUE {
        match rows.get(*id) {
            Some(row) => out.push_str(&row_line(row)),
            None => out.push_str(&format!(
                "| {id} | {} | {expected} | not implemented | |\n",
                cell(scenario)
            )),
        }
    }
    for row in rows.values() {
        if !CATALOGUE.iter().any(|(id, ..)| *id == row.id) {
            out.push_str(&row_line(row));
        }
    }
    out
}

fn row_line(row: &Row) -> String {
    let actual = if row.actual == row.expected {
        row.actual.clone()
    } else {
        format!("**{}** (expected {})", row.actual, row.expected)
    };
    let mut decided = row.decided_by.clone();
    if !row.note.is_empty() {
        decided.push_str(&format!(" — {}", row.note));
    }
    format!(
        "| {} | {} | {} | {} | {} |\n",
        row.id,
        cell(&row.scenario),
        row.expected,
        cell(&actual),
        cell(&decided)
    )
}

/// Table-safe text: no pipes or newlines; the pid-specific parts of reasons are kept.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn replace_between_markers(text: &str, table: &str) -> Option<String> {
    let start = text.find(BEGIN)? + BEGIN.len();
    let end = start + text[start..].find(END)?;
    Some(format!("{}\n{table}{}", &text[..start], &text[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_scenarios_are_marked_not_implemented() {
        let mut rows = BTreeMap::new();
        rows.insert(
            "01".to_owned(),
            Row {
                id: "01".into(),
                scenario: "x".into(),
                expected: "failed".into(),
                actual: "succeeded".into(),
                decided_by: "a | b".into(),
                note: String::new(),
            },
        );
        let table = render(&rows);
        assert!(table.contains("| 01 | x | failed | **succeeded** (expected failed) | a \\| b |"));
        assert!(table.contains("| 14 |") && table.contains("not implemented"));
    }

    #[test]
    fn replaces_only_between_markers() {
        let text = format!("a\n{BEGIN}\nold\n{END}\nb\n");
        let updated = replace_between_markers(&text, "new\n").unwrap();
        assert_eq!(updated, format!("a\n{BEGIN}\nnew\n{END}\nb\n"));
        assert!(replace_between_markers("no markers", "x").is_none());
    }
}
