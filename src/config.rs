//! Configuration: every environment variable recast reads, the config file,
//! and the precedence between them (flag > env > file > built-in default).
//!
//! Resolution is pure: callers pass the environment in as a map, so tests do
//! not mutate the process environment. Only [`Env::from_process`] and
//! [`load_file`] touch the outside world.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Every environment variable recast reads, with its meaning.
pub mod vars {
    /// Server URL: `grpc://HOST:PORT` or `grpcs://HOST:PORT`. Unset: the
    /// embedded per-user server, started on demand.
    pub const REMOTE: &str = "RECAST_REMOTE";
    /// REAPI instance name (default: empty).
    pub const INSTANCE: &str = "RECAST_INSTANCE";
    /// Extra request headers, `KEY=VALUE` separated by newlines or commas,
    /// e.g. `authorization=Bearer TOKEN`.
    pub const REMOTE_HEADERS: &str = "RECAST_REMOTE_HEADERS";
    /// PEM file of the CA that signed the server's certificate (grpcs).
    pub const TLS_CA: &str = "RECAST_TLS_CA";
    /// PEM client certificate for mutual TLS.
    pub const TLS_CERT: &str = "RECAST_TLS_CERT";
    /// PEM client key for mutual TLS.
    pub const TLS_KEY: &str = "RECAST_TLS_KEY";
    /// Seconds one remote call may take before it counts as failed.
    pub const TIMEOUT: &str = "RECAST_TIMEOUT";
    /// Seconds the embedded default's server waits without a call before
    /// it stops (default 3600; 0: never). The next compile starts it again.
    pub const IDLE_TIMEOUT: &str = "RECAST_IDLE_TIMEOUT";
    /// Path of the config file (default: `$XDG_CONFIG_HOME/recast/config.toml`).
    pub const CONFIG: &str = "RECAST_CONFIG";
    /// Directory for recast's state: caches and the embedded server
    /// (default: `$XDG_CACHE_HOME/recast`, else `~/.cache/recast`).
    pub const CACHE_DIR: &str = "RECAST_CACHE_DIR";
    /// Platform profile: a built-in name (`standard`, `buildgrid`,
    /// `buildbarn`, `nativelink`, `buildbuddy`, `google-rbe`, `engflow`) or
    /// the path of a profile file. See `recast platform list`.
    pub const PLATFORM_PROFILE: &str = "RECAST_PLATFORM_PROFILE";
    /// Extra platform properties, `KEY=VALUE` separated by newlines or
    /// commas, e.g. `Pool=linux-x64`. A key named here replaces the values
    /// the profile gives it.
    pub const PLATFORM: &str = "RECAST_PLATFORM";
    /// How wrapped compiles run: `auto` (the default: `remote` for a
    /// configured server, `cache-only` for the embedded one, whose
    /// sandbox would only share this machine's cores), `remote` (the
    /// action cache, then remote execution), `cache-only` (the action
    /// cache; on a miss, compile locally and upload the result) or `local`
    /// (recast steps aside).
    pub const MODE: &str = "RECAST_MODE";
    /// The project root wrapped compiles are normalized against (default:
    /// the nearest directory above the working directory holding `.git`,
    /// `.hg`, `.svn`, `.jj` or `.pijul`). Set it empty to disable.
    pub const PROJECT_ROOT: &str = "RECAST_PROJECT_ROOT";
    /// `1`: rustc records the project root as `/recast/project` (with
    /// `--remap-path-prefix`, locally and remotely alike), so two checkouts
    /// share cache hits; outputs then name `/recast/project` instead of the
    /// checkout's path, as cargo's `trim-paths` does. Default `0`: outputs
    /// are the bytes a plain build writes, and each checkout has its own.
    pub const TRIM_PATHS: &str = "RECAST_TRIM_PATHS";
    /// The platform the workers run on, as a target triple (e.g.
    /// `x86_64-unknown-linux-gnu`). Default: this machine's. When a local
    /// compiler cannot run there (a macOS rustc, Linux workers), wrapped
    /// compiles use the same compiler built for the workers from the
    /// server's toolchain registry (`recast toolchain upload`).
    pub const WORKER_PLATFORM: &str = "RECAST_WORKER_PLATFORM";
    /// This machine's platform as a target triple, declared instead of
    /// read from the local compiler's binaries (for tests of the
    /// foreign-host path, and for compilers run under emulation).
    pub const HOST_PLATFORM: &str = "RECAST_HOST_PLATFORM";
    /// `0`: a remote compile that fails is trusted as the compile's own
    /// result. Default `1`: it is confirmed by compiling here, and a local
    /// success wins (counted as `remote_false_failures`), as a build that
    /// works without recast must work with it.
    pub const CONFIRM_ERRORS: &str = "RECAST_CONFIRM_ERRORS";
    /// Log filter in `tracing` syntax (e.g. `debug`, `recast::remote=trace`).
    /// Wrapped compiles log nothing to stderr unless it is set.
    pub const LOG: &str = "RECAST_LOG";
    /// Bound on the local result tier kept in front of a remote server
    /// (`512M`, `5G`; `0` keeps none).
    pub const TIER_SIZE: &str = "RECAST_TIER_SIZE";
    /// Whether wrapped compiles reach a remote server through this user's
    /// warm front (one process that keeps the connection open): `auto`
    /// (default: for a server that is not on this machine), `on`, `off`.
    pub const FRONT: &str = "RECAST_FRONT";
    /// Whether blobs and action results travel zstd-compressed: `auto`
    /// (default: for a server not on a loopback address), `always` (a
    /// server reached through a tunnel or proxy on this machine), `never`.
    pub const COMPRESSION: &str = "RECAST_COMPRESSION";
    /// How a compile's toolchain gets to a server that lacks much of it:
    /// `auto` (default: in the background for a server not on this
    /// machine, while compiles run here), `background`, `wait`.
    pub const TOOLCHAIN_UPLOAD: &str = "RECAST_TOOLCHAIN_UPLOAD";
    /// When a compile that ran here sends its result to a remote server
    /// (its outputs, then the action-cache entry): `auto` (default: in the
    /// background for a server not on this machine, the result kept in
    /// the local tier meanwhile), `background`, `wait`.
    pub const PUBLISH: &str = "RECAST_PUBLISH";
    /// Tests only: when `1`, a test whose peer server is missing fails
    /// instead of skipping. CI sets it.
    pub const REQUIRE_PEERS: &str = "RECAST_REQUIRE_PEERS";
    /// Tests, CI and benchmarks only: where `scripts/peers/install.sh` puts
    /// the peer servers (default `~/.cache/recast-peers`).
    pub const PEERS_DIR: &str = "RECAST_PEERS_DIR";
    pub const XDG_CONFIG_HOME: &str = "XDG_CONFIG_HOME";
    pub const XDG_CACHE_HOME: &str = "XDG_CACHE_HOME";
    pub const HOME: &str = "HOME";
}

/// The environment as a value.
#[derive(Clone, Debug, Default)]
pub struct Env(pub BTreeMap<String, String>);

impl Env {
    pub fn from_process() -> Env {
        Env(std::env::vars().collect())
    }
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// What a command reads of the outside world, read once at its start:
/// the process environment and the config file.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    pub env: Env,
    pub file: FileConfig,
}

impl Sources {
    /// The process environment, and the config file it names (or the
    /// default one); an unreadable or invalid file is an error.
    pub fn read() -> Result<Sources, ConfigError> {
        let env = Env::from_process();
        let file = load_file(config_path(&env).as_deref())?;
        Ok(Sources { env, file })
    }
}

/// The config file, `config.toml`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Server URL, as `RECAST_REMOTE`.
    pub remote: Option<String>,
    pub instance: Option<String>,
    /// Seconds per remote call.
    pub timeout: Option<u64>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub tls: TlsFileConfig,
    #[serde(default)]
    pub platform: PlatformFileConfig,
    /// As `RECAST_MODE`.
    pub mode: Option<String>,
    /// As `RECAST_PROJECT_ROOT`.
    pub project_root: Option<PathBuf>,
    /// As `RECAST_WORKER_PLATFORM`.
    pub worker_platform: Option<String>,
    /// As `RECAST_HOST_PLATFORM`.
    pub host_platform: Option<String>,
    /// As `RECAST_TRIM_PATHS`.
    pub trim_paths: Option<bool>,
    /// As `RECAST_CONFIRM_ERRORS`.
    pub confirm_errors: Option<bool>,
    /// As `RECAST_TIER_SIZE`.
    pub tier_size: Option<String>,
    /// As `RECAST_FRONT`.
    pub front: Option<String>,
    /// As `RECAST_TOOLCHAIN_UPLOAD`.
    pub toolchain_upload: Option<String>,
    /// As `RECAST_PUBLISH`.
    pub publish: Option<String>,
    /// As `RECAST_COMPRESSION`.
    pub compression: Option<String>,
}

/// How wrapped compiles run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `Remote` for a configured server, `CacheOnly` for the embedded one
    /// ([`Mode::on`]): a compile executed by a server on this machine
    /// runs on the same cores as a compile here, plus the sandbox, the
    /// input root and the calls.
    Auto,
    /// The action cache, then remote execution.
    Remote,
    /// The action cache only; a miss compiles locally and uploads the result.
    CacheOnly,
    /// recast steps aside: the compiler runs as if it were not there.
    Local,
}

impl Mode {
    /// The mode compiles run in against `endpoint`: `Auto` decided.
    pub fn on(self, endpoint: &Endpoint) -> Mode {
        match (self, endpoint) {
            (Mode::Auto, Endpoint::Embedded) => Mode::CacheOnly,
            (Mode::Auto, Endpoint::Url(_)) => Mode::Remote,
            (m, _) => m,
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Mode, ConfigError> {
        match s.trim() {
            "auto" => Ok(Mode::Auto),
            "remote" => Ok(Mode::Remote),
            "cache-only" | "cache_only" => Ok(Mode::CacheOnly),
            "local" | "off" => Ok(Mode::Local),
            other => Err(ConfigError::BadMode(other.to_string())),
        }
    }
}

/// When blobs and action results travel zstd-compressed (blobs only if
/// the server offers it; results only if it answers so).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Compress unless the server is on a loopback address, where bandwidth
    /// is free and compressing only costs CPU.
    Auto,
    /// Also on loopback: a server reached through an SSH tunnel or a proxy
    /// on this machine is far away.
    Always,
    Never,
}

impl std::str::FromStr for Compression {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Compression, ConfigError> {
        match s.trim() {
            "auto" => Ok(Compression::Auto),
            "always" | "on" | "1" | "true" | "yes" => Ok(Compression::Always),
            "never" | "off" | "0" | "false" | "no" => Ok(Compression::Never),
            other => Err(ConfigError::BadCompression(other.to_string())),
        }
    }
}

/// Whether wrapped compiles reach a remote server through the warm front.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Front {
    /// For a server that is not on this machine, where a connection costs
    /// round trips; a server on loopback is dialed directly.
    Auto,
    On,
    Off,
}

impl std::str::FromStr for Front {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Front, ConfigError> {
        match s.trim() {
            "auto" => Ok(Front::Auto),
            "1" | "on" | "true" | "yes" => Ok(Front::On),
            "0" | "off" | "false" | "no" => Ok(Front::Off),
            other => Err(ConfigError::BadFront(other.to_string())),
        }
    }
}

/// When something bound for the server (a toolchain it lacks, a local
/// compile's result) is sent: the compile waits for it, or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upload {
    /// In the background for a server not on this machine, inline for one
    /// on loopback (where a round trip costs nothing and hundreds of
    /// megabytes take a second or two).
    Auto,
    /// By a process of its own, while compiles go on.
    Background,
    /// By the compile, which waits.
    Wait,
}

impl Upload {
    /// `var`'s value, or the error naming it.
    fn parse(var: &'static str, s: &str) -> Result<Upload, ConfigError> {
        match s.trim() {
            "auto" => Ok(Upload::Auto),
            "background" => Ok(Upload::Background),
            "wait" => Ok(Upload::Wait),
            other => Err(ConfigError::BadUpload {
                var,
                value: other.to_string(),
            }),
        }
    }

    /// Whether it goes in the background, for a server that is (or is
    /// not) on a loopback address.
    pub fn background(self, loopback: bool) -> bool {
        match self {
            Upload::Auto => !loopback,
            Upload::Background => true,
            Upload::Wait => false,
        }
    }
}

/// Settings of wrapped compiles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrapConfig {
    pub mode: Mode,
    /// `Some(None)`: normalization disabled; `None`: find the VCS root.
    pub project_root: Option<Option<PathBuf>>,
    /// The workers' platform triple, if declared.
    pub worker_platform: Option<String>,
    /// This machine's platform triple, if declared.
    pub host_platform: Option<String>,
    /// rustc records the project root as `/recast/project`.
    pub trim_paths: bool,
    /// A remote compile error is confirmed by a local compile.
    pub confirm_errors: bool,
    /// Bytes of results kept on this machine in front of a remote server.
    pub tier_size: u64,
    /// Whether a remote server is reached through the warm front.
    pub front: Front,
    /// How a toolchain the server lacks gets there.
    pub toolchain_upload: Upload,
    /// When a local compile's result goes to a remote server.
    pub publish: Upload,
}

/// Wrapper settings: env > file > default (wrappers take no flags: the
/// command line is the compiler's).
pub fn resolve_wrap(env: &Env, file: &FileConfig) -> Result<WrapConfig, ConfigError> {
    let mode = match env.get(vars::MODE) {
        Some(m) => m.parse()?,
        None => match &file.mode {
            Some(m) => m.parse()?,
            None => Mode::Auto,
        },
    };
    // Set but empty means "no project root" (Env::get hides empty values).
    let project_root = match env.0.get(vars::PROJECT_ROOT) {
        Some(v) if v.is_empty() => Some(None),
        Some(v) => Some(Some(PathBuf::from(v))),
        None => file.project_root.clone().map(|p| {
            if p.as_os_str().is_empty() {
                None
            } else {
                Some(p)
            }
        }),
    };
    let pick = |var: &str, file: &Option<String>| {
        env.get(var).map(str::to_string).or_else(|| file.clone())
    };
    Ok(WrapConfig {
        mode,
        project_root,
        worker_platform: pick(vars::WORKER_PLATFORM, &file.worker_platform),
        host_platform: pick(vars::HOST_PLATFORM, &file.host_platform),
        trim_paths: match env.get(vars::TRIM_PATHS) {
            Some(v) => truthy(v),
            None => file.trim_paths.unwrap_or(false),
        },
        confirm_errors: match env.get(vars::CONFIRM_ERRORS) {
            Some(v) => truthy(v),
            None => file.confirm_errors.unwrap_or(true),
        },
        tier_size: match pick(vars::TIER_SIZE, &file.tier_size) {
            Some(v) => parse_size(&v).map_err(|message| ConfigError::BadSize {
                var: vars::TIER_SIZE,
                message,
            })?,
            None => crate::cas::store::DEFAULT_TIER_SIZE,
        },
        front: match pick(vars::FRONT, &file.front) {
            Some(v) => v.parse()?,
            None => Front::Auto,
        },
        toolchain_upload: match pick(vars::TOOLCHAIN_UPLOAD, &file.toolchain_upload) {
            Some(v) => Upload::parse(vars::TOOLCHAIN_UPLOAD, &v)?,
            None => Upload::Auto,
        },
        publish: match pick(vars::PUBLISH, &file.publish) {
            Some(v) => Upload::parse(vars::PUBLISH, &v)?,
            None => Upload::Auto,
        },
    })
}

/// `1024`, `512K`, `10G`, `1.5GiB`, `20gb` → bytes (binary multiples).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(format!("{s:?}: unknown unit (use K, M, G or T)")),
    };
    let bad = || format!("{s:?} is not a size such as 1048576, 512M or 20G");
    if num.is_empty() {
        return Err(bad());
    }
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(1u64 << shift).ok_or_else(bad);
    }
    let f: f64 = num.parse().map_err(|_| bad())?;
    let bytes = f * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// `1`, `true`, `yes` (and `on`): a boolean setting given in the environment.
fn truthy(v: &str) -> bool {
    matches!(v.trim(), "1" | "true" | "yes" | "on")
}

/// `[platform]` in the config file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlatformFileConfig {
    /// As `RECAST_PLATFORM_PROFILE`.
    pub profile: Option<String>,
    /// `[platform.properties]`: extra properties, each a string or a list
    /// of strings (several values of one key).
    #[serde(default)]
    pub properties: BTreeMap<String, OneOrMany>,
}

/// A property value in the config file: `"v"` or `["v", "w"]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// Resolved platform settings: which profile, and the user's properties.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformConfig {
    /// A built-in profile name or a path.
    pub profile: String,
    /// Sorted by key; each key from the highest source that names it.
    pub properties: Vec<(String, String)>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsFileConfig {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// Remote settings given on the command line (each optional).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct RemoteArgs {
    /// Server URL (grpc://HOST:PORT or grpcs://HOST:PORT); default: the
    /// embedded server, started on demand.
    #[arg(long, value_name = "URL")]
    pub remote: Option<String>,
    /// REAPI instance name.
    #[arg(long, value_name = "NAME")]
    pub instance: Option<String>,
    /// Extra request header KEY=VALUE (repeatable), e.g. authorization=Bearer T.
    #[arg(long = "remote-header", value_name = "KEY=VALUE")]
    pub headers: Vec<String>,
    /// CA certificate (PEM) for grpcs://.
    #[arg(long, value_name = "PEM")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    #[arg(long, value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS.
    #[arg(long, value_name = "PEM")]
    pub tls_key: Option<PathBuf>,
    /// Seconds one remote call may take.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
}

/// Where the server is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A server the user named.
    Url(String),
    /// Nothing configured: the embedded per-user server.
    Embedded,
}

/// Resolved remote settings.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteConfig {
    pub endpoint: Endpoint,
    pub instance: String,
    pub headers: Vec<(String, String)>,
    pub tls_ca: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub timeout: Duration,
    pub cache_dir: PathBuf,
    pub compression: Compression,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("header {0:?} is not KEY=VALUE")]
    BadHeader(String),
    #[error("{var}={value:?} is not a number of seconds")]
    BadNumber { var: &'static str, value: String },
    #[error("cannot find a home directory: set {} or HOME", vars::CACHE_DIR)]
    NoHome,
    #[error("platform property {0:?} is not KEY=VALUE")]
    BadProperty(String),
    #[error("RECAST_MODE={0:?}: the mode is `auto`, `remote`, `cache-only` or `local`")]
    BadMode(String),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{var}: {message}")]
    BadSize { var: &'static str, message: String },
    #[error("RECAST_FRONT={0:?}: the front setting is `auto`, `on` or `off`")]
    BadFront(String),
    #[error("RECAST_COMPRESSION={0:?}: the setting is `auto`, `always` or `never`")]
    BadCompression(String),
    #[error("{var}={value:?}: the setting is `auto`, `background` or `wait`")]
    BadUpload { var: &'static str, value: String },
}

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// Path of the config file: `RECAST_CONFIG`, else the XDG location.
pub fn config_path(env: &Env) -> Option<PathBuf> {
    if let Some(p) = env.get(vars::CONFIG) {
        return Some(PathBuf::from(p));
    }
    if let Some(x) = env.get(vars::XDG_CONFIG_HOME) {
        return Some(Path::new(x).join("recast/config.toml"));
    }
    env.get(vars::HOME)
        .map(|h| Path::new(h).join(".config/recast/config.toml"))
}

/// recast's state directory.
pub fn cache_dir(env: &Env) -> Result<PathBuf, ConfigError> {
    if let Some(p) = env.get(vars::CACHE_DIR) {
        return Ok(PathBuf::from(p));
    }
    if let Some(x) = env.get(vars::XDG_CACHE_HOME) {
        return Ok(Path::new(x).join("recast"));
    }
    env.get(vars::HOME)
        .map(|h| Path::new(h).join(".cache/recast"))
        .ok_or(ConfigError::NoHome)
}

/// Reads the config file; a missing file is an empty config.
pub fn load_file(path: Option<&Path>) -> Result<FileConfig, ConfigError> {
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    match std::fs::read_to_string(path) {
        Ok(text) => parse_file(&text).map_err(|message| ConfigError::File {
            path: path.to_path_buf(),
            message,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileConfig::default()),
        Err(e) => Err(ConfigError::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        }),
    }
}

pub fn parse_file(text: &str) -> Result<FileConfig, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

fn parse_header(s: &str) -> Result<(String, String), ConfigError> {
    let (k, v) = s
        .split_once('=')
        .filter(|(k, _)| !k.trim().is_empty())
        .ok_or_else(|| ConfigError::BadHeader(s.to_string()))?;
    Ok((k.trim().to_ascii_lowercase(), v.trim().to_string()))
}

/// Flag > env > file > default, field by field. Headers from all three
/// sources are merged, the higher source winning per key.
pub fn resolve(
    args: &RemoteArgs,
    env: &Env,
    file: &FileConfig,
) -> Result<RemoteConfig, ConfigError> {
    let endpoint = args
        .remote
        .clone()
        .or_else(|| env.get(vars::REMOTE).map(str::to_string))
        .or_else(|| file.remote.clone())
        .map_or(Endpoint::Embedded, Endpoint::Url);
    let instance = args
        .instance
        .clone()
        .or_else(|| env.get(vars::INSTANCE).map(str::to_string))
        .or_else(|| file.instance.clone())
        .unwrap_or_default();

    let mut headers: BTreeMap<String, String> = file
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    if let Some(list) = env.get(vars::REMOTE_HEADERS) {
        for item in list.split([',', '\n']).filter(|s| !s.trim().is_empty()) {
            let (k, v) = parse_header(item)?;
            headers.insert(k, v);
        }
    }
    for item in &args.headers {
        let (k, v) = parse_header(item)?;
        headers.insert(k, v);
    }

    let path_of = |flag: &Option<PathBuf>, var: &str, file: &Option<PathBuf>| {
        flag.clone()
            .or_else(|| env.get(var).map(PathBuf::from))
            .or_else(|| file.clone())
    };
    let timeout = match (args.timeout, env.get(vars::TIMEOUT), file.timeout) {
        (Some(s), _, _) => Duration::from_secs(s),
        (None, Some(v), _) => {
            Duration::from_secs(v.parse().map_err(|_| ConfigError::BadNumber {
                var: vars::TIMEOUT,
                value: v.to_string(),
            })?)
        }
        (None, None, Some(s)) => Duration::from_secs(s),
        (None, None, None) => DEFAULT_TIMEOUT,
    };
    Ok(RemoteConfig {
        endpoint,
        instance,
        headers: headers.into_iter().collect(),
        tls_ca: path_of(&args.tls_ca, vars::TLS_CA, &file.tls.ca),
        tls_cert: path_of(&args.tls_cert, vars::TLS_CERT, &file.tls.cert),
        tls_key: path_of(&args.tls_key, vars::TLS_KEY, &file.tls.key),
        timeout,
        cache_dir: cache_dir(env)?,
        compression: match env
            .get(vars::COMPRESSION)
            .map(str::to_string)
            .or_else(|| file.compression.clone())
        {
            Some(v) => v.parse()?,
            None => Compression::Auto,
        },
    })
}

/// Platform settings: flag > env > file > the `standard` profile. For
/// properties, each key comes whole from the highest source naming it, so
/// `--platform Pool=a` replaces a `Pool` from the config file, while
/// repeating a key within one source gives it several values.
pub fn resolve_platform(
    profile_flag: Option<&str>,
    property_flags: &[String],
    env: &Env,
    file: &FileConfig,
) -> Result<PlatformConfig, ConfigError> {
    let profile = profile_flag
        .map(str::to_string)
        .or_else(|| env.get(vars::PLATFORM_PROFILE).map(str::to_string))
        .or_else(|| file.platform.profile.clone())
        .unwrap_or_else(|| "standard".to_string());
    let parse = |s: &str| {
        s.split_once('=')
            .filter(|(k, _)| !k.trim().is_empty())
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .ok_or_else(|| ConfigError::BadProperty(s.to_string()))
    };
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in &file.platform.properties {
        let values = match v {
            OneOrMany::One(v) => vec![v.clone()],
            OneOrMany::Many(vs) => vs.clone(),
        };
        by_key.insert(k.clone(), values);
    }
    let mut layer = |items: Vec<(String, String)>| {
        let mut this: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in items {
            this.entry(k).or_default().push(v);
        }
        by_key.extend(this);
    };
    if let Some(list) = env.get(vars::PLATFORM) {
        layer(
            list.split([',', '\n'])
                .filter(|s| !s.trim().is_empty())
                .map(parse)
                .collect::<Result<_, _>>()?,
        );
    }
    layer(
        property_flags
            .iter()
            .map(|s| parse(s))
            .collect::<Result<_, _>>()?,
    );
    let properties = by_key
        .into_iter()
        .flat_map(|(k, vs)| vs.into_iter().map(move |v| (k.clone(), v)))
        .collect();
    Ok(PlatformConfig {
        profile,
        properties,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env(pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    #[test]
    fn flag_beats_env_beats_file_beats_default() {
        let file = parse_file(
            "remote = \"grpc://file:1\"\ninstance = \"fi\"\ntimeout = 7\n[headers]\nX-A = \"file\"\nx-b = \"file\"\n",
        )
        .unwrap();
        let e = env(&[
            ("HOME", "/h"),
            (vars::REMOTE, "grpc://env:2"),
            (vars::REMOTE_HEADERS, "x-b=env, x-c=env"),
        ]);
        let mut args = RemoteArgs::default();
        let r = resolve(&args, &e, &file).unwrap();
        assert_eq!(r.endpoint, Endpoint::Url("grpc://env:2".into()));
        assert_eq!(r.instance, "fi");
        assert_eq!(r.timeout, Duration::from_secs(7));
        assert_eq!(
            r.headers,
            vec![
                ("x-a".to_string(), "file".to_string()),
                ("x-b".to_string(), "env".to_string()),
                ("x-c".to_string(), "env".to_string())
            ]
        );
        args.remote = Some("grpc://flag:3".into());
        args.headers = vec!["X-C=flag".into()];
        args.timeout = Some(9);
        let r = resolve(&args, &e, &file).unwrap();
        assert_eq!(r.endpoint, Endpoint::Url("grpc://flag:3".into()));
        assert_eq!(r.headers[2], ("x-c".to_string(), "flag".to_string()));
        assert_eq!(r.timeout, Duration::from_secs(9));

        let r = resolve(
            &RemoteArgs::default(),
            &env(&[("HOME", "/h")]),
            &FileConfig::default(),
        )
        .unwrap();
        assert_eq!(r.endpoint, Endpoint::Embedded);
        assert_eq!(r.timeout, DEFAULT_TIMEOUT);
        assert_eq!(r.cache_dir, PathBuf::from("/h/.cache/recast"));
    }

    #[test]
    fn empty_env_values_count_as_unset() {
        let r = resolve(
            &RemoteArgs::default(),
            &env(&[("HOME", "/h"), (vars::REMOTE, "")]),
            &FileConfig::default(),
        )
        .unwrap();
        assert_eq!(r.endpoint, Endpoint::Embedded);
    }

    #[test]
    fn bad_values_are_named() {
        let e = env(&[("HOME", "/h"), (vars::TIMEOUT, "soon")]);
        assert_eq!(
            resolve(&RemoteArgs::default(), &e, &FileConfig::default()),
            Err(ConfigError::BadNumber {
                var: vars::TIMEOUT,
                value: "soon".into()
            })
        );
        let args = RemoteArgs {
            headers: vec!["novalue".into()],
            ..Default::default()
        };
        assert!(matches!(
            resolve(&args, &env(&[("HOME", "/h")]), &FileConfig::default()),
            Err(ConfigError::BadHeader(_))
        ));
        assert!(parse_file("remote = \"x\"\nunknown = 1\n").is_err());
    }

    #[test]
    fn platform_flag_beats_env_beats_file_per_key() {
        let file = parse_file(
            "[platform]\nprofile = \"engflow\"\n[platform.properties]\nPool = \"file\"\nISA = [\"x86-64\", \"x86-avx2\"]\nteam = \"a\"\n",
        )
        .unwrap();
        let e = env(&[(vars::PLATFORM, "Pool=env, ISA=arm-a64")]);
        let p = resolve_platform(None, &["team=b".into(), "team=c".into()], &e, &file).unwrap();
        assert_eq!(p.profile, "engflow");
        let want: Vec<(String, String)> = [
            ("ISA", "arm-a64"),
            ("Pool", "env"),
            ("team", "b"),
            ("team", "c"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(p.properties, want);

        let e = env(&[(vars::PLATFORM_PROFILE, "buildbuddy")]);
        assert_eq!(
            resolve_platform(None, &[], &e, &file).unwrap().profile,
            "buildbuddy"
        );
        let p = resolve_platform(Some("google-rbe"), &[], &e, &file).unwrap();
        assert_eq!(p.profile, "google-rbe");
        assert_eq!(p.properties.len(), 4);
        let p = resolve_platform(None, &[], &Env::default(), &FileConfig::default()).unwrap();
        assert_eq!(p.profile, "standard");
        assert!(p.properties.is_empty());
        assert_eq!(
            resolve_platform(None, &["nokey".into()], &Env::default(), &file),
            Err(ConfigError::BadProperty("nokey".into()))
        );
        assert!(parse_file("[platform]\nprofle = \"x\"\n").is_err());
    }

    #[test]
    fn wrap_mode_and_project_root_from_env_then_file() {
        let file = parse_file("mode = \"cache-only\"\nproject_root = \"/src\"\n").unwrap();
        let w = resolve_wrap(&Env::default(), &file).unwrap();
        assert_eq!(w.mode, Mode::CacheOnly);
        assert_eq!(w.project_root, Some(Some(PathBuf::from("/src"))));
        let e = env(&[(vars::MODE, "local"), (vars::PROJECT_ROOT, "")]);
        let w = resolve_wrap(&e, &file).unwrap();
        assert_eq!(w.mode, Mode::Local);
        assert_eq!(w.project_root, Some(None));
        let w = resolve_wrap(&Env::default(), &FileConfig::default()).unwrap();
        assert_eq!((w.mode, w.project_root), (Mode::Auto, None));
        // Auto is decided by the server: its own cores' twin runs misses here.
        assert_eq!(w.mode.on(&Endpoint::Embedded), Mode::CacheOnly);
        let url = Endpoint::Url("grpc://127.0.0.1:1".into());
        assert_eq!(w.mode.on(&url), Mode::Remote);
        assert_eq!(Mode::Remote.on(&Endpoint::Embedded), Mode::Remote);
        assert_eq!("auto".parse::<Mode>().unwrap(), Mode::Auto);
        assert_eq!((w.worker_platform, w.host_platform), (None, None));
        let file = parse_file("worker_platform = \"x86_64-unknown-linux-gnu\"\n").unwrap();
        let e = env(&[(vars::HOST_PLATFORM, "aarch64-apple-darwin")]);
        let w = resolve_wrap(&e, &file).unwrap();
        assert_eq!(
            w.worker_platform.as_deref(),
            Some("x86_64-unknown-linux-gnu")
        );
        assert_eq!(w.host_platform.as_deref(), Some("aarch64-apple-darwin"));
        let e = env(&[(vars::MODE, "fast")]);
        assert_eq!(
            resolve_wrap(&e, &file),
            Err(ConfigError::BadMode("fast".into()))
        );
    }

    #[test]
    fn the_tier_bound_the_front_and_the_upload_from_env_then_file_then_default() {
        let w = resolve_wrap(&Env::default(), &FileConfig::default()).unwrap();
        assert_eq!(w.tier_size, crate::cas::store::DEFAULT_TIER_SIZE);
        let file = parse_file("tier_size = \"512M\"\n").unwrap();
        let w = resolve_wrap(&Env::default(), &file).unwrap();
        assert_eq!(w.tier_size, 512 << 20);
        let w = resolve_wrap(&env(&[(vars::TIER_SIZE, "0")]), &file).unwrap();
        assert_eq!(w.tier_size, 0);
        let err = resolve_wrap(&env(&[(vars::TIER_SIZE, "lots")]), &file).unwrap_err();
        assert!(err.to_string().starts_with("RECAST_TIER_SIZE: "), "{err}");
        assert_eq!(w.front, Front::Auto);
        let file = parse_file("front = \"off\"\n").unwrap();
        assert_eq!(resolve_wrap(&env(&[]), &file).unwrap().front, Front::Off);
        let w = resolve_wrap(&env(&[(vars::FRONT, "on")]), &file).unwrap();
        assert_eq!(w.front, Front::On);
        let err = resolve_wrap(&env(&[(vars::FRONT, "sometimes")]), &file).unwrap_err();
        assert!(err.to_string().contains("`auto`, `on` or `off`"), "{err}");
        assert_eq!(w.toolchain_upload, Upload::Auto);
        let w = resolve_wrap(&env(&[(vars::TOOLCHAIN_UPLOAD, "background")]), &file).unwrap();
        assert_eq!(w.toolchain_upload, Upload::Background);
        let file = parse_file("toolchain_upload = \"wait\"\n").unwrap();
        let w = resolve_wrap(&env(&[]), &file).unwrap();
        assert_eq!(w.toolchain_upload, Upload::Wait);
        let err = resolve_wrap(&env(&[(vars::TOOLCHAIN_UPLOAD, "later")]), &file).unwrap_err();
        assert!(err.to_string().contains("`background` or `wait`"), "{err}");
        assert_eq!(w.publish, Upload::Auto);
        let file = parse_file("publish = \"wait\"\n").unwrap();
        assert_eq!(
            resolve_wrap(&env(&[]), &file).unwrap().publish,
            Upload::Wait
        );
        let w = resolve_wrap(&env(&[(vars::PUBLISH, "background")]), &file).unwrap();
        assert_eq!(w.publish, Upload::Background);
        let err = resolve_wrap(&env(&[(vars::PUBLISH, "never")]), &file).unwrap_err();
        assert!(
            err.to_string().starts_with("RECAST_PUBLISH=\"never\": "),
            "{err}"
        );
        assert!(Upload::Auto.background(false) && !Upload::Auto.background(true));
        assert!(Upload::Background.background(true) && !Upload::Wait.background(false));
    }

    #[test]
    fn compression_is_env_then_file_then_auto() {
        let none = FileConfig::default();
        let home = [(vars::CACHE_DIR, "/c")];
        let r = resolve(&RemoteArgs::default(), &env(&home), &none).unwrap();
        assert_eq!(r.compression, Compression::Auto);
        let file = parse_file("compression = \"never\"\n").unwrap();
        let r = resolve(&RemoteArgs::default(), &env(&home), &file).unwrap();
        assert_eq!(r.compression, Compression::Never);
        let e = env(&[home[0], (vars::COMPRESSION, "always")]);
        let r = resolve(&RemoteArgs::default(), &e, &file).unwrap();
        assert_eq!(r.compression, Compression::Always);
        let e = env(&[home[0], (vars::COMPRESSION, "gzip")]);
        let err = resolve(&RemoteArgs::default(), &e, &file).unwrap_err();
        assert!(
            err.to_string().contains("`auto`, `always` or `never`"),
            "{err}"
        );
    }

    #[test]
    fn paths_follow_xdg() {
        let e = env(&[
            ("HOME", "/h"),
            (vars::XDG_CONFIG_HOME, "/x"),
            (vars::XDG_CACHE_HOME, "/c"),
        ]);
        assert_eq!(
            config_path(&e),
            Some(PathBuf::from("/x/recast/config.toml"))
        );
        assert_eq!(cache_dir(&e).unwrap(), PathBuf::from("/c/recast"));
        assert_eq!(cache_dir(&Env::default()), Err(ConfigError::NoHome));
    }
}
