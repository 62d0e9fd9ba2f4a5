//! The closure: from a set of roots, every file the kernel and the loaders
//! open to run them, with why each is there, what is missing and where it
//! was looked for.
//!
//! Each root is a separate process to the loader, so each gets its own
//! session (`elf_search`, `dyld`) with its own set of loaded objects; what
//! they find is shared through caches keyed by the whole search context.
//! This file holds the result types, the bookkeeping every session shares,
//! and `#!` scripts.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::walk::{Resolved, WalkError, Walker, chroot_for, in_root};
use super::{Binary, DylibKind, FileSource, Host, InspectError, script};
use crate::toolchain::Kind;

/// What the caller decides about the environment the roots will run in.
#[derive(Debug, Clone)]
pub struct ClosureOptions {
    /// `LD_LIBRARY_PATH` of the environment the caller chose (never read
    /// from this process). Host paths, used as given.
    pub ld_library_path: Vec<PathBuf>,
    /// `PATH`, for `#!/usr/bin/env NAME`. Host paths, used as given.
    pub path: Vec<PathBuf>,
    /// The root the binaries run under: `/etc/ld.so.conf`, the default
    /// library directories, `PT_INTERP`, absolute `RPATH`s and absolute
    /// symlink targets inside it are looked up under this directory.
    pub sysroot: PathBuf,
    /// `$PLATFORM`; by default the machine's (`x86_64`, `aarch64`, …).
    pub platform: Option<String>,
    /// `$LIB`; by default `lib/<multiarch>` when the sysroot's libc lives
    /// there (Debian, Ubuntu), else `lib64` for 64-bit when its libc lives
    /// there (Fedora, Arch), else `lib`.
    pub lib: Option<String>,
}

impl Default for ClosureOptions {
    fn default() -> Self {
        ClosureOptions {
            ld_library_path: Vec::new(),
            path: Vec::new(),
            sysroot: PathBuf::from("/"),
            platform: None,
            lib: None,
        }
    }
}

/// Every file the roots need. Paths are host paths (under the sysroot
/// when one is given).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Closure {
    /// Every path to recreate: regular files and the symlinks met on the
    /// way to them, directories included (`/lib64 → usr/lib64`).
    pub files: BTreeMap<PathBuf, ClosureEntry>,
    /// Who loads what, by the paths the loaders use (the graph
    /// [`Closure::render_tree`] draws). One entry per (path, loader).
    pub loaded: Vec<Loaded>,
    pub missing: Vec<Missing>,
    /// Mach-O libraries in the OS's shared cache: expected on the worker,
    /// not shipped.
    pub os_provided: Vec<(String, PathBuf)>,
    /// The highest `GLIBC_x.y` any ELF file in the closure needs.
    pub min_glibc: Option<(u32, u32)>,
    /// The platform of the first root that is a binary (of a script: its
    /// interpreter's).
    pub host: Option<Host>,
    /// Every platform met among roots and slices, first seen first.
    pub hosts: Vec<Host>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClosureEntry {
    pub kind: EntryKind,
    /// Why the first path that reached it needed it.
    pub why: Why,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EntryKind {
    File { executable: bool, size: u64 },
    Symlink { target: PathBuf },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Why {
    Root,
    /// `PT_INTERP` of `of`.
    Interpreter {
        of: PathBuf,
    },
    /// `DT_NEEDED` `name` of `by`.
    Needed {
        by: PathBuf,
        name: String,
    },
    /// A `glibc-hwcaps` variant of the library loaded as `of`: the loader
    /// picks it instead on CPUs that support it.
    Hwcaps {
        of: PathBuf,
    },
    /// A Mach-O load command of `by`.
    Dylib {
        by: PathBuf,
        name: String,
        kind: DylibKind,
    },
    /// The interpreter of the script `of` (its `#!` line, or the program
    /// `#!/usr/bin/env` runs).
    Script {
        of: PathBuf,
    },
    /// A symlink met while resolving `path`.
    SymlinkOf {
        path: PathBuf,
    },
}

impl Why {
    /// The object whose needs brought this in (none for roots and links).
    pub fn parent(&self) -> Option<&Path> {
        match self {
            Why::Root | Why::SymlinkOf { .. } => None,
            Why::Interpreter { of } | Why::Hwcaps { of } | Why::Script { of } => Some(of),
            Why::Needed { by, .. } | Why::Dylib { by, .. } => Some(by),
        }
    }
}

/// One object as a loader reaches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Loaded {
    /// The path the loader opens (what `$ORIGIN` / `@loader_path` derive
    /// from).
    pub path: PathBuf,
    /// The file it leads to, every symlink resolved.
    pub file: PathBuf,
    pub why: Why,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Missing {
    pub name: String,
    pub needed_by: PathBuf,
    /// The directories (ELF) or candidate paths (Mach-O, scripts) tried.
    pub searched: Vec<PathBuf>,
}

/// Follows the loaders' rules from `roots` (absolute paths) through `fs`.
/// Errors are about the roots themselves (missing, unreadable, cyclic
/// links, malformed headers); libraries that cannot be found are
/// [`Closure::missing`], so one run reports all of them.
pub fn closure(
    fs: &dyn FileSource,
    roots: &[PathBuf],
    opts: &ClosureOptions,
) -> Result<Closure, InspectError> {
    let mut e = Engine::new(fs, opts);
    for root in roots {
        let resolved = e.resolve(root).map_err(|err| root_error(root, err))?;
        if resolved.meta.kind != Kind::File {
            return Err(InspectError::NotAFile { path: root.clone() });
        }
        e.record(root, &resolved, Why::Root);
        e.follow(root, &resolved, 0)?;
    }
    Ok(e.out)
}

fn root_error(root: &Path, err: WalkError) -> InspectError {
    match err {
        WalkError::NotFound => InspectError::NotFound {
            path: root.to_path_buf(),
        },
        WalkError::Loop => InspectError::SymlinkLoop {
            path: root.to_path_buf(),
        },
        WalkError::Io(_, source) => InspectError::Io {
            path: root.to_path_buf(),
            source,
        },
    }
}

/// Linux follows at most this many nested `#!` interpreters.
const MAX_SCRIPT_DEPTH: usize = 4;

/// The state every session shares.
pub(super) struct Engine<'a> {
    pub(super) walker: Walker<'a>,
    pub(super) opts: &'a ClosureOptions,
    pub(super) out: Closure,
    pub(super) elf: super::elf_search::State,
    pub(super) dyld: super::dyld::State,
    parsed: HashMap<PathBuf, Arc<Binary>>,
    loaded_seen: HashSet<(PathBuf, Option<PathBuf>)>,
    missing_seen: HashSet<(String, PathBuf)>,
    notes_seen: HashSet<String>,
}

impl<'a> Engine<'a> {
    fn new(fs: &'a dyn FileSource, opts: &'a ClosureOptions) -> Self {
        Engine {
            walker: Walker::new(fs),
            opts,
            out: Closure::default(),
            elf: Default::default(),
            dyld: Default::default(),
            parsed: HashMap::new(),
            loaded_seen: HashSet::new(),
            missing_seen: HashSet::new(),
            notes_seen: HashSet::new(),
        }
    }

    pub(super) fn resolve(&mut self, path: &Path) -> Result<Resolved, WalkError> {
        let chroot = chroot_for(path, &self.opts.sysroot).to_path_buf();
        self.walker.resolve(path, &chroot)
    }

    /// A path as a binary inside the sysroot names it, seen from here.
    pub(super) fn in_root(&self, path: &Path) -> PathBuf {
        in_root(&self.opts.sysroot, path)
    }

    /// Puts `resolved` (reached as `reached`) and its links in the closure.
    pub(super) fn record(&mut self, reached: &Path, resolved: &Resolved, why: Why) {
        for (link, target) in &resolved.links {
            self.out
                .files
                .entry(link.clone())
                .or_insert_with(|| ClosureEntry {
                    kind: EntryKind::Symlink {
                        target: target.clone(),
                    },
                    why: Why::SymlinkOf {
                        path: reached.to_path_buf(),
                    },
                });
        }
        self.out
            .files
            .entry(resolved.file.clone())
            .or_insert_with(|| ClosureEntry {
                kind: EntryKind::File {
                    executable: resolved.meta.executable,
                    size: resolved.meta.size,
                },
                why: why.clone(),
            });
        self.edge(reached, &resolved.file, why);
    }

    /// Notes that `reached` is loaded (again) for `why`, without new files.
    pub(super) fn edge(&mut self, reached: &Path, file: &Path, why: Why) {
        let key = (reached.to_path_buf(), why.parent().map(Path::to_path_buf));
        if self.loaded_seen.insert(key) {
            self.out.loaded.push(Loaded {
                path: reached.to_path_buf(),
                file: file.to_path_buf(),
                why,
            });
        }
    }

    pub(super) fn missing(&mut self, name: &str, needed_by: &Path, searched: Vec<PathBuf>) {
        if self
            .missing_seen
            .insert((name.to_owned(), needed_by.to_path_buf()))
        {
            self.out.missing.push(Missing {
                name: name.to_owned(),
                needed_by: needed_by.to_path_buf(),
                searched,
            });
        }
    }

    pub(super) fn note(&mut self, note: String) {
        if self.notes_seen.insert(note.clone()) {
            self.out.notes.push(note);
        }
    }

    pub(super) fn host(&mut self, host: &Host) {
        if self.out.host.is_none() {
            self.out.host = Some(host.clone());
        }
        if !self.out.hosts.contains(host) {
            self.out.hosts.push(host.clone());
        }
    }

    pub(super) fn glibc(&mut self, v: Option<(u32, u32)>) {
        self.out.min_glibc = self.out.min_glibc.max(v);
    }

    /// What the file at `resolved` (a regular file) is, parsed once.
    pub(super) fn load(&mut self, resolved: &Resolved) -> Result<Arc<Binary>, InspectError> {
        if let Some(b) = self.parsed.get(&resolved.file) {
            return Ok(b.clone());
        }
        let bytes = self
            .walker
            .fs()
            .read(&resolved.file)
            .map_err(|source| InspectError::Io {
                path: resolved.file.clone(),
                source,
            })?;
        let b = Arc::new(super::parse(&bytes).map_err(|e| e.at(&resolved.file))?);
        self.parsed.insert(resolved.file.clone(), b.clone());
        Ok(b)
    }

    /// Follows what the file at `resolved`, reached as `reached`, runs or
    /// loads.
    fn follow(
        &mut self,
        reached: &Path,
        resolved: &Resolved,
        depth: usize,
    ) -> Result<(), InspectError> {
        let bin = self.load(resolved)?;
        match &*bin {
            Binary::Elf(info) => {
                self.host(&info.host);
                self.glibc(info.glibc);
                self.elf_session(reached, resolved, info);
            }
            Binary::MachO(slices) => {
                for slice in slices {
                    self.host(&slice.host);
                    self.dyld_session(reached, resolved, slice);
                }
            }
            Binary::Script { interpreter, arg } => {
                self.script(reached, interpreter, arg.as_deref(), depth)?;
            }
            Binary::Other => {}
        }
        Ok(())
    }

    fn script(
        &mut self,
        reached: &Path,
        interpreter: &str,
        arg: Option<&str>,
        depth: usize,
    ) -> Result<(), InspectError> {
        if depth >= MAX_SCRIPT_DEPTH {
            self.note(format!(
                "{}: more than {MAX_SCRIPT_DEPTH} nested #! interpreters; Linux refuses to run it",
                reached.display()
            ));
            self.missing(interpreter, reached, Vec::new());
            return Ok(());
        }
        if !interpreter.starts_with('/') {
            self.note(format!(
                "{}: #! interpreter {interpreter} is relative: it depends on the working directory",
                reached.display()
            ));
            self.missing(interpreter, reached, Vec::new());
            return Ok(());
        }
        let path = self.in_root(Path::new(interpreter));
        let Some(resolved) = self.runnable(&path) else {
            self.missing(interpreter, reached, vec![path]);
            return Ok(());
        };
        self.note(format!(
            "{} is a script run by {}",
            reached.display(),
            path.display()
        ));
        let why = Why::Script {
            of: reached.to_path_buf(),
        };
        self.record(&path, &resolved, why.clone());
        self.follow(&path, &resolved, depth + 1)?;

        let is_env = Path::new(interpreter).file_name() == Some("env".as_ref());
        let Some(program) = arg.filter(|_| is_env).and_then(script::env_program) else {
            return Ok(());
        };
        let candidates: Vec<PathBuf> = if program.starts_with('/') {
            vec![self.in_root(Path::new(program))]
        } else {
            self.opts.path.iter().map(|d| d.join(program)).collect()
        };
        let found = candidates
            .iter()
            .find_map(|c| self.runnable(c).map(|r| (c.clone(), r)));
        match found {
            Some((prog, resolved)) => {
                self.note(format!(
                    "{} runs {program} through {interpreter}: {} on the PATH given",
                    reached.display(),
                    prog.display()
                ));
                self.record(&prog, &resolved, why);
                self.follow(&prog, &resolved, depth + 1)?;
            }
            None => {
                let searched = if program.starts_with('/') {
                    candidates
                } else {
                    self.opts.path.clone()
                };
                self.missing(program, reached, searched);
            }
        }
        Ok(())
    }

    /// `path` resolved, if it is an executable regular file.
    fn runnable(&mut self, path: &Path) -> Option<Resolved> {
        self.resolve(path)
            .ok()
            .filter(|r| r.meta.kind == Kind::File && r.meta.executable)
    }
}
