//! The alerts syscheck raises after an upgrade: stock rule 550 blocks appended to alerts.log
//! exactly as OSSEC 3.7's `OS_Log` writes them (id `<epoch>.<byte offset>`, location
//! `<host>->syscheck`, the size and hash lines), and the Wazuh 4.x stdin message for the same change.
use std::{
    fs::OpenOptions,
    io::Write as _,
    path::Path,
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::Context as _;

use crate::packages::FileHashes;

/// The stock OSSEC rule for a changed checksum.
pub const RULE_ID: &str = "550";

/// One alert in alerts.log.
#[derive(Debug, Clone)]
pub struct Alert {
    pub id: String,
    pub path: String,
}

/// Appends one 550 block per `(path, before, after)` in one write and returns their alerts.
pub fn append_changed(
    alerts_log: &Path,
    changes: &[(&str, &FileHashes, &FileHashes)],
) -> anyhow::Result<Vec<Alert>> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(alerts_log)
        .with_context(|| format!("opening {}", alerts_log.display()))?;
    let mut offset = file.metadata().context("alerts.log metadata")?.len();
    let epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("clock before 1970")?
        .as_secs();
    let date = tests::ossec::block_date(epoch).context("running date")?;
    let host = hostname();
    let mut text = String::new();
    let mut alerts = Vec::with_capacity(changes.len());
    for (path, before, after) in changes {
        let id = format!("{epoch}.{offset}");
        let block = format!(
            "** Alert {id}: mail  - ossec,syscheck,\n\
             {date} {host}->syscheck\n\
             Rule: {RULE_ID} (level 7) -> 'Integrity checksum changed.'\n\
             Integrity checksum changed for: '{path}'\n\
             Size changed from '{}' to '{}'\n\
             Old md5sum was: '{}'\n\
             New md5sum is : '{}'\n\
             Old sha1sum was: '{}'\n\
             New sha1sum is : '{}'\n\n",
            before.size, after.size, before.md5, after.md5, before.sha1, after.sha1
        );
        offset += block.len() as u64;
        text.push_str(&block);
        alerts.push(Alert {
            id,
            path: (*path).to_owned(),
        });
    }
    file.write_all(text.as_bytes())
        .with_context(|| format!("appending to {}", alerts_log.display()))?;
    Ok(alerts)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The line wazuh-execd writes to the program's stdin for this change (the fixture message with
/// this alert's id, path and hashes), and the `continue` reply it sends after `check_keys`.
pub struct WazuhMessages {
    pub add: String,
    pub continue_reply: String,
}

const WAZUH_FIXTURE: &str =
    include_str!("../../../fixtures/ar-formats/wazuh-4.x-ar-stdin-add-550.json");

pub fn wazuh_messages(
    alert: &Alert,
    before: &FileHashes,
    after: &FileHashes,
) -> anyhow::Result<WazuhMessages> {
    let mut message: serde_json::Value =
        serde_json::from_str(WAZUH_FIXTURE.trim()).context("parsing the Wazuh fixture")?;
    let fixture_alert = &mut message["parameters"]["alert"];
    fixture_alert["id"] = alert.id.clone().into();
    fixture_alert["full_log"] = format!(
        "File '{}' modified\nMode: realtime\nChanged attributes: size,md5,sha1,sha256\n\
         Size changed from '{}' to '{}'\n",
        alert.path, before.size, after.size
    )
    .into();
    let syscheck = &mut fixture_alert["syscheck"];
    syscheck["path"] = alert.path.clone().into();
    syscheck["size_before"] = before.size.to_string().into();
    syscheck["size_after"] = after.size.to_string().into();
    for (key, value) in [
        ("md5_before", &before.md5),
        ("md5_after", &after.md5),
        ("sha1_before", &before.sha1),
        ("sha1_after", &after.sha1),
        ("sha256_before", &before.sha256),
        ("sha256_after", &after.sha256),
    ] {
        syscheck[key] = value.clone().into();
    }
    let add = serde_json::to_string(&message)?;
    message["command"] = "continue".into();
    let continue_reply = serde_json::to_string(&message)?;
    Ok(WazuhMessages {
        add,
        continue_reply,
    })
}
