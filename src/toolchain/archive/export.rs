//! A bundle as a deterministic tar.gz: what sccache-dist takes as a
//! `path_override` toolchain (the archive is the root of the build
//! chroot), and what [`super::open`] reads back as a rooted archive.
//!
//! Deterministic means the same bundle gives the same bytes: entries
//! sorted by path, every parent directory present, mtime 0, uid/gid 0,
//! empty owner names, modes 0755/0644 from the exec bit, symlinks
//! relative (as the tree has them), a gzip header without name or time.
//! Every file's bytes are checked against the bundle's digest while
//! written, so a file changed since packaging is an error, not a silently
//! different archive. The file appears atomically (temp file + rename).

use std::collections::BTreeMap;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use super::ArchiveError;
use crate::cas::Digest;
use crate::toolchain::FileSource;
use crate::toolchain::bundle::Bundle;
use crate::toolchain::listing::{self, Item, Listing};

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportStats {
    pub files: u64,
    pub symlinks: u64,
    pub dirs: u64,
    /// Bytes of the files, uncompressed.
    pub size: u64,
    /// Bytes of the tar.gz.
    pub compressed: u64,
}

/// What one archive entry is.
enum Out<'a> {
    Dir,
    File {
        source: &'a Path,
        digest: Digest,
        executable: bool,
    },
    Symlink {
        target: String,
    },
}

/// Writes `bundle` (its files read through `fs`) to `out` as a
/// deterministic tar.gz.
pub fn export(
    bundle: &Bundle,
    fs: &dyn FileSource,
    out: &Path,
) -> Result<ExportStats, ArchiveError> {
    export_listing(fs, &bundle.listing, &bundle.files, out)
}

/// [`export`] of any listing whose files' digests are in `files`
/// (files without a digest, like paths a tree cannot name, are left out,
/// as the tree leaves them out).
pub fn export_listing(
    fs: &dyn FileSource,
    listing: &Listing,
    files: &BTreeMap<PathBuf, Digest>,
    out: &Path,
) -> Result<ExportStats, ArchiveError> {
    let mut entries: BTreeMap<String, Out<'_>> = BTreeMap::new();
    for (path, item) in &listing.items {
        let Some(rel) = listing::tree_path(path) else {
            continue;
        };
        if rel.is_empty() {
            continue;
        }
        let entry = match item {
            Item::Dir => Out::Dir,
            Item::File { executable, .. } => match files.get(path) {
                Some(d) => Out::File {
                    source: path,
                    digest: *d,
                    executable: *executable,
                },
                None => continue,
            },
            Item::Symlink { target } => {
                let parent = path.parent().unwrap_or(Path::new("/"));
                match listing::relative_target(parent, target).to_str() {
                    Some(t) => Out::Symlink {
                        target: t.to_string(),
                    },
                    None => continue,
                }
            }
        };
        // Extracting needs every parent before its children.
        let mut dir = Path::new(&rel).parent();
        while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
            entries
                .entry(d.to_string_lossy().into_owned())
                .or_insert(Out::Dir);
            dir = d.parent();
        }
        entries.insert(rel, entry);
    }

    let dir = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.tmp.{}.{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let result = write(fs, &entries, &tmp).and_then(|stats| {
        std::fs::rename(&tmp, out).map_err(|source| ArchiveError::Write {
            path: out.to_path_buf(),
            source,
        })?;
        Ok(stats)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn write(
    fs: &dyn FileSource,
    entries: &BTreeMap<String, Out<'_>>,
    tmp: &Path,
) -> Result<ExportStats, ArchiveError> {
    let werr = |source: io::Error| ArchiveError::Write {
        path: tmp.to_path_buf(),
        source,
    };
    let file = std::fs::File::create(tmp).map_err(werr)?;
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(
            io::BufWriter::with_capacity(1 << 20, file),
            flate2::Compression::default(),
        );
    let mut tar = tar::Builder::new(gz);
    let mut stats = ExportStats::default();
    for (path, entry) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        match entry {
            Out::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                tar.append_data(&mut h, format!("{path}/"), io::empty())
                    .map_err(werr)?;
                stats.dirs += 1;
            }
            Out::Symlink { target } => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                tar.append_link(&mut h, path, target).map_err(werr)?;
                stats.symlinks += 1;
            }
            Out::File {
                source,
                digest,
                executable,
            } => {
                let bytes = fs.read(source).map_err(|e| ArchiveError::Write {
                    path: source.to_path_buf(),
                    source: e,
                })?;
                let found = Digest::of_bytes(&bytes);
                if found != *digest {
                    return Err(ArchiveError::Changed {
                        path: source.to_path_buf(),
                        expected: *digest,
                        found,
                    });
                }
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(if *executable { 0o755 } else { 0o644 });
                h.set_size(bytes.len() as u64);
                tar.append_data(&mut h, path, &bytes[..]).map_err(werr)?;
                stats.files += 1;
                stats.size += bytes.len() as u64;
            }
        }
    }
    let gz = tar.into_inner().map_err(werr)?;
    let mut buf = gz.finish().map_err(werr)?;
    buf.flush().map_err(werr)?;
    let file = buf.into_inner().map_err(|e| werr(e.into_error()))?;
    file.sync_all().map_err(werr)?;
    stats.compressed = file.metadata().map_err(werr)?.len();
    Ok(stats)
}
