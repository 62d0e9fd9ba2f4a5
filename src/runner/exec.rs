//! Runs the command: exactly its environment, its working directory, its own
//! process group, stdout and stderr to files, and a hard timeout.
//!
//! Nothing of the worker's environment leaks in (the env is cleared), so a
//! result depends only on the action. The program is looked up the way
//! `execvp` would with the *command's* `PATH`. On timeout, or when the main
//! process exits, the whole process group is killed so no stray child keeps
//! running in a directory that is about to be deleted.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rustix::process::{Pid, Signal};

use super::RunError;
use super::sandbox::Jail;
use crate::proto::reapi;

/// How the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    /// The exit code, or 128 + the signal number if a signal killed it.
    pub exit_code: i32,
    pub timed_out: bool,
}

/// Runs `command` in `cwd` with output to `stdout`/`stderr` (created here).
/// A program that cannot be started is not a worker error: it ends like a
/// shell would report it (exit 127, or 126 when not executable), with the
/// reason on stderr, so the user sees it in the replayed output.
pub fn run(
    cwd: &Path,
    command: &reapi::Command,
    stdout: &Path,
    stderr: &Path,
    timeout: Duration,
    jail: Option<&Jail>,
) -> Result<Finished, RunError> {
    let open = |p: &Path| {
        crate::fsutil::create_private(p)
            .map_err(|e| RunError::Internal(format!("cannot create {}: {e}", p.display())))
    };
    let out = open(stdout)?;
    let mut err = open(stderr)?;

    let env: Vec<(&str, &str)> = command
        .environment_variables
        .iter()
        .map(|v| (v.name.as_str(), v.value.as_str()))
        .collect();
    let argv0 = &command.arguments[0];
    let mut cmd = match command_for(cwd, command, &env, jail) {
        Ok(cmd) => cmd,
        Err(why) => return Ok(cannot_run(&mut err, argv0, &why, 127)),
    };
    cmd.env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(
            err.try_clone()
                .map_err(|e| RunError::Internal(e.to_string()))?,
        )
        .process_group(0);

    let child = match spawn(&mut cmd) {
        Ok(c) => c,
        // bwrap itself missing is the worker's fault, not the action's.
        Err(e) if jail.is_some() => {
            return Err(RunError::Internal(format!("cannot start bwrap: {e}")));
        }
        Err(e) => {
            let code = if e.kind() == io::ErrorKind::PermissionDenied {
                126
            } else {
                127
            };
            return Ok(cannot_run(&mut err, argv0, &e, code));
        }
    };
    let (status, timed_out) = wait_with_timeout(child, timeout);
    let status = status.map_err(|e| RunError::Internal(format!("waiting for {argv0:?}: {e}")))?;
    Ok(Finished {
        exit_code: exit_code(status),
        timed_out,
    })
}

/// The process to start, before its environment and stdio: the program
/// found as `execvp` would in `cwd`, or the jail's command. Err: why the
/// jail cannot run it.
fn command_for(
    cwd: &Path,
    command: &reapi::Command,
    env: &[(&str, &str)],
    jail: Option<&Jail>,
) -> Result<Command, String> {
    let Some(jail) = jail else {
        let argv0 = &command.arguments[0];
        let program = resolve_program(argv0, cwd, env);
        let mut cmd = Command::new(&program);
        cmd.arg0(argv0)
            .args(&command.arguments[1..])
            .current_dir(cwd);
        return Ok(cmd);
    };
    jail.command(&command.arguments, env)
}

/// Ends a command that could not start as a shell would report it: `why`
/// on its stderr, and `exit_code`.
fn cannot_run(
    err: &mut File,
    argv0: &str,
    why: &dyn std::fmt::Display,
    exit_code: i32,
) -> Finished {
    let _ = writeln!(err, "recast: cannot run {argv0:?}: {why}");
    Finished {
        exit_code,
        timed_out: false,
    }
}

/// Waits for `child`, killing its whole process group at `timeout`, and
/// in any case once it has exited: children left behind in the group
/// (daemons, `cmd &`) go too. Also whether the timeout struck.
fn wait_with_timeout(mut child: Child, timeout: Duration) -> (io::Result<ExitStatus>, bool) {
    // The child leads its own group (`process_group(0)`): its pid is the
    // group's id.
    let pgid = Pid::from_child(&child);
    // A thread blocks in wait() so the timeout costs no polling latency.
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let (status, timed_out) = match rx.recv_timeout(timeout) {
        Ok(status) => (status, false),
        Err(_) => {
            kill_group(pgid);
            (
                rx.recv()
                    .unwrap_or_else(|_| Err(io::Error::other("waiter vanished"))),
                true,
            )
        }
    };
    kill_group(pgid);
    let _ = waiter.join();
    (status, timed_out)
}

/// Spawns, retrying briefly on ETXTBSY: another worker thread may have
/// forked while an executable input of ours was still open for writing
/// (being copied), and its child holds that descriptor until it execs.
fn spawn(cmd: &mut Command) -> io::Result<Child> {
    let mut delay = Duration::from_millis(2);
    for _ in 0..6 {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(delay);
                delay *= 2;
            }
            other => return other,
        }
    }
    cmd.spawn()
}

fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(sig)) => 128 + sig,
        (None, None) => -1,
    }
}

/// SIGKILL to every process of group `pgid`; a group that is already
/// gone (ESRCH) is fine.
fn kill_group(pgid: Pid) {
    let _ = rustix::process::kill_process_group(pgid, Signal::KILL);
}

/// Where `argv0` is, as `execvp` would find it with the command's `PATH`:
/// a name with a `/` is relative to the working directory; a bare name is
/// searched in `PATH` (relative entries, and empty ones meaning ".", are
/// relative to the working directory). Not found: the name as given.
pub fn resolve_program(argv0: &str, cwd: &Path, env: &[(&str, &str)]) -> PathBuf {
    if argv0.contains('/') {
        return cwd.join(argv0);
    }
    let path_var = env
        .iter()
        .rev()
        .find(|(k, _)| *k == "PATH")
        .map(|(_, v)| *v);
    if let Some(path_var) = path_var {
        for dir in path_var.split(':') {
            let dir = if dir.is_empty() {
                cwd.to_path_buf()
            } else {
                cwd.join(dir)
            };
            let candidate = dir.join(argv0);
            if is_executable_file(&candidate) {
                return candidate;
            }
        }
    }
    PathBuf::from(argv0)
}

fn is_executable_file(p: &Path) -> bool {
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_like_execvp_with_the_commands_path() {
        let dir = tempfile::tempdir().unwrap();
        let cwd = dir.path();
        fs::create_dir(cwd.join("bin")).unwrap();
        fs::write(cwd.join("bin/tool"), b"#!/bin/sh\n").unwrap();
        fs::set_permissions(cwd.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(cwd.join("bin/data"), b"").unwrap();

        let env = [("PATH", "/nonexistent:bin")];
        assert_eq!(resolve_program("tool", cwd, &env), cwd.join("bin/tool"));
        assert_eq!(
            resolve_program("data", cwd, &env),
            PathBuf::from("data"),
            "not executable"
        );
        assert_eq!(resolve_program("./x/y", cwd, &env), cwd.join("./x/y"));
        assert_eq!(
            resolve_program("/bin/sh", cwd, &env),
            PathBuf::from("/bin/sh")
        );
        assert_eq!(resolve_program("tool", cwd, &[]), PathBuf::from("tool"));
    }

    #[test]
    fn exit_codes_from_signals() {
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(libc::SIGKILL)), 128 + 9);
    }
}
