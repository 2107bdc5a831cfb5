//! What runs inside a guest: the `/init` script (mounts, probe, test binaries, exit-code marker,
//! power-off) and the reading of its marker lines on the host.
use std::fmt::Write as _;

/// A test binary as the guest runs it.
pub struct GuestTest<'a> {
    pub name: &'a str,
    pub guest_path: &'a str,
}

/// The marker the host waits for; without it the guest crashed or hung.
pub const RC_MARKER: &str = "VMTEST_RC=";
/// Printed first by `/init`: the guest kernel release (also marks the end of the boot).
pub const KERNEL_MARKER: &str = "VMTEST_KERNEL=";
pub const LSM_MARKER: &str = "VMTEST_LSM=";
pub const BIN_MARKER: &str = "VMTEST_BIN=";

/// The environment variable the recorder tests read to force a backend.
pub const BACKEND_ENV: &str = "VERIFIER_TEST_BACKEND";

/// The `/init` script: mount the kernel filesystems (no tmpfs over `/tmp`: the binaries sit at
/// their host paths, which may be under `/tmp`; the initramfs root is writable RAM anyway), run the probe and every test with `args` from
/// `workdir` (as cargo runs tests from the package directory), print
/// `VMTEST_RC=<first non-zero rc, or 0>` and power off.
/// With `backends`, every test runs once per backend (`VERIFIER_TEST_BACKEND=<backend>`), its
/// marker named `<test>@<backend>`.
pub fn init_script(
    tests: &[GuestTest<'_>],
    backends: &[String],
    args: &[String],
    workdir: &str,
    probe_dir: Option<&str>,
) -> String {
    let mut script = String::from(
        r#"#!/bin/sh
/bin/busybox --install -s /bin
# Programs copied from the host (under /usr) come before busybox's applets (in /bin).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TMPDIR=/tmp RUST_BACKTRACE=1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t securityfs securityfs /sys/kernel/security
mount -t bpf bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
ip link set lo up 2>/dev/null
echo "VMTEST_KERNEL=$(uname -r)"
echo "VMTEST_LSM=$(cat /sys/kernel/security/lsm 2>/dev/null)"
echo "VMTEST_LOCKDOWN=$(cat /sys/kernel/security/lockdown 2>/dev/null)"
"#,
    );
    if let Some(dir) = probe_dir {
        let _ = writeln!(script, "{dir}/{} {dir}/*.o", super::probe::LOADER);
    }
    script.push_str(
        r#"rc=0
run_test() {
  name=$1; shift
  "$@"
  status=$?
  echo "VMTEST_BIN=$name rc=$status"
  [ "$status" -eq 0 ] || rc=$status
}
"#,
    );
    let _ = writeln!(
        script,
        "mkdir -p {dir} && cd {dir}",
        dir = shell_quote(workdir)
    );
    let quoted_args: Vec<String> = args.iter().map(|arg| shell_quote(arg)).collect();
    for test in tests {
        if backends.is_empty() {
            let _ = writeln!(
                script,
                "run_test {} {} {}",
                shell_quote(test.name),
                shell_quote(test.guest_path),
                quoted_args.join(" ")
            );
        }
        for backend in backends {
            let _ = writeln!(
                script,
                "run_test {} env {BACKEND_ENV}={} {} {}",
                shell_quote(&format!("{}@{backend}", test.name)),
                shell_quote(backend),
                shell_quote(test.guest_path),
                quoted_args.join(" ")
            );
        }
    }
    script.push_str("echo \"VMTEST_RC=$rc\"\npoweroff -f\n");
    script
}

/// Single-quotes `word` for sh.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// The value after `marker` on a guest line (which may carry a stray `\r`).
pub fn marker_value<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    line.trim().strip_prefix(marker).map(str::trim)
}

/// Per-binary exit codes from `VMTEST_BIN=<name> rc=<rc>` lines.
pub fn binary_results<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<(String, i32)> {
    lines
        .into_iter()
        .filter_map(|line| marker_value(line, BIN_MARKER))
        .filter_map(|rest| {
            let (name, rc) = rest.rsplit_once(" rc=")?;
            Some((name.to_owned(), rc.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_script_runs_each_test_with_quoted_args_and_prints_the_marker() {
        let tests = [GuestTest {
            name: "vm_smoke",
            guest_path: "/vm/target/debug/deps/vm_smoke-1",
        }];
        let args = ["--exact".to_owned(), "it's".to_owned()];
        let script = init_script(&tests, &[], &args, "/w/tests", None);
        assert!(script.contains("mkdir -p '/w/tests' && cd '/w/tests'"));
        assert!(script.contains(
            r"run_test 'vm_smoke' '/vm/target/debug/deps/vm_smoke-1' '--exact' 'it'\''s'"
        ));
        assert!(script.ends_with("echo \"VMTEST_RC=$rc\"\npoweroff -f\n"));
    }

    #[test]
    fn init_script_runs_each_test_once_per_backend() {
        let tests = [GuestTest {
            name: "recorder",
            guest_path: "/t/recorder-1",
        }];
        let backends = ["lsm".to_owned(), "tracepoint".to_owned()];
        let script = init_script(&tests, &backends, &[], "/w", None);
        assert!(
            script.contains(
                "run_test 'recorder@lsm' env VERIFIER_TEST_BACKEND='lsm' '/t/recorder-1'"
            )
        );
        assert!(script.contains("run_test 'recorder@tracepoint' env VERIFIER_TEST_BACKEND="));
        assert_eq!(script.matches("run_test '").count(), 2);
    }

    #[test]
    fn markers_are_read_despite_carriage_returns() {
        assert_eq!(marker_value("VMTEST_RC=101\r", RC_MARKER), Some("101"));
        assert_eq!(
            binary_results(["VMTEST_BIN=recorder rc=0\r", "other"]),
            [("recorder".to_owned(), 0)]
        );
    }
}
