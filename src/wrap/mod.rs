//! Wrapped compiles: `recast gcc …`, `RUSTC_WRAPPER=recast`, masquerade
//! links and compiler launchers. One flow for every compiler, with one
//! parser each (`crate::invocation`):
//!
//! ```text
//! argv ─► entry (which compiler) ─► parse ─► toolchain (local index)
//!      ─► dependency scan (cached by stat) ─► input root + Command
//!      ─► action cache ─► upload what is missing ─► Execute
//!      ─► verified outputs, written atomically ─► stdout/stderr/exit code
//! ```
//!
//! Whatever goes wrong on the remote side, the compile runs locally with
//! the same arguments: a build that works without recast works with it. A
//! compile that fails remotely because the code is wrong is replayed as
//! is, not rerun. Every compile leaves one line in the stats
//! (`stats`); `recast stats` sums them. The wrapper never writes to stderr
//! itself (the compiler's stderr must come out as it would without
//! recast): why a compile ran locally is logged at `RECAST_LOG=info`.
//!
//! Submodules: `entry` (argv → compiler), `local` (running the compiler
//! here), `paths` (where files sit in the input root), `depcache` (the
//! scan's results, revalidated by stat), `inputs` (the input root),
//! `probe` (does the server run actions with the input root as `/`?),
//! `remote` (one action on the server, and its outputs), `flow` (the
//! steps every compiler shares), `cc` (gcc and clang), `rust` (rustc) and
//! `crates` (which crate files a rustc compile loads), `stats`.

mod cc;
mod crates;
mod depcache;
pub mod entry;
mod flow;
mod inputs;
mod local;
pub mod paths;
mod probe;
mod remote;
mod rust;
pub mod stats;
mod tool;
mod twin;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use crate::config::{self, Env, Mode, RemoteArgs, WrapConfig};
use crate::remote::Client;

pub use entry::{Detected, Invocation, Kind};
use stats::Event;

/// How a wrapped compile ends.
pub(crate) enum Flow {
    /// Finished remotely (or from the cache): replay and exit.
    Done {
        stdout: Vec<u8>,
        stderr: Vec<u8>,
        code: i32,
        event: Event,
    },
    /// Run the compiler here; the event says why.
    Local(Event),
    /// Already run here (the wrapper needed to see it finish): exit so.
    Ran { code: i32, event: Event },
}

impl Flow {
    fn local(reason: &str) -> Flow {
        Flow::Local(Event::local(reason))
    }

    fn fallback(cause: &str, why: impl std::fmt::Display) -> Flow {
        tracing::info!("compiling locally ({cause}): {why}");
        Flow::Local(Event::fallback(cause))
    }
}

/// What every step of a wrapped compile needs to know.
pub(crate) struct Ctx {
    pub env: Env,
    pub file: config::FileConfig,
    pub wrap: WrapConfig,
    pub cache_dir: PathBuf,
    pub cwd: PathBuf,
    /// `PATH`, split.
    pub path: Vec<PathBuf>,
    pub started: Instant,
    client: tokio::sync::OnceCell<Client>,
}

impl Ctx {
    /// The server connection, made on first use (the embedded server is
    /// started if nothing is configured).
    pub async fn client(&self) -> anyhow::Result<&Client> {
        self.client
            .get_or_try_init(|| async {
                crate::session::connect_with(&RemoteArgs::default(), &self.env, &self.file).await
            })
            .await
    }

    /// Which server and instance results come from, as configured (the
    /// embedded server's address is not known before it runs).
    pub fn server_key(&self) -> String {
        let remote = self
            .var(config::vars::REMOTE)
            .map(str::to_string)
            .or_else(|| self.file.remote.clone())
            .unwrap_or_else(|| "embedded".into());
        let instance = self
            .var(config::vars::INSTANCE)
            .map(str::to_string)
            .or_else(|| self.file.instance.clone())
            .unwrap_or_default();
        let platform = config::resolve_platform(None, &[], &self.env, &self.file)
            .map(|p| format!("{}:{:?}", p.profile, p.properties))
            .unwrap_or_default();
        format!("{remote}\n{instance}\n{platform}\n{:?}", self.wrap.mode)
    }

    pub fn var(&self, key: &str) -> Option<&str> {
        self.env.get(key)
    }

    /// The project root: configured, else the nearest VCS root.
    pub fn project_root(&self) -> Option<PathBuf> {
        match &self.wrap.project_root {
            Some(set) => set.clone(),
            None => paths::find_project_root(&self.cwd, &|p| p.exists()),
        }
    }
}

/// Entry point from `main` for a detected compiler invocation.
pub fn main(argv: Vec<OsString>, name: OsString, args_from: usize) -> ExitCode {
    let started = Instant::now();
    let env = Env::from_process();
    let cwd = match std::env::current_dir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("recast: cannot read the working directory: {e}");
            return ExitCode::from(1);
        }
    };
    let path: Vec<PathBuf> = env
        .get("PATH")
        .map(|p| std::env::split_paths(p).collect())
        .unwrap_or_default();
    let me = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .unwrap_or_default();
    let compiler = match entry::resolve(&name, &cwd, &path, &me) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("recast: {e}");
            return ExitCode::from(127);
        }
    };
    let file_name = compiler
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let given = Path::new(&name)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let kind = entry::kind_of(&given)
        .or_else(|| entry::kind_of(&file_name))
        .unwrap_or(Kind::C(crate::invocation::gcc::CFamily::Gcc));
    let inv = Invocation {
        compiler,
        argv0: name,
        args: argv[args_from..].to_vec(),
        kind,
    };

    let file = config::config_path(&env)
        .map(|p| config::load_file(Some(&p)))
        .unwrap_or_else(|| Ok(Default::default()));
    let (file, wrap) = match file.and_then(|f| config::resolve_wrap(&env, &f).map(|w| (f, w))) {
        Ok(x) => x,
        Err(e) => {
            // A broken configuration must not break the build.
            eprintln!("recast: warning: {e}; compiling locally");
            return local::exec(&inv);
        }
    };
    let cache_dir = match config::cache_dir(&env) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("recast: warning: {e}; compiling locally");
            return local::exec(&inv);
        }
    };
    if wrap.mode == Mode::Local {
        stats::record(&cache_dir, &Event::local("mode_local"));
        return local::exec(&inv);
    }
    let ctx = Ctx {
        env,
        file,
        wrap,
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
            return local::exec(&inv);
        }
    };
    tracing::debug!(elapsed = ?ctx.started.elapsed(), "runtime");
    let flow = runtime.block_on(async {
        match inv.kind {
            Kind::C(family) => cc::run(&ctx, &inv, family).await,
            Kind::Rustc => rust::run(&ctx, &inv).await,
        }
    });
    // Leave background tasks (connections) behind without waiting.
    runtime.shutdown_background();
    match flow {
        Flow::Done {
            stdout,
            stderr,
            code,
            event,
        } => {
            stats::record(&ctx.cache_dir, &event);
            local::replay(&stdout, &stderr, code)
        }
        Flow::Local(event) => {
            stats::record(&ctx.cache_dir, &event);
            local::exec(&inv)
        }
        Flow::Ran { code, event } => {
            stats::record(&ctx.cache_dir, &event);
            local::replay(&[], &[], code)
        }
    }
}
