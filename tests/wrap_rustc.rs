//! The rustc wrapper end to end: `RUSTC_WRAPPER=recast cargo build` of a
//! real workspace (tests/fixtures/cargo-ws: serde with serde_derive,
//! serde_json, itoa, memchr from crates.io, vendored by
//! `scripts/peers/vendor.sh`; build scripts; `env!`; a binary) against a
//! real `recast serve`: libraries, proc-macros, build scripts and the
//! binary (linked on the worker) byte-identical to a plain cargo build,
//! every one of them a cache hit after `cargo clean`, a server that dies
//! mid-build leaves a working build with the same bytes, and the program
//! runs.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use common::projects::{
    cargo_ws, count, libraries, publish_rustc_and_linker, reason, stats, target_libraries,
    vendor_dir, wait_for_publications,
};
use common::{BIN, Server, free_port, recast_with_cache, run_ok, tempdir};

fn cargo(ws: &Path, args: &[&str], wrap: Option<(&Path, &str)>) -> std::process::Output {
    cargo_env(ws, args, wrap, &[])
}

fn cargo_env(
    ws: &Path,
    args: &[&str],
    wrap: Option<(&Path, &str)>,
    env: &[(&str, &str)],
) -> std::process::Output {
    let mut cmd = Command::new("cargo");
    cmd.args(args)
        .arg("--offline")
        .current_dir(ws)
        .env("CARGO_INCREMENTAL", "0")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS");
    // An empty URL: nothing configured, the embedded server.
    if let Some((cache, url)) = wrap {
        cmd.env("RUSTC_WRAPPER", BIN)
            .env("RECAST_CACHE_DIR", cache)
            .env("RECAST_CONFIG", cache.join("no-such-config.toml"))
            .env("RECAST_REMOTE", url)
            .env_remove("RECAST_MODE")
            .env_remove("RECAST_PROJECT_ROOT");
        if url.is_empty() {
            cmd.env_remove("RECAST_REMOTE");
        }
    }
    cmd.envs(env.iter().copied());
    run_ok(&mut cmd)
}

fn zero(cache: &Path) {
    run_ok(&mut recast_with_cache(cache, ["stats", "--zero"]));
}

fn assert_same(a: &BTreeMap<String, Vec<u8>>, b: &BTreeMap<String, Vec<u8>>) {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, v) in a {
        assert!(
            v == &b[k],
            "{k} differs ({} vs {} bytes)",
            v.len(),
            b[k].len()
        );
    }
}

fn app_output(ws: &Path) -> String {
    let out = run_ok(&mut Command::new(ws.join("target/debug/app")));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn cargo_builds_the_workspace_remotely_byte_identical_and_rebuilds_from_the_cache() {
    let Some(vendor) = vendor_dir() else { return };
    let server = Server::start();
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let ws = cargo_ws(&tmp.path().join("ws"), &vendor);
    let wrap = Some((cache.as_path(), server.url()));
    let wrap = wrap.as_ref().map(|(c, u)| (*c, u.as_str()));

    cargo(&ws, &["build"], None);
    let plain = libraries(&ws);
    assert!(plain.len() >= 30, "{:?}", plain.keys());
    assert!(
        plain.keys().any(|k| k.ends_with(".so")),
        "a proc-macro: {:?}",
        plain.keys()
    );
    assert!(
        plain.keys().any(|k| k.contains("build-script-build")),
        "{:?}",
        plain.keys()
    );
    let want = app_output(&ws);
    assert!(
        want.contains("hexagon-6") && want.contains("built by build.rs v0.3.1"),
        "{want}"
    );

    cargo(&ws, &["clean"], None);
    cargo(&ws, &["build"], wrap);
    assert_same(&libraries(&ws), &plain);
    assert_eq!(app_output(&ws), want);
    let first = stats(&cache);
    let remote = first["remote_executions"].as_u64().unwrap();
    // Every library, build script, proc-macro and the binary: only cargo's
    // and build scripts' probes (`rustc -vV`, `rustc -`) stay here.
    assert!(remote >= 20, "{first}");
    assert_eq!(first["fallbacks"], 0, "{first}");
    assert!(first["local_reasons"].get("links").is_none(), "{first}");

    // After `cargo clean`, every library that compiled remotely is a hit.
    // (proc-macro2's build script probes rustc with a compile that fails
    // on stable: failures are not cached, so it runs again.)
    zero(&cache);
    cargo(&ws, &["clean"], None);
    cargo(&ws, &["build"], wrap);
    assert_same(&libraries(&ws), &plain);
    let again = stats(&cache);
    let errors = first["compile_errors"].as_u64().unwrap();
    assert_eq!(
        again["cache_hits"].as_u64().unwrap(),
        remote - errors,
        "{again}"
    );
    assert_eq!(
        again["remote_executions"].as_u64().unwrap(),
        errors,
        "{again}"
    );
    assert_eq!(app_output(&ws), want);

    // Across a network (results published in the background), a crate
    // that links (build scripts, the proc-macro, the binary) compiles here
    // on a miss, and its result goes up meanwhile: the same bytes, and a
    // machine with an empty tier then hits every one.
    let far_server = Server::start();
    let far = tmp.path().join("far");
    let later = [("RECAST_PUBLISH", "background")];
    cargo(&ws, &["clean"], None);
    cargo_env(&ws, &["build"], Some((&far, &far_server.url())), &later);
    assert_same(&libraries(&ws), &plain);
    assert_eq!(app_output(&ws), want);
    let s = stats(&far);
    let linked = reason(&s, "local_reasons", "links_here");
    // Every build script, serde_derive and the binary: 9 in this workspace.
    assert_eq!(linked, 9, "{s}");
    assert_eq!(count(&s, "remote_executions") + linked, remote, "{s}");
    assert_eq!(count(&s, "results_queued"), linked, "{s}");
    assert_eq!(count(&s, "fallbacks"), 0, "{s}");
    wait_for_publications(&far, linked);
    let elsewhere = tmp.path().join("far-elsewhere");
    cargo(&ws, &["clean"], None);
    cargo_env(
        &ws,
        &["build"],
        Some((&elsewhere, &far_server.url())),
        &later,
    );
    assert_same(&libraries(&ws), &plain);
    let s = stats(&elsewhere);
    assert_eq!(count(&s, "cache_hits"), remote - errors, "{s}");
    assert_eq!(reason(&s, "local_reasons", "links_here"), 0, "{s}");
    assert_eq!(app_output(&ws), want);
}

#[test]
fn a_dead_server_leaves_a_working_build_with_the_same_bytes() {
    let Some(vendor) = vendor_dir() else { return };
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let ws = cargo_ws(&tmp.path().join("ws"), &vendor);
    cargo(&ws, &["build"], None);
    let plain = libraries(&ws);
    cargo(&ws, &["clean"], None);
    let dead = format!("grpc://127.0.0.1:{}", free_port());
    cargo(&ws, &["build"], Some((&cache, &dead)));
    assert_same(&libraries(&ws), &plain);
    let s = stats(&cache);
    assert!(
        s["fallback_causes"]["unreachable"].as_u64().unwrap() >= 10,
        "{s}"
    );
    assert_eq!(s["remote_executions"], 0, "{s}");
}

#[test]
fn a_server_killed_mid_build_still_gives_the_same_libraries() {
    let Some(vendor) = vendor_dir() else { return };
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let ws = cargo_ws(&tmp.path().join("ws"), &vendor);
    cargo(&ws, &["build"], None);
    let plain = libraries(&ws);
    cargo(&ws, &["clean"], None);
    let mut server = Server::start();
    let url = server.url();
    let mut cmd = Command::new("cargo");
    cmd.args(["build", "--offline"])
        .current_dir(&ws)
        .env("CARGO_INCREMENTAL", "0")
        .env("RUSTC_WRAPPER", BIN)
        .env("RECAST_CACHE_DIR", &cache)
        .env("RECAST_CONFIG", cache.join("no-such-config.toml"))
        .env("RECAST_REMOTE", &url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut build = cmd.spawn().unwrap();
    // Kill the server once a few libraries came back from it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while count(&stats(&cache), "remote_executions") < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "no remote execution started"
        );
        if build.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    server.stop();
    assert!(
        build.wait().unwrap().success(),
        "the build failed after the server died"
    );
    assert_same(&libraries(&ws), &plain);
    let s = stats(&cache);
    assert!(s["remote_executions"].as_u64().unwrap() >= 3, "{s}");
    assert!(s["fallbacks"].as_u64().unwrap() >= 1, "{s}");
}

const NO_CORE: &str = "#![feature(no_core, lang_items)]\n#![no_core]\n#![allow(internal_features)]\n\
#[lang = \"pointee_sized\"]\npub trait PointeeSized {}\n\
#[lang = \"meta_sized\"]\npub trait MetaSized: PointeeSized {}\n\
#[lang = \"sized\"]\npub trait Sized: MetaSized {}\n\
#[unsafe(no_mangle)]\npub extern \"C\" fn answer() -> u32 { 42 }\n";

#[test]
fn a_no_core_crate_for_aarch64_compiles_remotely_to_an_aarch64_object() {
    // Only the host's standard library is installed here, so the non-host
    // triple takes a #![no_core] crate, which needs nightly.
    let Some(nightly) = Command::new("rustup")
        .args(["which", "--toolchain", "nightly", "rustc"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8(o.stdout).unwrap().trim().to_string())
    else {
        eprintln!("skipping: no nightly toolchain installed (rustup toolchain list)");
        return;
    };
    let server = Server::start();
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let dir = tmp.path().join("nc");
    fs::create_dir_all(dir.join("out")).unwrap();
    fs::write(dir.join("nc.rs"), NO_CORE).unwrap();
    let args = [
        "--target",
        "aarch64-unknown-linux-gnu",
        "--crate-type",
        "lib",
        "--crate-name",
        "nc",
        "--edition",
        "2021",
        "-O",
        "--emit=obj,metadata",
        "--out-dir",
        "out",
        "nc.rs",
    ];
    run_ok(Command::new(&nightly).args(args).current_dir(&dir));
    let local = fs::read(dir.join("out/nc.o")).unwrap();
    fs::remove_dir_all(dir.join("out")).unwrap();
    fs::create_dir_all(dir.join("out")).unwrap();
    let mut cmd = recast_with_cache(&cache, [nightly.as_str()]);
    cmd.args(args)
        .current_dir(&dir)
        .env("RECAST_REMOTE", server.url());
    run_ok(&mut cmd);
    let remote = fs::read(dir.join("out/nc.o")).unwrap();
    assert!(
        remote == local,
        "the remote object differs from the local one"
    );
    // ELF e_machine 183: AArch64, built on this x86-64 worker.
    assert_eq!(&remote[18..20], &183u16.to_le_bytes());
    assert_eq!(stats(&cache)["remote_executions"], 1);
}

#[test]
fn a_foreign_host_builds_with_the_registrys_rustc_and_twins_of_its_proc_macros() {
    // This machine declares itself an arm64 Mac; the workers are x86-64
    // Linux. So the local rustc cannot run there: the registry's must, host
    // units (build scripts, proc-macros and their crates) are built here
    // and again as twins for the workers, and the workers' compiles load
    // serde_derive's twin.
    let Some(vendor) = vendor_dir() else { return };
    let triple = "x86_64-unknown-linux-gnu";
    let server = Server::start();
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let ws = cargo_ws(&tmp.path().join("ws"), &vendor);

    // Without the twin toolchains in the registry, everything runs here.
    let foreign = |cmd: &mut Command| {
        cmd.env("RECAST_HOST_PLATFORM", "aarch64-apple-darwin")
            .env("RECAST_WORKER_PLATFORM", triple);
    };
    let build = |ws: &Path| {
        let mut cmd = Command::new("cargo");
        cmd.args(["build", "--offline", "--target", triple])
            .current_dir(ws)
            .env("CARGO_INCREMENTAL", "0")
            .env("RUSTC_WRAPPER", BIN)
            .env("RECAST_CACHE_DIR", &cache)
            .env("RECAST_CONFIG", cache.join("no-such-config.toml"))
            .env("RECAST_REMOTE", server.url())
            .env_remove("RECAST_MODE");
        foreign(&mut cmd);
        run_ok(&mut cmd);
    };
    build(&ws);
    let s = stats(&cache);
    assert_eq!(s["remote_executions"], 0, "{s}");
    assert!(
        s["local_reasons"]["no_toolchain_for_workers"]
            .as_u64()
            .unwrap()
            >= 5,
        "{s}"
    );

    // Publish the workers' rustc and linker (here: this machine's, which
    // is what a Linux machine would upload).
    publish_rustc_and_linker(&cache, &server.url());
    zero(&cache);
    cargo(&ws, &["clean"], None);
    build(&ws);
    let s = stats(&cache);
    assert!(s["registry_toolchains"].as_u64().unwrap() >= 5, "{s}");
    // proc-macro2, quote, syn, unicode-ident, serde_derive (and serde's
    // own host copy when cargo builds one).
    assert!(s["twin_builds"].as_u64().unwrap() >= 4, "{s}");
    assert!(s["twin_swaps"].as_u64().unwrap() >= 2, "{s}");
    assert_eq!(s["fallbacks"], 0, "{s}");

    let out = run_ok(&mut Command::new(
        ws.join(format!("target/{triple}/debug/app")),
    ));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("hexagon-6") && text.contains("built by build.rs"),
        "{text}"
    );

    // The workers' libraries are the bytes a plain build for the target
    // writes.
    let remote = target_libraries(&ws, triple);
    cargo(&ws, &["clean"], None);
    cargo(&ws, &["build", "--target", triple], None);
    assert_same(&remote, &target_libraries(&ws, triple));
}

#[test]
fn trimmed_paths_let_two_checkouts_share_hits_and_the_same_bytes() {
    let Some(vendor) = vendor_dir() else { return };
    let server = Server::start();
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let a = cargo_ws(&tmp.path().join("a/ws"), &vendor);
    let b = cargo_ws(&tmp.path().join("b/deeper/copy"), &vendor);
    let build = |ws: &Path, url: &str| {
        let mut cmd = Command::new("cargo");
        cmd.args(["build", "--offline"])
            .current_dir(ws)
            .env("CARGO_INCREMENTAL", "0")
            .env("RUSTC_WRAPPER", BIN)
            .env("RECAST_TRIM_PATHS", "1")
            .env("RECAST_CACHE_DIR", &cache)
            .env("RECAST_CONFIG", cache.join("no-such-config.toml"))
            .env("RECAST_REMOTE", url)
            .env_remove("RECAST_MODE");
        run_ok(&mut cmd);
    };
    build(&a, &server.url());
    let first = stats(&cache);
    let from_a = libraries(&a);
    let rlib = from_a
        .iter()
        .find(|(k, _)| k.contains("libshapes-") && k.ends_with(".rlib"));
    let (_, rlib) = rlib.expect("shapes' rlib");
    let needle = a.to_string_lossy().into_owned().into_bytes();
    assert!(
        !rlib.windows(needle.len()).any(|w| w == needle.as_slice()),
        "the checkout's path is in shapes' rlib"
    );

    zero(&cache);
    build(&b, &server.url());
    let s = stats(&cache);
    let errors = first["compile_errors"].as_u64().unwrap();
    let remote = first["remote_executions"].as_u64().unwrap();
    assert_eq!(s["cache_hits"].as_u64().unwrap(), remote - errors, "{s}");
    assert_eq!(s["remote_executions"].as_u64().unwrap(), errors, "{s}");
    let from_b = libraries(&b);
    assert_same(&from_a, &from_b);
    // cargo reads the dep-info: it names this checkout's files.
    let dep = fs::read_to_string(
        fs::read_dir(b.join("target/debug/deps"))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| {
                p.file_name().is_some_and(|n| {
                    n.to_string_lossy().starts_with("shapes-")
                        && n.to_string_lossy().ends_with(".d")
                })
            })
            .unwrap(),
    )
    .unwrap();
    assert!(
        dep.contains(&*b.to_string_lossy()) && !dep.contains("/recast/project"),
        "{dep}"
    );

    // Compiled here (the server gone), a checkout gets the same bytes too.
    cargo(&b, &["clean"], None);
    let dead = format!("grpc://127.0.0.1:{}", free_port());
    build(&b, &dead);
    assert_same(&libraries(&b), &from_b);
    assert_eq!(app_output(&b), app_output(&a));
}

/// Nothing configured (the embedded server, `RECAST_MODE=auto`): a first
/// build compiles every crate here at once, its reads listed by the
/// dep-info cargo asks for (no `--emit=dep-info` pass first), byte-identical
/// to plain cargo, and stores the results; later builds after `cargo
/// clean` are hits. A crate whose build script wrote its source just before
/// it may not be stored the first time; by the third build every compile
/// but the one that fails (proc-macro2's probe) is a hit.
#[test]
fn the_embedded_default_compiles_a_first_build_here_and_hits_after() {
    let Some(vendor) = vendor_dir() else { return };
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let ws = cargo_ws(&tmp.path().join("ws"), &vendor);
    cargo(&ws, &["build"], None);
    let plain = libraries(&ws);
    let build = || {
        cargo(&ws, &["clean"], None);
        cargo(&ws, &["build"], Some((&cache, "")));
        assert_same(&libraries(&ws), &plain);
        let s = stats(&cache);
        zero(&cache);
        s
    };
    let first = build();
    let misses = reason(&first, "local_reasons", "cache_miss");
    assert!(misses >= 20, "{first}");
    assert_eq!(count(&first, "compiled_first"), misses, "{first}");
    assert_eq!(count(&first, "remote_executions"), 0, "{first}");
    assert_eq!(count(&first, "fallbacks"), 0, "{first}");
    // At most the three crates whose build scripts write sources, and the
    // probe, are not hits yet.
    let second = build();
    assert!(count(&second, "cache_hits") >= misses - 4, "{second}");
    let third = build();
    let failed = reason(&third, "local_reasons", "cache_miss");
    assert!(failed <= 1, "only the probe that fails: {third}");
    assert_eq!(count(&third, "cache_hits"), misses - failed, "{third}");
    // A failed compile stores nothing, so it runs first again.
    assert_eq!(count(&third, "compiled_first"), failed, "{third}");
    run_ok(&mut recast_with_cache(&cache, ["stop-server"]));
}
