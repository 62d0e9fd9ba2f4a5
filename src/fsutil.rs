//! Small file and clock helpers every layer uses: atomic writes, private
//! state (directories 0700, files 0600, whatever the umask) and the time
//! since the epoch. Nothing here knows about recast's formats.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{
    DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _,
};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Mode of every directory recast keeps state in.
pub const PRIVATE_DIR: u32 = 0o700;
/// Mode of every state file recast writes (0700 for the programs it keeps).
pub const PRIVATE_FILE: u32 = 0o600;

/// Creates `dir` and its missing parents with mode 0700 (the umask can
/// only take bits away from that). Existing directories are left alone.
pub fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR)
        .create(dir)
}

/// Why a state directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    #[error(
        "{} belongs to uid {owner}, not to you (uid {me}): recast keeps its state private to its user; \
         set RECAST_CACHE_DIR (or --dir) to a directory of your own",
        dir.display()
    )]
    NotOurs { dir: PathBuf, owner: u32, me: u32 },
    #[error("{} is not a directory; move it away or set RECAST_CACHE_DIR", dir.display())]
    NotADirectory { dir: PathBuf },
    #[error("{}: {source}", dir.display())]
    Io { dir: PathBuf, source: io::Error },
}

/// What [`ensure_private_dir`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Privacy {
    /// Made now, 0700.
    Created,
    /// There already, ours, 0700 or stricter.
    Private,
    /// There already, ours, but open to others (an older recast, a umask
    /// of 000): its mode was this, and is 0700 now.
    Repaired(u32),
}

/// Makes `dir` a private state directory: created 0700 if missing; if it
/// exists, it must be a directory owned by this user (else an error that
/// says what to do), and any group or other bits are removed. Only the
/// directory itself is checked: nobody else can reach what is inside it.
pub fn ensure_private_dir(dir: &Path) -> Result<Privacy, PrivacyError> {
    let io_err = |source| PrivacyError::Io {
        dir: dir.to_path_buf(),
        source,
    };
    let created = match DirBuilder::new().mode(PRIVATE_DIR).create(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            create_private_dir_all(dir).map_err(io_err)?;
            true
        }
        Err(e) => return Err(io_err(e)),
    };
    // symlink_metadata: a link planted in place of the directory is not
    // followed to someone else's.
    let meta = std::fs::symlink_metadata(dir).map_err(io_err)?;
    if !meta.is_dir() {
        return Err(PrivacyError::NotADirectory {
            dir: dir.to_path_buf(),
        });
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(PrivacyError::NotOurs {
            dir: dir.to_path_buf(),
            owner: meta.uid(),
            me,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(if created {
            Privacy::Created
        } else {
            Privacy::Private
        });
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(PRIVATE_DIR)).map_err(io_err)?;
    Ok(if created {
        Privacy::Created
    } else {
        Privacy::Repaired(mode)
    })
}

/// Opens `path` for appending, creating it 0600 (and its directory 0700).
pub fn append_private(path: &Path) -> io::Result<File> {
    let open = || {
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(PRIVATE_FILE)
            .open(path)
    };
    // The directory is made only when missing: every compile appends its
    // stats line, and two calls to find it there cost more than the write.
    match (open(), path.parent()) {
        (Err(e), Some(dir)) if e.kind() == io::ErrorKind::NotFound => {
            create_private_dir_all(dir)?;
            open()
        }
        (opened, _) => opened,
    }
}

/// Creates (or truncates) `path` with mode 0600, its directory 0700.
pub fn create_private(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        create_private_dir_all(dir)?;
    }
    OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(PRIVATE_FILE)
        .open(path)
}

/// As [`write_atomic`], for recast's own state: the file is 0600 (0700
/// when `executable`) and a missing directory is made 0700.
pub fn write_private(path: &Path, bytes: &[u8], executable: bool) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    create_private_dir_all(dir)?;
    let tmp = temp_name(dir);
    let mode = if executable { 0o700 } else { PRIVATE_FILE };
    let write = || -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)
    };
    write()
        .and_then(|()| std::fs::rename(&tmp, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
}

fn temp_name(dir: &Path) -> PathBuf {
    dir.join(format!(
        ".tmp.{}.{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ))
}

/// Writes `bytes` to `path` through a temp file in the same directory and
/// a rename, so a reader sees the old contents or the new, never a part.
/// The directory is created if missing.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = temp_name(dir);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Renames `tmp` over `dest`, removing a file already at `dest` first.
///
/// A rename over an existing file makes ext4 (and btrfs) start writing the
/// new file's data at once, in the caller's time: 0.3 ms a hit here, more
/// than the rest of a hit's writing. With the old name removed first the
/// rename replaces nothing, and the data is written back as any other.
/// `dest` is still never seen half-written: it is absent for a moment, then
/// whole. A directory at `dest` is left for the rename to refuse.
pub fn rename_replacing(tmp: &Path, dest: &Path) -> io::Result<()> {
    match std::fs::remove_file(dest) {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::IsADirectory
            ) => {}
        Err(e) => return Err(e),
    }
    std::fs::rename(tmp, dest)
}

/// Writes `bytes` to `path` as a new file: through a temp file in the same
/// directory, the old file removed, then renamed into place
/// ([`rename_replacing`]): never seen half-written. For a compile's own
/// outputs (a depfile), which a build replaces as often as it compiles.
/// The directory is created if missing, as it is for outputs.
pub fn write_replacing(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = temp_name(dir);
    let written = match std::fs::write(&tmp, bytes) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&tmp, bytes))
        }
        other => other,
    };
    written
        .and_then(|()| rename_replacing(&tmp, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
}

/// The directory `dir` as `std::fs::canonicalize` spells it (absolute, no
/// link on the way), created first if missing. On Linux the kernel names
/// the opened directory (`/proc/self/fd`): three calls, where resolving
/// each component takes one per component.
pub fn real_dir(dir: &Path) -> io::Result<PathBuf> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{Mode, OFlags};
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = match rustix::fs::open(dir, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => {
                std::fs::create_dir_all(dir)?;
                rustix::fs::open(dir, flags, Mode::empty())?
            }
            Err(e) => return Err(e.into()),
        };
        let named = std::fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&fd)
        ));
        if let Ok(p) = named
            && p.is_absolute()
            && !p.as_os_str().as_encoded_bytes().ends_with(b" (deleted)")
        {
            return Ok(p);
        }
    }
    std::fs::create_dir_all(dir)?;
    std::fs::canonicalize(dir)
}

/// Seconds since the epoch (0 if the clock is before it).
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Nanoseconds since the epoch, as file times count them.
pub fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replacing_write_makes_a_new_file_and_leaves_no_temp_file() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/file.d");
        write_replacing(&p, b"one").unwrap();
        let linked = dir.path().join("old");
        std::fs::hard_link(&p, &linked).unwrap();
        write_replacing(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(
            std::fs::read(&linked).unwrap(),
            b"one",
            "a new file, not written through"
        );
        assert_ne!(
            std::fs::metadata(&p).unwrap().ino(),
            std::fs::metadata(&linked).unwrap().ino()
        );
        let names: Vec<_> = std::fs::read_dir(dir.path().join("a/b"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["file.d"]);
        std::fs::create_dir(dir.path().join("a/b/dir.d")).unwrap();
        assert!(write_replacing(&dir.path().join("a/b/dir.d"), b"x").is_err());
        assert!(
            dir.path().join("a/b/dir.d").is_dir(),
            "a directory is left whole"
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("a/b")).unwrap().count(),
            2,
            "no temp file"
        );
    }

    #[test]
    fn a_real_dir_is_canonicalize_s_spelling_and_is_made_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        let made = dir.path().join("x/y");
        assert_eq!(
            real_dir(&made).unwrap(),
            std::fs::canonicalize(&made).unwrap()
        );
        std::os::unix::fs::symlink(dir.path().join("x"), dir.path().join("l")).unwrap();
        let through = dir.path().join("l/./y/../y");
        assert_eq!(
            real_dir(&through).unwrap(),
            std::fs::canonicalize(&made).unwrap()
        );
        std::fs::write(dir.path().join("f"), b"").unwrap();
        assert!(
            real_dir(&dir.path().join("f")).is_err(),
            "a file is not a directory"
        );
    }

    #[test]
    fn an_atomic_write_creates_the_directory_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/file");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("a/b"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["file"]);
        assert!(now_secs() > 1_700_000_000);
        assert!(now_ns() > i128::from(now_secs()) * 1_000_000_000 - 1_000_000_000);
    }

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn private_state_is_private_and_a_loose_directory_is_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("a/state");
        assert_eq!(ensure_private_dir(&state).unwrap(), Privacy::Created);
        assert_eq!(mode(&state), 0o700);
        assert_eq!(ensure_private_dir(&state).unwrap(), Privacy::Private);
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(
            ensure_private_dir(&state).unwrap(),
            Privacy::Repaired(0o777)
        );
        assert_eq!(mode(&state), 0o700);

        write_private(&state.join("sub/f"), b"x", false).unwrap();
        write_private(&state.join("sub/prog"), b"x", true).unwrap();
        append_private(&state.join("log")).unwrap();
        create_private(&state.join("out")).unwrap();
        assert_eq!(mode(&state.join("sub")), 0o700);
        assert_eq!(mode(&state.join("sub/f")), 0o600);
        assert_eq!(mode(&state.join("sub/prog")), 0o700);
        assert_eq!(mode(&state.join("log")), 0o600);
        assert_eq!(mode(&state.join("out")), 0o600);

        let file = dir.path().join("file");
        std::fs::write(&file, b"").unwrap();
        let e = ensure_private_dir(&file).unwrap_err();
        assert!(matches!(e, PrivacyError::NotADirectory { .. }), "{e}");
        // A symlink to a directory is refused, not followed.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&state, &link).unwrap();
        assert!(ensure_private_dir(&link).is_err());
    }
}
