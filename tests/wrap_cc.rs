//! The C wrapper end to end: a real multi-file C library (zstd's
//! decompressor, the copy vendored in the `zstd-sys` crate recast itself
//! builds with, so it is on every machine that built recast) compiled with
//! `make CC="recast gcc"` and through CMake's compiler launcher against a
//! real `recast serve`, compared byte for byte with plain builds; a copy of
//! the project elsewhere gets only cache hits; a touched header reruns
//! only its dependents; a dead server falls back to local compiles; a
//! compile error is replayed exactly; a masquerade link works. Over an
//! emulated 40 ms link: background toolchain uploads, the warm front
//! (killed mid-build too), local-tier hits with no traffic, lost
//! connections.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::link::{Link, Profile};
use common::projects::{
    assert_same, count, du, files, reason, stats, wait_for_publications, with_recast, zstd_project,
    zstd_sources,
};
use common::{BIN, Server, free_port, open_to_others, recast_with_cache, run_ok, tempdir};

fn make(dir: &Path, cc: &str, cache: &Path, url: &str) -> Output {
    make_with(dir, cc, cache, url, &[])
}

fn make_with(dir: &Path, cc: &str, cache: &Path, url: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("make");
    cmd.args(["-j2", "--no-print-directory"])
        .arg(format!("CC={cc}"))
        .current_dir(dir);
    with_recast(&mut cmd, cache, url);
    cmd.envs(env.iter().copied());
    run_ok(&mut cmd)
}

/// Calls through the warm front, which stops by itself if a failed test
/// leaves it running.
const FRONT: &[(&str, &str)] = &[("RECAST_FRONT", "on"), ("RECAST_IDLE_TIMEOUT", "300")];

/// The pid in a front's `front.json`, and the one front dir of `cache`.
fn the_front(cache: &Path) -> (std::path::PathBuf, i32) {
    let dirs: Vec<_> = fs::read_dir(cache.join("fronts"))
        .expect("a fronts dir")
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "one front per server: {dirs:?}");
    let state: serde_json::Value =
        serde_json::from_slice(&fs::read(dirs[0].join("front.json")).unwrap()).unwrap();
    let pid = state["pid"].as_i64().unwrap() as i32;
    (dirs[0].clone(), pid)
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

fn recast_cc() -> String {
    format!("{BIN} gcc")
}

#[test]
fn make_builds_zstd_remotely_byte_identical_and_a_copy_elsewhere_only_hits() {
    let mut server = Server::start();
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let plain = zstd_project(&tmp.path().join("plain"));
    let proj = zstd_project(&tmp.path().join("proj"));
    make(&plain, "gcc", &cache, &server.url());
    let want = files(&plain, "obj", "o");
    let n = zstd_sources(&plain);
    assert_eq!(want.len() as u64, n, "{:?}", want.keys());

    make(&proj, &recast_cc(), &cache, &server.url());
    assert_same("objects", &files(&proj, "obj", "o"), &want);
    assert_same(
        "depfiles",
        &files(&proj, "obj", "d"),
        &files(&plain, "obj", "d"),
    );
    let s = stats(&cache);
    assert_eq!(count(&s, "remote_executions"), n, "{s}");
    assert_eq!(count(&s, "fallbacks"), 0, "{s}");

    // The same project at another path: every compile is a hit.
    let copy = zstd_project(&tmp.path().join("elsewhere/copy"));
    make(&copy, &recast_cc(), &cache, &server.url());
    assert_same("objects of the copy", &files(&copy, "obj", "o"), &want);
    let s = stats(&cache);
    assert_eq!(count(&s, "cache_hits"), n, "{s}");
    assert_eq!(count(&s, "remote_executions"), n, "{s}");

    // A header edit reruns its dependents only (make picks them; each is a
    // new action, so each runs remotely).
    let header = "lib/common/zstd_internal.h";
    let dependents = files(&proj, "obj", "d")
        .values()
        // Spelled `lib/common/…` or `lib/decompress/../common/…`.
        .filter(|d| String::from_utf8_lossy(d).contains("zstd_internal.h"))
        .count();
    assert!((1..n as usize).contains(&dependents), "{dependents}");
    for dir in [&proj, &plain] {
        let mut text = fs::read_to_string(dir.join(header)).unwrap();
        text.push_str("\n/* touched */\n");
        fs::write(dir.join(header), text).unwrap();
    }
    make(&plain, "gcc", &cache, &server.url());
    // These go through the warm front: uploads, Execute's stream and the
    // outputs' reads forwarded over its one connection.
    make_with(&proj, &recast_cc(), &cache, &server.url(), FRONT);
    let s = stats(&cache);
    assert_eq!(count(&s, "remote_executions"), n + dependents as u64, "{s}");
    assert_eq!(count(&s, "fallbacks"), 0, "{s}");
    let (front_dir, front_pid) = the_front(&cache);
    assert!(alive(front_pid), "the front stays up for the next build");
    let want = files(&plain, "obj", "o");
    assert_same("objects after the edit", &files(&proj, "obj", "o"), &want);
    // The copy's hits were read from the local tier (written when the
    // project's results came from the server), with no call.
    assert_eq!(count(&s, "local_hits"), n, "{s}");

    // A rotten blob in the tier is a miss there: that one result comes
    // from the server, and the tier is written whole again.
    let tier = cache.join("tier");
    let victim = tier_blob_of(&tier, &want["obj/decompress/zstd_decompress.o"]);
    let mut perms = fs::metadata(&victim).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    fs::set_permissions(&victim, perms).unwrap();
    let mut bytes = fs::read(&victim).unwrap();
    bytes[100] ^= 1;
    fs::write(&victim, &bytes).unwrap();
    fs::remove_dir_all(proj.join("obj")).unwrap();
    make(&proj, &recast_cc(), &cache, &server.url());
    assert_same(
        "objects past a rotten tier",
        &files(&proj, "obj", "o"),
        &want,
    );
    let s = stats(&cache);
    assert_eq!(count(&s, "cache_hits"), 2 * n, "{s}");
    assert_eq!(count(&s, "local_hits"), 2 * n - 1, "{s}");
    let healed = fs::read(&victim).unwrap();
    assert!(
        healed == want["obj/decompress/zstd_decompress.o"],
        "the tier kept a rotten blob"
    );

    // A tier with a small bound stays within it.
    let small = tmp.path().join("small-cache");
    let bound = 128 << 10;
    fs::remove_dir_all(proj.join("obj")).unwrap();
    let mut cmd = Command::new("make");
    cmd.args(["-j2", "--no-print-directory"])
        .arg(format!("CC={}", recast_cc()))
        .current_dir(&proj);
    with_recast(&mut cmd, &small, &server.url());
    run_ok(
        cmd.env("RECAST_TIER_SIZE", bound.to_string())
            .envs(FRONT.iter().copied()),
    );
    assert_same("objects, small tier", &files(&proj, "obj", "o"), &want);
    let s = stats(&small);
    assert_eq!(count(&s, "cache_hits"), n, "{s}");
    assert_eq!(count(&s, "local_hits"), 0, "{s}");
    // Hits from the server through a front of this cache dir's own.
    let (small_front, small_pid) = the_front(&small);
    assert_ne!(small_pid, front_pid);

    // A front that died is started again by the next compile that needs
    // it; the build only ever sees hits.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(small_pid).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    while alive(small_pid) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    fs::remove_dir_all(proj.join("obj")).unwrap();
    make_with(
        &proj,
        &recast_cc(),
        &small,
        &server.url(),
        &[FRONT, &[("RECAST_TIER_SIZE", "0")]].concat(),
    );
    assert_same("objects, front restarted", &files(&proj, "obj", "o"), &want);
    let s = stats(&small);
    assert_eq!(count(&s, "cache_hits"), 2 * n, "{s}");
    assert_eq!(count(&s, "fallbacks"), 0, "{s}");
    let (again, new_pid) = the_front(&small);
    assert_eq!(again, small_front);
    assert!(new_pid != small_pid && alive(new_pid), "{new_pid}");

    // stop-server stops the fronts too.
    let mut stop = recast_with_cache(&small, ["stop-server"]);
    let out = run_ok(&mut stop);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("stopped the front at unix:"), "{said}");
    assert!(!alive(new_pid), "the front outlived stop-server");
    assert!(!small_front.join("front.json").exists());
    assert!(alive(front_pid), "another cache dir's front was stopped");
    let kept = du(&small.join("tier/cas")) + du(&small.join("tier/ac"));
    let all: u64 = want.values().map(|o| o.len() as u64).sum();
    assert!(
        all > bound,
        "the test needs more than {bound} bytes of objects"
    );
    assert!(
        kept > 0 && kept <= bound,
        "{kept} bytes kept, bound {bound}"
    );

    // With the server gone, every compile is still a hit, read here.
    server.stop();
    fs::remove_dir_all(proj.join("obj")).unwrap();
    make(&proj, &recast_cc(), &cache, &server.url());
    assert_same("objects, server stopped", &files(&proj, "obj", "o"), &want);
    let s = stats(&cache);
    assert_eq!(count(&s, "local_hits"), 3 * n - 1, "{s}");
    assert_eq!(count(&s, "cache_hits"), 3 * n, "{s}");
    assert_eq!(count(&s, "fallbacks"), 0, "{s}");
    let mut stop = recast_with_cache(&cache, ["stop-server"]);
    run_ok(&mut stop);
    assert!(!alive(front_pid), "the front outlived stop-server");
    assert!(!front_dir.join("front.json").exists());
}

/// The file in the tier at `tier` that holds `bytes`.
fn tier_blob_of(tier: &Path, bytes: &[u8]) -> std::path::PathBuf {
    for shard in fs::read_dir(tier.join("cas")).unwrap() {
        for f in fs::read_dir(shard.unwrap().path()).unwrap() {
            let path = f.unwrap().path();
            if fs::read(&path).unwrap() == bytes {
                return path;
            }
        }
    }
    panic!("no blob in {} holds those bytes", tier.display());
}

#[test]
fn a_toolchain_the_server_lacks_goes_up_in_the_background_while_compiles_run_here() {
    let server = Server::start();
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let proj = tmp.path().join("proj");
    fs::create_dir_all(proj.join(".git")).unwrap();
    for (name, k) in [("a", 3), ("b", 5)] {
        fs::write(
            proj.join(format!("{name}.c")),
            format!("int {name}(int x) {{ return x * {k}; }}\n"),
        )
        .unwrap();
        run_ok(
            Command::new("gcc")
                .args(["-O2", "-c", &format!("{name}.c"), "-o"])
                .arg(format!("{name}.plain.o"))
                .current_dir(&proj),
        );
    }
    let compile_with = |cache: &Path, name: &str| {
        let out = proj.join(format!("{name}.o"));
        let _ = fs::remove_file(&out);
        let mut cmd = recast_with_cache(
            cache,
            [
                "gcc",
                "-O2",
                "-c",
                &format!("{name}.c"),
                "-o",
                &format!("{name}.o"),
            ],
        );
        cmd.current_dir(&proj)
            .env("RECAST_REMOTE", server.url())
            .env("RECAST_TOOLCHAIN_UPLOAD", "background");
        // Under a umask of 000 (the uploader inherits it), what the upload
        // leaves is still private.
        // SAFETY: umask is async-signal-safe and touches nothing else.
        unsafe {
            cmd.pre_exec(|| {
                libc::umask(0);
                Ok(())
            });
        }
        run_ok(&mut cmd);
        let plain = fs::read(proj.join(format!("{name}.plain.o"))).unwrap();
        assert!(
            fs::read(&out).unwrap() == plain,
            "{name}.o differs from gcc's"
        );
    };
    let compile = |name: &str| compile_with(&cache, name);
    // The first compile finds gcc's toolchain missing (over 100 MB): it
    // starts the upload in a process of its own and compiles here at once.
    compile("a");
    let s = stats(&cache);
    assert_eq!(reason(&s, "local_reasons", "toolchain_uploading"), 1, "{s}");
    assert_eq!(count(&s, "compiled_first"), 1, "{s}");
    assert_eq!(count(&s, "remote_executions"), 0, "{s}");
    let log = wait_for_the_upload(&cache);
    assert!(log.contains("recast: uploaded gcc"), "{log}");
    for made in ["uploads", "uploaded"] {
        assert_eq!(open_to_others(&cache.join(made)), Vec::<String>::new());
    }
    // Once the server holds it, compiles run there.
    compile("b");
    let s = stats(&cache);
    assert_eq!(count(&s, "remote_executions"), 1, "{s}");
    assert_eq!(count(&s, "fallbacks"), 0, "{s}");
    // What the first compile made here was kept and published as a
    // cache-only result is: the same compile hits, here and from another
    // machine (another cache dir), with nothing run again.
    compile("a");
    let s = stats(&cache);
    assert_eq!(count(&s, "cache_hits"), 1, "{s}");
    assert_eq!(count(&s, "remote_executions"), 1, "{s}");
    let other = tmp.path().join("other-machine");
    compile_with(&other, "a");
    let s = stats(&other);
    assert_eq!(count(&s, "cache_hits"), 1, "{s}");
    assert_eq!(count(&s, "local_hits"), 0, "{s}");
    assert_eq!(count(&s, "remote_executions"), 0, "{s}");
}

/// Waits (two minutes at most) until the background upload that a
/// compile with cache dir `cache` started is over, and returns its log.
fn wait_for_the_upload(cache: &Path) -> String {
    let uploads = cache.join("uploads");
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = || {
        fs::read_dir(cache.join("uploaded")).is_ok_and(|mut d| d.next().is_some())
            && !fs::read_dir(&uploads)
                .unwrap()
                .any(|e| e.unwrap().path().extension().is_some_and(|x| x == "json"))
    };
    while !done() {
        assert!(
            Instant::now() < deadline,
            "the background upload did not finish: {:?}",
            fs::read_dir(&uploads)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    fs::read_dir(&uploads)
        .unwrap()
        .map(|e| fs::read_to_string(e.unwrap().path()).unwrap())
        .collect()
}

/// Every file under `dir/obj` that is not an object or a depfile: what a
/// half-written output would leave.
fn strays(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.join("obj")];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if !path.extension().is_some_and(|x| x == "o" || x == "d") {
                out.push(path.display().to_string());
            }
        }
    }
    out
}

/// A far server, 40 ms away: every chunk held 20 ms each way by an
/// emulated link (`common::link`). The first compile does not wait for
/// gcc's toolchain to go up; a `make -j2` through the warm front runs
/// every compile there; a copy of the project is answered from the local
/// tier without one byte or connection over the link; a front killed
/// mid-build costs at most the compiles in flight; and a link that cuts
/// or stalls connections loses no build and no object.
#[test]
fn over_a_40ms_link_nothing_waits_for_uploads_hits_stay_here_and_losses_lose_nothing() {
    let server = Server::start();
    let link = Link::start(
        server.addr,
        Profile {
            one_way: Duration::from_millis(20),
        },
    );
    let url = link.url();
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let plain = zstd_project(&tmp.path().join("plain"));
    let proj = zstd_project(&tmp.path().join("proj"));
    make(&plain, "gcc", &cache, &url);
    let want = files(&plain, "obj", "o");
    let n = zstd_sources(&plain);

    // The first compile starts gcc's upload and compiles here; once the
    // server holds the toolchain, compiles run there.
    let small = tmp.path().join("small");
    fs::create_dir_all(small.join(".git")).unwrap();
    for name in ["a", "b"] {
        fs::write(
            small.join(format!("{name}.c")),
            format!("int {name}(int x) {{ return x * 7; }}\n"),
        )
        .unwrap();
        let mut cmd = recast_with_cache(&cache, ["gcc", "-O2", "-c", &format!("{name}.c")]);
        cmd.current_dir(&small)
            .env("RECAST_REMOTE", &url)
            .env("RECAST_TOOLCHAIN_UPLOAD", "background");
        let started = Instant::now();
        run_ok(&mut cmd);
        if name == "a" {
            let s = stats(&cache);
            assert_eq!(reason(&s, "local_reasons", "toolchain_uploading"), 1, "{s}");
            assert_eq!(count(&s, "remote_executions"), 0, "{s}");
            eprintln!("the first compile took {:?}", started.elapsed());
            let log = wait_for_the_upload(&cache);
            assert!(log.contains("recast: uploaded gcc"), "{log}");
        }
    }
    let s = stats(&cache);
    assert_eq!(count(&s, "remote_executions"), 1, "{s}");

    // Every compile of the project runs on the server, through the front.
    let started = Instant::now();
    make_with(&proj, &recast_cc(), &cache, &url, FRONT);
    eprintln!("cold make -j2 through the front: {:?}", started.elapsed());
    assert_same("objects", &files(&proj, "obj", "o"), &want);
    let s = stats(&cache);
    assert_eq!(count(&s, "remote_executions"), 1 + n, "{s}");
    assert_eq!(count(&s, "fallbacks"), 0, "{s}");
    let (_, first_front) = the_front(&cache);

    // A copy elsewhere: every compile a hit from the local tier, and not
    // one connection or byte over the link.
    let copy = zstd_project(&tmp.path().join("elsewhere/copy"));
    let before = (link.connections(), link.bytes());
    make_with(&copy, &recast_cc(), &cache, &url, FRONT);
    assert_same("objects of the copy", &files(&copy, "obj", "o"), &want);
    assert_eq!(
        (link.connections(), link.bytes()),
        before,
        "the link was used"
    );
    let s = stats(&cache);
    assert_eq!(count(&s, "local_hits"), n, "{s}");
    assert_eq!(count(&s, "cache_hits"), n, "{s}");

    // The front killed mid-build (new keys: each compile runs on the
    // server): the build completes with the same objects; only compiles
    // in flight may fall back, and the next compile starts a new front.
    fs::remove_dir_all(proj.join("obj")).unwrap();
    let killer = {
        let (cache, proj) = (cache.clone(), proj.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !proj.join("obj").is_dir() || files(&proj, "obj", "o").len() < 3 {
                assert!(Instant::now() < deadline, "the build made no progress");
                std::thread::sleep(Duration::from_millis(5));
            }
            let (_, pid) = the_front(&cache);
            rustix::process::kill_process(
                rustix::process::Pid::from_raw(pid).unwrap(),
                rustix::process::Signal::KILL,
            )
            .unwrap();
            pid
        })
    };
    make_with(
        &proj,
        &recast_cc(),
        &cache,
        &url,
        &[FRONT, &[("CFLAGS", "-O2 -Wall -DKILLED_FRONT")]].concat(),
    );
    let killed = killer.join().unwrap();
    assert_eq!(killed, first_front);
    assert_same("objects, front killed", &files(&proj, "obj", "o"), &want);
    assert_eq!(strays(&proj), Vec::<String>::new());
    let s = stats(&cache);
    let fell_back = count(&s, "fallbacks");
    eprintln!("front {killed} killed mid-build: {s}");
    assert!(
        fell_back <= 2,
        "more than the compiles in flight fell back: {s}"
    );
    assert_eq!(count(&s, "remote_executions") + fell_back, 1 + 2 * n, "{s}");
    let (_, second_front) = the_front(&cache);
    assert!(second_front != killed && alive(second_front), "{s}");

    // Cache-only (new keys): each miss compiles here, keeps its result in
    // the tier and leaves it to the background publisher, which sends
    // them all; a machine with an empty tier then hits every one.
    let later = tmp.path().join("later");
    let publish_later = [
        FRONT,
        &[
            ("RECAST_MODE", "cache-only"),
            ("RECAST_PUBLISH", "background"),
            ("CFLAGS", "-O2 -Wall -DPUBLISHED_LATER"),
        ],
    ]
    .concat();
    fs::remove_dir_all(proj.join("obj")).unwrap();
    make_with(&proj, &recast_cc(), &later, &url, &publish_later);
    let queued = files(&proj, "obj", "o");
    let s = stats(&later);
    assert_eq!(reason(&s, "local_reasons", "cache_miss"), n, "{s}");
    assert_eq!(count(&s, "results_queued"), n, "{s}");
    let s = wait_for_publications(&later, n);
    assert!(count(&s, "bytes_uploaded") > 0, "{s}");
    let elsewhere = tmp.path().join("later-elsewhere");
    fs::remove_dir_all(proj.join("obj")).unwrap();
    make_with(&proj, &recast_cc(), &elsewhere, &url, &publish_later);
    assert_same(
        "objects published later",
        &files(&proj, "obj", "o"),
        &queued,
    );
    let s = stats(&elsewhere);
    assert_eq!(count(&s, "cache_hits"), n, "{s}");
    assert_eq!(
        (count(&s, "local_runs"), count(&s, "local_hits")),
        (0, 0),
        "{s}"
    );
    for c in [&later, &elsewhere] {
        run_ok(&mut recast_with_cache(c, ["stop-server"]));
    }

    // A link that cuts or stalls a third of its connections: builds with
    // an empty tier, direct and through the front, lose nothing.
    for (setting, sub) in [("off", "lossy-direct"), ("on", "lossy-front")] {
        let lossy = tmp.path().join(sub);
        let cuts = link.cuts();
        link.fail_every(3);
        fs::remove_dir_all(proj.join("obj")).unwrap();
        make_with(
            &proj,
            &recast_cc(),
            &lossy,
            &url,
            &[("RECAST_FRONT", setting), ("RECAST_IDLE_TIMEOUT", "300")],
        );
        link.fail_every(0);
        assert_same(setting, &files(&proj, "obj", "o"), &want);
        assert_eq!(strays(&proj), Vec::<String>::new());
        assert!(link.cuts() > cuts, "{setting}: no connection was cut");
        let s = stats(&lossy);
        eprintln!("front {setting}, {} cuts so far: {s}", link.cuts());
        assert_eq!(count(&s, "compiles"), n, "{s}");
        assert_eq!(count(&s, "cache_hits") + count(&s, "fallbacks"), n, "{s}");
        let mut stop = recast_with_cache(&lossy, ["stop-server"]);
        run_ok(&mut stop);
    }
    let mut stop = recast_with_cache(&cache, ["stop-server"]);
    run_ok(&mut stop);
    assert!(!alive(second_front), "the front outlived stop-server");
}

/// A server reached through a tunnel on this machine has a loopback
/// address, so by default nothing is compressed for it;
/// `RECAST_COMPRESSION=always` compresses a hit's result, its object
/// inlined, across the tunnel.
#[test]
fn compression_always_shrinks_a_hit_through_a_tunnel() {
    let server = Server::start();
    let tmp = tempdir();
    let proj = tmp.path().join("proj");
    fs::create_dir_all(proj.join(".git")).unwrap();
    // Half a MiB of read-only data: inlined in the result, and compressible.
    fs::write(
        proj.join("big.c"),
        "const char big[512 << 10] = {1};\nint f(int i) { return big[i]; }\n",
    )
    .unwrap();
    run_ok(
        Command::new("gcc")
            .args(["-O2", "-c", "big.c", "-o", "plain.o"])
            .current_dir(&proj),
    );
    let plain = fs::read(proj.join("plain.o")).unwrap();
    let compile = |cache: &Path, url: &str, compression: &str| {
        let _ = fs::remove_file(proj.join("big.o"));
        let mut cmd = recast_with_cache(cache, ["gcc", "-O2", "-c", "big.c", "-o", "big.o"]);
        cmd.current_dir(&proj)
            .env("RECAST_REMOTE", url)
            .env("RECAST_COMPRESSION", compression)
            .env("RECAST_FRONT", "off");
        run_ok(&mut cmd);
        assert!(
            fs::read(proj.join("big.o")).unwrap() == plain,
            "{compression}"
        );
    };
    // Another machine's compile fills the server.
    compile(&tmp.path().join("filler"), &server.url(), "auto");
    let mut down = BTreeMap::new();
    for setting in ["never", "auto", "always"] {
        let proxy = Link::start(server.addr, Profile::default());
        let cache = tmp.path().join(format!("cache-{setting}"));
        compile(&cache, &proxy.url(), setting);
        let s = stats(&cache);
        assert_eq!(count(&s, "cache_hits"), 1, "{setting}: {s}");
        assert_eq!(count(&s, "remote_executions"), 0, "{setting}: {s}");
        down.insert(setting, proxy.bytes().1);
    }
    eprintln!("bytes down through the tunnel: {down:?}");
    // `auto` takes the tunnel for this machine: nothing compressed.
    assert!(down["auto"] > 512 << 10, "{down:?}");
    assert!(down["never"] > 512 << 10, "{down:?}");
    assert!(down["always"] < 128 << 10, "{down:?}");
}

#[test]
fn cmake_launcher_builds_the_same_objects_as_cmake_alone() {
    if common::peer("cmake").is_none() {
        return;
    }
    let server = Server::start();
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let proj = zstd_project(&tmp.path().join("proj"));
    let build = |launcher: Option<&str>| -> BTreeMap<String, Vec<u8>> {
        let b = proj.join("build");
        let _ = fs::remove_dir_all(&b);
        let mut cfg = Command::new("cmake");
        cfg.args(["-S", ".", "-B", "build", "-DCMAKE_C_COMPILER=gcc"])
            .current_dir(&proj);
        if let Some(l) = launcher {
            cfg.arg(format!("-DCMAKE_C_COMPILER_LAUNCHER={l}"));
        }
        with_recast(&mut cfg, &cache, &server.url());
        run_ok(&mut cfg);
        let mut b = Command::new("cmake");
        b.args(["--build", "build", "-j2"]).current_dir(&proj);
        with_recast(&mut b, &cache, &server.url());
        run_ok(&mut b);
        files(&proj, "build", "o")
    };
    let plain = build(None);
    let n = zstd_sources(&proj);
    assert_eq!(plain.len() as u64, n);
    let wrapped = build(Some(BIN));
    assert_same("cmake objects", &wrapped, &plain);
    let s = stats(&cache);
    // CMake also runs the compiler to detect it (links: local).
    assert_eq!(count(&s, "remote_executions"), n, "{s}");
    assert_eq!(s["fallbacks"], 0, "{s}");
}

/// The embedded default (nothing configured) under CMake, whose Makefiles
/// ask gcc for `-MD` depfiles: a first build compiles every source here
/// at once, listing its reads in CMake's own depfile (no scan first),
/// with the objects and depfiles plain CMake writes; the next build from
/// scratch is all hits, and writes the depfiles again, byte for byte.
#[test]
fn cmake_on_the_embedded_default_compiles_first_then_hits_with_cmakes_depfiles() {
    if common::peer("cmake").is_none() {
        return;
    }
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let proj = zstd_project(&tmp.path().join("proj"));
    let recast_env = |cmd: &mut Command| {
        cmd.env("RECAST_CACHE_DIR", &cache)
            .env("RECAST_CONFIG", cache.join("no-such-config.toml"))
            .env_remove("RECAST_REMOTE")
            .env_remove("RECAST_MODE")
            .env_remove("RECAST_PROJECT_ROOT");
    };
    let build = |launcher: Option<&str>| {
        let _ = fs::remove_dir_all(proj.join("build"));
        let mut cfg = Command::new("cmake");
        cfg.args(["-S", ".", "-B", "build", "-DCMAKE_C_COMPILER=gcc"])
            .current_dir(&proj);
        if let Some(l) = launcher {
            cfg.arg(format!("-DCMAKE_C_COMPILER_LAUNCHER={l}"));
        }
        recast_env(&mut cfg);
        run_ok(&mut cfg);
        // Sources older than the race margin: every result is stored.
        std::thread::sleep(std::time::Duration::from_millis(100));
        let mut b = Command::new("cmake");
        b.args(["--build", "build", "-j2"]).current_dir(&proj);
        recast_env(&mut b);
        run_ok(&mut b);
        (files(&proj, "build", "o"), files(&proj, "build", "d"))
    };
    let (plain, plain_deps) = build(None);
    let n = zstd_sources(&proj);
    assert_eq!(plain.len() as u64, n);
    assert_eq!(plain_deps.len() as u64, n, "CMake asks for -MD depfiles");
    let (first, first_deps) = build(Some(BIN));
    assert_same("cmake objects", &first, &plain);
    assert_same("cmake depfiles", &first_deps, &plain_deps);
    let s = stats(&cache);
    assert_eq!(count(&s, "compiled_first"), n, "{s}");
    assert_eq!(count(&s, "remote_executions"), 0, "{s}");
    assert_eq!(s["fallbacks"], 0, "{s}");
    run_ok(&mut recast_with_cache(&cache, ["stats", "--zero"]));
    let (again, again_deps) = build(Some(BIN));
    assert_same("cmake objects, from the store", &again, &plain);
    assert_same("cmake depfiles, from the store", &again_deps, &plain_deps);
    let s = stats(&cache);
    assert_eq!(count(&s, "cache_hits"), n, "{s}");
    assert_eq!(count(&s, "compiled_first"), 0, "{s}");
    run_ok(&mut recast_with_cache(&cache, ["stop-server"]));
}

#[test]
fn a_dead_server_means_local_compiles_with_the_same_objects() {
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let plain = zstd_project(&tmp.path().join("plain"));
    let proj = zstd_project(&tmp.path().join("proj"));
    let dead = format!("grpc://127.0.0.1:{}", free_port());
    make(&plain, "gcc", &cache, &dead);
    make(&proj, &recast_cc(), &cache, &dead);
    assert_same(
        "objects",
        &files(&proj, "obj", "o"),
        &files(&plain, "obj", "o"),
    );
    assert_same(
        "depfiles",
        &files(&proj, "obj", "d"),
        &files(&plain, "obj", "d"),
    );
    let s = stats(&cache);
    let n = zstd_sources(&proj);
    assert_eq!(count(&s, "fallbacks"), n, "{s}");
    assert_eq!(reason(&s, "fallback_causes", "unreachable"), n, "{s}");
}

#[test]
fn compile_errors_replay_exactly_and_other_shapes_run_locally() {
    let server = Server::start();
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let dir = tmp.path().join("src");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("bad.c"),
        "#include <stdio.h>\nint f(void) { return undeclared; }\n",
    )
    .unwrap();
    fs::write(dir.join("main.c"), "int main(void) { return 0; }\n").unwrap();
    let compile = |cmd: &mut Command| {
        cmd.args(["-Wall", "-c", "bad.c", "-o", "bad.o"])
            .current_dir(&dir);
        cmd.output().unwrap()
    };
    let local = compile(&mut Command::new("gcc"));
    let mut cmd = Command::new(BIN);
    cmd.arg("gcc");
    with_recast(&mut cmd, &cache, &server.url());
    let remote = compile(&mut cmd);
    assert_eq!(remote.status.code(), local.status.code());
    assert_ne!(local.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&remote.stderr),
        String::from_utf8_lossy(&local.stderr)
    );
    assert_eq!(remote.stdout, local.stdout);
    assert!(!dir.join("bad.o").exists());
    let s = stats(&cache);
    assert_eq!(s["remote_executions"], 1, "{s}");

    // Linking and preprocessing run here, counted by reason.
    for args in [
        &["main.c", "-o", "main"][..],
        &["-E", "main.c", "-o", "main.i"],
    ] {
        let mut cmd = Command::new(BIN);
        cmd.arg("gcc").args(args).current_dir(&dir);
        with_recast(&mut cmd, &cache, &server.url());
        run_ok(&mut cmd);
    }
    assert!(dir.join("main").is_file() && dir.join("main.i").is_file());
    let s = stats(&cache);
    assert_eq!(s["local_reasons"]["linking"], 1, "{s}");
    assert_eq!(s["local_reasons"]["preprocess_only"], 1, "{s}");
}

#[test]
fn a_masquerade_link_named_gcc_runs_the_real_gcc_remotely() {
    let server = Server::start();
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let bin = tmp.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(BIN, bin.join("gcc")).unwrap();
    let dir = tmp.path().join("src");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("a.c"), "int twice(int x) { return 2 * x; }\n").unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let mut cmd = Command::new("gcc");
    cmd.args(["-O2", "-c", "a.c"])
        .current_dir(&dir)
        .env("PATH", &path);
    with_recast(&mut cmd, &cache, &server.url());
    run_ok(&mut cmd);
    let remote = fs::read(dir.join("a.o")).unwrap();
    run_ok(
        Command::new("gcc")
            .args(["-O2", "-c", "a.c"])
            .current_dir(&dir),
    );
    assert_eq!(remote, fs::read(dir.join("a.o")).unwrap());
    assert_eq!(stats(&cache)["remote_executions"], 1);
}

#[test]
fn cross_compiles_for_aarch64_run_remotely_and_the_program_runs_under_qemu() {
    let (Some(cross), Some(qemu), Some(clang)) = (
        common::peer("aarch64-linux-gnu-gcc"),
        common::peer("qemu-aarch64-static"),
        common::peer("clang"),
    ) else {
        return;
    };
    let sysroot = "/usr/aarch64-linux-gnu";
    let server = Server::start();
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let dir = tmp.path().join("src");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("main.c"),
        "#include <stdio.h>\n#include \"greet.h\"\nint main(void) { greet(\"aarch64\"); return 0; }\n",
    )
    .unwrap();
    fs::write(dir.join("greet.h"), "void greet(const char *who);\n").unwrap();
    fs::write(
        dir.join("greet.c"),
        "#include <stdio.h>\n#include <string.h>\n#include \"greet.h\"\n\
         void greet(const char *who) { printf(\"hello from %s (%zu)\\n\", who, strlen(who)); }\n",
    )
    .unwrap();
    let cross = cross.to_string_lossy().into_owned();
    let clang = clang.to_string_lossy().into_owned();
    let target = format!("--sysroot={sysroot}");
    // (a) Debian's cross gcc for main.c, (b) clang --target for greet.c.
    let compiles: [(&str, Vec<&str>, &str); 2] = [
        (
            &cross,
            vec!["-O2", "-c", "main.c", "-o", "main.o"],
            "main.o",
        ),
        (
            &clang,
            vec![
                "--target=aarch64-linux-gnu",
                &target,
                "-O2",
                "-c",
                "greet.c",
                "-o",
                "greet.o",
            ],
            "greet.o",
        ),
    ];
    for (cc, args, out) in &compiles {
        run_ok(Command::new(cc).args(args).current_dir(&dir));
        let local = fs::read(dir.join(out)).unwrap();
        fs::remove_file(dir.join(out)).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg(cc).args(args).current_dir(&dir);
        with_recast(&mut cmd, &cache, &server.url());
        run_ok(&mut cmd);
        assert!(
            fs::read(dir.join(out)).unwrap() == local,
            "{cc}: {out} differs"
        );
        // An AArch64 object, built on this x86-64 worker.
        assert_eq!(&local[18..20], &183u16.to_le_bytes(), "e_machine of {out}");
    }
    assert_eq!(stats(&cache)["remote_executions"], 2);
    run_ok(
        Command::new(&cross)
            .args(["main.o", "greet.o", "-o", "hello"])
            .current_dir(&dir),
    );
    let out = run_ok(
        Command::new(qemu)
            .args(["-L", sysroot, "./hello"])
            .current_dir(&dir),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from aarch64 (7)\n"
    );
}

/// One flag family: the arguments and the files the compile leaves.
struct FlagCase {
    cc: &'static str,
    args: &'static [&'static str],
    outputs: &'static [&'static str],
}

const FLAG_CASES: [FlagCase; 12] = [
    FlagCase {
        cc: "gcc",
        args: &[
            "-MD", "-MF", "deps/a.d", "-MT", "custom", "-c", "a.c", "-o", "out/a.o",
        ],
        outputs: &["deps/a.d", "out/a.o"],
    },
    FlagCase {
        cc: "gcc",
        args: &["-Wp,-MD,.a.o.d", "-O1", "-c", "a.c", "-o", "a.o"],
        outputs: &[".a.o.d", "a.o"],
    },
    FlagCase {
        cc: "gcc",
        args: &["-MMD", "-MP", "-MQ", "q$x y", "-c", "a.c"],
        outputs: &["a.d", "a.o"],
    },
    FlagCase {
        cc: "gcc",
        args: &[
            "-include",
            "pre.h",
            "-imacros",
            "macros.h",
            "-iquote",
            "quote",
            "-isystem",
            "sys",
            "-idirafter",
            "after",
            "-Wall",
            "-c",
            "b.c",
            "-o",
            "b.o",
        ],
        outputs: &["b.o"],
    },
    FlagCase {
        cc: "gcc",
        args: &["-x", "c", "-c", "weird.src", "-o", "w.o"],
        outputs: &["w.o"],
    },
    FlagCase {
        cc: "gcc",
        args: &["-g", "-gsplit-dwarf", "-c", "a.c", "-o", "s.o"],
        outputs: &["s.o", "s.dwo"],
    },
    FlagCase {
        cc: "gcc",
        args: &[
            "-g",
            "-O2",
            "-ffile-prefix-map=/=/",
            "-c",
            "a.c",
            "-o",
            "g.o",
        ],
        outputs: &["g.o"],
    },
    FlagCase {
        cc: "gcc",
        args: &["-O2", "-S", "a.c", "-o", "a.s"],
        outputs: &["a.s"],
    },
    FlagCase {
        cc: "gcc",
        args: &["-specs=extra.specs", "-c", "spec.c", "-o", "spec.o"],
        outputs: &["spec.o"],
    },
    FlagCase {
        cc: "g++",
        args: &["-std=c++17", "-O2", "-MD", "-c", "v.cc", "-o", "v.o"],
        outputs: &["v.d", "v.o"],
    },
    FlagCase {
        cc: "clang",
        args: &[
            "-g", "-MD", "-MF", "c.d", "-Iquote", "-c", "a.c", "-o", "c.o",
        ],
        outputs: &["c.d", "c.o"],
    },
    // `cc` that is clang, as on FreeBSD and macOS: clang's rules decide
    // the outputs (its `.dwo` for -S is named after the source, in the
    // working directory; gcc writes none).
    FlagCase {
        cc: "cc",
        args: &["-g", "-gsplit-dwarf", "-S", "a.c", "-o", "cs.s"],
        outputs: &["cs.s", "a.dwo"],
    },
];

#[test]
fn each_flag_family_gives_the_files_a_local_compile_gives() {
    let server = Server::start();
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let dir = tmp.path().join("flags");
    for d in ["deps", "out", "quote", "sys", "after"] {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
    let w = |p: &str, s: &str| fs::write(dir.join(p), s).unwrap();
    w(
        "a.c",
        "#include <assert.h>\nint f(int x) { assert(x); return x * 3; }\n",
    );
    w("pre.h", "#define PRE 1\n");
    w("macros.h", "#define MACRO 2\n");
    w("quote/q.h", "#define Q 3\n");
    w("sys/s.h", "#define S 4\n");
    w("after/late.h", "#define LATE 5\n");
    w(
        "b.c",
        "#include \"q.h\"\n#include <s.h>\n#include <late.h>\nint b(void) { return PRE + MACRO + Q + S + LATE; }\n",
    );
    w("weird.src", "int weird(void) { return 7; }\n");
    w("extra.specs", "*cpp:\n+ -DFROM_SPECS=11\n");
    w("spec.c", "int spec(void) { return FROM_SPECS; }\n");
    w(
        "v.cc",
        "#include <vector>\n#include <string>\nstd::size_t n(const std::vector<std::string>& v) { return v.size(); }\n",
    );
    let clang = common::peer("clang");
    if let Some(clang) = &clang {
        fs::create_dir_all(dir.join("clang-bin")).unwrap();
        std::os::unix::fs::symlink(clang, dir.join("clang-bin/cc")).unwrap();
    }
    let mut remote = 0;
    for case in &FLAG_CASES {
        if matches!(case.cc, "clang" | "cc") && clang.is_none() {
            continue;
        }
        let cc = match case.cc {
            "cc" => dir.join("clang-bin/cc"),
            name => std::path::PathBuf::from(name),
        };
        let local = Command::new(&cc)
            .args(case.args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            local.status.success(),
            "{:?}: {}",
            case.args,
            String::from_utf8_lossy(&local.stderr)
        );
        let want: Vec<Vec<u8>> = case
            .outputs
            .iter()
            .map(|o| fs::read(dir.join(o)).unwrap())
            .collect();
        for o in case.outputs {
            fs::remove_file(dir.join(o)).unwrap();
        }
        let mut cmd = Command::new(BIN);
        cmd.arg(&cc).args(case.args).current_dir(&dir);
        with_recast(&mut cmd, &cache, &server.url());
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{:?}: {}",
            case.args,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stderr, local.stderr, "{:?}: stderr", case.args);
        for (o, w) in case.outputs.iter().zip(&want) {
            let got = fs::read(dir.join(o)).unwrap_or_else(|e| panic!("{:?}: {o}: {e}", case.args));
            assert!(&got == w, "{:?}: {o} differs", case.args);
        }
        remote += 1;
        let s = stats(&cache);
        assert_eq!(
            s["remote_executions"], remote,
            "{:?} did not run remotely: {s}",
            case.args
        );
    }
}

#[test]
fn a_header_rewritten_with_the_same_size_and_mtime_is_never_a_stale_hit() {
    let server = Server::start();
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let dir = tmp.path().join("src");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("v.h"), "#define V 1\n").unwrap();
    fs::write(
        dir.join("v.c"),
        "#include \"v.h\"\nint v(void) { return V; }\n",
    )
    .unwrap();
    // Old enough that the scan and hit caches trust its stamp.
    std::thread::sleep(std::time::Duration::from_millis(120));
    let compile = || {
        let mut cmd = Command::new(BIN);
        cmd.args(["gcc", "-O2", "-c", "v.c", "-o", "v.o"])
            .current_dir(&dir);
        with_recast(&mut cmd, &cache, &server.url());
        run_ok(&mut cmd);
        fs::read(dir.join("v.o")).unwrap()
    };
    let first = compile();
    assert_eq!(compile(), first);
    assert_eq!(stats(&cache)["cache_hits"], 1);

    let mtime = fs::metadata(dir.join("v.h")).unwrap().modified().unwrap();
    fs::write(dir.join("v.h"), "#define V 2\n").unwrap();
    fs::File::options()
        .write(true)
        .open(dir.join("v.h"))
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let second = compile();
    assert_ne!(second, first, "a stale object was served");
    run_ok(
        Command::new("gcc")
            .args(["-O2", "-c", "v.c", "-o", "local.o"])
            .current_dir(&dir),
    );
    assert_eq!(second, fs::read(dir.join("local.o")).unwrap());
    let s = stats(&cache);
    assert_eq!(s["remote_executions"], 2, "{s}");
}

/// Regression: `#include "sub/../x.h"` and `-Isub/../inc` climb through
/// directories that hold nothing the compile reads; they must exist
/// remotely too (the same shape as libc's `#[path = "../../x86/…"]`).
#[test]
fn includes_that_climb_through_unread_directories_compile_remotely() {
    let server = Server::start();
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let dir = tmp.path().join("p");
    for d in ["src/empty/deeper", "inc", "more/unused"] {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
    fs::create_dir_all(dir.join(".git")).unwrap();
    fs::write(dir.join("src/x.h"), "#define X 40\n").unwrap();
    fs::write(dir.join("inc/y.h"), "#define Y 2\n").unwrap();
    fs::write(
        dir.join("src/a.c"),
        "#include \"empty/deeper/../../x.h\"\n#include <y.h>\nint answer(void) { return X + Y; }\n",
    )
    .unwrap();
    let args = [
        "-O2",
        "-Imore/unused/../../inc",
        "-c",
        "src/a.c",
        "-o",
        "a.o",
    ];
    run_ok(Command::new("gcc").args(args).current_dir(&dir));
    let local = fs::read(dir.join("a.o")).unwrap();
    fs::remove_file(dir.join("a.o")).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("gcc").args(args).current_dir(&dir);
    with_recast(&mut cmd, &cache, &server.url());
    run_ok(&mut cmd);
    assert_eq!(fs::read(dir.join("a.o")).unwrap(), local);
    let s = stats(&cache);
    assert_eq!(s["remote_executions"], 1, "{s}");
    assert_eq!(s["fallbacks"], 0, "{s}");
    assert_eq!(s["remote_false_failures"], 0, "{s}");
}

/// A compile that fails remotely because recast missed an input (the
/// assembler's `.incbin` reads a file no dependency scan lists) is
/// confirmed here: the build goes on with the local object, the case is
/// counted and logged with its action. With `RECAST_CONFIRM_ERRORS=0` the
/// remote failure is the result.
#[test]
fn a_remote_failure_that_compiles_here_is_a_counted_false_failure() {
    let server = Server::start();
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let dir = tmp.path().join("p");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("blob.bin"), b"0123456789abcdef").unwrap();
    fs::write(
        dir.join("embed.c"),
        "__asm__(\".section .rodata\\n.global blob\\nblob: .incbin \\\"blob.bin\\\"\\n.previous\");\nint size(void) { return 16; }\n",
    )
    .unwrap();
    let args = ["-O2", "-c", "embed.c", "-o", "embed.o"];
    run_ok(Command::new("gcc").args(args).current_dir(&dir));
    let local = fs::read(dir.join("embed.o")).unwrap();
    fs::remove_file(dir.join("embed.o")).unwrap();

    let mut trusted = Command::new(BIN);
    trusted
        .arg("gcc")
        .args(args)
        .current_dir(&dir)
        .env("RECAST_CONFIRM_ERRORS", "0");
    with_recast(&mut trusted, &cache, &server.url());
    let out = trusted.output().unwrap();
    assert!(!out.status.success(), "the remote failure is trusted");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("blob.bin"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.join("embed.o").exists());
    let s = stats(&cache);
    assert_eq!(s["compile_errors"], 1, "{s}");
    assert_eq!(s["remote_false_failures"], 0, "{s}");

    let mut cmd = Command::new(BIN);
    cmd.arg("gcc").args(args).current_dir(&dir);
    with_recast(&mut cmd, &cache, &server.url());
    let out = run_ok(&mut cmd);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read(dir.join("embed.o")).unwrap(), local);
    let s = stats(&cache);
    assert_eq!(s["remote_false_failures"], 1, "{s}");
    assert_eq!(s["compile_errors"], 1, "{s}");
    let log = fs::read_to_string(cache.join("warnings.log")).unwrap();
    assert!(
        log.contains("failed remotely") && log.contains("embed.c"),
        "{log}"
    );
    let digest = log
        .split("action ")
        .nth(1)
        .and_then(|r| r.split(':').next())
        .unwrap_or_default();
    assert_eq!(
        digest.len(),
        64 + 1 + digest.split('/').nth(1).unwrap_or("").len(),
        "{log}"
    );
    let text = run_ok(&mut recast_with_cache(&cache, ["stats"]));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("remote false failures"), "{text}");
}

/// Cache-only mode: a miss compiles here and publishes its result with
/// the warnings it printed, so a hit from another cache directory prints
/// them too and writes the same object; a compile error is never
/// published. zstd built the same way: misses, then hits, the plain bytes.
#[test]
fn cache_only_hits_replay_the_warnings_of_the_compile_that_filled_them() {
    let server = Server::start();
    let tmp = tempdir();
    let dir = tmp.path().join("src");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("warn.c"),
        "int f(int x) { int unused; return x; }\n",
    )
    .unwrap();
    fs::write(dir.join("bad.c"), "int f(void) { return undeclared; }\n").unwrap();
    let compile = |cmd: &mut Command, src: &str| {
        cmd.args(["-Wall", "-O2", "-c", src, "-o", "out.o"])
            .current_dir(&dir);
        let out = cmd.output().unwrap();
        let object = fs::read(dir.join("out.o")).ok();
        let _ = fs::remove_file(dir.join("out.o"));
        (out, object)
    };
    let cache_only = |cache: &Path| {
        let mut cmd = Command::new(BIN);
        cmd.arg("gcc");
        with_recast(&mut cmd, cache, &server.url());
        cmd.env("RECAST_MODE", "cache-only");
        cmd
    };
    let (plain, want) = compile(&mut Command::new("gcc"), "warn.c");
    assert!(plain.status.success());
    let warning = String::from_utf8_lossy(&plain.stderr).into_owned();
    assert!(warning.contains("unused"), "{warning}");

    for (n, cache) in ["a", "b"].iter().enumerate() {
        let cache = tmp.path().join(cache);
        let (out, object) = compile(&mut cache_only(&cache), "warn.c");
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), warning, "run {n}");
        assert_eq!(out.stdout, plain.stdout);
        assert!(object == want, "run {n}: the object differs from gcc's");
        let s = stats(&cache);
        let (misses, hits) = if n == 0 { (1, 0) } else { (0, 1) };
        assert_eq!(reason(&s, "local_reasons", "cache_miss"), misses, "{s}");
        assert_eq!(s["cache_hits"], hits, "{s}");
        assert_eq!(s["remote_executions"], 0, "{s}");
    }

    // An error is the compile's own, and stays a miss.
    let (plain, _) = compile(&mut Command::new("gcc"), "bad.c");
    assert_ne!(plain.status.code(), Some(0));
    let cache = tmp.path().join("c");
    for _ in 0..2 {
        let (out, object) = compile(&mut cache_only(&cache), "bad.c");
        assert_eq!(out.status.code(), plain.status.code());
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&plain.stderr)
        );
        assert!(object.is_none());
    }
    let s = stats(&cache);
    assert_eq!(s["local_reasons"]["cache_miss"], 2, "{s}");
    assert_eq!(s["cache_hits"], 0, "{s}");

    // A real project: one cache fills, another only hits, both with the
    // plain build's objects.
    let plain = zstd_project(&tmp.path().join("plain"));
    make(&plain, "gcc", &tmp.path().join("unused"), &server.url());
    let want = files(&plain, "obj", "o");
    for (n, cache) in ["zd", "ze"].iter().enumerate() {
        let cache = tmp.path().join(cache);
        let proj = zstd_project(&tmp.path().join(format!("p{n}")));
        let mut cmd = Command::new("make");
        cmd.args(["-j2", "--no-print-directory"])
            .arg(format!("CC={}", recast_cc()))
            .current_dir(&proj);
        with_recast(&mut cmd, &cache, &server.url());
        cmd.env("RECAST_MODE", "cache-only");
        run_ok(&mut cmd);
        assert_same("objects", &files(&proj, "obj", "o"), &want);
        let s = stats(&cache);
        let all = zstd_sources(&proj);
        let (misses, hits) = if n == 0 { (all, 0) } else { (0, all) };
        assert_eq!(reason(&s, "local_reasons", "cache_miss"), misses, "{s}");
        assert_eq!(count(&s, "cache_hits"), hits, "{s}");
    }
}

/// Cache-only with CMake's absolute paths from two checkouts: the second
/// is a hit, and its warning names its own source, as gcc there would.
#[test]
fn cache_only_warnings_from_another_checkout_name_this_ones_paths() {
    let server = Server::start();
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    for (n, at) in ["a", "deeper/b"].iter().enumerate() {
        let root = tmp.path().join(at);
        fs::create_dir_all(root.join(".git")).unwrap();
        fs::create_dir_all(root.join("src")).unwrap();
        fs::create_dir_all(root.join("build")).unwrap();
        fs::write(
            root.join("src/w.c"),
            "int f(int x) { int unused; return x; }\n",
        )
        .unwrap();
        let build = root.join("build");
        let compile = |cmd: &mut Command| {
            cmd.args(["-Wall", "-O2", "-c"])
                .arg(root.join("src/w.c"))
                .args(["-o", "w.o"])
                .current_dir(&build);
            let out = cmd.output().unwrap();
            assert!(out.status.success(), "{out:?}");
            (out.stderr, fs::read(build.join("w.o")).unwrap())
        };
        let (plain_err, plain_obj) = compile(&mut Command::new("gcc"));
        let plain_err = String::from_utf8_lossy(&plain_err).into_owned();
        assert!(plain_err.contains(&*root.to_string_lossy()), "{plain_err}");
        fs::remove_file(build.join("w.o")).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("gcc");
        with_recast(&mut cmd, &cache, &server.url());
        cmd.env("RECAST_MODE", "cache-only");
        let (err, obj) = compile(&mut cmd);
        assert_eq!(String::from_utf8_lossy(&err), plain_err, "checkout {at}");
        assert!(obj == plain_obj, "the object in {at} differs");
        let s = stats(&cache);
        assert_eq!(s["cache_hits"], n, "{s}");
        assert_eq!(s["local_reasons"]["cache_miss"], 1, "{s}");
    }
}
