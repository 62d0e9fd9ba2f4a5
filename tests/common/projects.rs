//! The projects the wrapper's tests build, shared by the test crates:
//! zstd's library (the copy `zstd-sys` vendors) with a Makefile and a
//! CMakeLists.txt of ours, the cargo workspace of `tests/fixtures/cargo-ws`
//! with its crates vendored, and what to compare their builds by.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{peers_dir, peers_required, recast_with_cache, run_ok};

/// Copies the tree `from` to `to` (symlinks as symlinks).
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_name() == "target" {
            continue;
        }
        let t = e.file_type().unwrap();
        if t.is_dir() {
            copy_dir(&e.path(), &dest);
        } else if t.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(e.path()).unwrap(), dest).unwrap();
        } else {
            fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// `recast stats --json` of the cache dir `cache`.
pub fn stats(cache: &Path) -> serde_json::Value {
    let out = run_ok(&mut recast_with_cache(cache, ["stats", "--json"]));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A top-level count of `recast stats --json`. A key that is not there
/// fails the test: a renamed field must not read as 0.
pub fn count(stats: &serde_json::Value, key: &str) -> u64 {
    stats
        .get(key)
        .unwrap_or_else(|| panic!("`recast stats --json` has no {key:?}: {stats}"))
        .as_u64()
        .unwrap_or_else(|| panic!("{key:?} is not a count: {stats}"))
}

/// Waits (up to a minute) until the background publisher has sent `n`
/// results queued under `cache` (`results_published_later`), and its
/// outboxes are empty; returns the stats then.
pub fn wait_for_publications(cache: &Path, n: u64) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let s = stats(cache);
        let left: Vec<PathBuf> = fs::read_dir(cache.join("outbox"))
            .into_iter()
            .flatten()
            .flat_map(|d| fs::read_dir(d.unwrap().path()).unwrap())
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        if count(&s, "results_published_later") >= n && left.is_empty() {
            assert_eq!(count(&s, "results_published_later"), n, "{s}");
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the outbox was not sent: {left:?} left; {s}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A count inside one of the stats' maps (`local_reasons`,
/// `fallback_causes`), which list only what happened: a missing entry is
/// 0, a missing map fails the test.
pub fn reason(stats: &serde_json::Value, map: &str, key: &str) -> u64 {
    let m = stats
        .get(map)
        .and_then(|m| m.as_object())
        .unwrap_or_else(|| panic!("`recast stats --json` has no map {map:?}: {stats}"));
    m.get(key).map_or(0, |v| {
        v.as_u64()
            .unwrap_or_else(|| panic!("{map}.{key} is not a count: {stats}"))
    })
}

/// A command whose recast children use `cache` and `url`.
pub fn with_recast(cmd: &mut Command, cache: &Path, url: &str) {
    cmd.env("RECAST_CACHE_DIR", cache)
        .env("RECAST_CONFIG", cache.join("no-such-config.toml"))
        .env("RECAST_REMOTE", url)
        .env_remove("RECAST_MODE")
        .env_remove("RECAST_PROJECT_ROOT")
        .env_remove("RECAST_FRONT")
        .env_remove("RECAST_TOOLCHAIN_UPLOAD");
}

/// zstd's library sources inside the `zstd-sys` crate in cargo's registry.
pub fn zstd_lib() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"));
    let mut found: Vec<PathBuf> = fs::read_dir(home.join("registry/src"))
        .expect("cargo's registry (recast's own build fills it)")
        .filter_map(|e| e.ok())
        .flat_map(|index| fs::read_dir(index.path()).into_iter().flatten())
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("zstd-sys-"))
        })
        .map(|p| p.join("zstd/lib"))
        .filter(|p| p.join("decompress").is_dir())
        .collect();
    found.sort();
    found.pop().expect("zstd-sys in cargo's registry")
}

pub const MAKEFILE: &str = "\
SRC := $(wildcard lib/common/*.c) $(wildcard lib/decompress/*.c)
OBJ := $(patsubst lib/%.c,obj/%.o,$(SRC))
CFLAGS ?= -O2 -Wall
all: $(OBJ)
obj/%.o: lib/%.c
\t@mkdir -p $(dir $@)
\t$(CC) $(CFLAGS) -MMD -MP -Ilib -Ilib/common -c $< -o $@
-include $(OBJ:.o=.d)
";

pub const CMAKELISTS: &str = "\
cmake_minimum_required(VERSION 3.13)
project(zstd_dec C)
file(GLOB SRC ${CMAKE_SOURCE_DIR}/lib/common/*.c ${CMAKE_SOURCE_DIR}/lib/decompress/*.c)
add_library(zstd_dec STATIC ${SRC})
target_include_directories(zstd_dec PRIVATE lib lib/common)
target_compile_options(zstd_dec PRIVATE -O2)
";

/// A project: zstd's common/ and decompress/ with our Makefile and
/// CMakeLists.txt, in a directory with a `.git` (the project root).
pub fn zstd_project(at: &Path) -> PathBuf {
    let lib = zstd_lib();
    let dir = at.to_path_buf();
    fs::create_dir_all(dir.join(".git")).unwrap();
    for sub in ["common", "decompress"] {
        copy_dir(&lib.join(sub), &dir.join("lib").join(sub));
    }
    for h in ["zstd.h", "zstd_errors.h", "zdict.h"] {
        fs::copy(lib.join(h), dir.join("lib").join(h)).unwrap();
    }
    fs::write(dir.join("Makefile"), MAKEFILE).unwrap();
    fs::write(dir.join("CMakeLists.txt"), CMAKELISTS).unwrap();
    dir
}

/// How many C sources the zstd project at `proj` compiles (its Makefile's
/// wildcards), read from the tree rather than assumed.
pub fn zstd_sources(proj: &Path) -> u64 {
    ["lib/common", "lib/decompress"]
        .iter()
        .map(|sub| files(proj, sub, "c").len() as u64)
        .sum()
}

/// The units cargo compiled (not fresh), from the stdout of a build run
/// with `--message-format=json`: one `compiler-artifact` message each, by
/// the files it made.
pub fn compiled_units(cargo_stdout: &[u8]) -> Vec<Vec<String>> {
    String::from_utf8_lossy(cargo_stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["fresh"] == false)
        .map(|m| {
            m["filenames"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        // In the order they were built: parallel jobs reorder them.
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// A `RUSTC_WRAPPER` for a plain build that only counts: it appends a
/// line to `<at>.log` for each rustc invocation cargo or a build script
/// makes, then runs it as it was. Returns the script and its log.
pub fn counting_wrapper(at: &Path) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt as _;
    let log = at.with_extension("log");
    fs::write(
        at,
        format!("#!/bin/sh\necho x >> '{}'\nexec \"$@\"\n", log.display()),
    )
    .unwrap();
    fs::set_permissions(at, fs::Permissions::from_mode(0o755)).unwrap();
    (at.to_path_buf(), log)
}

/// How many lines the file at `path` holds (0 if it is not there).
pub fn lines(path: &Path) -> u64 {
    fs::read_to_string(path).map_or(0, |t| t.lines().count() as u64)
}

/// Every file under `dir/sub` with `ext`, by path relative to `dir`.
pub fn files(dir: &Path, sub: &str, ext: &str) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.join(sub)];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == ext) {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    out
}

pub fn assert_same(what: &str, a: &BTreeMap<String, Vec<u8>>, b: &BTreeMap<String, Vec<u8>>) {
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "{what}: different files"
    );
    for (k, v) in a {
        assert!(
            v == &b[k],
            "{what}: {k} differs ({} vs {} bytes)",
            v.len(),
            b[k].len()
        );
    }
}

/// The vendored crates, or `None` (printed) when the set-up has not run.
pub fn vendor_dir() -> Option<PathBuf> {
    let dir = peers_dir().join("vendor/cargo-ws");
    if dir.join("serde").is_dir() {
        return Some(dir);
    }
    let why = format!(
        "{} is missing; run `bash scripts/peers/install.sh` (it vendors the test workspace's crates)",
        dir.display()
    );
    if peers_required() {
        panic!("{why} (RECAST_REQUIRE_PEERS=1)");
    }
    eprintln!("skipping: {why}");
    None
}

/// The fixture workspace at `at`, building offline from `vendor`, in a
/// git-like project root.
pub fn cargo_ws(at: &Path, vendor: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cargo-ws");
    copy_dir(&src, at);
    fs::create_dir_all(at.join(".git")).unwrap();
    fs::create_dir_all(at.join(".cargo")).unwrap();
    fs::write(
        at.join(".cargo/config.toml"),
        format!(
            "[source.crates-io]\nreplace-with = \"vendored\"\n[source.vendored]\ndirectory = \"{}\"\n",
            vendor.display()
        ),
    )
    .unwrap();
    at.to_path_buf()
}

/// What cargo built: every rlib, rmeta and proc-macro `.so` in
/// `target/debug/deps`, the binaries there, and the build scripts under
/// `target/debug/build`.
pub fn libraries(ws: &Path) -> BTreeMap<String, Vec<u8>> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut out = BTreeMap::new();
    let mut stack = vec![ws.join("target/debug/deps"), ws.join("target/debug/build")];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()) {
            let p = e.path();
            let meta = fs::metadata(&p).unwrap();
            if meta.is_dir() {
                // A build script's OUT_DIR holds what it wrote, not rustc.
                if p.file_name().is_some_and(|n| n != "out") {
                    stack.push(p);
                }
                continue;
            }
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let built = name.ends_with(".rlib")
                || name.ends_with(".rmeta")
                || name.ends_with(".so")
                || (meta.permissions().mode() & 0o111 != 0 && !name.contains('.'));
            if built {
                let rel = p.strip_prefix(ws).unwrap().to_string_lossy().into_owned();
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// The rlibs and rmetas cargo built for `triple` (`target/<triple>/debug/deps`).
pub fn target_libraries(ws: &Path, triple: &str) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(ws.join(format!("target/{triple}/debug/deps")))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "rlib" || x == "rmeta"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                fs::read(&p).unwrap(),
            )
        })
        .collect()
}

/// `recast toolchain upload` of this machine's rustc and its linker (what
/// a Linux machine would publish for the workers) to `url`.
pub fn publish_rustc_and_linker(cache: &Path, url: &str) {
    for compiler in ["rustc", "cc"] {
        run_ok(&mut recast_with_cache(
            cache,
            [
                "toolchain",
                "upload",
                "--compiler",
                compiler,
                "--linking",
                "--remote",
                url,
            ],
        ));
    }
}

/// Bytes in the files under `dir`, recursively.
pub fn du(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map(|e| e.unwrap())
        .map(|e| {
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                du(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}
