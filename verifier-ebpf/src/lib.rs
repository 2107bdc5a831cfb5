//! Host-side stub so the userspace build script can depend on this crate; the programs are the binary.
#![no_std]
