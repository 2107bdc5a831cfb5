//! Booting one kernel with its initramfs under qemu (TCG unless a real KVM module is loaded),
//! passing the guest's serial output through to our stdout and enforcing a time limit.
use std::{
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use super::guest::{KERNEL_MARKER, RC_MARKER, marker_value};

/// The kernel command line: serial console, no reboot on panic, BPF LSM enabled.
const KERNEL_ARGS: &str =
    "console=ttyS0 panic=-1 quiet loglevel=4 lsm=lockdown,capability,landlock,yama,apparmor,bpf";

/// What a boot produced.
pub struct Boot {
    pub lines: Vec<String>,
    /// The `VMTEST_RC` marker's value; `None` means the guest crashed or hung.
    pub rc: Option<i32>,
    pub timed_out: bool,
    /// From qemu's start to the guest's first `/init` line.
    pub boot_time: Option<Duration>,
    pub elapsed: Duration,
}

/// `-accel kvm` only with a hardware KVM module: the nested `kvm_pvm` here crashes stock kernels.
fn accelerator() -> [&'static str; 4] {
    let hardware_kvm = ["/sys/module/kvm_intel", "/sys/module/kvm_amd"]
        .iter()
        .any(|module| Path::new(module).exists());
    if hardware_kvm {
        ["-accel", "kvm", "-cpu", "host"]
    } else {
        ["-accel", "tcg", "-cpu", "max"]
    }
}

/// Boots `kernel` with `initrd`, prints every guest line, and kills qemu after `timeout`.
pub fn boot(kernel: &Path, initrd: &Path, timeout: Duration) -> anyhow::Result<Boot> {
    let mut command = Command::new("qemu-system-x86_64");
    command
        .args(accelerator())
        .args([
            "-m",
            "2G",
            "-smp",
            "2",
            "-M",
            "pc",
            "-nodefaults",
            "-no-user-config",
        ])
        .args([
            "-display",
            "none",
            "-no-reboot",
            "-serial",
            "stdio",
            "-monitor",
            "none",
        ])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", KERNEL_ARGS])
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let started = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start {command:?} (run scripts/setup-vm.sh)"))?;
    let stdout = child.stdout.take().context("qemu stdout is not piped")?;
    let (sender, receiver) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n').map_while(Result::ok) {
            let line = String::from_utf8_lossy(&line)
                .trim_end_matches('\r')
                .to_owned();
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let mut boot = Boot {
        lines: Vec::new(),
        rc: None,
        timed_out: false,
        boot_time: None,
        elapsed: Duration::ZERO,
    };
    let deadline = started + timeout;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(remaining) {
            Ok(line) => {
                println!("{line}");
                if boot.boot_time.is_none() && marker_value(&line, KERNEL_MARKER).is_some() {
                    boot.boot_time = Some(started.elapsed());
                }
                if let Some(rc) = marker_value(&line, RC_MARKER) {
                    boot.rc = rc.parse().ok();
                }
                boot.lines.push(line);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                boot.timed_out = true;
                eprintln!(
                    "xtask vm: guest did not finish within {}s; killing qemu",
                    timeout.as_secs()
                );
                child.kill().context("killing qemu")?;
                break;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    child.wait().context("waiting for qemu")?;
    let _ = reader.join();
    boot.elapsed = started.elapsed();
    Ok(boot)
}
