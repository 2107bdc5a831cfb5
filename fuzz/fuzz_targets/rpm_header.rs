//! rpm header blobs from the sqlite Packages table: arbitrary bytes must be rejected with an
//! error inside the blob or read into files, never panic or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use verifier::packages::rpm_header::read_package;

fuzz_target!(|blob: &[u8]| {
    if let Err(error) = read_package(blob) {
        assert!(error.byte <= blob.len(), "error position {} beyond the blob", error.byte);
    }
});
