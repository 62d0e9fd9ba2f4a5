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
use super::{Invocation, placement, process};
use crate::cas::Digest;
use crate::invocation::depfile;

/// The scan of `inv` with `spec`, keyed by everything else that decides
/// what it reads (`root`, the project root, included). `Err` is a local
/// reason.
pub fn run(
    cache: &Path,
    cwd: &Path,
    inv: &Invocation,
    spec: &ScanSpec,
    toolchain_root: &Digest,
    env: &[(String, String)],
    root: Option<&Path>,
) -> Result<Scanned, Reason> {
    let key = key(cwd, inv, spec, toolchain_root, env, root);
    if let Some(e) = depcache::lookup(cache, &key) {
        return Ok(Scanned {
            files: e.files,
            depfile: e.depfile,
            sees_location: e.sees_location,
        });
    }
    let since = depcache::now_ns();
    let tmp_dir = tmp_dir(cache)?;
    let mut texts = Vec::with_capacity(spec.runs.len());
    for args in &spec.runs {
        texts.push(run_once(inv, cwd, &tmp_dir, args, spec.depfile_args)?);
    }
    let list = texts.last().ok_or(Reason::ScanFailed)?.clone();
    let kept = spec
        .keep_depfile
        .then(|| texts.into_iter().next())
        .flatten();
    let listed = Listed {
        list: List::Depfile(list),
        kept,
        since,
        own: None,
        predict_location: true,
    };
    listed.scanned(cache, &key, cwd, inv, spec, root)
}

/// What a gcc compile reads that its `-H` trace does not show: the files
/// it includes before the source (gcc's implicit `stdc-predef.h`), which
/// depend on its arguments alone. Found by `probe`, the list run's
/// arguments, with `-H` and an empty source in place of the one at
/// `source_at`: what its `-M` lists and its trace does not. Kept per
/// toolchain, compiler, working directory, arguments and environment, so
/// a build runs one probe per set of flags. `None`: the probe failed.
pub fn preincluded(
    ctx: &super::Ctx,
    inv: &Invocation,
    job: &dyn super::family::Job,
    probe: &[String],
    source_at: usize,
    toolchain_root: &Digest,
) -> Option<Vec<String>> {
    let cache = &ctx.cache_dir;
    let source = probe.get(source_at)?;
    let mut parts = compiler_parts(inv, toolchain_root, &ctx.cwd);
    parts.push(b"preincluded".to_vec());
    // Of the source, its extension only: it says the language.
    let name = match Path::new(source).extension() {
        Some(ext) => format!("empty.{}", ext.to_string_lossy()),
        None => "empty".to_string(),
    };
    parts.extend(probe.iter().enumerate().map(|(i, a)| match i == source_at {
        true => name.clone().into_bytes(),
        false => a.clone().into_bytes(),
    }));
    parts.extend(
        job.env()
            .iter()
            .map(|(k, v)| format!("{k}={v}").into_bytes()),
    );
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let key = depcache::key(&refs);
    if let Some(files) = depcache::preincluded(cache, &key) {
        return Some(files);
    }
    let dir = tmp_dir(cache).ok()?.join(format!(
        "probe-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let files = (|| {
        crate::fsutil::create_private_dir_all(&dir).ok()?;
        let empty = dir.join(&name);
        std::fs::write(&empty, b"").ok()?;
        let empty = empty.to_string_lossy().into_owned();
        let listed = dir.join("list.d");
        let mut args = probe.to_vec();
        args[source_at] = empty.clone();
        args.extend([
            "-H".into(),
            "-MF".into(),
            listed.to_string_lossy().into_owned(),
        ]);
        let stderr = process::stderr_of(inv, &args, &ctx.cwd)?;
        let traced = crate::invocation::header_trace::split(&stderr)?.headers;
        let text = std::fs::read_to_string(&listed).ok()?;
        let mut files = depfile::prerequisites(&depfile::parse(&text).ok()?);
        files.retain(|f| *f != empty && !traced.contains(f));
        Some(files)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    let files = files?;
    depcache::store_preincluded(cache, &key, &files);
    Some(files)
}

/// `<cache>/tmp`, made private.
pub fn tmp_dir(cache: &Path) -> Result<std::path::PathBuf, Reason> {
    let tmp_dir = cache.join("tmp");
    crate::fsutil::create_private_dir_all(&tmp_dir).map_err(|_| Reason::ScanFailed)?;
    Ok(tmp_dir)
}

/// What a scan's runs, or a compile that listed its reads itself, gave.
pub struct Listed {
    /// The files read.
    pub list: List,
    /// The depfile text a hit writes for the user, where kept.
    pub kept: Option<String>,
    /// When the runs started (`depcache::now_ns`): a file changed since
    /// makes the scan unstable, and it is not stored.
    pub since: i128,
    /// The depfile's own path, where the compile wrote it: never an input
    /// (some rustc versions list it).
    pub own: Option<std::path::PathBuf>,
    /// Preprocess to tell whether the compile sees its location
    /// ([`sees_location`]), before it runs. A compile that already ran is
    /// judged by its outputs instead (they name the project root or not),
    /// which costs no preprocessor run.
    pub predict_location: bool,
}

/// How the files a compile read were listed.
pub enum List {
    /// A depfile's text (a `-M` run's, or the compile's own `-MD`).
    Depfile(String),
    /// The paths, as spelled (a `-H` trace's, [`header_trace`]).
    ///
    /// [`header_trace`]: crate::invocation::header_trace
    Paths(Vec<String>),
}

impl Listed {
    /// The files listed, hashed and stamped, and stored under `key` when
    /// stable.
    pub fn scanned(
        self,
        cache: &Path,
        key: &Digest,
        cwd: &Path,
        inv: &Invocation,
        spec: &ScanSpec,
        root: Option<&Path>,
    ) -> Result<Scanned, Reason> {
        let tmp_dir = tmp_dir(cache)?;
        let since = self.since;
        let mut spelled = match self.list {
            List::Depfile(text) => {
                let parsed = depfile::parse(&text).map_err(|_| Reason::ScanFailed)?;
                depfile::prerequisites(&parsed)
            }
            List::Paths(paths) => paths,
        };
        // Some rustc versions list the depfile they were asked to write.
        spelled.retain(|s| {
            let at = placement::absolute(cwd, s);
            !at.starts_with(&tmp_dir) && self.own.as_ref() != Some(&at)
        });
        spelled.extend(spec.extra.iter().cloned());
        let mut files = Vec::with_capacity(spelled.len());
        let mut stable = true;
        let mut seen = HashSet::new();
        for s in spelled {
            let opened = placement::opened(cwd, &s);
            if !seen.insert(opened.clone()) {
                continue;
            }
            let (f, ok) = depcache::see(&opened, since).map_err(|_| Reason::ScanFailed)?;
            stable &= ok;
            files.push(Seen { spelled: s, ..f });
        }
        let sees_location = self.predict_location
            && root.is_some_and(|r| {
                let r = placement::normalize(&cwd.join(r));
                sees_location(inv, cwd, &tmp_dir, spec, &files, &r)
            });
        let entry = depcache::Entry {
            schema: depcache::SCHEMA,
            files,
            depfile: self.kept,
            sees_location,
        };
        if stable {
            depcache::store(cache, key, &entry);
        }
        Ok(Scanned {
            files: entry.files,
            depfile: entry.depfile,
            sees_location: entry.sees_location,
        })
    }
}

/// Whether the compile expands a macro that names its file (`__FILE__`)
/// to a path inside the project `root`, which a move of the project would
/// change: then its output depends on where the project is. Known before
/// anything runs remotely, instead of from a moved compile's output:
/// - only when a file under `root` names such a macro
///   ([`Seen::names_file`], found while hashing it) and a file under
///   `root` is spelled absolute (a relative spelling expands to a relative
///   path, which moves with the project);
/// - then the compiler preprocesses the source here (`-E -P`, the family's
///   [`ScanSpec::preprocess`]) and the text is searched for the root: a
///   header that defines a logging macro the source never uses, or only
///   under a disabled `DEBUGLEVEL`, does not count.
///
/// A preprocess that fails says yes: the compile stays where it is.
fn sees_location(
    inv: &Invocation,
    cwd: &Path,
    tmp_dir: &Path,
    spec: &ScanSpec,
    files: &[Seen],
    root: &Path,
) -> bool {
    let Some(args) = &spec.preprocess else {
        return false;
    };
    let under = |f: &Seen| f.path.starts_with(root);
    if !files.iter().any(|f| f.names_file && under(f))
        || !files
            .iter()
            .any(|f| under(f) && Path::new(&f.spelled).is_absolute())
    {
        return false;
    }
    let tmp = tmp_dir.join(format!(
        "pp-{}-{}.i",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let mut all = args.clone();
    all.extend(["-o".to_string(), tmp.to_string_lossy().into_owned()]);
    let ok = process::capture(inv, &all, cwd);
    let text = std::fs::read(&tmp);
    let _ = std::fs::remove_file(&tmp);
    match (ok, text) {
        (Ok(true), Ok(t)) => {
            memchr::memmem::find(&t, root.as_os_str().as_encoded_bytes()).is_some()
        }
        _ => true,
    }
}

/// What decides the files a compile reads: the toolchain, the compiler
/// and its name, the working directory, every argument, the observed
/// environment, the project root, and the family's own parts.
pub fn key(
    cwd: &Path,
    inv: &Invocation,
    spec: &ScanSpec,
    toolchain_root: &Digest,
    env: &[(String, String)],
    root: Option<&Path>,
) -> Digest {
    let mut parts = compiler_parts(inv, toolchain_root, cwd);
    parts.push(root.map_or(Vec::new(), |r| r.as_os_str().as_encoded_bytes().to_vec()));
    parts.extend(inv.args.iter().map(|a| a.as_encoded_bytes().to_vec()));
    parts.extend(env.iter().map(|(k, v)| format!("{k}={v}").into_bytes()));
    parts.extend(spec.key.iter().cloned());
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    depcache::key(&refs)
}

/// The first parts of a scan's or a probe's key: which compiler, from
/// which toolchain, called how, where.
fn compiler_parts(inv: &Invocation, toolchain_root: &Digest, cwd: &Path) -> Vec<Vec<u8>> {
    vec![
        inv.family.to_string().into_bytes(),
        toolchain_root.to_string().into_bytes(),
        inv.compiler.as_os_str().as_encoded_bytes().to_vec(),
        inv.argv0.as_encoded_bytes().to_vec(),
        cwd.as_os_str().as_encoded_bytes().to_vec(),
    ]
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
    let ok = process::capture(inv, &all, cwd);
    let text = std::fs::read_to_string(&tmp);
    let _ = std::fs::remove_file(&tmp);
    match ok {
        Ok(true) => text.map_err(|_| Reason::ScanFailed),
        _ => Err(Reason::ScanFailed),
    }
}
