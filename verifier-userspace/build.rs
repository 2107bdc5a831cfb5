//! Builds the `verifier-ebpf` object for the BPF target and leaves it in `OUT_DIR`, where
//! `ebpf::loader` embeds it, so the daemon and its kernel programs never drift apart.
//!
//! The eBPF crate is built with the workspace's pinned stable toolchain; `-Z build-std=core` is
//! enabled for that one child build through `RUSTC_BOOTSTRAP` (no nightly toolchain is needed).
use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let manifest_dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?);
    let workspace = manifest_dir
        .parent()
        .ok_or_else(|| anyhow!("no workspace root above {}", manifest_dir.display()))?;
    let toolchain_file = workspace.join("rust-toolchain.toml");
    println!("cargo::rerun-if-changed={}", toolchain_file.display());
    let channel = pinned_channel(&toolchain_file)?;

    let ebpf_dir = workspace.join("verifier-ebpf");
    let ebpf_dir = ebpf_dir
        .to_str()
        .ok_or_else(|| anyhow!("non-UTF-8 path {}", ebpf_dir.display()))?;
    // SAFETY: build scripts are single-threaded here; the variable is read by aya-build below and
    // inherited by the child cargo it spawns.
    unsafe { std::env::set_var("RUSTC_BOOTSTRAP", "1") };
    let package = Package {
        name: "verifier-ebpf",
        root_dir: ebpf_dir,
        ..Default::default()
    };
    aya_build::build_ebpf([package], Toolchain::Custom(&channel))?;
    write_stub_if_skipped()
}

/// With `AYA_BUILD_SKIP=1` (fuzzing the parsers, which never load programs) aya-build builds
/// nothing; an empty object keeps the crate compiling, and loading it fails with a clear error.
fn write_stub_if_skipped() -> anyhow::Result<()> {
    let skipped =
        std::env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    let object = PathBuf::from(std::env::var("OUT_DIR").context("OUT_DIR")?).join("verifier");
    if skipped && !object.exists() {
        fs::write(&object, []).with_context(|| format!("writing {}", object.display()))?;
    }
    Ok(())
}

/// The `channel = "..."` of rust-toolchain.toml: the one place the toolchain version is written.
fn pinned_channel(path: &Path) -> anyhow::Result<String> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("channel"))
        .filter_map(|rest| rest.trim_start().strip_prefix('='))
        .map(|value| value.trim().trim_matches('"').to_owned())
        .next()
        .ok_or_else(|| anyhow!("no channel in {}", path.display()))
}
