//! The one pipeline every wrapped compile goes through, whatever its
//! family:
//!
//! ```text
//! parse (family) ─► hit path (key: compiler, arguments, environment, server)
//!   ─► toolchains (local index; the registry's for foreign workers)
//!   ─► platform ─► server (capabilities, probe, toolchain upload once)
//!   ─► scan (family's command, depcache) ─► action (family's spec + prepare)
//!   ─► execute or cache-only ─► outputs verified and landed ─► replay
//!   └─ anything remote that fails ─► the compile runs here
//! ```
//!
//! A moved project root whose outputs name it runs again unmoved, and is
//! remembered; a remote compile error is confirmed by a local compile
//! unless `RECAST_CONFIRM_ERRORS=0`.

use std::path::PathBuf;

use super::color;
use super::depcache::{self, Mark};
use super::family::{self, Job, Reason, ScanSpec, Scanned, ToolRequest};
use super::layout::Layout;
use super::on_server::{self, Failure, Prepared};
use super::prepare::{self, Move};
use super::stats::Event;
use super::tool::{self, Tool};
use super::why::Cause;
use super::{Ctx, Flow, Invocation, here, process, publish, scan, workers};
use crate::action::Features;
use crate::cas::Digest;
use crate::config::Mode;
use crate::remote::Client;
use crate::toolchain::bundle::Bundle;
use crate::toolchain::local::{self as toolchain_local, Request};

/// Runs `inv` through the pipeline to its end: replayed, or run here.
pub async fn run(ctx: &Ctx, inv: &Invocation) -> Ending {
    let job = match family::driver(inv.family).parse(ctx, inv) {
        Ok(j) => j,
        Err(reason) => {
            tracing::debug!("local: {reason}");
            return Ending::Exec(Event::local(reason));
        }
    };
    let flow = remote_or_local(ctx, inv, job.as_ref()).await;
    finish(ctx, inv, job.as_ref(), flow).await
}

/// How the wrapper process ends.
pub enum Ending {
    /// Replay these streams and exit with `code`.
    Replay {
        stdout: Vec<u8>,
        stderr: Vec<u8>,
        code: i32,
        event: Event,
    },
    /// Replace this process with the compiler, as without recast.
    Exec(Event),
}

/// The remote side, up to a flow: done there, or to run here.
async fn remote_or_local(ctx: &Ctx, inv: &Invocation, job: &dyn Job) -> Flow {
    let fast_key = fast_key(ctx, inv, job);
    if let Some(flow) = fast_hit(ctx, job, &fast_key).await {
        return flow;
    }
    let mut planned = match plan(ctx, inv, job, Some(&fast_key)).await {
        Ok(p) => p,
        Err(flow) => return flow,
    };
    let mut flow = run_planned(ctx, inv, job, &planned, &fast_key).await;
    if let Flow::Location = flow {
        // The moved compile saw where it ran: never move it again.
        depcache::mark(&ctx.cache_dir, &fast_key, Mark::Located);
        planned = match replan_unmoved(ctx, inv, job, planned) {
            Ok(p) => p,
            Err(reason) => return Flow::local(reason),
        };
        flow = run_planned(ctx, inv, job, &planned, &fast_key).await;
    }
    if let Flow::Done { event, .. } = &mut flow {
        event.registry = planned.registry;
        event.swaps = planned.swaps;
    }
    flow
}

/// The action on the server, or from the cache alone in cache-only mode.
async fn run_planned(
    ctx: &Ctx,
    inv: &Invocation,
    job: &dyn Job,
    p: &Planned,
    key: &Digest,
) -> Flow {
    if ctx.wrap.mode == Mode::CacheOnly {
        here::cache_only(ctx, inv, job, p, key, Reason::CacheMiss).await
    } else if p.uploading {
        // The server lacks the toolchain for now: a hit, else compiled
        // here with its result kept and published, so the next build hits.
        here::cache_only(ctx, inv, job, p, key, Reason::ToolchainUploading).await
    } else if job.links() && ctx.publishes_later(&p.client) {
        // Across a network, a linked program's megabytes cost more to
        // fetch than to compile, and its result goes up while the build
        // goes on: a hit from the server, else compiled here.
        here::cache_only(ctx, inv, job, p, key, Reason::LinksHere).await
    } else {
        execute(ctx, job, p, key).await
    }
}

/// After the remote side: a local run where it was decided, a remote
/// failure confirmed here, colors as the user would see them.
async fn finish(ctx: &Ctx, inv: &Invocation, job: &dyn Job, flow: Flow) -> Ending {
    match flow {
        Flow::Done {
            stderr,
            code,
            event,
            ..
        } if code != 0 && (ctx.wrap.confirm_errors || job.rerun_failures()) => {
            confirm(ctx, inv, job, code, &stderr, event).await
        }
        Flow::Done {
            stdout,
            stderr,
            code,
            event,
        }
        | Flow::Ran {
            stdout,
            stderr,
            code,
            event,
        } => {
            let terminal = color::terminal_colors(ctx.var("TERM"));
            let policy = job.color();
            Ending::Replay {
                stdout: policy.replay(stdout, terminal),
                stderr: policy.replay(stderr, terminal),
                code,
                event,
            }
        }
        // Never left standing by `remote_or_local`: an unmoved action
        // cannot name the moved root.
        Flow::Location => local_end(ctx, inv, job, Event::fallback(Cause::LocationLeak)).await,
        Flow::Local(event) => local_end(ctx, inv, job, event).await,
    }
}

/// The compile runs here: in place of this process, or watched to its
/// end when the job keeps records of local compiles.
async fn local_end(ctx: &Ctx, inv: &Invocation, job: &dyn Job, mut event: Event) -> Ending {
    if !job.watch_local() {
        return Ending::Exec(event);
    }
    let code = here(ctx, inv, job, &mut event).await;
    Ending::Replay {
        stdout: Vec::new(),
        stderr: Vec::new(),
        code,
        event,
    }
}

/// Runs the compile here and waits; after a success the job's records.
async fn here(ctx: &Ctx, inv: &Invocation, job: &dyn Job, event: &mut Event) -> i32 {
    let code = process::run(inv, &job.local_args(ctx));
    if code == 0 {
        job.after_local(ctx, inv, event).await;
    }
    code
}

/// [`here`], with the streams captured (colored as the remote compile
/// would, [`Job::captured_args`]) for a result the cache keeps.
pub(super) async fn here_captured(
    ctx: &Ctx,
    inv: &Invocation,
    job: &dyn Job,
    event: &mut Event,
) -> (i32, Vec<u8>, Vec<u8>) {
    let (code, stdout, stderr) = process::run_captured(inv, &job.captured_args(ctx));
    if code == 0 {
        job.after_local(ctx, inv, event).await;
    }
    (code, stdout, stderr)
}

/// A remote compile failed: the same compile here decides. Its streams go
/// straight to the user; a local success is a false remote failure,
/// counted and written to the warnings log with the action's digest.
async fn confirm(
    ctx: &Ctx,
    inv: &Invocation,
    job: &dyn Job,
    remote_code: i32,
    remote_stderr: &[u8],
    mut event: Event,
) -> Ending {
    let action = event.action.clone().unwrap_or_default();
    let code = here(ctx, inv, job, &mut event).await;
    if code == 0 {
        event.failed = false;
        event.false_failure = true;
        let first = String::from_utf8_lossy(remote_stderr)
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default()
            .to_string();
        super::log::warn(
            &ctx.cache_dir,
            &format!(
                "{} {}: failed remotely (exit {remote_code}, action {action}: {first}) but compiled here; the local result was kept. Please report it with `RECAST_LOG=trace`.",
                inv.compiler.display(),
                inv.args
                    .iter()
                    .map(|a| a.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        );
    }
    Ending::Replay {
        stdout: Vec::new(),
        stderr: Vec::new(),
        code,
        event,
    }
}

/// A remote compile, ready to send.
pub struct Planned {
    pub client: Client,
    pub prepared: Prepared,
    /// Files whose stamps stand for the toolchains (the hit path's check).
    pub stamped: Vec<PathBuf>,
    pub scanned: Scanned,
    pub tools: Vec<Tool>,
    pub spec: super::family::ActionSpec,
    pub platform: Vec<(String, String)>,
    pub features: Features,
    pub layout: Layout,
    pub registry: bool,
    pub swaps: u64,
    /// A relocated or namespaced action's rooted form.
    pub rooted_form: Option<RootedForm>,
    /// A namespaced action's launcher.
    pub launcher: Option<Tool>,
    /// The compile, when it already ran here ([`here::compile_first`]).
    pub compiled: Option<here::Compiled>,
    /// A toolchain is still going up in the background: the compile runs
    /// here, cache-only, meanwhile.
    pub uploading: bool,
}

impl Planned {
    /// The compile's action, then its rooted form if it has one.
    fn actions(&self) -> impl Iterator<Item = &Prepared> {
        std::iter::once(&self.prepared).chain(self.rooted_form.as_ref().map(|t| &t.prepared))
    }
}

/// The same compile as a client of a rooted server builds it (the
/// toolchain unrelocated, the command rooted). Both give a local
/// compile's bytes, so a relocated compile looks up the rooted form's digest
/// after its own and publishes its result there: clients of either
/// layout over one action cache share their hits.
pub struct RootedForm {
    tools: Vec<Tool>,
    spec: super::family::ActionSpec,
    pub(super) prepared: Prepared,
}

impl RootedForm {
    /// The rooted form of a relocated action over `tools` (unrelocated); `None`
    /// where the compile has no rooted form.
    fn new(
        site: &prepare::Site<'_>,
        tools: Vec<Tool>,
        scanned: &Scanned,
        job: &dyn Job,
    ) -> Option<RootedForm> {
        if tools.is_empty() {
            return None;
        }
        let spec = job.action(site.ctx, scanned, &tools).ok()?;
        let prepared = prepare::build(site, &tools, scanned, &spec, job).ok()?;
        Some(RootedForm {
            tools,
            spec,
            prepared,
        })
    }

    /// The rooted form again, for the same compile with the project root unmoved.
    fn unmoved(
        self,
        site: &prepare::Site<'_>,
        scanned: &Scanned,
        job: &dyn Job,
    ) -> Option<RootedForm> {
        let prepared = prepare::build(site, &self.tools, scanned, &self.spec, job).ok()?;
        Some(RootedForm { prepared, ..self })
    }
}

/// Whether a toolchain of `tools` is still going up to `client`'s server
/// in the background (each is sent, or its upload started, if missing).
async fn toolchains_uploading(ctx: &Ctx, client: &Client, tools: &[Tool]) -> Result<bool, Flow> {
    let mut uploading = false;
    for t in tools {
        if let Some(bundle) = t.bundle() {
            uploading |= super::upload::ensure(ctx, client, bundle).await?
                == super::upload::Toolchain::Uploading;
        }
    }
    Ok(uploading)
}

/// Everything up to the action: toolchains, platform, server, scan,
/// action. `Err` is the flow to take instead: once the compile ran here
/// ([`here::compile_first`]), always its result.
pub async fn plan(
    ctx: &Ctx,
    inv: &Invocation,
    job: &dyn Job,
    fast_key: Option<&Digest>,
) -> Result<Planned, Flow> {
    let mut compiled = None;
    match plan_with(ctx, inv, job, fast_key, &mut compiled).await {
        Ok(mut p) => {
            p.compiled = compiled;
            Ok(p)
        }
        Err(flow) => Err(compiled.map_or(flow, here::Compiled::ran)),
    }
}

async fn plan_with(
    ctx: &Ctx,
    inv: &Invocation,
    job: &dyn Job,
    fast_key: Option<&Digest>,
    compiled: &mut Option<here::Compiled>,
) -> Result<Planned, Flow> {
    let requests = job.toolchains(ctx, inv).map_err(Flow::local)?;
    let (mut tools, toolchain_root) = toolchains(ctx, &requests).await?;
    let probed = tools[0].manifest().identity.family;
    if probed != inv.family {
        tracing::info!(
            "{} was decided {} but its toolchain probes as {probed}",
            inv.compiler.display(),
            inv.family
        );
        return Err(Flow::local(Reason::FamilyChanged));
    }
    let foreign = matches!(tools[0], Tool::Registry { .. });
    job.placed(foreign).map_err(Flow::local)?;
    let platform = ctx.platform_of(&tools[0]).map_err(|e| {
        tracing::info!("{e:#}");
        Flow::local(Reason::Platform)
    })?;
    let (client, features, mut layout) = server(ctx, &tools[0], &platform).await?;
    let mut rooted = Vec::new();
    // A compile that cannot run from a plain directory runs there rooted,
    // in a user namespace, where the workers can make one.
    let mut launcher: Option<Tool> = None;
    if layout == Layout::Relocated {
        let unrelocatable =
            fast_key.is_some_and(|k| depcache::is_marked(&ctx.cache_dir, k, Mark::Unrelocatable));
        let moved = match unrelocatable {
            true => Err(Reason::RelocatedLeak),
            false => relocated(ctx, &client, &tools).await,
        };
        match moved {
            Ok(moved) => rooted = std::mem::replace(&mut tools, moved),
            Err(reason) => {
                launcher = Some(
                    namespaced(ctx, &client, &tools, &platform, features)
                        .await
                        .ok_or(Flow::local(reason))?,
                );
                layout = Layout::Namespaced;
                rooted = tools.clone();
            }
        }
    }
    let mut uploading =
        ctx.wrap.mode == Mode::Remote && toolchains_uploading(ctx, &client, &tools).await?;
    let scan = job.scan(ctx).map_err(Flow::local)?;
    // Not for a twin (planned with no hit-path key): it is not this compile.
    let first = match fast_key {
        Some(_) => here::compile_first(ctx, inv, job, &scan, toolchain_root, uploading).await?,
        None => None,
    };
    let scanned = match first {
        Some((scanned, run)) => {
            *compiled = Some(run);
            scanned
        }
        None => scan_inputs(ctx, inv, job, scan, toolchain_root).await?,
    };
    let mut spec = job.action(ctx, &scanned, &tools).map_err(Flow::local)?;
    // A compile that expands `__FILE__` to a path in the project is not
    // moved at all (known from the scan), rather than moved, run, found to
    // name the moved root, and run again.
    let allowed = if scanned.sees_location
        || fast_key.is_none_or(|k| depcache::is_marked(&ctx.cache_dir, k, Mark::Located))
    {
        Move::Never
    } else {
        Move::Allowed
    };
    let built = prepare::build(
        &site(ctx, inv, &platform, features, allowed, layout).with(launcher.as_ref()),
        &tools,
        &scanned,
        &spec,
        job,
    );
    let prepared = match built {
        Ok(p) => p,
        // The job cannot be relocated (rustc recording paths no remap
        // covers): rooted in a namespace, with the unrelocated toolchains.
        Err(reason @ (Reason::RustcPathsNotRemapped | Reason::NotRelocatable))
            if layout == Layout::Relocated =>
        {
            let Some(l) = namespaced(ctx, &client, &rooted, &platform, features).await else {
                return Err(Flow::local(reason));
            };
            tools = rooted.clone();
            if ctx.wrap.mode == Mode::Remote {
                uploading |= toolchains_uploading(ctx, &client, &tools).await?;
            }
            spec = job.action(ctx, &scanned, &tools).map_err(Flow::local)?;
            layout = Layout::Namespaced;
            launcher = Some(l);
            prepare::build(
                &site(ctx, inv, &platform, features, allowed, layout).with(launcher.as_ref()),
                &tools,
                &scanned,
                &spec,
                job,
            )
            .map_err(Flow::local)?
        }
        Err(reason) => return Err(Flow::local(reason)),
    };
    let mut stamped: Vec<PathBuf> = Vec::new();
    for (r, t) in requests.iter().zip(&tools) {
        stamped.push(r.compiler.clone());
        stamped.extend(tool::program_paths(t));
    }
    stamped.sort();
    stamped.dedup();
    let swaps = spec.dropped.len() as u64;
    let rooted_form = RootedForm::new(
        &site(ctx, inv, &platform, features, allowed, Layout::Rooted),
        rooted,
        &scanned,
        job,
    );
    Ok(Planned {
        client,
        prepared,
        stamped,
        scanned,
        tools,
        spec,
        platform,
        features,
        layout,
        registry: foreign,
        swaps,
        rooted_form,
        launcher,
        compiled: None,
        uploading,
    })
}

/// Each requested toolchain packaged and made fit for the workers (this
/// machine's, or its twin from the registry), with the first one's root.
async fn toolchains(ctx: &Ctx, requests: &[ToolRequest]) -> Result<(Vec<Tool>, Digest), Flow> {
    let mut bundles = Vec::with_capacity(requests.len());
    for r in requests {
        bundles.push(package(ctx, r).await.map_err(|e| {
            tracing::info!("cannot package {}: {e:#}", r.compiler.display());
            Flow::local(if bundles.is_empty() {
                Reason::Toolchain
            } else {
                Reason::LinksNoLinker
            })
        })?);
    }
    let toolchain_root = bundles[0].manifest.root;
    let mut tools = Vec::with_capacity(bundles.len());
    for b in bundles {
        tools.push(tool::for_workers(ctx, b).await?);
    }
    Ok((tools, toolchain_root))
}

/// The family's scan, run on a blocking thread: the compile's inputs.
async fn scan_inputs(
    ctx: &Ctx,
    inv: &Invocation,
    job: &dyn Job,
    spec: ScanSpec,
    toolchain_root: Digest,
) -> Result<Scanned, Flow> {
    let (cache, cwd, inv, env, root) = (
        ctx.cache_dir.clone(),
        ctx.cwd.clone(),
        inv.clone(),
        job.env().to_vec(),
        ctx.project_root(),
    );
    match tokio::task::spawn_blocking(move || {
        scan::run(
            &cache,
            &cwd,
            &inv,
            &spec,
            &toolchain_root,
            &env,
            root.as_deref(),
        )
    })
    .await
    {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(reason)) => Err(Flow::local(reason)),
        Err(e) => Err(Flow::fallback(Cause::Internal, e)),
    }
}

/// The toolchains made to run from a plain directory (`toolchain::relocate`);
/// `Err`: they cannot be (a registry's, or no launcher here).
async fn relocated(ctx: &Ctx, client: &Client, tools: &[Tool]) -> Result<Vec<Tool>, Reason> {
    // One `.r-ld` link serves every program of the action.
    let loader = tools[0].manifest().interpreter.clone();
    if tools.iter().any(|t| t.manifest().interpreter != loader) {
        return Err(Reason::NotRelocatable);
    }
    let mut out = Vec::with_capacity(tools.len());
    for t in tools {
        let bundle = match t {
            Tool::Local(bundle) => bundle,
            Tool::Registry { manifest, .. } => {
                out.push(tool::relocated_registry(client, (**manifest).clone()).await?);
                continue;
            }
        };
        let shell = std::path::Path::new(super::layout::SHELL);
        match crate::toolchain::relocate::relocate(&ctx.cache_dir, bundle, shell) {
            Ok(b) => out.push(Tool::Local(Box::new(b))),
            Err(e) => {
                tracing::info!("cannot relocate {}: {e}", bundle.manifest.name);
                return Err(Reason::NotRelocatable);
            }
        }
    }
    Ok(out)
}

/// The launcher for a namespaced action over `tools` (this machine's: a
/// registry toolchain's files may not agree with the launcher's), when
/// this machine has bubblewrap and the server's workers can start it in a
/// user namespace ([`workers::namespaces`]).
async fn namespaced(
    ctx: &Ctx,
    client: &Client,
    tools: &[Tool],
    platform: &[(String, String)],
    features: Features,
) -> Option<Tool> {
    if tools.iter().any(|t| t.bundle().is_none()) {
        return None;
    }
    let bwrap = std::path::Path::new(super::layout::BWRAP);
    let cache = ctx.cache_dir.clone();
    let launcher =
        tokio::task::spawn_blocking(move || crate::toolchain::relocate::launcher(&cache, bwrap))
            .await
            .ok()?
            .map_err(|e| tracing::info!("no launcher for namespaced actions: {e}"))
            .ok()?;
    if !workers::namespaces(&ctx.cache_dir, client, &launcher, platform, features).await {
        return None;
    }
    let bundle = launcher
        .bundle(tools[0].manifest())
        .map_err(|e| tracing::info!("no launcher for namespaced actions: {e}"))
        .ok()?;
    Some(Tool::Local(Box::new(bundle)))
}

/// The same action with the project root where it is.
fn replan_unmoved(
    ctx: &Ctx,
    inv: &Invocation,
    job: &dyn Job,
    mut p: Planned,
) -> Result<Planned, Reason> {
    let here =
        site(ctx, inv, &p.platform, p.features, Move::Never, p.layout).with(p.launcher.as_ref());
    p.prepared = prepare::build(&here, &p.tools, &p.scanned, &p.spec, job)?;
    let rooted = site(
        ctx,
        inv,
        &p.platform,
        p.features,
        Move::Never,
        Layout::Rooted,
    );
    p.rooted_form = p
        .rooted_form
        .take()
        .and_then(|t| t.unmoved(&rooted, &p.scanned, job));
    Ok(p)
}

/// Where an action is built for.
pub(super) fn site<'a>(
    ctx: &'a Ctx,
    inv: &'a Invocation,
    platform: &'a [(String, String)],
    features: Features,
    allowed: Move,
    layout: Layout,
) -> prepare::Site<'a> {
    prepare::Site {
        ctx,
        inv,
        cwd: &ctx.cwd,
        project_root: ctx.project_root(),
        platform,
        features,
        allowed,
        layout,
        launcher: None,
    }
}

/// The toolchain of one request, from the local index when unchanged.
async fn package(ctx: &Ctx, r: &ToolRequest) -> anyhow::Result<Bundle> {
    match package_with(ctx, r, r.targets.clone()).await {
        Err(_) if r.targets_optional && !r.targets.is_empty() => {
            package_with(ctx, r, Vec::new()).await
        }
        other => other,
    }
}

async fn package_with(ctx: &Ctx, r: &ToolRequest, targets: Vec<String>) -> anyhow::Result<Bundle> {
    let req = Request {
        compiler: r.compiler.clone(),
        targets,
        sysroot: None,
        linking: r.linking,
        path: ctx.path.clone(),
        ld_library_path: ctx
            .var("LD_LIBRARY_PATH")
            .map(|p| std::env::split_paths(p).collect())
            .unwrap_or_default(),
    };
    let cache = ctx.cache_dir.join("toolchains");
    let resolved =
        tokio::task::spawn_blocking(move || toolchain_local::resolve(&cache, &req)).await??;
    Ok(resolved.bundle)
}

/// The server, ready for this toolchain: connected, its features known,
/// and the layout its workers need (`workers`: rooted where they make the
/// input root `/`, relocated elsewhere). `Err` is the flow to take instead.
pub async fn server(
    ctx: &Ctx,
    tool: &Tool,
    platform: &[(String, String)],
) -> Result<(Client, Features, Layout), Flow> {
    let client = match ctx.client().await {
        Ok(c) => c.clone(),
        Err(e) => return Err(Flow::fallback(Cause::Unreachable, format!("{e:#}"))),
    };
    let caps = client.capabilities().await.map_err(|e| {
        let f = Failure::of(&e);
        Flow::fallback(f.cause, f.message)
    })?;
    let features = Features {
        output_paths: caps.supports_output_paths(),
        action_platform: caps.supports_action_platform(),
    };
    if ctx.wrap.mode == Mode::Remote {
        if !caps.exec_enabled {
            return Err(Flow::fallback(
                Cause::NoExecution,
                format!("{} offers no execution", client.url()),
            ));
        }
        return match workers::layout(&ctx.cache_dir, &client, tool, platform, features).await {
            Ok(layout) => Ok((client, features, layout)),
            Err(f) => Err(Flow::fallback(f.cause, f.message)),
        };
    }
    // Cache-only: no worker runs anything; the layout a probe found
    // before keeps the keys those of the server's remote compiles.
    let layout = workers::known_layout(&ctx.cache_dir, &client, platform).unwrap_or(Layout::Rooted);
    Ok((client, features, layout))
}

/// The key of the hit path: everything that decides the action digest
/// and is not checked by stat (the compiler's identity is: `Fast::tools`).
/// Whether stderr is a terminal is not in it (see `color`).
fn fast_key(ctx: &Ctx, inv: &Invocation, job: &dyn Job) -> Digest {
    let mut parts: Vec<Vec<u8>> = vec![
        // Another recast may build another action for the same compile.
        env!("CARGO_PKG_VERSION").as_bytes().to_vec(),
        job.kind().as_bytes().to_vec(),
        inv.compiler.as_os_str().as_encoded_bytes().to_vec(),
        inv.argv0.as_encoded_bytes().to_vec(),
        ctx.cwd.as_os_str().as_encoded_bytes().to_vec(),
        ctx.server_key().into_bytes(),
        format!("{:?}", ctx.project_root()).into_bytes(),
    ];
    parts.extend(inv.args.iter().map(|a| a.as_encoded_bytes().to_vec()));
    parts.extend(
        job.env()
            .iter()
            .map(|(k, v)| format!("{k}={v}").into_bytes()),
    );
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    depcache::key(&refs)
}

/// Answers a compile seen before from the action cache, skipping the
/// toolchain, the scan and the input root; `None`: take the slow path.
async fn fast_hit(ctx: &Ctx, job: &dyn Job, key: &Digest) -> Option<Flow> {
    let fast = depcache::read_fast(&ctx.cache_dir, key)?;
    let client = match ctx.client().await {
        Ok(c) => c,
        Err(e) => return Some(Flow::fallback(Cause::Unreachable, format!("{e:#}"))),
    };
    let landing = match &fast.landing {
        Some(l) => l.clone(),
        None => on_server::Landing::beside(&ctx.cwd, &fast.outputs),
    };
    // The lookup goes out before the entry's files are checked, so a far
    // server's round trip hides their stat calls; its answer is used only
    // if every file is unchanged.
    let asking = on_server::cached(client, &fast.action, &fast.outputs, on_server::Ask::Both);
    let mut asking = std::pin::pin!(asking);
    let early = sent(&mut asking).await;
    if !fast.unchanged() {
        return None;
    }
    let asked = match early {
        Some(ended) => ended,
        None => asking.await,
    };
    let landed = match asked {
        Ok(Some((result, local))) => {
            on_server::land_cached(
                client,
                &fast.action,
                &result,
                local,
                &fast.outputs,
                &landing,
            )
            .await
        }
        Ok(None) => Ok(None),
        Err(e) => Err(e),
    };
    let f = match landed {
        Ok(Some(f)) if f.code == 0 => f,
        Ok(_) => return None,
        Err(e) if e.cause == Cause::LocationLeak => {
            depcache::mark(&ctx.cache_dir, key, Mark::Located);
            return None;
        }
        Err(e) if e.cause == Cause::RelocatedLeak => {
            depcache::mark(&ctx.cache_dir, key, Mark::Unrelocatable);
            return None;
        }
        Err(e) => return Some(Flow::fallback(e.cause, e.message)),
    };
    if let Err(e) = job.landed(ctx, fast.depfile.as_deref()) {
        return Some(Flow::fallback(Cause::LocalIo, e));
    }
    tracing::debug!(elapsed = ?ctx.started.elapsed(), "fast hit");
    Some(hit(ctx, f))
}

/// Drives `call` until it waits on its answer (its request written, as far
/// as a few turns of the runtime take it) or ends; `Some`: it ended.
async fn sent<F: Future + Unpin>(call: &mut F) -> Option<F::Output> {
    for _ in 0..8 {
        if let std::task::Poll::Ready(v) = futures::poll!(&mut *call) {
            return Some(v);
        }
        tokio::task::yield_now().await;
    }
    None
}

/// A result from the action cache, its outputs in place.
fn hit(ctx: &Ctx, f: on_server::Finished) -> Flow {
    Flow::Done {
        stdout: f.stdout,
        stderr: f.stderr,
        code: 0,
        event: Event {
            hit: true,
            local_hit: f.local,
            down: f.down,
            saved_ms: f.original.saturating_sub(ctx.started.elapsed()).as_millis() as u64,
            ..Event::default()
        },
    }
}

/// Records a finished compile (`p`'s action, or its rooted form) for
/// the hit path.
pub(super) fn remember(ctx: &Ctx, key: &Digest, p: &Planned, action: &Prepared) {
    let Some(tools) = p
        .stamped
        .iter()
        .map(|t| depcache::stamp(t).map(|s| (t.clone(), s)))
        .collect::<Option<Vec<_>>>()
    else {
        return;
    };
    depcache::store_fast(
        &ctx.cache_dir,
        key,
        &depcache::Fast {
            schema: depcache::SCHEMA,
            action: action.digest,
            outputs: action.outputs.clone(),
            landing: Some(action.landing.clone()),
            files: p.scanned.files.clone(),
            tools,
            depfile: p.scanned.depfile.clone(),
        },
    );
}

/// What landing the outputs means for the job: its records, the hit path.
fn landed(ctx: &Ctx, job: &dyn Job, p: &Planned, key: &Digest) -> Result<(), String> {
    landed_as(ctx, job, p, &p.prepared, key)
}

/// [`landed`], for outputs `action` (`p`'s or its rooted form's) wrote.
fn landed_as(
    ctx: &Ctx,
    job: &dyn Job,
    p: &Planned,
    action: &Prepared,
    key: &Digest,
) -> Result<(), String> {
    job.landed(ctx, p.scanned.depfile.as_deref())?;
    remember(ctx, key, p, action);
    Ok(())
}

/// The compile's result from the action cache, else its rooted form's (outputs
/// landed). `None`: a miss.
pub(super) async fn cached(
    ctx: &Ctx,
    job: &dyn Job,
    p: &Planned,
    key: &Digest,
    ask: on_server::Ask,
) -> Option<Flow> {
    for action in p.actions() {
        match on_server::lookup(&p.client, action, ask).await {
            Ok(Some(f)) if f.code == 0 => {
                if let Err(e) = landed_as(ctx, job, p, action, key) {
                    return Some(Flow::fallback(Cause::LocalIo, e));
                }
                return Some(hit(ctx, f));
            }
            Ok(_) => {}
            Err(f) if f.cause == Cause::LocationLeak => return Some(Flow::Location),
            Err(f) if f.cause == Cause::RelocatedLeak => return Some(unrelocatable(ctx, key, &f)),
            Err(f) => return Some(Flow::fallback(f.cause, f.message)),
        }
    }
    None
}

/// Runs the action on the server (remote mode) and turns the result into
/// a flow: a worker that could not run the toolchain means a local
/// compile, a success lands the outputs and the job's records, and a
/// failure is replayed (or confirmed, in `finish`).
async fn execute(ctx: &Ctx, job: &dyn Job, p: &Planned, key: &Digest) -> Flow {
    // Execute asks the cache itself; a rooted form is asked here, after the
    // compile's own key.
    let looked_up = p.rooted_form.is_some();
    let ask = if looked_up {
        on_server::Ask::Both
    } else {
        on_server::Ask::Here
    };
    if let Some(flow) = cached(ctx, job, p, key, ask).await {
        return flow;
    }
    let finished = match on_server::execute(&p.client, &p.prepared, looked_up).await {
        Ok(f) => f,
        Err(f) if f.cause == Cause::LocationLeak => {
            tracing::debug!("{}", f.message);
            return Flow::Location;
        }
        Err(f) if f.cause == Cause::RelocatedLeak => return unrelocatable(ctx, key, &f),
        Err(f) => return Flow::fallback(f.cause, f.message),
    };
    tracing::trace!(command = ?p.prepared.command, root = %p.prepared.inputs.tree.root, "command");
    tracing::debug!(
        elapsed = ?ctx.started.elapsed(),
        action = %p.prepared.digest,
        cached = finished.cached,
        "executed"
    );
    if finished.code != 0 && on_server::infrastructure(finished.code, &finished.stderr) {
        return Flow::fallback(
            Cause::WorkerFailed,
            format!(
                "the compile failed on the worker with exit code {}: {}",
                finished.code,
                String::from_utf8_lossy(&finished.stderr).trim()
            ),
        );
    }
    if finished.code == 0
        && let Err(e) = landed(ctx, job, p, key)
    {
        return Flow::fallback(Cause::LocalIo, e);
    }
    let (mut up, mut queued) = (finished.up, false);
    if finished.code == 0
        && !finished.cached
        && let Some(form) = &p.rooted_form
    {
        let streams = publish::Compiled {
            by: "recast: a relocated worker's result",
            stdout: &finished.stdout,
            stderr: &finished.stderr,
        };
        let mut event = Event::default();
        publish::publish(
            ctx,
            &p.client,
            &form.prepared,
            key,
            ctx.started,
            streams,
            &mut event,
        )
        .await;
        up += event.up;
        queued = event.queued;
    }
    let elapsed = ctx.started.elapsed();
    Flow::Done {
        stdout: finished.stdout,
        stderr: finished.stderr,
        code: finished.code,
        event: Event {
            remote: !finished.cached,
            hit: finished.cached,
            failed: finished.code != 0,
            queued,
            up,
            down: finished.down,
            saved_ms: if finished.cached {
                finished.original.saturating_sub(elapsed).as_millis() as u64
            } else {
                0
            },
            action: (finished.code != 0).then(|| p.prepared.digest.to_string()),
            ..Event::default()
        },
    }
}

/// A relocated compile whose outputs name its working directory (an
/// environment value it embeds): it runs here, now and on later builds.
fn unrelocatable(ctx: &Ctx, key: &Digest, f: &Failure) -> Flow {
    tracing::info!("{}", f.message);
    depcache::mark(&ctx.cache_dir, key, Mark::Unrelocatable);
    Flow::local(Reason::RelocatedLeak)
}
