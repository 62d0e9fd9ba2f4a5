#!/usr/bin/env bash
# When remote pays: plain local, recast cache-only, recast remote execution
# and sccache-dist side by side over emulated links (bench/link.py: lan,
# office, home), for zstd (make -j2) and the cargo test workspace: cold,
# warm, the very first compile with its toolchain upload, one hit, bytes
# up and down. Prints medians and ratios; not a test.
#
#   bash bench/wan_table.sh                             # all, 3 runs
#   bash bench/wan_table.sh --profiles office --projects zstd --runs 5
set -euo pipefail
cd "$(dirname "$0")/.."
recast="$(bash scripts/release.sh)"
exec python3 bench/wan_table.py --recast "$recast" "$@"
