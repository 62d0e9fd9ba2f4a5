//! Dialing a server: `grpc://` / `grpcs://` URLs, TLS settings, and the
//! one HTTP/2 channel every client call shares.
//!
//! URL parsing is pure and unit tested; [`connect`] is the only part that
//! touches the network, and it connects eagerly so a wrong address fails
//! here with a message naming it, not later inside some upload.

use std::net::IpAddr;
use std::path::Path;
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
pub struct ServerUrl {
    pub tls: bool,
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    pub port: u16,
}

impl ServerUrl {
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

/// Parses `grpc://HOST:PORT` or `grpcs://HOST[:PORT]` (443 by default).
pub fn parse_url(url: &str) -> Result<ServerUrl, RemoteError> {
    let bad = |reason: &str| RemoteError::InvalidUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let (tls, rest) = if let Some(r) = url.strip_prefix("grpc://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("grpcs://") {
        (true, r)
    } else if url.starts_with("http://") || url.starts_with("https://") {
        return Err(bad(
            "recast speaks gRPC; write grpc:// instead of http:// and grpcs:// instead of https://",
        ));
    } else {
        return Err(bad("the scheme must be grpc:// or grpcs://"));
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
    Ok(ServerUrl {
        tls,
        host: host.to_string(),
        port,
    })
}

fn read_pem(path: &Path, what: &str) -> Result<Vec<u8>, RemoteError> {
    std::fs::read(path)
        .map_err(|e| RemoteError::Config(format!("cannot read the {what} {}: {e}", path.display())))
}

fn tls_config(url: &ServerUrl, cfg: &RemoteConfig) -> Result<ClientTlsConfig, RemoteError> {
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
        _ => e.to_string(),
    }
}

/// Dials the server and returns the shared channel.
pub async fn connect(cfg: &RemoteConfig, url: &str) -> Result<(ServerUrl, Channel), RemoteError> {
    let parsed = parse_url(url)?;
    let mut endpoint = Endpoint::from_shared(parsed.uri())
        .map_err(|e| RemoteError::InvalidUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?
        .connect_timeout(CONNECT_TIMEOUT.min(cfg.timeout))
        .tcp_nodelay(true)
        // Execute streams can stay quiet for minutes. TCP keepalive finds a
        // dead peer; HTTP/2 pings are avoided because common servers (grpc-go,
        // grpc-java) answer pings more often than every 5 minutes with
        // GOAWAY "too_many_pings".
        .tcp_keepalive(Some(Duration::from_secs(60)))
        // Large windows and frames: downloads of hundreds of MB over a fast
        // link would otherwise stall on HTTP/2's 64 KiB window and 16 KiB
        // frames. (Uploads depend on the server's settings.)
        .initial_stream_window_size(16 << 20)
        .initial_connection_window_size(64 << 20)
        .max_frame_size(1 << 20);
    if parsed.tls {
        endpoint = endpoint
            .tls_config(tls_config(&parsed, cfg)?)
            .map_err(|e| {
                RemoteError::Config(format!("TLS settings for {url}: {}", describe(&e)))
            })?;
    }
    let channel = endpoint.connect().await.map_err(|e| {
        // rustls reports a refused certificate as invalid data.
        let tls_failure = parsed.tls
            && io_cause(&e).is_some_and(|io| io.kind() == std::io::ErrorKind::InvalidData);
        if tls_failure {
            RemoteError::Tls {
                url: url.to_string(),
                reason: describe(&e),
            }
        } else {
            RemoteError::Unreachable {
                url: url.to_string(),
                reason: describe(&e),
            }
        }
    })?;
    Ok((parsed, channel))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> ServerUrl {
        parse_url(url).unwrap()
    }

    #[test]
    fn parses_plain_and_tls_urls() {
        assert_eq!(
            ok("grpc://127.0.0.1:8980"),
            ServerUrl {
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
    }

    #[test]
    fn refuses_other_urls_with_a_reason() {
        for url in [
            "127.0.0.1:8980",
            "http://h:1",
            "https://h:1",
            "unix:///tmp/sock",
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
