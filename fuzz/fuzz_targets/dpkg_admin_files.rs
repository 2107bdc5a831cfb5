//! dpkg's `diversions` and `statoverride`: arbitrary bytes, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use verifier::packages::dpkg_files::{parse_diversions, parse_statoverride};

fuzz_target!(|bytes: &[u8]| {
    let (diversions, _) = parse_diversions(Path::new("diversions"), bytes);
    assert!(diversions.iter().all(|diversion| diversion.from.is_absolute() && diversion.to.is_absolute()));
    let (overrides, _) = parse_statoverride(Path::new("statoverride"), bytes);
    assert!(overrides.iter().all(|record| record.mode <= 0o7777));
});
