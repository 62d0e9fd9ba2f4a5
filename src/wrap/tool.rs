//! The toolchain an action runs with: this machine's compiler, packaged
//! here, or — when that compiler cannot run on the workers (a macOS rustc
//! and Linux workers) — the same compiler (family, version, commit) built
//! for the workers' platform, found in the server's toolchain registry.
//!
//! The workers' platform is `RECAST_WORKER_PLATFORM` (a target triple),
//! else this machine's. This machine's platform is read from the
//! compiler's binaries, unless `RECAST_HOST_PLATFORM` declares it.

use std::collections::HashMap;
use std::path::PathBuf;

use super::family::Reason;
use super::why::Cause;
use super::{Ctx, Flow};
use crate::cas::Digest;
use crate::cas::tree::{self, Entry, Node};
use crate::remote::Client;
use crate::toolchain::bundle::Bundle;
use crate::toolchain::manifest::{HostDesc, Manifest};
use crate::toolchain::registry;

/// A toolchain for one action.
#[derive(Clone)]
pub enum Tool {
    /// Packaged from this machine's files; they are uploaded as needed.
    Local(Box<Bundle>),
    /// From the registry: every blob is on the server already.
    Registry {
        manifest: Box<Manifest>,
        entries: Vec<Entry>,
    },
}

impl Tool {
    pub fn manifest(&self) -> &Manifest {
        match self {
            Tool::Local(b) => &b.manifest,
            Tool::Registry { manifest, .. } => manifest,
        }
    }

    pub fn bundle(&self) -> Option<&Bundle> {
        match self {
            Tool::Local(b) => Some(b),
            Tool::Registry { .. } => None,
        }
    }

    /// The registry's entries (none for a local toolchain).
    pub fn entries(&self) -> &[Entry] {
        match self {
            Tool::Local(_) => &[],
            Tool::Registry { entries, .. } => entries,
        }
    }

    /// The digest of the regular file at tree path `path`, following the
    /// tree's own symlinks (`usr/bin/gcc → gcc-12`).
    pub fn file_digest(&self, path: &str) -> Option<Digest> {
        match self {
            Tool::Local(b) => {
                let real = std::fs::canonicalize(format!("/{path}")).ok()?;
                b.files.get(&real).copied()
            }
            Tool::Registry { entries, .. } => {
                let by_path: HashMap<&str, &Node> =
                    entries.iter().map(|e| (e.path.as_str(), &e.node)).collect();
                resolve_file(&by_path, path)
            }
        }
    }
}

/// The digest of the regular file at tree path `path`, following the
/// tree's symlinks wherever they are on the way (`bin → usr/bin`, then
/// `usr/bin/sh → dash`).
fn resolve_file(by_path: &HashMap<&str, &Node>, path: &str) -> Option<Digest> {
    let mut done: Vec<String> = Vec::new();
    let mut todo: std::collections::VecDeque<String> =
        path.split('/').map(str::to_string).collect();
    let mut hops = 0;
    while let Some(c) = todo.pop_front() {
        match c.as_str() {
            "" | "." => continue,
            ".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        done.push(c);
        match by_path.get(done.join("/").as_str()) {
            Some(Node::File { digest, .. }) => return todo.is_empty().then_some(*digest),
            Some(Node::Symlink { target }) => {
                hops += 1;
                if hops > 40 {
                    return None;
                }
                done.pop();
                if target.starts_with('/') {
                    done.clear();
                }
                for part in target.split('/').rev() {
                    todo.push_front(part.to_string());
                }
            }
            // A directory, listed or implied by the paths under it.
            Some(Node::Directory) | None => {}
        }
    }
    None
}

/// The toolchain to run `bundle`'s compiler with on the workers: itself
/// when it runs there, else its twin from the registry; `Err` is the flow
/// to take (a local compile, with the hint to publish the twin).
pub async fn for_workers(ctx: &Ctx, bundle: Bundle) -> Result<Tool, Flow> {
    let declared = |t: &Option<String>| t.as_deref().map(HostDesc::from_triple).transpose();
    let (here, workers) = match (
        declared(&ctx.wrap.host_platform),
        declared(&ctx.wrap.worker_platform),
    ) {
        (Ok(h), Ok(w)) => {
            let here = h.unwrap_or_else(|| bundle.manifest.host.clone());
            let workers = w.unwrap_or_else(|| here.clone());
            (here, workers)
        }
        (Err(e), _) | (_, Err(e)) => return Err(Flow::fallback(Cause::Platform, e)),
    };
    if here == workers {
        return Ok(Tool::Local(Box::new(bundle)));
    }
    let client: &Client = match ctx.client().await {
        Ok(c) => c,
        Err(e) => return Err(Flow::fallback(Cause::Unreachable, format!("{e:#}"))),
    };
    let identity = &bundle.manifest.identity;
    let found = match registry::find(client, identity, &workers).await {
        Ok(f) => f,
        Err(e) => return Err(Flow::fallback(Cause::Registry, e)),
    };
    let Some((manifest, _)) = found else {
        tracing::info!(
            "{} runs on {here}, the workers on {workers}, and {} has no {} built for them: run `recast toolchain upload --compiler …` on a {workers} machine, or upload its dist archive (`--archive`)",
            bundle.manifest.name,
            client.url(),
            Manifest::name_for(identity, &workers),
        );
        return Err(Flow::local(Reason::NoToolchainForWorkers));
    };
    let entries = tree_entries(client, &manifest.root).await?;
    tracing::debug!(toolchain = %manifest.name, "from the registry");
    Ok(Tool::Registry {
        manifest: Box::new(manifest),
        entries,
    })
}

/// The relocated variant a registry toolchain's uploader published beside
/// it (`recast toolchain upload`), as the workers get it; `Err`: there is
/// none (a local reason).
pub async fn relocated_registry(client: &Client, manifest: Manifest) -> Result<Tool, Reason> {
    let Some(r) = manifest.relocated.clone() else {
        tracing::info!(
            "{} in {}'s registry has no relocated variant: upload it again with this recast (`recast toolchain upload` says whether it could make one)",
            manifest.name,
            client.url()
        );
        return Err(Reason::RelocatedRegistryToolchain);
    };
    let entries = tree_entries(client, &r.root)
        .await
        .map_err(|_| Reason::RelocatedRegistryToolchain)?;
    let mut manifest = manifest;
    manifest.root = r.root;
    if let Some(loader) = r.interpreter {
        manifest.interpreter = Some(loader);
    }
    if !r.library_path.is_empty() {
        manifest.library_path = r.library_path;
    }
    Ok(Tool::Registry {
        manifest: Box::new(manifest),
        entries,
    })
}

/// The entries of the tree `root` on the server.
async fn tree_entries(client: &Client, root: &Digest) -> Result<Vec<Entry>, Flow> {
    let dirs = match client.get_tree(root).await {
        Ok(d) => d,
        Err(e) => {
            let f = super::on_server::Failure::of(&e);
            return Err(Flow::fallback(f.cause, f.message));
        }
    };
    let by_digest: HashMap<Digest, crate::proto::reapi::Directory> = dirs
        .into_iter()
        .map(|d| (Digest::of_message(&d).0, d))
        .collect();
    tree::flatten(root, &by_digest).map_err(|e| Flow::fallback(Cause::Registry, e))
}

/// The local files of a toolchain's programs, whose stamps say whether a
/// hit-path entry still describes it (none for a registry toolchain: the
/// local compiler's own stamp stands for it).
pub fn program_paths(tool: &Tool) -> Vec<PathBuf> {
    match tool {
        Tool::Local(b) => {
            let m = &b.manifest;
            let mut tools = vec![PathBuf::from(format!("/{}", m.entry))];
            tools.extend(m.programs.iter().map(|p| PathBuf::from(format!("/{p}"))));
            tools
        }
        Tool::Registry { .. } => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_file_digests_follow_the_trees_symlinks() {
        let d = Digest::of_bytes(b"gcc");
        let tool = Tool::Registry {
            manifest: Box::new(crate::toolchain::manifest::tests::sample()),
            entries: vec![
                Entry::dir("usr/bin"),
                Entry::symlink("usr/bin/gcc", "gcc-12"),
                Entry::file("usr/bin/gcc-12", d, true),
            ],
        };
        assert_eq!(tool.file_digest("usr/bin/gcc"), Some(d));
        assert_eq!(tool.file_digest("usr/bin"), None);
        assert_eq!(tool.file_digest("usr/bin/cc"), None);
    }

    /// Links on the way, not only at the end: the launcher `bin/sh` of a
    /// merged /usr (`bin → usr/bin`, `usr/bin/sh → dash`), absolute links,
    /// `..`, a file used as a directory, and a loop.
    #[test]
    fn registry_file_digests_follow_links_anywhere_on_the_path() {
        let dash = Digest::of_bytes(b"dash");
        let tool = Tool::Registry {
            manifest: Box::new(crate::toolchain::manifest::tests::sample()),
            entries: vec![
                Entry::symlink("bin", "usr/bin"),
                Entry::symlink("usr/bin/sh", "dash"),
                Entry::file("usr/bin/dash", dash, true),
                Entry::symlink("opt/sh", "/bin/sh"),
                Entry::symlink("opt/up", "../usr/bin/../bin/dash"),
                Entry::symlink("loop", "loop"),
            ],
        };
        assert_eq!(tool.file_digest("bin/sh"), Some(dash));
        assert_eq!(tool.file_digest("opt/sh"), Some(dash));
        assert_eq!(tool.file_digest("opt/up"), Some(dash));
        assert_eq!(tool.file_digest("usr/bin/dash/x"), None);
        assert_eq!(tool.file_digest("loop"), None);
        assert_eq!(tool.file_digest("bin/cc"), None);
    }
}
