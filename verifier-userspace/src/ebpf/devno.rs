//! Device-number encodings, converted here and nowhere else. The kernel programs see
//! `super_block.s_dev`, the kernel's internal encoding (`major << 20 | minor`); userspace sees
//! `stat.st_dev`, glibc's `makedev` encoding (the kernel's `new_encode_dev` widened to 64 bits).

/// `s_dev` as the kernel programs read it → `st_dev` as `stat(2)` reports it.
pub fn kernel_to_user(kernel_dev: u64) -> u64 {
    let major = (kernel_dev >> 20) & 0xfff;
    let minor = kernel_dev & 0xf_ffff;
    libc::makedev(major as u32, minor as u32)
}

/// `st_dev` as `stat(2)` reports it → `s_dev` as the kernel programs read it.
pub fn user_to_kernel(user_dev: u64) -> u64 {
    let major = libc::major(user_dev) as u64;
    let minor = libc::minor(user_dev) as u64;
    ((major & 0xfff) << 20) | (minor & 0xf_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_large_numbers_round_trip() {
        for (major, minor) in [
            (8u32, 1u32),
            (0, 25),
            (259, 3),
            (254, 0x1234),
            (4095, 0xf_ffff),
        ] {
            let user = libc::makedev(major, minor);
            let kernel = ((major as u64) << 20) | minor as u64;
            assert_eq!(user_to_kernel(user), kernel, "{major}:{minor}");
            assert_eq!(kernel_to_user(kernel), user, "{major}:{minor}");
        }
    }

    /// The encodings differ as soon as the minor is above 255 or the major non-zero.
    #[test]
    fn encodings_are_not_the_same_number() {
        let user = libc::makedev(8, 300);
        assert_ne!(user_to_kernel(user), user);
        assert_eq!(user_to_kernel(user), (8 << 20) | 300);
    }
}
