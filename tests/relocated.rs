//! Relocated actions: compiles on workers that run actions in a plain
//! directory, from the bundle alone. The probe picks the layout: rooted on
//! `recast serve` (its chroot sandbox), relocated on `recast serve
//! --sandbox none` and on NativeLink 1.6.6, whose local worker runs each
//! action in `<work>/<operation>/work` with the host visible — and, with
//! the bubblewrap entrypoint, in a namespace that holds only the action's
//! directory, `/proc`, `/dev` and an empty `/tmp`, so nothing of the host
//! can be used.
//!
//! Each compile — C with `-g` (gcc, clang, `zig cc` for glibc and musl,
//! debug and optimized, and for this machine with no `-target`), C++ (g++,
//! clang++, `zig c++` with libc++, named and native target), a
//! Rust rlib and a linked Rust binary (remapped, as rustc must be to run
//! relocated) — gives the bytes of a local compile, and again is a hit;
//! zstd builds with make and CMake, remote and byte-identical. rustc
//! without remaps (cargo as it ships) cannot run from a plain directory:
//! it runs rooted in a user namespace that bubblewrap, shipped with the
//! action, makes on the worker — the cargo workspace with its build
//! scripts and proc-macros, every unit remote and byte-identical.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::nativelink::NativeLink;
use common::projects::{
    assert_same, cargo_ws, compiled_units, count, counting_wrapper, files, libraries, lines,
    publish_rustc_and_linker, reason, stats, target_libraries, vendor_dir, with_recast,
    zstd_project, zstd_sources,
};
use common::{BIN, Server, run_ok, tempdir};

/// Whether [`cases`] takes zig for this machine.
#[derive(Clone, Copy)]
enum Native {
    With,
    Without,
}

/// A small project: C, C++ and Rust sources with a header of their own.
fn mixed_project(at: &Path) -> PathBuf {
    fs::create_dir_all(at.join(".git")).unwrap();
    fs::create_dir_all(at.join("src")).unwrap();
    fs::create_dir_all(at.join("build")).unwrap();
    fs::write(
        at.join("src/shape.h"),
        "#define SIDES 6\nstruct shape { int n; };\n",
    )
    .unwrap();
    fs::write(
        at.join("src/a.c"),
        "#include <stdio.h>\n#include \"shape.h\"\nint show(struct shape s) { return printf(\"%d %d\\n\", s.n, SIDES); }\n",
    )
    .unwrap();
    fs::write(
        at.join("src/v.cc"),
        "#include <vector>\n#include <string>\n#include \"shape.h\"\nstd::string names(int n) { std::vector<std::string> v(n, \"x\"); std::string s; for (auto &x : v) s += x; return s + std::to_string(SIDES); }\n",
    )
    .unwrap();
    fs::write(
        at.join("src/lib.rs"),
        "pub fn area(x: u32) -> u32 { x * 6 }\npub fn here() -> &'static str { file!() }\n",
    )
    .unwrap();
    fs::write(
        at.join("src/main.rs"),
        "fn main() { println!(\"{} {}\", 6 * 7, file!()); }\n",
    )
    .unwrap();
    at.to_path_buf()
}

/// One compile of the matrix: where it runs, its argv, what it writes.
struct Case {
    name: &'static str,
    dir: PathBuf,
    argv: Vec<String>,
    outputs: Vec<PathBuf>,
}

/// The compiles every relocated server must run remotely; with `native`,
/// also zig for this machine (no `-target`), which runs namespaced.
fn cases(p: &Path, native: Native) -> Vec<Case> {
    let build = p.join("build");
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let remap = format!("--remap-path-prefix={}=.", p.display());
    let mut out = vec![
        Case {
            name: "gcc -g",
            dir: build.clone(),
            argv: s(&["gcc", "-O2", "-g", "-c", "../src/a.c", "-o", "a.o"]),
            outputs: vec![build.join("a.o")],
        },
        Case {
            name: "g++ -g",
            dir: build.clone(),
            argv: s(&["g++", "-O2", "-g", "-c", "../src/v.cc", "-o", "v.o"]),
            outputs: vec![build.join("v.o")],
        },
        Case {
            name: "rustc rlib",
            dir: p.to_path_buf(),
            argv: s(&[
                "rustc",
                "--crate-type",
                "lib",
                "--crate-name",
                "area",
                "-C",
                "opt-level=2",
                "-g",
                "src/lib.rs",
                "--out-dir",
                "out/lib",
                &remap,
            ]),
            outputs: vec![p.join("out/lib/libarea.rlib")],
        },
        Case {
            name: "rustc bin",
            dir: p.to_path_buf(),
            argv: s(&[
                "rustc",
                "--crate-type",
                "bin",
                "--crate-name",
                "hello",
                "-C",
                "opt-level=2",
                "src/main.rs",
                "--out-dir",
                "out/bin",
                &remap,
            ]),
            outputs: vec![p.join("out/bin/hello")],
        },
    ];
    // Cross compiles: Debian's aarch64 gcc, and clang with its sysroot.
    if common::peer("aarch64-linux-gnu-gcc").is_some() {
        out.push(Case {
            name: "aarch64 gcc -g",
            dir: build.clone(),
            argv: s(&[
                "aarch64-linux-gnu-gcc",
                "-O2",
                "-g",
                "-c",
                "../src/a.c",
                "-o",
                "x-a.o",
            ]),
            outputs: vec![build.join("x-a.o")],
        });
        if common::peer("clang").is_some() {
            out.push(Case {
                name: "clang --target=aarch64 -g",
                dir: build.clone(),
                argv: s(&[
                    "clang",
                    "--target=aarch64-linux-gnu",
                    "--sysroot=/usr/aarch64-linux-gnu",
                    "-O2",
                    "-g",
                    "-c",
                    "../src/a.c",
                    "-o",
                    "x-ca.o",
                ]),
                outputs: vec![build.join("x-ca.o")],
            });
        }
    }
    // zig from PyPI's wheel: static, its library found through
    // `ZIG_LIB_DIR`; glibc and musl targets, a debug build (UBSan's file
    // names), and C++ against zig's libc++.
    if let Some(zig) = common::peer("zig") {
        let zig = zig.to_string_lossy().into_owned();
        let zig_case = |name, sub: &str, flags: &[&str], src: &str, obj: &str| {
            let mut argv = s(&[&zig, sub]);
            argv.extend(s(flags));
            argv.extend(s(&["-c", src, "-o", obj]));
            Case {
                name,
                dir: build.clone(),
                argv,
                outputs: vec![build.join(obj)],
            }
        };
        let gnu = format!("{}-linux-gnu", std::env::consts::ARCH);
        out.extend([
            zig_case(
                "zig cc -g",
                "cc",
                &["-target", &gnu, "-O2", "-g"],
                "../src/a.c",
                "z-a.o",
            ),
            zig_case(
                "zig cc debug",
                "cc",
                &["-target", &gnu, "-g"],
                "../src/a.c",
                "z-d.o",
            ),
            zig_case(
                "zig cc aarch64 musl",
                "cc",
                &["-target", "aarch64-linux-musl", "-O2"],
                "../src/a.c",
                "z-m.o",
            ),
            zig_case(
                "zig c++ libc++ -g",
                "c++",
                &["-target", &gnu, "-O2", "-g"],
                "../src/v.cc",
                "z-v.o",
            ),
        ]);
        // No -target: this machine's, pinned; its C library is named by
        // absolute paths, so a plain-directory worker runs it in a
        // namespace. The slowest cases: taken where a test needs them.
        if let Native::With = native {
            out.extend([
                zig_case(
                    "zig cc native -g",
                    "cc",
                    &["-O2", "-g"],
                    "../src/a.c",
                    "z-n.o",
                ),
                zig_case("zig c++ native", "c++", &["-O2"], "../src/v.cc", "z-nv.o"),
            ]);
        }
    }
    if common::peer("clang").is_some() {
        out.push(Case {
            name: "clang -g",
            dir: build.clone(),
            argv: s(&["clang", "-O2", "-g", "-c", "../src/a.c", "-o", "ca.o"]),
            outputs: vec![build.join("ca.o")],
        });
        out.push(Case {
            name: "clang++ -g",
            dir: build.clone(),
            argv: s(&["clang++", "-O1", "-g", "-c", "../src/v.cc", "-o", "cv.o"]),
            outputs: vec![build.join("cv.o")],
        });
    }
    out
}

fn run_case(c: &Case, wrapped: Option<(&Path, &str)>) -> Vec<Vec<u8>> {
    for o in &c.outputs {
        let _ = fs::remove_file(o);
        fs::create_dir_all(o.parent().unwrap()).unwrap();
    }
    let mut cmd = match wrapped {
        Some(_) => {
            let mut cmd = Command::new(BIN);
            cmd.args(&c.argv);
            cmd
        }
        None => {
            let mut cmd = Command::new(&c.argv[0]);
            cmd.args(&c.argv[1..]);
            cmd
        }
    };
    cmd.current_dir(&c.dir);
    // zig's caches, local and wrapped alike, inside the test's directory.
    let zig_cache = c.dir.join("../zig-cache");
    cmd.env("ZIG_GLOBAL_CACHE_DIR", &zig_cache)
        .env("ZIG_LOCAL_CACHE_DIR", &zig_cache);
    if let Some((cache, url)) = wrapped {
        with_recast(&mut cmd, cache, url);
    }
    let out = run_ok(&mut cmd);
    assert!(
        out.stderr.is_empty(),
        "{}: {}",
        c.name,
        String::from_utf8_lossy(&out.stderr)
    );
    c.outputs.iter().map(|o| fs::read(o).unwrap()).collect()
}

/// Every case through recast at `url`: the bytes of a local compile, then
/// a hit. The layout the probe found.
fn compiles_relocated(url: &str, native: Native) -> String {
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let p = mixed_project(&tmp.path().join("proj"));
    let all = cases(&p, native);
    for c in &all {
        let want = run_case(c, None);
        for round in 0..2 {
            let got = run_case(c, Some((&cache, url)));
            assert!(
                got == want,
                "{} (round {round}): not the bytes of a local compile",
                c.name
            );
        }
    }
    let n = all.len() as u64;
    let s = stats(&cache);
    assert_eq!(s["remote_executions"], n, "{s}");
    assert_eq!(s["cache_hits"], n, "{s}");
    assert_eq!(s["local_runs"], 0, "{s}");
    assert_eq!(s["fallbacks"], 0, "{s}");
    assert_eq!(s["remote_false_failures"], 0, "{s}");
    // The linked program runs.
    let hello = run_ok(&mut Command::new(p.join("out/bin/hello")));
    assert!(String::from_utf8_lossy(&hello.stdout).starts_with("42 "));
    probed_layout(&cache)
}

/// What the probe recorded in `cache` (one server, one platform).
fn probed_layout(cache: &Path) -> String {
    // The layout's answer, not whether the workers make namespaces.
    let answers: Vec<serde_json::Value> = fs::read_dir(cache.join("probes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.to_string_lossy().ends_with(".namespaces.json"))
        .map(|p| serde_json::from_slice(&fs::read(p).unwrap()).unwrap())
        .collect();
    assert_eq!(answers.len(), 1, "{answers:?}");
    answers[0]["layout"].as_str().unwrap_or("none").to_string()
}

#[test]
fn recast_serve_without_a_sandbox_gets_relocated_actions() {
    let server = Server::start_with(&["--sandbox", "none"]);
    assert_eq!(
        compiles_relocated(&server.url(), Native::Without),
        "Relocated"
    );
}

#[test]
fn the_probe_picks_rooted_on_recast_serve_and_relocated_without_a_chroot() {
    let tmp = tempdir();
    let p = mixed_project(&tmp.path().join("proj"));
    let c = &cases(&p, Native::Without)[0];
    for (extra, want) in [
        (&[][..], "Rooted"),
        (&["--sandbox", "none"][..], "Relocated"),
    ] {
        let server = Server::start_with(extra);
        let cache = tmp.path().join(format!("cache-{want}"));
        run_case(c, Some((&cache, &server.url())));
        assert_eq!(probed_layout(&cache), want, "recast serve {extra:?}");
        assert_eq!(stats(&cache)["remote_executions"], 1);
    }
}

/// One action cache behind a rooted server and a relocated one (`recast
/// serve` over one state directory, with and without its sandbox): a
/// compile run rooted is a hit for the relocated client, one run
/// relocated is a hit for the rooted client, each the bytes of a local
/// compile.
#[test]
fn rooted_and_relocated_clients_of_one_cache_share_hits() {
    let tmp = tempdir();
    let state = tmp.path().join("state");
    let p = mixed_project(&tmp.path().join("proj"));
    let all = cases(&p, Native::With);
    let want: Vec<_> = all.iter().map(|c| run_case(c, None)).collect();
    let half = all.len() / 2;
    // (sandbox, layout, cases compiled, executions, hits)
    let rounds = [
        (&[][..], "Rooted", 0..half, half, 0),
        (
            &["--sandbox", "none"][..],
            "Relocated",
            0..all.len(),
            all.len() - half,
            half,
        ),
        (&[][..], "Rooted", 0..all.len(), 0, all.len()),
    ];
    for (n, (extra, layout, range, runs, hits)) in rounds.into_iter().enumerate() {
        let server = Server::start_in(&state, extra);
        let cache = tmp.path().join(format!("cache-{n}"));
        for i in range {
            let got = run_case(&all[i], Some((&cache, &server.url())));
            assert!(
                got == want[i],
                "{} (round {n}): not the local bytes",
                all[i].name
            );
        }
        assert_eq!(probed_layout(&cache), layout, "round {n}");
        let s = stats(&cache);
        assert_eq!(s["remote_executions"], runs as u64, "round {n}: {s}");
        assert_eq!(s["cache_hits"], hits as u64, "round {n}: {s}");
        assert_eq!(s["local_runs"], 0, "round {n}: {s}");
        assert_eq!(s["fallbacks"], 0, "round {n}: {s}");
    }
}

/// gcc relocated gets its standard include directories with `-isystem`;
/// the user's own (`-I` with an absolute path, `CPATH`) must not join
/// them, or their headers' warnings would vanish.
#[test]
fn a_users_include_directories_keep_their_warnings_when_relocated() {
    let server = Server::start_with(&["--sandbox", "none"]);
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let p = tmp.path().join("proj");
    for d in ["inc", "env", "src"] {
        fs::create_dir_all(p.join(d)).unwrap();
    }
    fs::create_dir_all(p.join(".git")).unwrap();
    let unused = |name: &str| format!("static int {name}(void) {{ return 0; }}\n");
    fs::write(p.join("inc/w.h"), unused("from_flag")).unwrap();
    fs::write(p.join("env/e.h"), unused("from_cpath")).unwrap();
    fs::write(
        p.join("src/a.c"),
        "#include <stdio.h>\n#include \"w.h\"\n#include <e.h>\nint main(void) { return puts(\"x\"); }\n",
    )
    .unwrap();
    let inc = format!("-I{}", p.join("inc").display());
    let compile = |wrapped: bool| {
        let mut cmd = if wrapped {
            let mut c = Command::new(BIN);
            c.arg("gcc");
            with_recast(&mut c, &cache, &server.url());
            c
        } else {
            Command::new("gcc")
        };
        cmd.args(["-Wall", &inc, "-c", "src/a.c", "-o", "a.o"])
            .env("CPATH", p.join("env"))
            .current_dir(&p);
        // The compile must write it anew: a stale one would compare equal.
        let _ = fs::remove_file(p.join("a.o"));
        let out = run_ok(&mut cmd);
        (
            String::from_utf8_lossy(&out.stderr).into_owned(),
            fs::read(p.join("a.o")).unwrap(),
        )
    };
    let (want_err, want_obj) = compile(false);
    assert!(
        want_err.contains("from_flag") && want_err.contains("from_cpath"),
        "{want_err}"
    );
    let (err, obj) = compile(true);
    assert_eq!(err, want_err);
    assert!(obj == want_obj, "a.o differs");
    let s = stats(&cache);
    assert_eq!(s["remote_executions"], 1, "{s}");
    assert_eq!(probed_layout(&cache), "Relocated");
}

/// `rustc src/dir.rs` in `p` (with `CARGO_MANIFEST_DIR` set to it and
/// `flags`), plain or through recast at `url` with `cache`: the rlib it
/// wrote anew (a stale one would compare equal).
fn dir_crate(p: &Path, flags: &[&str], cache: &Path, url: Option<&str>) -> Vec<u8> {
    let mut cmd = match url {
        Some(url) => {
            let mut c = Command::new(BIN);
            c.arg("rustc");
            with_recast(&mut c, cache, url);
            c
        }
        None => Command::new("rustc"),
    };
    cmd.args(["--crate-type", "lib", "--crate-name", "dir"])
        .args(flags)
        .args(["src/dir.rs", "--out-dir", "out"])
        .env("CARGO_MANIFEST_DIR", p)
        .current_dir(p);
    let _ = fs::remove_file(p.join("out/libdir.rlib"));
    run_ok(&mut cmd);
    fs::read(p.join("out/libdir.rlib")).unwrap()
}

/// rustc without remaps records this machine's paths, so it cannot run
/// from a plain directory: on a worker that can make user namespaces it
/// runs rooted in one, which bubblewrap (shipped with the action) makes —
/// byte-identical, `-g` and `env!` of a local path included, then a hit;
/// on a worker that cannot, here, and `recast doctor` says so and names
/// the settings that make it remote.
#[test]
fn rustc_without_remapped_paths_runs_rooted_in_a_namespace_or_here_when_workers_cannot() {
    let tmp = tempdir();
    let p = mixed_project(&tmp.path().join("proj"));
    fs::write(
        p.join("src/dir.rs"),
        "pub const DIR: &str = env!(\"CARGO_MANIFEST_DIR\");\npub fn here() -> &'static str { file!() }\n",
    )
    .unwrap();
    let rustc = |cache: &Path, url: Option<&str>| dir_crate(&p, &["-g"], cache, url);
    let want = rustc(Path::new("/nonexistent"), None);

    let server = Server::start_with(&["--sandbox", "none"]);
    let cache = tmp.path().join("cache");
    for round in 0..2 {
        assert!(
            rustc(&cache, Some(&server.url())) == want,
            "round {round}: not a local compile's bytes"
        );
    }
    let s = stats(&cache);
    assert_eq!(count(&s, "remote_executions"), 1, "{s}");
    assert_eq!(count(&s, "cache_hits"), 1, "{s}");
    assert_eq!(count(&s, "local_runs"), 0, "{s}");
    assert_eq!(count(&s, "fallbacks"), 0, "{s}");
    assert_eq!(probed_layout(&cache), "Relocated");

    let caged = Server::start_without_namespaces(&["--sandbox", "none"]);
    let cache = tmp.path().join("cache-caged");
    assert!(rustc(&cache, Some(&caged.url())) == want);
    let s = stats(&cache);
    assert_eq!(
        reason(&s, "local_reasons", "rustc_paths_not_remapped"),
        1,
        "{s}"
    );
    assert_eq!(count(&s, "remote_executions"), 0, "{s}");
    let mut doctor = common::recast_with_cache(&cache, ["doctor"]);
    doctor.env("RECAST_REMOTE", caged.url());
    let text = String::from_utf8_lossy(&run_ok(&mut doctor).stdout).into_owned();
    assert!(
        text.contains("cannot make user namespaces")
            && text.contains("--remap-path-prefix")
            && text.contains("RECAST_TRIM_PATHS=1"),
        "{text}"
    );
    let mut doctor = common::recast_with_cache(&tmp.path().join("cache"), ["doctor"]);
    doctor.env("RECAST_REMOTE", server.url());
    let text = String::from_utf8_lossy(&run_ok(&mut doctor).stdout).into_owned();
    assert!(text.contains("workers make user namespaces"), "{text}");
}

/// An environment value a relocated compile sees names its working
/// directory (`/proc/self/cwd/.r/…`); an output that embeds it is refused
/// and the compile runs here. Later ones run rooted in a user namespace
/// where the workers make one (byte-identical, then a hit), and go
/// straight to a local run where they cannot.
#[test]
fn a_relocated_output_naming_its_directory_runs_here_then_in_a_namespace_or_here() {
    let tmp = tempdir();
    let p = mixed_project(&tmp.path().join("proj"));
    fs::write(
        p.join("src/dir.rs"),
        "pub const DIR: &str = env!(\"CARGO_MANIFEST_DIR\");\n",
    )
    .unwrap();
    let remap = format!("--remap-path-prefix={}=/p", p.display());
    let rustc = |cache: &Path, url: Option<&str>| dir_crate(&p, &[&remap], cache, url);
    let want = rustc(Path::new("/nonexistent"), None);
    for (server, namespaces) in [
        (Server::start_with(&["--sandbox", "none"]), true),
        (
            Server::start_without_namespaces(&["--sandbox", "none"]),
            false,
        ),
    ] {
        let cache = tmp.path().join(format!("cache-{namespaces}"));
        for round in 0..3 {
            assert!(
                rustc(&cache, Some(&server.url())) == want,
                "round {round}: not a local compile's bytes"
            );
        }
        let s = stats(&cache);
        assert_eq!(count(&s, "fallbacks"), 0, "{s}");
        if namespaces {
            assert_eq!(
                reason(&s, "local_reasons", "relocated_output_leak"),
                1,
                "{s}"
            );
            assert_eq!(count(&s, "remote_executions"), 1, "{s}");
            assert_eq!(count(&s, "cache_hits"), 1, "{s}");
        } else {
            assert_eq!(
                reason(&s, "local_reasons", "relocated_output_leak"),
                3,
                "{s}"
            );
            assert_eq!(count(&s, "remote_executions"), 0, "{s}");
            assert_eq!(count(&s, "cache_hits"), 0, "{s}");
        }
    }
}

#[test]
fn nativelink_runs_relocated_compiles_byte_identical() {
    let Some(nl) = NativeLink::start() else {
        return;
    };
    assert_eq!(
        compiles_relocated(&nl.url(), Native::Without),
        "Relocated",
        "{}",
        nl.log()
    );
}

#[test]
fn nativelink_in_a_namespace_without_the_host_runs_them_from_the_bundle_alone() {
    let Some(nl) = NativeLink::start_hermetic() else {
        return;
    };
    assert_eq!(
        compiles_relocated(&nl.url(), Native::With),
        "Relocated",
        "{}",
        nl.log()
    );
}

#[test]
fn nativelink_builds_zstd_with_make_and_cmake() {
    let Some(nl) = NativeLink::start_hermetic() else {
        return;
    };
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let url = nl.url();
    let proj = zstd_project(&tmp.path().join("proj"));
    let make = |cc: &str| {
        let _ = fs::remove_dir_all(proj.join("obj"));
        let mut cmd = Command::new("make");
        cmd.args(["-j2", "--no-print-directory"])
            .arg(format!("CC={cc}"))
            .arg("CFLAGS=-O2 -g -Wall")
            .current_dir(&proj);
        with_recast(&mut cmd, &cache, &url);
        run_ok(&mut cmd);
        (files(&proj, "obj", "o"), files(&proj, "obj", "d"))
    };
    // With -g the objects name the directory: both builds in the same one.
    let (objects, depfiles) = make("gcc");
    let (remote_objects, remote_depfiles) = make(&format!("{BIN} gcc"));
    assert_same("make objects", &remote_objects, &objects);
    assert_same("make depfiles", &remote_depfiles, &depfiles);
    let s = stats(&cache);
    let n = zstd_sources(&proj);
    assert_eq!(count(&s, "remote_executions"), n, "{s}");
    assert_eq!(count(&s, "fallbacks"), 0, "{s}");
    if common::peer("cmake").is_none() {
        return;
    }
    let cmake = |launcher: bool| -> BTreeMap<String, Vec<u8>> {
        let _ = fs::remove_dir_all(proj.join("build"));
        let mut cfg = Command::new("cmake");
        cfg.args(["-S", ".", "-B", "build", "-DCMAKE_C_COMPILER=gcc"])
            .current_dir(&proj);
        if launcher {
            cfg.arg(format!("-DCMAKE_C_COMPILER_LAUNCHER={BIN}"));
        }
        with_recast(&mut cfg, &cache, &url);
        run_ok(&mut cfg);
        let mut b = Command::new("cmake");
        b.args(["--build", "build", "-j2"]).current_dir(&proj);
        with_recast(&mut b, &cache, &url);
        run_ok(&mut b);
        files(&proj, "build", "o")
    };
    let plain = cmake(false);
    assert_same("cmake objects", &cmake(true), &plain);
    let s = stats(&cache);
    // Each source once more: CMake's flags make other actions than make's.
    assert_eq!(count(&s, "remote_executions"), 2 * n, "{s}");
    assert_eq!(count(&s, "fallbacks"), 0, "{s}");
}

/// `cargo build` as it ships (no remaps, no settings) on NativeLink in a
/// namespace without the host: every unit runs there, rooted in a user
/// namespace of its own, and the libraries are plain cargo's bytes.
#[test]
fn nativelink_builds_the_cargo_workspace_with_build_scripts_and_proc_macros() {
    let Some(vendor) = vendor_dir() else { return };
    let Some(nl) = NativeLink::start_hermetic() else {
        return;
    };
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let ws = cargo_ws(&tmp.path().join("ws"), &vendor);
    // cargo as it ships: rustc records its working directory and sources,
    // unremapped, so no unit can run from a plain directory; each runs
    // rooted in a user namespace that the shipped bubblewrap makes.
    let (counter, invocations) = counting_wrapper(&tmp.path().join("count-rustc"));
    let cargo = |wrap: bool| {
        let mut cmd = Command::new("cargo");
        cmd.args(["build", "--offline", "--quiet", "--message-format=json"])
            .current_dir(&ws)
            .env("CARGO_INCREMENTAL", "0")
            .env_remove("RUSTFLAGS")
            .env_remove("RECAST_TRIM_PATHS")
            .env_remove("CARGO_TARGET_DIR");
        if wrap {
            cmd.env("RUSTC_WRAPPER", BIN);
            with_recast(&mut cmd, &cache, &nl.url());
        } else {
            cmd.env("RUSTC_WRAPPER", &counter);
        }
        compiled_units(&run_ok(&mut cmd).stdout).len() as u64
    };
    let clean = || {
        run_ok(
            Command::new("cargo")
                .args(["clean", "--offline"])
                .current_dir(&ws),
        )
    };
    let units = cargo(false);
    let plain = libraries(&ws);
    clean();
    assert_eq!(cargo(true), units);
    assert_same("the workspace", &libraries(&ws), &plain);
    let s = stats(&cache);
    // Every rustc cargo and the build scripts ran went through recast; all
    // but cargo's questions ran remotely: every unit, and the build
    // scripts' probes (one of which fails on stable, as it does here).
    let rustcs = lines(&invocations);
    assert_eq!(count(&s, "compiles"), rustcs, "{s}");
    let questions: u64 = ["version_query", "print", "stdin_input"]
        .iter()
        .map(|r| reason(&s, "local_reasons", r))
        .sum();
    let remote = count(&s, "remote_executions");
    assert_eq!(remote, rustcs - questions, "{s}");
    let errors = count(&s, "compile_errors");
    assert!(remote >= units + errors, "{s}");
    assert_eq!(count(&s, "fallbacks"), 0, "{s}");
    let compiled_here: u64 = s["local_reasons"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "version_query" | "print" | "stdin_input"))
        .map(|(_, v)| v.as_u64().unwrap())
        .sum();
    assert_eq!(compiled_here, 0, "only cargo's questions run here: {s}");
    let app = run_ok(&mut Command::new(ws.join("target/debug/app")));
    assert!(!app.stdout.is_empty());

    // After `cargo clean`, every unit and every probe that compiled is a
    // hit; the failing probe runs again (a failure is never cached).
    clean();
    assert_eq!(cargo(true), units);
    assert_same("the workspace from hits", &libraries(&ws), &plain);
    let again = stats(&cache);
    assert_eq!(count(&again, "cache_hits"), remote - errors, "{again}");
    assert_eq!(
        count(&again, "remote_executions") - remote,
        errors,
        "only the failing probe ran again: {again}"
    );
    assert_eq!(count(&again, "fallbacks"), 0, "{again}");
}

#[test]
fn doctor_says_which_layout_a_server_gets_and_what_nativelink_must_declare() {
    let server = Server::start();
    let tmp = tempdir();
    let doctor = |url: &str, extra: &[&str]| {
        let out = common::recast_with_cache(tmp.path(), ["doctor", "--remote", url])
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, text) = doctor(&server.url(), &[]);
    assert!(ok, "{text}");
    assert!(text.contains("layout: rooted"), "{text}");
    let bare = Server::start_with(&["--sandbox", "none"]);
    let (ok, text) = doctor(&bare.url(), &[]);
    assert!(ok && text.contains("layout: relocated"), "{text}");
    let Some(nl) = NativeLink::start() else {
        return;
    };
    let (ok, text) = doctor(&nl.url(), &[]);
    assert!(ok, "{text}");
    assert!(text.contains("layout: relocated"), "{text}");
    assert!(
        text.contains("the scheduler declares every key sent"),
        "{text}"
    );
    // A key the scheduler does not declare: NativeLink would ignore it.
    let (ok, text) = doctor(&nl.url(), &["--platform", "Pool=fast"]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("does not declare Pool")
            && text.contains("\"Pool\": \"exact\"")
            && text.contains("\"Pool\": { values: [\"fast\"] }"),
        "{text}"
    );
}

/// A Mac (declared) building for Linux on NativeLink: the registry's rustc
/// and linker, published with their relocated variants by `recast
/// toolchain upload`, run the target units there; host units are built
/// here and again as twins for the workers. cargo gives host units no
/// RUSTFLAGS when it builds for a --target, so `RECAST_TRIM_PATHS=1`
/// remaps what every unit records (the project, each vendored crate), here
/// and there alike; the target units are the bytes of plain rustc given
/// the same remaps.
#[test]
fn a_foreign_host_builds_for_linux_on_nativelink_with_the_registrys_relocated_toolchain() {
    let Some(vendor) = vendor_dir() else { return };
    let Some(nl) = NativeLink::start() else {
        return;
    };
    let triple = "x86_64-unknown-linux-gnu";
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let ws = cargo_ws(&tmp.path().join("ws"), &vendor);
    publish_rustc_and_linker(&cache, &nl.url());
    // The reference: plain rustc with the remaps trim-paths gives every
    // unit (cargo hashes RUSTFLAGS into file names; a wrapper it does not).
    // It also counts the rustc invocations.
    let invocations = tmp.path().join("remap-rustc.log");
    let remapper = tmp.path().join("remap-rustc");
    fs::write(
        &remapper,
        format!(
            "#!/bin/sh\necho x >> '{}'\nrustc=$1; shift\nws='{}'\ncase \"$PWD\" in\n  \"$ws\"|\"$ws\"/*) exec \"$rustc\" \"$@\" --remap-path-prefix=\"$ws=/recast/project\" ;;\n  *) exec \"$rustc\" \"$@\" --remap-path-prefix=\"$ws=/recast/project\" --remap-path-prefix=\"$PWD=/recast/crates/${{PWD##*/}}\" ;;\nesac\n",
            invocations.display(),
            ws.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&remapper, fs::Permissions::from_mode(0o755)).unwrap();
    let cargo = |wrap: bool| {
        let mut cmd = Command::new("cargo");
        cmd.args([
            "build",
            "--offline",
            "--quiet",
            "--message-format=json",
            "--target",
            triple,
        ])
        .current_dir(&ws)
        .env("CARGO_INCREMENTAL", "0")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTFLAGS");
        if wrap {
            cmd.env("RUSTC_WRAPPER", BIN)
                .env("RECAST_TRIM_PATHS", "1")
                .env("RECAST_HOST_PLATFORM", "aarch64-apple-darwin")
                .env("RECAST_WORKER_PLATFORM", triple);
            with_recast(&mut cmd, &cache, &nl.url());
        } else {
            cmd.env("RUSTC_WRAPPER", &remapper);
        }
        compiled_units(&run_ok(&mut cmd).stdout)
    };
    let units = cargo(false);
    let plain = target_libraries(&ws, triple);
    run_ok(
        Command::new("cargo")
            .args(["clean", "--offline"])
            .current_dir(&ws),
    );
    assert_eq!(cargo(true), units);
    // Units built for the target (under target/<triple>/) run on the
    // workers with the registry's toolchain; host units (build scripts,
    // proc-macros and their crates) are built here, and those a target
    // unit loads (the proc-macros and their crates: not build scripts,
    // which cargo runs here) are built again as twins for the workers.
    let for_target = |files: &Vec<String>| files.iter().any(|f| f.contains(&format!("/{triple}/")));
    let build_script =
        |files: &Vec<String>| files.iter().any(|f| f.contains("/build-script-build"));
    let target_units = units.iter().filter(|u| for_target(u)).count() as u64;
    let host_units = units.len() as u64 - target_units;
    let twins = units
        .iter()
        .filter(|u| !for_target(u) && !build_script(u))
        .count() as u64;
    let s = stats(&cache);
    assert_eq!(count(&s, "compiles"), lines(&invocations), "{s}");
    let errors = count(&s, "compile_errors");
    // Every rustc is accounted for: the target units and the build
    // scripts' probes for the target ran remotely, each with the
    // registry's toolchain; the host units and cargo's questions here.
    let remote = count(&s, "remote_executions");
    assert!(remote >= target_units + errors, "{s}");
    assert_eq!(count(&s, "registry_toolchains"), remote, "{s}");
    assert_eq!(reason(&s, "local_reasons", "host_unit"), host_units, "{s}");
    let questions: u64 = ["version_query", "print", "stdin_input"]
        .iter()
        .map(|r| reason(&s, "local_reasons", r))
        .sum();
    assert_eq!(
        remote + host_units + questions,
        count(&s, "compiles"),
        "{s}"
    );
    assert_eq!(count(&s, "twin_builds"), twins, "{s}");
    assert!(count(&s, "twin_swaps") >= twins, "{s}");
    assert_eq!(count(&s, "fallbacks"), 0, "{s}");
    assert_same("the target units", &target_libraries(&ws, triple), &plain);
    assert_eq!(probed_layout(&cache), "Relocated");
}
