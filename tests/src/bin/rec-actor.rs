//! A process for the recorder tests to watch: performs one scenario of file operations with plain
//! syscalls, so the test knows exactly which operations, paths and pid to expect.
//!
//! Usage: `rec-actor <scenario> <dir> [arg]`; prints `done` when finished.

use std::{
    ffi::CString,
    io::{BufRead, Write},
    os::unix::ffi::OsStrExt,
    path::Path,
};

fn c(path: &[u8]) -> CString {
    CString::new(path).expect("no NUL in test paths")
}

fn check(ret: libc::c_int, what: &str) -> libc::c_int {
    if ret < 0 {
        panic!("{what}: {}", std::io::Error::last_os_error());
    }
    ret
}

fn create(dirfd: libc::c_int, name: &[u8]) {
    let name = c(name);
    // SAFETY: valid NUL-terminated path.
    let fd = check(
        unsafe {
            libc::openat(
                dirfd,
                name.as_ptr(),
                libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC,
                0o644,
            )
        },
        "openat",
    );
    // SAFETY: fd is ours.
    unsafe {
        libc::write(fd, b"x\n".as_ptr().cast(), 2);
        libc::close(fd);
    }
}

/// write, rename, chmod, chown, truncate, link, symlink, unlink — absolute paths, one process.
fn file_ops(dir: &Path) {
    let p = |name: &str| c(dir.join(name).as_os_str().as_bytes());
    let (a, b, l, s) = (p("a.txt"), p("b.txt"), p("c.txt"), p("d.lnk"));
    // SAFETY: valid paths; every call is checked.
    unsafe {
        let fd = check(
            libc::open(a.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o644),
            "open",
        );
        libc::write(fd, b"hello\n".as_ptr().cast(), 6);
        check(libc::ftruncate(fd, 3), "ftruncate");
        check(libc::fchmod(fd, 0o640), "fchmod");
        libc::close(fd);
        check(libc::rename(a.as_ptr(), b.as_ptr()), "rename");
        check(libc::chmod(b.as_ptr(), 0o600), "chmod");
        check(libc::chown(b.as_ptr(), 0, 0), "chown");
        check(libc::truncate(b.as_ptr(), 1), "truncate");
        check(libc::link(b.as_ptr(), l.as_ptr()), "link");
        check(libc::symlink(c(b"b.txt").as_ptr(), s.as_ptr()), "symlink");
        check(libc::unlink(l.as_ptr()), "unlink");
        // A failed operation creates no evidence.
        let missing = p("missing.txt");
        assert!(libc::unlink(missing.as_ptr()) < 0);
        // A read-only open is not a write.
        let fd = check(libc::open(b.as_ptr(), libc::O_RDONLY), "open ro");
        libc::close(fd);
    }
}

/// Relative, dirfd-relative, mixed (relative and absolute in one rename) and odd names, and a
/// path longer than the kernel buffer.
fn relative(dir: &Path) {
    let d = c(dir.as_os_str().as_bytes());
    // SAFETY: valid paths; every call is checked.
    unsafe {
        check(libc::chdir(d.as_ptr()), "chdir");
        create(libc::AT_FDCWD, b"rel.txt");
        check(libc::mkdir(c(b"sub").as_ptr(), 0o755), "mkdir");
        let sub = check(
            libc::open(c(b"sub").as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY),
            "open dir",
        );
        create(sub, b"at.txt");
        check(
            libc::renameat(sub, c(b"at.txt").as_ptr(), sub, c(b"at2.txt").as_ptr()),
            "renameat",
        );
        // A relative and an absolute path in one record, either way round.
        let mixed = c(dir.join("mixed.txt").as_os_str().as_bytes());
        check(
            libc::rename(c(b"sub/at2.txt").as_ptr(), mixed.as_ptr()),
            "rename to an absolute path",
        );
        check(
            libc::rename(mixed.as_ptr(), c(b"sub/back.txt").as_ptr()),
            "rename to a relative path",
        );
        create(libc::AT_FDCWD, b"with space.txt");
        create(libc::AT_FDCWD, b"new\nline.txt");
        create(libc::AT_FDCWD, b"bad\xff.txt");
        check(libc::chmod(c(b"bad\xff.txt").as_ptr(), 0o600), "chmod");
        // Nested directories until the absolute path exceeds 4096 bytes.
        let component = vec![b'n'; 200];
        for _ in 0..22 {
            check(libc::mkdir(c(&component).as_ptr(), 0o755), "mkdir long");
            check(libc::chdir(c(&component).as_ptr()), "chdir long");
        }
        check(libc::chmod(c(b".").as_ptr(), 0o755), "chmod deep dir");
        create(libc::AT_FDCWD, b"deep.txt");
        check(libc::chdir(d.as_ptr()), "chdir back");
    }
}

/// One ia32 syscall through `int 0x80` (what 32-bit programs do), from this 64-bit process.
#[cfg(target_arch = "x86_64")]
fn int80(nr: u32, a: u32, b: u32, c: u32) -> i32 {
    let ret: u32;
    // SAFETY: an ia32 syscall; rbx (reserved by LLVM) is swapped in and restored.
    unsafe {
        std::arch::asm!(
            "xchg {a:r}, rbx",
            "int 0x80",
            "xchg {a:r}, rbx",
            a = inout(reg) a as u64 => _,
            inlateout("eax") nr => ret,
            in("ecx") b,
            in("edx") c,
        );
    }
    ret as i32
}

/// ia32 open(O_CREAT|O_WRONLY), chmod and rename of files in `dir`; path strings live below 4 GiB
/// so the 32-bit ABI can pass them.
#[cfg(target_arch = "x86_64")]
fn compat(dir: &Path) {
    // SAFETY: anonymous mapping below 4 GiB, checked.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            8192,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
            -1,
            0,
        )
    };
    assert!(page != libc::MAP_FAILED, "mmap MAP_32BIT");
    let put = |at: usize, name: &str| -> u32 {
        let path = dir.join(name);
        let bytes = path.as_os_str().as_bytes();
        // SAFETY: inside the 8 KiB mapping (test paths are short), NUL-terminated.
        unsafe {
            let dst = page.cast::<u8>().add(at);
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len());
            *dst.add(bytes.len()) = 0;
            dst as usize as u32
        }
    };
    let (a, b) = (put(0, "compat.txt"), put(4096, "compat2.txt"));
    let fd = int80(5, a, (libc::O_CREAT | libc::O_WRONLY) as u32, 0o644);
    assert!(fd >= 0, "ia32 open: {fd}");
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    assert_eq!(int80(15, a, 0o600, 0), 0, "ia32 chmod");
    assert_eq!(int80(38, a, b, 0), 0, "ia32 rename");
}

/// Creates an io_uring (io_uring_setup(2)) and closes it.
fn io_uring() {
    let mut params = [0u8; 120];
    // SAFETY: params is a zeroed struct io_uring_params of the right size.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4, params.as_mut_ptr()) };
    if fd < 0 {
        panic!("io_uring_setup: {}", std::io::Error::last_os_error());
    }
    // SAFETY: fd is ours.
    unsafe { libc::close(fd as libc::c_int) };
}

/// Opens (creates) `dir/uring.txt` through an io_uring IORING_OP_OPENAT request.
fn io_uring_open(dir: &Path) {
    io_uring_openat(&dir.join("uring.txt"), libc::O_CREAT | libc::O_WRONLY);
    assert!(
        dir.join("uring.txt").exists(),
        "io_uring openat created the file"
    );
}

/// Opens `path` with `flags` through an io_uring IORING_OP_OPENAT request: the raw ring protocol
/// (setup, two mmaps, one SQE, io_uring_enter), no library.
fn io_uring_openat(path: &Path, flags: libc::c_int) {
    const IORING_OFF_SQES: i64 = 0x1000_0000;
    const IORING_OP_OPENAT: u8 = 18;
    let mut params = [0u32; 30];
    // SAFETY: params is a zeroed struct io_uring_params (120 bytes).
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4, params.as_mut_ptr()) } as i32;
    assert!(
        fd >= 0,
        "io_uring_setup: {}",
        std::io::Error::last_os_error()
    );
    let sq_entries = params[0] as usize;
    // struct io_sqring_offsets starts at byte 40: head, tail, ring_mask, ring_entries, flags,
    // dropped, array.
    let (tail_off, mask_off, array_off) = (
        params[11] as usize,
        params[12] as usize,
        params[16] as usize,
    );
    let map = |len: usize, offset: i64| {
        // SAFETY: mapping the ring fd as the kernel documents; checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                offset,
            )
        };
        assert!(
            ptr != libc::MAP_FAILED,
            "mmap ring: {}",
            std::io::Error::last_os_error()
        );
        ptr.cast::<u8>()
    };
    let ring = map(array_off + sq_entries * 4, 0);
    let sqes = map(sq_entries * 64, IORING_OFF_SQES);
    let path = c(path.as_os_str().as_bytes());
    // SAFETY: writes inside the mapped SQE array and SQ ring, at the offsets the kernel gave.
    unsafe {
        std::ptr::write_bytes(sqes, 0, 64);
        *sqes = IORING_OP_OPENAT;
        *sqes.add(4).cast::<i32>() = libc::AT_FDCWD;
        *sqes.add(16).cast::<u64>() = path.as_ptr() as u64;
        *sqes.add(24).cast::<u32>() = 0o644;
        *sqes.add(28).cast::<u32>() = flags as u32;
        let mask = *ring.add(mask_off).cast::<u32>();
        let tail = &*ring.add(tail_off).cast::<std::sync::atomic::AtomicU32>();
        let at = tail.load(std::sync::atomic::Ordering::Acquire);
        *ring.add(array_off).cast::<u32>().add((at & mask) as usize) = 0;
        tail.store(at + 1, std::sync::atomic::Ordering::Release);
        let submitted = libc::syscall(libc::SYS_io_uring_enter, fd, 1, 1, 1u32, 0usize, 0usize);
        assert_eq!(
            submitted,
            1,
            "io_uring_enter: {}",
            std::io::Error::last_os_error()
        );
        libc::close(fd);
    }
}

/// Renames its comm to "dpkg", then writes a file.
fn renamed_comm(dir: &Path) {
    // SAFETY: a NUL-terminated name.
    check(
        unsafe { libc::prctl(libc::PR_SET_NAME, c(b"dpkg").as_ptr()) },
        "prctl",
    );
    write_file(dir);
}

fn write_file(dir: &Path) {
    let d = c(dir.as_os_str().as_bytes());
    // SAFETY: valid path.
    let dirfd = check(
        unsafe { libc::open(d.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) },
        "open dir",
    );
    create(dirfd, b"written.txt");
}

/// Opens a file for write, says `ready`, and keeps it open until stdin closes.
fn hold(dir: &Path) {
    let path = c(dir.join("held.txt").as_os_str().as_bytes());
    // SAFETY: valid path.
    let _fd = check(
        unsafe { libc::open(path.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o644) },
        "open",
    );
    println!("ready");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
}

/// Creates and removes `n` files as fast as it can.
fn burst(dir: &Path, n: usize) {
    let d = c(dir.as_os_str().as_bytes());
    // SAFETY: valid path.
    let dirfd = check(
        unsafe { libc::open(d.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) },
        "open dir",
    );
    for i in 0..n {
        let name = format!("burst-{i}");
        create(dirfd, name.as_bytes());
        // SAFETY: valid path.
        unsafe { libc::unlinkat(dirfd, c(name.as_bytes()).as_ptr(), 0) };
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let scenario = args.get(1).map(String::as_str).unwrap_or_default();
    let dir = Path::new(args.get(2).map(String::as_str).unwrap_or("."));
    match scenario {
        "fileops" => file_ops(dir),
        "relative" => relative(dir),
        "iouring" => io_uring(),
        "iouring-open" => io_uring_open(dir),
        // Truncates the file `<dir>` (a file path here) through io_uring: a change the syscall
        // hooks cannot see.
        "iouring-truncate" => io_uring_openat(dir, libc::O_WRONLY | libc::O_TRUNC),
        #[cfg(target_arch = "x86_64")]
        "compat" => compat(dir),
        "comm" => renamed_comm(dir),
        "write" => write_file(dir),
        "hold" => hold(dir),
        "burst" => burst(
            dir,
            args.get(3).and_then(|n| n.parse().ok()).unwrap_or(1000),
        ),
        other => panic!("unknown scenario {other:?}"),
    }
    println!("done");
}
