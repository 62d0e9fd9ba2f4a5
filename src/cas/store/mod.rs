//! Blob stores: the CAS and the action cache on local disk.
//!
//! One trait, [`BlobStore`], with a file per implementation (`disk.rs`
//! today; its LRU bookkeeping is the pure `lru.rs`). Beside them, read and
//! written by short processes with no index: `reader.rs` (a result and its
//! blobs, found by path) and `tier.rs` (the local result tier in front of
//! a remote server). Stores are synchronous
//! `std::fs` code with no tokio, tonic or processes: the gRPC server calls
//! them from blocking tasks and the runner calls them directly. They verify
//! every digest they accept, so a blob read back is always what its digest
//! says. The empty blob always exists. Blobs are read-only files; the
//! runner's hard links to them are too (an action that chmods an input and
//! writes to it would corrupt the store — nothing here can prevent that
//! short of copying every input).

mod action_cache;
mod disk;
mod lru;
mod reader;
mod tier;

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::Digest;

pub use action_cache::DiskActionCache;
pub use disk::{DiskStore, VerifyReport};
pub use reader::StoreReader;
pub use tier::{DEFAULT_TIER_SIZE, Tier, TierBlob};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("content does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("blob {0} not found")]
    NotFound(Digest),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// A content-addressed blob store.
pub trait BlobStore: Send + Sync {
    /// True when the blob is present; counts as a use for eviction.
    fn contains(&self, d: &Digest) -> bool;
    /// The digests of `ds` that are not present, in the order given, each
    /// once. Present ones count as used.
    fn find_missing(&self, ds: &[Digest]) -> Vec<Digest>;
    /// The whole blob, or `None` when absent.
    fn read(&self, d: &Digest) -> Result<Option<Vec<u8>>, StoreError>;
    /// The blob as an open file for streaming reads at any offset; it stays
    /// readable even if the blob is evicted meanwhile.
    fn open(&self, d: &Digest) -> Result<Option<std::fs::File>, StoreError>;
    /// Stores `data` under `d` after checking it; storing twice is harmless.
    fn write(&self, d: &Digest, data: &[u8]) -> Result<(), StoreError>;
    /// A sink for an upload arriving in chunks.
    fn writer(&self, d: &Digest) -> Result<Box<dyn BlobSink>, StoreError>;
    /// Puts a copy of the blob at `dest` (a hard link when possible) with
    /// the given exec bit. `dest` must not exist.
    fn link_or_copy(&self, d: &Digest, dest: &Path, executable: bool) -> Result<(), StoreError>;
    /// Bytes currently stored.
    fn total_size(&self) -> u64;
}

/// An upload in progress. Nothing is visible until [`BlobSink::commit`];
/// dropping the sink abandons the upload.
pub trait BlobSink: Send {
    fn write_chunk(&mut self, data: &[u8]) -> Result<(), StoreError>;
    /// Checks size and hash, then makes the blob visible.
    fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// Stores a file's content (hashed first, then streamed in if absent) and
/// returns its digest. For outputs that may be large: memory stays bounded.
pub fn store_file(store: &dyn BlobStore, path: &Path) -> Result<Digest, StoreError> {
    let digest = super::hash::digest_file(path).map_err(|e| io_err(path, e))?;
    store_file_as(store, path, &digest)?;
    Ok(digest)
}

/// Stores a file already hashed as `digest` (e.g. by the parallel
/// `hash::digest_files`), streaming it in if absent. A file that changed
/// since it was hashed fails with `DigestMismatch`.
pub fn store_file_as(
    store: &dyn BlobStore,
    path: &Path,
    digest: &Digest,
) -> Result<(), StoreError> {
    if store.contains(digest) {
        return Ok(());
    }
    let mut file = fs::File::open(path).map_err(|e| io_err(path, e))?;
    let mut sink = store.writer(digest)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(path, e)),
        };
        sink.write_chunk(&buf[..n])?;
    }
    sink.commit()
}

fn io_err(path: &Path, source: io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Empties a directory of leftovers (temp files of a crashed process).
fn clear_dir(dir: &Path) -> Result<(), StoreError> {
    for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let path = entry.map_err(|e| io_err(dir, e))?.path();
        let res = if path.is_dir() && !path.is_symlink() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        res.map_err(|e| io_err(&path, e))?;
    }
    Ok(())
}
