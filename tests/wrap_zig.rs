//! `zig cc` through the shared pipeline (`recast zig cc …`): zig 0.17 from
//! PyPI's ziglang wheel, its toolchain the static binary plus its `lib/`
//! tree. A compile for a named target — this machine's architecture with
//! glibc, and aarch64 with musl — and one with no `-target` (this
//! machine's CPU and C library, pinned in the action) runs remotely,
//! byte-identical to zig alone, and again is a hit; zig's caches stay
//! inside the action. `-target native` (whatever machine runs it) runs
//! here.
//!
//! A Mac's zig building for Linux: the macOS build of zig 0.16.0 is read
//! from its files (it cannot run here); a client declared as macOS arm64
//! builds zstd with `zig cc -target x86_64-linux-gnu`, every object
//! compiled on Linux workers by the registry's zig 0.16.0 for Linux, on a
//! rooted and a relocated `recast serve` and on NativeLink, byte-identical
//! to that zig's own output, then hits; `recast doctor --compiler` says
//! which twin the workers get, or that there is none.

mod common;

use std::fs;
use std::process::Command;

use common::nativelink::NativeLink;
use common::projects::{count, files, stats, with_recast, zstd_project, zstd_sources};
use common::{BIN, Server, recast_with_cache, run_ok, tempdir};

const SOURCE: &str = "#include <stdio.h>\n#include <string.h>\n#include \"shape.h\"\nint describe(char *buf, int n) { return snprintf(buf, n, \"%d sides\", SIDES) + (int)strlen(buf); }\n";

#[test]
fn zig_cc_for_named_and_native_targets_runs_remotely_byte_identical_then_hits() {
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
    for target in [Some(native_arch.as_str()), Some("aarch64-linux-musl"), None] {
        for debug in [false, true] {
            let mut args = vec!["cc", "-O2", "-c", "a.c", "-o", "a.o"];
            if let Some(t) = target {
                args.splice(2..2, ["-target", t]);
            }
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
                    "{target:?} -g={debug} round {round}: differs from zig alone"
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

    // The native target pinned: this machine's C library in a ZIG_LIBC
    // file of the action, its CPU in -mcpu.
    let pinned: Vec<_> = fs::read_dir(cache.join("answers"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("zig-libc-"))
        .collect();
    assert_eq!(pinned.len(), 1, "{pinned:?}");

    // `-target native` means the machine that runs it: it runs here.
    let mut native = Command::new(BIN);
    native
        .arg(&zig)
        .args(["cc", "-O2", "-target", "native", "-c", "a.c", "-o", "n.o"]);
    zig_env(&mut native);
    run_ok(&mut native);
    assert!(dir.join("n.o").is_file());
    let s = stats(&cache);
    assert_eq!(s["local_reasons"]["zig_native_target"], 1, "{s}");
}

/// The Mac's side, declared: its zig is this machine's zig of the same
/// version, standing in for the Mac build (the scan runs it here).
const DECLARED_MAC: [(&str, &str); 2] = [
    ("RECAST_HOST_PLATFORM", "aarch64-apple-darwin"),
    ("RECAST_WORKER_PLATFORM", "x86_64-unknown-linux-gnu"),
];

#[test]
fn a_macs_zig_cc_builds_zstd_for_linux_with_the_registrys_twin_on_both_layouts_and_nativelink() {
    let Some(zig) = common::peer("zig-0.16.0") else {
        return;
    };
    let mac_zig = common::peers_dir().join("ziglang-0.16.0-macos-arm64/ziglang/zig");
    if !mac_zig.is_file() {
        assert!(
            !common::peers_required(),
            "{} is missing",
            mac_zig.display()
        );
        eprintln!("skipping: {} is missing", mac_zig.display());
        return;
    }
    let tmp = tempdir();

    // The Mac's zig, described without running it.
    let out = run_ok(&mut recast_with_cache(
        &tmp.path().join("inspect"),
        [
            "toolchain".as_ref(),
            "inspect".as_ref(),
            "--json".as_ref(),
            mac_zig.as_os_str(),
        ],
    ));
    let closure: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(closure["identity"]["family"], "zig", "{closure}");
    assert_eq!(closure["identity"]["version"], "0.16.0", "{closure}");
    assert_eq!(
        closure["identity"]["host"], "aarch64-macos-none",
        "{closure}"
    );

    // The reference: zig 0.16.0 for Linux, alone, in the same directory
    // (zig's default debug info names it) with a cache of its own (zig's
    // cache hands out an object compiled in another directory as is).
    let zig_cc = format!("{} cc -target x86_64-linux-gnu", zig.display());
    let make = |dir: &std::path::Path,
                cc: &str,
                recast: Option<(&std::path::Path, &str)>,
                targets: &[&str]| {
        let zig_cache = dir.join("zig-cache");
        let mut cmd = Command::new("make");
        cmd.args(["-j2", "--no-print-directory"])
            .arg(format!("CC={cc}"))
            .args(targets)
            .current_dir(dir)
            .env("ZIG_GLOBAL_CACHE_DIR", &zig_cache)
            .env("ZIG_LOCAL_CACHE_DIR", &zig_cache);
        if let Some((cache, url)) = recast {
            with_recast(&mut cmd, cache, url);
            cmd.envs(DECLARED_MAC);
        }
        run_ok(&mut cmd);
        files(dir, "obj", "o")
    };

    let proj = zstd_project(&tmp.path().join("proj"));
    let want = make(&proj, &zig_cc, None, &[]);
    let n = zstd_sources(&proj);
    assert_eq!(want.len() as u64, n);

    let rooted = Server::start();
    let relocated = Server::start_with(&["--sandbox", "none"]);
    // NativeLink's worker runs actions in a plain directory too; two
    // objects there (CI's budget), the whole library on recast serve.
    let nativelink = NativeLink::start();
    let two = ["obj/common/entropy_common.o", "obj/decompress/zstd_ddict.o"];
    let mut servers = vec![
        (rooted.url(), "recast serve", "Rooted", &[][..]),
        (
            relocated.url(),
            "recast serve --sandbox none",
            "Relocated",
            &[][..],
        ),
    ];
    servers.extend(
        nativelink
            .as_ref()
            .map(|nl| (nl.url(), "NativeLink", "Relocated", &two[..])),
    );
    for (url, name, layout, targets) in servers {
        // The objects this server builds, and what zig alone made of them.
        let want: std::collections::BTreeMap<String, Vec<u8>> = want
            .iter()
            .filter(|(k, _)| targets.is_empty() || targets.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let n = want.len() as u64;
        let cache = tmp.path().join(format!("cache-{}", name.replace(' ', "_")));
        let doctor = |compiler: &std::path::Path, env: &[(&str, &str)]| {
            let mut cmd = recast_with_cache(
                &cache,
                [
                    "doctor".as_ref(),
                    "--compiler".as_ref(),
                    compiler.as_os_str(),
                ],
            );
            cmd.env("RECAST_REMOTE", &url).envs(env.iter().copied());
            let out = cmd.output().unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        };
        // Before the upload, the Mac's zig has no twin: said, not silent.
        let (ok, text) = doctor(&mac_zig, &DECLARED_MAC[1..]);
        assert!(!ok, "{text}");
        assert!(text.contains("has no zig-0.16.0-x86_64-linux"), "{text}");
        // Linux publishes its zig 0.16.0, with the relocated variant.
        let mut upload = recast_with_cache(
            &cache,
            [
                "toolchain".as_ref(),
                "upload".as_ref(),
                "--compiler".as_ref(),
                zig.as_os_str(),
            ],
        );
        upload.env("RECAST_REMOTE", &url);
        run_ok(&mut upload);
        let (ok, text) = doctor(&mac_zig, &DECLARED_MAC[1..]);
        assert!(ok, "{text}");
        assert!(
            text.contains("the workers on x86_64-linux: they get zig-0.16.0-x86_64-linux from the registry, with its relocated variant"),
            "{text}"
        );

        fs::remove_dir_all(proj.join("obj")).unwrap();
        let recast_cc = format!("{BIN} {zig_cc}");
        let got = make(&proj, &recast_cc, Some((&cache, &url)), targets);
        common::projects::assert_same(&format!("zig cc, declared Mac, {name}"), &want, &got);
        let s = stats(&cache);
        assert_eq!(count(&s, "compiles"), n, "{s}");
        assert_eq!(count(&s, "remote_executions"), n, "{s}");
        assert_eq!(count(&s, "registry_toolchains"), n, "{s}");
        assert_eq!(count(&s, "fallbacks"), 0, "{s}");
        assert_eq!(count(&s, "local_runs"), 0, "{s}");
        let probe: Vec<serde_json::Value> = fs::read_dir(cache.join("probes"))
            .unwrap()
            .map(|e| serde_json::from_slice(&fs::read(e.unwrap().path()).unwrap()).unwrap())
            .collect();
        assert_eq!(probe.len(), 1, "{probe:?}");
        assert_eq!(probe[0]["layout"], layout, "{probe:?}");
        // Again after a clean: every object a hit.
        fs::remove_dir_all(proj.join("obj")).unwrap();
        let again = make(&proj, &recast_cc, Some((&cache, &url)), targets);
        common::projects::assert_same(&format!("zig cc hits, {name}"), &want, &again);
        let s = stats(&cache);
        assert_eq!(count(&s, "cache_hits"), n, "{s}");
        assert_eq!(count(&s, "remote_executions"), n, "{s}");
    }

    // A version the registry lacks: doctor names it.
    let Some(zig17) = common::peer("zig") else {
        return;
    };
    let cache = tmp.path().join("cache-recast_serve");
    let mut cmd = recast_with_cache(
        &cache,
        ["doctor".as_ref(), "--compiler".as_ref(), zig17.as_os_str()],
    );
    cmd.env("RECAST_REMOTE", rooted.url()).envs(DECLARED_MAC);
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("runs on aarch64-darwin, the workers on x86_64-linux")
            && text.contains("has no zig-0.17.0-x86_64-linux"),
        "{text}"
    );
}
