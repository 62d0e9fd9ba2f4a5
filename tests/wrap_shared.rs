//! What makes a hit shared: the same compile from a terminal and from a
//! pipe (a developer's build and CI's), and the same project checked out
//! twice at different depths with prefix maps and debug info. Each side
//! must see exactly what it would see without recast, and write the same
//! bytes.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::projects::{stats, with_recast};
use common::{BIN, Server, run_ok, tempdir};

/// `argv` run in a pseudo-terminal (util-linux `script`), in `dir`: what
/// the terminal showed (stdout and stderr, with `\r\n` line ends).
fn in_pty(dir: &Path, argv: &[&str], env: &[(&str, &str)]) -> Vec<u8> {
    let line = argv
        .iter()
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"])
        .current_dir(dir)
        .envs(env.iter().copied());
    cmd.output().expect("running script(1)").stdout
}

/// `argv` with stdout and stderr piped.
fn piped(dir: &Path, argv: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(argv[0])
        .args(&argv[1..])
        .current_dir(dir)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// Which way a wrapped compile reaches the cache.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Remote execution: the terminal's compile runs remotely, the pipe's
    /// hits.
    Remote,
    /// Cache-only: the pipe's compile runs here and publishes, the
    /// terminal's hits.
    CacheOnly,
}

/// One compiler's compile from a terminal and from a pipe through recast
/// (in `mode`'s order): the second is a hit, and each shows what the
/// compiler alone shows and writes the `output` it writes.
fn terminal_and_pipe(
    mode: Mode,
    compiler: &[&str],
    source: (&str, &str),
    args: &[&str],
    output: &str,
) {
    let server = Server::start();
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let dir = tmp.path().join("w");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(source.0), source.1).unwrap();
    let url = server.url();
    let cache_s = cache.to_string_lossy().into_owned();
    let cfg = cache.join("none.toml").to_string_lossy().into_owned();
    // GCC_URLS: gcc's hyperlinks in a terminal are left to a later change.
    let env = [
        ("TERM", "xterm-256color"),
        ("GCC_URLS", "no"),
        ("RECAST_CACHE_DIR", cache_s.as_str()),
        ("RECAST_CONFIG", cfg.as_str()),
        ("RECAST_REMOTE", url.as_str()),
        (
            "RECAST_MODE",
            if mode == Mode::Remote {
                "remote"
            } else {
                "cache-only"
            },
        ),
    ];
    let plain: Vec<&str> = compiler.iter().chain(args).copied().collect();
    let wrapped: Vec<&str> = [BIN].iter().chain(&plain).copied().collect();
    let out = dir.join(output);
    let local_tty = in_pty(&dir, &plain, &env);
    let want = fs::read(&out).unwrap();
    fs::remove_file(&out).unwrap();
    let local_pipe = piped(&dir, &plain, &env);
    assert!(
        fs::read(&out).unwrap() == want,
        "{compiler:?} is deterministic"
    );
    // Each wrapped compile must write the output anew.
    let fresh = || {
        fs::remove_file(&out).unwrap();
    };
    let same = |how: &str| {
        assert!(
            fs::read(&out).unwrap() == want,
            "{compiler:?} {how}: {output} is not the compiler's"
        );
    };
    assert!(
        local_tty.windows(2).any(|w| w == b"\x1b["),
        "{compiler:?} colors a terminal: {}",
        String::from_utf8_lossy(&local_tty)
    );
    assert!(!local_pipe.stderr.is_empty(), "{compiler:?} warns");
    let terminal = || {
        fresh();
        let remote_tty = in_pty(&dir, &wrapped, &env);
        same("in a terminal");
        assert_eq!(
            String::from_utf8_lossy(&remote_tty),
            String::from_utf8_lossy(&local_tty),
            "{compiler:?} in a terminal"
        );
    };
    let pipe = || {
        fresh();
        let remote_pipe = piped(&dir, &wrapped, &env);
        same("through a pipe");
        assert_eq!(remote_pipe.status.code(), local_pipe.status.code());
        assert_eq!(
            String::from_utf8_lossy(&remote_pipe.stderr),
            String::from_utf8_lossy(&local_pipe.stderr),
            "{compiler:?} through a pipe"
        );
        assert_eq!(remote_pipe.stdout, local_pipe.stdout);
    };
    let (first, second): (&dyn Fn(), &dyn Fn()) = match mode {
        Mode::Remote => (&terminal, &pipe),
        Mode::CacheOnly => (&pipe, &terminal),
    };
    let ran = |s: &serde_json::Value| match mode {
        Mode::Remote => s["remote_executions"].as_u64(),
        Mode::CacheOnly => s["local_reasons"]["cache_miss"].as_u64(),
    };
    first();
    let s = stats(&cache);
    assert_eq!(ran(&s), Some(1), "{s}");
    second();
    let s = stats(&cache);
    assert_eq!(s["cache_hits"], 1, "the second compile is the first's: {s}");
    assert_eq!(ran(&s), Some(1), "{s}");
}

const WARNS_C: &str = "int f(void) { int unused; return 0; }\n";

#[test]
fn gcc_from_a_terminal_and_from_a_pipe_share_a_hit() {
    terminal_and_pipe(
        Mode::Remote,
        &["gcc"],
        ("w.c", WARNS_C),
        &["-Wall", "-c", "w.c"],
        "w.o",
    );
}

#[test]
fn clang_from_a_terminal_and_from_a_pipe_share_a_hit() {
    if common::peer("clang").is_none() {
        return;
    }
    terminal_and_pipe(
        Mode::Remote,
        &["clang"],
        ("w.c", WARNS_C),
        &["-Wall", "-c", "w.c"],
        "w.o",
    );
}

/// The real rustc (not rustup's proxy), as cargo hands it to a wrapper.
fn rustc() -> String {
    String::from_utf8(
        Command::new("rustup")
            .args(["which", "rustc"])
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default(),
    )
    .ok()
    .map(|s| s.trim().to_string())
    .filter(|s| !s.is_empty())
    .unwrap_or_else(|| "rustc".into())
}

/// A library crate that warns, compiled as a terminal user would.
fn rustc_warns(mode: Mode) {
    let rustc = rustc();
    terminal_and_pipe(
        mode,
        &[rustc.as_str()],
        ("w.rs", "pub fn f() { let unused = 1; }\n"),
        &[
            "--crate-name",
            "w",
            "--crate-type",
            "lib",
            "--emit=link",
            "w.rs",
        ],
        "libw.rlib",
    );
}

#[test]
fn rustc_from_a_terminal_and_from_a_pipe_share_a_hit() {
    rustc_warns(Mode::Remote);
}

/// Cache-only's local compile keeps what a terminal would have seen.
#[test]
fn cache_only_from_a_pipe_then_a_terminal_share_a_hit_with_colors() {
    terminal_and_pipe(
        Mode::CacheOnly,
        &["gcc"],
        ("w.c", WARNS_C),
        &["-Wall", "-c", "w.c"],
        "w.o",
    );
    rustc_warns(Mode::CacheOnly);
}

/// A C project with sources and headers in subdirectories, in a git
/// checkout at `at`.
fn c_project(at: &Path) -> PathBuf {
    fs::create_dir_all(at.join(".git")).unwrap();
    fs::create_dir_all(at.join("src")).unwrap();
    fs::create_dir_all(at.join("include")).unwrap();
    fs::write(
        at.join("include/shape.h"),
        "struct shape { int sides; double size; };\nstatic inline int sides(struct shape s) { return s.sides; }\n",
    )
    .unwrap();
    for i in 0..3 {
        fs::write(
            at.join(format!("src/s{i}.c")),
            format!(
                "#include \"shape.h\"\nint area{i}(struct shape s) {{ return sides(s) * {i} + (int)s.size; }}\n"
            ),
        )
        .unwrap();
    }
    at.to_path_buf()
}

/// Compiles every source of the project in `root/build` with `cc` and
/// `flags` (`{root}` replaced by the checkout's path): the objects.
fn build_c(root: &Path, cc: &[&str], flags: &[&str], cache: &Path, url: &str) -> Vec<Vec<u8>> {
    let build = root.join("build");
    let _ = fs::remove_dir_all(&build);
    fs::create_dir_all(&build).unwrap();
    (0..3)
        .map(|i| {
            let mut cmd = Command::new(cc[0]);
            cmd.args(&cc[1..]);
            for f in flags {
                cmd.arg(f.replace("{root}", &root.to_string_lossy()));
            }
            cmd.args([
                "-c",
                &format!("{}/src/s{i}.c", root.display()),
                "-o",
                &format!("s{i}.o"),
            ])
            .current_dir(&build);
            with_recast(&mut cmd, cache, url);
            run_ok(&mut cmd);
            fs::read(build.join(format!("s{i}.o"))).unwrap()
        })
        .collect()
}

/// Two checkouts at different depths, compiled the way CMake does
/// (absolute source and include paths) with debug info and prefix maps:
/// the second checkout only hits, and every object is what the compiler
/// alone writes in that checkout.
fn two_checkouts_with_prefix_maps(cc: &str, flags: &[&str]) {
    let server = Server::start();
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let a = c_project(&tmp.path().join("a"));
    let b = c_project(&tmp.path().join("deeper/still/b"));
    let url = server.url();
    let wrapped = [BIN, cc];
    for root in [&a, &b] {
        let plain = build_c(root, &[cc], flags, &cache, &url);
        let remote = build_c(root, &wrapped, flags, &cache, &url);
        for (i, (p, r)) in plain.iter().zip(&remote).enumerate() {
            assert!(
                p == r,
                "{cc} {flags:?}: s{i}.o in {} differs",
                root.display()
            );
        }
    }
    let s = stats(&cache);
    assert_eq!(s["remote_executions"], 3, "{cc} {flags:?}: {s}");
    assert_eq!(s["cache_hits"], 3, "the second checkout hits: {s}");
    assert_eq!(s["fallbacks"], 0, "{s}");
}

#[test]
fn gcc_checkouts_with_file_prefix_maps_and_debug_info_share_hits() {
    two_checkouts_with_prefix_maps(
        "gcc",
        &[
            "-O2",
            "-g",
            "-ffile-prefix-map={root}=.",
            "-I{root}/include",
        ],
    );
}

#[test]
fn gcc_checkouts_with_debug_and_macro_prefix_maps_share_hits() {
    two_checkouts_with_prefix_maps(
        "gcc",
        &[
            "-O1",
            "-g",
            "-fdebug-prefix-map={root}=/src",
            "-fmacro-prefix-map={root}=/src",
            "-I{root}/include",
        ],
    );
}

#[test]
fn clang_checkouts_with_file_prefix_maps_and_debug_info_share_hits() {
    if common::peer("clang").is_none() {
        return;
    }
    two_checkouts_with_prefix_maps(
        "clang",
        &[
            "-O2",
            "-g",
            "-ffile-prefix-map={root}=.",
            "-I{root}/include",
        ],
    );
}

#[test]
fn checkouts_without_debug_info_share_hits_unless_the_source_names_its_path() {
    let server = Server::start();
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let url = server.url();
    let flags = ["-O2", "-I{root}/include"];
    let a = c_project(&tmp.path().join("a"));
    let b = c_project(&tmp.path().join("x/y/b"));
    // s2 names its own path: its object differs between checkouts, so it
    // must not be shared, and each checkout gets its own bytes.
    for root in [&a, &b] {
        fs::write(
            root.join("src/s2.c"),
            "const char *where(void) { return __FILE__; }\n",
        )
        .unwrap();
    }
    for root in [&a, &b] {
        let plain = build_c(root, &["gcc"], &flags, &cache, &url);
        let remote = build_c(root, &[BIN, "gcc"], &flags, &cache, &url);
        assert_eq!(plain, remote, "{}", root.display());
    }
    let s = stats(&cache);
    // s0 and s1 are shared; s2 ran in place in each checkout.
    assert_eq!(s["cache_hits"], 2, "{s}");
    assert_eq!(s["remote_executions"], 4, "{s}");
    assert_eq!(s["fallbacks"], 0, "{s}");
    // The scan knew s2 expands `__FILE__` to a path in the project, so it
    // never ran moved: s0, s1 and one s2 per checkout, and no moved s2
    // (which would name the first checkout's root in its object).
    assert_eq!(ac_entries(&server.dir), 4);
}

/// How many results the server's action cache holds.
fn ac_entries(dir: &Path) -> usize {
    fs::read_dir(dir.join("ac"))
        .unwrap()
        .map(|d| d.unwrap().path())
        .filter(|d| d.file_name().is_some_and(|n| n != "tmp"))
        .map(|d| fs::read_dir(d).unwrap().count())
        .sum()
}

/// A crate with a module in a subdirectory, in a git checkout at `at`.
fn rust_project(at: &Path) -> PathBuf {
    fs::create_dir_all(at.join(".git")).unwrap();
    fs::create_dir_all(at.join("src/shape")).unwrap();
    fs::write(
        at.join("src/lib.rs"),
        "pub mod shape;\npub fn area(s: &shape::Shape) -> f64 { s.sides as f64 * s.size }\n",
    )
    .unwrap();
    fs::write(
        at.join("src/shape/mod.rs"),
        "pub struct Shape { pub sides: u32, pub size: f64 }\n\
         pub fn check(s: &Shape) { assert!(s.sides > 2, \"{}: too few sides\", file!()); }\n",
    )
    .unwrap();
    at.to_path_buf()
}

/// rustc as cargo runs it for a workspace member (relative source,
/// absolute `--out-dir`), with debug info and the user's own
/// `--remap-path-prefix` of the checkout: the rlib and dep-info.
fn build_rust(root: &Path, wrapped: bool, cache: &Path, url: &str) -> (Vec<u8>, Vec<u8>) {
    let out = root.join("target/debug/deps");
    let _ = fs::remove_dir_all(root.join("target"));
    fs::create_dir_all(&out).unwrap();
    let rustc = rustc();
    let mut cmd = if wrapped {
        let mut c = Command::new(BIN);
        c.arg(&rustc);
        c
    } else {
        Command::new(&rustc)
    };
    cmd.args([
        "--crate-name",
        "shapes",
        "--edition=2021",
        "src/lib.rs",
        "--crate-type",
        "lib",
        "--emit=dep-info,metadata,link",
        "-C",
        "debuginfo=2",
        "-C",
        "metadata=0123abcd",
        "-C",
        "extra-filename=-0123abcd",
        "--out-dir",
    ])
    .arg(&out)
    .arg(format!("--remap-path-prefix={}=.", root.display()))
    .current_dir(root);
    with_recast(&mut cmd, cache, url);
    run_ok(&mut cmd);
    (
        fs::read(out.join("libshapes-0123abcd.rlib")).unwrap(),
        fs::read(out.join("shapes-0123abcd.d")).unwrap(),
    )
}

#[test]
fn rustc_checkouts_with_remapped_paths_and_debug_info_share_hits() {
    let server = Server::start();
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let url = server.url();
    let a = rust_project(&tmp.path().join("a"));
    let b = rust_project(&tmp.path().join("deeper/still/b"));
    for root in [&a, &b] {
        let (rlib, dep) = build_rust(root, false, &cache, &url);
        let (wrapped_rlib, wrapped_dep) = build_rust(root, true, &cache, &url);
        assert!(
            rlib == wrapped_rlib,
            "the rlib in {} differs",
            root.display()
        );
        assert_eq!(
            String::from_utf8_lossy(&dep),
            String::from_utf8_lossy(&wrapped_dep),
            "dep-info in {} names the checkout's own paths",
            root.display()
        );
    }
    let s = stats(&cache);
    assert_eq!(s["remote_executions"], 1, "{s}");
    assert_eq!(s["cache_hits"], 1, "the second checkout hits: {s}");
    assert_eq!(s["fallbacks"], 0, "{s}");
}
