//! Outputs of a finished action → blobs in the store + `ActionResult` fields.
//!
//! Which paths: `output_paths` when the command uses it (v2.1+), else the
//! legacy `output_files` and `output_directories`. Each path is relative to
//! the working directory and reported with exactly the spelling the command
//! used. What sits there decides what is reported: a regular file becomes an
//! `OutputFile`, a directory an `OutputDirectory` (a `Tree` blob plus every
//! `Directory` and file blob), a symlink an `OutputSymlink` that is never
//! followed. Symlinks inside output directories stay symlinks in the Tree.
//! Missing outputs are simply absent; special files are skipped.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{RunError, paths};
use crate::cas::Digest;
use crate::cas::hash;
use crate::cas::store::{self, BlobStore};
use crate::cas::tree::{self, Entry};
use crate::proto::reapi;

/// Which request field an output came from; decides where a symlink goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Asked {
    /// `output_paths` (v2.1).
    Path,
    /// Legacy `output_files`.
    File,
    /// Legacy `output_directories`.
    Directory,
}

/// A regular file waiting to be hashed (all at once, in parallel).
struct PendingFile {
    path: PathBuf,
    /// Where the digest goes once known.
    slot: Slot,
}

enum Slot {
    OutputFile(usize),
    TreeEntry { dir: usize, entry: usize },
}

/// An output directory whose entries are being gathered.
struct PendingDir {
    path: String,
    entries: Vec<Entry>,
}

pub fn collect(
    store: &dyn BlobStore,
    root: &Path,
    command: &reapi::Command,
    result: &mut reapi::ActionResult,
) -> Result<(), RunError> {
    let wd = command.working_directory.as_str();
    let asked: Vec<(&String, Asked)> = if command.output_paths.is_empty() {
        let files = command.output_files.iter().map(|p| (p, Asked::File));
        let dirs = command
            .output_directories
            .iter()
            .map(|p| (p, Asked::Directory));
        files.chain(dirs).collect()
    } else {
        command
            .output_paths
            .iter()
            .map(|p| (p, Asked::Path))
            .collect()
    };

    let mut files: Vec<PendingFile> = Vec::new();
    let mut dirs: Vec<PendingDir> = Vec::new();
    for (out, kind) in asked {
        let Some(real) = paths::join_within(wd, out).and_then(|p| paths::resolve_beneath(root, &p))
        else {
            continue;
        };
        let Ok(meta) = fs::symlink_metadata(&real) else {
            continue;
        };
        let ft = meta.file_type();
        if ft.is_symlink() {
            add_symlink(result, out, &real, kind)?;
        } else if ft.is_file() {
            files.push(PendingFile {
                path: real,
                slot: Slot::OutputFile(result.output_files.len()),
            });
            result.output_files.push(reapi::OutputFile {
                path: out.clone(),
                is_executable: is_executable(&meta),
                ..Default::default()
            });
        } else if ft.is_dir() {
            let index = dirs.len();
            let mut pending = PendingDir {
                path: out.clone(),
                entries: Vec::new(),
            };
            walk(&real, "", index, &mut pending.entries, &mut files)?;
            dirs.push(pending);
        }
    }

    // Hash every regular file in parallel, then stream in what is missing.
    let file_paths: Vec<PathBuf> = files.iter().map(|f| f.path.clone()).collect();
    let digests = hash::digest_files(&file_paths);
    for (f, digest) in files.iter().zip(digests) {
        let digest = digest.map_err(|e| fail(&f.path, e))?;
        store::store_file_as(store, &f.path, &digest)
            .map_err(|e| RunError::Internal(format!("storing output {}: {e}", f.path.display())))?;
        match f.slot {
            Slot::OutputFile(i) => result.output_files[i].digest = Some(digest.to_proto()),
            Slot::TreeEntry { dir, entry } => {
                if let tree::Node::File { digest: d, .. } = &mut dirs[dir].entries[entry].node {
                    *d = digest;
                }
            }
        }
    }

    for dir in dirs {
        let built = tree::build(&dir.entries)
            .map_err(|e| RunError::Internal(format!("output directory {:?}: {e}", dir.path)))?;
        // Every Directory is stored too, so DIRECTORY_ONLY clients and
        // GetTree can walk it from root_directory_digest.
        for (d, bytes) in &built.directories {
            store.write(d, bytes)?;
        }
        let (tree_digest, tree_bytes) = Digest::of_message(&built.to_tree_message());
        store.write(&tree_digest, &tree_bytes)?;
        result.output_directories.push(reapi::OutputDirectory {
            path: dir.path,
            tree_digest: Some(tree_digest.to_proto()),
            root_directory_digest: Some(built.root.to_proto()),
            ..Default::default()
        });
    }
    Ok(())
}

fn fail(path: &Path, e: io::Error) -> RunError {
    RunError::Internal(format!("reading output {}: {e}", path.display()))
}

fn is_executable(meta: &fs::Metadata) -> bool {
    meta.permissions().mode() & 0o111 != 0
}

/// Records a symlink output. With `output_paths` it goes in
/// `output_symlinks`, and (for v2.0 clients, as the spec asks) also in the
/// legacy field matching what it points to; with the legacy fields it goes
/// where the client asked for it.
fn add_symlink(
    result: &mut reapi::ActionResult,
    out: &str,
    real: &Path,
    asked: Asked,
) -> Result<(), RunError> {
    let target = fs::read_link(real).map_err(|e| fail(real, e))?;
    let target = target
        .to_str()
        .ok_or_else(|| {
            RunError::Internal(format!("output symlink {out:?} has a non-UTF-8 target"))
        })?
        .to_string();
    let link = reapi::OutputSymlink {
        path: out.to_string(),
        target,
        ..Default::default()
    };
    let to_dir = match asked {
        Asked::File => false,
        Asked::Directory => true,
        Asked::Path => {
            result.output_symlinks.push(link.clone());
            // Only the type of the target is read, never its content.
            fs::metadata(real).is_ok_and(|m| m.is_dir())
        }
    };
    if to_dir {
        result.output_directory_symlinks.push(link);
    } else {
        result.output_file_symlinks.push(link);
    }
    Ok(())
}

/// Lists a directory's contents as tree entries (paths relative to the
/// output directory), without following any symlink. File digests are
/// filled in later from `files`.
fn walk(
    dir: &Path,
    prefix: &str,
    index: usize,
    entries: &mut Vec<Entry>,
    files: &mut Vec<PendingFile>,
) -> Result<(), RunError> {
    let mut children: Vec<_> = fs::read_dir(dir)
        .map_err(|e| fail(dir, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| fail(dir, e))?;
    children.sort_by_key(|c| c.file_name());
    for child in children {
        let name = child.file_name();
        let Some(name) = name.to_str() else {
            return Err(RunError::Internal(format!(
                "output {} has a non-UTF-8 name",
                child.path().display()
            )));
        };
        let rel = paths::join_rel(prefix, name);
        let path = child.path();
        let meta = fs::symlink_metadata(&path).map_err(|e| fail(&path, e))?;
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = fs::read_link(&path).map_err(|e| fail(&path, e))?;
            let target = target.to_str().ok_or_else(|| {
                RunError::Internal(format!("symlink {} has a non-UTF-8 target", path.display()))
            })?;
            entries.push(Entry::symlink(rel, target));
        } else if ft.is_file() {
            files.push(PendingFile {
                path,
                slot: Slot::TreeEntry {
                    dir: index,
                    entry: entries.len(),
                },
            });
            entries.push(Entry::file(rel, Digest::EMPTY, is_executable(&meta)));
        } else if ft.is_dir() {
            entries.push(Entry::dir(rel.clone()));
            walk(&path, &rel, index, entries, files)?;
        }
        // Sockets, FIFOs and devices have no place in a Tree.
    }
    Ok(())
}
