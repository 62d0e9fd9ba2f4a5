//! Path questions answered through a [`FileSource`]: following symlinks,
//! removing the `..` compilers print (`/usr/bin/../lib/gcc/…`) the way the
//! kernel would, and finding a program on a given PATH.

use std::io;
use std::path::{Component, Path, PathBuf};

use crate::toolchain::{FileSource, Kind, Meta};

/// Symlinks followed before giving up (the kernel's limit is 40).
const MAX_LINKS: usize = 40;

/// `path` with every symlink resolved, like `realpath`.
pub fn resolve(fs: &dyn FileSource, path: &Path) -> io::Result<PathBuf> {
    let mut links = 0;
    resolve_inner(fs, path, &mut links)
}

fn resolve_inner(fs: &dyn FileSource, path: &Path, links: &mut usize) -> io::Result<PathBuf> {
    let mut done = PathBuf::from("/");
    for comp in path.components() {
        match comp {
            Component::RootDir | Component::Prefix(_) | Component::CurDir => {}
            Component::ParentDir => {
                done.pop();
            }
            Component::Normal(name) => {
                let next = done.join(name);
                let meta = fs.symlink_metadata(&next)?;
                if meta.kind == Kind::Symlink {
                    *links += 1;
                    if *links > MAX_LINKS {
                        return Err(io::Error::other(format!(
                            "{}: too many levels of symbolic links",
                            next.display()
                        )));
                    }
                    let target = fs.read_link(&next)?;
                    let joined = done.join(target);
                    done = resolve_inner(fs, &joined, links)?;
                } else {
                    done = next;
                }
            }
        }
    }
    Ok(done)
}

/// The metadata of what `path` finally points to.
pub fn stat_followed(fs: &dyn FileSource, path: &Path) -> io::Result<Meta> {
    fs.symlink_metadata(&resolve(fs, path)?)
}

pub fn is_file(fs: &dyn FileSource, path: &Path) -> bool {
    stat_followed(fs, path).is_ok_and(|m| m.kind == Kind::File)
}

pub fn is_dir(fs: &dyn FileSource, path: &Path) -> bool {
    stat_followed(fs, path).is_ok_and(|m| m.kind == Kind::Dir)
}

/// `path` without `.` and `..`, keeping the symlinks the compiler named:
/// `a/b/..` becomes `a` only when `a/b` is not a symlink; when it is, the
/// part up to it is resolved first, as the kernel does. The result is the
/// path the compiler opens, so the bundle must hold it.
pub fn clean(fs: &dyn FileSource, path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for comp in path.components() {
        match comp {
            Component::RootDir | Component::Prefix(_) | Component::CurDir => {}
            Component::ParentDir => {
                if fs
                    .symlink_metadata(&out)
                    .is_ok_and(|m| m.kind == Kind::Symlink)
                    && let Ok(real) = resolve(fs, &out)
                {
                    out = real;
                }
                out.pop();
            }
            Component::Normal(name) => out.push(name),
        }
    }
    out
}

/// The first `dir/name` on `path` that is an executable file, as found (a
/// symlink stays a symlink: `/usr/bin/as`, not `x86_64-linux-gnu-as`).
pub fn find_on_path(fs: &dyn FileSource, path: &[PathBuf], name: &str) -> Option<PathBuf> {
    path.iter()
        .filter(|d| d.is_absolute())
        .map(|d| d.join(name))
        .find(|p| stat_followed(fs, p).is_ok_and(|m| m.kind == Kind::File && m.executable))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toolchain::HostFs;

    #[test]
    fn clean_drops_dotdot_through_real_dirs() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::create_dir_all(root.join("usr/lib/gcc")).unwrap();
        let p = root.join("usr/bin/../lib/gcc");
        assert_eq!(clean(&HostFs, &p), root.join("usr/lib/gcc"));
    }

    #[test]
    fn clean_resolves_a_symlink_before_its_dotdot() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("opt/llvm/bin")).unwrap();
        std::fs::create_dir_all(root.join("usr")).unwrap();
        std::os::unix::fs::symlink(root.join("opt/llvm/bin"), root.join("usr/bin")).unwrap();
        // usr/bin/.. is opt/llvm, not usr.
        let p = root.join("usr/bin/../lib");
        assert_eq!(clean(&HostFs, &p), root.join("opt/llvm/lib"));
    }

    #[test]
    fn resolve_follows_relative_links_and_stops_cycles() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().canonicalize().unwrap();
        std::fs::write(root.join("real"), b"x").unwrap();
        std::os::unix::fs::symlink("real", root.join("a")).unwrap();
        std::os::unix::fs::symlink("a", root.join("b")).unwrap();
        assert_eq!(
            resolve(&HostFs, &root.join("b")).unwrap(),
            root.join("real")
        );
        std::os::unix::fs::symlink("c2", root.join("c1")).unwrap();
        std::os::unix::fs::symlink("c1", root.join("c2")).unwrap();
        let err = resolve(&HostFs, &root.join("c1")).unwrap_err();
        assert!(err.to_string().contains("too many levels"), "{err}");
    }

    #[test]
    fn find_on_path_keeps_the_symlink_and_skips_non_executables() {
        use std::os::unix::fs::PermissionsExt as _;
        let d = tempfile::tempdir().unwrap();
        let root = d.path().canonicalize().unwrap();
        let (a, b) = (root.join("a"), root.join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("as"), b"data").unwrap(); // not executable
        std::fs::write(b.join("x86_64-linux-gnu-as"), b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            b.join("x86_64-linux-gnu-as"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::os::unix::fs::symlink("x86_64-linux-gnu-as", b.join("as")).unwrap();
        let found = find_on_path(&HostFs, &[a.clone(), b.clone()], "as");
        assert_eq!(found, Some(b.join("as")));
        assert_eq!(find_on_path(&HostFs, &[a], "as"), None);
    }
}
