//! The one error type of the server's inner functions, and the edge checks
//! every service shares (digests, digest function, blocking calls).
//!
//! Each variant is one gRPC code, so the handlers map an error to a
//! `tonic::Status` (or a `google.rpc.Status` inside a batch or an
//! `ExecuteResponse`) without ever parsing a message.

use prost::Message as _;

use crate::cas::store::StoreError;
use crate::cas::{Digest, missing};
use crate::proto::{reapi, rpc};

/// Why a request failed, by gRPC code.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    /// Blobs the request needs are not in the CAS: FAILED_PRECONDITION with
    /// a `PreconditionFailure` naming each, so a client can upload them.
    #[error("{}", missing::describe(.0))]
    MissingBlobs(Vec<Digest>),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    OutOfRange(String),
    #[error("{0}")]
    DeadlineExceeded(String),
    #[error("{0}")]
    Unimplemented(String),
    #[error("{0}")]
    Internal(String),
    /// The client's own request stream failed (e.g. it went away); its
    /// status is passed on as it came.
    #[error("request stream failed: {}", .0.message())]
    Stream(tonic::Status),
}

impl ServiceError {
    pub fn code(&self) -> tonic::Code {
        use tonic::Code;
        match self {
            ServiceError::InvalidArgument(_) => Code::InvalidArgument,
            ServiceError::NotFound(_) => Code::NotFound,
            ServiceError::MissingBlobs(_) | ServiceError::FailedPrecondition(_) => {
                Code::FailedPrecondition
            }
            ServiceError::OutOfRange(_) => Code::OutOfRange,
            ServiceError::DeadlineExceeded(_) => Code::DeadlineExceeded,
            ServiceError::Unimplemented(_) => Code::Unimplemented,
            ServiceError::Internal(_) => Code::Internal,
            ServiceError::Stream(s) => s.code(),
        }
    }

    /// As a `google.rpc.Status` (for batch entries and `ExecuteResponse`),
    /// with the `PreconditionFailure` detail for missing blobs.
    pub fn to_rpc_status(&self) -> rpc::Status {
        match self {
            ServiceError::MissingBlobs(ds) => missing::status(ds),
            _ => rpc::Status {
                code: self.code() as i32,
                message: self.to_string(),
                details: Vec::new(),
            },
        }
    }
}

impl From<ServiceError> for tonic::Status {
    fn from(e: ServiceError) -> tonic::Status {
        match e {
            ServiceError::Stream(s) => s,
            // The binary `grpc-status-details-bin` trailer carries the whole
            // google.rpc.Status, so clients that read details find the list.
            ServiceError::MissingBlobs(_) => {
                let status = e.to_rpc_status();
                tonic::Status::with_details(
                    e.code(),
                    status.message.clone(),
                    status.encode_to_vec().into(),
                )
            }
            _ => tonic::Status::new(e.code(), e.to_string()),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> ServiceError {
        match e {
            StoreError::DigestMismatch { .. } => ServiceError::InvalidArgument(e.to_string()),
            StoreError::NotFound(d) => ServiceError::MissingBlobs(vec![d]),
            StoreError::Io { .. } => ServiceError::Internal(e.to_string()),
        }
    }
}

/// A wire digest, checked; `field` names it in the error.
pub fn digest_arg(field: &str, d: Option<&reapi::Digest>) -> Result<Digest, ServiceError> {
    Digest::from_proto_opt(d).map_err(|e| ServiceError::InvalidArgument(format!("{field}: {e}")))
}

/// This server only hashes with SHA-256; UNKNOWN means the default, which
/// is SHA-256 as the capabilities say.
pub fn check_digest_function(v: i32) -> Result<(), ServiceError> {
    use reapi::digest_function::Value;
    match Value::try_from(v) {
        Ok(Value::Unknown | Value::Sha256) => Ok(()),
        Ok(other) => Err(ServiceError::InvalidArgument(format!(
            "digest function {} is not supported; this server uses SHA256",
            other.as_str_name()
        ))),
        Err(_) => Err(ServiceError::InvalidArgument(format!(
            "unknown digest function {v}"
        ))),
    }
}

/// Runs blocking store or runner code off the async threads.
pub async fn blocking<T, F>(f: F) -> Result<T, ServiceError>
where
    F: FnOnce() -> Result<T, ServiceError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ServiceError::Internal(format!("server task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_blobs_carry_a_precondition_failure() {
        let d = Digest::of_bytes(b"x");
        let s = ServiceError::MissingBlobs(vec![d]).to_rpc_status();
        assert_eq!(s.code, tonic::Code::FailedPrecondition as i32);
        assert_eq!(s.details.len(), 1);
        assert_eq!(s.details[0].type_url, missing::PRECONDITION_FAILURE_URL);
        let pf = rpc::PreconditionFailure::decode(s.details[0].value.as_slice()).unwrap();
        assert_eq!(pf.violations[0].r#type, "MISSING");
        assert_eq!(pf.violations[0].subject, format!("blobs/{}/1", d.hex()));

        let t = tonic::Status::from(ServiceError::MissingBlobs(vec![d]));
        assert_eq!(t.code(), tonic::Code::FailedPrecondition);
        let inner = rpc::Status::decode(t.details()).unwrap();
        assert_eq!(inner.details.len(), 1);
    }

    #[test]
    fn store_errors_keep_their_meaning() {
        let a = Digest::of_bytes(b"a");
        let b = Digest::of_bytes(b"b");
        let e: ServiceError = StoreError::DigestMismatch {
            expected: a,
            actual: b,
        }
        .into();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.to_string().contains(&a.to_string()));
    }

    #[test]
    fn digest_functions() {
        assert!(check_digest_function(0).is_ok());
        assert!(check_digest_function(1).is_ok());
        assert!(check_digest_function(2).is_err());
        assert!(check_digest_function(99).is_err());
        assert!(digest_arg("action_digest", None).is_err());
    }
}
