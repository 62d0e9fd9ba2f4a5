#!/usr/bin/env bash
# Builds NativeLink 1.6.6 (a REAPI engine: CAS, AC, scheduler and a local
# worker in one process) from the source archive carried in
# scripts/peers/nativelink/ — NativeLink is on no registry. The archive is
# upstream's v1.6.6 source with one change (local-change.diff) so that it
# builds from crates.io alone.
#
# Layout: ${RECAST_PEERS_DIR:-$HOME/.cache/recast-peers}/nativelink/{bin/nativelink,src/,examples/}
# Idempotent: the stamp holding the archive's digest is written last, so a
# build that was cut off is done again. The first build takes 20-40 minutes
# on 2 cores (no LTO); later runs take a stat.
# Called by scripts/peers/install.sh.
set -euo pipefail

PEERS="${RECAST_PEERS_DIR:-$HOME/.cache/recast-peers}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ARCHIVE="$HERE/nativelink/nativelink-1.6.6-src.tar.gz"
OUT="$PEERS/nativelink"
SUM="$(sha256sum "$ARCHIVE" | cut -d' ' -f1)"
STAMP="$OUT/.built-$SUM"

log() { echo "peers: $*" >&2; }

if [ -f "$STAMP" ] && [ -x "$OUT/bin/nativelink" ]; then
    log "nativelink 1.6.6 already built in $OUT"
    exit 0
fi
log "building nativelink 1.6.6 into $OUT (20-40 minutes the first time)"
mkdir -p "$OUT"
rm -rf "$OUT/src"
mkdir -p "$OUT/src"
tar -xzf "$ARCHIVE" -C "$OUT/src"
src="$OUT/src/nativelink-1.6.6"
# The build's target directory stays between attempts, so a cut-off build
# resumes where it stopped.
(cd "$src" && CARGO_TARGET_DIR="$OUT/target" CARGO_PROFILE_RELEASE_LTO=false \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_DEBUG=0 \
    cargo build --release --locked --quiet --bin nativelink)
mkdir -p "$OUT/bin" "$OUT/examples"
install -m 0755 "$OUT/target/release/nativelink" "$OUT/bin/nativelink.tmp"
mv "$OUT/bin/nativelink.tmp" "$OUT/bin/nativelink"
cp "$src/nativelink-config/examples/local_rbe_self_test.json5" "$OUT/examples/"
"$OUT/bin/nativelink" --help >/dev/null 2>&1 || { log "$OUT/bin/nativelink does not run"; exit 1; }
# The sources and intermediate objects are not needed once the binary is
# there (about 3 GB); the example config was kept.
rm -rf "$OUT/src" "$OUT/target"
touch "$STAMP"
log "ok: $OUT/bin/nativelink"
