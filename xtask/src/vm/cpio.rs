//! A writer for the `newc` cpio format the kernel unpacks as an initramfs. Written here so that
//! device nodes (`/dev/console`) can go into the archive without creating them on the host.
use std::io::{self, Write};

const TRAILER: &str = "TRAILER!!!";

/// Streams cpio entries into `out`; [`Archive::finish`] writes the trailer.
pub struct Archive<W: Write> {
    out: W,
    next_inode: u32,
}

/// What an entry is, with its permission bits.
pub enum Entry<'a> {
    Directory { mode: u32 },
    File { mode: u32, data: &'a [u8] },
    Symlink { target: &'a str },
    CharDevice { mode: u32, major: u32, minor: u32 },
}

impl<W: Write> Archive<W> {
    pub fn new(out: W) -> Self {
        Self { out, next_inode: 1 }
    }

    /// Adds `path` (relative, no leading `/`) to the archive.
    pub fn add(&mut self, path: &str, entry: &Entry<'_>) -> io::Result<()> {
        let (mode, data, rdev): (u32, &[u8], (u32, u32)) = match entry {
            Entry::Directory { mode } => (0o040000 | mode, &[], (0, 0)),
            Entry::File { mode, data } => (0o100000 | mode, data, (0, 0)),
            Entry::Symlink { target } => (0o120777, target.as_bytes(), (0, 0)),
            Entry::CharDevice { mode, major, minor } => (0o020000 | mode, &[], (*major, *minor)),
        };
        let inode = self.next_inode;
        self.next_inode += 1;
        self.write_header(path, inode, mode, data.len(), rdev)?;
        self.out.write_all(data)?;
        self.pad(data.len())
    }

    /// Writes the trailer entry and returns the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.write_header(TRAILER, 0, 0, 0, (0, 0))?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn write_header(
        &mut self,
        path: &str,
        inode: u32,
        mode: u32,
        size: usize,
        (rdev_major, rdev_minor): (u32, u32),
    ) -> io::Result<()> {
        let size = u32::try_from(size)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "entry over 4 GiB"))?;
        let name_size = path.len() + 1;
        let links = if mode & 0o040000 != 0 { 2 } else { 1 };
        let header = format!(
            "070701{inode:08x}{mode:08x}{uid:08x}{gid:08x}{links:08x}{mtime:08x}{size:08x}\
             {dev_major:08x}{dev_minor:08x}{rdev_major:08x}{rdev_minor:08x}{name_size:08x}{check:08x}",
            uid = 0,
            gid = 0,
            mtime = 0,
            dev_major = 0,
            dev_minor = 0,
            check = 0,
        );
        self.out.write_all(header.as_bytes())?;
        self.out.write_all(path.as_bytes())?;
        self.out.write_all(&[0])?;
        // Header (110 bytes) plus name is padded to a multiple of four.
        self.pad(header.len() + name_size)
    }

    fn pad(&mut self, written: usize) -> io::Result<()> {
        let padding = (4 - written % 4) % 4;
        self.out.write_all(&[0u8; 3][..padding])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_four_byte_aligned_and_end_with_the_trailer() {
        let mut archive = Archive::new(Vec::new());
        archive
            .add(
                "init",
                &Entry::File {
                    mode: 0o755,
                    data: b"#!/bin/sh\n",
                },
            )
            .unwrap();
        archive
            .add("dev", &Entry::Directory { mode: 0o755 })
            .unwrap();
        archive
            .add(
                "dev/console",
                &Entry::CharDevice {
                    mode: 0o600,
                    major: 5,
                    minor: 1,
                },
            )
            .unwrap();
        let bytes = archive.finish().unwrap();
        assert_eq!(bytes.len() % 4, 0);
        assert!(bytes.starts_with(b"070701"));
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("TRAILER!!!"));
        assert!(text.contains("dev/console"));
    }
}
