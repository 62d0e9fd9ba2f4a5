#!/usr/bin/env bash
# Benchmark: `recast worker` serving BuildGrid 0.9.1 (latency of a trivial
# action, throughput of 200 small actions with 2 workers). Prints figures;
# not a test.
#
#   bash bench/worker.sh                   # defaults
#   bash bench/worker.sh --runs 10 --actions 50
#
# Needs the peers (bash scripts/peers/install.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
recast="$(bash scripts/release.sh)"
exec python3 bench/worker.py --recast "$recast" "$@"
