//! Running the compiler on this machine: the local compile (by `exec`, so
//! signals, stdin and the exit status are the compiler's own, or watched
//! to its end when the wrapper must see how it went), the dependency scan
//! (captured), and replaying a remote result.
//!
//! One exit-code rule for every local run the wrapper waits for
//! ([`exit_code`]): a compiler killed by signal N ends the wrapper with
//! 128 + N, as a shell reports it; one that cannot be started ends it with
//! 127 (not found) or 126 (not runnable), with one message. Replayed
//! remote codes outside 0..=255 become 255, so a failure never reads as a
//! success. An `exec`ed compiler needs no rule: its status is ours.

use std::io::Write as _;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::Path;
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};

use super::Invocation;

/// `argv[0]` for a compiler run here: the path it was found at. gcc finds
/// `cc1` relative to its own `argv[0]`, searching `PATH` for a bare name,
/// where a masquerade link (recast itself) may come first.
fn command(inv: &Invocation) -> Command {
    let mut c = Command::new(&inv.compiler);
    c.arg0(inv.compiler.as_os_str());
    c
}

/// The message and code for a compiler that could not be started.
fn cannot_run(inv: &Invocation, err: &std::io::Error) -> i32 {
    eprintln!(
        "recast: cannot run {}: {err}; check that the compiler exists and is executable",
        inv.compiler.display()
    );
    if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    }
}

/// The wrapper's exit code for a local run's status.
pub fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 255,
    }
}

/// Replaces this process with the compiler, as if recast were not there.
/// Returns only if the compiler cannot be started.
pub fn exec(inv: &Invocation) -> ExitCode {
    let err = command(inv).args(&inv.args).exec();
    ExitCode::from(cannot_run(inv, &err) as u8)
}

/// Runs the compiler here with the user's arguments and `extra`, and
/// waits; its streams are ours. The exit code by [`exit_code`].
pub fn run(inv: &Invocation, extra: &[String]) -> i32 {
    match command(inv).args(&inv.args).args(extra).status() {
        Ok(status) => exit_code(status),
        Err(e) => cannot_run(inv, &e),
    }
}

/// Runs the compiler here like [`run`], but with its stdout and stderr
/// captured (stdin is ours): the exit code and the two streams, for a
/// result the action cache keeps whole.
pub fn run_captured(inv: &Invocation, extra: &[String]) -> (i32, Vec<u8>, Vec<u8>) {
    let out = command(inv)
        .args(&inv.args)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output();
    match out {
        Ok(out) => (exit_code(out.status), out.stdout, out.stderr),
        Err(e) => (cannot_run(inv, &e), Vec::new(), Vec::new()),
    }
}

/// Runs the compiler with `args` instead of the user's, output discarded;
/// whether it succeeded.
pub fn capture(inv: &Invocation, args: &[String], cwd: &Path) -> std::io::Result<bool> {
    Ok(start(inv, args, cwd)?.wait()?.success())
}

/// Runs the compiler with `args` instead of the user's, stdout
/// discarded: its stderr, when it succeeded.
pub fn stderr_of(inv: &Invocation, args: &[String], cwd: &Path) -> Option<Vec<u8>> {
    let out = command(inv)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .ok()?;
    out.status.success().then_some(out.stderr)
}

/// Starts the compiler with `args` instead of the user's, its streams
/// discarded, and does not wait.
pub fn start(inv: &Invocation, args: &[String], cwd: &Path) -> std::io::Result<Child> {
    command(inv)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

/// Asks the compiler something (`-print-search-dirs`, `-E -v`), with one
/// more variable set (`env`): its stdout and stderr, when it succeeds.
pub fn ask(
    program: &Path,
    args: &[String],
    cwd: &Path,
    env: Option<(&str, &Path)>,
) -> Option<String> {
    let mut cmd = Command::new(program);
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    let out = cmd
        .args(args)
        .current_dir(cwd)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    out.status.success().then(|| {
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        text
    })
}

/// Writes a remote result's streams and turns its exit code into ours.
pub fn replay(stdout: &[u8], stderr: &[u8], code: i32) -> ExitCode {
    let _ = std::io::stdout().write_all(stdout);
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().write_all(stderr);
    let _ = std::io::stderr().flush();
    ExitCode::from(match code {
        0..=255 => code as u8,
        _ => 255,
    })
}

/// Starts `recast ARGS` (this binary) in a process group of its own, so a
/// Ctrl-C in the build does not stop it, with no stdin and its output in
/// `log`: the background uploads and publishers compiles leave behind.
pub(super) fn start_detached(args: &[&std::ffi::OsStr], log: std::fs::File) -> std::io::Result<()> {
    Command::new(std::env::current_exe()?)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_ends_the_wrapper_as_a_shell_reports_it() {
        let killed = Command::new("/bin/sh")
            .args(["-c", "kill -TERM $$"])
            .status()
            .unwrap();
        assert_eq!(exit_code(killed), 128 + 15);
        let failed = Command::new("/bin/sh")
            .args(["-c", "exit 3"])
            .status()
            .unwrap();
        assert_eq!(exit_code(failed), 3);
    }
}
