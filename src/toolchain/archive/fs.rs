//! [`ArchiveFs`]: files read from archives, held in memory and presented
//! at absolute paths through [`FileSource`].
//!
//! Paths are normalized lexically when inserted; lookups follow symlinks
//! the way the kernel does (component by component, absolute targets from
//! the view's own `/`, at most 40 hops), so the inspector and the family
//! probes walk an archive exactly as they walk a disk. Which archive path
//! lands where is decided by the layouts (`rustdist`, `sccache`); reading
//! tar streams is `read`'s job.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use super::Layout;
use crate::cas::Digest;
use crate::toolchain::{FileBytes, FileSource, Kind, Meta};

/// Symlinks followed on one lookup before it counts as a loop.
const MAX_HOPS: usize = 40;

/// What sits at one path of the view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// Bytes are shared: hard links and merged components cost no copy.
    File {
        data: Arc<Vec<u8>>,
        mode: u32,
    },
    /// The target exactly as stored in the archive.
    Symlink {
        target: PathBuf,
    },
    Dir {
        children: BTreeSet<OsString>,
    },
}

impl Node {
    pub(crate) fn dir() -> Node {
        Node::Dir {
            children: BTreeSet::new(),
        }
    }

    /// Same content: what merging two archives tolerates at one path.
    fn same_as(&self, other: &Node) -> bool {
        match (self, other) {
            (Node::File { data: a, mode: m }, Node::File { data: b, mode: n }) => {
                (m & 0o111 != 0) == (n & 0o111 != 0) && (Arc::ptr_eq(a, b) || a == b)
            }
            (Node::Symlink { target: a }, Node::Symlink { target: b }) => a == b,
            (Node::Dir { .. }, Node::Dir { .. }) => true,
            _ => false,
        }
    }
}

/// Why a node could not be inserted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum InsertError {
    /// Another node with different content is already at `path`.
    Conflict { path: PathBuf },
    /// A parent of `path` is a file or a symlink.
    NotUnderDir { path: PathBuf, parent: PathBuf },
}

/// One or more archives held in memory, as one read-only file tree.
#[derive(Debug)]
pub struct ArchiveFs {
    nodes: BTreeMap<PathBuf, Node>,
    /// The archives read, in the order given.
    pub(crate) sources: Vec<PathBuf>,
    pub(crate) layout: Layout,
}

impl Default for ArchiveFs {
    fn default() -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert(PathBuf::from("/"), Node::dir());
        ArchiveFs {
            nodes,
            sources: Vec::new(),
            layout: Layout::default(),
        }
    }
}

/// `path` as an absolute path without `.`, `..` (clamped at `/`) or
/// repeated separators.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

impl ArchiveFs {
    /// The archives this view was read from.
    pub fn sources(&self) -> &[PathBuf] {
        &self.sources
    }

    /// How the archives were laid out, and where their contents sit.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Every path in the view, sorted.
    pub fn paths(&self) -> impl Iterator<Item = (&Path, &Node)> {
        self.nodes.iter().map(|(p, n)| (p.as_path(), n))
    }

    /// The node stored at `path` (normalized, no symlink followed).
    pub fn node(&self, path: &Path) -> Option<&Node> {
        self.nodes.get(&normalize(path))
    }

    /// Inserts `node` at `path`, creating missing parents as directories.
    /// The same content twice is fine; different content is a conflict.
    pub(crate) fn insert(&mut self, path: &Path, node: Node) -> Result<(), InsertError> {
        let path = normalize(path);
        let mut dir = PathBuf::from("/");
        let names: Vec<OsString> = path.iter().skip(1).map(|n| n.to_os_string()).collect();
        for (i, name) in names.iter().enumerate() {
            let Some(Node::Dir { children }) = self.nodes.get_mut(&dir) else {
                return Err(InsertError::NotUnderDir {
                    path: path.clone(),
                    parent: dir,
                });
            };
            children.insert(name.clone());
            dir.push(name);
            if i + 1 < names.len() {
                self.nodes.entry(dir.clone()).or_insert_with(Node::dir);
            }
        }
        match self.nodes.get(&path) {
            None => {
                self.nodes.insert(path, node);
                Ok(())
            }
            Some(old) if old.same_as(&node) => Ok(()),
            Some(_) => Err(InsertError::Conflict { path }),
        }
    }

    /// Follows `path` through symlinks (the last one too when `follow`)
    /// to the path of the node it names.
    fn lookup(&self, path: &Path, follow: bool) -> io::Result<(PathBuf, &Node)> {
        let mut hops = 0;
        let mut done = PathBuf::from("/");
        let mut rest: Vec<OsString> = Vec::new();
        push_reversed(&mut rest, path);
        while let Some(name) = rest.pop() {
            if name == ".." {
                done.pop();
                continue;
            }
            let last = rest.is_empty();
            let next = done.join(&name);
            match self.nodes.get(&next) {
                None => return Err(not_found(path)),
                Some(Node::Symlink { target }) if follow || !last => {
                    hops += 1;
                    if hops > MAX_HOPS {
                        return Err(io::Error::other(format!(
                            "{}: too many levels of symbolic links",
                            path.display()
                        )));
                    }
                    if target.is_absolute() {
                        done = PathBuf::from("/");
                    }
                    push_reversed(&mut rest, target);
                }
                Some(Node::File { .. }) if !last => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotADirectory,
                        format!("{}: {} is not a directory", path.display(), next.display()),
                    ));
                }
                Some(_) => done = next,
            }
        }
        let node = self.nodes.get(&done).ok_or_else(|| not_found(path))?;
        Ok((done, node))
    }
}

/// Pushes the components of `p` (`..` kept, `.` and `/` dropped) so that
/// popping yields them in order.
fn push_reversed(stack: &mut Vec<OsString>, p: &Path) {
    let names: Vec<OsString> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect();
    stack.extend(names.into_iter().rev());
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: not in the archive", path.display()),
    )
}

impl FileSource for ArchiveFs {
    fn symlink_metadata(&self, path: &Path) -> io::Result<Meta> {
        let (_, node) = self.lookup(path, false)?;
        let (kind, size, executable) = match node {
            Node::File { data, mode } => (Kind::File, data.len() as u64, mode & 0o111 != 0),
            Node::Symlink { target } => (Kind::Symlink, target.as_os_str().len() as u64, false),
            Node::Dir { .. } => (Kind::Dir, 0, true),
        };
        Ok(Meta {
            kind,
            size,
            executable,
            mtime_ns: 0,
            ctime_ns: 0,
            ino: 0,
        })
    }

    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        match self.lookup(path, false)? {
            (_, Node::Symlink { target }) => Ok(target.clone()),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: not a symlink", path.display()),
            )),
        }
    }

    fn read(&self, path: &Path) -> io::Result<FileBytes> {
        match self.lookup(path, true)? {
            // FileBytes owns its bytes, so this is a copy; `digest` below
            // avoids it for hashing, the common case.
            (_, Node::File { data, .. }) => Ok(FileBytes::Owned(data.as_ref().clone())),
            _ => Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{}: not a regular file", path.display()),
            )),
        }
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
        match self.lookup(path, true)? {
            (_, Node::Dir { children }) => Ok(children.iter().cloned().collect()),
            _ => Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{}: not a directory", path.display()),
            )),
        }
    }

    fn digest(&self, path: &Path) -> io::Result<Digest> {
        match self.lookup(path, true)? {
            (_, Node::File { data, .. }) => Ok(Digest::of_bytes(data)),
            _ => Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{}: not a regular file", path.display()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(bytes: &[u8], mode: u32) -> Node {
        Node::File {
            data: Arc::new(bytes.to_vec()),
            mode,
        }
    }

    fn link(t: &str) -> Node {
        Node::Symlink { target: t.into() }
    }

    fn sample() -> ArchiveFs {
        let mut fs = ArchiveFs::default();
        fs.insert(Path::new("/usr/lib/x/libz.so.1.2"), file(b"zz", 0o644))
            .unwrap();
        fs.insert(Path::new("/usr/lib/x/libz.so.1"), link("libz.so.1.2"))
            .unwrap();
        fs.insert(Path::new("/lib"), link("usr/lib")).unwrap();
        fs.insert(Path::new("/usr/bin/cc"), file(b"\x7fELF", 0o755))
            .unwrap();
        fs.insert(Path::new("/usr/bin/abs"), link("/usr/bin/cc"))
            .unwrap();
        fs.insert(Path::new("/loop/a"), link("b")).unwrap();
        fs.insert(Path::new("/loop/b"), link("a")).unwrap();
        fs
    }

    #[test]
    fn lookups_follow_symlinks_like_the_kernel() {
        let fs = sample();
        assert_eq!(&*fs.read(Path::new("/lib/x/libz.so.1")).unwrap(), b"zz");
        assert_eq!(&*fs.read(Path::new("/usr/bin/abs")).unwrap(), b"\x7fELF");
        assert_eq!(
            &*fs.read(Path::new("/usr/bin/../bin/./cc")).unwrap(),
            b"\x7fELF"
        );
        let m = fs.symlink_metadata(Path::new("/lib/x/libz.so.1")).unwrap();
        assert_eq!(m.kind, Kind::Symlink);
        let m = fs.symlink_metadata(Path::new("/usr/bin/cc")).unwrap();
        assert_eq!((m.kind, m.size, m.executable), (Kind::File, 4, true));
        assert_eq!(
            fs.read_link(Path::new("/lib")).unwrap(),
            PathBuf::from("usr/lib")
        );
        let mut names = fs.read_dir(Path::new("/lib/x")).unwrap();
        names.sort();
        assert_eq!(names, vec!["libz.so.1", "libz.so.1.2"]);
        assert_eq!(
            fs.digest(Path::new("/lib/x/libz.so.1")).unwrap(),
            Digest::of_bytes(b"zz")
        );
    }

    #[test]
    fn missing_paths_loops_and_files_as_dirs_are_errors() {
        let fs = sample();
        let e = fs.symlink_metadata(Path::new("/nope")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        let Err(e) = fs.read(Path::new("/loop/a")) else {
            panic!("a loop read as a file")
        };
        assert!(e.to_string().contains("too many levels"), "{e}");
        let Err(e) = fs.read(Path::new("/usr/bin/cc/x")) else {
            panic!("a file read as a directory")
        };
        assert_eq!(e.kind(), io::ErrorKind::NotADirectory);
        assert!(fs.read(Path::new("/usr")).is_err());
        assert!(fs.read_dir(Path::new("/usr/bin/cc")).is_err());
    }

    #[test]
    fn inserting_checks_conflicts_and_parents() {
        let mut fs = sample();
        // The same bytes again are fine (two components sharing a file).
        fs.insert(Path::new("/usr/bin/cc"), file(b"\x7fELF", 0o700))
            .unwrap();
        assert_eq!(
            fs.insert(Path::new("/usr/bin/cc"), file(b"other", 0o755)),
            Err(InsertError::Conflict {
                path: "/usr/bin/cc".into()
            })
        );
        assert!(matches!(
            fs.insert(Path::new("/usr/bin/cc/x"), file(b"", 0o644)),
            Err(InsertError::NotUnderDir { .. })
        ));
        // A file below a symlinked directory would be extracted through
        // the link: refused rather than guessed at.
        assert!(matches!(
            fs.insert(Path::new("/lib/y"), file(b"", 0o644)),
            Err(InsertError::NotUnderDir { .. })
        ));
    }
}
