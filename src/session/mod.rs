//! Reaching the server: the remote configuration resolved (flag > env >
//! file > the embedded default), the embedded per-user server (its store
//! read directly, the server started when a call first needs it) when
//! nothing is configured, and a connected [`Client`]. Used by the commands
//! (`cli`) and the compiler wrapper (`wrap`) alike, so neither reaches into
//! the other.

pub mod embedded;
pub mod front;

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{self, Endpoint, Env, RemoteArgs};
use crate::remote::Client;

/// Resolves where the server is (flag > env > file > the embedded
/// default) and connects to it.
pub async fn connect(args: &RemoteArgs, sources: &config::Sources) -> anyhow::Result<Client> {
    let cfg = config::resolve(args, &sources.env, &sources.file)?;
    // The client keeps server capabilities there. (The compiler wrapper
    // makes it private itself, before anything else.)
    crate::fsutil::ensure_private_dir(&cfg.cache_dir)?;
    connect_to(&cfg, &sources.env).await
}

/// recast's state directory (`RECAST_CACHE_DIR`, else the XDG cache),
/// made private to this user: created 0700, a looser one tightened, one
/// owned by someone else refused with what to do.
pub fn cache_dir(env: &Env) -> anyhow::Result<std::path::PathBuf> {
    let dir = config::cache_dir(env)?;
    crate::fsutil::ensure_private_dir(&dir)?;
    Ok(dir)
}

/// Connects to the server `cfg` names (resolved already), or to the
/// embedded server if it names none; the caller has made `cfg.cache_dir`
/// private ([`cache_dir`], or the wrapper's own check).
pub async fn connect_to(cfg: &config::RemoteConfig, env: &Env) -> anyhow::Result<Client> {
    match &cfg.endpoint {
        Endpoint::Url(url) => Ok(Client::connect(cfg, url).await?),
        Endpoint::Embedded => embedded_client(cfg, env),
    }
}

/// The client of a wrapped compile: results kept on this machine are read
/// first, with no call, and the server is dialed (or the embedded one
/// started) only when a call is needed. With a remote server, what it
/// answers is kept in the local tier (`<cache>/tier`, at most
/// `wrap.tier_size` bytes), and calls go through this user's warm front
/// for that server when `wrap.front` asks for one ([`front::wanted`]); the
/// embedded server's own store is that tier.
pub fn wrapper_client(
    cfg: &config::RemoteConfig,
    env: &Env,
    wrap: &config::WrapConfig,
) -> anyhow::Result<Client> {
    match &cfg.endpoint {
        Endpoint::Url(url) => {
            let tier = (wrap.tier_size > 0)
                .then(|| crate::cas::store::Tier::new(&tier_dir(&cfg.cache_dir), wrap.tier_size));
            let front = front::wanted(wrap.front, url)
                .then(|| -> anyhow::Result<_> {
                    Ok(front::finder(cfg, url, embedded::idle_timeout(env)?))
                })
                .transpose()?;
            Ok(Client::with_tier(cfg, url, tier, front)?)
        }
        Endpoint::Embedded => embedded_client(cfg, env),
    }
}

/// Where the local tier lives under the cache dir.
pub fn tier_dir(cache_dir: &std::path::Path) -> PathBuf {
    cache_dir.join("tier")
}

fn embedded_client(cfg: &config::RemoteConfig, env: &Env) -> anyhow::Result<Client> {
    // Its store is ours: hits are read from it without a call, and the
    // server is found, or started, at the first call that needs it.
    let dir = cfg.cache_dir.clone();
    let idle = embedded::idle_timeout(env)?;
    let url = embedded::url(&dir)?;
    let store = embedded::store_dir(&dir);
    let recorded_dir = dir.clone();
    let find = crate::remote::channel::FindSocket {
        recorded: Arc::new(move || embedded::recorded_socket(&recorded_dir)),
        find: Arc::new(move || {
            let url = embedded::ensure(&dir, idle).map_err(|e| {
                std::io::Error::other(format!("starting the embedded server: {e:#}"))
            })?;
            Ok(PathBuf::from(url.strip_prefix("unix:").unwrap_or(&url)))
        }),
    };
    Ok(Client::embedded(cfg, &url, &store, find)?)
}
