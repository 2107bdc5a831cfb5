//! The guest's root filesystem: an initramfs of busybox-static, the binaries under test and the
//! shared libraries `ldd` lists for them, a `/dev/console` node and the `/init` script.
use std::{
    collections::BTreeMap,
    fs,
    io::BufWriter,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use super::cpio::{Archive, Entry};

/// The directories every guest has, whatever goes into it.
const BASE_DIRECTORIES: &[&str] = &[
    "bin", "dev", "etc", "proc", "root", "run", "sbin", "sys", "tmp", "usr", "usr/bin", "usr/sbin",
];

/// Where busybox-static installs its binary.
const BUSYBOX: &str = "/bin/busybox";

enum Node {
    Directory,
    File { mode: u32, data: Vec<u8> },
    Symlink { target: String },
    Console,
}

/// An initramfs being assembled; paths are guest paths without the leading `/`.
pub struct Initramfs {
    nodes: BTreeMap<String, Node>,
}

impl Initramfs {
    /// A root with the base directories, `/dev/console` and busybox at `/bin/busybox`.
    pub fn new() -> anyhow::Result<Self> {
        let mut initramfs = Self {
            nodes: BTreeMap::new(),
        };
        for directory in BASE_DIRECTORIES {
            initramfs.add_directory(directory);
        }
        initramfs
            .nodes
            .insert("dev/console".to_owned(), Node::Console);
        if !Path::new(BUSYBOX).exists() {
            bail!("{BUSYBOX} is missing: run scripts/setup-vm.sh (installs busybox-static)");
        }
        initramfs.add_host_file(BUSYBOX, Path::new(BUSYBOX), 0o755)?;
        initramfs.add_symlink("bin/sh", "busybox");
        Ok(initramfs)
    }

    /// Adds `data` at `guest_path` with permission bits `mode`.
    pub fn add_bytes(&mut self, guest_path: &str, data: Vec<u8>, mode: u32) {
        let path = relative(guest_path);
        self.add_parents(&path);
        self.nodes.insert(path, Node::File { mode, data });
    }

    /// Copies the host file `host` (following symlinks) to `guest_path`.
    pub fn add_host_file(
        &mut self,
        guest_path: &str,
        host: &Path,
        mode: u32,
    ) -> anyhow::Result<()> {
        let data = fs::read(host).with_context(|| format!("reading {}", host.display()))?;
        self.add_bytes(guest_path, data, mode);
        Ok(())
    }

    /// Copies an executable and every shared library and loader `ldd` lists for it, each at the
    /// path the dynamic loader looks for it.
    pub fn add_executable(&mut self, guest_path: &str, host: &Path) -> anyhow::Result<()> {
        self.add_host_file(guest_path, host, 0o755)?;
        for library in shared_libraries(host)? {
            let guest = library.to_string_lossy().into_owned();
            if !self.nodes.contains_key(&relative(&guest)) {
                self.add_host_file(&guest, &library, 0o755)?;
            }
        }
        Ok(())
    }

    pub fn add_symlink(&mut self, guest_path: &str, target: &str) {
        let path = relative(guest_path);
        self.add_parents(&path);
        self.nodes.insert(
            path,
            Node::Symlink {
                target: target.to_owned(),
            },
        );
    }

    pub fn add_directory(&mut self, guest_path: &str) {
        let path = relative(guest_path);
        self.add_parents(&path);
        self.nodes.entry(path).or_insert(Node::Directory);
    }

    fn add_parents(&mut self, path: &str) {
        let mut parent = Path::new(path).parent();
        while let Some(directory) = parent.filter(|dir| !dir.as_os_str().is_empty()) {
            self.nodes
                .entry(directory.to_string_lossy().into_owned())
                .or_insert(Node::Directory);
            parent = directory.parent();
        }
    }

    /// Writes the archive (uncompressed `newc` cpio) to `path`; returns its size in bytes.
    pub fn write(&self, path: &Path) -> anyhow::Result<u64> {
        let file =
            fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut archive = Archive::new(BufWriter::new(file));
        // BTreeMap order puts every directory before its contents ("a" < "a-b" < "a/b").
        for (path, node) in &self.nodes {
            let entry = match node {
                // /tmp is world-writable and sticky, as on any system.
                Node::Directory if path == "tmp" => Entry::Directory { mode: 0o1777 },
                Node::Directory => Entry::Directory { mode: 0o755 },
                Node::File { mode, data } => Entry::File { mode: *mode, data },
                Node::Symlink { target } => Entry::Symlink { target },
                Node::Console => Entry::CharDevice {
                    mode: 0o600,
                    major: 5,
                    minor: 1,
                },
            };
            archive
                .add(path, &entry)
                .with_context(|| format!("writing {path} to the initramfs"))?;
        }
        archive.finish().context("finishing the initramfs")?;
        Ok(fs::metadata(path)?.len())
    }
}

fn relative(guest_path: &str) -> String {
    guest_path.trim_start_matches('/').to_owned()
}

/// The absolute paths of the libraries and loader that `ldd` lists; none for a static binary.
fn shared_libraries(executable: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let output = Command::new("ldd")
        .arg(executable)
        .output()
        .context("cannot start ldd")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        // "not a dynamic executable": nothing to copy.
        return Ok(Vec::new());
    }
    Ok(parse_ldd(&text))
}

fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let candidate = match line.split_once("=>") {
                Some((_, resolved)) => resolved.trim(),
                None => line,
            };
            candidate
                .split_whitespace()
                .next()
                .filter(|path| path.starts_with('/'))
                .map(PathBuf::from)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_libraries_and_the_loader() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibelf.so.1 => /lib/x86_64-linux-gnu/libelf.so.1 (0x00007fbd)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007fbd)\n";
        assert_eq!(
            parse_ldd(text),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libelf.so.1"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
    }
}
