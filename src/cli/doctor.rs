//! `recast doctor`: checks that a server can run recast's actions, and says
//! what to do about each problem.
//!
//! In order: the platform recast would send (profile, required keys), the
//! connection, the server's capabilities (digest function, execution), and
//! a trivial action (`true`, not cached) with that platform, which proves a
//! worker matches. Authentication failures are recognised wherever they
//! happen. Exit 0 when everything passed, 1 otherwise. The checks are the
//! library's calls; this file only strings them together and prints.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::action::{self, ActionError, CommandSpec, Features};
use crate::cas::tree;
use crate::config::{RemoteArgs, vars};
use crate::remote::{self, ActionRun, Blob, BlobSource, Client, RemoteError};

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

/// How long the test action may take, queueing included.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

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

/// Runs `true` with the resolved platform, not cached, and reports.
async fn test_action(
    client: &Client,
    resolved: &Resolved,
    features: Features,
    report: &mut Report,
) {
    let run = match test_run(resolved, features) {
        Ok(run) => run,
        Err(e) => {
            report.fail(&format!("test action: {e}"), "this is a bug in recast");
            return;
        }
    };
    let start = Instant::now();
    let outcome = tokio::time::timeout(TEST_TIMEOUT * 2, remote::run_action(client, run)).await;
    match outcome {
        Err(_) => report.fail(
            &format!(
                "test action: no result within {}s",
                (TEST_TIMEOUT * 2).as_secs()
            ),
            &format!(
                "the server may have no idle worker for {}; check its workers and their properties",
                resolved.platform
            ),
        ),
        Ok(Err(e @ RemoteError::Status { code, .. })) => match code {
            tonic::Code::FailedPrecondition | tonic::Code::InvalidArgument => {
                refused(resolved, &e.to_string(), report)
            }
            _ => report.fail(&format!("test action: {e}"), &todo_for(&e)),
        },
        Ok(Err(e)) => report.fail(&format!("test action: {e}"), &todo_for(&e)),
        Ok(Ok(o)) if !o.ok() => failed(client, resolved, &o, report),
        Ok(Ok(o)) => {
            let exit = o.result.as_ref().map_or(-1, |r| r.exit_code);
            if exit == 0 {
                report.ok(&format!(
                    "test action ran on a worker matching {} in {} ms",
                    resolved.platform,
                    start.elapsed().as_millis()
                ));
            } else {
                report.fail(
                    &format!("test action `true` exited {exit} on the worker"),
                    "the worker runs actions but `true` is not on its PATH=/usr/bin:/bin; check the worker image",
                );
            }
        }
    }
}

/// The test action: `true` in an empty root, with the resolved platform,
/// not cached, and every blob it needs.
fn test_run(resolved: &Resolved, features: Features) -> Result<ActionRun, ActionError> {
    let spec = CommandSpec {
        arguments: vec!["true".to_string()],
        env: BTreeMap::from([("PATH".to_string(), "/usr/bin:/bin".to_string())]),
        outputs: Vec::new(),
        working_directory: String::new(),
        platform: resolved.platform.pairs().to_vec(),
    };
    let command = action::build_command(&spec, features)?;
    let root = tree::build(&[]).expect("the empty tree builds");
    let command_blob = Blob::from_message(&command);
    let action_msg = action::build_action(
        &command_blob.digest,
        &root.root,
        Some(TEST_TIMEOUT),
        true,
        resolved.platform.pairs(),
        features.action_platform,
    );
    let action_blob = Blob::from_message(&action_msg);
    let mut blobs: Vec<Blob> = root
        .directories
        .into_iter()
        .map(|(digest, bytes)| Blob {
            digest,
            source: BlobSource::Bytes(bytes),
        })
        .collect();
    blobs.push(command_blob);
    let digest = action_blob.digest;
    blobs.push(action_blob);
    Ok(ActionRun {
        action_digest: digest,
        blobs,
        skip_cache: true,
        timeout: Some(TEST_TIMEOUT),
        inline_outputs: Vec::new(),
    })
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

/// Reports a test action that ran but did not complete (its status).
fn failed(client: &Client, resolved: &Resolved, o: &remote::Outcome, report: &mut Report) {
    let code = tonic::Code::from(o.status.code);
    let message = format!("{}: {}", remote::code_name(code), o.status.message);
    match code {
        tonic::Code::FailedPrecondition | tonic::Code::InvalidArgument => {
            refused(resolved, &message, report)
        }
        _ => {
            let e = RemoteError::Status {
                server: client.url().to_string(),
                call: "Execute",
                code,
                message: o.status.message.clone(),
            };
            report.fail(&format!("test action: {message}"), &todo_for(&e))
        }
    }
}
