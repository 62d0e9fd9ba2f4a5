//! Reaching the server: the remote configuration resolved (flag > env >
//! file > the embedded default), the embedded per-user server started when
//! nothing is configured, and a connected [`Client`]. Used by the commands
//! (`cli`) and the compiler wrapper (`wrap`) alike, so neither reaches into
//! the other.

pub mod embedded;

use anyhow::Context as _;

use crate::config::{self, Endpoint, Env, RemoteArgs};
use crate::remote::Client;

/// Resolves where the server is and connects to it, reading the process
/// environment and the config file; starts the embedded server if nothing
/// is configured.
pub async fn connect(args: &RemoteArgs) -> anyhow::Result<Client> {
    let env = Env::from_process();
    let file_path = config::config_path(&env);
    let file = config::load_file(file_path.as_deref())?;
    connect_with(args, &env, &file).await
}

/// [`connect`] with the environment and config file already read.
pub async fn connect_with(
    args: &RemoteArgs,
    env: &Env,
    file: &config::FileConfig,
) -> anyhow::Result<Client> {
    let cfg = config::resolve(args, env, file)?;
    connect_to(&cfg, env).await
}

/// Connects to the server `cfg` names (resolved already), starting the
/// embedded server if it names none.
pub async fn connect_to(cfg: &config::RemoteConfig, env: &Env) -> anyhow::Result<Client> {
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
