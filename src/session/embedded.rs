//! The embedded default: a per-user `recast serve`, started on demand in the
//! background and reused, as sccache starts its server.
//!
//! State lives in the cache dir, which is the user's alone (0700):
//! `server/` (the server's CAS and action cache), `serve.sock` (where it
//! listens), `serve.json` (pid and URL of the running server), `serve.log`
//! (its stderr) and `serve.lock` (held while starting, so two compiles that
//! start at once share one server).
//!
//! The server listens on a Unix socket, never on TCP: nobody can reach a
//! socket in a directory only its owner may enter, and the server checks
//! each caller's uid besides (`server::auth`). Another user's recast finds
//! its own cache dir and starts its own server.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct State {
    pid: i32,
    url: String,
}

const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// A background process of this user's, started on demand and found
/// again by later runs: the embedded server (`serve`) or a warm front
/// (`front`). Its files in `dir` are named after it: `NAME.json` (pid and
/// URL), `NAME.sock`, `NAME.lock` (held while starting), `NAME.out` (its
/// stdout, whose first line says where it listens) and `NAME.log`.
pub(crate) struct Daemon<'a> {
    pub dir: &'a Path,
    pub name: &'static str,
}

const SERVER: &str = "serve";

impl<'a> Daemon<'a> {
    fn server(dir: &'a Path) -> Daemon<'a> {
        Daemon { dir, name: SERVER }
    }

    fn file(&self, ext: &str) -> PathBuf {
        self.dir.join(format!("{}.{ext}", self.name))
    }
}

/// The embedded server's `--dir` (its CAS and action cache) for the
/// state in `dir`.
pub fn store_dir(dir: &Path) -> PathBuf {
    dir.join("server")
}

/// How long the embedded server waits without a call before it stops.
const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 3600;

/// `RECAST_IDLE_TIMEOUT` in seconds (0: never).
pub fn idle_timeout(env: &crate::config::Env) -> anyhow::Result<u64> {
    let var = crate::config::vars::IDLE_TIMEOUT;
    match env.get(var) {
        None | Some("") => Ok(DEFAULT_IDLE_TIMEOUT_SECS),
        Some(v) => v.trim().parse().map_err(|_| {
            anyhow::anyhow!("{var}={v:?}: expected a number of seconds (0: never stop)")
        }),
    }
}

/// Longest socket path used as is: `sun_path` holds 108 bytes on Linux
/// and 104 on macOS, the terminating NUL included.
const MAX_SOCKET_PATH: usize = 100;

/// Where the embedded server of the state in `dir` listens: `serve.sock`
/// in it, or, when that path is too long for a socket, a name derived from
/// it in a private per-user directory under the system's temp dir.
fn socket_path(dir: &Path) -> anyhow::Result<PathBuf> {
    Daemon::server(dir).socket_path()
}

/// The URL the embedded server of the state in `dir` listens at, whether
/// or not it runs.
pub fn url(dir: &Path) -> anyhow::Result<String> {
    Ok(format!("unix:{}", socket_path(dir)?.display()))
}

/// URL of the running embedded server, starting one (stopping after
/// `idle_secs` without a call) if none answers.
pub fn ensure(dir: &Path, idle_secs: u64) -> anyhow::Result<String> {
    let store = store_dir(dir);
    let args = [
        "serve".as_ref(),
        "--dir".as_ref(),
        store.as_os_str(),
        "--idle-timeout".as_ref(),
        idle_secs.to_string().as_ref(),
    ]
    .map(std::ffi::OsStr::to_os_string);
    Daemon::server(dir).ensure(&args)
}

impl Daemon<'_> {
    /// Where it listens: `NAME.sock` in its dir, or, when that path is too
    /// long for a socket, a name derived from it in a private per-user
    /// directory under the system's temp dir.
    pub fn socket_path(&self) -> anyhow::Result<PathBuf> {
        // `--listen unix:PATH` wants it absolute.
        let dir = std::path::absolute(self.dir)?;
        let plain = dir.join(format!("{}.sock", self.name));
        if plain.as_os_str().len() <= MAX_SOCKET_PATH {
            return Ok(plain);
        }
        let uid = rustix::process::geteuid().as_raw();
        let short = std::env::temp_dir().join(format!("recast-{uid}"));
        // Another user may have made this name first, to catch our socket:
        // the directory must be ours and private, or we stop here.
        crate::fsutil::ensure_private_dir(&short)?;
        let digest = crate::cas::Digest::of_bytes(plain.as_os_str().as_encoded_bytes());
        Ok(short.join(format!("{}.sock", &digest.hex()[..16])))
    }

    /// The socket of the running process as recorded, not dialed
    /// ([`recorded`]).
    pub fn recorded(&self) -> Option<PathBuf> {
        recorded(&self.file("json"))
    }

    /// URL of the running process, starting `recast ARGS --listen
    /// unix:SOCKET` if none answers.
    pub fn ensure(&self, args: &[std::ffi::OsString]) -> anyhow::Result<String> {
        if let Some(url) = running(&self.file("json")) {
            return Ok(url);
        }
        crate::fsutil::ensure_private_dir(self.dir)?;
        let lock_path = self.file("lock");
        let _lock = crate::lock::FileLock::take(&lock_path)
            .with_context(|| format!("locking {}", lock_path.display()))?;
        // Someone else may have started it while we waited for the lock.
        if let Some(url) = running(&self.file("json")) {
            return Ok(url);
        }
        self.start(args)
    }
}

/// The recorded process's state, if that process is alive.
fn alive_state(state_path: &Path) -> Option<State> {
    let text = fs::read_to_string(state_path).ok()?;
    let state: State = serde_json::from_str(&text).ok()?;
    alive(state.pid).then_some(state)
}

/// The socket of the recorded process, if it is alive and listens on one
/// (not dialed: the caller's own dial says whether it answers; a failed
/// one goes on to [`Daemon::ensure`]).
fn recorded(state_path: &Path) -> Option<PathBuf> {
    let state = alive_state(state_path)?;
    state.url.strip_prefix("unix:").map(PathBuf::from)
}

/// The recorded embedded server's socket under `dir`, as [`recorded`].
pub fn recorded_socket(dir: &Path) -> Option<PathBuf> {
    Daemon::server(dir).recorded()
}

/// The recorded process, if it is alive and its socket accepts.
fn running(state_path: &Path) -> Option<String> {
    let state = alive_state(state_path)?;
    let Some(path) = state.url.strip_prefix("unix:") else {
        // An older recast's server on a TCP port, open to every local
        // user: stop it, and start one on a socket.
        retire(&state);
        return None;
    };
    std::os::unix::net::UnixStream::connect(path).ok()?;
    Some(state.url)
}

/// Stops a server an older recast started on TCP (by its PID, and only if
/// that process is a `recast` of ours: a PID can be reused).
fn retire(state: &State) {
    let Some(pid) = rustix::process::Pid::from_raw(state.pid) else {
        return;
    };
    let exe = fs::read_link(format!("/proc/{}/exe", state.pid)).ok();
    let ours = exe
        .as_ref()
        .and_then(|e| e.file_name())
        .is_some_and(|n| n.to_string_lossy().starts_with("recast"));
    if ours {
        tracing::info!(pid = state.pid, url = %state.url, "stopping an embedded server that listens on TCP");
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
}

fn alive(pid: i32) -> bool {
    // Signal 0 checks existence and permission without sending anything.
    rustix::process::Pid::from_raw(pid)
        .is_some_and(|p| rustix::process::test_kill_process(p).is_ok())
}

impl Daemon<'_> {
    fn start(&self, args: &[std::ffi::OsString]) -> anyhow::Result<String> {
        let what = match self.name {
            SERVER => "the embedded server",
            _ => "the recast front",
        };
        let exe = std::env::current_exe()
            .with_context(|| format!("finding the recast binary to start {what}"))?;
        let out_path = self.file("out");
        let out = crate::fsutil::create_private(&out_path)
            .with_context(|| format!("creating {}", out_path.display()))?;
        let log_path = self.file("log");
        let log = crate::fsutil::create_private(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let socket = self.socket_path()?;
        let mut child = std::process::Command::new(&exe)
            .args(args)
            .arg("--listen")
            .arg(format!("unix:{}", socket.display()))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(log)
            // Its own process group: a Ctrl-C in the build does not stop it.
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {} {}", exe.display(), self.name))?;
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(url) = read_listening_line(&out_path)? {
                let state = State {
                    pid: child.id() as i32,
                    url: url.clone(),
                };
                crate::fsutil::write_private(
                    &self.file("json"),
                    &serde_json::to_vec(&state)?,
                    false,
                )?;
                return Ok(url);
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{what} exited at start ({status}); see {}",
                    log_path.display()
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!(
                    "{what} did not start within {:?}; see {}",
                    STARTUP_TIMEOUT,
                    log_path.display()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn read_listening_line(path: &Path) -> io::Result<Option<String>> {
    let mut text = String::new();
    File::open(path)?.read_to_string(&mut text)?;
    let Some(line) = text
        .split_inclusive('\n')
        .next()
        .filter(|l| l.ends_with('\n'))
    else {
        return Ok(None);
    };
    Ok(line
        .trim_end()
        .strip_prefix("listening on ")
        .map(str::to_string))
}

/// `recast stop-server`: the embedded server, and every warm front.
pub fn stop(dir: &Path) -> anyhow::Result<ExitCode> {
    let server = Daemon::server(dir);
    match server.stop()? {
        Some(url) => eprintln!("recast: stopped the embedded server at {url}"),
        None => eprintln!(
            "recast: no embedded server is running (no {})",
            server.file("json").display()
        ),
    }
    let fronts = super::front::fronts_dir(dir);
    for entry in fs::read_dir(&fronts).into_iter().flatten().flatten() {
        let front_dir = entry.path();
        let front = Daemon {
            dir: &front_dir,
            name: super::front::NAME,
        };
        if let Some(url) = front.stop()? {
            eprintln!("recast: stopped the front at {url}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

impl Daemon<'_> {
    /// Stops the recorded process, if it runs: SIGTERM, then up to 10 s for
    /// it to go. Returns its URL if it was running.
    fn stop(&self) -> anyhow::Result<Option<String>> {
        let path = self.file("json");
        let Ok(text) = fs::read_to_string(&path) else {
            return Ok(None);
        };
        let state: State =
            serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
        let mut stopped = None;
        if let Some(pid) = rustix::process::Pid::from_raw(state.pid)
            && alive(state.pid)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while alive(state.pid) && Instant::now() < deadline {
                // It is not our child once we are a later process: poll.
                reap(state.pid);
                std::thread::sleep(Duration::from_millis(20));
            }
            if alive(state.pid) {
                bail!(
                    "pid {pid} ({}) did not stop within 10 s of SIGTERM; \
                     stop it with `kill -KILL {pid}`, then remove {}",
                    state.url,
                    path.display(),
                    pid = state.pid,
                );
            }
            stopped = Some(state.url);
        }
        let _ = fs::remove_file(&path);
        Ok(stopped)
    }
}

fn reap(pid: i32) {
    // Only succeeds when the server is our own child (started by this very
    // process); otherwise harmless.
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::NOHANG);
    }
}
