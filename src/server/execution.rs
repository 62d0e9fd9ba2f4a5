//! `Execution`: Execute and WaitExecution, and what a local worker does with
//! an action once the scheduler hands it over.
//!
//! Execute answers from the action cache unless told not to, loads the
//! Action and Command from the CAS, joins an identical execution already in
//! flight, or queues a new one on the [`Scheduler`]. Every outcome reaches
//! the client as an operation whose final `ExecuteResponse.status` says what
//! happened: missing blobs are FAILED_PRECONDITION with a
//! `PreconditionFailure` (so the client uploads them and retries), a bad
//! Command is INVALID_ARGUMENT, a timeout DEADLINE_EXCEEDED with the partial
//! result. Running the action is the runner's business; caching its result
//! (exit code 0, not `do_not_cache`) is decided here.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use prost::Message as _;
use tokio::sync::watch;

use super::action_cache::{self, InlineRequest};
use super::error::{ServiceError, blocking, check_digest_function, digest_arg};
use super::operations::{self, OperationStream, OperationTable, Tracker};
use super::scheduler::{Properties, Scheduler};
use crate::cas::Digest;
use crate::cas::store::{BlobStore, DiskActionCache};
use crate::proto::longrunning::Operation;
use crate::proto::reapi;
use crate::proto::reapi::execution_server::Execution;
use crate::proto::reapi::execution_stage::Value as Stage;
use crate::runner::{self, RunError, RunnerConfig};

/// How workers run actions.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Scratch directories go under here; on the store's file system so
    /// inputs can be hard links.
    pub work_dir: PathBuf,
    /// For actions that set no timeout.
    pub default_timeout: Duration,
    /// Longer timeouts are refused (INVALID_ARGUMENT).
    pub max_timeout: Duration,
    /// How actions are isolated.
    pub sandbox: runner::Sandbox,
}

/// One action waiting for, or running on, a worker.
struct Job {
    action_digest: Digest,
    action: reapi::Action,
    command: reapi::Command,
    tracker: Tracker,
    inline: InlineRequest,
    queued_at: SystemTime,
}

/// Shared by the Execute handler and the worker tasks.
struct Core {
    store: Arc<dyn BlobStore>,
    ac: Arc<DiskActionCache>,
    ops: Arc<OperationTable>,
    config: WorkerConfig,
    /// Cacheable executions in flight, by action digest, so identical
    /// requests share one run: (operation name, its state).
    in_flight: Mutex<HashMap<Digest, (String, watch::Receiver<Operation>)>>,
}

/// The execution engine: action cache lookups, the queue, the workers.
pub struct Executor {
    core: Arc<Core>,
    scheduler: Scheduler<Job>,
}

impl Executor {
    /// Starts one worker task per entry of `workers` (their platform
    /// properties) on the current tokio runtime.
    pub fn start(
        store: Arc<dyn BlobStore>,
        ac: Arc<DiskActionCache>,
        ops: Arc<OperationTable>,
        config: WorkerConfig,
        workers: Vec<Properties>,
    ) -> Executor {
        let core = Arc::new(Core {
            store,
            ac,
            ops,
            config,
            in_flight: Mutex::default(),
        });
        let scheduler = {
            let core = core.clone();
            Scheduler::start(workers, move |worker, job| core.clone().run(worker, job))
        };
        Executor { core, scheduler }
    }

    pub fn operations(&self) -> &Arc<OperationTable> {
        &self.core.ops
    }

    /// Handles one ExecuteRequest; the receiver follows the operation.
    /// Only a malformed request is an error here: everything that happens
    /// to the action itself is reported inside the operation.
    pub async fn execute(
        &self,
        req: reapi::ExecuteRequest,
    ) -> Result<watch::Receiver<Operation>, ServiceError> {
        check_digest_function(req.digest_function)?;
        let digest = digest_arg("action_digest", req.action_digest.as_ref())?;
        let inline = InlineRequest {
            stdout: req.inline_stdout,
            stderr: req.inline_stderr,
            files: req.inline_output_files.clone(),
        };
        let core = &self.core;

        if !req.skip_cache_lookup {
            let (store, ac, want) = (core.store.clone(), core.ac.clone(), inline.clone());
            let hit = blocking(move || {
                let hit = action_cache::lookup(&*store, &ac, &digest)?;
                Ok(hit.map(|mut r| {
                    action_cache::inline(&*store, &mut r, &want);
                    r
                }))
            })
            .await?;
            if let Some(result) = hit {
                tracing::info!(action = %digest, "Execute: cached result");
                return Ok(core.finished(
                    digest,
                    reapi::ExecuteResponse {
                        result: Some(result),
                        cached_result: true,
                        ..Default::default()
                    },
                ));
            }
        }

        let store = core.store.clone();
        let (action, command) = match blocking(move || load(&*store, &digest)).await {
            Ok(loaded) => loaded,
            Err(e) => {
                tracing::info!(action = %digest, error = %e, "Execute: refused");
                return Ok(core.failed(digest, &e));
            }
        };
        let platform: Vec<(String, String)> = action
            .platform
            .as_ref()
            .filter(|p| !p.properties.is_empty())
            .or(command.platform.as_ref())
            .map(|p| {
                p.properties
                    .iter()
                    .map(|q| (q.name.clone(), q.value.clone()))
                    .collect()
            })
            .unwrap_or_default();
        // REAPI: do_not_cache also means "do not merge with other runs".
        let shared = !req.skip_cache_lookup && !action.do_not_cache;

        let mut in_flight = core.lock_in_flight();
        if shared && let Some((name, rx)) = in_flight.get(&digest) {
            tracing::info!(action = %digest, operation = %name, "Execute: joined");
            return Ok(rx.clone());
        }
        let tracker = core.ops.create(digest, Stage::Queued);
        let name = tracker.name().to_string();
        let rx = tracker.subscribe();
        let job = Job {
            action_digest: digest,
            action,
            command,
            tracker,
            inline,
            queued_at: SystemTime::now(),
        };
        match self.scheduler.submit(platform, job) {
            Ok(()) => {
                tracing::info!(action = %digest, operation = %name, "Execute: queued");
                if shared {
                    in_flight.insert(digest, (name, rx.clone()));
                }
            }
            Err((why, job)) => {
                tracing::info!(action = %digest, "Execute: {why}");
                job.tracker
                    .finish(failure(&ServiceError::FailedPrecondition(why)));
            }
        }
        Ok(rx)
    }

    /// WaitExecution: follows a known operation from its current state.
    pub fn wait(&self, name: &str) -> Result<watch::Receiver<Operation>, ServiceError> {
        self.core
            .ops
            .subscribe(name)
            .ok_or_else(|| ServiceError::NotFound(format!("no operation named {name:?}")))
    }

    /// Jobs waiting for a worker.
    pub fn queued(&self) -> usize {
        self.scheduler.queued()
    }
}

/// Reads and checks the Action and its Command. Missing blobs are
/// FAILED_PRECONDITION naming them; undecodable or invalid ones
/// INVALID_ARGUMENT.
fn load(
    store: &dyn BlobStore,
    digest: &Digest,
) -> Result<(reapi::Action, reapi::Command), ServiceError> {
    let bytes = store
        .read(digest)?
        .ok_or_else(|| ServiceError::MissingBlobs(vec![*digest]))?;
    let action = reapi::Action::decode(bytes.as_slice()).map_err(|e| {
        ServiceError::InvalidArgument(format!("blob {digest} is not an Action: {e}"))
    })?;
    let cd = digest_arg("action.command_digest", action.command_digest.as_ref())?;
    digest_arg(
        "action.input_root_digest",
        action.input_root_digest.as_ref(),
    )?;
    let bytes = store
        .read(&cd)?
        .ok_or_else(|| ServiceError::MissingBlobs(vec![cd]))?;
    let command = reapi::Command::decode(bytes.as_slice())
        .map_err(|e| ServiceError::InvalidArgument(format!("blob {cd} is not a Command: {e}")))?;
    runner::validate_command(&command).map_err(run_error)?;
    sorted_platform("action.platform", action.platform.as_ref())?;
    sorted_platform("command.platform", command.platform.as_ref())?;
    Ok((action, command))
}

/// REAPI: platform properties MUST be sorted by name, then by value, so
/// that equal platforms hash equally; an unsorted list is refused with the
/// first property out of place.
fn sorted_platform(field: &str, platform: Option<&reapi::Platform>) -> Result<(), ServiceError> {
    let Some(p) = platform else { return Ok(()) };
    for w in p.properties.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        if (&a.name, &a.value) > (&b.name, &b.value) {
            return Err(ServiceError::InvalidArgument(format!(
                "{field}: property {}={} comes after {}={}; platform properties must be sorted by name, then value",
                b.name, b.value, a.name, a.value
            )));
        }
    }
    Ok(())
}

/// The final response of an execution that failed with `e`.
fn failure(e: &ServiceError) -> reapi::ExecuteResponse {
    reapi::ExecuteResponse {
        status: Some(e.to_rpc_status()),
        message: e.to_string(),
        ..Default::default()
    }
}

/// The status a runner failure is reported with.
fn run_error(e: RunError) -> ServiceError {
    match e {
        RunError::MissingBlobs(ds) => ServiceError::MissingBlobs(ds),
        RunError::InvalidArgument(m) => ServiceError::InvalidArgument(m),
        e @ RunError::Timeout { .. } => ServiceError::DeadlineExceeded(e.to_string()),
        RunError::Internal(m) => ServiceError::Internal(m),
    }
}

impl Core {
    fn lock_in_flight(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<Digest, (String, watch::Receiver<Operation>)>> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new operation that is already done with `response`.
    fn finished(
        &self,
        digest: Digest,
        response: reapi::ExecuteResponse,
    ) -> watch::Receiver<Operation> {
        let tracker = self.ops.create(digest, Stage::Completed);
        tracker.finish(response);
        tracker.subscribe()
    }

    /// A new operation that is already done, failed with `e`.
    fn failed(&self, digest: Digest, e: &ServiceError) -> watch::Receiver<Operation> {
        self.finished(digest, failure(e))
    }

    fn runner_config(&self, worker: usize) -> RunnerConfig {
        RunnerConfig {
            work_dir: self.config.work_dir.clone(),
            worker_name: format!("recast-serve/worker-{worker}"),
            default_timeout: self.config.default_timeout,
            max_timeout: self.config.max_timeout,
        }
    }

    /// Runs one job on worker `worker` and finishes its operation.
    async fn run(self: Arc<Core>, worker: usize, job: Job) {
        let Job {
            action_digest,
            action,
            command,
            tracker,
            inline,
            queued_at,
        } = job;
        tracker.set_stage(Stage::Executing);
        let cfg = self.runner_config(worker);
        let sandbox = self.config.sandbox;
        let (store, ac) = (self.store.clone(), self.ac.clone());
        let started = std::time::Instant::now();
        let outcome = tokio::task::spawn_blocking(move || {
            let mut outcome = runner::run_action_in(&*store, &cfg, sandbox, &action, &command);
            if let Ok(result) = &mut outcome {
                if let Some(md) = result.execution_metadata.as_mut() {
                    md.queued_timestamp = Some(queued_at.into());
                }
                if result.exit_code == 0
                    && !action.do_not_cache
                    && let Err(e) = ac.put(&action_digest, result)
                {
                    // The client still gets its result; only reuse is lost.
                    tracing::warn!(action = %action_digest, error = %e, "cannot cache result");
                }
                action_cache::inline(&*store, result, &inline);
            }
            outcome
        })
        .await;
        let response = match outcome {
            Ok(Ok(result)) => reapi::ExecuteResponse {
                result: Some(result),
                ..Default::default()
            },
            Ok(Err(RunError::Timeout { partial, limit })) => {
                let e = ServiceError::DeadlineExceeded(format!(
                    "action {action_digest} timed out after {limit}"
                ));
                reapi::ExecuteResponse {
                    result: Some(*partial),
                    status: Some(e.to_rpc_status()),
                    message: e.to_string(),
                    ..Default::default()
                }
            }
            Ok(Err(e)) => failure(&run_error(e)),
            Err(join) => failure(&ServiceError::Internal(format!(
                "worker task failed: {join}"
            ))),
        };
        let phases = response
            .result
            .as_ref()
            .and_then(|r| r.execution_metadata.as_ref())
            .map(phase_millis)
            .unwrap_or_default();
        tracing::info!(
            action = %action_digest,
            worker,
            fetch_ms = phases[0],
            run_ms = phases[1],
            collect_ms = phases[2],
            exit_code = response.result.as_ref().map(|r| r.exit_code),
            status = response.status.as_ref().map_or(0, |s| s.code),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Execute: finished"
        );
        // Forget the run before announcing it: a request arriving in between
        // then finds the cached result rather than a finished operation.
        {
            let mut in_flight = self.lock_in_flight();
            if in_flight
                .get(&action_digest)
                .is_some_and(|(name, _)| name == tracker.name())
            {
                in_flight.remove(&action_digest);
            }
        }
        tracker.finish(response);
    }
}

/// Milliseconds spent materializing inputs, running, and collecting
/// outputs, from a result's metadata.
fn phase_millis(md: &reapi::ExecutedActionMetadata) -> [u64; 3] {
    let ms = |a: &Option<prost_types::Timestamp>, b: &Option<prost_types::Timestamp>| {
        let (Some(a), Some(b)) = (a, b) else {
            return 0;
        };
        let ns = |t: &prost_types::Timestamp| {
            i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos)
        };
        ((ns(b) - ns(a)).max(0) / 1_000_000) as u64
    };
    [
        ms(
            &md.input_fetch_start_timestamp,
            &md.input_fetch_completed_timestamp,
        ),
        ms(
            &md.execution_start_timestamp,
            &md.execution_completed_timestamp,
        ),
        ms(
            &md.output_upload_start_timestamp,
            &md.output_upload_completed_timestamp,
        ),
    ]
}

/// The Execution service.
#[derive(Clone)]
pub struct ExecutionService {
    exec: Arc<Executor>,
}

impl ExecutionService {
    pub fn new(exec: Arc<Executor>) -> ExecutionService {
        ExecutionService { exec }
    }
}

#[tonic::async_trait]
impl Execution for ExecutionService {
    type ExecuteStream = OperationStream;

    async fn execute(
        &self,
        request: tonic::Request<reapi::ExecuteRequest>,
    ) -> Result<tonic::Response<Self::ExecuteStream>, tonic::Status> {
        super::auth::require(&request, super::auth::Scope::Execute)?;
        let rx = self.exec.execute(request.into_inner()).await?;
        Ok(tonic::Response::new(operations::follow(rx)))
    }

    type WaitExecutionStream = OperationStream;

    async fn wait_execution(
        &self,
        request: tonic::Request<reapi::WaitExecutionRequest>,
    ) -> Result<tonic::Response<Self::WaitExecutionStream>, tonic::Status> {
        super::auth::require(&request, super::auth::Scope::Execute)?;
        let rx = self.exec.wait(&request.into_inner().name)?;
        Ok(tonic::Response::new(operations::follow(rx)))
    }
}

#[cfg(test)]
#[path = "execution_tests.rs"]
mod tests;
