//! The daemon's query socket (Unix, JSON lines) and its client.

pub mod client;
pub mod server;
