//! An exclusive advisory lock on a file (`flock(2)`, through
//! [`File::lock`]), held until drop:
//! how concurrent recast processes take turns (starting the embedded
//! server, uploading one toolchain once).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// An exclusive `flock` on a file, released on drop (or when the process
/// dies, which a lock file left behind cannot outlive).
pub struct FileLock(File);

impl FileLock {
    /// Waits for the lock on `path`, creating the file (and its directory)
    /// if needed.
    pub fn take(path: &Path) -> io::Result<FileLock> {
        let file = open(path)?;
        file.lock()?;
        Ok(FileLock(file))
    }

    /// The lock on `path` if nobody holds it now; `None` if someone does.
    pub fn try_take(path: &Path) -> io::Result<Option<FileLock>> {
        let file = open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(FileLock(file))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

/// The lock file at `path`, created (with its directory) if needed.
fn open(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        crate::fsutil::create_private_dir_all(dir)?;
    }
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(crate::fsutil::PRIVATE_FILE)
        .open(path)
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Closing alone would not do: a child another thread forked holds
        // a copy of the descriptor until it execs, and the lock with it.
        let _ = self.0.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_taker_waits_for_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/x.lock");
        let first = FileLock::take(&path).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let p = path.clone();
        let t = std::thread::spawn(move || {
            let _second = FileLock::take(&p).unwrap();
            tx.send(()).unwrap();
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(100))
                .is_err()
        );
        assert!(
            FileLock::try_take(&path).unwrap().is_none(),
            "held, yet taken"
        );
        drop(first);
        rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        t.join().unwrap();
    }
}
