//! A successful compile's result, sent to the server so the next
//! identical compile anywhere is a hit: by the compile itself, or, across a
//! network, kept in the local tier and left to the outbox ([`outbox`](super::outbox)).
//! Under a moved action, whether a result may be published as it is (its
//! outputs free of the project root) is decided here too.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::Ctx;
use super::depcache::{self, Mark};
use super::on_server::{self, Failure, Prepared};
use super::stats::Event;
use super::why::Cause;
use crate::cas::Digest;
use crate::proto::reapi;
use crate::remote::{Blob, Client, RemoteError};

/// What became of a local compile's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Published {
    Yes,
    /// Not under this moved action: the outputs name the project root.
    Located,
    /// The server would not take it, or the call failed.
    No,
}

/// Puts a local compile's result in the action cache, where the server
/// lets this caller write it. Under a moved
/// action, only a result that does not name this checkout's project root
/// is published (it is then what the moved action gives from any
/// checkout); one that does marks the compile as seeing its location.
pub(super) async fn publish(
    ctx: &Ctx,
    client: &Client,
    action: &Prepared,
    key: &Digest,
    started: std::time::Instant,
    streams: Compiled<'_>,
    event: &mut Event,
) -> Published {
    let landing = &action.landing;
    if let Some((_, root)) = &landing.unmap
        && landing
            .forbid
            .iter()
            .any(|f| f == super::placement::MAPPED_ROOT)
        && landing.local.iter().any(|o| names(o, root))
    {
        depcache::mark(&ctx.cache_dir, key, Mark::Located);
        return Published::Located;
    }
    // A server that does not let this caller update its action cache
    // (`update_enabled = false`: a read-only token) is not asked to; `recast
    // doctor` says so once. The answer is cached: this costs no call.
    if !client
        .capabilities()
        .await
        .is_ok_and(|c| c.ac_update_enabled)
    {
        return Published::No;
    }
    // Across a network the compile does not wait for the round trips and
    // bytes: the local tier holds the result meanwhile.
    let later = ctx
        .publishes_later(client)
        .then_some(ctx.cache_dir.as_path());
    match publish_result(client, action, started, streams, later).await {
        Ok(Sent::Now(up)) => {
            event.up += up;
            Published::Yes
        }
        Ok(Sent::Later) => {
            event.queued = true;
            Published::Yes
        }
        Err(f) => {
            tracing::info!("cannot publish the result: {}", f.message);
            Published::No
        }
    }
}

/// Whether the file at `path` holds the bytes of `text` (unreadable: yes).
fn names(path: &std::path::Path, text: &str) -> bool {
    std::fs::read(path).map_or(true, |b| {
        memchr::memmem::find(&b, text.as_bytes()).is_some()
    })
}

/// A successful compile to publish: what ran it (the result's worker)
/// and its stdout and stderr as this machine's user saw them.
#[derive(Clone, Copy)]
pub struct Compiled<'a> {
    pub by: &'a str,
    pub stdout: &'a [u8],
    pub stderr: &'a [u8],
}

/// Outputs (and streams) up to this many bytes in all are published
/// without asking the server which it lacks: a round trip across a WAN
/// (40 ms at 100 Mbit/s) carries about twice this.
const SEND_UNASKED: u64 = 256 << 10;

/// How a result went to the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// Sent by this compile: so many bytes of blobs.
    Now(u64),
    /// Kept in the local tier and left to the outbox's publisher.
    Later,
}

/// Publishes a successful compile whose outputs are in place here (run
/// locally, or relocated for `p`, its rooted form) under `p`'s action
/// digest: the declared outputs and the streams (this checkout's root spelled as a
/// moved action's, [`Landing::map_text`]) go to the CAS, the result to the
/// action cache, so the next identical compile anywhere is a hit that
/// shows the same warnings. With `later` (the cache dir) and a local
/// tier, the result is kept in the tier, which answers this machine's
/// next identical compile at once, and sent in the background
/// ([`outbox`](super::outbox)); the compile does not wait for its round
/// trips and bytes.
async fn publish_result(
    client: &Client,
    p: &Prepared,
    started: Instant,
    streams: Compiled<'_>,
    later: Option<&Path>,
) -> Result<Sent, Failure> {
    let mut blobs = Vec::new();
    let mut stream = |bytes: &[u8]| {
        (!bytes.is_empty()).then(|| {
            let blob = Blob::from_bytes(bytes.to_vec());
            let digest = blob.digest.to_proto();
            blobs.push(blob);
            digest
        })
    };
    let (mapped_out, mapped_err) = (
        p.landing.map_text(streams.stdout),
        p.landing.map_text(streams.stderr),
    );
    let stdout_digest = stream(&mapped_out);
    let stderr_digest = stream(&mapped_err);
    let mut files = Vec::new();
    let mut landed = Vec::new();
    for (rel, path) in p.outputs.iter().zip(&p.landing.local) {
        let path: PathBuf = path.clone();
        let digest = crate::cas::hash::digest_file(&path)
            .map_err(|e| Failure::new(Cause::LocalIo, format!("{}: {e}", path.display())))?;
        let executable = std::fs::metadata(&path)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
            .unwrap_or(false);
        let file = reapi::OutputFile {
            path: rel.clone(),
            digest: Some(digest.to_proto()),
            is_executable: executable,
            ..Default::default()
        };
        landed.push((file.clone(), path.clone()));
        blobs.push(Blob::file(digest, path));
        files.push(file);
    }
    let now = std::time::SystemTime::now();
    let start = now - started.elapsed();
    let result = reapi::ActionResult {
        output_files: files,
        stdout_digest,
        stderr_digest,
        exit_code: 0,
        execution_metadata: Some(reapi::ExecutedActionMetadata {
            worker: streams.by.into(),
            execution_start_timestamp: Some(start.into()),
            execution_completed_timestamp: Some(now.into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let streams = on_server::Streams {
        stdout: &mapped_out,
        stderr: &mapped_err,
    };
    if let (Some(cache_dir), Some(tier)) = (later, client.tier())
        && on_server::keep_in_tier(tier, &p.digest, &result, streams, &landed)
    {
        match super::outbox::post(cache_dir, client, &p.digest) {
            Ok(()) => return Ok(Sent::Later),
            Err(e) => tracing::info!("publishing now: the outbox: {e:#}"),
        }
    }
    let client = client.for_action(&p.digest);
    let up = send(&client, blobs).await.map_err(|e| Failure::of(&e))?;
    client
        .update_action_result(&p.digest, result.clone())
        .await
        .map_err(|e| Failure::of(&e))?;
    if later.is_none()
        && let Some(tier) = client.tier()
    {
        let _ = on_server::keep_in_tier(tier, &p.digest, &result, streams, &landed);
    }
    Ok(Sent::Now(up))
}

/// Sends a result's blobs: a fresh compile's outputs are mostly new to the
/// server, so small ones go at once, without a FindMissingBlobs round trip
/// first. Returns their bytes.
pub(super) async fn send(client: &Client, blobs: Vec<Blob>) -> Result<u64, RemoteError> {
    let up = blobs.iter().map(|b| b.digest.size()).sum();
    if up <= SEND_UNASKED {
        client.upload(blobs).await?;
    } else {
        client.upload_missing(blobs).await?;
    }
    Ok(up)
}
