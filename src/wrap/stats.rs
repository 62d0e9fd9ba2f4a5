//! Wrapper statistics, kept per user and safe under many concurrent
//! wrapper processes.
//!
//! Each wrapped compile appends one JSON line to `<cache dir>/stats.jsonl`
//! with a single `write(2)` on a file opened with `O_APPEND`, which Linux
//! applies atomically for regular files, so lines from parallel `make -j`
//! jobs never interleave and no lock is taken on the hot path. `recast
//! stats` sums the lines; `--zero` truncates the file. Failing to record
//! costs only the figure, never the compile.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const FILE: &str = "stats.jsonl";

/// How one wrapped compile went.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The compiler's family, as decided (`toolchain::local::family`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// Ran on the server (not answered from the cache).
    #[serde(default, skip_serializing_if = "is_false")]
    pub remote: bool,
    /// Answered from the action cache.
    #[serde(default, skip_serializing_if = "is_false")]
    pub hit: bool,
    /// A hit read from the server's store on this machine, with no call.
    #[serde(default, skip_serializing_if = "is_false")]
    pub local_hit: bool,
    /// The compiler failed on the server (a genuine error, replayed or
    /// confirmed here).
    #[serde(default, skip_serializing_if = "is_false")]
    pub failed: bool,
    /// The compiler failed on the server but succeeded here, whose result
    /// was kept: recast missed something the compile needs.
    #[serde(default, skip_serializing_if = "is_false")]
    pub false_failure: bool,
    /// The action that failed remotely (for the warning; not recorded).
    #[serde(skip)]
    pub action: Option<String>,
    /// Ran with the workers' build of the compiler, from the registry.
    #[serde(default, skip_serializing_if = "is_false")]
    pub registry: bool,
    /// A host unit built here whose twin was built for the workers.
    #[serde(default, skip_serializing_if = "is_false")]
    pub twin: bool,
    /// Host-unit crate files replaced by their twins in the input root.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub swaps: u64,
    /// A miss compiled here before any scan, listing what it read itself
    /// (the embedded default's first build).
    #[serde(default, skip_serializing_if = "is_false")]
    pub compiled_first: bool,
    /// Ran locally by design: why (a stats key, e.g. `linking`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    /// Ran locally after a remote failure: the cause (e.g. `unreachable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// Compiled here, its result kept in the local tier and left to the
    /// outbox for the server (`RECAST_PUBLISH`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub queued: bool,
    /// Not a compile: the outbox's publisher sent a queued result (`up`
    /// counts its blobs).
    #[serde(default, skip_serializing_if = "is_false")]
    pub published: bool,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub up: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub down: u64,
    /// For a hit: how long the original execution took, less the time
    /// the hit took.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub saved_ms: u64,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Event {
    pub(crate) fn local(reason: super::why::Reason) -> Event {
        Event {
            local: Some(reason.key().to_string()),
            ..Event::default()
        }
    }

    pub(crate) fn fallback(cause: super::why::Cause) -> Event {
        Event {
            fallback: Some(cause.key().into_owned()),
            ..Event::default()
        }
    }
}

/// The sums `recast stats` prints. Field names are a contract: scripts
/// read them from `--json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Compiles, remote executions, hits, local runs, fallbacks and
    /// compile errors, as top-level fields of the JSON.
    #[serde(flatten)]
    pub counts: Counts,
    /// Remote compiles that failed where a local compile succeeded; the
    /// local result was kept (see `<cache dir>/warnings.log`).
    pub remote_false_failures: u64,
    /// Compiles run with the workers' build of the compiler (registry).
    pub registry_toolchains: u64,
    /// Cache hits read from the server's store on this machine without a
    /// call (part of `cache_hits`; the rest came from the server).
    pub local_hits: u64,
    /// Misses compiled here before any scan (part of `local_runs`): the
    /// compile listed what it read itself.
    #[serde(default)]
    pub compiled_first: u64,
    /// Host units built here and again, as twins, for the workers.
    pub twin_builds: u64,
    /// Host-unit crate files the workers' compiles got as twins.
    pub twin_swaps: u64,
    /// Results of compiles run here that were left to the background
    /// publisher (`RECAST_PUBLISH`), and those it has sent.
    #[serde(default)]
    pub results_queued: u64,
    #[serde(default)]
    pub results_published_later: u64,
    pub bytes_uploaded: u64,
    pub bytes_downloaded: u64,
    pub time_saved_ms: u64,
    pub local_reasons: BTreeMap<String, u64>,
    pub fallback_causes: BTreeMap<String, u64>,
    /// The main counts per compiler family (`gcc`, `clang`, `zig`,
    /// `rustc`), as sccache splits C/C++ from Rust.
    pub by_family: BTreeMap<String, Counts>,
}

/// What became of compiles: overall, or one family's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub compiles: u64,
    pub remote_executions: u64,
    pub cache_hits: u64,
    pub local_runs: u64,
    pub fallbacks: u64,
    /// Remote executions whose compiler exited non-zero (and did here too).
    pub compile_errors: u64,
}

impl Counts {
    fn add(&mut self, e: &Event) {
        self.compiles += 1;
        self.remote_executions += u64::from(e.remote);
        self.cache_hits += u64::from(e.hit);
        self.local_runs += u64::from(e.local.is_some());
        self.fallbacks += u64::from(e.fallback.is_some());
        self.compile_errors += u64::from(e.failed);
    }
}

impl Stats {
    pub fn add(&mut self, e: &Event) {
        self.bytes_uploaded += e.up;
        if e.published {
            self.results_published_later += 1;
            return;
        }
        self.results_queued += u64::from(e.queued);
        self.counts.add(e);
        self.remote_false_failures += u64::from(e.false_failure);
        self.registry_toolchains += u64::from(e.registry);
        self.local_hits += u64::from(e.local_hit);
        self.compiled_first += u64::from(e.compiled_first);
        self.twin_builds += u64::from(e.twin);
        self.twin_swaps += e.swaps;
        if let Some(r) = &e.local {
            *self.local_reasons.entry(r.clone()).or_default() += 1;
        }
        if let Some(c) = &e.fallback {
            *self.fallback_causes.entry(c.clone()).or_default() += 1;
        }
        self.bytes_downloaded += e.down;
        self.time_saved_ms += e.saved_ms;
        if let Some(f) = &e.family {
            self.by_family.entry(f.clone()).or_default().add(e);
        }
    }

    /// Sums the lines of a stats file; unreadable lines (a crash mid-write
    /// on a filesystem without atomic appends) are skipped.
    pub fn parse(text: &str) -> Stats {
        let mut s = Stats::default();
        for line in text.lines() {
            if let Ok(e) = serde_json::from_str::<Event>(line) {
                s.add(&e);
            }
        }
        s
    }
}

fn path(cache_dir: &Path) -> PathBuf {
    cache_dir.join(FILE)
}

/// Appends `event`; errors are logged, never returned.
pub fn record(cache_dir: &Path, event: &Event) {
    let mut line = serde_json::to_vec(event).expect("an event serializes");
    line.push(b'\n');
    let p = path(cache_dir);
    let write = || -> std::io::Result<()> { crate::fsutil::append_private(&p)?.write_all(&line) };
    if let Err(e) = write() {
        super::log::warn(
            cache_dir,
            &format!("cannot record stats in {}: {e}", p.display()),
        );
    }
}

/// The sums so far.
pub fn read(cache_dir: &Path) -> std::io::Result<Stats> {
    match std::fs::read_to_string(path(cache_dir)) {
        Ok(text) => Ok(Stats::parse(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Stats::default()),
        Err(e) => Err(e),
    }
}

/// Starts the counts again from zero.
pub fn zero(cache_dir: &Path) -> std::io::Result<()> {
    match std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path(cache_dir))
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_sum_by_kind_reason_and_cause() {
        let dir = tempfile::tempdir().unwrap();
        record(
            dir.path(),
            &Event {
                family: Some("gcc".into()),
                remote: true,
                up: 10,
                down: 5,
                ..Event::default()
            },
        );
        record(
            dir.path(),
            &Event {
                family: Some("rustc".into()),
                hit: true,
                down: 7,
                saved_ms: 40,
                ..Event::default()
            },
        );
        record(
            dir.path(),
            &Event::local(super::super::why::Reason::Parsed("linking")),
        );
        record(
            dir.path(),
            &Event::local(super::super::why::Reason::Parsed("linking")),
        );
        record(
            dir.path(),
            &Event::fallback(super::super::why::Cause::Unreachable),
        );
        let s = read(dir.path()).unwrap();
        assert_eq!(s.counts.compiles, 5);
        assert_eq!((s.counts.remote_executions, s.counts.cache_hits), (1, 1));
        assert_eq!((s.counts.local_runs, s.counts.fallbacks), (2, 1));
        assert_eq!((s.bytes_uploaded, s.bytes_downloaded), (10, 12));
        assert_eq!(s.time_saved_ms, 40);
        assert_eq!(s.local_reasons["linking"], 2);
        assert_eq!(s.fallback_causes["unreachable"], 1);
        assert_eq!(
            s.by_family.len(),
            2,
            "events without a family are in no row"
        );
        assert_eq!(
            (
                s.by_family["gcc"].compiles,
                s.by_family["gcc"].remote_executions
            ),
            (1, 1)
        );
        assert_eq!(
            (
                s.by_family["rustc"].compiles,
                s.by_family["rustc"].cache_hits
            ),
            (1, 1)
        );
        let json = serde_json::to_value(&s).unwrap();
        for key in [
            "compiles",
            "remote_executions",
            "cache_hits",
            "local_runs",
            "fallbacks",
            "bytes_uploaded",
            "bytes_downloaded",
            "remote_false_failures",
        ] {
            assert!(json[key].is_u64(), "{key} in {json}");
        }
        assert!(json["local_reasons"].is_object() && json["fallback_causes"].is_object());
        assert!(
            json["by_family"]["gcc"]["remote_executions"].is_u64(),
            "{json}"
        );
        zero(dir.path()).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Stats::default());
    }

    #[test]
    fn a_torn_line_is_skipped() {
        let s = Stats::parse("{\"hit\":true}\n{\"remo\n{\"local\":\"x\"}\n");
        assert_eq!(s.counts.compiles, 2);
    }

    #[test]
    fn parallel_writers_lose_no_line() {
        let dir = tempfile::tempdir().unwrap();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let d = dir.path().to_path_buf();
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        record(
                            &d,
                            &Event::local(super::super::why::Reason::Parsed("linking")),
                        );
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(read(dir.path()).unwrap().counts.local_runs, 1600);
    }
}
