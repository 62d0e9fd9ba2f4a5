//! `recast worker`: a bot for schedulers that speak the Remote Workers API
//! (`google.devtools.remoteworkers.v1test2.Bots`), such as BuildGrid, which
//! ships no worker of its own.
//!
//! Each job slot is one bot session (`session`): BuildGrid gives a session
//! one lease per update, so N sessions run N actions at once. A lease's
//! Action runs through the same runner as `recast serve`
//! (`runner::run_action_in`), after its inputs are brought from the
//! scheduler's CAS into a local disk store kept across leases
//! (`transfer`); its outputs go back to that CAS before the lease is
//! completed with `Any(ActionResult)`. What to tell the scheduler is the
//! pure lease book (`lease`). Signals and flags are the CLI's; this module
//! takes a shutdown flag and options.

pub mod lease;
pub mod session;
pub mod transfer;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;
use tokio::sync::watch;
use tonic::Code;
use tonic::transport::Channel;

use crate::cas::Digest;
use crate::cas::store::{DiskStore, StoreError};
use crate::proto::{reapi, rwapi};
use crate::remote::Client;
use crate::remote::metadata::CallMetadata;
use crate::runner::{self, RunnerConfig, Sandbox};
use lease::{Outcome, Start, Work};
use transfer::TransferError;

/// How the worker runs.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// Names the bots (`NAME-PID-UUID/SLOT`) and shows in
    /// `ExecutedActionMetadata.worker`.
    pub name: String,
    /// The scheduler's URL, for messages.
    pub scheduler: String,
    /// Platform properties the bots offer (see [`worker_properties`]).
    pub properties: Vec<(String, String)>,
    /// Leases run at once (one bot session each).
    pub jobs: usize,
    /// Local store and scratch space.
    pub dir: PathBuf,
    /// Local store size bound (least recently used blobs go first).
    pub cache_size: u64,
    pub sandbox: Sandbox,
    /// How long running leases may take to finish after shutdown begins.
    pub grace: Duration,
    /// Action timeout when the Action sets none, and the most it may ask.
    pub default_timeout: Duration,
    pub max_timeout: Duration,
}

/// Why the worker stopped.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The scheduler refused the session for good (e.g. FAILED_PRECONDITION
    /// for platform keys it does not register): fix the flags or its config.
    #[error("{scheduler} refused the bot session ({code:?}): {message}")]
    Refused {
        scheduler: String,
        code: Code,
        message: String,
    },
    #[error("local store: {0}")]
    Store(#[from] StoreError),
}

/// State the sessions share.
pub struct Shared {
    client: Client,
    bots_channel: Channel,
    md: CallMetadata,
    instance: String,
    scheduler: String,
    bot_prefix: String,
    worker: rwapi::Worker,
    store: Arc<DiskStore>,
    tmp: PathBuf,
    runner: RunnerConfig,
    sandbox: Sandbox,
    grace: Duration,
}

/// The properties a worker offers: the host's (`OSFamily`, `ISA`) with
/// every key given in `extra` replaced by the values given there (repeat a
/// key to offer several), sorted by key then value.
pub fn worker_properties(
    host: &[(String, String)],
    extra: &[(String, String)],
) -> Vec<(String, String)> {
    let overridden: std::collections::HashSet<&str> =
        extra.iter().map(|(k, _)| k.as_str()).collect();
    let mut out: Vec<(String, String)> = host
        .iter()
        .filter(|(k, _)| !overridden.contains(k.as_str()))
        .chain(extra)
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The RWAPI worker description: one device (the primary, which runs the
/// commands) carrying the properties; BuildGrid matches on those.
pub fn worker_message(properties: &[(String, String)]) -> rwapi::Worker {
    rwapi::Worker {
        devices: vec![rwapi::Device {
            handle: "primary".into(),
            properties: properties
                .iter()
                .map(|(k, v)| rwapi::device::Property {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
        }],
        ..Default::default()
    }
}

/// Runs `opts.jobs` bot sessions until `shutdown` turns true and they have
/// drained. `client` talks to the scheduler's CAS; `bots_channel` (with
/// `md`'s headers) to its Bots service.
pub async fn run(
    client: Client,
    bots_channel: Channel,
    md: CallMetadata,
    opts: WorkerOptions,
    shutdown: watch::Receiver<bool>,
) -> Result<(), WorkerError> {
    let store_dir = opts.dir.join("cas");
    let cache_size = opts.cache_size;
    let store = tokio::task::spawn_blocking(move || DiskStore::open(&store_dir, cache_size))
        .await
        .expect("store open panicked")?;
    let bot_prefix = format!(
        "{}-{}-{}",
        opts.name,
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let shared = Arc::new(Shared {
        instance: client.instance().to_string(),
        client,
        bots_channel,
        md,
        scheduler: opts.scheduler.clone(),
        worker: worker_message(&opts.properties),
        store: Arc::new(store),
        tmp: opts.dir.join("tmp"),
        runner: RunnerConfig {
            work_dir: opts.dir.join("work"),
            worker_name: bot_prefix.clone(),
            default_timeout: opts.default_timeout,
            max_timeout: opts.max_timeout,
        },
        bot_prefix,
        sandbox: opts.sandbox,
        grace: opts.grace,
    });
    let mut tasks = tokio::task::JoinSet::new();
    for slot in 0..opts.jobs.max(1) {
        tasks.spawn(session::run(shared.clone(), slot, shutdown.clone()));
    }
    let mut first_err = None;
    while let Some(r) = tasks.join_next().await {
        match r.expect("bot session panicked") {
            Ok(()) => {}
            Err(e) => {
                // One slot refused means all will be: stop the others.
                tasks.abort_all();
                first_err.get_or_insert(e);
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// Runs one lease: the Action (inline or from the CAS), its Command, the
/// input tree into the local store, the runner, the outputs back up.
async fn execute(shared: &Shared, bot: &str, start: &Start) -> Outcome {
    let t0 = Instant::now();
    tracing::info!(bot = %bot, lease = %start.lease_id, "lease started");
    let (outcome, action_digest) = execute_inner(shared, start).await;
    let exit_code = outcome.result.as_ref().map(|r| r.exit_code);
    tracing::info!(
        bot = %bot,
        lease = %start.lease_id,
        action = %action_digest.map(|d| d.to_string()).unwrap_or_default(),
        status = ?Code::from(outcome.status.code),
        exit_code = ?exit_code,
        ms = t0.elapsed().as_millis() as u64,
        "lease completed"
    );
    outcome
}

async fn execute_inner(shared: &Shared, start: &Start) -> (Outcome, Option<Digest>) {
    let (action, digest) = match &start.work {
        Err(why) => return (Outcome::error(Code::InvalidArgument, why.clone()), None),
        Ok(Work::Action(a)) => ((**a).clone(), Digest::of_message(a.as_ref()).0),
        Ok(Work::ActionDigest(d)) => {
            let client = shared.client.for_action(d);
            match fetch_message::<reapi::Action>(shared, &client, d, "Action").await {
                Ok(a) => (a, *d),
                Err(o) => return (o, Some(*d)),
            }
        }
    };
    // Every CAS call of this lease names the action in its metadata.
    let client = shared.client.for_action(&digest);
    (run_action(shared, &client, &action).await, Some(digest))
}

async fn run_action(s: &Shared, client: &Client, action: &reapi::Action) -> Outcome {
    let bad = |m: String| Outcome::error(Code::InvalidArgument, m);
    let cmd_digest = match Digest::from_proto_opt(action.command_digest.as_ref()) {
        Ok(d) => d,
        Err(e) => return bad(format!("Action.command_digest: {e}")),
    };
    let root = match Digest::from_proto_opt(action.input_root_digest.as_ref()) {
        Ok(d) => d,
        Err(e) => return bad(format!("Action.input_root_digest: {e}")),
    };
    let command = match fetch_message::<reapi::Command>(s, client, &cmd_digest, "Command").await {
        Ok(c) => c,
        Err(o) => return o,
    };
    if let Err(e) = transfer::fetch_tree(client, &s.store, &s.tmp, &root).await {
        return transfer_failure("fetching the input tree", e);
    }
    let (store, cfg, sandbox, a) = (s.store.clone(), s.runner.clone(), s.sandbox, action.clone());
    let ran = tokio::task::spawn_blocking(move || {
        runner::run_action_in(store.as_ref(), &cfg, sandbox, &a, &command)
    })
    .await;
    let outcome = match ran {
        Ok(r) => Outcome::from_run(r),
        Err(e) => Outcome::error(Code::Internal, format!("the runner failed: {e}")),
    };
    if let Some(result) = &outcome.result
        && let Err(e) = transfer::upload_result(client, &s.store, result).await
    {
        return transfer_failure("uploading the outputs", e);
    }
    outcome
}

/// A transfer error as a lease outcome: blobs the CAS lacks are the
/// client's to upload (FAILED_PRECONDITION); a bad directory is the
/// action's fault; anything else is transient (retried by the scheduler).
fn transfer_failure(what: &str, e: TransferError) -> Outcome {
    match e {
        TransferError::Missing(ds) => Outcome::missing(&ds),
        e @ TransferError::BadDirectory { .. } => {
            Outcome::error(Code::InvalidArgument, format!("{what}: {e}"))
        }
        e @ TransferError::Remote(_) => Outcome::error(Code::Unavailable, format!("{what}: {e}")),
        e @ TransferError::Store(_) => Outcome::error(Code::Internal, format!("{what}: {e}")),
    }
}

/// A message from the local store or the CAS, decoded.
async fn fetch_message<M: Message + Default>(
    s: &Shared,
    client: &Client,
    d: &Digest,
    what: &str,
) -> Result<M, Outcome> {
    let bytes = transfer::blob(client, &s.store, d)
        .await
        .map_err(|e| transfer_failure(&format!("fetching the {what}"), e))?;
    M::decode(bytes.as_slice()).map_err(|e| {
        Outcome::error(
            Code::InvalidArgument,
            format!("{what} {d} does not decode: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(k: &str, v: &str) -> (String, String) {
        (k.into(), v.into())
    }

    #[test]
    fn platform_flags_replace_the_hosts_value_for_their_key() {
        let host = [p("OSFamily", "linux"), p("ISA", "x86-64")];
        assert_eq!(
            worker_properties(&host, &[]),
            [p("ISA", "x86-64"), p("OSFamily", "linux")]
        );
        assert_eq!(
            worker_properties(&host, &[p("ISA", "arm-a64")]),
            [p("ISA", "arm-a64"), p("OSFamily", "linux")]
        );
        assert_eq!(
            worker_properties(
                &host,
                &[p("ISA", "x86-64"), p("ISA", "x86-32"), p("Pool", "big")]
            ),
            [
                p("ISA", "x86-32"),
                p("ISA", "x86-64"),
                p("OSFamily", "linux"),
                p("Pool", "big")
            ]
        );
    }

    #[test]
    fn the_worker_message_puts_properties_on_the_primary_device() {
        let w = worker_message(&[p("ISA", "x86-64"), p("OSFamily", "linux")]);
        assert_eq!(w.devices.len(), 1);
        let props: Vec<(&str, &str)> = w.devices[0]
            .properties
            .iter()
            .map(|p| (p.key.as_str(), p.value.as_str()))
            .collect();
        assert_eq!(props, [("ISA", "x86-64"), ("OSFamily", "linux")]);
    }
}
