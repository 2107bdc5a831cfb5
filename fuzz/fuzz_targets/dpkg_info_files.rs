//! dpkg's `info/<pkg>.list` and `info/<pkg>.md5sums`: arbitrary bytes, never a panic; every
//! accepted path is absolute.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use verifier::packages::dpkg_files::{parse_list, parse_md5sums};

fuzz_target!(|bytes: &[u8]| {
    let (paths, _) = parse_list(Path::new("x.list"), bytes);
    assert!(paths.iter().all(|path| path.is_absolute()));
    let (sums, _) = parse_md5sums(Path::new("x.md5sums"), bytes);
    assert!(sums.iter().all(|(path, digest)| path.is_absolute() && digest.bytes.len() == 16));
});
