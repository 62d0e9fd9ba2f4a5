//! dyld's rules, for one architecture slice of one root at a time:
//!
//! - Breadth-first through the load commands; an install name already
//!   loaded (as written, or as some image's `LC_ID_DYLIB`) is reused.
//! - `@executable_path/` is the directory of the main executable (its
//!   resolved path); `@loader_path/` that of the image naming it (the path
//!   it was opened by); `@rpath/` tries each `LC_RPATH` of the image, then
//!   of the image that loaded it, and so up to the executable.
//! - In a fat file, only the slice of the process's CPU type is used; a
//!   candidate without one is skipped.
//! - `/usr/lib/…` and `/System/…` libraries absent from disk live in the
//!   OS's shared cache: recorded as provided, not missing.
//! - A missing weak dylib (`LC_LOAD_WEAK_DYLIB`) is a note: dyld goes on.
//!
//! `DYLD_LIBRARY_PATH` and the fallback paths are not modelled: toolchains
//! that depend on them are not relocatable anyway.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::closure::{Engine, Why};
use super::macho::{DylibKind, MachFileType, MachOInfo};
use super::walk::Resolved;
use super::{Binary, InspectError};
use crate::toolchain::Kind;

#[derive(Debug, Clone)]
enum Found {
    Image(PathBuf, Box<Resolved>, MachOInfo),
    OsProvided,
    Missing(Vec<PathBuf>),
}

/// Searches already done: (install name, candidates, CPU type).
#[derive(Default)]
pub(super) struct State {
    searches: HashMap<(String, Vec<PathBuf>, u32), Found>,
}

struct Image {
    reached: PathBuf,
    file: PathBuf,
    info: MachOInfo,
    loader: Option<usize>,
}

impl Engine<'_> {
    pub(super) fn dyld_session(&mut self, root: &Path, resolved: &Resolved, slice: &MachOInfo) {
        let cputype = slice.cputype;
        let exec_dir = (slice.filetype == MachFileType::Execute)
            .then(|| resolved.file.parent().map(Path::to_path_buf))
            .flatten();
        let mut images = vec![Image {
            reached: root.to_path_buf(),
            file: resolved.file.clone(),
            info: slice.clone(),
            loader: None,
        }];
        let mut names: HashMap<String, usize> = HashMap::new();
        if let Some(n) = &slice.install_name {
            names.insert(n.clone(), 0);
        }
        let mut i = 0;
        while i < images.len() {
            for (kind, name) in images[i].info.dylibs.clone() {
                let by = images[i].reached.clone();
                let why = Why::Dylib {
                    by: by.clone(),
                    name: name.clone(),
                    kind,
                };
                if let Some(&k) = names.get(&name) {
                    let (p, f) = (images[k].reached.clone(), images[k].file.clone());
                    self.edge(&p, &f, why);
                    continue;
                }
                let candidates = self.dyld_candidates(&name, &images, i, exec_dir.as_deref());
                let key = (name.clone(), candidates.clone(), cputype);
                let found = match self.dyld.searches.get(&key) {
                    Some(f) => f.clone(),
                    None => {
                        let f = self.dyld_find(&name, &candidates, cputype);
                        self.dyld.searches.insert(key, f.clone());
                        f
                    }
                };
                match found {
                    Found::Image(reached, r, info) => {
                        names.insert(name.clone(), images.len());
                        if let Some(n) = &info.install_name {
                            names.entry(n.clone()).or_insert(images.len());
                        }
                        self.record(&reached, &r, why);
                        images.push(Image {
                            reached,
                            file: r.file,
                            info,
                            loader: Some(i),
                        });
                    }
                    Found::OsProvided => {
                        if !self
                            .out
                            .os_provided
                            .iter()
                            .any(|(n, b)| *n == name && *b == by)
                        {
                            self.out.os_provided.push((name.clone(), by));
                        }
                    }
                    Found::Missing(searched) if kind == DylibKind::Weak => {
                        let tried: Vec<String> =
                            searched.iter().map(|p| p.display().to_string()).collect();
                        self.note(format!(
                            "{}: weak dylib {name} not found (dyld goes on without it); tried: {}",
                            by.display(),
                            tried.join(", ")
                        ));
                    }
                    Found::Missing(searched) => self.missing(&name, &by, searched),
                }
            }
            i += 1;
        }
    }

    /// Where dyld looks for `name` when image `i` loads it, in order.
    fn dyld_candidates(
        &mut self,
        name: &str,
        images: &[Image],
        i: usize,
        exec_dir: Option<&Path>,
    ) -> Vec<PathBuf> {
        let loader_dir = |k: usize| -> PathBuf {
            images[k]
                .reached
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| "/".into())
        };
        if let Some(rest) = name.strip_prefix("@rpath/") {
            let mut out = Vec::new();
            let mut k = Some(i);
            while let Some(j) = k {
                for rp in &images[j].info.rpaths {
                    let dir = if let Some(r) = rp.strip_prefix("@loader_path") {
                        Some(join_rel(&loader_dir(j), r))
                    } else if let Some(r) = rp.strip_prefix("@executable_path") {
                        exec_dir.map(|d| join_rel(d, r))
                    } else if rp.starts_with('/') {
                        Some(self.in_root(Path::new(rp)))
                    } else {
                        None
                    };
                    match dir {
                        Some(d) => out.push(d.join(rest)),
                        None => self.note(format!(
                            "{}: LC_RPATH {rp} cannot be resolved here",
                            images[j].reached.display()
                        )),
                    }
                }
                k = images[j].loader;
            }
            out
        } else if let Some(rest) = name.strip_prefix("@loader_path") {
            vec![join_rel(&loader_dir(i), rest)]
        } else if let Some(rest) = name.strip_prefix("@executable_path") {
            match exec_dir {
                Some(d) => vec![join_rel(d, rest)],
                None => {
                    self.note(format!(
                        "{}: needs {name}, but the root is not an executable",
                        images[i].reached.display()
                    ));
                    Vec::new()
                }
            }
        } else if name.starts_with('/') {
            vec![self.in_root(Path::new(name))]
        } else {
            self.note(format!(
                "{}: needs {name}, a relative path: it depends on the working directory",
                images[i].reached.display()
            ));
            Vec::new()
        }
    }

    fn dyld_find(&mut self, name: &str, candidates: &[PathBuf], cputype: u32) -> Found {
        for c in candidates {
            let Ok(r) = self.resolve(c) else { continue };
            if r.meta.kind != Kind::File {
                continue;
            }
            match self.load(&r).as_deref() {
                Ok(Binary::MachO(slices)) => match slices.iter().find(|s| s.cputype == cputype) {
                    Some(s) => return Found::Image(c.clone(), Box::new(r.clone()), s.clone()),
                    None => self.note(format!(
                        "skipped {}: no slice for CPU type {cputype:#x}",
                        c.display()
                    )),
                },
                Ok(_) => self.note(format!("skipped {}: not a Mach-O file", c.display())),
                Err(e) => {
                    let e: &InspectError = e;
                    self.note(format!("skipped {e}"));
                }
            }
        }
        if is_os_provided(name) {
            Found::OsProvided
        } else {
            Found::Missing(candidates.to_vec())
        }
    }
}

/// `dir` + `/rest` where `rest` is what follows `@loader_path` (possibly
/// empty, usually starting with `/`).
fn join_rel(dir: &Path, rest: &str) -> PathBuf {
    let rest = rest.trim_start_matches('/');
    if rest.is_empty() {
        dir.to_path_buf()
    } else {
        dir.join(rest)
    }
}

/// Libraries macOS keeps in its shared cache rather than on disk.
fn is_os_provided(name: &str) -> bool {
    name.starts_with("/usr/lib/") || name.starts_with("/System/")
}
