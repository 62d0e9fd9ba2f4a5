#!/usr/bin/env bash
# C wrapper benchmark: `make -j2` of zstd's library with plain gcc, ccache,
# sccache 0.19 and recast against `recast serve`, side by side. Prints
# medians and ratios; not a test.
#
#   bash bench/cc.sh                 # 3 runs
#   bash bench/cc.sh --runs 5 --hits 50
#
# sccache 0.19 is installed (once) by bench/sccache.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
recast="$(bash scripts/release.sh)"
bash bench/sccache.sh
exec python3 bench/cc.py --recast "$recast" "$@"
