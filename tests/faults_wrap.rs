//! Faults under wrapped compiles, with real server processes that are
//! killed, paused, cut off, starved of space or given rotten bytes. The
//! promise: a build that works without recast works with it, gives the
//! same bytes, and no output is ever half-written.
//!
//! The kill loops run `RECAST_FAULT_RUNS` times each (default 2; the
//! figures in the notes come from 20).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::projects::{count, du};
use common::{BIN, Server, recast_with_cache, run_ok, tempdir};

fn runs() -> u64 {
    std::env::var("RECAST_FAULT_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

/// A tiny deterministic generator for "random" kill times.
fn lcg(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *seed >> 33
}

/// One line per kill, for the notes: how the build's compiles went.
fn report(
    what: &str,
    run: u64,
    after_ms: u64,
    before: &serde_json::Value,
    now: &serde_json::Value,
) {
    let d = |k: &str| count(now, k) - count(before, k);
    eprintln!(
        "{what} kill {run} after {after_ms} ms: {} compiles, {} remote, {} hits, {} fallbacks {}",
        d("compiles"),
        d("remote_executions"),
        d("cache_hits"),
        d("fallbacks"),
        now["fallback_causes"]
    );
}

fn stats(cache: &Path) -> serde_json::Value {
    let out = run_ok(&mut recast_with_cache(cache, ["stats", "--json"]));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn with_recast(cmd: &mut Command, cache: &Path, url: &str) {
    cmd.env("RECAST_CACHE_DIR", cache)
        .env("RECAST_CONFIG", cache.join("no-such-config.toml"))
        .env("RECAST_REMOTE", url)
        .env_remove("RECAST_MODE");
}

/// A small C project: a few sources including a header each.
fn c_project(at: &Path) -> PathBuf {
    fs::create_dir_all(at.join(".git")).unwrap();
    fs::create_dir_all(at.join("src")).unwrap();
    fs::write(
        at.join("src/common.h"),
        "#include <stdio.h>\n#define SCALE 7\n",
    )
    .unwrap();
    for i in 0..8 {
        fs::write(
            at.join(format!("src/f{i}.c")),
            format!(
                "#include \"common.h\"\nint f{i}(int x) {{ for (int k = 0; k < {i}; k++) x = x * SCALE + k; return x; }}\n\
                 void p{i}(void) {{ printf(\"%d\\n\", f{i}({i})); }}\n"
            ),
        )
        .unwrap();
    }
    fs::write(
        at.join("Makefile"),
        "OBJ := $(patsubst src/%.c,obj/%.o,$(wildcard src/*.c))\nall: $(OBJ)\n\
         obj/%.o: src/%.c src/common.h\n\t@mkdir -p obj\n\t$(CC) -O2 -c $< -o $@\n",
    )
    .unwrap();
    at.to_path_buf()
}

fn objects(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir.join("obj"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        fs::read(e.path()).unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn make(dir: &Path, cc: &str, cache: &Path, url: &str) -> std::process::Child {
    make_with(dir, cc, cache, url, &[])
}

fn make_with(
    dir: &Path,
    cc: &str,
    cache: &Path,
    url: &str,
    env: &[(&str, &str)],
) -> std::process::Child {
    let _ = fs::remove_dir_all(dir.join("obj"));
    let mut cmd = Command::new("make");
    cmd.args(["-j2", "--no-print-directory"])
        .arg(format!("CC={cc}"))
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    with_recast(&mut cmd, cache, url);
    cmd.envs(env.iter().copied());
    cmd.spawn().unwrap()
}

fn assert_done(child: std::process::Child, what: &str) {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn make_survives_the_server_killed_at_random_points() {
    let tmp = tempdir();
    let proj = c_project(&tmp.path().join("proj"));
    let cache = tmp.path().join("cache");
    assert_done(
        make(&proj, "gcc", &cache, "grpc://127.0.0.1:9"),
        "plain make",
    );
    let want = objects(&proj);
    assert_eq!(want.len(), 8);
    let mut seed = 17;
    for run in 0..runs() {
        let before = stats(&cache);
        let mut server = Server::start();
        let child = make(&proj, &format!("{BIN} gcc"), &cache, &server.url());
        let after_ms = lcg(&mut seed) % 1500;
        std::thread::sleep(Duration::from_millis(after_ms));
        server.stop();
        assert_done(child, &format!("make, kill {run}"));
        report("make", run, after_ms, &before, &stats(&cache));
        assert_eq!(objects(&proj), want, "kill {run}: objects differ");
        // No temp file of a half-written output is left beside them.
        assert!(
            fs::read_dir(proj.join("obj")).unwrap().all(|e| !e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".recast-")),
            "kill {run}: a temp file was left"
        );
    }
}

#[test]
fn a_paused_server_means_local_compiles_within_the_deadline_then_remote_again() {
    let server = Server::start();
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let dir = tmp.path().join("src");
    fs::create_dir_all(&dir).unwrap();
    let compile = |name: &str| {
        fs::write(
            dir.join(name),
            format!("int {}(void) {{ return 3; }}\n", name.replace('.', "_")),
        )
        .unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(["gcc", "-c", name])
            .current_dir(&dir)
            .env("RECAST_TIMEOUT", "3");
        with_recast(&mut cmd, &cache, &server.url());
        let t = Instant::now();
        run_ok(&mut cmd);
        t.elapsed()
    };
    compile("warm.c");
    assert_eq!(stats(&cache)["remote_executions"], 1);
    // SIGSTOP: the port still accepts, nothing answers.
    unsafe { libc::kill(server.pid() as i32, libc::SIGSTOP) };
    let took = compile("paused.c");
    unsafe { libc::kill(server.pid() as i32, libc::SIGCONT) };
    assert!(took < Duration::from_secs(20), "gave up after {took:?}");
    assert!(dir.join("paused.o").is_file());
    let s = stats(&cache);
    assert_eq!(s["fallbacks"], 1, "{s}");
    compile("resumed.c");
    assert_eq!(
        stats(&cache)["remote_executions"],
        2,
        "remote again after SIGCONT"
    );
}

#[test]
fn a_rotten_blob_on_the_servers_disk_is_never_an_output_and_verify_finds_it() {
    let tmp = tempdir();
    let state = tmp.path().join("server");
    let mut server = Server::start_in(&state, &[]);
    let cache = tmp.path().join("cache");
    let dir = tmp.path().join("src");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("a.c"), "int a(int x) { return x * 11; }\n").unwrap();
    let compile = || {
        let mut cmd = Command::new(BIN);
        cmd.args(["gcc", "-O2", "-c", "a.c"]).current_dir(&dir);
        with_recast(&mut cmd, &cache, &server.url());
        // The server's disk is under test: no local tier in front of it.
        run_ok(cmd.env("RECAST_TIER_SIZE", "0"));
        fs::read(dir.join("a.o")).unwrap()
    };
    let good = compile();
    // Rot the object's blob in the server's CAS.
    let digest = recast::cas::Digest::of_bytes(&good);
    let blob = state.join("cas").join(&digest.hex()[..2]).join(format!(
        "{}-{}",
        digest.hex(),
        digest.size()
    ));
    let rot = |p: &Path| {
        let mut bytes = fs::read(p).unwrap();
        bytes[10] ^= 0xff;
        fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        fs::write(p, &bytes).unwrap();
    };
    rot(&blob);
    fs::remove_file(dir.join("a.o")).unwrap();
    assert_eq!(compile(), good, "a rotten object was written");

    // Offline, the store is checked whole (the object was stored again
    // by the rerun: rot it once more).
    server.stop();
    rot(&blob);
    let verify = |expect_ok: bool| {
        let out = Command::new(BIN)
            .args(["serve", "--verify", "--dir"])
            .arg(&state)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.success(), expect_ok, "{text}");
        text
    };
    let first = verify(false);
    assert!(
        first.contains("1 corrupt") && first.contains(&digest.to_string()),
        "{first}"
    );
    let second = verify(true);
    assert!(second.contains(" 0 corrupt"), "{second}");
}

#[test]
fn inputs_evicted_between_runs_are_uploaded_again() {
    // A CAS of 24 MiB; each run's input root is 16 MiB.
    let server = Server::start_with(&["--max-size", "24M"]);
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let roots: Vec<PathBuf> = (0..2u64)
        .map(|i| {
            let r = tmp.path().join(format!("root{i}"));
            fs::create_dir_all(&r).unwrap();
            fs::write(r.join("big.bin"), common::noise(16 << 20, i + 1)).unwrap();
            r
        })
        .collect();
    let run = |root: &Path| {
        let mut cmd = recast_with_cache(
            &cache,
            [
                "run",
                "--remote",
                &server.url(),
                "--skip-cache",
                "--input-root",
            ],
        );
        cmd.arg(root)
            .args(["--", "/bin/sh", "-c", "wc -c < big.bin"]);
        String::from_utf8(run_ok(&mut cmd).stdout).unwrap()
    };
    assert_eq!(run(&roots[0]).trim(), (16u64 << 20).to_string());
    assert_eq!(run(&roots[1]).trim(), (16u64 << 20).to_string());
    // root0's blob was evicted for root1's; the server says so and the
    // client sends it again.
    assert_eq!(run(&roots[0]).trim(), (16u64 << 20).to_string());
}

/// A compile does not ask the server about a toolchain whose upload is
/// marked done; if the server evicted some of it since, Execute names the
/// blobs missing and the compile sends them then, and still runs there.
#[test]
fn toolchain_blobs_evicted_after_their_upload_are_sent_again_by_execute() {
    // A CAS of 300 MiB: gcc's toolchain (115 MB here, about 225 MB on the
    // server's disk once it has run), then three 48 MiB inputs of `recast
    // run` push part of it out.
    let server = Server::start_with(&["--max-size", "300M"]);
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let proj = tmp.path().join("proj");
    fs::create_dir_all(proj.join(".git")).unwrap();
    let compile = |name: &str| {
        fs::write(
            proj.join(format!("{name}.c")),
            format!("int {name}(int x) {{ return x * 11; }}\n"),
        )
        .unwrap();
        let mut cmd = recast_with_cache(&cache, ["gcc", "-O2", "-c", &format!("{name}.c")]);
        cmd.current_dir(&proj).env("RECAST_REMOTE", server.url());
        run_ok(&mut cmd);
        run_ok(
            Command::new("gcc")
                .args(["-O2", "-c", &format!("{name}.c"), "-o"])
                .arg(format!("plain-{name}.o"))
                .current_dir(&proj),
        );
        let want = fs::read(proj.join(format!("plain-{name}.o"))).unwrap();
        assert!(
            fs::read(proj.join(format!("{name}.o"))).unwrap() == want,
            "{name}.o differs from gcc's"
        );
    };
    compile("a");
    assert!(
        fs::read_dir(cache.join("uploaded")).unwrap().count() == 1,
        "the upload is marked"
    );
    let before = du(&server.dir.join("cas"));
    for i in 0..3u64 {
        let root = tmp.path().join(format!("root{i}"));
        fs::create_dir_all(&root).unwrap();
        fs::write(root.join("big.bin"), common::noise(48 << 20, i + 7)).unwrap();
        let mut cmd = recast_with_cache(&cache, ["run", "--remote", &server.url(), "--input-root"]);
        cmd.arg(&root).args(["--", "/bin/true"]);
        run_ok(&mut cmd);
    }
    let after = du(&server.dir.join("cas"));
    eprintln!("the CAS held {before} bytes after the upload, {after} after the big inputs");
    assert!(after < before + (144 << 20), "nothing was evicted");
    compile("b");
    let s = stats(&cache);
    assert_eq!(count(&s, "remote_executions"), 2, "{s}");
    assert_eq!(count(&s, "fallbacks"), 0, "{s}");
    assert!(
        s["bytes_uploaded"].as_u64().unwrap() > 1 << 20,
        "the evicted toolchain blobs were not sent again: {s}"
    );
}

/// A TCP proxy to `upstream` that cuts every connection once `limit`
/// bytes went through it (both ways together). Returns its port.
fn cutting_proxy(upstream: std::net::SocketAddr, limit: u64) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(upstream) else {
                continue;
            };
            let count = Arc::new(AtomicU64::new(0));
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                let count = count.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 << 10];
                    loop {
                        let n = match from.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if count.fetch_add(n as u64, Ordering::SeqCst) + n as u64 > limit {
                            break;
                        }
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = from.shutdown(std::net::Shutdown::Both);
                    let _ = to.shutdown(std::net::Shutdown::Both);
                });
            }
        }
    });
    port
}

#[test]
fn connections_cut_mid_transfer_mean_local_compiles_and_no_partial_file() {
    let server = Server::start();
    let tmp = tempdir();
    let proj = c_project(&tmp.path().join("proj"));
    let cache = tmp.path().join("cache");
    assert_done(
        make(&proj, "gcc", &cache, "grpc://127.0.0.1:9"),
        "plain make",
    );
    let want = objects(&proj);
    // Cut mid-upload of the toolchain (100+ MB), then mid-everything.
    for limit in [4 << 20, 300 << 10, 40 << 10] {
        let port = cutting_proxy(server.addr, limit);
        let url = format!("grpc://127.0.0.1:{port}");
        assert_done(
            make(&proj, &format!("{BIN} gcc"), &cache, &url),
            "make via the proxy",
        );
        assert_eq!(objects(&proj), want, "cut after {limit} bytes");
    }
    let s = stats(&cache);
    assert!(s["fallbacks"].as_u64().unwrap() >= 8, "{s}");
    // Through the warm front, every result asked of the server (no local
    // tier), once the server holds them: the front's one connection is cut
    // again and again, the calls on it fail together and are tried again
    // (UNAVAILABLE, not a reset stream) or compiled here, and the build
    // still gives gcc's objects.
    assert_done(
        make(&proj, &format!("{BIN} gcc"), &cache, &server.url()),
        "make, straight to the server",
    );
    assert_eq!(objects(&proj), want);
    let hits_before = stats(&cache)["cache_hits"].as_u64().unwrap();
    for limit in [300 << 10, 40 << 10] {
        let port = cutting_proxy(server.addr, limit);
        let url = format!("grpc://127.0.0.1:{port}");
        assert_done(
            make_with(
                &proj,
                &format!("{BIN} gcc"),
                &cache,
                &url,
                &[
                    ("RECAST_FRONT", "on"),
                    ("RECAST_TIER_SIZE", "0"),
                    ("RECAST_IDLE_TIMEOUT", "120"),
                ],
            ),
            "make via the front and the proxy",
        );
        assert_eq!(objects(&proj), want, "through the front, cut after {limit}");
    }
    let s = stats(&cache);
    assert!(
        s["cache_hits"].as_u64().unwrap() > hits_before,
        "no hit came through the front: {s}"
    );
    run_ok(&mut recast_with_cache(&cache, ["stop-server"]));

    // A download cut halfway: `recast run` fails clearly, no partial file.
    let root = tmp.path().join("root");
    fs::create_dir_all(&root).unwrap();
    let direct = recast_with_cache(
        &cache,
        [
            "run",
            "--remote",
            &server.url(),
            "--output",
            "big.bin",
            "--input-root",
        ],
    )
    .arg(&root)
    .args(["--", "/bin/sh", "-c", "head -c 5000000 /dev/zero > big.bin"])
    .output()
    .unwrap();
    assert!(
        direct.status.success(),
        "{}",
        String::from_utf8_lossy(&direct.stderr)
    );
    fs::remove_file(root.join("big.bin")).unwrap();
    let port = cutting_proxy(server.addr, 1 << 20);
    let out = recast_with_cache(
        &cache,
        [
            "run",
            "--remote",
            &format!("grpc://127.0.0.1:{port}"),
            "--output",
            "big.bin",
            "--input-root",
        ],
    )
    .arg(&root)
    .args(["--", "/bin/sh", "-c", "head -c 5000000 /dev/zero > big.bin"])
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(!root.join("big.bin").exists(), "a partial output appeared");
    assert!(
        fs::read_dir(&root).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".recast-")),
        "a temp file was left"
    );
}

#[test]
fn cargo_survives_the_server_killed_at_random_points() {
    let vendor = common::peers_dir().join("vendor/cargo-ws");
    if !vendor.join("serde").is_dir() {
        if common::peers_required() {
            panic!("{} missing (RECAST_REQUIRE_PEERS=1)", vendor.display());
        }
        eprintln!("skipping: {} missing", vendor.display());
        return;
    }
    let tmp = tempdir();
    let ws = tmp.path().join("ws");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cargo-ws");
    run_ok(Command::new("cp").arg("-r").arg(&src).arg(&ws));
    let _ = fs::remove_dir_all(ws.join("target"));
    fs::create_dir_all(ws.join(".cargo")).unwrap();
    fs::write(
        ws.join(".cargo/config.toml"),
        format!(
            "[source.crates-io]\nreplace-with = \"v\"\n[source.v]\ndirectory = \"{}\"\n",
            vendor.display()
        ),
    )
    .unwrap();
    let cache = tmp.path().join("cache");
    let cargo = |url: Option<&str>| {
        let mut cmd = Command::new("cargo");
        cmd.args(["build", "--offline", "-q"])
            .current_dir(&ws)
            .env("CARGO_INCREMENTAL", "0")
            .env_remove("RUSTC_WRAPPER")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(url) = url {
            cmd.env("RUSTC_WRAPPER", BIN);
            with_recast(&mut cmd, &cache, url);
        }
        cmd
    };
    let clean = || run_ok(Command::new("cargo").args(["clean", "-q"]).current_dir(&ws));
    run_ok(&mut cargo(None));
    let libs = || -> BTreeMap<String, Vec<u8>> {
        fs::read_dir(ws.join("target/debug/deps"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".rlib"))
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    fs::read(e.path()).unwrap(),
                )
            })
            .collect()
    };
    let want = libs();
    let mut seed = 5;
    for run in 0..runs() {
        clean();
        let before = stats(&cache);
        let mut server = Server::start();
        let child = cargo(Some(&server.url())).spawn().unwrap();
        let after_ms = 500 + lcg(&mut seed) % 5000;
        std::thread::sleep(Duration::from_millis(after_ms));
        server.stop();
        assert_done(child, &format!("cargo, kill {run}"));
        report("cargo", run, after_ms, &before, &stats(&cache));
        assert_eq!(libs(), want, "kill {run}: rlibs differ");
    }
}
