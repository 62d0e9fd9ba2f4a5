//! Load on one `recast serve`: 200 wrapped compiles at once (`xargs -P
//! 200`), then 4 clients each running `make -j2` at the same time. Zero
//! errors, every object right, and `recast serve --verify` finds every
//! stored blob whole afterwards.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::{BIN, Server, recast_with_cache, run_ok, tempdir};

fn env(cmd: &mut Command, cache: &Path, url: &str) {
    cmd.env("RECAST_CACHE_DIR", cache)
        .env("RECAST_CONFIG", cache.join("no-such-config.toml"))
        .env("RECAST_REMOTE", url)
        .env_remove("RECAST_MODE");
}

fn source(i: usize) -> String {
    format!(
        "#include <stdio.h>\nint f{i}(int x) {{ return x * {i} + {}; }}\nvoid p{i}(void) {{ printf(\"%d\\n\", f{i}(2)); }}\n",
        i % 7
    )
}

#[test]
fn two_hundred_concurrent_compiles_and_four_makes_without_an_error() {
    let tmp = tempdir();
    let state = tmp.path().join("server");
    let mut server = Server::start_in(&state, &[]);
    let cache = tmp.path().join("cache");
    let dir = tmp.path().join("many");
    fs::create_dir_all(&dir).unwrap();
    let names: Vec<String> = (0..200).map(|i| format!("s{i}.c")).collect();
    for (i, n) in names.iter().enumerate() {
        fs::write(dir.join(n), source(i)).unwrap();
    }
    fs::write(dir.join("list"), names.join("\n")).unwrap();
    let mut xargs = Command::new("sh");
    xargs
        .arg("-c")
        .arg(format!(
            "xargs -P 200 -n 1 sh -c '{BIN} gcc -O2 -c \"$0\" -o \"$0.o\"' < list"
        ))
        .current_dir(&dir);
    env(&mut xargs, &cache, &server.url());
    run_ok(&mut xargs);
    for (i, n) in names.iter().enumerate() {
        let remote = fs::read(dir.join(format!("{n}.o"))).unwrap();
        let local = dir.join(format!("{n}.local.o"));
        run_ok(
            Command::new("gcc")
                .args(["-O2", "-c", n, "-o"])
                .arg(&local)
                .current_dir(&dir),
        );
        assert_eq!(remote, fs::read(&local).unwrap(), "{n} (#{i}) differs");
    }
    let out = run_ok(&mut recast_with_cache(&cache, ["stats", "--json"]));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["compiles"], 200, "{s}");
    assert_eq!(s["fallbacks"], 0, "{s}");
    assert_eq!(s["remote_executions"], 200, "{s}");

    // Four clients, each with its own cache and project copy, at once.
    let makefile = "OBJ := $(patsubst %.c,%.o,$(wildcard *.c))\nall: $(OBJ)\n%.o: %.c\n\t$(CC) -O1 -c $< -o $@\n";
    let mut children = Vec::new();
    for c in 0..4 {
        let proj = tmp.path().join(format!("client{c}"));
        fs::create_dir_all(&proj).unwrap();
        for i in 0..24 {
            fs::write(proj.join(format!("m{i}.c")), source(1000 + i)).unwrap();
        }
        fs::write(proj.join("Makefile"), makefile).unwrap();
        let mut make = Command::new("make");
        make.args(["-j2", "--no-print-directory", "-s"])
            .arg(format!("CC={BIN} gcc"))
            .current_dir(&proj);
        env(
            &mut make,
            &tmp.path().join(format!("cache{c}")),
            &server.url(),
        );
        children.push((c, make.spawn().unwrap()));
    }
    for (c, child) in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "client {c}'s make failed");
        let s = run_ok(&mut recast_with_cache(
            &tmp.path().join(format!("cache{c}")),
            ["stats", "--json"],
        ));
        let s: serde_json::Value = serde_json::from_slice(&s.stdout).unwrap();
        assert_eq!(s["compiles"], 24, "client {c}: {s}");
        assert_eq!(s["fallbacks"], 0, "client {c}: {s}");
    }

    server.stop();
    let out = Command::new(BIN)
        .args(["serve", "--verify", "--dir"])
        .arg(&state)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(" 0 corrupt"),
        "{text}"
    );
}
