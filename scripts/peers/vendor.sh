#!/usr/bin/env bash
# Vendors the crates.io dependencies of tests/fixtures/cargo-ws (serde,
# serde_derive, serde_json, itoa, memchr and theirs) with `cargo vendor`,
# so the rustc wrapper's tests build that workspace offline.
#
# Layout: ${RECAST_PEERS_DIR:-$HOME/.cache/recast-peers}/vendor/cargo-ws
# Idempotent: a stamp holding the lockfile's digest is written last.
# Called by scripts/peers/install.sh.
set -euo pipefail

PEERS="${RECAST_PEERS_DIR:-$HOME/.cache/recast-peers}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WS="$HERE/tests/fixtures/cargo-ws"
OUT="$PEERS/vendor/cargo-ws"
SUM="$(sha256sum "$WS/Cargo.lock" | cut -d' ' -f1)"
STAMP="$OUT/.vendored-$SUM"

log() { echo "peers: $*" >&2; }

if [ -f "$STAMP" ]; then
    log "cargo-ws dependencies already vendored in $OUT"
    exit 0
fi
rm -rf "$OUT"
mkdir -p "$(dirname "$OUT")"
log "vendoring tests/fixtures/cargo-ws dependencies into $OUT"
cargo vendor --locked --quiet --manifest-path "$WS/Cargo.toml" "$OUT" >/dev/null
touch "$STAMP"
log "ok: $(ls "$OUT" | wc -l) crates in $OUT"
