#!/usr/bin/env bash
# Installs BuildGrid 0.9.1 (the REAPI scheduler `recast worker` serves) and
# the PostgreSQL 15 its scheduler needs (it refuses SQLite):
#   - a venv at ${RECAST_PEERS_DIR:-$HOME/.cache/recast-peers}/buildgrid made
#     with pyenv's Python 3.13.0 (BuildGrid 0.9.1 needs >= 3.12; Debian's
#     python3 is older), holding `bgd`;
#   - Debian's postgresql-15 server binaries (/usr/lib/postgresql/15/bin),
#     only if missing. No cluster is created here: each test starts its own.
#
# Idempotent and fast when present: a stamp file records the installed
# version and is written last, so a half-finished install is redone.
# Called by scripts/peers/install.sh.
set -euo pipefail

PEERS="${RECAST_PEERS_DIR:-$HOME/.cache/recast-peers}"
BUILDGRID_VERSION=0.9.1
VENV="$PEERS/buildgrid"
STAMP="$VENV/.buildgrid-$BUILDGRID_VERSION"
PYTHON="${RECAST_BUILDGRID_PYTHON:-$HOME/.pyenv/versions/3.13.0/bin/python3}"
PG_BIN=/usr/lib/postgresql/15/bin

log() { echo "peers: $*" >&2; }

# --- PostgreSQL 15 -------------------------------------------------------------
if [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ]; then
    log "postgresql 15 already installed"
else
    SUDO=()
    if [ "$(id -u)" != 0 ]; then SUDO=(sudo); fi
    log "installing postgresql-15 with apt-get"
    "${SUDO[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends \
        postgresql-15 >/dev/null
    # The package starts a system cluster on 5432; the tests never use it,
    # and it is harmless, so it is left as Debian set it up.
fi

# --- BuildGrid venv ------------------------------------------------------------
if [ -f "$STAMP" ] && [ -x "$VENV/bin/bgd" ]; then
    log "buildgrid $BUILDGRID_VERSION already in $VENV"
else
    if [ ! -x "$PYTHON" ]; then
        log "no Python 3.13 at $PYTHON (set RECAST_BUILDGRID_PYTHON); cannot install buildgrid"
        exit 1
    fi
    log "installing buildgrid==$BUILDGRID_VERSION into $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "buildgrid==$BUILDGRID_VERSION"
    touch "$STAMP"
fi

# --- verify --------------------------------------------------------------------
"$VENV/bin/bgd" --help >/dev/null 2>&1 || {
    log "bgd in $VENV does not run"
    "$VENV/bin/bgd" --help >&2 || true
    exit 1
}
log "ok: $VENV/bin/bgd (buildgrid $BUILDGRID_VERSION), $PG_BIN/postgres"
