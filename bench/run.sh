#!/usr/bin/env bash
# Benchmark: `recast serve` and buildbox-casd side by side, driven by the
# release `recast` client. Prints a table of medians; not a test.
#
#   bash bench/run.sh                # all measurements
#   bash bench/run.sh --runs 10      # fewer round trips
#   bash bench/run.sh --tree-mb 100  # a smaller upload tree
#
# Needs the peers (bash scripts/peers/install.sh); without buildbox-casd it
# measures recast serve alone.
set -euo pipefail
cd "$(dirname "$0")/.."
recast="$(bash scripts/release.sh)"
exec python3 bench/bench.py --recast "$recast" "$@"
