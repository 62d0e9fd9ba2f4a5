//! The disk action cache: one encoded `ActionResult` per action digest.
//!
//! Layout under the store directory: `ac/<first 2 hex>/<hash>-<size>`, with
//! `ac/tmp/` for writes in progress. Entries are small and few compared with
//! blobs, so there is no size bound here; whether the blobs an entry refers
//! to are still in the CAS is for the caller to check.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use prost::Message;

use super::disk::write_new;
use super::{StoreError, clear_dir, io_err};
use crate::cas::Digest;
use crate::proto::reapi;

/// Action results on local disk, keyed by action digest.
pub struct DiskActionCache {
    ac: PathBuf,
    tmp: PathBuf,
    seq: AtomicU64,
}

impl DiskActionCache {
    /// Opens (creating if needed) the cache under `dir`; clears stray temp files.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let ac = dir.join("ac");
        let tmp = ac.join("tmp");
        for shard in 0..=255u8 {
            let p = ac.join(format!("{shard:02x}"));
            crate::fsutil::create_private_dir_all(&p).map_err(|e| io_err(&p, e))?;
        }
        crate::fsutil::create_private_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;
        clear_dir(&tmp)?;
        Ok(DiskActionCache {
            ac,
            tmp,
            seq: AtomicU64::new(0),
        })
    }

    fn path(&self, action: &Digest) -> PathBuf {
        super::reader::result_path_in(&self.ac, action)
    }

    /// The stored result, or `None`. An entry that no longer decodes is
    /// dropped and reported as absent, so the action simply runs again.
    pub fn get(&self, action: &Digest) -> Result<Option<reapi::ActionResult>, StoreError> {
        let path = self.path(action);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path, e)),
        };
        match reapi::ActionResult::decode(bytes.as_slice()) {
            Ok(r) => Ok(Some(r)),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "dropping corrupt AC entry");
                let _ = fs::remove_file(&path);
                Ok(None)
            }
        }
    }

    /// Stores (or replaces) the result for `action`, atomically.
    pub fn put(&self, action: &Digest, result: &reapi::ActionResult) -> Result<(), StoreError> {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .tmp
            .join(format!("{}-{}-{n}", action.hex(), std::process::id()));
        let dest = self.path(action);
        let res = write_new(&tmp, &result.encode_to_vec(), 0o400)
            .and_then(|()| fs::rename(&tmp, &dest).map_err(|e| io_err(&dest, e)));
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_replace_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let ac = DiskActionCache::open(dir.path()).unwrap();
        let key = Digest::of_bytes(b"action");
        assert!(ac.get(&key).unwrap().is_none());
        let mut r = reapi::ActionResult {
            exit_code: 3,
            ..Default::default()
        };
        ac.put(&key, &r).unwrap();
        assert_eq!(ac.get(&key).unwrap().unwrap().exit_code, 3);
        r.exit_code = 0;
        ac.put(&key, &r).unwrap();
        drop(ac);
        fs::write(dir.path().join("ac/tmp/stray"), b"x").unwrap();
        let ac = DiskActionCache::open(dir.path()).unwrap();
        assert_eq!(ac.get(&key).unwrap().unwrap().exit_code, 0);
        assert_eq!(fs::read_dir(dir.path().join("ac/tmp")).unwrap().count(), 0);
    }

    #[test]
    fn corrupt_entry_reads_as_absent() {
        let dir = tempfile::tempdir().unwrap();
        let ac = DiskActionCache::open(dir.path()).unwrap();
        let key = Digest::of_bytes(b"action");
        fs::write(ac.path(&key), b"\xff\xff\xff").unwrap();
        assert!(ac.get(&key).unwrap().is_none());
        assert!(!ac.path(&key).exists());
    }
}
