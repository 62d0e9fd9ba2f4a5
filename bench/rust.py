#!/usr/bin/env python3
"""The rustc wrapper benchmark: recast next to plain cargo and sccache.

The workspace is tests/fixtures/cargo-ws (serde + serde_derive,
serde_json, itoa, memchr, a build script, a binary; 13 crates), built
offline from the crates `scripts/peers/vendor.sh` vendors, dev profile,
CARGO_INCREMENTAL=0 (sccache refuses incremental builds). In one run:

  plain        cargo build
  cold         every compile misses (sccache: empty cache; recast: empty
               action cache and client caches, toolchains already on the
               server, which keeps running between builds)
  warm         `cargo clean` then build again: every compile hits

and sccache-dist (scheduler and one bubblewrap build server on
127.0.0.1) with an empty local cache, its toolchain already shipped.
recast runs against a `recast serve` on TCP (warm hits from its local
tier) and as `recast-embed` (nothing configured: the embedded server,
`RECAST_MODE=auto`, where a miss compiles here).

With --workspace DIR (for example `.`, recast itself) a copy of that
workspace is built instead, from cargo's own registry (offline), and only
the rows users of a real workspace compare run: plain cargo, sccache and
recast as `recast setup cargo` sets it up (`RUSTC_WRAPPER`, and `CC`,
`CXX`, `CC_KNOWN_WRAPPER_CUSTOM` for build scripts' C; sccache needs
`RUSTC_WRAPPER` alone, as the `cc` crate knows it).

Prints medians of --runs runs and the ratios the issue aims at. Standard
library only; `bench/rust.sh` builds the release binary and calls this.
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cc import RecastServer, fmt  # noqa: E402
from sccache_dist import SccacheDist  # noqa: E402


def workspace(at, vendor, source=None):
    if source is not None:
        # A real workspace: its own lock file, cargo's registry, offline.
        shutil.copytree(source, at, ignore=shutil.ignore_patterns(
            "target", ".git", "fuzz", ".cargo"))
        (at / ".git").mkdir()
        return at
    shutil.copytree(HERE.parent / "tests/fixtures/cargo-ws", at,
                    ignore=shutil.ignore_patterns("target"))
    (at / ".git").mkdir()
    (at / ".cargo").mkdir()
    (at / ".cargo/config.toml").write_text(
        f'[source.crates-io]\nreplace-with = "vendored"\n'
        f'[source.vendored]\ndirectory = "{vendor}"\n')
    return at


def wrapped(env, recast):
    """`env` as `recast setup cargo` sets a project up."""
    return dict(env, RUSTC_WRAPPER=recast, CC=f"{recast} cc", CXX=f"{recast} c++",
                CC_KNOWN_WRAPPER_CUSTOM="recast")


def build(ws, env):
    subprocess.run(["cargo", "clean"], cwd=ws, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t = time.monotonic()
    subprocess.run(["cargo", "build", "--offline"], cwd=ws, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--recast", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workspace", type=Path,
                    help="a cargo workspace to build instead of the test one "
                         "(plain, sccache and recast's default only)")
    args = ap.parse_args()
    real = args.workspace is not None
    recast = str(Path(args.recast).resolve())
    peers = Path(os.environ.get("RECAST_PEERS_DIR", Path.home() / ".cache/recast-peers"))
    vendor = peers / "vendor/cargo-ws"
    if not vendor.is_dir() and not real:
        sys.exit(f"{vendor} is missing: bash scripts/peers/install.sh")
    sccache = peers / "sccache/bin/sccache"

    tmp = Path(tempfile.mkdtemp(prefix="recast-bench-rust-"))
    results = {}
    try:
        ws = workspace(tmp / "ws", vendor, args.workspace)
        base = dict(os.environ, CARGO_INCREMENTAL="0")
        for k in ["RUSTC_WRAPPER", "RECAST_REMOTE", "RECAST_MODE", "CARGO_TARGET_DIR",
                  "CC", "CXX", "CC_KNOWN_WRAPPER_CUSTOM", "RUSTFLAGS"]:
            base.pop(k, None)
        if not real:  # a real workspace's builds are minutes: no warm-up
            build(ws, base)  # warm the page cache and cargo's own state
        results["cargo"] = dict(cold=statistics.median(build(ws, base) for _ in range(args.runs)),
                                warm=None)

        if sccache.exists():
            env = dict(base, RUSTC_WRAPPER=str(sccache), SCCACHE_DIR=str(tmp / "sccache"),
                       SCCACHE_SERVER_PORT=str(RecastServer.free_port()))
            cold, warm = [], []
            for _ in range(args.runs):
                subprocess.run([str(sccache), "--stop-server"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                shutil.rmtree(tmp / "sccache", ignore_errors=True)
                subprocess.run([str(sccache), "--start-server"], env=env, check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                cold.append(build(ws, env))
                warm.append(build(ws, env))
            subprocess.run([str(sccache), "--stop-server"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            results["sccache"] = dict(cold=statistics.median(cold), warm=statistics.median(warm))

        if not real and (sccache.parent / "sccache-dist").exists() and shutil.which("bwrap"):
            dist = SccacheDist(sccache.parent, tmp / "sccache-dist")
            results["sccache-dist"] = dist.measure(
                dict(base, RUSTC_WRAPPER=str(sccache)), lambda e: build(ws, e), args.runs)

        if not real:
            state = tmp / "recast-server"
            server = RecastServer(recast, state)
            client = tmp / "recast-client"
            env = dict(wrapped(base, recast), RECAST_REMOTE=server.url,
                       RECAST_CACHE_DIR=str(client), RECAST_CONFIG=str(tmp / "none.toml"))
            first = build(ws, env)
            cold, warm = [], []
            for _ in range(args.runs):
                RecastServer.clear_results(state)
                for d in ["deps", "crates", "twins", "tier"]:
                    shutil.rmtree(client / d, ignore_errors=True)
                cold.append(build(ws, env))
                warm.append(build(ws, env))
            server.stop()
            results["recast"] = dict(cold=statistics.median(cold),
                                     warm=statistics.median(warm), first=first)

        # Nothing configured: the embedded server, whose store the wrapper
        # reads hits from without a call; a miss compiles here at once,
        # listing its reads in the dep-info cargo asks for (no scan first).
        embedded = tmp / "recast-embedded"
        env = dict(wrapped(base, recast), RECAST_CACHE_DIR=str(embedded),
                   RECAST_CONFIG=str(tmp / "none.toml"))
        if not real:
            build(ws, env)
        cold, warm = [], []
        for _ in range(args.runs):
            RecastServer.clear_results(embedded / "server")
            for d in ["deps", "crates", "twins"]:
                shutil.rmtree(embedded / d, ignore_errors=True)
            cold.append(build(ws, env))
            warm.append(build(ws, env))
        subprocess.run([recast, "stop-server"], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        results["recast-embed"] = dict(cold=statistics.median(cold), warm=statistics.median(warm))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    what = args.workspace.resolve().name if real else "tests/fixtures/cargo-ws"
    print(f"\n{what}, cargo build (dev, CARGO_INCREMENTAL=0); medians of {args.runs} runs\n")
    print(f"{'tool':<14}{'cold':>14}{'warm':>14}")
    for name, r in results.items():
        warm = fmt(r["warm"]) if r["warm"] is not None else "       —   "
        print(f"{name:<14}{fmt(r['cold']):>14}{warm:>14}")
    rc = results.get("recast")
    if rc:
        print(f"\nrecast first build ever (toolchain uploads included): {fmt(rc['first'])}")
    if "sccache-dist" in results:
        d = results["sccache-dist"]
        print(f"sccache-dist first build (toolchain packaged and shipped): {fmt(d['first'])}; "
              f"compiles distributed in the last cold build: {d['distributed']}")
    aim = "1.15" if real else "1.10"
    if rc:
        print(f"recast cold / plain cargo:   {rc['cold'] / results['cargo']['cold']:5.2f}   "
              f"(aim ≤ {aim})")
    print(f"recast-embed cold / plain:   "
          f"{results['recast-embed']['cold'] / results['cargo']['cold']:5.2f}   (aim ≤ {aim})")
    if rc and "sccache-dist" in results:
        print(f"recast cold / sccache-dist cold: {rc['cold'] / results['sccache-dist']['cold']:5.2f}")
    if "sccache" in results:
        for name in [n for n in ["recast", "recast-embed"] if n in results]:
            r = results[name]
            print(f"{name} warm / sccache warm:{'':<{14 - len(name)}}"
                  f"{r['warm'] / results['sccache']['warm']:5.2f}   (aim ≤ 0.50)")
            print(f"{name} cold / sccache cold:{'':<{14 - len(name)}}"
                  f"{r['cold'] / results['sccache']['cold']:5.2f}")


if __name__ == "__main__":
    main()
