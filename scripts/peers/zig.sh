#!/usr/bin/env bash
# Installs zig (`zig cc`, the wrapper's zig family) from PyPI's ziglang
# wheels, which ship the statically linked zig binary with its lib/ tree
# (clang's headers, the C libraries of many targets):
#   - 0.17.0 for this machine: the peer `zig` most tests use;
#   - 0.16.0 for this machine and 0.16.0's macOS arm64 build (a Mach-O that
#     cannot run here): the newest version PyPI has for both, for the
#     macOS → Linux tests (a Mac's zig, its Linux twin in the registry).
#
# Layout: ${RECAST_PEERS_DIR:-$HOME/.cache/recast-peers}/ziglang-<version>[-macos-arm64]/ziglang/{zig,lib/}
# and the links .../zig, .../zig-0.16.0 → this machine's binaries (tests find
# them as peers). Idempotent: each stamp is written last. Called by
# scripts/peers/install.sh.
set -euo pipefail

PEERS="${RECAST_PEERS_DIR:-$HOME/.cache/recast-peers}"

log() { echo "peers: $*" >&2; }

# wheel VERSION DIR [PIP_PLATFORM]: the ziglang wheel's ziglang/ into DIR.
wheel() {
    local version="$1" out="$2" platform="${3:-}"
    local stamp="$out/.installed"
    if [ -f "$stamp" ] && [ -f "$out/ziglang/zig" ]; then
        log "ziglang $version${platform:+ ($platform)} already in $out"
        return
    fi
    log "fetching ziglang==$version${platform:+ for $platform} from PyPI"
    local tmp
    tmp="$(mktemp -d)"
    local args=(--quiet --disable-pip-version-check --no-deps)
    if [ -n "$platform" ]; then
        args+=(--only-binary=:all: --platform "$platform")
    fi
    python3 -m pip download "${args[@]}" "ziglang==$version" -d "$tmp"
    rm -rf "$out"
    mkdir -p "$out"
    unzip -q "$tmp"/ziglang-"$version"-*.whl 'ziglang/*' -d "$out"
    chmod +x "$out/ziglang/zig"
    touch "$stamp"
    rm -rf "$tmp"
}

wheel 0.17.0 "$PEERS/ziglang-0.17.0"
wheel 0.16.0 "$PEERS/ziglang-0.16.0"
# pip takes a platform and every older one it is compatible with.
wheel 0.16.0 "$PEERS/ziglang-0.16.0-macos-arm64" macosx_15_0_arm64

ln -sfn "ziglang-0.17.0/ziglang/zig" "$PEERS/zig"
ln -sfn "ziglang-0.16.0/ziglang/zig" "$PEERS/zig-0.16.0"
for z in zig zig-0.16.0; do
    "$PEERS/$z" version >/dev/null || { log "$PEERS/$z does not run"; exit 1; }
    log "ok: $PEERS/$z ($("$PEERS/$z" version))"
done
file_of="$PEERS/ziglang-0.16.0-macos-arm64/ziglang/zig"
head -c 4 "$file_of" | od -An -tx1 | grep -q "cf fa ed fe" \
    || { log "$file_of is not a Mach-O binary"; exit 1; }
log "ok: $file_of (macOS arm64, not run here)"
