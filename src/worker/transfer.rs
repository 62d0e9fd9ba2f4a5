//! Moving blobs between the scheduler's CAS and the worker's local store:
//! an action's input tree in before it runs, its outputs out after.
//!
//! The local [`DiskStore`] is a cache kept across leases: the tree is
//! walked level by level, reading directories the store already has
//! locally and fetching only the rest, then only the files it lacks. Every
//! blob is verified twice over: by the client as it arrives and by the
//! store as it is written. Outputs go up with FindMissingBlobs first, so a
//! result already in the CAS costs one call. Running the action is the
//! runner's job; talking to the Bots service is `session`'s.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prost::Message;

use crate::cas::Digest;
use crate::cas::store::{self, BlobStore, DiskStore, StoreError};
use crate::cas::tree;
use crate::proto::reapi;
use crate::remote::{Blob, Client, RemoteError};

/// Bytes of small blobs held in memory at once while fetching.
const FETCH_CHUNK_BYTES: u64 = 32 << 20;
/// Blobs at or above this size are streamed through a temp file.
const STREAM_THRESHOLD: u64 = 4 << 20;

/// Why blobs could not be moved. `Missing` is the client's to fix (upload
/// and retry: FAILED_PRECONDITION); the others are the worker's or the
/// network's (the lease is retried).
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("{} blob(s) missing from the scheduler's CAS", .0.len())]
    Missing(Vec<Digest>),
    #[error("input directory {digest} does not decode: {reason}")]
    BadDirectory { digest: Digest, reason: String },
    #[error(transparent)]
    Remote(RemoteError),
    #[error("local store: {0}")]
    Store(#[from] StoreError),
}

impl From<RemoteError> for TransferError {
    fn from(e: RemoteError) -> TransferError {
        match e {
            RemoteError::NotFound { digests, .. } => TransferError::Missing(digests),
            e => TransferError::Remote(e),
        }
    }
}

/// What a fetch brought in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FetchStats {
    pub blobs: u64,
    pub bytes: u64,
}

/// A blob's verified content, from the local store or else the CAS (and
/// then kept locally).
pub async fn blob(
    client: &Client,
    local: &Arc<DiskStore>,
    d: &Digest,
) -> Result<Vec<u8>, TransferError> {
    let l = local.clone();
    let dd = *d;
    if let Some(bytes) = blocking(move || Ok(l.read(&dd)?)).await? {
        return Ok(bytes);
    }
    let bytes = client.read_blob(d).await?;
    let l = local.clone();
    let (dd, b) = (*d, bytes.clone());
    blocking(move || Ok(l.write(&dd, &b)?)).await?;
    Ok(bytes)
}

/// Makes every directory and file of the tree under `root` present in the
/// local store, fetching what it lacks.
pub async fn fetch_tree(
    client: &Client,
    local: &Arc<DiskStore>,
    tmp: &Path,
    root: &Digest,
) -> Result<FetchStats, TransferError> {
    let mut stats = FetchStats::default();
    let mut seen_dirs: HashSet<Digest> = HashSet::from([*root]);
    let mut level = vec![*root];
    let mut files: HashSet<Digest> = HashSet::new();
    while !level.is_empty() {
        let l = local.clone();
        let wanted = level.clone();
        let missing = blocking(move || Ok(l.find_missing(&wanted))).await?;
        stats.add(&fetch_small(client, local, &missing).await?);
        let l = local.clone();
        let this_level = std::mem::take(&mut level);
        let dirs = blocking(move || {
            let mut out = Vec::new();
            for d in this_level {
                let bytes = l.read(&d)?.ok_or(StoreError::NotFound(d))?;
                out.push((d, bytes));
            }
            Ok(out)
        })
        .await?;
        for (d, bytes) in dirs {
            let dir = reapi::Directory::decode(bytes.as_slice()).map_err(|e| {
                TransferError::BadDirectory {
                    digest: d,
                    reason: e.to_string(),
                }
            })?;
            // Malformed digests are left for the runner, which reports
            // them with their path.
            for f in &dir.files {
                if let Ok(fd) = Digest::from_proto_opt(f.digest.as_ref()) {
                    files.insert(fd);
                }
            }
            for sub in &dir.directories {
                if let Ok(sd) = Digest::from_proto_opt(sub.digest.as_ref())
                    && seen_dirs.insert(sd)
                {
                    level.push(sd);
                }
            }
        }
    }
    let l = local.clone();
    let files: Vec<Digest> = files.into_iter().collect();
    let missing = blocking(move || Ok(l.find_missing(&files))).await?;
    let (large, small): (Vec<Digest>, Vec<Digest>) = missing
        .into_iter()
        .partition(|d| d.size() >= STREAM_THRESHOLD);
    stats.add(&fetch_small(client, local, &small).await?);
    for d in large {
        fetch_large(client, local, tmp, &d).await?;
        stats.add(&FetchStats {
            blobs: 1,
            bytes: d.size(),
        });
    }
    Ok(stats)
}

impl FetchStats {
    fn add(&mut self, o: &FetchStats) {
        self.blobs += o.blobs;
        self.bytes += o.bytes;
    }
}

/// Reads small blobs from the CAS in memory-bounded chunks into the store.
async fn fetch_small(
    client: &Client,
    local: &Arc<DiskStore>,
    digests: &[Digest],
) -> Result<FetchStats, TransferError> {
    let mut stats = FetchStats::default();
    let mut chunk: Vec<Digest> = Vec::new();
    let mut chunk_bytes = 0;
    let mut chunks = Vec::new();
    for d in digests {
        if !chunk.is_empty() && chunk_bytes + d.size() > FETCH_CHUNK_BYTES {
            chunks.push(std::mem::take(&mut chunk));
            chunk_bytes = 0;
        }
        chunk_bytes += d.size();
        chunk.push(*d);
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    for chunk in chunks {
        let blobs = client.read_blobs(&chunk).await?;
        stats.blobs += blobs.len() as u64;
        stats.bytes += blobs.keys().map(Digest::size).sum::<u64>();
        let l = local.clone();
        blocking(move || {
            for (d, data) in &blobs {
                l.write(d, data)?;
            }
            Ok(())
        })
        .await?;
    }
    Ok(stats)
}

/// Streams one large blob through a temp file into the store.
async fn fetch_large(
    client: &Client,
    local: &Arc<DiskStore>,
    tmp: &Path,
    d: &Digest,
) -> Result<(), TransferError> {
    crate::fsutil::create_private_dir_all(tmp).map_err(|e| StoreError::Io {
        path: tmp.to_path_buf(),
        source: e,
    })?;
    let path = tmp.join(format!(
        "fetch-{}-{}",
        d.hex(),
        uuid::Uuid::new_v4().simple()
    ));
    let res = async {
        client.download_to_file(d, &path).await?;
        let l = local.clone();
        let (p, dd) = (path.clone(), *d);
        blocking(move || Ok(store::store_file_as(l.as_ref(), &p, &dd)?)).await
    }
    .await;
    let _ = std::fs::remove_file(&path);
    res
}

/// Every blob an ActionResult refers to: output files, output directory
/// `Tree`s and the files inside them, stdout and stderr.
pub fn result_blobs(
    local: &dyn BlobStore,
    result: &reapi::ActionResult,
) -> Result<Vec<Digest>, TransferError> {
    let mut out = Vec::new();
    let mut push = |d: Option<&reapi::Digest>| {
        if let Some(d) = d
            && let Ok(d) = Digest::from_proto(d)
        {
            out.push(d);
        }
    };
    push(result.stdout_digest.as_ref());
    push(result.stderr_digest.as_ref());
    for f in &result.output_files {
        push(f.digest.as_ref());
    }
    let mut trees = Vec::new();
    for dir in &result.output_directories {
        push(dir.tree_digest.as_ref());
        if let Some(t) = &dir.tree_digest
            && let Ok(t) = Digest::from_proto(t)
        {
            trees.push(t);
        }
    }
    for t in trees {
        let bytes = local.read(&t)?.ok_or(StoreError::NotFound(t))?;
        let tree =
            reapi::Tree::decode(bytes.as_slice()).map_err(|e| TransferError::BadDirectory {
                digest: t,
                reason: e.to_string(),
            })?;
        let entries =
            tree::flatten_tree_message(&tree).map_err(|e| TransferError::BadDirectory {
                digest: t,
                reason: e.to_string(),
            })?;
        for e in entries {
            if let tree::Node::File { digest, .. } = e.node {
                out.push(digest);
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Uploads what the CAS lacks of a result's blobs, from the local store.
pub async fn upload_result(
    client: &Client,
    local: &Arc<DiskStore>,
    result: &reapi::ActionResult,
) -> Result<u64, TransferError> {
    let l = local.clone();
    let r = result.clone();
    let digests = blocking(move || result_blobs(l.as_ref(), &r)).await?;
    let blobs: Vec<Blob> = digests
        .iter()
        .map(|d| Blob::file(*d, local.blob_path(d)))
        .collect();
    let stats = client.upload_missing(blobs).await?;
    Ok(stats.blobs)
}

/// Runs store work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, TransferError> + Send + 'static,
) -> Result<T, TransferError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        TransferError::Store(StoreError::Io {
            path: PathBuf::new(),
            source: std::io::Error::other(format!("store task failed: {e}")),
        })
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_blobs_include_tree_contents_and_streams() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStore::open(dir.path(), 1 << 30).unwrap();
        let put = |data: &[u8]| {
            let d = Digest::of_bytes(data);
            store.write(&d, data).unwrap();
            d
        };
        let (a, b, out, err) = (put(b"a"), put(b"b"), put(b"obj"), put(b"warn"));
        let t = tree::build(&[
            tree::Entry::file("x/a", a, false),
            tree::Entry::file("b", b, true),
        ])
        .unwrap();
        let tree_msg = t.to_tree_message();
        let tree_digest = put(&tree_msg.encode_to_vec());
        let result = reapi::ActionResult {
            output_files: vec![reapi::OutputFile {
                path: "o".into(),
                digest: Some(out.to_proto()),
                ..Default::default()
            }],
            output_directories: vec![reapi::OutputDirectory {
                path: "d".into(),
                tree_digest: Some(tree_digest.to_proto()),
                ..Default::default()
            }],
            stderr_digest: Some(err.to_proto()),
            ..Default::default()
        };
        let mut want = vec![a, b, out, err, tree_digest];
        want.sort_unstable();
        assert_eq!(result_blobs(&store, &result).unwrap(), want);

        // A tree the store lost is an error, not a silent partial upload.
        let lost = reapi::ActionResult {
            output_directories: vec![reapi::OutputDirectory {
                path: "d".into(),
                tree_digest: Some(Digest::of_bytes(b"nope").to_proto()),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(matches!(
            result_blobs(&store, &lost),
            Err(TransferError::Store(StoreError::NotFound(_)))
        ));
    }
}
