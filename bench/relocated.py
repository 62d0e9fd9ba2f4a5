#!/usr/bin/env python3
"""Relocated actions against rooted ones: what plain-directory workers cost.

Two projects — zstd's library (the copy zstd-sys vendors, as in
bench/cc.py) with `make -j2 CC="recast gcc"`, and the test workspace (as in
bench/rust.py) with `RUSTC_WRAPPER=recast RECAST_TRIM_PATHS=1 cargo build`
— against three servers on 127.0.0.1, one after another:

  rooted      `recast serve` (bubblewrap chroot of the input root)
  relocated   `recast serve --sandbox none` (a plain directory: the bundle's
              loader through `.r-ld`, paths through `.r`)
  nativelink  NativeLink 1.6.6, its local worker in a plain directory
              (relocated), when built under ~/.cache/recast-peers
  nativelink-nodelay  the same with TCP_NODELAY set on the connections
              it accepts (an LD_PRELOAD shim built here): NativeLink as
              it would be without Nagle's delay, beside it as it ships

For each: cold (every compile a miss: the run's own -D or --cfg makes
every key new; the toolchain stays on the server), warm (clean and the
same flags again: every compile a hit, read from the local tier; and
again with the tier off, every hit asked of the server), and for zstd one
`-c` repeated (the per-file hit, from the tier and from the server). A cold build with any compile run here is an error.
Plain gcc and cargo are the baseline. Prints medians of --runs runs and ratios.
Standard library only; `bench/relocated.sh` builds the release binary and
calls this.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cc import RecastServer, fmt, free_port, project, timed  # noqa: E402
from rust import workspace  # noqa: E402


def build(proj, cc, env, flags):
    subprocess.run(["make", "clean"], cwd=proj, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return timed(["make", "-j2", f"CC={cc}", f"CFLAGS={flags}"], proj, env)


def per_file(proj, argv, env, n):
    src = "lib/common/entropy_common.c"
    argv = argv + ["-O2", "-Ilib", "-Ilib/common", "-c", src, "-o", "one.o"]
    subprocess.run(argv, cwd=proj, env=env, check=True)
    return statistics.median(timed(argv, proj, env) for _ in range(n))


class NativeLink:
    """NativeLink's one-process cluster (CAS, AC, scheduler, a local
    worker) on two free ports under `state`, stopped by its PID."""

    def __init__(self, binary, state, preload=None):
        state.mkdir(parents=True)
        port, worker_port = free_port(), free_port()
        data = state / "data"

        def fs(name, max_bytes):
            return {"content_path": str(data / f"content_path-{name}"),
                    "temp_path": str(data / f"tmp_path-{name}"),
                    "eviction_policy": {"max_bytes": max_bytes}}
        isa = {"x86_64": "x86-64", "aarch64": "aarch64"}.get(os.uname().machine,
                                                              os.uname().machine)
        config = {
            "stores": [
                {"name": "CAS", "filesystem": fs("cas", 4_000_000_000)},
                {"name": "AC", "filesystem": fs("ac", 200_000_000)},
                {"name": "WORKER", "fast_slow": {
                    "fast": {"filesystem": fs("worker", 4_000_000_000)},
                    "slow": {"ref_store": {"name": "CAS"}}}},
            ],
            "schedulers": [{"name": "MAIN", "simple": {
                "supported_platform_properties": {"OSFamily": "exact", "ISA": "exact"}}}],
            "workers": [{"local": {
                "worker_api_endpoint": {"uri": f"grpc://127.0.0.1:{worker_port}"},
                "cas_fast_slow_store": "WORKER",
                "upload_action_result": {"ac_store": "AC"},
                "work_directory": str(state / "work"),
                "platform_properties": {"OSFamily": {"values": ["linux"]},
                                        "ISA": {"values": [isa]}},
            }}],
            "servers": [
                {"name": "public",
                 "listener": {"http": {"socket_address": f"127.0.0.1:{port}"}},
                 "services": {
                     "cas": [{"cas_store": "CAS"}], "ac": [{"ac_store": "AC"}],
                     "bytestream": [{"cas_store": "CAS"}],
                     "execution": [{"cas_store": "CAS", "scheduler": "MAIN"}],
                     "capabilities": [{"remote_execution": {"scheduler": "MAIN"}}]}},
                {"name": "worker_api",
                 "listener": {"http": {"socket_address": f"127.0.0.1:{worker_port}"}},
                 "services": {"worker_api": {"scheduler": "MAIN"}, "health": {}}},
            ],
            "global": {"max_open_files": 4096},
        }
        (state / "nativelink.json").write_text(json.dumps(config))
        log = state / "nativelink.log"
        self.log = log
        self.proc = subprocess.Popen(
            [str(binary), str(state / "nativelink.json")],
            stdout=open(log, "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=dict(os.environ, NO_COLOR="1",
                     **({"LD_PRELOAD": str(preload)} if preload else {})))
        self.url = f"grpc://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while "Worker registered" not in log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"nativelink did not start; see {log}")
            time.sleep(0.1)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


# NativeLink 1.6 leaves Nagle's algorithm on for the connections it
# accepts. This shim (LD_PRELOAD) sets TCP_NODELAY on each: what a fixed
# NativeLink would do, to measure what recast's client side recovers.
NODELAY_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

static int nodelay(int fd) {
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int accept(int fd, struct sockaddr *addr, socklen_t *len) {
    int (*real)(int, struct sockaddr *, socklen_t *) = dlsym(RTLD_NEXT, "accept");
    return nodelay(real(fd, addr, len));
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
    int (*real)(int, struct sockaddr *, socklen_t *, int) = dlsym(RTLD_NEXT, "accept4");
    return nodelay(real(fd, addr, len, flags));
}
"""


def nodelay_shim(at):
    src = at / "nodelay.c"
    src.write_text(NODELAY_C)
    so = at / "nodelay.so"
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(so), str(src), "-ldl"],
                   check=True)
    return so


def stats(recast, env):
    out = subprocess.run([recast, "stats", "--json"], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


class Zstd:
    """zstd's library with make; a run's key is its -D."""
    name = "zstd (make -j2)"

    def __init__(self, at):
        self.dir = project(at)
        self.units = len(list((self.dir / "lib").glob("*/*.c")))

    def plain(self, env):
        return build(self.dir, "gcc", env, "-O2")

    def wrapped(self, recast, env, run):
        return build(self.dir, f"{recast} gcc", env, f"-O2 -DRECAST_BENCH_RUN={run}")

    def hit(self, recast, env, n):
        return per_file(self.dir, [recast, "gcc", "-DRECAST_BENCH_RUN=hit"], env, n)


class Workspace:
    """The test workspace with cargo, its paths remapped (RECAST_TRIM_PATHS,
    which relocated rustc needs); a run's key is its --cfg."""
    name = "cargo workspace"

    def __init__(self, at, vendor):
        self.dir = workspace(at, vendor)
        self.units = None

    def _build(self, env, flags):
        subprocess.run(["cargo", "clean"], cwd=self.dir, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return timed(["cargo", "build", "--offline"], self.dir, dict(env, RUSTFLAGS=flags))

    def plain(self, env):
        return self._build(env, "")

    def wrapped(self, recast, env, run):
        return self._build(dict(env, RUSTC_WRAPPER=recast, RECAST_TRIM_PATHS="1"),
                           f"--cfg recast_bench_run_{run}")

    def hit(self, recast, env, n):
        return None


def measure(proj, recast, env, runs, hits):
    """cold (new keys), warm (the same again) and per-file hit medians;
    exits if a cold build did not run every compile remotely."""
    proj.wrapped(recast, env, "first")  # toolchain upload, probe, relocated copies
    cold, warm, served = [], [], []
    for run in range(runs):
        subprocess.run([recast, "stats", "--zero"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        cold.append(proj.wrapped(recast, env, run))
        s = stats(recast, env)
        local = sum(v for k, v in s["local_reasons"].items()
                    if k not in ("version_query", "print", "stdin_input"))
        if local or s["fallbacks"] or (proj.units and s["remote_executions"] < proj.units):
            sys.exit(f"{proj.name}: not every compile ran remotely: {s}")
        warm.append(proj.wrapped(recast, env, run))
        # The same, every result asked of the server (no local tier).
        served.append(proj.wrapped(recast, dict(env, RECAST_TIER_SIZE="0"), run))
    return dict(cold=statistics.median(cold), warm=statistics.median(warm),
                served=statistics.median(served), hit=proj.hit(recast, env, hits),
                hit_served=proj.hit(recast, dict(env, RECAST_TIER_SIZE="0"), hits))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--recast", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--hits", type=int, default=20)
    ap.add_argument("--servers", default="rooted,relocated,nativelink,nativelink-nodelay",
                    help="which servers, of rooted, relocated, nativelink (as it ships) "
                         "and nativelink-nodelay (with TCP_NODELAY set by an LD_PRELOAD "
                         "shim)")
    args = ap.parse_args()
    wanted = args.servers.split(",")
    recast = str(Path(args.recast).resolve())
    peers = Path(os.environ.get("RECAST_PEERS_DIR", Path.home() / ".cache/recast-peers"))
    nativelink = peers / "nativelink/bin/nativelink"
    vendor = peers / "vendor/cargo-ws"

    tmp = Path(tempfile.mkdtemp(prefix="recast-bench-relocated-"))
    results, layouts = {}, {}
    try:
        projects = [Zstd(tmp / "zstd")]
        if vendor.is_dir():
            projects.append(Workspace(tmp / "ws", vendor))
        base = dict(os.environ, CARGO_INCREMENTAL="0")
        for k in ["RECAST_REMOTE", "RECAST_MODE", "RECAST_PROJECT_ROOT", "RECAST_LOG",
                  "RUSTC_WRAPPER", "RUSTFLAGS", "CARGO_TARGET_DIR", "RECAST_TRIM_PATHS"]:
            base.pop(k, None)
        for proj in projects:
            proj.plain(base)  # the page cache, cargo's own state
            times = [proj.plain(base) for _ in range(args.runs)]
            results[(proj.name, "local")] = dict(cold=statistics.median(times), warm=None,
                                                 served=None, hit=None, hit_served=None)

        servers = [
            ("rooted", lambda d: RecastServer(recast, d)),
            ("relocated", lambda d: RecastServer(recast, d, ["--sandbox", "none"])),
        ]
        if nativelink.exists():
            servers.append(("nativelink", lambda d: NativeLink(nativelink, d)))
            servers.append(("nativelink-nodelay",
                            lambda d: NativeLink(nativelink, d, nodelay_shim(tmp))))
        servers = [(name, start) for name, start in servers if name in wanted]
        for name, start in servers:
            server = start(tmp / f"server-{name}")
            client = tmp / f"client-{name}"
            env = dict(base, RECAST_REMOTE=server.url, RECAST_CACHE_DIR=str(client),
                       RECAST_CONFIG=str(tmp / "none.toml"))
            try:
                for proj in projects:
                    results[(proj.name, name)] = measure(proj, recast, env, args.runs,
                                                         args.hits)
            finally:
                server.stop()
            probes = list((client / "probes").glob("*.json"))
            layouts[name] = (json.loads(probes[0].read_text()).get("layout") or "?"
                             if probes else "?").lower()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nmedians of {args.runs} runs ({args.hits} for per-file hits); "
          "cold: every compile a miss, the toolchain on the server\n")
    print("warm and per-file hit: from the local tier, then asked of the server (no tier)\n")
    print(f"{'project':<18}{'server':<20}{'layout':<11}{'cold build':>13}"
          f"{'warm build':>13}{'warm, server':>14}{'per-file hit':>15}{'hit, server':>14}")
    none = "       —   "

    def cell(v):
        return fmt(v) if v is not None else none
    for (proj, name), r in results.items():
        layout = layouts.get(name, "—")
        print(f"{proj:<18}{name:<20}{layout:<11}{fmt(r['cold']):>13}{cell(r['warm']):>13}"
              f"{cell(r['served']):>14}{cell(r['hit']):>15}{cell(r['hit_served']):>14}")
    print()
    for proj in dict.fromkeys(p for p, _ in results):
        local = results[(proj, "local")]["cold"]
        rooted = results.get((proj, "rooted"))
        for name in ("rooted", "relocated", "nativelink", "nativelink-nodelay"):
            r = results.get((proj, name))
            if r is None:
                continue
            line = f"{proj:<18}{name:<11} cold / local {r['cold'] / local:5.2f}"
            if name != "rooted" and rooted:
                line += (f"   / rooted: cold {r['cold'] / rooted['cold']:5.2f}"
                         f"  warm {r['warm'] / rooted['warm']:5.2f}"
                         f"  warm from the server {r['served'] / rooted['served']:5.2f}")
                if r["hit"] and rooted["hit"]:
                    line += f"  hit {r['hit'] / rooted['hit']:5.2f}"
            print(line)
        stock, shim = results.get((proj, "nativelink")), results.get((proj, "nativelink-nodelay"))
        if stock and shim:
            line = (f"{proj:<18}nativelink as it ships / with TCP_NODELAY: warm from the server "
                    f"{stock['served'] / shim['served']:5.2f}")
            if stock["hit_served"] and shim["hit_served"]:
                line += f"  hit from the server {stock['hit_served'] / shim['hit_served']:5.2f}"
            print(line + "   (aim <= 2)")
        if stock and rooted:
            print(f"{proj:<18}nativelink as it ships / rooted recast serve, warm from the "
                  f"server (empty tier): {stock['served'] / rooted['served']:5.2f}   (aim <= 3)")


if __name__ == "__main__":
    main()
