//! One action, start to finish on the server: action-cache lookup, one
//! FindMissingBlobs for the inputs not known to be there, upload, Execute
//! (with the missing-inputs retry). Writing outputs and replaying
//! stdout/stderr are separate steps (`outputs`), so a caller can decide
//! where results go.
//!
//! Across a network each step is a round trip, so the lookup and the
//! upload go side by side: a miss costs the lookup's round trip once, not
//! before FindMissingBlobs' (and the upload's) own. A hit drops the upload
//! where it stands; the server keeps whatever blobs it took.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{Blob, Client, RemoteError, UploadStats};
use crate::cas::Digest;
use crate::proto::{reapi, rpc};

/// What the server needs to run one action: its digest and every blob it
/// may need (input directories and files, the Command, the Action).
#[derive(Clone, Debug)]
pub struct ActionRun {
    pub action_digest: Digest,
    pub blobs: Vec<Blob>,
    /// Blobs the server is taken to hold (a toolchain whose upload is
    /// marked done): not asked about, sent only if Execute names them
    /// missing (evicted since).
    pub present: Vec<Blob>,
    /// Do not answer from the action cache.
    pub skip_cache: bool,
    /// The caller asked the action cache already: no lookup here (the
    /// server may still answer from its cache).
    pub looked_up: bool,
    /// The action's own timeout (`Action.timeout`), if it has one.
    pub timeout: Option<Duration>,
    /// Output files the server is asked to inline in a cached result.
    pub inline_outputs: Vec<String>,
}

/// Where the time went, in wall-clock terms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timings {
    /// Action-cache lookup.
    pub lookup: Duration,
    /// FindMissingBlobs and uploads (including the missing-inputs retry).
    pub upload: Duration,
    /// Execute, until the result arrived.
    pub execute: Duration,
}

/// How the action ended on the server.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The result (possibly partial when `status` is not OK).
    pub result: Option<reapi::ActionResult>,
    /// Answered from the action cache (ours or the server's).
    pub cached: bool,
    /// Non-OK when the server could not run the action to completion
    /// (a timeout, for instance); `result` may still hold partial output.
    pub status: rpc::Status,
    /// The server's message to the user, if any.
    pub message: String,
    pub uploaded: UploadStats,
    pub timings: Timings,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.status.code == 0
    }
}

/// Runs `run` on the server behind `client`.
pub async fn run_action(client: &Client, run: ActionRun) -> Result<Outcome, RemoteError> {
    let client = &client.for_action(&run.action_digest);
    let mut timings = Timings::default();
    let t = Instant::now();
    let upload = async {
        let uploaded = client.upload_missing(run.blobs.clone()).await;
        (uploaded, t.elapsed())
    };
    let (uploaded, upload_took) = if !run.skip_cache && !run.looked_up {
        let lookup = client.get_action_result_inline(&run.action_digest, &run.inline_outputs);
        tokio::pin!(lookup);
        tokio::pin!(upload);
        let mut uploaded = None;
        let hit = loop {
            tokio::select! {
                // The lookup first when both are ready: a hit drops the upload.
                biased;
                hit = &mut lookup => break hit,
                done = &mut upload, if uploaded.is_none() => uploaded = Some(done),
            }
        };
        timings.lookup = t.elapsed();
        if let Some(result) = hit? {
            return Ok(Outcome {
                result: Some(result),
                cached: true,
                status: rpc::Status::default(),
                message: String::new(),
                uploaded: UploadStats::default(),
                timings,
            });
        }
        match uploaded {
            Some(done) => done,
            None => upload.await,
        }
    } else {
        upload.await
    };
    let mut uploaded = uploaded?;
    timings.upload = upload_took;
    let trusted = !run.present.is_empty();
    let by_digest: HashMap<Digest, Blob> = run
        .blobs
        .into_iter()
        .chain(run.present)
        .map(|b| (b.digest, b))
        .collect();

    let t = Instant::now();
    let execute =
        || client.execute_with_upload(&run.action_digest, run.skip_cache, run.timeout, &by_digest);
    let (resp, retried) = match execute().await {
        // The server lost more of a toolchain taken to be there than
        // Execute's rounds could name: every blob asked about, as for a
        // first upload, and once more.
        Err(RemoteError::MissingBlobs(_)) if trusted => {
            let again = client
                .upload_missing(by_digest.values().cloned().collect())
                .await?;
            uploaded.blobs += again.blobs;
            uploaded.bytes += again.bytes;
            execute().await?
        }
        other => other?,
    };
    timings.execute = t.elapsed();
    uploaded.blobs += retried.blobs;
    uploaded.bytes += retried.bytes;

    Ok(Outcome {
        result: resp.result,
        cached: resp.cached_result,
        status: resp.status.unwrap_or_default(),
        message: resp.message,
        uploaded,
        timings,
    })
}
