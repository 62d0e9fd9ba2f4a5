//! Collecting an input root from a local directory: regular files with
//! their exec bit, symlinks kept as symlinks (never followed), and empty
//! directories, hashed in parallel, built into a Merkle tree.
//!
//! Reads the file system with `std::fs` only; no async runtime, no gRPC.
//! Uploading the result is `remote`'s job.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::cas::Digest;
use crate::cas::hash::digest_files;
use crate::cas::tree::{self, Entry, MerkleTree, TreeError};

/// Why a directory could not be collected.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: file names must be UTF-8 to travel in a REAPI tree", .0.display())]
    NotUtf8(PathBuf),
    #[error("{0}")]
    Tree(#[from] TreeError),
}

/// A collected input root.
#[derive(Debug)]
pub struct InputRoot {
    pub tree: MerkleTree,
    pub entries: Vec<Entry>,
    /// One local path per distinct file digest (for uploading).
    pub files: Vec<(Digest, PathBuf)>,
    /// Things neither file, directory nor symlink (sockets, fifos), skipped.
    pub skipped: Vec<PathBuf>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> InputError + '_ {
    move |source| InputError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn utf8(path: &Path, name: &std::ffi::OsStr) -> Result<String, InputError> {
    name.to_str()
        .map(str::to_string)
        .ok_or_else(|| InputError::NotUtf8(path.to_path_buf()))
}

/// Walks `root` and builds its tree. Files are hashed on all cores.
pub fn collect(root: &Path) -> Result<InputRoot, InputError> {
    collect_excluding(root, &[])
}

/// As [`collect`], leaving out the given relative paths (and everything
/// under them): a command's declared outputs are not its inputs, so a
/// rerun after a first run wrote them has the same action digest.
pub fn collect_excluding(root: &Path, exclude: &[&str]) -> Result<InputRoot, InputError> {
    let mut entries = Vec::new();
    let mut files: Vec<(String, PathBuf, bool)> = Vec::new();
    let mut skipped = Vec::new();
    let mut stack = vec![(String::new(), root.to_path_buf())];
    while let Some((rel, dir)) = stack.pop() {
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .map_err(io(&dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io(&dir))?;
        names.sort();
        if names.is_empty() && !rel.is_empty() {
            entries.push(Entry::dir(rel.clone()));
        }
        for name in names {
            let path = dir.join(&name);
            let name = utf8(&path, &name)?;
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if exclude.contains(&child.as_str()) {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
            let ft = meta.file_type();
            if ft.is_symlink() {
                let target = std::fs::read_link(&path).map_err(io(&path))?;
                let target = utf8(&path, target.as_os_str())?;
                entries.push(Entry::symlink(child, target));
            } else if ft.is_dir() {
                stack.push((child, path));
            } else if ft.is_file() {
                let executable = meta.permissions().mode() & 0o111 != 0;
                files.push((child, path, executable));
            } else {
                skipped.push(path);
            }
        }
    }
    let paths: Vec<PathBuf> = files.iter().map(|(_, p, _)| p.clone()).collect();
    let digests = digest_files(&paths);
    let mut unique = std::collections::BTreeMap::new();
    for ((rel, path, executable), digest) in files.into_iter().zip(digests) {
        let digest = digest.map_err(io(&path))?;
        unique.entry(digest).or_insert_with(|| path.clone());
        entries.push(Entry::file(rel, digest, executable));
    }
    let tree = tree::build(&entries)?;
    Ok(InputRoot {
        tree,
        entries,
        files: unique.into_iter().collect(),
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cas::tree::Node;

    #[test]
    fn collects_files_modes_symlinks_and_empty_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("src/empty")).unwrap();
        std::fs::write(r.join("src/a.c"), "int a;\n").unwrap();
        std::fs::write(r.join("same.c"), "int a;\n").unwrap();
        std::fs::write(r.join("run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(r.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("/nonexistent/target", r.join("abs")).unwrap();
        std::os::unix::fs::symlink("src", r.join("srclink")).unwrap();

        let got = collect(r).unwrap();
        let find = |p: &str| {
            got.entries
                .iter()
                .find(|e| e.path == p)
                .map(|e| e.node.clone())
        };
        assert_eq!(
            find("run.sh"),
            Some(Node::File {
                digest: Digest::of_bytes(b"#!/bin/sh\n"),
                executable: true
            })
        );
        assert!(matches!(
            find("src/a.c"),
            Some(Node::File {
                executable: false,
                ..
            })
        ));
        assert_eq!(
            find("abs"),
            Some(Node::Symlink {
                target: "/nonexistent/target".into()
            })
        );
        // A symlink to a directory stays a symlink; its contents are not walked.
        assert!(matches!(find("srclink"), Some(Node::Symlink { .. })));
        assert!(find("srclink/a.c").is_none());
        assert_eq!(find("src/empty"), Some(Node::Directory));
        // Two files with the same content upload once.
        assert_eq!(got.files.len(), 2);

        // Same tree, same digest; a mode change changes it.
        assert_eq!(collect(r).unwrap().tree.root, got.tree.root);
        std::fs::set_permissions(r.join("run.sh"), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_ne!(collect(r).unwrap().tree.root, got.tree.root);
    }

    #[test]
    fn excluded_paths_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("gen/sub")).unwrap();
        std::fs::write(r.join("gen/sub/x"), "x").unwrap();
        std::fs::write(r.join("in.c"), "int a;\n").unwrap();
        std::fs::write(r.join("out.o"), "old").unwrap();
        let only_input = {
            let d = tempfile::tempdir().unwrap();
            std::fs::write(d.path().join("in.c"), "int a;\n").unwrap();
            collect(d.path()).unwrap().tree.root
        };
        let got = collect_excluding(r, &["out.o", "gen"]).unwrap();
        assert_eq!(got.tree.root, only_input);
    }

    #[test]
    fn empty_root_is_the_empty_directory() {
        let dir = tempfile::tempdir().unwrap();
        let got = collect(dir.path()).unwrap();
        assert_eq!(got.tree.root, Digest::EMPTY);
        assert!(got.entries.is_empty());
    }

    #[test]
    fn missing_root_names_the_path() {
        let err = collect(Path::new("/nonexistent/recast-root")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/recast-root"),
            "{err}"
        );
    }
}
