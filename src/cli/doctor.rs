//! `recast doctor`: checks that a server can run recast's actions, and says
//! what to do about each problem.
//!
//! In order: the platform recast would send (profile, required keys), the
//! connection, the server's capabilities (digest function, execution, and
//! the platform keys a scheduler declares, where it lists them: NativeLink
//! does, and queues rather than refuses what no worker matches), and the
//! wrapper's own probe (this machine's loader, not cached) with that
//! platform, which proves a worker matches and tells the layout compiles
//! get there: rooted or relocated. Then the link: a new connection, a
//! call, a blob each way, and the model of which mode pays for this
//! machine (`advise`), with the figures it used. Authentication failures are recognised
//! wherever they happen. Exit 0 when everything passed, 1 otherwise. The
//! checks are the library's calls; this file only strings them together
//! and prints.

use std::process::ExitCode;
use std::time::Instant;

use crate::action::Features;
use crate::config::{RemoteArgs, vars};
use crate::remote::{Client, RemoteError};
use crate::toolchain::manifest::{HostDesc, Manifest};
use crate::toolchain::registry;
use crate::wrap::Cause;

use super::platform::{self as cli_platform, Resolved};

#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Platform profile: a built-in name or a .toml file
    /// [default: RECAST_PLATFORM_PROFILE, else config, else standard].
    #[arg(long, value_name = "NAME|PATH")]
    pub platform_profile: Option<String>,
    /// Extra platform property (repeatable); replaces the profile's values of KEY.
    #[arg(long = "platform", value_name = "KEY=VALUE")]
    pub platform: Vec<String>,
    /// Also check a compiler (a path or a name on PATH): whether the
    /// workers can run it as it is, or which toolchain from the server's
    /// registry they get instead (a macOS compiler and Linux workers).
    #[arg(long, value_name = "PATH")]
    pub compiler: Option<std::path::PathBuf>,
}

/// The report: one line per check, problems with what to do.
#[derive(Default)]
struct Report {
    problems: usize,
}

impl Report {
    fn ok(&mut self, what: &str) {
        println!("ok    {what}");
    }
    fn fail(&mut self, what: &str, todo: &str) {
        self.problems += 1;
        println!("FAIL  {what}");
        for line in todo.lines() {
            println!("      {line}");
        }
    }
}

pub async fn run(args: DoctorArgs, sources: &crate::config::Sources) -> anyhow::Result<ExitCode> {
    let mut report = Report::default();
    let resolved =
        match cli_platform::resolve_host(sources, args.platform_profile.as_deref(), &args.platform)
        {
            Ok(r) => {
                report.ok(&format!(
                    "platform: {} (profile {})",
                    r.platform, r.profile.name
                ));
                Some(r)
            }
            Err(e) => {
                report.fail(
                &format!("platform: {e:#}"),
                "fix the profile or properties (`recast platform list`, `recast platform show`)",
            );
                None
            }
        };

    let client = match super::connect(&args.remote, sources).await {
        Ok(c) => c,
        Err(e) => {
            report.fail(&format!("connect: {e:#}"), &connect_todo());
            return Ok(finish(report));
        }
    };
    println!("server {} (instance {:?})", client.url(), client.instance());
    if let Some(line) = mode_line(&args.remote, sources) {
        println!("{line}");
    }

    let caps = match client.fetch_capabilities().await {
        Ok(c) => c,
        Err(e) => {
            report.fail(&format!("capabilities: {e}"), &todo_for(&e));
            return Ok(finish(report));
        }
    };
    let limit = if caps.max_batch_total_size_bytes <= 0 {
        "no batch limit".to_string()
    } else {
        format!("batch limit {} bytes", caps.max_batch_total_size_bytes)
    };
    report.ok(&format!(
        "capabilities: REAPI {} to {}, digests {}, {limit}, remote execution {}",
        caps.low_api_version,
        caps.high_api_version,
        caps.digest_functions.join("/"),
        if caps.exec_enabled { "yes" } else { "no" }
    ));
    if !caps.ac_update_enabled {
        println!(
            "note  action cache: read-only for this caller (update_enabled = false): results \
             of remote executions are still cached by the server; compiles that run here \
             (cache-only mode, fallbacks) are not published"
        );
    }
    if !caps.exec_enabled {
        report.fail(
            "the server does not execute actions (it is a cache only)",
            &format!(
                "point --remote (or {}) at an execution endpoint; a cache-only server cannot run compiles",
                vars::REMOTE
            ),
        );
        return Ok(finish(report));
    }
    let Some(resolved) = resolved else {
        return Ok(finish(report));
    };
    let features = Features {
        output_paths: caps.supports_output_paths(),
        action_platform: caps.supports_action_platform(),
    };
    declared_keys(&caps, &resolved, &mut report);
    test_action(&client, &resolved, features, &mut report).await;
    if let Some(compiler) = &args.compiler {
        compiler_check(&client, sources, compiler, &mut report).await;
    }
    link(&client, &args.remote, sources, &mut report).await;
    Ok(finish(report))
}

/// The link to the server, measured: a new connection, a call on a warm
/// one, and a blob each way.
#[derive(Clone, Copy, Debug)]
struct Link {
    /// Dialing a new connection (TCP, TLS, HTTP/2) and one call on it.
    connect_ms: f64,
    /// One small call on a warm connection (median).
    rtt_ms: f64,
    /// Bytes per second each way.
    up_bps: f64,
    down_bps: f64,
}

/// Bytes of the blob timed each way.
const PROBE_BYTES: usize = 2 << 20;

async fn measure_link(
    client: &Client,
    remote: &RemoteArgs,
    sources: &crate::config::Sources,
) -> anyhow::Result<Link> {
    let probe = crate::cas::Digest::of_bytes(uuid::Uuid::new_v4().as_bytes());
    let started = Instant::now();
    let fresh = super::connect(remote, sources).await?;
    fresh.find_missing(&[probe]).await?;
    let connect_ms = ms(started);
    let mut calls = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        client.find_missing(&[probe]).await?;
        calls.push(ms(t));
    }
    calls.sort_by(f64::total_cmp);
    let rtt_ms = calls[calls.len() / 2];
    // Random bytes: compression cannot shrink them.
    let mut state = uuid::Uuid::new_v4().as_u128() as u64 | 1;
    let bytes: Vec<u8> = (0..PROBE_BYTES)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let digest = crate::cas::Digest::of_bytes(&bytes);
    let transfers = async {
        let t = Instant::now();
        client
            .upload(vec![crate::remote::Blob {
                digest,
                source: crate::remote::BlobSource::Bytes(bytes),
            }])
            .await?;
        let up_ms = ms(t);
        let t = Instant::now();
        let back = client.read_blob(&digest).await?;
        let down_ms = ms(t);
        anyhow::ensure!(
            back.len() == PROBE_BYTES,
            "the blob read back is not the one sent"
        );
        Ok::<_, anyhow::Error>((up_ms, down_ms))
    };
    // What a transfer took beyond its round trip (at least a tenth of it,
    // so a link faster than the clock still gives a figure).
    let rate = |total: f64| PROBE_BYTES as f64 / ((total - rtt_ms).max(total / 10.0) / 1000.0);
    let (up_bps, down_bps) = match transfers.await {
        Ok((up, down)) => (rate(up), rate(down)),
        Err(e) => {
            // A read-only token, say: the model then counts round trips only.
            println!(
                "note  link: throughput not measured ({e:#}); the model counts round trips only"
            );
            (f64::INFINITY, f64::INFINITY)
        }
    };
    Ok(Link {
        connect_ms,
        rtt_ms,
        up_bps,
        down_bps,
    })
}

/// Which mode wrapped compiles run in against this server, and why.
fn mode_line(remote: &RemoteArgs, sources: &crate::config::Sources) -> Option<String> {
    use crate::config::Mode;
    let wrap = crate::config::resolve_wrap(&sources.env, &sources.file).ok()?;
    let endpoint = crate::config::resolve(remote, &sources.env, &sources.file)
        .ok()?
        .endpoint;
    let mode = wrap.mode.on(&endpoint);
    let name = match mode {
        Mode::Remote => "remote",
        Mode::CacheOnly => "cache-only",
        Mode::Local | Mode::Auto => "local",
    };
    let why = match (wrap.mode, mode) {
        (Mode::Auto, Mode::CacheOnly) => format!(
            " (auto: the embedded server shares this machine's cores, so a miss compiles here \
             and its result is kept; {}=remote runs misses in its sandbox)",
            vars::MODE
        ),
        (Mode::Auto, _) => " (auto: a configured server executes misses)".to_string(),
        _ => format!(" ({} or the config file's `mode`)", vars::MODE),
    };
    Some(format!("mode  {name}{why}"))
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// Which mode pays, by the model in [`advise`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pays {
    RemoteExecution,
    CacheOnly,
    Local,
}

/// What a compile costs over the link, and which mode pays. A hit from
/// the server costs a round trip and its outputs coming down; a remote
/// miss three round trips (what is missing, the upload, Execute with its
/// outputs inlined) and its inputs going up and outputs down. Remote
/// execution pays when a miss's link time is at most a compile's own
/// time here (then workers beyond this machine's cores make the build
/// faster); cache-only when a hit still beats compiling here; else local.
#[derive(Clone, Copy, Debug)]
struct Model {
    hit_ms: f64,
    miss_link_ms: f64,
    compile_ms: f64,
    pays: Pays,
}

fn advise(link: Link, up_bytes: f64, down_bytes: f64, compile_ms: f64) -> Model {
    let down = down_bytes / link.down_bps * 1000.0;
    let hit_ms = link.rtt_ms + down;
    let miss_link_ms = 3.0 * link.rtt_ms + up_bytes / link.up_bps * 1000.0 + down;
    let pays = if miss_link_ms <= compile_ms {
        Pays::RemoteExecution
    } else if hit_ms < compile_ms {
        Pays::CacheOnly
    } else {
        Pays::Local
    };
    Model {
        hit_ms,
        miss_link_ms,
        compile_ms,
        pays,
    }
}

/// A compile's bytes each way: this cache's own mean over its remote
/// compiles, else a C compile's typical 200 KiB of sources and headers up
/// and 40 KiB of object down.
fn compile_bytes(sources: &crate::config::Sources) -> (f64, f64, &'static str) {
    let stats = crate::config::cache_dir(&sources.env)
        .ok()
        .and_then(|d| crate::wrap::stats::read(&d).ok());
    if let Some(s) = stats
        && s.counts.remote_executions > 0
    {
        let answered = (s.counts.remote_executions + s.counts.cache_hits) as f64;
        return (
            s.bytes_uploaded as f64 / s.counts.remote_executions as f64,
            s.bytes_downloaded as f64 / answered,
            "this cache's compiles",
        );
    }
    (200.0 * 1024.0, 40.0 * 1024.0, "a typical C compile")
}

/// How long a compile takes here: `cc -O2 -c` of a generated C file of a
/// few hundred lines (the median of three), or 300 ms without `cc`.
fn reference_compile() -> (f64, &'static str) {
    let Ok(dir) = tempfile_dir() else {
        return (300.0, "assumed (no scratch directory)");
    };
    let src = dir.join("reference.c");
    let mut text = String::from("#include <stdio.h>\n#include <string.h>\n");
    for i in 0..120 {
        text.push_str(&format!(
            "int f{i}(const char *s, int n) {{ int h = {i}; for (int k = 0; k < n; k++) \
             h = h * 31 + s[k] + (int)strlen(s + k); printf(\"%d\\n\", h); return h; }}\n"
        ));
    }
    let mut times = Vec::new();
    if std::fs::write(&src, text).is_ok() {
        for _ in 0..3 {
            let t = Instant::now();
            let ok = std::process::Command::new("cc")
                .args(["-O2", "-c", "reference.c", "-o", "reference.o"])
                .current_dir(&dir)
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                break;
            }
            times.push(ms(t));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    if times.len() < 3 {
        return (300.0, "assumed (no working cc here)");
    }
    times.sort_by(f64::total_cmp);
    (times[1], "a reference `cc -O2 -c` here")
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "recast-doctor-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    crate::fsutil::create_private_dir_all(&dir)?;
    Ok(dir)
}

/// Measures the link, and says which mode pays for this machine, with the
/// figures it used.
async fn link(
    client: &Client,
    remote: &RemoteArgs,
    sources: &crate::config::Sources,
    report: &mut Report,
) {
    let link = match measure_link(client, remote, sources).await {
        Ok(l) => l,
        Err(e) => {
            report.fail(&format!("link: {e:#}"), &connect_todo());
            return;
        }
    };
    let mbit = |bps: f64| bps * 8.0 / 1e6;
    report.ok(&format!(
        "link: a new connection {:.1} ms, a call {:.1} ms, up {:.0} Mbit/s, down {:.0} Mbit/s \
         (a {} MiB random blob each way)",
        link.connect_ms,
        link.rtt_ms,
        mbit(link.up_bps),
        mbit(link.down_bps),
        PROBE_BYTES >> 20
    ));
    if client.compressing() {
        println!(
            "      blobs and action results travel zstd-compressed where the server takes it \
             ({} to change)",
            vars::COMPRESSION
        );
    } else if client.is_loopback() {
        println!(
            "note  nothing is compressed: the server's address is on this machine; a server \
             reached through a tunnel or a proxy here is far away: set {}=always",
            vars::COMPRESSION
        );
    }
    let (up, down, whose) = compile_bytes(sources);
    let (compile_ms, how) = reference_compile();
    let m = advise(link, up, down, compile_ms);
    println!(
        "model a compile: {:.0} KiB up, {:.0} KiB down ({whose}); {:.0} ms to compile ({how})",
        up / 1024.0,
        down / 1024.0,
        m.compile_ms
    );
    println!(
        "      a hit from the server {:.1} ms (a call and the outputs down; one seen here \
         before is read from the local tier with no call); a remote miss adds {:.1} ms of \
         link (three calls, inputs up, outputs down)",
        m.hit_ms, m.miss_link_ms
    );
    let advice = match m.pays {
        Pays::RemoteExecution => format!(
            "remote execution (the default) pays: a miss's link time is no more than a compile \
             here, so workers beyond this machine's cores make builds faster, and hits cost \
             {:.0} ms",
            m.hit_ms
        ),
        Pays::CacheOnly => format!(
            "cache-only pays ({}=cache-only): a miss would spend longer on the link than \
             compiling here, but a hit ({:.0} ms) still beats a compile ({:.0} ms)",
            vars::MODE,
            m.hit_ms,
            m.compile_ms
        ),
        Pays::Local => format!(
            "local pays ({}=local): even a hit ({:.0} ms) costs more than compiling here \
             ({:.0} ms)",
            vars::MODE,
            m.hit_ms,
            m.compile_ms
        ),
    };
    println!("advice {advice}");
}

fn finish(report: Report) -> ExitCode {
    if report.problems == 0 {
        println!("all checks passed");
        ExitCode::SUCCESS
    } else {
        println!("{} problem(s)", report.problems);
        ExitCode::from(1)
    }
}

fn connect_todo() -> String {
    format!(
        "check the URL (--remote or {}), that the server runs, and TLS settings (--tls-ca, {})",
        vars::REMOTE,
        vars::TLS_CA
    )
}

/// What to do about a remote error, by its code.
fn todo_for(e: &RemoteError) -> String {
    match e {
        RemoteError::Status { code, .. } => match code {
            tonic::Code::Unauthenticated => format!(
                "the server wants credentials: pass --remote-header authorization=Bearer TOKEN \
                 (or {} / [headers] in config.toml), or a client certificate (--tls-cert/--tls-key)",
                vars::REMOTE_HEADERS
            ),
            tonic::Code::PermissionDenied => format!(
                "the credentials are not allowed this: check the token's permissions and the \
                 instance name (--instance or {})",
                vars::INSTANCE
            ),
            tonic::Code::NotFound | tonic::Code::InvalidArgument => {
                format!("check the instance name (--instance or {})", vars::INSTANCE)
            }
            tonic::Code::Unimplemented => {
                "the endpoint does not implement this REAPI service; check the URL".to_string()
            }
            _ => connect_todo(),
        },
        _ => connect_todo(),
    }
}

/// Runs the wrapper's probe with the resolved platform and reports the
/// layout compiles get.
async fn test_action(
    client: &Client,
    resolved: &Resolved,
    features: Features,
    report: &mut Report,
) {
    let start = Instant::now();
    match crate::wrap::workers_layout(client, resolved.platform.pairs(), features).await {
        Ok(Some(layout)) => {
            report.ok(&format!(
                "test action ran on a worker matching {} in {} ms",
                resolved.platform,
                start.elapsed().as_millis()
            ));
            report.ok(&format!("layout: {layout} ({})", layout_why(layout)));
            if layout == crate::wrap::Layout::Relocated {
                namespaces(client, resolved, features, report).await;
            }
        }
        Ok(None) => report.fail(
            &format!(
                "test action: no worker ran it within {} s",
                start.elapsed().as_secs()
            ),
            &format!(
                "no worker takes {}; an engine that queues what it cannot place (NativeLink) \
                 says why only in its log: give a worker these properties \
                 (NativeLink: `platform_properties` of the worker, `supported_platform_properties` \
                 of the scheduler), or choose the server's profile with --platform-profile",
                resolved.platform
            ),
        ),
        Err(f)
            if matches!(
                f.cause,
                Cause::Status(tonic::Code::FailedPrecondition | tonic::Code::InvalidArgument)
            ) =>
        {
            refused(resolved, &f.message, report)
        }
        Err(f) => report.fail(&format!("test action: {}", f.message), &connect_todo()),
    }
}

/// What the workers run `compiler` with: itself when it runs on their
/// platform, else its twin (same family and version, built for them) from
/// the server's registry — or nothing, and every compile runs here.
async fn compiler_check(
    client: &Client,
    sources: &crate::config::Sources,
    compiler: &std::path::Path,
    report: &mut Report,
) {
    let bundle = match super::toolchain::bundle_of(compiler).await {
        Ok(b) => b,
        Err(e) => {
            report.fail(
                &format!("compiler {}: {e:#}", compiler.display()),
                "compiles with it run here; `recast toolchain package --compiler …` shows the same",
            );
            return;
        }
    };
    let m = &bundle.manifest;
    let platforms = crate::config::resolve_wrap(&sources.env, &sources.file)
        .map_err(|e| e.to_string())
        .and_then(|w| {
            let declared = |t: &Option<String>| t.as_deref().map(HostDesc::from_triple).transpose();
            let here = declared(&w.host_platform)?.unwrap_or_else(|| m.host.clone());
            let workers = declared(&w.worker_platform)?.unwrap_or_else(|| here.clone());
            Ok((here, workers))
        });
    let (here, workers) = match platforms {
        Ok(p) => p,
        Err(e) => {
            report.fail(
                &format!("compiler {}: {e}", m.name),
                &format!("fix {} / {}", vars::HOST_PLATFORM, vars::WORKER_PLATFORM),
            );
            return;
        }
    };
    if here == workers {
        report.ok(&format!(
            "compiler: {} runs on the workers ({workers}) as it is",
            m.name
        ));
        return;
    }
    let twin = Manifest::name_for(&m.identity, &workers);
    match registry::find(client, &m.identity, &workers).await {
        Ok(Some((found, _))) => report.ok(&format!(
            "compiler: {} runs on {here}, the workers on {workers}: they get {} from the registry{}",
            m.name,
            found.name,
            if found.relocated.is_some() {
                ", with its relocated variant"
            } else {
                " (with no relocated variant: on workers that run actions in a plain \
                 directory its compiles run here until it is uploaded again with this recast)"
            }
        )),
        Ok(None) => report.fail(
            &format!(
                "compiler: {} runs on {here}, the workers on {workers}, and {} has no {twin}: \
                 every compile with it runs here",
                m.name,
                client.url()
            ),
            &format!(
                "on a {workers} machine, publish {} {} built for it: `recast toolchain upload \
                 --compiler …` (for zig, the same version's {workers} build)",
                m.identity.family, m.identity.version
            ),
        ),
        Err(e) => report.fail(
            &format!("compiler: looking up {twin} in the registry: {e}"),
            &connect_todo(),
        ),
    }
}

/// Whether the relocated kind of workers can make user namespaces, where
/// compiles that cannot run from a plain directory run rooted.
async fn namespaces(client: &Client, resolved: &Resolved, features: Features, report: &mut Report) {
    let cache = crate::session::cache_dir(&crate::config::Env::from_process());
    let answer = match cache {
        Ok(dir) => {
            crate::wrap::workers_make_namespaces(&dir, client, resolved.platform.pairs(), features)
                .await
        }
        Err(e) => Err(format!("{e:#}")),
    };
    match answer {
        Ok(()) => report.ok(
            "namespaces: the workers make user namespaces: a compile that cannot run from a \
             plain directory (rustc without --remap-path-prefix, as cargo runs it) runs there \
             rooted, in one that bubblewrap (shipped with the action) makes",
        ),
        Err(why) => println!(
            "note  namespaces: the workers cannot make user namespaces ({why}): rustc compiles \
             run there only when --remap-path-prefix covers the paths they record (set \
             RECAST_TRIM_PATHS=1, or cargo's trim-paths); others run here"
        ),
    }
}

/// What a layout means for compiles, for the report.
fn layout_why(layout: crate::wrap::Layout) -> &'static str {
    match layout {
        crate::wrap::Layout::Rooted => {
            "its workers run actions with the input root as `/`: compiles keep this machine's paths"
        }
        crate::wrap::Layout::Namespaced => {
            "its workers run actions in a plain directory and make user namespaces: compiles \
             that cannot run from a plain directory run there rooted, in a namespace bubblewrap \
             (shipped with the action) makes"
        }
        crate::wrap::Layout::Relocated => {
            "its workers run actions in a plain directory: compiles run from the shipped toolchain \
             through relative paths; rustc compiles run there when --remap-path-prefix (or \
             RECAST_TRIM_PATHS=1) covers what they record"
        }
    }
}

/// Checks the keys of `platform` against those the scheduler declares
/// (when it lists them, as NativeLink does): an undeclared key is ignored
/// by such a scheduler, so an action may land on any worker.
fn declared_keys(caps: &crate::remote::ServerCaps, resolved: &Resolved, report: &mut Report) {
    if caps.node_properties.is_empty() {
        return;
    }
    let mut undeclared: Vec<(&str, &str)> = resolved
        .platform
        .pairs()
        .iter()
        .filter(|(k, _)| !caps.node_properties.iter().any(|d| d == k))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    undeclared.dedup_by(|a, b| a.0 == b.0);
    if undeclared.is_empty() {
        report.ok(&format!(
            "the scheduler declares every key sent ({})",
            caps.node_properties.join(", ")
        ));
        return;
    }
    let keys: Vec<&str> = undeclared.iter().map(|(k, _)| *k).collect();
    let scheduler: Vec<String> = keys.iter().map(|k| format!("\"{k}\": \"exact\"")).collect();
    let worker: Vec<String> = undeclared
        .iter()
        .map(|(k, v)| format!("\"{k}\": {{ values: [\"{v}\"] }}"))
        .collect();
    report.fail(
        &format!(
            "the scheduler does not declare {} (it declares {}): it ignores such keys, so an action may run on any worker",
            keys.join(", "),
            caps.node_properties.join(", ")
        ),
        &format!(
            "add to the scheduler's supported_platform_properties: {}\nand to each worker's platform_properties: {}\nor leave the keys out (--platform-profile nativelink sends OSFamily only)",
            scheduler.join(", "),
            worker.join(", ")
        ),
    );
}

/// Reports a refused test action, with the platform advice that fits.
fn refused(resolved: &Resolved, message: &str, report: &mut Report) {
    let what = format!("test action refused: {message}");
    match resolved.advise(message) {
        Some(advice) => report.fail(&what, &advice.to_string()),
        None => report.fail(
            &what,
            "no worker takes this platform: `recast platform show` prints it; choose the server's profile with --platform-profile",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(rtt_ms: f64, mbit: f64) -> Link {
        Link {
            connect_ms: 2.0 * rtt_ms,
            rtt_ms,
            up_bps: mbit * 1e6 / 8.0,
            down_bps: mbit * 1e6 / 8.0,
        }
    }

    #[test]
    fn the_model_picks_remote_near_cache_only_far_and_local_farther() {
        let (up, down) = (200.0 * 1024.0, 40.0 * 1024.0);
        // A LAN: a miss adds ~20 ms to a 300 ms compile.
        let m = advise(link(1.0, 1000.0), up, down, 300.0);
        assert_eq!(m.pays, Pays::RemoteExecution, "{m:?}");
        assert!((m.hit_ms - 1.33).abs() < 0.1, "{m:?}");
        // An office 40 ms from the cloud: 3 calls and 200 KiB up at
        // 100 Mbit/s is 139 ms, less than the compile.
        let m = advise(link(40.0, 100.0), up, down, 300.0);
        assert_eq!(m.pays, Pays::RemoteExecution, "{m:?}");
        assert!((m.miss_link_ms - 139.6).abs() < 1.0, "{m:?}");
        // The same link with 100 ms compiles: a hit still pays.
        assert_eq!(
            advise(link(40.0, 100.0), up, down, 100.0).pays,
            Pays::CacheOnly
        );
        // Home at 80 ms and 2 Mbit/s against 60 ms compiles: nothing pays.
        assert_eq!(advise(link(80.0, 2.0), up, down, 60.0).pays, Pays::Local);
    }
}
