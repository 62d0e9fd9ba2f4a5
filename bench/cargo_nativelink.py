#!/usr/bin/env python3
"""`cargo build` as it ships, through recast, on NativeLink.

A copy of a cargo workspace (default: this checkout, recast itself) is
built twice in the same directory: plain `cargo build`, then, after `cargo
clean`, with `RUSTC_WRAPPER=recast` against NativeLink 1.6.6 on 127.0.0.1
(its local worker runs actions in a plain directory) and nothing else set:
no remaps, no trim-paths, incremental builds as cargo's dev profile has
them. Then once more after `cargo clean` (the hits).

Prints, for each build, its time, where its rustc invocations ran (remote,
hit, here and why), and whether every file under target/debug/deps and
the workspace's binaries are the plain build's bytes. Exits 1 if any
differs. Standard library only; NativeLink must be built under
~/.cache/recast-peers (scripts/peers/nativelink.sh), and
`cargo build --release` (or `scripts/release.sh`, with --recast) makes
the recast it uses.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from relocated import NativeLink, stats  # noqa: E402


def digests(ws):
    out = {}
    debug = ws / "target/debug"
    for p in sorted(debug.glob("deps/*")) + sorted(debug.glob("*")):
        if p.is_file() and not p.name.endswith((".d", ".json")):
            out[str(p.relative_to(ws))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def cargo(ws, env):
    start = time.monotonic()
    subprocess.run(["cargo", "build", "--offline", "--quiet"], cwd=ws, env=env, check=True)
    return time.monotonic() - start


def main():
    root = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workspace", type=Path, default=root,
                    help="the cargo workspace to copy and build (default: this checkout)")
    ap.add_argument("--recast", type=Path, default=root / "target/release/recast",
                    help="the recast binary (default: target/release/recast; "
                         "scripts/release.sh prints the static one's path)")
    args = ap.parse_args()
    recast = args.recast.resolve()
    nl_bin = Path.home() / ".cache/recast-peers/nativelink/bin/nativelink"
    if not recast.exists() or not nl_bin.exists():
        sys.exit(f"needs {recast} (cargo build --release) and {nl_bin}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ws = tmp / "ws"
        shutil.copytree(args.workspace, ws, ignore=shutil.ignore_patterns(
            "target", ".git", "fuzz"))
        (ws / ".git").mkdir()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("RECAST_", "RUSTC_WRAPPER", "RUSTFLAGS", "CARGO_"))}
        env["CARGO_HOME"] = os.environ.get("CARGO_HOME", str(Path.home() / ".cargo"))
        plain = cargo(ws, env)
        want = digests(ws)
        print(f"plain cargo build: {plain:.1f} s, {len(want)} files")
        nl = NativeLink(nl_bin, tmp / "nl")
        try:
            wenv = dict(env, RUSTC_WRAPPER=str(recast), RECAST_REMOTE=nl.url,
                        RECAST_CACHE_DIR=str(tmp / "cache"),
                        RECAST_CONFIG=str(tmp / "none.toml"))
            bad = 0
            for label in ("cold", "after cargo clean"):
                subprocess.run(["cargo", "clean", "--offline"], cwd=ws, env=env, check=True)
                before = stats(recast, wenv)
                t = cargo(ws, wenv)
                s = stats(recast, wenv)
                d = {k: s.get(k, 0) - before.get(k, 0) for k in
                     ("compiles", "remote_executions", "cache_hits", "local_runs", "fallbacks")}
                reasons = {k: v - before.get("local_reasons", {}).get(k, 0)
                           for k, v in s.get("local_reasons", {}).items()}
                reasons = {k: v for k, v in reasons.items() if v}
                got = digests(ws)
                differ = [k for k in want if got.get(k) != want[k]]
                bad += len(differ)
                remote = d["remote_executions"] + d["cache_hits"]
                print(f"recast on NativeLink, {label}: {t:.1f} s ({t / plain:.2f}x plain); "
                      f"{d['compiles']} rustc: {d['remote_executions']} remote, "
                      f"{d['cache_hits']} hits, {d['local_runs']} here {json.dumps(reasons)}, "
                      f"{d['fallbacks']} fallbacks; {remote}/{d['compiles']} served remotely; "
                      f"{len(want) - len(differ)}/{len(want)} files identical")
                for k in differ[:10]:
                    print(f"  differs: {k}")
        finally:
            nl.stop()
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
