#!/usr/bin/env bash
# Toolchain packaging benchmark: recast next to `sccache --package-toolchain`
# and `tar | zstd`, plus first upload and re-upload to `recast serve`.
# Prints medians and ratios; not a test.
#
#   bash bench/toolchain.sh                       # rustc, gcc, clang; 5 runs
#   bash bench/toolchain.sh --runs 3 --compilers gcc
#
# sccache 0.19 (the fair peer; Debian's 0.4 has no dist client) is used when
# installed under ${RECAST_PEERS_DIR:-~/.cache/recast-peers}/sccache:
#   cargo install sccache --locked --features "dist-client dist-server" \
#       --root ~/.cache/recast-peers/sccache        # ~10 min
set -euo pipefail
cd "$(dirname "$0")/.."
recast="$(bash scripts/release.sh)"
exec python3 bench/toolchain.py --recast "$recast" "$@"
