//! Which crate files a rustc compile loads.
//!
//! rustc opens the `--extern` files it is given and, through `-L
//! dependency=` directories, the metadata of every crate those depend on,
//! transitively. Shipping the whole `target/debug/deps` would make each
//! action's input root depend on whatever else happened to be built
//! already, so a rebuild after `cargo clean` (in another order) would
//! never hit. Instead, every rustc recast wraps leaves a record beside
//! each library it writes: the files it was given with `--extern`. The
//! closure of a compile's externs through those records is exactly what
//! it loads. A record that is missing, or whose file changed since (its
//! stat differs), means the graph is not known; the compile then ships
//! every crate file in its dependency directories, correct but with
//! fewer hits.

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::depcache::{self, Stamp};
use crate::cas::Digest;

#[derive(Serialize, Deserialize)]
struct Record {
    /// The crate file's stamp when it was recorded.
    stamp: Stamp,
    /// The files its compile took with `--extern` (absolute).
    deps: Vec<PathBuf>,
    /// Its own source files (its dep-info's, absolute): a compile that
    /// expands one of its macros may read them (rustc looks for an
    /// upstream crate's sources where its metadata says they are, and what
    /// it finds changes the metadata it writes).
    #[serde(default)]
    sources: Vec<PathBuf>,
}

fn record_path(cache_dir: &Path, file: &Path) -> PathBuf {
    let d = Digest::of_bytes(file.as_os_str().as_encoded_bytes());
    cache_dir
        .join("crates")
        .join(format!("{}.json", &d.hex()[..32]))
}

/// Records that `outputs` (a crate's rlib, rmeta, dylib) were built from
/// the crate files `deps` and the sources `sources`.
pub fn record(cache_dir: &Path, outputs: &[PathBuf], deps: &[PathBuf], sources: &[PathBuf]) {
    for out in outputs {
        let Some(stamp) = depcache::stamp(out) else {
            continue;
        };
        let rec = Record {
            stamp,
            deps: deps.to_vec(),
            sources: sources.to_vec(),
        };
        depcache::save(cache_dir, &record_path(cache_dir, out), &rec);
    }
}

/// Whether `name` looks like a crate file rustc can load.
fn is_crate_file(name: &str) -> bool {
    name.starts_with("lib")
        && (name.ends_with(".rlib") || name.ends_with(".rmeta") || name.ends_with(".so"))
}

/// What a compile loads of the crates it depends on.
#[derive(Debug, Default)]
pub struct Closure {
    /// Every crate file the externs lead to (themselves included), sorted.
    pub files: Vec<PathBuf>,
    /// Those crates' own sources that still exist where they were, sorted.
    pub sources: Vec<PathBuf>,
    /// Whether the graph was known throughout.
    pub known: bool,
}

/// Every crate file `externs` lead to, and those crates' sources. When the
/// graph is not known, every crate file in `dep_dirs` joins. A link
/// (`rlibs`) needs the rlib of every crate, where cargo's pipelining
/// recorded only its rmeta; other compiles take exactly what was
/// recorded, since an rlib may not be written yet.
pub fn closure(
    cache_dir: &Path,
    externs: &[PathBuf],
    dep_dirs: &[PathBuf],
    rlibs: bool,
) -> Closure {
    let mut seen: BTreeSet<PathBuf> = BTreeSet::new();
    let mut sources: BTreeSet<PathBuf> = BTreeSet::new();
    let mut queue: VecDeque<PathBuf> = externs.iter().cloned().collect();
    let mut known = true;
    while let Some(f) = queue.pop_front() {
        if !seen.insert(f.clone()) {
            continue;
        }
        let rec = std::fs::read(record_path(cache_dir, &f))
            .ok()
            .and_then(|b| serde_json::from_slice::<Record>(&b).ok())
            .filter(|r| depcache::stamp(&f).is_some_and(|s| s == r.stamp));
        match rec {
            Some(r) => {
                queue.extend(r.deps);
                sources.extend(r.sources.into_iter().filter(|s| s.is_file()));
            }
            None => {
                tracing::debug!(file = %f.display(), "no crate graph record");
                known = false;
            }
        }
        if rlibs && f.extension().is_some_and(|x| x == "rmeta") {
            let rlib = f.with_extension("rlib");
            if rlib.is_file() {
                queue.push_back(rlib);
            }
        }
    }
    if !known {
        for dir in dep_dirs {
            let Ok(rd) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in rd.filter_map(|e| e.ok()) {
                if is_crate_file(&e.file_name().to_string_lossy())
                    && e.file_type().is_ok_and(|t| t.is_file())
                {
                    seen.insert(e.path());
                }
            }
        }
    }
    Closure {
        files: seen.into_iter().collect(),
        sources: sources.into_iter().collect(),
        known,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closure_follows_records_and_falls_back_to_the_whole_directory() {
        let d = tempfile::tempdir().unwrap();
        let cache = d.path().join("cache");
        let deps = d.path().join("deps");
        std::fs::create_dir_all(&deps).unwrap();
        let f = |n: &str| {
            let p = deps.join(n);
            std::fs::write(&p, n).unwrap();
            p
        };
        let (a, b, c, other) = (
            f("liba.rmeta"),
            f("libb.rlib"),
            f("libc.rmeta"),
            f("libz.rlib"),
        );
        f("build-script-x");
        use std::slice::from_ref;
        // b's sources: one still there, one gone since.
        let src = d.path().join("b.rs");
        std::fs::write(&src, "macro_rules! m { () => {} }").unwrap();
        let gone = d.path().join("gone.rs");
        record(&cache, from_ref(&a), from_ref(&b), &[]);
        record(&cache, from_ref(&b), from_ref(&c), &[src.clone(), gone]);
        record(&cache, from_ref(&c), &[], &[]);
        let got = closure(&cache, from_ref(&a), from_ref(&deps), false);
        assert!(got.known);
        assert_eq!(got.files, vec![a.clone(), b.clone(), c.clone()]);
        assert_eq!(got.sources, vec![src]);
        // c changes: its record no longer holds, so the whole dir ships.
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(&c, "changed, longer").unwrap();
        let got = closure(&cache, from_ref(&a), from_ref(&deps), false);
        assert!(!got.known);
        assert_eq!(got.files, vec![a, b, c, other]);
    }
}
