#!/usr/bin/env bash
# Builds recast's release binary and prints its path on stdout.
#
#   bin=$(bash scripts/release.sh)        # then "$bin" gcc -c ...
#
# On Linux it builds the static binary (`--target <arch>-unknown-linux-musl`)
# when it can: every wrapped compile starts this binary, and the static one
# starts without glibc's dynamic loader and its processor probing (CPUID
# after CPUID, each a trap to the hypervisor in a virtual machine). A cache
# hit takes about a fifth less time. What it needs, it installs when
# missing: Rust's musl target (`rustup target add`) and a musl C compiler
# for the crates with C in them (Debian's musl-tools, with apt-get). When
# either cannot be had, the static build fails, or RECAST_STATIC=0, it
# builds the ordinary glibc binary (target/release/recast) and says why on
# stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "release: $*" >&2; }

# Sets `target` to the musl target when the static build can be made.
target=""
static_target() {
    [ "${RECAST_STATIC:-1}" != 0 ] || { log "RECAST_STATIC=0: the glibc build"; return 1; }
    [ "$(uname -s)" = Linux ] || return 1
    local arch
    arch="$(uname -m)"
    target="$arch-unknown-linux-musl"
    if ! [ -d "$(rustc --print sysroot)/lib/rustlib/$target" ]; then
        if ! command -v rustup >/dev/null || ! rustup target add "$target" >/dev/null 2>&1; then
            log "no Rust target $target (rustup target add $target): the glibc build"
            return 1
        fi
    fi
    if ! command -v "$arch-linux-musl-gcc" >/dev/null && ! command -v musl-gcc >/dev/null; then
        if command -v apt-get >/dev/null; then
            local sudo=()
            if [ "$(id -u)" != 0 ]; then sudo=(sudo -n); fi
            log "installing musl-tools (a musl C compiler) with apt-get"
            "${sudo[@]}" apt-get install -y -qq --no-install-recommends musl-tools >/dev/null 2>&1 ||
                { "${sudo[@]}" apt-get update -qq >/dev/null 2>&1 &&
                    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
                        --no-install-recommends musl-tools >/dev/null 2>&1; } || true
        fi
    fi
    if command -v "$arch-linux-musl-gcc" >/dev/null; then
        :
    elif command -v musl-gcc >/dev/null; then
        # cc-rs looks for the triple's name; Debian names it musl-gcc on
        # some architectures.
        export "CC_${target//-/_}=musl-gcc"
    else
        log "no musl C compiler (apt-get install musl-tools): the glibc build"
        return 1
    fi
}

if static_target; then
    if cargo build --release --quiet --target "$target"; then
        echo "$PWD/target/$target/release/recast"
        exit 0
    fi
    log "the static build failed (above): the glibc build"
fi
cargo build --release --quiet
echo "$PWD/target/release/recast"
