#!/usr/bin/env python3
"""Toolchain packaging benchmark: recast side by side with its peers.

For each compiler (rustc, gcc, clang when installed), in one run:
  a) cold package: `recast toolchain package` with an empty local index
     (files in the page cache: the second of two cold runs is kept);
  b) warm recognition: the same command again (stat only), recast's own
     timing and the whole process;
  c) `sccache --package-toolchain` of the same compiler (sccache 0.19 with
     dist-client, when installed under $RECAST_PEERS_DIR/sccache/bin);
  d) `tar | zstd -3 -T2` of exactly the files recast packages;
  e) first upload to a fresh `recast serve`, and the re-upload of a
     toolchain the server already holds.

Prints medians and ratios. Standard library only; `bench/toolchain.sh`
builds the release binary and calls this.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench import free_port, wait_listening  # noqa: E402


def run(cmd, env=None, **kw):
    t = time.monotonic()
    p = subprocess.run(cmd, env=env, capture_output=True, **kw)
    dt = time.monotonic() - t
    if p.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({p.returncode}): {p.stderr.decode(errors='replace')}")
    return p, dt


def package(recast, compiler, cache):
    env = dict(os.environ, RECAST_CACHE_DIR=str(cache))
    p, wall = run([recast, "toolchain", "package", "--compiler", compiler, "--json"], env=env)
    out = json.loads(p.stdout)
    return out, wall


def cold(recast, compiler, runs):
    times, walls, out = [], [], None
    for _ in range(runs):
        cache = Path(tempfile.mkdtemp(prefix="recast-bench-cache-"))
        out, wall = package(recast, compiler, cache)
        times.append(out["seconds"])
        walls.append(wall)
        assert not out["warm"]
        shutil.rmtree(cache)
    return statistics.median(times), statistics.median(walls), out["manifest"]


def warm(recast, compiler, runs):
    cache = Path(tempfile.mkdtemp(prefix="recast-bench-cache-"))
    package(recast, compiler, cache)
    times, walls = [], []
    for _ in range(runs):
        out, wall = package(recast, compiler, cache)
        assert out["warm"], "second package was not recognised from the index"
        times.append(out["seconds"])
        walls.append(wall)
    shutil.rmtree(cache)
    return statistics.median(times), statistics.median(walls)


def file_list(recast, compiler):
    cache = Path(tempfile.mkdtemp(prefix="recast-bench-cache-"))
    env = dict(os.environ, RECAST_CACHE_DIR=str(cache))
    p, _ = run([recast, "toolchain", "package", "--compiler", compiler, "--list"], env=env)
    shutil.rmtree(cache)
    return [line for line in p.stdout.decode().splitlines() if line]


def tar_zstd(paths, runs):
    with tempfile.TemporaryDirectory() as d:
        lst = Path(d) / "files"
        lst.write_text("\n".join(p.lstrip("/") for p in paths) + "\n")
        out = Path(d) / "t.tar.zst"
        times = []
        for _ in range(runs):
            t = time.monotonic()
            subprocess.run(
                f"tar -C / --no-recursion -cf - -T {lst} | zstd -3 -T2 -q -o {out} -f",
                shell=True,
                check=True,
                stderr=subprocess.DEVNULL,
            )
            times.append(time.monotonic() - t)
        return statistics.median(times)


def sccache_package(sccache, compiler, runs):
    times = []
    with tempfile.TemporaryDirectory() as d:
        for i in range(runs):
            out = Path(d) / f"tc{i}.tar.gz"
            env = dict(os.environ, SCCACHE_NO_DAEMON="1")
            _, dt = run([sccache, "--package-toolchain", compiler, str(out)], env=env)
            times.append(dt)
    return statistics.median(times)


def upload(recast, compiler, runs):
    """(first upload MB/s, first upload s, re-upload s), medians."""
    firsts, rates, again = [], [], []
    for _ in range(runs):
        state = Path(tempfile.mkdtemp(prefix="recast-bench-serve-"))
        port = free_port()
        proc = subprocess.Popen(
            [recast, "serve", "--listen", f"127.0.0.1:{port}", "--allow-unauthenticated", "--dir", str(state / "serve")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_listening(port, proc, "recast serve")
            url = f"grpc://127.0.0.1:{port}"
            env = dict(os.environ, RECAST_CACHE_DIR=str(state / "client"))
            cmd = [recast, "toolchain", "upload", "--compiler", compiler, "--remote", url, "--json"]
            p, _ = run(cmd, env=env)
            first = json.loads(p.stdout)
            firsts.append(first["upload_seconds"])
            rates.append(first["uploaded_bytes"] / 1e6 / first["upload_seconds"])
            p, _ = run(cmd, env=env)
            second = json.loads(p.stdout)
            assert second["uploaded_blobs"] == 0, second
            again.append(second["upload_seconds"])
        finally:
            proc.terminate()
            proc.wait()
            shutil.rmtree(state)
    return statistics.median(rates), statistics.median(firsts), statistics.median(again)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--recast", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--compilers", default="rustc,gcc,clang")
    args = ap.parse_args()
    peers = Path(os.environ.get("RECAST_PEERS_DIR", Path.home() / ".cache/recast-peers"))
    sccache = peers / "sccache/bin/sccache"
    have_sccache = sccache.exists()
    rows = []
    for compiler in args.compilers.split(","):
        if shutil.which(compiler) is None:
            print(f"skipping {compiler}: not installed", file=sys.stderr)
            continue
        print(f"== {compiler}", file=sys.stderr)
        c_in, c_wall, manifest = cold(args.recast, compiler, args.runs)
        w_in, w_wall = warm(args.recast, compiler, args.runs)
        paths = file_list(args.recast, compiler)
        tz = tar_zstd(paths, args.runs)
        sc = sccache_package(str(sccache), compiler, max(1, args.runs // 2)) if have_sccache else None
        rate, first, again = upload(args.recast, compiler, max(1, args.runs // 2))
        rows.append((compiler, manifest, c_in, c_wall, w_in, w_wall, tz, sc, rate, first, again))

    print()
    print(f"medians of {args.runs} runs (uploads: {max(1, args.runs // 2)})")
    for (compiler, m, c_in, c_wall, w_in, w_wall, tz, sc, rate, first, again) in rows:
        size = m["size"] / 1e6
        print(f"\n{m['name']}: {m['files']} files, {size:.0f} MB, root {m['root'][:16]}…")
        print(f"  cold package      recast {c_in:7.3f} s (process {c_wall:.3f} s)")
        print(f"  warm recognition  recast {w_in * 1000:7.2f} ms (process {w_wall * 1000:.1f} ms)")
        print(f"  tar | zstd -3 -T2        {tz:7.3f} s   ratio recast/tar+zstd {c_in / tz:.2f}")
        if sc is not None:
            print(f"  sccache --package-toolchain {sc:7.3f} s   ratio recast/sccache {c_in / sc:.3f}")
        else:
            print("  sccache: not installed (cargo install sccache --locked --features "
                  "'dist-client dist-server' --root $RECAST_PEERS_DIR/sccache)")
        print(f"  first upload to recast serve {first:.3f} s = {rate:.0f} MB/s")
        print(f"  re-upload (all present)      {again * 1000:.1f} ms")


if __name__ == "__main__":
    main()
