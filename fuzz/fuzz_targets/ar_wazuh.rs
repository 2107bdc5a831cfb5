//! Wazuh stdin message parser and the check_keys line built from what it returns.
#![no_main]

use libfuzzer_sys::fuzz_target;
use verifier::ar::wazuh::{check_keys_line, parse_message};

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = parse_message(data)
        && let Ok(alert) = message.alert
    {
        assert!(alert.path.starts_with('/'));
        let line = check_keys_line("verify-file", &alert.path);
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.ends_with('\n'));
    }
});
