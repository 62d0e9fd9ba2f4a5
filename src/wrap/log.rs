//! The wrapper's warnings: never on stderr, which belongs to the compiler
//! (a configure script may read it), but appended to
//! `<cache dir>/warnings.log`, one timestamped line each, and logged at
//! `RECAST_LOG=warn`. `recast stats` says when there are some.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The warnings log in `cache_dir`.
pub fn path(cache_dir: &Path) -> PathBuf {
    cache_dir.join("warnings.log")
}

/// Appends `message` (one `write` on an `O_APPEND` file, so lines from
/// parallel compiles never interleave). Failing to write costs only the
/// line.
pub fn warn(cache_dir: &Path, message: &str) {
    tracing::warn!("{message}");
    let line = format!(
        "{} recast[{}]: {}\n",
        crate::fsutil::now_secs(),
        std::process::id(),
        message.replace('\n', " ")
    );
    let write = || -> std::io::Result<()> {
        crate::fsutil::append_private(&path(cache_dir))?.write_all(line.as_bytes())
    };
    let _ = write();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_appended_a_line_each() {
        let dir = tempfile::tempdir().unwrap();
        warn(dir.path(), "one");
        warn(dir.path(), "two\nlines");
        let text = std::fs::read_to_string(path(dir.path())).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with(": one"), "{text}");
        assert!(lines[1].ends_with(": two lines"), "{text}");
    }
}
