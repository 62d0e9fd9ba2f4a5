//! Relative paths inside a scratch root: checking them, joining them, and
//! resolving them without ever leaving the root through a symlink.
//!
//! The action may have created any symlinks it likes (`out -> /etc`), so
//! whenever the worker itself creates directories or reads outputs, it walks
//! one component at a time with `lstat` instead of trusting the kernel to
//! follow links.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::RunError;

/// Symlinks followed at most while resolving one path (as Linux's ELOOP).
const MAX_HOPS: usize = 40;

/// Checks a path from a Command: relative, `/`-separated, no `.`, `..` or
/// empty components, no trailing slash, no NUL. `""` (the working
/// directory itself) is allowed only where `empty_ok`.
pub fn check_relative(field: &str, path: &str, empty_ok: bool) -> Result<(), RunError> {
    let bad = |why: &str| Err(RunError::InvalidArgument(format!("{field} {path:?} {why}")));
    if path.is_empty() {
        return if empty_ok { Ok(()) } else { bad("is empty") };
    }
    if path.starts_with('/') {
        return bad("is absolute; paths must be relative");
    }
    for c in path.split('/') {
        match c {
            ".." => return bad("contains '..'"),
            "." => return bad("contains a '.' component"),
            "" => return bad("contains an empty component or a trailing '/'"),
            _ if c.contains('\0') => return bad("contains NUL"),
            _ => {}
        }
    }
    Ok(())
}

/// An output path as the Command gives it, relative to `wd`: like
/// [`check_relative`], except that `..` may step out of the working
/// directory as long as the path stays inside the input root (a compile
/// in `src/dep` writing `../../target/lib.rlib`).
pub fn check_output(field: &str, path: &str, wd: &str, empty_ok: bool) -> Result<(), RunError> {
    if !path.split('/').any(|c| c == "..") {
        return check_relative(field, path, empty_ok);
    }
    let without: Vec<&str> = path.split('/').filter(|c| *c != "..").collect();
    check_relative(field, &without.join("/"), false)?;
    match join_within(wd, path) {
        Some(p) if !p.is_empty() => Ok(()),
        _ => Err(RunError::InvalidArgument(format!(
            "{field} {path:?} climbs out of the input root from {wd:?}"
        ))),
    }
}

/// `rel` (which may hold `..`) joined to the relative path `wd`, resolved
/// lexically; `None` when it climbs above the root.
pub fn join_within(wd: &str, rel: &str) -> Option<String> {
    let mut out: Vec<&str> = wd.split('/').filter(|c| !c.is_empty()).collect();
    for c in rel.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    Some(out.join("/"))
}

/// `a` joined with `b` as relative `/` paths, either possibly empty.
pub fn join_rel(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

fn components(rel: &str) -> impl Iterator<Item = &str> {
    rel.split('/').filter(|c| !c.is_empty() && *c != ".")
}

/// Creates every directory along `rel` under `root` that is missing. Stops
/// quietly at anything that is not a real directory (a file or a symlink,
/// which is never followed): the action then finds what it finds.
pub fn make_dirs(root: &Path, rel: &str) -> io::Result<()> {
    let mut cur = root.to_path_buf();
    for c in components(rel) {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::create_dir(&cur) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The real location of `rel` under `root`, following symlinks in all but
/// the last component as long as they stay inside `root`. `None` when a
/// component is missing or not a directory, a link is absolute or climbs
/// out of the root, or there are too many links. The last component is not
/// followed, so the caller can `lstat` it and see a symlink as a symlink.
pub fn resolve_beneath(root: &Path, rel: &str) -> Option<PathBuf> {
    let mut parts: Vec<String> = components(rel).map(str::to_string).collect();
    let Some(last) = parts.pop() else {
        return Some(root.to_path_buf());
    };
    // Components still to walk, next one at the end.
    let mut todo: Vec<String> = parts.into_iter().rev().collect();
    let mut done: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        if c.is_empty() || c == "." {
            continue;
        }
        if c == ".." {
            done.pop()?;
            continue;
        }
        let here: PathBuf = std::iter::once(root.to_path_buf())
            .chain(done.iter().map(PathBuf::from))
            .chain(std::iter::once(PathBuf::from(&c)))
            .collect();
        let meta = fs::symlink_metadata(&here).ok()?;
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > MAX_HOPS {
                return None;
            }
            let target = fs::read_link(&here).ok()?;
            let target = target.to_str()?;
            if target.starts_with('/') {
                return None;
            }
            todo.extend(target.split('/').rev().map(str::to_string));
            continue;
        }
        if !meta.is_dir() {
            return None;
        }
        done.push(c);
    }
    let mut out = root.to_path_buf();
    out.extend(done);
    out.push(last);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn check_relative_refuses_escapes_and_odd_forms() {
        for ok in ["a", "a/b.o", "dir/sub/x"] {
            assert!(check_relative("f", ok, false).is_ok(), "{ok}");
        }
        assert!(check_relative("f", "", true).is_ok());
        for bad in [
            "", "/abs", "../x", "a/../b", "a/./b", ".", "a//b", "a/", "a\0b",
        ] {
            assert!(
                matches!(
                    check_relative("f", bad, false),
                    Err(RunError::InvalidArgument(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn outputs_may_climb_out_of_the_working_directory_but_not_the_root() {
        assert!(check_output("output_paths", "../../t/lib.rlib", "home/src/dep", false).is_ok());
        assert_eq!(
            join_within("home/src/dep", "../../t/lib.rlib").as_deref(),
            Some("home/t/lib.rlib")
        );
        for bad in [
            "../../../../x",
            "../x/../../../..",
            "../../..",
            "/abs",
            "a//b",
            "./a",
        ] {
            assert!(
                check_output("output_paths", bad, "a/b", false).is_err(),
                "{bad}"
            );
        }
        assert!(
            check_output("output_paths", "../..", "a/b", false).is_err(),
            "the root itself"
        );
    }

    #[test]
    fn join_rel_handles_empty_sides() {
        assert_eq!(join_rel("", "a"), "a");
        assert_eq!(join_rel("w", ""), "w");
        assert_eq!(join_rel("w", "a/b"), "w/a/b");
    }

    #[test]
    fn resolve_follows_inner_links_only_inside_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("real/sub")).unwrap();
        symlink("real", root.join("in")).unwrap();
        symlink("../..", root.join("real/up")).unwrap();
        symlink(dir.path(), root.join("abs")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        fs::write(root.join("file"), b"").unwrap();

        assert_eq!(
            resolve_beneath(&root, "in/sub/x"),
            Some(root.join("real/sub/x"))
        );
        // The last component is not followed.
        assert_eq!(resolve_beneath(&root, "in"), Some(root.join("in")));
        assert_eq!(resolve_beneath(&root, ""), Some(root.clone()));
        assert_eq!(resolve_beneath(&root, "real/up/x"), None, "climbs out");
        assert_eq!(resolve_beneath(&root, "abs/x"), None, "absolute");
        assert_eq!(resolve_beneath(&root, "loop/x"), None, "loop");
        assert_eq!(resolve_beneath(&root, "file/x"), None, "not a directory");
        assert_eq!(resolve_beneath(&root, "missing/x"), None);
    }

    #[test]
    fn make_dirs_never_goes_through_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&outside).unwrap();
        symlink(&outside, root.join("link")).unwrap();
        make_dirs(&root, "a/b/c").unwrap();
        assert!(root.join("a/b/c").is_dir());
        make_dirs(&root, "link/x").unwrap();
        assert!(!outside.join("x").exists());
    }
}
