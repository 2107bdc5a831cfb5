//! Returning the allocator's free memory to the system after the daemon's large transient
//! allocations (the package index's rebuild, parsing the kernel's BTF at start-up). glibc gives
//! back only the top of its heaps by itself; what is freed below live data stays in the
//! process's RSS until `malloc_trim` releases its pages.

/// Returns the free pages of every malloc arena to the system (a few milliseconds; a no-op
/// outside glibc).
pub fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory of the allocator; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Resident set size of this process in bytes, from `/proc/self/statm` (`None` if unreadable).
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

#[cfg(all(test, target_env = "gnu"))]
mod tests {
    use super::*;

    /// 64 MiB in 16 KiB blocks, each followed by a small live one, then the large ones freed: no
    /// free block borders a heap's top, so only `release_free_memory` returns their pages.
    /// Whether the resident set then fell by at least half of that.
    fn fragmented_memory_is_returned() -> bool {
        let (large, small): (Vec<Vec<u8>>, Vec<Vec<u8>>) = (0..4_096)
            .map(|_| (vec![1u8; 16 * 1024], vec![2u8; 64]))
            .unzip();
        drop(large);
        let before = resident_bytes().expect("statm");
        release_free_memory();
        let after = resident_bytes().expect("statm");
        assert!(small.iter().all(|block| block[0] == 2));
        after + 32 * 1024 * 1024 < before
    }

    #[test]
    fn freed_memory_below_live_data_leaves_the_resident_set() {
        // The resident set is the whole test process's: tries three times, so that another
        // test allocating at the same moment cannot fail this one.
        assert!(
            (0..3).any(|_| fragmented_memory_is_returned()),
            "freed pages stayed resident"
        );
    }
}
