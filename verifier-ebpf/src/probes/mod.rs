//! Probe families, one file each, so another backend (LSM, fentry) can produce the same records.
pub mod file;
pub mod io_uring;
pub mod iter;
pub mod lsm;
pub mod process;
