//! Path resolution one component at a time through a [`FileSource`], the
//! way the kernel does it, recording every symlink met on the way (files
//! and directories alike) so the closure can recreate each path the loader
//! opens. `canonicalize` would lose the links and only works on disks.
//!
//! A chroot (the sysroot) bounds `..` and anchors absolute link targets.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::toolchain::{FileSource, Kind, Meta};

/// The kernel's limit on symlinks followed in one lookup (`ELOOP`).
pub(crate) const MAX_HOPS: usize = 40;

/// Where a path leads.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    /// The path with every symlink resolved.
    pub file: PathBuf,
    pub meta: Meta,
    /// Every symlink met, in order, with its target as stored.
    pub links: Vec<(PathBuf, PathBuf)>,
}

#[derive(Debug)]
pub(crate) enum WalkError {
    /// This component does not exist (or a file stands where a directory
    /// should).
    NotFound,
    Loop,
    Io(PathBuf, io::Error),
}

/// Resolves paths, remembering what it has already asked `fs`.
pub(crate) struct Walker<'a> {
    fs: &'a dyn FileSource,
    stats: HashMap<PathBuf, Result<Meta, io::ErrorKind>>,
    links: HashMap<PathBuf, PathBuf>,
}

impl<'a> Walker<'a> {
    pub(crate) fn new(fs: &'a dyn FileSource) -> Self {
        Walker {
            fs,
            stats: HashMap::new(),
            links: HashMap::new(),
        }
    }

    pub(crate) fn fs(&self) -> &'a dyn FileSource {
        self.fs
    }

    fn lstat(&mut self, path: &Path) -> Result<Meta, WalkError> {
        let r = match self.stats.get(path) {
            Some(r) => *r,
            None => {
                let r = self.fs.symlink_metadata(path).map_err(|e| e.kind());
                self.stats.insert(path.to_path_buf(), r);
                r
            }
        };
        r.map_err(|kind| match kind {
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => WalkError::NotFound,
            kind => WalkError::Io(path.to_path_buf(), kind.into()),
        })
    }

    fn read_link(&mut self, path: &Path) -> Result<PathBuf, WalkError> {
        if let Some(t) = self.links.get(path) {
            return Ok(t.clone());
        }
        let t = self
            .fs
            .read_link(path)
            .map_err(|e| WalkError::Io(path.to_path_buf(), e))?;
        self.links.insert(path.to_path_buf(), t.clone());
        Ok(t)
    }

    /// Whether `path` leads to a regular file (quietly: no error detail).
    pub(crate) fn is_file(&mut self, path: &Path, chroot: &Path) -> bool {
        self.resolve(path, chroot)
            .is_ok_and(|r| r.meta.kind == Kind::File)
    }

    /// Follows `path` (absolute) to what it names. Relative link targets
    /// resolve against the link's directory; absolute ones, and `..` at the
    /// top, stay inside `chroot`.
    pub(crate) fn resolve(&mut self, path: &Path, chroot: &Path) -> Result<Resolved, WalkError> {
        let mut pending: Vec<OsString> = Vec::new();
        push_components(&mut pending, path);
        let mut cur = PathBuf::from("/");
        let mut links = Vec::new();
        let mut meta = self.lstat(&cur)?;
        while let Some(name) = pending.pop() {
            if name == ".." {
                if cur != chroot && cur.parent().is_some() {
                    cur.pop();
                    meta = self.lstat(&cur)?;
                }
                continue;
            }
            if meta.kind != Kind::Dir {
                return Err(WalkError::NotFound);
            }
            let next = cur.join(&name);
            let m = self.lstat(&next)?;
            if m.kind == Kind::Symlink {
                if links.len() >= MAX_HOPS {
                    return Err(WalkError::Loop);
                }
                let target = self.read_link(&next)?;
                links.push((next, target.clone()));
                if target.is_absolute() {
                    cur = chroot.to_path_buf();
                    meta = self.lstat(&cur)?;
                }
                push_components(&mut pending, &target);
            } else {
                cur = next;
                meta = m;
            }
        }
        Ok(Resolved {
            file: cur,
            meta,
            links,
        })
    }
}

/// Pushes the normal and `..` components of `path` so they pop in order.
fn push_components(stack: &mut Vec<OsString>, path: &Path) {
    let start = stack.len();
    for c in path.components() {
        match c {
            Component::Normal(n) => stack.push(n.to_os_string()),
            Component::ParentDir => stack.push("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    stack[start..].reverse();
}

/// The chroot that applies to `path`: the sysroot when the path lies
/// inside it, else the real root.
pub(crate) fn chroot_for<'p>(path: &Path, sysroot: &'p Path) -> &'p Path {
    if path.starts_with(sysroot) {
        sysroot
    } else {
        Path::new("/")
    }
}

/// `path` (absolute, as a binary inside the sysroot names it) seen from
/// outside: `/lib/x` under sysroot `/srv/root` is `/srv/root/lib/x`.
pub(crate) fn in_root(sysroot: &Path, path: &Path) -> PathBuf {
    match path.strip_prefix("/") {
        Ok(rel) => sysroot.join(rel),
        Err(_) => sysroot.join(path),
    }
}
