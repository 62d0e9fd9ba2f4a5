//! The dependency scan every family shares: the compiler run here with
//! the family's scan arguments and a temporary depfile (gcc's `-M`,
//! rustc's `--emit=dep-info`), the depfile read, and each file it lists
//! hashed and stamped — or all of it answered from `depcache` when no
//! listed file changed since (ccache's direct mode).
//!
//! Paths are kept as the compiler spelled them ([`Seen::spelled`]) and as
//! it opened them ([`Seen::path`], `..` kept: `a/link/../x` is not `a/x`
//! when `link` is a symlink).

use super::family::Reason;
use std::collections::HashSet;
use std::path::Path;

use super::depcache::{self, Seen};
use super::family::{ScanSpec, Scanned};
use super::{Invocation, local, paths};
use crate::cas::Digest;
use crate::invocation::depfile;

/// The scan of `inv` with `spec`, keyed by everything else that decides
/// what it reads. `Err` is a local reason.
pub fn run(
    cache: &Path,
    cwd: &Path,
    inv: &Invocation,
    spec: &ScanSpec,
    toolchain_root: &Digest,
    env: &[(String, String)],
) -> Result<Scanned, Reason> {
    let key = key(cwd, inv, spec, toolchain_root, env);
    if let Some(e) = depcache::lookup(cache, &key) {
        return Ok(Scanned {
            files: e.files,
            depfile: e.depfile,
        });
    }
    let since = depcache::now_ns();
    let tmp_dir = cache.join("tmp");
    crate::fsutil::create_private_dir_all(&tmp_dir).map_err(|_| Reason::ScanFailed)?;
    let mut texts = Vec::with_capacity(spec.runs.len());
    for args in &spec.runs {
        texts.push(run_once(inv, cwd, &tmp_dir, args, spec.depfile_args)?);
    }
    let list = texts.last().ok_or(Reason::ScanFailed)?;
    let parsed = depfile::parse(list).map_err(|_| Reason::ScanFailed)?;
    let mut spelled = depfile::prerequisites(&parsed);
    // Some rustc versions list the depfile they were asked to write.
    spelled.retain(|s| !paths::absolute(cwd, s).starts_with(&tmp_dir));
    spelled.extend(spec.extra.iter().cloned());
    let mut files = Vec::with_capacity(spelled.len());
    let mut stable = true;
    let mut seen = HashSet::new();
    for s in spelled {
        let opened = paths::opened(cwd, &s);
        if !seen.insert(opened.clone()) {
            continue;
        }
        let (f, ok) = depcache::see(&opened, since).map_err(|_| Reason::ScanFailed)?;
        stable &= ok;
        files.push(Seen { spelled: s, ..f });
    }
    let entry = depcache::Entry {
        schema: depcache::SCHEMA,
        files,
        depfile: spec
            .keep_depfile
            .then(|| texts.into_iter().next())
            .flatten(),
    };
    if stable {
        depcache::store(cache, &key, &entry);
    }
    Ok(Scanned {
        files: entry.files,
        depfile: entry.depfile,
    })
}

/// What decides the files a compile reads: the toolchain, the compiler
/// and its name, the working directory, every argument, the observed
/// environment, and the family's own parts.
fn key(
    cwd: &Path,
    inv: &Invocation,
    spec: &ScanSpec,
    toolchain_root: &Digest,
    env: &[(String, String)],
) -> Digest {
    let mut parts: Vec<Vec<u8>> = vec![
        inv.family.name.as_bytes().to_vec(),
        toolchain_root.to_string().into_bytes(),
        inv.compiler.as_os_str().as_encoded_bytes().to_vec(),
        inv.argv0.as_encoded_bytes().to_vec(),
        cwd.as_os_str().as_encoded_bytes().to_vec(),
    ];
    parts.extend(inv.args.iter().map(|a| a.as_encoded_bytes().to_vec()));
    parts.extend(env.iter().map(|(k, v)| format!("{k}={v}").into_bytes()));
    parts.extend(spec.key.iter().cloned());
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    depcache::key(&refs)
}

/// One scan run: its depfile's text. A failing scan means the compile
/// fails too; it then runs here, where its diagnostics are exact.
fn run_once(
    inv: &Invocation,
    cwd: &Path,
    tmp_dir: &Path,
    args: &[String],
    depfile_args: fn(&Path) -> Vec<String>,
) -> Result<String, Reason> {
    let tmp = tmp_dir.join(format!(
        "scan-{}-{}.d",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let mut all = args.to_vec();
    all.extend(depfile_args(&tmp));
    let ok = local::capture(inv, &all, cwd);
    let text = std::fs::read_to_string(&tmp);
    let _ = std::fs::remove_file(&tmp);
    match ok {
        Ok(true) => text.map_err(|_| Reason::ScanFailed),
        _ => Err(Reason::ScanFailed),
    }
}
