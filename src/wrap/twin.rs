//! Proc-macros across platforms.
//!
//! When this machine's rustc cannot run on the workers (a Mac, Linux
//! workers), cargo still builds *host units* — build scripts, proc-macros
//! and the crates they use — for this machine, and they run here. But the
//! workers' compiles of the *target units* (`--target …`) load those
//! proc-macros, and a Mach-O dylib means nothing to a Linux rustc. So each
//! host unit library, once built here, is built again on the workers for
//! their platform: its *twin*, kept on the server. A record beside the
//! local file names the twin's files (path and digest); a workers' compile
//! that loads the local file gets the twin at its place in the input root
//! instead, and its `--extern` names the twin (`libserde_derive-….so`, not
//! `….dylib`). A dependent that cargo starts while the twin is still being
//! built waits for it; a host unit without a twin (its twin build failed)
//! makes its dependents compile here.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::depcache::{self, Stamp};
use crate::cas::Digest;

/// A file of a twin: where it sits in the input root, and its content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwinFile {
    /// Absolute (the local path, or the workers' name in the same dir).
    pub path: PathBuf,
    pub digest: Digest,
    pub executable: bool,
}

/// Where a host unit's twin stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    /// Being built by this process (cargo may already start a dependent:
    /// it waits).
    Building {
        pid: u32,
    },
    Built(Vec<TwinFile>),
    /// Could not be built: dependents compile here.
    Failed,
}

#[derive(Serialize, Deserialize)]
struct Record {
    /// The local file's stamp when recorded.
    stamp: Stamp,
    state: State,
}

/// How long a dependent waits for a twin another process is building.
const WAIT: std::time::Duration = std::time::Duration::from_secs(600);

fn record_path(cache_dir: &Path, file: &Path) -> PathBuf {
    let d = Digest::of_bytes(file.as_os_str().as_encoded_bytes());
    cache_dir
        .join("twins")
        .join(format!("{}.json", &d.hex()[..32]))
}

/// Records the state of the twin of the host unit whose local files are
/// `outputs`.
pub fn record(cache_dir: &Path, outputs: &[PathBuf], state: &State) {
    for out in outputs {
        let Some(stamp) = depcache::stamp(out) else {
            continue;
        };
        let rec = Record {
            stamp,
            state: state.clone(),
        };
        depcache::save(cache_dir, &record_path(cache_dir, out), &rec);
    }
}

/// What the workers' compiles use in place of a local crate file.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Not a host unit's (a target unit, built for the workers already).
    Native,
    /// A host unit's: its twin.
    Twin(Vec<TwinFile>),
    /// A host unit's without a twin.
    Missing,
}

/// What stands for `file`, waiting while another process still builds its
/// twin (and gives up on one whose builder is gone).
pub fn lookup(cache_dir: &Path, file: &Path) -> Lookup {
    let started = std::time::Instant::now();
    loop {
        let rec = std::fs::read(record_path(cache_dir, file))
            .ok()
            .and_then(|b| serde_json::from_slice::<Record>(&b).ok())
            .filter(|r| depcache::stamp(file).is_some_and(|s| s == r.stamp));
        match rec.map(|r| r.state) {
            None => return Lookup::Native,
            Some(State::Built(t)) => return Lookup::Twin(t),
            Some(State::Failed) => return Lookup::Missing,
            // Our own outputs are never our inputs.
            Some(State::Building { pid }) if pid == std::process::id() => return Lookup::Native,
            Some(State::Building { pid }) => {
                let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
                if !alive || started.elapsed() > WAIT {
                    return Lookup::Missing;
                }
                if started.elapsed() < std::time::Duration::from_millis(60) {
                    tracing::debug!(file = %file.display(), pid, "waiting for its twin");
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }
}

/// The twin file standing for `local` when its names differ (a `.dylib`
/// whose twin is a `.so`): the one in the same directory with the same
/// stem before the extension.
pub fn renamed<'a>(local: &Path, twin: &'a [TwinFile]) -> Option<&'a TwinFile> {
    let stem = local.file_stem()?;
    twin.iter()
        .find(|t| t.path.parent() == local.parent() && t.path.file_stem() == Some(stem))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_say_native_twin_or_missing_until_the_file_changes() {
        let d = tempfile::tempdir().unwrap();
        let cache = d.path().join("cache");
        let lib = d.path().join("libm-1.dylib");
        std::fs::write(&lib, "mach-o").unwrap();
        assert_eq!(lookup(&cache, &lib), Lookup::Native);
        record(&cache, std::slice::from_ref(&lib), &State::Failed);
        assert_eq!(lookup(&cache, &lib), Lookup::Missing);
        // A builder that is gone leaves nothing to wait for.
        record(
            &cache,
            std::slice::from_ref(&lib),
            &State::Building { pid: u32::MAX },
        );
        assert_eq!(lookup(&cache, &lib), Lookup::Missing);
        let twin = vec![TwinFile {
            path: d.path().join("libm-1.so"),
            digest: Digest::of_bytes(b"elf"),
            executable: false,
        }];
        record(
            &cache,
            std::slice::from_ref(&lib),
            &State::Built(twin.clone()),
        );
        assert_eq!(lookup(&cache, &lib), Lookup::Twin(twin.clone()));
        assert_eq!(renamed(&lib, &twin), Some(&twin[0]));
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(&lib, "rebuilt, longer").unwrap();
        assert_eq!(lookup(&cache, &lib), Lookup::Native);
    }
}
