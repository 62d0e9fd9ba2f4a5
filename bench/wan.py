#!/usr/bin/env python3
"""A server that is not on this machine: recast across an emulated link.

`recast serve` runs on 127.0.0.1 behind bench/link.py, a proxy that adds
the round trip and bandwidth of a profile (lan, office, home; see
link.py). The project is zstd's library (as in bench/cc.py), `make -j2`.
For each profile, medians of --runs:

  per-file hit, one `-c` repeated:
    ccache          a local ccache hit (no network: the reference)
    seen here       recast, a result this machine already has (local tier:
                    no call)
    server, direct  recast, the result only on the server (tier off), each
                    wrapper process dialing the server itself
    server, front   the same through this user's warm front (RECAST_FRONT=on)
  warm build from an empty local tier (every result on the server, none
    here), direct and through the front, with the bytes each sent up and
    down the link, and through the front uncompressed (the rows compress
    as a far server gets: --compression always, since the link's proxy
    is on 127.0.0.1); plain local `make -j2` for reference
  cold build through the front (every compile executed on the server; the
    toolchain already there)
  losses: warm builds (no local tier) through a link that cuts or stalls
    --loss of its connections (2% by default; a stall lasts 5 s, then
    cuts), direct and through the front: builds failed and objects that
    differ from plain gcc's (both must be 0)

and the ratios the issue aims at: seen here / ccache (at most 2), server
through the front / one round trip (at most 1 RTT + 3 ms; the link's own
cost per round trip, measured by a ping through it, is printed and
subtracted), warm build
through the front against plain (at least 5x faster). Standard library
only; bench/wan.sh builds the release binary and calls this.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cc import RecastServer, build, fmt, per_file, project, timed  # noqa: E402
from link import PROFILES, Link, excess  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--recast", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--hits", type=int, default=15)
    ap.add_argument("--profiles", default="lan,office,home")
    ap.add_argument("--compression", default="always",
                    help="RECAST_COMPRESSION for the rows over the link (default always: "
                         "the link stands for a far server, for which auto compresses, "
                         "but its proxy is on 127.0.0.1)")
    ap.add_argument("--loss", type=float, default=0.02,
                    help="share of connections cut or stalled in the loss rows")
    args = ap.parse_args()
    recast = str(Path(args.recast).resolve())
    profiles = args.profiles.split(",")
    for p in profiles:
        if p not in PROFILES:
            sys.exit(f"unknown profile {p}; one of {', '.join(PROFILES)}")
    with tempfile.TemporaryDirectory(prefix="recast-wan-") as tmp:
        tmp = Path(tmp)
        base = {k: v for k, v in os.environ.items() if not k.startswith("RECAST_")}
        proj = project(tmp / "proj")
        server = RecastServer(recast, tmp / "server")
        port = int(server.url.rsplit(":", 1)[1])
        try:
            # Plain local reference, and ccache's local hit.
            plain = statistics.median(build(proj, "gcc", base) for _ in range(args.runs))
            cc_env = dict(base, CCACHE_DIR=str(tmp / "ccache"))
            ccache = per_file(proj, ["ccache", "gcc"], cc_env, args.hits)
            print(f"plain make -j2 {fmt(plain)}; ccache hit {fmt(ccache)}")
            # The toolchain and every result on the server once, over
            # loopback (as a colleague's or CI's build would have left them).
            fill = dict(base, RECAST_CACHE_DIR=str(tmp / "fill"), RECAST_REMOTE=server.url)
            build(proj, f"{recast} gcc", fill)
            per_file(proj, [recast, "gcc"], fill, 1)
            # The front's hit through a link with no delay and no bandwidth
            # limit, beside a direct one: the front's hop and the proxy's.
            link = Link(("127.0.0.1", port), "lan", rtt=0.0, rate=1e12)
            try:
                e = dict(base, RECAST_CACHE_DIR=str(tmp / "calibrate"),
                         RECAST_REMOTE=f"grpc://127.0.0.1:{link.port}",
                         RECAST_FRONT="on", RECAST_TIER_SIZE="0", RECAST_IDLE_TIMEOUT="600")
                own = per_file(proj, [recast, "gcc"], e, args.hits)
                subprocess.run([recast, "stop-server"], env=e, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            finally:
                link.stop()
            e = dict(base, RECAST_CACHE_DIR=str(tmp / "calibrate-direct"), RECAST_REMOTE=server.url,
                     RECAST_FRONT="off", RECAST_TIER_SIZE="0")
            loopback = per_file(proj, [recast, "gcc"], e, args.hits)
            print(f"a server hit on loopback {fmt(loopback)}; through the front and a link of "
                  f"0 ms {fmt(own)} (the front's and the proxy's hops: "
                  f"{(own - loopback) * 1000:+.1f} ms)")
            for name in profiles:
                link = Link(("127.0.0.1", port), name)
                rtt = PROFILES[name][0]
                url = f"grpc://127.0.0.1:{link.port}"
                try:
                    # The link's own cost a round trip: the proxy's hop and its
                    # sleeps' overshoot, as a ping sees both. (The 0 ms figure
                    # above also holds the front's hop, which is recast's.)
                    extra = excess(name)
                    print(f"{name}: the emulated link adds {extra * 1000:+.2f} ms to a round "
                          "trip (a ping through it)")
                    measure(name, rtt, link, url, recast, proj, base, tmp, args, plain, ccache,
                            extra)
                finally:
                    for d in tmp.glob(f"{name}-*"):
                        subprocess.run([recast, "stop-server"], env=dict(
                            base, RECAST_CACHE_DIR=str(d)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
                    link.stop()
        finally:
            server.stop()


def objects(proj, env):
    """Every object of the last build, by path (the plain build's with
    env set: it builds them first)."""
    if env is not None:
        build(proj, "gcc", env)
    return {p.relative_to(proj): p.read_bytes() for p in sorted((proj / "obj").rglob("*.o"))}


def measure(name, rtt, link, url, recast, proj, base, tmp, args, plain, ccache, emulation):
    def env(tag, **extra):
        return dict(base, RECAST_CACHE_DIR=str(tmp / f"{name}-{tag}"), RECAST_REMOTE=url,
                    RECAST_IDLE_TIMEOUT="600",
                    **dict({"RECAST_COMPRESSION": args.compression}, **extra))

    argv = [recast, "gcc"]
    seen = per_file(proj, argv, env("seen", RECAST_FRONT="off"), args.hits)
    direct = per_file(proj, argv, env("direct", RECAST_FRONT="off", RECAST_TIER_SIZE="0"),
                      args.hits)
    front_env = env("front", RECAST_FRONT="on", RECAST_TIER_SIZE="0")
    front = per_file(proj, argv, front_env, args.hits)
    # The bytes one such hit puts on the link (per_file: 1 + 4 calls), and
    # the link's own time for a round trip of that size.
    up0, down0 = link.counters()
    per_file(proj, argv, front_env, 4)
    hit_up, hit_down = ((b - a) // 5 for a, b in zip((up0, down0), link.counters()))
    carried = excess(name, up=hit_up, down=hit_down)

    def warm(tag, front_setting, **extra):
        times, ups, downs = [], [], []
        for run in range(args.runs):
            e = env(f"{tag}-{run}", RECAST_FRONT=front_setting, **extra)
            if front_setting == "on":
                # The front is up before the build, as it is after the first
                # compile of a day.
                per_file(proj, argv, dict(e, RECAST_TIER_SIZE="0"), 1)
            up0, down0 = link.counters()
            times.append(build(proj, f"{recast} gcc", e))
            up1, down1 = link.counters()
            ups.append(up1 - up0)
            downs.append(down1 - down0)
        return statistics.median(times), statistics.median(ups), statistics.median(downs)

    warm_direct = warm("warm-direct", "off")
    warm_front = warm("warm-front", "on")
    # The same without compression, for the bytes it saves.
    warm_raw = warm("warm-raw", "on", RECAST_COMPRESSION="never")

    # Cold: every key new (a -D of this run), executed on the server.
    colds = []
    for run in range(args.runs):
        e = env(f"cold-{run}", RECAST_FRONT="on")
        per_file(proj, argv, dict(e, RECAST_TIER_SIZE="0"), 1)
        subprocess.run(["make", "clean"], cwd=proj, env=e, check=True, stdout=subprocess.DEVNULL)
        up0, down0 = link.counters()
        colds.append((timed(["make", "-j2", f"CC={recast} gcc",
                             f"CFLAGS=-O2 -DWAN_{name.upper()}_{run}"], proj, e),
                      *(b - a for a, b in zip((up0, down0), link.counters()))))
    cold = statistics.median(c[0] for c in colds)
    cold_up = statistics.median(c[1] for c in colds)
    cold_down = statistics.median(c[2] for c in colds)

    # Losses: warm builds through a copy of the link that cuts or stalls
    # (5 s) a share of its connections. Nothing may fail or differ.
    lossy = Link(link.upstream, name, cut=args.loss, stall=5.0, seed=7)
    lossy_url = f"grpc://127.0.0.1:{lossy.port}"
    want = objects(proj, base)
    loss_rows = []
    try:
        for front_setting in ("off", "on"):
            failed = differ = 0
            times = []
            for run in range(args.runs):
                e = dict(env(f"loss-{front_setting}-{run}", RECAST_FRONT=front_setting,
                             RECAST_TIER_SIZE="0"), RECAST_REMOTE=lossy_url)
                subprocess.run(["make", "clean"], cwd=proj, env=e, check=True,
                               stdout=subprocess.DEVNULL)
                t = time.monotonic()
                done = subprocess.run(["make", "-j2", f"CC={recast} gcc"], cwd=proj, env=e,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                times.append(time.monotonic() - t)
                failed += done.returncode != 0
                differ += done.returncode == 0 and objects(proj, None) != want
            loss_rows.append((front_setting, statistics.median(times), failed, differ))
    finally:
        cuts, conns = lossy.cuts, lossy.connections
        lossy.stop()

    kib = 1024
    print(f"\n== {name}: {rtt * 1000:.0f} ms round trip ==")
    print(f"  per-file hit   ccache          {fmt(ccache)}")
    print(f"                 seen here       {fmt(seen)}   {seen / ccache:5.2f}x ccache (aim <= 2)")
    print(f"                 server, direct  {fmt(direct)}   {direct / rtt:5.2f} round trips")
    print(f"                 server, front   {fmt(front)}   {front / rtt:5.2f} round trips, "
          f"{(front - rtt) * 1000:+.1f} ms over one; "
          f"{(front - rtt - emulation) * 1000:+.1f} ms net of a ping's emulation")
    print(f"                                 {hit_up} B up, {hit_down} B down a hit; "
          f"{(front - rtt - carried) * 1000:+.1f} ms over the link's own time for them "
          f"({carried * 1000:.2f} ms beyond the delay) (aim <= +3)")
    print(f"  warm make -j2  direct          {fmt(warm_direct[0])}   "
          f"up {warm_direct[1] / kib:7.0f} KiB  down {warm_direct[2] / kib:7.0f} KiB")
    print(f"                 front           {fmt(warm_front[0])}   "
          f"up {warm_front[1] / kib:7.0f} KiB  down {warm_front[2] / kib:7.0f} KiB   "
          f"{plain / warm_front[0]:5.2f}x faster than plain (aim >= 5)")
    print(f"                 front, raw      {fmt(warm_raw[0])}   "
          f"up {warm_raw[1] / kib:7.0f} KiB  down {warm_raw[2] / kib:7.0f} KiB   "
          f"(RECAST_COMPRESSION=never; the rows above: {args.compression})")
    print(f"  cold make -j2  front           {fmt(cold)}   "
          f"up {cold_up / kib:7.0f} KiB  down {cold_down / kib:7.0f} KiB   "
          f"{cold / plain:5.2f}x plain")
    for front_setting, t, failed, differ in loss_rows:
        label = "front" if front_setting == "on" else "direct"
        print(f"  {args.loss:.0%} cut     {label:15} {fmt(t)}   builds failed {failed}, "
              f"objects differing {differ} (aim 0, 0)")
    print(f"                 ({cuts} of {conns} connections cut or stalled)")
    sys.stdout.flush()


if __name__ == "__main__":
    if not shutil.which("ccache"):
        sys.exit("ccache is not installed (scripts/peers/install.sh installs it)")
    main()
