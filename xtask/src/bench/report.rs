//! Benchmark samples, comparisons against baselines, and the Markdown + JSON report.
use std::{fmt::Write as _, fs, path::Path, time::Duration};

use anyhow::Context as _;

/// Repeated measurements of one quantity (seconds, bytes, events...).
#[derive(Debug, Clone)]
pub struct Samples {
    pub unit: &'static str,
    pub values: Vec<f64>,
}

impl Samples {
    pub fn from_durations(durations: &[Duration]) -> Self {
        Self {
            unit: "s",
            values: durations.iter().map(Duration::as_secs_f64).collect(),
        }
    }

    fn sorted(&self) -> Vec<f64> {
        let mut values = self.values.clone();
        values.sort_by(f64::total_cmp);
        values
    }

    pub fn median(&self) -> f64 {
        let sorted = self.sorted();
        match sorted.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => sorted[n / 2],
            n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        }
    }

    pub fn min(&self) -> f64 {
        self.sorted().first().copied().unwrap_or(f64::NAN)
    }

    pub fn max(&self) -> f64 {
        self.sorted().last().copied().unwrap_or(f64::NAN)
    }

    /// Nearest-rank percentile, `q` in 0..=1 (0.5: median of an odd count, 0.99: p99).
    pub fn percentile(&self, q: f64) -> f64 {
        let sorted = self.sorted();
        if sorted.is_empty() {
            return f64::NAN;
        }
        let rank = (q * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }
}

/// The verifier's measurement next to a baseline's; `ratio` = baseline median / ours
/// (above 1 means we are faster or smaller).
#[derive(Debug, Clone)]
pub struct Comparison {
    pub benchmark: String,
    pub ours: (String, Samples),
    pub baseline: (String, Samples),
    /// What the issue asks for, e.g. "≥ 100×".
    pub target: String,
}

impl Comparison {
    pub fn ratio(&self) -> f64 {
        self.baseline.1.median() / self.ours.1.median()
    }
}

#[derive(Debug, Default)]
pub struct Report {
    /// Where and on what the run happened; taken when the run starts.
    pub machine: Machine,
    pub comparisons: Vec<Comparison>,
    /// Single figures without a baseline (RSS, store size, events lost).
    pub figures: Vec<(String, Samples)>,
    /// Markdown sections of benchmarks that report their own tables.
    pub sections: Vec<String>,
    /// Their raw numbers, by benchmark.
    pub raw: Vec<(String, serde_json::Value)>,
}

impl Report {
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        fs::write(dir.join("report.md"), self.markdown())
            .with_context(|| format!("writing {}", dir.join("report.md").display()))?;
        let json = serde_json::to_string_pretty(&self.json())?;
        fs::write(dir.join("raw.json"), json)
            .with_context(|| format!("writing {}", dir.join("raw.json").display()))
    }

    fn markdown(&self) -> String {
        let mut md = String::from("# verifier benchmark report\n\n");
        md.push_str(&self.machine.markdown());
        md.push_str(
            "\nTimes are medians over repeated runs with (min–max); ratio = baseline median / our \
             median (above 1: we are faster).\n\n",
        );
        md.push_str("| benchmark | ours | median (min–max) | baseline | median (min–max) | ratio | target |\n");
        md.push_str("| --- | --- | --- | --- | --- | --- | --- |\n");
        for c in &self.comparisons {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {:.2}× | {} |",
                c.benchmark,
                c.ours.0,
                spread(&c.ours.1),
                c.baseline.0,
                spread(&c.baseline.1),
                c.ratio(),
                c.target
            );
        }
        if !self.figures.is_empty() {
            md.push_str("\n| figure | median (min–max) |\n| --- | --- |\n");
            for (name, samples) in &self.figures {
                let _ = writeln!(md, "| {name} | {} |", spread(samples));
            }
        }
        for section in &self.sections {
            md.push('\n');
            md.push_str(section);
        }
        md
    }

    fn json(&self) -> serde_json::Value {
        let samples = |s: &Samples| serde_json::json!({"unit": s.unit, "values": s.values});
        serde_json::json!({
            "machine": self.machine.json(),
            "comparisons": self.comparisons.iter().map(|c| serde_json::json!({
                "benchmark": c.benchmark,
                "ours": {"name": c.ours.0, "samples": samples(&c.ours.1)},
                "baseline": {"name": c.baseline.0, "samples": samples(&c.baseline.1)},
                "ratio": c.ratio(),
                "target": c.target,
            })).collect::<Vec<_>>(),
            "figures": self.figures.iter().map(|(name, s)| serde_json::json!({
                "name": name, "samples": samples(s),
            })).collect::<Vec<_>>(),
            "raw": self.raw.iter().cloned().collect::<serde_json::Map<_, _>>(),
        })
    }
}

fn spread(samples: &Samples) -> String {
    // Four decimals for small numbers, one for large ones (µs of a slow baseline).
    let decimals = if samples.max() >= 100.0 { 1 } else { 4 };
    format!(
        "{:.decimals$} {} ({:.decimals$}–{:.decimals$})",
        samples.median(),
        samples.unit,
        samples.min(),
        samples.max()
    )
}

/// The machine and source tree a run measured.
#[derive(Debug, Default, Clone)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub ram_gib: f64,
    pub kernel: String,
    pub os: String,
    pub commit: String,
    /// `git status --porcelain` was empty (untracked `bench-results/` aside).
    pub tree_clean: Option<bool>,
    pub date: String,
    pub options: String,
}

impl Machine {
    /// Reads /proc, /etc/os-release and git (in `workspace`).
    pub fn detect(workspace: &Path, options: String) -> Self {
        let cpu = fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find_map(|line| line.strip_prefix("model name"))
                    .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".to_owned());
        let ram_gib = fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find_map(|line| line.strip_prefix("MemTotal:"))
                    .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
            })
            .map_or(f64::NAN, |kib| kib / (1024.0 * 1024.0));
        let os_release = fs::read_to_string("/etc/os-release").unwrap_or_default();
        let pretty = os_release
            .lines()
            .find_map(|line| line.strip_prefix("PRETTY_NAME="))
            .map(|name| name.trim_matches('"').to_owned())
            .unwrap_or_else(|| "unknown OS".to_owned());
        let debian = fs::read_to_string("/etc/debian_version")
            .map(|version| format!(" (debian_version {})", version.trim()))
            .unwrap_or_default();
        let git = |args: &[&str]| {
            std::process::Command::new("git")
                .args(args)
                .current_dir(workspace)
                .output()
                .ok()
                .filter(|output| output.status.success())
                .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
        };
        let commit = git(&["rev-parse", "HEAD"])
            .map(|text| text.trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned());
        let tree_clean = git(&["status", "--porcelain", "--untracked-files=no"])
            .map(|text| text.trim().is_empty());
        let date = std::process::Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M:%S UTC"])
            .output()
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
            .unwrap_or_default();
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            ram_gib,
            kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
            os: format!("{pretty}{debian}"),
            commit,
            tree_clean,
            date,
            options,
        }
    }

    fn markdown(&self) -> String {
        let clean = match self.tree_clean {
            Some(true) => "clean",
            Some(false) => "**modified** (uncommitted changes to tracked files)",
            None => "unknown",
        };
        format!(
            "| | |\n|---|---|\n| date | {} |\n| machine | {}, {} cores, {:.1} GiB RAM |\n\
             | kernel | Linux {} |\n| system | {} |\n| commit | `{}` (tree {clean}) |\n\
             | options | `{}` |\n",
            self.date,
            self.cpu,
            self.cores,
            self.ram_gib,
            self.kernel,
            self.os,
            self.commit,
            self.options
        )
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "cpu": self.cpu, "cores": self.cores, "ram_gib": self.ram_gib,
            "kernel": self.kernel, "os": self.os, "commit": self.commit,
            "tree_clean": self.tree_clean, "date": self.date, "options": self.options,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_even_and_odd_counts() {
        let odd = Samples {
            unit: "s",
            values: vec![3.0, 1.0, 2.0],
        };
        assert_eq!(odd.median(), 2.0);
        let even = Samples {
            unit: "s",
            values: vec![4.0, 1.0, 2.0, 3.0],
        };
        assert_eq!(even.median(), 2.5);
        assert_eq!(even.min(), 1.0);
        assert_eq!(even.max(), 4.0);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let hundred = Samples {
            unit: "s",
            values: (1..=100).map(f64::from).rev().collect(),
        };
        assert_eq!(hundred.percentile(0.5), 50.0);
        assert_eq!(hundred.percentile(0.99), 99.0);
        assert_eq!(hundred.percentile(1.0), 100.0);
        assert_eq!(hundred.percentile(0.0), 1.0);
    }

    #[test]
    fn ratio_is_baseline_over_ours() {
        let c = Comparison {
            benchmark: "x".into(),
            ours: (
                "ours".into(),
                Samples {
                    unit: "s",
                    values: vec![1.0],
                },
            ),
            baseline: (
                "base".into(),
                Samples {
                    unit: "s",
                    values: vec![10.0],
                },
            ),
            target: "≥ 1×".into(),
        };
        assert_eq!(c.ratio(), 10.0);
    }
}
