//! `recast run`: run one command on the server, with a local directory as
//! its input root, and bring the results back.
//!
//! Upload DIR, run ARGV with DIR as its working directory, write the
//! declared outputs back into DIR, replay stdout then stderr byte for byte,
//! and exit with the command's exit code. The low-level entry point, useful
//! against any REAPI server; compiler wrapping builds on the same library
//! calls.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::action::{self, CommandSpec, Features, OutputSpec};
use crate::cas::Digest;
use crate::config::RemoteArgs;
use crate::platform::Resolved;
use crate::remote::{self, ActionRun, Blob, Client, Outcome, RemoteError};
use crate::toolchain::bundle::Bundle;

use super::platform as cli_platform;

/// The environment a command gets when no `--env` is given.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Directory uploaded as the input root; the command runs in it and its
    /// outputs are written back into it.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub input_root: PathBuf,
    /// A file the command produces, relative to DIR (repeatable). A trailing
    /// '/' marks a directory.
    #[arg(long = "output", value_name = "PATH")]
    pub outputs: Vec<String>,
    /// Platform property the worker must have (repeatable). The platform
    /// is this machine's OSFamily and ISA, spelled by the profile; a KEY
    /// given here replaces the profile's values of KEY.
    #[arg(long = "platform", value_name = "KEY=VALUE")]
    pub platform: Vec<String>,
    /// How the server spells platforms: a built-in profile (`recast
    /// platform list`) or a .toml file [default: RECAST_PLATFORM_PROFILE,
    /// else config, else standard].
    #[arg(long, value_name = "NAME|PATH")]
    pub platform_profile: Option<String>,
    /// Ship this compiler's toolchain with the command: its bundle joins the
    /// input root, DIR sits at its own absolute path inside, and ARGV[0]
    /// becomes the bundled compiler, so the worker needs nothing installed.
    /// The execution platform is then the toolchain's host.
    #[arg(long, value_name = "COMPILER")]
    pub toolchain: Option<PathBuf>,
    /// Environment variable of the command (repeatable). The command sees
    /// exactly these; without any, only PATH=/usr/local/bin:/usr/bin:/bin.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Seconds the command may run on the server.
    #[arg(long, value_name = "SECS")]
    pub timeout_action: Option<u64>,
    /// Run even if the action cache has a result.
    #[arg(long)]
    pub skip_cache: bool,
    /// Ask the server not to cache the result.
    #[arg(long)]
    pub do_not_cache: bool,
    /// After the command's stdout, print a JSON summary line.
    #[arg(long)]
    pub json: bool,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "ARGV")]
    pub argv: Vec<String>,
}

fn key_value(flag: &str, s: &str) -> anyhow::Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => bail!("{flag} {s:?} is not KEY=VALUE"),
    }
}

/// The command spec from the flags and the resolved platform (pure).
fn spec_from(args: &RunArgs, platform: Vec<(String, String)>) -> anyhow::Result<CommandSpec> {
    let mut env = BTreeMap::new();
    if args.env.is_empty() {
        env.insert("PATH".to_string(), DEFAULT_PATH.to_string());
    }
    for e in &args.env {
        let (k, v) = key_value("--env", e)?;
        env.insert(k, v);
    }
    let outputs = args
        .outputs
        .iter()
        .map(|o| match o.strip_suffix('/') {
            Some(dir) => OutputSpec {
                path: dir.to_string(),
                is_dir: true,
            },
            None => OutputSpec {
                path: o.clone(),
                is_dir: false,
            },
        })
        .collect();
    Ok(CommandSpec {
        arguments: args.argv.clone(),
        env,
        outputs,
        working_directory: String::new(),
        platform,
    })
}

/// Puts `bundle` into the input root: the toolchain's tree at the root,
/// DIR's entries under DIR's own absolute path, which becomes the working
/// directory; ARGV[0] is replaced by the bundled compiler, relative to it,
/// and the manifest's environment joins the command's (the user's `--env`
/// wins). Returns the toolchain's blobs to upload.
fn with_toolchain(
    args: &RunArgs,
    root: &Path,
    bundle: &Bundle,
    spec: &mut CommandSpec,
    input: &mut action::input::InputRoot,
) -> anyhow::Result<Vec<Blob>> {
    let abs = root
        .canonicalize()
        .with_context(|| format!("resolving --input-root {}", root.display()))?;
    let prefix = crate::toolchain::listing::tree_path(&abs)
        .with_context(|| format!("{}: not UTF-8", abs.display()))?;
    let (mut entries, _) = bundle.listing.entries(&bundle.files);
    if !prefix.is_empty() {
        entries.push(crate::cas::tree::Entry::dir(prefix.clone()));
    }
    for e in &input.entries {
        let mut e = e.clone();
        e.path = if prefix.is_empty() {
            e.path
        } else {
            format!("{prefix}/{}", e.path)
        };
        entries.push(e);
    }
    input.tree = crate::cas::tree::build(&entries).with_context(|| {
        format!(
            "{} overlaps the toolchain's own files; run from another directory",
            abs.display()
        )
    })?;
    let (argv0, env) = bundle.manifest.invocation(&prefix);
    if let Some(first) = spec.arguments.first_mut() {
        *first = argv0;
    }
    let user_env: std::collections::BTreeSet<String> = args
        .env
        .iter()
        .filter_map(|e| e.split_once('=').map(|(k, _)| k.to_string()))
        .collect();
    for (k, v) in env {
        if !user_env.contains(&k) {
            spec.env.insert(k, v);
        }
    }
    spec.working_directory = prefix;
    let mut blobs = Vec::with_capacity(bundle.files.len());
    let mut seen = std::collections::HashSet::new();
    for (path, digest) in &bundle.files {
        if seen.insert(*digest) {
            blobs.push(Blob::file(*digest, path));
        }
    }
    Ok(blobs)
}

/// An exit code for the process: the command's, or 255 when it does not
/// fit (so a failure never turns into success).
fn exit_code(code: i32) -> u8 {
    u8::try_from(code).unwrap_or(255)
}

/// Everything to upload for one action, and its digest.
struct Prepared {
    action_digest: Digest,
    blobs: Vec<Blob>,
}

fn prepare(
    args: &RunArgs,
    platform: Vec<(String, String)>,
    root: &Path,
    features: Features,
    toolchain: Option<&Bundle>,
) -> anyhow::Result<Prepared> {
    let mut spec = spec_from(args, platform)?;
    // The command runs at the root, so output paths are root-relative.
    let outputs: Vec<String> = spec.outputs.iter().map(|o| o.path.clone()).collect();
    let outputs: Vec<&str> = outputs.iter().map(String::as_str).collect();
    let mut input = action::input::collect_excluding(root, &outputs)
        .with_context(|| format!("while reading the input root {}", root.display()))?;
    for s in &input.skipped {
        tracing::warn!("skipping {}: not a file, directory or symlink", s.display());
    }
    let mut toolchain_files = Vec::new();
    if let Some(bundle) = toolchain {
        toolchain_files = with_toolchain(args, root, bundle, &mut spec, &mut input)?;
    }
    let command = action::build_command(&spec, features)?;
    let command_blob = Blob::from_message(&command);
    let action_msg = action::build_action(
        &command_blob.digest,
        &input.tree.root,
        args.timeout_action.map(Duration::from_secs),
        args.do_not_cache,
        &spec.platform,
        features.action_platform,
    );
    let action_blob = Blob::from_message(&action_msg);
    let action_digest = action_blob.digest;
    let mut blobs: Vec<Blob> = input
        .tree
        .directories
        .into_iter()
        .map(|(digest, bytes)| Blob {
            digest,
            source: remote::BlobSource::Bytes(bytes),
        })
        .collect();
    blobs.extend(input.files.into_iter().map(|(d, p)| Blob::file(d, p)));
    blobs.extend(toolchain_files);
    blobs.push(command_blob);
    blobs.push(action_blob);
    Ok(Prepared {
        action_digest,
        blobs,
    })
}

/// Runs `recast run`: the platform, the server's features, the action
/// built and uploaded, executed, its results written back and replayed.
pub async fn run(
    args: RunArgs,
    client: Client,
    sources: &crate::config::Sources,
) -> anyhow::Result<ExitCode> {
    let start = Instant::now();
    let root = args.input_root.clone();
    if !root.is_dir() {
        bail!("--input-root {} is not a directory", root.display());
    }
    let toolchain = match &args.toolchain {
        Some(compiler) => Some(super::toolchain::bundle_of(compiler).await?),
        None => None,
    };
    let resolved = resolve_platform(&args, toolchain.as_ref(), sources)?;
    let features = features(&client).await?;
    let prepared = {
        let root = root.clone();
        let platform = resolved.platform.pairs().to_vec();
        tokio::task::spawn_blocking(move || {
            let p = prepare(&args, platform, &root, features, toolchain.as_ref());
            (args, p)
        })
    };
    let (args, prepared) = prepared.await.expect("input collection panicked");
    let prepared = prepared?;

    let run = ActionRun {
        action_digest: prepared.action_digest,
        blobs: prepared.blobs,
        present: Vec::new(),
        skip_cache: args.skip_cache,
        looked_up: false,
        timeout: args.timeout_action.map(Duration::from_secs),
        inline_outputs: Vec::new(),
    };
    let Done {
        outcome,
        stdout,
        stderr,
        download,
    } = execute(&client, run, &root, &resolved).await?;

    let mut out = std::io::stdout().lock();
    out.write_all(&stdout)?;
    out.flush()?;
    let mut err = std::io::stderr().lock();
    err.write_all(&stderr)?;
    err.flush()?;

    if !outcome.ok() {
        let err = failure(&client, &outcome);
        return Err(cli_platform::with_advice(err.into(), &resolved));
    }
    let result = outcome.result.as_ref().expect("an OK outcome has a result");
    if args.json {
        let ms = |d: Duration| d.as_millis() as u64;
        let summary = serde_json::json!({
            "action_digest": prepared.action_digest.to_string(),
            "cached": outcome.cached,
            "exit_code": result.exit_code,
            "timings_ms": {
                "upload": ms(outcome.timings.upload),
                "execute": ms(outcome.timings.execute),
                "download": ms(download),
                "total": ms(start.elapsed()),
            },
            "uploaded_blobs": outcome.uploaded.blobs,
            "uploaded_bytes": outcome.uploaded.bytes,
        });
        writeln!(out, "{summary}")?;
        out.flush()?;
    }
    Ok(ExitCode::from(exit_code(result.exit_code)))
}

/// The execution platform: the bundled compiler's host with
/// `--toolchain` (it runs on the worker), else this machine's (the
/// command runs what this machine runs).
fn resolve_platform(
    args: &RunArgs,
    toolchain: Option<&Bundle>,
    sources: &crate::config::Sources,
) -> anyhow::Result<Resolved> {
    let profile = args.platform_profile.as_deref();
    let Some(bundle) = toolchain else {
        return cli_platform::resolve_host(sources, profile, &args.platform);
    };
    let host = &bundle.manifest.host;
    cli_platform::resolve_named(sources, profile, &args.platform, &host.os, &host.arch)
        .with_context(|| format!("the platform of the toolchain {}", bundle.manifest.name))
}

/// What the server supports of the action's encoding; an error when it
/// does not execute at all.
async fn features(client: &Client) -> anyhow::Result<Features> {
    let caps = client
        .capabilities()
        .await
        .with_context(|| format!("while asking {} for its capabilities", client.url()))?;
    if !caps.exec_enabled {
        bail!(
            "{} does not offer remote execution (it is a cache only); point --remote at an execution server",
            client.url()
        );
    }
    Ok(Features {
        output_paths: caps.supports_output_paths(),
        action_platform: caps.supports_action_platform(),
    })
}

/// An action run and its results written back.
struct Done {
    outcome: Outcome,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// From the first answer to the last result written.
    download: Duration,
}

/// Runs the action and writes its results back; a cached result whose
/// blobs have been evicted runs for real. A refused platform gets advice.
async fn execute(
    client: &Client,
    mut run: ActionRun,
    root: &Path,
    resolved: &Resolved,
) -> anyhow::Result<Done> {
    let advised = |e: RemoteError| cli_platform::with_advice(e.into(), resolved);
    let mut outcome = remote::run_action(client, run.clone())
        .await
        .map_err(advised)?;
    let t = Instant::now();
    let mut written = write_back(client, &outcome, root).await;
    if outcome.cached && matches!(written, Err(RemoteError::NotFound { .. })) {
        tracing::debug!("cached result refers to evicted blobs; executing again");
        run.skip_cache = true;
        outcome = remote::run_action(client, run).await.map_err(advised)?;
        written = write_back(client, &outcome, root).await;
    }
    let (stdout, stderr) = written?;
    Ok(Done {
        outcome,
        stdout,
        stderr,
        download: t.elapsed(),
    })
}

/// The error for an action that did not complete, with the server's code.
fn failure(client: &Client, outcome: &Outcome) -> RemoteError {
    let code = tonic::Code::from(outcome.status.code);
    let mut message = outcome.status.message.clone();
    if !outcome.message.is_empty() && outcome.message != message {
        message = format!("{message} ({})", outcome.message);
    }
    RemoteError::Status {
        server: client.url().to_string(),
        call: "Execute",
        code,
        message,
    }
}

/// Writes outputs (only for a completed action) and fetches stdout/stderr
/// (also from a partial result, so a timed-out command's output shows).
async fn write_back(
    client: &Client,
    outcome: &Outcome,
    root: &Path,
) -> Result<(Vec<u8>, Vec<u8>), RemoteError> {
    let Some(result) = &outcome.result else {
        if outcome.ok() {
            return Err(RemoteError::Protocol {
                server: client.url().to_string(),
                message: "Execute finished without a result".into(),
            });
        }
        return Ok((Vec::new(), Vec::new()));
    };
    if outcome.ok() {
        remote::write_outputs(client, result, root).await?;
    }
    client.std_streams(result).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn parse(argv: &[&str]) -> Result<RunArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("run").chain(argv.iter().copied())).map(|c| c.run)
    }

    #[test]
    fn flags_become_a_command_spec() {
        let a = parse(&[
            "--output",
            "a.o",
            "--output",
            "gen/",
            "--platform",
            "OSFamily=linux",
            "--",
            "gcc",
            "-c",
            "a.c",
        ])
        .unwrap();
        let s = spec_from(&a, vec![("OSFamily".into(), "linux".into())]).unwrap();
        assert_eq!(s.arguments, vec!["gcc", "-c", "a.c"]);
        assert_eq!(s.env.get("PATH").unwrap(), DEFAULT_PATH);
        assert_eq!(s.env.len(), 1);
        assert_eq!(
            s.outputs,
            vec![
                OutputSpec {
                    path: "a.o".into(),
                    is_dir: false
                },
                OutputSpec {
                    path: "gen".into(),
                    is_dir: true
                }
            ]
        );
        assert_eq!(s.platform, vec![("OSFamily".into(), "linux".into())]);
        assert_eq!(a.input_root, PathBuf::from("."));

        let a = parse(&["--env", "A=1", "--env", "B=x=y", "--", "true"]).unwrap();
        let s = spec_from(&a, Vec::new()).unwrap();
        assert_eq!(s.env.len(), 2);
        assert_eq!(s.env["B"], "x=y");
        assert!(!s.env.contains_key("PATH"));

        let a = parse(&["--env", "novalue", "--", "true"]).unwrap();
        assert!(spec_from(&a, Vec::new()).is_err());
        assert!(parse(&["--output", "x"]).is_err(), "ARGV is required");
    }

    #[test]
    fn exit_codes_never_turn_failure_into_success() {
        assert_eq!(exit_code(0), 0);
        assert_eq!(exit_code(3), 3);
        assert_eq!(exit_code(255), 255);
        assert_eq!(exit_code(256), 255);
        assert_eq!(exit_code(-1), 255);
    }
}
