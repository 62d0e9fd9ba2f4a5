#!/usr/bin/env python3
"""An emulated network link: a TCP proxy on 127.0.0.1 that delays, paces
and (optionally) cuts what passes through it.

This kernel has no netem qdisc, so the link is emulated in user space.
Each direction of each connection is a queue: a chunk read from one side
is written to the other once the link could have carried it, that is
after the previous chunk in that direction (all connections share the
link's bandwidth) plus its own transmission time (bytes / rate), plus the
one-way delay. A new connection's first bytes leave one round trip after
it opens, as the TCP handshake would make them. Order is kept. With
--cut P, a share P of the new connections (exactly: every 1/P-th) is cut
(both sides reset) or stalled (nothing forwarded for 30 s, or --stall,
then cut) after a random number of bytes.

Profiles (round trip, bandwidth each way):
  lan     1 ms, 1 Gbit/s
  office  40 ms, 100 Mbit/s     (a developer's office to a cloud region)
  home    80 ms, 20 Mbit/s

Used by bench/wan.py, in-process (Link) or as a program:
  link.py --profile office --upstream 127.0.0.1:8980 [--listen-port 0]
prints `listening on 127.0.0.1:PORT`, then runs until killed. Standard
library only; listens on 127.0.0.1 only.
"""

import argparse
import queue
import random
import socket
import sys
import threading
import time

PROFILES = {
    # name: (round trip in s, bytes per second each way)
    "lan": (0.001, 1e9 / 8),
    "office": (0.040, 100e6 / 8),
    "home": (0.080, 20e6 / 8),
}

CHUNK = 64 * 1024


class Direction:
    """One direction of the link, shared by every connection: when it is
    next free, and how many bytes it has carried."""

    def __init__(self, rate):
        self.rate = rate
        self.free_at = 0.0
        self.bytes = 0
        self.lock = threading.Lock()

    def schedule(self, n, now, delay, not_before=0.0):
        with self.lock:
            start = max(now, self.free_at, not_before)
            self.free_at = start + n / self.rate
            self.bytes += n
            return self.free_at + delay


class Link:
    """A proxy from a port on 127.0.0.1 to `upstream` (host, port). Each
    direction of each connection is two threads, a reader and a writer
    that sleeps (time.sleep: microseconds, where an event loop's timers
    round to milliseconds) until each chunk is due."""

    def __init__(self, upstream, profile="office", rtt=None, rate=None, cut=0.0, seed=1,
                 stall=30.0):
        base_rtt, base_rate = PROFILES[profile]
        self.delay = (base_rtt if rtt is None else rtt) / 2
        rate = base_rate if rate is None else rate
        self.up = Direction(rate)
        self.down = Direction(rate)
        self.upstream = upstream
        self.cut = cut
        self.stall = stall
        self.random = random.Random(seed)
        self.connections = 0
        self.cuts = 0
        self._stop = False
        self._listeners = []
        self._open = []
        self.port = self.add(upstream) if upstream is not None else None

    def add(self, upstream):
        """Another port on 127.0.0.1 into the same link, to `upstream`:
        a second server behind it (sccache-dist's scheduler and build
        server) shares its bandwidth. Returns the port."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        self._listeners.append(listener)
        threading.Thread(target=self._accept, args=(listener, upstream), daemon=True).start()
        return listener.getsockname()[1]

    def stop(self):
        self._stop = True
        for listener in self._listeners:
            try:
                listener.close()
            except OSError:
                pass
        for s in list(self._open):
            try:
                s.close()
            except OSError:
                pass

    def counters(self):
        """Bytes carried up (client to server) and down so far."""
        return self.up.bytes, self.down.bytes

    def _accept(self, listener, upstream):
        while not self._stop:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connection, args=(client, upstream),
                             daemon=True).start()

    def _connection(self, client, upstream):
        self.connections += 1
        # The handshake crossed the link: the client's first bytes leave
        # one round trip after its SYN (the proxy accepts at once here).
        opened = time.monotonic() + 2 * self.delay
        try:
            server = socket.create_connection(upstream)
        except OSError:
            client.close()
            return
        for sock in (client, server):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._open.append(sock)
        budget = None
        # Exactly the share asked for, spread evenly (a random draw at 2%
        # over a build's 80 connections often cuts none): connection k is
        # cut when the running share first reaches the next whole cut.
        if self.cut and int(self.connections * self.cut) > self.cuts:
            self.cuts += 1
            budget = [self.random.randint(0, 256 * 1024), self.random.random() < 0.5]
        done = threading.Event()

        def close_both():
            for sock in (client, server):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            done.set()

        def pump(src, dst, direction, not_before):
            chunks = queue.Queue()

            def send():
                while True:
                    item = chunks.get()
                    if item is None:
                        try:
                            dst.shutdown(socket.SHUT_WR)
                        except OSError:
                            pass
                        return
                    at, data = item
                    wait = at - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    try:
                        dst.sendall(data)
                    except OSError:
                        return

            sender = threading.Thread(target=send, daemon=True)
            sender.start()
            try:
                while True:
                    data = src.recv(CHUNK)
                    if not data:
                        break
                    if budget is not None:
                        budget[0] -= len(data)
                        if budget[0] < 0:
                            if budget[1]:
                                # A stall: nothing more for a while, then cut.
                                done.wait(self.stall)
                            close_both()
                            break
                    at = direction.schedule(len(data), time.monotonic(), self.delay, not_before)
                    chunks.put((at, data))
            except OSError:
                pass
            chunks.put(None)
            sender.join()

        other = threading.Thread(target=pump, args=(server, client, self.down, 0.0), daemon=True)
        other.start()
        pump(client, server, self.up, opened)
        other.join()
        for sock in (client, server):
            try:
                sock.close()
            except OSError:
                pass
            try:
                self._open.remove(sock)
            except ValueError:
                pass


def excess(profile, n=30, up=100, down=100):
    """What the link adds to a round trip beyond the profile's delay: a
    ping of `up` bytes answered at once with `down` bytes by a server
    behind a link of `profile` (the proxy's threads, its sleeps'
    overshoot, and the bytes' time on the line), median of `n`, in
    seconds. With the sizes of a call, it is that call's time on the link
    when both ends answer at once."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def echo():
        conn, _ = server.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        got = 0
        while data := conn.recv(CHUNK):
            got += len(data)
            if got >= up:
                got -= up
                conn.sendall(b"a" * down)
        conn.close()

    threading.Thread(target=echo, daemon=True).start()
    link = Link(server.getsockname(), profile)
    try:
        client = socket.create_connection(("127.0.0.1", link.port))
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        times = []
        for _ in range(n + 1):
            t = time.monotonic()
            client.sendall(b"p" * up)
            got = 0
            while got < down:
                got += len(client.recv(CHUNK))
            times.append(time.monotonic() - t)
        client.close()
        times = sorted(times[1:])  # the first pays the handshake
        return times[len(times) // 2] - PROFILES[profile][0]
    finally:
        link.stop()
        server.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=sorted(PROFILES), default="office")
    ap.add_argument("--upstream", required=True, help="HOST:PORT of the server")
    ap.add_argument("--cut", type=float, default=0.0, help="share of connections cut or stalled")
    args = ap.parse_args()
    host, port = args.upstream.rsplit(":", 1)
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("link.py: only servers on this machine (127.0.0.1)")
    link = Link((host, int(port)), args.profile, cut=args.cut)
    print(f"listening on 127.0.0.1:{link.port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        link.stop()


if __name__ == "__main__":
    main()
