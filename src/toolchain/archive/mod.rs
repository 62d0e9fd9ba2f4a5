//! Toolchains in archives: read one or more `.tar`, `.tar.gz`/`.tgz` (or
//! `.tar.zst`) files into memory as one [`ArchiveFs`], describe the
//! compiler inside as [`Contents`] without running anything, and write a
//! bundle back out as a deterministic tar.gz.
//!
//! Two layouts, detected per archive ([`detect_layout`]):
//! - **Rust dist** tarballs (`rust-<ver>-<host>.tar.gz`, or the component
//!   tarballs `rustc-…`, `rust-std-…-<target>`): a single top directory
//!   holding a `components` file, `version` and `git-commit-hash`. Every
//!   listed component is merged into one sysroot at
//!   [`DIST_ROOT`]`/rust-<release>-<host>` (`rustdist`).
//! - **Rooted** archives (sccache's `--package-toolchain` output, or a base
//!   system's files): paths are absolute paths without the leading `/`,
//!   and are placed at `/` (`sccache`).
//!
//! Several archives merge into one view; the same path with different
//! content in two of them is an error. A dist tarball carries no C
//! library, so packaging the rustc it holds needs the loader's files from
//! somewhere: pass a rooted archive of a base system (libc, libm,
//! libgcc_s, ld.so) alongside it.
//!
//! Entry points: [`open`] → [`import`] → `bundle::package` (the lead's) →
//! [`export`]. Left to others: hashing and tree building (`bundle`), the
//! registry, and the CLI.

mod export;
mod fs;
mod read;
mod rustdist;
mod sccache;

use std::path::{Path, PathBuf};

pub use export::{ExportStats, export, export_listing};
pub use fs::{ArchiveFs, Node, normalize};
pub use read::Raw;

use super::family::{Contents, FamilyError, ProbeOptions};

/// Where dist sysroots are placed in the view (and so in the tree): a path
/// no distribution uses, named after the product.
pub const DIST_ROOT: &str = "/opt/recast";

/// How one archive is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveKind {
    /// A Rust dist (or component) tarball, with its top directory.
    RustDist { top: PathBuf },
    /// Paths relative to `/`.
    Rooted,
}

/// The sysroot merged from Rust dist tarballs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RustDist {
    /// `/opt/recast/rust-<release>-<host>`.
    pub sysroot: PathBuf,
    /// First word of `version` (`1.91.0`, `1.93.0-nightly`), as
    /// `rustc -vV` prints `release:`.
    pub release: String,
    /// `git-commit-hash`, when the tarballs have one.
    pub commit: Option<String>,
    /// The triple rustc runs on, from the name of the tarball holding the
    /// `rustc` component.
    pub host: String,
    /// Every component merged, sorted (`rust-std-x86_64-…`, `rustc`, …).
    pub components: Vec<String>,
    /// Targets with a `rust-std-<target>` component.
    pub targets: Vec<String>,
}

/// How the archives of an [`ArchiveFs`] were laid out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// The merged dist sysroot, when dist tarballs were given.
    pub rust: Option<RustDist>,
    /// The archives placed at `/`.
    pub rooted: Vec<PathBuf>,
}

/// What went wrong; each message names the archive and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot read archive {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a readable tar archive ({reason}); pass a .tar, .tar.gz or .tgz file as it was downloaded", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("{}: entry {} is absolute or climbs out with `..`; refusing an archive that would write outside its root", archive.display(), entry.display())]
    Unsafe { archive: PathBuf, entry: PathBuf },
    #[error("{}: {} is also in an earlier archive with different content; pass archives of one toolchain only", archive.display(), path.display())]
    Conflict { archive: PathBuf, path: PathBuf },
    #[error("{}: {} lies under {}, which is not a directory in the archives", archive.display(), path.display(), parent.display())]
    NotUnderDir {
        archive: PathBuf,
        path: PathBuf,
        parent: PathBuf,
    },
    #[error("{0}")]
    Layout(String),
    /// The compiler inside could not be picked: pass `--entry`.
    #[error("{0}")]
    Entry(String),
    /// The compiler's version or platform could not be told from the
    /// archive; the message says what to pass.
    #[error("{0}")]
    Identity(String),
    #[error(transparent)]
    Family(#[from] FamilyError),
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: changed since it was packaged (digest {found}, bundle says {expected}); package the toolchain again", path.display())]
    Changed {
        path: PathBuf,
        expected: crate::cas::Digest,
        found: crate::cas::Digest,
    },
}

/// How `raw` is laid out: a Rust dist tarball when its single top
/// directory holds a `components` file, else rooted at `/`.
pub fn detect_layout(raw: &Raw) -> ArchiveKind {
    match raw.single_top() {
        Some(top) if raw.file(&format!("{}/components", top.display())).is_some() => {
            ArchiveKind::RustDist { top }
        }
        _ => ArchiveKind::Rooted,
    }
}

/// Reads `paths` (in order) into one view. Dist tarballs merge into one
/// sysroot under [`DIST_ROOT`]; rooted archives land at `/`.
pub fn open(paths: &[PathBuf]) -> Result<ArchiveFs, ArchiveError> {
    let raws = paths
        .iter()
        .map(|p| read::read_archive(p))
        .collect::<Result<Vec<_>, _>>()?;
    from_raws(raws)
}

/// [`open`] over archives already read.
pub fn from_raws(raws: Vec<Raw>) -> Result<ArchiveFs, ArchiveError> {
    let mut fs = ArchiveFs::default();
    let mut dist = Vec::new();
    for raw in raws {
        fs.sources.push(raw.source.clone());
        match detect_layout(&raw) {
            ArchiveKind::RustDist { top } => dist.push((raw, top)),
            ArchiveKind::Rooted => {
                fs.layout.rooted.push(raw.source.clone());
                let source = raw.source;
                for (rel, node) in raw.entries {
                    insert(&mut fs, &Path::new("/").join(rel), node, &source)?;
                }
            }
        }
    }
    if !dist.is_empty() {
        fs.layout.rust = Some(rustdist::merge(&mut fs, dist)?);
    }
    Ok(fs)
}

/// Inserts with errors that name the archive.
fn insert(fs: &mut ArchiveFs, path: &Path, node: Node, archive: &Path) -> Result<(), ArchiveError> {
    fs.insert(path, node).map_err(|e| match e {
        fs::InsertError::Conflict { path } => ArchiveError::Conflict {
            archive: archive.to_path_buf(),
            path,
        },
        fs::InsertError::NotUnderDir { path, parent } => ArchiveError::NotUnderDir {
            archive: archive.to_path_buf(),
            path,
            parent,
        },
    })
}

/// The compiler in `fs` as [`Contents`], ready for `bundle::package`.
///
/// With dist tarballs: rustc from the merged sysroot (`entry`, if given,
/// must name its `bin/rustc`). Otherwise the compiler at `entry` (a path
/// inside the archive, with or without the leading `/`), or the only
/// compiler found in a `bin/` directory; its identity comes from the
/// layout (rustc's sysroot, `usr/lib/gcc/<triple>/<ver>/`,
/// `lib/clang/<ver>/`).
pub fn import(
    fs: &ArchiveFs,
    entry: Option<&Path>,
    opts: &ProbeOptions,
) -> Result<Contents, ArchiveError> {
    match &fs.layout.rust {
        Some(dist) => rustdist::contents(fs, dist, entry, opts),
        None => sccache::contents(fs, entry, opts),
    }
}

#[cfg(test)]
mod tests;
