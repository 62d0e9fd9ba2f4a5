//! The C family: gcc, g++, clang, clang++, and `zig cc` / `zig c++`
//! (clang's driver inside zig), for the shared pipeline.
//!
//! The compiler's own preprocessor lists what the compile reads (recc's
//! way, not sccache's shipping of preprocessed text): a local `-M` run
//! gives every header and the exact depfile `-MD`/`-MMD` would have
//! written, which recast writes itself so the remote command needs no
//! dependency flags. The remote command is the user's, with the compiler
//! replaced by the same path in the shipped toolchain, and diagnostics
//! always colored (`color`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::color::{ColorPolicy, Encoding, Want};
use super::family::{
    self, ActionSpec, EnvValue, ExposureSpec, FromCompile, Job, Reason, Relocation, RelocationSite,
    ScanSpec, Scanned, ToolRequest,
};
use super::layout;
use super::native::{self, Pin};
use super::placement::{self, Exposure};
use super::prepare;
use super::tool::Tool;
use super::{Ctx, Invocation};
use crate::invocation::gcc::{self, CCompile, PrefixMapKind};
use crate::invocation::{Arg, args, render_all};
use crate::toolchain::family::{Family, parse_exec_prefix};

/// Environment variables that change what gcc or clang read or write;
/// they join the dependency key and the remote Command.
const COMPILER_ENV: [&str; 11] = [
    "CPATH",
    "C_INCLUDE_PATH",
    "CPLUS_INCLUDE_PATH",
    "OBJC_INCLUDE_PATH",
    "OBJCPLUS_INCLUDE_PATH",
    "SOURCE_DATE_EPOCH",
    "GCC_COLORS",
    "GCC_URLS",
    "TERM_URLS",
    "GCC_EXEC_PREFIX",
    "COMPILER_PATH",
];

/// Locale variables: the language and quotes of diagnostics.
const LOCALE_ENV: [&str; 5] = ["LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES"];

/// zig's own variables that change what `zig cc` reads (its cache
/// directories are set in the action instead: they are this machine's).
const ZIG_ENV: [&str; 2] = ["ZIG_LIB_DIR", "ZIG_LIBC"];

/// Where `zig cc` keeps its caches in an action: inside the working
/// directory, so no path of this machine reaches the worker.
const ZIG_CACHE: &str = ".recast-zig-cache";

/// The depfile a remote `zig cc` writes when the user asked for one
/// (never collected).
const ZIG_DEPFILE: &str = ".recast-zig.d";

/// The C family's drivers.
pub(crate) enum Driver {
    /// gcc or clang, invoked as themselves: the invocation's family
    /// says whose rules apply.
    Plain,
    /// `zig cc` / `zig c++`: clang's rules after the subcommand.
    Zig,
}

impl family::Driver for Driver {
    fn parse(&self, ctx: &Ctx, inv: &Invocation) -> Result<Box<dyn Job>, Reason> {
        let raw = utf8_args(inv)?;
        let (lead, rest) = match self {
            Driver::Plain => (None, &raw[..]),
            Driver::Zig => match raw.first().map(String::as_str) {
                Some(sub @ ("cc" | "c++")) => (Some(sub.to_string()), &raw[1..]),
                _ => return Err(Reason::NotACompile),
            },
        };
        let cwd = ctx.cwd.clone();
        let expanded =
            args::expand(rest, &|f| std::fs::read_to_string(cwd.join(f))).map_err(|e| {
                tracing::debug!("response file: {e}");
                Reason::ResponseFile
            })?;
        let c = gcc::parse(&inv.argv0.to_string_lossy(), &expanded, inv.family).map_err(|l| {
            tracing::debug!("local: {l}");
            Reason::Parsed(l.as_str())
        })?;
        let zig = inv.family == Family::Zig;
        // Without -target, zig compiles for this machine: the action names
        // this machine's target instead (`native`). `-target native` asks
        // for whatever machine runs it.
        if zig && c.target.as_deref() == Some("native") {
            return Err(Reason::ZigNativeTarget);
        }
        let native = zig && c.target.is_none();
        let names = COMPILER_ENV.iter().chain(LOCALE_ENV.iter()).chain(if zig {
            &ZIG_ENV[..]
        } else {
            &[]
        });
        let env = names
            .filter_map(|k| ctx.var(k).map(|v| (k.to_string(), v.to_string())))
            .collect();
        let traceable = traceable(&c, &expanded, |k| ctx.var(k));
        Ok(Box::new(CcJob {
            c,
            lead,
            env,
            compiler: inv.compiler.clone(),
            native,
            traceable,
            pin: OnceLock::new(),
        }))
    }
}

/// The arguments as strings; a compile with other bytes runs here.
pub(crate) fn utf8_args(inv: &Invocation) -> Result<Vec<String>, Reason> {
    inv.args
        .iter()
        .map(|a| a.to_str().map(str::to_string))
        .collect::<Option<Vec<_>>>()
        .ok_or(Reason::NonUtf8Argument)
}

/// Whether `-H` on this compile changes nothing but its stderr, from
/// which [`header_trace`] takes the trace out again. Only gcc's: clang's
/// `-H` adds system headers to an `-MMD` depfile. gcc records its
/// switches, `-H` among them, in debug info (`DW_AT_producer`), in LTO
/// objects, with `-frecord-gcc-switches` and in `-fverbose-asm` output;
/// its messages must be English (the guard list's heading is matched as
/// text); and a precompiled header or a second preprocessor pass
/// (`-save-temps`, `-Wp,`, `-fcompare-debug`) is left to the `-M` run.
///
/// [`header_trace`]: crate::invocation::header_trace
fn traceable<'a>(c: &CCompile, args: &[String], var: impl Fn(&str) -> Option<&'a str>) -> bool {
    let recorded = |a: &str| {
        a == "-H"
            || a == "-frecord-gcc-switches"
            || a == "-fverbose-asm"
            || a == "-fpch-preprocess"
            || a == "-Xpreprocessor"
            || a.starts_with("-flto")
            || a.starts_with("-save-temps")
            || a.starts_with("-fcompare-debug")
            || a.starts_with("-fdiagnostics-format")
            || a.starts_with("-Wp,")
    };
    c.family == Family::Gcc
        && !c.debug_info
        && !c
            .language
            .as_deref()
            .is_some_and(|l| l.ends_with("-header"))
        && !args.iter().any(|a| recorded(a))
        && english(var)
}

/// Whether gcc's messages are untranslated: the messages locale
/// (`LC_ALL`, else `LC_MESSAGES`, else `LANG`) is C, POSIX or English,
/// and `LANGUAGE`, which gettext reads under any other, names English too.
fn english<'a>(var: impl Fn(&str) -> Option<&'a str>) -> bool {
    let set = |k| var(k).filter(|v: &&str| !v.is_empty());
    let locale = set("LC_ALL")
        .or_else(|| set("LC_MESSAGES"))
        .or_else(|| set("LANG"));
    match locale {
        None => true,
        Some(l) if l == "C" || l == "POSIX" || l.starts_with("C.") => true,
        Some(l) => {
            l.starts_with("en")
                && set("LANGUAGE").is_none_or(|g| g.split(':').all(|p| p.starts_with("en")))
        }
    }
}

struct CcJob {
    c: CCompile,
    /// zig's subcommand (`cc`, `c++`), first on every command line.
    lead: Option<String>,
    env: Vec<(String, String)>,
    compiler: PathBuf,
    /// `zig cc` without `-target`: this machine's target, pinned.
    native: bool,
    /// gcc's `-H` changes nothing of this compile but its stderr
    /// ([`traceable`]).
    traceable: bool,
    pin: OnceLock<Result<Pin, Reason>>,
}

impl CcJob {
    /// This machine's target as flags, for a native zig compile (`None`
    /// for any other); `Err` when the pinned compile would differ.
    fn pinned(&self, ctx: &Ctx) -> Result<Option<&Pin>, Reason> {
        if !self.native {
            return Ok(None);
        }
        let pin = self.pin.get_or_init(|| {
            let args = render_all(&self.c.remote_args, &|p| p.to_string());
            let sub = self.lead.as_deref().unwrap_or("cc");
            native::pin(ctx, &self.compiler, sub, &args)
        });
        pin.as_ref().map(Some).map_err(|r| *r)
    }

    /// `zig cc` or `zig c++`.
    fn zig(&self) -> bool {
        self.c.family == Family::Zig
    }

    /// `lead` then `args`.
    fn led(&self, args: Vec<String>) -> Vec<String> {
        self.lead.iter().cloned().chain(args).collect()
    }

    /// The flag that makes the remote compile color, unless the user chose.
    fn color_flag(&self) -> Option<&'static str> {
        let chose = self.c.remote_args.iter().any(|a| match a {
            Arg::Plain(s) => s.contains("diagnostics-color") || s.contains("color-diagnostics"),
            _ => false,
        });
        match (chose, self.c.family) {
            (true, _) => None,
            (false, Family::Gcc) => Some("-fdiagnostics-color=always"),
            (false, _) => Some("-fcolor-diagnostics"),
        }
    }
}

impl Job for CcJob {
    fn kind(&self) -> &'static str {
        if self.zig() { "zig-cc" } else { "cc" }
    }

    fn env(&self) -> &[(String, String)] {
        &self.env
    }

    fn color(&self) -> ColorPolicy {
        match self.color_flag() {
            None => ColorPolicy::AsIs,
            Some(_) => ColorPolicy::Forced {
                want: Want::IfTerminal,
                encoding: Encoding::Raw,
            },
        }
    }

    fn captured_args(&self, _ctx: &Ctx) -> Vec<String> {
        self.color_flag().map(String::from).into_iter().collect()
    }

    fn source(&self) -> Option<&str> {
        Some(&self.c.source)
    }

    fn toolchains(&self, _ctx: &Ctx, inv: &Invocation) -> Result<Vec<ToolRequest>, Reason> {
        Ok(vec![ToolRequest {
            compiler: inv.compiler.clone(),
            targets: Vec::new(),
            linking: false,
            targets_optional: false,
        }])
    }

    fn placed(&self, foreign: bool) -> Result<(), Reason> {
        // zig for this machine where the workers are another platform: a
        // native compile's C library is this machine's.
        match self.native && foreign {
            true => Err(Reason::ZigNativeTarget),
            false => Ok(()),
        }
    }

    fn scan(&self, ctx: &Ctx) -> Result<ScanSpec, Reason> {
        let c = &self.c;
        let scan_args = render_all(&c.scan.args, &|p| p.to_string());
        // The source's place in them, for a -H trace's probe (`FromCompile`).
        let source_at = {
            let mut at = scan_args
                .iter()
                .enumerate()
                .filter(|(_, a)| **a == c.source);
            match (at.next(), at.next()) {
                (Some((i, _)), None) => Some(i),
                _ => None,
            }
        };
        let mut preprocess = scan_args.clone();
        preprocess.extend(["-E".to_string(), "-P".to_string()]);
        let mut first = scan_args.clone();
        first.extend(c.scan.dep_flags.iter().cloned());
        let mut runs = vec![self.led(first)];
        // -MMD's depfile leaves system headers out (and gcc's implicit
        // stdc-predef.h is in no trace), so the file list takes a -M run.
        if c.depfile.as_ref().is_some_and(|d| !d.system_headers) {
            let mut list = scan_args;
            list.push("-M".into());
            runs.push(self.led(list));
        }
        let mut extra: Vec<String> = locale_files(&self.env)
            .into_iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        for e in &c.extra_inputs {
            if !placement::opened(&ctx.cwd, e).is_file() {
                return Err(Reason::ExtraInputNotAFile);
            }
            extra.push(e.clone());
        }
        let mut key = Vec::new();
        if let Some(pin) = self.pinned(ctx)? {
            key.push(serde_json::to_vec(pin).expect("a pin serializes"));
        }
        // gcc's and clang's -MD list what -M lists, beside the object
        // (zig takes another path to the object when asked for a depfile).
        // -MMD's leaves system headers out: that list takes a -M run,
        // beside the compile, or gcc's -H trace.
        let from_compile = match &c.depfile {
            _ if self.zig() => None,
            None => Some(FromCompile::Added),
            Some(d) if d.system_headers => Some(FromCompile::Users(d.path.clone())),
            Some(d) => match (self.traceable, source_at, runs.last()) {
                (true, Some(source_at), Some(list)) => Some(FromCompile::Traced {
                    depfile: d.path.clone(),
                    probe: list.clone(),
                    source_at: source_at + self.lead.iter().count(),
                }),
                _ => Some(FromCompile::Beside(d.path.clone())),
            },
        };
        Ok(ScanSpec {
            key,
            runs,
            depfile_args: |tmp| vec!["-MF".into(), tmp.to_string_lossy().into_owned()],
            extra,
            keep_depfile: c.depfile.is_some(),
            preprocess: Some(self.led(preprocess)),
            from_compile,
        })
    }

    fn action(&self, ctx: &Ctx, scanned: &Scanned, _tools: &[Tool]) -> Result<ActionSpec, Reason> {
        let c = &self.c;
        let cwd = &ctx.cwd;
        let pin = self.pinned(ctx)?;
        let mut args: Vec<Arg> = self.lead.iter().map(Arg::plain).collect();
        args.extend(pin.iter().flat_map(|p| p.lead.iter().map(Arg::plain)));
        args.extend(c.remote_args.iter().cloned());
        args.extend(pin.iter().flat_map(|p| p.tail.iter().map(Arg::plain)));
        // zig 0.16 takes another path to the object when asked for a
        // depfile (it skips its `ld.lld -r` pass), so the remote compile
        // asks for one too, into the working directory; the user's depfile
        // is still the scan's, and this one is not an output.
        if self.zig() && c.depfile.is_some() {
            args.extend(["-MD", "-MF", ZIG_DEPFILE].map(Arg::plain));
        }
        args.extend(self.color_flag().map(Arg::plain));
        // CPATH and friends list directories: they move with the project,
        // and through the root link when relocated.
        let mut env: Vec<(String, EnvValue)> = self
            .env
            .iter()
            .map(|(k, v)| {
                let v = if k.ends_with("PATH") {
                    EnvValue::PathList(v.clone())
                } else {
                    EnvValue::Plain(v.clone())
                };
                (k.clone(), v)
            })
            .collect();
        if self.zig() {
            for var in ["ZIG_GLOBAL_CACHE_DIR", "ZIG_LOCAL_CACHE_DIR"] {
                env.push((var.into(), EnvValue::Plain(ZIG_CACHE.into())));
            }
        }
        // The C library file, at a path of the action's own: the same
        // from every cache dir.
        let mut placed = Vec::new();
        if let Some(p) = pin {
            let digest = crate::cas::hash::digest_file(&p.libc).map_err(|e| {
                tracing::info!("{}: {e}", p.libc.display());
                Reason::ZigNativeTarget
            })?;
            let at = format!("recast/zig/libc-{}.txt", &digest.hex()[..32]);
            env.push(("ZIG_LIBC".into(), EnvValue::Plain(format!("/{at}"))));
            placed.push((p.libc.clone(), at, digest));
        }
        let mut outputs = prepare::outputs_of(cwd, [c.output.as_str()]);
        outputs.extend(prepare::outputs_of(cwd, c.dwo.as_deref()));
        let mut dirs: Vec<PathBuf> = c
            .include_dirs
            .iter()
            .map(|d| placement::opened(cwd, d))
            .collect();
        dirs.push(cwd.clone());
        // The system directories the pin names, as a native compile has
        // them.
        if let Some(p) = pin {
            dirs.extend(
                p.tail
                    .iter()
                    .filter(|a| *a != "-isystem")
                    .map(PathBuf::from),
            );
        }
        Ok(ActionSpec {
            args,
            env,
            outputs,
            dirs,
            exposure: ExposureSpec::Observed(self.exposure(scanned)),
            placed,
            ..ActionSpec::default()
        })
    }

    fn relocation(&self, site: &RelocationSite<'_>) -> Result<Relocation, Reason> {
        if self.c.family != Family::Zig && matches!(site.tools[0], Tool::Registry { .. }) {
            // Its answers (exec prefix, include directories) would be this
            // machine's compiler's, not the workers'.
            return Err(Reason::RelocatedRegistryToolchain);
        }
        match self.c.family {
            Family::Gcc => self.relocation_gcc(site),
            Family::Clang => self.relocation_clang(site),
            Family::Zig => self.relocation_zig(site),
            Family::Rustc => Err(Reason::NotRelocatable),
        }
    }

    fn landed(&self, ctx: &Ctx, depfile: Option<&str>) -> Result<(), String> {
        let (Some(dep), Some(text)) = (&self.c.depfile, depfile) else {
            return Ok(());
        };
        let path = placement::absolute(&ctx.cwd, &dep.path);
        crate::fsutil::write_replacing(&path, text.as_bytes())
            .map_err(|e| format!("writing {}: {e}", path.display()))
    }
}

impl CcJob {
    /// gcc from a plain directory: its programs under `GCC_EXEC_PREFIX`
    /// through the root link; its standard include directories (asked of
    /// the driver with this compile's flags) given with `-isystem`, after
    /// the user's, since the driver would resolve its own to the worker's
    /// real paths; `PWD=/proc/self/cwd` (the launcher's) mapped to the
    /// working directory the user's maps make of this one, and the root
    /// link to `/`. The user's maps follow and win (gcc takes the last).
    fn relocation_gcc(&self, site: &RelocationSite<'_>) -> Result<Relocation, Reason> {
        if self
            .env
            .iter()
            .any(|(k, _)| k == "GCC_EXEC_PREFIX" || k == "COMPILER_PATH")
        {
            return Err(Reason::NotRelocatable);
        }
        let root = site.tools[0].manifest().root;
        let exec_prefix = layout::ask(
            site.ctx,
            &site.inv.compiler,
            &root,
            "exec-prefix",
            &["-print-search-dirs".into()],
            |t| parse_exec_prefix(t).map(|p| vec![p]),
        )?;
        let mut r = Relocation::default();
        r.lead.push("-no-canonical-prefixes".into());
        r.lead.extend(self.relocated_maps(site));
        if !self.plain_flag("-nostdinc") {
            r.lead.push("-nostdinc".into());
            let dirs = layout::ask(
                site.ctx,
                &site.inv.compiler,
                &root,
                "includes",
                &self.include_query(site),
                search_list,
            )?;
            // The driver lists the user's own directories (`-I`, `CPATH`)
            // too; they stay where the user put them, not system ones.
            let own = self.own_include_dirs(site);
            for d in dirs
                .into_iter()
                .filter(|d| !own.contains(&placement::normalize(Path::new(d))))
                .map(canonical_if_shorter)
            {
                r.tail.push("-isystem".into());
                r.tail.push(layout::rel(&site.map.arg(&d)));
            }
        }
        let exec_prefix = exec_prefix.first().ok_or(Reason::NotRelocatable)?;
        r.env.push((
            "GCC_EXEC_PREFIX".into(),
            layout::rel(&site.map.arg(exec_prefix)),
        ));
        Ok(r)
    }

    /// clang from a plain directory: its resource directory named (it
    /// would take it from /proc/self/exe), the root link as its sysroot
    /// unless the user gave one, and the maps as for gcc (by clang's rule
    /// for several that match: its version's).
    fn relocation_clang(&self, site: &RelocationSite<'_>) -> Result<Relocation, Reason> {
        let root = site.tools[0].manifest().root;
        let resource = layout::ask(
            site.ctx,
            &site.inv.compiler,
            &root,
            "resource-dir",
            &["-print-resource-dir".into()],
            |t| t.lines().next().map(|l| vec![l.trim().to_string()]),
        )?;
        let resource = resource.first().ok_or(Reason::NotRelocatable)?;
        let mut r = Relocation::default();
        r.lead.push("-no-canonical-prefixes".into());
        r.lead.push("-resource-dir".into());
        r.lead.push(layout::rel(&site.map.arg(resource)));
        if self.c.sysroot.is_none() {
            r.lead.push(format!("--sysroot={}", layout::ROOT));
        }
        // The GCC installation clang takes libstdc++ and crt files from,
        // spelled as clang found it here (`/usr/bin/../lib/gcc/…`).
        let gcc = layout::ask(
            site.ctx,
            &site.inv.compiler,
            &root,
            "gcc-install",
            &self.include_query(site),
            |t| Some(selected_gcc_prefix(t).into_iter().collect()),
        )?;
        if let Some(prefix) = gcc.first() {
            r.lead.push(format!(
                "--gcc-toolchain={}",
                layout::rel(&site.map.arg(prefix))
            ));
        }
        r.lead.extend(self.relocated_maps(site));
        Ok(r)
    }

    /// zig from a plain directory. zig would take its library from
    /// `/proc/self/exe`, the worker's real path; `ZIG_LIB_DIR` names it
    /// through `/proc/self/cwd` and the root link instead, so every path
    /// zig hands its clang (`-isystem` for clang's and the libc's headers)
    /// is absolute and mapped back to this machine's by one more prefix
    /// map. A path no map reaches (UBSan's file names in a debug build)
    /// keeps `/proc/self/cwd`, which the landing refuses, so such a
    /// compile runs here from then on. The flags follow the user's (after
    /// the subcommand); a user's own prefix maps would then lose to ours,
    /// so such a compile stays rooted or runs here.
    fn relocation_zig(&self, site: &RelocationSite<'_>) -> Result<Relocation, Reason> {
        // A native compile's C library is named by absolute paths
        // (`ZIG_LIBC`): rooted, or in a namespace, only.
        if self.native
            || !self.c.prefix_maps.is_empty()
            || self.env.iter().any(|(k, _)| k == "ZIG_LIB_DIR")
        {
            return Err(Reason::NotRelocatable);
        }
        let lib_dir = match site.tools[0] {
            Tool::Local(_) => {
                let root = site.tools[0].manifest().root;
                let said = layout::ask(
                    site.ctx,
                    &site.inv.compiler,
                    &root,
                    "zig-lib-dir",
                    &["env".into()],
                    |t| {
                        let env = crate::toolchain::family::parse_zig_env(t).ok()?;
                        Some(vec![env.lib_dir])
                    },
                )?;
                let said = said.first().ok_or(Reason::NotRelocatable)?;
                placement::absolute(site.cwd, said)
                    .to_string_lossy()
                    .into_owned()
            }
            Tool::Registry { ref manifest, .. } => manifest
                .relocated
                .as_ref()
                .and_then(|r| r.zig_lib_dir.as_ref())
                .map(|d| format!("/{d}"))
                .ok_or(Reason::RelocatedRegistryToolchain)?,
        };
        let mut r = Relocation::default();
        r.tail.extend(self.relocated_maps(site));
        r.tail.push(format!(
            "-ffile-prefix-map={}/{}/=/",
            layout::PROC_CWD,
            layout::ROOT
        ));
        r.env.push((
            "ZIG_LIB_DIR".into(),
            layout::proc_abs(&site.map.arg(&lib_dir)),
        ));
        Ok(r)
    }

    /// The prefix maps a relocated compile starts with: the launcher's
    /// `PWD` to what the user's debug maps make of the working directory,
    /// and the root link to `/`.
    fn relocated_maps(&self, site: &RelocationSite<'_>) -> Vec<String> {
        let remote_cwd = site.map.remote(site.cwd).to_string_lossy().into_owned();
        let user: Vec<(String, String)> = self
            .c
            .prefix_maps
            .iter()
            .filter(|(kind, _, _)| matches!(kind, PrefixMapKind::Debug | PrefixMapKind::File))
            .map(|(_, old, new)| (site.map.arg(old), new.clone()))
            .collect();
        let identity = &site.tools[0].manifest().identity;
        let major: u32 = identity
            .version
            .split('.')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mapped = if self.c.family == Family::Clang && major < 17 {
            remap_greatest(&user, &remote_cwd)
        } else {
            remap_last(&user, &remote_cwd)
        };
        vec![
            format!("-fdebug-prefix-map={}={mapped}", layout::PROC_CWD),
            format!("-ffile-prefix-map={}/=/", layout::ROOT),
        ]
    }

    /// The include directories the user named, in flags or in `CPATH` and
    /// its kin, absolute and normalized.
    fn own_include_dirs(&self, site: &RelocationSite<'_>) -> Vec<PathBuf> {
        let listed = self
            .env
            .iter()
            .filter(|(k, _)| k.ends_with("INCLUDE_PATH") || k == "CPATH")
            .flat_map(|(_, v)| v.split(':').filter(|d| !d.is_empty()));
        self.c
            .include_dirs
            .iter()
            .map(String::as_str)
            .chain(listed)
            .map(|d| placement::absolute(site.cwd, d))
            .collect()
    }

    /// Whether the user's arguments hold the plain flag `flag`.
    fn plain_flag(&self, flag: &str) -> bool {
        self.c
            .remote_args
            .iter()
            .any(|a| matches!(a, Arg::Plain(s) if s == flag))
    }

    /// The driver's standard include directories for this compile's
    /// language and flags: `-E -v` of an empty input.
    fn include_query(&self, site: &RelocationSite<'_>) -> Vec<String> {
        let c = &self.c;
        let mut args: Vec<String> = c
            .scan
            .args
            .iter()
            .filter(|a| !matches!(a, Arg::Path { prefix, path } if prefix.is_empty() && *path == c.source))
            .map(|a| a.original())
            .collect();
        let argv0 = site.inv.argv0.to_string_lossy();
        args.extend([
            "-E".into(),
            "-v".into(),
            "-x".into(),
            language(c, &argv0).into(),
            "/dev/null".into(),
        ]);
        args
    }

    /// What the compile shows of where it runs: debug info records the
    /// working directory and the files read, unless a debug or file prefix
    /// map rewrites them; paths in arguments, the scan and `CPATH`-style
    /// variables decide the rest (`placement::PathMap::choose`).
    fn exposure(&self, scanned: &Scanned) -> Exposure {
        let c = &self.c;
        let mut paths: Vec<String> = Vec::new();
        for a in &c.remote_args {
            match a {
                Arg::Path { path, .. } => paths.push(path.clone()),
                Arg::PrefixMap { old, .. } => paths.push(old.clone()),
                Arg::Plain(_) => {}
            }
        }
        paths.extend(scanned.files.iter().map(|f| f.spelled.clone()));
        for (k, v) in &self.env {
            if k.ends_with("PATH") || k.ends_with("PREFIX") {
                paths.extend(v.split(':').filter(|s| !s.is_empty()).map(str::to_string));
            }
        }
        let maps = c
            .prefix_maps
            .iter()
            .filter(|(kind, _, _)| matches!(kind, PrefixMapKind::Debug | PrefixMapKind::File))
            .map(|(_, old, _)| old.clone())
            .collect();
        Exposure {
            records_cwd: c.debug_info,
            records_paths: c.debug_info,
            paths,
            maps,
        }
    }
}

/// The locale data diagnostics are written with: the compiled locale
/// (`/usr/lib/locale/C.utf8`, or the archive) and the message catalogs of
/// gcc, cpplib and libc for its language, so a remote compile quotes and
/// translates as a local one does. Nothing for `C` and `POSIX`.
fn locale_files(env: &[(String, String)]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut walk = |dir: &Path, keep: &dyn Fn(&str) -> bool| {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut names: Vec<PathBuf> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter(|e| keep(&e.file_name().to_string_lossy()))
            .map(|e| e.path())
            .collect();
        names.sort();
        out.extend(names);
    };
    for (k, v) in env {
        if !LOCALE_ENV.contains(&k.as_str()) || matches!(v.as_str(), "C" | "POSIX" | "") {
            continue;
        }
        // de_DE.UTF-8@euro → language de_DE, codeset utf8.
        let (lang, codeset) = v
            .split('@')
            .next()
            .unwrap_or(v)
            .split_once('.')
            .unwrap_or((v.as_str(), ""));
        let codeset: String = codeset
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let base = Path::new("/usr/lib/locale");
        walk(&base.join(format!("{lang}.{codeset}")), &|_| true);
        walk(&base.join(format!("{lang}.{codeset}/LC_MESSAGES")), &|_| {
            true
        });
        walk(base, &|n| n == "locale-archive");
        for l in [lang, lang.split('_').next().unwrap_or(lang)] {
            walk(
                &Path::new("/usr/share/locale").join(l).join("LC_MESSAGES"),
                &|n| n.starts_with("gcc") || n.starts_with("cpplib") || n == "libc.mo",
            );
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The language a compile's source is in, as `-x` names it: `-x` given,
/// else the suffix, C++ for a `.c` under a `++` driver.
fn language(c: &CCompile, argv0: &str) -> &'static str {
    let cxx_suffix = |s: &str| {
        matches!(
            s.rsplit_once('.').map(|(_, x)| x),
            Some("cc" | "cp" | "cxx" | "cpp" | "CPP" | "c++" | "C" | "ii")
        )
    };
    match c.language.as_deref() {
        Some(l) if l.starts_with("c++") => "c++",
        Some(_) => "c",
        None if cxx_suffix(&c.source) || argv0.contains("++") => "c++",
        None => "c",
    }
}

/// `path` as gcc's prefix maps make it, and clang's from 17 on: the last
/// map whose old side is a prefix of it (as a string, as they compare)
/// replaces that prefix.
fn remap_last(maps: &[(String, String)], path: &str) -> String {
    maps.iter()
        .rev()
        .find_map(|(old, new)| {
            path.strip_prefix(old.as_str())
                .map(|rest| format!("{new}{rest}"))
        })
        .unwrap_or_else(|| path.to_string())
}

/// `path` as clang before 17 maps it: the maps kept by old side (a later
/// one replacing an earlier) in descending order, the first that matches.
fn remap_greatest(maps: &[(String, String)], path: &str) -> String {
    let by_old: BTreeMap<&str, &str> = maps.iter().map(|(o, n)| (o.as_str(), n.as_str())).collect();
    by_old
        .iter()
        .rev()
        .find_map(|(old, new)| path.strip_prefix(old).map(|rest| format!("{new}{rest}")))
        .unwrap_or_else(|| path.to_string())
}

/// `dir` as gcc names the headers it finds there: a system header's
/// path is its real path when that is shorter (`-fcanonical-system-headers`,
/// on by default), so a cross gcc's `…/12/../../../../aarch64-linux-gnu/include`
/// is `/usr/aarch64-linux-gnu/include` here. Through the root link on the
/// worker, the real path would be the worker's.
fn canonical_if_shorter(dir: String) -> String {
    match std::fs::canonicalize(&dir) {
        Ok(real) if real.as_os_str().len() < dir.len() => real.to_string_lossy().into_owned(),
        _ => dir,
    }
}

/// The directories of `#include <...> search starts here:` in `-v`.
fn search_list(text: &str) -> Option<Vec<String>> {
    let start = text.find("#include <...> search starts here:")?;
    let rest = &text[start..];
    let end = rest.find("End of search list.")?;
    Some(
        rest[..end]
            .lines()
            .skip(1)
            .map(|l| {
                l.trim()
                    .trim_end_matches(" (framework directory)")
                    .to_string()
            })
            .filter(|l| l.starts_with('/'))
            .collect(),
    )
}

/// The prefix of the GCC installation clang selected (`-v`: `Selected
/// GCC installation: /usr/bin/../lib/gcc/x86_64-linux-gnu/12` →
/// `/usr/bin/..`).
fn selected_gcc_prefix(text: &str) -> Option<String> {
    let dir = text
        .lines()
        .find_map(|l| l.strip_prefix("Selected GCC installation: "))?
        .trim();
    let mut p = dir;
    for _ in 0..4 {
        p = &p[..p.rfind('/')?];
    }
    Some(p.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcc_traces_headers_only_where_h_changes_no_output_and_speaks_english() {
        let c = |args: &[&str], family| {
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            (gcc::parse("gcc", &args, family).unwrap(), args)
        };
        let none = |_: &str| None;
        let base = ["-O2", "-MMD", "-c", "a.c"];
        let (cc, args) = c(&base, Family::Gcc);
        assert!(traceable(&cc, &args, none));
        let (cc, args) = c(&base, Family::Clang);
        assert!(
            !traceable(&cc, &args, none),
            "clang's -H changes -MMD's list"
        );
        for extra in [
            "-g",
            "-ggdb3",
            "-flto",
            "-flto=auto",
            "-frecord-gcc-switches",
            "-fverbose-asm",
            "-save-temps",
            "-H",
            "-fdiagnostics-format=json",
        ] {
            let args: Vec<String> = [&base[..], &[extra]]
                .concat()
                .iter()
                .map(|a| a.to_string())
                .collect();
            // A flag the parser sends to run here never reaches the trace.
            if let Ok(cc) = gcc::parse("gcc", &args, Family::Gcc) {
                assert!(!traceable(&cc, &args, none), "{extra}");
            }
        }
        let (cc, args) = c(
            &[&base[..], &["-g", "-g0", "-fno-lto"]].concat(),
            Family::Gcc,
        );
        assert!(traceable(&cc, &args, none), "no debug info in the end");
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| *v)
        };
        let (cc, args) = c(&base, Family::Gcc);
        for (vars, ok) in [
            (&[("LANG", "C.UTF-8")][..], true),
            (
                &[("LANG", "en_US.UTF-8"), ("LANGUAGE", "en_GB:en")][..],
                true,
            ),
            (&[("LANG", "de_DE.UTF-8")][..], false),
            (
                &[("LANG", "en_US.UTF-8"), ("LC_ALL", "fr_FR.UTF-8")][..],
                false,
            ),
            (&[("LANG", "en_US.UTF-8"), ("LANGUAGE", "en:de")][..], false),
            (&[("LC_ALL", "C"), ("LANGUAGE", "de")][..], true),
        ] {
            assert_eq!(traceable(&cc, &args, env(vars)), ok, "{vars:?}");
        }
    }

    #[test]
    fn several_matching_prefix_maps_follow_each_compilers_rule() {
        let maps = vec![
            ("/p/build".to_string(), "/b".to_string()),
            ("/p".to_string(), "/x".to_string()),
        ];
        // gcc and clang 17+: the last that matches.
        assert_eq!(remap_last(&maps, "/p/build"), "/x/build");
        // clang before 17: the greatest old side that matches.
        assert_eq!(remap_greatest(&maps, "/p/build"), "/b");
        assert_eq!(remap_greatest(&maps, "/p/src"), "/x/src");
        assert_eq!(remap_greatest(&maps, "/q"), "/q");
        // A later map for the same old side replaces the earlier.
        let twice = vec![
            ("/p".to_string(), "/one".to_string()),
            ("/p".to_string(), "/two".to_string()),
        ];
        assert_eq!(remap_greatest(&twice, "/p/a"), "/two/a");
    }
}
