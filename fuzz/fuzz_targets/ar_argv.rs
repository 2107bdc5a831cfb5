//! OSSEC argv interpretation and its cross-check: words are the input split on NUL bytes.
#![no_main]

use std::{ffi::OsString, os::unix::ffi::OsStringExt as _};

use libfuzzer_sys::fuzz_target;
use verifier::{
    ar::{
        alerts_log::{BlockLayout, SyscheckAlert},
        argv::{cross_check, parse_ossec_argv, shell_unescape},
    },
    protocol::ChangeKind,
};

fuzz_target!(|data: &[u8]| {
    let mut args: Vec<OsString> =
        vec![OsString::from("/var/ossec/active-response/bin/verify-file")];
    args.extend(
        data.split(|&byte| byte == 0)
            .map(|word| OsString::from_vec(word.to_vec())),
    );
    let _ = shell_unescape(data, data.len() % 2 == 0);
    if let Ok(invocation) = parse_ossec_argv(&args) {
        let alert = SyscheckAlert {
            alert_id: invocation.alert_id.clone(),
            rule_id: invocation.rule_id.clone(),
            location: format!("host->{}", invocation.location),
            layout: BlockLayout::Ossec,
            change: ChangeKind::Modified,
            path: "/usr/bin/curl".to_owned(),
            md5_after: None,
            sha1_after: None,
            sha256_after: None,
        };
        if cross_check(&invocation, &alert).is_ok()
            && let Some(filename) = &invocation.filename
        {
            assert!(alert.path.as_bytes().starts_with(&filename.bytes));
        }
    }
});
