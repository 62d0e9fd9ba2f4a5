#!/usr/bin/env python3
"""When remote pays: plain local, recast cache-only, recast remote
execution and sccache-dist, side by side, across emulated links.

Every server sits on 127.0.0.1 behind bench/link.py (lan 1 ms and
1 Gbit/s, office 40 ms and 100 Mbit/s, home 80 ms and 20 Mbit/s). Two
projects: zstd's library (as in bench/cc.py, `make -j2`) and the cargo
test workspace (as in bench/rust.py, `cargo build`, dev profile,
CARGO_INCREMENTAL=0). For each profile, project and setup:

  cold      every compile a miss: recast with an empty local tier and scan
            cache, against a new server that holds the toolchains (put
            there over loopback by a small project of the same compilers)
            and nothing of the project, so the build sends its sources;
            sccache-dist with an empty local cache (its toolchain already
            on the build server)
  warm      a machine that has never built the project, the results on
            the server (a colleague's or CI's build): recast with an empty
            local tier and scan cache; sccache-dist has no shared cache,
            so its warm row is its own local cache, the second build
  first     the very first compile against a server that does not hold
            the toolchain: recast starts the upload in the background and
            compiles here; the upload's own time is given beside it.
            sccache-dist: its first build, the toolchain packaged and
            shipped
  hit       one compile repeated, its result on the server and not in the
            local tier (recast) or in the local cache (sccache)

recast goes through the warm front (RECAST_FRONT=on) with compression on
(RECAST_COMPRESSION=always: the link's proxy is on 127.0.0.1, where
`auto` would not compress), and the bytes each build sent up and down
the link are printed. The cargo hit is one rustc invocation (the `itoa`
crate's, as `cargo build -v` printed it) run again through recast.

Prints medians of --runs runs (the first compile: one run) and the ratios
issue 23 aims at. Standard library only; bench/wan_table.sh builds the
release binary and calls this. With 3 runs: lan about 3 minutes, office 7,
home 14 (the toolchains go up at 20 Mbit/s).
"""

import argparse
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import cc  # noqa: E402
import rust  # noqa: E402
from cc import RecastServer, fmt, timed  # noqa: E402
from link import PROFILES, Link  # noqa: E402
from sccache_dist import SccacheDist  # noqa: E402

CLIENT_DIRS = ["deps", "crates", "twins", "tier", "outbox"]


def tiny_c(at):
    if not at.exists():
        (at / ".git").mkdir(parents=True)
        (at / "tiny.c").write_text("int tiny(int x) { return x + 1; }\n")
    return at


def tiny_cargo(at):
    (at / ".git").mkdir(parents=True)
    (at / "src").mkdir()
    (at / "Cargo.toml").write_text(
        '[package]\nname = "fill"\nversion = "0.1.0"\nedition = "2021"\n')
    (at / "build.rs").write_text('fn main() { println!("cargo:rustc-env=FILL=1"); }\n')
    (at / "src/lib.rs").write_text("pub fn fill() -> &'static str { env!(\"FILL\") }\n")
    (at / "src/main.rs").write_text("fn main() { println!(\"{}\", fill::fill()); }\n")
    return at


class Zstd:
    name = "zstd"

    def __init__(self, at):
        self.dir = cc.project(at)
        self.tiny = tiny_c(at.parent / "fill-c")

    def build(self, env, wrapper):
        cc_ = f"{wrapper} gcc" if wrapper else "gcc"
        return cc.build(self.dir, cc_, env)

    def fill(self, env, recast):
        """gcc's toolchain onto the server, with nothing of zstd."""
        subprocess.run([recast, "gcc", "-O2", "-c", "tiny.c", "-o", "fill.o"],
                       cwd=self.tiny, env=env, check=True)

    def one(self, env, wrapper):
        """One compile's argv and cwd (its result written to one.o)."""
        argv = ([wrapper] if wrapper else []) + [
            "gcc", "-O2", "-Ilib", "-Ilib/common", "-c", "lib/common/entropy_common.c",
            "-o", "one.o"]
        return argv, self.dir, env


class Cargo:
    name = "cargo-ws"

    def __init__(self, at, vendor):
        self.dir = rust.workspace(at, vendor)
        self.itoa = None
        self.tiny = tiny_cargo(at.parent / "fill-cargo")

    def fill(self, env, recast):
        """rustc's toolchain (and what build scripts and linking need) onto
        the server, from a small package of its own: a build script, a
        library and a binary."""
        rust.build(self.tiny, rust.wrapped(env, recast))

    def build(self, env, wrapper):
        if wrapper:
            env = rust.wrapped(env, wrapper)
        return rust.build(self.dir, env)

    def one(self, env, wrapper):
        """The itoa crate's rustc invocation as cargo ran it (its env,
        its argv), through `wrapper` if given."""
        if self.itoa is None:
            subprocess.run(["cargo", "clean"], cwd=self.dir, env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            out = subprocess.run(["cargo", "build", "--offline", "-v"], cwd=self.dir, env=env,
                                 check=True, capture_output=True, text=True).stderr
            line = next(m.group(1) for m in re.finditer(r"Running `(.*)`$", out, re.M)
                        if "--crate-name itoa" in m.group(1))
            words = shlex.split(line)
            assigns = {}
            while "=" in words[0] and not words[0].startswith("/"):
                k, v = words.pop(0).split("=", 1)
                assigns[k] = v
            self.itoa = (assigns, words)
        assigns, words = self.itoa
        argv = ([wrapper] if wrapper else []) + words
        return argv, self.dir, dict(env, **assigns)


def run_one(project, env, wrapper):
    argv, cwd, e = project.one(env, wrapper)
    return timed(argv, cwd, e)


def hit(project, env, wrapper, n):
    run_one(project, env, wrapper)
    return statistics.median(run_one(project, env, wrapper) for _ in range(n))


def fresh_client(cache):
    for d in CLIENT_DIRS:
        shutil.rmtree(cache / d, ignore_errors=True)


def stop_recast(recast, env):
    subprocess.run([recast, "stop-server"], env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def wait_upload(cache, limit=3600):
    """Seconds until the background upload a compile started is over."""
    t = time.monotonic()
    while time.monotonic() - t < limit:
        uploads = cache / "uploads"
        marked = (cache / "uploaded").is_dir() and any((cache / "uploaded").iterdir())
        pending = uploads.is_dir() and any(p.suffix == ".json" for p in uploads.iterdir())
        if marked and not pending:
            return time.monotonic() - t
        time.sleep(0.1)
    sys.exit(f"the background upload from {cache} did not finish in {limit} s")


def wait_outbox(cache, limit=600):
    """Seconds until the results a build left to the background publisher
    (RECAST_PUBLISH) are all sent."""
    t = time.monotonic()
    outbox = cache / "outbox"
    while time.monotonic() - t < limit:
        left = [p for d in (outbox.iterdir() if outbox.is_dir() else [])
                for p in d.iterdir() if p.suffix == ".json"]
        if not left:
            return time.monotonic() - t
        time.sleep(0.05)
    sys.exit(f"the outbox of {cache} was not sent in {limit} s")


def recast_rows(recast, project, profile, base, tmp, runs, hits):
    """cache-only and remote rows for one project over one link. Each run
    has a server of its own that holds the toolchains (put there over
    loopback by a small project of the same compilers) and nothing of the
    project: a cold build sends its sources."""
    rows = {}
    for mode in ("cache-only", "remote"):
        cold, sent, warm, cold_bytes, warm_bytes = [], [], [], [], []
        for run in range(runs):
            tag = f"{profile}-{project.name}-{mode}-{run}"
            state = tmp / f"server-{tag}"
            server = RecastServer(recast, state)
            fill = dict(base, RECAST_CACHE_DIR=str(tmp / f"fill-{tag}"), RECAST_REMOTE=server.url,
                        RECAST_CONFIG=str(tmp / "none.toml"))
            project.fill(fill, recast)
            stop_recast(recast, fill)
            link = Link(("127.0.0.1", int(server.url.rsplit(":", 1)[1])), profile)
            cache = tmp / tag
            env = dict(base, RECAST_CACHE_DIR=str(cache),
                       RECAST_REMOTE=f"grpc://127.0.0.1:{link.port}", RECAST_MODE=mode,
                       RECAST_FRONT="on", RECAST_COMPRESSION="always",
                       RECAST_PUBLISH="background",
                       RECAST_IDLE_TIMEOUT="900", RECAST_CONFIG=str(tmp / "none.toml"))
            try:
                # The front is up before the build, as after the day's
                # first compile (a compile of its own, with its own key).
                subprocess.run([recast, "gcc", "-O2", "-c", "tiny.c", "-o", "front.o"],
                               cwd=tmp / "fill-c", env=env, check=True)
                fresh_client(cache)
                b0 = link.counters()
                cold.append(project.build(env, recast))
                # Results compiled here go up after the build; all of
                # them before another machine looks.
                sent.append(wait_outbox(cache))
                b1 = link.counters()
                cold_bytes.append(tuple(y - x for x, y in zip(b0, b1)))
                # Another machine: the results are on the server only.
                fresh_client(cache)
                warm.append(project.build(env, recast))
                b2 = link.counters()
                warm_bytes.append(tuple(y - x for x, y in zip(b1, b2)))
                if run == runs - 1:
                    h = hit(project, dict(env, RECAST_TIER_SIZE="0"), recast, hits)
            finally:
                stop_recast(recast, env)
                link.stop()
                server.stop()
                shutil.rmtree(state, ignore_errors=True)
        rows[mode] = dict(cold=statistics.median(cold), sent=statistics.median(sent),
                          warm=statistics.median(warm), hit=h,
                          cold_bytes=median_pair(cold_bytes), warm_bytes=median_pair(warm_bytes))
    return rows


def median_pair(pairs):
    return (statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs))


def first_compile(recast, project, profile, base, tmp):
    """The first compile against a server that lacks the toolchain, over
    the link; and how long its background upload took after it."""
    state = tmp / f"{profile}-{project.name}-fresh-server"
    server = RecastServer(recast, state)
    link = Link(("127.0.0.1", int(server.url.rsplit(":", 1)[1])), profile)
    cache = tmp / f"{profile}-{project.name}-first"
    env = dict(base, RECAST_CACHE_DIR=str(cache), RECAST_FRONT="on",
               RECAST_REMOTE=f"grpc://127.0.0.1:{link.port}", RECAST_MODE="remote",
               RECAST_TOOLCHAIN_UPLOAD="background", RECAST_COMPRESSION="always",
               RECAST_PUBLISH="background", RECAST_CONFIG=str(tmp / "none.toml"))
    try:
        first = run_one(project, env, recast)
        upload = wait_upload(cache)
        up = link.counters()[0]
        # Once the toolchain is there, the same compile again: a hit, the
        # first one's result having gone up meanwhile.
        second = run_one(project, env, recast)
        stop_recast(recast, env)
        return dict(first=first, upload=upload, upload_bytes=up, second=second)
    finally:
        link.stop()
        server.stop()
        shutil.rmtree(state, ignore_errors=True)


def sccache_rows(sccache, project, profile, base, tmp, runs, hits):
    link = Link(None, profile)
    dist = SccacheDist(sccache.parent, tmp / f"{profile}-{project.name}-sccache-dist",
                       via=lambda port: link.add(("127.0.0.1", port)))
    env = dist.client_env(base)
    if project.name == "cargo-ws":
        env["RUSTC_WRAPPER"] = str(sccache)
        wrapper = None
    else:
        wrapper = str(sccache)
    try:
        dist.fresh_client(env)
        first = project.build(env, wrapper)
        cold, warm = [], []
        for _ in range(runs):
            dist.fresh_client(env)
            cold.append(project.build(env, wrapper))
            warm.append(project.build(env, wrapper))
        distributed = dist.distributed(env)
        if project.name == "cargo-ws":
            # sccache wraps rustc through RUSTC_WRAPPER, not in argv.
            argv, cwd, e = project.one(env, None)
            argv = [str(sccache)] + argv
            timed(argv, cwd, e)
            h = statistics.median(timed(argv, cwd, e) for _ in range(hits))
        else:
            h = hit(project, env, wrapper, hits)
        return dict(first=first, cold=statistics.median(cold), warm=statistics.median(warm),
                    hit=h, distributed=distributed)
    finally:
        dist.stop_client(env)
        dist.stop()
        link.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--recast", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--hits", type=int, default=9)
    ap.add_argument("--profiles", default="lan,office,home")
    ap.add_argument("--projects", default="zstd,cargo-ws")
    args = ap.parse_args()
    recast = str(Path(args.recast).resolve())
    peers = Path(os.environ.get("RECAST_PEERS_DIR", Path.home() / ".cache/recast-peers"))
    sccache = peers / "sccache/bin/sccache"
    have_dist = (sccache.parent / "sccache-dist").exists() and shutil.which("bwrap")
    if not have_dist:
        print("sccache-dist is not installed (scripts/peers/install.sh): its column is left out")
    vendor = peers / "vendor/cargo-ws"
    profiles = args.profiles.split(",")
    for p in profiles:
        if p not in PROFILES:
            sys.exit(f"unknown profile {p}; one of {', '.join(PROFILES)}")
    tmp = Path(tempfile.mkdtemp(prefix="recast-wan-table-"))
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("RECAST_", "SCCACHE_"))
            and k not in ("RUSTC_WRAPPER", "CC", "CXX", "CARGO_TARGET_DIR", "RUSTFLAGS")}
    base["CARGO_INCREMENTAL"] = "0"
    results = {}
    try:
        projects = []
        for name in args.projects.split(","):
            if name == "zstd":
                projects.append(Zstd(tmp / "zstd"))
            elif name == "cargo-ws":
                if not vendor.is_dir():
                    sys.exit(f"{vendor} is missing: bash scripts/peers/install.sh")
                projects.append(Cargo(tmp / "ws", vendor))
            else:
                sys.exit(f"unknown project {name}: zstd or cargo-ws")
        tiny_c(tmp / "fill-c")
        for project in projects:
            project.build(base, None)  # warm the page cache
            plain = statistics.median(project.build(base, None) for _ in range(args.runs))
            one = statistics.median(run_one(project, base, None) for _ in range(args.hits))
            results[("plain", project.name)] = dict(cold=plain, warm=plain, one=one)

        for profile in profiles:
            for project in projects:
                rows = recast_rows(recast, project, profile, base, tmp, args.runs, args.hits)
                for mode, r in rows.items():
                    results[(profile, project.name, mode)] = r
                results[(profile, project.name, "first")] = first_compile(
                    recast, project, profile, base, tmp)
                if have_dist:
                    results[(profile, project.name, "sccache-dist")] = sccache_rows(
                        sccache, project, profile, base, tmp, args.runs, args.hits)
                report(results, profile, project, args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def report(results, profile, project, args):
    rtt, rate = PROFILES[profile]
    plain = results[("plain", project.name)]
    co = results[(profile, project.name, "cache-only")]
    rx = results[(profile, project.name, "remote")]
    fc = results[(profile, project.name, "first")]
    sd = results.get((profile, project.name, "sccache-dist"))
    kib = 1024
    none = f"{'—':>11}"
    print(f"\n== {project.name} over {profile} ({rtt * 1000:.0f} ms, {rate * 8 / 1e6:.0f} Mbit/s), "
          f"medians of {args.runs} ({args.hits} for hits) ==")
    print(f"{'':<14}{'plain':>11}{'cache-only':>13}{'remote':>11}{'sccache-dist':>14}")
    print(f"{'cold build':<14}{fmt(plain['cold']):>11}{fmt(co['cold']):>13}{fmt(rx['cold']):>11}"
          f"{fmt(sd['cold']) if sd else none:>14}")
    print(f"{'warm build':<14}{fmt(plain['warm']):>11}{fmt(co['warm']):>13}{fmt(rx['warm']):>11}"
          f"{fmt(sd['warm']) if sd else none:>14}   (sccache-dist: its own local cache)")
    print(f"{'first':<14}{fmt(plain['one']):>11}{none:>13}{fmt(fc['first']):>11}"
          f"{fmt(sd['first']) if sd else none:>14}   (recast: one compile, here, while "
          f"{fc['upload_bytes'] / 2**20:.0f} MiB go up in {fc['upload']:.1f} s; then "
          f"{fmt(fc['second']).strip()} again, a hit; sccache-dist: its first build)")
    print(f"{'one hit':<14}{fmt(plain['one']):>11}{fmt(co['hit']):>13}{fmt(rx['hit']):>11}"
          f"{fmt(sd['hit']) if sd else none:>14}   (plain: the compile itself)")
    for mode, r in (("cache-only", co), ("remote", rx)):
        print(f"  bytes, {mode:<10} cold up {r['cold_bytes'][0] / kib:8.0f} KiB, down "
              f"{r['cold_bytes'][1] / kib:8.0f} KiB; warm up {r['warm_bytes'][0] / kib:6.0f} KiB,"
              f" down {r['warm_bytes'][1] / kib:8.0f} KiB; results compiled here all sent "
              f"{r['sent']:.1f} s after the cold build")
    print(f"  remote warm: {plain['cold'] / rx['warm']:5.2f}x faster than plain (aim >= 5 on office)")
    if sd:
        print(f"  cache-only cold / sccache-dist cold: {co['cold'] / sd['cold']:5.2f}")
    print(f"  remote cold / plain: {rx['cold'] / plain['cold']:5.2f}; "
          f"cache-only cold / plain: {co['cold'] / plain['cold']:5.2f}")
    if sd:
        print(f"  remote cold / sccache-dist cold: {rx['cold'] / sd['cold']:5.2f} (aim <= 1 on office); "
              f"sccache-dist distributed {sd['distributed']} compiles in its last cold build")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
