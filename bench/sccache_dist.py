"""sccache-dist on 127.0.0.1 for the benchmarks: a scheduler, one build
server (bubblewrap "overlay" builder, as sccache's docs set it up) and a
client config, all under one directory, with token auth between them.

    dist = SccacheDist(sccache_bin_dir, workdir)   # starts both daemons
    env = dist.client_env(base_env)                # SCCACHE_CONF & co.
    dist.fresh_client(env)                         # empty local cache
    dist.stop()

The client's local cache is emptied between runs; the toolchains stay on
the build server (as recast's stay in its CAS), so a "cold" run measures
distributed misses, and the first run with the toolchain upload is kept
apart. Standard library only.
"""

import secrets
import statistics
import shutil
import socket
import subprocess
import time
from pathlib import Path


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port, what, proc, log):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port}")


class SccacheDist:
    def __init__(self, bindir, work, via=None):
        """`via(port)`, if given, is the port clients use to reach the
        daemon on `port` (a link in front of it, bench/link.py): the
        client's scheduler URL and the build server's public address go
        through it, while the build server reaches the scheduler direct."""
        self.sccache = str(Path(bindir) / "sccache")
        dist = str(Path(bindir) / "sccache-dist")
        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        client_token, server_token = secrets.token_hex(16), secrets.token_hex(16)
        sched_port, server_port = _free_port(), _free_port()
        self.client_port = _free_port()
        via = via or (lambda port: port)
        client_sched, public_server = via(sched_port), via(server_port)
        w = self.work
        (w / "scheduler.toml").write_text(
            f'public_addr = "127.0.0.1:{sched_port}"\n'
            f'[client_auth]\ntype = "token"\ntoken = "{client_token}"\n'
            f'[server_auth]\ntype = "token"\ntoken = "{server_token}"\n')
        (w / "server.toml").write_text(
            f'public_addr = "127.0.0.1:{public_server}"\n'
            f'bind_address = "127.0.0.1:{server_port}"\n'
            f'scheduler_url = "http://127.0.0.1:{sched_port}"\n'
            f'cache_dir = "{w / "server-toolchains"}"\n'
            f'[builder]\ntype = "overlay"\nbuild_dir = "{w / "build"}"\n'
            f'bwrap_path = "{shutil.which("bwrap") or "/usr/bin/bwrap"}"\n'
            f'[scheduler_auth]\ntype = "token"\ntoken = "{server_token}"\n')
        (w / "client.toml").write_text(
            f'[dist]\nscheduler_url = "http://127.0.0.1:{client_sched}"\n'
            f'toolchains = []\ncache_dir = "{w / "client-toolchains"}"\n'
            f'[dist.auth]\ntype = "token"\ntoken = "{client_token}"\n'
            f'[cache.disk]\ndir = "{w / "cache"}"\n')
        env = {"SCCACHE_NO_DAEMON": "1", "PATH": "/usr/bin:/bin"}
        self.procs = []
        for role, port in [("scheduler", sched_port), ("server", server_port)]:
            log = w / f"{role}.log"
            p = subprocess.Popen([dist, role, "--config", str(w / f"{role}.toml")],
                                 env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
            self.procs.append(p)
            _wait_port(port, f"sccache-dist {role}", p, log)
        # The build server registers with the scheduler by heartbeat.
        time.sleep(1)

    def client_env(self, base):
        return dict(base, SCCACHE_CONF=str(self.work / "client.toml"),
                    SCCACHE_SERVER_PORT=str(self.client_port), SCCACHE_DIRECT="true",
                    SCCACHE_DIR=str(self.work / "cache"))

    def _client(self, env, arg):
        subprocess.run([self.sccache, arg], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=arg == "--start-server")

    def fresh_client(self, env):
        """An empty local cache and a new client daemon."""
        self._client(env, "--stop-server")
        shutil.rmtree(self.work / "cache", ignore_errors=True)
        self._client(env, "--start-server")

    def distributed(self, env):
        """How many compiles the build server did for this client daemon."""
        out = subprocess.run([self.sccache, "--show-stats"], env=env,
                             capture_output=True, text=True).stdout
        lines = out.splitlines()
        total = 0
        if "Successful distributed compiles" in out:
            i = lines.index("Successful distributed compiles")
            for line in lines[i + 1:]:
                parts = line.split()
                if len(parts) != 2 or not parts[1].isdigit():
                    break
                total += int(parts[1])
        return total

    def measure(self, base, build, runs):
        """The first build (toolchain packaged and shipped), then `runs`
        cold builds each from an empty local cache. `build(env)` returns
        seconds. Stops everything afterwards."""
        env = self.client_env(base)
        try:
            self.fresh_client(env)
            first = build(env)
            cold = []
            for _ in range(runs):
                self.fresh_client(env)
                cold.append(build(env))
            return dict(cold=statistics.median(cold), warm=None, hit=None, first=first,
                        distributed=self.distributed(env))
        finally:
            self.stop_client(env)
            self.stop()

    def stop_client(self, env):
        self._client(env, "--stop-server")

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
