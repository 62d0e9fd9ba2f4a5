//! gcc, g++, clang and clang++ through the wrapper.
//!
//! The compiler's own preprocessor lists what the compile reads (recc's
//! way, not sccache's shipping of preprocessed text): a local `-M` run,
//! remembered by stat in `depcache`, gives every header and the exact
//! depfile `-MD`/`-MMD` would have written, which recast writes itself so
//! the remote command needs no dependency flags. The remote command is the
//! user's, with the compiler replaced by the same path in the shipped
//! toolchain; the input root holds the toolchain, every listed file and
//! every include directory, each at its absolute path (or the project
//! moved, see `paths`).

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use super::depcache::{self, Seen};
use super::paths::{self, Exposure, PathMap};
use super::remote::{Landing, Prepared};
use super::tool::{self, Tool};
use super::{Ctx, Flow, Invocation, flow, inputs, local};
use crate::action::{CommandSpec, Features, OutputSpec};
use crate::cas::Digest;
use crate::config::Mode;
use crate::invocation::gcc::{self, CCompile, CFamily};
use crate::invocation::{Arg, args, depfile, render_all};

/// Environment variables that change what gcc or clang read or write;
/// they join the dependency key and the remote Command.
const COMPILER_ENV: [&str; 9] = [
    "CPATH",
    "C_INCLUDE_PATH",
    "CPLUS_INCLUDE_PATH",
    "OBJC_INCLUDE_PATH",
    "OBJCPLUS_INCLUDE_PATH",
    "SOURCE_DATE_EPOCH",
    "GCC_COLORS",
    "GCC_EXEC_PREFIX",
    "COMPILER_PATH",
];

/// Locale variables: the language and quotes of diagnostics.
const LOCALE_ENV: [&str; 5] = ["LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES"];

/// What the scan found.
struct Scanned {
    files: Vec<Seen>,
    depfile: Option<String>,
}

pub async fn run(ctx: &Ctx, inv: &Invocation, family: CFamily) -> Flow {
    let Some(raw) = inv
        .args
        .iter()
        .map(|a| a.to_str().map(str::to_string))
        .collect::<Option<Vec<_>>>()
    else {
        return Flow::local("non_utf8_argument");
    };
    let cwd = ctx.cwd.clone();
    let args = match args::expand(&raw, &|f| std::fs::read_to_string(cwd.join(f))) {
        Ok(a) => a,
        Err(e) => {
            tracing::debug!("response file: {e}");
            return Flow::local("response_file");
        }
    };
    let argv0 = inv.argv0.to_string_lossy();
    let c = match gcc::parse(&argv0, &args, family) {
        Ok(c) => c,
        Err(l) => {
            tracing::debug!("local: {l}");
            return Flow::local(l.as_str());
        }
    };
    tracing::debug!(elapsed = ?ctx.started.elapsed(), "parsed");
    let env = compiler_env(ctx);
    let fast_key = flow::fast_key(ctx, inv, "cc-fast", &env);
    let cwd = ctx.cwd.clone();
    if let Some(flow) = flow::fast_hit(ctx, &fast_key, &|fast| {
        write_depfile(&cwd, &c, &fast.depfile)
    })
    .await
    {
        return flow;
    }
    let bundle = match flow::toolchain(ctx, &inv.compiler, Vec::new(), false).await {
        Ok(b) => b,
        Err(e) => {
            tracing::info!("cannot package {}: {e:#}", inv.compiler.display());
            return Flow::local("toolchain");
        }
    };
    let toolchain_root = bundle.manifest.root;
    let tool = match tool::for_workers(ctx, bundle).await {
        Ok(t) => t,
        Err(flow) => return flow,
    };
    let platform = match flow::platform_of(ctx, &tool) {
        Ok(p) => p,
        Err(e) => {
            tracing::info!("{e:#}");
            return Flow::local("platform");
        }
    };
    let (client, features) = match flow::server(ctx, &tool, &platform).await {
        Ok(x) => x,
        Err(flow) => return flow,
    };
    let scanned = {
        let (cache, cwd) = (ctx.cache_dir.clone(), ctx.cwd.clone());
        let (inv2, c2, root, env) = (inv.clone(), c.clone(), toolchain_root, env.clone());
        match tokio::task::spawn_blocking(move || scan(&cache, &cwd, &inv2, &c2, &root, &env)).await
        {
            Ok(Ok(s)) => s,
            Ok(Err(reason)) => return Flow::local(reason),
            Err(e) => return Flow::fallback("internal", e),
        }
    };
    let prepared = match prepare(ctx, &c, &tool, &scanned, &platform, features) {
        Ok(p) => p,
        Err(reason) => return Flow::local(reason),
    };
    let landed = || {
        write_depfile(&ctx.cwd, &c, &scanned.depfile)?;
        flow::remember(
            ctx,
            &fast_key,
            flow::tools_of(inv, &tool),
            &prepared,
            &scanned.files,
            scanned.depfile.clone(),
        );
        Ok(())
    };
    if ctx.wrap.mode == Mode::CacheOnly {
        return flow::cache_only(ctx, inv, &client, &prepared, &landed).await;
    }
    flow::execute(ctx, &client, &prepared, false, &landed).await
}

fn compiler_env(ctx: &Ctx) -> Vec<(String, String)> {
    COMPILER_ENV
        .iter()
        .chain(LOCALE_ENV.iter())
        .filter_map(|k| ctx.var(k).map(|v| (k.to_string(), v.to_string())))
        .collect()
}

/// The scan, from the cache or run here. `Err` is a local reason.
fn scan(
    cache: &Path,
    cwd: &Path,
    inv: &Invocation,
    c: &CCompile,
    toolchain_root: &Digest,
    env: &[(String, String)],
) -> Result<Scanned, &'static str> {
    let mut parts: Vec<Vec<u8>> = vec![
        b"cc".to_vec(),
        toolchain_root.to_string().into_bytes(),
        inv.compiler.as_os_str().as_encoded_bytes().to_vec(),
        inv.argv0.as_encoded_bytes().to_vec(),
        cwd.as_os_str().as_encoded_bytes().to_vec(),
    ];
    parts.extend(inv.args.iter().map(|a| a.as_encoded_bytes().to_vec()));
    parts.extend(env.iter().map(|(k, v)| format!("{k}={v}").into_bytes()));
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let key = depcache::key(&refs);
    if let Some(e) = depcache::lookup(cache, &key) {
        return Ok(Scanned {
            files: e.files,
            depfile: e.depfile,
        });
    }

    let since = depcache::now_ns();
    let tmp_dir = cache.join("tmp");
    std::fs::create_dir_all(&tmp_dir).map_err(|_| "scan_failed")?;
    let run_scan = |dep_flags: &[String]| -> Result<String, &'static str> {
        let tmp = tmp_dir.join(format!(
            "scan-{}-{}.d",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let mut sargs = render_all(&c.scan.args, &|p| p.to_string());
        sargs.extend(dep_flags.iter().cloned());
        sargs.push("-MF".into());
        sargs.push(tmp.to_string_lossy().into_owned());
        let captured = local::capture(inv, &sargs, cwd).map_err(|_| "scan_failed");
        let text = std::fs::read_to_string(&tmp);
        let _ = std::fs::remove_file(&tmp);
        // A failing scan means the compile fails as well: locally, its
        // diagnostics are exact.
        if !captured? {
            return Err("scan_failed");
        }
        text.map_err(|_| "scan_failed")
    };
    let text = run_scan(&c.scan.dep_flags)?;
    // -MMD's depfile leaves system headers out (and gcc's implicit
    // stdc-predef.h is in no trace), so the file list takes a -M run.
    let list = if c.depfile.as_ref().is_some_and(|d| !d.system_headers) {
        run_scan(&["-M".to_string()])?
    } else {
        text.clone()
    };
    let parsed = depfile::parse(&list).map_err(|_| "scan_failed")?;
    let mut spelled = depfile::prerequisites(&parsed);
    spelled.extend(
        locale_files(env)
            .into_iter()
            .map(|p| p.to_string_lossy().into_owned()),
    );
    for extra in &c.extra_inputs {
        if !Path::new(&paths::absolute(cwd, extra)).is_file() {
            return Err("extra_input_not_a_file");
        }
        spelled.push(extra.clone());
    }
    let mut files = Vec::with_capacity(spelled.len());
    let mut stable = true;
    let mut seen = std::collections::HashSet::new();
    for s in spelled {
        let abs = paths::absolute(cwd, &s);
        if !seen.insert(abs.clone()) {
            continue;
        }
        let (f, ok) = depcache::see(&abs, since).map_err(|_| "scan_failed")?;
        stable &= ok;
        files.push(Seen { spelled: s, ..f });
    }
    let entry = depcache::Entry {
        schema: depcache::SCHEMA,
        files,
        depfile: c.depfile.is_some().then_some(text),
    };
    if stable {
        depcache::store(cache, &key, &entry);
    }
    Ok(Scanned {
        files: entry.files,
        depfile: entry.depfile,
    })
}

/// The locale data diagnostics are written with: the compiled locale
/// (`/usr/lib/locale/C.utf8`, or the archive) and the message catalogs of
/// gcc, cpplib and libc for its language, so a remote compile quotes and
/// translates as a local one does. Nothing for `C` and `POSIX`.
fn locale_files(env: &[(String, String)]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut walk = |dir: &Path, keep: &dyn Fn(&str) -> bool| {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut names: Vec<PathBuf> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter(|e| keep(&e.file_name().to_string_lossy()))
            .map(|e| e.path())
            .collect();
        names.sort();
        out.extend(names);
    };
    for (k, v) in env {
        if !LOCALE_ENV.contains(&k.as_str()) || matches!(v.as_str(), "C" | "POSIX" | "") {
            continue;
        }
        // de_DE.UTF-8@euro → language de_DE, codeset utf8.
        let (lang, codeset) = v
            .split('@')
            .next()
            .unwrap_or(v)
            .split_once('.')
            .unwrap_or((v.as_str(), ""));
        let codeset: String = codeset
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let base = Path::new("/usr/lib/locale");
        walk(&base.join(format!("{lang}.{codeset}")), &|_| true);
        walk(&base.join(format!("{lang}.{codeset}/LC_MESSAGES")), &|_| {
            true
        });
        walk(base, &|n| n == "locale-archive");
        for l in [lang, lang.split('_').next().unwrap_or(lang)] {
            walk(
                &Path::new("/usr/share/locale").join(l).join("LC_MESSAGES"),
                &|n| n.starts_with("gcc") || n.starts_with("cpplib") || n == "libc.mo",
            );
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Writes the depfile the scan produced, atomically.
fn write_depfile(cwd: &Path, c: &CCompile, text: &Option<String>) -> Result<(), String> {
    let (Some(dep), Some(text)) = (&c.depfile, text) else {
        return Ok(());
    };
    let path = paths::absolute(cwd, &dep.path);
    crate::fsutil::write_atomic(&path, text.as_bytes())
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

/// The action: input root, Command, Action. `Err` is a local reason.
fn prepare(
    ctx: &Ctx,
    c: &CCompile,
    tool: &Tool,
    scanned: &Scanned,
    platform: &[(String, String)],
    features: Features,
) -> Result<Prepared, &'static str> {
    let cwd = paths::normalize(&ctx.cwd);
    let mut exposed: Vec<&str> = Vec::new();
    for a in &c.remote_args {
        match a {
            Arg::Path { path, .. } => exposed.push(path),
            Arg::PrefixMap { old, .. } => exposed.push(old),
            Arg::Plain(_) => {}
        }
    }
    exposed.extend(scanned.files.iter().map(|f| f.spelled.as_str()));
    let env = compiler_env(ctx);
    // Paths in the environment (CPATH) are seen by the compiler too.
    let env_paths: Vec<String> = env
        .iter()
        .filter(|(k, _)| k.ends_with("PATH") || k.ends_with("PREFIX"))
        .flat_map(|(_, v)| v.split(':').map(str::to_string).collect::<Vec<_>>())
        .collect();
    exposed.extend(env_paths.iter().map(String::as_str));
    let exposure = Exposure {
        records_cwd: c.debug_info || !c.prefix_maps.is_empty(),
        paths: exposed,
    };
    let root = ctx.project_root();
    let mut map = PathMap::choose(root.as_deref(), &cwd, &exposure);

    let mut dirs: Vec<PathBuf> = c
        .include_dirs
        .iter()
        .map(|d| paths::absolute(&cwd, d))
        .collect();
    dirs.push(cwd.clone());
    let inputs = match inputs::build(&[tool], &scanned.files, &[], &dirs, &map) {
        Ok(i) => i,
        Err(inputs::InputsError::Unmappable(why)) => {
            tracing::debug!("{why}");
            map = PathMap::identity();
            inputs::build(&[tool], &scanned.files, &[], &dirs, &map).map_err(|e| {
                tracing::info!("{e}");
                "input_tree"
            })?
        }
        Err(e) => {
            tracing::info!("{e}");
            return Err("input_tree");
        }
    };

    let m = tool.manifest();
    let mut arguments = vec![map.arg(&format!("/{}", m.entry))];
    arguments.extend(render_all(&c.remote_args, &|p| map.arg(p)));
    if std::io::stderr().is_terminal() && !arguments.iter().any(|a| a.contains("color")) {
        arguments.push(match c.family {
            CFamily::Gcc => "-fdiagnostics-color=always".into(),
            CFamily::Clang => "-fcolor-diagnostics".into(),
        });
    }
    let mut command_env: BTreeMap<String, String> = m.env.clone();
    if !m.path_dirs.is_empty() {
        let dirs: Vec<String> = m
            .path_dirs
            .iter()
            .map(|d| map.arg(&format!("/{d}")))
            .collect();
        command_env.insert("PATH".into(), dirs.join(":"));
    }
    command_env.extend(env);

    let mut outputs = vec![c.output.clone()];
    outputs.extend(c.dwo.clone());
    let mut relative = Vec::new();
    for o in &outputs {
        match paths::below(&cwd, &paths::absolute(&cwd, o)) {
            Some(r) => relative.push(r),
            None => return Err("output_outside_cwd"),
        }
    }
    let spec = CommandSpec {
        arguments,
        env: command_env,
        outputs: relative
            .iter()
            .map(|p| OutputSpec {
                path: p.clone(),
                is_dir: false,
            })
            .collect(),
        working_directory: map.tree_path(&cwd),
        platform: platform.to_vec(),
    };
    let landing = Landing::beside(&cwd, &relative);
    Prepared::new(&spec, features, inputs, landing)
}
