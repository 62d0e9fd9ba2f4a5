//! NativeLink 1.6.6 on 127.0.0.1 for the interop tests: one process that
//! is a whole cluster (filesystem CAS and action cache, a `simple`
//! scheduler, one `local` worker), as in NativeLink's own
//! `local_rbe_self_test.json5`.
//!
//! The config is written per fixture: both listeners (public services and
//! the worker API) on free ports of 127.0.0.1, every path under the
//! fixture's temp dir, and the platform recast's actions carry: the
//! scheduler declares `OSFamily` and `ISA` as `exact`, the worker offers
//! this host's values in the REAPI lexicon (`platforms/lexicon.toml`).
//!
//! NativeLink's worker runs each action in
//! `<work_directory>/<operation id>/work/<working_directory>` with the
//! host's filesystem visible. [`Entrypoint::Hermetic`] makes it run every
//! command through a bubblewrap script instead, whose sandbox holds the
//! action's directory and nothing of the host (see [`HERMETIC_SCRIPT`]).
//! `scripts/peers/nativelink.sh` builds the binary.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::{free_port, peer, peers_dir, peers_required, tempdir, wait_listening};

/// The variable the hermetic entrypoint reads the action's directory from
/// (`additional_environment` with the `action_directory` source).
pub const ACTION_DIR_VAR: &str = "RECAST_NL_ACTION_DIR";

/// The worker's `entrypoint`: a program NativeLink prepends to every
/// command's argv (one path, not split into words).
#[derive(Clone, Debug)]
pub enum Entrypoint {
    /// This program, as given.
    Program(PathBuf),
    /// [`HERMETIC_SCRIPT`], written into the fixture's dir; it needs
    /// `bwrap` (a missing one skips like a missing NativeLink).
    Hermetic,
}

/// Where a variable of `additional_environment` takes its value from
/// (NativeLink's `EnvironmentSource`).
#[derive(Clone, Debug)]
pub enum EnvSource {
    /// A fixed value.
    Value(String),
    /// `<work_directory>/<operation id>`, the action's directory: its
    /// `work/` is the input root, and it is removed after the action.
    ActionDirectory,
    /// The value of this platform property of the action ("" if unset).
    Property(String),
    /// The timeout the worker enforces, in milliseconds.
    TimeoutMillis,
}

impl EnvSource {
    fn to_json(&self) -> Value {
        match self {
            EnvSource::Value(v) => json!({ "value": v }),
            EnvSource::ActionDirectory => json!("action_directory"),
            EnvSource::Property(p) => json!({ "property": p }),
            EnvSource::TimeoutMillis => json!("timeout_millis"),
        }
    }
}

/// How [`NativeLink::start_with`] configures the worker.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The worker's `entrypoint`; none runs each command directly.
    pub entrypoint: Option<Entrypoint>,
    /// Extra `additional_environment` entries, by variable name.
    pub environment: Vec<(String, EnvSource)>,
    /// Platform properties the worker offers instead of this host's
    /// `OSFamily` and `ISA` (the scheduler still declares those two).
    pub worker_platform: Option<Vec<(String, String)>>,
}

/// The bubblewrap entrypoint. NativeLink's worker runs `SCRIPT ARGV…` with
/// its cwd at `<action dir>/work/<working_directory>`, an environment of
/// the Command's variables plus `additional_environment`, and ARGV exactly
/// as the Command has it (a relative `argv[0]` is not resolved: bwrap's
/// execvp does that, inside). The script runs outside the sandbox, so it
/// may use the host's `/bin/sh` and `/usr/bin/bwrap`; the sandbox itself
/// holds only the action's directory (read-write, at its own path, so the
/// outputs land where the worker collects them), `/proc`, `/dev` and an
/// empty `/tmp` (as any container has: bubblewrap, shipped with an
/// action, makes its namespace's root there). No
/// `/usr`, `/lib` or `/bin`: a command works only if the input root
/// brings everything it runs.
pub const HERMETIC_SCRIPT: &str = r#"#!/bin/sh
# recast's NativeLink test fixture: run one action in bubblewrap with only
# its own directory visible.
set -eu
dir=${RECAST_NL_ACTION_DIR:?the worker config must set RECAST_NL_ACTION_DIR to action_directory}
dir=$(cd "$dir" && pwd -P)
cwd=$(pwd -P)
exec /usr/bin/bwrap --unshare-all --die-with-parent --tmpfs /tmp \
  --bind "$dir" "$dir" --proc /proc --dev /dev \
  --chdir "$cwd" --unsetenv RECAST_NL_ACTION_DIR -- "$@"
"#;

/// The nativelink binary `scripts/peers/nativelink.sh` built. Missing:
/// panics under `RECAST_REQUIRE_PEERS=1`, else prints `skipping: …` and
/// returns `None`.
pub fn binary() -> Option<PathBuf> {
    let bin = peers_dir().join("nativelink/bin/nativelink");
    if bin.is_file() {
        return Some(bin);
    }
    let reason = format!(
        "NativeLink not built at {}; build it with `bash scripts/peers/nativelink.sh`",
        bin.display()
    );
    if peers_required() {
        panic!("{reason} (RECAST_REQUIRE_PEERS=1)");
    }
    eprintln!("skipping: {reason}");
    None
}

/// This host's `ISA` in the REAPI lexicon (`platforms/lexicon.toml`).
pub fn host_isa() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x86-64",
        "aarch64" => "arm-a64",
        other => panic!("no REAPI ISA for {other} in the NativeLink fixture"),
    }
}

/// A NativeLink process on two free ports, killed on drop.
pub struct NativeLink {
    child: Child,
    port: u16,
    /// The fixture's dir: config, log, stores and the worker's directory.
    pub dir: PathBuf,
    pub log: PathBuf,
    /// How long it took from spawn to accepting on the public port.
    pub started_in: Duration,
    _tmp: tempfile::TempDir,
}

impl NativeLink {
    /// NativeLink with a worker that runs commands directly.
    pub fn start() -> Option<NativeLink> {
        NativeLink::start_with(Options::default())
    }

    /// NativeLink whose worker runs every command through the bubblewrap
    /// entrypoint (only the action's directory, `/proc` and `/dev`).
    pub fn start_hermetic() -> Option<NativeLink> {
        NativeLink::start_with(Options {
            entrypoint: Some(Entrypoint::Hermetic),
            ..Options::default()
        })
    }

    pub fn start_with(opts: Options) -> Option<NativeLink> {
        let bin = binary()?;
        if matches!(opts.entrypoint, Some(Entrypoint::Hermetic)) {
            peer("bwrap")?;
        }
        let tmp = tempdir();
        // The action directory NativeLink reports and the cwd it gives are
        // built from this path: keep it physical so both agree.
        let dir = tmp.path().canonicalize().unwrap();
        let mut opts = opts;
        let entrypoint = match &opts.entrypoint {
            None => None,
            Some(Entrypoint::Program(p)) => Some(p.clone()),
            Some(Entrypoint::Hermetic) => {
                let script = dir.join("hermetic-entrypoint.sh");
                fs::write(&script, HERMETIC_SCRIPT).unwrap();
                fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
                opts.environment
                    .push((ACTION_DIR_VAR.to_string(), EnvSource::ActionDirectory));
                Some(script)
            }
        };
        let port = free_port();
        let worker_port = free_port();
        let config = dir.join("nativelink.json");
        let text = config_json(&dir, port, worker_port, entrypoint.as_deref(), &opts);
        fs::write(&config, serde_json::to_string_pretty(&text).unwrap()).unwrap();
        let log = dir.join("nativelink.log");
        let out = fs::File::create(&log).unwrap();
        let started = Instant::now();
        let mut child = Command::new(bin)
            .arg(&config)
            .env("NL_LOG", "compact")
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawning nativelink");
        wait_listening(port, &mut child, "nativelink", &log);
        let started_in = started.elapsed();
        let nl = NativeLink {
            child,
            port,
            dir,
            log,
            started_in,
            _tmp: tmp,
        };
        // The public port opens before the worker has joined; an action
        // sent now would only wait in the queue, but a test that reads the
        // log wants the worker there.
        nl.wait_for_log("Worker registered with scheduler", Duration::from_secs(30));
        Some(nl)
    }

    /// The public listener: CAS, AC, ByteStream, Execution, Capabilities.
    pub fn url(&self) -> String {
        format!("grpc://127.0.0.1:{}", self.port)
    }

    /// NativeLink's log (stdout and stderr) so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle` (panics with the log after
    /// `limit`).
    pub fn wait_for_log(&self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "nativelink never logged {needle:?}; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NativeLink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The config: `local_rbe_self_test.json5` on 127.0.0.1 with its paths
/// under `dir`, and the platform and worker options of the test.
fn config_json(
    dir: &Path,
    port: u16,
    worker_port: u16,
    entrypoint: Option<&Path>,
    opts: &Options,
) -> Value {
    let data = dir.join("data");
    let path = |name: &str| data.join(name).display().to_string();
    let filesystem = |name: &str, max_bytes: u64| {
        json!({
            "content_path": path(&format!("content_path-{name}")),
            "temp_path": path(&format!("tmp_path-{name}")),
            "eviction_policy": { "max_bytes": max_bytes },
        })
    };
    let host = vec![
        ("OSFamily".to_string(), "linux".to_string()),
        ("ISA".to_string(), host_isa().to_string()),
    ];
    let mut platform = Map::new();
    for (k, v) in opts.worker_platform.as_ref().unwrap_or(&host) {
        platform.insert(k.clone(), json!({ "values": [v] }));
    }
    let mut worker = json!({
        "worker_api_endpoint": { "uri": format!("grpc://127.0.0.1:{worker_port}") },
        "cas_fast_slow_store": "WORKER_FAST_SLOW_STORE",
        "upload_action_result": { "ac_store": "AC_MAIN_STORE" },
        "work_directory": dir.join("work").display().to_string(),
        "platform_properties": platform,
    });
    if let Some(e) = entrypoint {
        worker["entrypoint"] = json!(e.display().to_string());
    }
    if !opts.environment.is_empty() {
        let env: Map<String, Value> = opts
            .environment
            .iter()
            .map(|(k, s)| (k.clone(), s.to_json()))
            .collect();
        worker["additional_environment"] = Value::Object(env);
    }
    json!({
        "stores": [
            { "name": "CAS_MAIN_STORE", "filesystem": filesystem("cas", 2_000_000_000) },
            { "name": "AC_MAIN_STORE", "filesystem": filesystem("ac", 200_000_000) },
            {
                "name": "WORKER_FAST_SLOW_STORE",
                "fast_slow": {
                    // The worker hard-links inputs out of the fast store.
                    "fast": { "filesystem": filesystem("worker", 2_000_000_000) },
                    "slow": { "ref_store": { "name": "CAS_MAIN_STORE" } },
                },
            },
        ],
        "schedulers": [{
            "name": "MAIN_SCHEDULER",
            "simple": {
                "supported_platform_properties": { "OSFamily": "exact", "ISA": "exact" },
                // Why no worker takes an action, logged at the matching
                // pass every second rather than every five or ten.
                "worker_match_logging_interval_s": 1,
                "fallback_match_interval_s": 1,
            },
        }],
        "workers": [{ "local": worker }],
        "servers": [
            {
                "name": "public",
                "listener": { "http": { "socket_address": format!("127.0.0.1:{port}") } },
                "services": {
                    "cas": [{ "cas_store": "CAS_MAIN_STORE" }],
                    "ac": [{ "ac_store": "AC_MAIN_STORE" }],
                    "bytestream": [{ "cas_store": "CAS_MAIN_STORE" }],
                    "execution": [{ "cas_store": "CAS_MAIN_STORE", "scheduler": "MAIN_SCHEDULER" }],
                    "capabilities": [{ "remote_execution": { "scheduler": "MAIN_SCHEDULER" } }],
                },
            },
            {
                "name": "worker_api",
                "listener": { "http": { "socket_address": format!("127.0.0.1:{worker_port}") } },
                "services": {
                    "worker_api": { "scheduler": "MAIN_SCHEDULER" },
                    "health": {},
                },
            },
        ],
        "global": { "max_open_files": 4096 },
    })
}
