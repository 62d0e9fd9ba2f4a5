//! Resolving a compiler on this machine to its bundle, with a cache.
//!
//! The first time, the family probe runs the compiler, the inspector reads
//! its binaries and every file is hashed. The bundle is then remembered
//! under `<cache>/toolchains/bundles/` with the stat of each file it holds;
//! the next time, if the compiler and every file still have the same stat
//! (and every symlink the same target), the bundle is rebuilt from that
//! record without running or hashing anything. Any difference → package
//! again (the file index still spares rehashing unchanged files).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::bundle::{self, Bundle, BundleError};
use super::family::{self, FamilyError, ProbeOptions};
use super::index::{FileIndex, Stamp};
use super::inspect::ClosureOptions;
use super::listing::{Item, Listing};
use super::manifest::{Manifest, SCHEMA};
use super::{FileSource, HostFs};
use crate::cas::Digest;
use crate::cas::tree;
use crate::fsutil::write_private;

/// What to package.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The compiler as the user names it (absolute).
    pub compiler: PathBuf,
    pub targets: Vec<String>,
    pub sysroot: Option<PathBuf>,
    pub linking: bool,
    /// `PATH`, to find helpers such as `as` (given, never read inside).
    pub path: Vec<PathBuf>,
    /// `LD_LIBRARY_PATH` the compiler runs with.
    pub ld_library_path: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Family(#[from] FamilyError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
}

/// A bundle and whether it came from the cache.
pub struct Resolved {
    pub bundle: Bundle,
    pub warm: bool,
}

#[derive(Serialize, Deserialize)]
struct Record {
    schema: u32,
    request: Request,
    compiler: Stamp,
    listing: Listing,
    stamps: BTreeMap<PathBuf, Stamp>,
    files: BTreeMap<PathBuf, Digest>,
    manifest: Manifest,
}

fn record_path(cache: &Path, req: &Request) -> PathBuf {
    let key = Digest::of_bytes(&serde_json::to_vec(req).expect("request serializes"));
    cache
        .join("bundles")
        .join(format!("{}.json", &key.hex()[..32]))
}

/// The bundle of `req.compiler`: from the cache under `cache` (usually
/// `<cache dir>/toolchains`) if nothing changed, else packaged afresh.
pub fn resolve(cache: &Path, req: &Request) -> Result<Resolved, ResolveError> {
    let fs = HostFs;
    let path = record_path(cache, req);
    if let Some(bundle) = recognise(&fs, &path, req) {
        return Ok(Resolved { bundle, warm: true });
    }
    let contents = family::probe(
        &req.compiler,
        &ProbeOptions {
            targets: req.targets.clone(),
            sysroot: req.sysroot.clone(),
            linking: req.linking,
            path: req.path.clone(),
        },
    )?;
    let mut index = FileIndex::load(cache);
    let opts = ClosureOptions {
        ld_library_path: req.ld_library_path.clone(),
        path: req.path.clone(),
        ..ClosureOptions::default()
    };
    let bundle = bundle::package(&fs, &contents, &opts, &mut index)?;
    if let Err(e) = index.save() {
        tracing::warn!(
            "cannot save the toolchain file index under {}: {e}",
            cache.display()
        );
    }
    remember(&fs, &path, req, &bundle);
    Ok(Resolved {
        bundle,
        warm: false,
    })
}

/// Saves what [`recognise`] needs. Failing to save costs only speed.
fn remember(fs: &dyn FileSource, path: &Path, req: &Request, bundle: &Bundle) {
    let Ok(compiler) = fs.symlink_metadata(&req.compiler) else {
        return;
    };
    let mut stamps = BTreeMap::new();
    for (p, item) in &bundle.listing.items {
        // A directory's mtime moves when an entry is added or removed.
        if matches!(item, Item::File { .. } | Item::Dir) {
            match fs.symlink_metadata(p) {
                Ok(m) => {
                    stamps.insert(p.clone(), Stamp::of(&m));
                }
                Err(_) => return,
            }
        }
    }
    let record = Record {
        schema: SCHEMA,
        request: req.clone(),
        compiler: Stamp::of(&compiler),
        listing: bundle.listing.clone(),
        stamps,
        files: bundle.files.clone(),
        manifest: bundle.manifest.clone(),
    };
    match serde_json::to_vec(&record) {
        Ok(bytes) => {
            if let Err(e) = write_private(path, &bytes, false) {
                tracing::warn!("cannot save {}: {e}", path.display());
            }
        }
        Err(e) => tracing::warn!("cannot encode the toolchain record: {e}"),
    }
}

/// The cached bundle if the compiler and every file in it are unchanged.
fn recognise(fs: &dyn FileSource, path: &Path, req: &Request) -> Option<Bundle> {
    let bytes = std::fs::read(path).ok()?;
    let record: Record = serde_json::from_slice(&bytes).ok()?;
    if record.schema != SCHEMA || record.request != *req {
        return None;
    }
    let same = |p: &Path, s: &Stamp| {
        fs.symlink_metadata(p)
            .is_ok_and(|m| Stamp::of(&m) == *s && m.mtime_ns != 0)
    };
    if !same(&req.compiler, &record.compiler) {
        return None;
    }
    for (p, item) in &record.listing.items {
        let ok = match item {
            Item::File { .. } | Item::Dir => record.stamps.get(p).is_some_and(|s| same(p, s)),
            Item::Symlink { target } => fs.read_link(p).is_ok_and(|t| t == *target),
        };
        if !ok {
            return None;
        }
    }
    let (entries, skipped) = record.listing.entries(&record.files);
    let tree = tree::build(&entries).ok()?;
    if tree.root != record.manifest.root {
        return None;
    }
    Some(Bundle {
        manifest: record.manifest,
        tree,
        files: record.files,
        closure: None,
        listing: record.listing,
        skipped,
        sources: BTreeMap::new(),
    })
}

/// What [`family`] remembers of one compiler: the real file its path
/// led to (for whoever reads the record), that file's stat, and the
/// decision.
#[derive(Serialize, Deserialize)]
struct Decided {
    real: PathBuf,
    stamp: Stamp,
    family: Option<family::Family>,
}

/// The family of the compiler at `compiler` (absolute) whose name says
/// `named`: [`family::decide`], with the compiler's `--version` answer
/// asked once per real file and stat and remembered in
/// `<cache>/families.json` (`cache`: usually `<cache dir>/toolchains`).
/// A file that cannot be stated, or a record that cannot be saved, costs
/// only the question.
pub fn family(cache: &Path, compiler: &Path, named: family::Named) -> Option<family::Family> {
    let family::Named::Ask(_) = named else {
        return family::decide(compiler, named, || None);
    };
    let ask = || {
        family::run(compiler, &["--version".to_string()])
            .ok()
            .map(|out| format!("{}{}", out.stdout, out.stderr))
    };
    // The real file's stat, links followed: its inode tells it from any
    // other file a switched link could lead to, without resolving each
    // link on the way.
    let Ok(stamp) = std::fs::metadata(compiler).map(|m| Stamp::of(&(&m).into())) else {
        return family::decide(compiler, named, ask);
    };
    let path = cache.join("families.json");
    let mut known: BTreeMap<PathBuf, Decided> = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    if let Some(d) = known.get(compiler)
        && d.stamp == stamp
        && stamp.mtime_ns != 0
    {
        return d.family;
    }
    let Ok(real) = std::fs::canonicalize(compiler) else {
        return family::decide(compiler, named, ask);
    };
    let decided = family::decide(compiler, named, ask);
    known.insert(
        compiler.to_path_buf(),
        Decided {
            real,
            stamp,
            family: decided,
        },
    );
    match serde_json::to_vec(&known) {
        Ok(bytes) => {
            if let Err(e) = write_private(&path, &bytes, false) {
                tracing::warn!("cannot save {}: {e}", path.display());
            }
        }
        Err(e) => tracing::warn!("cannot encode the compiler families: {e}"),
    }
    decided
}

#[cfg(test)]
mod tests {
    use super::*;
    use family::{Family, Named};

    /// The real compiler `name` on PATH, or None after saying why.
    fn on_path(name: &str) -> Option<PathBuf> {
        let found = std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        });
        if found.is_none() {
            assert!(
                !std::env::var("RECAST_REQUIRE_PEERS").is_ok_and(|v| v == "1"),
                "{name} not on PATH (RECAST_REQUIRE_PEERS=1)"
            );
            eprintln!("skipping: {name} not on PATH");
        }
        found
    }

    #[test]
    fn a_cc_is_what_its_binary_answers_and_a_switched_link_is_decided_again() {
        let (Some(gcc), Some(clang)) = (on_path("gcc"), on_path("clang")) else {
            return;
        };
        let tmp = tempfile::tempdir().unwrap();
        let cache = tmp.path().join("toolchains");
        let cc = tmp.path().join("cc");
        let ask = Named::Ask(Family::Gcc);
        std::os::unix::fs::symlink(&clang, &cc).unwrap();
        assert_eq!(family(&cache, &cc, ask), Some(Family::Clang));
        let saved = std::fs::read_to_string(cache.join("families.json")).unwrap();
        assert!(saved.contains("\"clang\""), "{saved}");
        // Remembered: the same answer without asking again.
        assert_eq!(family(&cache, &cc, ask), Some(Family::Clang));
        // `update-alternatives` points `cc` elsewhere: decided again.
        std::fs::remove_file(&cc).unwrap();
        std::os::unix::fs::symlink(&gcc, &cc).unwrap();
        assert_eq!(family(&cache, &cc, ask), Some(Family::Gcc));
        // Not a compiler recast knows: decided as none, and remembered so.
        let sh = tmp.path().join("c++");
        std::os::unix::fs::symlink("/bin/true", &sh).unwrap();
        assert_eq!(family(&cache, &sh, ask), None);
        let saved = std::fs::read_to_string(cache.join("families.json")).unwrap();
        assert!(saved.contains("c++"), "{saved}");
        // A sure name needs no question and writes nothing new.
        let before = std::fs::read(cache.join("families.json")).unwrap();
        assert_eq!(
            family(
                &cache,
                Path::new("/nonexistent/clang"),
                Named::Sure(Family::Clang)
            ),
            Some(Family::Clang)
        );
        assert_eq!(std::fs::read(cache.join("families.json")).unwrap(), before);
    }
}
