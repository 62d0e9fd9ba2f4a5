//! `google.bytestream.ByteStream` over the CAS: Read, Write and
//! QueryWriteStatus for blobs too large for a batch, plain or zstd.
//!
//! Blobs are streamed, never held whole: a Read sends chunks of at most
//! [`CHUNK`] bytes straight from the blob's file; a Write feeds each chunk
//! into a [`BlobSink`] on a blocking thread, which verifies size and hash
//! before the blob becomes visible. Resource names are parsed by
//! `resource`.

use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::error::{ServiceError, blocking};
use crate::cas::Digest;
use crate::cas::resource::{self, Compression, ResourceError};
use crate::cas::store::{BlobSink, BlobStore};
use crate::proto::bytestream::byte_stream_server::ByteStream;
use crate::proto::bytestream::{
    QueryWriteStatusRequest, QueryWriteStatusResponse, ReadRequest, ReadResponse, WriteRequest,
    WriteResponse,
};

/// Largest `data` in one ReadResponse.
pub const CHUNK: usize = 1 << 20;
/// Chunks buffered between the file thread and the network, each way.
const PIPE_DEPTH: usize = 4;
const ZSTD_LEVEL: i32 = 1;

impl From<ResourceError> for ServiceError {
    fn from(e: ResourceError) -> ServiceError {
        ServiceError::InvalidArgument(e.to_string())
    }
}

/// An opened read, ready to stream.
pub struct ReadPlan {
    source: Box<dyn Read + Send>,
    /// Bytes to drop first (compressed reads cannot seek).
    skip: u64,
    /// Bytes to send at most; `None` = to the end.
    limit: Option<u64>,
    compression: Compression,
    digest: Digest,
    offset: i64,
}

/// Checks a ReadRequest and opens the blob. NOT_FOUND when absent;
/// OUT_OF_RANGE when an uncompressed read starts past the end.
pub fn open_read(store: &dyn BlobStore, req: &ReadRequest) -> Result<ReadPlan, ServiceError> {
    let res = resource::parse_read(&req.resource_name)?;
    if req.read_offset < 0 {
        return Err(ServiceError::OutOfRange(format!(
            "read_offset {} is negative",
            req.read_offset
        )));
    }
    if req.read_limit < 0 {
        return Err(ServiceError::InvalidArgument(format!(
            "read_limit {} is negative",
            req.read_limit
        )));
    }
    let digest = res.digest;
    let offset = req.read_offset as u64;
    if res.compression == Compression::Identity && offset > digest.size() {
        return Err(ServiceError::OutOfRange(format!(
            "read_offset {offset} is past the end of blob {digest}"
        )));
    }
    let mut file = store
        .open(&digest)?
        .ok_or_else(|| ServiceError::NotFound(format!("blob {digest} not found")))?;
    let limit = (req.read_limit > 0).then_some(req.read_limit as u64);
    let (source, skip): (Box<dyn Read + Send>, u64) = match res.compression {
        Compression::Identity => {
            file.seek(SeekFrom::Start(offset))
                .map_err(|e| ServiceError::Internal(format!("reading blob {digest}: {e}")))?;
            (Box::new(file), 0)
        }
        Compression::Zstd => {
            let enc = zstd::stream::read::Encoder::new(file, ZSTD_LEVEL)
                .map_err(|e| ServiceError::Internal(format!("compressing blob {digest}: {e}")))?;
            (Box::new(enc), offset)
        }
    };
    Ok(ReadPlan {
        source,
        skip,
        limit,
        compression: res.compression,
        digest,
        offset: req.read_offset,
    })
}

impl ReadPlan {
    /// Reads the blob and hands `emit` chunks of up to [`CHUNK`] bytes;
    /// stops early when `emit` returns false (the client went away).
    pub fn stream(mut self, mut emit: impl FnMut(Vec<u8>) -> bool) -> Result<(), ServiceError> {
        let digest = self.digest;
        let io_err = |e: io::Error| ServiceError::Internal(format!("reading blob {digest}: {e}"));
        if self.skip > 0 {
            let skipped = io::copy(&mut (&mut self.source).take(self.skip), &mut io::sink())
                .map_err(io_err)?;
            if skipped < self.skip {
                return Err(ServiceError::OutOfRange(format!(
                    "read_offset {} is past the end of the compressed blob {digest} ({skipped} bytes)",
                    self.offset
                )));
            }
        }
        let mut left = self.limit.unwrap_or(u64::MAX);
        while left > 0 {
            let want = left.min(CHUNK as u64) as usize;
            let mut buf = vec![0u8; want];
            let n = read_full(&mut self.source, &mut buf).map_err(io_err)?;
            if n == 0 {
                break;
            }
            buf.truncate(n);
            left -= n as u64;
            if !emit(buf) {
                return Ok(());
            }
            if n < want {
                break;
            }
        }
        tracing::debug!(blob = %digest, compression = ?self.compression, "ByteStream.Read done");
        Ok(())
    }
}

/// Fills `buf` as far as the source allows; returns the bytes read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Bytes received so far by the uploads in progress, by resource name, for
/// QueryWriteStatus.
#[derive(Default)]
pub struct Uploads(Mutex<HashMap<String, Arc<AtomicI64>>>);

impl Uploads {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<AtomicI64>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Removes an upload from [`Uploads`] however the Write ends.
struct UploadGuard<'a> {
    uploads: &'a Uploads,
    name: String,
}

impl Drop for UploadGuard<'_> {
    fn drop(&mut self) {
        self.uploads.lock().remove(&self.name);
    }
}

enum Piece {
    Data(Vec<u8>),
    Finish,
}

/// Receives one ByteStream Write. Returns the `committed_size` to report:
/// the blob's size (uncompressed) or the compressed bytes received; `-1`
/// for a compressed upload of a blob that was already stored, which ends
/// the call early as the REAPI spec allows.
pub async fn write<S>(
    store: Arc<dyn BlobStore>,
    uploads: &Uploads,
    mut stream: S,
) -> Result<i64, ServiceError>
where
    S: Stream<Item = Result<WriteRequest, tonic::Status>> + Unpin,
{
    let first = match stream.next().await {
        Some(Ok(m)) => m,
        Some(Err(s)) => return Err(ServiceError::Stream(s)),
        None => return Err(ServiceError::InvalidArgument("empty Write stream".into())),
    };
    let name = first.resource_name.clone();
    let res = resource::parse_write(&name)?;
    let digest = res.digest;
    let compressed = res.compression == Compression::Zstd;
    let already_done = if compressed { -1 } else { digest.size() as i64 };
    {
        let store = store.clone();
        if blocking(move || Ok(store.contains(&digest))).await? {
            tracing::debug!(blob = %digest, "ByteStream.Write: already stored");
            return Ok(already_done);
        }
    }
    if first.write_offset != 0 {
        return Err(ServiceError::InvalidArgument(format!(
            "{name}: write_offset {} for an upload this server has not seen (resume from 0)",
            first.write_offset
        )));
    }

    let committed = Arc::new(AtomicI64::new(0));
    uploads.lock().insert(name.clone(), committed.clone());
    let _guard = UploadGuard {
        uploads,
        name: name.clone(),
    };

    let (tx, rx) = mpsc::channel::<Piece>(PIPE_DEPTH);
    let writer = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || absorb(&*store, digest, compressed, rx))
    };

    let mut received: i64 = 0;
    let mut msg = Some(first);
    let mut finished = false;
    while let Some(m) = msg.take() {
        if !m.resource_name.is_empty() && m.resource_name != name {
            return Err(ServiceError::InvalidArgument(format!(
                "resource name changed mid-upload from {name:?} to {:?}",
                m.resource_name
            )));
        }
        if m.write_offset != received {
            return Err(ServiceError::InvalidArgument(format!(
                "{name}: write_offset {} but {received} bytes were received",
                m.write_offset
            )));
        }
        received += m.data.len() as i64;
        if !compressed && received > digest.size() as i64 {
            return Err(ServiceError::InvalidArgument(format!(
                "upload of blob {digest} sent {received} bytes, more than its size"
            )));
        }
        if !m.data.is_empty() && tx.send(Piece::Data(m.data)).await.is_err() {
            break; // The writer failed; its result says why.
        }
        committed.store(received, Ordering::Relaxed);
        if m.finish_write {
            finished = tx.send(Piece::Finish).await.is_ok();
            break;
        }
        msg = match stream.next().await {
            Some(Ok(m)) => Some(m),
            Some(Err(s)) => return Err(ServiceError::Stream(s)),
            None => None,
        };
    }
    drop(tx);
    let written = writer
        .await
        .map_err(|e| ServiceError::Internal(format!("upload task failed: {e}")))?;
    written?;
    if !finished {
        return Err(ServiceError::InvalidArgument(format!(
            "upload of blob {digest} ended after {received} bytes without finish_write"
        )));
    }
    tracing::debug!(blob = %digest, received, compressed, "ByteStream.Write done");
    Ok(received)
}

/// The blocking half of a Write: pieces → (zstd decoder →) sink → commit.
/// Without a `Finish` the upload is abandoned and nothing is stored.
fn absorb(
    store: &dyn BlobStore,
    digest: Digest,
    compressed: bool,
    mut rx: mpsc::Receiver<Piece>,
) -> Result<(), ServiceError> {
    let sink = SinkWriter {
        sink: store.writer(&digest)?,
        digest,
        written: 0,
        failed: None,
    };
    let mut out = if compressed {
        Out::Zstd(
            zstd::stream::write::Decoder::new(sink)
                .map_err(|e| ServiceError::Internal(format!("zstd decoder: {e}")))?,
        )
    } else {
        Out::Plain(sink)
    };
    while let Some(piece) = rx.blocking_recv() {
        match piece {
            Piece::Data(d) => out.write_all(&d).map_err(|e| out.error(e))?,
            Piece::Finish => {
                out.flush().map_err(|e| out.error(e))?;
                let sink = out.into_sink();
                return sink.sink.commit().map_err(ServiceError::from);
            }
        }
    }
    Ok(())
}

/// `io::Write` over a [`BlobSink`], refusing bytes beyond the digest's
/// size (a decompression bomb stops at the declared size).
struct SinkWriter {
    sink: Box<dyn BlobSink>,
    digest: Digest,
    written: u64,
    failed: Option<ServiceError>,
}

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written += buf.len() as u64;
        if self.written > self.digest.size() {
            self.failed = Some(ServiceError::InvalidArgument(format!(
                "upload of blob {} decodes to more than its size",
                self.digest
            )));
            return Err(io::Error::other("too much data"));
        }
        if let Err(e) = self.sink.write_chunk(buf) {
            self.failed = Some(e.into());
            return Err(io::Error::other("store write failed"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum Out {
    Plain(SinkWriter),
    Zstd(zstd::stream::write::Decoder<'static, SinkWriter>),
}

impl Out {
    fn write_all(&mut self, d: &[u8]) -> io::Result<()> {
        match self {
            Out::Plain(w) => w.write_all(d),
            Out::Zstd(w) => w.write_all(d),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Out::Plain(w) => w.flush(),
            Out::Zstd(w) => w.flush(),
        }
    }

    fn sink(&mut self) -> &mut SinkWriter {
        match self {
            Out::Plain(w) => w,
            Out::Zstd(w) => w.get_mut(),
        }
    }

    fn into_sink(self) -> SinkWriter {
        match self {
            Out::Plain(w) => w,
            Out::Zstd(w) => w.into_inner(),
        }
    }

    /// The sink's own error if it caused `e`, else a decoding error.
    fn error(&mut self, e: io::Error) -> ServiceError {
        let digest = self.sink().digest;
        self.sink().failed.take().unwrap_or_else(|| {
            ServiceError::InvalidArgument(format!("upload of blob {digest}: bad zstd data: {e}"))
        })
    }
}

/// QueryWriteStatus: complete once the blob is stored; the bytes received
/// while an upload is in progress; NOT_FOUND otherwise.
pub fn query_write_status(
    store: &dyn BlobStore,
    uploads: &Uploads,
    req: &QueryWriteStatusRequest,
) -> Result<QueryWriteStatusResponse, ServiceError> {
    let res = resource::parse_write(&req.resource_name)?;
    if store.contains(&res.digest) {
        return Ok(QueryWriteStatusResponse {
            committed_size: res.digest.size() as i64,
            complete: true,
        });
    }
    match uploads.lock().get(&req.resource_name) {
        Some(n) => Ok(QueryWriteStatusResponse {
            committed_size: n.load(Ordering::Relaxed),
            complete: false,
        }),
        None => Err(ServiceError::NotFound(format!(
            "no upload in progress for {}",
            req.resource_name
        ))),
    }
}

/// The ByteStream service.
#[derive(Clone)]
pub struct ByteStreamService {
    store: Arc<dyn BlobStore>,
    uploads: Arc<Uploads>,
}

impl ByteStreamService {
    pub fn new(store: Arc<dyn BlobStore>) -> ByteStreamService {
        ByteStreamService {
            store,
            uploads: Arc::default(),
        }
    }
}

#[tonic::async_trait]
impl ByteStream for ByteStreamService {
    type ReadStream = ReceiverStream<Result<ReadResponse, tonic::Status>>;

    async fn read(
        &self,
        request: tonic::Request<ReadRequest>,
    ) -> Result<tonic::Response<Self::ReadStream>, tonic::Status> {
        super::auth::require(&request, super::auth::Scope::Read)?;
        let req = request.into_inner();
        tracing::debug!(resource = %req.resource_name, offset = req.read_offset, "ByteStream.Read");
        let store = self.store.clone();
        let plan = blocking(move || open_read(&*store, &req)).await?;
        let (tx, rx) = mpsc::channel(PIPE_DEPTH);
        tokio::task::spawn_blocking(move || {
            let sent = plan.stream(|data| tx.blocking_send(Ok(ReadResponse { data })).is_ok());
            if let Err(e) = sent {
                let _ = tx.blocking_send(Err(e.into()));
            }
        });
        Ok(tonic::Response::new(ReceiverStream::new(rx)))
    }

    async fn write(
        &self,
        request: tonic::Request<tonic::Streaming<WriteRequest>>,
    ) -> Result<tonic::Response<WriteResponse>, tonic::Status> {
        super::auth::require(&request, super::auth::Scope::WriteCas)?;
        let committed_size = write(self.store.clone(), &self.uploads, request.into_inner())
            .await
            .inspect_err(|e| tracing::info!(error = %e, "ByteStream.Write failed"))?;
        Ok(tonic::Response::new(WriteResponse { committed_size }))
    }

    async fn query_write_status(
        &self,
        request: tonic::Request<QueryWriteStatusRequest>,
    ) -> Result<tonic::Response<QueryWriteStatusResponse>, tonic::Status> {
        super::auth::require(&request, super::auth::Scope::Read)?;
        let req = request.into_inner();
        let (store, uploads) = (self.store.clone(), self.uploads.clone());
        let resp = blocking(move || query_write_status(&*store, &uploads, &req)).await?;
        Ok(tonic::Response::new(resp))
    }
}

#[cfg(test)]
#[path = "bytestream_tests.rs"]
mod tests;
