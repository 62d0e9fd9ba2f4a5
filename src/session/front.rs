//! This user's warm fronts (`crate::front`): one per remote server,
//! started on demand as the embedded server is, and found again by every
//! later compile. Each lives in `<cache>/fronts/KEY/` (`front.sock`,
//! `front.json`, `front.log`), KEY naming the server's URL and the TLS
//! files the connection is made with.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::embedded::Daemon;
use crate::config::{Front, RemoteConfig};
use crate::remote::channel::{self, FindSocket, ServerUrl};

/// The daemon's name: its files are `front.*`.
pub const NAME: &str = "front";

/// Where the fronts of the cache dir `cache` live.
pub fn fronts_dir(cache: &Path) -> PathBuf {
    cache.join("fronts")
}

/// Whether compiles reach the server at `url` through a front: only a TCP
/// server (a socket is on this machine already), and with `Auto` only one
/// that is not on a loopback address, where a new connection costs round
/// trips.
pub fn wanted(setting: Front, url: &str) -> bool {
    match channel::parse_url(url) {
        Ok(ServerUrl::Tcp(t)) => match setting {
            Front::On => true,
            Front::Off => false,
            Front::Auto => !t.is_loopback(),
        },
        _ => false,
    }
}

/// The state dir of the front for `url` with `cfg`'s TLS files.
pub fn dir(cfg: &RemoteConfig, url: &str) -> PathBuf {
    let mut key = String::from(url);
    for file in [&cfg.tls_ca, &cfg.tls_cert, &cfg.tls_key] {
        key.push('\0');
        if let Some(f) = file {
            key.push_str(&f.to_string_lossy());
        }
    }
    let hex = crate::cas::Digest::of_bytes(key.as_bytes()).hex();
    fronts_dir(&cfg.cache_dir).join(&hex[..16])
}

/// Finds the socket of the front for `url`, starting the front (which
/// stops after `idle_secs` without a call) when none answers.
pub fn finder(cfg: &RemoteConfig, url: &str, idle_secs: u64) -> FindSocket {
    let dir = dir(cfg, url);
    let mut args: Vec<std::ffi::OsString> = vec![NAME.into(), "--remote".into(), url.into()];
    for (flag, file) in [
        ("--tls-ca", &cfg.tls_ca),
        ("--tls-cert", &cfg.tls_cert),
        ("--tls-key", &cfg.tls_key),
    ] {
        if let Some(f) = file {
            args.push(flag.into());
            args.push(f.into());
        }
    }
    args.push("--idle-timeout".into());
    args.push(idle_secs.to_string().into());
    let recorded_dir = dir.clone();
    FindSocket {
        recorded: Arc::new(move || {
            Daemon {
                dir: &recorded_dir,
                name: NAME,
            }
            .recorded()
        }),
        find: Arc::new(move || {
            let daemon = Daemon {
                dir: &dir,
                name: NAME,
            };
            let url = daemon
                .ensure(&args)
                .map_err(|e| std::io::Error::other(format!("starting the recast front: {e:#}")))?;
            Ok(PathBuf::from(url.strip_prefix("unix:").unwrap_or(&url)))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_front_for_servers_elsewhere_unless_set() {
        let far = "grpcs://rbe.example:443";
        let near = "grpc://127.0.0.1:8980";
        assert!(wanted(Front::Auto, far));
        assert!(!wanted(Front::Auto, near));
        assert!(wanted(Front::On, near));
        assert!(!wanted(Front::Off, far));
        // A socket is on this machine: nothing to keep warm.
        assert!(!wanted(Front::On, "unix:/run/r.sock"));
    }

    #[test]
    fn one_front_per_server_and_tls_files() {
        let env = crate::config::Env(
            [(crate::config::vars::CACHE_DIR.to_string(), "/c".to_string())].into(),
        );
        let mut cfg = crate::config::resolve(&Default::default(), &env, &Default::default())
            .expect("defaults resolve");
        let a = dir(&cfg, "grpc://a:1");
        assert!(a.starts_with("/c/fronts"));
        assert_ne!(a, dir(&cfg, "grpc://b:1"));
        cfg.tls_ca = Some(PathBuf::from("/ca.pem"));
        assert_ne!(a, dir(&cfg, "grpc://a:1"));
    }
}
