//! Smoke test for every kernel of the VM matrix (`cargo xtask vm`) and for the host: the kernel
//! publishes its BTF (the recorder computes struct offsets from it) and lets us create the BPF
//! maps the recorder uses (hash map, ring buffer). Kernels before 5.11 charge BPF memory to
//! RLIMIT_MEMLOCK (64 KiB by default before 5.16), so the map tests first raise it as the daemon
//! must; where raising is refused (no CAP_SYS_RESOURCE), newer kernels charge the memory cgroup.
use std::{fs, io};

/// `bpf_attr` for `BPF_MAP_CREATE`: the leading fields, zero-padded to the kernel's 128 bytes.
#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    rest: [u32; 27],
}

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_TYPE_HASH: u32 = 1;
const BPF_MAP_TYPE_RINGBUF: u32 = 27;

/// Creates a map and returns its file descriptor (closed by the caller).
fn create_map(map_type: u32, key_size: u32, value_size: u32, max_entries: u32) -> io::Result<i32> {
    let attr = MapCreateAttr {
        map_type,
        key_size,
        value_size,
        max_entries,
        ..Default::default()
    };
    // SAFETY: attr is a valid, fully initialised bpf_attr prefix of the size we pass.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_CREATE,
            &attr as *const MapCreateAttr,
            std::mem::size_of::<MapCreateAttr>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd as i32)
}

/// Raises RLIMIT_MEMLOCK to unlimited, as the daemon does; a refusal is not an error.
fn raise_memlock_limit() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads a valid rlimit struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) } != 0 {
        eprintln!(
            "cannot raise RLIMIT_MEMLOCK: {}",
            io::Error::last_os_error()
        );
    }
}

fn close(fd: i32) {
    // SAFETY: fd was returned by the kernel to us and is closed once.
    unsafe { libc::close(fd) };
}

#[test]
fn kernel_publishes_its_btf() {
    let btf = fs::read("/sys/kernel/btf/vmlinux").expect("read /sys/kernel/btf/vmlinux");
    // struct btf_header starts with magic 0xeB9F (little endian on x86_64).
    assert!(btf.len() > 1024, "BTF is {} bytes", btf.len());
    assert_eq!(&btf[..2], &[0x9f, 0xeb], "BTF magic");
}

#[test]
fn hash_map_can_be_created() {
    tests::require_root();
    raise_memlock_limit();
    let fd = create_map(BPF_MAP_TYPE_HASH, 4, 8, 64).expect("BPF_MAP_CREATE hash map");
    close(fd);
}

#[test]
fn ring_buffer_can_be_created() {
    tests::require_root();
    raise_memlock_limit();
    // Ring buffer size: a power-of-two multiple of the page size.
    let fd = create_map(BPF_MAP_TYPE_RINGBUF, 0, 0, 1 << 16).expect("BPF_MAP_CREATE ring buffer");
    close(fd);
}
