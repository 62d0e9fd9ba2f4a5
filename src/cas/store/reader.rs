//! Reading a disk store from another process: an action's result and its
//! blobs, found by their paths alone.
//!
//! Opening a [`DiskStore`](super::DiskStore) scans every blob to build its
//! index; a wrapper process answering one hit must not pay for that, nor
//! grow with the size of the store. A [`StoreReader`] opens nothing: it
//! reads the result file of one action and the blob files it names, checks
//! every blob against its digest, and hands back a result with all of them
//! inlined, or nothing. It changes nothing but the atime of what it read
//! (now and then, [`STAMP_SECS`]), and removes a blob that is not what its
//! name says. The server that owns the store takes a
//! blob whose atime moved past its own record as used when it next evicts,
//! and the tier's clean-up orders by it. A blob evicted meanwhile is simply
//! a miss here.

use std::fs;
use std::path::{Path, PathBuf};

use prost::Message as _;
use sha2::{Digest as _, Sha256};

use crate::cas::Digest;
use crate::proto::reapi;

/// Where a blob lives under a store's `cas/` directory.
pub(super) fn blob_path_in(cas: &Path, d: &Digest) -> PathBuf {
    let hex = d.hex();
    cas.join(&hex[..2]).join(format!("{hex}-{}", d.size()))
}

/// Where an action's result lives under a store's `ac/` directory.
pub(super) fn result_path_in(ac: &Path, action: &Digest) -> PathBuf {
    let hex = action.hex();
    ac.join(&hex[..2]).join(format!("{hex}-{}", action.size()))
}

/// Read-only access to the store in a directory (a `recast serve --dir`).
#[derive(Clone, Debug)]
pub struct StoreReader {
    dir: PathBuf,
}

impl StoreReader {
    /// The store in `dir`; nothing is read until asked.
    pub fn new(dir: &Path) -> StoreReader {
        StoreReader {
            dir: dir.to_path_buf(),
        }
    }

    /// The stored result of `action`, as stored (digests only).
    pub fn result(&self, action: &Digest) -> Option<reapi::ActionResult> {
        let bytes = read_used(&result_path_in(&self.dir.join("ac"), action))?;
        reapi::ActionResult::decode(bytes.as_slice()).ok()
    }

    /// A blob's bytes, if stored and still what its digest says.
    pub fn blob(&self, d: &Digest) -> Option<Vec<u8>> {
        if *d == Digest::EMPTY {
            return Some(Vec::new());
        }
        let path = blob_path_in(&self.dir.join("cas"), d);
        let bytes = read_used(&path)?;
        let actual = Digest::from_raw(Sha256::digest(&bytes).into(), bytes.len() as u64);
        if actual != *d {
            // Removed, so that it reads as missing and is written again
            // (the server that owns a store does the same when it checks).
            tracing::warn!(digest = %d, %actual, "a stored blob does not match its digest; removed");
            let _ = fs::remove_file(&path);
            return None;
        }
        Some(bytes)
    }

    /// The result of `action` with its stdout, stderr and every output
    /// file inlined and checked, when all of them are here and together
    /// hold at most `limit` bytes; `None` otherwise (the caller asks the
    /// server, which knows more: output directories, evicted blobs).
    pub fn inlined(&self, action: &Digest, limit: u64) -> Option<reapi::ActionResult> {
        let mut result = self.result(action)?;
        if !result.output_directories.is_empty() {
            return None;
        }
        let mut budget = limit;
        let mut take = |d: Option<&reapi::Digest>| -> Option<Vec<u8>> {
            let d = Digest::from_proto_opt(d).ok()?;
            budget = budget.checked_sub(d.size())?;
            self.blob(&d)
        };
        if result.stdout_raw.is_empty() && result.stdout_digest.is_some() {
            result.stdout_raw = take(result.stdout_digest.as_ref())?;
        }
        if result.stderr_raw.is_empty() && result.stderr_digest.is_some() {
            result.stderr_raw = take(result.stderr_digest.as_ref())?;
        }
        for f in &mut result.output_files {
            f.contents = take(f.digest.as_ref())?;
        }
        Some(result)
    }
}

/// How stale a file's last use may get before a read refreshes it: the
/// LRU order of the tier's clean-up and of the embedded server's eviction
/// is this coarse, and a hit pays one `futimens` per file this often.
pub(super) const STAMP_SECS: u64 = 300;

/// A file's bytes; its atime is set to now if its last use is older than
/// [`STAMP_SECS`], so the stores' eviction sees a hit read here as a use.
fn read_used(path: &Path) -> Option<Vec<u8>> {
    let mut f = fs::File::open(path).ok()?;
    let meta = f.metadata().ok()?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::io::Read::read_to_end(&mut f, &mut bytes).ok()?;
    let now = crate::fsutil::now_secs();
    if now.saturating_sub(super::disk::newest_secs(&meta)) > STAMP_SECS {
        let _ = rustix::fs::futimens(&f, &super::disk::atime_now());
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cas::store::{BlobStore, DiskActionCache, DiskStore};

    fn file(path: &str, d: Digest) -> reapi::OutputFile {
        reapi::OutputFile {
            path: path.into(),
            digest: Some(d.to_proto()),
            ..Default::default()
        }
    }

    #[test]
    fn a_stored_result_comes_back_inlined_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStore::open(dir.path(), 1 << 20).unwrap();
        let ac = DiskActionCache::open(dir.path()).unwrap();
        let (obj, err) = (b"\x7fELF object".to_vec(), b"warning: x\n".to_vec());
        let (od, ed) = (Digest::of_bytes(&obj), Digest::of_bytes(&err));
        store.write(&od, &obj).unwrap();
        store.write(&ed, &err).unwrap();
        let action = Digest::of_bytes(b"action");
        let result = reapi::ActionResult {
            output_files: vec![file("a.o", od), file("empty", Digest::EMPTY)],
            stderr_digest: Some(ed.to_proto()),
            ..Default::default()
        };
        ac.put(&action, &result).unwrap();

        let reader = StoreReader::new(dir.path());
        let got = reader.inlined(&action, 1 << 20).unwrap();
        assert_eq!(got.output_files[0].contents, obj);
        assert!(got.output_files[1].contents.is_empty());
        assert_eq!(got.stderr_raw, err);
        assert!(got.stdout_raw.is_empty());
        // Too big for the limit, or an action never stored: nothing.
        assert!(reader.inlined(&action, 4).is_none());
        assert!(
            reader
                .inlined(&Digest::of_bytes(b"other"), 1 << 20)
                .is_none()
        );

        // A rotten blob is never handed out.
        let path = store.blob_path(&od);
        let mut perms = fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
        fs::set_permissions(&path, perms).unwrap();
        fs::write(&path, b"\x7fELF objecT").unwrap();
        assert!(reader.blob(&od).is_none());
        // It is removed, so that it is written again.
        assert!(!path.exists());
        assert!(reader.inlined(&action, 1 << 20).is_none());
    }
}
