//! `recast serve` over TLS, with mutual TLS and with a bearer token, and
//! what a client with the wrong credentials gets: a clear error from
//! `recast run`, and a local compile (same object) from the wrapper.
//! Actions cannot read the server's own state from their sandbox.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::{BIN, Server, make_certs, recast_with_cache, run_ok, tempdir};

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
