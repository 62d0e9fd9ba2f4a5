//! One wrapped compile on the server: the action cache, then (in remote
//! mode) upload and Execute; the result's declared outputs written here,
//! verified and atomically, and kept in the local tier. (A local compile's
//! result goes the other way in [`publish`](super::publish).)
//!
//! Deciding between a genuine failure (replay it) and an infrastructure
//! failure (compile locally) happens here too ([`infrastructure`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::inputs::Inputs;
pub(crate) use super::why::Cause;
use crate::cas::Digest;
use crate::proto::reapi;
use crate::remote::{self, ActionRun, Blob, Client, RemoteError};

/// An action ready to send.
pub struct Prepared {
    pub digest: Digest,
    pub action: reapi::Action,
    pub command: reapi::Command,
    pub inputs: Inputs,
    /// Output files, relative to the remote working directory.
    pub outputs: Vec<String>,
    /// Where they land here.
    pub landing: Landing,
}

impl Prepared {
    /// The Command and Action for `spec` over `inputs`; `spec.outputs` are
    /// the files `landing` places here. `Err` is the stats key of why the
    /// compile runs locally.
    pub fn new(
        spec: &crate::action::CommandSpec,
        features: crate::action::Features,
        inputs: Inputs,
        landing: Landing,
    ) -> Result<Prepared, super::why::Reason> {
        let command = crate::action::build_command(spec, features).map_err(|e| {
            tracing::info!("{e}");
            super::why::Reason::Command
        })?;
        let command_digest = Digest::of_message(&command).0;
        let action = crate::action::build_action(
            &command_digest,
            &inputs.tree.root,
            None,
            false,
            &spec.platform,
            features.action_platform,
        );
        Ok(Prepared {
            digest: Digest::of_message(&action).0,
            action,
            command,
            inputs,
            outputs: spec.outputs.iter().map(|o| o.path.clone()).collect(),
            landing,
        })
    }

    /// The run for `remote::run_action`: every blob the action needs
    /// (files, directories, Command, Action), the toolchains' apart (the
    /// server holds them once their upload is marked), `inline` outputs
    /// asked for.
    pub fn run(&self, inline: Vec<String>) -> ActionRun {
        let mut blobs = self.inputs.blobs.clone();
        for (d, bytes) in &self.inputs.tree.directories {
            blobs.push(Blob {
                digest: *d,
                source: remote::BlobSource::Bytes(bytes.clone()),
            });
        }
        blobs.push(Blob::from_message(&self.command));
        blobs.push(Blob::from_message(&self.action));
        let (present, blobs) = blobs
            .into_iter()
            .partition(|b| self.inputs.toolchain.contains(&b.digest));
        ActionRun {
            action_digest: self.digest,
            blobs,
            present,
            skip_cache: false,
            looked_up: false,
            timeout: None,
            inline_outputs: inline,
        }
    }
}

/// Where an action's outputs go on this machine, and what to write back
/// into text the compiler wrote with remote paths.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Landing {
    /// The local path of each output, in the order of `Prepared::outputs`.
    pub local: Vec<PathBuf>,
    /// `(remote, local)`: a path prefix to turn back in depfiles (`.d`)
    /// and in stdout/stderr, when the project root moved.
    pub unmap: Option<(String, String)>,
    /// Bytes no output may contain (the moved project root, a relocated
    /// action's run-time paths: an output that names one saw where it
    /// ran, and is not what a local compile here writes). Depfiles, which
    /// are turned back, are not checked.
    #[serde(default)]
    pub forbid: Vec<String>,
    /// The action was relocated: paths through its root link are turned
    /// back in depfiles and streams.
    #[serde(default)]
    pub relocated: bool,
}

impl Landing {
    /// Outputs at the same relative paths here as there.
    pub fn beside(cwd: &Path, outputs: &[String]) -> Landing {
        Landing {
            local: outputs
                .iter()
                .map(|o| super::placement::absolute(cwd, o))
                .collect(),
            unmap: None,
            forbid: Vec::new(),
            relocated: false,
        }
    }

    /// A local compile's stream as the moved action would have printed
    /// it: this checkout's project root spelled as the moved one, where
    /// a path continues or ends (so `/src/a` is not taken from
    /// `/src/ab`). A hit from any checkout turns it back into its own.
    pub(super) fn map_text(&self, bytes: &[u8]) -> Vec<u8> {
        let Some((moved, root)) = &self.unmap else {
            return bytes.to_vec();
        };
        let Ok(text) = std::str::from_utf8(bytes) else {
            return bytes.to_vec();
        };
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(i) = rest.find(root.as_str()) {
            let after = &rest[i + root.len()..];
            let ends = after
                .chars()
                .next()
                .is_none_or(|c| c == '/' || !(c.is_alphanumeric() || "_-.+~".contains(c)));
            out.push_str(&rest[..i]);
            out.push_str(if ends { moved } else { root });
            rest = after;
        }
        out.push_str(rest);
        out.into_bytes()
    }

    fn unmap_text(&self, bytes: Vec<u8>) -> Vec<u8> {
        if self.unmap.is_none() && !self.relocated {
            return bytes;
        }
        let mut text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => return e.into_bytes(),
        };
        if self.relocated {
            text = super::layout::unrelocate(&text);
        }
        if let Some((from, to)) = &self.unmap {
            text = text.replace(from.as_str(), to);
        }
        text.into_bytes()
    }
}

/// What the server said, once outputs are in place.
#[derive(Debug)]
pub struct Finished {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub cached: bool,
    /// A hit read from the server's store on this machine, with no call.
    pub local: bool,
    pub up: u64,
    pub down: u64,
    /// For a hit: the original run's duration.
    pub original: Duration,
}

/// Why the compile must run locally after all: a stats key and a message.
#[derive(Debug)]
pub struct Failure {
    pub cause: Cause,
    pub message: String,
}

impl Failure {
    pub fn new(cause: Cause, message: impl std::fmt::Display) -> Failure {
        Failure {
            cause,
            message: message.to_string(),
        }
    }

    /// The stats key of a remote error.
    pub fn of(e: &RemoteError) -> Failure {
        let cause = match e {
            RemoteError::Unreachable { .. } => Cause::Unreachable,
            RemoteError::Tls { .. } => Cause::Tls,
            RemoteError::Status { code, .. } => Cause::Status(*code),
            RemoteError::MissingBlobs(_) | RemoteError::NotFound { .. } => Cause::MissingBlobs,
            RemoteError::BadBlob { .. } => Cause::BadBlob,
            RemoteError::Protocol { .. } => Cause::Protocol,
            RemoteError::Io { .. } => Cause::LocalIo,
            RemoteError::Refused { why, .. } if why.contains(super::layout::PROC_CWD) => {
                Cause::RelocatedLeak
            }
            RemoteError::Refused { .. } => Cause::LocationLeak,
            RemoteError::InvalidUrl { .. } | RemoteError::Config(_) => Cause::Config,
            RemoteError::UnsupportedDigest { .. } => Cause::DigestFunction,
        };
        Failure::new(cause, e)
    }
}

/// Signs, in a failed remote compile's stderr, that the worker could not
/// run the toolchain rather than the code being wrong.
const INFRA_SIGNS: [&str; 7] = [
    "error while loading shared libraries",
    "cannot execute",
    "Exec format error",
    "bwrap:",
    "recast: cannot run",
    "cannot open shared object file",
    "unable to find library",
];

/// Whether a non-zero exit is the worker's fault: a signal or an
/// out-of-range code, the shell's "cannot run" codes, or a loader message.
pub fn infrastructure(code: i32, stderr: &[u8]) -> bool {
    if !(1..=125).contains(&code) {
        return true;
    }
    let text = String::from_utf8_lossy(stderr);
    INFRA_SIGNS.iter().any(|s| text.contains(s))
}

/// The result, with only the declared outputs kept; `None` when one is
/// missing (an exit-0 result without its object is not a result) or named
/// twice (which of two contents would be the object?).
fn declared_only(result: &reapi::ActionResult, outputs: &[String]) -> Option<reapi::ActionResult> {
    let want: BTreeSet<&str> = outputs.iter().map(String::as_str).collect();
    let mut r = result.clone();
    r.output_files.retain(|f| want.contains(f.path.as_str()));
    r.output_directories.clear();
    r.output_symlinks.clear();
    r.output_file_symlinks.clear();
    r.output_directory_symlinks.clear();
    let got: BTreeSet<&str> = r.output_files.iter().map(|f| f.path.as_str()).collect();
    (got == want && r.output_files.len() == want.len()).then_some(r)
}

fn original_duration(result: &reapi::ActionResult) -> Duration {
    let md = result.execution_metadata.as_ref();
    let (Some(start), Some(end)) = (
        md.and_then(|m| m.execution_start_timestamp.as_ref()),
        md.and_then(|m| m.execution_completed_timestamp.as_ref()),
    ) else {
        return Duration::ZERO;
    };
    let ns =
        |t: &prost_types::Timestamp| i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos);
    Duration::from_nanos((ns(end) - ns(start)).clamp(0, i128::from(u64::MAX)) as u64)
}

/// Writes `result`'s outputs where `landing` says and fetches its streams.
/// A successful result of the server is kept in the client's local tier
/// under `keep`, its action (`None`: it came from there).
async fn land(
    client: &Client,
    result: &reapi::ActionResult,
    outputs: &[String],
    landing: &Landing,
    keep: Option<&Digest>,
) -> Result<(Vec<u8>, Vec<u8>, u64), Failure> {
    let (raw_out, raw_err) = client
        .std_streams(result)
        .await
        .map_err(|e| Failure::of(&e))?;
    // A result kept in the local tier keeps the server's streams; only
    // then are they copied before being mapped back.
    let tiering = keep.is_some() && client.tier().is_some() && result.exit_code == 0;
    let raw = tiering.then(|| (raw_out.clone(), raw_err.clone()));
    let (stdout, stderr) = (landing.unmap_text(raw_out), landing.unmap_text(raw_err));
    let mut down = (stdout.len() + stderr.len()) as u64;
    if result.exit_code == 0 {
        let kept = declared_only(result, outputs).ok_or_else(|| {
            Failure::new(
                Cause::MissingOutputs,
                format!("the result lacks or repeats some of {outputs:?}"),
            )
        })?;
        let t = Instant::now();
        // Outputs may lie above the working directory (`../../target/…`):
        // each goes into the real directory its local path names, which
        // is made if missing, under its file name there.
        let mut by_dir: BTreeMap<PathBuf, Vec<reapi::OutputFile>> = BTreeMap::new();
        let mut depfiles = Vec::new();
        // Where each output lands, for the local tier (digests only).
        let mut landed = Vec::new();
        for f in kept.output_files {
            let Some(i) = outputs.iter().position(|o| *o == f.path) else {
                continue;
            };
            let local = landing.local[i].clone();
            let (Some(parent), Some(name)) = (local.parent(), local.file_name()) else {
                return Err(Failure::new(Cause::LocalIo, format!("output {}", f.path)));
            };
            let real = crate::fsutil::real_dir(parent)
                .map_err(|e| Failure::new(Cause::LocalIo, format!("{}: {e}", parent.display())))?;
            if (landing.unmap.is_some() || landing.relocated) && f.path.ends_with(".d") {
                depfiles.push((local.clone(), real.join(name)));
            }
            if tiering {
                let digest_only = reapi::OutputFile {
                    path: f.path.clone(),
                    digest: f.digest.clone(),
                    is_executable: f.is_executable,
                    ..Default::default()
                };
                landed.push((digest_only, real.join(name)));
            }
            by_dir.entry(real).or_default().push(reapi::OutputFile {
                path: name.to_string_lossy().into_owned(),
                ..f
            });
        }
        let groups: Vec<(PathBuf, reapi::ActionResult)> = by_dir
            .into_iter()
            .map(|(dir, files)| {
                let one = reapi::ActionResult {
                    output_files: files,
                    ..Default::default()
                };
                (dir, one)
            })
            .collect();
        let check = (!landing.forbid.is_empty()).then(|| {
            let skip = depfiles.iter().map(|(_, real)| real.clone()).collect();
            forbid_check(landing.forbid.clone(), skip)
        });
        let stats = remote::write_outputs_in(client, groups, check)
            .await
            .map_err(|e| Failure::of(&e))?;
        down += stats.bytes;
        if let (Some((raw_out, raw_err)), Some(tier), Some(action)) = (&raw, client.tier(), keep) {
            // Before depfiles are rewritten: the tier holds the server's bytes.
            let streams = Streams {
                stdout: raw_out,
                stderr: raw_err,
            };
            let _ = keep_in_tier(tier, action, result, streams, &landed);
        }
        for (d, _) in depfiles {
            let fixed = std::fs::read(&d)
                .map(|b| landing.unmap_text(b))
                .and_then(|b| crate::fsutil::write_replacing(&d, &b));
            if let Err(e) = fixed {
                return Err(Failure::new(
                    Cause::LocalIo,
                    format!("{}: {e}", d.display()),
                ));
            }
        }
        tracing::debug!(elapsed = ?t.elapsed(), "outputs written");
    }
    Ok((stdout, stderr, down))
}

/// A result's stdout and stderr, as the server holds them.
#[derive(Clone, Copy)]
pub(super) struct Streams<'a> {
    pub stdout: &'a [u8],
    pub stderr: &'a [u8],
}

/// Keeps a successful result in the local tier: `files` are its outputs
/// (digests only) and where they now are on disk. A failure to keep it
/// costs only the next hit's call, and is a line in the warnings log.
pub(super) fn keep_in_tier(
    tier: &crate::cas::store::Tier,
    action: &Digest,
    result: &reapi::ActionResult,
    streams: Streams<'_>,
    files: &[(reapi::OutputFile, PathBuf)],
) -> bool {
    use crate::cas::store::TierBlob;
    let t = Instant::now();
    let (od, ed) = (
        Digest::of_bytes(streams.stdout),
        Digest::of_bytes(streams.stderr),
    );
    let mut blobs = vec![
        TierBlob::Bytes(od, streams.stdout),
        TierBlob::Bytes(ed, streams.stderr),
    ];
    let mut outputs = Vec::new();
    for (f, path) in files {
        match Digest::from_proto_opt(f.digest.as_ref()) {
            Ok(d) => blobs.push(TierBlob::File(d, path)),
            Err(_) => return false,
        }
        outputs.push(f.clone());
    }
    let stream = |d: Digest| (d != Digest::EMPTY).then(|| d.to_proto());
    let entry = reapi::ActionResult {
        output_files: outputs,
        stdout_digest: stream(od),
        stderr_digest: stream(ed),
        exit_code: 0,
        execution_metadata: result.execution_metadata.clone(),
        ..Default::default()
    };
    match tier.keep(action, &entry, &blobs) {
        Ok(added) => {
            tracing::debug!(elapsed = ?t.elapsed(), added, "kept in the local tier");
            true
        }
        Err(e) => {
            let cache = tier.dir().parent().unwrap_or(tier.dir());
            super::log::warn(
                cache,
                &format!("the local tier at {}: {e}", tier.dir().display()),
            );
            false
        }
    }
}

/// A check that refuses any output but `skip` whose bytes contain one of
/// `needles`.
fn forbid_check(
    needles: Vec<String>,
    skip: Vec<PathBuf>,
) -> std::sync::Arc<remote::outputs::Check> {
    std::sync::Arc::new(move |dest: &Path, bytes: &[u8]| {
        if skip.iter().any(|s| s == dest) {
            return Ok(());
        }
        for needle in &needles {
            if let Some(at) = find(bytes, needle.as_bytes()) {
                return Err(format!("it names {needle} (at byte {at})"));
            }
        }
        Ok(())
    })
}

/// Where `needle` first occurs in `haystack`.
///
/// On x86_64 this is SSE2's search, which every such processor has:
/// `memmem` first asks the processor what else it has, and in a virtual
/// machine each such question is a trap to the hypervisor (about 40 µs in
/// all here, 2% of a hit).
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        if let Some(f) = memchr::arch::x86_64::sse2::packedpair::Finder::new(needle)
            && haystack.len() >= f.min_haystack_len()
        {
            return f.find(haystack, needle);
        }
        if needle.is_empty() {
            return Some(0);
        }
        haystack.windows(needle.len()).position(|w| w == needle)
    }
    #[cfg(not(target_arch = "x86_64"))]
    memchr::memmem::find(haystack, needle)
}

/// Which action caches a lookup asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ask {
    /// The results on this machine, then the server's.
    Both,
    /// The results on this machine only (Execute asks the server's next).
    Here,
}

/// The action cache only.
pub async fn lookup(client: &Client, p: &Prepared, ask: Ask) -> Result<Option<Finished>, Failure> {
    lookup_digest(client, &p.digest, &p.outputs, &p.landing, ask).await
}

/// The action cache only, for an action known by its digest alone.
pub async fn lookup_digest(
    client: &Client,
    digest: &Digest,
    outputs: &[String],
    landing: &Landing,
    ask: Ask,
) -> Result<Option<Finished>, Failure> {
    match cached(client, digest, outputs, ask).await? {
        Some((result, local)) => {
            land_cached(client, digest, &result, local, outputs, landing).await
        }
        None => Ok(None),
    }
}

/// The cached result for `digest` with `outputs` inlined where the server
/// can, and whether it came from this machine; nothing is written.
pub async fn cached(
    client: &Client,
    digest: &Digest,
    outputs: &[String],
    ask: Ask,
) -> Result<Option<(reapi::ActionResult, bool)>, Failure> {
    let t = Instant::now();
    if let Some(r) = client.local_result(digest) {
        tracing::debug!(elapsed = ?t.elapsed(), local = true, "GetActionResult");
        return Ok(Some((r, true)));
    }
    if ask == Ask::Here {
        return Ok(None);
    }
    let asked = client
        .for_action(digest)
        .get_action_result_inline(digest, outputs)
        .await
        .map_err(|e| Failure::of(&e))?;
    tracing::debug!(elapsed = ?t.elapsed(), local = false, "GetActionResult");
    Ok(asked.map(|r| (r, false)))
}

/// A result [`cached`] found, its outputs in place (`local`: it came from
/// this machine's tier, so it is not kept there again).
pub async fn land_cached(
    client: &Client,
    digest: &Digest,
    result: &reapi::ActionResult,
    local: bool,
    outputs: &[String],
    landing: &Landing,
) -> Result<Option<Finished>, Failure> {
    let keep = (!local).then_some(digest);
    match land(client, result, outputs, landing, keep).await {
        Ok((stdout, stderr, down)) => Ok(Some(Finished {
            code: result.exit_code,
            stdout,
            stderr,
            cached: true,
            local,
            up: 0,
            down,
            original: original_duration(result),
        })),
        // Evicted blobs behind a cached result: a miss, not a failure.
        Err(f) if f.cause == Cause::MissingBlobs => Ok(None),
        Err(f) => Err(f),
    }
}

/// The action cache (unless `looked_up`: the caller asked it), then
/// Execute.
pub async fn execute(client: &Client, p: &Prepared, looked_up: bool) -> Result<Finished, Failure> {
    let mut run = p.run(p.outputs.clone());
    run.looked_up = looked_up;
    for attempt in 0..2 {
        let outcome = remote::run_action(client, run.clone())
            .await
            .map_err(|e| Failure::of(&e))?;
        if !outcome.ok() {
            let code = tonic::Code::from(outcome.status.code);
            return Err(Failure::new(
                Cause::Status(code),
                format!("{}: {}", remote::code_name(code), outcome.status.message),
            ));
        }
        let Some(result) = outcome.result.as_ref() else {
            return Err(Failure::new(
                Cause::Protocol,
                "Execute finished without a result",
            ));
        };
        match land(client, result, &p.outputs, &p.landing, Some(&p.digest)).await {
            Ok((stdout, stderr, down)) => {
                return Ok(Finished {
                    code: result.exit_code,
                    stdout,
                    stderr,
                    cached: outcome.cached,
                    local: false,
                    up: outcome.uploaded.bytes,
                    down,
                    original: original_duration(result),
                });
            }
            // A cached result whose blobs were evicted: run it for real.
            Err(f) if f.cause == Cause::MissingBlobs && outcome.cached && attempt == 0 => {
                run.skip_cache = true;
            }
            Err(f) => return Err(f),
        }
    }
    Err(Failure::new(Cause::MissingBlobs, "outputs vanished twice"))
}

/// Runs `p` and keeps its outputs on the server: the result, with only
/// the declared outputs, all of them present (exit 0), or the failure.
/// For builds whose outputs only other remote actions read (the
/// workers'-platform twin of a proc-macro).
pub async fn execute_kept(client: &Client, p: &Prepared) -> Result<reapi::ActionResult, Failure> {
    let run = p.run(Vec::new());
    let outcome = remote::run_action(client, run)
        .await
        .map_err(|e| Failure::of(&e))?;
    if !outcome.ok() {
        return Err(Failure::new(Cause::Execute, outcome.status.message));
    }
    let result = outcome
        .result
        .ok_or_else(|| Failure::new(Cause::Protocol, "Execute finished without a result"))?;
    if result.exit_code != 0 {
        return Err(Failure::new(
            Cause::CompileFailed,
            format!("exit code {}", result.exit_code),
        ));
    }
    let result = declared_only(&result, &p.outputs).ok_or_else(|| {
        Failure::new(
            Cause::MissingOutputs,
            format!("lacks some of {:?}", p.outputs),
        )
    })?;
    // What would be refused on landing is refused here too: read back.
    if !p.landing.forbid.is_empty() {
        let check = forbid_check(p.landing.forbid.clone(), Vec::new());
        for f in &result.output_files {
            let digest = crate::cas::Digest::from_proto_opt(f.digest.as_ref())
                .map_err(|e| Failure::new(Cause::Protocol, e))?;
            let bytes = client
                .read_blob(&digest)
                .await
                .map_err(|e| Failure::of(&e))?;
            if let Err(why) = check(Path::new(&f.path), &bytes) {
                return Err(Failure::of(&RemoteError::Refused {
                    server: client.url().to_string(),
                    path: PathBuf::from(&f.path),
                    why,
                }));
            }
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::fake::Fake;

    #[test]
    fn find_agrees_with_memmem() {
        let hay: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut needles: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"x".to_vec(),
            b"/home/someone/project".to_vec(),
            hay[4990..].to_vec(),
            hay[1234..1300].to_vec(),
        ];
        needles.push(hay[0..1].to_vec());
        for n in &needles {
            for h in [&hay[..], &hay[..10], &hay[..0], &hay[4000..]] {
                assert_eq!(super::find(h, n), memchr::memmem::find(h, n), "{n:?}");
            }
        }
    }

    /// A client of a scripted server whose every cached result is `result`,
    /// holding `blobs`.
    async fn hostile(result: reapi::ActionResult, blobs: &[&[u8]]) -> (Client, tempfile::TempDir) {
        let fake = Fake::default();
        {
            let mut s = fake.0.lock().unwrap();
            s.result = Some(result);
            for b in blobs {
                s.blobs.insert(Digest::of_bytes(b), b.to_vec());
            }
        }
        let url = fake.start().await;
        let dir = tempfile::tempdir().unwrap();
        (client_of(&url, &dir.path().join("cache")).await, dir)
    }

    /// The failure of looking up the action `hostile` serves.
    async fn refused(client: &Client, outputs: &[String], landing: &Landing) -> Failure {
        let action = Digest::of_bytes(b"action");
        lookup_digest(client, &action, outputs, landing, Ask::Both)
            .await
            .unwrap_err()
    }

    /// A client of the server at `url` with its own cache dir.
    async fn client_of(url: &str, cache_dir: &Path) -> Client {
        let cfg = crate::config::RemoteConfig {
            endpoint: crate::config::Endpoint::Embedded,
            instance: String::new(),
            headers: vec![],
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            timeout: Duration::from_secs(30),
            cache_dir: cache_dir.to_path_buf(),
            compression: crate::config::Compression::Auto,
        };
        Client::connect(&cfg, url).await.unwrap()
    }

    #[test]
    fn published_streams_spell_the_moved_root_and_come_back_as_each_checkouts() {
        let moved = |root: &str| Landing {
            local: Vec::new(),
            unmap: Some(("/recast/project".into(), root.into())),
            forbid: Vec::new(),
            relocated: false,
        };
        let here = moved("/home/a/proj");
        let said =
            "/home/a/proj/src/x.c:1: warning\n/home/a/proj2/y.c /home/a/proj: /home/a/proj\n";
        let published = here.map_text(said.as_bytes());
        assert_eq!(
            String::from_utf8(published.clone()).unwrap(),
            "/recast/project/src/x.c:1: warning\n/home/a/proj2/y.c /recast/project: /recast/project\n"
        );
        let there = moved("/srv/b/p");
        assert_eq!(
            String::from_utf8(there.unmap_text(published)).unwrap(),
            "/srv/b/p/src/x.c:1: warning\n/home/a/proj2/y.c /srv/b/p: /srv/b/p\n"
        );
        let unmoved = Landing::beside(Path::new("/home/a/proj"), &[]);
        assert_eq!(unmoved.map_text(said.as_bytes()), said.as_bytes());
    }

    fn file(path: &str, content: &[u8]) -> reapi::OutputFile {
        reapi::OutputFile {
            path: path.into(),
            digest: Some(Digest::of_bytes(content).to_proto()),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_hostile_result_writes_the_declared_outputs_and_nothing_else() {
        let obj = b"the object".as_slice();
        let evil = b"owned".as_slice();
        let result = reapi::ActionResult {
            output_files: vec![
                file("a.o", obj),
                file("../escape.txt", evil),
                file("/tmp/absolute.txt", evil),
                file("extra.sh", evil),
            ],
            output_symlinks: vec![reapi::OutputSymlink {
                path: "link".into(),
                target: "/etc/passwd".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let (client, dir) = hostile(result, &[obj, evil]).await;
        let cwd = dir.path().join("work");
        std::fs::create_dir_all(&cwd).unwrap();
        // A symlink where the object goes: replaced, never written through.
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, cwd.join("a.o")).unwrap();
        let outputs = vec!["a.o".to_string()];
        let landing = Landing::beside(&cwd, &outputs);
        let got = lookup_digest(
            &client,
            &Digest::of_bytes(b"action"),
            &outputs,
            &landing,
            Ask::Both,
        )
        .await;
        let f = got.unwrap().unwrap();
        assert_eq!(f.code, 0);
        assert_eq!(std::fs::read(cwd.join("a.o")).unwrap(), obj);
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        let names: Vec<String> = std::fs::read_dir(&cwd)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.o"], "only the declared output");
        assert!(!dir.path().join("escape.txt").exists());
        assert!(!Path::new("/tmp/absolute.txt").exists());
    }

    #[tokio::test]
    async fn a_result_naming_an_output_twice_is_refused() {
        let result = reapi::ActionResult {
            output_files: vec![file("a.o", b"one"), file("a.o", b"two")],
            ..Default::default()
        };
        let (client, dir) = hostile(result, &[b"one", b"two"]).await;
        let outputs = vec!["a.o".to_string()];
        let landing = Landing::beside(dir.path(), &outputs);
        let err = refused(&client, &outputs, &landing).await;
        assert_eq!(err.cause, Cause::MissingOutputs, "{}", err.message);
        assert!(!dir.path().join("a.o").exists());
    }

    #[tokio::test]
    async fn a_blob_that_does_not_match_its_digest_is_never_written() {
        let result = reapi::ActionResult {
            output_files: vec![file("a.o", b"what the digest says")],
            ..Default::default()
        };
        let (client, dir) = hostile(result.clone(), &[]).await;
        // The server holds other bytes under that digest.
        let fake_bytes = b"something else entirely".to_vec();
        let cwd = dir.path().join("work");
        std::fs::create_dir_all(&cwd).unwrap();
        drop(client);
        let fake = Fake::default();
        {
            let mut s = fake.0.lock().unwrap();
            s.result = Some(result);
            s.blobs
                .insert(Digest::of_bytes(b"what the digest says"), fake_bytes);
        }
        let url = fake.start().await;
        let client = client_of(&url, &dir.path().join("cache2")).await;
        let outputs = vec!["a.o".to_string()];
        let landing = Landing::beside(&cwd, &outputs);
        let err = refused(&client, &outputs, &landing).await;
        assert_eq!(err.cause, Cause::BadBlob, "{}", err.message);
        assert_eq!(
            std::fs::read_dir(&cwd).unwrap().count(),
            0,
            "nothing left behind"
        );
    }

    #[tokio::test]
    async fn a_result_claiming_a_huge_stderr_is_refused() {
        let result = reapi::ActionResult {
            output_files: vec![file("a.o", b"obj")],
            stderr_digest: Some(Digest::new(&"ab".repeat(32), 64 << 30).unwrap().to_proto()),
            ..Default::default()
        };
        let (client, dir) = hostile(result, &[b"obj"]).await;
        let outputs = vec!["a.o".to_string()];
        let landing = Landing::beside(dir.path(), &outputs);
        let err = refused(&client, &outputs, &landing).await;
        assert_eq!(err.cause, Cause::Protocol, "{}", err.message);
        assert!(
            err.message.contains("more than recast replays"),
            "{}",
            err.message
        );
    }

    #[test]
    fn worker_troubles_are_told_from_compile_errors() {
        assert!(!infrastructure(1, b"a.c:3:1: error: expected ';'\n"));
        assert!(infrastructure(127, b""));
        assert!(infrastructure(-1, b""));
        assert!(infrastructure(139, b""));
        assert!(infrastructure(
            1,
            b"cc1: error while loading shared libraries: libisl.so.23: cannot open shared object file"
        ));
        assert!(infrastructure(
            1,
            b"gcc: fatal error: cannot execute 'cc1': No such file\n"
        ));
    }

    #[test]
    fn only_declared_outputs_are_kept_and_all_are_required() {
        let f = |p: &str| reapi::OutputFile {
            path: p.into(),
            ..Default::default()
        };
        let r = reapi::ActionResult {
            output_files: vec![f("a.o"), f("../../etc/passwd"), f("a.dwo")],
            ..Default::default()
        };
        let kept = declared_only(&r, &["a.o".into(), "a.dwo".into()]).unwrap();
        let paths: Vec<&str> = kept.output_files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["a.o", "a.dwo"]);
        assert!(declared_only(&r, &["b.o".into()]).is_none());
    }
}
