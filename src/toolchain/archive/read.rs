//! Reading one archive file into memory: tar, gzip- or zstd-compressed
//! tar (sniffed from the first bytes, not the name), entries with their
//! paths checked and hard links resolved to their target's bytes.
//!
//! Nothing is extracted to disk. Where the entries end up in the view is
//! the layouts' business; this module only returns relative paths.

use std::collections::BTreeMap;
use std::io::{self, BufRead as _, BufReader, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use super::ArchiveError;
use super::fs::Node;

/// One archive's entries by relative path (no leading `/`, no `..`).
#[derive(Debug)]
pub struct Raw {
    pub source: PathBuf,
    pub entries: BTreeMap<PathBuf, Node>,
}

impl Raw {
    /// The bytes of the regular file at `rel`, if there is one.
    pub fn file(&self, rel: &str) -> Option<&[u8]> {
        match self.entries.get(Path::new(rel)) {
            Some(Node::File { data, .. }) => Some(data),
            _ => None,
        }
    }

    /// The single top-level directory every entry lies under, if any.
    pub fn single_top(&self) -> Option<PathBuf> {
        let mut tops = self
            .entries
            .keys()
            .filter_map(|p| p.iter().next().map(PathBuf::from));
        let first = tops.next()?;
        tops.all(|t| t == first).then_some(first)
    }
}

/// Reads the archive at `path` whole.
pub fn read_archive(path: &Path) -> Result<Raw, ArchiveError> {
    let file = std::fs::File::open(path).map_err(|source| ArchiveError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    read_from(path, file)
}

/// [`read_archive`] over any reader; `path` names it in errors.
pub fn read_from(path: &Path, reader: impl Read) -> Result<Raw, ArchiveError> {
    let mut archive = tar::Archive::new(decompressed(path, reader)?);
    let mut entries = BTreeMap::new();
    let mut hard_links: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut count = 0usize;
    for entry in archive.entries().map_err(corrupt(path))? {
        let entry = entry.map_err(corrupt(path))?;
        if matches!(
            entry.header().entry_type(),
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            continue;
        }
        count += 1;
        match read_entry(path, entry)? {
            Entry::HardLink(rel, target) => hard_links.push((rel, target)),
            // A later entry replaces an earlier one, as tar extraction does.
            Entry::Node(rel, node) if !rel.as_os_str().is_empty() => {
                entries.insert(rel, node);
            }
            Entry::Node(..) | Entry::Skipped => {}
        }
    }
    // Drain what is left so a truncated stream after the end-of-archive
    // marker (or a bad gzip trailer) is still caught.
    drop(archive);
    if count == 0 {
        return Err(ArchiveError::Corrupt {
            path: path.to_path_buf(),
            reason: "it holds no entries (empty, or not a tar archive)".into(),
        });
    }
    resolve_hard_links(path, &mut entries, hard_links)?;
    Ok(Raw {
        source: path.to_path_buf(),
        entries,
    })
}

/// The error for an archive that cannot be read as one.
fn corrupt(path: &Path) -> impl Fn(io::Error) -> ArchiveError + '_ {
    move |e| ArchiveError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// The tar stream inside `reader`: gzip and zstd are sniffed from the
/// first bytes and undone; xz and bzip2 are refused.
fn decompressed<'r>(
    path: &Path,
    reader: impl Read + 'r,
) -> Result<Box<dyn Read + 'r>, ArchiveError> {
    let mut buf = BufReader::with_capacity(1 << 20, reader);
    let head = buf.fill_buf().map_err(corrupt(path))?.to_vec();
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        // Multi-member: `cat a.gz b.gz` and pigz output are valid gzip.
        Box::new(flate2::read::MultiGzDecoder::new(buf))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(buf).map_err(corrupt(path))?)
    } else if head.starts_with(b"\xfd7zXZ") || head.starts_with(b"BZh") {
        return Err(ArchiveError::Corrupt {
            path: path.to_path_buf(),
            reason: "xz and bzip2 compression are not supported; recompress it as .tar.gz or pass the plain .tar".into(),
        });
    } else {
        Box::new(buf)
    })
}

/// What one tar entry adds to the view.
enum Entry {
    Node(PathBuf, Node),
    /// A hard link and its target, resolved once every entry is read.
    HardLink(PathBuf, PathBuf),
    /// Devices and fifos are never part of a toolchain.
    Skipped,
}

/// One entry, its name checked to stay inside the archive, its bytes read.
fn read_entry(path: &Path, mut entry: tar::Entry<'_, impl Read>) -> Result<Entry, ArchiveError> {
    let name = entry.path().map_err(corrupt(path))?.into_owned();
    let Some(rel) = checked_relative(&name) else {
        return Err(ArchiveError::Unsafe {
            archive: path.to_path_buf(),
            entry: name,
        });
    };
    let node = match entry.header().entry_type() {
        tar::EntryType::Directory => Node::dir(),
        tar::EntryType::Symlink => Node::Symlink {
            target: link_target(path, &entry, "symlink", &name)?,
        },
        tar::EntryType::Link => {
            let target = link_target(path, &entry, "hard link", &name)?;
            let Some(target) = checked_relative(&target) else {
                return Err(ArchiveError::Unsafe {
                    archive: path.to_path_buf(),
                    entry: target,
                });
            };
            return Ok(Entry::HardLink(rel, target));
        }
        k if k.is_file() || k == tar::EntryType::GNUSparse => {
            let mode = entry.header().mode().map_err(corrupt(path))?;
            let mut data = Vec::with_capacity(entry.size() as usize);
            entry.read_to_end(&mut data).map_err(corrupt(path))?;
            Node::File {
                data: Arc::new(data),
                mode,
            }
        }
        _ => return Ok(Entry::Skipped),
    };
    Ok(Entry::Node(rel, node))
}

/// The target of a symlink or hard link entry (`what`) named `name`.
fn link_target(
    path: &Path,
    entry: &tar::Entry<'_, impl Read>,
    what: &str,
    name: &Path,
) -> Result<PathBuf, ArchiveError> {
    let target = entry.link_name().map_err(corrupt(path))?.ok_or_else(|| {
        corrupt(path)(io::Error::other(format!(
            "{what} {} has no target",
            name.display()
        )))
    })?;
    Ok(target.into_owned())
}

/// Gives each hard link its target's file; a link to anything else (or to
/// nothing) makes the archive corrupt.
fn resolve_hard_links(
    path: &Path,
    entries: &mut BTreeMap<PathBuf, Node>,
    hard_links: Vec<(PathBuf, PathBuf)>,
) -> Result<(), ArchiveError> {
    for (link, target) in hard_links {
        match entries.get(&target) {
            Some(node @ Node::File { .. }) => {
                let node = node.clone();
                entries.insert(link, node);
            }
            _ => {
                return Err(ArchiveError::Corrupt {
                    path: path.to_path_buf(),
                    reason: format!(
                        "hard link {} points at {}, which is not a file in the archive",
                        link.display(),
                        target.display()
                    ),
                });
            }
        }
    }
    Ok(())
}

/// `p` without `./`; None when absolute or holding `..` (it would land
/// outside wherever the archive is placed).
fn checked_relative(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) | Component::ParentDir => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    /// A tar with one header per `(path, type, data, link)`, written
    /// through the tar crate's raw header API so unsafe names get in.
    fn tar_of(items: &[(&str, tar::EntryType, &[u8], &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data, link) in items {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o755);
            let name = path.as_bytes();
            h.as_old_mut().name[..name.len()].copy_from_slice(name);
            if !link.is_empty() {
                h.set_link_name(link).unwrap();
            }
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn plain_and_gzipped_tars_read_alike_with_hard_links_resolved() {
        let t = tar_of(&[
            ("./usr/bin/gcc", tar::EntryType::Regular, b"gcc!", ""),
            ("usr/bin/cc", tar::EntryType::Link, b"", "usr/bin/gcc"),
            ("lib64", tar::EntryType::Symlink, b"", "usr/lib64"),
        ]);
        for bytes in [t.clone(), gz(&t)] {
            let raw = read_from(Path::new("t.tar"), &bytes[..]).unwrap();
            assert_eq!(raw.file("usr/bin/gcc"), Some(&b"gcc!"[..]));
            assert_eq!(raw.file("usr/bin/cc"), Some(&b"gcc!"[..]));
            assert_eq!(
                raw.entries.get(Path::new("lib64")),
                Some(&Node::Symlink {
                    target: "usr/lib64".into()
                })
            );
            assert_eq!(raw.single_top(), None);
        }
    }

    #[test]
    fn escaping_entries_are_refused_by_name() {
        for bad in ["../etc/passwd", "/etc/passwd", "a/../../b"] {
            let t = tar_of(&[(bad, tar::EntryType::Regular, b"x", "")]);
            let err = read_from(Path::new("evil.tar"), &t[..]).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, ArchiveError::Unsafe { .. }), "{bad}: {msg}");
            assert!(msg.contains("evil.tar") && msg.contains(bad), "{msg}");
        }
        let t = tar_of(&[
            ("a", tar::EntryType::Regular, b"x", ""),
            ("b", tar::EntryType::Link, b"", "../a"),
        ]);
        assert!(matches!(
            read_from(Path::new("evil.tar"), &t[..]),
            Err(ArchiveError::Unsafe { .. })
        ));
    }

    #[test]
    fn garbage_truncation_and_emptiness_are_errors_naming_the_file() {
        let t = tar_of(&[("a", tar::EntryType::Regular, &[7u8; 5000], "")]);
        let z = gz(&t);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("text", b"this is not an archive at all".repeat(40)),
            ("empty", Vec::new()),
            ("truncated tar", t[..1500].to_vec()),
            ("truncated gzip", z[..z.len() / 2].to_vec()),
            (
                "dangling hard link",
                tar_of(&[("b", tar::EntryType::Link, b"", "a")]),
            ),
        ];
        for (what, bytes) in cases {
            let err = read_from(Path::new("/tmp/broken.tgz"), &bytes[..]).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, ArchiveError::Corrupt { .. }), "{what}: {msg}");
            assert!(msg.contains("/tmp/broken.tgz"), "{what}: {msg}");
        }
    }
}
