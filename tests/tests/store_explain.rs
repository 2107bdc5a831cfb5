//! `verifier explain` against a real provenance store on disk: while the writing store (the
//! daemon's) is open and after it is gone, for people and as JSON, with hostile file names.
//! The events are fed through the store's own input format (`verifier::events::Event`); the
//! recorder-driven end-to-end tests live elsewhere.

use std::{
    ffi::OsStr,
    fs,
    os::unix::{ffi::OsStrExt, fs::MetadataExt},
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::{
        OnceLock,
        atomic::{AtomicU32, Ordering},
    },
};

use verifier::{
    config::RecorderConfig,
    events::{
        Actor, Event, ExecEvent, ExitEvent, FileEvent, FileId, FileOp, PathOrigin, ReportedPath,
        TransactionRef,
    },
    store::Store,
};

/// A temporary directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "verifier-store-explain-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The `verifier` binary of this workspace, (re)built once per test run so it is never stale.
fn verifier_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().unwrap();
            let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_owned();
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut command = Command::new(cargo);
            command.args(["build", "-p", "verifier-userspace", "--bin", "verifier"]);
            if profile_dir.file_name() == Some(OsStr::new("release")) {
                command.arg("--release");
            }
            let status = command.status().unwrap();
            assert!(status.success(), "building the verifier binary failed");
            profile_dir.join("verifier")
        })
        .clone()
}

/// A daemon-like setup: config, state dir and a watched root holding real files.
struct Setup {
    scratch: Scratch,
    config: PathBuf,
    state: PathBuf,
    root: PathBuf,
}

impl Setup {
    fn new(name: &str) -> Self {
        let scratch = Scratch::new(name);
        let state = scratch.0.join("state");
        let root = scratch.0.join("root");
        fs::create_dir_all(&root).unwrap();
        let config = scratch.0.join("config.toml");
        fs::write(
            &config,
            format!(
                "state_dir = {:?}\n[recorder]\nwatched_roots = [{:?}]\n",
                state.to_str().unwrap(),
                root.to_str().unwrap()
            ),
        )
        .unwrap();
        Self {
            scratch,
            config,
            state,
            root,
        }
    }

    fn recorder(&self) -> RecorderConfig {
        RecorderConfig {
            watched_roots: vec![self.root.clone()],
            ..RecorderConfig::default()
        }
    }

    fn explain(&self, path: &Path, json: bool) -> Output {
        let mut command = Command::new(verifier_binary());
        command
            .env("VERIFIER_CONFIG", &self.config)
            .arg("explain")
            .arg(path);
        if json {
            command.arg("--json");
        }
        command.output().unwrap()
    }
}

fn reported(path: &Path) -> ReportedPath {
    ReportedPath {
        bytes: path.as_os_str().as_bytes().to_vec(),
        origin: PathOrigin::Kernel,
        truncated: false,
    }
}

fn file_id(path: &Path) -> FileId {
    let metadata = fs::symlink_metadata(path).unwrap();
    FileId {
        dev: metadata.dev(),
        ino: metadata.ino(),
    }
}

/// dpkg as transaction 3 writes `<final>.dpkg-new` (the inode now at `final_path`) and renames
/// it into place, then exits 0.
fn dpkg_installs(final_path: &Path) -> Vec<Event> {
    let actor = Actor {
        pid: 4242,
        tid: 4242,
        ppid: 1,
        uid: 0,
        euid: 0,
        start_time_ns: 99,
        comm: b"dpkg".to_vec(),
        transaction: Some(TransactionRef { id: 3, depth: 0 }),
    };
    let file = file_id(final_path);
    let mut temporary = final_path.as_os_str().to_owned();
    temporary.push(".dpkg-new");
    let temporary = PathBuf::from(temporary);
    let now = verifier::store::now();
    let flags = (libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL) as u64;
    vec![
        Event::Exec(ExecEvent {
            time: now - 4_000,
            actor: actor.clone(),
            exe: reported(Path::new("/usr/bin/dpkg")),
            exe_file: FileId { dev: 1, ino: 2 },
            argv0: b"dpkg".to_vec(),
            cmdline: b"dpkg\0--install\0tool.deb".to_vec(),
            cgroup_id: 1,
            starts_transaction: true,
        }),
        Event::File(FileEvent {
            time: now - 3_000,
            actor: actor.clone(),
            op: FileOp::OpenWrite,
            path: reported(&temporary),
            file: Some(file),
            flags,
            target: None,
            replaced: None,
        }),
        Event::File(FileEvent {
            time: now - 2_000,
            actor: actor.clone(),
            op: FileOp::Rename,
            path: reported(&temporary),
            file: Some(file),
            flags: 0,
            target: Some(reported(final_path)),
            replaced: None,
        }),
        Event::Exit(ExitEvent {
            time: now - 1_000,
            actor,
            exit_status: 0,
            ends_transaction: true,
        }),
    ]
}

#[test]
fn explain_reads_the_store_while_the_daemon_runs_and_after() {
    let setup = Setup::new("running");
    let tool = setup.root.join("tool");
    fs::write(&tool, b"#!/bin/sh\n").unwrap();
    let mut daemon_store = Store::open(&setup.state, &setup.recorder()).unwrap();
    daemon_store.apply(&dpkg_installs(&tool)).unwrap();

    let output = setup.explain(&tool, true);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["current"]["file"]["ino"], file_id(&tool).ino);
    assert_eq!(json["history"]["entries"].as_array().unwrap().len(), 2);
    assert_eq!(json["history"]["incomplete"].as_array().unwrap().len(), 0);
    assert_eq!(json["history"]["start"]["kind"], "created");
    assert_eq!(json["transactions"][0]["exit_status"], 0);
    assert_eq!(json["transactions"][0]["exe"], "/usr/bin/dpkg");

    daemon_store.mark_clean_stop().unwrap();
    drop(daemon_store);
    let output = setup.explain(&tool, false);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    for expected in [
        "running /usr/bin/dpkg",
        "in transaction 3 at depth 0",
        "command line: dpkg --install tool.deb",
        "exit code 0",
        "tool.dpkg-new -> ",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    drop(setup.scratch);
}

#[test]
fn explain_escapes_hostile_file_names() {
    let setup = Setup::new("hostile");
    let name = OsStr::from_bytes(b"evil\nname\xff\x1b[2J");
    let evil = setup.root.join(name);
    fs::write(&evil, b"x").unwrap();
    let mut daemon_store = Store::open(&setup.state, &setup.recorder()).unwrap();
    daemon_store.apply(&dpkg_installs(&evil)).unwrap();

    let output = setup.explain(&evil, false);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !output.stdout.contains(&0x1b),
        "no raw escape sequence reaches the terminal"
    );
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("evil\\nname\\xff\\x1b[2J"), "{text}");

    let output = setup.explain(&evil, true);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        json["path"]
            .as_str()
            .unwrap()
            .ends_with("evil\\nname\\xff\\x1b[2J")
    );
}

#[test]
fn explain_without_a_store_fails_with_a_reason() {
    let setup = Setup::new("missing");
    let output = setup.explain(Path::new("/etc/hostname"), false);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no provenance store"), "{stderr}");
}
