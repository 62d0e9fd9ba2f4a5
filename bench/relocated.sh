#!/usr/bin/env bash
# Relocated actions benchmark: `make -j2` of zstd's library through
# `recast gcc` against `recast serve` (rooted, a chroot), `recast serve
# --sandbox none` (relocated) and NativeLink 1.6.6 (relocated, when built by
# scripts/peers/nativelink.sh; as it ships, and with TCP_NODELAY set by an
# LD_PRELOAD shim), beside plain gcc. Prints medians and ratios; not a test.
#
#   bash bench/relocated.sh            # 3 runs
#   bash bench/relocated.sh --runs 5
#   bash bench/relocated.sh --servers rooted,nativelink,nativelink-nodelay
set -euo pipefail
cd "$(dirname "$0")/.."
recast="$(bash scripts/release.sh)"
exec python3 bench/relocated.py --recast "$recast" "$@"
