//! The input root of a wrapped compile: the toolchain's tree, every file
//! the compile reads (found by the scan), and the directories it must
//! find, each at its path as [`PathMap`] places it.
//!
//! Files are added the way the toolchain's own are (`Listing::add_path`):
//! every symlink met on the way is kept, so `/lib/x.h` reached through a
//! merged `/usr` resolves on the worker as it did here. When the project
//! root moves, a symlink that would cross its edge makes the move
//! impossible ([`InputsError::Unmappable`]); the caller then keeps every
//! path as it is.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use super::depcache::Seen;
use super::placement::{MAPPED_ROOT, PathMap};
use super::tool::Tool;
use crate::cas::Digest;
use crate::cas::tree::{self, Entry, MerkleTree, Node};
use crate::remote::Blob;
use crate::toolchain::HostFs;
use crate::toolchain::bundle::Bundle;
use crate::toolchain::listing::{ListingError, lexical_join};

#[derive(Debug, thiserror::Error)]
pub enum InputsError {
    #[error(transparent)]
    Listing(#[from] ListingError),
    #[error("the input tree: {0}")]
    Tree(#[from] tree::TreeError),
    #[error("{0}: a symlink crosses the project root, so the root cannot move")]
    Unmappable(String),
}

/// The input root and the blobs it needs.
pub struct Inputs {
    pub tree: MerkleTree,
    /// Every file blob (toolchain and inputs), one per digest.
    pub blobs: Vec<Blob>,
    /// The toolchains' own blobs (their files and directories): on the
    /// server once their upload is marked (`wrap::upload`), so a remote
    /// run does not ask about them.
    pub toolchain: HashSet<Digest>,
}

/// Builds the input root from `tools` (the compiler's toolchain, and a
/// linker's when the compile links), the `files` the compile reads (at the
/// paths it opened them by: every directory a `..` climbs out of is kept)
/// and the `dirs` it looks in (absent ones are skipped), and `extra` entries whose
/// blobs the server has. A registry toolchain's paths and `extra` win over
/// this machine's files at the same paths.
pub fn build(
    tools: &[&Tool],
    files: &[Seen],
    extra: &[Entry],
    dirs: &[PathBuf],
    map: &PathMap,
) -> Result<Inputs, InputsError> {
    let bundles: Vec<&Bundle> = tools.iter().filter_map(|t| t.bundle()).collect();
    let mut listing = bundles
        .first()
        .map(|b| b.listing.clone())
        .unwrap_or_default();
    let mut digests: BTreeMap<PathBuf, Digest> =
        bundles.first().map(|b| b.files.clone()).unwrap_or_default();
    for b in bundles.iter().skip(1) {
        // Both were read off this machine, so a path means the same thing
        // in each; a file the first has wins.
        for (path, item) in &b.listing.items {
            listing
                .items
                .entry(path.clone())
                .or_insert_with(|| item.clone());
        }
        for (path, d) in &b.files {
            digests.entry(path.clone()).or_insert(*d);
        }
    }
    for f in files {
        let real = listing.add_path(&HostFs, &f.path)?;
        digests.insert(real, f.digest);
    }
    for d in dirs {
        if d.is_dir() {
            listing.add_path(&HostFs, d)?;
        }
    }
    let (mut entries, skipped) = listing.entries(&digests);
    for s in skipped {
        tracing::debug!("left out of the input root (not UTF-8): {}", s.display());
    }
    // Entries whose blobs are on the server already: a registry
    // toolchain's, and files built there (twins).
    let remote: Vec<&Entry> = tools
        .iter()
        .flat_map(|t| t.entries())
        .chain(extra)
        .collect();
    if !remote.is_empty() {
        let taken: HashSet<&str> = remote
            .iter()
            .filter(|e| !matches!(e.node, Node::Directory))
            .map(|e| e.path.as_str())
            .collect();
        entries.retain(|e| !taken.contains(e.path.as_str()));
        // Two registry toolchains share files (libc, the loader): once.
        let mut placed: HashSet<&str> = HashSet::new();
        for e in remote {
            if matches!(e.node, Node::Directory) || placed.insert(e.path.as_str()) {
                entries.push(e.clone());
            }
        }
    }
    if let Some(root) = map.root() {
        remap(&mut entries, root)?;
    }
    let tree = tree::build(&entries)?;
    // A relocated toolchain's patched programs are read from the cache.
    let source = |p: &PathBuf| {
        bundles
            .iter()
            .find_map(|b| b.sources.get(p))
            .unwrap_or(p)
            .clone()
    };
    let mut seen = HashSet::new();
    let blobs = digests
        .iter()
        .filter(|(_, d)| seen.insert(**d))
        .map(|(p, d)| Blob::file(*d, source(p)))
        .collect();
    let toolchain = bundles
        .iter()
        .flat_map(|b| b.files.values().chain(b.tree.directories.keys()))
        .copied()
        .collect();
    Ok(Inputs {
        tree,
        blobs,
        toolchain,
    })
}

/// Moves every entry under the local project `root` to [`MAPPED_ROOT`].
fn remap(entries: &mut [Entry], root: &Path) -> Result<(), InputsError> {
    let from = root.to_string_lossy().trim_start_matches('/').to_string();
    let to = MAPPED_ROOT.trim_start_matches('/');
    let inside = |p: &str| p == from || p.starts_with(&format!("{from}/"));
    for e in entries.iter_mut() {
        if let Node::Symlink { target } = &e.node {
            // Where the link points, in tree paths.
            let dir = Path::new("/").join(&e.path);
            let dir = dir.parent().unwrap_or(Path::new("/"));
            let dest = lexical_join(dir, Path::new(target));
            let dest = dest.to_string_lossy();
            if inside(&e.path) != inside(dest.trim_start_matches('/')) {
                return Err(InputsError::Unmappable(format!("/{}", e.path)));
            }
        }
        if inside(&e.path) {
            e.path = format!("{to}{}", &e.path[from.len()..]);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remap_moves_the_project_and_refuses_links_across_it() {
        let d = Digest::of_bytes(b"x");
        let mut entries = vec![
            Entry::file("usr/include/stdio.h", d, false),
            Entry::file("home/u/proj/src/a.c", d, false),
            Entry::symlink("home/u/proj/inc", "src"),
            Entry::dir("home/u/proj"),
        ];
        remap(&mut entries, Path::new("/home/u/proj")).unwrap();
        let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "usr/include/stdio.h",
                "recast/project/src/a.c",
                "recast/project/inc",
                "recast/project"
            ]
        );
        let mut out = vec![Entry::symlink("home/u/proj/sys", "../../../usr/include")];
        assert!(matches!(
            remap(&mut out, Path::new("/home/u/proj")),
            Err(InputsError::Unmappable(_))
        ));
        let mut into = vec![Entry::symlink("opt/link", "../home/u/proj/src")];
        assert!(remap(&mut into, Path::new("/home/u/proj")).is_err());
        // A sibling directory with a common prefix is not inside.
        let mut sib = vec![Entry::file("home/u/project2/a.c", d, false)];
        remap(&mut sib, Path::new("/home/u/proj")).unwrap();
        assert_eq!(sib[0].path, "home/u/project2/a.c");
    }
}
