//! `RemoteError`: what went wrong talking to a REAPI server, shaped by what
//! the caller should do about it.
//!
//! gRPC statuses keep their code ([`RemoteError::Status`]); nothing here
//! flattens a status into a bare string. Turning these into user-facing
//! advice (exit codes, fallbacks) is left to the CLI.

use std::path::PathBuf;

use crate::cas::Digest;
use crate::config::vars;

/// An error from the remote client.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The URL is not one we can dial.
    #[error(
        "invalid server URL {url:?}: {reason}. Use grpc://HOST:PORT or grpcs://HOST[:PORT] (--remote or {})",
        vars::REMOTE
    )]
    InvalidUrl { url: String, reason: String },

    /// Settings that cannot work (bad header, unreadable TLS file, bad instance name).
    #[error("{0}")]
    Config(String),

    /// Nothing answered at the address (or the TLS handshake failed).
    #[error(
        "cannot reach {url}: {reason}. Is the server running? Set --remote or {}.",
        vars::REMOTE
    )]
    Unreachable { url: String, reason: String },

    /// The server answered, but the TLS handshake failed.
    #[error(
        "TLS handshake with {url} failed: {reason}. Check --tls-ca (the CA that signed the server's certificate) and --tls-cert/--tls-key."
    )]
    Tls { url: String, reason: String },

    /// The server answered a call with a non-OK status.
    #[error("{server} answered {call} with {}: {message}", code_name(*.code))]
    Status {
        server: String,
        call: &'static str,
        code: tonic::Code,
        message: String,
    },

    /// Execution needs blobs the server does not have: upload them and retry.
    #[error("the server is missing {} input blob(s), e.g. {}", .0.len(), first(.0))]
    MissingBlobs(Vec<Digest>),

    /// Blobs we asked to read are not in the server's CAS.
    #[error("{server} does not have {} blob(s), e.g. {}", digests.len(), first(digests))]
    NotFound {
        server: String,
        digests: Vec<Digest>,
    },

    /// A downloaded blob does not hash to the digest it was asked for.
    #[error("blob {digest} from {server} arrived corrupted: its content hashes to {got}")]
    BadBlob {
        server: String,
        digest: Digest,
        got: Digest,
    },

    /// The server does not use SHA-256, the only digest function recast speaks.
    #[error("{server} does not offer SHA256 digests (it offers {offered:?}); recast needs SHA256")]
    UnsupportedDigest {
        server: String,
        offered: Vec<String>,
    },

    /// The server sent something the protocol does not allow.
    #[error("{server} broke the protocol: {message}")]
    Protocol { server: String, message: String },

    /// An output the caller's check refused before anything was written.
    #[error("{server} sent an output for {} that was refused: {why}", path.display())]
    Refused {
        server: String,
        path: PathBuf,
        why: String,
    },

    /// A local file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The canonical upper-case name of a gRPC code (`DEADLINE_EXCEEDED`).
pub fn code_name(code: tonic::Code) -> &'static str {
    crate::proto::rpc::Code::try_from(code as i32).map_or("UNKNOWN", |c| c.as_str_name())
}

fn first(digests: &[Digest]) -> String {
    digests
        .first()
        .map_or_else(|| "none".to_string(), |d| d.to_string())
}

impl RemoteError {
    /// The gRPC code, when the error is a status from the server.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            RemoteError::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub(crate) fn status(server: &str, call: &'static str, s: &tonic::Status) -> RemoteError {
        use tonic::Code;
        // A connection that broke mid-call reaches us as a status tonic
        // made from the h2 or I/O error, which it keeps as the source (a
        // server's own answer has none), labelled UNKNOWN, CANCELLED or
        // INTERNAL. It is UNAVAILABLE: the call may well succeed again.
        let broke = std::error::Error::source(s).is_some()
            && matches!(s.code(), Code::Unknown | Code::Cancelled | Code::Internal);
        RemoteError::Status {
            server: server.to_string(),
            call,
            code: if broke { Code::Unavailable } else { s.code() },
            message: if broke {
                format!("the connection broke: {}", s.message())
            } else {
                s.message().to_string()
            },
        }
    }

    pub(crate) fn protocol(server: &str, message: impl Into<String>) -> RemoteError {
        RemoteError::Protocol {
            server: server.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> RemoteError {
        RemoteError::Io {
            path: path.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_that_broke_mid_call_is_unavailable_and_a_servers_unknown_is_not() {
        let broke = tonic::Status::from_error(Box::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset by peer",
        )));
        assert_eq!(broke.code(), tonic::Code::Unknown);
        let e = RemoteError::status("grpc://h:1", "Execute", &broke);
        assert_eq!(e.code(), Some(tonic::Code::Unavailable), "{e}");
        assert!(e.to_string().contains("the connection broke"), "{e}");
        let answered = tonic::Status::unknown("the server's own unknown");
        let e = RemoteError::status("grpc://h:1", "Execute", &answered);
        assert_eq!(e.code(), Some(tonic::Code::Unknown), "{e}");
    }

    #[test]
    fn messages_name_the_server_and_what_to_do() {
        let e = RemoteError::Unreachable {
            url: "grpc://127.0.0.1:1".into(),
            reason: "connection refused".into(),
        };
        assert_eq!(
            e.to_string(),
            "cannot reach grpc://127.0.0.1:1: connection refused. Is the server running? Set --remote or RECAST_REMOTE."
        );
        let e = RemoteError::status(
            "grpc://h:1",
            "Execute",
            &tonic::Status::permission_denied("no"),
        );
        assert_eq!(e.code(), Some(tonic::Code::PermissionDenied));
        assert_eq!(
            e.to_string(),
            "grpc://h:1 answered Execute with PERMISSION_DENIED: no"
        );
        let e = RemoteError::MissingBlobs(vec![Digest::EMPTY]);
        assert!(e.to_string().contains(&Digest::EMPTY.to_string()));
    }
}
