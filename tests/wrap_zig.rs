//! `zig cc` through the shared pipeline (`recast zig cc …`): zig 0.17 from
//! PyPI's ziglang wheel, its toolchain the static binary plus its `lib/`
//! tree. A compile for a named target — this machine's architecture with
//! glibc, and aarch64 with musl — runs remotely, byte-identical to zig
//! alone, and again is a hit; zig's caches stay inside the action. A
//! compile for the native target (this machine's CPU and C library) runs
//! here.

mod common;

use std::fs;
use std::process::Command;

use common::projects::stats;
use common::{BIN, Server, run_ok, tempdir};

const SOURCE: &str = "#include <stdio.h>\n#include <string.h>\n#include \"shape.h\"\nint describe(char *buf, int n) { return snprintf(buf, n, \"%d sides\", SIDES) + (int)strlen(buf); }\n";

#[test]
fn zig_cc_for_named_targets_runs_remotely_byte_identical_then_hits() {
    let Some(zig) = common::peer("zig") else {
        return;
    };
    let server = Server::start();
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let dir = tmp.path().join("p");
    fs::create_dir_all(dir.join(".git")).unwrap();
    fs::write(dir.join("shape.h"), "#define SIDES 6\n").unwrap();
    fs::write(dir.join("a.c"), SOURCE).unwrap();
    let native_arch = format!("{}-linux-gnu", std::env::consts::ARCH);
    let zig_env = |cmd: &mut Command| {
        cmd.current_dir(&dir)
            .env("ZIG_GLOBAL_CACHE_DIR", tmp.path().join("zig-cache"))
            .env("ZIG_LOCAL_CACHE_DIR", tmp.path().join("zig-cache"))
            .env("RECAST_CACHE_DIR", &cache)
            .env("RECAST_CONFIG", cache.join("none.toml"))
            .env("RECAST_REMOTE", server.url())
            .env_remove("RECAST_MODE");
    };
    let mut objects = 0;
    for target in [native_arch.as_str(), "aarch64-linux-musl"] {
        for debug in [false, true] {
            let mut args = vec!["cc", "-O2", "-target", target, "-c", "a.c", "-o", "a.o"];
            if debug {
                args.insert(1, "-g");
            }
            let mut plain = Command::new(&zig);
            plain.args(&args);
            zig_env(&mut plain);
            run_ok(&mut plain);
            let want = fs::read(dir.join("a.o")).unwrap();
            for round in 0..2 {
                fs::remove_file(dir.join("a.o")).unwrap();
                let mut wrapped = Command::new(BIN);
                wrapped.arg(&zig).args(&args);
                zig_env(&mut wrapped);
                let out = run_ok(&mut wrapped);
                assert!(
                    out.stderr.is_empty(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                assert!(
                    fs::read(dir.join("a.o")).unwrap() == want,
                    "{target} -g={debug} round {round}: differs from zig alone"
                );
            }
            objects += 1;
        }
    }
    let s = stats(&cache);
    assert_eq!(s["remote_executions"], objects, "{s}");
    assert_eq!(
        s["cache_hits"], objects,
        "the second compile of each hits: {s}"
    );
    assert_eq!(s["fallbacks"], 0, "{s}");
    assert!(
        !dir.join(".recast-zig-cache").exists(),
        "zig's cache stays in the action"
    );

    // The native target asks this machine: it runs here.
    let mut native = Command::new(BIN);
    native
        .arg(&zig)
        .args(["cc", "-O2", "-c", "a.c", "-o", "n.o"]);
    zig_env(&mut native);
    run_ok(&mut native);
    assert!(dir.join("n.o").is_file());
    let s = stats(&cache);
    assert_eq!(s["local_reasons"]["zig_native_target"], 1, "{s}");
}
