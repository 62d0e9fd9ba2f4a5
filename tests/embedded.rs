//! The embedded default: with no server configured, `recast run` starts a
//! per-user `recast serve` in the background, later runs reuse it, and
//! `recast stop-server` stops it.

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::projects::{count, reason, stats};
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

/// The embedded default (`RECAST_MODE=auto`): a miss compiles here at
/// once, listing what it reads itself (no scan first), and its result
/// goes into the embedded server's store. That store is this user's: a
/// hit is read from it with no call, even with the server stopped (it is
/// not started again for a hit), and a blob gone bad there is refused
/// and the object comes from a real compile instead. `RECAST_MODE=remote`
/// still runs a miss in the embedded server's sandbox.
#[test]
fn hits_are_read_from_the_embedded_store_without_the_server() {
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let proj = tmp.path().join("proj");
    fs::create_dir_all(proj.join(".git")).unwrap();
    fs::write(
        proj.join("k.c"),
        "#include <stddef.h>\nint k(int x) { return x * 7 + 1; }\nint j(int x) { return k(x) - 3; }\n",
    )
    .unwrap();
    fs::write(proj.join("r.c"), "int r(int x) { return x ^ 5; }\n").unwrap();
    run_ok(
        std::process::Command::new("gcc")
            .args(["-O2", "-c", "k.c", "-o", "plain.o"])
            .current_dir(&proj),
    );
    run_ok(
        std::process::Command::new("gcc")
            .args(["-O2", "-c", "r.c", "-o", "plain-r.o"])
            .current_dir(&proj),
    );
    let plain = fs::read(proj.join("plain.o")).unwrap();
    // A file written within the stamps' race margin (50 ms) of a compile
    // that ran first is not trusted to be what it read: wait it out.
    std::thread::sleep(Duration::from_millis(100));
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
            reason(&s, "local_reasons", "cache_miss"),
            count(&s, "cache_hits"),
            count(&s, "local_hits"),
        )
    };
    assert!(compile() == plain);
    assert_eq!(counts(), (0, 1, 0, 0), "compiled here, nothing executed");
    assert_eq!(count(&stats(&cache), "compiled_first"), 1, "no scan first");
    assert!(compile() == plain);
    assert_eq!(counts(), (0, 1, 1, 1), "the hit was read from the store");

    // Stopped, the server is not needed for a hit, nor started for one.
    let pid = server_pid(&cache);
    run_ok(&mut recast_with_cache(&cache, ["stop-server"]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(pid));
    assert!(compile() == plain);
    assert_eq!(counts(), (0, 1, 2, 2));
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
    let (remote, misses, hits, local) = counts();
    assert_eq!((remote, local), (0, 2), "nothing read from a rotten store");
    assert_eq!(misses + hits, 4, "{misses} compiled here, {hits} hits");

    // Asked for, the embedded server executes a miss in its sandbox.
    let mut cmd = recast_with_cache(&cache, ["gcc", "-O2", "-c", "r.c", "-o", "r.o"]);
    run_ok(cmd.env("RECAST_MODE", "remote").current_dir(&proj));
    assert_eq!(
        fs::read(proj.join("r.o")).unwrap(),
        fs::read(proj.join("plain-r.o")).unwrap()
    );
    assert_eq!(counts().0, 1, "RECAST_MODE=remote executed it");
    run_ok(&mut recast_with_cache(&cache, ["stop-server"]));
}

/// The embedded default's first compiles run at once and list their own
/// reads: the user's `-MD` depfile is the compiler's own, and a hit writes
/// it again byte for byte. A header whose stamp says it changed while the
/// compile read it (here: dated in the future) keeps that result out of
/// the store; the next compile scans, looks up and stores, and the one
/// after that is a hit. A source written just before is hashed before
/// and after its compile instead, and stored at once.
#[test]
fn first_compiles_list_their_own_reads_and_a_header_changing_under_one_is_not_stored() {
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let proj = tmp.path().join("proj");
    fs::create_dir_all(proj.join(".git")).unwrap();
    fs::write(proj.join("a.h"), "#define A 6\n").unwrap();
    fs::write(
        proj.join("a.c"),
        "#include <stdio.h>\n#include \"a.h\"\nint a(void) { return printf(\"%d\", A); }\n",
    )
    .unwrap();
    fs::write(
        proj.join("b.c"),
        "#include \"gen.h\"\nint b(void) { return B; }\n",
    )
    .unwrap();
    let args = ["-O2", "-MD", "-MF", "a.d", "-c", "a.c", "-o", "a.o"];
    run_ok(
        std::process::Command::new("gcc")
            .args(args)
            .current_dir(&proj),
    );
    let (plain_o, plain_d) = (
        fs::read(proj.join("a.o")).unwrap(),
        fs::read(proj.join("a.d")).unwrap(),
    );
    assert!(String::from_utf8_lossy(&plain_d).contains("stdio.h"));
    std::thread::sleep(Duration::from_millis(100));
    let counts = || {
        let s = stats(&cache);
        (
            count(&s, "compiled_first"),
            reason(&s, "local_reasons", "cache_miss"),
            count(&s, "cache_hits"),
            count(&s, "remote_executions"),
        )
    };
    let compile = |args: &[&str], outs: &[&str]| {
        for o in outs {
            let _ = fs::remove_file(proj.join(o));
        }
        let mut cmd = recast_with_cache(&cache, [&["gcc"][..], args].concat());
        run_ok(cmd.current_dir(&proj));
    };
    compile(&args, &["a.o", "a.d"]);
    assert_eq!(fs::read(proj.join("a.o")).unwrap(), plain_o);
    assert_eq!(fs::read(proj.join("a.d")).unwrap(), plain_d);
    assert_eq!(counts(), (1, 1, 0, 0));
    compile(&args, &["a.o", "a.d"]);
    assert_eq!(fs::read(proj.join("a.o")).unwrap(), plain_o);
    assert_eq!(
        fs::read(proj.join("a.d")).unwrap(),
        plain_d,
        "written by the hit"
    );
    assert_eq!(counts(), (1, 1, 1, 0));

    // With -g the object names the project (DW_AT_comp_dir): stored at
    // once all the same, so the next build hits.
    let g = ["-g", "-O2", "-c", "a.c", "-o", "g.o"];
    run_ok(std::process::Command::new("gcc").args(g).current_dir(&proj));
    let plain_g = fs::read(proj.join("g.o")).unwrap();
    compile(&g, &["g.o"]);
    assert_eq!(fs::read(proj.join("g.o")).unwrap(), plain_g);
    assert_eq!(counts(), (2, 2, 1, 0));
    compile(&g, &["g.o"]);
    assert_eq!(fs::read(proj.join("g.o")).unwrap(), plain_g);
    assert_eq!(counts(), (2, 2, 2, 0), "a hit in the second build");

    // A header named by an absolute path asks for its own name with
    // `__builtin_FILE()` (no `__FILE__` in its text to warn the scan): the
    // object names the project, so the moved action cannot hold it. This
    // compile ran where the project is, so its result is the unmoved
    // action's, stored at once; the next build hits.
    fs::create_dir_all(proj.join("inc")).unwrap();
    fs::write(
        proj.join("inc/w.h"),
        "static inline const char *where(void) { return __builtin_FILE(); }\n",
    )
    .unwrap();
    fs::write(
        proj.join("w.c"),
        "#include \"w.h\"\nconst char *w(void) { return where(); }\n",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let inc = format!("-I{}", proj.join("inc").display());
    let w = ["-O2", inc.as_str(), "-c", "w.c", "-o", "w.o"];
    run_ok(std::process::Command::new("gcc").args(w).current_dir(&proj));
    let plain_w = fs::read(proj.join("w.o")).unwrap();
    compile(&w, &["w.o"]);
    assert_eq!(fs::read(proj.join("w.o")).unwrap(), plain_w);
    assert_eq!(counts(), (3, 3, 2, 0));
    compile(&w, &["w.o"]);
    assert_eq!(fs::read(proj.join("w.o")).unwrap(), plain_w);
    assert_eq!(counts(), (3, 3, 3, 0), "stored under the unmoved action");

    // gen.h's stamp is past the compile's start: not to be trusted.
    let header = proj.join("gen.h");
    fs::write(&header, "#define B 9\n").unwrap();
    let later = std::time::SystemTime::now() + Duration::from_secs(3);
    fs::File::options()
        .write(true)
        .open(&header)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let b = ["-O2", "-c", "b.c", "-o", "b.o"];
    compile(&b, &["b.o"]);
    assert_eq!(counts(), (4, 4, 3, 0), "compiled first, not stored");
    compile(&b, &["b.o"]);
    assert_eq!(
        counts(),
        (4, 5, 3, 0),
        "scanned, looked up, compiled, stored"
    );
    compile(&b, &["b.o"]);
    assert_eq!(counts(), (4, 5, 4, 0), "a hit");

    // A source written just before its compile (a script's, say): its
    // bytes, the same before and after the compile, are what it read.
    fs::write(proj.join("fresh.c"), "int fresh(void) { return 11; }\n").unwrap();
    let f = ["-O2", "-c", "fresh.c", "-o", "fresh.o"];
    compile(&f, &["fresh.o"]);
    assert_eq!(counts(), (5, 6, 4, 0));
    compile(&f, &["fresh.o"]);
    assert_eq!(counts(), (5, 6, 5, 0), "stored at once");

    // -MMD's depfile leaves system headers out: the compile writes it, and
    // gcc's -H trace lists them all (a -M run beside it under -g, which
    // would record -H), so a system header's edit misses. The trace is
    // out of the messages the compile shows.
    fs::create_dir_all(proj.join("sys")).unwrap();
    fs::write(proj.join("sys/s.h"), "#define S 3\n").unwrap();
    fs::write(
        proj.join("m.c"),
        "#include <s.h>\n#include \"a.h\"\n#warning \"m is built\"\nint m(void) { return S * A; }\n",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let m = [
        "-O2", "-isystem", "sys", "-MMD", "-MP", "-MF", "m.d", "-c", "m.c", "-o", "m.o",
    ];
    let shown = |cmd: &mut std::process::Command| {
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stderr).unwrap()
    };
    let plain_shown = shown(std::process::Command::new("gcc").args(m).current_dir(&proj));
    assert!(plain_shown.contains("m is built"), "{plain_shown}");
    let plain_m = |proj: &std::path::Path| {
        run_ok(std::process::Command::new("gcc").args(m).current_dir(proj));
        let got = (
            fs::read(proj.join("m.o")).unwrap(),
            fs::read(proj.join("m.d")).unwrap(),
        );
        for o in ["m.o", "m.d"] {
            fs::remove_file(proj.join(o)).unwrap();
        }
        got
    };
    let compile_shown = |args: &[&str], outs: &[&str]| {
        for o in outs {
            let _ = fs::remove_file(proj.join(o));
        }
        shown(recast_with_cache(&cache, [&["gcc"][..], args].concat()).current_dir(&proj))
    };
    let (plain_o, plain_d) = plain_m(&proj);
    assert!(
        !String::from_utf8_lossy(&plain_d).contains("s.h"),
        "-MMD leaves it out"
    );
    let made = || {
        (
            fs::read(proj.join("m.o")).unwrap(),
            fs::read(proj.join("m.d")).unwrap(),
        )
    };
    assert_eq!(compile_shown(&m, &["m.o", "m.d"]), plain_shown);
    assert!(made() == (plain_o.clone(), plain_d.clone()));
    assert_eq!(counts(), (6, 7, 5, 0), "compiled first, no scan first");
    assert_eq!(compile_shown(&m, &["m.o", "m.d"]), plain_shown);
    assert!(
        made() == (plain_o.clone(), plain_d.clone()),
        "written by the hit"
    );
    assert_eq!(counts(), (6, 7, 6, 0));
    // The list is -M's: the trace's headers, and what gcc includes before
    // the source, which no trace shows (a probe, kept once per flag set).
    let predef = "/usr/include/stdc-predef.h";
    if std::path::Path::new(predef).exists() {
        let kept: Vec<(String, String)> = walk(&cache.join("deps"))
            .into_iter()
            .map(|f| (f.display().to_string(), fs::read_to_string(&f).unwrap()))
            .collect();
        assert!(
            kept.iter()
                .any(|(f, t)| f.ends_with(".json") && t.contains(predef) && t.contains("sys/s.h")),
            "no scan entry lists {predef} and sys/s.h"
        );
        assert!(
            kept.iter()
                .any(|(f, t)| f.ends_with(".pre") && t.contains(predef)),
            "no probe's list"
        );
    }
    fs::write(proj.join("sys/s.h"), "#define S 4\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let (edited_o, edited_d) = plain_m(&proj);
    assert!(edited_o != plain_o && edited_d == plain_d);
    compile(&m, &["m.o", "m.d"]);
    assert!(
        made() == (edited_o, edited_d),
        "the system header was in the key"
    );
    assert_eq!(counts(), (6, 8, 6, 0), "scanned, looked up, missed");

    // Under -g the object would record -H (DW_AT_producer): a -M run
    // beside the compile lists instead.
    let mg = [
        "-g", "-O2", "-isystem", "sys", "-MMD", "-MF", "mg.d", "-c", "m.c", "-o", "mg.o",
    ];
    let plain_g = || {
        let shown_g = shown(
            std::process::Command::new("gcc")
                .args(mg)
                .current_dir(&proj),
        );
        let got = (
            fs::read(proj.join("mg.o")).unwrap(),
            fs::read(proj.join("mg.d")).unwrap(),
        );
        (got, shown_g)
    };
    let made_g = || {
        (
            fs::read(proj.join("mg.o")).unwrap(),
            fs::read(proj.join("mg.d")).unwrap(),
        )
    };
    let (plain_mg, plain_shown_g) = plain_g();
    assert_eq!(compile_shown(&mg, &["mg.o", "mg.d"]), plain_shown_g);
    assert!(made_g() == plain_mg);
    assert_eq!(counts(), (7, 9, 6, 0), "compiled first");
    assert_eq!(compile_shown(&mg, &["mg.o", "mg.d"]), plain_shown_g);
    assert!(made_g() == plain_mg);
    assert_eq!(counts(), (7, 9, 7, 0), "a hit");
    fs::write(proj.join("sys/s.h"), "#define S 5\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let (edited_mg, _) = plain_g();
    assert!(edited_mg != plain_mg);
    compile_shown(&mg, &["mg.o", "mg.d"]);
    assert!(made_g() == edited_mg, "the system header was in the key");
    assert_eq!(counts(), (7, 10, 7, 0), "scanned, looked up, missed");
    run_ok(&mut recast_with_cache(&cache, ["stop-server"]));
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        match p.is_dir() {
            true => files.extend(walk(&p)),
            false => files.push(p),
        }
    }
    files
}
