//! `ContentAddressableStorage`: FindMissingBlobs, BatchUpdateBlobs,
//! BatchReadBlobs and GetTree over a [`BlobStore`].
//!
//! The inner functions are synchronous (the store is `std::fs` code); the
//! handlers run them on blocking threads. Per-blob failures in a batch are
//! per-blob statuses; only a malformed or oversized request fails as a whole.
//! Large blobs go through `bytestream` instead.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use prost::Message as _;

use super::capabilities::MAX_BATCH_TOTAL_SIZE;
use super::error::{ServiceError, blocking, check_digest_function, digest_arg};
use crate::cas::Digest;
use crate::cas::store::BlobStore;
use crate::proto::reapi::content_addressable_storage_server::ContentAddressableStorage;
use crate::proto::{reapi, rpc};

/// Directories per GetTree response when the client sets no page size.
const DEFAULT_TREE_PAGE: usize = 1000;
/// Encoded bytes per GetTree response, whatever the page size: keeps each
/// message far below the gRPC limit even for very wide directories.
const TREE_PAGE_BYTES: usize = 2 << 20;
/// zstd level for blobs the server compresses: loopback and LAN transfers
/// gain little from more, and compression runs on the request path.
const ZSTD_LEVEL: i32 = 1;

/// Digests of `req` that are not stored, in request order.
pub fn find_missing(
    store: &dyn BlobStore,
    req: &reapi::FindMissingBlobsRequest,
) -> Result<reapi::FindMissingBlobsResponse, ServiceError> {
    check_digest_function(req.digest_function)?;
    let digests = req
        .blob_digests
        .iter()
        .map(|d| digest_arg("blob_digests", Some(d)))
        .collect::<Result<Vec<_>, _>>()?;
    let missing = store.find_missing(&digests);
    Ok(reapi::FindMissingBlobsResponse {
        missing_blob_digests: missing.iter().map(Digest::to_proto).collect(),
    })
}

/// Stores each blob after checking it against its digest.
pub fn batch_update(
    store: &dyn BlobStore,
    req: &reapi::BatchUpdateBlobsRequest,
) -> Result<reapi::BatchUpdateBlobsResponse, ServiceError> {
    check_digest_function(req.digest_function)?;
    // Counting the larger of the declared and the sent size bounds what a
    // decompression may allocate as well as what was received.
    let total: i64 = req
        .requests
        .iter()
        .map(|r| {
            let declared = r.digest.as_ref().map_or(0, |d| d.size_bytes.max(0));
            declared.max(r.data.len() as i64)
        })
        .sum();
    check_batch_total("BatchUpdateBlobs", total)?;
    let responses = req
        .requests
        .iter()
        .map(|r| reapi::batch_update_blobs_response::Response {
            digest: r.digest.clone(),
            status: Some(match update_one(store, r) {
                Ok(()) => ok_status(),
                Err(e) => e.to_rpc_status(),
            }),
        })
        .collect();
    Ok(reapi::BatchUpdateBlobsResponse { responses })
}

fn update_one(
    store: &dyn BlobStore,
    r: &reapi::batch_update_blobs_request::Request,
) -> Result<(), ServiceError> {
    use reapi::compressor::Value as Compressor;
    let digest = digest_arg("digest", r.digest.as_ref())?;
    let decoded;
    let data: &[u8] = match Compressor::try_from(r.compressor) {
        Ok(Compressor::Identity) => &r.data,
        Ok(Compressor::Zstd) => {
            decoded = zstd::bulk::decompress(&r.data, digest.size() as usize).map_err(|e| {
                ServiceError::InvalidArgument(format!("blob {digest}: bad zstd data: {e}"))
            })?;
            &decoded
        }
        _ => {
            return Err(ServiceError::InvalidArgument(format!(
                "blob {digest}: compressor {} is not supported (use IDENTITY or ZSTD)",
                r.compressor
            )));
        }
    };
    store.write(&digest, data)?;
    Ok(())
}

/// Returns each blob, zstd-compressed when the client accepts that.
pub fn batch_read(
    store: &dyn BlobStore,
    req: &reapi::BatchReadBlobsRequest,
) -> Result<reapi::BatchReadBlobsResponse, ServiceError> {
    use reapi::compressor::Value as Compressor;
    check_digest_function(req.digest_function)?;
    let total: i64 = req.digests.iter().map(|d| d.size_bytes.max(0)).sum();
    check_batch_total("BatchReadBlobs", total)?;
    let zstd = req
        .acceptable_compressors
        .contains(&(Compressor::Zstd as i32));
    let responses = req
        .digests
        .iter()
        .map(|wire| {
            let mut resp = reapi::batch_read_blobs_response::Response {
                digest: Some(wire.clone()),
                ..Default::default()
            };
            match read_one(store, wire, zstd) {
                Ok((data, compressor)) => {
                    resp.data = data;
                    resp.compressor = compressor as i32;
                    resp.status = Some(ok_status());
                }
                Err(e) => resp.status = Some(e.to_rpc_status()),
            }
            resp
        })
        .collect();
    Ok(reapi::BatchReadBlobsResponse { responses })
}

fn read_one(
    store: &dyn BlobStore,
    wire: &reapi::Digest,
    zstd: bool,
) -> Result<(Vec<u8>, reapi::compressor::Value), ServiceError> {
    use reapi::compressor::Value as Compressor;
    let digest = digest_arg("digests", Some(wire))?;
    let data = store
        .read(&digest)?
        .ok_or_else(|| ServiceError::NotFound(format!("blob {digest} not found")))?;
    if zstd {
        let packed = zstd::bulk::compress(&data, ZSTD_LEVEL)
            .map_err(|e| ServiceError::Internal(format!("compressing blob {digest}: {e}")))?;
        return Ok((packed, Compressor::Zstd));
    }
    Ok((data, Compressor::Identity))
}

fn check_batch_total(call: &str, total: i64) -> Result<(), ServiceError> {
    if total > MAX_BATCH_TOTAL_SIZE {
        return Err(ServiceError::InvalidArgument(format!(
            "{call} carries {total} bytes, over this server's max_batch_total_size_bytes of \
             {MAX_BATCH_TOTAL_SIZE}; send large blobs through ByteStream"
        )));
    }
    Ok(())
}

fn ok_status() -> rpc::Status {
    rpc::Status::default()
}

/// Every Directory reachable from the root, breadth-first and each digest
/// once, split into responses. `page_token` is the position to resume at,
/// as returned in an earlier response's `next_page_token`. Subdirectories
/// missing from the CAS are left out, as the spec allows; a missing root is
/// NOT_FOUND.
pub fn get_tree(
    store: &dyn BlobStore,
    req: &reapi::GetTreeRequest,
) -> Result<Vec<reapi::GetTreeResponse>, ServiceError> {
    check_digest_function(req.digest_function)?;
    let root = digest_arg("root_digest", req.root_digest.as_ref())?;
    let page_size = match req.page_size {
        0 => DEFAULT_TREE_PAGE,
        n if n > 0 => n as usize,
        n => {
            return Err(ServiceError::InvalidArgument(format!(
                "page_size {n} is negative"
            )));
        }
    };
    let start: usize = if req.page_token.is_empty() {
        0
    } else {
        req.page_token.parse().map_err(|_| {
            ServiceError::InvalidArgument(format!("page_token {:?} is not ours", req.page_token))
        })?
    };

    let dirs = walk_tree(store, &root)?;
    if start > dirs.len() {
        return Err(ServiceError::InvalidArgument(format!(
            "page_token {start} is past the end of the tree ({} directories)",
            dirs.len()
        )));
    }
    let mut pages = Vec::new();
    let mut at = start;
    loop {
        let mut page = reapi::GetTreeResponse::default();
        let mut bytes = 0;
        while at < dirs.len() && page.directories.len() < page_size {
            let len = dirs[at].encoded_len();
            if !page.directories.is_empty() && bytes + len > TREE_PAGE_BYTES {
                break;
            }
            bytes += len;
            page.directories.push(dirs[at].clone());
            at += 1;
        }
        if at < dirs.len() {
            page.next_page_token = at.to_string();
        }
        let last = at >= dirs.len();
        pages.push(page);
        if last {
            return Ok(pages);
        }
    }
}

fn walk_tree(store: &dyn BlobStore, root: &Digest) -> Result<Vec<reapi::Directory>, ServiceError> {
    let mut out = Vec::new();
    let mut seen = HashSet::from([*root]);
    let mut queue = VecDeque::from([*root]);
    while let Some(d) = queue.pop_front() {
        let Some(bytes) = store.read(&d)? else {
            if d == *root {
                return Err(ServiceError::NotFound(format!(
                    "root directory {d} not found"
                )));
            }
            continue;
        };
        let dir = reapi::Directory::decode(bytes.as_slice()).map_err(|e| {
            ServiceError::InvalidArgument(format!("blob {d} is not a Directory: {e}"))
        })?;
        for child in &dir.directories {
            let cd = digest_arg("directories.digest", child.digest.as_ref())?;
            if seen.insert(cd) {
                queue.push_back(cd);
            }
        }
        out.push(dir);
    }
    Ok(out)
}

/// The ContentAddressableStorage service.
#[derive(Clone)]
pub struct CasService {
    store: Arc<dyn BlobStore>,
}

impl CasService {
    pub fn new(store: Arc<dyn BlobStore>) -> CasService {
        CasService { store }
    }
}

type Resp<T> = Result<tonic::Response<T>, tonic::Status>;

#[tonic::async_trait]
impl ContentAddressableStorage for CasService {
    async fn find_missing_blobs(
        &self,
        request: tonic::Request<reapi::FindMissingBlobsRequest>,
    ) -> Resp<reapi::FindMissingBlobsResponse> {
        super::auth::require(&request, super::auth::Scope::Read)?;
        let req = request.into_inner();
        let store = self.store.clone();
        let resp = blocking(move || find_missing(&*store, &req)).await?;
        tracing::debug!(
            missing = resp.missing_blob_digests.len(),
            "FindMissingBlobs"
        );
        Ok(tonic::Response::new(resp))
    }

    async fn batch_update_blobs(
        &self,
        request: tonic::Request<reapi::BatchUpdateBlobsRequest>,
    ) -> Resp<reapi::BatchUpdateBlobsResponse> {
        super::auth::require(&request, super::auth::Scope::WriteCas)?;
        let req = request.into_inner();
        tracing::debug!(blobs = req.requests.len(), "BatchUpdateBlobs");
        let store = self.store.clone();
        Ok(tonic::Response::new(
            blocking(move || batch_update(&*store, &req)).await?,
        ))
    }

    async fn batch_read_blobs(
        &self,
        request: tonic::Request<reapi::BatchReadBlobsRequest>,
    ) -> Resp<reapi::BatchReadBlobsResponse> {
        super::auth::require(&request, super::auth::Scope::Read)?;
        let req = request.into_inner();
        tracing::debug!(blobs = req.digests.len(), "BatchReadBlobs");
        let store = self.store.clone();
        Ok(tonic::Response::new(
            blocking(move || batch_read(&*store, &req)).await?,
        ))
    }

    type GetTreeStream =
        futures::stream::Iter<std::vec::IntoIter<Result<reapi::GetTreeResponse, tonic::Status>>>;

    async fn get_tree(
        &self,
        request: tonic::Request<reapi::GetTreeRequest>,
    ) -> Resp<Self::GetTreeStream> {
        super::auth::require(&request, super::auth::Scope::Read)?;
        let req = request.into_inner();
        let store = self.store.clone();
        let pages = blocking(move || get_tree(&*store, &req)).await?;
        tracing::debug!(pages = pages.len(), "GetTree");
        Ok(tonic::Response::new(futures::stream::iter(
            pages.into_iter().map(Ok).collect::<Vec<_>>(),
        )))
    }

    async fn split_blob(
        &self,
        _request: tonic::Request<reapi::SplitBlobRequest>,
    ) -> Resp<reapi::SplitBlobResponse> {
        Err(tonic::Status::unimplemented(
            "SplitBlob is not supported (split_blob_support is false)",
        ))
    }

    async fn splice_blob(
        &self,
        _request: tonic::Request<reapi::SpliceBlobRequest>,
    ) -> Resp<reapi::SpliceBlobResponse> {
        Err(tonic::Status::unimplemented(
            "SpliceBlob is not supported (splice_blob_support is false)",
        ))
    }
}

#[cfg(test)]
#[path = "cas_tests.rs"]
mod tests;
