//! The steps every wrapped compile shares, whatever its compiler: the
//! toolchain, the execution platform, the server (connection,
//! capabilities, the chroot probe), the hit path, and running a prepared
//! action to a replayable result. `cc` and `rust` hold what differs: the
//! parser, the scan and the input root.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use super::depcache;
use super::remote::{self, Failure, Prepared};
use super::stats::Event;
use super::tool::Tool;
use super::{Ctx, Flow, Invocation, local, probe};
use crate::action::Features;
use crate::cas::Digest;
use crate::config::Mode;
use crate::platform::{self, Profile};
use crate::remote::Client;
use crate::toolchain::bundle::Bundle;
use crate::toolchain::local::{self as toolchain_local, Request};

/// The toolchain of `compiler` (with the standard libraries of `targets`,
/// and what linking needs when `linking`), from the local index when
/// unchanged.
pub async fn toolchain(
    ctx: &Ctx,
    compiler: &std::path::Path,
    targets: Vec<String>,
    linking: bool,
) -> anyhow::Result<Bundle> {
    let req = Request {
        compiler: compiler.to_path_buf(),
        targets,
        sysroot: None,
        linking,
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

/// The execution platform: the toolchain's host, spelled by the profile.
pub fn platform_of(ctx: &Ctx, tool: &Tool) -> anyhow::Result<Vec<(String, String)>> {
    let host = &tool.manifest().host;
    let os = host
        .os
        .parse()
        .map_err(|()| anyhow::anyhow!("unknown OS {:?} in the toolchain manifest", host.os))?;
    let arch = host
        .arch
        .parse()
        .map_err(|()| anyhow::anyhow!("unknown architecture {:?}", host.arch))?;
    let cfg = crate::config::resolve_platform(None, &[], &ctx.env, &ctx.file)?;
    let profile = Profile::resolve(&cfg.profile)?;
    let standard = platform::standard_given(&os, &arch, &cfg.properties)?;
    Ok(profile.apply(&standard, &cfg.properties)?.pairs().to_vec())
}

/// The server, ready for this toolchain: connected, its features known,
/// and (in remote mode) its workers known to run actions with the input
/// root as `/`. `Err` is the flow to take instead.
pub async fn server(
    ctx: &Ctx,
    tool: &Tool,
    platform: &[(String, String)],
) -> Result<(Client, Features), Flow> {
    let client = match ctx.client().await {
        Ok(c) => c.clone(),
        Err(e) => return Err(Flow::fallback("unreachable", format!("{e:#}"))),
    };
    let caps = client.capabilities().await.map_err(|e| {
        let f = Failure::of(&e);
        Flow::fallback(&f.cause, f.message)
    })?;
    let features = Features {
        output_paths: caps.supports_output_paths(),
        action_platform: caps.supports_action_platform(),
    };
    if ctx.wrap.mode == Mode::Remote {
        if !caps.exec_enabled {
            return Err(Flow::fallback(
                "no_execution",
                format!("{} offers no execution", client.url()),
            ));
        }
        match probe::chroots(&ctx.cache_dir, &client, tool, platform, features).await {
            Ok(true) => {}
            Ok(false) => {
                return Err(Flow::fallback(
                    "no_chroot",
                    format!("{} does not run actions in a chroot", client.url()),
                ));
            }
            Err(f) => return Err(Flow::fallback(&f.cause, f.message)),
        }
    }
    if ctx.wrap.mode == Mode::Remote
        && let Some(bundle) = tool.bundle()
        && let Err(f) = upload_toolchain(ctx, &client, bundle).await
    {
        return Err(Flow::fallback(&f.cause, f.message));
    }
    Ok((client, features))
}

/// How long a toolchain is taken to be on a server after its upload.
const UPLOADED_TTL_SECS: u64 = 3600;

/// Puts `bundle` on the server once: parallel compiles (`make -j`, cargo)
/// would otherwise each find the same hundreds of megabytes missing and
/// send them side by side. The first takes a lock and uploads; the others
/// wait, then see its marker. A marker is trusted for an hour; if the
/// server evicts the blobs sooner, Execute names them missing and the
/// action's own upload sends them again.
async fn upload_toolchain(ctx: &Ctx, client: &Client, bundle: &Bundle) -> Result<(), Failure> {
    let server = Digest::of_bytes(format!("{}\n{}", client.url(), client.instance()).as_bytes());
    let name = format!(
        "{}-{}",
        &server.hex()[..16],
        &bundle.manifest.root.hex()[..32]
    );
    let marker = ctx.cache_dir.join("uploaded").join(&name);
    let fresh = |p: &std::path::Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() < UPLOADED_TTL_SECS)
    };
    if fresh(&marker) {
        return Ok(());
    }
    let lock_path = ctx.cache_dir.join("locks").join(format!("{name}.lock"));
    let lock = tokio::task::spawn_blocking(move || crate::lock::FileLock::take(&lock_path))
        .await
        .map_err(|e| Failure {
            cause: "internal".into(),
            message: e.to_string(),
        })?
        .map_err(|e| Failure {
            cause: "local_io".into(),
            message: format!("the upload lock: {e}"),
        })?;
    if fresh(&marker) {
        return Ok(());
    }
    let mut blobs: Vec<crate::remote::Blob> = bundle
        .files
        .iter()
        .map(|(p, d)| crate::remote::Blob::file(*d, p))
        .collect();
    for (d, bytes) in &bundle.tree.directories {
        blobs.push(crate::remote::Blob {
            digest: *d,
            source: crate::remote::BlobSource::Bytes(bytes.clone()),
        });
    }
    let sent = client
        .upload_missing(blobs)
        .await
        .map_err(|e| Failure::of(&e))?;
    tracing::debug!(blobs = sent.blobs, bytes = sent.bytes, "toolchain uploaded");
    if let Some(dir) = marker.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::write(&marker, bundle.manifest.name.as_bytes());
    drop(lock);
    Ok(())
}

/// The key of the hit path: everything that decides the action digest
/// and is not checked by stat (the compiler's identity is: `Fast::tools`).
/// `env` lists the variables the compiler's output depends on.
pub fn fast_key(ctx: &Ctx, inv: &Invocation, kind: &str, env: &[(String, String)]) -> Digest {
    let mut parts: Vec<Vec<u8>> = vec![
        kind.as_bytes().to_vec(),
        inv.compiler.as_os_str().as_encoded_bytes().to_vec(),
        inv.argv0.as_encoded_bytes().to_vec(),
        ctx.cwd.as_os_str().as_encoded_bytes().to_vec(),
        ctx.server_key().into_bytes(),
        format!("{:?}", ctx.project_root()).into_bytes(),
        vec![u8::from(std::io::stderr().is_terminal())],
    ];
    parts.extend(inv.args.iter().map(|a| a.as_encoded_bytes().to_vec()));
    parts.extend(env.iter().map(|(k, v)| format!("{k}={v}").into_bytes()));
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    depcache::key(&refs)
}

/// Answers a compile seen before from the action cache, skipping the
/// toolchain, the scan and the input root; `None`: take the slow path.
/// `landed` runs once the outputs are in place (the depfile).
pub async fn fast_hit(
    ctx: &Ctx,
    key: &Digest,
    landed: &dyn Fn(&depcache::Fast) -> Result<(), String>,
) -> Option<Flow> {
    let fast = depcache::lookup_fast(&ctx.cache_dir, key)?;
    let client = match ctx.client().await {
        Ok(c) => c,
        Err(e) => return Some(Flow::fallback("unreachable", format!("{e:#}"))),
    };
    let landing = match &fast.landing {
        Some(l) => l.clone(),
        None => remote::Landing::beside(&ctx.cwd, &fast.outputs),
    };
    let f = match remote::lookup_digest(client, &fast.action, &fast.outputs, &landing).await {
        Ok(Some(f)) if f.code == 0 => f,
        Ok(_) => return None,
        Err(e) => return Some(Flow::fallback(&e.cause, e.message)),
    };
    if let Err(e) = landed(&fast) {
        return Some(Flow::fallback("local_io", e));
    }
    tracing::debug!(elapsed = ?ctx.started.elapsed(), "fast hit");
    Some(Flow::Done {
        stdout: f.stdout,
        stderr: f.stderr,
        code: 0,
        event: Event {
            hit: true,
            down: f.down,
            saved_ms: f.original.saturating_sub(ctx.started.elapsed()).as_millis() as u64,
            ..Event::default()
        },
    })
}

/// The compiler and the toolchain's programs, whose stamps decide whether
/// a fast entry still describes this toolchain.
pub fn tools_of(inv: &Invocation, tool: &Tool) -> Vec<PathBuf> {
    let mut tools = vec![inv.compiler.clone()];
    tools.extend(super::tool::program_paths(tool));
    tools.sort();
    tools.dedup();
    tools
}

/// Records a finished compile for the hit path.
pub fn remember(
    ctx: &Ctx,
    key: &Digest,
    tools: Vec<PathBuf>,
    p: &Prepared,
    files: &[depcache::Seen],
    depfile: Option<String>,
) {
    let Some(tools) = tools
        .into_iter()
        .map(|t| depcache::stamp(&t).map(|s| (t, s)))
        .collect::<Option<Vec<_>>>()
    else {
        return;
    };
    depcache::store_fast(
        &ctx.cache_dir,
        key,
        &depcache::Fast {
            schema: depcache::SCHEMA,
            action: p.digest,
            outputs: p.outputs.clone(),
            landing: Some(p.landing.clone()),
            files: files.to_vec(),
            tools,
            depfile,
        },
    );
}

/// Runs `p` on the server (remote mode) and turns the result into a flow:
/// a worker that could not run the toolchain means a local compile, a
/// genuine failure is replayed, a success runs `landed` (depfile, hit
/// path record) before it is replayed. With `rerun_failures` (links, whose
/// failures are as often a missing system library as a code error), any
/// failure is decided by a local run instead.
pub async fn execute(
    ctx: &Ctx,
    client: &Client,
    p: &Prepared,
    rerun_failures: bool,
    landed: &dyn Fn() -> Result<(), String>,
) -> Flow {
    let finished = match remote::execute(client, p).await {
        Ok(f) => f,
        Err(f) => return Flow::fallback(&f.cause, f.message),
    };
    tracing::trace!(command = ?p.command, root = %p.inputs.tree.root, "command");
    tracing::debug!(
        elapsed = ?ctx.started.elapsed(),
        action = %p.digest,
        cached = finished.cached,
        args = ?p.command.arguments.iter().take(4).collect::<Vec<_>>(),
        "executed"
    );
    if finished.code != 0
        && (rerun_failures || remote::infrastructure(finished.code, &finished.stderr))
    {
        return Flow::fallback(
            "worker_failed",
            format!(
                "the compile failed on the worker with exit code {}: {}",
                finished.code,
                String::from_utf8_lossy(&finished.stderr).trim()
            ),
        );
    }
    if finished.code == 0
        && let Err(e) = landed()
    {
        return Flow::fallback("local_io", e);
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
            up: finished.up,
            down: finished.down,
            saved_ms: if finished.cached {
                finished.original.saturating_sub(elapsed).as_millis() as u64
            } else {
                0
            },
            ..Event::default()
        },
    }
}

/// Cache-only: a hit is written (then `landed`); a miss compiles here and
/// publishes the result.
pub async fn cache_only(
    ctx: &Ctx,
    inv: &Invocation,
    client: &Client,
    p: &Prepared,
    landed: &dyn Fn() -> Result<(), String>,
) -> Flow {
    match remote::lookup(client, p).await {
        Ok(Some(f)) if f.code == 0 => {
            if let Err(e) = landed() {
                return Flow::fallback("local_io", e);
            }
            let elapsed = ctx.started.elapsed();
            return Flow::Done {
                stdout: f.stdout,
                stderr: f.stderr,
                code: 0,
                event: Event {
                    hit: true,
                    down: f.down,
                    saved_ms: f.original.saturating_sub(elapsed).as_millis() as u64,
                    ..Event::default()
                },
            };
        }
        Ok(_) => {}
        Err(f) => return Flow::fallback(&f.cause, f.message),
    }
    let started = std::time::Instant::now();
    let status = match local::run(inv) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("recast: cannot run {}: {e}", inv.compiler.display());
            return Flow::Done {
                stdout: Vec::new(),
                stderr: Vec::new(),
                code: 127,
                event: Event::local("cache_miss"),
            };
        }
    };
    let code = status.code().unwrap_or(255);
    let mut event = Event::local("cache_miss");
    if code == 0 {
        match remote::publish(client, p, started).await {
            Ok(up) => event.up = up,
            Err(f) => tracing::info!("cannot publish the result: {}", f.message),
        }
    }
    Flow::Done {
        stdout: Vec::new(),
        stderr: Vec::new(),
        code,
        event,
    }
}
