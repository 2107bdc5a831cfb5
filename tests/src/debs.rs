//! Throwaway .deb packages: built with `dpkg-deb --build` from a description, installed, upgraded
//! and purged with the real dpkg.
use std::{
    fs,
    os::unix::fs::{PermissionsExt as _, symlink},
    path::{Path, PathBuf},
    process::Command,
};

/// One file in a package.
#[derive(Debug, Clone)]
pub struct DebFile {
    /// Absolute install path.
    pub path: PathBuf,
    pub content: Vec<u8>,
    pub mode: u32,
    pub conffile: bool,
}

/// A package description.
#[derive(Debug, Clone)]
pub struct Deb {
    pub name: String,
    pub version: String,
    pub files: Vec<DebFile>,
    /// (link path, target)
    pub symlinks: Vec<(PathBuf, PathBuf)>,
    pub postinst: Option<String>,
    pub preinst: Option<String>,
    /// Packages whose files this one may take over (`Replaces:`).
    pub replaces: Vec<String>,
}

impl Deb {
    pub fn new(name: &str, version: &str) -> Self {
        Self {
            name: name.to_owned(),
            version: version.to_owned(),
            files: Vec::new(),
            symlinks: Vec::new(),
            postinst: None,
            preinst: None,
            replaces: Vec::new(),
        }
    }

    pub fn file(
        mut self,
        path: impl Into<PathBuf>,
        content: impl Into<Vec<u8>>,
        mode: u32,
    ) -> Self {
        self.files.push(DebFile {
            path: path.into(),
            content: content.into(),
            mode,
            conffile: false,
        });
        self
    }

    pub fn conffile(mut self, path: impl Into<PathBuf>, content: impl Into<Vec<u8>>) -> Self {
        self.files.push(DebFile {
            path: path.into(),
            content: content.into(),
            mode: 0o644,
            conffile: true,
        });
        self
    }

    pub fn symlink(mut self, path: impl Into<PathBuf>, target: impl Into<PathBuf>) -> Self {
        self.symlinks.push((path.into(), target.into()));
        self
    }

    pub fn postinst(mut self, script: &str) -> Self {
        self.postinst = Some(script.to_owned());
        self
    }

    pub fn preinst(mut self, script: &str) -> Self {
        self.preinst = Some(script.to_owned());
        self
    }

    /// Declares `Replaces: <package>`: this package may take over that package's files.
    pub fn replaces(mut self, package: &str) -> Self {
        self.replaces.push(package.to_owned());
        self
    }

    /// Builds `<dir>/<name>_<version>_all.deb` and returns its path.
    pub fn build(&self, dir: &Path) -> PathBuf {
        let root = dir.join(format!("{}-{}-root", self.name, self.version));
        let _ = fs::remove_dir_all(&root);
        let debian = root.join("DEBIAN");
        fs::create_dir_all(&debian).expect("create DEBIAN");
        for file in &self.files {
            let target = root.join(file.path.strip_prefix("/").expect("absolute package path"));
            fs::create_dir_all(target.parent().expect("parent")).expect("create package dir");
            fs::write(&target, &file.content).expect("write package file");
            fs::set_permissions(&target, fs::Permissions::from_mode(file.mode)).expect("chmod");
        }
        for (link, link_target) in &self.symlinks {
            let at = root.join(link.strip_prefix("/").expect("absolute link path"));
            fs::create_dir_all(at.parent().expect("parent")).expect("create link dir");
            symlink(link_target, &at).expect("symlink");
        }
        fs::write(debian.join("control"), self.control()).expect("write control");
        let conffiles: String = self
            .files
            .iter()
            .filter(|file| file.conffile)
            .map(|file| format!("{}\n", file.path.display()))
            .collect();
        if !conffiles.is_empty() {
            fs::write(debian.join("conffiles"), conffiles).expect("write conffiles");
        }
        for (name, script) in [("postinst", &self.postinst), ("preinst", &self.preinst)] {
            if let Some(script) = script {
                let path = debian.join(name);
                fs::write(&path, script).expect("write maintainer script");
                fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
                    .expect("chmod script");
            }
        }
        let deb = dir.join(format!("{}_{}_all.deb", self.name, self.version));
        run(Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zgzip", "--build"])
            .arg(&root)
            .arg(&deb));
        deb
    }

    fn control(&self) -> String {
        let replaces = if self.replaces.is_empty() {
            String::new()
        } else {
            format!("Replaces: {}\n", self.replaces.join(", "))
        };
        format!(
            "Package: {}\nVersion: {}\nArchitecture: all\nMaintainer: verifier tests <root@localhost>\n\
             {replaces}Description: throwaway package built by the verifier tests\n",
            self.name, self.version
        )
    }
}

/// `dpkg -i` (extra arguments first, e.g. `--force-overwrite`).
pub fn install(deb: &Path, extra: &[&str]) {
    run(Command::new("dpkg").args(extra).arg("-i").arg(deb));
}

/// `dpkg --purge`, ignoring "not installed".
pub fn purge(name: &str) {
    let _ = Command::new("dpkg").args(["--purge", name]).output();
}

/// Purges the package when dropped, so a failing test leaves nothing installed.
pub struct Installed(pub String);

impl Drop for Installed {
    fn drop(&mut self) {
        purge(&self.0);
    }
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}
