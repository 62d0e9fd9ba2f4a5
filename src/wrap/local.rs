//! Running the compiler on this machine: the local compile (by `exec`, so
//! signals, stdin and the exit status are the compiler's own), the
//! dependency scan (captured), and replaying a remote result.

use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

use super::Invocation;

/// `argv[0]` for a compiler run here: the path it was found at. gcc finds
/// `cc1` relative to its own `argv[0]`, searching `PATH` for a bare name,
/// where a masquerade link (recast itself) may come first.
fn arg0(inv: &Invocation) -> &std::ffi::OsStr {
    inv.compiler.as_os_str()
}

/// Replaces this process with the compiler, as if recast were not there.
/// Returns only if the compiler cannot be started.
pub fn exec(inv: &Invocation) -> ExitCode {
    let err = Command::new(&inv.compiler)
        .arg0(arg0(inv))
        .args(&inv.args)
        .exec();
    eprintln!("recast: cannot run {}: {err}", inv.compiler.display());
    ExitCode::from(if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    })
}

/// Runs the compiler here and waits (cache-only mode keeps the process to
/// upload the result afterwards). The compiler's output goes straight to
/// ours.
pub fn run(inv: &Invocation) -> std::io::Result<std::process::ExitStatus> {
    Command::new(&inv.compiler)
        .arg0(arg0(inv))
        .args(&inv.args)
        .status()
}

/// Runs the compiler with `args` instead of the user's, output discarded;
/// whether it succeeded.
pub fn capture(inv: &Invocation, args: &[String], cwd: &Path) -> std::io::Result<bool> {
    let out = Command::new(&inv.compiler)
        .arg0(arg0(inv))
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .output()?;
    Ok(out.status.success())
}

/// Writes a remote result's streams and turns its exit code into ours
/// (out-of-range codes become 255, so a failure never reads as success).
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
