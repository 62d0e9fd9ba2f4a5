//! gcc, g++, clang and clang++ command lines: a compile-only (`-c` or
//! `-S`) of exactly one source becomes a [`CCompile`] — the source, the
//! outputs as the compiler names them (object or `.s`, dependency file,
//! `.dwo`), the arguments for the remote run and for the local `-M` scan
//! with every path marked — and anything else is the [`Local`] reason it
//! must run here.
//!
//! Pure: the arguments come in already `@file`-expanded (`args::expand`),
//! nothing is read or run. Flags are rows of one table (`gcc_table.rs`);
//! a flag that is not listed passes through as plain unless it could name
//! a file (a long `--` option, an unknown `-M…`, or an `=`-value that looks
//! like a path), which makes the compile local rather than wrong.
//!
//! The dependency file is not written remotely: `-MD`, `-MF` and friends
//! are taken out of both argument lists, and [`ScanSpec::dep_flags`] are
//! the flags that make the local scan write a file byte-identical to the
//! one the original command would have written (checked against gcc 12
//! and clang 14 in `gcc_tests.rs`).
//!
//! Left to others: running the scan and reading its output (`depfile`,
//! the wrapper), resolving the compiler, mapping the marked paths into the
//! input root, and creating output directories.

use super::Arg;
use crate::toolchain::family::Family;

#[path = "gcc_table.rs"]
mod table;
#[cfg(test)]
#[path = "gcc_tests.rs"]
mod tests;

use table::{Class, Hit, Role, Why, debug_level, language_class, suffix_class};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputKind {
    /// `-c`: an object file.
    Object,
    /// `-S`: assembly (wins over `-c`, as in gcc).
    Assembly,
}

/// A `-MT` target (written as given) or a `-MQ` one (Make-quoted by the
/// compiler).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DepTarget {
    Raw(String),
    Quoted(String),
}

/// Which `-f…-prefix-map=OLD=NEW` flag a user prefix map came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrefixMapKind {
    /// `-fdebug-prefix-map=`
    Debug,
    /// `-ffile-prefix-map=` (debug info, `__FILE__` and coverage)
    File,
    /// `-fmacro-prefix-map=`
    Macro,
    /// `-fprofile-prefix-map=` (gcc 12)
    Profile,
    /// `-fcoverage-prefix-map=` (clang)
    Coverage,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CCompile {
    pub family: Family,
    /// The source as given (relative to the cwd, or absolute).
    pub source: String,
    /// `-x LANG` in effect for the source, if any.
    pub language: Option<String>,
    /// Where the object (or `.s` for -S) goes, as given by -o or derived as gcc does
    /// (basename of the source with .o/.s, in the cwd).
    pub output: String,
    pub kind: OutputKind,
    /// -MD/-MMD/-Wp,-MD,FILE/-Wp,-MMD,FILE: the dependency file the compile also writes.
    pub depfile: Option<DepOutput>,
    /// -gsplit-dwarf: the .dwo file. With -c: the output with its suffix replaced by .dwo
    /// (gcc 12 writes it even without -g, empty; clang only with debug info). With -S: none
    /// for gcc; `<source basename>.dwo` in the cwd for clang (with debug info).
    pub dwo: Option<String>,
    /// --target=/-target (clang), from the arguments only.
    pub target: Option<String>,
    /// --sysroot (or, without it, -isysroot), as given.
    pub sysroot: Option<String>,
    /// The compile emits debug info (-g, -g1..3, -ggdb…, not -g0 as the last -g flag).
    pub debug_info: bool,
    /// Files the compile reads that a `-M` scan does not list: -specs FILE, -fplugin=FILE,
    /// -fprofile-use=PATH (a file or a directory), -fsanitize-blacklist=/-fsanitize-ignorelist=,
    /// -fprofile-sample-use=, -include-pch, -ivfsoverlay.
    pub extra_inputs: Vec<String>,
    /// Directories named by -I, -iquote, -isystem, -idirafter, -B (so the wrapper can create them).
    /// `=dir` and `$SYSROOT/dir` (relative to the sysroot) are left out and left unmarked.
    pub include_dirs: Vec<String>,
    /// Arguments for the remote compile: the original arguments minus every dependency-file
    /// flag (-MD, -MMD, -MF x, -MT x, -MQ x, -MP, -Wp,-MD,x, -Wp,-MMD,x), with every path
    /// marked as [`Arg::Path`] / [`Arg::PrefixMap`].
    pub remote_args: Vec<Arg>,
    /// Arguments for the local dependency scan.
    pub scan: ScanSpec,
    /// User prefix maps (-fdebug-prefix-map, -ffile-prefix-map, -fmacro-prefix-map, …), in order.
    pub prefix_maps: Vec<(PrefixMapKind, String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DepOutput {
    /// -MF value, -Wp,-MD's file, or derived as both drivers do: the output with the
    /// suffix of its file name replaced by .d (`build/a.x.o` → `build/a.x.d`).
    pub path: String,
    /// -MD (true) vs -MMD (false).
    pub system_headers: bool,
    /// -MT / -MQ in order; empty = the compiler's default target.
    pub targets: Vec<DepTarget>,
    /// -MP
    pub phony: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanSpec {
    /// `remote_args` without -c/-S, -o FILE and -gsplit-dwarf (or -gno-split-dwarf).
    pub args: Vec<Arg>,
    /// What to append (before `-MF <tmp>`, which the wrapper adds) for a depfile identical
    /// to the one -MD/-MMD would write: `-M`/`-MM`, `-MP`?, then the -MT/-MQ targets, or
    /// `-MQ <default target>` when none was given. Without -MD/-MMD just `-M`.
    pub dep_flags: Vec<String>,
}

/// Why an invocation runs locally. [`Local::as_str`] is a stable stats key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Local {
    #[error("preprocessing only (-E, -M, -MM or cpp): there is no object to build")]
    PreprocessOnly,
    #[error("links (no -c or -S, or a linker input such as a .o, .a or .so among the inputs)")]
    Linking,
    #[error("more than one source file")]
    MultipleSources,
    #[error("no source file")]
    NoSource,
    #[error("reads the source from standard input (-)")]
    StdinInput,
    #[error("-save-temps writes intermediate files next to the output")]
    SaveTemps,
    #[error("profile instrumentation: the object records where its profile is written at run time")]
    ProfileGenerate,
    #[error(
        "{0} without a path reads a profile next to the object (or default.profdata); pass it a path"
    )]
    ProfileUseDefaultPath(String),
    #[error(
        "coverage (--coverage, -fprofile-arcs, -ftest-coverage) writes a .gcno next to the object"
    )]
    Coverage,
    #[error("{0} writes compiler dumps next to the output")]
    DumpFlags(String),
    #[error("{0} asks the driver a question; it is not a compile")]
    VersionQuery(String),
    #[error("-fsyntax-only produces no output")]
    SyntaxOnly,
    #[error("writes its output to standard output (-o - or -MF -)")]
    OutputToStdout,
    #[error("compiles a header into a precompiled header")]
    PrecompiledHeader,
    #[error("language {0} is not supported remotely")]
    UnsupportedLanguage(String),
    #[error("{0} writes a file recast does not collect")]
    ExtraOutput(String),
    #[error("{0}: modules read and write caches outside the command line")]
    Modules(String),
    #[error("-Xclang {0} loads a compiler plugin")]
    CompilerPlugin(String),
    #[error("{0} tunes the code for this machine's CPU, which a worker may not have")]
    NativeCpu(String),
    #[error("{0} is not supported remotely")]
    UnsupportedFlag(String),
    #[error("bad argument: {0}")]
    BadArgument(String),
}

impl Local {
    pub fn as_str(&self) -> &'static str {
        match self {
            Local::PreprocessOnly => "preprocess_only",
            Local::Linking => "linking",
            Local::MultipleSources => "multiple_sources",
            Local::NoSource => "no_source",
            Local::StdinInput => "stdin_input",
            Local::SaveTemps => "save_temps",
            Local::ProfileGenerate => "profile_generate",
            Local::ProfileUseDefaultPath(_) => "profile_use_default_path",
            Local::Coverage => "coverage",
            Local::DumpFlags(_) => "dump_flags",
            Local::VersionQuery(_) => "version_query",
            Local::SyntaxOnly => "syntax_only",
            Local::OutputToStdout => "output_to_stdout",
            Local::PrecompiledHeader => "precompiled_header",
            Local::UnsupportedLanguage(_) => "unsupported_language",
            Local::ExtraOutput(_) => "extra_output",
            Local::Modules(_) => "modules",
            Local::CompilerPlugin(_) => "compiler_plugin",
            Local::NativeCpu(_) => "native_cpu",
            Local::UnsupportedFlag(_) => "unsupported_flag",
            Local::BadArgument(_) => "bad_argument",
        }
    }
}

/// Parses `args` (argv\[0\] excluded, `@file`s expanded) for the driver
/// `argv0` of `family`: gcc's rules where gcc's and clang's drivers
/// differ for [`Family::Gcc`], clang's otherwise (`zig cc` is clang's
/// driver). `argv0` only matters when it is a `cpp`.
pub fn parse(argv0: &str, args: &[String], family: Family) -> Result<CCompile, Local> {
    if is_preprocessor_driver(argv0) {
        return Err(Local::PreprocessOnly);
    }
    let mut p = Parser::new(family);
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        i += 1;
        if arg == "-" {
            return Err(Local::StdinInput);
        }
        if arg.starts_with('@') {
            // `args::expand` keeps an @file that does not exist; gcc then
            // fails on it as an input.
            return Err(Local::UnsupportedFlag(arg.into()));
        }
        if !arg.starts_with('-') {
            p.input(arg)?;
            continue;
        }
        let Some((row, hit)) = table::lookup(arg) else {
            p.unlisted(arg)?;
            continue;
        };
        let value = match hit {
            Hit::Bare => None,
            Hit::Joined(text) => Some(Value {
                text,
                prefix: Some(&arg[..arg.len() - text.len()]),
            }),
            Hit::Next => {
                let text = args
                    .get(i)
                    .ok_or_else(|| Local::BadArgument(format!("{arg} needs a value")))?;
                i += 1;
                Some(Value { text, prefix: None })
            }
        };
        p.flag(arg, row.role, value, args, &mut i)?;
    }
    p.finish()
}

/// A flag's value: `prefix` is the flag part when it was joined (`-I` in
/// `-Iinc`), `None` when it was the next argument.
#[derive(Clone, Copy)]
struct Value<'a> {
    text: &'a str,
    prefix: Option<&'a str>,
}

/// What the arguments said so far.
struct Parser<'a> {
    family: Family,
    remote: Vec<Arg>,
    scan: Vec<Arg>,
    language: Option<&'a str>,
    sources: Vec<(&'a str, Option<&'a str>)>,
    linker_inputs: usize,
    compile: Option<OutputKind>,
    output: Option<&'a str>,
    dep_write: Option<bool>,
    wp_dep: Option<(bool, &'a str)>,
    dep_file: Option<&'a str>,
    dep_targets: Vec<DepTarget>,
    phony: bool,
    split_dwarf: bool,
    debug_info: bool,
    target: Option<&'a str>,
    sysroot: Option<&'a str>,
    isysroot: Option<&'a str>,
    extra_inputs: Vec<String>,
    include_dirs: Vec<String>,
    prefix_maps: Vec<(PrefixMapKind, String, String)>,
}

impl<'a> Parser<'a> {
    fn new(family: Family) -> Self {
        Parser {
            family,
            remote: Vec::new(),
            scan: Vec::new(),
            language: None,
            sources: Vec::new(),
            linker_inputs: 0,
            compile: None,
            output: None,
            dep_write: None,
            wp_dep: None,
            dep_file: None,
            dep_targets: Vec::new(),
            phony: false,
            split_dwarf: false,
            debug_info: false,
            target: None,
            sysroot: None,
            isysroot: None,
            extra_inputs: Vec::new(),
            include_dirs: Vec::new(),
            prefix_maps: Vec::new(),
        }
    }

    /// For the remote compile and the scan alike.
    fn both(&mut self, args: Vec<Arg>) {
        self.scan.extend(args.iter().cloned());
        self.remote.extend(args);
    }

    /// Takes one flag of the table into the parse, by its role.
    fn flag(
        &mut self,
        arg: &'a str,
        role: Role,
        value: Option<Value<'a>>,
        args: &'a [String],
        i: &mut usize,
    ) -> Result<(), Local> {
        let text = value.map(|v| v.text);
        match role {
            Role::Plain => self.both(pair(arg, value, false)),
            Role::Path => {
                needs_value(arg, text)?;
                self.both(pair(arg, value, true));
            }
            Role::IncludeDir => self.include_dir(arg, value)?,
            Role::ExtraInput => self.extra_input(arg, value)?,
            Role::Plugin => self.plugin(arg, value)?,
            Role::ProfileUse => match value {
                None => return Err(Local::ProfileUseDefaultPath(arg.into())),
                Some(_) => self.extra_input(arg, value)?,
            },
            Role::Sysroot | Role::Isysroot => {
                let dir = needs_value(arg, text)?;
                if role == Role::Sysroot {
                    self.sysroot = Some(dir);
                } else {
                    self.isysroot = Some(dir);
                }
                self.both(pair(arg, value, true));
            }
            Role::Target => {
                self.target = Some(needs_value(arg, text)?);
                self.both(pair(arg, value, false));
            }
            Role::Language => {
                let lang = needs_value(arg, text)?;
                self.language = (lang != "none").then_some(lang);
                self.both(pair(arg, value, false));
            }
            Role::Output => {
                let out = needs_value(arg, text)?;
                if out == "-" {
                    return Err(Local::OutputToStdout);
                }
                self.output = Some(out);
                self.remote.extend(pair(arg, value, true));
            }
            Role::Compile(kind) => {
                if self.compile != Some(OutputKind::Assembly) {
                    self.compile = Some(kind);
                }
                self.remote.push(Arg::plain(arg));
            }
            Role::DepWrite(_)
            | Role::DepFile
            | Role::DepTarget(_)
            | Role::DepPhony
            | Role::DepMissingGenerated => self.dep_flag(arg, role, text)?,
            Role::PrefixMap(kind) => self.prefix_map(arg, kind, value)?,
            Role::SplitDwarf => {
                self.split_dwarf = match text {
                    None | Some("split") => true,
                    Some("single") => false,
                    Some(_) => return Err(Local::UnsupportedFlag(arg.into())),
                };
                self.remote.push(Arg::plain(arg));
            }
            Role::NoSplitDwarf => {
                self.split_dwarf = false;
                self.remote.push(Arg::plain(arg));
            }
            Role::Wp => self.wp(arg, text.unwrap_or_default())?,
            Role::Wa | Role::Xassembler | Role::Xpreprocessor => {
                self.pass_through(arg, role, value)?
            }
            Role::Xclang => self.xclang(needs_value(arg, text)?, args, i)?,
            Role::Local(why) => return Err(local(why, arg)),
        }
        Ok(())
    }

    /// A header search dir (`-I`, `-isystem`, `-B`, …), kept for the scan.
    fn include_dir(&mut self, arg: &'a str, value: Option<Value<'a>>) -> Result<(), Local> {
        let dir = needs_value(arg, value.map(|v| v.text))?;
        // `-I=dir` and `-I$SYSROOT/dir` are relative to the sysroot,
        // which is itself marked.
        let in_sysroot = dir.starts_with('=') || dir.starts_with("$SYSROOT");
        if !in_sysroot {
            self.include_dirs.push(dir.into());
        }
        self.both(pair(arg, value, !in_sysroot));
        Ok(())
    }

    /// `-fplugin=`: a file the compile reads, or a plugin's bare name.
    fn plugin(&mut self, arg: &'a str, value: Option<Value<'a>>) -> Result<(), Local> {
        let plugin = needs_value(arg, value.map(|v| v.text))?;
        if plugin.contains('/') || plugin.ends_with(".so") {
            return self.extra_input(arg, value);
        }
        // A name looked up in the compiler's own plugin directory.
        self.both(pair(arg, value, false));
        Ok(())
    }

    /// The dependency-file flags (`-MD`, `-MF`, `-MT`, …): they shape the
    /// depfile the wrapper writes, not the remote command line.
    fn dep_flag(&mut self, arg: &str, role: Role, text: Option<&'a str>) -> Result<(), Local> {
        match role {
            Role::DepWrite(system_headers) => self.dep_write = Some(system_headers),
            Role::DepFile => {
                let file = needs_value(arg, text)?;
                if file == "-" {
                    return Err(Local::OutputToStdout);
                }
                self.dep_file = Some(file);
            }
            Role::DepTarget(quoted) => {
                let t = needs_value(arg, text)?.to_string();
                self.dep_targets.push(if quoted {
                    DepTarget::Quoted(t)
                } else {
                    DepTarget::Raw(t)
                });
            }
            Role::DepPhony => self.phony = true,
            // Both compilers reject -MG without -M/-MM, which are local.
            _ => {
                return Err(Local::BadArgument(
                    "-MG is only valid with -M or -MM".into(),
                ));
            }
        }
        Ok(())
    }

    /// `-fdebug-prefix-map=OLD=NEW` and its kin: kept as a map, so the
    /// wrapper can rewrite both sides.
    fn prefix_map(
        &mut self,
        arg: &'a str,
        kind: PrefixMapKind,
        value: Option<Value<'a>>,
    ) -> Result<(), Local> {
        let map = needs_value(arg, value.map(|v| v.text))?;
        let Some((old, new)) = map.split_once('=') else {
            return Err(Local::BadArgument(format!("{arg}: expected OLD=NEW")));
        };
        let flag = value.and_then(|v| v.prefix).unwrap_or(arg);
        self.both(vec![Arg::PrefixMap {
            flag: flag.into(),
            old: old.into(),
            new: new.into(),
        }]);
        self.prefix_maps.push((kind, old.into(), new.into()));
        Ok(())
    }

    /// `-Wa,`, `-Xassembler` and `-Xpreprocessor`: passed on when every
    /// option in them is one recast can account for.
    fn pass_through(
        &mut self,
        arg: &'a str,
        role: Role,
        value: Option<Value<'a>>,
    ) -> Result<(), Local> {
        let text = value.map(|v| v.text);
        match role {
            Role::Wa => {
                for opt in text.unwrap_or_default().split(',') {
                    assembler_option(arg, opt)?;
                }
            }
            Role::Xassembler => assembler_option(arg, needs_value(arg, text)?)?,
            _ => {
                let opt = needs_value(arg, text)?;
                if !plain_option(opt) {
                    return Err(Local::UnsupportedFlag(format!("{arg} {opt}")));
                }
            }
        }
        self.both(pair(arg, value, false));
        Ok(())
    }

    fn extra_input(&mut self, arg: &str, value: Option<Value<'a>>) -> Result<(), Local> {
        let file = needs_value(arg, value.map(|v| v.text))?;
        self.extra_inputs.push(file.into());
        self.both(pair(arg, value, true));
        Ok(())
    }

    /// `-Wp,-MD,FILE` / `-Wp,-MMD,FILE` (the Linux kernel's form) is a
    /// dependency flag; any other `-Wp,` passes only if every option in it
    /// is plain (`-Wp,-DX`).
    fn wp(&mut self, arg: &'a str, opts: &'a str) -> Result<(), Local> {
        let split: Vec<&str> = opts.split(',').collect();
        if let [md @ ("-MD" | "-MMD"), file] = split[..] {
            if file.is_empty() {
                return Err(Local::BadArgument(format!("{arg}: no file name")));
            }
            self.wp_dep = Some((md == "-MD", file));
            return Ok(());
        }
        if !split.iter().all(|opt| plain_option(opt)) {
            return Err(Local::UnsupportedFlag(arg.into()));
        }
        self.both(vec![Arg::plain(arg)]);
        Ok(())
    }

    /// `-Xclang` passes one cc1 option; a few take the next `-Xclang` value
    /// as a file, and loading a plugin makes the compile local.
    fn xclang(&mut self, opt: &'a str, args: &'a [String], i: &mut usize) -> Result<(), Local> {
        match opt {
            "-load" | "-plugin" => Err(Local::CompilerPlugin(opt.into())),
            "-include-pch" | "-include" => {
                let file = match (args.get(*i), args.get(*i + 1)) {
                    (Some(x), Some(file)) if x == "-Xclang" && !file.is_empty() => file,
                    _ => {
                        return Err(Local::BadArgument(format!(
                            "-Xclang {opt} needs -Xclang FILE after it"
                        )));
                    }
                };
                *i += 2;
                if opt == "-include-pch" {
                    self.extra_inputs.push(file.clone());
                }
                self.both(vec![
                    Arg::plain("-Xclang"),
                    Arg::plain(opt),
                    Arg::plain("-Xclang"),
                    Arg::path("", file.as_str()),
                ]);
                Ok(())
            }
            _ if eq_value_is_path(opt) => Err(Local::UnsupportedFlag(format!("-Xclang {opt}"))),
            _ => {
                self.both(vec![Arg::plain("-Xclang"), Arg::plain(opt)]);
                Ok(())
            }
        }
    }

    /// A flag that is not in the table.
    fn unlisted(&mut self, arg: &'a str) -> Result<(), Local> {
        if !plain_unlisted(arg) {
            return Err(Local::UnsupportedFlag(arg.into()));
        }
        if let Some(on) = debug_level(arg) {
            self.debug_info = on;
        }
        self.both(vec![Arg::plain(arg)]);
        Ok(())
    }

    /// A non-flag argument: a source, or (by its suffix, as gcc decides
    /// without `-x`) a linker input.
    fn input(&mut self, arg: &'a str) -> Result<(), Local> {
        let class = match self.language {
            Some(lang) => language_class(lang),
            None => suffix_class(arg),
        };
        match class {
            Class::Source => self.sources.push((arg, self.language)),
            Class::Linker => self.linker_inputs += 1,
            Class::Header => return Err(Local::PrecompiledHeader),
            Class::Unsupported(lang) => return Err(Local::UnsupportedLanguage(lang)),
        }
        self.both(vec![Arg::path("", arg)]);
        Ok(())
    }

    fn finish(self) -> Result<CCompile, Local> {
        let Some(kind) = self.compile else {
            let nothing = self.sources.is_empty() && self.linker_inputs == 0;
            return Err(if nothing {
                Local::NoSource
            } else {
                Local::Linking
            });
        };
        if self.linker_inputs > 0 {
            return Err(Local::Linking);
        }
        let (source, language) = match self.sources[..] {
            [one] => one,
            [] => return Err(Local::NoSource),
            _ => return Err(Local::MultipleSources),
        };
        let stem = strip_suffix(file_name(source));
        let output = match (self.output, kind) {
            (Some(o), _) => o.to_string(),
            (None, OutputKind::Object) => format!("{stem}.o"),
            (None, OutputKind::Assembly) => format!("{stem}.s"),
        };
        let (depfile, default_target) = self.dep_output(stem, &output)?;
        let dep_flags = match &depfile {
            None => vec!["-M".to_string()],
            Some(d) => {
                let mut flags = vec![if d.system_headers { "-M" } else { "-MM" }.to_string()];
                if d.phony {
                    flags.push("-MP".into());
                }
                if d.targets.is_empty() {
                    flags.extend(["-MQ".to_string(), default_target]);
                }
                for t in &d.targets {
                    let (flag, t) = match t {
                        DepTarget::Raw(t) => ("-MT", t),
                        DepTarget::Quoted(t) => ("-MQ", t),
                    };
                    flags.extend([flag.to_string(), t.clone()]);
                }
                flags
            }
        };
        let family = self.family;
        // gcc 12 writes the .dwo when it assembles, even without -g (then
        // empty); clang writes it itself, only with debug info, and for -S
        // names it after the source, in the cwd.
        let dwo = match (family, kind) {
            _ if !self.split_dwarf => None,
            (Family::Gcc, OutputKind::Object) => Some(replace_suffix(&output, "dwo")),
            (Family::Gcc, OutputKind::Assembly) => None,
            _ if !self.debug_info => None,
            (_, OutputKind::Object) => Some(replace_suffix(&output, "dwo")),
            (_, OutputKind::Assembly) => Some(format!("{stem}.dwo")),
        };
        Ok(CCompile {
            family,
            source: source.into(),
            language: language.map(String::from),
            dwo,
            output,
            kind,
            depfile,
            target: self.target.map(String::from),
            sysroot: self.sysroot.or(self.isysroot).map(String::from),
            debug_info: self.debug_info,
            extra_inputs: self.extra_inputs,
            include_dirs: self.include_dirs,
            remote_args: self.remote,
            scan: ScanSpec {
                args: self.scan,
                dep_flags,
            },
            prefix_maps: self.prefix_maps,
        })
    }

    /// The dependency file and the target the compiler gives it when no
    /// -MT/-MQ is given. Both drivers pass `-MQ <-o value>` for -MD/-MMD
    /// (clang also for -Wp,-MD, which it rewrites to -MD -MF); without -o,
    /// and always for gcc's -Wp,-MD (which goes straight to cc1), cc1's own
    /// default is the source's base name with `.o` — even for -S.
    fn dep_output(&self, stem: &str, output: &str) -> Result<(Option<DepOutput>, String), Local> {
        let from_o = self
            .output
            .map_or_else(|| format!("{stem}.o"), String::from);
        let (system_headers, path, default_target) = match (self.dep_write, self.wp_dep) {
            (None, None) => return Ok((None, String::new())),
            (Some(_), Some(_)) => {
                return Err(Local::UnsupportedFlag(
                    "-Wp,-MD together with -MD or -MMD".into(),
                ));
            }
            (None, Some(_)) if self.dep_file.is_some() => {
                return Err(Local::UnsupportedFlag("-Wp,-MD together with -MF".into()));
            }
            (Some(sys), None) => {
                let path = self
                    .dep_file
                    .map_or_else(|| replace_suffix(output, "d"), String::from);
                (sys, path, from_o)
            }
            (None, Some((sys, file))) => match self.family {
                Family::Gcc => (sys, file.to_string(), format!("{stem}.o")),
                _ => (sys, file.to_string(), from_o),
            },
        };
        let dep = DepOutput {
            path,
            system_headers,
            targets: self.dep_targets.clone(),
            phony: self.phony,
        };
        Ok((Some(dep), default_target))
    }
}

fn local(why: Why, flag: &str) -> Local {
    match why {
        Why::PreprocessOnly => Local::PreprocessOnly,
        Why::SyntaxOnly => Local::SyntaxOnly,
        Why::SaveTemps => Local::SaveTemps,
        Why::ProfileGenerate => Local::ProfileGenerate,
        Why::Coverage => Local::Coverage,
        Why::DumpFlags => Local::DumpFlags(flag.into()),
        Why::VersionQuery => Local::VersionQuery(flag.into()),
        Why::ExtraOutput => Local::ExtraOutput(flag.into()),
        Why::Modules => Local::Modules(flag.into()),
        Why::NativeCpu => Local::NativeCpu(flag.into()),
        Why::Unsupported => Local::UnsupportedFlag(flag.into()),
    }
}

/// The arguments for `arg` and its value, the value marked as a path if
/// `path`.
fn pair(arg: &str, value: Option<Value<'_>>, path: bool) -> Vec<Arg> {
    match value {
        None => vec![Arg::plain(arg)],
        Some(Value {
            text,
            prefix: Some(prefix),
        }) if path => vec![Arg::path(prefix, text)],
        Some(Value {
            prefix: Some(_), ..
        }) => vec![Arg::plain(arg)],
        Some(Value { text, prefix: None }) if path => vec![Arg::plain(arg), Arg::path("", text)],
        Some(Value { text, prefix: None }) => vec![Arg::plain(arg), Arg::plain(text)],
    }
}

fn needs_value<'v>(arg: &str, value: Option<&'v str>) -> Result<&'v str, Local> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Local::BadArgument(format!("{arg} needs a value")))
}

/// An unlisted flag is plain unless it could take a separate value or name
/// a file: long options (gcc has `--output`, `--include-directory`, …),
/// unknown `-M…` dependency flags, and `-f…=VALUE` where VALUE looks like a
/// path.
fn plain_unlisted(arg: &str) -> bool {
    !(arg.starts_with("--") || arg.starts_with("-M") || eq_value_is_path(arg))
}

fn eq_value_is_path(arg: &str) -> bool {
    arg.split_once('=').is_some_and(|(_, v)| looks_like_path(v))
}

/// `dir/x`, or `name.ext` with a letter first in `ext` (`x.txt`, not
/// `armv8.2-a` nor `10.9`).
fn looks_like_path(value: &str) -> bool {
    value.contains('/')
        || value.rsplit_once('.').is_some_and(|(stem, ext)| {
            !stem.is_empty()
                && ext.starts_with(|c: char| c.is_ascii_alphabetic())
                && ext.chars().all(|c| c.is_ascii_alphanumeric())
        })
}

/// An option passed on to the preprocessor (`-Wp,`, `-Xpreprocessor`)
/// that names no file and takes no separate value.
fn plain_option(opt: &str) -> bool {
    match table::lookup(opt) {
        Some((row, Hit::Bare | Hit::Joined(_))) => row.role == Role::Plain,
        Some((_, Hit::Next)) => false,
        None => opt.starts_with('-') && plain_unlisted(opt),
    }
}

/// An option for the assembler (`-Wa,`, `-Xassembler`): listings to a file
/// (`-adhln=x.lst`) and gas's own dependency file are outputs; include
/// directories would be unmarked paths.
fn assembler_option(arg: &str, opt: &str) -> Result<(), Local> {
    if (opt.starts_with("-a") && opt.contains('=')) || opt.starts_with("--MD") {
        return Err(Local::ExtraOutput(format!("{arg} {opt}")));
    }
    if opt.starts_with("-I") || opt == "-o" {
        return Err(Local::UnsupportedFlag(format!("{arg} {opt}")));
    }
    Ok(())
}

/// `cpp`, `cpp-12`, `x86_64-linux-gnu-cpp`, `clang-cpp`: a preprocessor.
fn is_preprocessor_driver(argv0: &str) -> bool {
    let name = file_name(argv0);
    name == "cpp" || name.starts_with("cpp-") || name.ends_with("-cpp") || name.contains("-cpp-")
}

fn file_name(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, name)| name)
}

/// The file name without its last suffix (`a.tar.c` → `a.tar`; a leading
/// dot is not a suffix).
fn strip_suffix(name: &str) -> &str {
    match name.rfind('.') {
        Some(dot) if dot > 0 => &name[..dot],
        _ => name,
    }
}

/// gcc's `%.SUFFIX` spec (and clang's `replace_extension`): the suffix of
/// the file name, not of a directory, is replaced, or the new one appended.
fn replace_suffix(path: &str, suffix: &str) -> String {
    let (dir, name) = match path.rsplit_once('/') {
        Some((dir, name)) => (&path[..dir.len() + 1], name),
        None => ("", path),
    };
    format!("{dir}{}.{suffix}", strip_suffix(name))
}
