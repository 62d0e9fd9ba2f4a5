//! A toolchain made to run from a plain directory (the wrapper's
//! relocated layout, `wrap::layout`): every ELF executable's interpreter
//! rewritten to [`LOADER`] (`interp`), a name the action's working
//! directory links to the bundle's loader, and the closure of the shell
//! that launches it added. Patched copies are made once per file and kept
//! in the cache; `recast toolchain upload` publishes the result beside the
//! toolchain, for clients that cannot build it (another platform's).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::bundle::Bundle;
use super::listing::{Item, Listing};
use super::{FileSource, HostFs, inspect, interp};
use crate::cas::Digest;

/// The interpreter every patched program names: a relative path, which
/// the kernel resolves against the working directory of the process that
/// execs it.
pub const LOADER: &str = ".r-ld";

/// What is known of one file of a toolchain: its patched copy and the
/// loader it named, or that it needs none.
#[derive(Serialize, Deserialize)]
struct Patched {
    digest: Option<Digest>,
    #[serde(default)]
    loader: Option<String>,
}

/// The toolchain of `bundle`, with `shell`'s closure, ready to run from a
/// plain directory: every ELF executable's interpreter is [`LOADER`].
/// Patched copies are kept under `<cache>/relocated/`.
pub fn relocate(cache: &Path, bundle: &Bundle, shell: &Path) -> Result<Bundle, String> {
    let dir = cache.join("relocated");
    let closure = inspect::closure(
        &HostFs,
        &[shell.to_path_buf()],
        &inspect::ClosureOptions::default(),
    )
    .map_err(|e| format!("the launcher {}: {e}", shell.display()))?;
    // A statically linked toolchain (zig) names no loader: the launcher's
    // is the one `.r-ld` leads to.
    let interpreter = match &bundle.manifest.interpreter {
        Some(l) => l.clone(),
        None => closure
            .loaded
            .iter()
            .find(|l| matches!(l.why, inspect::Why::Interpreter { .. }))
            .and_then(|l| super::listing::tree_path(&l.path))
            .ok_or_else(|| {
                format!(
                    "neither {} nor the launcher {} names an ELF loader",
                    bundle.manifest.name,
                    shell.display()
                )
            })?,
    };
    let loader = format!("/{interpreter}");
    let mut listing: Listing = bundle.listing.clone();
    let mut files: BTreeMap<PathBuf, Digest> = bundle.files.clone();
    let mut manifest = bundle.manifest.clone();
    manifest.interpreter = Some(interpreter);
    // The launcher's libraries are found through the library path too,
    // never in the worker's own directories.
    for d in super::bundle::library_dirs(&closure) {
        if !manifest.library_path.contains(&d) {
            manifest.library_path.push(d);
        }
    }
    for path in closure.files.keys() {
        let real = listing
            .add_path(&HostFs, path)
            .map_err(|e| format!("the launcher's {}: {e}", path.display()))?;
        if let Some(Item::File { .. }) = listing.items.get(&real)
            && !files.contains_key(&real)
        {
            let d = crate::cas::hash::digest_file(&real)
                .map_err(|e| format!("{}: {e}", real.display()))?;
            files.insert(real, d);
        }
    }
    let mut sources = bundle.sources.clone();
    let executables: Vec<PathBuf> = listing
        .items
        .iter()
        .filter(|(_, i)| {
            matches!(
                i,
                Item::File {
                    executable: true,
                    ..
                }
            )
        })
        .map(|(p, _)| p.clone())
        .collect();
    for path in executables {
        let Some(original) = files.get(&path).copied() else {
            continue;
        };
        let source = bundle.source_of(&path).to_path_buf();
        if let Some((digest, copy)) = patched(&dir, &source, &original, &loader)? {
            files.insert(path.clone(), digest);
            sources.insert(path, copy);
        }
    }
    let (entries, skipped) = listing.entries(&files);
    let tree = crate::cas::tree::build(&entries).map_err(|e| e.to_string())?;
    manifest.root = tree.root;
    Ok(Bundle {
        manifest,
        tree,
        files,
        closure: None,
        listing,
        skipped,
        sources,
    })
}

/// A program shipped with an action to start it from a plain directory
/// (bubblewrap, for a worker that can make user namespaces): its closure,
/// its executables patched to [`LOADER`] as a relocated toolchain's are.
#[derive(Clone, Debug)]
pub struct Launcher {
    /// The program, as a tree path (`usr/bin/bwrap`).
    pub program: String,
    /// Its loader, as a tree path: where `.r-ld` leads.
    pub interpreter: String,
    /// Its libraries' directories, as tree paths.
    pub library_path: Vec<String>,
    pub listing: Listing,
    pub files: BTreeMap<PathBuf, Digest>,
    /// The patched copies' places in the cache.
    pub sources: BTreeMap<PathBuf, PathBuf>,
}

impl Launcher {
    /// The launcher as a bundle beside a toolchain described by
    /// `manifest` (whose identity it borrows; only its files count).
    pub fn bundle(&self, manifest: &super::manifest::Manifest) -> Result<Bundle, String> {
        let (entries, skipped) = self.listing.entries(&self.files);
        let tree = crate::cas::tree::build(&entries).map_err(|e| e.to_string())?;
        let mut manifest = manifest.clone();
        manifest.root = tree.root;
        manifest.interpreter = Some(self.interpreter.clone());
        manifest.library_path = self.library_path.clone();
        manifest.entry = self.program.clone();
        manifest.programs = Vec::new();
        manifest.path_dirs = Vec::new();
        Ok(Bundle {
            manifest,
            tree,
            files: self.files.clone(),
            closure: None,
            listing: self.listing.clone(),
            skipped,
            sources: self.sources.clone(),
        })
    }
}

/// `program` (this machine's) made a [`Launcher`]; patched copies are
/// kept under `<cache>/relocated/`.
pub fn launcher(cache: &Path, program: &Path) -> Result<Launcher, String> {
    let dir = cache.join("relocated");
    let closure = inspect::closure(
        &HostFs,
        &[program.to_path_buf()],
        &inspect::ClosureOptions::default(),
    )
    .map_err(|e| format!("{}: {e}", program.display()))?;
    let interpreter = closure
        .loaded
        .iter()
        .find(|l| matches!(l.why, inspect::Why::Interpreter { .. }))
        .and_then(|l| super::listing::tree_path(&l.path))
        .ok_or_else(|| format!("{} names no ELF loader", program.display()))?;
    let loader = format!("/{interpreter}");
    let mut listing = Listing::new();
    let mut files = BTreeMap::new();
    let mut sources = BTreeMap::new();
    for path in closure.files.keys() {
        let real = listing
            .add_path(&HostFs, path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some(Item::File { executable, .. }) = listing.items.get(&real).cloned()
            && !files.contains_key(&real)
        {
            let d = crate::cas::hash::digest_file(&real)
                .map_err(|e| format!("{}: {e}", real.display()))?;
            files.insert(real.clone(), d);
            if executable && let Some((digest, copy)) = patched(&dir, &real, &d, &loader)? {
                files.insert(real.clone(), digest);
                sources.insert(real, copy);
            }
        }
    }
    let real = std::fs::canonicalize(program).map_err(|e| format!("{}: {e}", program.display()))?;
    Ok(Launcher {
        program: super::listing::tree_path(&real)
            .ok_or_else(|| format!("{}: not a path a tree can name", real.display()))?,
        interpreter,
        library_path: super::bundle::library_dirs(&closure),
        listing,
        files,
        sources,
    })
}

/// The patched copy of the executable at `source` (content `original`):
/// its digest and path, made on first use; `None` when it needs none (no
/// interpreter, or a library). `Err`: it names another loader than
/// `loader` (the one `.r-ld` leads to), or its interpreter cannot be
/// rewritten.
fn patched(
    dir: &Path,
    source: &Path,
    original: &Digest,
    loader: &str,
) -> Result<Option<(Digest, PathBuf)>, String> {
    let name = format!("{}-{}", original.hex(), original.size());
    let record = dir.join(format!("{name}.json"));
    let copy = dir.join(&name);
    let other_loader = |named: &str| {
        format!(
            "{} names the loader {named}, not the toolchain's {loader}",
            source.display()
        )
    };
    if let Some(p) = std::fs::read(&record)
        .ok()
        .and_then(|b| serde_json::from_slice::<Patched>(&b).ok())
    {
        let intact =
            |d: &Digest| std::fs::metadata(&copy).is_ok_and(|m| m.is_file() && m.len() == d.size());
        match (p.digest, p.loader) {
            (None, _) => return Ok(None),
            (Some(_), Some(named)) if !same_file(&named, loader) => {
                return Err(other_loader(&named));
            }
            (Some(d), Some(_)) if intact(&d) => return Ok(Some((d, copy))),
            _ => {}
        }
    }
    let bytes = HostFs
        .read(source)
        .map_err(|e| format!("{}: {e}", source.display()))?;
    if Digest::of_bytes(&bytes) != *original {
        return Err(format!("{} changed while relocating it", source.display()));
    }
    let named = interp::interp(&bytes).map(str::to_string);
    let executable = named.is_some()
        && matches!(inspect::parse(&bytes), Ok(inspect::Binary::Elf(e)) if e.is_executable());
    let new = match &named {
        Some(named) if executable => {
            if !same_file(named, loader) {
                return Err(other_loader(named));
            }
            Some(interp::with_interp(&bytes, LOADER).ok_or_else(|| {
                format!("{}: its interpreter cannot be rewritten", source.display())
            })?)
        }
        _ => None,
    };
    let result = match new {
        None => None,
        Some(patched) => {
            let d = Digest::of_bytes(&patched);
            crate::fsutil::write_private(&copy, &patched, true)
                .map_err(|e| format!("{}: {e}", copy.display()))?;
            Some((d, copy))
        }
    };
    let bytes = serde_json::to_vec(&Patched {
        digest: result.as_ref().map(|(d, _)| *d),
        loader: result.as_ref().and(named),
    })
    .expect("a record serializes");
    if let Err(e) = crate::fsutil::write_private(&record, &bytes, false) {
        tracing::debug!("cannot store {}: {e}", record.display());
    }
    Ok(result)
}

/// Whether two loader paths name one file (`/lib64/ld-linux-x86-64.so.2`
/// is a link to `/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2`).
fn same_file(a: &str, b: &str) -> bool {
    a == b
        || matches!(
            (std::fs::canonicalize(a), std::fs::canonicalize(b)),
            (Ok(x), Ok(y)) if x == y
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// bubblewrap as a launcher: its closure with its loader, the binary
    /// patched to start through `.r-ld`, the libraries as they are.
    #[test]
    fn bubblewrap_is_shipped_patched_with_its_closure() {
        let bwrap = Path::new("/usr/bin/bwrap");
        if !bwrap.is_file() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let l = launcher(dir.path(), bwrap).unwrap();
        assert!(l.program.ends_with("bin/bwrap"), "{}", l.program);
        assert!(l.interpreter.contains("ld-linux"), "{}", l.interpreter);
        let real = std::fs::canonicalize(bwrap).unwrap();
        let copy = l.sources.get(&real).expect("bwrap is patched");
        let bytes = std::fs::read(copy).unwrap();
        assert_eq!(interp::interp(&bytes), Some(LOADER));
        assert_eq!(l.files[&real], Digest::of_bytes(&bytes));
        assert!(
            l.files
                .keys()
                .any(|p| p.to_string_lossy().contains("libc.so")),
            "{:?}",
            l.files.keys()
        );
        assert_eq!(l.sources.len(), 1, "only the program is patched");
        assert!(!l.library_path.is_empty());
    }

    /// This machine's shell: an ELF executable with an interpreter.
    fn shell() -> Option<(PathBuf, Digest, String)> {
        let path = std::fs::canonicalize("/bin/sh").ok()?;
        let bytes = std::fs::read(&path).ok()?;
        let named = interp::interp(&bytes)?.to_string();
        Some((path, Digest::of_bytes(&bytes), named))
    }

    #[test]
    fn a_program_is_patched_once_to_the_relative_loader() {
        let Some((sh, digest, loader)) = shell() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let (d, copy) = patched(dir.path(), &sh, &digest, &loader)
            .unwrap()
            .expect("the shell is patched");
        let bytes = std::fs::read(&copy).unwrap();
        assert_eq!(interp::interp(&bytes), Some(LOADER));
        assert_eq!(Digest::of_bytes(&bytes), d);
        // The original is untouched; the second time the copy is reused.
        assert_eq!(Digest::of_bytes(&std::fs::read(&sh).unwrap()), digest);
        assert_eq!(
            patched(dir.path(), &sh, &digest, &loader).unwrap(),
            Some((d, copy))
        );
    }

    #[test]
    fn a_program_naming_another_loader_is_refused_even_from_the_record() {
        let Some((sh, digest, loader)) = shell() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let other = "/lib/ld-other.so.1";
        let e = patched(dir.path(), &sh, &digest, other).unwrap_err();
        assert!(e.contains("names the loader") && e.contains(other), "{e}");
        patched(dir.path(), &sh, &digest, &loader).unwrap();
        let e = patched(dir.path(), &sh, &digest, other).unwrap_err();
        assert!(e.contains(other), "{e}");
    }

    #[test]
    fn a_damaged_copy_is_made_again() {
        let Some((sh, digest, loader)) = shell() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let (d, copy) = patched(dir.path(), &sh, &digest, &loader).unwrap().unwrap();
        std::fs::write(&copy, b"short").unwrap();
        let (again, _) = patched(dir.path(), &sh, &digest, &loader).unwrap().unwrap();
        assert_eq!(again, d);
        assert_eq!(Digest::of_bytes(&std::fs::read(&copy).unwrap()), d);
    }
}
