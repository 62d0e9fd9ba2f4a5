//! Dialing a server: `grpc://` / `grpcs://` / `unix:` URLs, TLS settings,
//! and the one HTTP/2 channel every client call shares.
//!
//! URL parsing is pure and unit tested; [`connect`] is the only part that
//! touches the network, and it connects eagerly so a wrong address fails
//! here with a message naming it, not later inside some upload.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::RemoteError;
use crate::config::RemoteConfig;

/// How long dialing may take before the server counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the system keeps its CA bundle, by distribution. Used for grpcs://
/// when no `--tls-ca` is given (tonic is built without a roots feature).
const SYSTEM_CA_BUNDLES: [&str; 6] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/usr/local/etc/openssl/cert.pem",
    "/opt/homebrew/etc/openssl@3/cert.pem",
];

/// A parsed server URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerUrl {
    /// `grpc://` or `grpcs://`.
    Tcp(TcpUrl),
    /// `unix:/PATH` (or `unix:///PATH`): a Unix socket on this machine.
    Unix(PathBuf),
}

/// A TCP server's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpUrl {
    pub tls: bool,
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    pub port: u16,
}

impl ServerUrl {
    /// True when the server is on this machine: bandwidth is then free and
    /// compression only costs CPU.
    pub fn is_loopback(&self) -> bool {
        match self {
            ServerUrl::Tcp(t) => t.is_loopback(),
            ServerUrl::Unix(_) => true,
        }
    }
}

impl TcpUrl {
    /// The `http(s)://` URI tonic dials.
    fn uri(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }

    /// True when the server is on this machine: bandwidth is then free and
    /// compression only costs CPU.
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

/// Parses `grpc://HOST:PORT`, `grpcs://HOST[:PORT]` (443 by default) or
/// `unix:/ABSOLUTE/PATH` (also spelled `unix:///ABSOLUTE/PATH`).
pub fn parse_url(url: &str) -> Result<ServerUrl, RemoteError> {
    let bad = |reason: &str| RemoteError::InvalidUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    if let Some(path) = url.strip_prefix("unix:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        if !path.starts_with('/') {
            return Err(bad(
                "a Unix socket is given by its absolute path: unix:/PATH",
            ));
        }
        return Ok(ServerUrl::Unix(PathBuf::from(path)));
    }
    let (tls, rest) = if let Some(r) = url.strip_prefix("grpc://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("grpcs://") {
        (true, r)
    } else if url.starts_with("http://") || url.starts_with("https://") {
        return Err(bad(
            "recast speaks gRPC; write grpc:// instead of http:// and grpcs:// instead of https://",
        ));
    } else {
        return Err(bad("the scheme must be grpc://, grpcs:// or unix:"));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('/') {
        return Err(bad(
            "a server URL has no path; give the instance name with --instance",
        ));
    }
    if rest.contains('@') {
        return Err(bad(
            "credentials do not belong in the URL; use --remote-header",
        ));
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| bad("unclosed '[' in an IPv6 address"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| bad("expected ':PORT' after the IPv6 address"))?,
            ),
        };
        (h, port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return Err(bad("the host is missing"));
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad("the port must be a number from 1 to 65535"))?,
        None if tls => 443,
        None => return Err(bad("grpc:// needs a port, as in grpc://HOST:PORT")),
    };
    Ok(ServerUrl::Tcp(TcpUrl {
        tls,
        host: host.to_string(),
        port,
    }))
}

fn read_pem(path: &Path, what: &str) -> Result<Vec<u8>, RemoteError> {
    std::fs::read(path)
        .map_err(|e| RemoteError::Config(format!("cannot read the {what} {}: {e}", path.display())))
}

fn tls_config(url: &TcpUrl, cfg: &RemoteConfig) -> Result<ClientTlsConfig, RemoteError> {
    let mut tls = ClientTlsConfig::new().domain_name(url.host.clone());
    let ca = match &cfg.tls_ca {
        Some(path) => read_pem(path, "TLS CA certificate (--tls-ca)")?,
        None => SYSTEM_CA_BUNDLES
            .iter()
            .find_map(|p| std::fs::read(p).ok())
            .ok_or_else(|| {
                RemoteError::Config(
                    "no system CA bundle found for grpcs://; give the server's CA with --tls-ca"
                        .into(),
                )
            })?,
    };
    tls = tls.ca_certificate(Certificate::from_pem(ca));
    match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(cert), Some(key)) => {
            let cert = read_pem(cert, "TLS client certificate (--tls-cert)")?;
            let key = read_pem(key, "TLS client key (--tls-key)")?;
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        (None, None) => {}
        _ => {
            return Err(RemoteError::Config(
                "mutual TLS needs both --tls-cert and --tls-key".into(),
            ));
        }
    }
    Ok(tls)
}

/// The first I/O error in an error's chain.
fn io_cause<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cur = e.source();
    }
    None
}

/// Describes a transport error by its innermost cause ("connection
/// refused"), which is what the user can act on.
pub(crate) fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    if let Some(io) = io_cause(err) {
        return io_reason(io);
    }
    let mut last = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        last = e.to_string();
        cur = e.source();
    }
    last
}

fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connection refused".into(),
        TimedOut => "timed out".into(),
        ConnectionReset => "connection reset".into(),
        PermissionDenied => "permission denied".into(),
        NotFound => "no such socket".into(),
        _ => e.to_string(),
    }
}

/// Finds the socket to dial, when a connection is needed.
#[derive(Clone)]
pub struct FindSocket {
    /// The socket a running process recorded, if any: a file read and a
    /// signal-0 check, on the caller's thread, dialed first. A wrapped
    /// compile's one call then needs no thread of its own.
    pub recorded: Arc<dyn Fn() -> Option<PathBuf> + Send + Sync>,
    /// The socket, once one answers: it may start the process that
    /// listens there (on a blocking thread). Asked when `recorded` names
    /// none or its dial fails.
    pub find: Arc<dyn Fn() -> std::io::Result<PathBuf> + Send + Sync>,
}

impl FindSocket {
    /// The socket at `path`, always.
    pub fn at(path: PathBuf) -> FindSocket {
        let again = path.clone();
        FindSocket {
            recorded: Arc::new(move || Some(path.clone())),
            find: Arc::new(move || Ok(again.clone())),
        }
    }
}

/// A connector that dials the socket `find` names, on a blocking thread.
/// What tonic dials with: a service from the URI to a stream of type `S`.
trait Connector<S>:
    tower::Service<
        tonic::transport::Uri,
        Response = hyper_util::rt::TokioIo<S>,
        Error = std::io::Error,
        Future: Send,
    > + Send
    + Clone
    + 'static
{
}

impl<S, C> Connector<S> for C where
    C: tower::Service<
            tonic::transport::Uri,
            Response = hyper_util::rt::TokioIo<S>,
            Error = std::io::Error,
            Future: Send,
        > + Send
        + Clone
        + 'static
{
}

fn unix_connector(find: FindSocket) -> impl Connector<tokio::net::UnixStream> {
    tower::service_fn(move |_: tonic::transport::Uri| {
        let find = find.clone();
        async move {
            if let Some(path) = (find.recorded)()
                && let Ok(stream) = tokio::net::UnixStream::connect(path).await
            {
                return Ok(hyper_util::rt::TokioIo::new(stream));
            }
            let path = tokio::task::spawn_blocking(move || (find.find)())
                .await
                .map_err(std::io::Error::other)??;
            let stream = tokio::net::UnixStream::connect(path).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
        }
    })
}

/// A TCP stream that acknowledges what it reads at once.
///
/// Servers that leave Nagle's algorithm on (NativeLink 1.6 does not set
/// `TCP_NODELAY` on the sockets it accepts) hold a call's trailers until
/// the segment before them is acknowledged, and Linux delays that ACK by up
/// to 40 ms: every call would cost 40 ms on loopback. Asking for a quick
/// ACK after each read sends the pending ACK then, so the trailers follow
/// within a round trip. One `setsockopt` per read; other systems keep their
/// own ACK timing.
struct QuickAck(tokio::net::TcpStream);

impl tokio::io::AsyncRead for QuickAck {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.0).poll_read(cx, buf);
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if matches!(polled, std::task::Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let _ = rustix::net::sockopt::set_tcp_quickack(&self.0, true);
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let _ = before;
        polled
    }
}

impl tokio::io::AsyncWrite for QuickAck {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// How often an idle connection is probed: execute streams can stay quiet
/// for minutes, and TCP keepalive finds a dead peer. HTTP/2 pings are
/// avoided because common servers (grpc-go, grpc-java) answer pings more
/// often than every 5 minutes with GOAWAY "too_many_pings".
const KEEPALIVE: Duration = Duration::from_secs(60);

/// A connector that dials `host:port` over TCP with `TCP_NODELAY`,
/// keepalive and [`QuickAck`] (tonic layers TLS over it for grpcs://).
fn tcp_connector(host: String, port: u16) -> impl Connector<QuickAck> {
    tower::service_fn(move |_: tonic::transport::Uri| {
        let host = host.clone();
        async move {
            let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            stream.set_nodelay(true)?;
            rustix::net::sockopt::set_socket_keepalive(&stream, true)?;
            #[cfg(any(target_os = "linux", target_os = "android"))]
            rustix::net::sockopt::set_tcp_keepidle(&stream, KEEPALIVE)?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(QuickAck(stream)))
        }
    })
}

/// A channel to a Unix socket that `find` names, dialed at the first call
/// that needs it (and again after a broken connection).
pub fn lazy_unix(cfg: &RemoteConfig, find: FindSocket) -> Channel {
    Endpoint::from_static("http://recast.socket")
        .connect_timeout(CONNECT_TIMEOUT.max(cfg.timeout.min(Duration::from_secs(60))))
        .initial_stream_window_size(16 << 20)
        .initial_connection_window_size(64 << 20)
        .max_frame_size(1 << 20)
        .connect_with_connector_lazy(unix_connector(find))
}

/// A channel to the TCP server at `url`, dialed at the first call (and
/// again after a broken connection): the warm front's upstream.
pub fn lazy(cfg: &RemoteConfig, url: &str) -> Result<Channel, RemoteError> {
    let (parsed, endpoint) = endpoint(cfg, url)?;
    match parsed {
        ServerUrl::Tcp(t) => {
            Ok(endpoint.connect_with_connector_lazy(tcp_connector(t.host, t.port)))
        }
        ServerUrl::Unix(_) => Err(RemoteError::InvalidUrl {
            url: url.to_string(),
            reason: "a front forwards to a TCP server (grpc:// or grpcs://)".into(),
        }),
    }
}

/// The parsed URL and the endpoint to dial it with `cfg`'s settings.
fn endpoint(cfg: &RemoteConfig, url: &str) -> Result<(ServerUrl, Endpoint), RemoteError> {
    let parsed = parse_url(url)?;
    let (uri, tls) = match &parsed {
        ServerUrl::Tcp(t) => (t.uri(), t.tls.then_some(t)),
        // Not dialed: the connector below reaches the socket.
        ServerUrl::Unix(_) => ("http://recast.socket".to_string(), None),
    };
    let mut endpoint = Endpoint::from_shared(uri)
        .map_err(|e| RemoteError::InvalidUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?
        .connect_timeout(CONNECT_TIMEOUT.min(cfg.timeout))
        // Large windows and frames: downloads of hundreds of MB over a fast
        // link would otherwise stall on HTTP/2's 64 KiB window and 16 KiB
        // frames. (Uploads depend on the server's settings.)
        .initial_stream_window_size(16 << 20)
        .initial_connection_window_size(64 << 20)
        .max_frame_size(1 << 20);
    if let Some(t) = tls {
        endpoint = endpoint.tls_config(tls_config(t, cfg)?).map_err(|e| {
            RemoteError::Config(format!("TLS settings for {url}: {}", describe(&e)))
        })?;
    }
    Ok((parsed, endpoint))
}

/// Dials the server and returns the shared channel.
pub async fn connect(cfg: &RemoteConfig, url: &str) -> Result<(ServerUrl, Channel), RemoteError> {
    let (parsed, endpoint) = endpoint(cfg, url)?;
    let tls = matches!(&parsed, ServerUrl::Tcp(t) if t.tls);
    let connected = match &parsed {
        ServerUrl::Tcp(t) => {
            endpoint
                .connect_with_connector(tcp_connector(t.host.clone(), t.port))
                .await
        }
        ServerUrl::Unix(path) => {
            let path = path.clone();
            endpoint
                .connect_with_connector(unix_connector(FindSocket::at(path.clone())))
                .await
        }
    };
    let channel = connected.map_err(|e| {
        // rustls reports a refused certificate as invalid data.
        let tls_failure =
            tls && io_cause(&e).is_some_and(|io| io.kind() == std::io::ErrorKind::InvalidData);
        if tls_failure {
            return RemoteError::Tls {
                url: url.to_string(),
                reason: describe(&e),
            };
        }
        let mut reason = describe(&e);
        if matches!(parsed, ServerUrl::Unix(_))
            && io_cause(&e).is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
        {
            reason.push_str(
                " (the socket belongs to another user: each user has an embedded server \
                 of their own; unset RECAST_REMOTE to use yours)",
            );
        }
        RemoteError::Unreachable {
            url: url.to_string(),
            reason,
        }
    })?;
    Ok((parsed, channel))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> TcpUrl {
        match parse_url(url).unwrap() {
            ServerUrl::Tcp(t) => t,
            ServerUrl::Unix(p) => panic!("{url}: a socket {}", p.display()),
        }
    }

    #[test]
    fn parses_plain_and_tls_urls() {
        assert_eq!(
            ok("grpc://127.0.0.1:8980"),
            TcpUrl {
                tls: false,
                host: "127.0.0.1".into(),
                port: 8980
            }
        );
        assert_eq!(ok("grpcs://remote.example").port, 443);
        assert!(ok("grpcs://remote.example:8443/").tls);
        let v6 = ok("grpc://[::1]:50051");
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.uri(), "http://[::1]:50051");
        assert!(v6.is_loopback());
        assert!(ok("grpc://localhost:1").is_loopback());
        assert!(!ok("grpcs://remote.example").is_loopback());
        assert_eq!(ok("grpcs://h:1").uri(), "https://h:1");
        for url in ["unix:/run/r.sock", "unix:///run/r.sock"] {
            let u = parse_url(url).unwrap();
            assert_eq!(u, ServerUrl::Unix(PathBuf::from("/run/r.sock")));
            assert!(u.is_loopback());
        }
    }

    #[test]
    fn refuses_other_urls_with_a_reason() {
        for url in [
            "127.0.0.1:8980",
            "http://h:1",
            "https://h:1",
            "unix:relative.sock",
            "grpc://h",
            "grpc://h:0",
            "grpc://h:99999",
            "grpc://:1",
            "grpc://h:1/instance",
            "grpc://user:pw@h:1",
            "grpc://[::1",
        ] {
            let err = parse_url(url).unwrap_err();
            assert!(
                matches!(err, RemoteError::InvalidUrl { .. }),
                "{url}: {err}"
            );
            assert!(err.to_string().contains(url), "{err}");
        }
    }
}
