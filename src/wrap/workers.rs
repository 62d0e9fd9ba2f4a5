//! Which layout a server's workers need (`layout::Layout`).
//!
//! Workers that make the input root their `/` (recast's own sandboxes,
//! buildbox-run, Buildbarn's chroot runner) run rooted actions, whose
//! paths are the user's own; a worker that runs actions in a plain
//! directory (NativeLink, Buildbarn's default runner, BuildBuddy, EngFlow,
//! `recast serve --sandbox none`) would resolve `/usr/include/stdio.h` on
//! its own disk, and gets relocated actions. So, once an hour per
//! (server, instance, platform), recast asks: an uncached action runs the
//! toolchain's ELF loader, by a relative path (which works either way),
//! with `--verify` on a file that exists only at an absolute path inside
//! the input root. Exit 0 means the worker saw it there: rooted. No answer
//! within [`PATIENCE`] (no worker matches the platform, as NativeLink
//! keeps such actions queued) is remembered for a minute, and compiles
//! run here meanwhile — unless an earlier answer exists: a busy server's
//! queue holds the probe too, and what it said before still holds.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::depcache;
use super::inputs::Inputs;
use super::layout::Layout;
use super::on_server::{Cause, Failure, Prepared};
use super::tool::Tool;
use crate::action::{self, CommandSpec, Features};
use crate::cas::Digest;
use crate::cas::tree::{self, Entry};
use crate::remote::{self, ActionRun, Blob, Client};
use crate::toolchain::relocate::Launcher;
use crate::toolchain::{HostFs, inspect, listing::Listing};

/// How long an answer is trusted.
const TTL_SECS: u64 = 3600;
/// Where the probe file sits: a path no worker has of its own.
const PROBE_DIR: &str = "recast-chroot-probe-5f0c2a";

#[derive(Serialize, Deserialize)]
struct Answer {
    /// `None`: no worker answered the probe in [`PATIENCE`].
    layout: Option<Layout>,
    at: u64,
}

/// How long the probe waits for a worker (an engine that keeps actions
/// queued while no worker matches their platform, as NativeLink does,
/// would otherwise hold every compile).
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(90);
/// How long "no worker answered" is believed: compiles run here meanwhile.
const SILENCE_TTL_SECS: u64 = 60;

use crate::fsutil::now_secs as now;

fn answer_path(cache_dir: &Path, client: &Client, platform: &[(String, String)]) -> PathBuf {
    let mut key = format!("{}\n{}\n", client.url(), client.instance());
    for (k, v) in platform {
        key.push_str(&format!("{k}={v}\n"));
    }
    let d = Digest::of_bytes(key.as_bytes());
    cache_dir
        .join("probes")
        .join(format!("{}.json", &d.hex()[..32]))
}

/// The probe action for `tool`'s loader, or `None` when there is none to
/// run: a static toolchain (zig) borrows this machine's loader and C
/// library when it is for this machine's platform (from the registry, for
/// another's, [`layout`] gives its relocated variant, which has one).
fn probe_action(
    tool: Option<&Tool>,
    platform: &[(String, String)],
    features: Features,
) -> Option<Prepared> {
    let interpreter = tool.and_then(|t| t.manifest().interpreter.as_ref());
    let (loader, mut entries, blobs, subject) = match (tool, interpreter) {
        (Some(tool), Some(loader)) => {
            let m = tool.manifest();
            match tool {
                Tool::Local(bundle) => {
                    let subject = tool.file_digest(&m.entry)?;
                    let files = [Path::new("/").join(loader), Path::new("/").join(&m.entry)];
                    let (entries, blobs) = local_files(&bundle.files, &files)?;
                    (loader.clone(), entries, blobs, subject)
                }
                // Everything is on the server already; the whole tree
                // resolves the loader's links.
                // A loader borrowed from the launcher (a static compiler's
                // relocated variant) verifies the launcher, not the compiler.
                Tool::Registry { entries, .. } => {
                    let borrowed = m
                        .relocated
                        .as_ref()
                        .is_some_and(|r| r.interpreter.is_some());
                    let subject = if borrowed {
                        super::layout::SHELL.trim_start_matches('/')
                    } else {
                        &m.entry
                    };
                    (
                        loader.clone(),
                        entries.clone(),
                        Vec::new(),
                        tool.file_digest(subject)?,
                    )
                }
            }
        }
        (Some(Tool::Registry { .. }), None) => return None,
        (Some(Tool::Local(_)) | None, None) | (None, Some(_)) => {
            let (loader, libc) = own_loader()?;
            let (entries, blobs) =
                local_files(&Default::default(), &[loader.clone(), libc.clone()])?;
            let subject = crate::cas::hash::digest_file(&libc).ok()?;
            let loader = loader.to_string_lossy().trim_start_matches('/').to_string();
            (loader, entries, blobs, subject)
        }
    };
    entries.push(Entry::file(format!("{PROBE_DIR}/probe"), subject, true));
    let arguments = vec![loader, "--verify".into(), format!("/{PROBE_DIR}/probe")];
    prepared(
        entries,
        blobs,
        arguments,
        Default::default(),
        platform,
        features,
    )
}

/// A probe action: its input root, blobs and command.
fn prepared(
    entries: Vec<Entry>,
    blobs: Vec<Blob>,
    arguments: Vec<String>,
    env: std::collections::BTreeMap<String, String>,
    platform: &[(String, String)],
    features: Features,
) -> Option<Prepared> {
    let tree = tree::build(&entries).ok()?;
    let spec = CommandSpec {
        arguments,
        env,
        outputs: Vec::new(),
        working_directory: String::new(),
        platform: platform.to_vec(),
    };
    let command = action::build_command(&spec, features).ok()?;
    let command_digest = Digest::of_message(&command).0;
    let action = action::build_action(
        &command_digest,
        &tree.root,
        Some(std::time::Duration::from_secs(60)),
        true,
        platform,
        features.action_platform,
    );
    let digest = Digest::of_message(&action).0;
    Some(Prepared {
        digest,
        action,
        command,
        inputs: Inputs {
            tree,
            blobs,
            // Probes run before any toolchain upload is ensured: none of
            // their blobs is taken to be on the server.
            toolchain: Default::default(),
        },
        outputs: Vec::new(),
        landing: Default::default(),
    })
}

/// The tree entries and blobs of this machine's `files` (with the links
/// met on the way), digests from `known` or hashed here.
fn local_files(
    known: &std::collections::BTreeMap<PathBuf, Digest>,
    files: &[PathBuf],
) -> Option<(Vec<Entry>, Vec<Blob>)> {
    let mut listing = Listing::new();
    let mut digests = std::collections::BTreeMap::new();
    for f in files {
        let real = listing.add_path(&HostFs, f).ok()?;
        let d = match known.get(&real) {
            Some(d) => *d,
            None => crate::cas::hash::digest_file(&real).ok()?,
        };
        digests.insert(real, d);
    }
    let (entries, _) = listing.entries(&digests);
    let blobs = digests.iter().map(|(p, d)| Blob::file(*d, p)).collect();
    Some((entries, blobs))
}

/// This machine's ELF loader and C library: those recast itself runs
/// with, or, when recast is linked statically (the musl release build),
/// the shell's.
fn own_loader() -> Option<(PathBuf, PathBuf)> {
    let exe = std::env::current_exe().ok()?;
    loader_of(exe).or_else(|| loader_of(PathBuf::from(super::layout::SHELL)))
}

/// The loader and C library a dynamically linked `exe` names.
fn loader_of(exe: PathBuf) -> Option<(PathBuf, PathBuf)> {
    let c = inspect::closure(&HostFs, &[exe], &inspect::ClosureOptions::default()).ok()?;
    let mut loader = None;
    let mut libc = None;
    for (path, entry) in &c.files {
        let name = path.file_name()?.to_string_lossy();
        match &entry.why {
            inspect::Why::Interpreter { .. } => loader = Some(path.clone()),
            inspect::Why::Needed { .. } if name.starts_with("libc.so") => libc = Some(path.clone()),
            _ => {}
        }
    }
    Some((loader?, libc?))
}

/// The layout `client`'s workers for `platform` need: rooted where they
/// run actions with the input root as `/`, relocated elsewhere. From the
/// cache, else asked with the probe action.
pub async fn layout(
    cache_dir: &Path,
    client: &Client,
    tool: &Tool,
    platform: &[(String, String)],
    features: Features,
) -> Result<Layout, Failure> {
    let path = answer_path(cache_dir, client, platform);
    let last = read(&path);
    if let Some(a) = last.as_ref().filter(|a| fresh(a)) {
        return a.layout.ok_or_else(|| silent(client, platform));
    }
    // A static toolchain from the registry (zig for another machine)
    // brings no loader; its relocated variant has its launcher's.
    let borrowed;
    let tool = match tool {
        Tool::Registry { manifest, .. } if manifest.interpreter.is_none() => {
            borrowed = super::tool::relocated_registry(client, (**manifest).clone())
                .await
                .map_err(|_| {
                    Failure::new(
                        Cause::ProbeUnavailable,
                        format!(
                            "{} is statically linked and {} holds no relocated variant of it to probe the workers with: upload it again with this recast",
                            manifest.name,
                            client.url()
                        ),
                    )
                })?;
            &borrowed
        }
        _ => tool,
    };
    let Some(p) = probe_action(Some(tool), platform, features) else {
        return Err(Failure::new(
            Cause::ProbeUnavailable,
            format!(
                "{} has no ELF loader to probe the workers with",
                tool.manifest().name
            ),
        ));
    };
    let layout = ask(client, &p).await?;
    match layout {
        Some(l) => tracing::info!("{} gets {l} actions", client.url()),
        // A busy server keeps a probe queued behind long compiles: what it
        // said before still holds.
        None => {
            if let Some(l) = last.and_then(|a| a.layout) {
                tracing::info!("the probe waited in {}'s queue; keeping {l}", client.url());
                return Ok(l);
            }
        }
    }
    depcache::save(cache_dir, &path, &Answer { layout, at: now() });
    layout.ok_or_else(|| silent(client, platform))
}

/// The probe action `p` on the server, never from its cache.
async fn run(
    client: &Client,
    p: &Prepared,
) -> Result<crate::remote::Outcome, crate::remote::RemoteError> {
    remote::run_action(
        client,
        ActionRun {
            skip_cache: true,
            looked_up: false,
            ..p.run(Vec::new())
        },
    )
    .await
}

/// Runs the probe action `p`: the layout its answer means, or `None` when
/// no worker ran it within [`PATIENCE`].
async fn ask(client: &Client, p: &Prepared) -> Result<Option<Layout>, Failure> {
    let Ok(outcome) = tokio::time::timeout(PATIENCE, run(client, p)).await else {
        return Ok(None);
    };
    let outcome = outcome.map_err(|e| Failure::of(&e))?;
    if !outcome.ok() {
        let code = tonic::Code::from(outcome.status.code);
        return Err(Failure::new(Cause::Status(code), outcome.status.message));
    }
    let chroot = outcome.result.as_ref().is_some_and(|r| r.exit_code == 0);
    Ok(Some(if chroot {
        Layout::Rooted
    } else {
        Layout::Relocated
    }))
}

/// Whether the workers of `client` for `platform`, which run actions in a
/// plain directory, can start `launcher` (bubblewrap, shipped with the
/// action) to make the input root their `/` in a user namespace: then a
/// compile that cannot be relocated (rustc recording its paths) runs
/// there rooted. Asked with an action that verifies a file only the input
/// root has, from inside such a namespace; the answer is kept for an hour
/// (no answer within [`PATIENCE`] counts as no, for a minute).
pub async fn namespaces(
    cache_dir: &Path,
    client: &Client,
    launcher: &Launcher,
    platform: &[(String, String)],
    features: Features,
) -> bool {
    let path = answer_path(cache_dir, client, platform).with_extension("namespaces.json");
    if let Some(a) = read(&path).filter(fresh) {
        return a.layout == Some(Layout::Rooted);
    }
    let works = match namespace_action(launcher, platform, features) {
        Some(p) => match ask_why(client, &p).await {
            Ok(()) => true,
            Err(why) => {
                tracing::info!(
                    "{}'s workers cannot make user namespaces for rooted actions: {why}",
                    client.url()
                );
                false
            }
        },
        None => false,
    };
    if works {
        tracing::info!(
            "{}'s workers make user namespaces for rooted actions",
            client.url()
        );
    }
    let layout = works.then_some(Layout::Rooted).or(Some(Layout::Relocated));
    depcache::save(cache_dir, &path, &Answer { layout, at: now() });
    works
}

/// [`namespaces`] for `recast doctor`, uncached: `Err` says why not (this
/// machine has no launcher to ship, or what the workers answered).
pub async fn namespaces_here(
    cache_dir: &Path,
    client: &Client,
    platform: &[(String, String)],
    features: Features,
) -> Result<(), String> {
    let bwrap = Path::new(super::layout::BWRAP);
    let launcher = crate::toolchain::relocate::launcher(cache_dir, bwrap)
        .map_err(|e| format!("this machine has no launcher to ship: {e}"))?;
    let p = namespace_action(&launcher, platform, features)
        .ok_or_else(|| format!("{} brings no C library to probe with", bwrap.display()))?;
    ask_why(client, &p).await
}

/// Runs the probe action `p`: `Ok` when it exits 0, else why not (its
/// first line of stderr, its status, or no answer).
async fn ask_why(client: &Client, p: &Prepared) -> Result<(), String> {
    let outcome = tokio::time::timeout(PATIENCE, run(client, p))
        .await
        .map_err(|_| format!("no worker ran the probe within {} s", PATIENCE.as_secs()))?
        .map_err(|e| e.to_string())?;
    if !outcome.ok() {
        return Err(outcome.status.message);
    }
    let Some(result) = outcome.result.as_ref() else {
        return Err("the probe has no result".into());
    };
    if result.exit_code == 0 {
        return Ok(());
    }
    let stderr = client
        .std_streams(result)
        .await
        .map(|(_, e)| String::from_utf8_lossy(&e).into_owned())
        .unwrap_or_default();
    let first = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    Err(format!("exit {}: {first}", result.exit_code))
}

/// The namespace probe: `launcher`, started from the root through the
/// `.r` and `.r-ld` links, binds the input root as `/` and runs its loader
/// on a file only the input root has. Exit 0 (as [`ask`] reads it:
/// rooted) means the workers can do it.
fn namespace_action(
    launcher: &Launcher,
    platform: &[(String, String)],
    features: Features,
) -> Option<Prepared> {
    let (mut entries, _) = launcher.listing.entries(&launcher.files);
    let blobs: Vec<Blob> = launcher
        .files
        .iter()
        .map(|(p, d)| Blob::file(*d, launcher.sources.get(p).unwrap_or(p)))
        .collect();
    let libc = launcher.files.iter().find_map(|(p, d)| {
        p.file_name()?
            .to_string_lossy()
            .starts_with("libc.so")
            .then_some(*d)
    })?;
    entries.push(Entry::symlink(super::layout::ROOT, "."));
    entries.push(Entry::symlink(
        super::layout::LOADER,
        format!("{}/{}", super::layout::ROOT, launcher.interpreter),
    ));
    entries.push(Entry::file(format!("{PROBE_DIR}/probe"), libc, true));
    let mut arguments = vec![super::layout::rel(&format!("/{}", launcher.program))];
    arguments.extend(super::layout::namespace_args(".", "/", false, None));
    arguments.extend([
        format!("/{}", launcher.interpreter),
        "--verify".into(),
        format!("/{PROBE_DIR}/probe"),
    ]);
    let env = std::collections::BTreeMap::from([(
        "LD_LIBRARY_PATH".to_string(),
        super::layout::launcher_libraries(&launcher.library_path),
    )]);
    prepared(entries, blobs, arguments, env, platform, features)
}

/// The probe with this machine's loader, for `recast doctor`: the layout
/// `client`'s workers for `platform` need, `None` when none answered in
/// [`PATIENCE`] (a second), uncached.
pub async fn probe_here(
    client: &Client,
    platform: &[(String, String)],
    features: Features,
) -> Result<Option<Layout>, Failure> {
    let p = probe_action(None, platform, features).ok_or_else(|| {
        Failure::new(
            Cause::ProbeUnavailable,
            "this machine has no ELF loader to probe with",
        )
    })?;
    ask(client, &p).await
}

/// The layout a probe found for `client` and `platform`, if still fresh.
pub fn known_layout(
    cache_dir: &Path,
    client: &Client,
    platform: &[(String, String)],
) -> Option<Layout> {
    read(&answer_path(cache_dir, client, platform))
        .filter(fresh)
        .and_then(|a| a.layout)
}

fn read(path: &Path) -> Option<Answer> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Answer>(&b).ok())
}

fn fresh(a: &Answer) -> bool {
    let ttl = if a.layout.is_some() {
        TTL_SECS
    } else {
        SILENCE_TTL_SECS
    };
    now().saturating_sub(a.at) < ttl
}

/// Why compiles run here when no worker answers.
fn silent(client: &Client, platform: &[(String, String)]) -> Failure {
    let props: Vec<String> = platform.iter().map(|(k, v)| format!("{k}={v}")).collect();
    Failure::new(
        Cause::NoWorker,
        format!(
            "no worker of {} ran a probe with platform {} within {} s; check that a worker offers these properties (`recast doctor`)",
            client.url(),
            props.join(" "),
            PATIENCE.as_secs()
        ),
    )
}
