#!/usr/bin/env python3
"""recast worker benchmark: BuildGrid 0.9.1 as the scheduler, `recast
worker` as its bots, `recast run` as the client.

Measures:
  a) trivial action latency: `recast run --skip-cache -- /bin/true`
     through BuildGrid and one worker, one at a time; median wall time of
     the client process and of its `execute` phase (aim: <= 100 ms);
  b) throughput: N distinct small actions (default 200) with 2 workers,
     CONCURRENCY clients in flight; actions per second.

Brings up a private PostgreSQL 15 cluster and BuildGrid (the tuned config
of tests/common/buildgrid.rs) on free ports, stops everything by PID at the
end. Needs `bash scripts/peers/install.sh`. Standard library only;
`bench/worker.sh` builds the release binary and calls this.
"""

import argparse
import concurrent.futures
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")
START_TIMEOUT = 60.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, what, log):
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited with {proc.returncode}; see {log}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{what} did not listen on 127.0.0.1:{port}; see {log}")


def as_postgres(tool, *args):
    cmd = [str(PG_BIN / tool), *args]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


CONFIG = """server:
  - !channel
    address: "127.0.0.1:{port}"
    insecure-mode: true
authorization:
  method: none
connections:
  - !sql-connection &sql
    connection-string: {db}
    pool-size: 5
    pool-timeout: 30
    max-overflow: 10
storages:
  - !disk-storage &cas-storage
    path: {cas}
caches:
  - !lru-action-cache &ac
    storage: *cas-storage
    max-cached-refs: 4096
    allow-updates: true
    cache-failed-actions: true
schedulers:
  - !sql-scheduler &sched
    sql: *sql
    storage: *cas-storage
    action-cache: *ac
    property-set: !dynamic-property-set
      match-property-keys: [OSFamily, ISA]
      wildcard-property-keys: [container-image]
    bot-session-keepalive-timeout: 30
    max-execution-timeout: 600
    poll-interval: 0.1
    bot-poll-interval: 0.1
    assigners:
      - !priority-age-assigner
        count: 1
        interval: 0.05
        jitter-factor: 0
instances:
  - name: ""
    services:
      - !action-cache
        cache: *ac
      - !execution
        scheduler: *sched
        endpoints: [execution, operations, bots]
      - !cas
        storage: *cas-storage
      - !bytestream
        storage: *cas-storage
thread-pool-size: 20
"""


class World:
    """PostgreSQL + BuildGrid + workers, all stopped by PID in stop()."""

    def __init__(self, bgd, scratch):
        self.procs = []
        self.dir = Path(tempfile.mkdtemp(prefix="bench-bgd-", dir="/tmp"))
        os.chmod(self.dir, 0o755)
        self.scratch = scratch
        pg = self.dir / "pg"
        pg.mkdir()
        if os.geteuid() == 0:
            shutil.chown(pg, "postgres")
        self.pg_data = pg / "data"
        subprocess.run(as_postgres("initdb", "-D", str(self.pg_data), "-U", "bgd", "--auth=trust", "--no-sync"),
                       check=True, stdout=subprocess.DEVNULL)
        pg_port = free_port()
        opts = (f"-c listen_addresses=127.0.0.1 -p {pg_port} -k {pg} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        subprocess.run(as_postgres("pg_ctl", "-D", str(self.pg_data), "-l", str(pg / "log"), "-w", "-o", opts, "start"),
                       check=True, stdout=subprocess.DEVNULL)
        db = f"postgresql+psycopg://bgd@127.0.0.1:{pg_port}/postgres"
        subprocess.run([bgd, "migrate", "apply", db], check=True, stdout=subprocess.DEVNULL)
        self.port = free_port()
        config = self.dir / "bgd.yml"
        config.write_text(CONFIG.format(port=self.port, db=db, cas=self.dir / "cas"))
        log = self.dir / "bgd.log"
        proc = subprocess.Popen([bgd, "server", "start", str(config)], stdout=open(log, "wb"),
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs.append(proc)
        wait_listening(self.port, proc, "bgd server", log)
        self.url = f"grpc://127.0.0.1:{self.port}"

    def worker(self, recast, name, jobs=1):
        d = self.dir / f"worker-{name}"
        proc = subprocess.Popen([recast, "worker", "--scheduler", self.url, "--name", name,
                                 "--jobs", str(jobs), "--dir", str(d)],
                                stdout=subprocess.DEVNULL, stderr=open(self.dir / f"{name}.log", "wb"),
                                stdin=subprocess.DEVNULL, env=client_env(self.scratch))
        self.procs.append(proc)
        return proc

    def stop_worker(self, proc):
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.kill()
            p.wait()
        subprocess.run(as_postgres("pg_ctl", "-D", str(self.pg_data), "-m", "immediate", "-w", "stop"),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)


def client_env(cache_dir):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECAST_")}
    env["RECAST_CACHE_DIR"] = str(cache_dir)
    env["RECAST_CONFIG"] = str(Path(cache_dir) / "no-such-config.toml")
    return env


def run(recast, url, root, cache, argv):
    t = time.monotonic()
    out = subprocess.run([recast, "run", "--remote", url, "--json", "--skip-cache", "--input-root", str(root),
                          "--", *argv], capture_output=True, env=client_env(cache))
    wall = time.monotonic() - t
    if out.returncode != 0:
        sys.exit(f"recast run {argv} failed: {out.stderr.decode()}")
    summary = json.loads(out.stdout.decode().splitlines()[-1])
    return wall, summary


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recast", required=True)
    ap.add_argument("--runs", type=int, default=30, help="trivial round trips (default 30)")
    ap.add_argument("--actions", type=int, default=200, help="actions in the throughput run (default 200)")
    ap.add_argument("--concurrency", type=int, default=16, help="clients in flight (default 16)")
    args = ap.parse_args()
    peers = Path(os.environ.get("RECAST_PEERS_DIR") or Path.home() / ".cache/recast-peers")
    bgd = peers / "buildgrid/bin/bgd"
    if not bgd.exists():
        sys.exit(f"no BuildGrid at {bgd}: run `bash scripts/peers/install.sh`")
    recast = str(Path(args.recast).resolve())
    scratch = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    world = World(str(bgd), scratch)
    try:
        root = scratch / "root"
        root.mkdir()
        cache = scratch / "client"
        first = world.worker(recast, "w1")
        # Warm up: sessions created, capabilities cached, code paged in.
        for _ in range(3):
            run(recast, world.url, root, cache, ["/bin/true"])
        walls, execs = [], []
        for _ in range(args.runs):
            wall, s = run(recast, world.url, root, cache, ["/bin/true"])
            walls.append(wall * 1000)
            execs.append(s["timings_ms"]["execute"])
        lat_wall = statistics.median(walls)
        lat_exec = statistics.median(execs)

        world.worker(recast, "w2")
        time.sleep(1.0)  # let the second bot session register
        t = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(lambda i: run(recast, world.url, root, cache, ["/bin/echo", f"action {i}"]),
                          range(args.actions)))
        elapsed = time.monotonic() - t
        world.stop_worker(first)
    finally:
        world.stop()
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"{'measurement':<52} {'value':>10}")
    print(f"{'trivial action, client wall (median of %d)' % args.runs:<52} {lat_wall:>8.1f} ms")
    print(f"{'trivial action, client execute phase (median)':<52} {lat_exec:>8.1f} ms")
    print(f"{'%d small actions, 2 workers, %d clients' % (args.actions, args.concurrency):<52} {elapsed:>8.2f} s")
    print(f"{'throughput':<52} {args.actions / elapsed:>6.1f} actions/s")
    verdict = "meets" if lat_wall <= 100 else "misses"
    print(f"latency {verdict} the 100 ms aim")


if __name__ == "__main__":
    main()
