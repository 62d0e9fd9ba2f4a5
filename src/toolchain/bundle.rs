//! Packaging: a compiler → a deterministic CAS tree plus its manifest.
//!
//! The family probe says what the compiler runs and reads; the inspector
//! follows the loader from every program and library; this module puts the
//! two together into a [`Listing`], hashes it (through the local index),
//! builds the Merkle tree and writes the manifest. A closure with missing
//! libraries is an error: a partial toolchain is never packaged as a whole
//! one. Uploading and publishing is `registry`'s job.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::FileSource;
use super::family::Contents;
use super::index::{self, FileIndex};
use super::inspect::{self, Closure, ClosureOptions};
use super::listing::{self, Item, Listing, ListingError};
use super::manifest::{HostDesc, Manifest, SCHEMA};
use crate::cas::Digest;
use crate::cas::tree::{self, MerkleTree};

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error(transparent)]
    Inspect(#[from] inspect::InspectError),
    #[error(transparent)]
    Listing(#[from] ListingError),
    #[error("{compiler}: {} librar{} not found, so the toolchain would be incomplete:\n{}",
        .missing.len(), if .missing.len() == 1 { "y" } else { "ies" }, .missing.join("\n"))]
    Incomplete {
        compiler: PathBuf,
        missing: Vec<String>,
    },
    #[error(
        "{compiler}: cannot tell which platform it runs on (no ELF or Mach-O binary among its programs)"
    )]
    NoHost { compiler: PathBuf },
    #[error("hashing the toolchain's files: {0}")]
    Hash(std::io::Error),
    #[error("building the toolchain tree: {0}")]
    Tree(#[from] tree::TreeError),
}

/// A packaged toolchain: the tree, where each file's bytes come from, and
/// the manifest.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub manifest: Manifest,
    pub tree: MerkleTree,
    /// Source path of every regular file, with its digest.
    pub files: BTreeMap<PathBuf, Digest>,
    /// The closure the inspector found, for `toolchain inspect` (none when
    /// the bundle was recognised from the local index).
    pub closure: Option<Closure>,
    /// Every path in the tree, as on the source.
    pub listing: Listing,
    /// Paths left out because a `Directory` cannot name them (not UTF-8).
    pub skipped: Vec<PathBuf>,
    /// Files whose bytes are read from elsewhere than their path (a
    /// relocated toolchain's patched programs, kept in the cache).
    pub sources: BTreeMap<PathBuf, PathBuf>,
}

impl Bundle {
    /// Where the bytes of the file at `path` are read.
    pub fn source_of<'a>(&'a self, path: &'a Path) -> &'a Path {
        self.sources.get(path).map_or(path, PathBuf::as_path)
    }
}

/// Packages the toolchain `contents` describes, reading through `fs`.
pub fn package(
    fs: &dyn FileSource,
    contents: &Contents,
    opts: &ClosureOptions,
    index: &mut FileIndex,
) -> Result<Bundle, BundleError> {
    let (closure, host) = complete_closure(fs, contents, opts)?;
    let listing = listing_of(fs, contents, &closure)?;
    let paths: Vec<PathBuf> = listing
        .items
        .iter()
        .filter(|(_, i)| matches!(i, Item::File { .. }))
        .map(|(p, _)| p.clone())
        .collect();
    let files = index::digest_all(fs, &paths, index).map_err(BundleError::Hash)?;
    let (entries, skipped) = listing.entries(&files);
    let tree = tree::build(&entries)?;
    let manifest = manifest_of(contents, &closure, host, &listing, tree.root);
    Ok(Bundle {
        manifest,
        tree,
        files,
        closure: Some(closure),
        listing,
        skipped,
        sources: BTreeMap::new(),
    })
}

/// The loader closure of the compiler, its programs and libraries, and
/// the platform they run on; an error when a library is missing.
fn complete_closure(
    fs: &dyn FileSource,
    contents: &Contents,
    opts: &ClosureOptions,
) -> Result<(Closure, HostDesc), BundleError> {
    let mut roots = vec![contents.entry.clone()];
    roots.extend(contents.programs.iter().cloned());
    roots.extend(contents.libraries.iter().cloned());
    let closure = inspect::closure(fs, &roots, opts)?;
    let missing: Vec<String> = closure
        .missing
        .iter()
        .map(|m| {
            format!(
                "  {} (needed by {}; searched {})",
                m.name,
                m.needed_by.display(),
                m.searched
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect();
    if !missing.is_empty() {
        return Err(BundleError::Incomplete {
            compiler: contents.entry.clone(),
            missing,
        });
    }
    let host = closure.host.as_ref().ok_or_else(|| BundleError::NoHost {
        compiler: contents.entry.clone(),
    })?;
    let host = HostDesc {
        arch: host.arch.to_string(),
        os: host.os.to_string(),
    };
    Ok((closure, host))
}

/// Every path of the toolchain: the closure, the family's trees and
/// files, the sysroot, and the PATH dirs.
fn listing_of(
    fs: &dyn FileSource,
    contents: &Contents,
    closure: &Closure,
) -> Result<Listing, BundleError> {
    let mut listing = Listing::new();
    for (path, entry) in &closure.files {
        listing.items.insert(path.clone(), item_of(entry));
    }
    for dir in &contents.trees {
        listing.add_tree(fs, dir)?;
    }
    for file in &contents.files {
        listing.add_path(fs, file)?;
    }
    if let Some(sysroot) = &contents.sysroot {
        listing.add_tree(fs, sysroot)?;
    }
    // The programs must sit where the manifest says, even if a tree above
    // added them already.
    for d in &contents.path_dirs {
        listing.add_path(fs, d)?;
    }
    Ok(listing)
}

/// The manifest of the tree rooted at `root`, paths relative to it.
fn manifest_of(
    contents: &Contents,
    closure: &Closure,
    host: HostDesc,
    listing: &Listing,
    root: Digest,
) -> Manifest {
    let rel = |p: &Path| listing::tree_path(p).unwrap_or_default();
    Manifest {
        schema: SCHEMA,
        name: Manifest::name_for(&contents.identity, &host),
        identity: contents.identity.clone(),
        host,
        entry: rel(&contents.entry),
        programs: contents.programs.iter().map(|p| rel(p)).collect(),
        path_dirs: contents.path_dirs.iter().map(|p| rel(p)).collect(),
        library_path: library_dirs(closure),
        interpreter: closure
            .loaded
            .iter()
            .find(|l| matches!(l.why, inspect::Why::Interpreter { .. }))
            .map(|l| rel(&l.path)),
        env: contents.env.clone(),
        targets: contents.targets.clone(),
        sysroot: contents.sysroot.as_deref().map(rel),
        min_glibc: closure.min_glibc.map(|(a, b)| format!("{a}.{b}")),
        root,
        size: listing.total_size(),
        files: listing.file_count() as u64,
        symlinks: listing
            .items
            .values()
            .filter(|i| matches!(i, Item::Symlink { .. }))
            .count() as u64,
        os_provided: closure.os_provided.iter().map(|(n, _)| n.clone()).collect(),
        relocated: None,
    }
}

/// Directories (tree paths) the loader found shared libraries in, by the
/// paths it used, in a stable order.
pub(crate) fn library_dirs(closure: &Closure) -> Vec<String> {
    let mut dirs = BTreeSet::new();
    for l in &closure.loaded {
        if matches!(l.why, inspect::Why::Needed { .. })
            && let Some(d) = l.path.parent().and_then(listing::tree_path)
        {
            dirs.insert(d);
        }
    }
    dirs.into_iter().collect()
}

fn item_of(entry: &inspect::ClosureEntry) -> Item {
    match &entry.kind {
        inspect::EntryKind::File { executable, size } => Item::File {
            executable: *executable,
            size: *size,
        },
        inspect::EntryKind::Symlink { target } => Item::Symlink {
            target: target.clone(),
        },
    }
}
