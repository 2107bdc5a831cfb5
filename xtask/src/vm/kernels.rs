//! The kernel matrix: which stock Debian kernels the harness boots, and fetching each one's
//! `vmlinuz` into `target/vm-cache/kernels/` (extracted from the image package, never installed).
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use super::apt::{Apt, Release};

/// A kernel that can be booted: a short name, the release whose suites carry it, and the
/// metapackage that names its current image.
#[derive(Debug, Clone, Copy)]
pub struct KernelSpec {
    pub name: &'static str,
    pub release: Release,
    pub metapackage: &'static str,
    pub about: &'static str,
}

const BULLSEYE: Release = Release {
    name: "bullseye",
    suites: &["bullseye", "bullseye-updates"],
    security_suites: &["bullseye-security"],
};

const BOOKWORM: Release = Release {
    name: "bookworm",
    suites: &["bookworm", "bookworm-updates"],
    security_suites: &["bookworm-security"],
};

/// Every VM kernel, oldest first. `host` (this machine's own kernel) is handled by the caller.
pub const CATALOGUE: &[KernelSpec] = &[
    KernelSpec {
        name: "5.10",
        release: BULLSEYE,
        metapackage: "linux-image-cloud-amd64",
        about: "Debian 11 bullseye's kernel (cloud flavour)",
    },
    KernelSpec {
        name: "6.1",
        release: BOOKWORM,
        metapackage: "linux-image-cloud-amd64",
        about: "Debian 12 bookworm's kernel (cloud flavour)",
    },
    KernelSpec {
        name: "6.12",
        release: BOOKWORM,
        metapackage: "linux-image-6.12-cloud-amd64",
        about: "Debian 12's 6.12 kernel from bookworm-security (Debian 13 trixie's series)",
    },
];

pub fn find(name: &str) -> Option<&'static KernelSpec> {
    CATALOGUE.iter().find(|spec| spec.name == name)
}

/// A kernel image ready to boot.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub package: String,
    pub version: String,
    pub vmlinuz: PathBuf,
}

/// Resolves `spec` to its current image package and returns its `vmlinuz`, downloading and
/// extracting the package only when the cache does not have that version yet. When the download
/// fails (the lists name a version the registry has dropped), refreshes the lists and resolves again.
pub fn fetch(spec: &KernelSpec, cache: &Path) -> anyhow::Result<Kernel> {
    let apt = Apt::for_release(&spec.release)?;
    match fetch_current(&apt, spec, cache) {
        Ok(kernel) => Ok(kernel),
        Err(error) => {
            eprintln!("xtask vm: kernel {}: {error:#}", spec.name);
            apt.refresh_lists()?;
            fetch_current(&apt, spec, cache)
        }
    }
}

fn fetch_current(apt: &Apt, spec: &KernelSpec, cache: &Path) -> anyhow::Result<Kernel> {
    let (package, version) = apt.image_package_of(spec.metapackage)?;
    let dir = cache.join(format!("{package}_{version}"));
    if let Some(vmlinuz) = find_vmlinuz(&dir)? {
        return Ok(Kernel {
            package,
            version,
            vmlinuz,
        });
    }
    eprintln!(
        "xtask vm: fetching {package} {version} for kernel {}",
        spec.name
    );
    let staging = cache.join(format!(".{package}_{version}.partial"));
    if staging.exists() {
        fs::remove_dir_all(&staging).with_context(|| format!("removing {}", staging.display()))?;
    }
    fs::create_dir_all(&staging).with_context(|| format!("creating {}", staging.display()))?;
    let deb = apt.download(&package, &version, &staging)?;
    extract_kernel_only(&deb, &staging)?;
    fs::rename(&staging, &dir)
        .with_context(|| format!("moving {} to {}", staging.display(), dir.display()))?;
    let Some(vmlinuz) = find_vmlinuz(&dir)? else {
        bail!("{package} {version} has no boot/vmlinuz-*");
    };
    Ok(Kernel {
        package,
        version,
        vmlinuz,
    })
}

/// Unpacks the `.deb` and keeps only `boot/` (the image and its config); the modules are not
/// needed because the guest has no disks and the cloud kernels build in what a VM uses.
fn extract_kernel_only(deb: &Path, dir: &Path) -> anyhow::Result<()> {
    let unpacked = dir.join("unpacked");
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb)
        .arg(&unpacked)
        .status()
        .context("cannot start dpkg-deb")?;
    if !status.success() {
        bail!("dpkg-deb -x {} failed: {status}", deb.display());
    }
    fs::rename(unpacked.join("boot"), dir.join("boot"))
        .with_context(|| format!("{} has no boot/ directory", deb.display()))?;
    fs::remove_dir_all(&unpacked).with_context(|| format!("removing {}", unpacked.display()))?;
    fs::remove_file(deb).with_context(|| format!("removing {}", deb.display()))?;
    Ok(())
}

fn find_vmlinuz(dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    let boot = dir.join("boot");
    if !boot.is_dir() {
        return Ok(None);
    }
    for entry in fs::read_dir(&boot).with_context(|| format!("reading {}", boot.display()))? {
        let path = entry?.path();
        let is_image = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with("vmlinuz-"));
        if is_image {
            return Ok(Some(path));
        }
    }
    Ok(None)
}
