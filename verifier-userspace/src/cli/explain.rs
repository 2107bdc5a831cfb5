//! `verifier explain PATH`: the recorded story of one file, for a person or as JSON. Reads the
//! provenance store directly (read-only), so it works whether the daemon runs or not.
use std::{io::Write, path::Path, process::ExitCode};

use anyhow::Context as _;

use crate::store::Store;

pub fn run(config: Option<&Path>, path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let config = super::load_config(config)?;
    let store = Store::open_read_only(&config.state_dir).with_context(|| {
        format!(
            "opening the provenance store in {}",
            config.state_dir.display()
        )
    })?;
    let explanation = store
        .explain(path)
        .with_context(|| format!("explaining {}", path.display()))?;
    let mut stdout = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut stdout, &explanation)?;
        writeln!(stdout)?;
    } else {
        write!(stdout, "{explanation}")?;
    }
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}
