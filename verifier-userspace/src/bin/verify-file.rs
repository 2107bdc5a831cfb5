//! `verify-file`: the Active Response program OSSEC/Wazuh run for each syscheck alert.
fn main() {}
