#!/usr/bin/env bash
# C++ benchmark: protobuf + abseil (CMake, `-MD` depfiles) built through
# recast next to plain g++ and ccache. Prints medians and ratios; not a
# test. One run takes about half an hour on 2 cores.
#
#   bash bench/cxx.sh              # 1 run
#   bash bench/cxx.sh --runs 3
set -euo pipefail
cd "$(dirname "$0")/.."
recast="$(bash scripts/release.sh)"
exec python3 bench/cxx.py --recast "$recast" "$@"
