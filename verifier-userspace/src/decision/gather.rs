//! Gathering [`super::Evidence`] for one alert: the path as the kernel names it, the file as it is
//! now, and whether the verification itself relies on it. The provenance and package parts are filled
//! by the daemon from the store and the package index.

use std::{
    collections::BTreeMap,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use super::{
    AlertContent, BaselineEvidence, FileState, PackageEvidence, TakeoverEvidence, TransactionEnd,
    TransactionEvidence, WriteEvidence,
};
use crate::{
    config::Config,
    events::{FileOp, WallNanos},
    packages::{
        DigestAlgo, FileKind, OwnershipChange, PathVerification, to_hex, verify::hash_path,
    },
    protocol::{AlertRef, ChangeKind},
    store::{
        Baseline, FileHistory, Gap, HistoryEntry, HistoryStart, Incompleteness, TransactionKey,
        TransactionRecord, format_time,
    },
};

/// Checks an alerted path and names it as the kernel does: absolute, no `.`/`..`, no NUL, and with
/// its directory resolved through symlinks (syscheck may report `/bin/x` where the kernel sees
/// `/usr/bin/x`). The last component is never followed: a symlink there is what gets verified.
pub fn kernel_path(reported: &str) -> Result<PathBuf, String> {
    if reported.is_empty() {
        return Err("empty path".into());
    }
    if reported.contains('\0') {
        return Err("path contains a NUL byte".into());
    }
    let path = Path::new(reported);
    if !path.is_absolute() {
        return Err(format!("{reported:?} is not an absolute path"));
    }
    // Path::components() silently drops inner `.`: look at the raw components.
    if reported.split('/').any(|part| part == "." || part == "..") {
        return Err(format!("{reported:?} contains . or .. components"));
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(format!("{reported:?} names no file"));
    };
    match dir.canonicalize() {
        Ok(dir) => Ok(dir.join(name)),
        // The directory is gone (a removed package's directory): keep the path as reported.
        Err(_) => Ok(path.to_owned()),
    }
}

/// The file as lstat sees it now; `None` when it does not exist.
pub fn current_state(path: &Path) -> Option<FileState> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    Some(FileState {
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.size(),
        mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
    })
}

/// Compares the file at `path` (already lstat'ed as `current`) with every hash syscheck put in
/// the alert, in one read, opened without following a final symlink.
pub fn alert_content(path: &Path, alert: &AlertRef, current: Option<&FileState>) -> AlertContent {
    let not_compared = |why: &str| AlertContent::NotCompared {
        why: why.to_owned(),
    };
    if alert.change == ChangeKind::Deleted {
        return not_compared("a deletion carries no content hash");
    }
    let expected: Vec<(DigestAlgo, &str)> = [
        (DigestAlgo::Sha256, &alert.sha256_after),
        (DigestAlgo::Sha1, &alert.sha1_after),
        (DigestAlgo::Md5, &alert.md5_after),
    ]
    .into_iter()
    .filter_map(|(algo, hex)| Some((algo, hex.as_deref()?)))
    .collect();
    if expected.is_empty() {
        return not_compared("the alert carries no content hash (syscheck checksums off)");
    }
    let Some(current) = current else {
        return not_compared("the file is absent");
    };
    let algos: Vec<DigestAlgo> = expected.iter().map(|(algo, _)| *algo).collect();
    let (observed, digests) = match hash_path(path, &algos) {
        Ok(hashed) => hashed,
        Err(error) => {
            return AlertContent::Unreadable {
                error: error.to_string(),
            };
        }
    };
    if (observed.dev, observed.ino) != (current.dev, current.ino) {
        return AlertContent::Differs {
            detail: "the file was replaced while it was being verified".into(),
        };
    }
    if observed.kind != FileKind::Regular {
        return not_compared("not a regular file: syscheck's hashes describe what it points to");
    }
    for ((algo, wanted), found) in expected.iter().zip(&digests) {
        let found = to_hex(found);
        if !found.eq_ignore_ascii_case(wanted) {
            return AlertContent::Differs {
                detail: format!("syscheck hashed {algo} {wanted}, the file now has {found}"),
            };
        }
    }
    AlertContent::Same {
        algorithms: algos.iter().map(ToString::to_string).collect(),
    }
}

/// Files the verification itself relies on, by their canonical path, with why.
#[derive(Debug, Clone, Default)]
pub struct SelfCritical {
    paths: BTreeMap<PathBuf, String>,
}

impl SelfCritical {
    /// The daemon's own binaries, its configuration, the package managers, the mail transport and
    /// whatever the policy adds.
    pub fn from_config(config: &Config, config_path: Option<&Path>) -> Self {
        let mut critical = Self::default();
        if let Ok(exe) = std::env::current_exe() {
            if let Some(dir) = exe.parent() {
                critical.add(&dir.join("verify-file"), "the verify-file shim");
            }
            critical.add(&exe, "the verifier daemon binary");
        }
        if let Some(path) = config_path {
            critical.add(path, "the verifier configuration");
        }
        for manager in &config.recorder.package_managers {
            critical.add(manager, "a package manager the verification trusts");
        }
        if config.mail.enabled {
            critical.add(&config.mail.sendmail_path, "the mail transport");
        }
        for path in &config.policy.self_critical_paths {
            critical.add(path, "listed in policy.self_critical_paths");
        }
        critical
    }

    /// Adds the path and, if it resolves elsewhere, its canonical form.
    pub fn add(&mut self, path: &Path, why: &str) {
        self.paths.insert(path.to_owned(), why.to_owned());
        if let Ok(canonical) = path.canonicalize() {
            self.paths.insert(canonical, why.to_owned());
        }
    }

    /// Why `path` is critical, if it is.
    pub fn reason(&self, path: &Path) -> Option<String> {
        self.paths.get(path).cloned().or_else(|| {
            let canonical = path.canonicalize().ok()?;
            self.paths.get(&canonical).cloned()
        })
    }
}

/// What the package databases say about the file now, from a fresh verification of it.
pub fn package_evidence(verification: &PathVerification) -> PackageEvidence {
    let owners = verification
        .owners
        .iter()
        .map(|owner| owner.package.to_string())
        .collect();
    let unsettled_state = verification
        .owners
        .iter()
        .find(|owner| !owner.package.state.is_settled() || owner.package.reinstall_required)
        .map(|owner| {
            if owner.package.reinstall_required {
                "reinstall-required".to_owned()
            } else {
                owner.package.state.to_string()
            }
        });
    let mut mismatches: Vec<String> = verification
        .mismatches()
        .map(|(package, mismatch)| format!("{mismatch} ({})", package.name))
        .collect();
    // dpkg records no target for symlinks and nothing for directories: for those the writer
    // evidence stands alone. A regular file must have had its content compared.
    let regular_file = verification.owners.iter().any(|owner| {
        owner
            .outcome
            .observed
            .is_some_and(|observed| observed.kind == FileKind::Regular)
    });
    if regular_file && verification.all_clean() && !verification.content_verified() {
        mismatches.push("the package database records no digest to compare".into());
    }
    PackageEvidence {
        owners,
        unsettled_state,
        is_conffile: verification.conffile(),
        mismatches,
        takeovers: Vec::new(),
    }
}

/// The writers and completeness of a file's history, with each writer's transaction looked up by
/// `transaction`. Returns (writes oldest first, reasons the history may be incomplete).
/// For a deleted file (553) only its removal and what followed matter: the content it had is
/// gone. Narrows `history` to the operations from the path's last removal on, with the gap
/// window starting there. Leaves it unchanged when no removal of the path was recorded (the
/// verdict then fails as before).
pub fn narrow_to_last_removal(history: &mut FileHistory, path: &Path) {
    let key = crate::store::store_key(path);
    let key = key.as_os_str().as_encoded_bytes();
    let removal = history
        .entries
        .iter()
        .chain(&history.path_events)
        .filter(|entry| {
            entry.path.path.as_bytes() == key
                && matches!(
                    entry.op,
                    crate::store::EntryOp::File(FileOp::Unlink | FileOp::Rename)
                )
        })
        .map(|entry| entry.time)
        .max();
    let Some(removal) = removal else {
        return;
    };
    history.entries.retain(|entry| entry.time >= removal);
    history.path_events.retain(|entry| entry.time >= removal);
    history
        .possibly_related
        .retain(|entry| entry.time >= removal);
    history.start = HistoryStart::Created { time: removal };
    history.earliest_relevant = removal;
}

pub fn provenance_evidence(
    path: &Path,
    history: &FileHistory,
    mut transaction: impl FnMut(&TransactionKey) -> Option<TransactionRecord>,
) -> (Vec<WriteEvidence>, Vec<String>) {
    let mut incomplete: Vec<String> = history
        .incomplete
        .iter()
        .map(describe_incompleteness)
        .collect();
    let mut entries: Vec<&HistoryEntry> =
        history.entries.iter().chain(&history.path_events).collect();
    entries.sort_by_key(|entry| entry.time);
    let mut writes = Vec::with_capacity(entries.len());
    for entry in entries {
        let key = entry.writer.transaction_key();
        let record = key.as_ref().and_then(&mut transaction);
        if let (Some(key), None) = (&key, &record) {
            incomplete.push(format!(
                "transaction {} of pid {} is not recorded (it began before monitoring)",
                key.id, entry.writer.pid
            ));
        }
        writes.push(write_evidence(path, entry, record));
    }
    if !history.possibly_related.is_empty() {
        incomplete.push(format!(
            "{} operation(s) with truncated or unresolvable paths may concern this file",
            history.possibly_related.len()
        ));
    }
    if !writes.is_empty() && history.start == HistoryStart::Unknown && history.baseline.is_none() {
        incomplete.push(
            "the file existed before monitoring and was never trusted: earlier changes are unknown"
                .into(),
        );
    }
    (writes, incomplete)
}

fn write_evidence(
    path: &Path,
    entry: &HistoryEntry,
    record: Option<TransactionRecord>,
) -> WriteEvidence {
    let writer = &entry.writer;
    let exe = writer.exe.as_ref().map_or_else(
        || format!("unknown executable, comm {}", writer.comm),
        ToString::to_string,
    );
    let names_path =
        entry.path.path.as_bytes() == crate::store::store_key(path).as_os_str().as_encoded_bytes();
    let removed_path = names_path
        && matches!(
            entry.op,
            crate::store::EntryOp::File(FileOp::Unlink | FileOp::Rename)
        );
    WriteEvidence {
        time: format_time(entry.time),
        operation: describe_operation(entry),
        pid: writer.pid,
        exe,
        comm: writer.comm.to_string(),
        uid: writer.uid,
        depth: writer.transaction.map_or(0, |t| t.depth),
        transaction: record.map(transaction_evidence),
        removed_path,
    }
}

fn describe_operation(entry: &HistoryEntry) -> String {
    let mut text = format!("{} {}", entry.op.as_str(), entry.path.path);
    if let Some(target) = &entry.target {
        text.push_str(&format!(" -> {}", target.path));
    }
    text
}

/// A transaction record as the decision engine needs it.
pub fn transaction_evidence(record: TransactionRecord) -> TransactionEvidence {
    let command_line = String::from_utf8_lossy(record.cmdline.as_bytes())
        .split('\0')
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    TransactionEvidence {
        id: record.key.id,
        root_pid: record.root_pid,
        root_exe: record.exe.to_string(),
        command_line,
        ended: record.ended.map(|time| TransactionEnd {
            time: format_time(time),
            // An ended root without a status cannot have succeeded.
            exit_status: record.exit_status.unwrap_or(-1),
        }),
        held_database_lock: record.package_lock.is_some(),
    }
}

fn describe_incompleteness(incompleteness: &Incompleteness) -> String {
    match incompleteness {
        Incompleteness::InodeNotRecorded { recorded, current } => format!(
            "the file now is inode {}:{}, but the recorder last saw {}: a change was not recorded",
            current.dev,
            current.ino,
            recorded.map_or_else(
                || "no inode".to_owned(),
                |r| format!("inode {}:{}", r.dev, r.ino)
            )
        ),
        Incompleteness::UnresolvedPaths { count } => {
            format!("{count} operation(s) with unresolved paths may concern this file")
        }
        Incompleteness::WriterPredatesMonitoring { pid, comm } => {
            format!("pid {pid} ({comm}) had the file open for write before monitoring started")
        }
        Incompleteness::PriorHistoryUnknown { time } => format!(
            "the file arrived from outside the watched roots at {} without a known history",
            format_time(*time)
        ),
    }
}

/// A recorded ownership change, in the engine's terms.
pub fn takeover_evidence(time: WallNanos, change: OwnershipChange) -> TakeoverEvidence {
    TakeoverEvidence {
        time: format_time(time),
        previous_owner: change.previous_owner,
        previous_name: change.previous_name,
        new_owner: change.new_owner,
        replaces_declared: change.replaces_declared,
    }
}

/// A gap as one line.
pub fn describe_gap(gap: &Gap) -> String {
    let to = gap
        .to
        .map_or_else(|| "now (still open)".to_owned(), format_time);
    format!(
        "{} from {} to {to}: {}",
        gap.kind.as_str(),
        format_time(gap.from),
        gap.detail
    )
}

/// A baseline for the file in `state` as it is now, with the digest its package records.
pub fn baseline_of(state: &FileState, algorithm: String, digest: String) -> Option<Baseline> {
    Some(Baseline {
        file: crate::events::FileId {
            dev: state.dev,
            ino: state.ino,
        },
        size: state.size,
        mtime_ns: i64::try_from(state.mtime_ns).ok()?,
        ctime_ns: i64::try_from(state.ctime_ns).ok()?,
        digest,
        algorithm,
        time: crate::intake::wall_clock_now(),
    })
}

/// The trusted baseline, in the engine's terms.
pub fn baseline_evidence(baseline: &Baseline) -> BaselineEvidence {
    BaselineEvidence {
        trusted_at: format_time(baseline.time),
        state: FileState {
            dev: baseline.file.dev,
            ino: baseline.file.ino,
            size: baseline.size,
            mtime_ns: i128::from(baseline.mtime_ns),
            ctime_ns: i128::from(baseline.ctime_ns),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unusable_paths() {
        for bad in [
            "",
            "relative/x",
            "/usr/../etc/passwd",
            "/usr/./bin",
            "/a\0b",
        ] {
            assert!(kernel_path(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn resolves_directory_symlinks_but_not_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("alias")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", real.join("link")).unwrap();
        let reported = dir.path().join("alias/link");
        let resolved = kernel_path(reported.to_str().unwrap()).unwrap();
        assert_eq!(resolved, real.canonicalize().unwrap().join("link"));
    }

    #[test]
    fn self_critical_matches_through_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("dpkg-real");
        std::fs::write(&target, b"x").unwrap();
        let link = dir.path().join("dpkg");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let mut critical = SelfCritical::default();
        critical.add(&link, "a package manager");
        assert!(critical.reason(&target).is_some());
        assert!(critical.reason(&dir.path().join("other")).is_none());
    }

    /// The window of a verdict, end to end through a real store: the recorder's events for a
    /// path, the history `file_history` picks, the gaps overlapping it, and the engine's decision.
    mod window {
        use super::super::super::{Outcome, decide};
        use super::*;
        use crate::{
            config::{PolicyConfig, RecorderConfig},
            events::{
                Actor, Event, ExecEvent, ExitEvent, FileEvent, FileId, ReportedPath, TransactionRef,
            },
            store::Store,
        };

        const BOOT: &str = "11111111-2222-3333-4444-555555555555";
        const TOOL: &[u8] = b"/usr/bin/tool";
        const EXCLUSIVE: u64 = (libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL) as u64;

        fn actor(pid: u32, comm: &[u8], transaction: Option<u64>) -> Actor {
            Actor {
                pid,
                tid: pid,
                ppid: 1,
                uid: 0,
                euid: 0,
                start_time_ns: u64::from(pid),
                comm: comm.to_vec(),
                transaction: transaction.map(|id| TransactionRef { id, depth: 0 }),
            }
        }

        fn named(path: &[u8]) -> ReportedPath {
            ReportedPath {
                bytes: path.to_vec(),
                origin: crate::events::PathOrigin::Kernel,
                truncated: false,
            }
        }

        fn op(time: u64, actor: &Actor, op: FileOp, path: &[u8], ino: Option<u64>) -> FileEvent {
            FileEvent {
                time,
                actor: actor.clone(),
                op,
                path: named(path),
                file: ino.map(|ino| FileId { dev: 2049, ino }),
                flags: 0,
                target: None,
                replaced: None,
            }
        }

        /// One `dpkg -i` replacing the file numbered `old` with a new one numbered `new`.
        fn dpkg_replaces(at: u64, id: u64, old: u64, new: u64) -> Vec<Event> {
            let dpkg = actor(500 + id as u32, b"dpkg", Some(id));
            let new_name = b"/usr/bin/tool.dpkg-new";
            vec![
                Event::Exec(ExecEvent {
                    time: at,
                    actor: dpkg.clone(),
                    exe: named(b"/usr/bin/dpkg"),
                    exe_file: FileId { dev: 2049, ino: 1 },
                    argv0: b"dpkg".to_vec(),
                    cmdline: b"dpkg\0-i\0tool.deb".to_vec(),
                    cgroup_id: 1,
                    starts_transaction: true,
                }),
                Event::File(FileEvent {
                    flags: (libc::O_RDWR | libc::O_CREAT) as u64,
                    ..op(
                        at + 10,
                        &dpkg,
                        FileOp::OpenWrite,
                        b"/var/lib/dpkg/lock",
                        Some(2),
                    )
                }),
                Event::File(FileEvent {
                    target: Some(named(b"/usr/bin/tool.dpkg-tmp")),
                    ..op(at + 20, &dpkg, FileOp::Link, TOOL, None)
                }),
                Event::File(FileEvent {
                    flags: EXCLUSIVE,
                    ..op(at + 30, &dpkg, FileOp::OpenWrite, new_name, Some(new))
                }),
                Event::File(FileEvent {
                    target: Some(named(TOOL)),
                    replaced: Some(FileId {
                        dev: 2049,
                        ino: old,
                    }),
                    ..op(at + 40, &dpkg, FileOp::Rename, new_name, Some(new))
                }),
                Event::File(op(
                    at + 50,
                    &dpkg,
                    FileOp::Unlink,
                    b"/usr/bin/tool.dpkg-tmp",
                    None,
                )),
                Event::Exit(ExitEvent {
                    time: at + 60,
                    actor: dpkg,
                    exit_status: 0,
                    ends_transaction: true,
                }),
            ]
        }

        /// The decision about `/usr/bin/tool`, now inode `current`, after `events`.
        fn decided(events: &[Event], current: u64) -> crate::decision::Decision {
            let dir = tempfile::tempdir().unwrap();
            let recorder = RecorderConfig {
                watched_roots: vec!["/usr/bin".into()],
                ..RecorderConfig::default()
            };
            let mut store = Store::open_for_boot(dir.path(), &recorder, BOOT).unwrap();
            store.apply(events).unwrap();
            let path = Path::new("/usr/bin/tool");
            let file = FileId {
                dev: 2049,
                ino: current,
            };
            let history = store.file_history(path, Some(file)).unwrap();
            let (writes, incomplete) =
                provenance_evidence(path, &history, |key| store.transaction(key).unwrap());
            let gaps = store
                .gaps_overlapping(history.earliest_relevant, u64::MAX)
                .unwrap();
            let evidence = crate::decision::Evidence {
                path: path.to_owned(),
                change: ChangeKind::Modified,
                current: Some(FileState {
                    dev: 2049,
                    ino: current,
                    size: 10,
                    mtime_ns: 1,
                    ctime_ns: 2,
                }),
                writes,
                incomplete,
                gaps: gaps.iter().map(describe_gap).collect(),
                package: PackageEvidence {
                    owners: vec!["tool 3.0 all".into()],
                    ..Default::default()
                },
                ..Default::default()
            };
            decide(&evidence, &PolicyConfig::default())
        }

        /// Events after the store's "monitoring not started" gap ends.
        fn after_start() -> u64 {
            crate::intake::wall_clock_now() + 1_000_000_000
        }

        #[test]
        fn file_made_by_two_upgrades_of_a_preexisting_file_is_accepted() {
            let at = after_start();
            // 41 predates monitoring; the second upgrade's file gets number 41 back.
            let mut events = dpkg_replaces(at, 7, 41, 42);
            events.extend(dpkg_replaces(at + 100, 8, 42, 41));
            let decision = decided(&events, 41);
            assert_eq!(decision.outcome, Outcome::Succeeded, "{decision:?}");
        }

        #[test]
        fn file_made_by_two_upgrades_without_number_reuse_is_accepted() {
            let at = after_start();
            let mut events = dpkg_replaces(at, 7, 41, 42);
            events.extend(dpkg_replaces(at + 100, 8, 42, 43));
            let decision = decided(&events, 43);
            assert_eq!(decision.outcome, Outcome::Succeeded, "{decision:?}");
        }

        #[test]
        fn foreign_write_at_the_path_before_the_creation_still_fails() {
            let at = after_start();
            let mut events = dpkg_replaces(at, 7, 41, 42);
            let shell = actor(900, b"sh", None);
            events.push(Event::File(op(
                at + 70,
                &shell,
                FileOp::Truncate,
                TOOL,
                None,
            )));
            events.extend(dpkg_replaces(at + 100, 8, 42, 43));
            let decision = decided(&events, 43);
            assert_eq!(decision.outcome, Outcome::Failed, "{decision:?}");
            assert!(
                decision.reason.contains("outside any package transaction"),
                "{decision:?}"
            );
        }

        #[test]
        fn preexisting_inode_rewritten_in_place_fails() {
            let at = after_start();
            let dpkg = actor(507, b"dpkg", Some(7));
            let mut events = dpkg_replaces(at, 7, 41, 42);
            // Keep only the exec, then rewrite the preexisting inode 41 in place, then exit.
            events.truncate(1);
            events.push(Event::File(FileEvent {
                flags: (libc::O_WRONLY | libc::O_TRUNC) as u64,
                ..op(at + 30, &dpkg, FileOp::OpenWrite, TOOL, Some(41))
            }));
            events.push(Event::Exit(ExitEvent {
                time: at + 60,
                actor: dpkg,
                exit_status: 0,
                ends_transaction: true,
            }));
            let decision = decided(&events, 41);
            assert_eq!(decision.outcome, Outcome::Failed, "{decision:?}");
            assert!(
                decision.reason.contains("no complete evidence"),
                "{decision:?}"
            );
        }
    }

    #[test]
    fn current_state_of_missing_file_is_none() {
        assert!(current_state(Path::new("/nonexistent/verifier/x")).is_none());
        assert!(current_state(Path::new("/etc/hostname")).is_some());
    }
}
