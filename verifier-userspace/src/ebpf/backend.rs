//! Recorder backends: which kernel programs each one needs (and what each program covers), what
//! the running kernel accepts (probed with aya's tiny load tests), and which backend runs.
//!
//! - `tracepoint`: `tp_btf` on `sys_exit` (every file-modifying syscall) plus the
//!   io_uring tracepoints (io_uring use is a gap: its operations bypass the syscall hooks).
//! - `lsm`: BPF LSM hooks (`file_open`, `path_*`, `inode_*xattr`, `inode_setattr`): every way
//!   into the VFS, io_uring included.
//!
//! Both use the scheduler tracepoints for process lineage and transactions, and produce the same
//! records. `auto` prefers `lsm`, then `tracepoint`; `fentry` is not built (refused at start).

use std::collections::BTreeSet;

use aya::programs::{LsmAttachType, ProgramType};
use verifier_common::ProgramId;

use super::kernel_layout::{self, KernelBtf};
use crate::{config::Backend, events::FileOp};

/// Where the kernel lists its active LSMs; BPF LSM programs only run when `bpf` is among them.
pub const ACTIVE_LSMS: &str = "/sys/kernel/security/lsm";

/// The backend that runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActiveBackend {
    Lsm,
    Tracepoint,
}

impl ActiveBackend {
    pub fn name(self) -> &'static str {
        match self {
            ActiveBackend::Lsm => "lsm",
            ActiveBackend::Tracepoint => "tracepoint",
        }
    }

    /// This backend's file programs (the scheduler programs in [`PROCESS_PROGRAMS`] come too).
    pub fn programs(self) -> &'static [ProgramSpec] {
        match self {
            ActiveBackend::Lsm => LSM_PROGRAMS,
            ActiveBackend::Tracepoint => TRACEPOINT_PROGRAMS,
        }
    }
}

/// The kind of BPF program, and what it attaches to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// `tp_btf/<tracepoint>`.
    TpBtf(&'static str),
    /// `lsm/<hook>`.
    Lsm(&'static str),
}

impl Hook {
    /// The BPF program type, as bpftool names it.
    pub fn program_type(self) -> &'static str {
        match self {
            Hook::TpBtf(_) => "tracing (tp_btf)",
            Hook::Lsm(_) => "lsm",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Hook::TpBtf(name) | Hook::Lsm(name) => name,
        }
    }
}

/// One program of a backend.
#[derive(Debug, Clone, Copy)]
pub struct ProgramSpec {
    pub id: ProgramId,
    pub hook: Hook,
    /// The file operations this program reports.
    pub covers: &'static [FileOp],
    /// Needed whenever the kernel has the hook, even if other programs report the same
    /// operations (they see other paths to it): `file_truncate` (6.2+) sees ftruncate and
    /// O_TRUNC, which older kernels route through `path_truncate`.
    pub needed_when_present: bool,
}

const ALL_OPS: &[FileOp] = &[
    FileOp::OpenWrite,
    FileOp::Truncate,
    FileOp::Rename,
    FileOp::RenameExchange,
    FileOp::Unlink,
    FileOp::Rmdir,
    FileOp::Link,
    FileOp::Symlink,
    FileOp::Mknod,
    FileOp::Chmod,
    FileOp::Chown,
    FileOp::SetXattr,
    FileOp::RemoveXattr,
    FileOp::Utimes,
];

const fn spec(id: ProgramId, hook: Hook, covers: &'static [FileOp]) -> ProgramSpec {
    ProgramSpec {
        id,
        hook,
        covers,
        needed_when_present: false,
    }
}

/// Process lineage and transactions: in every backend.
pub const PROCESS_PROGRAMS: &[ProgramSpec] = &[
    spec(ProgramId::Exec, Hook::TpBtf("sched_process_exec"), &[]),
    spec(ProgramId::Fork, Hook::TpBtf("sched_process_fork"), &[]),
    spec(ProgramId::Exit, Hook::TpBtf("sched_process_exit"), &[]),
];

/// The tracepoint backend's file programs. The io_uring programs report io_uring use (a gap).
pub const TRACEPOINT_PROGRAMS: &[ProgramSpec] = &[
    spec(ProgramId::SysExit, Hook::TpBtf("sys_exit"), ALL_OPS),
    spec(
        ProgramId::IoUringCreate,
        Hook::TpBtf("io_uring_create"),
        &[],
    ),
    spec(
        ProgramId::IoUringSubmit,
        Hook::TpBtf("io_uring_submit_req"),
        &[],
    ),
];

/// The LSM backend's file programs.
pub const LSM_PROGRAMS: &[ProgramSpec] = &[
    spec(
        ProgramId::LsmFileOpen,
        Hook::Lsm("file_open"),
        &[FileOp::OpenWrite],
    ),
    ProgramSpec {
        needed_when_present: true,
        ..spec(
            ProgramId::LsmFileTruncate,
            Hook::Lsm("file_truncate"),
            &[FileOp::Truncate],
        )
    },
    spec(
        ProgramId::LsmPathTruncate,
        Hook::Lsm("path_truncate"),
        &[FileOp::Truncate],
    ),
    spec(
        ProgramId::LsmPathRename,
        Hook::Lsm("path_rename"),
        &[FileOp::Rename, FileOp::RenameExchange],
    ),
    spec(
        ProgramId::LsmPathUnlink,
        Hook::Lsm("path_unlink"),
        &[FileOp::Unlink],
    ),
    spec(
        ProgramId::LsmPathRmdir,
        Hook::Lsm("path_rmdir"),
        &[FileOp::Rmdir],
    ),
    spec(
        ProgramId::LsmPathLink,
        Hook::Lsm("path_link"),
        &[FileOp::Link],
    ),
    spec(
        ProgramId::LsmPathSymlink,
        Hook::Lsm("path_symlink"),
        &[FileOp::Symlink],
    ),
    spec(
        ProgramId::LsmPathMknod,
        Hook::Lsm("path_mknod"),
        &[FileOp::Mknod],
    ),
    spec(
        ProgramId::LsmPathChmod,
        Hook::Lsm("path_chmod"),
        &[FileOp::Chmod],
    ),
    spec(
        ProgramId::LsmPathChown,
        Hook::Lsm("path_chown"),
        &[FileOp::Chown],
    ),
    spec(
        ProgramId::LsmInodeSetxattr,
        Hook::Lsm("inode_setxattr"),
        &[FileOp::SetXattr],
    ),
    spec(
        ProgramId::LsmInodeRemovexattr,
        Hook::Lsm("inode_removexattr"),
        &[FileOp::RemoveXattr],
    ),
    spec(
        ProgramId::LsmInodeSetattr,
        Hook::Lsm("inode_setattr"),
        &[FileOp::Utimes],
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("recorder backend \"lsm\" is not available on this kernel: {0}")]
    LsmUnavailable(String),
    #[error(
        "recorder backend \"fentry\" is not built yet; use \"lsm\", \"tracepoint\" or \"auto\""
    )]
    FentryNotBuilt,
    #[error(
        "recorder backend {backend}: program {program} ({hook}) could not be loaded and the others \
         do not report {missing:?}: {reason}"
    )]
    Uncovered {
        backend: &'static str,
        program: &'static str,
        hook: &'static str,
        missing: Vec<FileOp>,
        reason: String,
    },
}

/// What the running kernel accepts, from tiny load tests and its BTF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelSupport {
    /// `Ok` when BPF LSM programs load, attach and run; else why not.
    pub lsm: Result<(), String>,
}

/// Probes BPF LSM: active in the kernel's LSM list, the program type loads and attaches (aya's
/// trivial-program test, milliseconds), and BTF has every field and hook parameter it reads.
pub fn probe(btf: &KernelBtf) -> KernelSupport {
    KernelSupport {
        lsm: probe_lsm(btf),
    }
}

fn probe_lsm(btf: &KernelBtf) -> Result<(), String> {
    let active = std::fs::read_to_string(ACTIVE_LSMS)
        .map_err(|error| format!("cannot read {ACTIVE_LSMS} (securityfs mounted?): {error}"))?;
    if !active.trim().split(',').any(|lsm| lsm == "bpf") {
        return Err(format!(
            "\"bpf\" is not an active LSM ({ACTIVE_LSMS}: {}); boot with lsm=...,bpf",
            active.trim()
        ));
    }
    match aya::sys::is_program_supported(ProgramType::Lsm(LsmAttachType::Mac)) {
        Ok(true) => {}
        Ok(false) => return Err("the kernel does not support BPF LSM programs".to_owned()),
        Err(error) => return Err(format!("loading a BPF LSM test program failed: {error}")),
    }
    kernel_layout::lsm_layout(btf).map_err(|error| error.to_string())
}

/// The backend to run: the configured one, or for `auto` the best the kernel accepts.
pub fn choose(configured: Backend, support: &KernelSupport) -> Result<ActiveBackend, BackendError> {
    match configured {
        Backend::Tracepoint => Ok(ActiveBackend::Tracepoint),
        Backend::Fentry => Err(BackendError::FentryNotBuilt),
        Backend::Lsm => match &support.lsm {
            Ok(()) => Ok(ActiveBackend::Lsm),
            Err(reason) => Err(BackendError::LsmUnavailable(reason.clone())),
        },
        Backend::Auto => Ok(match support.lsm {
            Ok(()) => ActiveBackend::Lsm,
            Err(_) => ActiveBackend::Tracepoint,
        }),
    }
}

/// Operations no longer reported if the programs in `skipped` are left out of `programs`.
pub fn uncovered(programs: &[ProgramSpec], skipped: &[ProgramId]) -> Vec<FileOp> {
    let covered: BTreeSet<usize> = programs
        .iter()
        .filter(|spec| !skipped.contains(&spec.id))
        .flat_map(|spec| spec.covers.iter())
        .filter_map(|op| ALL_OPS.iter().position(|known| known == op))
        .collect();
    let needed: BTreeSet<usize> = programs
        .iter()
        .flat_map(|spec| spec.covers.iter())
        .filter_map(|op| ALL_OPS.iter().position(|known| known == op))
        .collect();
    needed
        .difference(&covered)
        .map(|&index| ALL_OPS[index])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> KernelSupport {
        KernelSupport {
            lsm: Err("EPERM".to_owned()),
        }
    }

    #[test]
    fn auto_prefers_lsm_and_falls_back_to_tracepoints() {
        let accepted = KernelSupport { lsm: Ok(()) };
        assert_eq!(
            choose(Backend::Auto, &accepted).ok(),
            Some(ActiveBackend::Lsm)
        );
        assert_eq!(
            choose(Backend::Auto, &refused()).ok(),
            Some(ActiveBackend::Tracepoint)
        );
        assert_eq!(
            choose(Backend::Tracepoint, &accepted).ok(),
            Some(ActiveBackend::Tracepoint)
        );
    }

    #[test]
    fn a_refused_configured_backend_is_an_error_naming_why() {
        let error = choose(Backend::Lsm, &refused()).expect_err("lsm refused");
        assert!(error.to_string().contains("\"lsm\" is not available"));
        assert!(error.to_string().contains("EPERM"));
        assert!(matches!(
            choose(Backend::Fentry, &refused()),
            Err(BackendError::FentryNotBuilt)
        ));
    }

    #[test]
    fn every_operation_is_covered_by_each_backend_and_gaps_are_named() {
        for backend in [ActiveBackend::Lsm, ActiveBackend::Tracepoint] {
            let covered: Vec<FileOp> = backend
                .programs()
                .iter()
                .flat_map(|spec| spec.covers.iter().copied())
                .collect();
            for op in ALL_OPS {
                assert!(covered.contains(op), "{backend:?} does not cover {op:?}");
            }
        }
        assert!(uncovered(LSM_PROGRAMS, &[]).is_empty());
        assert_eq!(
            uncovered(LSM_PROGRAMS, &[ProgramId::LsmPathChown]),
            [FileOp::Chown]
        );
        // Truncation is also seen by path_truncate: skipping file_truncate alone loses no
        // operation kind (whether it may be skipped is decided by `needed_when_present`).
        assert!(uncovered(LSM_PROGRAMS, &[ProgramId::LsmFileTruncate]).is_empty());
    }
}
