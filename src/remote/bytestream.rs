//! ByteStream Write and Read for blobs above the batch limit, streamed in
//! 1 MiB chunks, optionally zstd-compressed.
//!
//! The file side (reading, compressing, hashing, writing) runs on blocking
//! threads connected to the gRPC stream by bounded channels, so a 1 GB blob
//! never sits in memory and the async threads never block on disk. A read
//! that breaks off resumes at its offset; a write starts over under a new
//! upload id.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::cas::changed;
use super::retry::{CallKind, MAX_ATTEMPTS, backoff_delay, is_retryable, retry};
use super::{Blob, Client, RemoteError};
use crate::cas::Digest;
use crate::cas::blob::BlobSource;
use crate::cas::resource;
use crate::proto::bytestream::{ReadRequest, WriteRequest};

const CHUNK: usize = 1 << 20;
/// Chunks buffered between the file thread and the stream.
const PIPE_DEPTH: usize = 4;
/// Bytes sampled to decide whether a blob is worth compressing.
const SAMPLE: usize = 256 << 10;

/// Reads `src` fully into `buf` unless it ends first; returns the count.
fn fill(src: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn open_source(blob: &Blob) -> Result<Box<dyn Read + Send>, RemoteError> {
    Ok(match &blob.source {
        BlobSource::Bytes(b) => Box::new(std::io::Cursor::new(b.clone())),
        BlobSource::File(p) => {
            let f = std::fs::File::open(p).map_err(|e| RemoteError::io(p, e))?;
            let len = f.metadata().map_err(|e| RemoteError::io(p, e))?.len();
            if len != blob.digest.size() {
                return Err(changed(p));
            }
            Box::new(f)
        }
    })
}

/// True if the start of the blob shrinks noticeably under zstd.
fn compresses(blob: &Blob) -> Result<bool, RemoteError> {
    let mut src = open_source(blob)?;
    let mut buf = vec![0u8; SAMPLE];
    let n = fill(&mut src, &mut buf).map_err(|e| source_error(blob, e))?;
    Ok(super::cas::maybe_compress(&buf[..n]).is_some())
}

fn source_error(blob: &Blob, e: std::io::Error) -> RemoteError {
    match &blob.source {
        BlobSource::File(p) => RemoteError::io(p, e),
        BlobSource::Bytes(_) => RemoteError::io(format!("<blob {}>", blob.digest), e),
    }
}

/// Writes that track a SHA-256 and a size, refusing to grow past `limit`.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
    limit: u64,
    /// Set when the destination itself failed (disk full), as opposed to
    /// the data being wrong.
    sink_failed: Arc<std::sync::atomic::AtomicBool>,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.size + buf.len() as u64 > self.limit {
            return Err(std::io::Error::other("more data than the digest's size"));
        }
        let n = self.inner.write(buf).inspect_err(|_| {
            self.sink_failed
                .store(true, std::sync::atomic::Ordering::Relaxed)
        })?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush().inspect_err(|_| {
            self.sink_failed
                .store(true, std::sync::atomic::Ordering::Relaxed)
        })
    }
}

enum Sink<W: Write> {
    Plain(Hashing<W>),
    Zstd(zstd::stream::write::Decoder<'static, Hashing<W>>),
}

impl<W: Write> Sink<W> {
    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Plain(h) => h.write_all(data),
            Sink::Zstd(d) => d.write_all(data),
        }
    }
    fn finish(self) -> std::io::Result<(Digest, W)> {
        let mut h = match self {
            Sink::Plain(h) => h,
            Sink::Zstd(mut d) => {
                d.flush()?;
                d.into_inner()
            }
        };
        h.flush()?;
        Ok((
            Digest::from_raw(h.hasher.finalize().into(), h.size),
            h.inner,
        ))
    }
}

impl Client {
    /// Uploads one blob by ByteStream Write, retrying from the start on
    /// transient failures.
    pub(crate) async fn write_blob(&self, blob: &Blob, zstd: bool) -> Result<(), RemoteError> {
        let compress = if zstd {
            let b = blob.clone();
            tokio::task::spawn_blocking(move || compresses(&b))
                .await
                .expect("sampler panicked")?
        } else {
            false
        };
        retry(CallKind::Write, "ByteStream.Write", || {
            self.write_once(blob, compress)
        })
        .await
    }

    async fn write_once(&self, blob: &Blob, compress: bool) -> Result<(), RemoteError> {
        let name = resource::write_name(
            &self.inner.instance,
            &uuid::Uuid::new_v4().to_string(),
            &blob.digest,
            compress,
        );
        let (tx, rx) = mpsc::channel::<WriteRequest>(PIPE_DEPTH);
        // What the file thread ended with: an error, or the bytes it sent.
        let outcome: Arc<Mutex<Option<Result<i64, RemoteError>>>> = Arc::default();
        let src = open_source(blob)?;
        let producer = {
            let blob = blob.clone();
            let outcome = outcome.clone();
            tokio::task::spawn_blocking(move || {
                let r = produce(src, &blob, name, compress, tx);
                *outcome.lock().unwrap() = Some(r);
            })
        };
        let mut client = self.bytestream_client().await?;
        let answer = client.write(self.request(ReceiverStream::new(rx))).await;
        // The producer stops on its own once the stream is gone.
        producer.await.expect("upload reader panicked");
        let sent = outcome.lock().unwrap().take();
        let committed = match answer {
            Ok(r) => r.into_inner().committed_size,
            Err(s) => {
                // A local read error explains a broken stream better.
                if let Some(Err(e)) = sent {
                    return Err(e);
                }
                return Err(self.status("ByteStream.Write", &s));
            }
        };
        let ok = match (compress, sent) {
            (_, Some(Err(e))) => return Err(e),
            // Uncompressed: the full size, also when the server already had it.
            (false, _) => committed == blob.digest.size() as i64,
            // Compressed: -1 when completed early, else what we sent.
            (true, Some(Ok(total))) => committed == -1 || committed == total,
            (true, None) => committed == -1,
        };
        if !ok {
            return Err(self.protocol(format!(
                "ByteStream.Write of blob {} committed {committed} bytes",
                blob.digest
            )));
        }
        Ok(())
    }

    /// Streams one verified blob into `sink` by ByteStream Read, resuming at
    /// the current offset when an uncompressed read breaks off.
    pub(crate) async fn read_to<W: Write + Send + 'static>(
        &self,
        digest: &Digest,
        sink: W,
    ) -> Result<W, RemoteError> {
        let caps = self.capabilities().await?;
        let compressed = self.use_zstd(caps.zstd);
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(PIPE_DEPTH);
        let limit = digest.size();
        let sink_failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let failed = sink_failed.clone();
        let writer = tokio::task::spawn_blocking(move || -> std::io::Result<(Digest, W)> {
            let h = Hashing {
                inner: sink,
                hasher: Sha256::new(),
                size: 0,
                limit,
                sink_failed,
            };
            let mut s = if compressed {
                Sink::Zstd(zstd::stream::write::Decoder::new(h)?)
            } else {
                Sink::Plain(h)
            };
            while let Some(chunk) = rx.blocking_recv() {
                s.write_all(&chunk)?;
            }
            s.finish()
        });
        let streamed = self.stream_read(digest, compressed, &tx).await;
        drop(tx);
        let written = writer.await.expect("download writer panicked");
        streamed?;
        let (got, sink) = written.map_err(|e| {
            if failed.load(std::sync::atomic::Ordering::Relaxed) {
                RemoteError::io(format!("<download of blob {digest}>"), e)
            } else {
                // Too much data or undecodable zstd: not the blob asked for.
                self.protocol(format!("ByteStream.Read of blob {digest}: {e}"))
            }
        })?;
        if got != *digest {
            return Err(RemoteError::BadBlob {
                server: self.inner.url.clone(),
                digest: *digest,
                got,
            });
        }
        Ok(sink)
    }

    async fn stream_read(
        &self,
        digest: &Digest,
        compressed: bool,
        tx: &mpsc::Sender<Vec<u8>>,
    ) -> Result<(), RemoteError> {
        let name = resource::read_name(&self.inner.instance, digest, compressed);
        let mut client = self.bytestream_client().await?;
        let mut offset: i64 = 0;
        let mut attempt = 1;
        loop {
            let req = ReadRequest {
                resource_name: name.clone(),
                read_offset: offset,
                read_limit: 0,
            };
            let result = async {
                let mut stream = client.read(self.request(req)).await?.into_inner();
                while let Some(msg) = stream.message().await? {
                    offset += msg.data.len() as i64;
                    if tx.send(msg.data).await.is_err() {
                        // The writer failed; its error says why.
                        break;
                    }
                }
                Ok::<(), tonic::Status>(())
            }
            .await;
            match result {
                Ok(()) => return Ok(()),
                Err(s) if s.code() == tonic::Code::NotFound => {
                    return Err(RemoteError::NotFound {
                        server: self.inner.url.clone(),
                        digests: vec![*digest],
                    });
                }
                Err(s) => {
                    // Compressed offsets cannot be resumed mid-frame: only
                    // retry those before any data arrived.
                    let resumable = !compressed || offset == 0;
                    if !resumable
                        || attempt >= MAX_ATTEMPTS
                        || !is_retryable(s.code(), CallKind::Read)
                    {
                        return Err(self.status("ByteStream.Read", &s));
                    }
                    tokio::time::sleep(backoff_delay(attempt, 0.5)).await;
                    attempt += 1;
                }
            }
        }
    }
}

/// The file thread of an upload: reads (and compresses) the blob into
/// WriteRequests. Returns the bytes sent, or stops quietly when the server
/// has already answered (early completion closes the stream).
fn produce(
    src: Box<dyn Read + Send>,
    blob: &Blob,
    name: String,
    compress: bool,
    tx: mpsc::Sender<WriteRequest>,
) -> Result<i64, RemoteError> {
    let mut src: Box<dyn Read + Send> = if compress {
        Box::new(zstd::stream::read::Encoder::new(src, 1).map_err(|e| source_error(blob, e))?)
    } else {
        src
    };
    let mut offset: i64 = 0;
    let mut first = true;
    loop {
        // Read straight into the message's buffer: no zeroing, no copy.
        let mut data = Vec::with_capacity(CHUNK);
        (&mut src)
            .take(CHUNK as u64)
            .read_to_end(&mut data)
            .map_err(|e| source_error(blob, e))?;
        let n = data.len();
        let last = n < CHUNK;
        if let (false, BlobSource::File(p)) = (compress, &blob.source)
            && offset as u64 + n as u64 > blob.digest.size()
        {
            return Err(changed(p));
        }
        let req = WriteRequest {
            resource_name: if first { name.clone() } else { String::new() },
            write_offset: offset,
            finish_write: last,
            data,
        };
        first = false;
        offset += n as i64;
        if let (true, false, BlobSource::File(p)) = (last, compress, &blob.source)
            && offset as u64 != blob.digest.size()
        {
            return Err(changed(p));
        }
        if tx.blocking_send(req).is_err() || last {
            return Ok(offset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_chunks_and_finishes() {
        let data: Vec<u8> = (0..(CHUNK * 2 + 10)).map(|i| (i % 251) as u8).collect();
        let blob = Blob::from_bytes(data.clone());
        let (tx, mut rx) = mpsc::channel(8);
        let src = open_source(&blob).unwrap();
        let sent = std::thread::spawn(move || produce(src, &blob, "r".into(), false, tx))
            .join()
            .unwrap()
            .unwrap();
        assert_eq!(sent as usize, data.len());
        let mut reqs = Vec::new();
        while let Ok(r) = rx.try_recv() {
            reqs.push(r);
        }
        assert_eq!(reqs.len(), 3);
        assert_eq!(reqs[0].resource_name, "r");
        assert!(reqs[1].resource_name.is_empty());
        assert_eq!(reqs[2].write_offset as usize, CHUNK * 2);
        assert!(reqs[2].finish_write && !reqs[1].finish_write);
        let joined: Vec<u8> = reqs.into_iter().flat_map(|r| r.data).collect();
        assert_eq!(joined, data);
    }

    #[test]
    fn producer_compresses_and_notices_a_changed_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let data = b"compressible ".repeat(200_000);
        std::fs::write(&p, &data).unwrap();
        let blob = Blob::file(Digest::of_bytes(&data), &p);
        assert!(compresses(&blob).unwrap());
        let (tx, mut rx) = mpsc::channel(64);
        let src = open_source(&blob).unwrap();
        let b = blob.clone();
        std::thread::spawn(move || produce(src, &b, "r".into(), true, tx))
            .join()
            .unwrap()
            .unwrap();
        let mut z = Vec::new();
        while let Ok(r) = rx.try_recv() {
            z.extend(r.data);
        }
        assert_eq!(zstd::stream::decode_all(&z[..]).unwrap(), data);

        std::fs::write(&p, b"shorter").unwrap();
        assert!(open_source(&blob).is_err());
    }

    #[test]
    fn hashing_sink_refuses_excess_data() {
        let mut h = Hashing {
            inner: Vec::new(),
            hasher: Sha256::new(),
            size: 0,
            limit: 3,
            sink_failed: Arc::default(),
        };
        h.write_all(b"abc").unwrap();
        assert!(h.write_all(b"d").is_err());
        let (d, v) = Sink::Plain(h).finish().unwrap();
        assert_eq!(d, Digest::of_bytes(b"abc"));
        assert_eq!(v, b"abc");
    }
}
