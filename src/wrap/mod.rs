//! Wrapped compiles: `recast gcc …`, `RUSTC_WRAPPER=recast`, `recast zig
//! cc …`, masquerade links and compiler launchers. One pipeline for every
//! compiler family (`pipeline`), with the family's parser, probe, scan and
//! output rules behind the seams of `family`:
//!
//! ```text
//! argv ─► entry (which compiler, which family) ─► parse ─► hit path
//!      ─► toolchain (local index) ─► dependency scan (cached by stat)
//!      ─► input root + Command ─► action cache ─► upload what is missing
//!      ─► Execute ─► verified outputs, written atomically ─► replay
//! ```
//!
//! Whatever goes wrong on the remote side, the compile runs locally with
//! the same arguments: a build that works without recast works with it. A
//! compile that fails remotely is confirmed by compiling here (unless
//! `RECAST_CONFIRM_ERRORS=0`). Every compile leaves one line in the stats
//! (`stats`); `recast stats` sums them. The wrapper never writes to stderr
//! itself (the compiler's stderr must come out as it would without
//! recast): why a compile ran locally is logged at `RECAST_LOG=info`, and
//! warnings go to `<cache dir>/warnings.log` (`log`).
//!
//! Submodules: `entry` (argv → compiler), `family` (the seams, and each
//! family's driver), `pipeline` (the steps every family shares), `cc`
//! (gcc, clang, zig cc) and `rust` (rustc, with `crates` and `twin`),
//! `scan` (the dependency scan) and `depcache` (its results, revalidated
//! by stat), `prepare` (the action), `inputs` and `placement` (the input
//! root and the project-root move), `tool` (this machine's toolchain or
//! the registry's), `workers` (which layout the server's workers need),
//! `layout` (the layouts' spellings), `on_server` (one action on the
//! server, and its outputs), `color`, `process` (running the compiler
//! here), `log`, `stats`. Names here say their floor: the server's client
//! is `crate::remote`, the toolchain's relocated copies
//! `crate::toolchain::relocate`, its probe `crate::toolchain::family`.

mod cc;
mod color;
mod crates;
mod depcache;
pub mod entry;
mod family;
mod here;
mod inputs;
mod layout;
pub mod log;
mod native;
mod on_server;
pub mod outbox;
mod pipeline;
mod placement;
mod prepare;
mod process;
mod publish;
mod rust;
mod scan;
pub mod stats;
mod tool;
mod twin;
pub mod upload;
mod why;
mod workers;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use crate::config::{self, Env, Mode, PlatformConfig, RemoteArgs, RemoteConfig, WrapConfig};
use crate::remote::Client;
use crate::toolchain::family::Family;

pub use entry::{Detected, Invocation};
pub use layout::Layout;
pub(crate) use on_server::Failure;
use stats::Event;
pub(crate) use why::Cause;

/// The layout `client`'s workers for `platform` need, asked now with this
/// machine's loader (for `recast doctor`); `None`: no worker answered in
/// a second.
pub async fn workers_layout(
    client: &Client,
    platform: &[(String, String)],
    features: crate::action::Features,
) -> Result<Option<Layout>, Failure> {
    workers::probe_here(client, platform, features).await
}

/// Whether `client`'s plain-directory workers for `platform` make user
/// namespaces, asked now (for `recast doctor`); `Err` says why not.
pub async fn workers_make_namespaces(
    cache_dir: &Path,
    client: &Client,
    platform: &[(String, String)],
    features: crate::action::Features,
) -> Result<(), String> {
    workers::namespaces_here(cache_dir, client, platform, features).await
}

/// How a wrapped compile's remote side ends.
pub(crate) enum Flow {
    /// Finished remotely (or from the cache): replay, or confirm a failure.
    Done {
        stdout: Vec<u8>,
        stderr: Vec<u8>,
        code: i32,
        event: Event,
    },
    /// Run the compiler here; the event says why.
    Local(Event),
    /// Already run here with its streams captured (cache-only): replay
    /// them as a remote result's, and exit so.
    Ran {
        stdout: Vec<u8>,
        stderr: Vec<u8>,
        code: i32,
        event: Event,
    },
    /// A moved compile's outputs named the moved project root: it must
    /// run again where the project is (`placement`).
    Location,
}

impl Flow {
    fn local(reason: why::Reason) -> Flow {
        Flow::Local(Event::local(reason))
    }

    fn fallback(cause: why::Cause, why: impl std::fmt::Display) -> Flow {
        tracing::info!("compiling locally ({cause}): {why}");
        Flow::Local(Event::fallback(cause))
    }
}

/// What every step of a wrapped compile needs to know: the settings,
/// resolved once.
pub(crate) struct Ctx {
    pub env: Env,
    pub wrap: WrapConfig,
    pub remote: RemoteConfig,
    pub platform: PlatformConfig,
    pub cache_dir: PathBuf,
    pub cwd: PathBuf,
    /// `PATH`, split.
    pub path: Vec<PathBuf>,
    pub started: Instant,
    client: tokio::sync::OnceCell<Client>,
}

impl Ctx {
    /// The server's client, made on first use; it dials the server (or
    /// starts the embedded one) only when a result is not on this machine.
    pub async fn client(&self) -> anyhow::Result<&Client> {
        self.client
            .get_or_try_init(|| async {
                crate::session::wrapper_client(&self.remote, &self.env, &self.wrap)
            })
            .await
    }

    /// Which server, instance, platform and mode results come from, as
    /// configured (the embedded server's address is not known before it
    /// runs).
    pub fn server_key(&self) -> String {
        let remote = match &self.remote.endpoint {
            config::Endpoint::Url(u) => u.as_str(),
            config::Endpoint::Embedded => "embedded",
        };
        format!(
            "{remote}\n{}\n{}:{:?}\n{:?}",
            self.remote.instance, self.platform.profile, self.platform.properties, self.wrap.mode
        )
    }

    pub fn var(&self, key: &str) -> Option<&str> {
        self.env.get(key)
    }

    /// The execution platform: the toolchain's host, as the configured
    /// profile spells it.
    pub fn platform_of(&self, tool: &tool::Tool) -> anyhow::Result<Vec<(String, String)>> {
        let host = &tool.manifest().host;
        let r = crate::platform::resolve_named(
            &self.platform.profile,
            &self.platform.properties,
            &host.os,
            &host.arch,
        )?;
        Ok(r.platform.pairs().to_vec())
    }

    /// Whether results compiled here go to `client`'s server in the
    /// background (`RECAST_PUBLISH`; only with a local tier to hold them
    /// meanwhile).
    pub fn publishes_later(&self, client: &Client) -> bool {
        self.wrap.publish.background(client.is_loopback()) && client.tier().is_some()
    }

    /// The project root: configured, else the nearest VCS root.
    pub fn project_root(&self) -> Option<PathBuf> {
        match &self.wrap.project_root {
            Some(set) => set.clone(),
            None => placement::find_project_root(&self.cwd, &|p| p.exists()),
        }
    }
}

/// The settings a wrapped compile runs with; `Err` says what is wrong.
fn settings(
    env: &Env,
) -> Result<(WrapConfig, RemoteConfig, PlatformConfig, PathBuf), config::ConfigError> {
    let file = match config::config_path(env) {
        Some(p) => config::load_file(Some(&p))?,
        None => Default::default(),
    };
    let mut wrap = config::resolve_wrap(env, &file)?;
    let remote = config::resolve(&RemoteArgs::default(), env, &file)?;
    wrap.mode = wrap.mode.on(&remote.endpoint);
    let platform = config::resolve_platform(None, &[], env, &file)?;
    let cache_dir = config::cache_dir(env)?;
    Ok((wrap, remote, platform, cache_dir))
}

/// Entry point from `main` for a detected compiler invocation.
pub fn main(argv: Vec<OsString>, name: OsString, args_from: usize) -> ExitCode {
    let started = Instant::now();
    let env = Env::from_process();
    // The working directory and PATH, read once for the whole compile.
    let cwd = std::env::current_dir();
    let path: Vec<PathBuf> = env
        .get("PATH")
        .map(|p| std::env::split_paths(p).collect())
        .unwrap_or_default();
    let here = cwd.as_deref().unwrap_or(Path::new("/"));
    let Some(mut inv) = invocation(here, &path, argv, name, args_from) else {
        return ExitCode::from(127);
    };
    let (wrap, remote, platform, cache_dir) = match settings(&env) {
        // A state dir that is not ours (or cannot be made private) is never
        // written to: the compile runs here, and `recast doctor` says why.
        Ok(s) if let Err(e) = crate::fsutil::ensure_private_dir(&s.3) => {
            tracing::warn!("{e}; compiling locally");
            return process::exec(&inv);
        }
        Ok(s) => s,
        Err(e) => {
            // A broken configuration must not break the build; it is said
            // where warnings go, when there is such a place.
            let msg = format!("{e}; compiling locally");
            match config::cache_dir(&env) {
                Ok(dir) => log::warn(&dir, &msg),
                Err(_) => tracing::warn!("{msg}"),
            }
            return process::exec(&inv);
        }
    };
    if wrap.mode == Mode::Local {
        record(&cache_dir, &inv, Event::local(why::Reason::ModeLocal));
        return process::exec(&inv);
    }
    let Ok(cwd) = cwd else {
        return process::exec(&inv);
    };
    // What the compiler is, decided once; every step follows from it.
    match crate::toolchain::local::family(&cache_dir.join("toolchains"), &inv.compiler, inv.named) {
        Some(f) => inv.family = f,
        None => {
            tracing::info!(
                "{} answers as no compiler recast knows; compiling locally",
                inv.compiler.display()
            );
            record(&cache_dir, &inv, Event::local(why::Reason::UnknownCompiler));
            return process::exec(&inv);
        }
    }
    let ctx = Ctx {
        env,
        wrap,
        remote,
        platform,
        cache_dir,
        cwd,
        path,
        started,
        client: tokio::sync::OnceCell::new(),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::info!("cannot start the async runtime: {e}");
            return process::exec(&inv);
        }
    };
    tracing::debug!(elapsed = ?ctx.started.elapsed(), "runtime");
    let ending = runtime.block_on(pipeline::run(&ctx, &inv));
    // Background tasks (connections) are left to the process's exit, which
    // closes their sockets; dropping them here first cost 0.1 ms a hit.
    std::mem::forget(runtime);
    match ending {
        pipeline::Ending::Replay {
            stdout,
            stderr,
            code,
            event,
        } => {
            record(&ctx.cache_dir, &inv, event);
            process::replay(&stdout, &stderr, code)
        }
        pipeline::Ending::Exec(event) => {
            record(&ctx.cache_dir, &inv, event);
            process::exec(&inv)
        }
    }
}

/// Records `event`, labelled with the family of the compiler `inv` runs.
fn record(cache_dir: &Path, inv: &Invocation, event: Event) {
    let event = Event {
        family: Some(inv.family.to_string()),
        ..event
    };
    stats::record(cache_dir, &event);
}

/// The invocation `argv` names: the compiler found (a message on stderr
/// and `None` when there is none) and its family.
fn invocation(
    cwd: &Path,
    path: &[PathBuf],
    argv: Vec<OsString>,
    name: OsString,
    from: usize,
) -> Option<Invocation> {
    // recast itself, told by its file: on Linux the running binary even
    // when a rebuild has replaced it on disk.
    let me = if cfg!(target_os = "linux") {
        PathBuf::from("/proc/self/exe")
    } else {
        std::env::current_exe().unwrap_or_default()
    };
    let compiler = match entry::resolve(&name, cwd, path, &me) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("recast: {e}");
            return None;
        }
    };
    let file_name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    // The name it was given speaks first (`cc` may be clang); else the
    // file's.
    let named = Family::named(&file_name(Path::new(&name)))
        .or_else(|| Family::named(&file_name(&compiler)))?;
    Some(Invocation {
        compiler,
        argv0: name,
        args: argv[from..].to_vec(),
        named,
        family: named.family(),
    })
}
