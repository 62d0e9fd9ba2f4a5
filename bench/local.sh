#!/usr/bin/env bash
# Speed on one machine, in one run: recast against ccache and sccache 0.19
# on zstd (hits idle and busy, warm and cold builds, the 2,000-file growth
# curve: bench/cc.py), on the cargo test workspace (bench/rust.py), and on
# recast's own workspace (bench/rust.py --workspace .). Each part prints its
# own table of medians and ratios; not a test. About an hour with
# --runs 3 (recast's own workspace is most of it).
#
#   bash bench/local.sh                # 3 runs of each build
#   bash bench/local.sh --runs 5       # (the one option it takes)
#
# sccache 0.19 is installed (once) by bench/sccache.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=3
case "${1:-}" in
  --runs) runs="${2:?--runs needs a number}" ;;
  "") ;;
  *) echo "usage: bash bench/local.sh [--runs N]" >&2; exit 2 ;;
esac
set -- --runs "$runs"
recast="$(bash scripts/release.sh)"
bash bench/sccache.sh
echo "== zstd (bench/cc.py)"
python3 bench/cc.py --recast "$recast" "$@"
echo
echo "== the cargo test workspace (bench/rust.py)"
python3 bench/rust.py --recast "$recast" "$@"
echo
echo "== recast's own workspace (bench/rust.py --workspace .)"
python3 bench/rust.py --recast "$recast" --workspace . "$@"
