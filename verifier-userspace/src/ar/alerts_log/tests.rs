use std::path::PathBuf;

use super::*;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/ar-formats")
        .join(name)
}

fn read(name: &str, id: &str) -> Result<SyscheckAlert, AlertsLogError> {
    read_alert(&fixture(name), &id.parse().unwrap())
}

const CURL_MD5: &str = "1323de69f7b423af59147549752a692f";
const GRUB_V2_MD5: &str = "539816332f43401865a335da0f935025";

#[test]
fn ossec_37_every_syscheck_alert() {
    let f = "ossec-3.7-local-alerts.log";
    let cases = [
        (
            "1705314151.0",
            "550",
            ChangeKind::Modified,
            "/usr/bin/curl",
            Some(CURL_MD5),
        ),
        (
            "1705314211.443",
            "550",
            ChangeKind::Modified,
            "/etc/default/grub",
            Some(GRUB_V2_MD5),
        ),
        (
            "1705314271.1287",
            "551",
            ChangeKind::Modified,
            "/etc/default/grub",
            Some("a71b4f02490669a85d6cd39d16fc68cc"),
        ),
        (
            "1705314331.1806",
            "552",
            ChangeKind::Modified,
            "/etc/default/grub",
            Some("5f5a5420b821388eae79316ede8d7634"),
        ),
        (
            "1705314391.2273",
            "553",
            ChangeKind::Deleted,
            "/usr/local/bin/backup.sh",
            None,
        ),
        (
            "1705314451.2506",
            "554",
            ChangeKind::Added,
            "/usr/local/bin/backup.sh",
            None,
        ),
        (
            "1705314511.2688",
            "554",
            ChangeKind::Added,
            "/etc/cron.d/backup",
            Some("f8a1978e11737b4e22e934f53648f55c"),
        ),
    ];
    for (id, rule, change, path, md5) in cases {
        let alert = read(f, id).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(alert.alert_id, id);
        assert_eq!(alert.rule_id, rule, "{id}");
        assert_eq!(alert.change, change, "{id}");
        assert_eq!(alert.path, path, "{id}");
        assert_eq!(alert.md5_after.as_deref(), md5, "{id}");
        assert_eq!(alert.sha256_after, None, "{id}");
        assert_eq!(alert.layout, BlockLayout::Ossec);
        assert_eq!(alert.location, "debian12->syscheck");
    }
    // The sha1 after the change, next to the md5 (curl_new in sample-content-hashes.txt).
    assert_eq!(
        read(f, "1705314151.0").unwrap().sha1_after.as_deref(),
        Some("e7e2fe286ac5523c707865c10261db06bc83375a")
    );
}

#[test]
fn ossec_37_ar_log_alert_is_not_syscheck() {
    let error = read("ossec-3.7-local-alerts.log", "1705314212.949").unwrap_err();
    assert!(
        matches!(error, AlertsLogError::NotSyscheck { .. }),
        "{error}"
    );
}

#[test]
fn ossec_28_every_alert() {
    let f = "ossec-2.8-local-alerts.log";
    let cases = [
        ("1705314151.0", "550", ChangeKind::Modified, "/usr/bin/curl"),
        (
            "1705314211.443",
            "550",
            ChangeKind::Modified,
            "/etc/default/grub",
        ),
        (
            "1705314271.949",
            "551",
            ChangeKind::Modified,
            "/etc/default/grub",
        ),
        (
            "1705314331.1467",
            "552",
            ChangeKind::Modified,
            "/etc/default/grub",
        ),
        (
            "1705314391.1934",
            "553",
            ChangeKind::Deleted,
            "/usr/local/bin/backup.sh",
        ),
    ];
    for (id, rule, change, path) in cases {
        let alert = read(f, id).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(
            (alert.rule_id.as_str(), alert.change, alert.path.as_str()),
            (rule, change, path),
            "{id}"
        );
    }
}

#[test]
fn ossec_28_new_file_single_line() {
    let block = b"** Alert 1705314511.0: - ossec,syscheck,\n2024 Jan 15 10:28:31 debian12->syscheck\nRule: 554 (level 5) -> 'File added to the system.'\nNew file '/etc/cron.d/backup' added to the file system.\n\n";
    let alert = parse_block(block, &"1705314511.0".parse().unwrap()).unwrap();
    assert_eq!(alert.change, ChangeKind::Added);
    assert_eq!(alert.path, "/etc/cron.d/backup");
}

#[test]
fn ossec_agent_location() {
    let alert = read("ossec-3.7-server-agent-alert.log", "1705314571.0").unwrap();
    assert_eq!(alert.location, "(web01) 192.168.56.10->syscheck");
    assert_eq!(alert.path, "/usr/bin/curl");
    assert_eq!(alert.change, ChangeKind::Modified);
}

#[test]
fn wazuh_4x_every_alert() {
    let f = "wazuh-4.x-local-alerts.log";
    let cases = [
        (
            "1705314151.0",
            ChangeKind::Modified,
            "/usr/bin/curl",
            Some(CURL_MD5),
            Some("1d92f94a27afd786a69e3b0c2a42893d9d04a2bd905cb32f172c59b4230a8f30"),
        ),
        (
            "1705314211.1212",
            ChangeKind::Modified,
            "/etc/default/grub",
            Some(GRUB_V2_MD5),
            Some("0acb0db4c9f72cdc24f20ee1326ba8eec1375b5448c0d7e97b27f3b115e6e9ee"),
        ),
        (
            "1705314391.2827",
            ChangeKind::Deleted,
            "/usr/local/bin/backup.sh",
            None,
            None,
        ),
        (
            "1705314511.3501",
            ChangeKind::Added,
            "/etc/cron.d/backup",
            Some("f8a1978e11737b4e22e934f53648f55c"),
            Some("7043183ff1aa656a777b85f63dcedbc4ec2212c570f38171149b684895647de6"),
        ),
    ];
    for (id, change, path, md5, sha256) in cases {
        let alert = read(f, id).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(alert.layout, BlockLayout::Wazuh);
        assert_eq!(alert.change, change, "{id}");
        assert_eq!(alert.path, path, "{id}");
        assert_eq!(alert.md5_after.as_deref(), md5, "{id}");
        assert_eq!(alert.sha256_after.as_deref(), sha256, "{id}");
    }
    assert_eq!(
        read(f, "1705314151.0").unwrap().sha1_after.as_deref(),
        Some("e7e2fe286ac5523c707865c10261db06bc83375a")
    );
}

#[test]
fn local_rule_id_is_reported_and_event_comes_from_text() {
    let block = b"** Alert 1705314151.0: - local,syscheck,file_verification,\n2024 Jan 15 10:22:31 debian12->syscheck\nRule: 200001 (level 3) -> 'Integrity checksum changed.'\nIntegrity checksum changed for: '/usr/bin/curl'\n\n";
    let alert = parse_block(block, &"1705314151.0".parse().unwrap()).unwrap();
    assert_eq!(alert.rule_id, "200001");
    assert_eq!(alert.change, ChangeKind::Modified);
}

#[test]
fn optional_header_lines_are_skipped() {
    let block = b"** Alert 1.0: - ossec,syscheck,\n2024 Jan 15 10:22:31 debian12->syscheck\nRule: 550 (level 7) -> 'x'\nUser: root\nFile '/etc/x' was re-added.\n\n";
    assert_eq!(
        parse_block(block, &"1.0".parse().unwrap()).unwrap().path,
        "/etc/x"
    );
}

#[test]
fn path_with_quotes_and_spaces() {
    let block = b"** Alert 1.0: - ossec,syscheck,\n2024 Jan 15 10:22:31 h->syscheck\nRule: 550 (level 7) -> 'x'\nIntegrity checksum changed for: '/etc/it's a $(file); `x`'\n\n";
    assert_eq!(
        parse_block(block, &"1.0".parse().unwrap()).unwrap().path,
        "/etc/it's a $(file); `x`"
    );
}

#[test]
fn id_past_the_end_is_refused() {
    let error = read("ossec-3.7-local-alerts.log", "1705314151.999999").unwrap_err();
    assert!(matches!(error, AlertsLogError::PastEnd { .. }), "{error}");
}

#[test]
fn id_into_the_middle_of_a_block_is_refused() {
    // Offset 47 is the start of the second line of the first block.
    let error = read("ossec-3.7-local-alerts.log", "1705314151.47").unwrap_err();
    assert!(
        matches!(error, AlertsLogError::HeaderMismatch { .. }),
        "{error}"
    );
    // Offset 45 is inside a line.
    let error = read("ossec-3.7-local-alerts.log", "1705314151.45").unwrap_err();
    assert!(
        matches!(error, AlertsLogError::NotLineStart { .. }),
        "{error}"
    );
}

#[test]
fn wrong_epoch_is_refused() {
    let error = read("ossec-3.7-local-alerts.log", "1705314152.0").unwrap_err();
    assert!(
        matches!(error, AlertsLogError::HeaderMismatch { .. }),
        "{error}"
    );
}

#[test]
fn header_prefix_of_longer_id_is_refused() {
    let block = b"** Alert 1.01: - ossec,syscheck,\n";
    assert!(matches!(
        parse_block(block, &"1.0".parse().unwrap()),
        Err(AlertsLogError::HeaderMismatch { .. })
    ));
}

#[test]
fn truncated_block_is_incomplete() {
    let block = b"** Alert 1.0: - ossec,syscheck,\n2024 Jan 15 10:22:31 h->syscheck\nRule: 550 (level 7) -> 'x'\nIntegrity checksum changed for: '/usr/bin/cu";
    let error = parse_block(block, &"1.0".parse().unwrap()).unwrap_err();
    assert!(
        matches!(error, AlertsLogError::Incomplete { .. }),
        "{error}"
    );
}

#[test]
fn invalid_utf8_path_is_refused() {
    let block = b"** Alert 1.0: - ossec,syscheck,\n2024 Jan 15 10:22:31 h->syscheck\nRule: 550 (level 7) -> 'x'\nIntegrity checksum changed for: '/usr/bin/\xff\xfe'\n\n";
    let error = parse_block(block, &"1.0".parse().unwrap()).unwrap_err();
    assert!(error.to_string().contains("UTF-8"), "{error}");
}

#[test]
fn control_characters_in_path_are_refused() {
    let block = b"** Alert 1.0: - ossec,syscheck,\n2024 Jan 15 10:22:31 h->syscheck\nRule: 550 (level 7) -> 'x'\nIntegrity checksum changed for: '/usr/bin/a\rb'\n\n";
    let error = parse_block(block, &"1.0".parse().unwrap()).unwrap_err();
    assert!(error.to_string().contains("control"), "{error}");
}

#[test]
fn long_ossec_path_may_be_cut() {
    let path = format!("/{}", "a".repeat(800));
    let block = format!(
        "** Alert 1.0: - ossec,syscheck,\n2024 Jan 15 10:22:31 h->syscheck\nRule: 550 (level 7) -> 'x'\nIntegrity checksum changed for: '{}'\n\n",
        &path[..756]
    );
    let error = parse_block(block.as_bytes(), &"1.0".parse().unwrap()).unwrap_err();
    assert!(error.to_string().contains("756"), "{error}");
}

#[test]
fn megabyte_line_is_refused_without_crash() {
    let mut block = b"** Alert 1.0: - ossec,syscheck,\n2024 Jan 15 10:22:31 h->syscheck\nRule: 550 (level 7) -> 'x'\nIntegrity checksum changed for: '/".to_vec();
    block.extend(std::iter::repeat_n(b'a', 1 << 20));
    block.extend(b"'\n\n");
    assert!(parse_block(&block, &"1.0".parse().unwrap()).is_err());
}

#[test]
fn non_syscheck_location_and_relative_path_are_refused() {
    let other = b"** Alert 1.0: - syslog,\n2024 Jan 15 10:22:31 h->/var/log/auth.log\nRule: 5715 (level 3) -> 'x'\nFile '/etc/x' added\n\n";
    assert!(matches!(
        parse_block(other, &"1.0".parse().unwrap()),
        Err(AlertsLogError::NotSyscheck { .. })
    ));
    let relative = b"** Alert 1.0: - ossec,syscheck,\n2024 Jan 15 10:22:31 h->syscheck\nRule: 550 (level 7) -> 'x'\nFile 'etc/x' added\n\n";
    assert!(matches!(
        parse_block(relative, &"1.0".parse().unwrap()),
        Err(AlertsLogError::BadPath { .. })
    ));
}

#[test]
fn conflicting_hashes_are_refused_and_junk_hashes_ignored() {
    let conflicting = format!(
        "** Alert 1.0: - ossec,syscheck,\n2024 Jan 15 10:22:31 h->syscheck\nRule: 550 (level 7) -> 'x'\nIntegrity checksum changed for: '/x'\nNew md5sum is : '{CURL_MD5}'\nNew md5sum is : '{GRUB_V2_MD5}'\n\n"
    );
    assert!(parse_block(conflicting.as_bytes(), &"1.0".parse().unwrap()).is_err());
    let junk = "** Alert 1.0: - ossec,syscheck,\n2024 Jan 15 10:22:31 h->syscheck\nRule: 550 (level 7) -> 'x'\nIntegrity checksum changed for: '/x'\nNew md5sum is : 'xxx'\n\n";
    assert_eq!(
        parse_block(junk.as_bytes(), &"1.0".parse().unwrap())
            .unwrap()
            .md5_after,
        None
    );
}

#[test]
fn diff_text_is_never_read_for_hashes() {
    let block = "** Alert 1.0: - ossec,syscheck,\n2024 Jan 15 10:22:31 h->syscheck\nRule: 550 (level 7) -> 'x'\nIntegrity checksum changed for: '/x'\nWhat changed:\nNew md5sum is : '1323de69f7b423af59147549752a692f'\n\n";
    assert_eq!(
        parse_block(block.as_bytes(), &"1.0".parse().unwrap())
            .unwrap()
            .md5_after,
        None
    );
}

#[test]
fn rotated_log_is_found_by_the_alert_date() {
    let dir = tempfile::tempdir().unwrap();
    let alerts_log = dir.path().join("alerts.log");
    std::fs::write(&alerts_log, b"** Alert 1705400000.0: - ossec,syscheck,\n").unwrap();
    let rotated = rotated_path(&alerts_log, 1_705_314_151).unwrap();
    let (year, month, day) = crate::ar::log::local_date(1_705_314_151);
    assert!(rotated.ends_with(format!("{year}/{month}/ossec-alerts-{day:02}.log")));
    std::fs::create_dir_all(rotated.parent().unwrap()).unwrap();
    std::fs::copy(fixture("ossec-3.7-local-alerts.log"), &rotated).unwrap();
    let id = "1705314211.443".parse().unwrap();
    assert!(read_alert(&alerts_log, &id).is_err());
    assert_eq!(
        read_alert_or_rotated(&alerts_log, &id).unwrap().path,
        "/etc/default/grub"
    );
    // Only "not there" is retried in the rotated log; other errors stand.
    let inside = "1705314151.5".parse().unwrap();
    assert!(matches!(
        read_alert_or_rotated(&alerts_log, &inside),
        Err(AlertsLogError::NotLineStart { .. })
    ));
    // No rotated log for that day: the original error stands.
    let later = "1800000000.99".parse().unwrap();
    assert!(matches!(
        read_alert_or_rotated(&alerts_log, &later),
        Err(AlertsLogError::PastEnd { .. })
    ));
}
