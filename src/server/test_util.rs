//! Fixtures for the server's unit tests: a store in a temp dir and helpers
//! to put blobs and input trees into it.

use std::sync::Arc;

use crate::cas::Digest;
use crate::cas::store::{BlobStore, DiskActionCache, DiskStore};
use crate::cas::tree::{self, Entry};

/// A disk store and action cache under a fresh temp dir (kept alive by
/// the returned guard).
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub store: Arc<dyn BlobStore>,
    pub ac: Arc<DiskActionCache>,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn BlobStore> =
            Arc::new(DiskStore::open(&dir.path().join("store"), 1 << 30).unwrap());
        let ac = Arc::new(DiskActionCache::open(&dir.path().join("store")).unwrap());
        Fixture { dir, store, ac }
    }

    /// Stores `data` and returns its digest.
    pub fn put(&self, data: &[u8]) -> Digest {
        let d = Digest::of_bytes(data);
        self.store.write(&d, data).unwrap();
        d
    }

    /// Stores a message's encoding and returns its digest.
    pub fn put_message<M: prost::Message>(&self, m: &M) -> Digest {
        let (d, bytes) = Digest::of_message(m);
        self.store.write(&d, &bytes).unwrap();
        d
    }

    /// Stores the Directory messages of a tree built from `(path, content)`
    /// files (file blobs too) and returns the root digest.
    pub fn put_tree(&self, files: &[(&str, &[u8])]) -> Digest {
        let entries: Vec<Entry> = files
            .iter()
            .map(|(p, c)| Entry::file(*p, self.put(c), false))
            .collect();
        let t = tree::build(&entries).unwrap();
        for (d, bytes) in &t.directories {
            self.store.write(d, bytes).unwrap();
        }
        t.root
    }
}

/// A request as the gate passes it on for a caller with every scope.
pub fn granted<T>(msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.extensions_mut()
        .insert(crate::server::auth::Scopes::ALL);
    req
}
