//! Interop: Bazel 4.2.3 (Debian `bazel-bootstrap`) as a client of
//! `recast serve`, as remote executor and as remote cache.
//!
//! Genrules only: they build offline (a `cc_binary` would fetch `rules_cc`).
//! Bazel 4 sends the legacy `output_files` fields and checks every digest
//! it downloads, so this exercises the server against a client recast did
//! not write. Needs `bazel`; skips without it unless
//! `RECAST_REQUIRE_PEERS=1`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{Server, peer, tempdir};

const BUILD: &str = r#"
genrule(
    name = "hello",
    outs = ["hello.txt"],
    cmd = "echo hello > $@",
)

genrule(
    name = "obj",
    srcs = ["lib.c", "lib.h"],
    outs = ["lib.o"],
    cmd = "gcc -c $(location lib.c) -o $@",
)
"#;

const LIB_C: &str = "#include \"lib.h\"\nint twice(int x) { return x * TWO; }\n";
const LIB_H: &str = "#define TWO 2\n";

/// One Bazel workspace with its own output root and HOME.
struct Bazel {
    bin: PathBuf,
    ws: PathBuf,
    root: PathBuf,
    home: PathBuf,
}

impl Bazel {
    fn new(bin: PathBuf, dir: &Path) -> Bazel {
        let ws = dir.join("ws");
        fs::create_dir_all(&ws).unwrap();
        fs::write(ws.join("WORKSPACE"), "").unwrap();
        fs::write(ws.join("BUILD"), BUILD).unwrap();
        fs::write(ws.join("lib.c"), LIB_C).unwrap();
        fs::write(ws.join("lib.h"), LIB_H).unwrap();
        let home = dir.join("home");
        fs::create_dir_all(&home).unwrap();
        Bazel {
            bin,
            ws,
            root: dir.join("output_user_root"),
            home,
        }
    }

    /// `bazel --batch <command> <args>`, which must succeed; returns its
    /// output (Bazel reports on stderr).
    fn run(&self, command: &str, args: &[&str]) -> Output {
        let out = Command::new(&self.bin)
            .arg("--batch")
            .arg(format!("--output_user_root={}", self.root.display()))
            .arg("--nohome_rc")
            .arg(command)
            .args(["--color=no", "--curses=no"])
            .args(args)
            .current_dir(&self.ws)
            .env("HOME", &self.home)
            .stdin(Stdio::null())
            .output()
            .expect("spawning bazel");
        assert!(
            out.status.success(),
            "bazel {command} {args:?} failed ({})\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn build(&self, args: &[&str]) -> Summary {
        let mut all = vec!["//:all", "--remote_timeout=120"];
        all.extend_from_slice(args);
        let out = self.run("build", &all);
        let s = Summary::parse(&String::from_utf8_lossy(&out.stderr));
        eprintln!("bazel build {args:?}: {}", s.line);
        s
    }

    fn clean(&self) {
        self.run("clean", &[]);
    }

    fn output(&self, name: &str) -> Vec<u8> {
        fs::read(self.ws.join("bazel-bin").join(name)).unwrap()
    }
}

/// Bazel's closing `INFO: N processes: 1 internal, 2 remote.` line.
#[derive(Debug)]
struct Summary {
    line: String,
    log: String,
}

impl Summary {
    fn parse(stderr: &str) -> Summary {
        let line = stderr
            .lines()
            .rev()
            .find(|l| l.contains(" processes: ") || l.contains(" process: "))
            .unwrap_or_else(|| panic!("no process summary in bazel's output:\n{stderr}"))
            .to_string();
        Summary {
            line,
            log: stderr.to_string(),
        }
    }

    /// How many spawns the summary counts under exactly `kind`
    /// ("remote", "remote cache hit", "internal", …).
    fn count(&self, kind: &str) -> u32 {
        let Some((_, parts)) = self
            .line
            .split_once(": ")
            .and_then(|(_, r)| r.split_once(": "))
        else {
            return 0;
        };
        parts
            .trim_end_matches('.')
            .split(", ")
            .filter_map(|p| p.split_once(' '))
            .filter(|(_, k)| *k == kind)
            .filter_map(|(n, _)| n.parse::<u32>().ok())
            .sum()
    }
}

/// `gcc -c lib.c` run locally, as the genrule does, for comparison.
fn local_object(dir: &Path) -> Vec<u8> {
    let d = dir.join("local");
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("lib.c"), LIB_C).unwrap();
    fs::write(d.join("lib.h"), LIB_H).unwrap();
    let st = Command::new("gcc")
        .args(["-c", "lib.c", "-o", "lib.o"])
        .current_dir(&d)
        .status()
        .unwrap();
    assert!(st.success());
    fs::read(d.join("lib.o")).unwrap()
}

#[test]
fn bazel_executes_and_caches_on_recast_serve() {
    let Some(bin) = peer("bazel") else { return };
    let server = Server::start();
    let url = server.url();
    let tmp = tempdir();
    let bazel = Bazel::new(bin, tmp.path());
    let executor = format!("--remote_executor={url}");

    // 1. Remote execution, the cache ignored: every action runs on recast.
    let s = bazel.build(&[
        &executor,
        "--noremote_accept_cached",
        "--noremote_local_fallback",
    ]);
    assert!(
        s.count("remote") >= 2,
        "expected ≥2 remote: {}\n{}",
        s.line,
        s.log
    );
    assert_eq!(bazel.output("hello.txt"), b"hello\n");
    let object = bazel.output("lib.o");
    assert!(
        object == local_object(tmp.path()),
        "remote lib.o differs from a local gcc -c"
    );

    // 2. After a clean, the same build is answered by recast's action cache.
    bazel.clean();
    let s = bazel.build(&[&executor, "--noremote_local_fallback"]);
    assert!(
        s.count("remote cache hit") >= 2,
        "expected ≥2 remote cache hits: {}\n{}",
        s.line,
        s.log
    );
    assert_eq!(bazel.output("hello.txt"), b"hello\n");
    assert!(bazel.output("lib.o") == object);

    // 3. Cache only: hits come from recast, a changed action runs locally
    //    and its result is uploaded, so the next clean build hits it too.
    let cache = format!("--remote_cache={url}");
    fs::write(
        bazel.ws.join("BUILD"),
        BUILD.replace("echo hello", "echo hello again"),
    )
    .unwrap();
    bazel.clean();
    let s = bazel.build(&[&cache, "--spawn_strategy=local"]);
    assert_eq!(
        s.count("remote cache hit"),
        1,
        "lib.o from the cache: {}\n{}",
        s.line,
        s.log
    );
    assert_eq!(bazel.output("hello.txt"), b"hello again\n");
    bazel.clean();
    let s = bazel.build(&[&cache, "--spawn_strategy=local"]);
    assert_eq!(
        s.count("remote cache hit"),
        2,
        "both from the cache: {}\n{}",
        s.line,
        s.log
    );
    assert_eq!(bazel.output("hello.txt"), b"hello again\n");
    assert!(bazel.output("lib.o") == object);
}

#[test]
fn bazel_summary_line_is_parsed() {
    let s = Summary::parse("x\nINFO: 3 processes: 1 internal, 2 remote.\nINFO: Build completed\n");
    assert_eq!(s.count("remote"), 2);
    assert_eq!(s.count("internal"), 1);
    assert_eq!(s.count("remote cache hit"), 0);
    let s = Summary::parse("INFO: 3 processes: 2 remote cache hit, 1 internal.\n");
    assert_eq!(s.count("remote cache hit"), 2);
    assert_eq!(s.count("remote"), 0);
}
