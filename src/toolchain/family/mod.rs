//! Compiler families: what gcc, clang and rustc run and read beyond their
//! own binary, found by asking the compiler the way it finds them itself
//! (`-print-prog-name=cc1`, `-print-resource-dir`, `--print sysroot`).
//!
//! The answer is a [`Contents`]: programs and dlopened libraries (whose
//! loader closures [`super::inspect`] follows — this module never reads
//! `DT_NEEDED`), data trees and files, the sysroot, the PATH entries the
//! remote run needs, and notes saying what was asked and answered. Turning
//! that into a CAS tree and a manifest is left to the packager.
//!
//! The only process call is [`run`]; [`probe_with`] takes the runner and a
//! [`FileSource`] as values, so every family's logic is tested on captured
//! compiler output. The process environment is never read here: the PATH
//! to resolve helpers such as `as` on comes in [`ProbeOptions::path`].

mod clang;
mod gcc;
mod paths;
mod rustc;
#[cfg(test)]
mod tests;
mod zig;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{FileSource, HostFs};

pub use clang::{parse_clang_version, parse_resource_dir, parse_selected_gcc_installation};
pub use gcc::{
    ConfiguredWith, parse_configured_with, parse_exec_prefix, parse_prog_name, parse_search_dirs,
};
pub use rustc::{RustcVersion, parse_rustc_vv, rustc_from_sysroot};
pub use zig::{ZigEnv, parse_zig_env, plain_triple, version_in_binary};

/// A compiler family recast knows how to package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Gcc,
    Clang,
    Rustc,
    Zig,
}

impl Family {
    /// Every family, for messages that list them.
    pub const ALL: [Family; 4] = [Family::Gcc, Family::Clang, Family::Rustc, Family::Zig];

    /// The family a compiler's file name says, if any ([`tool_name`]):
    /// [`Named::family`] of [`Family::named`].
    pub fn of_name(name: &str) -> Option<Family> {
        Family::named(name).map(|n| n.family())
    }

    /// What a compiler's file name says of its family ([`tool_name`]);
    /// `None`: not a compiler's name.
    pub fn named(name: &str) -> Option<Named> {
        Some(match tool_name(name) {
            "gcc" | "g++" | "cc" | "c++" => Named::Ask(Family::Gcc),
            "clang" | "clang++" => Named::Sure(Family::Clang),
            "rustc" => Named::Sure(Family::Rustc),
            "zig" => Named::Sure(Family::Zig),
            _ => return None,
        })
    }
}

/// What a compiler's file name says of its family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    /// Only this family's compilers take this name (`clang`, `rustc`).
    Sure(Family),
    /// Usually this family's, but other compilers take the name too:
    /// `cc` and `c++` are clang on FreeBSD and macOS, and so is macOS's
    /// `gcc`. What the binary answers decides ([`decide`]).
    Ask(Family),
}

impl Named {
    /// The family the name suggests.
    pub fn family(self) -> Family {
        match self {
            Named::Sure(f) | Named::Ask(f) => f,
        }
    }
}

/// What a compiler is: the one decision, for the wrapper and the probe
/// alike. A name that is sure decides; otherwise `version` (the
/// compiler's `--version` output, asked only then) does, through
/// [`detect`]. `None`: not a compiler recast knows; it runs as it would
/// without recast.
pub fn decide(
    compiler: &Path,
    named: Named,
    version: impl FnOnce() -> Option<String>,
) -> Option<Family> {
    match named {
        Named::Sure(f) => Some(f),
        Named::Ask(_) => detect(compiler, &version()?),
    }
}

/// The tool a compiler's file name names: without `.exe`, a version
/// suffix (`gcc-12`, `clang++-14`, `g++-12.2`) and a cross prefix
/// (`aarch64-linux-gnu-gcc`). The one rule for the wrapper's table of
/// families and for compilers found in archives.
pub fn tool_name(name: &str) -> &str {
    let n = name.strip_suffix(".exe").unwrap_or(name);
    let base = match n.rsplit_once('-') {
        Some((head, tail))
            if !tail.is_empty() && tail.chars().all(|c| c.is_ascii_digit() || c == '.') =>
        {
            head
        }
        _ => n,
    };
    base.rsplit('-').next().unwrap_or(base)
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Family::Gcc => "gcc",
            Family::Clang => "clang",
            Family::Rustc => "rustc",
            Family::Zig => "zig",
        })
    }
}

/// What a registry key is built from: the same compiler on two machines
/// has the same identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identity {
    pub family: Family,
    /// gcc `-dumpfullversion` ("12.2.0"), clang `-dumpversion` ("14.0.6"),
    /// rustc `release:` ("1.95.0").
    pub version: String,
    /// rustc's `commit-hash:`; None for gcc and clang.
    pub commit: Option<String>,
    /// The triple the compiler runs on.
    pub host: String,
    /// The triple it compiles for by default.
    pub target: String,
}

/// What to include beyond what compiling for the default target needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeOptions {
    /// Targets to include libraries for (rustc / clang `--target`); empty:
    /// the default target.
    pub targets: Vec<String>,
    /// A `--sysroot` / `-isysroot` directory, packaged as its own subtree.
    pub sysroot: Option<PathBuf>,
    /// Include what linking needs (ld, collect2, crt files; rust-lld).
    pub linking: bool,
    /// The PATH helpers such as `as` are resolved on (the caller's PATH).
    pub path: Vec<PathBuf>,
}

/// Everything a compiler needs beyond its own binary's loader closure.
/// Lists are sorted and free of duplicates, so equal toolchains give equal
/// `Contents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Contents {
    pub identity: Identity,
    /// The compiler: as given (absolute, symlinks kept), or the real rustc
    /// behind a rustup proxy.
    pub entry: PathBuf,
    /// Executables the compiler runs (cc1, as, rust-lld): follow their
    /// loader closures. The entry is not repeated here.
    pub programs: Vec<PathBuf>,
    /// Shared objects it loads at run time (liblto_plugin.so,
    /// librustc_driver): follow their closures too.
    pub libraries: Vec<PathBuf>,
    /// Directories included whole, as data.
    pub trees: Vec<PathBuf>,
    /// Single data files (specs, crt files when linking).
    pub files: Vec<PathBuf>,
    /// The sysroot, packaged as a subtree of its own.
    pub sysroot: Option<PathBuf>,
    /// Directories that must be on the remote PATH (gcc finds `as` there).
    pub path_dirs: Vec<PathBuf>,
    /// Environment the remote run needs (usually empty).
    pub env: BTreeMap<String, String>,
    /// Targets whose libraries are included.
    pub targets: Vec<String>,
    /// What was asked and what it answered, for `recast toolchain inspect`.
    pub notes: Vec<String>,
}

/// Why a compiler could not be probed; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum FamilyError {
    #[error(
        "{}: not a compiler recast knows ({}); asked for its version it answered {output:?}; pass the compiler itself, e.g. /usr/bin/gcc",
        path.display(),
        Family::ALL.map(|f| f.to_string()).join(", ")
    )]
    NotACompiler { path: PathBuf, output: String },
    #[error("could not run {} {}: {source}; check that it exists and is executable", path.display(), args.join(" "))]
    Run {
        path: PathBuf,
        args: Vec<String>,
        #[source]
        source: io::Error,
    },
    #[error("{} {} failed ({status}): {stderr}", path.display(), args.join(" "))]
    Failed {
        path: PathBuf,
        args: Vec<String>,
        status: String,
        stderr: String,
    },
    #[error(
        "could not understand {what} in {text:?}; this compiler may print it differently than recast expects: please report it"
    )]
    Parse { what: String, text: String },
    #[error("target {target} is not available: {} does not exist; {hint}", searched.display())]
    MissingTarget {
        target: String,
        searched: PathBuf,
        hint: String,
    },
    #[error("{what} not found (searched {}); {hint}", searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    MissingTool {
        what: String,
        searched: Vec<PathBuf>,
        hint: String,
    },
    #[error("reading {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What running a tool gave back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOutput {
    /// Exit code; None when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `program args…` and returns its output: [`run`], or captured
/// answers in tests.
pub type Runner<'a> = &'a dyn Fn(&Path, &[String]) -> io::Result<RunOutput>;

/// The one process call of this module. The environment is inherited (a
/// rustup proxy needs `HOME` and `RUSTUP_TOOLCHAIN` to pick its toolchain)
/// except for the locale: gcc translates `Configured with:`.
pub fn run(program: &Path, args: &[String]) -> io::Result<RunOutput> {
    let out = std::process::Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(std::process::Stdio::null())
        .output()?;
    Ok(RunOutput {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// The family of a compiler from its path and its `--version` output (or
/// `-vV` for rustc). The text decides; the name only breaks ties. None:
/// not a compiler this module knows.
pub fn detect(compiler: &Path, version_output: &str) -> Option<Family> {
    let first = version_output.lines().find(|l| !l.trim().is_empty())?;
    let text = version_output;
    if first.starts_with("rustc ") || text.lines().any(|l| l.trim() == "binary: rustc") {
        return Some(Family::Rustc);
    }
    // zig has no --version: it answers with its usage.
    if text
        .lines()
        .any(|l| l.trim_start_matches("info: ").starts_with("Usage: zig "))
    {
        return Some(Family::Zig);
    }
    // "clang version 14.0.6", "Debian clang version …", "Apple clang version …".
    if text.lines().any(|l| l.contains("clang version ")) {
        return Some(Family::Clang);
    }
    // gcc names itself after argv[0] ("cc (Debian 12.2.0…) 12.2.0"), so the
    // first line proves little; its licence sentence does (coreutils,
    // binutils and gdb word theirs differently). gfortran, gccgo and gdc
    // share the sentence but not the C/C++ front ends.
    let name = compiler
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if text.contains("This is free software; see the source for copying conditions")
        && !first.starts_with("GNU ")
        && !["gfortran", "gccgo", "gdc", "gnat", "gm2"]
            .iter()
            .any(|n| name.contains(n))
    {
        return Some(Family::Gcc);
    }
    None
}

/// Probes the installed compiler at `compiler` (absolute) by running it.
pub fn probe(compiler: &Path, opts: &ProbeOptions) -> Result<Contents, FamilyError> {
    probe_with(&HostFs, &run, compiler, opts)
}

/// [`probe`] with the filesystem and the runner given.
pub fn probe_with(
    fs: &dyn FileSource,
    run: Runner<'_>,
    compiler: &Path,
    opts: &ProbeOptions,
) -> Result<Contents, FamilyError> {
    let ask = Ask {
        run,
        compiler,
        flags: Vec::new(),
    };
    let meta = paths::stat_followed(fs, compiler).map_err(|source| FamilyError::Io {
        path: compiler.to_path_buf(),
        source,
    })?;
    if meta.kind != super::Kind::File || !meta.executable {
        return Err(FamilyError::NotACompiler {
            path: compiler.to_path_buf(),
            output: "(not run: not an executable file)".into(),
        });
    }
    let version = match ask.output(&["--version"]) {
        Ok(out) => out,
        // A text file or a foreign binary: the kernel refuses to run it.
        Err(FamilyError::Run { source, .. })
            if matches!(
                source.raw_os_error(),
                Some(libc::ENOEXEC) | Some(libc::EACCES)
            ) =>
        {
            // A zig for another machine describes itself in its files.
            if let Some(contents) = zig::from_files(fs, compiler, opts) {
                return Ok(contents);
            }
            return Err(FamilyError::NotACompiler {
                path: compiler.to_path_buf(),
                output: format!("(could not run it: {source})"),
            });
        }
        Err(e) => return Err(e),
    };
    let text = format!("{}{}", version.stdout, version.stderr);
    match detect(compiler, &text) {
        Some(Family::Gcc) if version.code == Some(0) => gcc::probe(fs, &ask, opts, &text),
        Some(Family::Clang) if version.code == Some(0) => clang::probe(fs, &ask, opts, &text),
        Some(Family::Rustc) if version.code == Some(0) => rustc::probe(fs, &ask, opts),
        Some(Family::Zig) => zig::probe(fs, &ask, opts),
        _ => Err(FamilyError::NotACompiler {
            path: compiler.to_path_buf(),
            output: text.trim().chars().take(200).collect(),
        }),
    }
}

/// A compiler's identity read from its files alone, where its family
/// spells it there (zig: [`zig::version_in_binary`]); runs nothing.
pub fn identity_from_files(fs: &dyn FileSource, compiler: &Path) -> Option<Identity> {
    zig::from_files(fs, compiler, &ProbeOptions::default()).map(|c| c.identity)
}

/// Questions to one compiler, through the runner.
pub(crate) struct Ask<'a> {
    pub run: Runner<'a>,
    pub compiler: &'a Path,
    /// Put before every question's own arguments (`--target=`, `--sysroot=`).
    pub flags: Vec<String>,
}

/// Where the driver runs a helper program from (`-print-prog-name=`).
pub(crate) enum Program {
    /// A file in the driver's own dirs.
    Own(PathBuf),
    /// The driver answered a bare name, so it runs the one on PATH: this.
    OnPath(PathBuf),
    /// Neither in its dirs nor on the PATH given.
    Missing,
}

impl<'a> Ask<'a> {
    /// The same compiler, asked with `flags` before every question.
    fn with_flags(&self, flags: Vec<String>) -> Ask<'a> {
        Ask {
            run: self.run,
            compiler: self.compiler,
            flags,
        }
    }

    /// The raw output, whatever the exit status.
    fn output(&self, args: &[&str]) -> Result<RunOutput, FamilyError> {
        let args: Vec<String> = self
            .flags
            .iter()
            .cloned()
            .chain(args.iter().map(|s| s.to_string()))
            .collect();
        (self.run)(self.compiler, &args).map_err(|source| FamilyError::Run {
            path: self.compiler.to_path_buf(),
            args,
            source,
        })
    }

    /// Stdout, trimmed, of a run that must succeed.
    fn stdout(&self, args: &[&str]) -> Result<String, FamilyError> {
        let out = self.output(args)?;
        if out.code != Some(0) {
            return Err(FamilyError::Failed {
                path: self.compiler.to_path_buf(),
                args: self
                    .flags
                    .iter()
                    .map(String::as_str)
                    .chain(args.iter().copied())
                    .map(str::to_string)
                    .collect(),
                status: out
                    .code
                    .map_or("killed by a signal".into(), |c| format!("exit {c}")),
                stderr: out.stderr.trim().to_string(),
            });
        }
        Ok(out.stdout.trim().to_string())
    }

    /// `-print-{kind}-name={name}` (`kind`: "prog" or "file"): the answer,
    /// and the path it names, cleaned, when that is absolute (a bare name:
    /// the driver found nothing in its own dirs).
    fn print_name(
        &self,
        fs: &dyn FileSource,
        kind: &str,
        name: &str,
    ) -> Result<(String, Option<PathBuf>), FamilyError> {
        let answer = self.stdout(&[format!("-print-{kind}-name={name}").as_str()])?;
        let path = parse_prog_name(&answer).map(|p| paths::clean(fs, &p));
        Ok((answer, path))
    }

    /// The file `-print-{kind}-name={name}` names in the driver's own dirs.
    fn own_file(
        &self,
        fs: &dyn FileSource,
        kind: &str,
        name: &str,
    ) -> Result<Option<PathBuf>, FamilyError> {
        let (_, path) = self.print_name(fs, kind, name)?;
        Ok(path.filter(|p| paths::is_file(fs, p)))
    }

    /// Where the driver runs program `name` from: its own dirs, or else
    /// (answering a bare name) the first on `path`, as the driver's exec
    /// finds it. The answer comes along for messages.
    fn program(
        &self,
        fs: &dyn FileSource,
        name: &str,
        path: &[PathBuf],
    ) -> Result<(String, Program), FamilyError> {
        let (answer, own) = self.print_name(fs, "prog", name)?;
        let program = match own.filter(|p| paths::is_file(fs, p)) {
            Some(p) => Program::Own(p),
            None => match paths::find_on_path(fs, path, &answer) {
                Some(p) => Program::OnPath(p),
                None => Program::Missing,
            },
        };
        Ok((answer, program))
    }
}

/// Collects paths into sorted, duplicate-free lists.
#[derive(Default)]
pub(crate) struct Builder {
    pub programs: BTreeSet<PathBuf>,
    pub libraries: BTreeSet<PathBuf>,
    pub trees: BTreeSet<PathBuf>,
    pub files: BTreeSet<PathBuf>,
    pub path_dirs: Vec<PathBuf>,
    pub notes: Vec<String>,
}

impl Builder {
    fn note(&mut self, s: impl Into<String>) {
        self.notes.push(s.into());
    }

    fn path_dir(&mut self, d: PathBuf) {
        if !self.path_dirs.contains(&d) {
            self.path_dirs.push(d);
        }
    }

    /// Adds a program the driver runs from PATH, and its dir to the remote
    /// PATH so that the driver finds it there too.
    fn program_on_path(&mut self, p: PathBuf) {
        if let Some(dir) = p.parent() {
            self.path_dir(dir.to_path_buf());
        }
        self.programs.insert(p);
    }

    fn finish(
        self,
        identity: Identity,
        entry: PathBuf,
        sysroot: Option<PathBuf>,
        targets: Vec<String>,
    ) -> Contents {
        // What lies inside the sysroot ships with it; listing it again
        // would tie the compiler's tree to one sysroot.
        let outside = |p: &PathBuf| sysroot.as_ref().is_none_or(|s| !p.starts_with(s));
        Contents {
            identity,
            entry,
            programs: self.programs.into_iter().collect(),
            libraries: self.libraries.into_iter().collect(),
            trees: self.trees.into_iter().filter(outside).collect(),
            files: self.files.into_iter().filter(outside).collect(),
            sysroot,
            path_dirs: self.path_dirs,
            env: BTreeMap::new(),
            targets,
            notes: self.notes,
        }
    }
}

/// Whether two triples name the same platform (`x86_64-linux-gnu` and
/// `x86_64-pc-linux-gnu` do): architecture, OS and environment agree.
pub(crate) fn same_triple(a: &str, b: &str) -> bool {
    use std::str::FromStr as _;
    use target_lexicon::Triple;
    if a == b {
        return true;
    }
    match (Triple::from_str(a), Triple::from_str(b)) {
        (Ok(x), Ok(y)) => {
            x.architecture == y.architecture
                && x.operating_system == y.operating_system
                && x.environment == y.environment
        }
        _ => false,
    }
}
