#!/usr/bin/env bash
# Installs the benchmarks' fair peer, sccache 0.19 with its dist client and
# server, under ${RECAST_PEERS_DIR:-~/.cache/recast-peers}/sccache, unless
# that version is there already (~10 min on 2 cores, once). Debian's
# sccache 0.4 is too old to compare with.
set -euo pipefail
version=0.19.0
root="${RECAST_PEERS_DIR:-$HOME/.cache/recast-peers}/sccache"
bin="$root/bin/sccache"
if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q " $version"; then
    exit 0
fi
echo "bench: installing sccache $version into $root (once)" >&2
cargo install sccache --version "$version" --locked \
    --features "dist-client dist-server" --root "$root" --quiet
