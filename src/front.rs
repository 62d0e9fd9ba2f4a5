//! The warm front: one long-lived process per user and remote server that
//! holds the connection to that server, so short-lived wrapper processes
//! do not each pay for one.
//!
//! A compile that reaches a server over a network pays, per process, a TCP
//! handshake, TLS, and HTTP/2's settings before its first call: two or
//! three round trips that a 40 ms link turns into 80-120 ms, on every
//! compile. The front pays them once. Wrappers reach it over a Unix socket
//! in the user's private cache dir (`fronts/KEY/front.sock`, KEY a hash of
//! the server URL and its TLS files), and it forwards each gRPC call as it
//! is (path, headers, body, trailers) over its one HTTP/2 connection to
//! the server, which multiplexes every caller's calls.
//!
//! What it is not, by design:
//! - Not a cache, and not a second idea of the protocol. It never parses a
//!   message: the wrapper still reads the local tier itself, with no call
//!   and no front; the server still checks every call, with the wrapper's
//!   own headers (its tokens) forwarded. A bug here can lose a call, never
//!   change an answer.
//! - Not a bottleneck: forwarding is a copy of frames on the front's one
//!   thread (`cli` gives `recast front` a current-thread runtime: frames
//!   that crossed threads cost a far hit more than they saved), with no
//!   lock between callers; HTTP/2 flow control carries back-pressure both
//!   ways.
//! - Not a start-up race: it is started as the embedded server is
//!   (`session::daemon`, under a lock, its socket checked before reuse), and
//!   a wrapper that cannot reach it compiles locally, as with any server
//!   failure.
//!
//! Only the owner may call it: the socket is 0600 in a 0700 directory, and
//! each connection's peer uid is checked against the front's own.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use tonic::codegen::http;
use tonic::transport::Channel;
use tower::Service as _;

use crate::config::RemoteConfig;

/// What a front serves.
pub struct FrontOptions {
    /// The Unix socket wrappers dial.
    pub listen: PathBuf,
    /// The server's URL (`grpc://` or `grpcs://`).
    pub upstream: String,
    /// TLS files and timeouts for the upstream connection (headers are the
    /// callers' own and travel with each call).
    pub remote: RemoteConfig,
    /// Stop after this long without a call while none is open.
    pub idle_timeout: Option<Duration>,
}

/// When the front last saw a call begin or end, and how many are open.
struct Activity {
    seen: crate::server::Activity,
    open: AtomicU64,
}

/// Ends a call's activity when dropped: the call finished, failed, or its
/// caller went away.
struct Open(Arc<Activity>);

impl Open {
    fn new(a: &Arc<Activity>) -> Open {
        a.open.fetch_add(1, Ordering::Relaxed);
        a.seen.touch();
        Open(a.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.seen.touch();
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its call counted as open until it ends, and
/// ends a call whose connection to the server broke midway with trailers
/// saying UNAVAILABLE (which the caller retries) rather than a reset
/// stream (which it would read as CANCELLED or UNKNOWN, and give up).
struct Counted {
    body: tonic::body::Body,
    url: Arc<str>,
    ended: bool,
    _open: Open,
}

impl http_body::Body for Counted {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        use std::task::Poll;
        if self.ended {
            return Poll::Ready(None);
        }
        match std::pin::Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(Some(Err(broke))) => {
                self.ended = true;
                tracing::warn!(url = %self.url, error = %broke, "a forwarded call broke");
                let status = tonic::Status::unavailable(format!(
                    "the recast front's connection to {} broke mid-call: {}",
                    self.url,
                    broke.message()
                ));
                let mut trailers = http::HeaderMap::new();
                Poll::Ready(Some(match status.add_header(&mut trailers) {
                    Ok(()) => Ok(http_body::Frame::trailers(trailers)),
                    Err(e) => Err(e),
                }))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Forwards one call to the server, or answers UNAVAILABLE naming it.
async fn forward(
    upstream: Channel,
    url: Arc<str>,
    activity: Arc<Activity>,
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<Counted>, Infallible> {
    let open = Open::new(&activity);
    let (parts, body) = req.into_parts();
    // The channel puts the server's scheme and authority in the URI; path,
    // headers (the caller's tokens, grpc-timeout) and body go as they are.
    let req = http::Request::from_parts(parts, tonic::body::Body::new(body));
    let mut upstream = upstream;
    let sent = async {
        std::future::poll_fn(|cx| upstream.poll_ready(cx)).await?;
        upstream.call(req).await
    };
    let response = match sent.await {
        Ok(resp) => resp,
        Err(e) => {
            let reason = crate::remote::channel::describe(&e);
            tracing::warn!(%url, %reason, "forwarding a call");
            tonic::Status::unavailable(format!("the recast front could not reach {url}: {reason}"))
                .into_http()
        }
    };
    Ok(response.map(|body| Counted {
        body,
        url,
        ended: false,
        _open: open,
    }))
}

/// Binds, prints `listening on unix:PATH` as its first stdout line (the
/// on-demand starter waits for it), and forwards calls until SIGTERM,
/// SIGINT or the idle timeout.
pub async fn serve(opts: FrontOptions) -> anyhow::Result<()> {
    use std::io::Write as _;
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
    // Dialed at the first call, and again after the connection breaks.
    let upstream = crate::remote::channel::lazy(&opts.remote, &opts.upstream)?;
    let url: Arc<str> = Arc::from(opts.upstream.as_str());
    let listener = crate::server::bind_unix(&opts.listen)?;
    let owner = rustix::process::geteuid().as_raw();
    let activity = Arc::new(Activity {
        seen: crate::server::Activity::new(),
        open: AtomicU64::new(0),
    });
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on unix:{}", opts.listen.display())?;
        out.flush()?;
    }
    tracing::info!(listen = %opts.listen.display(), upstream = %url, "front serving");
    let idle = {
        let activity = activity.clone();
        let timeout = opts.idle_timeout;
        async move {
            let Some(timeout) = timeout else {
                return std::future::pending().await;
            };
            let open = || activity.open.load(Ordering::Relaxed) > 0;
            activity.seen.idle(timeout, open).await
        }
    };
    tokio::pin!(idle);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection");
                    continue;
                }
            },
            () = &mut idle => {
                tracing::info!("idle: shutting down");
                break;
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        };
        let peer = stream.peer_cred().map(|c| c.uid());
        let mut builder =
            hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
        builder
            .initial_stream_window_size(16 << 20)
            .initial_connection_window_size(64 << 20)
            .max_frame_size(1 << 20);
        let io = hyper_util::rt::TokioIo::new(stream);
        if peer.as_ref().ok() != Some(&owner) {
            // Told why, as the embedded server tells it, and never forwarded.
            tracing::warn!(?peer, "refusing a connection from another user");
            let service =
                hyper::service::service_fn(move |_: http::Request<hyper::body::Incoming>| {
                    let refusal = tonic::Status::permission_denied(format!(
                        "this recast front belongs to uid {owner} and forwards calls for its \
                         owner only"
                    ));
                    std::future::ready(Ok::<_, Infallible>(
                        refusal.into_http::<tonic::body::Body>(),
                    ))
                });
            tokio::spawn(async move {
                let _ = builder.serve_connection(io, service).await;
            });
            continue;
        }
        let upstream = upstream.clone();
        let url = url.clone();
        let activity = activity.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                forward(upstream.clone(), url.clone(), activity.clone(), req)
            });
            if let Err(e) = builder.serve_connection(io, service).await {
                tracing::debug!(error = %e, "a caller's connection ended");
            }
        });
    }
    let _ = std::fs::remove_file(&opts.listen);
    Ok(())
}
