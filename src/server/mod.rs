//! The embedded REAPI server (`recast serve`): Capabilities, CAS,
//! ByteStream, ActionCache, Execution and Operations over a disk store, with
//! local workers that run actions through `runner`.
//!
//! One file per service, each a thin tonic handler over inner functions
//! that tests call directly; `scheduler` matches actions to workers,
//! `operations` keeps execution state; ByteStream names are `cas::resource`.
//! This module wires them together and runs the gRPC server. Storage is the
//! `cas::store` implementations; running a command is `runner`'s business.

pub mod action_cache;
mod answers;
pub mod auth;
pub mod bytestream;
pub mod capabilities;
pub mod cas;
pub mod error;
pub mod execution;
pub mod operations;
pub mod scheduler;

#[cfg(test)]
mod test_util;

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt as _;
use tonic::codec::CompressionEncoding;
use tonic::transport::Server;

use crate::cas::store::{BlobStore, DiskActionCache, DiskStore};
use crate::proto::bytestream::byte_stream_server::ByteStreamServer;
use crate::proto::google::longrunning::operations_server::OperationsServer;
use crate::proto::reapi::action_cache_server::ActionCacheServer;
use crate::proto::reapi::capabilities_server::CapabilitiesServer;
use crate::proto::reapi::content_addressable_storage_server::ContentAddressableStorageServer;
use crate::proto::reapi::execution_server::ExecutionServer;

pub use action_cache::ActionCacheService;
pub use bytestream::ByteStreamService;
pub use capabilities::CapabilitiesService;
pub use cas::CasService;
pub use error::ServiceError;
pub use execution::{ExecutionService, Executor, WorkerConfig};
pub use operations::{OperationTable, OperationsService};

/// Largest gRPC message accepted or sent: well above the advertised batch
/// limit (4 MiB of blobs) plus framing, so a full batch always fits.
pub const MAX_MESSAGE_SIZE: usize = 16 << 20;
/// Timeout for actions that set none.
pub const DEFAULT_ACTION_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// Longest timeout an action may ask for.
pub const MAX_ACTION_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);
/// After SIGTERM/SIGINT, how long requests in progress may still finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Where the server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    /// A TCP address; port 0 picks a free port.
    Tcp(SocketAddr),
    /// A Unix socket: only its owner's calls are served (see [`auth`]).
    Unix(PathBuf),
}

/// Where the accepted bearer tokens come from.
#[derive(Clone, Debug)]
pub enum TokenSource {
    /// One token with every scope (`--auth-token-file`).
    Single(String),
    /// A file of tokens and scopes, re-read when it changes (`--auth-tokens`).
    File(PathBuf),
}

/// What `recast serve` was asked for.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Where to listen.
    pub listen: Listen,
    /// State directory: the CAS, the action cache, the workers' scratch space.
    pub dir: PathBuf,
    /// CAS size bound in bytes; least recently used blobs go first.
    pub max_size: u64,
    /// Local workers (actions run at once).
    pub workers: usize,
    /// Platform properties every worker offers besides the host's
    /// `OSFamily` and `ISA`.
    pub platform: Vec<(String, String)>,
    /// How the workers isolate actions.
    pub sandbox: crate::runner::Sandbox,
    /// Serve over TLS (`grpcs://`).
    pub tls: Option<TlsFiles>,
    /// Refuse calls without an accepted `authorization: Bearer <token>`.
    pub tokens: Option<TokenSource>,
    /// Stop after this long without a call while no action is running
    /// (the embedded default's servers; `None`: serve until stopped).
    pub idle_timeout: Option<Duration>,
}

/// The server's TLS material, as PEM bytes.
#[derive(Clone)]
pub struct TlsFiles {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
    /// Require client certificates signed by this CA (mutual TLS).
    pub client_ca: Option<Vec<u8>>,
}

impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsFiles")
            .field("client_ca", &self.client_ca.is_some())
            .finish_non_exhaustive()
    }
}

/// When the server last saw a call.
pub struct Activity {
    started: std::time::Instant,
    /// Milliseconds after `started`.
    last: std::sync::atomic::AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Activity {
        Activity {
            started: std::time::Instant::now(),
            last: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub(crate) fn touch(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        self.last
            .fetch_max(now, std::sync::atomic::Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = self.last.load(std::sync::atomic::Ordering::Relaxed);
        self.started
            .elapsed()
            .saturating_sub(Duration::from_millis(last))
    }

    /// Resolves once nothing touched it for `timeout`; while `busy` says
    /// work is under way (a call or an action in flight), that counts as a
    /// touch, so long work never looks idle.
    pub(crate) async fn idle(&self, timeout: Duration, busy: impl Fn() -> bool) {
        let step = (timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
        loop {
            tokio::time::sleep(step).await;
            if busy() {
                self.touch();
            } else if self.idle_for() >= timeout {
                return;
            }
        }
    }
}

/// All services over one store, ready to be served.
#[derive(Clone)]
pub struct Services {
    pub store: Arc<dyn BlobStore>,
    pub ac: Arc<DiskActionCache>,
    pub executor: Arc<Executor>,
    pub activity: Arc<Activity>,
}

impl Services {
    /// Opens the store and action cache under `opts.dir` and starts the
    /// workers on the current tokio runtime.
    pub async fn open(opts: &ServeOptions) -> anyhow::Result<Services> {
        anyhow::ensure!(opts.workers > 0, "the server needs at least one worker");
        let dir = opts.dir.clone();
        let max_size = opts.max_size;
        // Opening scans every stored blob: a blocking job for a big store.
        let (store, ac) = tokio::task::spawn_blocking(move || {
            let store = DiskStore::open(&dir, max_size)?;
            let ac = DiskActionCache::open(&dir)?;
            Ok::<_, crate::cas::store::StoreError>((store, ac))
        })
        .await?
        .with_context(|| format!("opening the server's store in {}", opts.dir.display()))?;
        let store: Arc<dyn BlobStore> = Arc::new(store);
        let ac = Arc::new(ac);

        let mut offered = scheduler::host_properties();
        offered.extend(opts.platform.iter().cloned());
        let props = scheduler::properties(&offered);
        let ops = Arc::new(OperationTable::new(operations::DEFAULT_RETENTION));
        let executor = Arc::new(Executor::start(
            store.clone(),
            ac.clone(),
            ops,
            WorkerConfig {
                work_dir: opts.dir.join("work"),
                default_timeout: DEFAULT_ACTION_TIMEOUT,
                max_timeout: MAX_ACTION_TIMEOUT,
                sandbox: opts.sandbox,
            },
            vec![props; opts.workers],
        ));
        tracing::info!(
            dir = %opts.dir.display(),
            workers = opts.workers,
            platform = ?offered,
            "server state opened"
        );
        Ok(Services {
            store,
            ac,
            executor,
            activity: Arc::new(Activity::new()),
        })
    }

    /// Resolves once the server has had no call for `timeout` and runs no
    /// action (a call in flight, such as an Execute stream, keeps its
    /// operation unfinished, so a long action never looks idle).
    pub async fn idle(&self, timeout: Duration) {
        self.activity
            .idle(timeout, || {
                self.executor.operations().list().iter().any(|op| !op.done)
            })
            .await
    }

    /// The tonic router with every service, size limits raised and
    /// compressed requests accepted; TLS and the caller checks as asked.
    pub async fn serve<I, IO, IE, F>(
        &self,
        tls: Option<&TlsFiles>,
        policy: auth::Policy,
        incoming: I,
        shutdown: F,
    ) -> anyhow::Result<()>
    where
        I: tokio_stream::Stream<Item = Result<IO, IE>>,
        IO: tokio::io::AsyncRead
            + tokio::io::AsyncWrite
            + tonic::transport::server::Connected
            + Unpin
            + Send
            + 'static,
        IO::ConnectInfo: Clone + Send + Sync + 'static,
        IE: Into<Box<dyn std::error::Error + Send + Sync>>,
        F: Future<Output = ()>,
    {
        macro_rules! svc {
            ($server:ident, $inner:expr) => {
                $server::new($inner)
                    .max_decoding_message_size(MAX_MESSAGE_SIZE)
                    .max_encoding_message_size(MAX_MESSAGE_SIZE)
                    .accept_compressed(CompressionEncoding::Gzip)
                    .accept_compressed(CompressionEncoding::Zstd)
            };
        }
        let ops = self.executor.operations().clone();
        let mut builder = Server::builder();
        if let Some(t) = tls {
            let mut cfg = tonic::transport::ServerTlsConfig::new()
                .identity(tonic::transport::Identity::from_pem(&t.cert, &t.key));
            if let Some(ca) = &t.client_ca {
                cfg = cfg.client_ca_root(tonic::transport::Certificate::from_pem(ca));
            }
            builder = builder
                .tls_config(cfg)
                .context("the server's TLS certificate or key")?;
        }
        let gate = auth::Gate {
            policy: Arc::new(policy),
            activity: self.activity.clone(),
        };
        builder
            .layer(tonic::service::InterceptorLayer::new(gate))
            // Large windows and frames: ByteStream moves 1 MiB chunks, and
            // the HTTP/2 defaults (64 KiB window, 16 KiB frames) would cap
            // uploads far below loopback speed.
            .initial_stream_window_size(Some(8 << 20))
            .initial_connection_window_size(Some(32 << 20))
            .max_frame_size(Some(1 << 20))
            .add_service(svc!(CapabilitiesServer, CapabilitiesService))
            .add_service(svc!(
                ContentAddressableStorageServer,
                CasService::new(self.store.clone())
            ))
            .add_service(svc!(
                ByteStreamServer,
                ByteStreamService::new(self.store.clone())
            ))
            // Results carry inlined outputs: compressed for a client that
            // asks (one whose server is far), never for one that does not.
            .add_service(answers::Zstd(svc!(
                ActionCacheServer,
                ActionCacheService::new(self.store.clone(), self.ac.clone())
            )))
            .add_service(answers::Zstd(svc!(
                ExecutionServer,
                ExecutionService::new(self.executor.clone())
            )))
            .add_service(svc!(OperationsServer, OperationsService::new(ops)))
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .context("serving gRPC")
    }
}

/// Opens the state, binds, and serves in a background task until
/// `shutdown` completes. Returns where it listens once connections are
/// accepted (the listener is bound before this returns): for TCP the bound
/// address (port 0 resolved).
pub async fn spawn_until<F>(
    opts: ServeOptions,
    shutdown: F,
) -> anyhow::Result<(Listen, tokio::task::JoinHandle<anyhow::Result<()>>)>
where
    F: Future<Output = ()> + Send + 'static,
{
    let services = Services::open(&opts).await?;
    let policy = auth::Policy {
        owner: rustix::process::geteuid().as_raw(),
        tokens: match &opts.tokens {
            None => None,
            Some(TokenSource::Single(t)) => Some(auth::Tokens::single(t)),
            Some(TokenSource::File(p)) => Some(auth::Tokens::File(
                auth::TokenFile::open(p).map_err(anyhow::Error::msg)?,
            )),
        },
    };
    let idle = services.clone();
    let idle_timeout = opts.idle_timeout;
    let shutdown = async move {
        match idle_timeout {
            Some(t) => tokio::select! {
                () = shutdown => {}
                () = idle.idle(t) => tracing::info!(timeout = ?t, "idle: shutting down"),
            },
            None => shutdown.await,
        }
    };
    match &opts.listen {
        Listen::Tcp(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?;
            let bound = listener.local_addr()?;
            // Small messages (Execute, GetActionResult) must not wait for Nagle.
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|conn| {
                if let Ok(c) = &conn {
                    let _ = c.set_nodelay(true);
                }
                conn
            });
            let handle = tokio::spawn(async move {
                services
                    .serve(opts.tls.as_ref(), policy, incoming, shutdown)
                    .await
            });
            Ok((Listen::Tcp(bound), handle))
        }
        Listen::Unix(path) => {
            let listener = bind_unix(path)?;
            let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
            let handle = tokio::spawn(async move {
                services
                    .serve(opts.tls.as_ref(), policy, incoming, shutdown)
                    .await
            });
            Ok((opts.listen.clone(), handle))
        }
    }
}

/// Binds a Unix socket at `path`, replacing a stale one, and makes it
/// 0600. (The peer check in [`auth::Gate`] holds whatever the mode.)
pub(crate) fn bind_unix(path: &std::path::Path) -> anyhow::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            // A socket nobody answers on is left from a server that died.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                anyhow::bail!(
                    "{}: another server is listening there; stop it first",
                    path.display()
                );
            }
            std::fs::remove_file(path)
                .with_context(|| format!("removing the stale socket {}", path.display()))?;
        }
        Ok(_) => anyhow::bail!(
            "{} exists and is not a socket; choose another --listen unix:PATH",
            path.display()
        ),
        Err(_) => {}
    }
    let listener = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("binding the Unix socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("making {} private", path.display()))?;
    Ok(listener)
}

impl std::fmt::Display for Listen {
    /// The URL a client dials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Tcp(a) => write!(f, "{a}"),
            Listen::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

/// As [`spawn_until`] with no shutdown signal: for in-process tests, which
/// stop the server by aborting the handle or ending the runtime.
pub async fn spawn(
    opts: ServeOptions,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<anyhow::Result<()>>)> {
    match spawn_until(opts, std::future::pending()).await? {
        (Listen::Tcp(addr), handle) => Ok((addr, handle)),
        (Listen::Unix(p), _) => anyhow::bail!("spawn serves TCP; {} is a socket", p.display()),
    }
}

/// `recast serve`: serves until SIGTERM or SIGINT. Prints exactly
/// `listening on grpc://HOST:PORT` (or `unix:PATH`) as the first stdout
/// line once it accepts connections; scripts and the on-demand starter
/// wait for it.
pub async fn serve(opts: ServeOptions) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    // Handlers first: a stop request right after the line is printed must
    // not kill the process mid-write.
    let mut term = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let scheme = match (&opts.listen, opts.tls.is_some()) {
        (Listen::Unix(_), _) => "unix:",
        (_, true) => "grpcs://",
        (_, false) => "grpc://",
    };
    let (addr, mut handle) = spawn_until(opts, async {
        let _ = stop_rx.await;
    })
    .await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {scheme}{addr}")?;
        out.flush()?;
    }
    tracing::info!(%addr, "serving");

    let signal = tokio::select! {
        done = &mut handle => return done?,
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!("{signal}: shutting down");
    let _ = stop_tx.send(());
    match tokio::time::timeout(SHUTDOWN_GRACE, &mut handle).await {
        Ok(done) => done?,
        Err(_) => {
            tracing::warn!("requests still running after {SHUTDOWN_GRACE:?}; stopping anyway");
            handle.abort();
            Ok(())
        }
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
