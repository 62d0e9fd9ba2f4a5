#!/usr/bin/env bash
# Installs zig 0.17.0 (`zig cc`, the wrapper's zig family) from PyPI's
# ziglang wheel, which ships the statically linked zig binary with its
# lib/ tree (clang's headers, the C libraries of many targets).
#
# Layout: ${RECAST_PEERS_DIR:-$HOME/.cache/recast-peers}/ziglang-0.17.0/ziglang/{zig,lib/}
# and the link .../zig → that binary (tests find it as the peer `zig`).
# Idempotent: the stamp is written last. Called by scripts/peers/install.sh.
set -euo pipefail

PEERS="${RECAST_PEERS_DIR:-$HOME/.cache/recast-peers}"
VERSION=0.17.0
OUT="$PEERS/ziglang-$VERSION"
STAMP="$OUT/.installed"

log() { echo "peers: $*" >&2; }

if [ -f "$STAMP" ] && [ -x "$OUT/ziglang/zig" ]; then
    log "zig $VERSION already in $OUT"
else
    log "fetching ziglang==$VERSION from PyPI"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    python3 -m pip download --quiet --disable-pip-version-check --no-deps \
        "ziglang==$VERSION" -d "$tmp"
    rm -rf "$OUT"
    mkdir -p "$OUT"
    unzip -q "$tmp"/ziglang-"$VERSION"-*.whl 'ziglang/*' -d "$OUT"
    chmod +x "$OUT/ziglang/zig"
    touch "$STAMP"
    rm -rf "$tmp"
    trap - EXIT
fi
ln -sfn "ziglang-$VERSION/ziglang/zig" "$PEERS/zig"
"$PEERS/zig" version >/dev/null || { log "$PEERS/zig does not run"; exit 1; }
log "ok: $PEERS/zig ($("$PEERS/zig" version))"
