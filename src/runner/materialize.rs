//! From an input root digest to a directory on disk the action can run in.
//!
//! Everything the action needs is checked before anything is written: all
//! directory messages are fetched and validated (`tree::flatten`), and every
//! missing blob, directory or file, is reported in one `MissingBlobs` so the
//! client can upload them all and retry once. Files come from the store as
//! hard links where possible (`BlobStore::link_or_copy`).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use prost::Message;

use super::{RunError, paths};
use crate::cas::Digest;
use crate::cas::store::BlobStore;
use crate::cas::tree::{self, Entry, Node};
use crate::proto::reapi;

/// A fresh directory for one action: `root/` is the input root, `stdout`
/// and `stderr` sit beside it so the action cannot see or clobber them.
/// Removed when dropped, whatever the action did to its permissions.
pub struct Scratch {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Scratch {
    pub fn create(work_dir: &Path) -> Result<Scratch, RunError> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let internal = |p: &Path, e: io::Error| {
            RunError::Internal(format!(
                "cannot create scratch directory {}: {e}",
                p.display()
            ))
        };
        crate::fsutil::create_private_dir_all(work_dir).map_err(|e| internal(work_dir, e))?;
        // pid + counter + random: unique across workers of this process,
        // across processes sharing a work dir, and across restarts.
        let name = format!(
            "action-{}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let dir = work_dir.join(name);
        {
            use std::os::unix::fs::DirBuilderExt as _;
            fs::DirBuilder::new()
                .mode(crate::fsutil::PRIVATE_DIR)
                .create(&dir)
                .map_err(|e| internal(&dir, e))?;
        }
        let scratch = Scratch {
            root: dir.join("root"),
            stdout: dir.join("stdout"),
            stderr: dir.join("stderr"),
            dir,
        };
        fs::create_dir(&scratch.root).map_err(|e| internal(&scratch.root, e))?;
        Ok(scratch)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = remove_tree(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot remove scratch directory");
        }
    }
}

/// `remove_dir_all`, after making directories writable again if the action
/// took that away (an unwritable directory's entries cannot be unlinked).
fn remove_tree(dir: &Path) -> io::Result<()> {
    if fs::remove_dir_all(dir).is_ok() || !dir.exists() {
        return Ok(());
    }
    fn unlock(p: &Path) {
        let Ok(m) = fs::symlink_metadata(p) else {
            return;
        };
        if !m.is_dir() {
            return;
        }
        let _ = fs::set_permissions(p, fs::Permissions::from_mode(0o700));
        if let Ok(rd) = fs::read_dir(p) {
            for e in rd.flatten() {
                unlock(&e.path());
            }
        }
    }
    unlock(dir);
    fs::remove_dir_all(dir)
}

/// Fetches every directory of the input tree and checks every file is
/// present. Returns the entries, parents before children.
pub fn fetch_tree(store: &dyn BlobStore, root: &Digest) -> Result<Vec<Entry>, RunError> {
    let mut dirs: HashMap<Digest, reapi::Directory> = HashMap::new();
    let mut missing: Vec<Digest> = Vec::new();
    let mut pending = vec![*root];
    let mut queued: HashSet<Digest> = HashSet::from([*root]);
    let mut file_digests: HashSet<Digest> = HashSet::new();
    while let Some(d) = pending.pop() {
        let Some(bytes) = store.read(&d)? else {
            missing.push(d);
            continue;
        };
        let dir = reapi::Directory::decode(bytes.as_slice()).map_err(|e| {
            RunError::InvalidArgument(format!("input directory {d} does not decode: {e}"))
        })?;
        for f in &dir.files {
            // Bad digests are reported with their path by `flatten` below.
            if let Ok(fd) = Digest::from_proto_opt(f.digest.as_ref()) {
                file_digests.insert(fd);
            }
        }
        for sub in &dir.directories {
            if let Ok(sd) = Digest::from_proto_opt(sub.digest.as_ref())
                && queued.insert(sd)
            {
                pending.push(sd);
            }
        }
        dirs.insert(d, dir);
    }
    let files: Vec<Digest> = file_digests.into_iter().collect();
    missing.extend(store.find_missing(&files));
    if !missing.is_empty() {
        missing.sort();
        missing.dedup();
        return Err(RunError::MissingBlobs(missing));
    }
    tree::flatten(root, &dirs)
        .map_err(|e| RunError::InvalidArgument(format!("input root {root}: {e}")))
}

/// Writes the entries under `root`: directories, files linked or copied
/// from the store with their exec bit, symlinks as symlinks.
pub fn materialize(store: &dyn BlobStore, entries: &[Entry], root: &Path) -> Result<(), RunError> {
    let io_fail =
        |p: &Path, e: io::Error| RunError::Internal(format!("materializing {}: {e}", p.display()));
    let mut missing = Vec::new();
    for entry in entries {
        let dest = root.join(&entry.path);
        match &entry.node {
            Node::Directory => fs::create_dir(&dest).map_err(|e| io_fail(&dest, e))?,
            Node::File { digest, executable } => {
                match store.link_or_copy(digest, &dest, *executable) {
                    Ok(()) => {}
                    // Evicted since `fetch_tree` looked: report it like any
                    // other missing input.
                    Err(crate::cas::store::StoreError::NotFound(d)) => missing.push(d),
                    Err(e) => return Err(RunError::Internal(e.to_string())),
                }
            }
            Node::Symlink { target } => {
                std::os::unix::fs::symlink(target, &dest).map_err(|e| io_fail(&dest, e))?
            }
        }
    }
    if !missing.is_empty() {
        return Err(RunError::MissingBlobs(missing));
    }
    Ok(())
}

/// Creates the working directory and the parents of every output path (the
/// spec has the worker do so), and returns the working directory.
pub fn prepare(root: &Path, command: &reapi::Command) -> Result<PathBuf, RunError> {
    let wd = &command.working_directory;
    let io_fail = |what: &str, e: io::Error| {
        RunError::Internal(format!("preparing {what} under {}: {e}", root.display()))
    };
    paths::make_dirs(root, wd).map_err(|e| io_fail(wd, e))?;
    let outputs = if command.output_paths.is_empty() {
        command
            .output_files
            .iter()
            .chain(&command.output_directories)
            .collect::<Vec<_>>()
    } else {
        command.output_paths.iter().collect()
    };
    for out in outputs {
        let Some(full) = paths::join_within(wd, out) else {
            continue;
        };
        if let Some((parent, _)) = full.rsplit_once('/') {
            paths::make_dirs(root, parent).map_err(|e| io_fail(parent, e))?;
        }
    }
    let work = paths::resolve_beneath(root, wd)
        .filter(|p| fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()))
        .ok_or_else(|| {
            RunError::InvalidArgument(format!(
                "working directory {wd:?} is not a directory inside the input root"
            ))
        })?;
    Ok(work)
}
