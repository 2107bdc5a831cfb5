//! Helpers for the end-to-end tests: isolated daemon instances, throwaway dpkg packages, and
//! OSSEC inputs (alerts.log blocks and Active Response argv) written exactly as OSSEC writes them.

pub mod daemon;
pub mod debs;
pub mod ossec;

use std::path::PathBuf;

/// A binary of this workspace (`verifier`, `verify-file`), built by `cargo xtask test` before the
/// tests run (cargo does not build another package's binaries for integration tests).
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // Test binaries live in target/<profile>/deps/, bins (the demo) in target/<profile>/.
    let dir = exe.parent().expect("executable directory");
    let candidates = [
        Some(dir.join(name)),
        dir.parent().map(|profile| profile.join(name)),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|binary| binary.exists())
        .unwrap_or_else(|| {
            panic!(
                "{name} is missing next to {}: run `cargo build -p verifier-userspace --bins` (cargo xtask test does)",
                exe.display()
            )
        })
}

/// Panics unless running as root: these tests load eBPF programs and run dpkg.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "end-to-end tests need root (cargo xtask test runs them as root in CI)"
    );
}

/// A name unique to this test process, for throwaway packages and files.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
