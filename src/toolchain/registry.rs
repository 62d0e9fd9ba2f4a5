//! The toolchain registry, kept in the server's own CAS and action cache.
//!
//! Nothing but the REAPI server is shared between machines, so toolchains
//! are published there: the manifest and the tree go to the CAS, and an
//! ActionCache entry whose key is derived from (identity, host platform)
//! points at them. Any client finds the toolchain it needs with one
//! GetActionResult — a macOS client asks for the Linux build of its own
//! compiler by changing only the host in the key. A second entry, under a
//! fixed key, holds the list of what was published (REAPI has no way to
//! enumerate an action cache); it is rewritten on each publish and removal.
//!
//! Keys are pure ([`toolchain_key`], [`index_key`]); the rest talks to the
//! server through [`Client`].

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::FileSource;
use super::bundle::Bundle;
use super::family::Identity;
use super::manifest::{HostDesc, Manifest};
use crate::cas::Digest;
use crate::proto::reapi;
use crate::remote::{Blob, Client, RemoteError, UploadStats};

/// First word of every registry key's command: no real action has it.
const KEY_TOOL: &str = "recast-toolchain-registry";
/// Bumped when the key layout changes.
const KEY_VERSION: &str = "v1";
/// Output path of the manifest in a registry entry.
const MANIFEST_PATH: &str = "manifest.json";
/// Output path of the tree in a registry entry.
const ROOT_PATH: &str = "root";
/// Output path of the list in the index entry.
const INDEX_PATH: &str = "index.json";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error("reading {path} for upload: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the registry entry for {name} on {server} is damaged ({why}); publish it again with `recast toolchain upload`"
    )]
    Damaged {
        name: String,
        server: String,
        why: String,
    },
    #[error(
        "no toolchain named {0:?} in the registry of {1}; `recast toolchain list` shows what is there"
    )]
    NotFound(String, String),
}

/// One line of the registry's list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listed {
    pub name: String,
    pub identity: Identity,
    pub host: HostDesc,
    pub root: Digest,
    pub manifest: Digest,
    pub size: u64,
    pub files: u64,
    /// Seconds since the epoch.
    pub published: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IndexDoc {
    toolchains: BTreeMap<String, Listed>,
}

/// The action whose cache entry holds `args`' answer.
fn key_action(args: Vec<String>) -> (reapi::Command, reapi::Action, Digest) {
    let command = reapi::Command {
        arguments: args,
        output_paths: vec![MANIFEST_PATH.into(), ROOT_PATH.into()],
        ..Default::default()
    };
    let (command_digest, _) = Digest::of_message(&command);
    let (input_root, _) = Digest::of_message(&reapi::Directory::default());
    let action = reapi::Action {
        command_digest: Some(command_digest.to_proto()),
        input_root_digest: Some(input_root.to_proto()),
        ..Default::default()
    };
    let (digest, _) = Digest::of_message(&action);
    (command, action, digest)
}

/// The cache key of a toolchain: its identity and the platform it runs on.
pub fn toolchain_key(identity: &Identity, host: &HostDesc) -> Digest {
    key_action(key_args(identity, host)).2
}

fn key_args(identity: &Identity, host: &HostDesc) -> Vec<String> {
    vec![
        KEY_TOOL.into(),
        KEY_VERSION.into(),
        identity.family.to_string(),
        identity.version.clone(),
        identity.commit.clone().unwrap_or_else(|| "-".into()),
        host.arch.clone(),
        host.os.clone(),
    ]
}

/// The cache key of the registry's list.
pub fn index_key() -> Digest {
    key_action(vec![KEY_TOOL.into(), KEY_VERSION.into(), "index".into()]).2
}

/// What a publish did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Published {
    /// Blobs the tree and manifest are made of.
    pub blobs: u64,
    pub bytes: u64,
    /// What had to be sent (the rest the server had).
    pub uploaded: UploadStats,
}

/// Uploads what the server lacks of `bundle`'s tree and files, without
/// publishing it under a name (a relocated variant, which its toolchain's
/// manifest names). Returns what was sent.
pub async fn upload_tree(
    client: &Client,
    fs: &dyn FileSource,
    bundle: &Bundle,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<UploadStats, RegistryError> {
    let small: Vec<Blob> = bundle
        .tree
        .directories
        .iter()
        .map(|(d, bytes)| Blob {
            digest: *d,
            source: crate::remote::BlobSource::Bytes(bytes.clone()),
        })
        .collect();
    let mut digests: Vec<Digest> = small.iter().map(|b| b.digest).collect();
    digests.extend(bundle.files.values().copied());
    let to_send = missing_blobs(client, fs, bundle, small, &digests).await?;
    upload_in_groups(client, to_send, progress).await
}

/// Uploads what the server lacks of `bundle` (file bytes read through
/// `fs`) and publishes its manifest under its key and in the list.
/// `progress` is called with (bytes sent so far, bytes to send).
pub async fn publish(
    client: &Client,
    fs: &dyn FileSource,
    bundle: &Bundle,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Published, RegistryError> {
    let manifest = &bundle.manifest;
    let manifest_blob = Blob::from_bytes(manifest.to_json());
    let tree_blob = Blob::from_message(&bundle.tree.to_tree_message());
    let (command, action, key) = key_action(key_args(&manifest.identity, &manifest.host));

    let mut small = vec![
        manifest_blob.clone(),
        tree_blob.clone(),
        Blob::from_message(&command),
        Blob::from_message(&action),
    ];
    for (d, bytes) in &bundle.tree.directories {
        small.push(Blob {
            digest: *d,
            source: crate::remote::BlobSource::Bytes(bytes.clone()),
        });
    }
    let mut digests: Vec<Digest> = small.iter().map(|b| b.digest).collect();
    digests.extend(bundle.files.values().copied());
    let total_blobs = digests.len() as u64;
    let total_bytes: u64 = digests.iter().map(Digest::size).sum();

    let to_send = missing_blobs(client, fs, bundle, small, &digests).await?;
    let uploaded = upload_in_groups(client, to_send, progress).await?;
    let result = entry_result(manifest_blob.digest, tree_blob.digest, manifest.root);
    client.update_action_result(&key, result).await?;

    let listed = Listed {
        name: manifest.name.clone(),
        identity: manifest.identity.clone(),
        host: manifest.host.clone(),
        root: manifest.root,
        manifest: manifest_blob.digest,
        size: manifest.size,
        files: manifest.files,
        published: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    update_index(client, |doc| {
        doc.toolchains.insert(listed.name.clone(), listed.clone());
    })
    .await?;
    Ok(Published {
        blobs: total_blobs,
        bytes: total_bytes,
        uploaded,
    })
}

/// The blobs the server lacks of `digests`: those of `small` it misses,
/// then the bundle's files it misses, each once, read through `fs`.
async fn missing_blobs(
    client: &Client,
    fs: &dyn FileSource,
    bundle: &Bundle,
    small: Vec<Blob>,
    digests: &[Digest],
) -> Result<Vec<Blob>, RegistryError> {
    let missing: std::collections::HashSet<Digest> =
        client.find_missing(digests).await?.into_iter().collect();
    let mut to_send: Vec<Blob> = small
        .into_iter()
        .filter(|b| missing.contains(&b.digest))
        .collect();
    let mut seen = std::collections::HashSet::new();
    for (path, d) in &bundle.files {
        if missing.contains(d) && seen.insert(*d) {
            let path = bundle.source_of(path);
            let source = fs.blob_source(path).map_err(|source| RegistryError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            to_send.push(Blob { digest: *d, source });
        }
    }
    Ok(to_send)
}

/// Uploads `to_send` in groups of ~64 MiB, so progress moves and archive
/// bytes held in memory are dropped group by group.
async fn upload_in_groups(
    client: &Client,
    to_send: Vec<Blob>,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<UploadStats, RegistryError> {
    let send_bytes: u64 = to_send.iter().map(|b| b.digest.size()).sum();
    let mut uploaded = UploadStats::default();
    let mut group = Vec::new();
    let mut group_bytes = 0u64;
    let mut sent = 0u64;
    progress(0, send_bytes);
    for blob in to_send {
        group_bytes += blob.digest.size();
        group.push(blob);
        if group_bytes >= 64 << 20 {
            let s = client.upload(std::mem::take(&mut group)).await?;
            uploaded.blobs += s.blobs;
            uploaded.bytes += s.bytes;
            sent += group_bytes;
            group_bytes = 0;
            progress(sent, send_bytes);
        }
    }
    if !group.is_empty() {
        let s = client.upload(group).await?;
        uploaded.blobs += s.blobs;
        uploaded.bytes += s.bytes;
        progress(send_bytes, send_bytes);
    }
    Ok(uploaded)
}

/// The registry entry: the manifest as a file, the tree as a directory.
fn entry_result(manifest: Digest, tree: Digest, root: Digest) -> reapi::ActionResult {
    reapi::ActionResult {
        output_files: vec![reapi::OutputFile {
            path: MANIFEST_PATH.into(),
            digest: Some(manifest.to_proto()),
            ..Default::default()
        }],
        output_directories: vec![reapi::OutputDirectory {
            path: ROOT_PATH.into(),
            tree_digest: Some(tree.to_proto()),
            root_directory_digest: Some(root.to_proto()),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The manifest published for `identity` built for `host`, if any.
pub async fn find(
    client: &Client,
    identity: &Identity,
    host: &HostDesc,
) -> Result<Option<(Manifest, Digest)>, RegistryError> {
    let key = toolchain_key(identity, host);
    let name = Manifest::name_for(identity, host);
    let Some(result) = client.get_action_result(&key).await? else {
        return Ok(None);
    };
    let Some(file) = result.output_files.iter().find(|f| f.path == MANIFEST_PATH) else {
        // A removed toolchain leaves an entry with no outputs.
        return Ok(None);
    };
    let digest =
        Digest::from_proto_opt(file.digest.as_ref()).map_err(|e| damaged(client, &name, e))?;
    let bytes = client.read_blob(&digest).await?;
    let manifest = Manifest::from_json(&bytes).map_err(|e| damaged(client, &name, e))?;
    // The key names family, version, commit and host; the triple a
    // compiler reports for itself differs between its builds.
    let same = |a: &Identity| {
        a.family == identity.family && a.version == identity.version && a.commit == identity.commit
    };
    if !same(&manifest.identity) || manifest.host != *host {
        return Err(damaged(
            client,
            &name,
            "its manifest names another toolchain",
        ));
    }
    Ok(Some((manifest, digest)))
}

fn damaged(client: &Client, name: &str, why: impl std::fmt::Display) -> RegistryError {
    RegistryError::Damaged {
        name: name.into(),
        server: client.url().into(),
        why: why.to_string(),
    }
}

/// Everything the registry lists, by name.
pub async fn list(client: &Client) -> Result<Vec<Listed>, RegistryError> {
    Ok(read_index(client).await?.toolchains.into_values().collect())
}

/// The manifest of a listed toolchain, by name, root digest or manifest
/// digest (a unique prefix of the hash is enough).
pub async fn show(client: &Client, what: &str) -> Result<(Listed, Manifest), RegistryError> {
    let doc = read_index(client).await?;
    let matches: Vec<&Listed> = doc
        .toolchains
        .values()
        .filter(|l| {
            l.name == what
                || l.root.to_string() == what
                || l.manifest.to_string() == what
                || (what.len() >= 8
                    && (l.root.hex().starts_with(what) || l.manifest.hex().starts_with(what)))
        })
        .collect();
    let [one] = matches.as_slice() else {
        return Err(RegistryError::NotFound(what.into(), client.url().into()));
    };
    let bytes = client.read_blob(&one.manifest).await?;
    let manifest = Manifest::from_json(&bytes).map_err(|e| damaged(client, &one.name, e))?;
    Ok(((*one).clone(), manifest))
}

/// Removes a toolchain from the list and empties its entry, so lookups
/// miss; its blobs stay until the server's own eviction takes them.
pub async fn remove(client: &Client, what: &str) -> Result<Listed, RegistryError> {
    let (listed, _) = show(client, what).await?;
    let key = toolchain_key(&listed.identity, &listed.host);
    client
        .update_action_result(&key, reapi::ActionResult::default())
        .await?;
    let name = listed.name.clone();
    update_index(client, |doc| {
        doc.toolchains.remove(&name);
    })
    .await?;
    Ok(listed)
}

async fn read_index(client: &Client) -> Result<IndexDoc, RegistryError> {
    let Some(result) = client.get_action_result(&index_key()).await? else {
        return Ok(IndexDoc::default());
    };
    let Some(file) = result.output_files.iter().find(|f| f.path == INDEX_PATH) else {
        return Ok(IndexDoc::default());
    };
    let digest =
        Digest::from_proto_opt(file.digest.as_ref()).map_err(|e| damaged(client, "index", e))?;
    let bytes = client.read_blob(&digest).await?;
    serde_json::from_slice(&bytes).map_err(|e| damaged(client, "index", e))
}

/// Read, change, write. Two publishers racing may lose one line of the
/// list (never a toolchain: its own entry is separate); publishing again
/// restores it.
async fn update_index(
    client: &Client,
    change: impl FnOnce(&mut IndexDoc),
) -> Result<(), RegistryError> {
    let mut doc = read_index(client).await?;
    change(&mut doc);
    let blob = Blob::from_bytes(serde_json::to_vec_pretty(&doc).expect("index serializes"));
    let digest = blob.digest;
    let (command, action, key) =
        key_action(vec![KEY_TOOL.into(), KEY_VERSION.into(), "index".into()]);
    client
        .upload_missing(vec![
            blob,
            Blob::from_message(&command),
            Blob::from_message(&action),
        ])
        .await?;
    let result = reapi::ActionResult {
        output_files: vec![reapi::OutputFile {
            path: INDEX_PATH.into(),
            digest: Some(digest.to_proto()),
            ..Default::default()
        }],
        ..Default::default()
    };
    client.update_action_result(&key, result).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toolchain::family::Family;

    fn id(version: &str) -> Identity {
        Identity {
            family: Family::Rustc,
            version: version.into(),
            commit: Some("abc".into()),
            host: "x86_64-unknown-linux-gnu".into(),
            target: "x86_64-unknown-linux-gnu".into(),
        }
    }

    #[test]
    fn keys_differ_by_identity_and_host_and_are_stable() {
        let linux = HostDesc {
            arch: "x86_64".into(),
            os: "linux".into(),
        };
        let mac = HostDesc {
            arch: "aarch64".into(),
            os: "darwin".into(),
        };
        let a = toolchain_key(&id("1.91.0"), &linux);
        assert_eq!(a, toolchain_key(&id("1.91.0"), &linux));
        assert_ne!(a, toolchain_key(&id("1.91.1"), &linux));
        assert_ne!(a, toolchain_key(&id("1.91.0"), &mac));
        assert_ne!(a, index_key());
    }
}
