//! The set of paths a toolchain tree holds, as found on the source tree.
//!
//! A [`Listing`] maps absolute source paths to what sits there: a regular
//! file or a symlink. Adding a path records every symlink met on the way,
//! component by component (Debian's `/lib64 → usr/lib64`), so materializing
//! the listing under a new root reproduces every path a program opens.
//! Turning the listing into tree entries ([`Listing::entries`]) mirrors each
//! absolute path under the root and rewrites symlink targets as relative
//! ones that stay inside it. Hashing is the bundle's business.

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};

use super::{FileSource, Kind};

/// Symlinks followed on one path before it counts as a loop (as the kernel).
const MAX_HOPS: usize = 40;

/// What sits at a listed path.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Item {
    File {
        executable: bool,
        size: u64,
    },
    /// The target exactly as stored on the source.
    Symlink {
        target: PathBuf,
    },
    /// A directory that must exist even if empty.
    Dir,
}

#[derive(Debug, thiserror::Error)]
pub enum ListingError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: too many levels of symbolic links (a loop?)")]
    Loop { path: PathBuf },
    #[error("{path}: not a regular file, directory or symlink")]
    Special { path: PathBuf },
    #[error("{path}: not an absolute path")]
    Relative { path: PathBuf },
}

/// Absolute source paths and what sits at each.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Listing {
    pub items: BTreeMap<PathBuf, Item>,
    /// Directories this listing found to be real (no symlink) while
    /// resolving paths: a compile's hundreds of headers share a few
    /// ancestors, each looked at once. Never saved: it holds only for the
    /// moment the listing is built.
    #[serde(skip)]
    real_dirs: std::collections::HashSet<PathBuf>,
}

impl Listing {
    pub fn new() -> Listing {
        Listing::default()
    }

    /// Number of regular files.
    pub fn file_count(&self) -> usize {
        self.items
            .values()
            .filter(|i| matches!(i, Item::File { .. }))
            .count()
    }

    /// Total size of the regular files.
    pub fn total_size(&self) -> u64 {
        self.items
            .values()
            .map(|i| match i {
                Item::File { size, .. } => *size,
                _ => 0,
            })
            .sum()
    }

    /// Adds `path` and every symlink on the way to it, and every directory
    /// a `..` in it climbs out of; returns the real path it resolves to (no
    /// symlink in any component). A directory at
    /// the end is recorded but not walked (see [`Listing::add_tree`]).
    pub fn add_path(&mut self, fs: &dyn FileSource, path: &Path) -> Result<PathBuf, ListingError> {
        if !path.is_absolute() {
            return Err(ListingError::Relative {
                path: path.to_path_buf(),
            });
        }
        let mut hops = 0;
        let real = self.resolve(fs, path, &mut hops)?;
        let meta = fs
            .symlink_metadata(&real)
            .map_err(|source| ListingError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        match meta.kind {
            Kind::File => {
                self.items.insert(
                    real.clone(),
                    Item::File {
                        executable: meta.executable,
                        size: meta.size,
                    },
                );
            }
            Kind::Dir => {
                self.items.entry(real.clone()).or_insert(Item::Dir);
            }
            Kind::Symlink => unreachable!("resolve follows every symlink"),
            Kind::Other => return Err(ListingError::Special { path: real }),
        }
        Ok(real)
    }

    /// Adds the directory `dir` and everything beneath it. Symlinks inside
    /// are kept as symlinks; their targets are added too when they point
    /// outside `dir`, so no link in the tree dangles.
    pub fn add_tree(&mut self, fs: &dyn FileSource, dir: &Path) -> Result<(), ListingError> {
        let real = self.add_path(fs, dir)?;
        let mut stack = vec![real];
        let mut outside = Vec::new();
        while let Some(d) = stack.pop() {
            let names = fs.read_dir(&d).map_err(|source| ListingError::Io {
                path: d.clone(),
                source,
            })?;
            for name in names {
                let p = d.join(name);
                let meta = fs.symlink_metadata(&p).map_err(|source| ListingError::Io {
                    path: p.clone(),
                    source,
                })?;
                match meta.kind {
                    Kind::File => {
                        self.items.insert(
                            p,
                            Item::File {
                                executable: meta.executable,
                                size: meta.size,
                            },
                        );
                    }
                    Kind::Dir => {
                        self.items.insert(p.clone(), Item::Dir);
                        stack.push(p);
                    }
                    Kind::Symlink => {
                        let target = fs.read_link(&p).map_err(|source| ListingError::Io {
                            path: p.clone(),
                            source,
                        })?;
                        let abs = lexical_join(p.parent().unwrap_or(Path::new("/")), &target);
                        self.items.insert(p, Item::Symlink { target });
                        outside.push(abs);
                    }
                    // Sockets and fifos in a toolchain dir are never inputs.
                    Kind::Other => {}
                }
            }
        }
        for target in outside {
            if self.items.contains_key(&target) {
                continue;
            }
            // A dangling link inside a toolchain dir stays dangling, as it is
            // on the source; everything else comes along.
            match self.add_path(fs, &target) {
                Ok(real) => {
                    if matches!(self.items.get(&real), Some(Item::Dir)) {
                        self.add_tree(fs, &real)?;
                    }
                }
                Err(ListingError::Io { source, .. })
                    if source.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Walks `path` component by component, recording each symlink met, and
    /// returns the symlink-free path.
    fn resolve(
        &mut self,
        fs: &dyn FileSource,
        path: &Path,
        hops: &mut usize,
    ) -> Result<PathBuf, ListingError> {
        let mut done = PathBuf::from("/");
        let mut rest: Vec<PathBuf> = normal_components(path);
        rest.reverse();
        while let Some(c) = rest.pop() {
            if c.as_os_str() == ".." {
                // The kernel climbs out of a directory that must exist,
                // even when nothing in it is read (`nptl/bits/../../x86`).
                if done.parent().is_some() {
                    self.items.entry(done.clone()).or_insert(Item::Dir);
                }
                done.pop();
                continue;
            }
            let next = done.join(&c);
            if self.real_dirs.contains(&next) {
                done = next;
                continue;
            }
            let meta = fs
                .symlink_metadata(&next)
                .map_err(|source| ListingError::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
            if meta.kind != Kind::Symlink {
                if meta.kind == Kind::Dir {
                    self.real_dirs.insert(next.clone());
                }
                done = next;
                continue;
            }
            *hops += 1;
            if *hops > MAX_HOPS {
                return Err(ListingError::Loop {
                    path: path.to_path_buf(),
                });
            }
            let target = fs.read_link(&next).map_err(|source| ListingError::Io {
                path: next.clone(),
                source,
            })?;
            self.items.insert(
                next.clone(),
                Item::Symlink {
                    target: target.clone(),
                },
            );
            if target.is_absolute() {
                done = PathBuf::from("/");
            }
            let mut more = normal_components(&target);
            more.reverse();
            rest.extend(more);
        }
        Ok(done)
    }

    /// The listing as tree entries: each absolute path mirrored under the
    /// root; symlinks rewritten relative to their own directory, clamped at
    /// the root, so they resolve inside the tree whether or not a worker
    /// chroots into it. Paths that are not valid UTF-8 are skipped with
    /// their names returned, since a `Directory` cannot hold them.
    pub fn entries(
        &self,
        digests: &BTreeMap<PathBuf, crate::cas::Digest>,
    ) -> (Vec<crate::cas::tree::Entry>, Vec<PathBuf>) {
        use crate::cas::tree::Entry;
        let mut out = Vec::with_capacity(self.items.len());
        let mut skipped = Vec::new();
        for (path, item) in &self.items {
            let Some(rel) = tree_path(path) else {
                skipped.push(path.clone());
                continue;
            };
            if rel.is_empty() {
                continue;
            }
            match item {
                Item::File { executable, .. } => match digests.get(path) {
                    Some(d) => out.push(Entry::file(rel, *d, *executable)),
                    None => skipped.push(path.clone()),
                },
                Item::Dir => out.push(Entry::dir(rel)),
                Item::Symlink { target } => {
                    let parent = path.parent().unwrap_or(Path::new("/"));
                    match relative_target(parent, target).to_str() {
                        Some(t) => out.push(Entry::symlink(rel, t)),
                        None => skipped.push(path.clone()),
                    }
                }
            }
        }
        (out, skipped)
    }
}

/// `/usr/bin/gcc` → `usr/bin/gcc`; `None` if not UTF-8.
pub fn tree_path(path: &Path) -> Option<String> {
    let s = path.to_str()?;
    Some(s.trim_start_matches('/').to_string())
}

/// The components of `p` other than the root and `.`, keeping `..`.
fn normal_components(p: &Path) -> Vec<PathBuf> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(PathBuf::from(n)),
            Component::ParentDir => Some(PathBuf::from("..")),
            _ => None,
        })
        .collect()
}

/// `base` joined with `rel` and normalized lexically, `..` clamped at `/`.
pub fn lexical_join(base: &Path, rel: &Path) -> PathBuf {
    let mut out = if rel.is_absolute() {
        PathBuf::from("/")
    } else {
        base.to_path_buf()
    };
    for c in normal_components(rel) {
        if c.as_os_str() == ".." {
            out.pop();
        } else {
            out.push(c);
        }
    }
    out
}

/// The target of a link living in `dir`, as a relative path that reaches
/// the same place: absolute targets are re-rooted, `..` beyond the root
/// is dropped (it stays at `/` on the source too).
pub fn relative_target(dir: &Path, target: &Path) -> PathBuf {
    let abs = lexical_join(dir, target);
    let from: Vec<_> = normal_components(dir);
    let to: Vec<_> = normal_components(&abs);
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::new();
    for _ in common..from.len() {
        rel.push("..");
    }
    for c in &to[common..] {
        rel.push(c);
    }
    if rel.as_os_str().is_empty() {
        rel.push(".");
    }
    rel
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toolchain::HostFs;
    use std::os::unix::fs::symlink;

    #[test]
    fn relative_targets_stay_inside_the_root() {
        let t = |d: &str, x: &str| relative_target(Path::new(d), Path::new(x));
        assert_eq!(
            t("/usr/lib64", "/lib/x86_64-linux-gnu/ld.so"),
            PathBuf::from("../../lib/x86_64-linux-gnu/ld.so")
        );
        assert_eq!(t("/", "usr/lib64"), PathBuf::from("usr/lib64"));
        assert_eq!(t("/a/b", "libx.so.1.2"), PathBuf::from("libx.so.1.2"));
        // Climbing above the root stays at the root, as the kernel does.
        assert_eq!(t("/a", "../../../../etc/x"), PathBuf::from("../etc/x"));
        assert_eq!(t("/a/b", "/a/b"), PathBuf::from("."));
    }

    #[test]
    fn symlinked_components_and_chains_are_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/lib/x")).unwrap();
        std::fs::write(root.join("usr/lib/x/libz.so.1.2.13"), b"z").unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        symlink("libz.so.1.2.13", root.join("usr/lib/x/libz.so.1")).unwrap();
        let mut l = Listing::new();
        let real = l.add_path(&HostFs, &root.join("lib/x/libz.so.1")).unwrap();
        assert_eq!(real, root.join("usr/lib/x/libz.so.1.2.13"));
        assert_eq!(
            l.items.get(&root.join("lib")),
            Some(&Item::Symlink {
                target: "usr/lib".into()
            })
        );
        assert!(matches!(
            l.items.get(&root.join("usr/lib/x/libz.so.1")),
            Some(Item::Symlink { .. })
        ));
        assert!(matches!(
            l.items.get(&real),
            Some(Item::File { size: 1, .. })
        ));
    }

    /// Counts the metadata calls a listing makes.
    struct Counting(std::sync::atomic::AtomicUsize);

    impl FileSource for Counting {
        fn symlink_metadata(&self, path: &Path) -> std::io::Result<crate::toolchain::Meta> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            HostFs.symlink_metadata(path)
        }
        fn read_link(&self, path: &Path) -> std::io::Result<PathBuf> {
            HostFs.read_link(path)
        }
        fn read(&self, path: &Path) -> std::io::Result<crate::toolchain::FileBytes> {
            HostFs.read(path)
        }
        fn read_dir(&self, path: &Path) -> std::io::Result<Vec<std::ffi::OsString>> {
            HostFs.read_dir(path)
        }
    }

    #[test]
    fn shared_ancestors_are_looked_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let inc = dir.path().join("a/b/include");
        std::fs::create_dir_all(&inc).unwrap();
        for h in ["x.h", "y.h", "z.h"] {
            std::fs::write(inc.join(h), b"int x;").unwrap();
        }
        let fs = Counting(std::sync::atomic::AtomicUsize::new(0));
        let mut l = Listing::new();
        l.add_path(&fs, &inc.join("x.h")).unwrap();
        let first = fs.0.load(std::sync::atomic::Ordering::Relaxed);
        // Every component, then the file itself once more.
        assert_eq!(first, inc.join("x.h").components().count() - 1 + 1);
        l.add_path(&fs, &inc.join("y.h")).unwrap();
        l.add_path(&fs, &inc.join("z.h")).unwrap();
        let more = fs.0.load(std::sync::atomic::Ordering::Relaxed) - first;
        // The file, and its final stat: no ancestor again.
        assert_eq!(more, 2 * 2);
        assert!(matches!(
            l.items.get(&inc.join("z.h")),
            Some(Item::File { .. })
        ));
    }

    /// Regression: libc's `#[path = "../../x86/…"]` from a directory that
    /// holds nothing the compile reads.
    #[test]
    fn directories_a_climb_passes_through_are_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("sysdeps/nptl/bits")).unwrap();
        std::fs::create_dir_all(root.join("sysdeps/x86")).unwrap();
        std::fs::write(root.join("sysdeps/x86/m.rs"), b"m").unwrap();
        let mut l = Listing::new();
        let real = l
            .add_path(&HostFs, &root.join("sysdeps/nptl/bits/../../x86/m.rs"))
            .unwrap();
        assert_eq!(real, root.join("sysdeps/x86/m.rs"));
        for d in ["sysdeps/nptl/bits", "sysdeps/nptl"] {
            assert_eq!(l.items.get(&root.join(d)), Some(&Item::Dir), "{d}");
        }
        // Through a symlink, `..` leaves the directory the link leads to.
        symlink("sysdeps/nptl/bits", root.join("bits")).unwrap();
        let real = l
            .add_path(&HostFs, &root.join("bits/../../x86/m.rs"))
            .unwrap();
        assert_eq!(real, root.join("sysdeps/x86/m.rs"));
    }

    #[test]
    fn symlink_loops_are_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        symlink("b", dir.path().join("a")).unwrap();
        symlink("a", dir.path().join("b")).unwrap();
        let err = Listing::new()
            .add_path(&HostFs, &dir.path().join("a"))
            .unwrap_err();
        assert!(matches!(err, ListingError::Loop { .. }), "{err}");
        assert!(err.to_string().contains("/a"), "{err}");
    }

    #[test]
    fn trees_bring_link_targets_outside_them() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("t/sub")).unwrap();
        std::fs::create_dir_all(root.join("other")).unwrap();
        std::fs::write(root.join("t/sub/f"), b"ff").unwrap();
        std::fs::write(root.join("other/g"), b"g").unwrap();
        symlink("../other/g", root.join("t/g")).unwrap();
        symlink("missing", root.join("t/dangling")).unwrap();
        let mut l = Listing::new();
        l.add_tree(&HostFs, &root.join("t")).unwrap();
        assert!(l.items.contains_key(&root.join("t/sub/f")));
        assert!(l.items.contains_key(&root.join("other/g")));
        assert!(l.items.contains_key(&root.join("t/dangling")));
        assert_eq!(l.file_count(), 2);
        assert_eq!(l.total_size(), 3);
    }
}
