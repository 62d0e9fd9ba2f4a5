//! A miss compiled here and its result published (cache-only, and the
//! embedded default): at once, listing its reads itself, for a compile
//! never scanned ([`compile_first`]); else after the scan and a lookup
//! ([`cache_only`]). A result is published only when the files it read are
//! the bytes their digests name, and under the unmoved action when its
//! outputs name the project root.

use super::depcache;
use super::family::{FromCompile, Job, Reason, ScanSpec, Scanned};
use super::on_server;
use super::pipeline::{Planned, cached, here_captured, remember, site};
use super::prepare::{self, Move};
use super::publish::{self, Published, publish};
use super::stats::Event;
use super::{Ctx, Flow, Invocation, process, scan};
use crate::cas::Digest;
use crate::config::{Endpoint, Mode};
use crate::invocation::header_trace;

/// A compile that already ran here, before its action was built.
pub(super) struct Compiled {
    code: i32,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    started: std::time::Instant,
    /// Every file it read last changed before it started
    /// (`depcache::written_before_margin_ns`): its result may be published
    /// under the digests read after it ended.
    stable: bool,
}

impl Compiled {
    /// Its result, as the compile's end.
    pub(super) fn ran(self) -> Flow {
        Flow::Ran {
            stdout: self.stdout,
            stderr: self.stderr,
            code: self.code,
            event: Event {
                compiled_first: true,
                ..Event::local(Reason::CacheMiss)
            },
        }
    }
}

/// Cache-only against the embedded server (or any server while the
/// compile's toolchain goes up to it: `uploading`), for a compile whose
/// scan was never stored (a first build): the compile runs here at once, listing
/// what it reads itself (gcc's and clang's `-MD`: the list `-M` gives;
/// under `-MMD`, gcc's `-H` trace where it changes no output, else a `-M`
/// run beside it),
/// instead of a scan, a lookup and then the compile. Such a result can
/// only be in the embedded server's cache from another checkout (a moved
/// project root) or a lost scan cache; a scan costs every first build
/// about a preprocessor run per file. A later build, with the scan
/// stored, looks up first as before. `Ok(None)`: scan first.
pub(super) async fn compile_first(
    ctx: &Ctx,
    inv: &Invocation,
    job: &dyn Job,
    spec: &ScanSpec,
    toolchain_root: Digest,
    uploading: bool,
) -> Result<Option<(Scanned, Compiled)>, Flow> {
    let embedded = ctx.wrap.mode == Mode::CacheOnly && ctx.remote.endpoint == Endpoint::Embedded;
    if !embedded && !uploading {
        return Ok(None);
    }
    let Some(from) = spec.from_compile.clone() else {
        return Ok(None);
    };
    let root = ctx.project_root();
    let env = job.env().to_vec();
    let key = scan::key(&ctx.cwd, inv, spec, &toolchain_root, &env, root.as_deref());
    if depcache::known(&ctx.cache_dir, &key) {
        return Ok(None);
    }
    let tmp_dir = scan::tmp_dir(&ctx.cache_dir).map_err(Flow::local)?;
    let tmp = || {
        tmp_dir.join(format!(
            "dep-{}-{}.d",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ))
    };
    let mut args = job.captured_args(ctx);
    // Where the list is written, and the user's depfile when it is not
    // the list; a -H trace is in the compile's stderr instead.
    let (list_at, users) = match &from {
        FromCompile::Added => {
            let at = tmp();
            args.extend([
                "-MD".into(),
                "-MF".into(),
                at.to_string_lossy().into_owned(),
            ]);
            (Some(at), None)
        }
        FromCompile::Users(path) => (Some(super::placement::opened(&ctx.cwd, path)), None),
        FromCompile::Beside(path) => (Some(tmp()), Some(super::placement::opened(&ctx.cwd, path))),
        FromCompile::Traced { depfile, .. } => {
            args.push("-H".into());
            (None, Some(super::placement::opened(&ctx.cwd, depfile)))
        }
    };
    // The source, often written just before: its digest before and after
    // the compile, if equal, say the compile read those bytes.
    let source = job
        .source()
        .map(|s| super::placement::normalize(&ctx.cwd.join(s)));
    let before = source
        .as_ref()
        .and_then(|s| crate::cas::hash::digest_file(s).ok());
    let since = depcache::now_ns();
    // The list run starts first, and runs while the compile does.
    let beside = match (&from, spec.runs.last(), &list_at) {
        (FromCompile::Beside(_), Some(run), Some(at)) => {
            let mut all = run.clone();
            all.extend((spec.depfile_args)(at));
            Some(process::start(inv, &all, &ctx.cwd))
        }
        (FromCompile::Beside(_), _, _) => return Ok(None),
        _ => None,
    };
    let started = std::time::Instant::now();
    let (code, stdout, mut stderr) = process::run_captured(inv, &args);
    let listed_ok = match beside {
        Some(child) => child.and_then(|mut c| c.wait()).is_ok_and(|s| s.success()),
        None => true,
    };
    // The trace out of the compile's messages.
    let traced = match &from {
        FromCompile::Traced { .. } => match header_trace::split(&stderr) {
            Some(t) => {
                stderr = t.rest;
                Some(t.headers)
            }
            // A precompiled header: the trace lists not all it read. This
            // compile, and the next, scan first.
            None => {
                depcache::listed(&ctx.cache_dir, &key);
                return Ok(None);
            }
        },
        _ => None,
    };
    let list = list_at.as_ref().and_then(|at| {
        let text = std::fs::read_to_string(at);
        if !matches!(from, FromCompile::Users(_)) {
            let _ = std::fs::remove_file(at);
        }
        text.ok()
    });
    // The user's depfile is never an input (`own`), and is the text a hit
    // writes: the compile's own, or else the list.
    let own = users
        .as_ref()
        .or(list_at.as_ref())
        .map(|p| super::placement::normalize(p));
    let kept = users.as_ref().map(std::fs::read_to_string);
    let mut run = Compiled {
        code,
        stdout,
        stderr,
        started,
        stable: false,
    };
    if code != 0 || !listed_ok {
        return Err(run.ran());
    }
    let list = match (&from, list, traced) {
        (
            FromCompile::Traced {
                probe, source_at, ..
            },
            _,
            Some(headers),
        ) => {
            let Some(pre) = scan::preincluded(ctx, inv, job, probe, *source_at, &toolchain_root)
            else {
                return Err(run.ran());
            };
            let main = job.source().map(str::to_string);
            scan::List::Paths(main.into_iter().chain(pre).chain(headers).collect())
        }
        (_, Some(text), _) => scan::List::Depfile(text),
        _ => return Err(run.ran()),
    };
    let kept = match (kept, &list) {
        (Some(Ok(k)), _) => Some(k),
        (Some(Err(_)), _) => return Err(run.ran()),
        (None, scan::List::Depfile(text)) => spec.keep_depfile.then(|| text.clone()),
        (None, scan::List::Paths(_)) => None,
    };
    let listed = scan::Listed {
        kept,
        list,
        since,
        own,
        // Its outputs say whether it saw where it ran (`publish`).
        predict_location: false,
    };
    let scanned = match listed.scanned(&ctx.cache_dir, &key, &ctx.cwd, inv, spec, root.as_deref()) {
        Ok(s) => s,
        Err(_) => return Err(run.ran()),
    };
    let limit = since - depcache::written_before_margin_ns();
    run.stable = scanned.files.iter().all(|f| {
        (f.stamp.mtime_ns < limit && f.stamp.ctime_ns < limit)
            || (before == Some(f.digest)
                && source.as_deref() == Some(&super::placement::normalize(&f.path)))
    });
    // A list too fresh to store (a source a build script wrote just
    // before): the next compile scans and looks up first, rather than
    // compile again.
    if !depcache::known(&ctx.cache_dir, &key) {
        depcache::listed(&ctx.cache_dir, &key);
    }
    Ok(Some((scanned, run)))
}

/// Cache-only: a hit is written (then landed); a miss compiles here and
/// publishes the result, its warnings included, so a later hit shows what
/// this compile showed. `why`: the miss's stats key.
pub(super) async fn cache_only(
    ctx: &Ctx,
    inv: &Invocation,
    job: &dyn Job,
    p: &Planned,
    key: &Digest,
    why: Reason,
) -> Flow {
    let mut event = Event::local(why);
    let (code, stdout, stderr, started, stable) = match &p.compiled {
        Some(run) => {
            event.compiled_first = true;
            if run.code == 0 {
                job.after_local(ctx, inv, &mut event).await;
            }
            let (out, err) = (run.stdout.clone(), run.stderr.clone());
            (run.code, out, err, run.started, run.stable)
        }
        None => {
            if let Some(flow) = cached(ctx, job, p, key, on_server::Ask::Both).await {
                return flow;
            }
            let started = std::time::Instant::now();
            let (code, stdout, stderr) = here_captured(ctx, inv, job, &mut event).await;
            // A file edited since the scan hashed it: the result is not
            // the one its digest says.
            let stable = p
                .scanned
                .files
                .iter()
                .all(|f| depcache::stamp(&f.path).is_some_and(|s| s == f.stamp));
            (code, stdout, stderr, started, stable)
        }
    };
    if code == 0 && stable {
        let streams = publish::Compiled {
            by: "recast cache-only (local compile)",
            stdout: &stdout,
            stderr: &stderr,
        };
        // The next time, a hit from the fast path.
        match publish(
            ctx,
            &p.client,
            &p.prepared,
            key,
            started,
            streams,
            &mut event,
        )
        .await
        {
            Published::Yes => remember(ctx, key, p, &p.prepared),
            // Compiled where the project is, its result is the unmoved
            // action's: stored under that, rather than run again.
            Published::Located => {
                let here = site(ctx, inv, &p.platform, p.features, Move::Never, p.layout)
                    .with(p.launcher.as_ref());
                if let Ok(unmoved) = prepare::build(&here, &p.tools, &p.scanned, &p.spec, job)
                    && publish(ctx, &p.client, &unmoved, key, started, streams, &mut event).await
                        == Published::Yes
                {
                    remember(ctx, key, p, &unmoved);
                }
            }
            Published::No => {}
        }
        if let Some(rooted) = &p.rooted_form {
            publish(
                ctx,
                &p.client,
                &rooted.prepared,
                key,
                started,
                streams,
                &mut event,
            )
            .await;
        }
    }
    Flow::Ran {
        stdout,
        stderr,
        code,
        event,
    }
}
