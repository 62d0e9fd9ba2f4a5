//! The disk CAS: one read-only file per blob, size-bounded with LRU eviction.
//!
//! Layout under the store directory:
//! - `cas/<first 2 hex>/<hash>-<size>`: the blob, mode 0444;
//! - `cas/<first 2 hex>/<hash>-<size>.x`: an executable copy (mode 0555),
//!   made on demand so executable inputs can be hard-linked too without ever
//!   changing the mode of a file that other links share;
//! - `cas/<first 2 hex>/tmp.<hash>-<pid>-<n>`: an upload in progress,
//!   renamed to its blob name only once verified. It sits beside its final
//!   name so the rename stays within one directory, and uploads of different
//!   blobs rarely share a directory lock (ext4 holds it while allocating the
//!   inode, which is slow after many deletions); a crash's leftovers are
//!   removed by the next start.
//!
//! Every change to `cas/` (rename in, evict) happens under the index lock, so
//! the index and the directory never disagree about what is stored. Reads go
//! straight to the file system; a blob evicted under a reader reads as absent.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest as _, Sha256};

use super::lru::LruIndex;
use super::{BlobSink, BlobStore, StoreError, io_err};

/// Mode of a stored blob: read-only, so an action cannot write through a
/// hard link into the store, and its owner's alone, as the whole store is.
pub const BLOB_MODE: u32 = 0o400;
/// Mode of a blob's executable copy.
pub const EXEC_BLOB_MODE: u32 = 0o500;
use crate::cas::Digest;

/// How often, at most, a blob's atime is refreshed on disk. The in-memory
/// order is exact; the on-disk times only need to be good enough to rebuild
/// a sensible order after a restart.
const STAMP_INTERVAL_SECS: u64 = 60;
/// Starts the names of temp files (never a hex digit, so never a blob).
const TMP_PREFIX: &str = "tmp.";

/// A content-addressed store in a local directory.
pub struct DiskStore {
    inner: Arc<Inner>,
}

struct Inner {
    cas: PathBuf,
    max_size: u64,
    index: Mutex<LruIndex>,
    seq: AtomicU64,
    /// Blobs hashed since this process opened the store: a blob is checked
    /// once before an action first uses it, so a byte flipped on disk
    /// since it was written never reaches a command.
    verified: Mutex<std::collections::HashSet<Digest>>,
}

/// What [`DiskStore::verify_all`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub checked: u64,
    pub bytes: u64,
    /// Blobs whose bytes no longer match their digest: removed.
    pub corrupt: Vec<Digest>,
}

impl DiskStore {
    /// Opens (creating if needed) a store in `dir` holding at most
    /// `max_size` bytes. Deletes stray temp files left by a crash and
    /// rebuilds the index from the blobs found, oldest use first.
    pub fn open(dir: &Path, max_size: u64) -> Result<DiskStore, StoreError> {
        let cas = dir.join("cas");
        crate::fsutil::create_private_dir_all(&cas).map_err(|e| io_err(&cas, e))?;
        spread_subdirs(&cas);
        // Earlier versions kept uploads in progress in `tmp/`.
        let old_tmp = dir.join("tmp");
        if let Err(e) = fs::remove_dir_all(&old_tmp)
            && e.kind() != io::ErrorKind::NotFound
        {
            return Err(io_err(&old_tmp, e));
        }
        for shard in 0..=255u8 {
            let p = cas.join(format!("{shard:02x}"));
            crate::fsutil::create_private_dir_all(&p).map_err(|e| io_err(&p, e))?;
        }

        let inner = Inner {
            cas,
            max_size,
            index: Mutex::new(LruIndex::default()),
            seq: AtomicU64::new(0),
            verified: Mutex::new(Default::default()),
        };
        inner.scan()?;
        // The empty blob "always exists"; keeping a real file for it lets
        // `open` and `link_or_copy` treat it like any other blob.
        let empty = inner.blob_path(&Digest::EMPTY);
        if !empty.exists() {
            let t = inner.new_tmp(&Digest::EMPTY);
            write_new(&t, b"", BLOB_MODE)?;
            fs::rename(&t, &empty).map_err(|e| io_err(&empty, e))?;
        }
        let store = DiskStore {
            inner: Arc::new(inner),
        };
        store.inner.evict_over_limit(&mut store.inner.lock(), None);
        Ok(store)
    }

    /// Where a blob's file lives (whether or not it is stored).
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.inner.blob_path(d)
    }

    /// Hashes every stored blob (on all cores) and removes those whose
    /// bytes do not match their digest.
    pub fn verify_all(&self) -> VerifyReport {
        let digests = self.inner.lock().digests();
        let paths: Vec<PathBuf> = digests.iter().map(|d| self.inner.blob_path(d)).collect();
        let mut report = VerifyReport::default();
        for (d, got) in digests.iter().zip(crate::cas::hash::digest_files(&paths)) {
            report.checked += 1;
            report.bytes += d.size();
            match got {
                Ok(g) if g == *d => {
                    self.inner.verified_insert(d);
                }
                _ => {
                    self.inner.discard(d);
                    report.corrupt.push(*d);
                }
            }
        }
        report
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, LruIndex> {
        // A panic while holding the lock leaves the index consistent enough
        // (each method updates it in one step), so keep going.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn blob_path(&self, d: &Digest) -> PathBuf {
        super::reader::blob_path_in(&self.cas, d)
    }

    fn exec_path(&self, d: &Digest) -> PathBuf {
        let hex = d.hex();
        self.cas
            .join(&hex[..2])
            .join(format!("{hex}-{}.x", d.size()))
    }

    fn new_tmp(&self, d: &Digest) -> PathBuf {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let hex = d.hex();
        self.cas
            .join(&hex[..2])
            .join(format!("{TMP_PREFIX}{hex}-{}-{n}", std::process::id()))
    }

    /// Rebuilds the index from `cas/`. Files whose length disagrees with
    /// their name are leftovers of something other than us and are removed.
    fn scan(&self) -> Result<(), StoreError> {
        let mut found: Vec<(SystemTime, Digest, bool)> = Vec::new();
        let mut exec_only: Vec<PathBuf> = Vec::new();
        for shard in fs::read_dir(&self.cas).map_err(|e| io_err(&self.cas, e))? {
            let shard = shard.map_err(|e| io_err(&self.cas, e))?.path();
            let Ok(files) = fs::read_dir(&shard) else {
                continue;
            };
            for f in files {
                let f = f.map_err(|e| io_err(&shard, e))?;
                let name = f.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.starts_with(TMP_PREFIX) {
                    // An upload a crash cut short.
                    let _ = fs::remove_file(f.path());
                    continue;
                }
                if name.ends_with(".x") {
                    // Counted with its plain blob below.
                    continue;
                }
                let Some(d) = parse_blob_name(name) else {
                    continue;
                };
                let path = f.path();
                let Ok(meta) = fs::symlink_metadata(&path) else {
                    continue;
                };
                if !meta.is_file() || meta.len() != d.size() {
                    let _ = fs::remove_file(&path);
                    let _ = fs::remove_file(self.exec_path(&d));
                    continue;
                }
                if d == Digest::EMPTY {
                    continue;
                }
                let used = newest(&meta);
                let exec = fs::symlink_metadata(self.exec_path(&d))
                    .map(|m| m.is_file() && m.len() == d.size())
                    .unwrap_or(false);
                found.push((used, d, exec));
            }
            // Executable copies whose plain blob is gone are unreachable.
            if let Ok(files) = fs::read_dir(&shard) {
                for f in files.flatten() {
                    let name = f.file_name();
                    let Some(plain) = name.to_str().and_then(|n| n.strip_suffix(".x")) else {
                        continue;
                    };
                    if !shard.join(plain).exists() {
                        exec_only.push(f.path());
                    }
                }
            }
        }
        for p in exec_only {
            let _ = fs::remove_file(p);
        }
        found.sort();
        let mut index = self.lock();
        for (used, d, exec) in found {
            index.insert(d, d.size(), exec, epoch_secs(used));
        }
        Ok(())
    }

    /// Counts a use of `d`; refreshes its on-disk atime now and then so a
    /// restart sees roughly the same order. Returns whether it is stored.
    fn touch(&self, d: &Digest) -> bool {
        if *d == Digest::EMPTY {
            return true;
        }
        let now = epoch_secs(SystemTime::now());
        let stamp = {
            let mut index = self.lock();
            let Some(slot) = index.touch(d) else {
                return false;
            };
            let due = now.saturating_sub(slot.stamped) >= STAMP_INTERVAL_SECS;
            if due {
                slot.stamped = now;
            }
            due
        };
        if stamp {
            set_atime_now(&self.blob_path(d));
        }
        true
    }

    /// Remembers that `d`'s file was found whole.
    fn verified_insert(&self, d: &Digest) {
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(*d);
    }

    /// Whether `d`'s file still holds its bytes: hashed the first time it
    /// is asked, remembered after. A corrupt blob is removed (so it reads
    /// as missing and the client uploads it again).
    fn check(&self, d: &Digest) -> Result<bool, StoreError> {
        if *d == Digest::EMPTY
            || self
                .verified
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(d)
        {
            return Ok(true);
        }
        let path = self.blob_path(d);
        match crate::cas::hash::digest_file(&path) {
            Ok(got) if got == *d => {
                self.verified_insert(d);
                Ok(true)
            }
            Ok(got) => {
                tracing::error!(blob = %d, %got, "corrupt blob on disk, removed");
                self.discard(d);
                Ok(false)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.forget(d);
                Ok(false)
            }
            Err(e) => Err(io_err(&path, e)),
        }
    }

    /// Removes a blob's files and its index entry.
    fn discard(&self, d: &Digest) {
        let _ = fs::remove_file(self.blob_path(d));
        let _ = fs::remove_file(self.exec_path(d));
        self.forget(d);
    }

    fn forget(&self, d: &Digest) {
        if *d != Digest::EMPTY {
            self.lock().remove(d);
        }
    }

    /// Moves a verified temp file into place and records it, then evicts
    /// down to the size bound (sparing `d`).
    fn publish(&self, d: &Digest, tmp: &Path) -> Result<(), StoreError> {
        let dest = self.blob_path(d);
        let mut index = self.lock();
        if index.get(d).is_some() || *d == Digest::EMPTY {
            index.touch(d);
            drop(index);
            let _ = fs::remove_file(tmp);
            return Ok(());
        }
        if let Err(e) = fs::rename(tmp, &dest) {
            drop(index);
            let _ = fs::remove_file(tmp);
            return Err(io_err(&dest, e));
        }
        let now = epoch_secs(SystemTime::now());
        index.insert(*d, d.size(), false, now);
        self.evict_over_limit(&mut index, Some(d));
        Ok(())
    }

    /// Deletes least recently used blobs until the total fits. Runs under
    /// the lock so a concurrent upload of the same digest cannot be renamed
    /// in between our decision and the unlink.
    fn evict_over_limit(&self, index: &mut LruIndex, keep: Option<&Digest>) {
        while index.total() > self.max_size {
            let Some((victim, slot)) = index.pop_oldest_except(keep) else {
                break;
            };
            // Read well after we last saw it, by a client reading the
            // store directly (`StoreReader` stamps the atime): a second
            // chance. A file time within our own stamping interval of the
            // record says nothing new: actions reading their hard-linked
            // inputs move it too, and a second chance for those would put
            // them ahead of blobs used after them.
            let read = fs::symlink_metadata(self.blob_path(&victim))
                .map(|m| newest_secs(&m))
                .unwrap_or(0);
            if read > slot.stamped + STAMP_INTERVAL_SECS {
                index.insert(victim, slot.size, slot.exec_variant, read);
                continue;
            }
            let _ = fs::remove_file(self.blob_path(&victim));
            if slot.exec_variant {
                let _ = fs::remove_file(self.exec_path(&victim));
            }
            tracing::debug!(digest = %victim, "evicted from CAS");
        }
    }

    /// Makes sure the executable copy of a stored blob exists.
    fn ensure_exec_variant(&self, d: &Digest) -> Result<PathBuf, StoreError> {
        let exec = self.exec_path(d);
        match self.lock().get(d) {
            None => return Err(StoreError::NotFound(*d)),
            Some(slot) if slot.exec_variant => return Ok(exec),
            Some(_) => {}
        }
        let tmp = self.new_tmp(d);
        let src = self.blob_path(d);
        if let Err(e) = fs::copy(&src, &tmp) {
            let _ = fs::remove_file(&tmp);
            if e.kind() == io::ErrorKind::NotFound {
                self.forget(d);
                return Err(StoreError::NotFound(*d));
            }
            return Err(io_err(&src, e));
        }
        fs::set_permissions(&tmp, fs::Permissions::from_mode(EXEC_BLOB_MODE))
            .map_err(|e| io_err(&tmp, e))?;
        let mut index = self.lock();
        match index.get(d) {
            None => {
                drop(index);
                let _ = fs::remove_file(&tmp);
                Err(StoreError::NotFound(*d))
            }
            Some(slot) if slot.exec_variant => {
                drop(index);
                let _ = fs::remove_file(&tmp);
                Ok(exec)
            }
            Some(_) => {
                if let Err(e) = fs::rename(&tmp, &exec) {
                    drop(index);
                    let _ = fs::remove_file(&tmp);
                    return Err(io_err(&exec, e));
                }
                index.add_exec_variant(d);
                self.evict_over_limit(&mut index, Some(d));
                Ok(exec)
            }
        }
    }
}

impl BlobStore for DiskStore {
    fn contains(&self, d: &Digest) -> bool {
        self.inner.touch(d)
    }

    fn find_missing(&self, ds: &[Digest]) -> Vec<Digest> {
        let mut seen = std::collections::HashSet::new();
        ds.iter()
            .filter(|d| !self.inner.touch(d) && seen.insert(**d))
            .copied()
            .collect()
    }

    fn read(&self, d: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        if !self.inner.touch(d) {
            return Ok(None);
        }
        if *d == Digest::EMPTY {
            return Ok(Some(Vec::new()));
        }
        let path = self.inner.blob_path(d);
        match fs::read(&path) {
            // Whole reads are small blobs (directories, commands): always
            // checked, a corrupt one reads as missing.
            Ok(data) if Digest::of_bytes(&data) == *d => Ok(Some(data)),
            Ok(_) => {
                tracing::error!(blob = %d, "corrupt blob on disk, removed");
                self.inner.discard(d);
                Ok(None)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.inner.forget(d);
                Ok(None)
            }
            Err(e) => Err(io_err(&path, e)),
        }
    }

    fn open(&self, d: &Digest) -> Result<Option<File>, StoreError> {
        if !self.inner.touch(d) {
            return Ok(None);
        }
        let path = self.inner.blob_path(d);
        match File::open(&path) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.inner.forget(d);
                Ok(None)
            }
            Err(e) => Err(io_err(&path, e)),
        }
    }

    fn write(&self, d: &Digest, data: &[u8]) -> Result<(), StoreError> {
        let actual = Digest::of_bytes(data);
        if actual != *d {
            return Err(StoreError::DigestMismatch {
                expected: *d,
                actual,
            });
        }
        if self.inner.touch(d) {
            return Ok(());
        }
        let tmp = self.inner.new_tmp(d);
        if let Err(e) = write_new(&tmp, data, BLOB_MODE) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        self.inner.publish(d, &tmp)
    }

    fn writer(&self, d: &Digest) -> Result<Box<dyn BlobSink>, StoreError> {
        let tmp = self.inner.new_tmp(d);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(BLOB_MODE)
            .open(&tmp)
            .map_err(|e| io_err(&tmp, e))?;
        Ok(Box::new(DiskSink {
            inner: Arc::clone(&self.inner),
            expected: *d,
            file: Some(file),
            tmp: Some(tmp),
            hasher: Sha256::new(),
            received: 0,
        }))
    }

    fn link_or_copy(&self, d: &Digest, dest: &Path, executable: bool) -> Result<(), StoreError> {
        let mode = if executable {
            EXEC_BLOB_MODE
        } else {
            BLOB_MODE
        };
        if *d == Digest::EMPTY {
            // Nothing to share; a fresh empty file costs the same as a link.
            return write_new(dest, b"", mode);
        }
        if !self.inner.touch(d) || !self.inner.check(d)? {
            return Err(StoreError::NotFound(*d));
        }
        let src = if executable {
            self.inner.ensure_exec_variant(d)?
        } else {
            self.inner.blob_path(d)
        };
        match fs::hard_link(&src, dest) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound && !src.exists() => {
                self.inner.forget(d);
                Err(StoreError::NotFound(*d))
            }
            // Other file system (EXDEV), too many links (EMLINK), or links
            // not allowed: fall back to a copy with the same mode.
            Err(e) if is_link_refused(&e) => {
                fs::copy(&src, dest).map_err(|e| io_err(dest, e))?;
                fs::set_permissions(dest, fs::Permissions::from_mode(mode))
                    .map_err(|e| io_err(dest, e))
            }
            Err(e) => Err(io_err(dest, e)),
        }
    }

    fn total_size(&self) -> u64 {
        self.inner.lock().total()
    }
}

/// A streaming upload into a temp file. Bytes beyond the expected size are
/// hashed but not written, so a runaway upload cannot fill the disk and
/// still fails with the digest it really had.
struct DiskSink {
    inner: Arc<Inner>,
    expected: Digest,
    file: Option<File>,
    tmp: Option<PathBuf>,
    hasher: Sha256,
    received: u64,
}

impl BlobSink for DiskSink {
    fn write_chunk(&mut self, data: &[u8]) -> Result<(), StoreError> {
        self.hasher.update(data);
        self.received += data.len() as u64;
        if self.received > self.expected.size() {
            self.file = None;
            return Ok(());
        }
        if let (Some(f), Some(tmp)) = (self.file.as_mut(), self.tmp.as_ref()) {
            f.write_all(data).map_err(|e| io_err(tmp, e))?;
        }
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        let hasher = std::mem::take(&mut self.hasher);
        let actual = Digest::from_raw(hasher.finalize().into(), self.received);
        self.file = None;
        let tmp = self.tmp.take().expect("commit runs once");
        if actual != self.expected {
            let _ = fs::remove_file(&tmp);
            return Err(StoreError::DigestMismatch {
                expected: self.expected,
                actual,
            });
        }
        self.inner.publish(&self.expected, &tmp)
    }
}

impl Drop for DiskSink {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = fs::remove_file(tmp);
        }
    }
}

/// Parses `<64 hex>-<size>`.
fn parse_blob_name(name: &str) -> Option<Digest> {
    let (hash, size) = name.split_once('-')?;
    Digest::new(hash, size.parse().ok()?).ok()
}

/// Creates `path` (which must not exist) with `data` and `mode`.
pub(super) fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), StoreError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| io_err(path, e))?;
    f.write_all(data).map_err(|e| io_err(path, e))?;
    // `mode` passes through the umask at creation; make it exact.
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| io_err(path, e))
}

fn is_link_refused(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EXDEV) | Some(libc::EMLINK) | Some(libc::EPERM) | Some(libc::EACCES)
    )
}

/// The later of a file's access and modification times.
fn newest(meta: &fs::Metadata) -> SystemTime {
    let m = meta.modified().unwrap_or(UNIX_EPOCH);
    let a = meta.accessed().unwrap_or(UNIX_EPOCH);
    m.max(a)
}

/// [`newest`], in seconds since the epoch: when a file was last used.
pub(super) fn newest_secs(meta: &fs::Metadata) -> u64 {
    epoch_secs(newest(meta))
}

fn epoch_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Asks ext2/3/4 to place `dir`'s subdirectories (the shards), and so the
/// blobs in them, across many block groups, as it does at the top of a file
/// system. In one group, creating a file scans past every inode freed there
/// in the last minutes, so a first upload after a big deletion (a previous
/// store removed) would spend most of its time allocating inodes. Best
/// effort: other file systems refuse the flag, and that is fine.
#[cfg(not(target_os = "linux"))]
fn spread_subdirs(_dir: &Path) {}

#[cfg(target_os = "linux")]
fn spread_subdirs(dir: &Path) {
    use rustix::fs::{IFlags, ioctl_getflags, ioctl_setflags};
    let Ok(f) = File::open(dir) else { return };
    if let Ok(flags) = ioctl_getflags(&f)
        && !flags.contains(IFlags::TOPDIR)
    {
        let _ = ioctl_setflags(&f, flags | IFlags::TOPDIR);
    }
}

/// File times that set the atime to now and leave the mtime.
pub(super) fn atime_now() -> rustix::fs::Timestamps {
    use rustix::fs::{Timespec, Timestamps, UTIME_NOW, UTIME_OMIT};
    Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_NOW,
        },
        last_modification: Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
    }
}

/// Sets a file's atime to now without opening it (blobs are read-only, and
/// relatime mounts would not record a plain read). Best effort.
fn set_atime_now(path: &Path) {
    use rustix::fs::{AtFlags, CWD, utimensat};
    let _ = utimensat(CWD, path, &atime_now(), AtFlags::empty());
}

#[cfg(test)]
#[path = "disk_tests.rs"]
mod tests;
