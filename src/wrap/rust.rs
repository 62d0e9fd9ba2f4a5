//! rustc through the wrapper (`RUSTC_WRAPPER=recast cargo build`).
//!
//! The scan is rustc's own `--emit=dep-info` run here: every source file
//! (modules, `include!`, `include_str!`), and the environment variables
//! the crate reads with `env!` (`# env-dep:` lines), which join the remote
//! Command. The crates it loads come from the `--extern` files and the
//! records of earlier compiles (`crates`). Every crate type runs remotely:
//! crates that link (bins, build scripts, proc-macros, test harnesses)
//! take the linker rustc runs (`cc`, or `-C linker`) in their bundle, and
//! run here when it cannot be found. Incremental compiles (`-C
//! incremental`, cargo's default for workspace members in dev builds) run
//! here: `CARGO_INCREMENTAL=0` sends them remote too.
//!
//! Paths stay as they are (rustc records its working directory in every
//! rlib), so outputs are the bytes a local compile writes — unless
//! `RECAST_TRIM_PATHS=1` maps the project root to one path, so checkouts
//! share hits; rustc's JSON
//! diagnostics and artifact notifications are relayed as they are.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::depcache::{self, Seen};
use super::paths::{self, MAPPED_ROOT, PathMap};
use super::remote;
use super::remote::{Landing, Prepared};
use super::stats::Event;
use super::tool::{self, Tool};
use super::twin::{self, TwinFile};
use super::{Ctx, Flow, Invocation, crates, flow, inputs, local};
use crate::action::{CommandSpec, Features, OutputSpec};
use crate::cas::Digest;
use crate::config::Mode;
use crate::invocation::rustc::{self, EnvValue, InputKind, RustCompile, SearchKind, Target};
use crate::invocation::{args, depfile, render_all};

/// What the scan found.
struct Scanned {
    files: Vec<Seen>,
    /// `env!` variables the crate reads that are set.
    env_deps: Vec<(String, String)>,
}

pub async fn run(ctx: &Ctx, inv: &Invocation) -> Flow {
    let Some(raw) = inv
        .args
        .iter()
        .map(|a| a.to_str().map(str::to_string))
        .collect::<Option<Vec<_>>>()
    else {
        return Flow::local("non_utf8_argument");
    };
    let cwd = ctx.cwd.clone();
    let args = match args::expand_rustc(&raw, &|f| std::fs::read_to_string(cwd.join(f))) {
        Ok(a) => a,
        Err(e) => {
            tracing::debug!("argfile: {e}");
            return Flow::local("response_file");
        }
    };
    let r = match rustc::parse(&args, &ctx.env.0) {
        Ok(r) => r,
        Err(l) => {
            tracing::debug!("local: {l}");
            return Flow::local(l.reason.as_str());
        }
    };
    match remote_or_local(ctx, inv, &r).await {
        // Run here, but keep the process: the crate graph record follows.
        Flow::Local(mut event) => {
            let host_unit = event.local.as_deref() == Some("host_unit");
            // Trimmed paths here too, so local and remote bytes agree.
            let mut here = inv.clone();
            here.args.extend(trim_flag(ctx, &r).map(Into::into));
            match run_here(ctx, &here, &r, event.clone()) {
                Flow::Ran { code: 0, .. } if host_unit => {
                    event.twin = twin(ctx, inv, &r, &args).await;
                    Flow::Ran { code: 0, event }
                }
                ran => ran,
            }
        }
        done => done,
    }
}

/// Compiles here and records what the crate was built from.
fn run_here(ctx: &Ctx, inv: &Invocation, r: &RustCompile, event: Event) -> Flow {
    let code = match local::run(inv) {
        Ok(s) => s.code().unwrap_or(255),
        Err(e) => {
            eprintln!("recast: cannot run {}: {e}", inv.compiler.display());
            127
        }
    };
    if code == 0 {
        record_crates(ctx, r);
    }
    Flow::Ran { code, event }
}

/// What a remote rustc is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    /// The user's compile: its outputs land here.
    Compile,
    /// A host unit's twin for the workers' platform: outputs stay there.
    Twin,
}

/// A remote rustc, ready to send.
struct Planned {
    client: crate::remote::Client,
    prepared: Prepared,
    /// Stamped files that stand for the toolchains (the hit path's check).
    stamped: Vec<PathBuf>,
    scanned: Scanned,
    registry: bool,
    swaps: u64,
}

async fn remote_or_local(ctx: &Ctx, inv: &Invocation, r: &RustCompile) -> Flow {
    let env = observed_env(r);
    let kind = if ctx.wrap.trim_paths {
        "rustc-fast-trim"
    } else {
        "rustc-fast"
    };
    let fast_key = flow::fast_key(ctx, inv, kind, &env);
    if let Some(flow) = flow::fast_hit(ctx, &fast_key, &|_| {
        record_crates(ctx, r);
        Ok(())
    })
    .await
    {
        return flow;
    }
    let planned = match plan(ctx, inv, r, Purpose::Compile).await {
        Ok(p) => p,
        Err(flow) => return flow,
    };
    let landed = || {
        record_crates(ctx, r);
        flow::remember(
            ctx,
            &fast_key,
            planned.stamped.clone(),
            &planned.prepared,
            &planned.scanned.files,
            None,
        );
        Ok(())
    };
    let (client, prepared) = (&planned.client, &planned.prepared);
    let mut flow = if ctx.wrap.mode == Mode::CacheOnly {
        let mut here = inv.clone();
        here.args.extend(trim_flag(ctx, r).map(Into::into));
        flow::cache_only(ctx, &here, client, prepared, &landed).await
    } else {
        flow::execute(ctx, client, prepared, r.links, &landed).await
    };
    if let Flow::Done { event, .. } = &mut flow {
        event.registry = planned.registry;
        event.swaps = planned.swaps;
    }
    flow
}

/// Everything up to the action: toolchains (the linker's too when the
/// crate links), the server, the scan, the twins in place of host units
/// (workers on another platform), the input root. `Err` is the flow to
/// take instead.
async fn plan(
    ctx: &Ctx,
    inv: &Invocation,
    r: &RustCompile,
    purpose: Purpose,
) -> Result<Planned, Flow> {
    let env = observed_env(r);
    // A crate that links takes the linker rustc runs (`cc`, or -C linker)
    // with everything linking needs: crt files, libc's linker script.
    let linker = match r.links {
        false => None,
        true => Some(find_linker(ctx, r).ok_or_else(|| Flow::local("links_no_linker"))?),
    };
    let targets = match &r.target {
        Some(Target::Triple(t)) => vec![t.clone()],
        _ => Vec::new(),
    };
    // A target whose standard library is not installed here is compiled
    // without one remotely too (a `#![no_core]` crate needs none; any
    // other fails there as it would here).
    let bundle = match flow::toolchain(ctx, &inv.compiler, targets.clone(), r.links).await {
        Ok(b) => Ok(b),
        Err(_) if !targets.is_empty() => {
            flow::toolchain(ctx, &inv.compiler, Vec::new(), r.links).await
        }
        Err(e) => Err(e),
    };
    let bundle = bundle.map_err(|e| {
        tracing::info!("cannot package {}: {e:#}", inv.compiler.display());
        Flow::local("toolchain")
    })?;
    let linker_bundle = match &linker {
        None => None,
        Some(l) => Some(
            flow::toolchain(ctx, l, Vec::new(), true)
                .await
                .map_err(|e| {
                    tracing::info!("cannot package the linker {}: {e:#}", l.display());
                    Flow::local("links_no_linker")
                })?,
        ),
    };
    let toolchain_root = bundle.manifest.root;
    let tool = tool::for_workers(ctx, bundle).await?;
    let foreign = matches!(tool, Tool::Registry { .. });
    match purpose {
        // Without --target, cargo builds for this machine: a host unit,
        // which runs here (and gets a twin, `run`).
        Purpose::Compile if foreign && r.target.is_none() => return Err(Flow::local("host_unit")),
        Purpose::Twin if !foreign => return Err(Flow::local("no_twin_needed")),
        _ => {}
    }
    let linker_tool = match linker_bundle {
        None => None,
        Some(b) => Some(tool::for_workers(ctx, b).await?),
    };
    let platform = flow::platform_of(ctx, &tool).map_err(|e| {
        tracing::info!("{e:#}");
        Flow::local("platform")
    })?;
    let (client, features) = flow::server(ctx, &tool, &platform).await?;
    let scanned = {
        let (cache, cwd) = (ctx.cache_dir.clone(), ctx.cwd.clone());
        let (inv2, r2, root) = (inv.clone(), r.clone(), toolchain_root);
        let env2 = env.clone();
        match tokio::task::spawn_blocking(move || scan(&cache, &cwd, &inv2, &r2, &root, &env2))
            .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(reason)) => return Err(Flow::local(reason)),
            Err(e) => return Err(Flow::fallback("internal", e)),
        }
    };
    let swapped = if foreign {
        swap_twins(&ctx.cache_dir, &scanned.files).map_err(Flow::local)?
    } else {
        Swapped::default()
    };
    let mut tools = vec![&tool];
    tools.extend(linker_tool.as_ref());
    let prepared =
        prepare(ctx, r, &tools, &scanned, &swapped, &platform, features).map_err(Flow::local)?;
    let mut stamped = flow::tools_of(inv, &tool);
    if let (Some(l), Some(t)) = (&linker, &linker_tool) {
        stamped.push(l.clone());
        stamped.extend(tool::program_paths(t));
    }
    Ok(Planned {
        client,
        prepared,
        stamped,
        scanned,
        registry: foreign,
        swaps: swapped.renamed.len() as u64 + swapped.replaced,
    })
}

/// The workers' compile of a host unit built here: its twin, kept on the
/// server and recorded beside the local files.
async fn twin(ctx: &Ctx, inv: &Invocation, r: &RustCompile, args: &[String]) -> bool {
    let local_outputs: Vec<PathBuf> = r
        .outputs
        .iter()
        .map(|o| paths::absolute(&ctx.cwd, &o.path))
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
    let rw = match rustc::parse_with_host(args, &ctx.env.0, &naming) {
        Ok(rw) => rw,
        Err(e) => return failed(e.to_string()),
    };
    let planned = match plan(ctx, inv, &rw, Purpose::Twin).await {
        Ok(p) => p,
        Err(Flow::Local(e)) => {
            return failed(format!("{:?}", e.local.or(e.fallback).unwrap_or_default()));
        }
        Err(_) => return failed("cannot plan".into()),
    };
    let result = match remote::execute_kept(&planned.client, &planned.prepared).await {
        Ok(r) => r,
        Err(f) => return failed(f.message),
    };
    let cwd = paths::normalize(&ctx.cwd);
    let files: Vec<TwinFile> = result
        .output_files
        .iter()
        .filter_map(|f| {
            Some(TwinFile {
                path: paths::absolute(&cwd, &f.path),
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

/// A library file dependents load (rlib, rmeta, a proc-macro's dylib).
fn is_crate_output(p: &Path) -> bool {
    p.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("lib"))
}

/// The twins standing in for host units in a workers' compile.
#[derive(Default)]
struct Swapped {
    /// Local files whose twins sit at the same paths with other bytes.
    replaced: u64,
    /// Input-root entries for every twin file.
    entries: Vec<crate::cas::tree::Entry>,
    /// Local paths whose twins have other names (`.dylib` → `.so`).
    renamed: BTreeMap<PathBuf, PathBuf>,
    /// Local files the input root must not take from this machine.
    dropped: Vec<PathBuf>,
}

fn swap_twins(cache: &Path, files: &[Seen]) -> Result<Swapped, &'static str> {
    let mut out = Swapped::default();
    for f in files {
        if !is_crate_output(&f.path) {
            continue;
        }
        match twin::lookup(cache, &f.path) {
            twin::Lookup::Native => {}
            twin::Lookup::Missing => return Err("no_twin"),
            twin::Lookup::Twin(t) => {
                out.dropped.push(f.path.clone());
                if let Some(r) = twin::renamed(&f.path, &t)
                    && r.path != f.path
                {
                    out.renamed.insert(f.path.clone(), r.path.clone());
                } else {
                    out.replaced += 1;
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

/// Cargo's environment as the compile sees it (values as given).
fn observed_env(r: &RustCompile) -> Vec<(String, String)> {
    r.env
        .iter()
        .map(|(k, v)| {
            let v = match v {
                EnvValue::Plain(v) | EnvValue::Path(v) => v.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

/// The linker rustc runs: `-C linker` (a path, or a name on `PATH`), else
/// `cc` on `PATH`.
fn find_linker(ctx: &Ctx, r: &RustCompile) -> Option<PathBuf> {
    let name = r.linker.as_deref().unwrap_or("cc");
    if name.contains('/') {
        let p = paths::absolute(&ctx.cwd, name);
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
        let Ok(rd) = std::fs::read_dir(paths::absolute(cwd, &s.path)) else {
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
        .map(|p| paths::absolute(cwd, p))
        .collect()
}

/// Absolute `-L dependency=` (and `all`) directories.
fn dependency_dirs(cwd: &Path, r: &RustCompile) -> Vec<PathBuf> {
    r.search_paths
        .iter()
        .filter(|s| matches!(s.kind, SearchKind::Dependency | SearchKind::All))
        .map(|s| paths::absolute(cwd, &s.path))
        .collect()
}

/// After a successful compile: which crate files its libraries were built
/// from, for the compiles that load them.
fn record_crates(ctx: &Ctx, r: &RustCompile) {
    let outputs: Vec<PathBuf> = r
        .outputs
        .iter()
        .map(|o| paths::absolute(&ctx.cwd, &o.path))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("lib"))
        })
        .collect();
    crates::record(&ctx.cache_dir, &outputs, &extern_files(&ctx.cwd, r));
}

/// The scan, from the cache or run here. `Err` is a local reason.
fn scan(
    cache: &Path,
    cwd: &Path,
    inv: &Invocation,
    r: &RustCompile,
    toolchain_root: &Digest,
    env: &[(String, String)],
) -> Result<Scanned, &'static str> {
    // The crate files to load, with their records (they change when a
    // dependency is rebuilt, so they key the scan too).
    let (crate_files, _known) = crates::closure(
        cache,
        &extern_files(cwd, r),
        &dependency_dirs(cwd, r),
        r.links,
    );
    let natives = native_libraries(cwd, r);
    // A crate's own outputs are never its inputs (a directory shipped
    // whole may hold them from an earlier build).
    let own: Vec<PathBuf> = r
        .outputs
        .iter()
        .map(|o| paths::absolute(cwd, &o.path))
        .collect();
    let crate_files: Vec<PathBuf> = crate_files
        .into_iter()
        .filter(|f| !own.contains(f))
        .collect();
    let mut parts: Vec<Vec<u8>> = vec![
        b"rustc".to_vec(),
        toolchain_root.to_string().into_bytes(),
        inv.compiler.as_os_str().as_encoded_bytes().to_vec(),
        cwd.as_os_str().as_encoded_bytes().to_vec(),
    ];
    parts.extend(inv.args.iter().map(|a| a.as_encoded_bytes().to_vec()));
    parts.extend(env.iter().map(|(k, v)| format!("{k}={v}").into_bytes()));
    parts.extend(
        crate_files
            .iter()
            .chain(&natives)
            .map(|p| p.as_os_str().as_encoded_bytes().to_vec()),
    );
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let key = depcache::key(&refs);
    if let Some(e) = depcache::lookup(cache, &key) {
        let env_deps = e
            .depfile
            .as_deref()
            .and_then(|t| depfile::parse(t).ok())
            .map(|d| set_env_deps(&d))
            .unwrap_or_default();
        return Ok(Scanned {
            files: e.files,
            env_deps,
        });
    }

    let since = depcache::now_ns();
    let tmp_dir = cache.join("tmp");
    std::fs::create_dir_all(&tmp_dir).map_err(|_| "scan_failed")?;
    let tmp = tmp_dir.join(format!(
        "scan-{}-{}.d",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let mut sargs = render_all(&r.scan_args, &|p| p.to_string());
    sargs.push(format!("--emit=dep-info={}", tmp.display()));
    let ok = local::capture(inv, &sargs, cwd).map_err(|_| "scan_failed")?;
    let text = std::fs::read_to_string(&tmp);
    let _ = std::fs::remove_file(&tmp);
    if !ok {
        return Err("scan_failed");
    }
    let text = text.map_err(|_| "scan_failed")?;
    let parsed = depfile::parse(&text).map_err(|_| "scan_failed")?;
    let mut spelled = depfile::prerequisites(&parsed);
    // The dep-info lists the file it was asked to write as a target only,
    // but some rustc versions list it as a prerequisite too.
    spelled.retain(|s| paths::absolute(cwd, s) != tmp);
    for f in crate_files.iter().chain(&natives) {
        spelled.push(f.to_string_lossy().into_owned());
    }
    for i in &r.inputs {
        if matches!(i.kind, InputKind::TargetSpec | InputKind::ProfileUse)
            && paths::absolute(cwd, &i.path).is_file()
        {
            spelled.push(i.path.clone());
        }
    }
    let mut files = Vec::with_capacity(spelled.len());
    let mut stable = true;
    let mut seen = std::collections::HashSet::new();
    for s in spelled {
        let abs = paths::absolute(cwd, &s);
        if !seen.insert(abs.clone()) {
            continue;
        }
        let (f, ok) = depcache::see(&abs, since).map_err(|_| "scan_failed")?;
        stable &= ok;
        files.push(Seen { spelled: s, ..f });
    }
    let entry = depcache::Entry {
        schema: depcache::SCHEMA,
        files,
        // Kept for its env-dep lines.
        depfile: Some(text),
    };
    if stable {
        depcache::store(cache, &key, &entry);
    }
    Ok(Scanned {
        files: entry.files,
        env_deps: set_env_deps(&parsed),
    })
}

/// The `env!` variables a dep-info says are set, with their values.
fn set_env_deps(d: &depfile::Depfile) -> Vec<(String, String)> {
    d.env_deps
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())))
        .collect()
}

/// `to` relative to the directory `from` (both absolute, normalized):
/// `../../target/x` when it lies outside.
fn relative_from(from: &Path, to: &Path) -> String {
    let f: Vec<_> = from.components().collect();
    let t: Vec<_> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".to_string(); f.len() - common];
    parts.extend(
        t[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

/// The action. `Err` is a local reason.
#[allow(clippy::too_many_arguments)]
fn prepare(
    ctx: &Ctx,
    r: &RustCompile,
    tools: &[&Tool],
    scanned: &Scanned,
    swapped: &Swapped,
    platform: &[(String, String)],
    features: Features,
) -> Result<Prepared, &'static str> {
    let cwd = paths::normalize(&ctx.cwd);
    let map = trim_map(ctx, r);
    let mut dirs: Vec<PathBuf> = r
        .search_paths
        .iter()
        .map(|s| paths::absolute(&cwd, &s.path))
        .collect();
    dirs.extend(r.out_dir.iter().map(|d| paths::absolute(&cwd, d)));
    dirs.push(cwd.clone());
    let files: Vec<Seen> = scanned
        .files
        .iter()
        .filter(|f| !swapped.dropped.contains(&f.path))
        .cloned()
        .collect();
    let inputs = inputs::build(tools, &files, &swapped.entries, &dirs, &map).map_err(|e| {
        tracing::info!("{e}");
        "input_tree"
    })?;
    let m = tools[0].manifest();
    let mut arguments = vec![format!("/{}", m.entry)];
    arguments.extend(render_all(&r.remote_args, &|p| match swapped
        .renamed
        .get(&paths::absolute(&cwd, p))
    {
        Some(twin) => map.arg(&twin.to_string_lossy()),
        None => map.arg(p),
    }));
    if map.is_mapped() {
        // The same remap a local compile gets (`trim_flag`), seen from
        // where the project sits remotely: equal bytes either way.
        arguments.push(format!("--remap-path-prefix={MAPPED_ROOT}={MAPPED_ROOT}"));
    }
    let mut command_env: BTreeMap<String, String> = m.env.clone();
    // rustc finds the linker (`cc`) and the linker its helpers on PATH.
    let mut path_dirs: Vec<String> = Vec::new();
    for t in tools {
        for d in &t.manifest().path_dirs {
            let d = format!("/{d}");
            if !path_dirs.contains(&d) {
                path_dirs.push(d);
            }
        }
    }
    if !path_dirs.is_empty() {
        command_env.insert("PATH".into(), path_dirs.join(":"));
    }
    // Paths in cargo's variables (CARGO_MANIFEST_DIR, OUT_DIR) move with
    // the project.
    for (k, v) in &r.env {
        let v = match v {
            EnvValue::Plain(v) => v.clone(),
            EnvValue::Path(v) => map.arg(v),
        };
        command_env.insert(k.clone(), v);
    }
    // `env!` variables the dep-info lists with the values seen here;
    // cargo's own are set above already (moved with the project).
    for (k, v) in &scanned.env_deps {
        if !r.env.iter().any(|(name, _)| name == k) {
            command_env.insert(k.clone(), map.arg(v));
        }
    }
    let remote_cwd = map.remote(&cwd);
    let outputs: Vec<String> = r
        .outputs
        .iter()
        .map(|o| relative_from(&remote_cwd, &map.remote(&paths::absolute(&cwd, &o.path))))
        .collect();
    let spec = CommandSpec {
        arguments,
        env: command_env,
        outputs: outputs
            .iter()
            .map(|p| OutputSpec {
                path: p.clone(),
                is_dir: false,
            })
            .collect(),
        working_directory: map.tree_path(&cwd),
        platform: platform.to_vec(),
    };
    let landing = Landing {
        local: r
            .outputs
            .iter()
            .map(|o| paths::absolute(&cwd, &o.path))
            .collect(),
        unmap: map
            .root()
            .map(|root| (MAPPED_ROOT.to_string(), root.to_string_lossy().into_owned())),
    };
    Prepared::new(&spec, features, inputs, landing)
}

/// With `RECAST_TRIM_PATHS`, the project root moves to [`MAPPED_ROOT`].
/// A registry crate compiles in its own directory, outside the project:
/// its project is the one its outputs go to.
fn trim_map(ctx: &Ctx, r: &RustCompile) -> PathMap {
    if !ctx.wrap.trim_paths {
        return PathMap::identity();
    }
    let root = ctx.project_root().or_else(|| {
        let out = r.out_dir.as_deref().or(r.output.as_deref())?;
        paths::find_project_root(&paths::absolute(&ctx.cwd, out), &|p| p.exists())
    });
    match root {
        Some(root) => PathMap::moved(&root),
        None => PathMap::identity(),
    }
}

/// The argument a local compile takes under `RECAST_TRIM_PATHS`.
fn trim_flag(ctx: &Ctx, r: &RustCompile) -> Option<String> {
    trim_map(ctx, r)
        .root()
        .map(|root| format!("--remap-path-prefix={}={MAPPED_ROOT}", root.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_above_the_working_directory_climb_to_them() {
        let cwd = Path::new("/home/u/.cargo/registry/src/idx/serde-1.0.0");
        assert_eq!(
            relative_from(
                cwd,
                Path::new("/home/u/proj/target/debug/deps/libserde-x.rlib")
            ),
            "../../../../../proj/target/debug/deps/libserde-x.rlib"
        );
        assert_eq!(
            relative_from(Path::new("/p"), Path::new("/p/target/a.rlib")),
            "target/a.rlib"
        );
    }
}
