//! The embedded default: a per-user `recast serve`, started on demand in the
//! background and reused, as sccache starts its server.
//!
//! State lives in the cache dir: `server/` (the server's CAS and action
//! cache), `serve.json` (pid and URL of the running server), `serve.log`
//! (its stderr) and `serve.lock` (held while starting, so two compiles that
//! start at once share one server).

use std::fs::{self, File};
use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
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

fn state_path(dir: &Path) -> PathBuf {
    dir.join("serve.json")
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

/// URL of the running embedded server, starting one (stopping after
/// `idle_secs` without a call) if none answers.
pub fn ensure(dir: &Path, idle_secs: u64) -> anyhow::Result<String> {
    if let Some(url) = running(dir) {
        return Ok(url);
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let lock_path = dir.join("serve.lock");
    let _lock = crate::lock::FileLock::take(&lock_path)
        .with_context(|| format!("locking {}", lock_path.display()))?;
    // Someone else may have started it while we waited for the lock.
    if let Some(url) = running(dir) {
        return Ok(url);
    }
    start(dir, idle_secs)
}

/// The recorded server, if its process is alive and its port accepts.
fn running(dir: &Path) -> Option<String> {
    let text = fs::read_to_string(state_path(dir)).ok()?;
    let state: State = serde_json::from_str(&text).ok()?;
    if !alive(state.pid) {
        return None;
    }
    let addr: SocketAddr = state.url.strip_prefix("grpc://")?.parse().ok()?;
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    Some(state.url)
}

fn alive(pid: i32) -> bool {
    // Signal 0 checks existence and permission without sending anything.
    rustix::process::Pid::from_raw(pid)
        .is_some_and(|p| rustix::process::test_kill_process(p).is_ok())
}

fn start(dir: &Path, idle_secs: u64) -> anyhow::Result<String> {
    let exe = std::env::current_exe().context("finding the recast binary to start the server")?;
    let out_path = dir.join("serve.out");
    let out =
        File::create(&out_path).with_context(|| format!("creating {}", out_path.display()))?;
    let log_path = dir.join("serve.log");
    let log =
        File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let mut child = std::process::Command::new(&exe)
        .arg("serve")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--dir")
        .arg(dir.join("server"))
        .arg("--idle-timeout")
        .arg(idle_secs.to_string())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(log)
        // Its own process group: a Ctrl-C in the build does not stop it.
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {} serve", exe.display()))?;
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Some(url) = read_listening_line(&out_path)? {
            let state = State {
                pid: child.id() as i32,
                url: url.clone(),
            };
            crate::fsutil::write_atomic(&state_path(dir), &serde_json::to_vec(&state)?)?;
            return Ok(url);
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "the embedded server exited at start ({status}); see {}",
                log_path.display()
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!(
                "the embedded server did not start within {:?}; see {}",
                STARTUP_TIMEOUT,
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
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

/// `recast stop-server`.
pub fn stop(dir: &Path) -> anyhow::Result<ExitCode> {
    let path = state_path(dir);
    let Ok(text) = fs::read_to_string(&path) else {
        eprintln!(
            "recast: no embedded server is running (no {})",
            path.display()
        );
        return Ok(ExitCode::SUCCESS);
    };
    let state: State =
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    if let Some(pid) = rustix::process::Pid::from_raw(state.pid)
        && alive(state.pid)
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(state.pid) && Instant::now() < deadline {
            // The server is not our child once we are a later process: poll.
            reap(state.pid);
            std::thread::sleep(Duration::from_millis(20));
        }
        if alive(state.pid) {
            bail!(
                "the embedded server (pid {pid}) did not stop within 10 s of SIGTERM; \
                 stop it with `kill -KILL {pid}`, then remove {}",
                path.display(),
                pid = state.pid,
            );
        }
        eprintln!("recast: stopped the embedded server at {}", state.url);
    }
    let _ = fs::remove_file(&path);
    Ok(ExitCode::SUCCESS)
}

fn reap(pid: i32) {
    // Only succeeds when the server is our own child (started by this very
    // process); otherwise harmless.
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::NOHANG);
    }
}
