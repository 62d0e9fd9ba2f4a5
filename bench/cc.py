#!/usr/bin/env python3
"""The C wrapper benchmark: recast next to plain gcc, ccache and sccache.

The project is zstd's library (common/, compress/, decompress/: the copy
the zstd-sys crate vendors, so it is on any machine that built recast),
built with a small Makefile, `make -j2`, -O2. For each tool, in one run:

  build    cold  every compile misses (empty caches; recast: empty action
                 cache and scan cache, toolchain already on the server,
                 which keeps running between builds)
           warm  `make clean` then make again: every compile hits
  per-file hit   one `-c` of a single file, repeated: the wrapper's own
                 overhead on a hit (median)

recast runs twice: against a `recast serve` on TCP (every hit a call),
and as `recast-embed`, with nothing configured (the embedded server on a
socket, whose store the wrapper reads hits from without a call).

plus recast's very first build (the toolchain upload included), and
sccache-dist (scheduler and one bubblewrap build server on 127.0.0.1)
with an empty local cache: every compile distributed, its toolchain
already on the build server. Prints
medians of --runs runs and the ratios the issues aim at. Standard library
only; `bench/cc.sh` builds the release binary and calls this.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sccache_dist import SccacheDist  # noqa: E402

MAKEFILE = """\
SRC := $(wildcard lib/common/*.c) $(wildcard lib/compress/*.c) $(wildcard lib/decompress/*.c)
OBJ := $(patsubst lib/%.c,obj/%.o,$(SRC))
CFLAGS ?= -O2
all: $(OBJ)
obj/%.o: lib/%.c
\t@mkdir -p $(dir $@)
\t$(CC) $(CFLAGS) -MMD -MP -Ilib -Ilib/common -c $< -o $@
-include $(OBJ:.o=.d)
clean:
\trm -rf obj
"""


def zstd_lib():
    home = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))
    found = sorted(home.glob("registry/src/*/zstd-sys-*/zstd/lib"))
    if not found:
        sys.exit("zstd-sys not in cargo's registry: build recast first")
    return found[-1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def project(at):
    lib = zstd_lib()
    (at / ".git").mkdir(parents=True)
    for sub in ["common", "compress", "decompress"]:
        shutil.copytree(lib / sub, at / "lib" / sub)
    for h in ["zstd.h", "zstd_errors.h", "zdict.h"]:
        shutil.copy(lib / h, at / "lib" / h)
    (at / "Makefile").write_text(MAKEFILE)
    return at


def timed(cmd, cwd, env):
    t = time.monotonic()
    subprocess.run(cmd, cwd=cwd, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - t


def build(proj, cc, env):
    subprocess.run(["make", "clean"], cwd=proj, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return timed(["make", "-j2", f"CC={cc}"], proj, env)


def per_file(proj, cc_argv, env, n):
    src = "lib/common/entropy_common.c"
    argv = cc_argv + ["-O2", "-Ilib", "-Ilib/common", "-c", src, "-o", "one.o"]
    subprocess.run(argv, cwd=proj, env=env, check=True)
    times = [timed(argv, proj, env) for _ in range(n)]
    return statistics.median(times)


class RecastServer:
    free_port = staticmethod(free_port)

    def __init__(self, recast, state, extra=()):
        port = free_port()
        self.url = f"grpc://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [recast, "serve", "--listen", f"127.0.0.1:{port}", "--allow-unauthenticated", "--dir", str(state),
             *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        sys.exit("recast serve did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()

    @staticmethod
    def clear_results(state):
        """Empties the action cache of a running server (its entries are
        plain files; the CAS, the toolchains in it, and the server's
        first-use blob checks stay, as they do between a user's builds)."""
        for f in (state / "ac").rglob("*"):
            if f.is_file():
                f.unlink()


def fmt(s):
    return f"{s * 1000:8.1f} ms" if s < 1 else f"{s:8.2f} s "


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--recast", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--hits", type=int, default=30)
    args = ap.parse_args()
    recast = str(Path(args.recast).resolve())
    peers = Path(os.environ.get("RECAST_PEERS_DIR", Path.home() / ".cache/recast-peers"))
    sccache = peers / "sccache/bin/sccache"
    ccache = shutil.which("ccache")

    tmp = Path(tempfile.mkdtemp(prefix="recast-bench-cc-"))
    results = {}
    try:
        proj = project(tmp / "proj")
        nfiles = len(list((proj / "lib").glob("*/*.c")))
        base = dict(os.environ)
        for k in ["RECAST_REMOTE", "RECAST_MODE", "RECAST_PROJECT_ROOT"]:
            base.pop(k, None)

        def run_tool(name, cc, cc_argv, env, fresh):
            cold, warm, hit = [], [], []
            first = None
            for _ in range(args.runs):
                fresh(env)
                cold.append(build(proj, cc, env))
                warm.append(build(proj, cc, env))
            hit = per_file(proj, cc_argv, env, args.hits)
            results[name] = dict(cold=statistics.median(cold),
                                 warm=statistics.median(warm), hit=hit)
            return first

        # plain gcc
        times = [build(proj, "gcc", base) for _ in range(args.runs)]
        results["gcc"] = dict(cold=statistics.median(times), warm=None,
                              hit=per_file(proj, ["gcc"], base, 5))

        if ccache:
            env = dict(base, CCACHE_DIR=str(tmp / "ccache"), CCACHE_NOHASHDIR="1")
            def fresh_ccache(e):
                shutil.rmtree(tmp / "ccache", ignore_errors=True)
            run_tool("ccache", "ccache gcc", ["ccache", "gcc"], env, fresh_ccache)

        if sccache.exists():
            env = dict(base, SCCACHE_DIR=str(tmp / "sccache"),
                       SCCACHE_SERVER_PORT=str(free_port()), SCCACHE_DIRECT="true")
            def fresh_sccache(e):
                subprocess.run([str(sccache), "--stop-server"], env=e,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                shutil.rmtree(tmp / "sccache", ignore_errors=True)
                subprocess.run([str(sccache), "--start-server"], env=e, check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            run_tool("sccache", f"{sccache} gcc", [str(sccache), "gcc"], env, fresh_sccache)
            subprocess.run([str(sccache), "--stop-server"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        if (sccache.parent / "sccache-dist").exists() and shutil.which("bwrap"):
            dist = SccacheDist(sccache.parent, tmp / "sccache-dist")
            results["sccache-dist"] = dist.measure(
                base, lambda e: build(proj, f"{sccache} gcc", e), args.runs)

        # recast: the first build ever (toolchain upload included), then
        # cold (fresh action cache and client cache, toolchain on the server)
        state = tmp / "recast-server"
        server = RecastServer(recast, state)
        env = dict(base, RECAST_REMOTE=server.url,
                   RECAST_CACHE_DIR=str(tmp / "recast-client"),
                   RECAST_CONFIG=str(tmp / "none.toml"))
        first = build(proj, f"{recast} gcc", env)

        def fresh_recast(e):
            # Keep the server and its CAS (the toolchain stays uploaded),
            # drop the results and the client's scan cache.
            RecastServer.clear_results(state)
            shutil.rmtree(tmp / "recast-client" / "deps", ignore_errors=True)
        run_tool("recast", f"{recast} gcc", [recast, "gcc"], env, fresh_recast)
        results["recast"]["first"] = first
        server.stop()

        # recast with nothing configured: its embedded server on a socket,
        # whose store the wrapper reads hits from without a call.
        embedded = tmp / "recast-embedded"
        env = dict(base, RECAST_CACHE_DIR=str(embedded),
                   RECAST_CONFIG=str(tmp / "none.toml"))
        build(proj, f"{recast} gcc", env)

        def fresh_embedded(e):
            RecastServer.clear_results(embedded / "server")
            shutil.rmtree(embedded / "deps", ignore_errors=True)
        run_tool("recast-embed", f"{recast} gcc", [recast, "gcc"], env, fresh_embedded)
        subprocess.run([recast, "stop-server"], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nzstd library, {nfiles} files, make -j2, -O2; medians of {args.runs} runs "
          f"({args.hits} for per-file hits)\n")
    print(f"{'tool':<14}{'cold build':>14}{'warm build':>14}{'per-file hit':>16}")
    none = "       —   "
    for name, r in results.items():
        warm = fmt(r["warm"]) if r["warm"] is not None else none
        hit = fmt(r["hit"]) if r["hit"] is not None else none
        print(f"{name:<14}{fmt(r['cold']):>14}{warm:>14}{hit:>16}")
    rc = results["recast"]
    print(f"\nrecast first build ever (toolchain upload included): {fmt(rc['first'])}")
    if "sccache-dist" in results:
        d = results["sccache-dist"]
        print(f"sccache-dist first build (toolchain packaged and shipped): {fmt(d['first'])}; "
              f"compiles distributed in the last cold build: {d['distributed']} of {nfiles}")
    g = results["gcc"]["cold"]
    print(f"recast cold / plain gcc:        {rc['cold'] / g:5.2f}   (aim ≤ 1.10)")
    if "sccache-dist" in results:
        print(f"recast cold / sccache-dist cold: {rc['cold'] / results['sccache-dist']['cold']:5.2f}")
    for name in ["recast", "recast-embed"]:
        rc = results[name]
        for peer in ["ccache", "sccache"]:
            if peer in results:
                p = results[peer]
                print(f"{name} hit / {peer} hit:{'':<{10 - len(peer)}}{rc['hit'] / p['hit']:5.2f}"
                      f"   warm build {rc['warm'] / p['warm']:5.2f}")


if __name__ == "__main__":
    main()
