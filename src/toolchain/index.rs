//! The local index: what was hashed before, keyed by stat.
//!
//! Two maps, one JSON file each under `<cache>/toolchains/`:
//! - `files.json`: (path, size, mtime, ctime, inode) → digest, so a toolchain
//!   seen before is not rehashed; a changed file is the only one hashed
//!   again.
//! - `bundles/<key>.json`: a packaged toolchain (its request, its listing
//!   with each file's stat, the manifest), so recognising an unchanged
//!   compiler costs one stat per file and no process.
//!
//! Writes are atomic (temp file + rename); a corrupt or old file reads as
//! empty. Only files on this machine are indexed (`FileSource::is_host`).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{FileSource, Meta};
use crate::cas::Digest;

/// The stat fields that say a file is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub size: u64,
    pub mtime_ns: i128,
    /// See `Meta::ctime_ns`. Records without it (older caches) never match.
    #[serde(default)]
    pub ctime_ns: i128,
    pub ino: u64,
}

impl Stamp {
    pub fn of(meta: &Meta) -> Stamp {
        Stamp {
            size: meta.size,
            mtime_ns: meta.mtime_ns,
            ctime_ns: meta.ctime_ns,
            ino: meta.ino,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Known {
    stamp: Stamp,
    digest: Digest,
}

/// path → (stamp, digest).
#[derive(Debug, Default)]
pub struct FileIndex {
    path: Option<PathBuf>,
    files: BTreeMap<PathBuf, Known>,
    dirty: bool,
}

impl FileIndex {
    /// The index under `dir` (`<cache>/toolchains`); empty if absent or
    /// unreadable.
    pub fn load(dir: &Path) -> FileIndex {
        let path = dir.join("files.json");
        let files = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        FileIndex {
            path: Some(path),
            files,
            dirty: false,
        }
    }

    /// An index that is never saved (archives, tests).
    pub fn in_memory() -> FileIndex {
        FileIndex::default()
    }

    /// The digest recorded for `path` if its stamp is unchanged.
    pub fn get(&self, path: &Path, stamp: &Stamp) -> Option<Digest> {
        self.files
            .get(path)
            .filter(|k| k.stamp == *stamp && stamp.mtime_ns != 0)
            .map(|k| k.digest)
    }

    pub fn insert(&mut self, path: PathBuf, stamp: Stamp, digest: Digest) {
        self.files.insert(path, Known { stamp, digest });
        self.dirty = true;
    }

    pub fn save(&mut self) -> io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if !self.dirty {
            return Ok(());
        }
        crate::fsutil::write_private(path, &serde_json::to_vec(&self.files)?, false)?;
        self.dirty = false;
        Ok(())
    }
}

/// Hashes `paths` through `fs` on all cores, taking what `index` already
/// knows; records the new digests in `index` when `fs` is the host's.
pub fn digest_all(
    fs: &dyn FileSource,
    paths: &[PathBuf],
    index: &mut FileIndex,
) -> io::Result<BTreeMap<PathBuf, Digest>> {
    let mut out = BTreeMap::new();
    let mut todo: Vec<(PathBuf, Option<Stamp>)> = Vec::new();
    for p in paths {
        if fs.is_host() {
            let stamp = Stamp::of(&fs.symlink_metadata(p).map_err(|e| annotate(p, e))?);
            match index.get(p, &stamp) {
                Some(d) => {
                    out.insert(p.clone(), d);
                }
                None => todo.push((p.clone(), Some(stamp))),
            }
        } else {
            todo.push((p.clone(), None));
        }
    }
    // Largest first, so one huge file does not start last on a lone core.
    let mut order: Vec<usize> = (0..todo.len()).collect();
    let sizes: Vec<u64> = todo
        .iter()
        .map(|(p, s)| {
            s.map(|s| s.size)
                .or_else(|| fs.symlink_metadata(p).ok().map(|m| m.size))
                .unwrap_or(0)
        })
        .collect();
    order.sort_by_key(|&i| std::cmp::Reverse(sizes[i]));
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(order.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<(usize, io::Result<Digest>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut got = Vec::new();
                    loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&i) = order.get(k) else { break };
                        got.push((i, fs.digest(&todo[i].0)));
                    }
                    got
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("hashing thread panicked"))
            .collect()
    });
    for (i, r) in results {
        let (path, stamp) = &todo[i];
        let d = r.map_err(|e| annotate(path, e))?;
        if let Some(stamp) = stamp {
            index.insert(path.clone(), *stamp, d);
        }
        out.insert(path.clone(), d);
    }
    Ok(out)
}

fn annotate(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toolchain::HostFs;

    #[test]
    fn a_file_rewritten_with_its_old_size_and_mtime_is_hashed_again() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("cc1");
        std::fs::write(&f, b"version one").unwrap();
        let mut index = FileIndex::in_memory();
        let first = digest_all(&HostFs, std::slice::from_ref(&f), &mut index).unwrap();
        let mtime = std::fs::metadata(&f).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&f, b"version two").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let second = digest_all(&HostFs, std::slice::from_ref(&f), &mut index).unwrap();
        assert_ne!(first[&f], second[&f], "a stale digest was reused");
        assert_eq!(second[&f], Digest::of_bytes(b"version two"));
    }

    #[test]
    fn unchanged_files_are_not_rehashed_and_changed_ones_are() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, b"aaa").unwrap();
        std::fs::write(&b, b"bbb").unwrap();
        let idx_dir = dir.path().join("idx");
        let mut idx = FileIndex::load(&idx_dir);
        let first = digest_all(&HostFs, &[a.clone(), b.clone()], &mut idx).unwrap();
        assert_eq!(first[&a], Digest::of_bytes(b"aaa"));
        idx.save().unwrap();

        // Poison the index entry for `a`: an unchanged stamp must be trusted
        // (that is the point), so the poisoned digest comes back.
        let mut idx = FileIndex::load(&idx_dir);
        let stamp = Stamp::of(&HostFs.symlink_metadata(&a).unwrap());
        idx.insert(a.clone(), stamp, Digest::of_bytes(b"poison"));
        // `b` changes size: it is hashed again.
        std::fs::write(&b, b"bbbb").unwrap();
        let second = digest_all(&HostFs, &[a.clone(), b.clone()], &mut idx).unwrap();
        assert_eq!(second[&a], Digest::of_bytes(b"poison"));
        assert_eq!(second[&b], Digest::of_bytes(b"bbbb"));
    }

    #[test]
    fn a_corrupt_index_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("files.json"), b"{not json").unwrap();
        let idx = FileIndex::load(dir.path());
        assert!(idx.files.is_empty());
    }
}
