//! The seams through which a compiler family joins the one pipeline
//! (`pipeline`), and each family's driver.
//!
//! A family supplies what differs between compilers and nothing else:
//! - a [`Driver`]: how a command line becomes a [`Job`] (its parser, in
//!   `crate::invocation`);
//! - per job: the environment it observes, the toolchains it needs (whose
//!   probe lives in `crate::toolchain::family`), its dependency scan
//!   ([`ScanSpec`]), its action ([`ActionSpec`]), and what happens once
//!   outputs land or a local run ends.
//!
//! What a compiler is, `crate::toolchain::family` decides (its `Family`,
//! from the file name where that is proof, else from what the compiler
//! answers); everything here follows from that value. Adding a family is
//! a `Family` variant, its arm in [`driver`], a parser, a probe, and a
//! driver module beside `cc` and `rust`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use futures::future::BoxFuture;

use super::color::ColorPolicy;
use super::depcache::Seen;
use super::placement::Exposure;
use super::stats::Event;
use super::tool::Tool;
use super::{Ctx, Invocation, cc, rust};
use crate::cas::Digest;
use crate::cas::tree::Entry;
use crate::invocation::Arg;
use crate::toolchain::family::Family;

/// The driver of a family's compiles: one arm per family, so a family
/// added to `Family` does not compile until it has one.
pub(crate) fn driver(family: Family) -> &'static dyn Driver {
    match family {
        Family::Gcc | Family::Clang => &cc::Driver::Plain,
        Family::Zig => &cc::Driver::Zig,
        Family::Rustc => &rust::Driver,
    }
}

pub(crate) use super::why::Reason;

/// A family's entry: a command line to a [`Job`].
pub(crate) trait Driver: Sync {
    /// Reads the invocation (response files expanded); `Err` is the stats
    /// key of why it runs locally.
    fn parse(&self, ctx: &Ctx, inv: &Invocation) -> Result<Box<dyn Job>, Reason>;
}

/// A toolchain a job needs packaged.
#[derive(Clone, Debug)]
pub(crate) struct ToolRequest {
    /// The program (absolute).
    pub compiler: PathBuf,
    pub targets: Vec<String>,
    pub linking: bool,
    /// When the targets' libraries are missing here, package without them
    /// (a compile that needs none, such as `#![no_core]`, then works; any
    /// other fails remotely as it would here).
    pub targets_optional: bool,
}

/// How the local scan runs: the compiler with `runs[i]` plus
/// `depfile_args(tmp)`.
pub(crate) struct ScanSpec {
    /// What keys the scan beside the toolchain, compiler, working
    /// directory, arguments and environment.
    pub key: Vec<Vec<u8>>,
    /// The first run's depfile is kept (and written, or read for more);
    /// the last run's lists the files.
    pub runs: Vec<Vec<String>>,
    /// The arguments that make a run write its depfile to `tmp`.
    pub depfile_args: fn(&Path) -> Vec<String>,
    /// Files read that no depfile lists, spelled as the compile names them.
    pub extra: Vec<String>,
    /// Keep the first run's depfile text in the result.
    pub keep_depfile: bool,
    /// Arguments that make the compiler preprocess the source to its
    /// output file (`-E -P`; the wrapper adds `-o <tmp>`), so the text
    /// can show whether a macro naming the file (`__FILE__`) is expanded
    /// with the project's location. `None`: the family has no such step.
    pub preprocess: Option<Vec<String>>,
    /// How the compile itself lists what it read, as the last run would
    /// (a compile that runs here first needs no scan: [`FromCompile`]).
    /// `None`: only a scan says.
    pub from_compile: Option<FromCompile>,
}

/// Where a compile run here writes the list a scan would give (the last
/// run's depfile).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FromCompile {
    /// With `-MD -MF <tmp>` added: the compile has no depfile of its own.
    Added,
    /// The user's own `-MD` depfile at this path (as spelled): the list,
    /// and the text a later hit writes there.
    Users(String),
    /// The user's own `-MMD` depfile at this path (as spelled): the text a
    /// later hit writes there, but not the whole list (it leaves system
    /// headers out). The list is the last scan run's, run beside the
    /// compile: one preprocessor run, where a scan first takes two.
    Beside(String),
    /// The user's own `-MMD` depfile at this path (as spelled), from a gcc
    /// compile that `-H` changes nothing of but its stderr: the compile
    /// runs with `-H`, and its trace lists the headers, so no second
    /// preprocessor runs. What the compile reads that no trace shows
    /// (gcc's implicit `stdc-predef.h`) is listed by `probe` (the list
    /// run's arguments, the source at `source_at`) on an empty source,
    /// once per set of arguments.
    Traced {
        depfile: String,
        probe: Vec<String>,
        source_at: usize,
    },
}

/// What the scan found.
#[derive(Clone, Debug)]
pub(crate) struct Scanned {
    pub files: Vec<Seen>,
    pub depfile: Option<String>,
    /// The compile expands a file-naming macro to a path in the project
    /// root: its output depends on where the project is, so it must not
    /// be moved (see `scan::sees_location`).
    pub sees_location: bool,
}

/// A value for the remote Command's environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum EnvValue {
    Plain(String),
    /// A path, moved with the project when its root moves.
    Path(String),
    /// Paths separated by `:` (`CPATH`), each moved so.
    PathList(String),
}

/// How a job's command runs in the relocated layout (`layout`), beyond
/// what every job gets: its paths through the root link, the launcher,
/// the toolchains' `PATH` and libraries.
#[derive(Debug, Default)]
pub(crate) struct Relocation {
    /// Arguments right after the compiler, before the job's own.
    pub lead: Vec<String>,
    /// Arguments after the job's own.
    pub tail: Vec<String>,
    /// Shell words the launcher appends at run time, where `$P` is the
    /// working directory's real path on the worker (already quoted).
    pub runtime: Vec<String>,
    /// Environment, spelled for the worker.
    pub env: Vec<(String, String)>,
}

/// What a job's relocation is made from.
pub(crate) struct RelocationSite<'a> {
    /// The local working directory (normalized).
    pub cwd: &'a std::path::Path,
    /// Where local paths sit in the input root.
    pub map: &'a super::placement::PathMap,
    pub tools: &'a [Tool],
    pub scanned: &'a Scanned,
    pub ctx: &'a Ctx,
    pub inv: &'a Invocation,
}

/// Where a job's action files go and what the command is, apart from the
/// toolchain (`prepare` adds that, in the layout the server gets).
#[derive(Debug, Default)]
pub(crate) struct ActionSpec {
    /// The arguments after the compiler, every path marked.
    pub args: Vec<Arg>,
    pub env: Vec<(String, EnvValue)>,
    /// Output files, local and absolute.
    pub outputs: Vec<PathBuf>,
    /// Directories the compile looks in (those absent are skipped).
    pub dirs: Vec<PathBuf>,
    /// What the compile exposes of where it runs (the project-root move).
    pub exposure: ExposureSpec,
    /// Scanned files the input root takes from `extra` instead.
    pub dropped: Vec<PathBuf>,
    /// Entries whose blobs are on the server (rustc's twins).
    pub extra: Vec<Entry>,
    /// Local paths the command names by another path (a twin's name).
    pub renamed: BTreeMap<PathBuf, PathBuf>,
    /// Files of this machine the input root holds at a tree path of the
    /// job's choosing, not their own, so that the action is the same from
    /// every cache dir (zig's `ZIG_LIBC` file): (local file, tree path,
    /// digest). Uploaded as needed.
    pub placed: Vec<(PathBuf, String, Digest)>,
    /// Arguments added when the project root moves.
    pub when_moved: Vec<String>,
}

/// How the project root may move (see `placement`).
#[derive(Debug, Default)]
pub(crate) enum ExposureSpec {
    /// It never moves.
    #[default]
    Fixed,
    /// It moves when the compile cannot see where it runs.
    Observed(Exposure),
    /// It moves whatever the compile sees (rustc under trim-paths, which
    /// records the moved root locally too).
    Forced(PathBuf),
}

/// One parsed compile.
pub(crate) trait Job: Send + Sync {
    /// Names the hit path's key space.
    fn kind(&self) -> &'static str;
    /// Variables the compile observes: they key the scan and the hit path
    /// and go into the remote Command.
    fn env(&self) -> &[(String, String)];
    /// How diagnostics are colored remotely, and undone here.
    fn color(&self) -> ColorPolicy {
        ColorPolicy::AsIs
    }
    /// The toolchains, the compiler's first. `Err`: a local reason.
    fn toolchains(&self, ctx: &Ctx, inv: &Invocation) -> Result<Vec<ToolRequest>, Reason>;
    /// Whether the job runs remotely with these toolchains (`foreign`: the
    /// compiler's came from the registry). `Err`: a local reason.
    fn placed(&self, _foreign: bool) -> Result<(), Reason> {
        Ok(())
    }
    /// The dependency scan. `Err`: a local reason.
    fn scan(&self, ctx: &Ctx) -> Result<ScanSpec, Reason>;
    /// The action from the scan. `Err`: a local reason.
    fn action(&self, ctx: &Ctx, scanned: &Scanned, tools: &[Tool]) -> Result<ActionSpec, Reason>;
    /// How this compile runs in a plain directory (the relocated layout);
    /// `Err`: it cannot, and runs here (a local reason).
    fn relocation(&self, _site: &RelocationSite<'_>) -> Result<Relocation, Reason> {
        Err(Reason::NotRelocatable)
    }
    /// Once the outputs are in place: `depfile` is the scan's kept text.
    fn landed(&self, _ctx: &Ctx, _depfile: Option<&str>) -> Result<(), String> {
        Ok(())
    }
    /// Its output is a linked program or library (a crate's bin, build
    /// script, proc-macro or test harness): megabytes, however small the
    /// compile.
    fn links(&self) -> bool {
        false
    }
    /// A failed remote run is decided by a local run even when confirming
    /// is off (links, whose failures are as often a missing system library
    /// as a code error).
    fn rerun_failures(&self) -> bool {
        false
    }
    /// Arguments a local run adds to the user's.
    fn local_args(&self, _ctx: &Ctx) -> Vec<String> {
        Vec::new()
    }
    /// Arguments a local run whose streams the cache keeps adds to the
    /// user's: [`Job::local_args`], and whatever makes it color as the
    /// remote compile does (see [`Job::color`]).
    fn captured_args(&self, ctx: &Ctx) -> Vec<String> {
        self.local_args(ctx)
    }
    /// The file the compile is of, as spelled (a C source): often written
    /// just before it, so a compile that runs first hashes it before too.
    fn source(&self) -> Option<&str> {
        None
    }
    /// A local run must be watched to its end (see [`Job::after_local`]).
    fn watch_local(&self) -> bool {
        false
    }
    /// After a local run that succeeded (watched runs only).
    fn after_local<'a>(
        &'a self,
        _ctx: &'a Ctx,
        _inv: &'a Invocation,
        _event: &'a mut Event,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}
