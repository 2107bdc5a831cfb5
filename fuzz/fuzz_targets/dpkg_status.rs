//! dpkg's status file: arbitrary bytes must parse into records and errors, never panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use verifier::packages::dpkg_files::parse_status;

fuzz_target!(|bytes: &[u8]| {
    let (records, errors) = parse_status(Path::new("status"), bytes);
    for record in &records {
        assert!(!record.package.is_empty());
    }
    for error in &errors {
        let _ = error.to_string();
    }
});
