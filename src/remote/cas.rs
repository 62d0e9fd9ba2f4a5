//! ContentAddressableStorage calls: FindMissingBlobs, uploads (batched under
//! the server's limit, ByteStream above it), reads (the same split), and
//! GetTree.
//!
//! Work is split into chunks that run concurrently on the one channel. Every
//! blob read is verified against its digest here, so callers only ever see
//! checked bytes. The ByteStream halves live in `bytestream`.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};

use super::retry::{CallKind, retry};
use super::{Client, RemoteError};
use crate::cas::Digest;
use crate::cas::blob::{Blob, BlobSource};
use crate::proto::reapi;

/// Digests per FindMissingBlobs request (about 80 bytes each on the wire).
const FIND_MISSING_CHUNK: usize = 10_000;
/// Requests of one kind in flight at once.
const CONCURRENCY: usize = 8;
/// Blobs by digest, as one read task returns them.
type Fetched = Vec<(Digest, Vec<u8>)>;

/// Bytes a batch entry costs on top of its data (digest, tags, status).
const PER_BLOB_OVERHEAD: u64 = 160;
/// Most entries in one batch: many tiny blobs cost per-entry work on the
/// server, and a failure retries the whole batch.
const MAX_BATCH_ENTRIES: usize = 2_000;
/// Blobs smaller than this are not worth compressing.
const MIN_COMPRESS: u64 = 1024;

/// A blob's whole content, checked to still have the size it was hashed at.
fn load(blob: &Blob) -> Result<Vec<u8>, RemoteError> {
    match &blob.source {
        BlobSource::Bytes(b) => Ok(b.clone()),
        BlobSource::File(path) => {
            let data = std::fs::read(path).map_err(|e| RemoteError::io(path, e))?;
            if data.len() as u64 != blob.digest.size() {
                return Err(changed(path));
            }
            Ok(data)
        }
    }
}

pub(crate) fn changed(path: &Path) -> RemoteError {
    RemoteError::io(
        path,
        std::io::Error::other("the file changed after it was hashed; run again"),
    )
}

/// What an upload sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UploadStats {
    pub blobs: u64,
    /// Uncompressed bytes of the blobs sent.
    pub bytes: u64,
}

/// Groups items into batches whose sizes plus overhead stay under `limit`.
fn pack<T>(items: Vec<T>, size: impl Fn(&T) -> u64, limit: u64) -> Vec<Vec<T>> {
    let mut batches = Vec::new();
    let mut cur = Vec::new();
    let mut cur_size = 0;
    for item in items {
        let s = size(&item) + PER_BLOB_OVERHEAD;
        if !cur.is_empty() && (cur_size + s > limit || cur.len() >= MAX_BATCH_ENTRIES) {
            batches.push(std::mem::take(&mut cur));
            cur_size = 0;
        }
        cur_size += s;
        cur.push(item);
    }
    if !cur.is_empty() {
        batches.push(cur);
    }
    batches
}

/// True if a blob of `size` bytes fits in a batch by itself.
fn fits_batch(size: u64, limit: u64) -> bool {
    size + PER_BLOB_OVERHEAD <= limit
}

/// zstd at a fast level, kept only if it saves at least a tenth.
pub(crate) fn maybe_compress(data: &[u8]) -> Option<Vec<u8>> {
    if (data.len() as u64) < MIN_COMPRESS {
        return None;
    }
    let c = zstd::bulk::compress(data, 1).ok()?;
    (c.len() < data.len() - data.len() / 10).then_some(c)
}

/// Unique digests, the empty blob left out (it is never missing).
fn unique(digests: &[Digest]) -> Vec<Digest> {
    let mut v: Vec<Digest> = digests
        .iter()
        .copied()
        .filter(|d| *d != Digest::EMPTY)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

impl Client {
    /// The digests among `digests` the server does not have.
    pub async fn find_missing(&self, digests: &[Digest]) -> Result<Vec<Digest>, RemoteError> {
        let all = unique(digests);
        let chunks: Vec<Vec<Digest>> = all.chunks(FIND_MISSING_CHUNK).map(<[_]>::to_vec).collect();
        let results: Vec<Vec<Digest>> = futures::stream::iter(chunks)
            .map(|chunk| self.find_missing_chunk(chunk))
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        let mut missing: Vec<Digest> = results.into_iter().flatten().collect();
        missing.sort_unstable();
        Ok(missing)
    }

    async fn find_missing_chunk(&self, chunk: Vec<Digest>) -> Result<Vec<Digest>, RemoteError> {
        let req = reapi::FindMissingBlobsRequest {
            instance_name: self.inner.instance.clone(),
            blob_digests: chunk.iter().map(Digest::to_proto).collect(),
            ..Default::default()
        };
        let client = self.cas_client().await?;
        let resp = retry(CallKind::Read, "FindMissingBlobs", || {
            let mut c = client.clone();
            let req = self.request(req.clone());
            async move { c.find_missing_blobs(req).await }
        })
        .await
        .map_err(|s| self.status("FindMissingBlobs", &s))?;
        resp.into_inner()
            .missing_blob_digests
            .iter()
            .map(|d| {
                Digest::from_proto(d)
                    .map_err(|e| self.protocol(format!("FindMissingBlobs answered {e}")))
            })
            .collect()
    }

    /// Uploads `blobs` (duplicates and the empty blob skipped): small ones
    /// in batches, large ones by ByteStream, several at once.
    pub async fn upload(&self, blobs: Vec<Blob>) -> Result<UploadStats, RemoteError> {
        let caps = self.capabilities().await?;
        let mut seen = std::collections::HashSet::new();
        let blobs: Vec<Blob> = blobs
            .into_iter()
            .filter(|b| b.digest != Digest::EMPTY && seen.insert(b.digest))
            .collect();
        let stats = UploadStats {
            blobs: blobs.len() as u64,
            bytes: blobs.iter().map(|b| b.digest.size()).sum(),
        };
        let (small, large): (Vec<Blob>, Vec<Blob>) = blobs
            .into_iter()
            .partition(|b| fits_batch(b.digest.size(), caps.batch_limit));
        let zstd_batch = self.use_zstd(caps.zstd_batch_update);
        let zstd_stream = self.use_zstd(caps.zstd);
        let mut tasks: Vec<BoxFuture<'_, Result<(), RemoteError>>> = Vec::new();
        // Large blobs first: they take longest, and batches fill the gaps.
        for blob in large {
            tasks.push(async move { self.write_blob(&blob, zstd_stream).await }.boxed());
        }
        for batch in pack(small, |b| b.digest.size(), caps.batch_limit) {
            tasks.push(self.upload_batch(batch, zstd_batch).boxed());
        }
        futures::stream::iter(tasks)
            .buffer_unordered(CONCURRENCY)
            .try_collect::<()>()
            .await?;
        Ok(stats)
    }

    /// FindMissingBlobs, then uploads what is missing.
    pub async fn upload_missing(&self, blobs: Vec<Blob>) -> Result<UploadStats, RemoteError> {
        // One blob per digest: files with the same content go once.
        let mut seen = std::collections::HashSet::new();
        let blobs: Vec<Blob> = blobs
            .into_iter()
            .filter(|b| seen.insert(b.digest))
            .collect();
        let digests: Vec<Digest> = blobs.iter().map(|b| b.digest).collect();
        let missing: std::collections::HashSet<Digest> =
            self.find_missing(&digests).await?.into_iter().collect();
        self.upload(
            blobs
                .into_iter()
                .filter(|b| missing.contains(&b.digest))
                .collect(),
        )
        .await
    }

    async fn upload_batch(&self, batch: Vec<Blob>, zstd: bool) -> Result<(), RemoteError> {
        let requests = tokio::task::spawn_blocking(move || {
            batch
                .iter()
                .map(|b| {
                    let data = load(b)?;
                    let compressed = if zstd { maybe_compress(&data) } else { None };
                    let (data, compressor) = match compressed {
                        Some(c) => (c, reapi::compressor::Value::Zstd),
                        None => (data, reapi::compressor::Value::Identity),
                    };
                    Ok(reapi::batch_update_blobs_request::Request {
                        digest: Some(b.digest.to_proto()),
                        data,
                        compressor: compressor as i32,
                    })
                })
                .collect::<Result<Vec<_>, RemoteError>>()
        })
        .await
        .expect("batch loader panicked")?;
        let wanted: Vec<Digest> = requests
            .iter()
            .map(|r| Digest::from_proto_opt(r.digest.as_ref()).expect("own digest"))
            .collect();
        let req = reapi::BatchUpdateBlobsRequest {
            instance_name: self.inner.instance.clone(),
            requests,
            ..Default::default()
        };
        let client = self.cas_client().await?;
        let resp = retry(CallKind::Write, "BatchUpdateBlobs", || {
            let mut c = client.clone();
            let req = self.request(req.clone());
            async move { c.batch_update_blobs(req).await }
        })
        .await
        .map_err(|s| self.status("BatchUpdateBlobs", &s))?
        .into_inner();
        let mut answered = std::collections::HashSet::new();
        for r in &resp.responses {
            let digest = Digest::from_proto_opt(r.digest.as_ref())
                .map_err(|e| self.protocol(format!("BatchUpdateBlobs answered {e}")))?;
            let status = r.status.clone().unwrap_or_default();
            if status.code != 0 {
                return Err(RemoteError::Status {
                    server: self.inner.url.clone(),
                    call: "BatchUpdateBlobs",
                    code: tonic::Code::from(status.code),
                    message: format!("blob {digest}: {}", status.message),
                });
            }
            answered.insert(digest);
        }
        if let Some(d) = wanted.iter().find(|d| !answered.contains(d)) {
            return Err(self.protocol(format!("BatchUpdateBlobs said nothing about blob {d}")));
        }
        Ok(())
    }

    /// One blob's verified content.
    pub async fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, RemoteError> {
        let mut map = self.read_blobs(std::slice::from_ref(digest)).await?;
        Ok(map.remove(digest).expect("read_blobs returns every digest"))
    }

    /// Verified contents of several blobs, by digest.
    pub async fn read_blobs(
        &self,
        digests: &[Digest],
    ) -> Result<HashMap<Digest, Vec<u8>>, RemoteError> {
        if digests.is_empty() {
            // Nothing to ask: not even the capabilities (a hit read from
            // the local store makes no call at all).
            return Ok(HashMap::new());
        }
        let caps = self.capabilities().await?;
        let mut out = HashMap::new();
        if digests.contains(&Digest::EMPTY) {
            out.insert(Digest::EMPTY, Vec::new());
        }
        let (small, large): (Vec<Digest>, Vec<Digest>) = unique(digests)
            .into_iter()
            .partition(|d| fits_batch(d.size(), caps.batch_limit));
        let zstd_batch = self.use_zstd(caps.zstd);
        let mut tasks: Vec<BoxFuture<'_, Result<Fetched, RemoteError>>> = Vec::new();
        for d in large {
            tasks.push(
                async move {
                    let buf = Vec::with_capacity(d.size() as usize);
                    Ok(vec![(d, self.read_to(&d, buf).await?)])
                }
                .boxed(),
            );
        }
        for batch in pack(small, |d| d.size(), caps.batch_limit) {
            tasks.push(self.read_batch(batch, zstd_batch).boxed());
        }
        let results: Vec<Vec<(Digest, Vec<u8>)>> = futures::stream::iter(tasks)
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        out.extend(results.into_iter().flatten());
        Ok(out)
    }

    async fn read_batch(
        &self,
        batch: Vec<Digest>,
        zstd: bool,
    ) -> Result<Vec<(Digest, Vec<u8>)>, RemoteError> {
        let req = reapi::BatchReadBlobsRequest {
            instance_name: self.inner.instance.clone(),
            digests: batch.iter().map(Digest::to_proto).collect(),
            acceptable_compressors: if zstd {
                vec![reapi::compressor::Value::Zstd as i32]
            } else {
                Vec::new()
            },
            ..Default::default()
        };
        let client = self.cas_client().await?;
        let resp = retry(CallKind::Read, "BatchReadBlobs", || {
            let mut c = client.clone();
            let req = self.request(req.clone());
            async move { c.batch_read_blobs(req).await }
        })
        .await
        .map_err(|s| self.status("BatchReadBlobs", &s))?
        .into_inner();
        let server = self.inner.url.clone();
        tokio::task::spawn_blocking(move || verify_batch(&server, &batch, resp))
            .await
            .expect("batch verifier panicked")
    }

    /// Downloads one blob into `path` (created or truncated), verified. On
    /// any error the file is removed.
    pub async fn download_to_file(&self, digest: &Digest, path: &Path) -> Result<(), RemoteError> {
        let caps = self.capabilities().await?;
        let result = async {
            if fits_batch(digest.size(), caps.batch_limit) {
                let data = self.read_blob(digest).await?;
                let p = path.to_path_buf();
                tokio::task::spawn_blocking(move || {
                    std::fs::write(&p, &data).map_err(|e| RemoteError::io(&p, e))
                })
                .await
                .expect("file writer panicked")
            } else {
                let file = std::fs::File::create(path).map_err(|e| RemoteError::io(path, e))?;
                let w = self
                    .read_to(digest, std::io::BufWriter::with_capacity(1 << 20, file))
                    .await
                    .map_err(|e| match e {
                        RemoteError::Io { source, .. } => RemoteError::io(path, source),
                        e => e,
                    })?;
                w.into_inner()
                    .map_err(|e| RemoteError::io(path, e.into_error()))?;
                Ok(())
            }
        }
        .await;
        if result.is_err() {
            let _ = std::fs::remove_file(path);
        }
        result
    }

    /// Downloads many blobs into their paths: small ones in batches, large
    /// ones streamed, several at once. On error, files written so far stay
    /// (they are verified); the caller owns the paths and cleans up.
    pub async fn download_to_files(
        &self,
        items: Vec<(Digest, PathBuf)>,
    ) -> Result<(), RemoteError> {
        if items.is_empty() {
            return Ok(());
        }
        let caps = self.capabilities().await?;
        let (small, large): (Vec<_>, Vec<_>) = items
            .into_iter()
            .partition(|(d, _)| fits_batch(d.size(), caps.batch_limit));
        let mut tasks: Vec<BoxFuture<'_, Result<(), RemoteError>>> = Vec::new();
        for (d, p) in large {
            tasks.push(async move { self.download_to_file(&d, &p).await }.boxed());
        }
        for batch in pack(small, |(d, _)| d.size(), caps.batch_limit) {
            tasks.push(
                async move {
                    let digests: Vec<Digest> = batch.iter().map(|(d, _)| *d).collect();
                    let blobs = self.read_blobs(&digests).await?;
                    tokio::task::spawn_blocking(move || {
                        for (d, p) in &batch {
                            let mut f =
                                std::fs::File::create(p).map_err(|e| RemoteError::io(p, e))?;
                            f.write_all(&blobs[d]).map_err(|e| RemoteError::io(p, e))?;
                        }
                        Ok(())
                    })
                    .await
                    .expect("file writer panicked")
                }
                .boxed(),
            );
        }
        futures::stream::iter(tasks)
            .buffer_unordered(CONCURRENCY)
            .try_collect::<()>()
            .await
    }

    /// Every directory below (and including) `root`, via paged GetTree.
    pub async fn get_tree(&self, root: &Digest) -> Result<Vec<reapi::Directory>, RemoteError> {
        let mut out = Vec::new();
        let mut token = String::new();
        let client = self.cas_client().await?;
        loop {
            let req = reapi::GetTreeRequest {
                instance_name: self.inner.instance.clone(),
                root_digest: Some(root.to_proto()),
                page_size: 0,
                page_token: token.clone(),
                ..Default::default()
            };
            // One stream; it may end with a token to continue from.
            let mut stream = retry(CallKind::Read, "GetTree", || {
                let mut c = client.clone();
                let req = self.request(req.clone());
                async move { c.get_tree(req).await }
            })
            .await
            .map_err(|s| self.status("GetTree", &s))?
            .into_inner();
            let mut next = String::new();
            while let Some(page) = stream
                .message()
                .await
                .map_err(|s| self.status("GetTree", &s))?
            {
                out.extend(page.directories);
                next = page.next_page_token;
            }
            if next.is_empty() {
                return Ok(out);
            }
            if next == token {
                return Err(self.protocol("GetTree repeated its page token"));
            }
            token = next;
        }
    }
}

/// Checks a BatchReadBlobs answer: every digest present, OK, decompressed,
/// and hashing to itself.
fn verify_batch(
    server: &str,
    wanted: &[Digest],
    resp: reapi::BatchReadBlobsResponse,
) -> Result<Vec<(Digest, Vec<u8>)>, RemoteError> {
    let mut got = HashMap::new();
    let mut not_found = Vec::new();
    for r in resp.responses {
        let digest = Digest::from_proto_opt(r.digest.as_ref())
            .map_err(|e| RemoteError::protocol(server, format!("BatchReadBlobs answered {e}")))?;
        if !wanted.contains(&digest) {
            continue;
        }
        let status = r.status.unwrap_or_default();
        if status.code == tonic::Code::NotFound as i32 {
            not_found.push(digest);
            continue;
        }
        if status.code != 0 {
            return Err(RemoteError::Status {
                server: server.to_string(),
                call: "BatchReadBlobs",
                code: tonic::Code::from(status.code),
                message: format!("blob {digest}: {}", status.message),
            });
        }
        let data = if r.compressor == reapi::compressor::Value::Zstd as i32 {
            zstd::bulk::decompress(&r.data, digest.size() as usize).map_err(|e| {
                RemoteError::protocol(server, format!("zstd data of blob {digest}: {e}"))
            })?
        } else if r.compressor == reapi::compressor::Value::Identity as i32 {
            r.data
        } else {
            return Err(RemoteError::protocol(
                server,
                format!(
                    "blob {digest} came with compressor {} we did not ask for",
                    r.compressor
                ),
            ));
        };
        let actual = Digest::of_bytes(&data);
        if actual != digest {
            return Err(RemoteError::BadBlob {
                server: server.to_string(),
                digest,
                got: actual,
            });
        }
        got.insert(digest, data);
    }
    for d in wanted {
        if !got.contains_key(d) && !not_found.contains(d) {
            return Err(RemoteError::protocol(
                server,
                format!("BatchReadBlobs said nothing about blob {d}"),
            ));
        }
    }
    if !not_found.is_empty() {
        not_found.sort_unstable();
        return Err(RemoteError::NotFound {
            server: server.to_string(),
            digests: not_found,
        });
    }
    Ok(got.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::reapi::batch_read_blobs_response::Response;
    use crate::proto::rpc;

    #[test]
    fn packs_batches_under_the_limit() {
        let sizes = vec![100u64, 200, 300, 50, 1000];
        let batches = pack(sizes, |s| *s, 700);
        // 100+160 + 200+160 = 620; adding 300+160 would pass 700.
        assert_eq!(batches, vec![vec![100, 200], vec![300, 50], vec![1000]]);
        assert!(pack(Vec::<u64>::new(), |s| *s, 10).is_empty());
        let many = pack(vec![0u64; MAX_BATCH_ENTRIES + 1], |s| *s, u64::MAX);
        assert_eq!(many.len(), 2);
        assert!(fits_batch(100, 260) && !fits_batch(101, 260));
    }

    #[test]
    fn compression_only_when_it_pays() {
        assert!(maybe_compress(b"short").is_none());
        let text = b"abcdefgh".repeat(1000);
        let c = maybe_compress(&text).unwrap();
        assert_eq!(zstd::bulk::decompress(&c, text.len()).unwrap(), text);
        let noise: Vec<u8> = (0..128u32)
            .flat_map(|i| *Digest::of_bytes(&i.to_le_bytes()).hash_bytes())
            .collect();
        assert!(maybe_compress(&noise).is_none());
    }

    fn response(d: &Digest, data: &[u8], code: i32, compressor: i32) -> Response {
        Response {
            digest: Some(d.to_proto()),
            data: data.to_vec(),
            compressor,
            status: Some(rpc::Status {
                code,
                ..Default::default()
            }),
        }
    }

    #[test]
    fn batch_reads_are_verified() {
        let a = Digest::of_bytes(b"a");
        let text = b"xyz".repeat(1000);
        let t = Digest::of_bytes(&text);
        let resp = reapi::BatchReadBlobsResponse {
            responses: vec![
                response(&a, b"a", 0, 0),
                response(&t, &zstd::bulk::compress(&text, 1).unwrap(), 0, 1),
            ],
        };
        let got: HashMap<_, _> = verify_batch("s", &[a, t], resp)
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(got[&a], b"a");
        assert_eq!(got[&t], text);

        let resp = reapi::BatchReadBlobsResponse {
            responses: vec![response(&a, b"b", 0, 0)],
        };
        match verify_batch("s", &[a], resp).unwrap_err() {
            RemoteError::BadBlob { digest, got, .. } => {
                assert_eq!(digest, a);
                assert_eq!(got, Digest::of_bytes(b"b"));
            }
            e => panic!("{e}"),
        }

        let resp = reapi::BatchReadBlobsResponse {
            responses: vec![response(&a, b"", tonic::Code::NotFound as i32, 0)],
        };
        assert!(matches!(
            verify_batch("s", &[a], resp).unwrap_err(),
            RemoteError::NotFound { digests, .. } if digests == vec![a]
        ));

        let resp = reapi::BatchReadBlobsResponse { responses: vec![] };
        assert!(matches!(
            verify_batch("s", &[a], resp).unwrap_err(),
            RemoteError::Protocol { .. }
        ));
        let resp = reapi::BatchReadBlobsResponse {
            responses: vec![response(&a, b"", tonic::Code::Internal as i32, 0)],
        };
        assert_eq!(
            verify_batch("s", &[a], resp).unwrap_err().code(),
            Some(tonic::Code::Internal)
        );
    }
}
