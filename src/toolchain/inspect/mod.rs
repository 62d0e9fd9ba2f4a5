//! Binary inspection: what a file's header says ([`parse`]), and every file
//! the loader opens to run it ([`closure`]).
//!
//! - [`parse`] is pure: bytes in, a [`Binary`] out — ELF (`elf`), Mach-O thin
//!   or fat (`macho`), a `#!` script (`script`), or anything else. Truncated
//!   or corrupt headers are [`InspectError::Malformed`], never a panic.
//! - [`closure`] follows the loaders' rules from a set of roots through a
//!   [`FileSource`]: glibc's `ld.so` for ELF (`elf_search`, `ldconf`), dyld
//!   for Mach-O (`dyld`), the kernel's `#!` for scripts. Symlinks are walked
//!   one component at a time (`walk`) so the closure keeps every link the
//!   loader goes through, and so it works on archives as well as disks.
//!
//! Left to others: what a compiler runs beyond its own binary (`family`),
//! turning a closure into a CAS tree, and the CLI (`recast toolchain
//! inspect`, which prints [`Closure::render_tree`] or the closure as JSON).
//! Nothing here reads the process environment: `LD_LIBRARY_PATH`, `PATH`
//! and the sysroot come in through [`ClosureOptions`].

mod closure;
mod dyld;
mod elf;
mod elf_search;
mod ldconf;
mod macho;
mod render;
mod script;
mod walk;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_elf;
#[cfg(test)]
mod tests_macho;

use std::fmt;
use std::path::{Path, PathBuf};

pub use closure::{
    Closure, ClosureEntry, ClosureOptions, EntryKind, Loaded, Missing, Why, closure,
};
pub use elf::{ElfInfo, ElfKind};
pub use macho::{DylibKind, MachFileType, MachOInfo};

use super::FileSource;

/// The platform a binary runs on, read from its header.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Host {
    pub os: target_lexicon::OperatingSystem,
    pub arch: target_lexicon::Architecture,
}

impl fmt::Display for Host {
    /// `x86_64-linux`, `aarch64-darwin`: arch then OS, target-lexicon's names.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.arch, self.os)
    }
}

impl serde::Serialize for Host {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What one file's header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binary {
    Elf(ElfInfo),
    /// One entry per architecture slice (a thin file has one).
    MachO(Vec<MachOInfo>),
    /// A `#!` line: the kernel runs `interpreter [arg] file`.
    Script {
        interpreter: String,
        arg: Option<String>,
    },
    /// Data, text, archives (`.a`, `.rlib`): a plain file, nothing to follow.
    Other,
}

/// Why inspection failed. The closure's own failures name the file; [`parse`]
/// alone knows no path and leaves it empty.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// A root does not exist (or a component of its path does not): check
    /// the path given.
    #[error("{}: no such file", .path.display())]
    NotFound { path: PathBuf },
    /// A root could not be read: permissions, or an I/O error.
    #[error("{}: cannot read: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A root's symlinks are broken into a cycle or a chain longer than the
    /// kernel follows (40 links).
    #[error("{}: too many levels of symbolic links (a cycle?)", .path.display())]
    SymlinkLoop { path: PathBuf },
    /// A root is a directory, a device or a socket, not a file to run.
    #[error("{}: not a regular file", .path.display())]
    NotAFile { path: PathBuf },
    /// A header is truncated or corrupt: the file cannot be loaded as it is.
    #[error("{}malformed binary: {reason}", path_prefix(.path))]
    Malformed { path: PathBuf, reason: String },
}

impl InspectError {
    /// The same error about `path` (for errors from [`parse`], which has none).
    pub fn at(self, path: &Path) -> Self {
        match self {
            InspectError::Malformed { reason, .. } => InspectError::Malformed {
                path: path.to_path_buf(),
                reason,
            },
            other => other,
        }
    }
}

fn path_prefix(path: &Path) -> String {
    if path.as_os_str().is_empty() {
        String::new()
    } else {
        format!("{}: ", path.display())
    }
}

pub(crate) fn malformed(reason: impl Into<String>) -> InspectError {
    InspectError::Malformed {
        path: PathBuf::new(),
        reason: reason.into(),
    }
}

/// Runs goblin on untrusted bytes. goblin 0.10 has unchecked arithmetic
/// on some header fields (fuzzing found `vmaddr - fileoff` on a hostile
/// `LC_MAIN`), so a panic inside it becomes [`InspectError::Malformed`],
/// and prints nothing: recast never writes to a compile's stderr. Panics
/// anywhere else still reach the previous hook.
pub(crate) fn guarded<T, E: std::fmt::Display>(
    what: &str,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, InspectError> {
    use std::cell::Cell;
    thread_local! {
        static QUIET: Cell<bool> = const { Cell::new(false) };
    }
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    match got {
        Ok(r) => r.map_err(|e| malformed(format!("{what}: {e}"))),
        Err(_) => Err(malformed(format!(
            "{what}: the headers are inconsistent (the parser gave up on them)"
        ))),
    }
}

/// Reads what a file's header says. Pure, and total: any input gives a
/// [`Binary`] or [`InspectError::Malformed`].
pub fn parse(bytes: &[u8]) -> Result<Binary, InspectError> {
    if bytes.starts_with(b"\x7fELF") {
        return elf::parse(bytes).map(Binary::Elf);
    }
    if bytes.starts_with(b"#!") {
        return script::parse(bytes);
    }
    if macho::is_macho(bytes) {
        return macho::parse(bytes).map(Binary::MachO);
    }
    Ok(Binary::Other)
}
