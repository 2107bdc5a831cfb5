//! verifier: decides whether a file change reported by OSSEC/Wazuh syscheck came from a genuine,
//! completed package transaction and matches the package database; raises an alert otherwise.
//!
//! Modules by concern:
//! - [`config`]: the TOML configuration and its validation.
//! - [`events`]: the decoded, owned form of what the kernel programs report.
//! - [`ebpf`]: loading, attaching and feeding the kernel programs (maps, counters).
//! - [`intake`]: reading the ring buffer and decoding records into [`events::Event`].
//! - [`store`]: the durable provenance store (writers, transactions, gaps, baseline, verdicts).
//! - [`packages`]: dpkg and rpm databases, the in-memory path index, file verification, audit.
//! - [`decision`]: the decision engine that turns evidence into a verdict.
//! - [`protocol`]: the query-socket wire format shared by daemon, CLI and shim.
//! - [`socket`]: the daemon's query socket and its client.
//! - [`ar`]: OSSEC/Wazuh Active Response formats: alerts, argv/stdin, the AR log.
//! - [`alerting`]: alert delivery beyond the AR log (mail).
//! - [`cli`]: the `verifier` subcommands.
//! - [`heap`]: returning freed memory to the system after large transient allocations.
//! - [`daemon`]: wiring everything together for `verifier daemon`.

pub mod alerting;
pub mod ar;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod decision;
pub mod ebpf;
pub mod events;
pub mod heap;
pub mod intake;
pub mod packages;
pub mod protocol;
pub mod socket;
pub mod store;
