//! The relocated layout: an action that runs in a plain directory on any
//! worker (NativeLink's and Buildbarn's default runners, BuildBuddy,
//! EngFlow, `recast serve --sandbox none`), from the bundle alone.
//!
//! The input root is the rooted layout's — every file at its own absolute
//! path under the root, the project moved or not (`paths`) — and the
//! command reaches it through two links in the working directory:
//!
//! - [`ROOT`] (`.r`) leads to the input root, so an absolute path `/usr/x`
//!   is spelled `.r/usr/x`, relative, and resolves on every worker;
//! - [`LOADER`] (`.r-ld`) leads to the bundle's ELF loader. Every program
//!   of the toolchain has its interpreter (`PT_INTERP`) rewritten to this
//!   relative name, which the kernel resolves against the working
//!   directory of the process that execs it: the driver, `cc1`, `as`,
//!   `collect2` and `ld`, or the linker rustc runs, all start there, so
//!   each starts through the bundle's loader, with the bundle's libraries
//!   (`LD_LIBRARY_PATH`, relative too). The patched copies live in the
//!   cache (`<cache>/relocated/`), made once per file.
//!
//! The command starts with the bundle's own `/bin/sh` (its closure
//! shipped and patched like the rest): it sets `PWD=/proc/self/cwd`, which
//! gcc and clang take as their working directory (and a prefix map turns
//! into the local one), and computes, at run time, the real path of the
//! working directory for the families that need it (rustc's
//! `--remap-path-prefix`). Nothing of the worker's filesystem is used.
//! Families add their own flags (`family::Job::relocation`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::depcache;
use crate::cas::Digest;
use crate::toolchain::bundle::Bundle;
use crate::toolchain::listing::{Item, Listing};
use crate::toolchain::{FileSource, HostFs, inspect, interp};

/// The working directory's link to the input root.
pub const ROOT: &str = ".r";
/// The working directory's link to the loader: every patched program's
/// interpreter.
pub const LOADER: &str = ".r-ld";
/// The launcher: this machine's shell, shipped with the action.
pub const SHELL: &str = "/bin/sh";
/// What no output of a relocated action may contain: a path through it
/// is one the compile saw at run time on the worker, not here.
pub const PROC_CWD: &str = "/proc/self/cwd";

/// How an action is laid out for a server's workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// Every file at its own absolute path; the worker makes the input
    /// root its `/`.
    Rooted,
    /// Relative paths only, the toolchain started from the bundle.
    Relocated,
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Layout::Rooted => "rooted",
            Layout::Relocated => "relocated",
        })
    }
}

/// `p` (an absolute remote path) as a relocated command names it.
pub fn rel(p: &str) -> String {
    match p.strip_prefix('/') {
        Some(rest) => format!("{ROOT}/{rest}"),
        None => p.to_string(),
    }
}

/// `p` (an absolute remote path) as an absolute path that resolves on any
/// worker: through the process's own working directory.
pub fn proc_abs(p: &str) -> String {
    match p.strip_prefix('/') {
        Some(rest) => format!("{PROC_CWD}/{ROOT}/{rest}"),
        None => p.to_string(),
    }
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
    depcache::save(
        &record,
        &Patched {
            digest: result.as_ref().map(|(d, _)| *d),
        },
    );
    Ok(result)
}

/// `text` with the paths a relocated command spelled turned back into
/// this machine's: `.r/usr/x` and `/proc/self/cwd/.r/usr/x` are `/usr/x`
/// wherever a path can start (after whitespace, a quote, `:`, `=`, `(`).
pub fn unrelocate(text: &str) -> String {
    let text = text.replace(&format!("{PROC_CWD}/{ROOT}/"), "/");
    let needle = format!("{ROOT}/");
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(i) = rest.find(&needle) {
        let starts = i == 0 && out.is_empty()
            || rest[..i]
                .chars()
                .next_back()
                .or_else(|| out.chars().next_back())
                .is_some_and(|c| c.is_whitespace() || "\"'`:=(,[".contains(c));
        out.push_str(&rest[..i]);
        out.push_str(if starts { "/" } else { &needle });
        rest = &rest[i + needle.len()..];
    }
    out.push_str(rest);
    out
}

/// A question to `program` (`args`, asked in `ctx`'s working directory),
/// its answer read by `read` and kept under `<cache>/relocated/` by
/// toolchain (`root`), question and arguments. `Err`: the program could
/// not answer, and the compile cannot be relocated.
pub(crate) fn ask(
    ctx: &super::Ctx,
    program: &Path,
    root: &Digest,
    what: &str,
    args: &[String],
    read: impl Fn(&str) -> Option<Vec<String>>,
) -> Result<Vec<String>, super::family::Reason> {
    let mut parts: Vec<Vec<u8>> = vec![
        what.as_bytes().to_vec(),
        root.to_string().into_bytes(),
        program.as_os_str().as_encoded_bytes().to_vec(),
    ];
    parts.extend(args.iter().map(|a| a.as_bytes().to_vec()));
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let key = depcache::key(&refs);
    let path = ctx
        .cache_dir
        .join("relocated")
        .join(format!("{what}-{}.json", &key.hex()[..32]));
    if let Some(v) = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Vec<String>>(&b).ok())
    {
        return Ok(v);
    }
    let text = super::local::ask(program, args, &ctx.cwd).ok_or("not_relocatable")?;
    let v = read(&text).ok_or("not_relocatable")?;
    depcache::save(&path, &v);
    Ok(v)
}

/// gcc's exec prefix from `-print-search-dirs`: the `install:` directory
/// without its `<machine>/<version>/` (`/usr/lib/gcc/`).
pub(crate) fn gcc_exec_prefix(text: &str) -> Option<Vec<String>> {
    let install = text
        .lines()
        .find_map(|l| l.strip_prefix("install:"))?
        .trim();
    let dir = Path::new(install);
    let prefix = dir.parent()?.parent()?;
    Some(vec![format!("{}/", prefix.display())])
}

/// `s` as one word for the launcher's `sh -c` script.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_paths_are_spelled_through_the_root_link() {
        assert_eq!(rel("/usr/include"), ".r/usr/include");
        assert_eq!(rel("src/a.c"), "src/a.c");
        assert_eq!(proc_abs("/home/u/p/out"), "/proc/self/cwd/.r/home/u/p/out");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(
            unrelocate(
                ".r/usr/include/stdio.h:3: error in \".r/home/u/a.c\" (x.r/y) /proc/self/cwd/.r/opt/z\n.r/q"
            ),
            "/usr/include/stdio.h:3: error in \"/home/u/a.c\" (x.r/y) /opt/z\n/q"
        );
    }
}
