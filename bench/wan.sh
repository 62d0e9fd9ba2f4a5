#!/usr/bin/env bash
# recast against a server across an emulated link (bench/link.py: lan,
# office, home): per-file hits (local tier, server direct, server through
# the warm front), warm and cold `make -j2` of zstd's library, bytes up and
# down. Prints medians and ratios; not a test.
#
#   bash bench/wan.sh                          # all profiles, 3 runs
#   bash bench/wan.sh --profiles office --runs 5
set -euo pipefail
cd "$(dirname "$0")/.."
recast="$(bash scripts/release.sh)"
exec python3 bench/wan.py --recast "$recast" "$@"
