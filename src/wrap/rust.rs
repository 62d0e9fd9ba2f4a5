//! rustc for the shared pipeline (`RUSTC_WRAPPER=recast cargo build`).
//!
//! The scan is rustc's own `--emit=dep-info` run here: every source file
//! (modules, `include!`, `include_str!`), and the environment variables
//! the crate reads with `env!` (`# env-dep:` lines), which join the remote
//! Command. The crates it loads come from the `--extern` files and the
//! records of earlier compiles (`crates`). Every crate type runs remotely:
//! crates that link (bins, build scripts, proc-macros, test harnesses)
//! take the linker rustc runs (`cc`, or `-C linker`) in their bundle, and
//! run here when it cannot be found, or on a miss across a network
//! (`RECAST_PUBLISH` in the background: `Reason::LinksHere`). Incremental compiles (`-C
//! incremental`, cargo's default for workspace members in dev builds) run
//! here: `CARGO_INCREMENTAL=0` sends them remote too.
//!
//! rustc records its working directory in every rlib, so the project
//! root moves only when the user's `--remap-path-prefix` rewrites it (or
//! `RECAST_TRIM_PATHS=1`, which remaps the root to one path here and
//! there alike); rustc's JSON diagnostics and artifact notifications are
//! relayed as they are, colored as the user asked (`color`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use futures::future::BoxFuture;

use super::color::{ColorPolicy, Encoding, Want};
use super::depcache::Seen;
use super::family::{
    self, ActionSpec, EnvValue, ExposureSpec, FromCompile, Job, Reason, Relocation, RelocationSite,
    ScanSpec, Scanned, ToolRequest,
};
use super::placement::{self, Exposure, MAPPED_ROOT};
use super::stats::Event;
use super::tool::Tool;
use super::twin::{self, TwinFile};
use super::{Ctx, Invocation, cc::utf8_args, crates, layout, on_server, pipeline, prepare};
use crate::invocation::rustc::{self, InputKind, RustCompile, SearchKind, Target};
use crate::invocation::{Arg, args, depfile};
use crate::toolchain::family::parse_exec_prefix;

/// The rustc family's driver.
pub(crate) struct Driver;

impl family::Driver for Driver {
    fn parse(&self, ctx: &Ctx, inv: &Invocation) -> Result<Box<dyn Job>, Reason> {
        let raw = utf8_args(inv)?;
        let cwd = ctx.cwd.clone();
        let args =
            args::expand_rustc(&raw, &|f| std::fs::read_to_string(cwd.join(f))).map_err(|e| {
                tracing::debug!("argfile: {e}");
                Reason::ResponseFile
            })?;
        let r = rustc::parse(&args, &ctx.env.0).map_err(|l| {
            tracing::debug!("local: {l}");
            Reason::Parsed(l.reason.as_str())
        })?;
        Ok(Box::new(RustJob::new(r, args, Purpose::Compile)))
    }
}

/// What a remote rustc is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    /// The user's compile: its outputs land here.
    Compile,
    /// A host unit's twin for the workers' platform: outputs stay there.
    Twin,
}

struct RustJob {
    r: RustCompile,
    /// The expanded arguments (a twin parses them again).
    args: Vec<String>,
    env: Vec<(String, String)>,
    purpose: Purpose,
}

impl RustJob {
    fn new(r: RustCompile, args: Vec<String>, purpose: Purpose) -> RustJob {
        let env = r
            .env
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    rustc::EnvValue::Plain(v) | rustc::EnvValue::Path(v) => v.clone(),
                };
                (k.clone(), v)
            })
            .collect();
        RustJob {
            r,
            args,
            env,
            purpose,
        }
    }

    /// The arguments with colored diagnostics asked for: JSON diagnostics
    /// rendered with ANSI styles (cargo asks for that itself), or
    /// `--color=always` for text.
    fn colored_args(&self) -> Vec<Arg> {
        let mut out = Vec::with_capacity(self.r.remote_args.len() + 1);
        let mut it = self.r.remote_args.iter().peekable();
        let mut json_seen = false;
        while let Some(a) = it.next() {
            let Arg::Plain(s) = a else {
                out.push(a.clone());
                continue;
            };
            if self.r.error_format_json {
                if let Some(list) = s.strip_prefix("--json=") {
                    out.push(Arg::plain(format!("--json={}", with_ansi(list))));
                    json_seen = true;
                    continue;
                }
                if s == "--json"
                    && let Some(Arg::Plain(list)) = it.peek()
                {
                    out.push(Arg::plain("--json"));
                    out.push(Arg::plain(with_ansi(list)));
                    it.next();
                    json_seen = true;
                    continue;
                }
            } else {
                if s.starts_with("--color=") {
                    continue;
                }
                if s == "--color" {
                    it.next();
                    continue;
                }
            }
            out.push(a.clone());
        }
        if self.r.error_format_json {
            if !json_seen {
                out.push(Arg::plain("--json=diagnostic-rendered-ansi"));
            }
        } else {
            out.push(Arg::plain("--color=always"));
        }
        out
    }

    /// When the user's own rustc would have colored.
    fn wanted_color(&self) -> Want {
        if self.r.error_format_json {
            let lists = self.r.remote_args.windows(2).filter_map(|w| match w {
                [Arg::Plain(flag), Arg::Plain(list)] if flag == "--json" => Some(list.clone()),
                _ => None,
            });
            let joined: Vec<String> = self
                .r
                .remote_args
                .iter()
                .filter_map(|a| match a {
                    Arg::Plain(s) => s.strip_prefix("--json=").map(str::to_string),
                    _ => None,
                })
                .chain(lists)
                .collect();
            return if joined
                .iter()
                .any(|l| l.split(',').any(|j| j == "diagnostic-rendered-ansi"))
            {
                Want::Always
            } else {
                Want::Never
            };
        }
        let mut want = Want::IfTerminal;
        for (i, a) in self.r.remote_args.iter().enumerate() {
            let Arg::Plain(s) = a else { continue };
            let value = match s.strip_prefix("--color=") {
                Some(v) => Some(v.to_string()),
                None if s == "--color" => match self.r.remote_args.get(i + 1) {
                    Some(Arg::Plain(v)) => Some(v.clone()),
                    _ => None,
                },
                None => None,
            };
            want = match value.as_deref() {
                Some("always") => Want::Always,
                Some("never") => Want::Never,
                Some(_) => Want::IfTerminal,
                None => want,
            };
        }
        want
    }

    /// The crate files the compile loads (the `--extern` closure through
    /// the crate records), never its own outputs; and those crates' sources.
    fn crate_files(&self, ctx: &Ctx) -> (Vec<PathBuf>, Vec<PathBuf>) {
        let r = &self.r;
        let c = crates::closure(
            &ctx.cache_dir,
            &extern_files(&ctx.cwd, r),
            &dependency_dirs(&ctx.cwd, r),
            r.links,
        );
        let own: Vec<PathBuf> = r
            .outputs
            .iter()
            .map(|o| placement::absolute(&ctx.cwd, &o.path))
            .collect();
        if !c.known {
            tracing::debug!(
                "the crate graph is not known: every crate file of its directories goes"
            );
        }
        let files = c.files.into_iter().filter(|f| !own.contains(f)).collect();
        (files, c.sources)
    }

    /// With `RECAST_TRIM_PATHS`, the project root, which moves to
    /// [`MAPPED_ROOT`]. A registry crate compiles in its own directory,
    /// outside the project: its project is the one its outputs go to.
    fn trim_root(&self, ctx: &Ctx) -> Option<PathBuf> {
        if !ctx.wrap.trim_paths {
            return None;
        }
        let root = ctx.project_root().or_else(|| {
            let out = self.r.out_dir.as_deref().or(self.r.output.as_deref())?;
            placement::find_project_root(&placement::absolute(&ctx.cwd, out), &|p| p.exists())
        })?;
        let root = placement::normalize(&root);
        (root != Path::new("/") && root != Path::new(MAPPED_ROOT)).then_some(root)
    }

    /// The remaps `RECAST_TRIM_PATHS` gives a compile, here and remotely
    /// alike: the project root to [`MAPPED_ROOT`], and a crate compiled
    /// in its own directory outside the project (a registry's) to
    /// `/recast/crates/<directory>`, as cargo's trim-paths does, so that
    /// nothing a compile records names this machine.
    fn trims(&self, ctx: &Ctx) -> Vec<(PathBuf, String)> {
        let Some(root) = self.trim_root(ctx) else {
            return Vec::new();
        };
        let cwd = placement::normalize(&ctx.cwd);
        let mut out = vec![(root.clone(), MAPPED_ROOT.to_string())];
        if !cwd.starts_with(&root)
            && let Some(name) = cwd.file_name()
        {
            out.push((
                cwd.clone(),
                format!("/recast/crates/{}", name.to_string_lossy()),
            ));
        }
        out
    }

    /// What the compile shows of where it runs: rustc records its working
    /// directory and the paths of its sources, unless `--remap-path-prefix`
    /// rewrites them.
    fn exposure(&self, scanned: &Scanned) -> Exposure {
        let mut paths = Vec::new();
        let mut maps = Vec::new();
        for a in &self.r.remote_args {
            match a {
                Arg::Path { path, .. } => paths.push(path.clone()),
                Arg::PrefixMap { old, .. } => {
                    paths.push(old.clone());
                    maps.push(old.clone());
                }
                Arg::Plain(_) => {}
            }
        }
        paths.extend(scanned.files.iter().map(|f| f.spelled.clone()));
        Exposure {
            records_cwd: true,
            records_paths: true,
            paths,
            maps,
        }
    }

    /// The crate's own source files, from the dep-info the compile wrote
    /// (absolute; libraries left out); none without one.
    fn sources(&self, ctx: &Ctx) -> Vec<PathBuf> {
        let Some(dep_info) = &self.r.dep_info else {
            return Vec::new();
        };
        let Ok(text) = std::fs::read_to_string(placement::absolute(&ctx.cwd, dep_info)) else {
            return Vec::new();
        };
        let Ok(deps) = crate::invocation::depfile::parse(&text) else {
            return Vec::new();
        };
        let mut out: Vec<PathBuf> = deps
            .rules
            .iter()
            .flat_map(|r| &r.prereqs)
            .map(|p| placement::absolute(&ctx.cwd, p))
            .filter(|p| !is_library(p))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// After a compile here or there: which crate files its libraries were
    /// built from, for the compiles that load them.
    fn record_crates(&self, ctx: &Ctx) {
        let outputs: Vec<PathBuf> = self
            .r
            .outputs
            .iter()
            .map(|o| placement::absolute(&ctx.cwd, &o.path))
            .filter(|p| is_crate_output(p))
            .collect();
        crates::record(
            &ctx.cache_dir,
            &outputs,
            &extern_files(&ctx.cwd, &self.r),
            &self.sources(ctx),
        );
    }
}

/// A `--json` list with `diagnostic-rendered-ansi` in it.
fn with_ansi(list: &str) -> String {
    if list.split(',').any(|j| j == "diagnostic-rendered-ansi") {
        list.to_string()
    } else if list.is_empty() {
        "diagnostic-rendered-ansi".to_string()
    } else {
        format!("diagnostic-rendered-ansi,{list}")
    }
}

impl Job for RustJob {
    fn kind(&self) -> &'static str {
        "rustc"
    }

    fn env(&self) -> &[(String, String)] {
        &self.env
    }

    fn color(&self) -> ColorPolicy {
        ColorPolicy::Forced {
            want: self.wanted_color(),
            encoding: if self.r.error_format_json {
                Encoding::Json
            } else {
                Encoding::Raw
            },
        }
    }

    fn toolchains(&self, ctx: &Ctx, inv: &Invocation) -> Result<Vec<ToolRequest>, Reason> {
        let r = &self.r;
        let targets = match &r.target {
            Some(Target::Triple(t)) => vec![t.clone()],
            _ => Vec::new(),
        };
        let mut out = vec![ToolRequest {
            compiler: inv.compiler.clone(),
            targets,
            linking: r.links,
            targets_optional: true,
        }];
        // A crate that links takes the linker rustc runs (`cc`, or -C
        // linker) with everything linking needs: crt files, libc's script.
        if r.links {
            out.push(ToolRequest {
                compiler: find_linker(ctx, r).ok_or(Reason::LinksNoLinker)?,
                targets: Vec::new(),
                linking: true,
                targets_optional: false,
            });
        }
        Ok(out)
    }

    fn placed(&self, foreign: bool) -> Result<(), Reason> {
        match self.purpose {
            // Without --target, cargo builds for this machine: a host
            // unit, which runs here (and gets a twin, `after_local`).
            Purpose::Compile if foreign && self.r.target.is_none() => Err(Reason::HostUnit),
            Purpose::Twin if !foreign => Err(Reason::NoTwinNeeded),
            _ => Ok(()),
        }
    }

    fn scan(&self, ctx: &Ctx) -> Result<ScanSpec, Reason> {
        let r = &self.r;
        let (crate_files, upstream) = self.crate_files(ctx);
        let natives = native_libraries(&ctx.cwd, r);
        // The upstream crates' sources go too: rustc reads those its
        // dependencies' metadata names (a macro's, expanded here), and
        // whether it finds them changes the metadata it writes. A remapped
        // one it finds nowhere, here or there: with trim-paths every crate
        // recast compiles is remapped, and the user's remaps (the same
        // RUSTFLAGS for every crate) remapped those they cover.
        let remapped: Vec<PathBuf> = r
            .remote_args
            .iter()
            .filter_map(|a| match a {
                Arg::PrefixMap { old, .. } => Some(placement::absolute(&ctx.cwd, old)),
                _ => None,
            })
            .collect();
        let upstream: Vec<PathBuf> = if ctx.wrap.trim_paths {
            Vec::new()
        } else {
            upstream
                .into_iter()
                .filter(|p| !remapped.iter().any(|old| p.starts_with(old)))
                .collect()
        };
        let mut extra: Vec<String> = crate_files
            .iter()
            .chain(&natives)
            .chain(&upstream)
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        for i in &r.inputs {
            if matches!(i.kind, InputKind::TargetSpec | InputKind::ProfileUse)
                && placement::absolute(&ctx.cwd, &i.path).is_file()
            {
                extra.push(i.path.clone());
            }
        }
        Ok(ScanSpec {
            // The crate files change when a dependency is rebuilt.
            key: crate_files
                .iter()
                .chain(&natives)
                .map(|p| p.as_os_str().as_encoded_bytes().to_vec())
                .collect(),
            runs: vec![crate::invocation::render_all(&r.scan_args, &|p| {
                p.to_string()
            })],
            depfile_args: |tmp| vec![format!("--emit=dep-info={}", tmp.display())],
            extra,
            keep_depfile: true,
            preprocess: None,
            // The dep-info cargo asks for lists what the scan's does.
            from_compile: r.dep_info.clone().map(FromCompile::Users),
        })
    }

    fn action(&self, ctx: &Ctx, scanned: &Scanned, tools: &[Tool]) -> Result<ActionSpec, Reason> {
        let r = &self.r;
        let cwd = &ctx.cwd;
        let foreign = matches!(tools[0], Tool::Registry { .. });
        let swapped = if foreign {
            swap_twins(&ctx.cache_dir, &scanned.files)?
        } else {
            Swapped::default()
        };
        let mut env: Vec<(String, EnvValue)> = r
            .env
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    rustc::EnvValue::Plain(v) => EnvValue::Plain(v.clone()),
                    rustc::EnvValue::Path(v) => EnvValue::Path(v.clone()),
                };
                (k.clone(), v)
            })
            .collect();
        // `env!` variables the dep-info lists with the values seen here;
        // cargo's own are set above already (moved with the project).
        for (k, v) in env_deps(scanned.depfile.as_deref()) {
            if !r.env.iter().any(|(name, _)| *name == k) {
                env.push((k, EnvValue::Path(v)));
            }
        }
        let mut dirs: Vec<PathBuf> = r
            .search_paths
            .iter()
            .map(|s| placement::opened(cwd, &s.path))
            .collect();
        dirs.extend(r.out_dir.iter().map(|d| placement::opened(cwd, d)));
        dirs.push(cwd.clone());
        let (exposure, when_moved) = match self.trim_root(ctx) {
            // The same remaps a local compile gets (`local_args`), seen
            // from where the project sits remotely: equal bytes either way.
            Some(root) => {
                let mut when_moved =
                    vec![format!("--remap-path-prefix={MAPPED_ROOT}={MAPPED_ROOT}")];
                when_moved.extend(
                    self.trims(ctx)
                        .iter()
                        .skip(1)
                        .map(|(from, to)| format!("--remap-path-prefix={}={to}", from.display())),
                );
                (ExposureSpec::Forced(root), when_moved)
            }
            None => (ExposureSpec::Observed(self.exposure(scanned)), Vec::new()),
        };
        Ok(ActionSpec {
            args: self.colored_args(),
            env,
            outputs: prepare::outputs_of(cwd, r.outputs.iter().map(|o| o.path.as_str())),
            dirs,
            exposure,
            dropped: swapped.dropped,
            extra: swapped.entries,
            renamed: swapped.renamed,
            when_moved,
            placed: Vec::new(),
        })
    }

    fn landed(&self, ctx: &Ctx, _depfile: Option<&str>) -> Result<(), String> {
        self.record_crates(ctx);
        Ok(())
    }

    fn relocation(&self, site: &RelocationSite<'_>) -> Result<Relocation, Reason> {
        let r = &self.r;
        let remaps = self.remaps(site)?;
        let mut out = Relocation::default();
        if r.sysroot.is_none() {
            // The sysroot rustc would find from /proc/self/exe, named.
            let entry = Path::new("/").join(&site.tools[0].manifest().entry);
            let sysroot = entry
                .parent()
                .and_then(Path::parent)
                .ok_or(Reason::NotRelocatable)?;
            out.lead.push("--sysroot".into());
            out.lead
                .push(layout::rel(&site.map.arg(&sysroot.to_string_lossy())));
        }
        if r.links {
            // The linker (gcc's driver) as gcc runs relocated.
            let linker = site.tools.get(1).ok_or(Reason::LinksNoLinker)?;
            // A registry's linker says it in its manifest; one of this
            // machine's is asked.
            let published = linker
                .manifest()
                .relocated
                .as_ref()
                .and_then(|r| r.gcc_exec_prefix.clone());
            let prefix = match published {
                Some(p) => p,
                None => {
                    let program = find_linker(site.ctx, r).ok_or(Reason::LinksNoLinker)?;
                    let answer = layout::ask(
                        site.ctx,
                        &program,
                        &linker.manifest().root,
                        "exec-prefix",
                        &["-print-search-dirs".into()],
                        |t| parse_exec_prefix(t).map(|p| vec![p]),
                    )?;
                    answer.into_iter().next().ok_or(Reason::NotRelocatable)?
                }
            };
            let prefix = &prefix;
            for arg in [
                "link-arg=-no-canonical-prefixes".to_string(),
                format!("link-arg=--sysroot={}", layout::ROOT),
            ] {
                out.lead.push("-C".into());
                out.lead.push(arg);
            }
            out.env
                .push(("GCC_EXEC_PREFIX".into(), layout::rel(&site.map.arg(prefix))));
        }
        out.runtime = runtime_remaps(site, &remaps);
        Ok(out)
    }

    fn links(&self) -> bool {
        self.r.links
    }

    fn rerun_failures(&self) -> bool {
        self.r.links
    }

    fn local_args(&self, ctx: &Ctx) -> Vec<String> {
        // Trimmed paths here too, so local and remote bytes agree.
        self.trims(ctx)
            .iter()
            .map(|(from, to)| format!("--remap-path-prefix={}={to}", from.display()))
            .collect()
    }

    fn captured_args(&self, ctx: &Ctx) -> Vec<String> {
        // Colored as the remote compile is (`colored_args`), where one
        // more flag can say so: rustc takes `--json` many times but
        // `--color` once, so a user's own `--color` stays as it is.
        let mut args = self.local_args(ctx);
        if self.r.error_format_json {
            if self.wanted_color() != Want::Always {
                args.push("--json=diagnostic-rendered-ansi".into());
            }
        } else if !self
            .r
            .remote_args
            .iter()
            .any(|a| matches!(a, Arg::Plain(s) if s == "--color" || s.starts_with("--color=")))
        {
            args.push("--color=always".into());
        }
        args
    }

    fn watch_local(&self) -> bool {
        true
    }

    fn after_local<'a>(
        &'a self,
        ctx: &'a Ctx,
        inv: &'a Invocation,
        event: &'a mut Event,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.record_crates(ctx);
            if event.local.as_deref() == Some(Reason::HostUnit.key()) {
                event.twin = self.twin(ctx, inv).await;
            }
        })
    }
}

impl RustJob {
    /// The remaps (old side local and absolute, new side) this compile
    /// gets here: the user's and trim-paths'. A relocated rustc records
    /// the worker's paths, so it runs there only when these rewrite every
    /// path it records — its working directory and its sources — since a
    /// path remapped there and not here is other bytes.
    fn remaps(&self, site: &RelocationSite<'_>) -> Result<Vec<(PathBuf, String)>, Reason> {
        let mut remaps: Vec<(PathBuf, String)> = self
            .r
            .remote_args
            .iter()
            .filter_map(|a| match a {
                Arg::PrefixMap { old, new, .. } => {
                    Some((placement::absolute(site.cwd, old), new.clone()))
                }
                _ => None,
            })
            .collect();
        // A twin must hash as the host unit built here, which cargo gives
        // no RUSTFLAGS when it builds for a --target: trim-paths, which
        // recast adds here and there alike, covers both.
        remaps.extend(self.trims(site.ctx));
        let covered = |p: &Path| remaps.iter().any(|(from, _)| p.starts_with(from));
        if !covered(site.cwd) {
            return Err(Reason::RustcPathsNotRemapped);
        }
        let sources = site
            .scanned
            .files
            .iter()
            .filter(|f| !is_library(&f.path))
            .map(|f| placement::normalize(&f.path));
        for s in sources {
            if !covered(&s) {
                tracing::debug!("{} is not remapped", s.display());
                return Err(Reason::RustcPathsNotRemapped);
            }
        }
        Ok(remaps)
    }

    /// The workers' compile of a host unit built here: its twin, kept on
    /// the server and recorded beside the local files.
    async fn twin(&self, ctx: &Ctx, inv: &Invocation) -> bool {
        let r = &self.r;
        let local_outputs: Vec<PathBuf> = r
            .outputs
            .iter()
            .map(|o| placement::absolute(&ctx.cwd, &o.path))
            .filter(|p| is_crate_output(p))
            .collect();
        if local_outputs.is_empty() {
            return false;
        }
        // Dependents cargo starts meanwhile wait for it.
        let building = twin::State::Building {
            pid: std::process::id(),
        };
        twin::record(&ctx.cache_dir, &local_outputs, &building);
        let failed = |why: String| {
            tracing::info!("no twin for {}: {why}", r.crate_name);
            twin::record(&ctx.cache_dir, &local_outputs, &twin::State::Failed);
            false
        };
        let Some(triple) = ctx.wrap.worker_platform.as_deref() else {
            return failed("no RECAST_WORKER_PLATFORM".into());
        };
        let naming = rustc::Naming::for_triple(triple);
        let rw = match rustc::parse_with_host(&self.args, &ctx.env.0, &naming) {
            Ok(rw) => rw,
            Err(e) => return failed(e.to_string()),
        };
        let job = RustJob::new(rw, self.args.clone(), Purpose::Twin);
        let planned = match pipeline::plan(ctx, inv, &job, None).await {
            Ok(p) if p.uploading => return failed("its toolchain is still uploading".into()),
            Ok(p) => p,
            Err(super::Flow::Local(e)) => {
                return failed(format!("{:?}", e.local.or(e.fallback).unwrap_or_default()));
            }
            Err(_) => return failed("cannot plan".into()),
        };
        let result = match on_server::execute_kept(&planned.client, &planned.prepared).await {
            Ok(r) => r,
            Err(f) => return failed(f.message),
        };
        let cwd = placement::normalize(&ctx.cwd);
        let files: Vec<TwinFile> = result
            .output_files
            .iter()
            .filter_map(|f| {
                Some(TwinFile {
                    path: placement::absolute(&cwd, &f.path),
                    digest: crate::cas::Digest::from_proto_opt(f.digest.as_ref()).ok()?,
                    executable: f.is_executable,
                })
            })
            .filter(|t| is_crate_output(&t.path))
            .collect();
        twin::record(
            &ctx.cache_dir,
            &local_outputs,
            &twin::State::Built(files.clone()),
        );
        tracing::debug!(crate_name = %r.crate_name, files = files.len(), "twin built");
        true
    }
}

/// The launcher's run-time words: each remap again with its old side as
/// the worker spells it — by the working directory's real path when the
/// old side holds it or lies below it (relative arguments), through the
/// root link (`.r/…` as absolute arguments are written, `$P/.r/…` as
/// rustc joins them) and through `/proc/self/cwd` (environment values) —
/// after the user's own. rustc takes the last match, and an absolute argument's path
/// (`$P/.r/…`) lies below the working directory too: the root link's
/// words come last, each group in the user's order.
fn runtime_remaps(site: &RelocationSite<'_>, remaps: &[(PathBuf, String)]) -> Vec<String> {
    let word = |from: String, to: &str| {
        format!(
            "{}{from}{}",
            layout::quote("--remap-path-prefix="),
            layout::quote(&format!("={to}"))
        )
    };
    let cwd = site.map.remote(site.cwd);
    let mut by_cwd = Vec::new();
    let mut by_root = Vec::new();
    for (from, to) in remaps {
        let remote = site.map.remote(from);
        let spelled = remote.to_string_lossy();
        by_root.push(word(
            format!(
                "\"$P\"{}",
                layout::quote(&format!("/{}{spelled}", layout::ROOT))
            ),
            to,
        ));
        by_root.push(word(layout::quote(&layout::proc_abs(&spelled)), to));
        // A relative path is remapped as written before rustc joins it to
        // the (remapped) working directory.
        by_root.push(word(
            layout::quote(&format!("{}{spelled}", layout::ROOT)),
            to,
        ));
        if let Ok(below) = remote.strip_prefix(&cwd) {
            let rest = below.to_string_lossy();
            let suffix = if rest.is_empty() {
                String::new()
            } else {
                layout::quote(&format!("/{rest}"))
            };
            by_cwd.push(word(format!("\"$P\"{suffix}"), to));
        } else if let Ok(up) = cwd.strip_prefix(&remote) {
            let levels = up.components().count();
            let climb = vec![".."; levels].join("/");
            by_cwd.push(word(format!("\"$(cd {climb} && pwd -P)\""), to));
        }
    }
    by_cwd.extend(by_root);
    by_cwd
}

/// A crate or native library (not a source rustc records).
fn is_library(p: &Path) -> bool {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    [".rlib", ".rmeta", ".so", ".a", ".dylib"]
        .iter()
        .any(|s| name.ends_with(s))
        || name.contains(".so.")
}

/// A library file dependents load (rlib, rmeta, a proc-macro's dylib).
fn is_crate_output(p: &Path) -> bool {
    p.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("lib"))
}

/// The twins standing in for host units in a workers' compile.
#[derive(Default)]
struct Swapped {
    /// Input-root entries for every twin file.
    entries: Vec<crate::cas::tree::Entry>,
    /// Local paths whose twins have other names (`.dylib` → `.so`).
    renamed: BTreeMap<PathBuf, PathBuf>,
    /// Local files the input root must not take from this machine.
    dropped: Vec<PathBuf>,
}

fn swap_twins(cache: &Path, files: &[Seen]) -> Result<Swapped, Reason> {
    let mut out = Swapped::default();
    for f in files {
        if !is_crate_output(&f.path) {
            continue;
        }
        match twin::lookup(cache, &f.path) {
            twin::Lookup::Native => {}
            twin::Lookup::Missing => return Err(Reason::NoTwin),
            twin::Lookup::Twin(t) => {
                out.dropped.push(f.path.clone());
                if let Some(r) = twin::renamed(&f.path, &t)
                    && r.path != f.path
                {
                    out.renamed.insert(f.path.clone(), r.path.clone());
                }
                for tf in t {
                    let rel = tf
                        .path
                        .to_string_lossy()
                        .trim_start_matches('/')
                        .to_string();
                    out.entries
                        .push(crate::cas::tree::Entry::file(rel, tf.digest, tf.executable));
                }
            }
        }
    }
    out.entries.sort_by(|a, b| a.path.cmp(&b.path));
    out.entries.dedup_by(|a, b| a.path == b.path);
    Ok(out)
}

/// The `env!` variables a dep-info says are set, with their values.
fn env_deps(text: Option<&str>) -> Vec<(String, String)> {
    let Some(d) = text.and_then(|t| depfile::parse(t).ok()) else {
        return Vec::new();
    };
    d.env_deps
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())))
        .collect()
}

/// The linker rustc runs: `-C linker` (a path, or a name on `PATH`), else
/// `cc` on `PATH`.
pub(super) fn find_linker(ctx: &Ctx, r: &RustCompile) -> Option<PathBuf> {
    let name = r.linker.as_deref().unwrap_or("cc");
    if name.contains('/') {
        let p = placement::absolute(&ctx.cwd, name);
        return p.is_file().then_some(p);
    }
    ctx.path.iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// Native libraries a link may take (`-L native=`, `-L all=`): the
/// archives and shared objects in those directories (build scripts put
/// theirs in `OUT_DIR`).
fn native_libraries(cwd: &Path, r: &RustCompile) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for s in &r.search_paths {
        if !matches!(s.kind, SearchKind::Native | SearchKind::All) {
            continue;
        }
        let Ok(rd) = std::fs::read_dir(placement::absolute(cwd, &s.path)) else {
            continue;
        };
        let mut found: Vec<PathBuf> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.ends_with(".a") || n.ends_with(".so") || n.contains(".so.")
            })
            .map(|e| e.path())
            .collect();
        found.sort();
        out.extend(found);
    }
    out
}

/// Absolute paths of the `--extern` crate files.
fn extern_files(cwd: &Path, r: &RustCompile) -> Vec<PathBuf> {
    r.externs
        .iter()
        .filter_map(|e| e.path.as_deref())
        .map(|p| placement::absolute(cwd, p))
        .collect()
}

/// Absolute `-L dependency=` (and `all`) directories.
fn dependency_dirs(cwd: &Path, r: &RustCompile) -> Vec<PathBuf> {
    r.search_paths
        .iter()
        .filter(|s| matches!(s.kind, SearchKind::Dependency | SearchKind::All))
        .map(|s| placement::absolute(cwd, &s.path))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(args: &[&str]) -> RustJob {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let r = rustc::parse(&args, &Default::default()).unwrap();
        RustJob::new(r, args, Purpose::Compile)
    }

    fn rendered(j: &RustJob) -> Vec<String> {
        crate::invocation::render_all(&j.colored_args(), &|p| p.to_string())
    }

    #[test]
    fn text_diagnostics_are_colored_remotely_and_kept_as_the_user_asked() {
        let base = ["--crate-name", "a", "--crate-type", "lib", "a.rs"];
        let j = job(&base);
        assert_eq!(rendered(&j).last().unwrap(), "--color=always");
        assert_eq!(j.wanted_color(), Want::IfTerminal);
        let mut never = base.to_vec();
        never.extend(["--color", "never"]);
        let j = job(&never);
        assert!(!rendered(&j).iter().any(|a| a == "never"));
        assert_eq!(j.wanted_color(), Want::Never);
        assert_eq!(
            j.color(),
            ColorPolicy::Forced {
                want: Want::Never,
                encoding: Encoding::Raw
            }
        );
    }

    #[test]
    fn json_diagnostics_are_rendered_with_styles_remotely() {
        let j = job(&[
            "--crate-name",
            "a",
            "--crate-type",
            "lib",
            "--error-format=json",
            "--json=artifacts",
            "a.rs",
        ]);
        assert!(rendered(&j).contains(&"--json=diagnostic-rendered-ansi,artifacts".to_string()));
        assert_eq!(j.wanted_color(), Want::Never);
        let cargo = job(&[
            "--crate-name",
            "a",
            "--crate-type",
            "lib",
            "--error-format=json",
            "--json=diagnostic-rendered-ansi,artifacts,future-incompat",
            "a.rs",
        ]);
        assert!(
            rendered(&cargo)
                .contains(&"--json=diagnostic-rendered-ansi,artifacts,future-incompat".to_string())
        );
        assert_eq!(cargo.wanted_color(), Want::Always);
    }
}
