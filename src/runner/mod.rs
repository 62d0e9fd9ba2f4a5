//! Runs one action: materialize the input root, execute, collect outputs.
//!
//! Shared by `recast serve`'s local workers and `recast worker`. Synchronous
//! (std::fs and std::process; callers run it on a blocking thread) and
//! unaware of gRPC: it reads inputs from and writes outputs to a
//! [`BlobStore`], and returns the `ActionResult` without caching it. Whether
//! a result goes to the action cache is the caller's decision.
//!
//! Submodules: `materialize` (input tree → scratch directory), `exec`
//! (the process, its environment and its timeout), `collect` (outputs →
//! store), `paths` (relative-path checks and symlink-safe resolution),
//! `sandbox` (the optional bubblewrap chroot of the input root).

mod collect;
mod exec;
mod materialize;
mod paths;
mod sandbox;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::cas::Digest;
use crate::cas::store::{self, BlobStore, StoreError};
use crate::proto::reapi;

pub use sandbox::{Sandbox, bwrap_works, find_bwrap};

/// Where and how actions run.
#[derive(Clone, Debug)]
pub struct RunnerConfig {
    /// Scratch directories for input roots go under here.
    pub work_dir: PathBuf,
    /// Reported in `ExecutedActionMetadata.worker`.
    pub worker_name: String,
    /// Used when the action sets no timeout.
    pub default_timeout: Duration,
    /// The longest timeout an action may ask for; longer ones are refused.
    pub max_timeout: Duration,
}

/// Why an action did not produce a result. Each variant maps to one gRPC
/// code at the server: `MissingBlobs` → FAILED_PRECONDITION with the list,
/// `InvalidArgument` → INVALID_ARGUMENT, `Timeout` → DEADLINE_EXCEEDED (with
/// the partial result), `Internal` → INTERNAL.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{} blob(s) missing from the CAS: {}", .0.len(), list(.0))]
    MissingBlobs(Vec<Digest>),
    #[error("invalid action: {0}")]
    InvalidArgument(String),
    #[error("action timed out after {limit}")]
    Timeout {
        partial: Box<reapi::ActionResult>,
        limit: TimeLimit,
    },
    #[error("worker error: {0}")]
    Internal(String),
}

/// An action's time limit and where it came from, so that the message
/// when it strikes says what to change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeLimit {
    /// The `timeout` the client set in the Action.
    Action(Duration),
    /// The runner's default for an Action that sets none, and the most an
    /// Action may ask for.
    Default { limit: Duration, max: Duration },
}

impl TimeLimit {
    /// How long the command may run.
    pub fn duration(&self) -> Duration {
        match self {
            TimeLimit::Action(d) | TimeLimit::Default { limit: d, .. } => *d,
        }
    }
}

impl std::fmt::Display for TimeLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TimeLimit::Action(d) => write!(
                f,
                "{d:?}, the timeout the client set in the Action; raise it there (`recast run --timeout-action SECS`)"
            ),
            TimeLimit::Default { limit, max } => write!(
                f,
                "{limit:?}, the default for an Action that sets no timeout; have the client set one, up to {max:?} (`recast run --timeout-action SECS`)"
            ),
        }
    }
}

fn list(ds: &[Digest]) -> String {
    let shown: Vec<String> = ds.iter().take(5).map(|d| d.to_string()).collect();
    let more = if ds.len() > 5 { ", …" } else { "" };
    format!("{}{more}", shown.join(", "))
}

impl From<StoreError> for RunError {
    fn from(e: StoreError) -> RunError {
        match e {
            StoreError::NotFound(d) => RunError::MissingBlobs(vec![d]),
            other => RunError::Internal(other.to_string()),
        }
    }
}

/// Materialize the input root, run the command, collect outputs into the
/// store. Returns the ActionResult (not yet written to any cache; the
/// caller decides). `execution_metadata.queued_timestamp` is set to the
/// moment the worker started; a scheduler that knows better overwrites it.
pub fn run_action(
    store: &dyn BlobStore,
    cfg: &RunnerConfig,
    action: &reapi::Action,
    command: &reapi::Command,
) -> Result<reapi::ActionResult, RunError> {
    run_action_in(store, cfg, Sandbox::None, action, command)
}

/// [`run_action`] with the command isolated by `sandbox`. With
/// [`Sandbox::Chroot`] or [`Sandbox::Bwrap`], `bwrap` must be on the
/// worker's `PATH`
/// ([`find_bwrap`]); everything else (materializing, outputs, timeout) is
/// the same.
pub fn run_action_in(
    store: &dyn BlobStore,
    cfg: &RunnerConfig,
    sandbox: Sandbox,
    action: &reapi::Action,
    command: &reapi::Command,
) -> Result<reapi::ActionResult, RunError> {
    let worker_start = SystemTime::now();
    validate_command(command)?;
    let input_root = Digest::from_proto_opt(action.input_root_digest.as_ref())
        .map_err(|e| RunError::InvalidArgument(format!("input_root_digest: {e}")))?;
    let limit = effective_timeout(action.timeout.as_ref(), cfg)?;

    let scratch = materialize::Scratch::create(&cfg.work_dir)?;
    let fetch_start = SystemTime::now();
    let entries = materialize::fetch_tree(store, &input_root)?;
    materialize::materialize(store, &entries, &scratch.root)?;
    let work = materialize::prepare(&scratch.root, command)?;
    let fetch_done = SystemTime::now();

    let exec_start = SystemTime::now();
    let jail = match sandbox {
        Sandbox::None => None,
        Sandbox::Chroot | Sandbox::Bwrap => Some(sandbox::Jail {
            bwrap: find_bwrap().ok_or_else(|| {
                RunError::Internal("the sandbox needs bwrap on the worker's PATH".into())
            })?,
            root: scratch.root.clone(),
            workdir: command.working_directory.clone(),
            host: sandbox == Sandbox::Chroot,
            // The worker's state (its CAS, other actions' scratch space)
            // holds the work dir; actions must not read it.
            hide: cfg
                .work_dir
                .parent()
                .and_then(|p| std::fs::canonicalize(p).ok())
                .into_iter()
                .collect(),
        }),
    };
    let finished = exec::run(
        &work,
        command,
        &scratch.stdout,
        &scratch.stderr,
        limit.duration(),
        jail.as_ref(),
    )?;
    let exec_done = SystemTime::now();

    let mut result = reapi::ActionResult {
        exit_code: finished.exit_code,
        ..Default::default()
    };
    result.stdout_digest = Some(store::store_file(store, &scratch.stdout)?.to_proto());
    result.stderr_digest = Some(store::store_file(store, &scratch.stderr)?.to_proto());
    if !finished.timed_out {
        collect::collect(store, &scratch.root, command, &mut result)?;
    }
    let upload_done = SystemTime::now();

    result.execution_metadata = Some(reapi::ExecutedActionMetadata {
        worker: cfg.worker_name.clone(),
        queued_timestamp: Some(worker_start.into()),
        worker_start_timestamp: Some(worker_start.into()),
        input_fetch_start_timestamp: Some(fetch_start.into()),
        input_fetch_completed_timestamp: Some(fetch_done.into()),
        execution_start_timestamp: Some(exec_start.into()),
        execution_completed_timestamp: Some(exec_done.into()),
        output_upload_start_timestamp: Some(exec_done.into()),
        output_upload_completed_timestamp: Some(upload_done.into()),
        worker_completed_timestamp: Some(SystemTime::now().into()),
        ..Default::default()
    });
    drop(scratch);
    if finished.timed_out {
        return Err(RunError::Timeout {
            partial: Box::new(result),
            limit,
        });
    }
    Ok(result)
}

/// The action's timeout if it set one, else the default. A timeout over
/// the maximum is refused rather than shortened: REAPI says the server MUST
/// reject it, and a silently shorter run would fail in a confusing way.
fn effective_timeout(
    t: Option<&prost_types::Duration>,
    cfg: &RunnerConfig,
) -> Result<TimeLimit, RunError> {
    let default = TimeLimit::Default {
        limit: cfg.default_timeout.min(cfg.max_timeout),
        max: cfg.max_timeout,
    };
    let Some(t) = t else {
        return Ok(default);
    };
    if t.seconds < 0 || t.nanos < 0 {
        return Err(RunError::InvalidArgument(format!(
            "negative timeout {}s {}ns",
            t.seconds, t.nanos
        )));
    }
    let asked = Duration::new(t.seconds as u64, 0) + Duration::from_nanos(t.nanos as u64);
    if asked.is_zero() {
        return Ok(default);
    }
    if asked > cfg.max_timeout {
        return Err(RunError::InvalidArgument(format!(
            "timeout {asked:?} exceeds this server's maximum of {:?}",
            cfg.max_timeout
        )));
    }
    Ok(TimeLimit::Action(asked))
}

/// Validate a Command before running: arguments present, environment
/// passable to execve, working directory and output paths relative with no
/// `..`, `.`, empty component or trailing slash, and no output listed twice.
pub fn validate_command(command: &reapi::Command) -> Result<(), RunError> {
    let bad = |m: String| Err(RunError::InvalidArgument(m));
    match command.arguments.first() {
        None => return bad("command has no arguments".into()),
        Some(a) if a.is_empty() => return bad("command's program (arguments[0]) is empty".into()),
        Some(_) => {}
    }
    if let Some(a) = command.arguments.iter().find(|a| a.contains('\0')) {
        return bad(format!("argument {a:?} contains NUL"));
    }
    for v in &command.environment_variables {
        if v.name.is_empty() || v.name.contains(['=', '\0']) || v.value.contains('\0') {
            return bad(format!("environment variable {:?} cannot be set", v.name));
        }
    }
    paths::check_relative("working_directory", &command.working_directory, true)?;

    // v2.1: the legacy fields are ignored when output_paths is used.
    let outputs: Vec<(&str, &String, bool)> = if command.output_paths.is_empty() {
        let files = command
            .output_files
            .iter()
            .map(|p| ("output_files", p, false));
        let dirs = command
            .output_directories
            .iter()
            .map(|p| ("output_directories", p, true));
        files.chain(dirs).collect()
    } else {
        command
            .output_paths
            .iter()
            .map(|p| ("output_paths", p, true))
            .collect()
    };
    let mut seen = std::collections::HashSet::new();
    for (field, p, empty_ok) in outputs {
        paths::check_output(field, p, &command.working_directory, empty_ok)?;
        if !seen.insert(p) {
            return bad(format!("output path {p:?} is listed twice"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
