//! The argv OSSEC 2.x/3.x `ossec-execd` hands an AR program, and its cross-check against the
//! alert read from `alerts.log`.
//!
//! analysisd writes `<name><timeout> <user> <srcip> <alertid> <ruleid> <location> <filename>` to
//! execd (cut at 1024 bytes, the filename passed through `os_shell_escape`), and execd splits it
//! on every space into at most 29 words after `add`. So an agent location
//! `(web01) 10.0.0.5->syscheck` arrives as two words, a file name with spaces arrives as several
//! words (`/etc/my\` `file.conf`), and a long or much-spaced name loses its tail. With
//! `<expect></expect>` the filename is `-`. The words are therefore only a cross-check: the path
//! and event come from the alert block.

use std::{ffi::OsString, os::unix::ffi::OsStrExt as _};

use crate::ar::alerts_log::SyscheckAlert;

/// execd builds at most this many argv entries (program, `add`, 29 message words).
pub const EXECD_MAX_ARGV: usize = 31;
/// analysisd's execq message buffer.
pub const EXECQ_MESSAGE_LIMIT: usize = 1024;
/// Room left in that buffer for `<name><timeout> `; a message this close to the limit may be cut.
const COMMAND_NAME_ALLOWANCE: usize = 128;

/// The first argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Add,
    /// The run execd makes when an AR's timeout expires.
    Delete,
    Other(String),
}

/// What the argv says, as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OssecInvocation {
    pub program: String,
    pub action: Action,
    pub user: String,
    pub srcip: String,
    pub alert_id: String,
    pub rule_id: String,
    /// Location words joined with a space.
    pub location: String,
    pub filename: Option<ArgvFilename>,
}

/// The filename words, rejoined and unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgvFilename {
    pub bytes: Vec<u8>,
    /// The message may have been cut (argument or byte limit): only a prefix is known.
    pub maybe_truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgvError {
    #[error("expected at least 6 arguments (action user srcip alertid ruleid location), got {0}")]
    TooFew(usize),
    #[error("argument {index} ({name}) is not valid UTF-8")]
    NotUtf8 { index: usize, name: &'static str },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrossCheckError {
    #[error("argv rule id {argv:?} differs from the alert's rule id {alert:?}")]
    RuleId { argv: String, alert: String },
    #[error("argv alert id {argv:?} differs from the alert's id {alert:?}")]
    AlertId { argv: String, alert: String },
    #[error("argv location {argv:?} does not match the alert's location {alert:?}")]
    Location { argv: String, alert: String },
    #[error("argv filename {argv:?} does not match the alert's path {alert:?}")]
    Filename { argv: String, alert: String },
}

/// Interprets `args` (argv including argv[0]).
pub fn parse_ossec_argv(args: &[OsString]) -> Result<OssecInvocation, ArgvError> {
    if args.len() < 7 {
        return Err(ArgvError::TooFew(args.len().saturating_sub(1)));
    }
    let text = |index: usize, name: &'static str| {
        args[index]
            .to_str()
            .map(str::to_owned)
            .ok_or(ArgvError::NotUtf8 { index, name })
    };
    let action = match text(1, "action")?.as_str() {
        "add" => Action::Add,
        "delete" => Action::Delete,
        other => Action::Other(other.to_owned()),
    };
    let words = &args[6..];
    let location_words = location_word_count(words);
    let location = words[..location_words]
        .iter()
        .map(|word| word.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let filename_words = &words[location_words..];
    let message_len: usize = args[2..].iter().map(|word| word.len() + 1).sum();
    let maybe_truncated =
        args.len() >= EXECD_MAX_ARGV || message_len + COMMAND_NAME_ALLOWANCE >= EXECQ_MESSAGE_LIMIT;
    let filename = match filename_words {
        [] => None,
        [only] if only.as_bytes() == b"-" => None,
        words => Some(ArgvFilename {
            bytes: shell_unescape(&join_words(words), maybe_truncated),
            maybe_truncated,
        }),
    };
    Ok(OssecInvocation {
        program: args[0].to_string_lossy().into_owned(),
        action,
        user: text(2, "user")?,
        srcip: text(3, "srcip")?,
        alert_id: text(4, "alert id")?,
        rule_id: text(5, "rule id")?,
        location,
        filename,
    })
}

/// An agent location `(name) ip->syscheck` takes two words; any other location one.
fn location_word_count(words: &[OsString]) -> usize {
    match words {
        [first, second, ..]
            if first.as_bytes().starts_with(b"(")
                && first.as_bytes().ends_with(b")")
                && second.as_bytes().windows(2).any(|pair| pair == b"->") =>
        {
            2
        }
        _ => 1,
    }
}

fn join_words(words: &[OsString]) -> Vec<u8> {
    let mut joined = Vec::new();
    for (index, word) in words.iter().enumerate() {
        if index > 0 {
            joined.push(b' ');
        }
        joined.extend_from_slice(word.as_bytes());
    }
    joined
}

/// Undoes `os_shell_escape` (a backslash before each special character). A lone backslash at
/// the very end of a cut message is dropped.
pub fn shell_unescape(escaped: &[u8], maybe_truncated: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(escaped.len());
    let mut bytes = escaped.iter();
    while let Some(&byte) = bytes.next() {
        if byte == b'\\' {
            match bytes.next() {
                Some(&next) => out.push(next),
                None if maybe_truncated => {}
                None => out.push(b'\\'),
            }
        } else {
            out.push(byte);
        }
    }
    out
}

/// Checks that the argv agrees with the alert block: ids, location and (when execd passed one)
/// the filename. A mismatch means the argv and the alert describe different events.
pub fn cross_check(
    invocation: &OssecInvocation,
    alert: &SyscheckAlert,
) -> Result<(), CrossCheckError> {
    if invocation.alert_id != alert.alert_id {
        return Err(CrossCheckError::AlertId {
            argv: invocation.alert_id.clone(),
            alert: alert.alert_id.clone(),
        });
    }
    if invocation.rule_id != alert.rule_id {
        return Err(CrossCheckError::RuleId {
            argv: invocation.rule_id.clone(),
            alert: alert.rule_id.clone(),
        });
    }
    let location_matches = invocation.location == alert.location
        || alert
            .location
            .strip_suffix(invocation.location.as_str())
            .is_some_and(|host| host.ends_with("->"));
    if !location_matches {
        return Err(CrossCheckError::Location {
            argv: invocation.location.clone(),
            alert: alert.location.clone(),
        });
    }
    if let Some(filename) = &invocation.filename {
        let path = alert.path.as_bytes();
        let matches = if filename.maybe_truncated {
            !filename.bytes.is_empty() && path.starts_with(&filename.bytes)
        } else {
            path == filename.bytes.as_slice()
        };
        if !matches {
            return Err(CrossCheckError::Filename {
                argv: String::from_utf8_lossy(&filename.bytes).into_owned(),
                alert: alert.path.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ar::alerts_log::BlockLayout, protocol::ChangeKind};

    fn args(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    fn fixture_argv() -> Vec<Vec<OsString>> {
        let text = include_str!("../../../tests/fixtures/ar-formats/ossec-ar-argv.jsonl");
        text.lines()
            .map(|line| {
                let words: Vec<String> = serde_json::from_str(line).unwrap();
                words.into_iter().map(OsString::from).collect()
            })
            .collect()
    }

    fn alert(id: &str, rule: &str, location: &str, path: &str) -> SyscheckAlert {
        SyscheckAlert {
            alert_id: id.into(),
            rule_id: rule.into(),
            location: location.into(),
            layout: BlockLayout::Ossec,
            change: ChangeKind::Modified,
            path: path.into(),
            md5_after: None,
            sha1_after: None,
            sha256_after: None,
        }
    }

    #[test]
    fn fixture_argv_lines() {
        let all = fixture_argv();
        let local = parse_ossec_argv(&all[0]).unwrap();
        assert_eq!(local.action, Action::Add);
        assert_eq!((local.user.as_str(), local.srcip.as_str()), ("-", "-"));
        assert_eq!(local.alert_id, "1705314151.0");
        assert_eq!(local.rule_id, "550");
        assert_eq!(local.location, "syscheck");
        assert_eq!(local.filename.unwrap().bytes, b"/usr/bin/curl");

        let spaced = parse_ossec_argv(&all[3]).unwrap();
        assert_eq!(spaced.filename.unwrap().bytes, b"/etc/my file.conf");

        let agent = parse_ossec_argv(&all[4]).unwrap();
        assert_eq!(agent.location, "(web01) 192.168.56.10->syscheck");
        assert_eq!(agent.filename.unwrap().bytes, b"/usr/bin/curl");

        let no_filename = parse_ossec_argv(&all[5]).unwrap();
        assert_eq!(no_filename.filename, None);

        let delete = parse_ossec_argv(&all[6]).unwrap();
        assert_eq!(delete.action, Action::Delete);
    }

    #[test]
    fn cross_check_accepts_fixture_pairs() {
        let all = fixture_argv();
        let local = parse_ossec_argv(&all[1]).unwrap();
        cross_check(
            &local,
            &alert(
                "1705314211.443",
                "550",
                "debian12->syscheck",
                "/etc/default/grub",
            ),
        )
        .unwrap();
        let agent = parse_ossec_argv(&all[4]).unwrap();
        cross_check(
            &agent,
            &alert(
                "1705314571.0",
                "550",
                "(web01) 192.168.56.10->syscheck",
                "/usr/bin/curl",
            ),
        )
        .unwrap();
        let no_filename = parse_ossec_argv(&all[5]).unwrap();
        cross_check(
            &no_filename,
            &alert("1705314151.0", "550", "debian12->syscheck", "/anything"),
        )
        .unwrap();
    }

    #[test]
    fn cross_check_refuses_mismatches() {
        let local = parse_ossec_argv(&fixture_argv()[0]).unwrap();
        let good = alert("1705314151.0", "550", "debian12->syscheck", "/usr/bin/curl");
        let mut other_path = good.clone();
        other_path.path = "/usr/bin/curl2".into();
        assert!(matches!(
            cross_check(&local, &other_path),
            Err(CrossCheckError::Filename { .. })
        ));
        let mut other_rule = good.clone();
        other_rule.rule_id = "200001".into();
        assert!(matches!(
            cross_check(&local, &other_rule),
            Err(CrossCheckError::RuleId { .. })
        ));
        let mut other_location = good.clone();
        other_location.location = "debian12->rootcheck".into();
        assert!(matches!(
            cross_check(&local, &other_location),
            Err(CrossCheckError::Location { .. })
        ));
        let mut suffix_trick = good;
        suffix_trick.location = "debian12-syscheck".into();
        assert!(cross_check(&local, &suffix_trick).is_err());
    }

    #[test]
    fn escaped_metacharacters_round_trip() {
        let parsed = parse_ossec_argv(&args(&[
            "/p",
            "add",
            "-",
            "-",
            "1.0",
            "550",
            "syscheck",
            "/tmp/a\\;b\\$\\(c\\)\\'d\\\"",
            "e\\\\f",
        ]))
        .unwrap();
        assert_eq!(parsed.filename.unwrap().bytes, b"/tmp/a;b$(c)'d\" e\\f");
    }

    #[test]
    fn many_spaces_hit_the_argument_limit_and_compare_as_prefix() {
        let name = format!("/tmp/{}", vec!["w"; 40].join(" "));
        let escaped = name.replace(' ', "\\ ");
        let mut argv = args(&["/p", "add", "-", "-", "1.0", "550", "syscheck"]);
        // execd keeps 29 message words; the rest of the name is lost.
        let words: Vec<&str> = escaped.split(' ').collect();
        argv.extend(words[..24].iter().map(OsString::from));
        assert_eq!(argv.len(), EXECD_MAX_ARGV);
        let parsed = parse_ossec_argv(&argv).unwrap();
        let filename = parsed.filename.clone().unwrap();
        assert!(filename.maybe_truncated);
        cross_check(&parsed, &alert("1.0", "550", "h->syscheck", &name)).unwrap();
        assert!(cross_check(&parsed, &alert("1.0", "550", "h->syscheck", "/tmp/other")).is_err());
    }

    #[test]
    fn too_few_arguments() {
        assert_eq!(
            parse_ossec_argv(&args(&["/p", "add", "-"])),
            Err(ArgvError::TooFew(2))
        );
    }

    #[test]
    fn invalid_utf8_filename_is_kept_as_bytes() {
        use std::os::unix::ffi::OsStringExt as _;
        let mut argv = args(&["/p", "add", "-", "-", "1.0", "550", "syscheck"]);
        argv.push(OsString::from_vec(b"/tmp/\xff".to_vec()));
        let parsed = parse_ossec_argv(&argv).unwrap();
        assert_eq!(parsed.filename.as_ref().unwrap().bytes, b"/tmp/\xff");
        assert!(
            cross_check(
                &parsed,
                &alert("1.0", "550", "h->syscheck", "/tmp/\u{fffd}")
            )
            .is_err()
        );
        let mut bad_id = argv.clone();
        bad_id[4] = OsString::from_vec(b"1.\xff".to_vec());
        assert!(matches!(
            parse_ossec_argv(&bad_id),
            Err(ArgvError::NotUtf8 { index: 4, .. })
        ));
    }
}
