//! AR log lines from arbitrary field contents: always exactly one line, no control characters,
//! and an OSSEC line keeps the decoder's fixed ` - - <id> <rule> ` shape.
#![no_main]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use verifier::{
    ar::log::{LogRecord, LogStatus, format_line},
    protocol::AlertSource,
};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut fields = text.splitn(5, '\u{1f}');
    let program = fields.next().unwrap_or_default();
    let alert_id = fields.next().unwrap_or_default();
    let rule_id = fields.next().unwrap_or_default();
    let path = fields.next().unwrap_or_default();
    let reason = fields.next().unwrap_or_default();
    let record = LogRecord {
        program,
        status: LogStatus::Failed,
        alert_id,
        rule_id,
        path,
        reason,
    };
    let when =
        UNIX_EPOCH + Duration::from_secs(u64::from(data.first().copied().unwrap_or(0)) << 24);
    for source in [AlertSource::Ossec, AlertSource::Wazuh] {
        let line = format_line(source, when.min(SystemTime::now()), &record);
        let body = line.strip_suffix('\n').expect("ends in newline");
        assert!(
            !body
                .chars()
                .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}'),
            "{line:?}"
        );
        if source == AlertSource::Ossec {
            assert!(body.contains(" failed - - "), "{line:?}");
        }
    }
});
