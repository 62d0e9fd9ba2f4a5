//! A toolchain made to run from a plain directory (the wrapper's
//! relocated layout, `wrap::relocate`): every ELF executable's interpreter
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

/// gcc's exec prefix from its `-print-search-dirs`: the `install:`
/// directory without its `<machine>/<version>/` (`/usr/lib/gcc/`).
pub fn gcc_exec_prefix(search_dirs: &str) -> Option<String> {
    let install = search_dirs
        .lines()
        .find_map(|l| l.strip_prefix("install:"))?
        .trim();
    let prefix = Path::new(install).parent()?.parent()?;
    Some(format!("{}/", prefix.display()))
}

/// What is known of one file of a toolchain: its patched copy, or that it
/// needs none.
#[derive(Serialize, Deserialize)]
struct Patched {
    digest: Option<Digest>,
}

/// The toolchain of `bundle`, with `shell`'s closure, ready to run from a
/// plain directory: every ELF executable's interpreter is [`LOADER`].
/// Patched copies are kept under `<cache>/relocated/`.
pub fn relocate(cache: &Path, bundle: &Bundle, shell: &Path) -> Result<Bundle, String> {
    let dir = cache.join("relocated");
    let mut listing: Listing = bundle.listing.clone();
    let mut files: BTreeMap<PathBuf, Digest> = bundle.files.clone();
    let closure = inspect::closure(
        &HostFs,
        &[shell.to_path_buf()],
        &inspect::ClosureOptions::default(),
    )
    .map_err(|e| format!("the launcher {}: {e}", shell.display()))?;
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
        if let Some((digest, copy)) = patched(&dir, &source, &original)? {
            files.insert(path.clone(), digest);
            sources.insert(path, copy);
        }
    }
    let (entries, skipped) = listing.entries(&files);
    let tree = crate::cas::tree::build(&entries).map_err(|e| e.to_string())?;
    let mut manifest = bundle.manifest.clone();
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

/// The patched copy of the executable at `source` (content `original`):
/// its digest and path, made on first use; `None` when it needs none (no
/// interpreter, or a library).
fn patched(
    dir: &Path,
    source: &Path,
    original: &Digest,
) -> Result<Option<(Digest, PathBuf)>, String> {
    let name = format!("{}-{}", original.hex(), original.size());
    let record = dir.join(format!("{name}.json"));
    let copy = dir.join(&name);
    if let Some(p) = std::fs::read(&record)
        .ok()
        .and_then(|b| serde_json::from_slice::<Patched>(&b).ok())
    {
        match p.digest {
            None => return Ok(None),
            Some(d) if copy.is_file() => return Ok(Some((d, copy))),
            Some(_) => {}
        }
    }
    let bytes = HostFs
        .read(source)
        .map_err(|e| format!("{}: {e}", source.display()))?;
    if Digest::of_bytes(&bytes) != *original {
        return Err(format!("{} changed while relocating it", source.display()));
    }
    let executable = interp::interp_slot(&bytes).is_some()
        && matches!(inspect::parse(&bytes), Ok(inspect::Binary::Elf(e)) if e.is_executable());
    let new = if executable {
        interp::with_interp(&bytes, LOADER)
    } else {
        None
    };
    let result = match new {
        None => None,
        Some(patched) => {
            let d = Digest::of_bytes(&patched);
            crate::fsutil::write_atomic(&copy, &patched)
                .and_then(|()| {
                    use std::os::unix::fs::PermissionsExt as _;
                    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))
                })
                .map_err(|e| format!("{}: {e}", copy.display()))?;
            Some((d, copy))
        }
    };
    let bytes = serde_json::to_vec(&Patched {
        digest: result.as_ref().map(|(d, _)| *d),
    })
    .expect("a record serializes");
    if let Err(e) = crate::fsutil::write_atomic(&record, &bytes) {
        tracing::debug!("cannot store {}: {e}", record.display());
    }
    Ok(result)
}
