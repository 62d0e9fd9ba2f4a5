//! `recast doctor`: checks that a server can run recast's actions, and says
//! what to do about each problem.
//!
//! In order: the platform recast would send (profile, required keys), the
//! connection, the server's capabilities (digest function, execution, and
//! the platform keys a scheduler declares, where it lists them: NativeLink
//! does, and queues rather than refuses what no worker matches), and the
//! wrapper's own probe (this machine's loader, not cached) with that
//! platform, which proves a worker matches and tells the layout compiles
//! get there: rooted or relocated. Authentication failures are recognised
//! wherever they happen. Exit 0 when everything passed, 1 otherwise. The
//! checks are the library's calls; this file only strings them together
//! and prints.

use std::process::ExitCode;
use std::time::Instant;

use crate::action::Features;
use crate::config::{RemoteArgs, vars};
use crate::remote::{Client, RemoteError};
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
    Ok(finish(report))
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
    match crate::wrap::probe::probe_here(client, resolved.platform.pairs(), features).await {
        Ok(Some(layout)) => {
            report.ok(&format!(
                "test action ran on a worker matching {} in {} ms",
                resolved.platform,
                start.elapsed().as_millis()
            ));
            report.ok(&format!("layout: {layout} ({})", layout_why(layout)));
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

/// What a layout means for compiles, for the report.
fn layout_why(layout: crate::wrap::relocate::Layout) -> &'static str {
    match layout {
        crate::wrap::relocate::Layout::Rooted => {
            "its workers run actions with the input root as `/`: compiles keep this machine's paths"
        }
        crate::wrap::relocate::Layout::Relocated => {
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
