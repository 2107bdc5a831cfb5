//! Rebuild the eBPF object when bpf-linker changes (it is not a cargo dependency).
use which::which;

fn main() {
    let bpf_linker = which("bpf-linker").expect("bpf-linker not found: run scripts/setup.sh");
    println!("cargo:rerun-if-changed={}", bpf_linker.to_string_lossy());
}
