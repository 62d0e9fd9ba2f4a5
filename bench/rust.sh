#!/usr/bin/env bash
# rustc wrapper benchmark: the test workspace with plain cargo, sccache 0.19
# and recast against `recast serve`, side by side. Prints medians and
# ratios; not a test.
#
#   bash bench/rust.sh              # 3 runs
#   bash bench/rust.sh --runs 5
#
# Needs the vendored crates (bash scripts/peers/install.sh); sccache 0.19 is
# installed (once) by bench/sccache.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
recast="$(bash scripts/release.sh)"
bash bench/sccache.sh
exec python3 bench/rust.py --recast "$recast" "$@"
