//! What a server can do (`GetCapabilities`), as a checked struct, and a
//! small on-disk cache so each process does not ask again.
//!
//! [`ServerCaps::from_proto`] is pure: it checks the answer (SHA-256 must be
//! offered) and turns REAPI's conventions (0 means "no limit", a missing
//! version means 2.0) into plain values. The cache lives under
//! `<cache_dir>/capabilities/`, one JSON file per (URL, instance), and
//! expires after [`CACHE_TTL`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::RemoteError;
use crate::proto::reapi;
use crate::proto::semver::SemVer;

/// How long a cached answer is trusted.
pub const CACHE_TTL: Duration = Duration::from_secs(3600);

/// gRPC's customary 4 MiB message limit, which servers enforce even when
/// they advertise no batch limit.
const GRPC_MESSAGE_LIMIT: u64 = 4 << 20;
/// Room left in a batch message for digests, field tags and headers.
const BATCH_HEADROOM: u64 = 64 << 10;

/// A REAPI version, compared as (major, minor, patch).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ApiVersion {
    pub major: i32,
    pub minor: i32,
    pub patch: i32,
}

impl ApiVersion {
    pub const V2_0: ApiVersion = ApiVersion::new(2, 0, 0);
    pub const V2_1: ApiVersion = ApiVersion::new(2, 1, 0);
    pub const V2_2: ApiVersion = ApiVersion::new(2, 2, 0);

    pub const fn new(major: i32, minor: i32, patch: i32) -> ApiVersion {
        ApiVersion {
            major,
            minor,
            patch,
        }
    }

    fn from_proto(v: Option<&SemVer>) -> Option<ApiVersion> {
        v.map(|v| ApiVersion::new(v.major, v.minor, v.patch))
            .filter(|v| *v != ApiVersion::new(0, 0, 0))
    }
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// How the server treats absolute symlink targets in outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SymlinkStrategy {
    Unknown,
    Disallowed,
    Allowed,
}

/// A server's capabilities, checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerCaps {
    /// Digest functions the CAS offers, by REAPI name (always includes SHA256).
    pub digest_functions: Vec<String>,
    /// What the server advertised (0 = no limit).
    pub max_batch_total_size_bytes: i64,
    /// The batch size recast actually uses: the advertised limit, but never
    /// above gRPC's 4 MiB message limit minus headroom.
    pub batch_limit: u64,
    /// Largest blob the CAS accepts (0 = no limit).
    pub max_cas_blob_size_bytes: i64,
    /// zstd for ByteStream (`compressed-blobs/zstd/...`) and BatchReadBlobs.
    pub zstd: bool,
    /// zstd inside BatchUpdateBlobs.
    pub zstd_batch_update: bool,
    pub low_api_version: ApiVersion,
    pub high_api_version: ApiVersion,
    pub exec_enabled: bool,
    pub symlink_strategy: SymlinkStrategy,
    pub ac_update_enabled: bool,
    /// `ExecutionCapabilities.supported_node_properties`: NativeLink lists
    /// the platform properties its scheduler declares there.
    #[serde(default)]
    pub node_properties: Vec<String>,
    /// True when the server did not implement GetCapabilities and these are
    /// the REAPI 2.0 defaults.
    pub assumed: bool,
}

fn digest_name(v: i32) -> String {
    reapi::digest_function::Value::try_from(v)
        .map(|v| v.as_str_name().to_string())
        .unwrap_or_else(|_| format!("UNKNOWN({v})"))
}

fn effective_batch_limit(advertised: i64) -> u64 {
    let wire = GRPC_MESSAGE_LIMIT - BATCH_HEADROOM;
    if advertised <= 0 {
        wire
    } else {
        (advertised as u64).min(wire)
    }
}

impl ServerCaps {
    /// What a REAPI 2.0 server that does not answer GetCapabilities is
    /// assumed to offer.
    pub fn assumed_v2_0() -> ServerCaps {
        ServerCaps {
            digest_functions: vec!["SHA256".into()],
            max_batch_total_size_bytes: 0,
            batch_limit: effective_batch_limit(0),
            max_cas_blob_size_bytes: 0,
            zstd: false,
            zstd_batch_update: false,
            low_api_version: ApiVersion::V2_0,
            high_api_version: ApiVersion::V2_0,
            exec_enabled: true,
            symlink_strategy: SymlinkStrategy::Unknown,
            ac_update_enabled: false,
            node_properties: Vec::new(),
            assumed: true,
        }
    }

    /// Checks a `ServerCapabilities` answer from `server`.
    pub fn from_proto(
        server: &str,
        c: &reapi::ServerCapabilities,
    ) -> Result<ServerCaps, RemoteError> {
        use reapi::compressor::Value as Compressor;
        use reapi::digest_function::Value as DigestFn;
        let sha256 = DigestFn::Sha256 as i32;
        let cache = c.cache_capabilities.clone().unwrap_or_default();
        let exec = c.execution_capabilities.clone().unwrap_or_default();

        // Servers older than 2.3 may leave the list empty; SHA-256 was the
        // only choice then.
        let digest_functions: Vec<String> = if cache.digest_functions.is_empty() {
            vec!["SHA256".into()]
        } else {
            cache
                .digest_functions
                .iter()
                .map(|v| digest_name(*v))
                .collect()
        };
        let mut offered_ok =
            cache.digest_functions.is_empty() || cache.digest_functions.contains(&sha256);
        if exec.exec_enabled {
            let exec_fns: Vec<i32> = if exec.digest_functions.is_empty() {
                vec![exec.digest_function]
            } else {
                exec.digest_functions.clone()
            };
            offered_ok &= exec_fns.contains(&sha256) || exec_fns == [DigestFn::Unknown as i32];
        }
        if !offered_ok {
            let mut offered = digest_functions.clone();
            if exec.exec_enabled {
                offered.push(format!("execution: {}", digest_name(exec.digest_function)));
            }
            return Err(RemoteError::UnsupportedDigest {
                server: server.to_string(),
                offered,
            });
        }

        let high = ApiVersion::from_proto(c.high_api_version.as_ref())
            .or_else(|| ApiVersion::from_proto(c.deprecated_api_version.as_ref()))
            .unwrap_or(ApiVersion::V2_0);
        let low = ApiVersion::from_proto(c.low_api_version.as_ref())
            .or_else(|| ApiVersion::from_proto(c.deprecated_api_version.as_ref()))
            .unwrap_or(ApiVersion::V2_0);
        let zstd = Compressor::Zstd as i32;
        let symlink_strategy = match reapi::symlink_absolute_path_strategy::Value::try_from(
            cache.symlink_absolute_path_strategy,
        ) {
            Ok(reapi::symlink_absolute_path_strategy::Value::Allowed) => SymlinkStrategy::Allowed,
            Ok(reapi::symlink_absolute_path_strategy::Value::Disallowed) => {
                SymlinkStrategy::Disallowed
            }
            _ => SymlinkStrategy::Unknown,
        };
        Ok(ServerCaps {
            digest_functions,
            max_batch_total_size_bytes: cache.max_batch_total_size_bytes,
            batch_limit: effective_batch_limit(cache.max_batch_total_size_bytes),
            max_cas_blob_size_bytes: cache.max_cas_blob_size_bytes.max(0),
            zstd: cache.supported_compressors.contains(&zstd),
            zstd_batch_update: cache.supported_batch_update_compressors.contains(&zstd),
            low_api_version: low,
            high_api_version: high,
            exec_enabled: exec.exec_enabled,
            node_properties: exec.supported_node_properties.clone(),
            symlink_strategy,
            ac_update_enabled: cache
                .action_cache_update_capabilities
                .is_some_and(|u| u.update_enabled),
            assumed: false,
        })
    }

    /// `Action.platform` exists from REAPI 2.2 on.
    pub fn supports_action_platform(&self) -> bool {
        self.high_api_version >= ApiVersion::V2_2
    }

    /// `Command.output_paths` exists from REAPI 2.1 on; older servers need
    /// `output_files` / `output_directories`.
    pub fn supports_output_paths(&self) -> bool {
        self.high_api_version >= ApiVersion::V2_1
    }
}

/// The cache file on disk.
#[derive(Serialize, Deserialize)]
struct CacheFile {
    url: String,
    instance: String,
    /// Seconds since the Unix epoch.
    fetched_at: u64,
    caps: ServerCaps,
}

fn cache_path(cache_dir: &Path, url: &str, instance: &str) -> PathBuf {
    let key = super::server_key(url, instance).hex();
    cache_dir
        .join("capabilities")
        .join(format!("{}.json", &key[..32]))
}

/// The cached capabilities for (url, instance), if fresh at `now` (seconds).
pub fn load_cached(cache_dir: &Path, url: &str, instance: &str, now: u64) -> Option<ServerCaps> {
    let text = std::fs::read_to_string(cache_path(cache_dir, url, instance)).ok()?;
    let file: CacheFile = serde_json::from_str(&text).ok()?;
    let age = now.checked_sub(file.fetched_at)?;
    (file.url == url && file.instance == instance && age < CACHE_TTL.as_secs()).then_some(file.caps)
}

/// Stores capabilities; failures only cost a refetch, so they are logged.
pub fn store_cached(cache_dir: &Path, url: &str, instance: &str, caps: &ServerCaps, now: u64) {
    let path = cache_path(cache_dir, url, instance);
    let file = CacheFile {
        url: url.to_string(),
        instance: instance.to_string(),
        fetched_at: now,
        caps: caps.clone(),
    };
    let write = || -> std::io::Result<()> {
        crate::fsutil::write_private(&path, &serde_json::to_vec_pretty(&file)?, false)
    };
    if let Err(e) = write() {
        tracing::debug!("cannot cache capabilities in {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::reapi::{compressor::Value as C, digest_function::Value as D};

    fn semver(major: i32, minor: i32) -> Option<SemVer> {
        Some(SemVer {
            major,
            minor,
            ..Default::default()
        })
    }

    fn full() -> reapi::ServerCapabilities {
        reapi::ServerCapabilities {
            cache_capabilities: Some(reapi::CacheCapabilities {
                digest_functions: vec![D::Sha256 as i32, D::Blake3 as i32],
                max_batch_total_size_bytes: 0,
                supported_compressors: vec![C::Zstd as i32],
                supported_batch_update_compressors: vec![C::Zstd as i32],
                action_cache_update_capabilities: Some(reapi::ActionCacheUpdateCapabilities {
                    update_enabled: true,
                }),
                symlink_absolute_path_strategy:
                    reapi::symlink_absolute_path_strategy::Value::Allowed as i32,
                ..Default::default()
            }),
            execution_capabilities: Some(reapi::ExecutionCapabilities {
                digest_function: D::Sha256 as i32,
                exec_enabled: true,
                ..Default::default()
            }),
            low_api_version: semver(2, 0),
            high_api_version: semver(2, 3),
            ..Default::default()
        }
    }

    #[test]
    fn reads_a_modern_server() {
        let caps = ServerCaps::from_proto("s", &full()).unwrap();
        assert_eq!(caps.digest_functions, vec!["SHA256", "BLAKE3"]);
        assert_eq!(caps.batch_limit, (4 << 20) - (64 << 10));
        assert!(caps.zstd && caps.zstd_batch_update);
        assert!(caps.supports_action_platform() && caps.supports_output_paths());
        assert!(caps.exec_enabled && caps.ac_update_enabled);
        assert_eq!(caps.symlink_strategy, SymlinkStrategy::Allowed);
        assert_eq!(caps.high_api_version.to_string(), "2.3.0");
    }

    #[test]
    fn old_servers_get_old_features() {
        let mut c = full();
        c.high_api_version = semver(2, 1);
        let caps = ServerCaps::from_proto("s", &c).unwrap();
        assert!(caps.supports_output_paths());
        assert!(!caps.supports_action_platform());
        c.high_api_version = None;
        c.low_api_version = None;
        c.deprecated_api_version = semver(2, 0);
        let caps = ServerCaps::from_proto("s", &c).unwrap();
        assert!(!caps.supports_output_paths());
        assert_eq!(caps.low_api_version, ApiVersion::V2_0);
        let assumed = ServerCaps::assumed_v2_0();
        assert!(!assumed.supports_output_paths() && assumed.assumed);
    }

    #[test]
    fn batch_limit_respects_server_and_wire() {
        let mut c = full();
        c.cache_capabilities
            .as_mut()
            .unwrap()
            .max_batch_total_size_bytes = 1 << 20;
        assert_eq!(
            ServerCaps::from_proto("s", &c).unwrap().batch_limit,
            1 << 20
        );
        c.cache_capabilities
            .as_mut()
            .unwrap()
            .max_batch_total_size_bytes = 100 << 20;
        assert_eq!(
            ServerCaps::from_proto("s", &c).unwrap().batch_limit,
            (4 << 20) - (64 << 10)
        );
    }

    #[test]
    fn refuses_a_server_without_sha256() {
        let mut c = full();
        c.cache_capabilities.as_mut().unwrap().digest_functions = vec![D::Blake3 as i32];
        let err = ServerCaps::from_proto("grpc://s:1", &c).unwrap_err();
        assert!(matches!(err, RemoteError::UnsupportedDigest { .. }));
        assert!(err.to_string().contains("BLAKE3"), "{err}");
        let mut c = full();
        c.execution_capabilities.as_mut().unwrap().digest_function = D::Sha1 as i32;
        assert!(ServerCaps::from_proto("s", &c).is_err());
        // An empty list is an old server: SHA-256 implied.
        let mut c = full();
        c.cache_capabilities
            .as_mut()
            .unwrap()
            .digest_functions
            .clear();
        assert!(ServerCaps::from_proto("s", &c).is_ok());
    }

    #[test]
    fn disk_cache_round_trips_and_expires() {
        let dir = tempfile::tempdir().unwrap();
        let caps = ServerCaps::from_proto("s", &full()).unwrap();
        store_cached(dir.path(), "grpc://a:1", "main", &caps, 1000);
        assert_eq!(
            load_cached(dir.path(), "grpc://a:1", "main", 1000 + 60),
            Some(caps.clone())
        );
        assert_eq!(load_cached(dir.path(), "grpc://a:1", "other", 1000), None);
        assert_eq!(load_cached(dir.path(), "grpc://b:1", "main", 1000), None);
        assert_eq!(
            load_cached(dir.path(), "grpc://a:1", "main", 1000 + CACHE_TTL.as_secs()),
            None
        );
        std::fs::write(cache_path(dir.path(), "grpc://a:1", "main"), "garbage").unwrap();
        assert_eq!(load_cached(dir.path(), "grpc://a:1", "main", 1000), None);
    }
}
