//! Execution: the `Execute` stream, `WaitExecution` when it breaks, and
//! the decoding of the final `Operation`.
//!
//! A missing-inputs answer (FAILED_PRECONDITION with `PreconditionFailure`
//! violations of type MISSING) becomes [`RemoteError::MissingBlobs`], which
//! [`Client::execute_with_upload`] answers by uploading those blobs and
//! asking once more. Any other non-OK status inside the `ExecuteResponse`
//! (a timeout with a partial result, say) is returned with the response for
//! the caller to report.

use std::collections::HashMap;
use std::time::Duration;

use prost::Message;

use super::retry::{CallKind, backoff_delay, retry};
use super::{Blob, Client, RemoteError, UploadStats};
use crate::cas::Digest;
use crate::proto::longrunning::{Operation, operation};
use crate::proto::reapi;
use crate::proto::rpc;
/// How often Execute is tried again after sending the inputs it named
/// missing.
const MISSING_ROUNDS: usize = 3;

/// How often a broken Execute/WaitExecution stream is picked up again.
const MAX_STREAM_BREAKS: u32 = 5;

const EXECUTE_RESPONSE_TYPE: &str = "build.bazel.remote.execution.v2.ExecuteResponse";
const PRECONDITION_FAILURE_TYPE: &str = "google.rpc.PreconditionFailure";

/// Codes with which a stream ends when the connection, not the operation,
/// failed: the operation may still be running, so WaitExecution finds it.
fn is_stream_break(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unavailable
            | tonic::Code::Unknown
            | tonic::Code::Internal
            | tonic::Code::Cancelled
            | tonic::Code::Aborted
    )
}

/// The `type.googleapis.com/`-prefixed name an `Any` carries is `name`.
fn any_is(any: &prost_types::Any, name: &str) -> bool {
    any.type_url.rsplit('/').next() == Some(name)
}

/// Digests named by MISSING violations in a FAILED_PRECONDITION status.
pub fn missing_blobs(status: &rpc::Status) -> Vec<Digest> {
    if status.code != tonic::Code::FailedPrecondition as i32 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for detail in &status.details {
        if !any_is(detail, PRECONDITION_FAILURE_TYPE) {
            continue;
        }
        let Ok(pf) = rpc::PreconditionFailure::decode(detail.value.as_slice()) else {
            continue;
        };
        for v in pf.violations {
            if v.r#type != "MISSING" {
                continue;
            }
            // Subjects are `blobs/{hash}/{size}`.
            if let Some(d) = v
                .subject
                .strip_prefix("blobs/")
                .and_then(|s| s.parse().ok())
            {
                out.push(d);
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

impl Client {
    fn rpc_status_error(&self, call: &'static str, s: &rpc::Status) -> RemoteError {
        let missing = missing_blobs(s);
        if !missing.is_empty() {
            return RemoteError::MissingBlobs(missing);
        }
        RemoteError::Status {
            server: self.inner.url.clone(),
            call,
            code: tonic::Code::from(s.code),
            message: s.message.clone(),
        }
    }

    /// A gRPC status, with any `google.rpc.Status` details it carries.
    fn exec_error(&self, call: &'static str, s: &tonic::Status) -> RemoteError {
        if s.code() == tonic::Code::FailedPrecondition
            && let Ok(detail) = rpc::Status::decode(s.details())
        {
            let missing = missing_blobs(&detail);
            if !missing.is_empty() {
                return RemoteError::MissingBlobs(missing);
            }
        }
        self.status(call, s)
    }

    /// The outcome in a finished operation.
    fn finish(&self, op: Operation) -> Result<reapi::ExecuteResponse, RemoteError> {
        match op.result {
            Some(operation::Result::Error(s)) => Err(self.rpc_status_error("Execute", &s)),
            Some(operation::Result::Response(any)) => {
                if !any_is(&any, EXECUTE_RESPONSE_TYPE) {
                    return Err(self.protocol(format!(
                        "operation {} finished with a {}, not an ExecuteResponse",
                        op.name, any.type_url
                    )));
                }
                let resp = reapi::ExecuteResponse::decode(any.value.as_slice()).map_err(|e| {
                    self.protocol(format!("undecodable ExecuteResponse in {}: {e}", op.name))
                })?;
                let missing = resp.status.as_ref().map(missing_blobs).unwrap_or_default();
                if !missing.is_empty() {
                    return Err(RemoteError::MissingBlobs(missing));
                }
                Ok(resp)
            }
            None => Err(self.protocol(format!(
                "operation {} is done but has neither a response nor an error",
                op.name
            ))),
        }
    }

    /// Runs `action` and waits for its result, following the operation
    /// across broken streams with WaitExecution. Each stream may last the
    /// client's call timeout.
    pub async fn execute(
        &self,
        action: &Digest,
        skip_cache_lookup: bool,
    ) -> Result<reapi::ExecuteResponse, RemoteError> {
        self.execute_with_timeout(action, skip_cache_lookup, None)
            .await
    }

    /// [`execute`](Self::execute) for an action with its own timeout: each
    /// stream may then last the call timeout plus `action_timeout`, so the
    /// client does not give up on an action the server still runs.
    pub async fn execute_with_timeout(
        &self,
        action: &Digest,
        skip_cache_lookup: bool,
        action_timeout: Option<Duration>,
    ) -> Result<reapi::ExecuteResponse, RemoteError> {
        let mut client = self.exec_client().await?;
        let md = &self.inner.md;
        let deadline = md.timeout() + action_timeout.unwrap_or_default();
        let mut name: Option<String> = None;
        let mut breaks = 0;
        loop {
            let started = match &name {
                None => {
                    let req = reapi::ExecuteRequest {
                        instance_name: self.inner.instance.clone(),
                        skip_cache_lookup,
                        action_digest: Some(action.to_proto()),
                        ..Default::default()
                    };
                    retry(CallKind::Write, "Execute", || {
                        let mut c = client.clone();
                        let req = md.request_with_timeout(req.clone(), Some(action), deadline);
                        async move { c.execute(req).await }
                    })
                    .await
                }
                Some(n) => {
                    let req = reapi::WaitExecutionRequest { name: n.clone() };
                    client
                        .wait_execution(md.request_with_timeout(req, Some(action), deadline))
                        .await
                }
            };
            let call = if name.is_some() {
                "WaitExecution"
            } else {
                "Execute"
            };
            let broke = match started {
                Ok(resp) => {
                    let mut stream = resp.into_inner();
                    loop {
                        match stream.message().await {
                            Ok(Some(op)) => {
                                if op.done {
                                    return self.finish(op);
                                }
                                if !op.name.is_empty() {
                                    name = Some(op.name);
                                }
                            }
                            Ok(None) => break tonic::Status::unavailable("stream ended early"),
                            Err(s) if is_stream_break(s.code()) => break s,
                            Err(s) => return Err(self.exec_error(call, &s)),
                        }
                    }
                }
                // The server forgot the operation (a restart): run it again.
                Err(s) if name.is_some() && s.code() == tonic::Code::NotFound => {
                    name = None;
                    s
                }
                Err(s) if name.is_some() && is_stream_break(s.code()) => s,
                Err(s) => return Err(self.exec_error(call, &s)),
            };
            breaks += 1;
            if breaks > MAX_STREAM_BREAKS {
                return Err(self.status(call, &broke));
            }
            tracing::debug!(?name, %broke, "execution stream broke; reconnecting");
            tokio::time::sleep(backoff_delay(breaks, 0.5)).await;
        }
    }

    /// [`execute_with_timeout`](Self::execute_with_timeout), and if the
    /// server lacks inputs, uploads them from `blobs` and executes once
    /// more. Returns the response and what had to be uploaded.
    pub async fn execute_with_upload(
        &self,
        action: &Digest,
        skip_cache_lookup: bool,
        action_timeout: Option<Duration>,
        blobs: &HashMap<Digest, Blob>,
    ) -> Result<(reapi::ExecuteResponse, UploadStats), RemoteError> {
        let run = || self.execute_with_timeout(action, skip_cache_lookup, action_timeout);
        let mut sent = UploadStats::default();
        // A server under eviction pressure may name one missing blob at a
        // time, or lose another while we send the first: a few rounds.
        for _ in 0..MISSING_ROUNDS {
            match run().await {
                Err(RemoteError::MissingBlobs(missing))
                    if missing.iter().all(|d| blobs.contains_key(d)) =>
                {
                    tracing::debug!(count = missing.len(), "server lacks inputs; uploading");
                    let stats = self
                        .upload(missing.iter().map(|d| blobs[d].clone()).collect())
                        .await?;
                    sent.blobs += stats.blobs;
                    sent.bytes += stats.bytes;
                }
                other => return other.map(|r| (r, sent)),
            }
        }
        run().await.map(|r| (r, sent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any<M: Message>(type_name: &str, m: &M) -> prost_types::Any {
        prost_types::Any {
            type_url: format!("type.googleapis.com/{type_name}"),
            value: m.encode_to_vec(),
        }
    }

    fn precondition(subjects: &[(&str, String)]) -> rpc::Status {
        rpc::Status {
            code: tonic::Code::FailedPrecondition as i32,
            message: "missing".into(),
            details: vec![any(
                PRECONDITION_FAILURE_TYPE,
                &rpc::PreconditionFailure {
                    violations: subjects
                        .iter()
                        .map(|(t, s)| rpc::precondition_failure::Violation {
                            r#type: t.to_string(),
                            subject: s.clone(),
                            description: String::new(),
                        })
                        .collect(),
                },
            )],
        }
    }

    #[test]
    fn finds_missing_blobs_in_precondition_failures() {
        let a = Digest::of_bytes(b"a");
        let b = Digest::of_bytes(b"b");
        let s = precondition(&[
            ("MISSING", format!("blobs/{a}")),
            ("MISSING", format!("blobs/{b}")),
            ("MISSING", format!("blobs/{a}")),
            ("OTHER", format!("blobs/{b}")),
            ("MISSING", "not a digest".into()),
        ]);
        let mut want = vec![a, b];
        want.sort();
        assert_eq!(missing_blobs(&s), want);
        let mut other_code = s.clone();
        other_code.code = tonic::Code::Internal as i32;
        assert!(missing_blobs(&other_code).is_empty());
        assert!(missing_blobs(&rpc::Status::default()).is_empty());
    }

    #[test]
    fn stream_breaks_are_transport_codes() {
        assert!(is_stream_break(tonic::Code::Unavailable));
        assert!(is_stream_break(tonic::Code::Unknown));
        assert!(!is_stream_break(tonic::Code::NotFound));
        assert!(!is_stream_break(tonic::Code::InvalidArgument));
        assert!(!is_stream_break(tonic::Code::DeadlineExceeded));
    }

    #[test]
    fn any_type_names() {
        let a = prost_types::Any {
            type_url: format!("type.googleapis.com/{EXECUTE_RESPONSE_TYPE}"),
            value: vec![],
        };
        assert!(any_is(&a, EXECUTE_RESPONSE_TYPE));
        assert!(!any_is(&a, PRECONDITION_FAILURE_TYPE));
    }
}
