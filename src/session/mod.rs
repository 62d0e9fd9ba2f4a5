//! Reaching the server: the remote configuration resolved (flag > env >
//! file > the embedded default), the embedded per-user server started when
//! nothing is configured, and a connected [`Client`]. Used by the commands
//! (`cli`) and the compiler wrapper (`wrap`) alike, so neither reaches into
//! the other.

pub mod embedded;

use anyhow::Context as _;

use crate::config::{self, Endpoint, Env, RemoteArgs};
use crate::remote::Client;

/// Resolves where the server is (flag > env > file > the embedded
/// default) and connects to it.
pub async fn connect(args: &RemoteArgs, sources: &config::Sources) -> anyhow::Result<Client> {
    let cfg = config::resolve(args, &sources.env, &sources.file)?;
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

/// Connects to the server `cfg` names (resolved already), starting the
/// embedded server if it names none.
pub async fn connect_to(cfg: &config::RemoteConfig, env: &Env) -> anyhow::Result<Client> {
    // The client keeps server capabilities there.
    crate::fsutil::ensure_private_dir(&cfg.cache_dir)?;
    let url = match &cfg.endpoint {
        Endpoint::Url(url) => url.clone(),
        Endpoint::Embedded => {
            let dir = cfg.cache_dir.clone();
            let idle = embedded::idle_timeout(env)?;
            tokio::task::spawn_blocking(move || embedded::ensure(&dir, idle))
                .await
                .context("starting the embedded server")??
        }
    };
    Ok(Client::connect(cfg, &url).await?)
}
