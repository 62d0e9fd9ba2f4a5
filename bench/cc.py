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

recast runs against a `recast serve` on TCP with its local tier (hits
read here), the same with the tier off (`recast-call`: every hit a
call), and as `recast-embed`, with nothing configured (the embedded
server on a socket, whose store the wrapper reads hits from without a
call; a miss compiles here, `RECAST_MODE=auto`). `embed -MD` is the same
with `-MD` in place of the Makefile's `-MMD` (as CMake, Meson and
autotools write it: the compile lists its reads itself, no scan first),
and `embed, exec` has the embedded server execute every miss
(`RECAST_MODE=remote`). Per-file hits are timed idle and again while a plain `make -j2` of
a copy keeps both cores busy.

The growth curve: a generated project of N files (--growth, 10 and 2,000
by default), cold and warm builds and a per-file hit at each N, for
ccache and recast-embed.

plus recast's very first build (the toolchain upload included), and
sccache-dist (scheduler and one bubblewrap build server on 127.0.0.1)
with an empty local cache: every compile distributed, its toolchain
already on the build server. Prints
medians of --runs runs and the ratios the issues aim at; the cold
ratios of the embedded default also in pairs (plain, then recast, one
after the other; the median of 2 x --runs + 1 pairs' ratios). Standard library
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
DEPFLAGS ?= -MMD -MP
all: $(OBJ)
obj/%.o: lib/%.c
\t@mkdir -p $(dir $@)
\t$(CC) $(CFLAGS) $(DEPFLAGS) -Ilib -Ilib/common -c $< -o $@
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


def build(proj, cc, env, depflags=None):
    """`make clean`, then a timed `make -j2`; `depflags` replaces the
    Makefile's `-MMD -MP` (CMake, Meson and autotools write `-MD`)."""
    subprocess.run(["make", "clean"], cwd=proj, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    extra = [f"DEPFLAGS={depflags}"] if depflags else []
    return timed(["make", "-j2", f"CC={cc}", *extra], proj, env)


def per_file(proj, cc_argv, env, n, src="lib/common/entropy_common.c"):
    argv = cc_argv + ["-O2", "-Ilib", "-Ilib/common", "-c", src, "-o", "one.o"]
    subprocess.run(argv, cwd=proj, env=env, check=True)
    times = [timed(argv, proj, env) for _ in range(n)]
    return statistics.median(times)


class Busy:
    """Both cores kept busy: plain `make -j2` of a copy of the project,
    cleaned and built again until stopped."""

    def __init__(self, proj, env):
        self.proc = subprocess.Popen(
            ["sh", "-c", "while :; do make -s clean; make -s -j2 CC=gcc; done"],
            cwd=proj, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        time.sleep(1.0)

    def stop(self):
        os.killpg(self.proc.pid, 15)
        self.proc.wait()


def generated(at, n):
    """A C project of `n` translation units sharing one header (the
    growth curve: a hit must cost the same at 10 files and at 2,000)."""
    (at / ".git").mkdir(parents=True)
    src = at / "lib" / "gen"
    src.mkdir(parents=True)
    (at / "lib" / "common").mkdir(parents=True)
    (at / "lib" / "gen" / "gen.h").write_text(
        "#include <stddef.h>\nstatic inline int mix(int a, int b) { return a * 31 + b; }\n")
    for i in range(n):
        (src / f"f{i}.c").write_text(
            f'#include "gen.h"\nint f{i}(const int *v, size_t n) {{\n'
            f"  int acc = {i};\n  for (size_t k = 0; k < n; k++) acc = mix(acc, v[k] ^ {i});\n"
            f"  return acc;\n}}\n")
    (at / "Makefile").write_text(MAKEFILE.replace(
        "$(wildcard lib/common/*.c) $(wildcard lib/compress/*.c) $(wildcard lib/decompress/*.c)",
        "$(wildcard lib/gen/*.c)"))
    return at


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
    ap.add_argument("--growth", type=int, nargs="*", default=[10, 2000],
                    help="project sizes of the growth curve (none: skip it)")
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

        busy_proj = project(tmp / "busy")

        def run_tool(name, cc, cc_argv, env, fresh, depflags=None):
            cold, warm, hit = [], [], []
            first = None
            for _ in range(args.runs):
                fresh(env)
                cold.append(build(proj, cc, env, depflags))
                warm.append(build(proj, cc, env, depflags))
            hit = per_file(proj, cc_argv, env, args.hits)
            busy = Busy(busy_proj, base)
            try:
                hit_busy = per_file(proj, cc_argv, env, args.hits)
            finally:
                busy.stop()
            results[name] = dict(cold=statistics.median(cold),
                                 warm=statistics.median(warm), hit=hit, hit_busy=hit_busy)
            return first

        # plain gcc, with the Makefile's -MMD and with -MD
        times = [build(proj, "gcc", base) for _ in range(args.runs)]
        results["gcc"] = dict(cold=statistics.median(times), warm=None,
                              hit=per_file(proj, ["gcc"], base, 5), hit_busy=None)
        times = [build(proj, "gcc", base, "-MD -MP") for _ in range(args.runs)]
        results["gcc -MD"] = dict(cold=statistics.median(times), warm=None,
                                  hit=None, hit_busy=None)

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
            # drop the results, the local tier and the client's scan cache.
            RecastServer.clear_results(state)
            for sub in ["deps", "tier"]:
                shutil.rmtree(tmp / "recast-client" / sub, ignore_errors=True)
        # A server on TCP: hits read from the local tier...
        run_tool("recast", f"{recast} gcc", [recast, "gcc"], env, fresh_recast)
        results["recast"]["first"] = first
        # ...and without it, every hit a call.
        run_tool("recast-call", f"{recast} gcc", [recast, "gcc"],
                 dict(env, RECAST_TIER_SIZE="0"), fresh_recast)
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
        # The default (RECAST_MODE=auto) compiles a miss here: after a
        # scan under -MMD; at once under -MD, whose depfile lists what a
        # scan would. RECAST_MODE=remote runs it in the server's sandbox.
        run_tool("recast-embed", f"{recast} gcc", [recast, "gcc"], env, fresh_embedded)
        run_tool("embed -MD", f"{recast} gcc", [recast, "gcc"], env, fresh_embedded,
                 "-MD -MP")
        run_tool("embed, exec", f"{recast} gcc", [recast, "gcc"],
                 dict(env, RECAST_MODE="remote"), fresh_embedded)

        # Cold against plain, in pairs: a plain build, then a cold one
        # through recast, and the median of the pairs' ratios. The rows
        # above are minutes apart, and this machine's speed drifts more
        # than the 5% the aim allows between them.
        def paired(depflags):
            ratios = []
            for _ in range(2 * args.runs + 1):
                plain = build(proj, "gcc", base, depflags)
                fresh_embedded(env)
                ratios.append(build(proj, f"{recast} gcc", env, depflags) / plain)
            return statistics.median(ratios)
        results["recast-embed"]["paired"] = paired(None)
        results["embed -MD"]["paired"] = paired("-MD -MP")
        subprocess.run([recast, "stop-server"], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

        growth = {}
        for n in args.growth:
            gen = generated(tmp / f"gen{n}", n)
            tools = {}
            if ccache:
                tools["ccache"] = (["ccache", "gcc"],
                                   dict(base, CCACHE_DIR=str(tmp / f"gen-ccache{n}"),
                                        CCACHE_NOHASHDIR="1"))
            tools["recast-embed"] = ([recast, "gcc"],
                                     dict(base, RECAST_CACHE_DIR=str(tmp / f"gen-recast{n}"),
                                          RECAST_CONFIG=str(tmp / "none.toml")))
            for name, (argv, e) in tools.items():
                cc = " ".join(argv)
                cold = build(gen, cc, e)
                warm = statistics.median([build(gen, cc, e) for _ in range(args.runs)])
                hit = per_file(gen, argv, e, args.hits, src=f"lib/gen/f{n // 2}.c")
                growth[(name, n)] = dict(cold=cold, warm=warm, hit=hit)
            subprocess.run([recast, "stop-server"], env=tools["recast-embed"][1],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            shutil.rmtree(gen, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nzstd library, {nfiles} files, make -j2, -O2; medians of {args.runs} runs "
          f"({args.hits} for per-file hits)\n")
    print(f"{'tool':<14}{'cold build':>14}{'warm build':>14}{'per-file hit':>16}"
          f"{'hit, cores busy':>18}")
    none = "       —   "
    for name, r in results.items():
        warm = fmt(r["warm"]) if r["warm"] is not None else none
        hit = fmt(r["hit"]) if r["hit"] is not None else none
        busy = fmt(r["hit_busy"]) if r.get("hit_busy") is not None else none
        print(f"{name:<14}{fmt(r['cold']):>14}{warm:>14}{hit:>16}{busy:>18}")
    rc = results["recast"]
    print(f"\nrecast first build ever (toolchain upload included): {fmt(rc['first'])}")
    if "sccache-dist" in results:
        d = results["sccache-dist"]
        print(f"sccache-dist first build (toolchain packaged and shipped): {fmt(d['first'])}; "
              f"compiles distributed in the last cold build: {d['distributed']} of {nfiles}")
    g = results["gcc"]["cold"]
    print(f"recast cold / plain gcc:        {rc['cold'] / g:5.2f}   (aim ≤ 1.10)")
    print(f"recast-embed cold / plain gcc:  {results['recast-embed']['cold'] / g:5.2f}   "
          f"(-MMD; paired: {results['recast-embed']['paired']:5.2f}, aim ≤ 1.05)")
    print(f"embed -MD cold / plain gcc -MD: "
          f"{results['embed -MD']['cold'] / results['gcc -MD']['cold']:5.2f}   "
          f"(paired: {results['embed -MD']['paired']:5.2f}, aim ≤ 1.05)")
    print(f"embed, exec cold / plain gcc:   {results['embed, exec']['cold'] / g:5.2f}   "
          f"(the embedded server executing every miss)")
    if "sccache-dist" in results:
        print(f"recast cold / sccache-dist cold: {rc['cold'] / results['sccache-dist']['cold']:5.2f}")
    for name in ["recast", "recast-call", "recast-embed"]:
        rc = results[name]
        for peer in ["ccache", "sccache"]:
            if peer in results:
                p = results[peer]
                print(f"{name} / {peer}:{'':<{22 - len(name) - len(peer)}}"
                      f"hit {rc['hit'] / p['hit']:5.2f} (aim ≤ 0.65)   "
                      f"busy {rc['hit_busy'] / p['hit_busy']:5.2f} (aim ≤ 1.0)   "
                      f"warm build {rc['warm'] / p['warm']:5.2f} (aim ≤ 0.65)")
    if growth:
        print(f"\ngenerated project, N files sharing one header; warm: median of {args.runs}\n")
        print(f"{'tool':<14}{'N':>6}{'cold build':>14}{'warm build':>14}{'per-file hit':>16}")
        for (name, n), r in sorted(growth.items()):
            print(f"{name:<14}{n:>6}{fmt(r['cold']):>14}{fmt(r['warm']):>14}{fmt(r['hit']):>16}")
        sizes = sorted(args.growth)
        if len(sizes) > 1:
            lo, hi = sizes[0], sizes[-1]
            for name in sorted({name for name, _ in growth}):
                ratio = growth[(name, hi)]["hit"] / growth[(name, lo)]["hit"]
                print(f"{name}: hit at N={hi} / hit at N={lo}: {ratio:5.2f}   (aim ≈ 1.00)")


if __name__ == "__main__":
    main()
