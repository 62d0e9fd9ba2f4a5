//! rustc as cargo runs it: one command line (after `@file` expansion,
//! without argv\[0\]) and cargo's environment become a [`RustCompile`] —
//! the crate, the files rustc will write (named the way rustc 1.95 names
//! them), the files it reads besides the sources, the arguments for the
//! remote run and for the local dep-info scan with every path marked, and
//! the environment the compile can observe — or the [`Local`] reason it
//! must run here.
//!
//! Pure: argv and the environment come in as values; nothing is read,
//! nothing is run. Flags are one table ([`FLAGS`]), and a flag this module
//! cannot account for makes the invocation local, never a wrong remote run.
//!
//! Left to others: `@file` expansion (`args`), running the dep-info scan
//! and reading its output (`depfile`, `crate::wrap`), deciding which of the
//! listed inputs to upload and how paths map into the input root (the
//! wrapper). Output naming lives in `rustc_outputs.rs`, the result's types
//! in `rustc_types.rs`, `rustc -vV` in `rustc_version.rs`.

use std::collections::BTreeMap;

use super::Arg;

#[path = "rustc_outputs.rs"]
mod outputs;
#[path = "rustc_types.rs"]
mod types;
#[path = "rustc_version.rs"]
mod version;

pub use outputs::{Naming, OutputKind, RustOutput};
pub use types::{
    CrateType, Emit, EmitKind, EnvValue, Extern, InputKind, Local, LocalReason, RustInput,
    SearchKind, SearchPath, Target,
};
pub use version::{RustcVersion, VersionError, parse_version};

/// What a remote run must reproduce of one rustc invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RustCompile {
    /// `--crate-name` (required: without it rustc takes the name from a
    /// `#![crate_name]` attribute, which only reading the source reveals).
    pub crate_name: String,
    /// `--crate-type`, in order, without repeats. Ignored by rustc under
    /// `--test`, which builds an executable.
    pub crate_types: Vec<CrateType>,
    /// `--test`: a test harness executable.
    pub test: bool,
    /// The one input file, as given.
    pub source: String,
    /// `--emit`, each kind once (a later mention overrides an earlier
    /// path, as in rustc); `[link]` when absent.
    pub emit: Vec<Emit>,
    pub out_dir: Option<String>,
    /// `-o`.
    pub output: Option<String>,
    /// `-C extra-filename`, default "".
    pub extra_filename: String,
    pub target: Option<Target>,
    pub externs: Vec<Extern>,
    pub search_paths: Vec<SearchPath>,
    /// An emitted output runs the external linker: `link` is emitted for a
    /// bin, dylib, cdylib or proc-macro, or under `--test`. (A staticlib
    /// is an archive rustc writes itself.)
    pub links: bool,
    /// `-C linker`, as given.
    pub linker: Option<String>,
    /// `--sysroot`.
    pub sysroot: Option<String>,
    /// The files rustc will write, relative to the cwd when the paths
    /// given were relative; no duplicates.
    pub outputs: Vec<RustOutput>,
    /// The dep-info file, if emitted (also in `outputs`).
    pub dep_info: Option<String>,
    /// Files and directories rustc reads besides the source and what its
    /// dep-info will list. The wrapper decides which to upload.
    pub inputs: Vec<RustInput>,
    /// `--error-format=json`.
    pub error_format_json: bool,
    /// `--json=artifacts`: rustc prints each output's path on stderr, so
    /// the wrapper must map remote paths back in what it relays.
    pub json_artifacts: bool,
    /// The arguments for the remote run, every path marked.
    pub remote_args: Vec<Arg>,
    /// The environment the compile can observe that must go into the
    /// remote Command, sorted by name (see [`observed_env`]).
    pub env: Vec<(String, EnvValue)>,
    /// The arguments for the local dep-info scan: `remote_args` without
    /// `--emit` and `-o`; the wrapper appends its own
    /// `--emit=dep-info=FILE`.
    pub scan_args: Vec<Arg>,
}

/// Whether a flag takes a value: `-C VALUE` / `-CVALUE` for one letter,
/// `--flag VALUE` / `--flag=VALUE` for long flags (rustc's getopts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Takes {
    Nothing,
    Value,
}

/// What a flag means for a remote run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Copied as is.
    Plain,
    Local(LocalReason),
    CrateName,
    CrateType,
    Emit,
    OutDir,
    Output,
    Codegen,
    Unstable,
    Extern,
    Search,
    Target,
    Sysroot,
    Remap,
    /// `-A`/`-W`/`-D`/`-F`…: plain, except `help`.
    Lint,
    ErrorFormat,
    Json,
    Test,
    /// `-g`.
    Debuginfo,
}

use LocalReason as R;
use Takes::{Nothing, Value};

/// The rustc 1.95 flags recast knows, one row each; any other flag makes
/// the invocation local.
const FLAGS: &[(&str, Takes, Role)] = &[
    ("-h", Nothing, Role::Local(R::Help)),
    ("--help", Nothing, Role::Local(R::Help)),
    ("-V", Nothing, Role::Local(R::VersionQuery)),
    ("--version", Nothing, Role::Local(R::VersionQuery)),
    ("-vV", Nothing, Role::Local(R::VersionQuery)),
    ("-Vv", Nothing, Role::Local(R::VersionQuery)),
    ("-v", Nothing, Role::Plain),
    ("--verbose", Nothing, Role::Plain),
    ("-g", Nothing, Role::Debuginfo),
    ("-O", Nothing, Role::Plain),
    ("--test", Nothing, Role::Test),
    ("--cfg", Value, Role::Plain),
    ("--check-cfg", Value, Role::Plain),
    ("-L", Value, Role::Search),
    ("-l", Value, Role::Plain),
    ("--crate-type", Value, Role::CrateType),
    ("--crate-name", Value, Role::CrateName),
    ("--edition", Value, Role::Plain),
    ("--emit", Value, Role::Emit),
    ("--print", Value, Role::Local(R::Print)),
    ("-o", Value, Role::Output),
    ("--out-dir", Value, Role::OutDir),
    ("--explain", Value, Role::Local(R::Explain)),
    ("--target", Value, Role::Target),
    ("-A", Value, Role::Lint),
    ("--allow", Value, Role::Lint),
    ("-W", Value, Role::Lint),
    ("--warn", Value, Role::Lint),
    ("--force-warn", Value, Role::Lint),
    ("-D", Value, Role::Lint),
    ("--deny", Value, Role::Lint),
    ("-F", Value, Role::Lint),
    ("--forbid", Value, Role::Lint),
    ("--cap-lints", Value, Role::Plain),
    ("-C", Value, Role::Codegen),
    ("--codegen", Value, Role::Codegen),
    ("-Z", Value, Role::Unstable),
    ("--extern", Value, Role::Extern),
    ("--sysroot", Value, Role::Sysroot),
    ("--error-format", Value, Role::ErrorFormat),
    ("--json", Value, Role::Json),
    ("--color", Value, Role::Plain),
    ("--diagnostic-width", Value, Role::Plain),
    ("--remap-path-prefix", Value, Role::Remap),
    ("--remap-path-scope", Value, Role::Plain),
    ("--env-set", Value, Role::Plain),
    ("--crate-attr", Value, Role::Plain),
];

/// `-Z` options (as rustc spells them, `-` for `_`) that write files
/// besides the outputs, or read files named nowhere else. A trailing `*`
/// matches a prefix.
const LOCAL_UNSTABLE: &[&str] = &[
    "self-profile*",
    "dump-*",
    "nll-facts*",
    "llvm-time-trace",
    "metrics-dir",
    "remark-dir",
    "split-dwarf-out-dir",
    "temps-dir",
    "print-codegen-stats-json",
    "no-link",
    "link-only",
    "profile",
    "codegen-backend",
    "llvm-plugins",
    "profile-sample-use",
    "sanitizer-dataflow-abilist",
    "ls",
    "unpretty",
];

/// Variables cargo sets for rustc that a compile can observe, marked
/// `true` when the value is a local path; a trailing `*` matches a prefix.
/// They go in whether or not dep-info lists them: `env!` uses are listed,
/// but a proc macro reading `CARGO_MANIFEST_DIR` or `OUT_DIR` through
/// `std::env` is recorded nowhere.
///
/// Not every `CARGO_*`: `CARGO_MAKEFLAGS` names this process's jobserver
/// file descriptors (rustc would warn about them remotely, and they differ
/// on every build), `CARGO_HOME`/`CARGO_TARGET_DIR`/`CARGO_BUILD_*` are the
/// user's setup, and `CARGO_REGISTRY_TOKEN`/`CARGO_REGISTRIES_*` are
/// credentials. A compile that reads one of those through `env!` has it
/// listed in its dep-info, and the wrapper adds it from there.
/// `RUSTC_BOOTSTRAP` decides whether `-Z` flags are accepted.
const OBSERVED_ENV: &[(&str, bool)] = &[
    ("CARGO", true),
    ("CARGO_MANIFEST_DIR", true),
    ("CARGO_MANIFEST_PATH", true),
    ("CARGO_MANIFEST_LINKS", false),
    ("CARGO_CRATE_NAME", false),
    ("CARGO_BIN_NAME", false),
    ("CARGO_PRIMARY_PACKAGE", false),
    ("CARGO_TARGET_TMPDIR", true),
    ("CARGO_RUSTC_CURRENT_DIR", true),
    ("CARGO_PKG_*", false),
    ("CARGO_CFG_*", false),
    ("CARGO_FEATURE_*", false),
    ("CARGO_BIN_EXE_*", true),
    ("OUT_DIR", true),
    ("RUSTC_BOOTSTRAP", false),
    ("RUSTC_BREAK_ON_ICE", false),
];

/// Parses `args` for the target naming of the machine recast runs on
/// (rustc's default target is its host).
pub fn parse(args: &[String], env: &BTreeMap<String, String>) -> Result<RustCompile, Local> {
    parse_with_host(args, env, &Naming::this_machine())
}

/// Parses `args` (after `@file` expansion, without argv\[0\]); outputs
/// without `--target` are named for `host` (from [`parse_version`]:
/// `Naming::for_triple(&version.host)`).
pub fn parse_with_host(
    args: &[String],
    env: &BTreeMap<String, String>,
    host: &Naming,
) -> Result<RustCompile, Local> {
    let mut st = State::default();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        i += 1;
        if arg == "-" {
            return Err(Local::new(R::StdinInput, "-"));
        }
        if arg.is_empty() || arg.starts_with('@') {
            return Err(Local::new(R::BadArgument, arg));
        }
        if !arg.starts_with('-') {
            st.sources.push(arg.to_string());
            st.push(vec![Arg::path("", arg)], true);
            continue;
        }
        let Some((spelling, takes, role)) = lookup(arg) else {
            return Err(Local::new(R::UnsupportedFlag, arg));
        };
        let occ = if takes == Nothing {
            Occ {
                spelling,
                joined: None,
                value: "",
                takes,
            }
        } else if arg.len() > spelling.len() {
            let joined = if spelling.starts_with("--") {
                format!("{spelling}=")
            } else {
                spelling.to_string()
            };
            Occ {
                spelling,
                value: &arg[joined.len()..],
                joined: Some(joined),
                takes,
            }
        } else {
            let Some(value) = args.get(i) else {
                return Err(Local::new(R::BadArgument, format!("{arg} needs a value")));
            };
            i += 1;
            Occ {
                spelling,
                joined: None,
                value,
                takes,
            }
        };
        st.apply(role, &occ, env)?;
    }
    st.finish(env, host)
}

/// The row for `arg`: an exact spelling, `-XVALUE` for a one-letter flag
/// that takes a value, or `--flag=VALUE`.
fn lookup(arg: &str) -> Option<(&'static str, Takes, Role)> {
    if let Some(row) = FLAGS.iter().find(|(s, _, _)| *s == arg) {
        return Some(*row);
    }
    FLAGS.iter().copied().find(|(s, takes, _)| {
        *takes == Value
            && if s.starts_with("--") {
                arg.strip_prefix(s)
                    .is_some_and(|rest| rest.starts_with('='))
            } else {
                arg.starts_with(s)
            }
    })
}

/// One flag as it appeared: `joined` is the text before the value when the
/// value was in the same argument (`-C`, `--emit=`).
struct Occ<'a> {
    spelling: &'static str,
    joined: Option<String>,
    /// "" for a flag that takes none.
    value: &'a str,
    takes: Takes,
}

/// The value part of an argument.
enum Val<'a> {
    Plain,
    /// `lead` (e.g. `dependency=`) then a path.
    Path {
        lead: &'a str,
        path: &'a str,
    },
    /// `FROM=TO`.
    Map {
        old: &'a str,
        new: &'a str,
    },
}

impl Occ<'_> {
    /// The flag with its value, in the form it was given.
    fn args(&self, val: Val) -> Vec<Arg> {
        let (mut out, joined) = match &self.joined {
            Some(j) => (Vec::new(), j.clone()),
            None if self.takes == Nothing => return vec![Arg::plain(self.spelling)],
            None => (vec![Arg::plain(self.spelling)], String::new()),
        };
        out.push(match val {
            Val::Plain => Arg::Plain(format!("{joined}{}", self.value)),
            Val::Path { lead, path } => Arg::path(format!("{joined}{lead}"), path),
            Val::Map { old, new } => Arg::PrefixMap {
                flag: joined,
                old: old.to_string(),
                new: new.to_string(),
            },
        });
        out
    }
}

#[derive(Default)]
struct State {
    sources: Vec<String>,
    crate_name: Option<String>,
    crate_types: Vec<CrateType>,
    test: bool,
    emit: Option<Vec<Emit>>,
    out_dir: Option<String>,
    output: Option<String>,
    extra_filename: String,
    target: Option<Target>,
    externs: Vec<Extern>,
    search_paths: Vec<SearchPath>,
    linker: Option<String>,
    sysroot: Option<String>,
    inputs: Vec<RustInput>,
    debuginfo: bool,
    split_debuginfo_off: bool,
    codegen_units: Option<u64>,
    error_format_json: bool,
    json_artifacts: bool,
    remote_args: Vec<Arg>,
    scan_args: Vec<Arg>,
}

fn bad(detail: impl Into<String>) -> Local {
    Local::new(R::BadArgument, detail)
}

impl State {
    fn push(&mut self, args: Vec<Arg>, scan: bool) {
        if scan {
            self.scan_args.extend(args.iter().cloned());
        }
        self.remote_args.extend(args);
    }

    /// Takes one flag into the state, and its arguments into the remote
    /// command line (and the scan's, but for outputs).
    fn apply(
        &mut self,
        role: Role,
        occ: &Occ,
        env: &BTreeMap<String, String>,
    ) -> Result<(), Local> {
        let v = occ.value;
        let args = match role {
            Role::Plain => occ.args(Val::Plain),
            Role::Local(reason) => {
                let detail = format!("{} {v}", occ.spelling);
                return Err(Local::new(reason, detail.trim_end()));
            }
            Role::CrateName => {
                if v.is_empty() {
                    return Err(bad("empty --crate-name"));
                }
                self.crate_name = Some(v.to_string());
                occ.args(Val::Plain)
            }
            Role::CrateType => self.crate_type(occ)?,
            Role::Emit => {
                let args = self.emit(occ)?;
                self.push(args, false);
                return Ok(());
            }
            Role::OutDir => {
                self.out_dir = Some(v.to_string());
                occ.args(Val::Path { lead: "", path: v })
            }
            Role::Output => {
                if v == "-" {
                    return Err(Local::new(R::StdoutOutput, "-o -"));
                }
                self.output = Some(v.to_string());
                self.push(occ.args(Val::Path { lead: "", path: v }), false);
                return Ok(());
            }
            Role::Codegen => self.codegen(occ)?,
            Role::Unstable => unstable(occ)?,
            Role::Extern => self.extern_(occ)?,
            Role::Search => self.search(occ)?,
            Role::Target => self.target(occ, env)?,
            Role::Sysroot => {
                self.sysroot = Some(v.to_string());
                self.input(v, InputKind::Sysroot);
                occ.args(Val::Path { lead: "", path: v })
            }
            Role::Remap => {
                let (old, new) = v
                    .rsplit_once('=')
                    .ok_or_else(|| bad(format!("--remap-path-prefix {v}: no '='")))?;
                occ.args(Val::Map { old, new })
            }
            Role::Lint => {
                if v == "help" {
                    return Err(Local::new(R::Print, format!("{} help", occ.spelling)));
                }
                occ.args(Val::Plain)
            }
            Role::ErrorFormat => {
                self.error_format_json = v == "json";
                occ.args(Val::Plain)
            }
            Role::Json => {
                self.json_artifacts |= v.split(',').any(|j| j == "artifacts");
                occ.args(Val::Plain)
            }
            Role::Test => {
                self.test = true;
                occ.args(Val::Plain)
            }
            Role::Debuginfo => {
                self.debuginfo = true;
                occ.args(Val::Plain)
            }
        };
        self.push(args, true);
        Ok(())
    }

    /// `--crate-type A,B`: each type once, in order.
    fn crate_type(&mut self, occ: &Occ) -> Result<Vec<Arg>, Local> {
        for t in occ.value.split(',') {
            let t = CrateType::parse(t).ok_or_else(|| bad(format!("unknown crate type {t:?}")))?;
            if !self.crate_types.contains(&t) {
                self.crate_types.push(t);
            }
        }
        Ok(occ.args(Val::Plain))
    }

    /// `-L [KIND=]PATH`: a search dir the compile reads.
    fn search(&mut self, occ: &Occ) -> Result<Vec<Arg>, Local> {
        let v = occ.value;
        let (kind, lead, path) = search_path(v);
        if path.is_empty() {
            return Err(bad(format!("-L {v}: empty path")));
        }
        // `@RUSTC_BUILTIN/…` is a directory inside the sysroot, not a path here.
        if path.starts_with("@RUSTC_BUILTIN") {
            return Ok(occ.args(Val::Plain));
        }
        self.search_paths.push(SearchPath {
            kind,
            path: path.to_string(),
        });
        self.input(path, InputKind::SearchDir(kind));
        Ok(occ.args(Val::Path { lead, path }))
    }

    /// `--target TRIPLE` or `--target SPEC.json` (a file the compile reads).
    fn target(&mut self, occ: &Occ, env: &BTreeMap<String, String>) -> Result<Vec<Arg>, Local> {
        let v = occ.value;
        if v.ends_with(".json") {
            self.target = Some(Target::SpecFile(v.to_string()));
            self.input(v, InputKind::TargetSpec);
            return Ok(occ.args(Val::Path { lead: "", path: v }));
        }
        // rustc also looks for `<triple>.json` in RUST_TARGET_PATH.
        if env.contains_key("RUST_TARGET_PATH") {
            return Err(Local::new(
                R::UnsupportedTarget,
                format!("--target {v} with RUST_TARGET_PATH set"),
            ));
        }
        self.target = Some(Target::Triple(v.to_string()));
        Ok(occ.args(Val::Plain))
    }

    fn input(&mut self, path: &str, kind: InputKind) {
        self.inputs.push(RustInput {
            path: path.to_string(),
            kind,
        });
    }

    /// `--emit KIND[=PATH],…`. Several paths cannot share one [`Arg`], so
    /// a list with paths is respelled as one `--emit=` per path (rustc
    /// accepts `--emit` repeated).
    fn emit(&mut self, occ: &Occ) -> Result<Vec<Arg>, Local> {
        let emit = self.emit.get_or_insert_with(Vec::new);
        let mut plain = Vec::new();
        let mut with_path = Vec::new();
        for item in occ.value.split(',') {
            let (name, path) = match item.split_once('=') {
                Some((n, p)) => (n, Some(p)),
                None => (item, None),
            };
            let kind = EmitKind::parse(name)
                .ok_or_else(|| Local::new(R::BadArgument, format!("--emit {item}")))?;
            if path == Some("-") {
                return Err(Local::new(R::StdoutOutput, format!("--emit {item}")));
            }
            if path == Some("") {
                return Err(bad(format!("--emit {item}: empty path")));
            }
            let path = path.map(str::to_string);
            match emit.iter_mut().find(|e| e.kind == kind) {
                Some(e) => e.path = path.clone(),
                None => emit.push(Emit {
                    kind,
                    path: path.clone(),
                }),
            }
            match path {
                Some(p) => with_path.push((name, p)),
                None => plain.push(name),
            }
        }
        if with_path.is_empty() {
            return Ok(occ.args(Val::Plain));
        }
        if let ([], [(name, path)]) = (plain.as_slice(), with_path.as_slice()) {
            let lead = format!("{name}=");
            return Ok(occ.args(Val::Path { lead: &lead, path }));
        }
        let mut out = Vec::new();
        if !plain.is_empty() {
            out.push(Arg::Plain(format!("--emit={}", plain.join(","))));
        }
        for (name, path) in with_path {
            out.push(Arg::path(format!("--emit={name}="), path));
        }
        Ok(out)
    }

    /// `-C KEY[=VALUE]`; rustc reads `_` in a key as `-`.
    fn codegen(&mut self, occ: &Occ) -> Result<Vec<Arg>, Local> {
        let (raw_key, value) = match occ.value.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (occ.value, None),
        };
        let key = raw_key.replace('_', "-");
        let here = |reason| Err(Local::new(reason, format!("-C {}", occ.value)));
        let off = |v: Option<&str>| matches!(v, Some("n" | "no" | "off" | "false" | "0"));
        match key.as_str() {
            "incremental" => return here(R::Incremental),
            "help" => return here(R::Print),
            "profile-generate" => return here(R::ProfileGenerate),
            "save-temps" if !off(value) => return here(R::SaveTemps),
            "split-debuginfo" => {
                if value != Some("off") {
                    return here(R::SplitDebuginfo);
                }
                self.split_debuginfo_off = true;
            }
            "debuginfo" => self.debuginfo = !matches!(value, Some("none") | None) && !off(value),
            "codegen-units" => self.codegen_units = value.and_then(|n| n.parse().ok()),
            "extra-filename" => self.extra_filename = value.unwrap_or_default().to_string(),
            "profile-use" => {
                let path = value
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| bad("-C profile-use"))?;
                self.input(path, InputKind::ProfileUse);
                let lead = format!("{raw_key}=");
                return Ok(occ.args(Val::Path { lead: &lead, path }));
            }
            "linker" | "dlltool" => {
                let tool = value
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| bad(format!("-C {key} needs a value")))?;
                if key == "linker" {
                    self.linker = Some(tool.to_string());
                }
                // A bare name is looked up in PATH, so it is not a path here.
                if tool.contains('/') {
                    self.input(tool, InputKind::Tool);
                    let lead = format!("{raw_key}=");
                    return Ok(occ.args(Val::Path {
                        lead: &lead,
                        path: tool,
                    }));
                }
            }
            _ => {}
        }
        Ok(occ.args(Val::Plain))
    }

    /// `--extern [MODIFIERS:]NAME[=PATH]`.
    fn extern_(&mut self, occ: &Occ) -> Result<Vec<Arg>, Local> {
        let (spec, path) = match occ.value.split_once('=') {
            Some((s, p)) => (s, Some(p)),
            None => (occ.value, None),
        };
        let (modifiers, name) = match spec.split_once(':') {
            Some((m, n)) => (m.split(',').map(str::to_string).collect(), n),
            None => (Vec::new(), spec),
        };
        if name.is_empty() || path == Some("") {
            return Err(bad(format!("--extern {}", occ.value)));
        }
        self.externs.push(Extern {
            name: name.to_string(),
            path: path.map(str::to_string),
            modifiers,
        });
        Ok(match path {
            Some(path) => {
                self.input(path, InputKind::Extern);
                let lead = format!("{spec}=");
                occ.args(Val::Path { lead: &lead, path })
            }
            None => occ.args(Val::Plain),
        })
    }

    /// The checked [`RustCompile`], once every argument is read.
    fn finish(
        mut self,
        env: &BTreeMap<String, String>,
        host: &Naming,
    ) -> Result<RustCompile, Local> {
        let source = self.source()?;
        let crate_name = self
            .crate_name
            .take()
            .ok_or_else(|| Local::new(R::NoCrateName, "no --crate-name"))?;
        if self.crate_types.is_empty() && !self.test {
            return Err(Local::new(R::NoCrateType, "no --crate-type"));
        }
        let emit = self.emit.take().unwrap_or_else(|| {
            vec![Emit {
                kind: EmitKind::Link,
                path: None,
            }]
        });
        self.check_codegen_units(&emit)?;
        let linked = self.linked(&emit);
        let links = linked.iter().any(|t| t.needs_linker());
        let naming = self.naming(host, &linked)?;
        naming.check_link(links, self.debuginfo && !self.split_debuginfo_off)?;
        let outputs = outputs::outputs(
            &outputs::Plan {
                crate_name: &crate_name,
                extra_filename: &self.extra_filename,
                out_dir: self.out_dir.as_deref(),
                output: self.output.as_deref(),
                emit: &emit,
                linked: &linked,
            },
            &naming,
        );
        let dep_info = outputs
            .iter()
            .find(|o| o.kind == OutputKind::Emit(EmitKind::DepInfo))
            .map(|o| o.path.clone());
        Ok(RustCompile {
            crate_name,
            crate_types: self.crate_types,
            test: self.test,
            source,
            emit,
            out_dir: self.out_dir,
            output: self.output,
            extra_filename: self.extra_filename,
            target: self.target,
            externs: self.externs,
            search_paths: self.search_paths,
            links,
            linker: self.linker,
            sysroot: self.sysroot,
            outputs,
            dep_info,
            inputs: self.inputs,
            error_format_json: self.error_format_json,
            json_artifacts: self.json_artifacts,
            remote_args: self.remote_args,
            env: observed_env(env),
            scan_args: self.scan_args,
        })
    }
}

impl State {
    /// The one input file.
    fn source(&self) -> Result<String, Local> {
        match self.sources.as_slice() {
            [] => Err(Local::new(R::NoSource, "no input file")),
            [one] => Ok(one.clone()),
            [a, b, ..] => Err(Local::new(R::MultipleSources, format!("{a} and {b}"))),
        }
    }

    /// Refuses several codegen units emitting per-unit files without `-o`:
    /// rustc then keeps one intermediate per unit, named by a hash.
    fn check_codegen_units(&self, emit: &[Emit]) -> Result<(), Local> {
        let per_unit = |k: &EmitKind| {
            matches!(
                k,
                EmitKind::Obj | EmitKind::Asm | EmitKind::LlvmIr | EmitKind::LlvmBc
            )
        };
        if self.codegen_units.is_some_and(|n| n > 1)
            && self.output.is_none()
            && emit.iter().any(|e| per_unit(&e.kind))
        {
            return Err(Local::new(
                R::CodegenUnits,
                "-C codegen-units > 1 with --emit obj/asm/llvm-ir/llvm-bc",
            ));
        }
        Ok(())
    }

    /// The crate types `link` is emitted for: a test harness is a bin.
    fn linked(&self, emit: &[Emit]) -> Vec<CrateType> {
        if !emit.iter().any(|e| e.kind == EmitKind::Link) {
            Vec::new()
        } else if self.test {
            vec![CrateType::Bin]
        } else {
            self.crate_types.clone()
        }
    }

    /// How the target names outputs; a target spec file only for crates
    /// that link nothing (its naming is not read).
    fn naming(&self, host: &Naming, linked: &[CrateType]) -> Result<Naming, Local> {
        match &self.target {
            None => Ok(host.clone()),
            Some(Target::Triple(t)) => Ok(Naming::for_triple(t)),
            Some(Target::SpecFile(path)) => {
                if linked
                    .iter()
                    .any(|t| !matches!(t, CrateType::Lib | CrateType::Rlib))
                {
                    return Err(Local::new(
                        R::UnsupportedTarget,
                        format!("linked output for target spec {path}"),
                    ));
                }
                Ok(host.clone())
            }
        }
    }
}

/// `-Z KEY[=VALUE]`: local for help and for options that write or read
/// files named nowhere else ([`LOCAL_UNSTABLE`]).
fn unstable(occ: &Occ) -> Result<Vec<Arg>, Local> {
    let v = occ.value;
    let key = v.split_once('=').map_or(v, |(k, _)| k).replace('_', "-");
    if key == "help" {
        return Err(Local::new(R::Print, format!("-Z {v}")));
    }
    if LOCAL_UNSTABLE.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => key.starts_with(prefix),
        None => key == *p,
    }) {
        return Err(Local::new(R::UnstableOutputFlag, format!("-Z {v}")));
    }
    Ok(occ.args(Val::Plain))
}

/// `[KIND=]PATH` of `-L`: the kind, the text before the path, the path.
/// Only the five kinds are split off; anything else is all path.
fn search_path(v: &str) -> (SearchKind, &str, &str) {
    const KINDS: [SearchKind; 5] = [
        SearchKind::Dependency,
        SearchKind::Crate,
        SearchKind::Native,
        SearchKind::Framework,
        SearchKind::All,
    ];
    for kind in KINDS {
        if let Some(path) = v
            .strip_prefix(kind.as_str())
            .and_then(|r| r.strip_prefix('='))
        {
            return (kind, &v[..v.len() - path.len()], path);
        }
    }
    (SearchKind::All, "", v)
}

/// The variables of `env` a compile run by cargo can observe (see
/// [`OBSERVED_ENV`]), sorted by name, paths marked.
pub fn observed_env(env: &BTreeMap<String, String>) -> Vec<(String, EnvValue)> {
    env.iter()
        .filter_map(|(name, value)| {
            let (_, is_path) = OBSERVED_ENV
                .iter()
                .find(|(p, _)| match p.strip_suffix('*') {
                    Some(prefix) => name.starts_with(prefix),
                    None => name == p,
                })?;
            let value = if *is_path {
                EnvValue::Path(value.clone())
            } else {
                EnvValue::Plain(value.clone())
            };
            Some((name.clone(), value))
        })
        .collect()
}

#[cfg(test)]
#[path = "rustc_tests.rs"]
mod tests;
