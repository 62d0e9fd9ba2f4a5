//! glibc's `ld.so` rules, for one process (a session) at a time:
//!
//! 1. `PT_INTERP` is mapped first; its `SONAME` counts as loaded.
//! 2. Breadth-first through `DT_NEEDED`; a name already loaded (as asked,
//!    or as some object's `SONAME`) is reused without searching.
//! 3. A name with a `/` is a path. Otherwise the directories are, in order:
//!    `DT_RPATH` of the needing object, then of the object that loaded it,
//!    and so up to the executable — all only when the needing object has no
//!    `DT_RUNPATH`, and skipping objects that have one; `LD_LIBRARY_PATH`;
//!    the needing object's `DT_RUNPATH`; the `ld.so.conf` directories
//!    (standing in for `ld.so.cache`); the default directories:
//!    `/lib/<multiarch>`, `/usr/lib/<multiarch>`, then `/lib64`,
//!    `/usr/lib64` for 64-bit, then `/lib`, `/usr/lib`.
//! 4. In each directory, `glibc-hwcaps/*/NAME` then `NAME`; every variant
//!    that exists is kept (the worker's CPU picks one), and followed.
//! 5. A candidate of another class or machine is skipped and the search
//!    goes on; one that is not ELF, too short, of the other byte order or
//!    corrupt stops the loader (glibc: "invalid ELF header"): the library
//!    is reported missing, with a note naming the file.
//!
//! `$ORIGIN` is the directory of the path the object was opened by — for a
//! library, the search path it was found through, symlinks unresolved; for
//! the executable, its resolved path, which is what the kernel gives the
//! loader (`/proc/self/exe`). Both were checked against this machine's
//! `ld.so`. Legacy hwcaps subdirectories (`tls/`, `x86_64/`), dropped in
//! glibc 2.37, are not searched.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::closure::{Engine, Why};
use super::elf::{self, ElfInfo};
use super::walk::{Resolved, WalkError};
use super::{Binary, ldconf};
use crate::toolchain::Kind;

/// What a library must match to be loaded into a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Abi {
    class: u8,
    le: bool,
    machine: u16,
}

impl Abi {
    fn of(info: &ElfInfo) -> Self {
        Abi {
            class: info.class,
            le: info.little_endian,
            machine: info.machine,
        }
    }
}

#[derive(Debug, Clone)]
enum Found {
    Lib {
        reached: PathBuf,
        resolved: Resolved,
        variants: Vec<(PathBuf, Resolved)>,
    },
    Missing {
        searched: Vec<PathBuf>,
    },
}

/// What sessions share: searches already done and per-root settings.
#[derive(Default)]
pub(super) struct State {
    searches: HashMap<(String, Vec<PathBuf>, Abi), Found>,
    ldconf: Option<Vec<PathBuf>>,
    lib: HashMap<Abi, String>,
}

struct Obj {
    reached: PathBuf,
    file: PathBuf,
    origin: PathBuf,
    info: ElfInfo,
    loader: Option<usize>,
}

/// One process being loaded: its objects in load order, and which object
/// each name (as asked, or as a `SONAME`) is.
struct Process {
    objs: Vec<Obj>,
    names: HashMap<String, usize>,
}

impl Engine<'_> {
    /// Follows what `ld.so` loads for the process of `root` (an executable
    /// or a shared object), recording every object and edge.
    pub(super) fn elf_session(&mut self, root: &Path, resolved: &Resolved, info: &ElfInfo) {
        let abi = Abi::of(info);
        // The kernel hands the loader the executable's resolved path; a
        // shared object given as a root is opened by the path given.
        let origin_of_root = if info.is_executable() {
            parent(&resolved.file)
        } else {
            parent(root)
        };
        let mut p = Process {
            objs: vec![Obj {
                reached: root.to_path_buf(),
                file: resolved.file.clone(),
                origin: origin_of_root,
                info: info.clone(),
                loader: None,
            }],
            names: HashMap::new(),
        };
        if let Some(so) = &info.soname {
            p.names.insert(so.clone(), 0);
        }
        if let Some(interp) = &info.interp {
            self.map_interpreter(root, interp, abi, &mut p);
        }
        let mut i = 0;
        while i < p.objs.len() {
            for name in p.objs[i].info.needed.clone() {
                self.needed(&name, i, abi, &mut p);
            }
            i += 1;
        }
    }

    /// Maps `PT_INTERP` first, as the kernel does; its `SONAME` counts as
    /// loaded.
    fn map_interpreter(&mut self, root: &Path, interp: &str, abi: Abi, p: &mut Process) {
        let path = self.in_root(Path::new(interp));
        let found = self.candidate(&path, abi).unwrap_or_else(|reason| {
            self.note(format!(
                "the kernel cannot load {}: {reason}",
                path.display()
            ));
            None
        });
        let Some((r, i)) = found else {
            self.missing(interp, root, vec![path]);
            return;
        };
        let why = Why::Interpreter {
            of: root.to_path_buf(),
        };
        self.record(&path, &r, why);
        self.glibc(i.glibc);
        if let Some(so) = &i.soname {
            p.names.insert(so.clone(), p.objs.len());
        }
        p.objs.push(Obj {
            origin: parent(&path),
            reached: path,
            file: r.file,
            info: i,
            loader: None,
        });
    }

    /// One `DT_NEEDED` entry `name` of object `i`: an object already
    /// loaded under that name, or the one the search finds, with its
    /// hwcaps variants.
    fn needed(&mut self, name: &str, i: usize, abi: Abi, p: &mut Process) {
        let by = p.objs[i].reached.clone();
        let why = Why::Needed {
            by: by.clone(),
            name: name.to_string(),
        };
        if let Some(&k) = p.names.get(name) {
            let (reached, file) = (p.objs[k].reached.clone(), p.objs[k].file.clone());
            self.edge(&reached, &file, why);
            return;
        }
        let (reached, resolved, variants) = match self.find(name, &p.objs, i, abi) {
            Found::Lib {
                reached,
                resolved,
                variants,
            } => (reached, resolved, variants),
            Found::Missing { searched } => return self.missing(name, &by, searched),
        };
        p.names.insert(name.to_string(), p.objs.len());
        self.record(&reached, &resolved, why);
        let mut add = vec![(reached.clone(), resolved)];
        for (vp, vr) in variants {
            let hw = Why::Hwcaps {
                of: reached.clone(),
            };
            self.record(&vp, &vr, hw);
            add.push((vp, vr));
        }
        for (path, r) in add {
            let Ok(Binary::Elf(info)) = self.load(&r).as_deref().cloned() else {
                continue;
            };
            self.glibc(info.glibc);
            if let Some(so) = &info.soname {
                p.names.entry(so.clone()).or_insert(p.objs.len());
            }
            p.objs.push(Obj {
                origin: parent(&path),
                reached: path,
                file: r.file,
                info,
                loader: Some(i),
            });
        }
    }

    fn find(&mut self, name: &str, objs: &[Obj], i: usize, abi: Abi) -> Found {
        if name.contains('/') {
            if !name.starts_with('/') {
                self.note(format!(
                    "{}: needs {name}, a relative path: it depends on the working directory",
                    objs[i].reached.display()
                ));
                return Found::Missing {
                    searched: Vec::new(),
                };
            }
            let path = self.in_root(Path::new(name));
            return match self.candidate(&path, abi) {
                Ok(Some((resolved, _))) => Found::Lib {
                    reached: path,
                    resolved,
                    variants: Vec::new(),
                },
                Ok(None) => Found::Missing {
                    searched: vec![path],
                },
                Err(reason) => {
                    self.note(format!("the loader stops at {}: {reason}", path.display()));
                    Found::Missing {
                        searched: vec![path],
                    }
                }
            };
        }
        let dirs = self.search_dirs(objs, i, abi);
        let key = (name.to_owned(), dirs.clone(), abi);
        if let Some(f) = self.elf.searches.get(&key) {
            return f.clone();
        }
        let mut found = Found::Missing {
            searched: dirs.clone(),
        };
        for (n, dir) in dirs.iter().enumerate() {
            match self.try_dir(dir, name, abi) {
                Ok(Some(f)) => {
                    found = f;
                    break;
                }
                Ok(None) => {}
                Err(reason) => {
                    self.note(format!("the loader stops at {reason}"));
                    found = Found::Missing {
                        searched: dirs[..=n].to_vec(),
                    };
                    break;
                }
            }
        }
        self.elf.searches.insert(key, found.clone());
        found
    }

    /// `Err` names the file that stops the loader, and why.
    fn try_dir(&mut self, dir: &Path, name: &str, abi: Abi) -> Result<Option<Found>, String> {
        let mut variants = Vec::new();
        let hw = dir.join("glibc-hwcaps");
        if let Ok(r) = self.resolve(&hw)
            && r.meta.kind == Kind::Dir
            && let Ok(subs) = self.walker.fs().read_dir(&r.file)
        {
            let mut subs: Vec<_> = subs.into_iter().collect();
            subs.sort();
            for sub in subs {
                let p = hw.join(sub).join(name);
                let c = self.candidate(&p, abi);
                if let Some((r, _)) = c.map_err(|e| format!("{}: {e}", p.display()))? {
                    variants.push((p, r));
                }
            }
        }
        let main = dir.join(name);
        let c = self.candidate(&main, abi);
        Ok(match c.map_err(|e| format!("{}: {e}", main.display()))? {
            Some((resolved, _)) => Some(Found::Lib {
                reached: main,
                resolved,
                variants,
            }),
            None if !variants.is_empty() => {
                let (reached, resolved) = variants.remove(0);
                Some(Found::Lib {
                    reached,
                    resolved,
                    variants,
                })
            }
            None => None,
        })
    }

    /// `path` if it is an ELF file the process can load; `None` if the
    /// loader passes over it; `Err` if the loader would stop there.
    fn candidate(&mut self, path: &Path, abi: Abi) -> Result<Option<(Resolved, ElfInfo)>, String> {
        let r = match self.resolve(path) {
            Ok(r) if r.meta.kind == Kind::File => r,
            Ok(_) | Err(WalkError::NotFound) => return Ok(None),
            Err(WalkError::Loop) => {
                self.note(format!(
                    "skipped {}: too many levels of symbolic links",
                    path.display()
                ));
                return Ok(None);
            }
            Err(WalkError::Io(p, e)) => {
                self.note(format!("skipped {}: {}: {e}", path.display(), p.display()));
                return Ok(None);
            }
        };
        // The loader's own checks, in its order, before parsing anything.
        let head: Vec<u8> = match self.walker.fs().read(&r.file) {
            Ok(b) => b[..b.len().min(64)].to_vec(),
            Err(e) => return Err(format!("cannot read: {e}")),
        };
        if !head.starts_with(b"\x7fELF") {
            return Err(if head.len() < 64 {
                "file too short"
            } else {
                "invalid ELF header"
            }
            .into());
        }
        let class = match head.get(4) {
            Some(1) => 32,
            Some(2) => 64,
            _ => return Err("invalid ELF class".into()),
        };
        if class != abi.class {
            self.note(format!(
                "skipped {}: ELF{class}, the process is ELF{}",
                path.display(),
                abi.class
            ));
            return Ok(None);
        }
        let info = match self.load(&r).as_deref() {
            Ok(Binary::Elf(info)) => info.clone(),
            Ok(_) => return Err("invalid ELF header".into()),
            Err(e) => return Err(e.to_string()),
        };
        if info.little_endian != abi.le {
            return Err("ELF file data encoding is not the process's".into());
        }
        if info.machine != abi.machine {
            self.note(format!(
                "skipped {}: machine {} ({}), the process is machine {}",
                path.display(),
                info.machine,
                info.host,
                abi.machine
            ));
            return Ok(None);
        }
        Ok(Some((r, info)))
    }

    fn search_dirs(&mut self, objs: &[Obj], i: usize, abi: Abi) -> Vec<PathBuf> {
        let lib = self.lib_dir(abi);
        let platform =
            self.opts.platform.clone().unwrap_or_else(|| {
                elf::default_platform(abi.machine, abi.class, abi.le).to_owned()
            });
        let mut entries: Vec<(String, PathBuf)> = Vec::new();
        if objs[i].info.runpath.is_empty() {
            let mut k = Some(i);
            let mut saw_main = false;
            while let Some(j) = k {
                saw_main |= j == 0;
                if objs[j].info.runpath.is_empty() {
                    for e in &objs[j].info.rpath {
                        entries.push((e.clone(), objs[j].origin.clone()));
                    }
                }
                k = objs[j].loader;
            }
            if !saw_main && objs[0].info.runpath.is_empty() {
                for e in &objs[0].info.rpath {
                    entries.push((e.clone(), objs[0].origin.clone()));
                }
            }
        }
        for d in &self.opts.ld_library_path {
            entries.push((d.to_string_lossy().into_owned(), objs[0].origin.clone()));
        }
        for e in &objs[i].info.runpath {
            entries.push((e.clone(), objs[i].origin.clone()));
        }
        let mut dirs = Vec::new();
        for (entry, origin) in entries {
            let expanded = expand_dst(&entry, &origin.to_string_lossy(), &lib, &platform);
            if entry.starts_with("$ORIGIN") || entry.starts_with("${ORIGIN}") {
                dirs.push(PathBuf::from(expanded));
            } else if expanded.starts_with('/') {
                dirs.push(self.in_root(Path::new(&expanded)));
            } else {
                self.note(format!(
                    "{}: search path entry {entry:?} is relative: it depends on the working directory",
                    objs[i].reached.display()
                ));
            }
        }
        dirs.extend(self.ldconf_dirs());
        for t in elf::multiarch_triples(abi.machine, abi.class, abi.le) {
            dirs.push(self.in_root(&Path::new("/lib").join(t)));
            dirs.push(self.in_root(&Path::new("/usr/lib").join(t)));
        }
        if abi.class == 64 {
            dirs.push(self.in_root(Path::new("/lib64")));
            dirs.push(self.in_root(Path::new("/usr/lib64")));
        }
        dirs.push(self.in_root(Path::new("/lib")));
        dirs.push(self.in_root(Path::new("/usr/lib")));
        let mut seen = std::collections::HashSet::new();
        dirs.retain(|d| seen.insert(d.clone()));
        dirs
    }

    fn ldconf_dirs(&mut self) -> Vec<PathBuf> {
        if let Some(d) = &self.elf.ldconf {
            return d.clone();
        }
        let sysroot = self.opts.sysroot.clone();
        let d = ldconf::dirs(&mut self.walker, &sysroot);
        self.elf.ldconf = Some(d.clone());
        d
    }

    /// `$LIB`: see [`super::ClosureOptions::lib`].
    fn lib_dir(&mut self, abi: Abi) -> String {
        if let Some(lib) = &self.opts.lib {
            return lib.clone();
        }
        if let Some(lib) = self.elf.lib.get(&abi) {
            return lib.clone();
        }
        let mut lib = "lib".to_owned();
        let triples = elf::multiarch_triples(abi.machine, abi.class, abi.le);
        let sysroot = self.opts.sysroot.clone();
        if let Some(t) = triples.iter().find(|t| {
            let libc = self.in_root(&Path::new("/lib").join(t).join("libc.so.6"));
            self.walker.is_file(&libc, &sysroot)
        }) {
            lib = format!("lib/{t}");
        } else if abi.class == 64 {
            let libc = self.in_root(Path::new("/lib64/libc.so.6"));
            if self.walker.is_file(&libc, &sysroot) {
                lib = "lib64".to_owned();
            }
        }
        self.elf.lib.insert(abi, lib.clone());
        lib
    }
}

fn parent(p: &Path) -> PathBuf {
    p.parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| "/".into())
}

/// Substitutes `$ORIGIN`, `$LIB`, `$PLATFORM` (and their `${…}` forms) in
/// one search path entry. A `$` not starting one of these is kept, as the
/// loader keeps it.
pub(crate) fn expand_dst(entry: &str, origin: &str, lib: &str, platform: &str) -> String {
    let mut out = String::with_capacity(entry.len() + origin.len());
    let mut rest = entry;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let hit = [("ORIGIN", origin), ("LIB", lib), ("PLATFORM", platform)]
            .into_iter()
            .find_map(|(name, value)| {
                if let Some(r) = after.strip_prefix('{').and_then(|a| a.strip_prefix(name)) {
                    return r.strip_prefix('}').map(|r| (value, r));
                }
                let r = after.strip_prefix(name)?;
                let boundary = !r.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
                boundary.then_some((value, r))
            });
        match hit {
            Some((value, r)) => {
                out.push_str(value);
                rest = r;
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::expand_dst;

    #[test]
    fn dynamic_string_tokens() {
        let e = |s| expand_dst(s, "/o", "lib/x86_64-linux-gnu", "x86_64");
        assert_eq!(e("$ORIGIN/../lib"), "/o/../lib");
        assert_eq!(e("${ORIGIN}/x"), "/o/x");
        assert_eq!(e("/usr/$LIB/$PLATFORM"), "/usr/lib/x86_64-linux-gnu/x86_64");
        assert_eq!(e("/a/${PLATFORM}x"), "/a/x86_64x");
        assert_eq!(e("$ORIGINAL/x"), "$ORIGINAL/x");
        assert_eq!(e("/a/$"), "/a/$");
        assert_eq!(e("/a/${ORIGIN"), "/a/${ORIGIN");
        assert_eq!(e("$ORIGIN"), "/o");
    }
}
