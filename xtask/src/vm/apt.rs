//! Kernel packages through apt, without touching `/etc`: the private source list and package lists
//! that `scripts/setup-vm.sh` writes (the system's Debian suites plus bookworm-backports).
use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use anyhow::{Context as _, bail};

/// Where `scripts/setup-vm.sh` keeps the private apt configuration (override: `VM_APT_DIR`).
fn private_dir() -> PathBuf {
    std::env::var_os("VM_APT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/verifier-vm/apt"))
}

/// apt options that use the private source list and lists when they exist, else the system's.
fn apt_options() -> Vec<String> {
    let dir = private_dir();
    if !dir.join("sources.list.d").is_dir() {
        return Vec::new();
    }
    [
        format!(
            "Dir::Etc::SourceParts={}",
            dir.join("sources.list.d").display()
        ),
        "Dir::Etc::SourceList=/dev/null".to_owned(),
        format!("Dir::State::Lists={}", dir.join("lists").display()),
        format!("Dir::Cache::pkgcache={}", dir.join("pkgcache.bin").display()),
        format!("Dir::Cache::srcpkgcache={}", dir.join("srcpkgcache.bin").display()),
    ]
    .into_iter()
    .flat_map(|option| ["-o".to_owned(), option])
    .collect()
}

fn apt(program: &str) -> Command {
    let mut command = Command::new(program);
    command.args(apt_options());
    command
}

fn output_of(command: &mut Command) -> anyhow::Result<Output> {
    let output = command
        .output()
        .with_context(|| format!("cannot start {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output)
}

/// The image package (name, version) that `metapackage`'s candidate version depends on.
pub fn image_package_of(metapackage: &str) -> anyhow::Result<(String, String)> {
    let output = output_of(apt("apt-cache").args(["show", "--no-all-versions", metapackage]))
        .with_context(|| {
            format!(
                "cannot resolve {metapackage}: run scripts/setup-vm.sh (it writes the apt lists)"
            )
        })?;
    let text = String::from_utf8_lossy(&output.stdout);
    let package = depends_field(&text)
        .into_iter()
        .find(|name| name.starts_with("linux-image-") && name != metapackage)
        .with_context(|| format!("{metapackage} depends on no linux-image-* package"))?;
    let version = candidate_version(&package)?;
    Ok((package, version))
}

fn depends_field(control: &str) -> Vec<String> {
    control
        .lines()
        .find_map(|line| line.strip_prefix("Depends:"))
        .map(|depends| {
            depends
                .split([',', '|'])
                .filter_map(|alternative| alternative.split_whitespace().next())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn candidate_version(package: &str) -> anyhow::Result<String> {
    let output = output_of(apt("apt-cache").args(["policy", package]))?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|line| line.trim().strip_prefix("Candidate:"))
        .map(|version| version.trim().to_owned())
        .filter(|version| version != "(none)")
        .with_context(|| format!("{package} has no candidate version"))
}

/// Refreshes the package lists apt resolves kernels from (superseded versions vanish upstream).
pub fn refresh_lists() -> anyhow::Result<()> {
    eprintln!("xtask vm: refreshing the package lists");
    output_of(apt("apt-get").args(["update", "-qq"]))?;
    Ok(())
}

/// Downloads `package=version` into `dir` with `apt-get download` and returns the `.deb`.
pub fn download(package: &str, version: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    output_of(apt("apt-get").current_dir(dir).args([
        "download",
        "-qq",
        &format!("{package}={version}"),
    ]))?;
    let deb = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .with_context(|| format!("apt-get download left no .deb in {}", dir.display()))?;
    Ok(deb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_field_lists_package_names() {
        let control = "Package: linux-image-cloud-amd64\nDepends: linux-image-6.1.0-41-cloud-amd64 (= 6.1.158-1), foo | bar\n";
        assert_eq!(
            depends_field(control),
            ["linux-image-6.1.0-41-cloud-amd64", "foo", "bar"]
        );
    }
}
