//! Kernel packages through apt without touching `/etc` or the system's package lists: one private
//! source list and set of lists per Debian release, under `/var/cache/verifier-vm/apt/kernels/`
//! (override the root with `VM_APT_DIR`), made from the system's Debian `.sources` stanzas with
//! only `Suites:` changed. Kernels are downloaded with `apt-get download`, never installed.
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use anyhow::{Context as _, bail};

/// The system's Debian sources, copied stanza by stanza (a local mirror is kept).
const SYSTEM_SOURCES: &str = "/etc/apt/sources.list.d/debian.sources";
/// Used when the system has no deb822 Debian sources.
const DEFAULT_SOURCES: &str = "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: -\n\
Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: -\nComponents: main\n\
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n";

/// The suites of one Debian release that kernels are resolved from.
#[derive(Debug, Clone, Copy)]
pub struct Release {
    pub name: &'static str,
    /// Suites on the main archive (e.g. `bookworm`, `bookworm-updates`).
    pub suites: &'static [&'static str],
    /// Suites on the security archive (e.g. `bookworm-security`).
    pub security_suites: &'static [&'static str],
}

/// apt pointed at one release's private source list and lists.
pub struct Apt {
    dir: PathBuf,
}

impl Apt {
    /// The private apt state for `release`; writes its source list and fetches its package lists
    /// when they are not there yet.
    pub fn for_release(release: &Release) -> anyhow::Result<Self> {
        let root = std::env::var_os("VM_APT_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/cache/verifier-vm/apt"));
        let apt = Self {
            dir: root.join("kernels").join(release.name),
        };
        let sources = apt.dir.join("sources.list.d/debian.sources");
        if !sources.exists() {
            fs::create_dir_all(apt.dir.join("sources.list.d"))
                .and_then(|()| fs::create_dir_all(apt.dir.join("lists/partial")))
                .with_context(|| format!("creating {}", apt.dir.display()))?;
            let system = fs::read_to_string(SYSTEM_SOURCES).unwrap_or_default();
            let text = release_sources(&system, release);
            fs::write(&sources, text).with_context(|| format!("writing {}", sources.display()))?;
        }
        if !apt.has_lists()? {
            apt.refresh_lists()?;
        }
        Ok(apt)
    }

    fn has_lists(&self) -> anyhow::Result<bool> {
        let lists = self.dir.join("lists");
        Ok(fs::read_dir(&lists)
            .with_context(|| format!("reading {}", lists.display()))?
            .filter_map(Result::ok)
            .any(|entry| entry.file_name().to_string_lossy().contains("_Packages")))
    }

    fn command(&self, program: &str) -> Command {
        let dir = &self.dir;
        let mut command = Command::new(program);
        for option in [
            format!(
                "Dir::Etc::SourceParts={}",
                dir.join("sources.list.d").display()
            ),
            "Dir::Etc::SourceList=/dev/null".to_owned(),
            format!("Dir::State::Lists={}", dir.join("lists").display()),
            format!(
                "Dir::Cache::pkgcache={}",
                dir.join("pkgcache.bin").display()
            ),
            format!(
                "Dir::Cache::srcpkgcache={}",
                dir.join("srcpkgcache.bin").display()
            ),
            // Only the package lists: no AppStream metadata, translations or contents.
            "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false".to_owned(),
            "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false".to_owned(),
            "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false".to_owned(),
            "Acquire::Languages=none".to_owned(),
        ] {
            command.args(["-o", &option]);
        }
        command
    }

    /// Refreshes the package lists (superseded kernel versions vanish from the registry).
    pub fn refresh_lists(&self) -> anyhow::Result<()> {
        eprintln!("xtask vm: updating package lists in {}", self.dir.display());
        output_of(self.command("apt-get").args(["update", "-qq"]))?;
        Ok(())
    }

    /// The image package (name, version) that `metapackage`'s candidate version depends on.
    pub fn image_package_of(&self, metapackage: &str) -> anyhow::Result<(String, String)> {
        let output =
            output_of(
                self.command("apt-cache")
                    .args(["show", "--no-all-versions", metapackage]),
            )
            .with_context(|| format!("cannot resolve {metapackage}"))?;
        let text = String::from_utf8_lossy(&output.stdout);
        let package = depends_field(&text)
            .into_iter()
            .find(|name| name.starts_with("linux-image-") && name != metapackage)
            .with_context(|| format!("{metapackage} depends on no linux-image-* package"))?;
        let version = self.candidate_version(&package)?;
        Ok((package, version))
    }

    fn candidate_version(&self, package: &str) -> anyhow::Result<String> {
        let output = output_of(self.command("apt-cache").args(["policy", package]))?;
        let text = String::from_utf8_lossy(&output.stdout);
        text.lines()
            .find_map(|line| line.trim().strip_prefix("Candidate:"))
            .map(|version| version.trim().to_owned())
            .filter(|version| version != "(none)")
            .with_context(|| format!("{package} has no candidate version"))
    }

    /// Downloads `package=version` into `dir` with `apt-get download` and returns the `.deb`.
    pub fn download(&self, package: &str, version: &str, dir: &Path) -> anyhow::Result<PathBuf> {
        output_of(self.command("apt-get").current_dir(dir).args([
            "download",
            "-qq",
            &format!("{package}={version}"),
        ]))?;
        let deb = fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .find(|path| path.extension().is_some_and(|ext| ext == "deb"))
            .with_context(|| format!("apt-get download left no .deb in {}", dir.display()))?;
        Ok(deb)
    }
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

/// The system's deb822 stanzas with `Suites:` set to `release`'s suites: the security suites on
/// the stanza whose URIs name `debian-security`, the others on the rest.
fn release_sources(system: &str, release: &Release) -> String {
    let system = if system.contains("URIs:") {
        system
    } else {
        DEFAULT_SOURCES
    };
    let mut out = String::new();
    for stanza in system
        .split("\n\n")
        .filter(|stanza| stanza.contains("URIs:"))
    {
        let security = stanza
            .lines()
            .any(|line| line.starts_with("URIs:") && line.contains("debian-security"));
        let suites = if security {
            release.security_suites
        } else {
            release.suites
        };
        if suites.is_empty() {
            continue;
        }
        for line in stanza.lines().filter(|line| !line.starts_with('#')) {
            if line.starts_with("Suites:") {
                out.push_str(&format!("Suites: {}\n", suites.join(" ")));
            } else {
                out.push_str(line);
                out.push('\n');
            }
        }
        out.push('\n');
    }
    out
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

    #[test]
    fn sources_keep_each_stanza_and_change_only_the_suites() {
        let system = "Types: deb\n# a comment\nURIs: http://mirror/debian\nSuites: bookworm bookworm-updates\n\
                      Components: main\nSigned-By: /k.gpg\n\n\
                      Types: deb\nURIs: http://mirror/debian-security\nSuites: bookworm-security\n\
                      Components: main\nSigned-By: /k.gpg\n";
        let release = Release {
            name: "bullseye",
            suites: &["bullseye"],
            security_suites: &["bullseye-security"],
        };
        let text = release_sources(system, &release);
        assert_eq!(
            text,
            "Types: deb\nURIs: http://mirror/debian\nSuites: bullseye\nComponents: main\nSigned-By: /k.gpg\n\n\
             Types: deb\nURIs: http://mirror/debian-security\nSuites: bullseye-security\n\
             Components: main\nSigned-By: /k.gpg\n\n"
        );
    }
}
