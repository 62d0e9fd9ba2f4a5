//! Getting a compile's toolchain onto the server, once per server and
//! toolchain, without making a compile wait for hundreds of megabytes.
//!
//! Parallel compiles (`make -j`, cargo) would each find the same files
//! missing and send them side by side, so one takes a lock and the others
//! wait for its marker (`<cache>/uploaded/SERVER-ROOT`, trusted for an
//! hour; blobs the server evicts sooner are named missing by Execute and
//! sent again with the action's own inputs).
//!
//! Across a network the first compile must not wait either:
//! with `RECAST_TOOLCHAIN_UPLOAD=auto` (the default, for a server not on
//! loopback) or `background`, a compile that finds more than
//! [`INLINE_LIMIT`] missing writes what to send to
//! `<cache>/uploads/NAME.json`, starts `recast toolchain push-pending` on
//! it in a process of its own, and compiles here
//! (`Reason::ToolchainUploading`), as do the compiles after it while the
//! upload holds the lock. Those compiles are cache-only ones: the first of
//! each file runs at once (`here::compile_first`), and each result is kept
//! in the local tier and published, so the next build hits. Once the
//! marker is there, compiles run remotely.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::on_server::Failure;
use super::why::Cause;
use super::{Ctx, Flow};
use crate::cas::Digest;
use crate::remote::{Blob, BlobSource, Client};
use crate::toolchain::bundle::Bundle;

/// How long a toolchain is taken to be on a server after its upload.
const UPLOADED_TTL_SECS: u64 = 3600;

/// Missing bytes a compile sends itself rather than in the background: a
/// few files of a toolchain the server mostly has.
pub(crate) const INLINE_LIMIT: u64 = 8 << 20;

/// What a background upload sends, written by the compile that starts it.
#[derive(Serialize, Deserialize)]
pub(crate) struct Pending {
    /// The server and instance it is for (the uploader checks that its
    /// own settings name the same).
    pub url: String,
    pub instance: String,
    /// The toolchain's name, for messages.
    pub name: String,
    pub marker: PathBuf,
    pub lock: PathBuf,
    /// Files: digest and the path to read.
    pub files: Vec<(String, u64, PathBuf)>,
    /// Directory messages: digest and bytes in hex.
    pub dirs: Vec<(String, u64, String)>,
}

fn fresh(marker: &Path) -> bool {
    std::fs::metadata(marker)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age.as_secs() < UPLOADED_TTL_SECS)
}

fn blobs_of(bundle: &Bundle) -> Vec<Blob> {
    let mut blobs: Vec<Blob> = bundle
        .files
        .iter()
        .map(|(p, d)| Blob::file(*d, bundle.source_of(p)))
        .collect();
    for (d, bytes) in &bundle.tree.directories {
        blobs.push(Blob {
            digest: *d,
            source: BlobSource::Bytes(bytes.clone()),
        });
    }
    blobs
}

/// Where a compile's toolchain is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Toolchain {
    /// On the server (as far as an hour-old marker can say).
    There,
    /// Going up in the background: compile here meanwhile.
    Uploading,
}

/// Puts `bundle` on the server, or has it put there in the background.
pub(crate) async fn ensure(ctx: &Ctx, client: &Client, bundle: &Bundle) -> Result<Toolchain, Flow> {
    let server = client.server_key();
    let name = format!(
        "{}-{}",
        &server.hex()[..16],
        &bundle.manifest.root.hex()[..32]
    );
    let marker = ctx.cache_dir.join("uploaded").join(&name);
    if fresh(&marker) {
        return Ok(Toolchain::There);
    }
    let lock_path = ctx.cache_dir.join("locks").join(format!("{name}.lock"));
    let background = ctx.wrap.toolchain_upload.background(client.is_loopback());
    let fail = |f: Failure| Flow::fallback(f.cause, f.message);
    let lock = {
        let path = lock_path.clone();
        tokio::task::spawn_blocking(move || {
            if background {
                crate::lock::FileLock::try_take(&path)
            } else {
                crate::lock::FileLock::take(&path).map(Some)
            }
        })
        .await
        .map_err(|e| fail(Failure::new(Cause::Internal, e)))?
        .map_err(|e| {
            fail(Failure::new(
                Cause::LocalIo,
                format!("the upload lock: {e}"),
            ))
        })?
    };
    let Some(lock) = lock else {
        // Another process is uploading it: compile here meanwhile.
        return Ok(Toolchain::Uploading);
    };
    if fresh(&marker) {
        return Ok(Toolchain::There);
    }
    let blobs = blobs_of(bundle);
    let missing: Vec<Blob> = if background {
        let digests: Vec<Digest> = blobs.iter().map(|b| b.digest).collect();
        let missing: std::collections::HashSet<Digest> = client
            .find_missing(&digests)
            .await
            .map_err(|e| fail(Failure::of(&e)))?
            .into_iter()
            .collect();
        blobs
            .into_iter()
            .filter(|b| missing.contains(&b.digest))
            .collect()
    } else {
        blobs
    };
    let missing_bytes: u64 = missing.iter().map(|b| b.digest.size()).sum();
    if background && missing_bytes > INLINE_LIMIT {
        let pending = Pending {
            url: client.url().to_string(),
            instance: client.instance().to_string(),
            name: bundle.manifest.name.clone(),
            marker,
            lock: lock_path,
            files: Vec::new(),
            dirs: Vec::new(),
        };
        start(ctx, &name, pending, missing)
            .map_err(|e| fail(Failure::new(Cause::LocalIo, format!("{e:#}"))))?;
        // The uploader takes the lock once we let it go.
        drop(lock);
        return Ok(Toolchain::Uploading);
    }
    let sent = if background {
        client.upload(missing).await
    } else {
        client.upload_missing(missing).await
    }
    .map_err(|e| fail(Failure::of(&e)))?;
    tracing::debug!(blobs = sent.blobs, bytes = sent.bytes, "toolchain uploaded");
    let _ = crate::fsutil::write_private(&marker, bundle.manifest.name.as_bytes(), false);
    drop(lock);
    Ok(Toolchain::There)
}

/// Writes what to send and starts `recast toolchain push-pending` on it,
/// in its own process group, its output in `<cache>/uploads/NAME.log`.
fn start(ctx: &Ctx, name: &str, mut pending: Pending, blobs: Vec<Blob>) -> anyhow::Result<()> {
    for b in blobs {
        match b.source {
            BlobSource::File(p) => pending.files.push((b.digest.hex(), b.digest.size(), p)),
            BlobSource::Bytes(bytes) => {
                pending
                    .dirs
                    .push((b.digest.hex(), b.digest.size(), hex::encode(bytes)))
            }
        }
    }
    let dir = ctx.cache_dir.join("uploads");
    crate::fsutil::create_private_dir_all(&dir)?;
    let path = dir.join(format!("{name}.json"));
    crate::fsutil::write_private(&path, &serde_json::to_vec(&pending)?, false)?;
    let log = crate::fsutil::create_private(&dir.join(format!("{name}.log")))?;
    super::process::start_detached(
        &[
            "toolchain".as_ref(),
            "push-pending".as_ref(),
            path.as_os_str(),
        ],
        log,
    )?;
    tracing::info!(toolchain = %pending.name, "uploading in the background");
    Ok(())
}

/// `recast toolchain push-pending FILE`: sends what `FILE` lists to
/// `client`'s server under the lock its compile named, then writes the
/// marker that lets compiles run remotely and removes `FILE`.
pub async fn push_pending(path: &Path, client: &Client) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let pending: Pending = serde_json::from_slice(
        &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("{} is not a pending upload", path.display()))?;
    anyhow::ensure!(
        pending.url == client.url() && pending.instance == client.instance(),
        "{} is for {} (instance {:?}), but the settings name {} (instance {:?})",
        path.display(),
        pending.url,
        pending.instance,
        client.url(),
        client.instance()
    );
    let lock_path = pending.lock.clone();
    let _lock =
        tokio::task::spawn_blocking(move || crate::lock::FileLock::take(&lock_path)).await??;
    if !fresh(&pending.marker) {
        let mut blobs = Vec::with_capacity(pending.files.len() + pending.dirs.len());
        for (hex, size, file) in &pending.files {
            blobs.push(Blob::file(Digest::new(hex, *size as i64)?, file));
        }
        for (hex, size, bytes) in &pending.dirs {
            blobs.push(Blob {
                digest: Digest::new(hex, *size as i64)?,
                source: BlobSource::Bytes(hex::decode(bytes)?),
            });
        }
        let started = std::time::Instant::now();
        let sent = client
            .upload_missing(blobs)
            .await
            .with_context(|| format!("uploading {} to {}", pending.name, pending.url))?;
        eprintln!(
            "recast: uploaded {} ({} blobs, {} bytes) to {} in {:.1} s",
            pending.name,
            sent.blobs,
            sent.bytes,
            pending.url,
            started.elapsed().as_secs_f64()
        );
        crate::fsutil::write_private(&pending.marker, pending.name.as_bytes(), false)?;
    }
    let _ = std::fs::remove_file(path);
    Ok(())
}
