//! Reading compiler invocations (pure: argv, cwd and the environment come
//! in as values; no files are read except through the callbacks given, no
//! processes, no tokio).
//!
//! Each parser turns a command line into either a plan of what a remote
//! run must reproduce (sources, outputs, the arguments with every path
//! marked) or the reason it must run locally. Flags are data tables, one
//! row per flag; a flag recast cannot account for makes the invocation
//! local, never a wrong remote run.
//!
//! - `args`: response files (`@file`) expansion, shared by both parsers.
//! - `gcc`: gcc, g++, clang and clang++ (compile-only of one source).
//! - `depfile`: Make-style dependency files (`-M` output, rustc dep-info).
//! - `header_trace`: gcc's `-H` trace, read out of a compile's stderr.
//! - `rustc`: rustc as cargo runs it.
//!
//! Resolving the compiler, running the dependency scan, mapping paths into
//! the input root and talking to the server are the wrapper's job
//! (`crate::wrap`).

pub mod args;
pub mod depfile;
pub mod gcc;
pub mod header_trace;
pub mod rustc;

/// One argument, with the part of it that names a file marked, so the
/// wrapper can rewrite paths into the input root without knowing flags.
///
/// `-Iinclude` is `Path { prefix: "-I", path: "include" }`; the separate
/// form `-I include` is `Plain("-I")` followed by `Path { prefix: "",
/// path: "include" }`; `-fprofile-use=x.gcda` has prefix
/// `-fprofile-use=`. Flags whose value holds two paths (`-fdebug-prefix-map=OLD=NEW`)
/// are [`Arg::PrefixMap`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arg {
    /// Copied as is.
    Plain(String),
    /// `prefix` then a path, as one argument.
    Path { prefix: String, path: String },
    /// `flag` (up to and including the first `=`) then `OLD=NEW`: OLD is a
    /// path prefix to rewrite, NEW is kept as given.
    PrefixMap {
        flag: String,
        old: String,
        new: String,
    },
}

impl Arg {
    pub fn plain(s: impl Into<String>) -> Arg {
        Arg::Plain(s.into())
    }

    pub fn path(prefix: impl Into<String>, path: impl Into<String>) -> Arg {
        Arg::Path {
            prefix: prefix.into(),
            path: path.into(),
        }
    }

    /// The argument as the compiler sees it, with every path passed
    /// through `map`.
    pub fn render(&self, map: &dyn Fn(&str) -> String) -> String {
        match self {
            Arg::Plain(s) => s.clone(),
            Arg::Path { prefix, path } => format!("{prefix}{}", map(path)),
            Arg::PrefixMap { flag, old, new } => format!("{flag}{}={new}", map(old)),
        }
    }

    /// The argument unchanged.
    pub fn original(&self) -> String {
        self.render(&|p| p.to_string())
    }
}

/// Renders every argument through `map`.
pub fn render_all(args: &[Arg], map: &dyn Fn(&str) -> String) -> Vec<String> {
    args.iter().map(|a| a.render(map)).collect()
}
