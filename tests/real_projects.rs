//! Real code nobody here tuned for, through recast, against the real
//! embedded server:
//!
//! - recast's own workspace (tokio, tonic, prost, libc with its `..`
//!   module paths, zstd-sys's C built by a build script, proc-macros)
//!   with `RUSTC_WRAPPER=recast cargo build --release`: the binary is the
//!   one a plain build writes in the same directory, and after `cargo
//!   clean` every unit that ran remotely is a hit;
//! - zstd's own CMake build (the copy zstd-sys ships, `build/cmake`,
//!   sources named by absolute paths, objects named after them, `-MD -MF`
//!   depfiles) through `CMAKE_C_COMPILER_LAUNCHER=recast` from two
//!   checkouts at different depths: the second checkout is all hits, and
//!   every object and depfile is what CMake alone writes there.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::projects::{copy_dir, count, stats};
use common::{BIN, Server, recast_with_cache, run_ok, tempdir};

/// Every file under `dir` whose name ends with one of `suffixes`, by path
/// relative to `dir`.
fn files(dir: &Path, suffixes: &[&str]) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if suffixes.iter().any(|s| p.to_string_lossy().ends_with(s)) {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn assert_same(what: &str, a: &BTreeMap<String, Vec<u8>>, b: &BTreeMap<String, Vec<u8>>) {
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "{what}: different files"
    );
    for (k, v) in a {
        assert!(v == &b[k], "{what}: {k} differs");
    }
}

fn cargo_registry() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"));
    home.join("registry/src")
}

/// zstd as zstd-sys ships it with its CMake build (`zstd/build/cmake`):
/// the newest such copy in cargo's registry (recast's own build puts one
/// there).
fn zstd_with_cmake() -> PathBuf {
    let mut found: Vec<PathBuf> = fs::read_dir(cargo_registry())
        .expect("cargo's registry (recast's own build fills it)")
        .filter_map(|e| e.ok())
        .flat_map(|index| fs::read_dir(index.path()).into_iter().flatten())
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("zstd"))
        .filter(|p| p.join("build/cmake/CMakeLists.txt").is_file())
        .collect();
    found.sort();
    found
        .pop()
        .expect("zstd-sys with zstd/build/cmake in cargo's registry")
}

/// One CMake build of zstd's static library in `root/build/out`, with
/// recast as the launcher or without: its objects and depfiles.
fn cmake_zstd(root: &Path, launcher: bool, cache: &Path, url: &str) -> BTreeMap<String, Vec<u8>> {
    let out = root.join("build/out");
    let _ = fs::remove_dir_all(&out);
    let env = |cmd: &mut Command| {
        cmd.current_dir(root)
            .env("RECAST_CACHE_DIR", cache)
            .env("RECAST_CONFIG", cache.join("no-such-config.toml"))
            .env("RECAST_REMOTE", url)
            .env_remove("RECAST_MODE")
            .env_remove("RECAST_PROJECT_ROOT")
            .env_remove("CFLAGS");
    };
    let mut cfg = Command::new("cmake");
    cfg.args([
        "-S",
        "build/cmake",
        "-B",
        "build/out",
        "-DCMAKE_BUILD_TYPE=Release",
        "-DCMAKE_C_COMPILER=gcc",
        "-DZSTD_BUILD_PROGRAMS=OFF",
        "-DZSTD_BUILD_TESTS=OFF",
        "-DZSTD_BUILD_SHARED=OFF",
    ]);
    if launcher {
        cfg.arg(format!("-DCMAKE_C_COMPILER_LAUNCHER={BIN}"));
    }
    env(&mut cfg);
    run_ok(&mut cfg);
    let mut build = Command::new("cmake");
    build.args(["--build", "build/out", "-j2"]);
    env(&mut build);
    run_ok(&mut build);
    files(&out, &[".c.o", ".c.o.d"])
}

#[test]
fn zstds_cmake_build_from_two_checkouts_shares_every_hit_and_every_byte() {
    if common::peer("cmake").is_none() {
        return;
    }
    let server = Server::start();
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let upstream = zstd_with_cmake();
    let checkout = |at: &Path| {
        copy_dir(&upstream, at);
        fs::create_dir_all(at.join(".git")).unwrap();
        at.to_path_buf()
    };
    let a = checkout(&tmp.path().join("a/zstd"));
    let b = checkout(&tmp.path().join("work/deeper/still/zstd"));
    let url = server.url();

    let plain_a = cmake_zstd(&a, false, &cache, &url);
    let objects = plain_a.keys().filter(|k| k.ends_with(".o")).count() as u64;
    assert!(objects >= 30, "a few dozen translation units: {objects}");
    let remote_a = cmake_zstd(&a, true, &cache, &url);
    assert_same("checkout a", &remote_a, &plain_a);
    let s = stats(&cache);
    assert_eq!(count(&s, "remote_executions"), objects, "{s}");
    assert_eq!(count(&s, "fallbacks"), 0, "{s}");
    assert_eq!(count(&s, "remote_false_failures"), 0, "{s}");

    let plain_b = cmake_zstd(&b, false, &cache, &url);
    let remote_b = cmake_zstd(&b, true, &cache, &url);
    assert_same("checkout b", &remote_b, &plain_b);
    let s = stats(&cache);
    assert_eq!(count(&s, "cache_hits"), objects, "all hits: {s}");
    assert_eq!(count(&s, "remote_executions"), objects, "{s}");
    assert_eq!(count(&s, "fallbacks"), 0, "{s}");
    assert_eq!(count(&s, "remote_false_failures"), 0, "{s}");
}

/// recast's own workspace, without its tests and benchmarks, in a
/// project root of its own.
fn recast_workspace(at: &Path) -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    fs::create_dir_all(at).unwrap();
    for f in ["Cargo.toml", "Cargo.lock", "build.rs"] {
        fs::copy(here.join(f), at.join(f)).unwrap();
    }
    for d in ["src", "proto", "platforms"] {
        copy_dir(&here.join(d), &at.join(d));
    }
    fs::create_dir_all(at.join(".git")).unwrap();
    at.to_path_buf()
}

/// `cargo build --release` of `ws`, through recast (the embedded server of
/// `cache`, executing every miss in its sandbox: `RECAST_MODE=remote`,
/// since this is the crate graph's remote test; the default, compiling
/// misses here, is `wrap_rustc`'s and `embedded.rs`'s) or not; the binary
/// it wrote, and every crate's rlib and rmeta
/// (a dependency that expands an upstream crate's macro records what
/// rustc found of that crate's sources). Through recast, set up as the
/// README tells users, in one step (`recast setup cargo`): the C that
/// build scripts compile with the `cc` crate (zstd-sys, ring) goes
/// through it too.
fn cargo_release(ws: &Path, cache: Option<&Path>) -> BTreeMap<String, Vec<u8>> {
    let mut cmd = Command::new("cargo");
    cmd.args(["build", "--release", "--offline", "--locked", "--quiet"])
        .current_dir(ws);
    // Cargo's default release settings, not this project's whole-program
    // LTO: that would add minutes to each build here and test nothing more
    // of recast's (every rustc still runs through it).
    cmd.env("CARGO_PROFILE_RELEASE_LTO", "false")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16");
    for v in [
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_INCREMENTAL",
        "CC",
        "CXX",
        "CC_KNOWN_WRAPPER_CUSTOM",
    ] {
        cmd.env_remove(v);
    }
    if let Some(cache) = cache {
        let setup = run_ok(Command::new(BIN).args(["setup", "cargo"]).arg(ws));
        let said = String::from_utf8_lossy(&setup.stdout);
        assert!(said.contains(".cargo/config.toml"), "{said}");
        cmd.env("RECAST_CACHE_DIR", cache)
            .env("RECAST_CONFIG", cache.join("no-such-config.toml"))
            .env_remove("RECAST_REMOTE")
            .env("RECAST_MODE", "remote")
            .env_remove("RECAST_PROJECT_ROOT");
    }
    run_ok(&mut cmd);
    let mut built = files(&ws.join("target/release/deps"), &[".rlib", ".rmeta"]);
    built.insert(
        "recast".into(),
        fs::read(ws.join("target/release/recast")).unwrap(),
    );
    built
}

fn cargo_clean(ws: &Path) {
    run_ok(
        Command::new("cargo")
            .args(["clean", "--release", "--offline", "--quiet"])
            .current_dir(ws)
            .env_remove("CARGO_TARGET_DIR"),
    );
}

#[test]
fn recast_builds_itself_through_recast_byte_identical_then_all_hits() {
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let ws = recast_workspace(&tmp.path().join("recast"));
    let t = std::time::Instant::now();
    let plain = cargo_release(&ws, None);
    let plain_secs = t.elapsed().as_secs_f64();
    cargo_clean(&ws);

    let t = std::time::Instant::now();
    let wrapped = cargo_release(&ws, Some(&cache));
    let cold_secs = t.elapsed().as_secs_f64();
    assert_same("the binary and every crate", &wrapped, &plain);
    let cold = stats(&cache);
    let remote = count(&cold, "remote_executions");
    // Build scripts probe the compiler with crates that may not compile
    // (autocfg, rustversion): those fail remotely and here alike.
    let probes = count(&cold, "compile_errors");
    assert!(remote > 100, "the crate graph ran remotely: {cold}");
    assert!(probes < 20, "{cold}");
    assert_eq!(count(&cold, "fallbacks"), 0, "{cold}");
    assert_eq!(count(&cold, "remote_false_failures"), 0, "{cold}");
    let objects = files(&ws.join("target/release/build"), &[".o"]).len() as u64;
    assert!(
        objects > 20,
        "zstd-sys and ring compile C: {objects} objects"
    );
    let c = &cold["by_family"]["gcc"];
    assert!(
        c["remote_executions"].as_u64().unwrap() >= objects,
        "every build-script C object ran remotely: {objects} objects, {c}"
    );
    assert_eq!(c["fallbacks"], 0, "{c}");

    cargo_clean(&ws);
    let t = std::time::Instant::now();
    let again = cargo_release(&ws, Some(&cache));
    let warm_secs = t.elapsed().as_secs_f64();
    assert_same("the binary and every crate, from the cache", &again, &plain);
    let warm = stats(&cache);
    assert_eq!(
        count(&warm, "cache_hits") - count(&cold, "cache_hits"),
        remote - probes,
        "every unit that ran remotely hits: {warm}"
    );
    assert_eq!(
        count(&warm, "remote_executions") - remote,
        probes,
        "only the failing probes run again: {warm}"
    );
    assert_eq!(count(&warm, "compile_errors"), 2 * probes, "{warm}");
    assert_eq!(count(&warm, "fallbacks"), 0, "{warm}");
    assert_eq!(count(&warm, "remote_false_failures"), 0, "{warm}");
    let c_hits = |s: &serde_json::Value| count(&s["by_family"]["gcc"], "cache_hits");
    assert!(
        c_hits(&warm) - c_hits(&cold) >= objects,
        "the C hits too: {warm}"
    );
    eprintln!(
        "recast through recast: plain {plain_secs:.1} s, cold {cold_secs:.1} s ({:.2}x), warm {warm_secs:.1} s ({:.2}x of cold); {remote} remote ({probes} failing probes), {} hits, {} local; {objects} C objects from build scripts, by family {}",
        cold_secs / plain_secs,
        warm_secs / cold_secs,
        count(&warm, "cache_hits"),
        count(&warm, "local_runs"),
        warm["by_family"],
    );
    let _ = recast_with_cache(&cache, ["stop-server"]).output();
}
