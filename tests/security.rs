//! Nobody gets in where they do not belong.
//!
//! - `recast serve` over TLS, with mutual TLS and with a bearer token, and
//!   what a client with the wrong credentials gets: a clear error from
//!   `recast run`, and a local compile (same object) from the wrapper.
//!   Actions cannot read the server's own state from their sandbox.
//! - The embedded server answers its owner only: a second Unix user (uid
//!   65534, run through `setuid` by this root test) can neither run a
//!   command through it nor read its state, and is told why; given its
//!   own cache dir, it gets a server of its own. Nor can it call through
//!   the owner's warm front for a remote server: its socket is private,
//!   and opened by hand it answers PERMISSION_DENIED.
//! - Everything recast creates under a umask of 000 is private (0700 and
//!   0600, blobs 0400), and a state dir loosened by hand is tightened again.
//! - A TCP `recast serve` without authentication refuses to start unless
//!   told `--allow-unauthenticated`.
//! - Scoped tokens: a token without `write-ac` executes and hits but
//!   cannot write the action cache (PERMISSION_DENIED, `update_enabled` is
//!   false for it); a forged result for a real compile is refused and the
//!   honest compile afterwards gets the right object; cache-only mode with
//!   that token builds zstd here and publishes nothing.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::projects::{count, files, reason, stats, with_recast, zstd_project};
use common::{BIN, Server, make_certs, open_to_others, recast_with_cache, run_ok, tempdir};
use prost::Message as _;

const TOKEN: &str = "s3cret-t0ken";

fn run(cache: &Path, url: &str, extra: &[&str]) -> std::process::Output {
    let root = cache.with_extension("root");
    fs::create_dir_all(&root).unwrap();
    let mut cmd = recast_with_cache(cache, ["run", "--remote", url, "--input-root"]);
    cmd.arg(&root)
        .args(extra)
        .args(["--", "/bin/sh", "-c", "echo ok"]);
    cmd.output().unwrap()
}

#[test]
fn tls_and_a_bearer_token_admit_the_right_client_only() {
    let tmp = tempdir();
    let d = tmp.path();
    make_certs(d);
    fs::write(d.join("token"), format!("{TOKEN}\n")).unwrap();
    let p = |f: &str| d.join(f).to_string_lossy().into_owned();
    let server = Server::start_with(&[
        "--tls-cert",
        &p("server.pem"),
        "--tls-key",
        &p("server.key"),
        "--auth-token-file",
        &p("token"),
    ]);
    let url = server.url();
    assert!(url.starts_with("grpcs://127.0.0.1:"), "{url}");
    let cache = d.join("cache");
    let good = format!("authorization=Bearer {TOKEN}");

    let out = run(
        &cache,
        &url,
        &["--tls-ca", &p("ca.pem"), "--remote-header", &good],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");

    let out = run(
        &cache,
        &url,
        &[
            "--tls-ca",
            &p("ca.pem"),
            "--remote-header",
            "authorization=Bearer wrong",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("UNAUTHENTICATED") && err.contains("bearer token"),
        "{err}"
    );
    assert!(err.contains(&url), "names the server: {err}");

    let out = run(&cache, &url, &["--tls-ca", &p("ca.pem")]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("UNAUTHENTICATED"));

    // A CA that did not sign the server's certificate: the handshake fails.
    let other = d.join("other");
    fs::create_dir_all(&other).unwrap();
    make_certs(&other);
    let out = run(
        &cache,
        &url,
        &[
            "--tls-ca",
            &other.join("ca.pem").to_string_lossy(),
            "--remote-header",
            &good,
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("TLS") && err.contains("--tls-ca"), "{err}");

    // The wrapper with a wrong token compiles here: same object, counted.
    let src = d.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.c"), "int twice(int x) { return 2 * x; }\n").unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["gcc", "-O2", "-c", "a.c", "-o", "a.o"])
        .current_dir(&src)
        .env("RECAST_CACHE_DIR", &cache)
        .env("RECAST_CONFIG", cache.join("none.toml"))
        .env("RECAST_REMOTE", &url)
        .env("RECAST_TLS_CA", p("ca.pem"))
        .env("RECAST_REMOTE_HEADERS", "authorization=Bearer wrong");
    let out = run_ok(&mut cmd);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wrapped = fs::read(src.join("a.o")).unwrap();
    run_ok(
        Command::new("gcc")
            .args(["-O2", "-c", "a.c", "-o", "b.o"])
            .current_dir(&src),
    );
    assert_eq!(wrapped, fs::read(src.join("b.o")).unwrap());
    let s = run_ok(&mut recast_with_cache(&cache, ["stats", "--json"]));
    let s: serde_json::Value = serde_json::from_slice(&s.stdout).unwrap();
    assert_eq!(s["fallback_causes"]["status_unauthenticated"], 1, "{s}");
}

#[test]
fn mutual_tls_wants_a_client_certificate_from_the_ca() {
    let tmp = tempdir();
    let d = tmp.path();
    make_certs(d);
    let p = |f: &str| d.join(f).to_string_lossy().into_owned();
    let server = Server::start_with(&[
        "--tls-cert",
        &p("server.pem"),
        "--tls-key",
        &p("server.key"),
        "--tls-client-ca",
        &p("ca.pem"),
    ]);
    let cache = d.join("cache");
    let out = run(
        &cache,
        &server.url(),
        &[
            "--tls-ca",
            &p("ca.pem"),
            "--tls-cert",
            &p("client.pem"),
            "--tls-key",
            &p("client.key"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&cache, &server.url(), &["--tls-ca", &p("ca.pem")]);
    assert!(
        !out.status.success(),
        "admitted without a client certificate"
    );
}

#[test]
fn sandboxed_actions_cannot_read_the_servers_own_state() {
    if common::peer("bwrap").is_none() {
        return;
    }
    let server = Server::start_with(&["--sandbox", "chroot"]);
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let root = tmp.path().join("root");
    fs::create_dir_all(&root).unwrap();
    // Something is in the server's CAS: this very script, uploaded.
    let cas = server.dir.join("cas");
    let script = format!(
        "ls -A {} | wc -l; ls /usr/bin/env >/dev/null && echo host-visible",
        cas.display()
    );
    let mut cmd = recast_with_cache(&cache, ["run", "--remote", &server.url(), "--input-root"]);
    cmd.arg(&root).args(["--", "/bin/sh", "-c", &script]);
    let out = run_ok(&mut cmd);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(fs::read_dir(&cas).unwrap().count() > 0);
    assert_eq!(
        text, "0\nhost-visible\n",
        "the CAS is visible inside: {text}"
    );
}

/// The other user: `nobody` on Debian.
const OTHER: u32 = 65534;

/// Whether this process may act as another user; else says why it skips
/// (and fails where CI demands every test).
fn can_switch_user() -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    let why = "the cross-user tests run as root (they setuid to uid 65534)";
    if common::peers_required() {
        panic!("{why}");
    }
    eprintln!("skipping: {why}");
    false
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

/// A directory the other user may enter and write, with a copy of the
/// recast binary it may run (the build tree may be closed to it).
struct Elsewhere {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    bin: PathBuf,
}

impl Elsewhere {
    fn new() -> Elsewhere {
        let tmp = tempfile::Builder::new()
            .prefix("recast-security-")
            .tempdir_in(std::env::temp_dir())
            .unwrap();
        let root = tmp.path().to_path_buf();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        let bin = root.join("recast");
        fs::copy(BIN, &bin).unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        let home = root.join("home");
        fs::create_dir(&home).unwrap();
        std::os::unix::fs::chown(&home, Some(OTHER), Some(OTHER)).unwrap();
        Elsewhere {
            _tmp: tmp,
            root,
            bin,
        }
    }

    fn home(&self) -> PathBuf {
        self.root.join("home")
    }

    /// `recast ARGS` as the other user, in its home, with `cache` as its
    /// cache dir.
    fn recast(&self, cache: &Path, args: &[&str]) -> Output {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .current_dir(self.home())
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", self.home())
            .env("RECAST_CACHE_DIR", cache)
            .uid(OTHER)
            .gid(OTHER);
        cmd.output().unwrap()
    }

    /// Whether the other user can read `path` (with `cat`).
    fn can_read(&self, path: &Path) -> bool {
        Command::new("cat")
            .arg(path)
            .uid(OTHER)
            .gid(OTHER)
            .output()
            .unwrap()
            .status
            .success()
    }
}

/// `recast ARGS` as this user under a umask of 000.
fn as_owner_umask_000(cache: &Path, args: &[&str], cwd: &Path) -> Output {
    let mut cmd = recast_with_cache(cache, args);
    cmd.current_dir(cwd);
    umask_000(&mut cmd)
}

/// Runs `cmd` under a umask of 000.
fn umask_000(cmd: &mut Command) -> Output {
    // SAFETY: umask is async-signal-safe and touches nothing else.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    cmd.output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts that `out` is a failure whose stderr says each of `wants`.
fn fails_saying(out: &Output, wants: &[&str]) {
    assert!(!out.status.success(), "{}", text(out));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in wants {
        assert!(err.contains(want), "{want:?} missing from: {err}");
    }
}

#[test]
fn another_user_can_neither_run_commands_through_the_embedded_server_nor_read_its_state() {
    if !can_switch_user() {
        return;
    }
    // The owner's state lies where the other user could walk to it (under
    // a 0755 temp dir), so only recast's own modes keep it out.
    let other = Elsewhere::new();
    let cache = other.root.join("owner/cache");
    let proj = other.root.join("owner/proj");
    fs::create_dir_all(proj.join(".git")).unwrap();
    fs::write(
        proj.join("hello.c"),
        "#include <stdio.h>\nint main(void) { puts(\"hi\"); return 0; }\n",
    )
    .unwrap();

    // The owner compiles twice (a miss, compiled here and stored; then a
    // hit) and runs a command, all under a umask of 000: the embedded
    // server starts on a socket. A source written within the stamps' race
    // margin of its compile would not be stored: wait it out.
    std::thread::sleep(std::time::Duration::from_millis(100));
    for _ in 0..2 {
        let _ = fs::remove_file(proj.join("hello.o"));
        let out = as_owner_umask_000(&cache, &["gcc", "-c", "hello.c", "-o", "hello.o"], &proj);
        assert!(out.status.success(), "{}", text(&out));
    }
    let out = as_owner_umask_000(
        &cache,
        &[
            "run",
            "--output",
            "who.txt",
            "--",
            "/bin/sh",
            "-c",
            "id -u > who.txt",
        ],
        &proj,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fs::read_to_string(proj.join("who.txt")).unwrap(), "0\n");
    let s = stats(&cache);
    assert_eq!(count(&s, "compiled_first"), 1, "{s}");
    assert_eq!(count(&s, "cache_hits"), 1, "{s}");

    let state: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(cache.join("serve.json")).unwrap()).unwrap();
    let url = state["url"].as_str().unwrap().to_string();
    let socket = PathBuf::from(url.strip_prefix("unix:").expect("a Unix socket"));
    assert!(socket.starts_with(&cache), "{url}");

    // Everything it made is its owner's alone, whatever the umask.
    for made in [
        "serve.json",
        "serve.log",
        "serve.sock",
        "stats.jsonl",
        "capabilities",
        "server/cas",
        "server/ac",
        "toolchains",
    ] {
        assert!(cache.join(made).exists(), "{made} was not made");
    }
    assert_eq!(open_to_others(&cache), Vec::<String>::new());
    assert_eq!(mode(&cache), 0o700);
    assert_eq!(mode(&cache.join("serve.json")), 0o600);

    // The other user cannot reach the socket, nor read any of the state.
    let theirs = other.home().join("cache");
    let marker = other.home().join("ran");
    // The command it runs on its own server at the end; here, on the owner's.
    let own = [
        "run",
        "--output",
        "ran",
        "--",
        "/bin/sh",
        "-c",
        "id -u > ran",
    ];
    let attack: Vec<&str> = ["run", "--remote", &url]
        .into_iter()
        .chain(own[1..].iter().copied())
        .collect();
    let out = other.recast(&theirs, &attack);
    fails_saying(&out, &["permission denied", "another user"]);
    assert!(!marker.exists());
    assert!(!other.can_read(&cache.join("serve.json")));
    assert!(!other.can_read(&cache.join("stats.jsonl")));

    // Even with the directory and socket opened by hand (an older recast,
    // a careless chmod), the server itself refuses the other uid.
    fs::set_permissions(&cache, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o777)).unwrap();
    let out = other.recast(&theirs, &attack);
    fails_saying(&out, &["PERMISSION_DENIED", "owner only"]);
    assert!(!marker.exists());
    // Told to use the owner's cache dir, it refuses, naming the owner.
    let out = other.recast(&cache, &["run", "--", "/bin/true"]);
    fails_saying(&out, &["belongs to uid 0", "RECAST_CACHE_DIR"]);
    // The owner's next run closes the directory again.
    let out = as_owner_umask_000(&cache, &["run", "--", "/bin/true"], &proj);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(mode(&cache), 0o700, "the loosened state dir was repaired");

    // With a cache dir of its own, the other user gets a server of its
    // own, running as itself.
    let out = other.recast(&theirs, &own);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fs::read_to_string(&marker).unwrap(), format!("{OTHER}\n"));
    assert_eq!(fs::metadata(&theirs).unwrap().uid(), OTHER);
    assert_eq!(mode(&theirs), 0o700);

    let out = other.recast(&theirs, &["stop-server"]);
    assert!(out.status.success(), "{}", text(&out));
    run_ok(&mut recast_with_cache(&cache, ["stop-server"]));
}

#[test]
fn another_user_cannot_call_through_the_owners_front() {
    if !can_switch_user() {
        return;
    }
    let server = Server::start();
    let other = Elsewhere::new();
    let cache = other.root.join("owner/cache");
    let proj = other.root.join("owner/proj");
    fs::create_dir_all(proj.join(".git")).unwrap();
    fs::write(
        proj.join("add.c"),
        "int add(int a, int b) { return a + b; }\n",
    )
    .unwrap();
    // The owner's compile starts a front for the server, under a umask of 000.
    let mut cmd = recast_with_cache(&cache, ["gcc", "-c", "add.c", "-o", "add.o"]);
    cmd.current_dir(&proj)
        .env("RECAST_REMOTE", server.url())
        .env("RECAST_FRONT", "on")
        .env("RECAST_IDLE_TIMEOUT", "300");
    let out = umask_000(&mut cmd);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(count(&stats(&cache), "remote_executions"), 1);
    let fronts: Vec<PathBuf> = fs::read_dir(cache.join("fronts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(fronts.len(), 1, "{fronts:?}");
    let socket = fronts[0].join("front.sock");
    assert!(socket.exists());
    assert_eq!(open_to_others(&cache), Vec::<String>::new());

    // The other user can neither reach the socket...
    let marker = other.home().join("ran");
    let url = format!("unix:{}", socket.display());
    let attack = [
        "run",
        "--remote",
        &url,
        "--output",
        "ran",
        "--",
        "/bin/sh",
        "-c",
        "id -u > ran",
    ];
    let theirs = other.home().join("cache");
    let out = other.recast(&theirs, &attack);
    fails_saying(&out, &["permission denied"]);
    // ...nor, with every directory and the socket opened by hand, get a
    // call forwarded: the front checks who is calling.
    for dir in [cache.clone(), cache.join("fronts"), fronts[0].clone()] {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o777)).unwrap();
    let out = other.recast(&theirs, &attack);
    fails_saying(&out, &["PERMISSION_DENIED", "front belongs to uid 0"]);
    assert!(!marker.exists());
    let log = fs::read_to_string(fronts[0].join("front.log")).unwrap();
    assert!(
        log.contains("refusing a connection from another user"),
        "{log}"
    );
    let out = recast_with_cache(&cache, ["stop-server"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stopped the front"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_tcp_server_without_authentication_refuses_to_start_unless_told() {
    let tmp = tempdir();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--dir"])
        .arg(tmp.path().join("server"))
        .env("RECAST_CONFIG", tmp.path().join("none.toml"))
        .output()
        .unwrap();
    fails_saying(
        &out,
        &[
            "without authentication",
            "every local user",
            "--auth-tokens",
            "unix:PATH",
            "--allow-unauthenticated",
        ],
    );
    assert!(!tmp.path().join("server").exists(), "nothing was created");
}

const TOKENS: &str = r#"
[[token]]
name = "ci"
token = "ci-token-0123456789"
scopes = ["read", "write-cas", "write-ac", "execute"]

[[token]]
name = "developers"
token = "dev-token-9876543210"
scopes = ["read", "write-cas", "execute"]
"#;

fn bearer(token: &str) -> (String, String) {
    ("authorization".into(), format!("Bearer {token}"))
}

/// A client of `url` that sends `token`, with its own cache dir.
async fn client(url: &str, token: &str, cache: &Path) -> recast::remote::Client {
    let cfg = recast::config::RemoteConfig {
        endpoint: recast::config::Endpoint::Url(url.to_string()),
        instance: String::new(),
        headers: vec![bearer(token)],
        tls_ca: None,
        tls_cert: None,
        tls_key: None,
        timeout: std::time::Duration::from_secs(30),
        cache_dir: cache.to_path_buf(),
        compression: recast::config::Compression::Auto,
    };
    recast::remote::Client::connect(&cfg, url).await.unwrap()
}

/// The action digest of every entry in the server's action cache whose
/// result has an output named `name`.
fn actions_with_output(server_dir: &Path, name: &str) -> Vec<recast::cas::Digest> {
    let mut found = Vec::new();
    for shard in fs::read_dir(server_dir.join("ac")).unwrap() {
        let shard = shard.unwrap().path();
        if shard.file_name().unwrap() == "tmp" {
            continue;
        }
        for e in fs::read_dir(&shard).unwrap() {
            let p = e.unwrap().path();
            let file = p.file_name().unwrap().to_string_lossy().into_owned();
            let (hash, size) = file.split_once('-').unwrap();
            let result =
                recast::proto::reapi::ActionResult::decode(&*fs::read(&p).unwrap()).unwrap();
            if result.output_files.iter().any(|f| f.path.ends_with(name)) {
                found.push(recast::cas::Digest::new(hash, size.parse().unwrap()).unwrap());
            }
        }
    }
    found
}

fn ac_entries(server_dir: &Path) -> usize {
    fs::read_dir(server_dir.join("ac"))
        .unwrap()
        .map(|s| s.unwrap().path())
        .filter(|s| s.file_name().unwrap() != "tmp")
        .map(|s| fs::read_dir(s).unwrap().count())
        .sum()
}

#[test]
fn scoped_tokens_let_developers_execute_and_hit_but_never_write_the_action_cache() {
    let tmp = tempdir();
    let token_file = tmp.path().join("tokens.toml");
    fs::write(&token_file, TOKENS).unwrap();
    let server = Server::start_with(&["--auth-tokens", token_file.to_str().unwrap()]);
    let url = server.url();
    let dev = "authorization=Bearer dev-token-9876543210";

    // Each caller is told whether it may update the action cache.
    let caps = |token: &str| {
        let out = run_ok(
            recast_with_cache(&tmp.path().join("caps"), ["capabilities", "--remote", &url]).env(
                "RECAST_REMOTE_HEADERS",
                format!("authorization=Bearer {token}"),
            ),
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let line = |text: &str| {
        text.lines()
            .find(|l| l.contains("action cache writes"))
            .unwrap()
            .to_string()
    };
    assert!(line(&caps("dev-token-9876543210")).ends_with("no"));
    assert!(line(&caps("ci-token-0123456789")).ends_with("yes"));
    // No token, or a wrong one: refused.
    let out = recast_with_cache(&tmp.path().join("caps"), ["capabilities", "--remote", &url])
        .env("RECAST_REMOTE_HEADERS", "authorization=Bearer guess")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("UNAUTHENTICATED"));

    // A developer's compile executes remotely, then hits, with the bytes
    // of a local compile.
    let proj = tmp.path().join("proj");
    fs::create_dir_all(proj.join(".git")).unwrap();
    fs::write(
        proj.join("lib.c"),
        "int twice(int x) { return 2 * x; }\nint thrice(int x) { return 3 * x; }\n",
    )
    .unwrap();
    run_ok(
        Command::new("gcc")
            .args(["-O2", "-c", "lib.c", "-o", "plain.o"])
            .current_dir(&proj),
    );
    let plain = fs::read(proj.join("plain.o")).unwrap();
    let cache = tmp.path().join("cache");
    let compile = |extra: &[(&str, &str)]| {
        let _ = fs::remove_file(proj.join("lib.o"));
        let mut cmd = recast_with_cache(&cache, ["gcc", "-O2", "-c", "lib.c", "-o", "lib.o"]);
        cmd.current_dir(&proj)
            .env("RECAST_REMOTE", &url)
            .env("RECAST_REMOTE_HEADERS", dev)
            .envs(extra.iter().copied());
        run_ok(&mut cmd);
        fs::read(proj.join("lib.o")).unwrap()
    };
    assert!(
        compile(&[]) == plain,
        "the remote object differs from gcc's"
    );
    let s = stats(&cache);
    assert_eq!(count(&s, "remote_executions"), 1, "{s}");
    assert_eq!(count(&s, "fallbacks"), 0, "{s}");

    // The server wrote that result itself; find its action.
    let actions = actions_with_output(&server.dir, "lib.o");
    assert_eq!(actions.len(), 1, "{actions:?}");
    let action = actions[0];

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // The developer forges a result naming a malicious object for
        // that very action: the blob goes in (it may write the CAS), the
        // result is refused.
        let evil = b"\x7fELF not what gcc made".to_vec();
        let evil_digest = recast::cas::Digest::of_bytes(&evil);
        let dev_client = client(&url, "dev-token-9876543210", &tmp.path().join("c1")).await;
        dev_client
            .upload_missing(vec![recast::remote::Blob {
                digest: evil_digest,
                source: recast::remote::BlobSource::Bytes(evil),
            }])
            .await
            .unwrap();
        let forged = recast::proto::reapi::ActionResult {
            output_files: vec![recast::proto::reapi::OutputFile {
                path: "lib.o".into(),
                digest: Some(evil_digest.to_proto()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let e = dev_client
            .update_action_result(&action, forged.clone())
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("PERMISSION_DENIED") && e.to_string().contains("write-ac"),
            "{e}"
        );
        // The CI token may write results (here, for an action of its own).
        let ci_client = client(&url, "ci-token-0123456789", &tmp.path().join("c2")).await;
        let own = recast::cas::Digest::of_bytes(b"an action of CI's own");
        ci_client.update_action_result(&own, forged).await.unwrap();
    });
    assert_eq!(ac_entries(&server.dir), 2, "the compile's and CI's own");

    // The honest compile afterwards is a hit with gcc's bytes, asked of
    // the server (no local tier) through the warm front, which forwards
    // the developer's token with each call.
    let through_front = [
        ("RECAST_TIER_SIZE", "0"),
        ("RECAST_FRONT", "on"),
        ("RECAST_IDLE_TIMEOUT", "300"),
    ];
    assert!(
        compile(&through_front) == plain,
        "a forged result reached the compile"
    );
    assert!(cache.join("fronts").is_dir(), "no front was started");
    run_ok(&mut recast_with_cache(&cache, ["stop-server"]));
    let s = stats(&cache);
    assert_eq!(count(&s, "cache_hits"), 1, "{s}");
    assert_eq!(count(&s, "remote_executions"), 1, "{s}");

    // Cache-only with the developer's token: every compile is a miss
    // compiled here, nothing is published, and the objects are zstd's.
    let plain_proj = zstd_project(&tmp.path().join("zstd-plain"));
    run_ok(
        Command::new("make")
            .args(["-j2", "--no-print-directory", "CC=gcc"])
            .current_dir(&plain_proj),
    );
    let want = files(&plain_proj, "obj", "o");
    let sources = files(&plain_proj, "lib", "c").len();
    assert_eq!(want.len(), sources);
    let proj = zstd_project(&tmp.path().join("zstd"));
    let zcache = tmp.path().join("zcache");
    let mut make = Command::new("make");
    make.args(["-j2", "--no-print-directory"])
        .arg(format!("CC={BIN} gcc"))
        .current_dir(&proj);
    with_recast(&mut make, &zcache, &url);
    make.env("RECAST_MODE", "cache-only")
        .env("RECAST_REMOTE_HEADERS", dev);
    run_ok(&mut make);
    common::projects::assert_same("cache-only objects", &files(&proj, "obj", "o"), &want);
    let s = stats(&zcache);
    assert_eq!(count(&s, "compiles"), sources as u64, "{s}");
    assert_eq!(
        reason(&s, "local_reasons", "cache_miss"),
        sources as u64,
        "{s}"
    );
    assert_eq!(count(&s, "compile_errors"), 0, "{s}");
    assert_eq!(count(&s, "fallbacks"), 0, "{s}");
    assert_eq!(ac_entries(&server.dir), 2, "cache-only published nothing");

    // The token file is read again when it changes: the developers get
    // write-ac, and their capabilities say so.
    let widened = TOKENS.replace(
        "scopes = [\"read\", \"write-cas\", \"execute\"]",
        "scopes = [\"read\", \"write-cas\", \"write-ac\", \"execute\"]",
    );
    let next = tmp.path().join("tokens.next");
    fs::write(&next, widened).unwrap();
    fs::rename(&next, &token_file).unwrap();
    assert!(line(&caps("dev-token-9876543210")).ends_with("yes"));
}
