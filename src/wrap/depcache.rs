//! The dependency scan's results, remembered and revalidated by stat
//! (ccache's direct mode).
//!
//! Key: everything that decides which files a compile reads — the
//! toolchain's root digest, the compiler path, every argument, the working
//! directory, and the environment variables the compiler consults (each
//! caller lists them). Value: every file the scan listed, with its stat and
//! digest, plus the depfile text the compile must leave behind. A lookup
//! stats each listed file; any difference in size, mtime, ctime or inode is
//! a miss, and the scan runs again. ctime cannot be set by `touch`, so a
//! file rewritten with the same size and a forged mtime is still noticed.
//! An entry is not stored when a file changed shortly before or while it
//! was hashed (its ctime is within [`RACE_MARGIN_NS`] of the scan's start:
//! file times come from a coarse kernel clock, so two writes in one tick
//! share a ctime), so a racing edit cannot be recorded under its old
//! digest.
//!
//! What a stat cannot see: a new header that would now shadow a listed one
//! earlier on the include path. ccache has the same blind spot; `recast
//! stats --zero` does not clear the cache, but removing
//! `<cache dir>/deps` does.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cas::Digest;

/// Bumped when entries change meaning.
pub const SCHEMA: u32 = 2;

/// How recent a change must be to make a file's stamp untrustworthy.
pub const RACE_MARGIN_NS: i128 = 50_000_000;

/// How long before a compile started its files must have last changed
/// for its result to be the one their digests, read after it ended, name.
/// A write during the compile gets a file time from the kernel's coarse
/// clock, at most one tick behind: twice the tick is enough (ten
/// milliseconds at least). A stamp this old is not yet one to skip a scan
/// by ([`RACE_MARGIN_NS`]: two writes within one tick share it).
pub fn written_before_margin_ns() -> i128 {
    coarse_tick_ns().map_or(RACE_MARGIN_NS, |tick| {
        (2 * tick).clamp(10_000_000, RACE_MARGIN_NS)
    })
}

/// The resolution of the clock file times come from.
#[cfg(target_os = "linux")]
fn coarse_tick_ns() -> Option<i128> {
    let t = rustix::time::clock_getres(rustix::time::ClockId::RealtimeCoarse);
    Some(i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec))
}

#[cfg(not(target_os = "linux"))]
fn coarse_tick_ns() -> Option<i128> {
    None
}

/// What a stat says about a file: equal stamps, same content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub ino: u64,
}

impl Stamp {
    pub fn of(m: &std::fs::Metadata) -> Stamp {
        Stamp {
            size: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
            ino: m.ino(),
        }
    }
}

/// One file a compile reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// As the compiler spelled it (relative to the working directory, or
    /// absolute): whether a compile can see its location depends on it.
    pub spelled: String,
    /// Absolute, normalized lexically (not resolved through links).
    pub path: PathBuf,
    pub stamp: Stamp,
    pub digest: Digest,
    pub executable: bool,
    /// Its text names the file it is in (`__FILE__`, `__BASE_FILE__`):
    /// a compile reading it by an absolute path sees its location.
    #[serde(default)]
    pub names_file: bool,
}

/// What a source or header says to name the file it is in.
pub const FILE_MACROS: [&[u8]; 2] = [b"__FILE__", b"__BASE_FILE__"];

/// What a scan found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub schema: u32,
    pub files: Vec<Seen>,
    /// The dependency file the compile writes (`-MD`), exactly.
    pub depfile: Option<String>,
    /// See `Scanned::sees_location`.
    #[serde(default)]
    pub sees_location: bool,
}

/// A compile seen through to a result: what it takes to answer the same
/// compile from the action cache without packaging the toolchain or
/// building the input root again (the wrapper's hit path). Written with
/// each file [`Seen`] whole; the hit path reads it as [`FastHit`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Fast<Files = Vec<Seen>> {
    pub schema: u32,
    /// The action whose result is in the cache.
    pub action: Digest,
    /// Its output files, relative to the remote working directory.
    pub outputs: Vec<String>,
    /// Where they land here (`None`: beside the working directory).
    #[serde(default)]
    pub landing: Option<super::on_server::Landing>,
    /// The files the compile reads (as the scan found them).
    pub files: Files,
    /// The compiler and the toolchain's programs (cc1, as, …): a changed
    /// one means another toolchain, so the slow path decides again.
    pub tools: Vec<(PathBuf, Stamp)>,
    pub depfile: Option<String>,
}

/// A [`Fast`] entry as the hit path reads it: its file list is kept as
/// text until [`FastHit::unchanged`] reads of each file only where it is
/// and its stamp (its digest and spelling are skipped, not parsed), so the
/// lookup goes out after the short part is read.
pub type FastHit = Fast<Box<serde_json::value::RawValue>>;

/// A [`Seen`] as the hit path reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamped {
    path: PathBuf,
    stamp: Stamp,
}

/// The fast entry for `key` as it was stored, unchecked: nothing may be
/// answered from it before [`FastHit::unchanged`] says so.
pub fn read_fast(cache_dir: &Path, key: &Digest) -> Option<FastHit> {
    let bytes = std::fs::read(fast_path(cache_dir, key)).ok()?;
    let fast: FastHit = serde_json::from_slice(&bytes).ok()?;
    (fast.schema == SCHEMA).then_some(fast)
}

impl FastHit {
    /// Whether every file and tool the entry lists has its stamp still.
    pub fn unchanged(&self) -> bool {
        let same = |p: &Path, s: &Stamp| std::fs::metadata(p).is_ok_and(|m| Stamp::of(&m) == *s);
        let Ok(files) = serde_json::from_str::<Vec<Stamped>>(self.files.get()) else {
            return false;
        };
        self.tools.iter().all(|(p, s)| same(p, s)) && files.iter().all(|f| same(&f.path, &f.stamp))
    }
}

/// Remembers a fast entry, unless a file in it changed too recently to
/// trust its stamp.
pub fn store_fast(cache_dir: &Path, key: &Digest, fast: &Fast) {
    let limit = now_ns() - RACE_MARGIN_NS;
    if fast
        .files
        .iter()
        .any(|f| f.stamp.ctime_ns >= limit || f.stamp.mtime_ns >= limit)
    {
        return;
    }
    save(cache_dir, &fast_path(cache_dir, key), fast);
}

/// What is remembered of a compile (by its hit-path key) beyond its
/// result.
#[derive(Clone, Copy, Debug)]
pub enum Mark {
    /// It sees where it runs: its project root never moves again (see
    /// `placement`).
    Located,
    /// Its outputs name the relocated working directory: it runs here on
    /// servers that get the relocated layout.
    Unrelocatable,
}

impl Mark {
    fn suffix(self) -> &'static str {
        match self {
            Mark::Located => "located",
            Mark::Unrelocatable => "unrelocatable",
        }
    }
}

/// Remembers `mark` of the compile of hit-path key `key`.
pub fn mark(cache_dir: &Path, key: &Digest, mark: Mark) {
    let path = keyed_path(cache_dir, key, mark.suffix());
    if let Err(e) = crate::fsutil::write_private(&path, b"", false) {
        unsaved(cache_dir, &path, &e);
    }
}

/// A record that could not be written costs only the record (the next
/// compile does the work again), but says so where warnings go: a full
/// disk or a read-only cache dir should not pass unseen.
fn unsaved(cache_dir: &Path, path: &Path, e: &std::io::Error) {
    super::log::warn(
        cache_dir,
        &format!(
            "cannot store {}: {e}; recast works on, but slower",
            path.display()
        ),
    );
}

/// Whether [`mark`] said `mark` of `key`.
pub fn is_marked(cache_dir: &Path, key: &Digest, mark: Mark) -> bool {
    keyed_path(cache_dir, key, mark.suffix()).exists()
}

fn fast_path(cache_dir: &Path, key: &Digest) -> PathBuf {
    keyed_path(cache_dir, key, "fast.json")
}

/// `<cache>/deps/ab/cdef….suffix` for the key `abcdef…`.
fn keyed_path(cache_dir: &Path, key: &Digest, suffix: &str) -> PathBuf {
    let hex = key.hex();
    cache_dir
        .join("deps")
        .join(&hex[..2])
        .join(format!("{}.{suffix}", &hex[2..40]))
}

/// Writes `value` as JSON to `path` (under `cache_dir`), atomically;
/// failing costs only the record, so it is a warning, not an error.
pub fn save(cache_dir: &Path, path: &Path, value: &impl Serialize) {
    let bytes = serde_json::to_vec(value).expect("a record serializes");
    if let Err(e) = crate::fsutil::write_private(path, &bytes, false) {
        unsaved(cache_dir, path, &e);
    }
}

/// The stamp of `path` (following symlinks), if it exists.
pub fn stamp(path: &Path) -> Option<Stamp> {
    std::fs::metadata(path).ok().map(|m| Stamp::of(&m))
}

/// The key of a compile, from its parts (each length-prefixed, so no two
/// part lists collide).
pub fn key(parts: &[&[u8]]) -> Digest {
    let mut buf = Vec::new();
    buf.extend_from_slice(&SCHEMA.to_le_bytes());
    for p in parts {
        buf.extend_from_slice(&(p.len() as u64).to_le_bytes());
        buf.extend_from_slice(p);
    }
    Digest::of_bytes(&buf)
}

fn entry_path(cache_dir: &Path, key: &Digest) -> PathBuf {
    keyed_path(cache_dir, key, "json")
}

/// Whether an entry for `key` was ever stored, up to date or not, or
/// [`listed`] said the compile was seen.
pub fn known(cache_dir: &Path, key: &Digest) -> bool {
    entry_path(cache_dir, key).exists() || keyed_path(cache_dir, key, "listed").exists()
}

/// Remembers that the compile of scan key `key` was seen, though its list
/// was too fresh to store (a file written just before it, as a build
/// script's): the next one scans first.
pub fn listed(cache_dir: &Path, key: &Digest) {
    let path = keyed_path(cache_dir, key, "listed");
    if let Err(e) = crate::fsutil::write_private(&path, b"", false) {
        unsaved(cache_dir, &path, &e);
    }
}

/// The entry for `key` if every file it lists is unchanged.
pub fn lookup(cache_dir: &Path, key: &Digest) -> Option<Entry> {
    let bytes = std::fs::read(entry_path(cache_dir, key)).ok()?;
    let entry: Entry = serde_json::from_slice(&bytes).ok()?;
    if entry.schema != SCHEMA {
        return None;
    }
    for f in &entry.files {
        let m = std::fs::metadata(&f.path).ok()?;
        if Stamp::of(&m) != f.stamp {
            tracing::debug!("{} changed since the last scan", f.path.display());
            return None;
        }
    }
    Some(entry)
}

/// Hashes `path` and returns what [`Seen`] records, or `None` when the
/// file changed while it was read (`since_ns`: when the scan started).
pub fn see(path: &Path, since_ns: i128) -> std::io::Result<(Seen, bool)> {
    let before = std::fs::metadata(path)?;
    let (digest, names_file) = crate::cas::hash::digest_file_finding(path, &FILE_MACROS)?;
    let after = std::fs::metadata(path)?;
    let stamp = Stamp::of(&after);
    let stable = Stamp::of(&before) == stamp
        && stamp.ctime_ns < since_ns - RACE_MARGIN_NS
        && stamp.mtime_ns < since_ns - RACE_MARGIN_NS;
    Ok((
        Seen {
            spelled: path.to_string_lossy().into_owned(),
            path: path.to_path_buf(),
            stamp,
            digest,
            executable: std::os::unix::fs::PermissionsExt::mode(&after.permissions()) & 0o111 != 0,
            names_file,
        },
        stable,
    ))
}

/// The files compiles with probe key `key` read that their `-H` trace
/// does not show, as a probe listed them (`scan::preincluded`).
pub fn preincluded(cache_dir: &Path, key: &Digest) -> Option<Vec<String>> {
    let bytes = std::fs::read(keyed_path(cache_dir, key, "pre")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Remembers a probe's list under `key`; failing costs only a probe.
pub fn store_preincluded(cache_dir: &Path, key: &Digest, files: &[String]) {
    save(cache_dir, &keyed_path(cache_dir, key, "pre"), &files);
}

/// Remembers `entry` under `key`; failing costs only the next scan.
pub fn store(cache_dir: &Path, key: &Digest, entry: &Entry) {
    save(cache_dir, &entry_path(cache_dir, key), entry);
}

pub use crate::fsutil::now_ns;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hit_path_reads_a_fast_entry_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.h");
        std::fs::write(&file, b"#define A 1\n").unwrap();
        let stamp = stamp(&file).unwrap();
        let (seen, _) = see(&file, now_ns()).unwrap();
        let fast = Fast {
            schema: SCHEMA,
            action: Digest::of_bytes(b"action"),
            outputs: vec!["a.o".into()],
            landing: None,
            files: vec![seen],
            tools: vec![(file.clone(), stamp)],
            depfile: Some("a.o: a.h\n".into()),
        };
        let key = Digest::of_bytes(b"key");
        std::fs::create_dir_all(fast_path(dir.path(), &key).parent().unwrap()).unwrap();
        save(dir.path(), &fast_path(dir.path(), &key), &fast);
        let hit = read_fast(dir.path(), &key)
            .filter(FastHit::unchanged)
            .expect("unchanged: a hit");
        assert_eq!(
            (hit.action, hit.outputs, hit.depfile),
            (fast.action, fast.outputs, fast.depfile)
        );
        let files: Vec<Stamped> = serde_json::from_str(hit.files.get()).unwrap();
        assert_eq!(files[0].path, file);
        assert_eq!(files[0].stamp, stamp);
        std::fs::write(&file, b"#define A 22\n").unwrap();
        let entry = read_fast(dir.path(), &key).expect("stored");
        assert!(!entry.unchanged(), "a changed file");
    }

    #[test]
    fn a_compiles_files_must_be_older_than_two_clock_ticks_and_ten_ms() {
        let m = written_before_margin_ns();
        assert!((10_000_000..=RACE_MARGIN_NS).contains(&m), "{m}");
        if let Some(tick) = coarse_tick_ns() {
            assert!(
                m >= 2 * tick.min(RACE_MARGIN_NS / 2),
                "{m} for a tick of {tick}"
            );
        }
    }

    #[test]
    fn a_record_that_cannot_be_written_is_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the records' directory should be.
        std::fs::write(dir.path().join("deps"), b"in the way").unwrap();
        mark(dir.path(), &Digest::of_bytes(b"k"), Mark::Located);
        let log = std::fs::read_to_string(super::super::log::path(dir.path())).unwrap();
        assert!(
            log.contains("cannot store") && log.contains("deps"),
            "{log}"
        );
    }

    #[test]
    fn keys_separate_their_parts() {
        assert_ne!(key(&[b"ab", b"c"]), key(&[b"a", b"bc"]));
        assert_eq!(key(&[b"x"]), key(&[b"x"]));
    }

    #[test]
    fn an_entry_holds_until_a_file_changes_even_with_the_same_size_and_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let h = dir.path().join("a.h");
        std::fs::write(&h, "int a;\n").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        let (seen, stable) = see(&h, now_ns()).unwrap();
        assert!(stable);
        assert_eq!(seen.digest, Digest::of_bytes(b"int a;\n"));
        let k = key(&[b"gcc", b"-c", b"a.c"]);
        let e = Entry {
            schema: SCHEMA,
            files: vec![seen.clone()],
            depfile: Some("a.o: a.h\n".into()),
            sees_location: true,
        };
        store(&cache, &k, &e);
        assert_eq!(lookup(&cache, &k), Some(e));
        assert_eq!(lookup(&cache, &key(&[b"other"])), None);

        // Same size, mtime put back: ctime still tells.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&h, "int b;\n").unwrap();
        let f = std::fs::File::options().write(true).open(&h).unwrap();
        let mtime =
            std::time::UNIX_EPOCH + std::time::Duration::from_nanos(seen.stamp.mtime_ns as u64);
        f.set_modified(mtime).unwrap();
        drop(f);
        assert_eq!(
            Stamp::of(&std::fs::metadata(&h).unwrap()).mtime_ns,
            seen.stamp.mtime_ns
        );
        assert_eq!(lookup(&cache, &k), None);
    }

    #[test]
    fn a_file_changed_after_the_scan_started_is_not_stable() {
        let dir = tempfile::tempdir().unwrap();
        let h = dir.path().join("a.h");
        let since = now_ns();
        std::fs::write(&h, "x").unwrap();
        let (_, stable) = see(&h, since).unwrap();
        assert!(!stable);
    }
}
