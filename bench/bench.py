#!/usr/bin/env python3
"""recast's benchmark: `recast serve` and buildbox-casd side by side.

Measures, against each server, with the same `recast` client:
  a) trivial action round trip: `recast run --skip-cache -- /bin/true`,
     wall time of the whole client process and the client's own `total`;
  b) first upload of a ~450 MB tree of mixed file sizes (fresh server each
     time): MB/s over the upload phase (FindMissingBlobs + batches +
     ByteStream) as the client reports it;
  c) FindMissingBlobs of ~10,000 present digests: the upload phase of a run
     whose 10,000-file input root the server already holds (so the phase is
     FindMissingBlobs alone, chunked as the client does it).

Prints a table of medians and the recast/casd ratios. Standard library
only; `bench/run.sh` builds the release binary and calls this.
"""

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

START_TIMEOUT = 60.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, what):
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{what} did not listen on 127.0.0.1:{port}")


class Server:
    """A server child process, stopped by its PID."""

    def __init__(self, name, proc, url, state):
        self.name, self.proc, self.url, self.state = name, proc, url, state

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.state, ignore_errors=True)


def start_recast(recast, scratch):
    state = Path(tempfile.mkdtemp(prefix="serve-", dir=scratch))
    proc = subprocess.Popen(
        [recast, "serve", "--listen", "127.0.0.1:0", "--allow-unauthenticated", "--dir", str(state / "dir")],
        stdout=subprocess.PIPE,
        stderr=open(state / "stderr.log", "wb"),
        stdin=subprocess.DEVNULL,
        env=client_env(state),
    )
    line = proc.stdout.readline().decode().strip()
    prefix = "listening on "
    if not line.startswith(prefix):
        proc.kill()
        sys.exit(f"recast serve printed {line!r}; see {state}/stderr.log")
    # The server prints only that line; the pipe stays open (never read
    # again) so a later write cannot fail with EPIPE.
    return Server("recast serve", proc, line[len(prefix):], state)


def start_casd(casd, runner, scratch):
    state = Path(tempfile.mkdtemp(prefix="casd-", dir=scratch))
    port = free_port()
    proc = subprocess.Popen(
        [
            casd,
            f"--bind=127.0.0.1:{port}",
            f"--buildbox-run={runner}",
            f"--jobs={os.cpu_count() or 2}",
            "--runner-arg=--ro-bind-mount=/usr:/usr",
            "--runner-arg=--ro-bind-mount=/usr/bin:/bin",
            "--runner-arg=--ro-bind-mount=/usr/lib:/lib",
            "--runner-arg=--ro-bind-mount=/usr/lib64:/lib64",
            str(state / "cache"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(state / "stderr.log", "wb"),
        stdin=subprocess.DEVNULL,
    )
    wait_listening(port, proc, "buildbox-casd")
    return Server("buildbox-casd", proc, f"grpc://127.0.0.1:{port}", state)


def client_env(cache_dir):
    """The environment of a client that sees no user configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECAST_")}
    env["RECAST_CACHE_DIR"] = str(cache_dir)
    env["RECAST_CONFIG"] = str(Path(cache_dir) / "no-such-config.toml")
    return env


def recast_run(recast, url, root, cache_dir, extra=()):
    """One `recast run --json`; returns (wall seconds, summary dict)."""
    cmd = [recast, "run", "--remote", url, "--input-root", str(root), "--json", *extra, "--", "/bin/true"]
    t = time.perf_counter()
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=client_env(cache_dir))
    wall = time.perf_counter() - t
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr.decode()}")
    summary = json.loads(out.stdout.decode().strip().splitlines()[-1])
    return wall, summary


def make_tree(root, total_mb, seed=42):
    """~total_mb of incompressible files: a few big, some medium, many small."""
    rng = random.Random(seed)
    budget = total_mb * 1_000_000
    plan = []
    big, medium = int(budget * 0.55), int(budget * 0.30)
    while big > 0:
        n = min(big, rng.randint(40, 90) * 1_000_000)
        plan.append(("big", n))
        big -= n
    while medium > 0:
        n = min(medium, rng.randint(1, 8) * 1_000_000)
        plan.append(("medium", n))
        medium -= n
    small = budget - sum(n for _, n in plan)
    while small > 0:
        n = min(small, rng.randint(1_000, 60_000))
        plan.append(("small", n))
        small -= n
    for i, (kind, n) in enumerate(plan):
        d = root / kind / f"d{i % 50:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.bin").write_bytes(os.urandom(n))
    return len(plan), sum(n for _, n in plan)


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recast", required=True)
    ap.add_argument("--runs", type=int, default=30, help="round trips per server (default 30)")
    ap.add_argument("--tree-mb", type=int, default=450, help="size of the upload tree (default 450)")
    ap.add_argument("--upload-reps", type=int, default=3, help="fresh-server uploads per server (default 3)")
    ap.add_argument("--find-files", type=int, default=10_000)
    ap.add_argument("--servers", default="recast,casd", help="which servers, comma-separated (default recast,casd)")
    args = ap.parse_args()

    peers = Path(os.environ.get("RECAST_PEERS_DIR") or Path.home() / ".cache/recast-peers") / "buildbox"
    casd_bin, runner = peers / "buildbox-casd", peers / "buildbox-run"
    have_casd = casd_bin.exists() and runner.exists() and shutil.which("bwrap")
    if not have_casd:
        print(f"buildbox-casd not in {peers} (bash scripts/peers/install.sh): recast serve only", file=sys.stderr)

    scratch = Path(tempfile.mkdtemp(prefix="recast-bench-"))
    wanted = set(args.servers.split(","))
    starters = []
    if "recast" in wanted:
        starters.append(("recast serve", lambda: start_recast(args.recast, scratch)))
    if have_casd and "casd" in wanted:
        starters.append(("buildbox-casd", lambda: start_casd(casd_bin, runner, scratch)))
    results = {name: {} for name, _ in starters}
    try:
        # a) trivial round trip
        empty = scratch / "empty"
        empty.mkdir()
        for name, start in starters:
            srv = start()
            cache = Path(tempfile.mkdtemp(dir=scratch))
            try:
                for _ in range(3):  # warm-up: capabilities cached, blobs present
                    recast_run(args.recast, srv.url, empty, cache, ["--skip-cache"])
                walls, totals = [], []
                for _ in range(args.runs):
                    wall, s = recast_run(args.recast, srv.url, empty, cache, ["--skip-cache"])
                    walls.append(wall * 1000)
                    totals.append(s["timings_ms"]["total"])
                results[name]["rt_wall"] = median(walls)
                results[name]["rt_total"] = median(totals)
            finally:
                srv.stop()
            print(f"{name}: round trip median {median(walls):.1f} ms wall, {median(totals):.1f} ms in client", file=sys.stderr)

        # b) first upload of a big tree
        tree = scratch / "tree"
        t = time.perf_counter()
        nfiles, nbytes = make_tree(tree, args.tree_mb)
        print(f"tree: {nfiles} files, {nbytes / 1e6:.0f} MB (made in {time.perf_counter() - t:.1f} s)", file=sys.stderr)
        for name, start in starters:
            rates, walls = [], []
            for _ in range(args.upload_reps):
                srv = start()
                cache = Path(tempfile.mkdtemp(dir=scratch))
                try:
                    wall, s = recast_run(args.recast, srv.url, tree, cache)
                finally:
                    srv.stop()
                    shutil.rmtree(cache, ignore_errors=True)
                up_ms = max(s["timings_ms"]["upload"], 1)
                rates.append(s["uploaded_bytes"] / 1e6 / (up_ms / 1000))
                walls.append(wall)
                print(f"{name}: uploaded {s['uploaded_bytes'] / 1e6:.0f} MB in {up_ms} ms, run {wall:.2f} s", file=sys.stderr)
            results[name]["up_mbps"] = median(rates)
            results[name]["up_wall"] = median(walls)
        shutil.rmtree(tree, ignore_errors=True)

        # c) FindMissingBlobs of N present digests
        many = scratch / "many"
        for i in range(args.find_files):
            d = many / f"d{i % 100:02d}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{i}.txt").write_text(f"file {i}\n")
        for name, start in starters:
            srv = start()
            cache = Path(tempfile.mkdtemp(dir=scratch))
            try:
                recast_run(args.recast, srv.url, many, cache)  # uploads them
                ups = []
                for _ in range(max(5, args.runs // 3)):
                    _, s = recast_run(args.recast, srv.url, many, cache, ["--skip-cache"])
                    assert s["uploaded_blobs"] == 0, s
                    ups.append(s["timings_ms"]["upload"])
                results[name]["find_ms"] = median(ups)
            finally:
                srv.stop()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    rows = [
        ("trivial action, wall per `recast run` (ms)", "rt_wall", "{:.1f}"),
        ("trivial action, client total (ms)", "rt_total", "{:.1f}"),
        (f"first upload of {args.tree_mb} MB tree (MB/s)", "up_mbps", "{:.0f}"),
        ("  same, whole `recast run` (s)", "up_wall", "{:.2f}"),
        (f"FindMissingBlobs, {args.find_files} present (ms)", "find_ms", "{:.0f}"),
    ]
    names = [n for n, _ in starters]
    head = f"{'median of runs':<46}" + "".join(f"{n:>16}" for n in names)
    if len(names) == 2:
        head += f"{'recast/casd':>14}"
    print(head)
    print("-" * len(head))
    for label, key, fmt in rows:
        line = f"{label:<46}"
        vals = [results[n].get(key) for n in names]
        for v in vals:
            line += f"{fmt.format(v) if v is not None else '-':>16}"
        if len(vals) == 2 and vals[0] and vals[1]:
            line += f"{vals[0] / vals[1]:>14.2f}"
        print(line)
    print(f"(round trips: {args.runs} per server after 3 warm-ups; uploads: {args.upload_reps} fresh servers each;"
          f" client timings have 1 ms resolution)")


if __name__ == "__main__":
    main()
