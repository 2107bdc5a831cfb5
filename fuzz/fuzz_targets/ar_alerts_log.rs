//! OSSEC/Wazuh alerts.log block parser: any bytes after the alert's offset must give a parsed
//! syscheck alert or an error, never a panic; a parsed path is absolute and free of controls.
#![no_main]

use libfuzzer_sys::fuzz_target;
use verifier::ar::{alert_id::AlertId, alerts_log::parse_block};

const HEADER: &[u8] = b"** Alert 1705314151.0: mail  - ossec,syscheck,\n";

fuzz_target!(|data: &[u8]| {
    let id = AlertId {
        epoch: 1_705_314_151,
        offset: 0,
    };
    // Odd first byte: the input is taken as a whole block; even: a valid header is prepended so
    // the fuzzer spends its time on the lines after it.
    let block = match data.first() {
        Some(first) if first % 2 == 1 => data[1..].to_vec(),
        _ => [HEADER, data.get(1..).unwrap_or_default()].concat(),
    };
    if let Ok(alert) = parse_block(&block, &id) {
        assert!(alert.path.starts_with('/'));
        assert!(!alert.path.chars().any(char::is_control));
        assert_eq!(alert.alert_id, "1705314151.0");
    }
});
