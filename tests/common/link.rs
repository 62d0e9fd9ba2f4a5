//! An emulated network link: a TCP proxy on 127.0.0.1 in front of a
//! server that holds every chunk for a one-way delay in each direction,
//! counts connections and bytes, and can cut or stall a share of the
//! connections it carries. A far server as recast sees it, with only
//! loopback addresses (`bench/link.py` is the benchmarks' twin).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What the link does to the connections it carries.
#[derive(Clone, Copy, Debug, Default)]
pub struct Profile {
    /// Held in each direction: half the round trip.
    pub one_way: Duration,
}

/// Counters shared with the proxy's threads.
#[derive(Default)]
struct Counts {
    up: AtomicU64,
    down: AtomicU64,
    connections: AtomicU64,
    cuts: AtomicU64,
    /// Cut or stall every this many connections (0: none), the first
    /// being the one after `faulty_from`.
    faulty_every: AtomicU64,
    faulty_from: AtomicU64,
    stopped: AtomicBool,
}

pub struct Link {
    pub port: u16,
    counts: Arc<Counts>,
}

/// How a faulty connection fails.
#[derive(Clone, Copy)]
enum Fault {
    /// Both sides closed after this many bytes toward the client.
    Cut(u64),
    /// Nothing more forwarded after this many bytes, for `STALL`, then cut.
    Stall(u64),
}

/// How long a stalled connection stays silent before it is cut.
const STALL: Duration = Duration::from_secs(2);

impl Link {
    pub fn start(upstream: SocketAddr, profile: Profile) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let counts = Arc::new(Counts::default());
        let c = counts.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if c.stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let nth = c.connections.fetch_add(1, Ordering::SeqCst) + 1;
                let every = c.faulty_every.load(Ordering::SeqCst);
                let from = c.faulty_from.load(Ordering::SeqCst);
                let k = nth.saturating_sub(from + 1);
                let fault = (every > 0 && nth > from && k % every == 0).then(|| {
                    c.cuts.fetch_add(1, Ordering::SeqCst);
                    // Somewhere in the first exchange or well after it,
                    // a cut first, then a stall, in turn.
                    let after = (nth * 7919) % 6000;
                    if (k / every) % 2 == 0 {
                        Fault::Cut(after)
                    } else {
                        Fault::Stall(after)
                    }
                });
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                for (from, to, toward_client) in [
                    (
                        client.try_clone().unwrap(),
                        server.try_clone().unwrap(),
                        false,
                    ),
                    (server, client, true),
                ] {
                    let c = c.clone();
                    let fault = if toward_client { fault } else { None };
                    std::thread::spawn(move || carry(from, to, profile, fault, toward_client, c));
                }
            }
        });
        Link { port, counts }
    }

    pub fn url(&self) -> String {
        format!("grpc://127.0.0.1:{}", self.port)
    }

    /// Bytes carried to the server and back so far.
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.counts.up.load(Ordering::SeqCst),
            self.counts.down.load(Ordering::SeqCst),
        )
    }

    /// Connections opened through the link so far.
    pub fn connections(&self) -> u64 {
        self.counts.connections.load(Ordering::SeqCst)
    }

    /// Connections cut or stalled so far.
    pub fn cuts(&self) -> u64 {
        self.counts.cuts.load(Ordering::SeqCst)
    }

    /// From now on, the next new connection and every `n`th after it is
    /// cut or stalled (0: none).
    pub fn fail_every(&self, n: u64) {
        let c = &self.counts;
        c.faulty_from
            .store(c.connections.load(Ordering::SeqCst), Ordering::SeqCst);
        c.faulty_every.store(n, Ordering::SeqCst);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.counts.stopped.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees `stopped`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Forwards `from` to `to`, each chunk held for the profile's one-way
/// delay (a reader thread stamps chunks as they arrive; this thread writes
/// each when it is due, in order).
fn carry(
    from: TcpStream,
    mut to: TcpStream,
    profile: Profile,
    fault: Option<Fault>,
    toward_client: bool,
    counts: Arc<Counts>,
) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let reader = {
        let mut from = from.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 << 10];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 || tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        })
    };
    let mut sent = 0u64;
    let counter = if toward_client {
        &counts.down
    } else {
        &counts.up
    };
    'chunks: for (at, mut chunk) in rx {
        let due = at + profile.one_way;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if let Some(Fault::Cut(after) | Fault::Stall(after)) = fault
            && sent + chunk.len() as u64 > after
        {
            chunk.truncate((after - sent) as usize);
            let _ = to.write_all(&chunk);
            if let Some(Fault::Stall(_)) = fault {
                std::thread::sleep(STALL);
            }
            break 'chunks;
        }
        if to.write_all(&chunk).is_err() {
            break;
        }
        sent += chunk.len() as u64;
        counter.fetch_add(chunk.len() as u64, Ordering::SeqCst);
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
    let _ = reader.join();
}
