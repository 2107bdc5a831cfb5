//! The kernel/user wire format: `#[repr(C)]` records the eBPF programs write to the ring buffer and
//! the keys and values of the maps both sides share. Nothing else lives here.
#![no_std]
