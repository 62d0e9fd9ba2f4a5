//! The embedded default: with no server configured, `recast run` starts a
//! per-user `recast serve` in the background, later runs reuse it, and
//! `recast stop-server` stops it.

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::projects::{count, stats};
use common::{json_summary, recast_with_cache, run_ok, tempdir};

fn alive(pid: i32) -> bool {
    unsafe { libc::kill(pid, 0) == 0 }
}

fn server_pid(cache: &std::path::Path) -> i32 {
    let state: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(cache.join("serve.json")).unwrap()).unwrap();
    state["pid"].as_i64().unwrap() as i32
}

#[test]
fn embedded_server_starts_on_demand_is_reused_and_stops() {
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let work = tmp.path().join("work");
    fs::create_dir_all(&work).unwrap();
    fs::write(work.join("in"), "x").unwrap();

    let run = |tag: &str| {
        let mut cmd =
            recast_with_cache(&cache, ["run", "--json", "--output", "out", "--input-root"]);
        cmd.arg(&work).args([
            "--",
            "/bin/sh",
            "-c",
            &format!("cat in > out; echo {tag} >> out"),
        ]);
        run_ok(&mut cmd)
    };
    let first = run("one");
    assert_eq!(json_summary(&first.stdout)["cached"], false);
    assert_eq!(fs::read_to_string(work.join("out")).unwrap(), "xone\n");
    let pid = server_pid(&cache);
    assert!(alive(pid));

    run("two");
    assert_eq!(server_pid(&cache), pid, "the second run reused the server");
    assert_eq!(fs::read_to_string(work.join("out")).unwrap(), "xtwo\n");

    run_ok(&mut recast_with_cache(&cache, ["stop-server"]));
    let deadline = Instant::now() + Duration::from_secs(10);
    // The server was started by an earlier process and reparented: it is
    // not our zombie to reap, so it disappears once it exits.
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(pid), "stop-server stopped pid {pid}");
    assert!(!cache.join("serve.json").exists());
}

#[test]
fn embedded_server_stops_when_idle_and_the_next_run_starts_another() {
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let work = tmp.path().join("work");
    fs::create_dir_all(&work).unwrap();
    let run = |script: &str| {
        let mut cmd = recast_with_cache(&cache, ["run", "--output", "out", "--input-root"]);
        cmd.arg(&work)
            .args(["--", "/bin/sh", "-c", script])
            .env("RECAST_IDLE_TIMEOUT", "2");
        run_ok(&mut cmd);
    };
    // An action longer than the timeout keeps the server up: the next
    // run, right after it, still finds the same server.
    run("sleep 3; echo slow > out");
    assert_eq!(fs::read_to_string(work.join("out")).unwrap(), "slow\n");
    let pid = server_pid(&cache);
    run("echo quick > out");
    assert_eq!(
        server_pid(&cache),
        pid,
        "the server stayed up through a long action"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!alive(pid), "the idle server (pid {pid}) stopped by itself");
    run("echo again > out");
    assert_ne!(server_pid(&cache), pid, "a new server was started");
    assert_eq!(fs::read_to_string(work.join("out")).unwrap(), "again\n");
    run_ok(&mut recast_with_cache(&cache, ["stop-server"]));

    let mut bad = recast_with_cache(&cache, ["run", "--input-root"]);
    bad.arg(&work)
        .args(["--", "/bin/true"])
        .env("RECAST_IDLE_TIMEOUT", "soon");
    let out = bad.output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("RECAST_IDLE_TIMEOUT"), "{err}");
}

/// The embedded server's store is this user's: a hit is read from it with
/// no call, even with the server stopped (it is not started again for a
/// hit), and a blob gone bad there is refused and the object comes from a
/// real compile instead.
#[test]
fn hits_are_read_from_the_embedded_store_without_the_server() {
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let proj = tmp.path().join("proj");
    fs::create_dir_all(proj.join(".git")).unwrap();
    fs::write(
        proj.join("k.c"),
        "int k(int x) { return x * 7 + 1; }\nint j(int x) { return k(x) - 3; }\n",
    )
    .unwrap();
    run_ok(
        std::process::Command::new("gcc")
            .args(["-O2", "-c", "k.c", "-o", "plain.o"])
            .current_dir(&proj),
    );
    let plain = fs::read(proj.join("plain.o")).unwrap();
    let compile = || {
        let _ = fs::remove_file(proj.join("k.o"));
        let mut cmd = recast_with_cache(&cache, ["gcc", "-O2", "-c", "k.c", "-o", "k.o"]);
        run_ok(cmd.current_dir(&proj));
        fs::read(proj.join("k.o")).unwrap()
    };
    let counts = || {
        let s = stats(&cache);
        (
            count(&s, "remote_executions"),
            count(&s, "cache_hits"),
            count(&s, "local_hits"),
        )
    };
    assert!(compile() == plain);
    assert_eq!(counts(), (1, 0, 0));
    assert!(compile() == plain);
    assert_eq!(counts(), (1, 1, 1), "the hit was read from the store");

    // Stopped, the server is not needed for a hit, nor started for one.
    let pid = server_pid(&cache);
    run_ok(&mut recast_with_cache(&cache, ["stop-server"]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(pid));
    assert!(compile() == plain);
    assert_eq!(counts(), (1, 2, 2));
    assert!(
        !cache.join("serve.json").exists(),
        "a hit started no server"
    );

    // A blob gone bad in the store: refused here, refused by the server
    // too (it checks before it serves), so the compile runs again.
    let mut rotted = 0;
    for shard in fs::read_dir(cache.join("server/cas")).unwrap() {
        for blob in fs::read_dir(shard.unwrap().path()).unwrap() {
            let p = blob.unwrap().path();
            if fs::read(&p).is_ok_and(|b| b == plain) {
                let mut perms = fs::metadata(&p).unwrap().permissions();
                std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
                fs::set_permissions(&p, perms).unwrap();
                let mut bad = plain.clone();
                let last = bad.len() - 1;
                bad[last] ^= 0xff;
                fs::write(&p, bad).unwrap();
                rotted += 1;
            }
        }
    }
    assert_eq!(rotted, 1, "the object is stored once");
    assert!(compile() == plain, "a rotten blob never becomes an output");
    let (remote, hits, local) = counts();
    assert_eq!(local, 2, "nothing read from a rotten store");
    assert_eq!(remote + hits, 4, "{remote} remote, {hits} hits");
    run_ok(&mut recast_with_cache(&cache, ["stop-server"]));
}
