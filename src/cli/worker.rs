//! `recast worker`: run actions for a Remote Workers API scheduler
//! (BuildGrid) until SIGTERM or SIGINT.
//!
//! Flags, connection and signals only; the bot is `crate::worker`. The
//! first signal drains (no new leases, running ones finish within
//! `--grace`, then `BOT_TERMINATING`, exit 0); a second one exits at once.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::config::{self, RemoteArgs};
use crate::remote::{Client, channel, metadata::CallMetadata};
use crate::runner::{Sandbox, bwrap_works, find_bwrap};
use crate::worker::{self, WorkerOptions};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SandboxArg {
    /// `chroot` where bubblewrap works here, else `none`.
    Auto,
    /// A plain process in the materialized input root: host files stay
    /// reachable by absolute path.
    None,
    /// bubblewrap with the input root as `/` and the host's other
    /// top-level directories read-only: absolute paths mean what they mean
    /// on the client, which recast's compiler wrappers need.
    Chroot,
    /// bubblewrap with the input root as `/` and no host directory visible:
    /// only hermetic toolchains run.
    Bwrap,
}

impl SandboxArg {
    /// The runner's sandbox, once bwrap is known to work.
    pub fn checked(self) -> anyhow::Result<Sandbox> {
        let need_bwrap = |sandbox: Sandbox| -> anyhow::Result<Sandbox> {
            let Some(path) = find_bwrap() else {
                bail!(
                    "--sandbox {}: no `bwrap` on PATH; install bubblewrap (Debian: apt-get install bubblewrap)",
                    if sandbox == Sandbox::Bwrap {
                        "bwrap"
                    } else {
                        "chroot"
                    }
                );
            };
            if !bwrap_works() {
                bail!(
                    "--sandbox: {} cannot create a sandbox here (are unprivileged user namespaces disabled?); use --sandbox none",
                    path.display()
                );
            }
            tracing::info!(bwrap = %path.display(), ?sandbox, "sandboxing actions");
            Ok(sandbox)
        };
        match self {
            SandboxArg::None => Ok(Sandbox::None),
            SandboxArg::Auto if bwrap_works() => Ok(Sandbox::Chroot),
            SandboxArg::Auto => {
                tracing::warn!(
                    "bubblewrap is missing or cannot sandbox here: actions run as plain processes, and compiles wrapped by recast run locally"
                );
                Ok(Sandbox::None)
            }
            SandboxArg::Chroot => need_bwrap(Sandbox::Chroot),
            SandboxArg::Bwrap => need_bwrap(Sandbox::Bwrap),
        }
    }
}

/// Arguments of `recast worker`.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// The scheduler: grpc://HOST:PORT or grpcs://HOST[:PORT]. Its CAS must
    /// be at the same address (BuildGrid serves both).
    #[arg(long, value_name = "URL")]
    pub scheduler: String,
    /// REAPI instance name (the bot sessions' parent).
    #[arg(long, value_name = "NAME", default_value = "")]
    pub instance: String,
    /// Platform property KEY=VALUE this worker offers (repeatable). A key
    /// given here replaces the host's value for it (e.g. ISA=arm-a64);
    /// repeat a key to offer several values. Default: this host's OSFamily
    /// and ISA.
    #[arg(long = "platform", value_name = "KEY=VALUE", value_parser = super::serve::parse_property)]
    pub platform: Vec<(String, String)>,
    /// Actions run at once (one bot session each).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub jobs: usize,
    /// Local store (a cache kept across actions) and scratch space
    /// [default: <cache dir>/worker].
    #[arg(long, value_name = "PATH")]
    pub dir: Option<PathBuf>,
    /// Local store size bound (K, M, G, T suffixes).
    #[arg(long, value_name = "BYTES", default_value = "10G", value_parser = crate::config::parse_size)]
    pub cache_size: u64,
    /// How actions are isolated.
    #[arg(long, value_enum, default_value_t = SandboxArg::Auto)]
    pub sandbox: SandboxArg,
    /// Bot name, shown by the scheduler and in ExecutedActionMetadata.worker
    /// [default: the host name].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Seconds running actions may take to finish after SIGTERM/SIGINT
    /// before they are handed back to the scheduler.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub grace: u64,
    /// Extra request header KEY=VALUE (repeatable), e.g. authorization=Bearer T.
    #[arg(long = "remote-header", value_name = "KEY=VALUE")]
    pub headers: Vec<String>,
    /// CA certificate (PEM) for grpcs://.
    #[arg(long, value_name = "PEM")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    #[arg(long, value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS.
    #[arg(long, value_name = "PEM")]
    pub tls_key: Option<PathBuf>,
}

pub async fn run(args: WorkerArgs, sources: &config::Sources) -> anyhow::Result<ExitCode> {
    if args.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    let sandbox = args.sandbox.checked()?;
    let remote = RemoteArgs {
        remote: Some(args.scheduler.clone()),
        instance: Some(args.instance.clone()),
        headers: args.headers.clone(),
        tls_ca: args.tls_ca.clone(),
        tls_cert: args.tls_cert.clone(),
        tls_key: args.tls_key.clone(),
        timeout: None,
    };
    let cfg = config::resolve(&remote, &sources.env, &sources.file)?;
    let dir = match args.dir {
        // Actions run in directories under it: see `recast serve --dir`.
        Some(d) => std::path::absolute(&d)
            .with_context(|| format!("--dir {}: cannot make it absolute", d.display()))?,
        None => cfg.cache_dir.join("worker"),
    };
    let client = Client::connect(&cfg, &args.scheduler)
        .await
        .with_context(|| format!("connecting to the scheduler {}", args.scheduler))?;
    let (_, bots_channel) = channel::connect(&cfg, &args.scheduler)
        .await
        .with_context(|| format!("connecting to the scheduler {}", args.scheduler))?;
    let md = CallMetadata::new(&cfg.headers, uuid::Uuid::new_v4().to_string(), cfg.timeout)?;

    let properties =
        worker::worker_properties(&crate::server::scheduler::host_properties(), &args.platform);
    let name = args.name.clone().unwrap_or_else(hostname);
    let shown: Vec<String> = properties.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!(
        "worker {name}: {} job(s) for {} with {}",
        args.jobs,
        args.scheduler,
        shown.join(", ")
    );
    let opts = WorkerOptions {
        name,
        scheduler: args.scheduler.clone(),
        properties,
        jobs: args.jobs,
        dir,
        cache_size: args.cache_size,
        sandbox,
        grace: Duration::from_secs(args.grace),
        default_timeout: Duration::from_secs(3600),
        max_timeout: Duration::from_secs(24 * 3600),
    };

    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        if let Err(e) = signals(tx).await {
            eprintln!("recast: {e:#}");
            std::process::exit(1);
        }
    });
    worker::run(client, bots_channel, md, opts, rx).await?;
    // Actions abandoned after the grace period may still sit on blocking
    // threads the runtime would wait for: leave now.
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    std::process::exit(0)
}

/// First SIGTERM/SIGINT: drain. Second: exit now.
async fn signals(tx: tokio::sync::watch::Sender<bool>) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
    for round in 0..2 {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        if round == 0 {
            eprintln!(
                "recast worker: shutting down (finishing running actions; signal again to quit now)"
            );
            let _ = tx.send(true);
        }
    }
    eprintln!("recast worker: quitting now");
    std::process::exit(1)
}

/// This machine's name (`gethostname`), or "recast-worker" when it has
/// none or it is not UTF-8.
fn hostname() -> String {
    let uname = rustix::system::uname();
    match uname.nodename().to_str() {
        Ok(s) if !s.is_empty() => s.to_string(),
        _ => "recast-worker".into(),
    }
}
