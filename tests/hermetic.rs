//! The hermetic proof: gcc, clang and rustc, packaged by `recast toolchain`
//! and shipped with the action (`recast run --toolchain`), compile real
//! sources to output byte-identical to the installed compiler's, on workers
//! where nothing but the input root exists:
//! - `recast serve --sandbox bwrap`: the input root is `/`, no host bind;
//! - buildbox-casd 1.4.25 with buildbox-run (bubblewrap) and no host binds.
//!
//! So the loader, libc, cc1, as, librustc_driver and the std rlibs all come
//! from the bundle. The sources include only headers the compilers carry
//! themselves (libc's come from the C wrapper's header scan, not the
//! toolchain). Needs bwrap and casd (peers); clang is optional like the
//! other peers.

mod common;

use std::fs;
use std::process::Command;

use common::casd::Casd;
use common::{Server, peer, recast_with_cache, run_ok, tempdir};

/// One compile: the compiler, its arguments, the source and the output.
struct Case {
    compiler: String,
    args: Vec<&'static str>,
    source: (&'static str, &'static str),
    output: &'static str,
}

const C_SOURCE: &str = "#include <stddef.h>\n#include <stdarg.h>\n#include <stdbool.h>\n#include <float.h>\n\
struct pair { long a; char b; };\n\
size_t offset(void) { return offsetof(struct pair, b); }\n\
bool tiny(double x) { return x < DBL_EPSILON; }\n\
int sum(int n, ...) {\n  va_list ap;\n  va_start(ap, n);\n  int s = 0;\n\
  for (int i = 0; i < n; i++)\n    s += va_arg(ap, int);\n  va_end(ap);\n  return s;\n}\n";

const RUST_SOURCE: &str = "//! A small library.\n\
pub fn triple(x: u64) -> u64 { x.wrapping_mul(3) }\n\
pub fn words(s: &str) -> Vec<String> { s.split_whitespace().map(str::to_owned).collect() }\n";

fn cases() -> Vec<Case> {
    let mut cases = vec![
        Case {
            compiler: "gcc".into(),
            args: vec!["-O2", "-Wall", "-c", "lib.c", "-o", "lib.o"],
            source: ("lib.c", C_SOURCE),
            output: "lib.o",
        },
        Case {
            compiler: "rustc".into(),
            args: vec![
                "--crate-type=lib",
                "--crate-name=hermetic",
                "--edition=2021",
                "-Copt-level=2",
                "lib.rs",
                "-o",
                "libhermetic.rlib",
            ],
            source: ("lib.rs", RUST_SOURCE),
            output: "libhermetic.rlib",
        },
    ];
    if let Some(clang) = peer("clang") {
        cases.push(Case {
            compiler: clang.to_string_lossy().into_owned(),
            args: vec!["-O2", "-Wall", "-c", "lib.c", "-o", "lib.o"],
            source: ("lib.c", C_SOURCE),
            output: "lib.o",
        });
    }
    cases
}

/// Compiles `case` through `url` with its toolchain shipped, then locally
/// in the same directory (rustc records where it ran), and asserts the
/// outputs are the same bytes.
fn remote_matches_local(url: &str, case: &Case) {
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let dir = tmp.path().join("src");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(case.source.0), case.source.1).unwrap();
    let mut cmd = recast_with_cache(&cache, ["run", "--remote", url, "--input-root"]);
    cmd.arg(&dir)
        .args(["--toolchain", &case.compiler, "--output", case.output, "--"])
        .arg(&case.compiler)
        .args(&case.args);
    run_ok(&mut cmd);
    let out = dir.join(case.output);
    let remote = fs::read(&out).unwrap();
    fs::remove_file(&out).unwrap();
    run_ok(
        Command::new(&case.compiler)
            .args(&case.args)
            .current_dir(&dir),
    );
    let local = fs::read(&out).unwrap();
    assert!(!local.is_empty());
    assert!(
        remote == local,
        "{}: remote {} ({} bytes) differs from local ({} bytes)",
        case.compiler,
        case.output,
        remote.len(),
        local.len()
    );
}

#[test]
fn toolchains_compile_alone_on_recast_serve_in_a_bare_sandbox() {
    if peer("bwrap").is_none() {
        return;
    }
    let server = Server::start_with(&["--sandbox", "bwrap"]);
    for case in cases() {
        remote_matches_local(&server.url(), &case);
    }
    // The sandbox is real: a host tool outside the input root is not there.
    let tmp = tempdir();
    let out = recast_with_cache(
        &tmp.path().join("cache"),
        ["run", "--remote", &server.url(), "--input-root"],
    )
    .arg(tmp.path())
    .args(["--", "/bin/sh", "-c", "true"])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(127), "{out:?}");
}

#[test]
fn toolchains_compile_alone_on_buildbox_casd_without_host_binds() {
    let Some(casd) = Casd::start_bare() else {
        return;
    };
    for case in cases() {
        remote_matches_local(&casd.url(), &case);
    }
}
