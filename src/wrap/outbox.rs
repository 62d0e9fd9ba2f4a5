//! Results of compiles run here, sent to a remote server in the background.
//!
//! Across a WAN, publishing a local compile's result costs its round trips
//! (the outputs, then the action-cache entry) and its bytes: a few hundred
//! milliseconds for a crate's rlib over an office link, on the build's
//! critical path if the compile waits. With `RECAST_PUBLISH=auto` (the
//! default, for a server not on loopback) or `background`, it does not:
//!
//! - the compile keeps its result in the local tier, which answers this
//!   machine's next identical compile at once, and writes an entry naming
//!   the action to `<cache>/outbox/SERVER/` ([`post`]);
//! - one publisher per server (`recast publish-pending DIR`, a process of
//!   its own) sends each entry's result as the tier holds it, every blob
//!   checked against its digest on the way, a few at a time ([`drain`]).
//!
//! One publisher at a time holds `DIR/lock`; a compile that finds it free
//! starts one. A publisher that has found the outbox empty for [`LINGER`]
//! lets the lock go and looks once more, so an entry written while it was stopping is never
//! left behind: its writer either finds the lock free (and starts a
//! publisher) or was seen by that last look.
//!
//! Nothing waits for the outbox, and nothing is lost with it: a result it
//! could not send (a server down, a blob the tier evicted) is dropped with
//! a line in its log, and the next build that misses compiles and queues it
//! again.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cas::Digest;
use crate::remote::{Blob, BlobSource, Client};

/// Results sent side by side, each a few calls.
const AT_ONCE: usize = 8;

/// How long a publisher waits with an empty outbox for more before it
/// exits: compiles that finish one after another then share one
/// publisher, rather than each starting its own.
const LINGER: Duration = Duration::from_secs(1);

/// An entry: the action, and the server it is for (the publisher checks its
/// own settings name the same).
#[derive(Serialize, Deserialize)]
struct Entry {
    url: String,
    instance: String,
    action: String,
    size: u64,
}

/// The outbox of `client`'s server under `cache_dir`.
fn dir_for(cache_dir: &Path, client: &Client) -> PathBuf {
    cache_dir
        .join("outbox")
        .join(&client.server_key().hex()[..16])
}

/// Queues the result of `action`, already in `client`'s local tier, for
/// the server; starts a publisher if none is running.
pub(super) fn post(cache_dir: &Path, client: &Client, action: &Digest) -> anyhow::Result<()> {
    let dir = queue(cache_dir, client, action)?;
    if crate::lock::FileLock::try_take(&dir.join("lock"))?.is_some() {
        start(&dir)?;
    }
    Ok(())
}

/// Writes the entry of `action` (atomically: a publisher never reads half
/// of one); returns the outbox.
fn queue(cache_dir: &Path, client: &Client, action: &Digest) -> anyhow::Result<PathBuf> {
    let dir = dir_for(cache_dir, client);
    let entry = Entry {
        url: client.url().to_string(),
        instance: client.instance().to_string(),
        action: action.hex(),
        size: action.size(),
    };
    let path = dir.join(format!("{}-{}.json", action.hex(), action.size()));
    crate::fsutil::write_private(&path, &serde_json::to_vec(&entry)?, false)?;
    Ok(dir)
}

/// Starts `recast publish-pending DIR`, its output appended to `DIR/log`.
fn start(dir: &Path) -> std::io::Result<()> {
    let log = crate::fsutil::append_private(&dir.join("log"))?;
    super::process::start_detached(&["publish-pending".as_ref(), dir.as_os_str()], log)
}

/// The entries waiting in `dir`.
fn waiting(dir: &Path) -> Vec<PathBuf> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut all: Vec<PathBuf> = read
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    all.sort();
    all
}

/// `recast publish-pending DIR`, with the compiles' settings (from the
/// environment they passed on).
pub async fn main(dir: &Path) -> anyhow::Result<()> {
    let env = crate::config::Env::from_process();
    let (wrap, remote, _, cache_dir) = super::settings(&env)?;
    let client = crate::session::wrapper_client(&remote, &env, &wrap)?;
    eprintln!("publisher {} started", std::process::id());
    drain(dir, &client, &cache_dir, LINGER).await
}

/// Sends every result queued in `DIR` through
/// `client` (the compiles' own: front, tier and settings), until none is
/// left for `linger`; returns at once if another publisher holds the
/// outbox.
pub async fn drain(
    dir: &Path,
    client: &Client,
    cache_dir: &Path,
    linger: Duration,
) -> anyhow::Result<()> {
    let Some(tier) = client.tier() else {
        anyhow::bail!("no local tier to read queued results from (RECAST_TIER_SIZE=0?)");
    };
    let reader = tier.reader();
    if dir != dir_for(cache_dir, client) {
        anyhow::bail!(
            "{} is not the outbox of {} (instance {:?}) under {}",
            dir.display(),
            client.url(),
            client.instance(),
            cache_dir.display()
        );
    }
    loop {
        let Some(lock) = crate::lock::FileLock::try_take(&dir.join("lock"))? else {
            return Ok(());
        };
        let mut idle_since = Instant::now();
        loop {
            let entries = waiting(dir);
            if entries.is_empty() {
                if idle_since.elapsed() >= linger {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            use futures::StreamExt as _;
            futures::stream::iter(entries)
                .for_each_concurrent(AT_ONCE, |path| {
                    let reader = &reader;
                    async move {
                        let t = Instant::now();
                        match send_one(&path, client, reader).await {
                            Ok((action, up)) => {
                                eprintln!("published {action} ({up} bytes) in {:.0?}", t.elapsed());
                                super::stats::record(
                                    cache_dir,
                                    &super::stats::Event {
                                        published: true,
                                        up,
                                        ..Default::default()
                                    },
                                );
                            }
                            Err(e) => eprintln!("dropped {}: {e:#}", path.display()),
                        }
                        let _ = std::fs::remove_file(&path);
                    }
                })
                .await;
            idle_since = Instant::now();
        }
        drop(lock);
        // An entry written while the lock was held, after the last look.
        if waiting(dir).is_empty() {
            return Ok(());
        }
    }
}

/// Sends one queued result: its blobs as the tier holds them (each checked
/// against its digest as it is read), then the action-cache entry.
async fn send_one(
    path: &Path,
    client: &Client,
    reader: &crate::cas::store::StoreReader,
) -> anyhow::Result<(Digest, u64)> {
    let entry: Entry = serde_json::from_slice(&std::fs::read(path)?)?;
    if (entry.url.as_str(), entry.instance.as_str()) != (client.url(), client.instance()) {
        anyhow::bail!(
            "queued for {} (instance {:?}), not this publisher's server",
            entry.url,
            entry.instance
        );
    }
    let action = Digest::new(&entry.action, entry.size as i64)?;
    let result = reader
        .result(&action)
        .ok_or_else(|| anyhow::anyhow!("the local tier no longer holds its result"))?;
    let mut digests = Vec::new();
    for f in &result.output_files {
        digests.push(Digest::from_proto_opt(f.digest.as_ref())?);
    }
    for d in [&result.stdout_digest, &result.stderr_digest]
        .into_iter()
        .flatten()
    {
        digests.push(Digest::from_proto(d)?);
    }
    let mut blobs = Vec::new();
    for d in digests {
        let bytes = reader
            .blob(&d)
            .ok_or_else(|| anyhow::anyhow!("the local tier no longer holds blob {d}"))?;
        blobs.push(Blob {
            digest: d,
            source: BlobSource::Bytes(bytes),
        });
    }
    let client = client.for_action(&action);
    let up = super::publish::send(&client, blobs).await?;
    client.update_action_result(&action, result).await?;
    Ok((action, up))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cas::store::{Tier, TierBlob};
    use crate::proto::reapi;
    use crate::remote::fake::Fake;

    /// A result naming `out` and `err`, kept in `tier` under `action`.
    fn kept(tier: &Tier, action: &Digest, out: &[u8], err: &[u8]) -> reapi::ActionResult {
        let (o, e) = (Digest::of_bytes(out), Digest::of_bytes(err));
        let result = reapi::ActionResult {
            output_files: vec![reapi::OutputFile {
                path: "a.o".into(),
                digest: Some(o.to_proto()),
                ..Default::default()
            }],
            stderr_digest: Some(e.to_proto()),
            ..Default::default()
        };
        let blobs = [TierBlob::Bytes(o, out), TierBlob::Bytes(e, err)];
        tier.keep(action, &result, &blobs).unwrap();
        result
    }

    #[tokio::test]
    async fn the_publisher_sends_what_the_tier_holds_and_drops_what_it_lost() {
        let fake = Fake::default();
        let url = fake.start().await;
        let tmp = tempfile::tempdir().unwrap();
        let cache = tmp.path().join("cache");
        let cfg = crate::config::RemoteConfig {
            endpoint: crate::config::Endpoint::Url(url.clone()),
            instance: String::new(),
            headers: vec![],
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            timeout: std::time::Duration::from_secs(30),
            cache_dir: cache.clone(),
            compression: crate::config::Compression::Auto,
        };
        let tier = Tier::new(&cache.join("tier"), 1 << 30);
        let client =
            Client::with_tier(&cfg, &url, Some(Tier::new(tier.dir(), 1 << 30)), None).unwrap();
        let (sent, lost) = (Digest::of_bytes(b"sent"), Digest::of_bytes(b"lost"));
        kept(&tier, &sent, b"an object", b"a warning");
        kept(&tier, &lost, b"an evicted object", b"");
        // The tier lost a blob of the second result after it was queued.
        let evicted = Digest::of_bytes(b"an evicted object");
        let hex = evicted.hex();
        let path = tier.dir().join("cas").join(&hex[..2]);
        std::fs::remove_file(path.join(format!("{hex}-{}", evicted.size()))).unwrap();
        let dir = queue(&cache, &client, &sent).unwrap();
        queue(&cache, &client, &lost).unwrap();
        // An entry for another server under this one's outbox is refused.
        let stray = Entry {
            url: "grpc://elsewhere:1".into(),
            instance: String::new(),
            action: Digest::of_bytes(b"stray").hex(),
            size: 5,
        };
        std::fs::write(dir.join("stray.json"), serde_json::to_vec(&stray).unwrap()).unwrap();
        assert_eq!(waiting(&dir).len(), 3);

        drain(&dir, &client, &cache, Duration::ZERO).await.unwrap();
        assert_eq!(waiting(&dir), Vec::<PathBuf>::new());
        {
            let s = fake.0.lock().unwrap();
            let updates = s
                .calls
                .iter()
                .filter(|c| *c == "UpdateActionResult")
                .count();
            assert_eq!(updates, 1, "{:?}", s.calls);
            assert_eq!(
                s.blobs
                    .get(&Digest::of_bytes(b"an object"))
                    .map(Vec::as_slice),
                Some(&b"an object"[..])
            );
            assert!(s.blobs.contains_key(&Digest::of_bytes(b"a warning")));
            assert!(!s.blobs.contains_key(&evicted));
        }
        let stats = crate::wrap::stats::read(&cache).unwrap();
        assert_eq!(stats.results_published_later, 1, "{stats:?}");
        assert_eq!(stats.bytes_uploaded, 18, "{stats:?}");
        assert_eq!(stats.counts.compiles, 0, "{stats:?}");

        // Another publisher holding the outbox: this one returns at once.
        queue(&cache, &client, &sent).unwrap();
        let held = crate::lock::FileLock::try_take(&dir.join("lock"))
            .unwrap()
            .unwrap();
        drain(&dir, &client, &cache, Duration::ZERO).await.unwrap();
        assert_eq!(waiting(&dir).len(), 1);
        drop(held);
        // Told another outbox than its own, it refuses.
        let other = cache.join("outbox").join("0123456789abcdef");
        let err = drain(&other, &client, &cache, Duration::ZERO)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("is not the outbox of"), "{err}");
    }
}
