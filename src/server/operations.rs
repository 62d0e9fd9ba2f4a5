//! Execution operations: their live state, the streams that follow them,
//! and the `google.longrunning.Operations` service.
//!
//! Each operation is a `watch` channel holding its latest
//! `google.longrunning.Operation`; the execution that owns it holds the
//! sending [`Tracker`], and every Execute/WaitExecution stream or
//! GetOperation call reads it. Finished operations stay in the
//! [`OperationTable`] for a retention period, so a client whose Execute
//! stream broke can still WaitExecution on the name and get the result.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::Stream;
use prost::Message as _;
use tokio::sync::watch;

use crate::cas::Digest;
use crate::proto::google::longrunning::operations_server::Operations;
use crate::proto::longrunning::{
    self, CancelOperationRequest, DeleteOperationRequest, GetOperationRequest,
    ListOperationsRequest, ListOperationsResponse, Operation, WaitOperationRequest,
};
use crate::proto::reapi;
use crate::proto::reapi::execution_stage::Value as Stage;

/// How long a finished operation can still be looked up.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(10 * 60);

const METADATA_URL: &str =
    "type.googleapis.com/build.bazel.remote.execution.v2.ExecuteOperationMetadata";
const RESPONSE_URL: &str = "type.googleapis.com/build.bazel.remote.execution.v2.ExecuteResponse";

/// A stream of snapshots of one operation, ending with the done one.
pub type OperationStream = Pin<Box<dyn Stream<Item = Result<Operation, tonic::Status>> + Send>>;

struct Entry {
    rx: watch::Receiver<Operation>,
    /// When this table first saw the operation done.
    done_at: Option<Instant>,
}

/// The operations this server knows, by name.
pub struct OperationTable {
    entries: Mutex<HashMap<String, Entry>>,
    retention: Duration,
}

impl OperationTable {
    pub fn new(retention: Duration) -> OperationTable {
        OperationTable {
            entries: Mutex::default(),
            retention,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new operation for `action` at `stage`.
    pub fn create(&self, action: Digest, stage: Stage) -> Tracker {
        let name = format!("operations/{}", uuid::Uuid::new_v4());
        let (tx, rx) = watch::channel(snapshot(&name, stage, &action, None));
        let mut entries = self.lock();
        self.prune(&mut entries);
        entries.insert(name.clone(), Entry { rx, done_at: None });
        Tracker { name, action, tx }
    }

    /// Drops operations finished longer ago than the retention period.
    fn prune(&self, entries: &mut HashMap<String, Entry>) {
        let now = Instant::now();
        entries.retain(|_, e| {
            if e.done_at.is_none() && e.rx.borrow().done {
                e.done_at = Some(now);
            }
            e.done_at
                .is_none_or(|t| now.duration_since(t) < self.retention)
        });
    }

    /// Follows the named operation from its current state.
    pub fn subscribe(&self, name: &str) -> Option<watch::Receiver<Operation>> {
        let mut entries = self.lock();
        self.prune(&mut entries);
        entries.get(name).map(|e| e.rx.clone())
    }

    /// The named operation's current state.
    pub fn get(&self, name: &str) -> Option<Operation> {
        self.subscribe(name).map(|rx| rx.borrow().clone())
    }

    /// Every known operation, by name.
    pub fn list(&self) -> Vec<Operation> {
        let mut entries = self.lock();
        self.prune(&mut entries);
        let mut ops: Vec<Operation> = entries.values().map(|e| e.rx.borrow().clone()).collect();
        ops.sort_by(|a, b| a.name.cmp(&b.name));
        ops
    }

    /// Forgets an operation (it keeps running if it was).
    pub fn remove(&self, name: &str) -> bool {
        self.lock().remove(name).is_some()
    }
}

/// The owning side of one operation: moves it through its stages and
/// finishes it. Dropped unfinished (a worker bug), it finishes the
/// operation with INTERNAL so no client waits forever.
pub struct Tracker {
    name: String,
    action: Digest,
    tx: watch::Sender<Operation>,
}

impl Tracker {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn subscribe(&self) -> watch::Receiver<Operation> {
        self.tx.subscribe()
    }

    pub fn set_stage(&self, stage: Stage) {
        self.tx
            .send_replace(snapshot(&self.name, stage, &self.action, None));
    }

    pub fn finish(&self, response: reapi::ExecuteResponse) {
        self.tx.send_replace(snapshot(
            &self.name,
            Stage::Completed,
            &self.action,
            Some(response),
        ));
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        if !self.tx.borrow().done {
            self.finish(reapi::ExecuteResponse {
                status: Some(crate::proto::rpc::Status {
                    code: tonic::Code::Internal as i32,
                    message: "the execution was abandoned by its worker".into(),
                    details: Vec::new(),
                }),
                ..Default::default()
            });
        }
    }
}

/// An Operation as REAPI clients expect it: ExecuteOperationMetadata
/// always; once done, an ExecuteResponse (never `error`, which the spec
/// reserves for failures of the operation machinery itself).
fn snapshot(
    name: &str,
    stage: Stage,
    action: &Digest,
    response: Option<reapi::ExecuteResponse>,
) -> Operation {
    let metadata = reapi::ExecuteOperationMetadata {
        stage: stage as i32,
        action_digest: Some(action.to_proto()),
        digest_function: reapi::digest_function::Value::Sha256 as i32,
        ..Default::default()
    };
    Operation {
        name: name.to_string(),
        metadata: Some(prost_types::Any {
            type_url: METADATA_URL.into(),
            value: metadata.encode_to_vec(),
        }),
        done: response.is_some(),
        result: response.map(|r| {
            longrunning::operation::Result::Response(prost_types::Any {
                type_url: RESPONSE_URL.into(),
                value: r.encode_to_vec(),
            })
        }),
    }
}

/// The current state, then every change, up to and including the done one.
pub fn follow(rx: watch::Receiver<Operation>) -> OperationStream {
    Box::pin(futures::stream::unfold(
        (rx, true, false),
        |(mut rx, first, over)| async move {
            if over {
                return None;
            }
            if !first && rx.changed().await.is_err() {
                // Unreachable while the Tracker finishes on drop; kept so a
                // stream can never hang on a vanished operation.
                let e = tonic::Status::internal("operation vanished before it finished");
                return Some((Err(e), (rx, false, true)));
            }
            let op = rx.borrow_and_update().clone();
            let done = op.done;
            Some((Ok(op), (rx, false, done)))
        },
    ))
}

/// The `google.longrunning.Operations` service over the table.
#[derive(Clone)]
pub struct OperationsService {
    table: Arc<OperationTable>,
}

impl OperationsService {
    pub fn new(table: Arc<OperationTable>) -> OperationsService {
        OperationsService { table }
    }
}

fn unknown(name: &str) -> tonic::Status {
    tonic::Status::not_found(format!("no operation named {name:?}"))
}

#[tonic::async_trait]
impl Operations for OperationsService {
    async fn list_operations(
        &self,
        request: tonic::Request<ListOperationsRequest>,
    ) -> Result<tonic::Response<ListOperationsResponse>, tonic::Status> {
        super::auth::require(&request, super::auth::Scope::Execute)?;
        Ok(tonic::Response::new(ListOperationsResponse {
            operations: self.table.list(),
            next_page_token: String::new(),
        }))
    }

    async fn get_operation(
        &self,
        request: tonic::Request<GetOperationRequest>,
    ) -> Result<tonic::Response<Operation>, tonic::Status> {
        super::auth::require(&request, super::auth::Scope::Execute)?;
        let name = request.into_inner().name;
        let op = self.table.get(&name).ok_or_else(|| unknown(&name))?;
        Ok(tonic::Response::new(op))
    }

    async fn delete_operation(
        &self,
        request: tonic::Request<DeleteOperationRequest>,
    ) -> Result<tonic::Response<()>, tonic::Status> {
        super::auth::require(&request, super::auth::Scope::Execute)?;
        let name = request.into_inner().name;
        if !self.table.remove(&name) {
            return Err(unknown(&name));
        }
        Ok(tonic::Response::new(()))
    }

    async fn cancel_operation(
        &self,
        request: tonic::Request<CancelOperationRequest>,
    ) -> Result<tonic::Response<()>, tonic::Status> {
        super::auth::require(&request, super::auth::Scope::Execute)?;
        Err(tonic::Status::unimplemented(
            "this server does not cancel executions",
        ))
    }

    async fn wait_operation(
        &self,
        request: tonic::Request<WaitOperationRequest>,
    ) -> Result<tonic::Response<Operation>, tonic::Status> {
        super::auth::require(&request, super::auth::Scope::Execute)?;
        let req = request.into_inner();
        let mut rx = self
            .table
            .subscribe(&req.name)
            .ok_or_else(|| unknown(&req.name))?;
        let wait = rx.wait_for(|op| op.done);
        let op = match req.timeout.and_then(|t| Duration::try_from(t).ok()) {
            Some(t) => match tokio::time::timeout(t, wait).await {
                Ok(r) => r.map(|op| op.clone()).ok(),
                Err(_) => None,
            },
            None => wait.await.map(|op| op.clone()).ok(),
        };
        Ok(tonic::Response::new(
            op.unwrap_or_else(|| rx.borrow().clone()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    fn stage_of(op: &Operation) -> i32 {
        let md = op.metadata.as_ref().unwrap();
        assert_eq!(md.type_url, METADATA_URL);
        reapi::ExecuteOperationMetadata::decode(md.value.as_slice())
            .unwrap()
            .stage
    }

    #[tokio::test]
    async fn streams_follow_an_operation_to_done() {
        let table = OperationTable::new(DEFAULT_RETENTION);
        let action = Digest::of_bytes(b"action");
        let t = table.create(action, Stage::Queued);
        assert!(t.name().starts_with("operations/"));
        let mut s = follow(table.subscribe(t.name()).unwrap());
        let op = s.next().await.unwrap().unwrap();
        assert_eq!(stage_of(&op), Stage::Queued as i32);
        assert!(!op.done);

        t.set_stage(Stage::Executing);
        assert_eq!(
            stage_of(&s.next().await.unwrap().unwrap()),
            Stage::Executing as i32
        );
        t.finish(reapi::ExecuteResponse {
            cached_result: true,
            ..Default::default()
        });
        let op = s.next().await.unwrap().unwrap();
        assert!(op.done);
        let Some(longrunning::operation::Result::Response(any)) = op.result else {
            panic!("no response");
        };
        assert_eq!(any.type_url, RESPONSE_URL);
        assert!(
            reapi::ExecuteResponse::decode(any.value.as_slice())
                .unwrap()
                .cached_result
        );
        assert!(s.next().await.is_none());

        // Late followers see the final state at once.
        let mut late = follow(table.subscribe(t.name()).unwrap());
        assert!(late.next().await.unwrap().unwrap().done);
        assert!(late.next().await.is_none());
    }

    #[tokio::test]
    async fn dropped_trackers_finish_with_internal() {
        let table = OperationTable::new(DEFAULT_RETENTION);
        let t = table.create(Digest::of_bytes(b"a"), Stage::Queued);
        let name = t.name().to_string();
        drop(t);
        let op = table.get(&name).unwrap();
        assert!(op.done);
        let Some(longrunning::operation::Result::Response(any)) = op.result else {
            panic!("no response");
        };
        let r = reapi::ExecuteResponse::decode(any.value.as_slice()).unwrap();
        assert_eq!(r.status.unwrap().code, tonic::Code::Internal as i32);
    }

    #[tokio::test]
    async fn finished_operations_expire() {
        let table = OperationTable::new(Duration::ZERO);
        let t = table.create(Digest::of_bytes(b"a"), Stage::Queued);
        let running = table.create(Digest::of_bytes(b"b"), Stage::Executing);
        t.finish(Default::default());
        assert_eq!(table.list().len(), 1, "the finished one is gone");
        assert!(table.get(running.name()).is_some());
        assert!(table.get(t.name()).is_none());
    }

    #[tokio::test]
    async fn service_gets_waits_and_deletes() {
        let table = Arc::new(OperationTable::new(DEFAULT_RETENTION));
        let svc = OperationsService::new(table.clone());
        let t = table.create(Digest::of_bytes(b"a"), Stage::Queued);
        let get = |name: &str| {
            svc.get_operation(crate::server::test_util::granted(GetOperationRequest {
                name: name.into(),
            }))
        };
        assert!(!get(t.name()).await.unwrap().into_inner().done);
        assert_eq!(
            get("operations/x").await.unwrap_err().code(),
            tonic::Code::NotFound
        );

        let waited = svc
            .wait_operation(crate::server::test_util::granted(WaitOperationRequest {
                name: t.name().into(),
                timeout: Some(prost_types::Duration {
                    seconds: 0,
                    nanos: 10_000_000,
                }),
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(!waited.done, "timed out while still queued");
        t.finish(Default::default());
        let waited = svc
            .wait_operation(crate::server::test_util::granted(WaitOperationRequest {
                name: t.name().into(),
                timeout: None,
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(waited.done);
        svc.delete_operation(crate::server::test_util::granted(DeleteOperationRequest {
            name: t.name().into(),
        }))
        .await
        .unwrap();
        assert_eq!(
            get(t.name()).await.unwrap_err().code(),
            tonic::Code::NotFound
        );
    }
}
