//! Which compiler a wrapper invocation means.
//!
//! Three ways in:
//! - `recast gcc …`, `recast /usr/bin/clang++ …`, and what cargo and CMake
//!   run (`RUSTC_WRAPPER=recast` → `recast /path/to/rustc …`,
//!   `CMAKE_C_COMPILER_LAUNCHER=recast` → `recast /usr/bin/cc …`): the first
//!   argument names the compiler, as a path or a name on `PATH`.
//! - Masquerade: recast installed as (or linked to by) `gcc`, `cc`,
//!   `clang++`, `aarch64-linux-gnu-gcc`, …: the next real compiler of that
//!   name on `PATH` runs, recast itself skipped.
//! - Anything else is a recast subcommand, for clap.
//!
//! Which names are compilers' is `toolchain::family::Family::named`'s
//! business. Pure apart from [`resolve`], which searches `PATH`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::toolchain::family::{Family, Named};

/// A compiler invocation to wrap.
#[derive(Clone, Debug)]
pub struct Invocation {
    /// The compiler, as found (absolute; never recast itself).
    pub compiler: PathBuf,
    /// `argv[0]` for the compiler: the name it was invoked by.
    pub argv0: OsString,
    pub args: Vec<OsString>,
    /// What its name says of its family.
    pub(crate) named: Named,
    /// Its family: what the name says until `wrap::main` has decided
    /// (`toolchain::local::family`).
    pub(crate) family: Family,
}

/// Whether `name` (a file name, no directory) names a compiler recast
/// wraps.
pub fn is_compiler(name: &str) -> bool {
    Family::named(name).is_some()
}

/// What recast's command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Detected {
    /// A recast subcommand (or `--help`): clap's business.
    Subcommand,
    /// A compiler: the name or path given, and where its arguments start.
    Compiler {
        name: OsString,
        args_from: usize,
        masquerade: bool,
    },
}

/// Reads `argv` (pure). `subcommands` are the names clap knows.
pub fn detect(argv: &[OsString], subcommands: &[&str]) -> Detected {
    let Some(argv0) = argv.first() else {
        return Detected::Subcommand;
    };
    let own = Path::new(argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !own.starts_with("recast") && is_compiler(&own) {
        return Detected::Compiler {
            name: OsString::from(&own),
            args_from: 1,
            masquerade: true,
        };
    }
    let Some(first) = argv.get(1) else {
        return Detected::Subcommand;
    };
    let first_str = first.to_string_lossy();
    if first_str.starts_with('-') || subcommands.contains(&first_str.as_ref()) {
        return Detected::Subcommand;
    }
    let file = Path::new(first)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if is_compiler(&file) {
        return Detected::Compiler {
            name: first.clone(),
            args_from: 2,
            masquerade: false,
        };
    }
    Detected::Subcommand
}

/// Why no compiler could be found.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(
        "{0}: not found on PATH (recast itself skipped); install it, or name the compiler by its path (`recast /usr/bin/{0} …`)"
    )]
    NotFound(String),
    #[error(
        "{}: no such compiler; check the path, or name one on PATH (`recast gcc …`)",
        .0.display()
    )]
    Missing(PathBuf),
}

/// Finds the compiler `name` means: a path as given (made absolute
/// against `cwd`), else the first executable of that name on `path` that
/// is not `me` (recast, as `/proc/self/exe` says).
pub fn resolve(
    name: &OsString,
    cwd: &Path,
    path: &[PathBuf],
    me: &Path,
) -> Result<PathBuf, ResolveError> {
    let me = std::fs::metadata(me).ok().map(|m| file_id(&m));
    resolve_from(name, cwd, path, me)
}

/// The file a path leads to, links followed: the same device and inode
/// are the same file, however it is named (a stat, where resolving every
/// link on the way takes one call per component).
fn file_id(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt as _;
    (m.dev(), m.ino())
}

fn resolve_from(
    name: &OsString,
    cwd: &Path,
    path: &[PathBuf],
    me: Option<(u64, u64)>,
) -> Result<PathBuf, ResolveError> {
    let given = Path::new(name);
    let is_me = |m: &std::fs::Metadata| me == Some(file_id(m));
    if given.components().count() > 1 {
        let abs = cwd.join(given);
        let Ok(m) = std::fs::metadata(&abs) else {
            return Err(ResolveError::Missing(abs));
        };
        if is_me(&m) {
            // A path to a masquerade link: look further on PATH.
            let file = given.file_name().unwrap_or_default().to_os_string();
            return resolve_from(&file, cwd, path, me);
        }
        return Ok(abs);
    }
    for dir in path {
        let p = dir.join(given);
        if std::fs::metadata(&p).is_ok_and(|m| is_executable(&m) && !is_me(&m)) {
            return Ok(if p.is_absolute() { p } else { cwd.join(p) });
        }
    }
    Err(ResolveError::NotFound(given.to_string_lossy().into_owned()))
}

fn is_executable(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    m.is_file() && m.permissions().mode() & 0o111 != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    const SUBS: [&str; 3] = ["run", "serve", "stats"];

    #[test]
    fn the_first_argument_or_argv0_names_the_compiler() {
        assert_eq!(
            detect(&argv(&["recast", "gcc", "-c", "a.c"]), &SUBS),
            Detected::Compiler {
                name: "gcc".into(),
                args_from: 2,
                masquerade: false
            }
        );
        assert_eq!(
            detect(
                &argv(&["/usr/bin/recast", "/home/u/.rustup/bin/rustc", "-vV"]),
                &SUBS
            ),
            Detected::Compiler {
                name: "/home/u/.rustup/bin/rustc".into(),
                args_from: 2,
                masquerade: false
            }
        );
        assert_eq!(
            detect(&argv(&["/usr/lib/recast/gcc", "-c", "a.c"]), &SUBS),
            Detected::Compiler {
                name: "gcc".into(),
                args_from: 1,
                masquerade: true
            }
        );
        for a in [
            &["recast", "run", "--", "gcc"][..],
            &["recast", "--help"],
            &["recast"],
            &["recast", "frobnicate"],
        ] {
            assert_eq!(detect(&argv(a), &SUBS), Detected::Subcommand, "{a:?}");
        }
    }

    #[test]
    fn resolve_skips_recast_itself_on_path() {
        use std::os::unix::fs::PermissionsExt as _;
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let me = d.path().join("recast-bin");
        std::fs::write(&me, b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&me, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink(&me, a.join("gcc")).unwrap();
        std::fs::write(b.join("gcc"), b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(b.join("gcc"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let me = std::fs::canonicalize(&me).unwrap();
        let path = vec![a.clone(), b.clone()];
        let found = resolve(&"gcc".into(), d.path(), &path, &me).unwrap();
        assert_eq!(found, b.join("gcc"));
        // A path to the masquerade link itself goes on to the real one.
        let found = resolve(&a.join("gcc").into_os_string(), d.path(), &path, &me).unwrap();
        assert_eq!(found, b.join("gcc"));
        assert!(matches!(
            resolve(&"clang".into(), d.path(), &path, &me),
            Err(ResolveError::NotFound(_))
        ));
    }
}
