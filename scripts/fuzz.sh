#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a fixed budget each, starting
# from the corpus kept in the repository (fuzz/corpus/<target>); a crash
# (a panic, an abort, a timeout of one input) fails the script, and
# libFuzzer leaves the input under fuzz/artifacts/<target>/.
#
# Usage: bash scripts/fuzz.sh [SECONDS per target, default 20]
#
# Runs on the stable toolchain (RUSTC_BOOTSTRAP lets cargo-fuzz pass its
# -Z flags) and without a sanitizer: recast's parsers are safe Rust, so
# the crashes to find are panics, which libFuzzer catches as aborts; the
# coverage instrumentation that guides it is there all the same. Longer
# runs with AddressSanitizer on nightly: fuzz/README.md. New inputs go to
# a scratch corpus, so the repository's stays as committed.
set -euo pipefail
cd "$(dirname "$0")/.."

budget="${1:-20}"
peers="${RECAST_PEERS_DIR:-$HOME/.cache/recast-peers}"
target_dir="$peers/fuzz-target"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --version 0.13.2
fi

flags=(--sanitizer none --dev --target-dir "$target_dir")
export RUSTC_BOOTSTRAP=1
cargo fuzz build "${flags[@]}"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in $(cargo fuzz list); do
    mkdir -p "$scratch/$target"
    echo "fuzz: $target for ${budget} s" >&2
    # -timeout: one input taking over 10 s is a hang, and a failure.
    cargo fuzz run "${flags[@]}" "$target" "$scratch/$target" "fuzz/corpus/$target" -- \
        -max_total_time="$budget" -timeout=10 -print_final_stats=1 2>"$scratch/$target.log" || {
        tail -n 60 "$scratch/$target.log" >&2
        echo "fuzz: $target FAILED (the input is under fuzz/artifacts/$target/)" >&2
        exit 1
    }
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$scratch/$target.log" |
        tr '\n' ' ' | sed "s/^/fuzz: $target: /" >&2
    echo >&2
done
