//! The relocated layout: an action that runs in a plain directory on any
//! worker (NativeLink's and Buildbarn's default runners, BuildBuddy,
//! EngFlow, `recast serve --sandbox none`), from the bundle alone.
//!
//! The input root is the rooted layout's — every file at its own absolute
//! path under the root, the project moved or not (`placement`) — and the
//! command reaches it through two links in the working directory:
//!
//! - [`ROOT`] (`.r`) leads to the input root, so an absolute path `/usr/x`
//!   is spelled `.r/usr/x`, relative, and resolves on every worker;
//! - [`LOADER`] (`.r-ld`) leads to the bundle's ELF loader. Every program
//!   of the toolchain has its interpreter (`PT_INTERP`) rewritten to this
//!   relative name, which the kernel resolves against the working
//!   directory of the process that execs it: the driver, `cc1`, `as`,
//!   `collect2` and `ld`, or the linker rustc runs, all start there, so
//!   each starts through the bundle's loader, with the bundle's libraries
//!   (`LD_LIBRARY_PATH`, relative too). The patched copies live in the
//!   cache (`<cache>/relocated/`), made once per file.
//!
//! The command starts with the bundle's own `/bin/sh` (its closure
//! shipped and patched like the rest): it sets `PWD=/proc/self/cwd`, which
//! gcc and clang take as their working directory (and a prefix map turns
//! into the local one), and computes, at run time, the real path of the
//! working directory for the families that need it (rustc's
//! `--remap-path-prefix`). Nothing of the worker's filesystem is used.
//! Families add their own flags (`family::Job::relocation`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::depcache;
use crate::cas::Digest;

/// The working directory's link to the input root.
pub const ROOT: &str = ".r";
/// The working directory's link to the loader: every patched program's
/// interpreter.
pub use crate::toolchain::relocate::LOADER;
/// The launcher: this machine's shell, shipped with the action.
pub const SHELL: &str = "/bin/sh";
/// What no output of a relocated action may contain: a path through it
/// is one the compile saw at run time on the worker, not here.
pub const PROC_CWD: &str = "/proc/self/cwd";

/// The launcher that makes the input root `/` on a worker that runs
/// actions in a plain directory and can make user namespaces.
pub const BWRAP: &str = "/usr/bin/bwrap";

/// bubblewrap's arguments, up to `--`, for a rooted command on such a
/// worker: `up` is the input root from the working directory (`../..`),
/// `workdir` the command's working directory inside it (absolute); a
/// fresh `/tmp` unless the input root has one (`has_tmp`); the command's
/// own `LD_LIBRARY_PATH` (`own`), since the launcher's is another. Nothing
/// of the worker's own filesystem is bound.
pub fn namespace_args(up: &str, workdir: &str, has_tmp: bool, own: Option<&str>) -> Vec<String> {
    let mut args: Vec<String> = [
        "--unshare-all",
        "--die-with-parent",
        "--bind",
        up,
        "/",
        "--dev",
        "/dev",
        // The worker's own /proc: a fresh one cannot be mounted inside a
        // sandbox that already masks parts of its /proc (a worker that
        // runs each action in bubblewrap).
        "--ro-bind",
        "/proc",
        "/proc",
    ]
    .map(String::from)
    .to_vec();
    if !has_tmp {
        args.extend(["--tmpfs".into(), "/tmp".into()]);
    }
    match own {
        Some(v) => args.extend(["--setenv".into(), "LD_LIBRARY_PATH".into(), v.into()]),
        None => args.extend(["--unsetenv".into(), "LD_LIBRARY_PATH".into()]),
    }
    args.extend(["--chdir".into(), workdir.into(), "--".into()]);
    args
}

/// A launcher's `LD_LIBRARY_PATH`: its library directories (tree paths)
/// through the root link.
pub fn launcher_libraries(dirs: &[String]) -> String {
    let libs: Vec<String> = dirs.iter().map(|d| rel(&format!("/{d}"))).collect();
    libs.join(":")
}

/// How an action is laid out for a server's workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// Every file at its own absolute path; the worker makes the input
    /// root its `/`.
    Rooted,
    /// Relative paths only, the toolchain started from the bundle.
    Relocated,
    /// The rooted action on a worker of the relocated kind that can make
    /// user namespaces: a launcher shipped with it (bubblewrap) makes the
    /// input root `/`. For compiles that cannot be relocated.
    Namespaced,
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Layout::Rooted => "rooted",
            Layout::Relocated => "relocated",
            Layout::Namespaced => "namespaced",
        })
    }
}

/// `p` (an absolute remote path) as a relocated command names it.
pub fn rel(p: &str) -> String {
    match p.strip_prefix('/') {
        Some(rest) => format!("{ROOT}/{rest}"),
        None => p.to_string(),
    }
}

/// `p` (an absolute remote path) as an absolute path that resolves on any
/// worker: through the process's own working directory.
pub fn proc_abs(p: &str) -> String {
    match p.strip_prefix('/') {
        Some(rest) => format!("{PROC_CWD}/{ROOT}/{rest}"),
        None => p.to_string(),
    }
}

/// `text` with the paths a relocated command spelled turned back into
/// this machine's: `.r/usr/x` and `/proc/self/cwd/.r/usr/x` are `/usr/x`
/// wherever a path can start (after whitespace, a quote, `:`, `=`, `(`).
pub fn unrelocate(text: &str) -> String {
    let text = text.replace(&format!("{PROC_CWD}/{ROOT}/"), "/");
    let needle = format!("{ROOT}/");
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(i) = rest.find(&needle) {
        out.push_str(&rest[..i]);
        let starts = out.is_empty()
            || ends_with_csi(&out)
            || out
                .chars()
                .next_back()
                .is_some_and(|c| c.is_whitespace() || "\"'`:=(,[".contains(c));
        out.push_str(if starts { "/" } else { &needle });
        rest = &rest[i + needle.len()..];
    }
    out.push_str(rest);
    out
}

/// Variables a compiler's answers depend on.
const ASKED_ENV: [&str; 8] = [
    "CPATH",
    "C_INCLUDE_PATH",
    "CPLUS_INCLUDE_PATH",
    "OBJC_INCLUDE_PATH",
    "OBJCPLUS_INCLUDE_PATH",
    "GCC_EXEC_PREFIX",
    "COMPILER_PATH",
    "LIBRARY_PATH",
];

/// How long an answer is kept.
const ANSWER_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Whether `text` ends with a terminal escape sequence (`ESC [ … m`, a
/// diagnostic's color; in rustc's JSON, `\u001b[ … m`), after which a
/// path starts.
fn ends_with_csi(text: &str) -> bool {
    let raw = text.rfind('\x1b').map(|i| i + 1);
    let json = text.rfind("\\u001b").map(|i| i + "\\u001b".len());
    let Some(after) = raw.max(json) else {
        return false;
    };
    let Some(body) = text[after..].strip_prefix('[') else {
        return false;
    };
    let mut chars = body.chars();
    let last = chars.next_back();
    last.is_some_and(|c| ('@'..='~').contains(&c)) && chars.all(|c| c.is_ascii_digit() || c == ';')
}

/// A question to `program` (`args`, asked in `ctx`'s working directory),
/// its answer read by `read` and kept for a day under `<cache>/answers/`
/// by toolchain (`root`), question, arguments, working directory and
/// [`ASKED_ENV`]. `Err`: the program could
/// not answer, and the compile cannot be relocated.
pub(crate) fn ask(
    ctx: &super::Ctx,
    program: &Path,
    root: &Digest,
    what: &str,
    args: &[String],
    read: impl Fn(&str) -> Option<Vec<String>>,
) -> Result<Vec<String>, super::family::Reason> {
    let mut parts: Vec<Vec<u8>> = vec![
        root.to_string().into_bytes(),
        program.as_os_str().as_encoded_bytes().to_vec(),
        ctx.cwd.as_os_str().as_encoded_bytes().to_vec(),
    ];
    // What else the program hears: relative arguments, the variables that
    // change its search lists.
    for var in ASKED_ENV {
        parts.push(format!("{var}={}", ctx.var(var).unwrap_or_default()).into_bytes());
    }
    parts.extend(args.iter().map(|a| a.as_bytes().to_vec()));
    let answer = remembered(ctx, what, parts, || {
        read(&super::process::ask(program, args, &ctx.cwd, None)?)
    });
    answer.ok_or(super::family::Reason::NotRelocatable)
}

/// What `compute` gives, kept for a day under `<cache>/answers/` by
/// `what` and `parts` (the key): a directory installed since
/// (`/usr/local/include`) can change an answer, so it is asked again after
/// a day. `None` (nothing to keep) is asked again every time.
pub(crate) fn remembered<T: Serialize + serde::de::DeserializeOwned>(
    ctx: &super::Ctx,
    what: &str,
    mut parts: Vec<Vec<u8>>,
    compute: impl FnOnce() -> Option<T>,
) -> Option<T> {
    parts.insert(0, what.as_bytes().to_vec());
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let key = depcache::key(&refs);
    let path = ctx
        .cache_dir
        .join("answers")
        .join(format!("{what}-{}.json", &key.hex()[..32]));
    let fresh = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age < ANSWER_TTL);
    if let Some(v) = fresh
        .then(|| std::fs::read(&path).ok())
        .flatten()
        .and_then(|b| serde_json::from_slice::<T>(&b).ok())
    {
        return Some(v);
    }
    let v = compute()?;
    depcache::save(&ctx.cache_dir, &path, &v);
    Some(v)
}

/// `s` as one word for the launcher's `sh -c` script.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// bubblewrap binds the input root as `/` from the working directory,
    /// hides a /tmp only where the root has none, and gives the command
    /// its own library path, not the launcher's.
    #[test]
    fn a_namespaced_command_binds_the_root_and_keeps_the_commands_environment() {
        let a = namespace_args("../..", "/p/build", false, None);
        let at = |flag: &str| a.iter().position(|x| x == flag).unwrap();
        assert_eq!(a[at("--bind") + 1..at("--bind") + 3], ["../..", "/"]);
        assert_eq!(a[at("--tmpfs") + 1], "/tmp");
        assert_eq!(a[at("--unsetenv") + 1], "LD_LIBRARY_PATH");
        assert_eq!(a[a.len() - 3..], ["--chdir", "/p/build", "--"]);
        assert!(a.contains(&"--unshare-all".to_string()));
        let b = namespace_args(".", "/", true, Some("/opt/lib"));
        assert!(!b.contains(&"--tmpfs".to_string()), "{b:?}");
        assert!(!b.contains(&"--unsetenv".to_string()), "{b:?}");
        let set = b.iter().position(|x| x == "--setenv").unwrap();
        assert_eq!(b[set + 1..set + 3], ["LD_LIBRARY_PATH", "/opt/lib"]);
    }

    #[test]
    fn absolute_paths_are_spelled_through_the_root_link() {
        assert_eq!(rel("/usr/include"), ".r/usr/include");
        assert_eq!(rel("src/a.c"), "src/a.c");
        assert_eq!(proc_abs("/home/u/p/out"), "/proc/self/cwd/.r/home/u/p/out");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(
            unrelocate(
                ".r/usr/include/stdio.h:3: error in \".r/home/u/a.c\" (x.r/y) /proc/self/cwd/.r/opt/z\n.r/q"
            ),
            "/usr/include/stdio.h:3: error in \"/home/u/a.c\" (x.r/y) /opt/z\n/q"
        );
        // gcc's colored diagnostics: the path follows an escape sequence.
        assert_eq!(
            unrelocate("\x1b[01m\x1b[K.r/p/e.h:1:12:\x1b[m\x1b[K x.r/y"),
            "\x1b[01m\x1b[K/p/e.h:1:12:\x1b[m\x1b[K x.r/y"
        );
        assert_eq!(
            unrelocate("\"rendered\":\"\\u001b[0m\\u001b[1m.r/p/lib.rs:1\""),
            "\"rendered\":\"\\u001b[0m\\u001b[1m/p/lib.rs:1\""
        );
    }
}
