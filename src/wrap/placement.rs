//! Where a compile's files sit in the input root (pure).
//!
//! Every file is placed at its own absolute path and the command line
//! stays as the user wrote it, with one exception that lets two checkouts
//! of a project share cache hits (ccache's `base_dir`, done so that
//! outputs stay the bytes a local compile writes): when a compile's output
//! does not depend on where the project lives, the project root moves to
//! [`MAPPED_ROOT`], and the action digest is then the same from every
//! checkout.
//!
//! Whether the output depends on the location is first predicted from the
//! command line ([`PathMap::choose`]): the working directory must lie in
//! the project; no relative path may climb out of it; and a compile that
//! records its working directory or the paths it reads (debug info, rustc's
//! metadata) must have them rewritten by its own prefix maps
//! (`-ffile-prefix-map`, `-fdebug-prefix-map`, `--remap-path-prefix`) from
//! inside the project. What the command line cannot tell — `__FILE__` of a
//! source named by an absolute path, a path baked in by other means — is
//! checked afterwards: a moved compile whose outputs contain
//! [`MAPPED_ROOT`] saw its location, and runs again unmoved (the wrapper's
//! pipeline does that, and remembers it).
//!
//! Finding the project root reads the filesystem through a callback.

use std::path::{Component, Path, PathBuf};

/// Where a location-independent compile's project root sits remotely.
pub const MAPPED_ROOT: &str = "/recast/project";

/// Version-control markers that make a directory a project root.
const VCS_MARKERS: [&str; 5] = [".git", ".hg", ".svn", ".jj", ".pijul"];

/// The nearest directory at or above `cwd` holding a VCS marker, as
/// `exists` (a stat) says.
pub fn find_project_root(cwd: &Path, exists: &dyn Fn(&Path) -> bool) -> Option<PathBuf> {
    cwd.ancestors()
        .find(|dir| VCS_MARKERS.iter().any(|m| exists(&dir.join(m))))
        .map(Path::to_path_buf)
}

/// `path` with `.` and `..` resolved lexically (as the compiler joins
/// paths, without following symlinks); `path` must be absolute.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::RootDir | Component::Prefix(_) | Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
        }
    }
    out
}

/// `p` made absolute against `cwd`, normalized.
pub fn absolute(cwd: &Path, p: &str) -> PathBuf {
    normalize(&cwd.join(p))
}

/// `p` made absolute against `cwd` as the kernel reads it: `..` is kept,
/// since it climbs out of the directory actually reached, which differs
/// from the lexical parent when a symlink leads there (`.` is dropped).
pub fn opened(cwd: &Path, p: &str) -> PathBuf {
    cwd.join(p)
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

/// `to` relative to the directory `from` (both absolute, normalized):
/// `../../target/x` when it lies outside.
pub fn relative_from(from: &Path, to: &Path) -> String {
    let f: Vec<_> = from.components().collect();
    let t: Vec<_> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".to_string(); f.len() - common];
    parts.extend(
        t[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

/// How local absolute paths become paths in the input root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathMap {
    /// The project root moved to [`MAPPED_ROOT`]; `None`: the identity.
    root: Option<PathBuf>,
}

/// What a compile exposes of its location, for [`PathMap::choose`].
#[derive(Clone, Debug, Default)]
pub struct Exposure {
    /// The output records the working directory (debug info, rustc's
    /// metadata).
    pub records_cwd: bool,
    /// The output records the paths the compile reads (debug info).
    pub records_paths: bool,
    /// Path arguments and scanned files, as the compiler spells them.
    pub paths: Vec<String>,
    /// The old sides of the prefix maps that rewrite what is recorded, as
    /// given.
    pub maps: Vec<String>,
}

impl PathMap {
    /// The identity: every file at its own path.
    pub fn identity() -> PathMap {
        PathMap { root: None }
    }

    /// The mapping for a compile in `cwd`: the project root moved when the
    /// compile's output cannot depend on it (see the module doc), else the
    /// identity.
    pub fn choose(project_root: Option<&Path>, cwd: &Path, exposure: &Exposure) -> PathMap {
        let Some(root) = project_root else {
            return PathMap::identity();
        };
        let root = normalize(root);
        let cwd = normalize(cwd);
        if root == Path::new("/") || root == Path::new(MAPPED_ROOT) || !cwd.starts_with(&root) {
            return PathMap::identity();
        }
        // A prefix map moves with the project only when its old side lies
        // inside it; then it rewrites remotely what it rewrites here.
        let maps: Vec<PathBuf> = exposure
            .maps
            .iter()
            .map(|m| absolute(&cwd, m))
            .filter(|m| m.starts_with(&root))
            .collect();
        let covered = |p: &Path| maps.iter().any(|m| p.starts_with(m));
        if exposure.records_cwd && !covered(&cwd) {
            return PathMap::identity();
        }
        let independent = exposure.paths.iter().all(|p| {
            if Path::new(p).is_absolute() {
                let p = normalize(Path::new(p));
                !p.starts_with(&root) || !exposure.records_paths || covered(&p)
            } else {
                absolute(&cwd, p).starts_with(&root)
            }
        });
        PathMap {
            root: independent.then_some(root),
        }
    }

    /// The project root moved whatever the compile can see (rustc with
    /// `RECAST_TRIM_PATHS`, which remaps what it records itself).
    pub fn moved(project_root: &Path) -> PathMap {
        let root = normalize(project_root);
        PathMap {
            root: (root != Path::new("/") && root != Path::new(MAPPED_ROOT)).then_some(root),
        }
    }

    /// Whether the project root moves (the action does not depend on where
    /// the project lives).
    pub fn is_mapped(&self) -> bool {
        self.root.is_some()
    }

    /// The local project root that moves, if any.
    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// The remote absolute path of the local absolute path `local`.
    pub fn remote(&self, local: &Path) -> PathBuf {
        let local = normalize(local);
        match &self.root {
            Some(root) => match local.strip_prefix(root) {
                Ok(rest) if rest.as_os_str().is_empty() => PathBuf::from(MAPPED_ROOT),
                Ok(rest) => Path::new(MAPPED_ROOT).join(rest),
                Err(_) => local,
            },
            None => local,
        }
    }

    /// The input-root path (no leading `/`) of the local absolute path.
    pub fn tree_path(&self, local: &Path) -> String {
        let remote = self.remote(local);
        remote.to_string_lossy().trim_start_matches('/').to_string()
    }

    /// An argument's path as the remote compiler must see it: relative
    /// paths stay (the working directory moves with them), absolute ones
    /// move with the project root.
    pub fn arg(&self, p: &str) -> String {
        if Path::new(p).is_absolute() {
            let mapped = self.remote(Path::new(p));
            if mapped == normalize(Path::new(p)) {
                // Untouched: keep the user's spelling (`//`, `/./`).
                p.to_string()
            } else {
                mapped.to_string_lossy().into_owned()
            }
        } else {
            p.to_string()
        }
    }

    /// An output's remote path: as [`PathMap::remote`], and a copy of the
    /// project root's path inside it moves too. CMake names the object of
    /// a source outside its source directory after the source's absolute
    /// path (`CMakeFiles/t.dir/home/u/proj/lib/a.c.o`); a compiler that
    /// recorded that name would show the moved root, which the check of
    /// moved outputs catches.
    pub fn output(&self, local: &Path) -> PathBuf {
        let remote = self.remote(local);
        let Some(rest) = remote
            .strip_prefix(MAPPED_ROOT)
            .ok()
            .map(|r| r.to_string_lossy().into_owned())
        else {
            return remote;
        };
        Path::new(MAPPED_ROOT).join(self.embedded(&rest))
    }

    /// An output as an argument (relative to the working directory, or
    /// absolute): as [`PathMap::arg`], with a copy of the root inside it
    /// moved as [`PathMap::output`] does.
    pub fn output_arg(&self, p: &str) -> String {
        if Path::new(p).is_absolute() {
            self.output(Path::new(p)).to_string_lossy().into_owned()
        } else {
            self.embedded(p)
        }
    }

    /// `rel` (a relative path) with every component-aligned copy of the
    /// moved root's path (without its leading `/`) replaced by the mapped
    /// root's. Roots of fewer than two components are not looked for: too
    /// many unrelated paths would hold them.
    fn embedded(&self, rel: &str) -> String {
        let Some(root) = &self.root else {
            return rel.to_string();
        };
        let needle = root.to_string_lossy().trim_start_matches('/').to_string();
        if needle.split('/').count() < 2 {
            return rel.to_string();
        }
        let to = MAPPED_ROOT.trim_start_matches('/');
        let mut out = String::with_capacity(rel.len());
        let mut rest = rel;
        while let Some(i) = rest.find(&needle) {
            let before_ok = i == 0 || rest.as_bytes()[i - 1] == b'/';
            let end = i + needle.len();
            let after_ok = end == rest.len() || rest.as_bytes()[end] == b'/';
            if before_ok && after_ok {
                out.push_str(&rest[..i]);
                out.push_str(to);
            } else {
                out.push_str(&rest[..end]);
            }
            rest = &rest[end..];
        }
        out.push_str(rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_project_root_is_the_nearest_vcs_directory() {
        let exists = |p: &Path| p == Path::new("/home/u/proj/.git") || p == Path::new("/home/.hg");
        assert_eq!(
            find_project_root(Path::new("/home/u/proj/build/x"), &exists),
            Some(PathBuf::from("/home/u/proj"))
        );
        assert_eq!(
            find_project_root(Path::new("/home/v"), &exists),
            Some(PathBuf::from("/home"))
        );
        assert_eq!(find_project_root(Path::new("/opt"), &exists), None);
    }

    #[test]
    fn normalize_is_lexical() {
        assert_eq!(
            normalize(Path::new("/a/./b/../c//d")),
            PathBuf::from("/a/c/d")
        );
        assert_eq!(normalize(Path::new("/../x")), PathBuf::from("/x"));
        assert_eq!(
            absolute(Path::new("/p/build"), "../src/a.c"),
            PathBuf::from("/p/src/a.c")
        );
    }

    fn exposure(records: bool, paths: &[&str], maps: &[&str]) -> Exposure {
        Exposure {
            records_cwd: records,
            records_paths: records,
            paths: paths.iter().map(|p| p.to_string()).collect(),
            maps: maps.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn relative_compiles_in_the_project_move_it() {
        let root = Path::new("/home/u/proj");
        let cwd = Path::new("/home/u/proj/build");
        let m = PathMap::choose(
            Some(root),
            cwd,
            &exposure(
                false,
                &["../src/a.c", "../include/x.h", "/usr/include/stdio.h"],
                &[],
            ),
        );
        assert!(m.is_mapped());
        assert_eq!(m.tree_path(cwd), "recast/project/build");
        assert_eq!(m.tree_path(root), "recast/project");
        assert_eq!(
            m.tree_path(Path::new("/usr/include/stdio.h")),
            "usr/include/stdio.h"
        );
        assert_eq!(m.arg("../src/a.c"), "../src/a.c");
        assert_eq!(m.arg("/usr//include"), "/usr//include");
        assert_eq!(
            m.remote(Path::new("/home/u/proj/src/a.c")),
            PathBuf::from("/recast/project/src/a.c")
        );
        // A second checkout lands on the same remote paths.
        let other = PathMap::choose(
            Some(Path::new("/tmp/copy")),
            Path::new("/tmp/copy/build"),
            &exposure(false, &["../src/a.c"], &[]),
        );
        assert_eq!(
            other.tree_path(Path::new("/tmp/copy/build")),
            m.tree_path(cwd)
        );
    }

    #[test]
    fn absolute_paths_into_the_project_move_it_unless_debug_info_records_them() {
        let root = Path::new("/home/u/proj");
        let cwd = Path::new("/home/u/proj/build");
        // CMake's shape: absolute sources and include dirs, no -g.
        let cmake = ["/home/u/proj/src/a.cc", "/home/u/proj/include"];
        assert!(PathMap::choose(Some(root), cwd, &exposure(false, &cmake, &[])).is_mapped());
        assert_eq!(
            PathMap::choose(Some(root), cwd, &exposure(false, &cmake, &[])).arg(cmake[0]),
            "/recast/project/src/a.cc"
        );
        // With -g they are recorded: moved only when a map rewrites them.
        assert!(!PathMap::choose(Some(root), cwd, &exposure(true, &cmake, &[])).is_mapped());
        assert!(
            PathMap::choose(Some(root), cwd, &exposure(true, &cmake, &["/home/u/proj"]))
                .is_mapped()
        );
        // -ffile-prefix-map=$PWD=. covers the working directory, not ../src.
        assert!(
            PathMap::choose(Some(root), cwd, &exposure(true, &["../src/a.c"], &["."])).is_mapped()
        );
        assert!(!PathMap::choose(Some(root), cwd, &exposure(true, &cmake, &["."])).is_mapped());
        // A map whose old side lies above the project does not move with it.
        assert!(
            !PathMap::choose(
                Some(root),
                cwd,
                &exposure(true, &["../src/a.c"], &["/home/u"])
            )
            .is_mapped()
        );
    }

    #[test]
    fn compiles_that_can_see_their_location_keep_their_paths() {
        let root = Path::new("/home/u/proj");
        let cwd = Path::new("/home/u/proj/build");
        for e in [
            exposure(true, &["../src/a.c"], &[]),
            exposure(false, &["../../other/x.h"], &[]),
        ] {
            let m = PathMap::choose(Some(root), cwd, &e);
            assert!(!m.is_mapped(), "{e:?}");
            assert_eq!(m.tree_path(cwd), "home/u/proj/build");
        }
        // Outside the project, or without one: the identity.
        let none = exposure(false, &[], &[]);
        assert!(!PathMap::choose(Some(root), Path::new("/tmp"), &none).is_mapped());
        assert!(!PathMap::choose(None, cwd, &none).is_mapped());
        assert!(!PathMap::choose(Some(Path::new("/")), cwd, &none).is_mapped());
    }

    #[test]
    fn outputs_named_after_the_root_move_with_it() {
        let m = PathMap::moved(Path::new("/tmp/zc/zstd"));
        let cwd = Path::new("/tmp/zc/zstd/build/lib");
        let o = "CMakeFiles/z.dir/tmp/zc/zstd/lib/common/debug.c.o";
        assert_eq!(
            m.output_arg(o),
            "CMakeFiles/z.dir/recast/project/lib/common/debug.c.o"
        );
        assert_eq!(
            m.output(&cwd.join(o)),
            PathBuf::from(
                "/recast/project/build/lib/CMakeFiles/z.dir/recast/project/lib/common/debug.c.o"
            )
        );
        // Only whole components, and only the root's path.
        assert_eq!(m.output_arg("x/tmp/zc/zstdx/a.o"), "x/tmp/zc/zstdx/a.o");
        assert_eq!(m.output_arg("a.o"), "a.o");
        assert_eq!(
            PathMap::moved(Path::new("/p")).output_arg("q/p/a.o"),
            "q/p/a.o"
        );
        assert_eq!(PathMap::identity().output_arg(o), o);
    }

    #[test]
    fn opened_paths_keep_their_climbs() {
        assert_eq!(
            opened(Path::new("/p/build"), "./sub/../x.h"),
            PathBuf::from("/p/build/sub/../x.h")
        );
        assert_eq!(opened(Path::new("/p"), "/usr/./x"), PathBuf::from("/usr/x"));
    }

    #[test]
    fn outputs_above_the_working_directory_climb_to_them() {
        let cwd = Path::new("/home/u/.cargo/registry/src/idx/serde-1.0.0");
        assert_eq!(
            relative_from(
                cwd,
                Path::new("/home/u/proj/target/debug/deps/libserde-x.rlib")
            ),
            "../../../../../proj/target/debug/deps/libserde-x.rlib"
        );
        assert_eq!(
            relative_from(Path::new("/p"), Path::new("/p/target/a.rlib")),
            "target/a.rlib"
        );
    }
}
