//! Toolchains: the compiler binary → every file it needs, as a CAS tree
//! plus a manifest that says how to run it.
//!
//! - [`inspect`] reads ELF, Mach-O and script headers (goblin, from bytes)
//!   and follows the dynamic loader's rules to a closure of files.
//! - [`family`] asks gcc, clang and rustc what they run and read beyond
//!   their own binary (`cc1`, `as`, the resource dir, `lib/rustlib`).
//!
//! Both read files through [`FileSource`], so the same code inspects an
//! installed toolchain and one still packed in a tar archive.

pub mod archive;
pub mod bundle;
pub mod family;
pub mod index;
pub mod inspect;
pub mod interp;
pub mod listing;
pub mod local;
pub mod manifest;
pub mod registry;
pub mod relocate;

use std::ffi::OsString;
use std::io;
use std::ops::Deref;
use std::path::{Path, PathBuf};

use crate::cas::Digest;
use crate::cas::blob::BlobSource;

/// What kind of thing a path is, without following a final symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    /// Sockets, devices, fifos: never part of a toolchain.
    Other,
}

/// The metadata a closure needs, and the stat key the local index uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    pub size: u64,
    /// Any execute bit set.
    pub executable: bool,
    /// Modification time in nanoseconds since the epoch (0 when unknown).
    pub mtime_ns: i128,
    /// Status-change time (ns; 0 when unknown): moves on every write and
    /// cannot be set back, so a file rewritten with its old size and mtime
    /// still shows.
    pub ctime_ns: i128,
    /// Inode number (0 when unknown, as in archives).
    pub ino: u64,
}

/// A file's contents: read into memory or mapped.
pub enum FileBytes {
    Owned(Vec<u8>),
    Mapped(memmap2::Mmap),
}

impl Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Owned(v) => v,
            FileBytes::Mapped(m) => m,
        }
    }
}

/// A read-only view of a file tree with absolute paths: the host's
/// filesystem ([`HostFs`]) or an archive held in memory.
pub trait FileSource: Send + Sync {
    /// Metadata of `path` itself (a symlink is reported as a symlink).
    fn symlink_metadata(&self, path: &Path) -> io::Result<Meta>;
    /// The target of the symlink at `path`, as stored.
    fn read_link(&self, path: &Path) -> io::Result<PathBuf>;
    /// The whole contents of the regular file at `path` (symlinks followed).
    fn read(&self, path: &Path) -> io::Result<FileBytes>;
    /// The names in the directory at `path` (symlinks followed), unsorted.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<OsString>>;

    /// The digest of the regular file at `path`.
    fn digest(&self, path: &Path) -> io::Result<Digest> {
        Ok(Digest::of_bytes(&self.read(path)?))
    }

    /// Where an upload reads the file at `path` from.
    fn blob_source(&self, path: &Path) -> io::Result<BlobSource> {
        Ok(BlobSource::Bytes(self.read(path)?.to_vec()))
    }

    /// Whether paths name files on this machine, so their stat is a stable
    /// key for the local index.
    fn is_host(&self) -> bool {
        false
    }
}

impl From<&std::fs::Metadata> for Meta {
    fn from(m: &std::fs::Metadata) -> Meta {
        use std::os::unix::fs::MetadataExt as _;
        let ft = m.file_type();
        let kind = if ft.is_symlink() {
            Kind::Symlink
        } else if ft.is_dir() {
            Kind::Dir
        } else if ft.is_file() {
            Kind::File
        } else {
            Kind::Other
        };
        Meta {
            kind,
            size: m.len(),
            executable: m.mode() & 0o111 != 0,
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
            ino: m.ino(),
        }
    }
}

/// The host's filesystem. Large files are mapped, not copied.
#[derive(Debug, Default, Clone, Copy)]
pub struct HostFs;

/// Files above this size are mapped rather than read.
const MAP_THRESHOLD: u64 = 1 << 20;

impl FileSource for HostFs {
    fn symlink_metadata(&self, path: &Path) -> io::Result<Meta> {
        Ok(Meta::from(&std::fs::symlink_metadata(path)?))
    }

    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        std::fs::read_link(path)
    }

    fn read(&self, path: &Path) -> io::Result<FileBytes> {
        let file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        if len >= MAP_THRESHOLD {
            // SAFETY: mapping is unsafe because the file may change under
            // the `&[u8]` while it is mapped; no safe API maps a file. A
            // toolchain file rewritten meanwhile gives wrong bytes, which
            // the digest check of every later upload catches; one truncated
            // meanwhile ends the process with SIGBUS. Neither is a result
            // we rely on.
            let map = unsafe { memmap2::Mmap::map(&file)? };
            Ok(FileBytes::Mapped(map))
        } else {
            use std::io::Read as _;
            let mut buf = Vec::with_capacity(len as usize);
            (&file).read_to_end(&mut buf)?;
            Ok(FileBytes::Owned(buf))
        }
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
        std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.file_name()))
            .collect()
    }

    fn digest(&self, path: &Path) -> io::Result<Digest> {
        crate::cas::hash::digest_file(path)
    }

    fn blob_source(&self, path: &Path) -> io::Result<BlobSource> {
        Ok(BlobSource::File(path.to_path_buf()))
    }

    fn is_host(&self) -> bool {
        true
    }
}
