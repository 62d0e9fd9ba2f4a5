//! Shared support for the integration tests: the built binary, an embedded
//! server on a free port, an isolated `recast` command, and peer lookup.
//!
//! Everything here drives the real binary; nothing is mocked. Each test
//! crate uses a different subset, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod buildgrid;
pub mod casd;
pub mod link;
pub mod nativelink;
pub mod projects;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use recast::config::vars;

/// The `recast` binary the tests drive: the one cargo built for this
/// test run, or, when the tests were built with `RECAST_TEST_BIN` set,
/// that one (the static release build of `scripts/release.sh`, say:
/// `RECAST_TEST_BIN=$(bash scripts/release.sh) cargo test --test wrap_cc`).
pub const BIN: &str = match option_env!("RECAST_TEST_BIN") {
    Some(bin) => bin,
    None => env!("CARGO_BIN_EXE_recast"),
};

/// Where `scripts/peers/install.sh` puts peers (default
/// `$HOME/.cache/recast-peers`); the tests look there before `PATH`.
pub const PEERS_DIR_VAR: &str = vars::PEERS_DIR;

/// How long a server may take to print its `listening on` line.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Every path under `dir` (itself included) whose mode lets anyone but
/// its owner in, as "mode path".
#[allow(dead_code)]
pub fn open_to_others(dir: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt as _;
    let mut bad = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.file_type().is_symlink() {
            continue;
        }
        if m.mode() & 0o077 != 0 {
            bad.push(format!("{:o} {}", m.mode() & 0o7777, p.display()));
        }
        if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    bad
}

/// A scratch directory under cargo's per-target tmp dir, removed on drop.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("recast-test-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("creating a temp dir under CARGO_TARGET_TMPDIR")
}

/// A `recast serve` child on `127.0.0.1:<free port>`, killed on drop.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    /// `grpcs` when the server was started with a TLS certificate.
    scheme: &'static str,
    /// The server's `--dir` (its CAS and action cache).
    pub dir: PathBuf,
    /// The server's stderr goes here, so a failing test can show it.
    pub log: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    /// A server with a fresh state dir.
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// A server with a fresh state dir and extra `recast serve` arguments.
    pub fn start_with(extra: &[&str]) -> Server {
        let tmp = tempdir();
        let mut s = Server::start_in(&tmp.path().join("server"), extra);
        s._tmp = Some(tmp);
        s
    }

    /// A server over an existing (or new) state dir, e.g. to restart one.
    /// The caller owns `dir`.
    pub fn start_in(dir: &Path, extra: &[&str]) -> Server {
        Server::spawn(Command::new(BIN), dir, extra)
    }

    /// A server whose actions cannot make user namespaces, as on a worker
    /// where they are not allowed: it runs as root of a user namespace of
    /// its own that allows no nested one, with every capability dropped.
    pub fn start_without_namespaces(extra: &[&str]) -> Server {
        let tmp = tempdir();
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--user",
            "--map-root-user",
            "sh",
            "-c",
            "echo 0 > /proc/sys/user/max_user_namespaces && exec setpriv --inh-caps=-all --ambient-caps=-all --bounding-set=-all -- \"$@\"",
            "sh",
            BIN,
        ]);
        let mut s = Server::spawn(cmd, &tmp.path().join("server"), extra);
        s._tmp = Some(tmp);
        s
    }

    /// `recast serve`, started by `cmd` (the binary, or a program that
    /// ends by exec'ing it with the arguments it is given).
    fn spawn(mut cmd: Command, dir: &Path, extra: &[&str]) -> Server {
        std::fs::create_dir_all(dir).unwrap();
        let log = dir.with_extension("log");
        let stderr = std::fs::File::create(&log).unwrap();
        let mut child = cmd
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--allow-unauthenticated",
                "--dir",
            ])
            .arg(dir)
            .args(extra)
            .env_remove(vars::REMOTE)
            .env(vars::CONFIG, dir.join("no-such-config.toml"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawning recast serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // The reader thread outlives the handshake: it keeps draining stdout
        // so a chatty server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut first = String::new();
            let _ = r.read_line(&mut first);
            let _ = tx.send(first);
            let _ = std::io::copy(&mut r, &mut std::io::sink());
        });
        let first = rx.recv_timeout(START_TIMEOUT).unwrap_or_default();
        let line = first.trim_end();
        let (scheme, rest) = match line.strip_prefix("listening on grpcs://") {
            Some(r) => ("grpcs", Some(r)),
            None => ("grpc", line.strip_prefix("listening on grpc://")),
        };
        let addr = rest.and_then(|a| a.parse::<SocketAddr>().ok());
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "recast serve did not print `listening on grpc://HOST:PORT` (got {first:?}); its stderr:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        Server {
            child,
            addr,
            scheme,
            dir: dir.to_path_buf(),
            log,
            _tmp: None,
        }
    }

    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the server (by its PID) and waits for it.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The client cache dir shared by this test process's `recast()` commands.
/// It lives under cargo's tmp dir, apart from the user's real cache.
fn shared_cache_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| tempdir().keep())
}

/// A `recast` command that cannot see the user's configuration: its cache
/// dir is a test-only temp dir, `RECAST_CONFIG` names a file that does not
/// exist, and the server-selecting variables are cleared.
pub fn recast<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    recast_with_cache(shared_cache_dir(), args)
}

/// As [`recast`], with a cache dir of the test's own (e.g. to test the
/// embedded default server, whose state lives there).
pub fn recast_with_cache<I, S>(cache_dir: &Path, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env(vars::CACHE_DIR, cache_dir)
        .env(vars::CONFIG, cache_dir.join("no-such-config.toml"))
        .stdin(Stdio::null());
    for v in [
        vars::REMOTE,
        vars::INSTANCE,
        vars::REMOTE_HEADERS,
        vars::TLS_CA,
        vars::TLS_CERT,
        vars::TLS_KEY,
        vars::TIMEOUT,
        vars::MODE,
        vars::PROJECT_ROOT,
        vars::PLATFORM,
        vars::PLATFORM_PROFILE,
        vars::FRONT,
        vars::TOOLCHAIN_UPLOAD,
        vars::TIER_SIZE,
    ] {
        cmd.env_remove(v);
    }
    cmd
}

/// Runs `cmd` and returns its output, panicking with stdout and stderr if
/// it did not exit 0.
pub fn run_ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().expect("spawning a command");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The JSON summary `recast run --json` prints as its last stdout line.
pub fn json_summary(stdout: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(stdout);
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("no JSON summary ({e}) in:\n{text}"))
}

/// Whether CI demands the peers (`RECAST_REQUIRE_PEERS=1`).
pub fn peers_required() -> bool {
    std::env::var(vars::REQUIRE_PEERS).is_ok_and(|v| v == "1")
}

/// Where the peer install script puts things.
pub fn peers_dir() -> PathBuf {
    match std::env::var_os(PEERS_DIR_VAR) {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/recast-peers")
        }
    }
}

/// Finds a peer program (`buildbox-casd`, `buildbox-run`, `bazel`, `bwrap`)
/// in the peers dir or on `PATH`. Missing: panics under
/// `RECAST_REQUIRE_PEERS=1`, else prints `skipping: …` and returns `None`.
pub fn peer(name: &str) -> Option<PathBuf> {
    let dir = peers_dir();
    let mut candidates = vec![dir.join("buildbox").join(name), dir.join(name)];
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|p| p.join(name)));
    }
    if let Some(found) = candidates.into_iter().find(|p| is_executable(p)) {
        return Some(found);
    }
    let reason = format!(
        "{name} not found in {} or on PATH; install it with `bash scripts/peers/install.sh`",
        dir.display()
    );
    if peers_required() {
        panic!("{reason} ({} is set)", vars::REQUIRE_PEERS);
    }
    eprintln!("skipping: {reason}");
    None
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A port on 127.0.0.1 that was free a moment ago (for peers that cannot
/// bind port 0 and report it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding 127.0.0.1:0")
        .port()
}

/// Waits until something accepts TCP connections on `127.0.0.1:port`, or
/// the child exits (→ panic with `what` and its log).
pub fn wait_listening(port: u16, child: &mut Child, what: &str, log: &Path) {
    let deadline = Instant::now() + START_TIMEOUT;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        let exited = child.try_wait().ok().flatten();
        if exited.is_some() || Instant::now() > deadline {
            let _ = child.kill();
            let mut text = String::new();
            if let Ok(mut f) = std::fs::File::open(log) {
                let _ = f.read_to_string(&mut text);
            }
            panic!("{what} did not listen on {addr} (exit: {exited:?}); its log:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Deterministic pseudo-random bytes (xorshift), so big blobs do not compress.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Makes, in `dir`, a CA (`ca.pem`), a certificate for 127.0.0.1
/// (`server.pem`, `server.key`) and a client certificate (`client.pem`,
/// `client.key`) with the `openssl` tool. Panics when openssl fails.
pub fn make_certs(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("running openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(key);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=recast test CA",
    ]);
    run(&ca);
    for who in ["server", "client"] {
        let (k, csr, pem) = (
            format!("{who}.key"),
            format!("{who}.csr"),
            format!("{who}.pem"),
        );
        let mut req = vec!["req"];
        req.extend(key);
        req.extend(["-keyout", &k, "-out", &csr, "-subj", "/CN=localhost"]);
        run(&req);
        run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
    }
}
