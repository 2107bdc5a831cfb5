#!/usr/bin/env bash
# Runs one cargo-fuzz target for a number of seconds:  scripts/fuzz.sh TARGET SECONDS
# Targets: `ls fuzz/fuzz_targets`. New corpus entries go to fuzz/corpus/TARGET, seeds are read from
# fuzz/seeds/TARGET, crashes land in fuzz/artifacts/TARGET. Needs `cargo install cargo-fuzz`.
# The pinned stable toolchain runs cargo-fuzz's nightly flags through RUSTC_BOOTSTRAP=1; the eBPF
# object is not needed by parsers, so its build is skipped. FUZZ_SANITIZER=address enables ASan
# (default none: the fuzzed code is safe Rust, and that runs several times faster).
set -euo pipefail

target=${1:?usage: scripts/fuzz.sh TARGET SECONDS}
seconds=${2:?usage: scripts/fuzz.sh TARGET SECONDS}
root=$(cd "$(dirname "$0")/.." && pwd)
corpus="$root/fuzz/corpus/$target"
seeds="$root/fuzz/seeds/$target"
mkdir -p "$corpus"
corpora=("$corpus")
if [[ -d $seeds ]]; then
    corpora+=("$seeds")
fi

cd "$root/fuzz"
export RUSTC_BOOTSTRAP=1 AYA_BUILD_SKIP=1
exec cargo fuzz run --sanitizer "${FUZZ_SANITIZER:-none}" --debug-assertions "$target" "${corpora[@]}" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
