//! The local result tier: results of a server that is not on this machine,
//! kept here so the next identical compile is answered with no call.
//!
//! Same layout as a [`DiskStore`](super::DiskStore) (`ac/<2 hex>/…`,
//! `cas/<2 hex>/…`), so one [`StoreReader`] reads both; with the embedded
//! server there is no tier, because its own store is read the same way.
//! Unlike the server's store, the tier is written by many short processes
//! at once (`make -j`), none of which holds an index:
//!
//! - **Writes are atomic.** A blob is written to `tmp/`, hashed on the way,
//!   refused if it is not what its digest says, then hard-linked into
//!   place: `link(2)` fails if another writer got there first, and the file
//!   a reader opens is always whole. An entry is written last, after every
//!   blob it names, and renamed into place. A crash leaves only files in
//!   `tmp/`, which the next clean-up removes.
//! - **Size is bounded.** `size` holds the bytes written since the last
//!   count, updated under `lock` (`flock`). The writer that takes it past
//!   the bound walks the tier and deletes the least recently used files
//!   down to 90% of it, then writes the true total. The walk is the only
//!   step that grows with the tier, and it runs on a miss, once per tenth
//!   of the bound written.
//! - **Use is a file time.** A hit refreshes the atime of the files it
//!   read, at most every few minutes ([`StoreReader`]); the clean-up orders
//!   files by their newest of atime and mtime.
//! - **Reads are checked.** The reader hashes every blob it hands out; a
//!   rotten one is a miss, so the server is asked and the tier rewritten.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prost::Message as _;
use sha2::{Digest as _, Sha256};

use super::reader::{blob_path_in, result_path_in};
use super::{StoreError, StoreReader, io_err};
use crate::cas::Digest;
use crate::proto::reapi;

/// The default bound on the tier's size.
pub const DEFAULT_TIER_SIZE: u64 = 5 << 30;
/// A clean-up brings the tier down to this share of its bound (in
/// percent), so the next one is a tenth of the bound away.
const CLEAN_TO_PERCENT: u64 = 90;
/// Temp files older than this are a crash's leftovers.
const STALE_TMP: Duration = Duration::from_secs(3600);

/// One blob to keep: its bytes, or a file holding them.
pub enum TierBlob<'a> {
    Bytes(Digest, &'a [u8]),
    File(Digest, &'a Path),
}

impl TierBlob<'_> {
    fn digest(&self) -> Digest {
        match self {
            TierBlob::Bytes(d, _) | TierBlob::File(d, _) => *d,
        }
    }
}

/// The tier in one directory, bounded to `max_size` bytes.
#[derive(Debug)]
pub struct Tier {
    dir: PathBuf,
    max_size: u64,
}

/// Numbers this process's temp files (with its PID, unique on the machine).
static SEQ: AtomicU64 = AtomicU64::new(0);

/// What a [`Tier::clean`] found and did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Cleaned {
    pub removed_files: u64,
    pub removed_bytes: u64,
    /// Bytes left.
    pub total: u64,
}

impl Tier {
    /// The tier in `dir` (created, private, at the first write).
    pub fn new(dir: &Path, max_size: u64) -> Tier {
        Tier {
            dir: dir.to_path_buf(),
            max_size,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A reader of this tier.
    pub fn reader(&self) -> StoreReader {
        StoreReader::new(&self.dir)
    }

    /// Keeps `result` as the result of `action`: first every blob in
    /// `blobs` (each checked against its digest), then the entry. The
    /// result must name its outputs and streams by digest only; every
    /// digest it names must be among `blobs` (or empty), so an entry never
    /// points at nothing. Returns the bytes added.
    pub fn keep(
        &self,
        action: &Digest,
        result: &reapi::ActionResult,
        blobs: &[TierBlob<'_>],
    ) -> Result<u64, StoreError> {
        if self.max_size == 0 {
            return Ok(0);
        }
        let tmp = self.dir.join("tmp");
        crate::fsutil::create_private_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;
        self.counted()?;
        let cas = self.dir.join("cas");
        let mut added = 0;
        for blob in blobs {
            let d = blob.digest();
            if d == Digest::EMPTY {
                continue;
            }
            let dest = blob_path_in(&cas, &d);
            if fs::symlink_metadata(&dest).is_ok_and(|m| m.len() == d.size()) {
                continue;
            }
            let t = self.tmp_path(&d);
            let written = match blob {
                TierBlob::Bytes(_, bytes) => write_checked(&t, &d, &mut &bytes[..]),
                TierBlob::File(_, path) => File::open(path)
                    .map_err(|e| io_err(path, e))
                    .and_then(|mut f| write_checked(&t, &d, &mut f)),
            };
            let linked = written.and_then(|()| link_into_place(&t, &dest));
            let _ = fs::remove_file(&t);
            if linked? {
                added += d.size();
            }
        }
        let entry = result.encode_to_vec();
        let dest = result_path_in(&self.dir.join("ac"), action);
        let t = self.tmp_path(action);
        // Linked if new (and then counted), else replacing the old entry.
        let placed = write_new(&t, &mut &entry[..]).and_then(|()| {
            if link_into_place(&t, &dest)? {
                return Ok(true);
            }
            fs::rename(&t, &dest).map_err(|e| io_err(&dest, e))?;
            Ok(false)
        });
        let _ = fs::remove_file(&t);
        if placed? {
            added += entry.len() as u64;
        }
        self.account(added)?;
        Ok(added)
    }

    fn tmp_path(&self, d: &Digest) -> PathBuf {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        self.dir
            .join("tmp")
            .join(format!("{}-{}-{n}", d.hex(), std::process::id()))
    }

    /// Makes sure the running count exists before this writer places
    /// anything: taken from a walk, under the lock, by the first writer.
    /// A walk later, while other writers have placed blobs they have not
    /// yet added, would count those twice.
    fn counted(&self) -> Result<(), StoreError> {
        let size_path = self.dir.join("size");
        if size_path.exists() {
            return Ok(());
        }
        let lock_path = self.dir.join("lock");
        let _lock = crate::lock::FileLock::take(&lock_path).map_err(|e| io_err(&lock_path, e))?;
        if size_path.exists() {
            return Ok(());
        }
        let total: u64 = self.walk()?.iter().map(|f| f.size).sum();
        crate::fsutil::write_private(&size_path, total.to_string().as_bytes(), false)
            .map_err(|e| io_err(&size_path, e))
    }

    /// Adds `added` to the running count, and cleans up past the bound.
    fn account(&self, added: u64) -> Result<(), StoreError> {
        if added == 0 {
            return Ok(());
        }
        let lock_path = self.dir.join("lock");
        let _lock = crate::lock::FileLock::take(&lock_path).map_err(|e| io_err(&lock_path, e))?;
        let size_path = self.dir.join("size");
        let counted = fs::read_to_string(&size_path)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok());
        let total = match counted {
            Some(n) => n.saturating_add(added),
            // No count yet (a new tier, or one a crash cut short): take
            // the true total.
            None => self.walk()?.iter().map(|f| f.size).sum(),
        };
        let total = if total > self.max_size {
            self.clean_locked()?.total
        } else {
            total
        };
        crate::fsutil::write_private(&size_path, total.to_string().as_bytes(), false)
            .map_err(|e| io_err(&size_path, e))
    }

    /// Deletes the least recently used files down to 90% of the bound, and
    /// a crash's temp files; counts what is left. (Writers do this
    /// themselves past the bound; this is the same, asked for.)
    #[cfg(test)]
    pub fn clean(&self) -> Result<Cleaned, StoreError> {
        let lock_path = self.dir.join("lock");
        let _lock = crate::lock::FileLock::take(&lock_path).map_err(|e| io_err(&lock_path, e))?;
        let cleaned = self.clean_locked()?;
        let size_path = self.dir.join("size");
        crate::fsutil::write_private(&size_path, cleaned.total.to_string().as_bytes(), false)
            .map_err(|e| io_err(&size_path, e))?;
        Ok(cleaned)
    }

    fn clean_locked(&self) -> Result<Cleaned, StoreError> {
        let mut files = self.walk()?;
        let mut total: u64 = files.iter().map(|f| f.size).sum();
        let target = self.max_size / 100 * CLEAN_TO_PERCENT;
        let mut cleaned = Cleaned::default();
        if total > self.max_size {
            files.sort_by_key(|f| f.used);
            for f in files {
                if total <= target {
                    break;
                }
                if fs::remove_file(&f.path).is_ok() {
                    total -= f.size;
                    cleaned.removed_files += 1;
                    cleaned.removed_bytes += f.size;
                }
            }
        }
        if let Ok(tmps) = fs::read_dir(self.dir.join("tmp")) {
            for t in tmps.flatten() {
                let old = t
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|age| age > STALE_TMP);
                if old {
                    let _ = fs::remove_file(t.path());
                }
            }
        }
        cleaned.total = total;
        tracing::debug!(?cleaned, "tier cleaned");
        Ok(cleaned)
    }

    /// Every entry and blob file, with its size and last use.
    fn walk(&self) -> Result<Vec<Stored>, StoreError> {
        let mut out = Vec::new();
        for top in ["ac", "cas"] {
            let top = self.dir.join(top);
            let shards = match fs::read_dir(&top) {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(&top, e)),
            };
            for shard in shards.flatten() {
                let Ok(files) = fs::read_dir(shard.path()) else {
                    continue;
                };
                for f in files.flatten() {
                    let Ok(meta) = f.metadata() else { continue };
                    if meta.is_file() {
                        out.push(Stored {
                            path: f.path(),
                            size: meta.len(),
                            used: super::disk::newest_secs(&meta),
                        });
                    }
                }
            }
        }
        Ok(out)
    }
}

struct Stored {
    path: PathBuf,
    size: u64,
    used: u64,
}

/// Creates `path` read-only with what `src` holds.
fn write_new(path: &Path, src: &mut dyn Read) -> Result<(), StoreError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(super::disk::BLOB_MODE)
        .open(path)
        .map_err(|e| io_err(path, e))?;
    io::copy(src, &mut f).map_err(|e| io_err(path, e))?;
    f.set_permissions(fs::Permissions::from_mode(super::disk::BLOB_MODE))
        .map_err(|e| io_err(path, e))
}

/// [`write_new`], refusing content that is not what `d` says.
fn write_checked(path: &Path, d: &Digest, src: &mut dyn Read) -> Result<(), StoreError> {
    let mut hashing = Hashing {
        inner: src,
        hash: Sha256::new(),
        len: 0,
    };
    write_new(path, &mut hashing)?;
    let actual = Digest::from_raw(hashing.hash.finalize().into(), hashing.len);
    if actual != *d {
        return Err(StoreError::DigestMismatch {
            expected: *d,
            actual,
        });
    }
    Ok(())
}

/// Hard-links a finished temp file to its blob name. False when another
/// writer placed the same blob first.
fn link_into_place(tmp: &Path, dest: &Path) -> Result<bool, StoreError> {
    make_parent(dest)?;
    match fs::hard_link(tmp, dest) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io_err(dest, e)),
    }
}

fn make_parent(path: &Path) -> Result<(), StoreError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    crate::fsutil::create_private_dir_all(parent).map_err(|e| io_err(parent, e))
}

/// A reader that hashes what passes through it.
struct Hashing<'a> {
    inner: &'a mut dyn Read,
    hash: Sha256,
    len: u64,
}

impl Read for Hashing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
#[path = "tier_tests.rs"]
mod tests;
