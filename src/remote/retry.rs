//! The one retry loop for remote calls: exponential backoff with jitter, for
//! an explicit list of gRPC codes.
//!
//! Which codes are worth retrying is a pure function ([`is_retryable`]);
//! everything else (NOT_FOUND, INVALID_ARGUMENT, PERMISSION_DENIED,
//! UNAUTHENTICATED, FAILED_PRECONDITION, ...) goes straight back to the
//! caller, because asking again cannot change the answer.

use std::future::Future;
use std::time::Duration;

use tonic::Code;

use super::RemoteError;

/// Whether repeating a call after a timeout is harmless.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallKind {
    /// Reads (and FindMissingBlobs, GetCapabilities): a timeout may be retried.
    Read,
    /// Writes and Execute: a timeout is reported, since the first attempt may
    /// still be running on the server.
    Write,
}

/// Most attempts in total, the first included.
pub const MAX_ATTEMPTS: u32 = 4;
const BASE_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(5);

/// True if a call that failed with `code` should be tried again.
pub fn is_retryable(code: Code, kind: CallKind) -> bool {
    match code {
        Code::Unavailable | Code::ResourceExhausted | Code::Aborted => true,
        Code::DeadlineExceeded => kind == CallKind::Read,
        _ => false,
    }
}

/// Delay before attempt `attempt + 1` (attempt counts from 1), given a
/// jitter draw in `[0, 1)`: between half and all of `BASE * 2^(attempt-1)`,
/// capped. Randomness spreads out clients that failed together.
pub fn backoff_delay(attempt: u32, jitter: f64) -> Duration {
    let exp = BASE_DELAY.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let capped = exp.min(MAX_DELAY);
    capped.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// Errors the retry loop can classify.
pub trait Retryable {
    /// The gRPC code, if the error came from the server or the transport.
    fn grpc_code(&self) -> Option<Code>;
}

impl Retryable for tonic::Status {
    fn grpc_code(&self) -> Option<Code> {
        Some(self.code())
    }
}

impl Retryable for RemoteError {
    fn grpc_code(&self) -> Option<Code> {
        self.code()
    }
}

fn jitter() -> f64 {
    // uuid's v4 generator is already a dependency and good enough for jitter.
    (uuid::Uuid::new_v4().as_u128() >> 75) as f64 / (1u64 << 53) as f64
}

/// Runs `op` until it succeeds, fails with a code not worth retrying, or
/// [`MAX_ATTEMPTS`] have been made.
pub async fn retry<T, E, F, Fut>(kind: CallKind, what: &str, mut op: F) -> Result<T, E>
where
    E: Retryable + std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                let retryable = e.grpc_code().is_some_and(|c| is_retryable(c, kind));
                if !retryable || attempt >= MAX_ATTEMPTS {
                    return Err(e);
                }
                let delay = backoff_delay(attempt, jitter());
                tracing::debug!(%e, attempt, ?delay, "{what} failed; retrying");
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn only_the_listed_codes_are_retried() {
        for code in [Code::Unavailable, Code::ResourceExhausted, Code::Aborted] {
            assert!(is_retryable(code, CallKind::Read), "{code:?}");
            assert!(is_retryable(code, CallKind::Write), "{code:?}");
        }
        assert!(is_retryable(Code::DeadlineExceeded, CallKind::Read));
        assert!(!is_retryable(Code::DeadlineExceeded, CallKind::Write));
        for code in [
            Code::Ok,
            Code::InvalidArgument,
            Code::NotFound,
            Code::PermissionDenied,
            Code::Unauthenticated,
            Code::FailedPrecondition,
            Code::AlreadyExists,
            Code::Unimplemented,
            Code::Internal,
            Code::Unknown,
            Code::Cancelled,
            Code::OutOfRange,
            Code::DataLoss,
        ] {
            assert!(!is_retryable(code, CallKind::Read), "{code:?}");
            assert!(!is_retryable(code, CallKind::Write), "{code:?}");
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_a_cap() {
        assert_eq!(backoff_delay(1, 0.0), Duration::from_millis(50));
        assert_eq!(backoff_delay(1, 1.0), Duration::from_millis(100));
        assert_eq!(backoff_delay(2, 1.0), Duration::from_millis(200));
        assert_eq!(backoff_delay(3, 0.5), Duration::from_millis(300));
        assert_eq!(backoff_delay(40, 1.0), MAX_DELAY);
        let j = jitter();
        assert!((0.0..1.0).contains(&j));
    }

    #[tokio::test]
    async fn retries_unavailable_then_gives_up() {
        let calls = AtomicU32::new(0);
        let r: Result<(), tonic::Status> = retry(CallKind::Read, "test", || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(tonic::Status::unavailable("down")) }
        })
        .await;
        assert_eq!(r.unwrap_err().code(), Code::Unavailable);
        assert_eq!(calls.load(Ordering::SeqCst), MAX_ATTEMPTS);
    }

    #[tokio::test]
    async fn never_retries_not_found_and_stops_on_success() {
        let calls = AtomicU32::new(0);
        let r: Result<(), tonic::Status> = retry(CallKind::Read, "test", || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(tonic::Status::not_found("gone")) }
        })
        .await;
        assert_eq!(r.unwrap_err().code(), Code::NotFound);
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let calls = AtomicU32::new(0);
        let r: Result<u32, tonic::Status> = retry(CallKind::Write, "test", || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    Err(tonic::Status::aborted("try again"))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(r.unwrap(), 1);
    }
}
