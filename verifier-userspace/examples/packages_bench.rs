//! Measures the package index in-process and prints one JSON object: load time and memory
//! (RSS with and without the refresh caches), a no-op refresh, single-path lookup and
//! verification latency, and md5/sha256 throughput.
//! Run by `cargo xtask bench` (xtask/src/bench/packages.rs) as a release build.
use std::{
    hint::black_box,
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::Context as _;
use verifier::{
    config::PackagesConfig,
    heap,
    packages::{DigestAlgo, PackageIndex, verify::Hasher},
};

fn rss_kib() -> u64 {
    heap::resident_bytes().unwrap_or(0) / 1024
}

/// CPU time this thread has used, so throughput does not depend on other load on the machine.
fn thread_cpu_seconds() -> f64 {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `time` is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut time) };
    time.tv_sec as f64 + time.tv_nsec as f64 / 1e9
}

/// Bytes per CPU-second of `algo` over an in-memory buffer (no I/O), on one core.
fn hash_throughput(algo: DigestAlgo) -> f64 {
    let buffer = vec![0x5au8; 64 * 1024 * 1024];
    let started = thread_cpu_seconds();
    let mut rounds = 0u64;
    while thread_cpu_seconds() - started < 1.0 || rounds < 2 {
        let Ok(mut hasher) = Hasher::new(algo) else {
            return 0.0;
        };
        if hasher.update(&buffer).is_err() {
            return 0.0;
        }
        black_box(hasher.finish().ok());
        rounds += 1;
    }
    (rounds as f64 * buffer.len() as f64) / (thread_cpu_seconds() - started)
}

fn main() -> anyhow::Result<()> {
    let lookup_path = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "/usr/bin/bash".to_owned()),
    );
    // With VERIFIER_BENCH_RPM_DBPATH, only that rpm database is loaded (rpm parsing speed).
    let config = match std::env::var_os("VERIFIER_BENCH_RPM_DBPATH") {
        Some(dbpath) => PackagesConfig {
            dpkg_admindir: None,
            rpm_dbpath: Some(PathBuf::from(dbpath)),
            rpm_enabled: true,
        },
        None => PackagesConfig::default(),
    };
    let rss_before = rss_kib();
    let started = Instant::now();
    let (mut index, errors) = PackageIndex::load(&config).context("loading the package index")?;
    let load = started.elapsed();
    let rss_after = rss_kib();

    let started = Instant::now();
    index.refresh().context("refresh")?;
    let refresh = started.elapsed();

    // What a one-shot reader (verifier audit) keeps: the index without the refresh caches.
    index.release_parse_caches();
    let rss_released = rss_kib();

    // Every 97th file with a digest: the paths syscheck alerts on, not directories that
    // hundreds of packages list.
    let paths: Vec<PathBuf> = index
        .entries()
        .iter()
        .filter(|entry| entry.digest.is_some())
        .step_by(97)
        .map(|entry| entry.path.clone())
        .collect();
    let rounds = 20;
    let started = Instant::now();
    let cpu_started = thread_cpu_seconds();
    let mut found = 0usize;
    for _ in 0..rounds {
        for path in &paths {
            found += index.owners(black_box(path)).len();
        }
    }
    let lookup_ns = started.elapsed().as_nanos() as f64 / (rounds * paths.len()) as f64;
    let lookup_cpu_ns = (thread_cpu_seconds() - cpu_started) * 1e9 / (rounds * paths.len()) as f64;

    let started = Instant::now();
    let cpu_started = thread_cpu_seconds();
    let verify_rounds = 200;
    let mut clean = 0;
    for _ in 0..verify_rounds {
        clean += usize::from(
            index
                .verify_path(Path::new(black_box(&lookup_path)))
                .all_clean(),
        );
    }
    let verify_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(verify_rounds);
    let verify_cpu_us = (thread_cpu_seconds() - cpu_started) * 1e6 / f64::from(verify_rounds);

    let report = serde_json::json!({
        "files": index.stats().files,
        "paths": index.stats().paths,
        "packages": index.stats().packages,
        "db_errors": errors.len(),
        "load_ms": load.as_secs_f64() * 1e3,
        "noop_refresh_ms": refresh.as_secs_f64() * 1e3,
        "index_estimated_mib": index.stats().approx_memory_bytes as f64 / (1024.0 * 1024.0),
        "rss_growth_mib": (rss_after.saturating_sub(rss_before)) as f64 / 1024.0,
        "rss_growth_without_caches_mib": (rss_released.saturating_sub(rss_before)) as f64 / 1024.0,
        "lookup_ns": lookup_ns,
        "lookup_cpu_ns": lookup_cpu_ns,
        "lookups_found": found,
        "verify_path": lookup_path,
        "verify_path_us": verify_us,
        "verify_path_cpu_us": verify_cpu_us,
        "verify_path_clean": clean == verify_rounds as usize,
        "md5_mib_s": hash_throughput(DigestAlgo::Md5) / (1024.0 * 1024.0),
        "sha256_mib_s": hash_throughput(DigestAlgo::Sha256) / (1024.0 * 1024.0),
    });
    println!("{report}");
    Ok(())
}
