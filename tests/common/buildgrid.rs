//! BuildGrid 0.9.1 on 127.0.0.1 for the worker tests, and `recast worker`
//! children to serve it.
//!
//! Each [`BuildGrid`] is a fresh world: a private PostgreSQL 15 cluster on
//! a free port (its own data dir, so no bot session or job survives from
//! another test), the schema applied with `bgd migrate apply`, then
//! `bgd server start` with the latency-tuned config. Drop stops BuildGrid
//! by its PID and the cluster with `pg_ctl stop`. `scripts/peers/install.sh`
//! installs both (`scripts/peers/buildgrid.sh`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{BIN, free_port, peers_dir, peers_required, tempdir, wait_listening};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The `bgd` installed by `scripts/peers/buildgrid.sh`, and PostgreSQL 15.
/// Missing: panics under `RECAST_REQUIRE_PEERS=1`, else prints
/// `skipping: …` and returns `None`.
pub fn bgd() -> Option<PathBuf> {
    let bgd = peers_dir().join("buildgrid/bin/bgd");
    let pg = Path::new(PG_BIN).join("pg_ctl");
    let missing = if !bgd.is_file() {
        Some(format!("BuildGrid not installed at {}", bgd.display()))
    } else if !pg.is_file() {
        Some(format!(
            "PostgreSQL 15 not installed ({} missing)",
            pg.display()
        ))
    } else {
        None
    };
    match missing {
        None => Some(bgd),
        Some(why) => {
            let reason = format!("{why}; install it with `bash scripts/peers/install.sh`");
            if peers_required() {
                panic!("{reason} (RECAST_REQUIRE_PEERS=1)");
            }
            eprintln!("skipping: {reason}");
            None
        }
    }
}

/// How a test wants BuildGrid's scheduler tuned.
#[derive(Clone, Copy, Debug)]
pub struct Tuning {
    /// Seconds without an update after which a bot session is reaped and
    /// its leases go back to the queue. BuildGrid's long poll needs at
    /// least 4.
    pub keepalive_secs: u32,
    /// Seconds between reaper runs.
    pub reaper_secs: f64,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            keepalive_secs: 30,
            reaper_secs: 10.0,
        }
    }
}

/// A private PostgreSQL cluster and a BuildGrid server using it.
pub struct BuildGrid {
    bgd: Child,
    pub port: u16,
    pub dir: PathBuf,
    pub log: PathBuf,
    pg_data: PathBuf,
    _tmp: tempfile::TempDir,
}

/// The prefix that runs a PostgreSQL tool as `postgres` when we are root
/// (initdb refuses root), or as ourselves otherwise.
fn as_postgres(tool: &str) -> Command {
    let program = Path::new(PG_BIN).join(tool);
    if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run_checked(cmd: &mut Command, what: &str) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl BuildGrid {
    /// BuildGrid with the tuned config of the issue; `None` when skipped.
    pub fn start() -> Option<BuildGrid> {
        BuildGrid::start_with(Tuning::default())
    }

    pub fn start_with(tuning: Tuning) -> Option<BuildGrid> {
        let bgd = bgd()?;
        // Under /tmp, not cargo's target dir: the postgres user must be
        // able to reach the data dir, and temp dirs are created 0700.
        let tmp = tempfile::Builder::new()
            .prefix("recast-bgd-")
            .tempdir()
            .expect("creating a temp dir");
        let dir = tmp.path().to_path_buf();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let pg_dir = dir.join("pg");
        std::fs::create_dir(&pg_dir).unwrap();
        if unsafe { libc::geteuid() } == 0 {
            run_checked(
                Command::new("chown").args(["postgres:"]).arg(&pg_dir),
                "chown postgres",
            );
        }
        let pg_data = pg_dir.join("data");
        run_checked(
            as_postgres("initdb").arg("-D").arg(&pg_data).args([
                "-U",
                "bgd",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ]),
            "initdb",
        );
        let pg_port = free_port();
        // Durability is worth nothing to a test database: skip fsyncs.
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {pg_port} -k {} -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            pg_dir.display()
        );
        run_checked(
            as_postgres("pg_ctl")
                .arg("-D")
                .arg(&pg_data)
                .arg("-l")
                .arg(pg_dir.join("postgres.log"))
                .args(["-w", "-t", "60", "-o", &opts, "start"]),
            "pg_ctl start",
        );
        // From here on, Drop stops the cluster even if a later step panics.
        let mut grid = BuildGrid {
            bgd: Command::new("true").spawn().unwrap(),
            port: 0,
            log: dir.join("bgd.log"),
            dir: dir.clone(),
            pg_data,
            _tmp: tmp,
        };
        let db = format!("postgresql+psycopg://bgd@127.0.0.1:{pg_port}/postgres");
        run_checked(
            Command::new(&bgd).args(["migrate", "apply", &db]),
            "bgd migrate apply",
        );
        let port = free_port();
        let config = dir.join("bgd.yml");
        std::fs::write(&config, config_yaml(port, &db, &dir.join("cas"), tuning)).unwrap();
        let log = std::fs::File::create(&grid.log).unwrap();
        let _ = grid.bgd.wait();
        grid.bgd = Command::new(&bgd)
            .args(["server", "start"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting bgd server");
        grid.port = port;
        wait_listening(port, &mut grid.bgd, "bgd server", &grid.log);
        Some(grid)
    }

    pub fn url(&self) -> String {
        format!("grpc://127.0.0.1:{}", self.port)
    }

    /// BuildGrid's own log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for BuildGrid {
    fn drop(&mut self) {
        let _ = self.bgd.kill();
        let _ = self.bgd.wait();
        let _ = as_postgres("pg_ctl")
            .arg("-D")
            .arg(&self.pg_data)
            .args(["-m", "immediate", "-w", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The issue's tuned config: dynamic property set on OSFamily/ISA, 0.1 s
/// polls and a 0.05 s assigner (the defaults give ~1.4 s per action).
fn config_yaml(port: u16, db: &str, cas: &Path, t: Tuning) -> String {
    format!(
        r#"server:
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
    bot-session-keepalive-timeout: {keepalive}
    session-expiry-timer-interval: {reaper}
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
"#,
        cas = cas.display(),
        keepalive = t.keepalive_secs,
        reaper = t.reaper_secs,
    )
}

/// A `recast worker` child serving a scheduler, killed on drop.
pub struct Worker {
    child: Child,
    pub name: String,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Worker {
    /// `recast worker --scheduler URL --name NAME EXTRA…` with a fresh
    /// `--dir`, logging leases at info level.
    pub fn start(url: &str, name: &str, extra: &[&str]) -> Worker {
        let dir = tempdir();
        let log = dir.path().join("worker.log");
        let child = Command::new(BIN)
            .args(["worker", "--scheduler", url, "--name", name, "--dir"])
            .arg(dir.path().join("state"))
            .args(extra)
            .env("RECAST_LOG", "recast=info")
            .env("NO_COLOR", "1")
            .env(recast::config::vars::CACHE_DIR, dir.path().join("cache"))
            .env(
                recast::config::vars::CONFIG,
                dir.path().join("no-such-config.toml"),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawning recast worker");
        Worker {
            child,
            name: name.to_string(),
            log,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The worker's log so far (tracing lines, ANSI escapes removed).
    pub fn log(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// Waits until the log contains `needle` (panics after `limit`).
    pub fn wait_for_log(&self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "worker {} never logged {needle:?}; its log:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `sig` to the worker.
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: plain syscall on our own child's PID.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, sig);
        }
    }

    /// Waits for the worker to exit, up to `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
