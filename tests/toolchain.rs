//! `recast toolchain`: packaging real compilers (gcc, clang, rustc) into
//! CAS trees, the local index, the registry on `recast serve`, and what a
//! user sees on bad input. Runs the real binary on the compilers installed
//! here; clang is optional (skipped with a message unless peers are
//! required).

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{Server, peer, recast_with_cache, run_ok, tempdir};

fn package_json(cache: &Path, compiler: &str, extra: &[&str]) -> serde_json::Value {
    let mut cmd = recast_with_cache(
        cache,
        ["toolchain", "package", "--compiler", compiler, "--json"],
    );
    cmd.args(extra);
    let out = run_ok(&mut cmd);
    serde_json::from_slice(&out.stdout).expect("package --json prints JSON")
}

fn fails(cmd: &mut std::process::Command) -> String {
    let out: Output = cmd.output().expect("spawning recast");
    assert!(
        !out.status.success(),
        "{cmd:?} should have failed; stdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn rustc_sysroot() -> PathBuf {
    let out = std::process::Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .expect("rustc");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

#[test]
fn the_same_toolchain_gives_the_same_root_from_two_fresh_caches() {
    for compiler in ["gcc", "rustc"] {
        let a = tempdir();
        let b = tempdir();
        let ja = package_json(a.path(), compiler, &[]);
        let jb = package_json(b.path(), compiler, &[]);
        assert_eq!(ja["warm"], false);
        assert_eq!(
            ja["manifest"]["root"], jb["manifest"]["root"],
            "{compiler}: root digest differs between two packagings"
        );
        // The second call in the same cache is recognised by stat alone.
        let again = package_json(a.path(), compiler, &[]);
        assert_eq!(
            again["warm"], true,
            "{compiler}: not recognised from the index"
        );
        assert_eq!(again["manifest"], ja["manifest"]);
    }
}

#[test]
fn gcc_bundle_holds_its_programs_loader_and_libraries() {
    let cache = tempdir();
    let j = package_json(cache.path(), "gcc", &[]);
    let m = &j["manifest"];
    assert_eq!(m["identity"]["family"], "gcc");
    assert_eq!(m["host"]["arch"], "x86_64");
    assert_eq!(m["host"]["os"], "linux");
    assert_eq!(m["entry"], "usr/bin/gcc");
    assert_eq!(m["interpreter"], "lib64/ld-linux-x86-64.so.2");
    let programs: Vec<&str> = m["programs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(programs.iter().any(|p| p.ends_with("/cc1")), "{programs:?}");
    assert!(programs.iter().any(|p| p.ends_with("as")), "{programs:?}");
    let out = run_ok(&mut recast_with_cache(
        cache.path(),
        ["toolchain", "package", "--compiler", "gcc", "--list"],
    ));
    let list = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "/cc1",
        "libisl.so",
        "libmpc.so",
        "libc.so.6",
        "/lib64",
        "liblto_plugin.so",
    ] {
        assert!(list.contains(needle), "gcc bundle lacks {needle}:\n{list}");
    }
    let glibc = m["min_glibc"].as_str().unwrap();
    let minor: u32 = glibc.strip_prefix("2.").unwrap().parse().unwrap();
    assert!(minor >= 17, "min glibc {glibc}");
}

#[test]
fn rustc_bundle_holds_the_driver_and_the_std_of_its_target() {
    let cache = tempdir();
    let j = package_json(cache.path(), "rustc", &[]);
    let m = &j["manifest"];
    assert_eq!(m["identity"]["family"], "rustc");
    assert!(
        m["identity"]["commit"]
            .as_str()
            .is_some_and(|c| c.len() >= 9)
    );
    let out = run_ok(&mut recast_with_cache(
        cache.path(),
        ["toolchain", "package", "--compiler", "rustc", "--list"],
    ));
    let list = String::from_utf8(out.stdout).unwrap();
    let sysroot = rustc_sysroot();
    assert!(
        list.contains(&format!("{}/bin/rustc", sysroot.display())),
        "{list}"
    );
    assert!(list.contains("librustc_driver-"), "{list}");
    assert!(
        list.contains("lib/rustlib/x86_64-unknown-linux-gnu/lib/libstd-"),
        "{list}"
    );
    // The rustup proxy in ~/.cargo/bin is not the compiler.
    assert!(!list.contains("/.cargo/bin/rustc"), "{list}");
}

#[test]
fn clang_bundle_holds_its_resource_dir() {
    let Some(clang) = peer("clang") else { return };
    let cache = tempdir();
    let clang = clang.to_str().unwrap().to_string();
    let out = run_ok(&mut recast_with_cache(
        cache.path(),
        ["toolchain", "package", "--compiler", &clang, "--list"],
    ));
    let list = String::from_utf8(out.stdout).unwrap();
    assert!(
        list.contains("/include/stddef.h"),
        "no resource dir headers:\n{list}"
    );
    assert!(
        list.contains("libLLVM-14.so") || list.contains("libclang-cpp"),
        "{list}"
    );
}

#[test]
fn inspect_explains_the_closure_of_rustc() {
    let rustc = rustc_sysroot().join("bin/rustc");
    let out = run_ok(&mut recast_with_cache(
        tempdir().path(),
        ["toolchain".as_ref(), "inspect".as_ref(), rustc.as_os_str()],
    ));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("librustc_driver"), "{text}");
    assert!(text.contains("x86_64"), "{text}");
    let out = run_ok(&mut recast_with_cache(
        tempdir().path(),
        [
            "toolchain".as_ref(),
            "inspect".as_ref(),
            rustc.as_os_str(),
            "--json".as_ref(),
        ],
    ));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["missing"].as_array().unwrap().is_empty(), "{v}");
    let files = v["files"].as_object().unwrap();
    assert!(files.keys().any(|k| k.contains("librustc_driver")), "{v}");
}

#[test]
fn upload_list_show_and_remove_on_recast_serve() {
    let server = Server::start();
    let url = server.url();
    let cache = tempdir();
    let up = |extra: &[&str]| {
        let mut cmd = recast_with_cache(
            cache.path(),
            [
                "toolchain",
                "upload",
                "--compiler",
                "gcc",
                "--remote",
                &url,
                "--json",
            ],
        );
        cmd.args(extra);
        let out = run_ok(&mut cmd);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let first = up(&[]);
    assert!(first["uploaded_blobs"].as_u64().unwrap() > 100, "{first}");
    let second = up(&[]);
    assert_eq!(
        second["uploaded_blobs"], 0,
        "re-upload sent blobs: {second}"
    );
    assert_eq!(second["root"], first["root"]);
    let name = first["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("gcc-12"), "{name}");

    // Another client, with an empty cache, finds it on the server.
    let other = tempdir();
    let out = run_ok(&mut recast_with_cache(
        other.path(),
        ["toolchain", "list", "--remote", &url, "--json"],
    ));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["name"], name.as_str(), "{list}");
    assert_eq!(list[0]["root"], first["root"]);
    let out = run_ok(&mut recast_with_cache(
        other.path(),
        ["toolchain", "show", &name, "--remote", &url, "--json"],
    ));
    let manifest: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(manifest["root"], first["root"]);

    run_ok(&mut recast_with_cache(
        other.path(),
        ["toolchain", "rm", &name, "--remote", &url],
    ));
    let out = run_ok(&mut recast_with_cache(
        other.path(),
        ["toolchain", "list", "--remote", &url, "--json"],
    ));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list, serde_json::json!([]));
    let err = fails(&mut recast_with_cache(
        other.path(),
        ["toolchain", "show", &name, "--remote", &url],
    ));
    assert!(
        err.contains("no toolchain named") && err.contains("toolchain list"),
        "{err}"
    );
}

#[test]
fn bad_compilers_get_a_clear_error() {
    let dir = tempdir();
    let cache = tempdir();
    let run = |path: &Path| {
        let err = fails(&mut recast_with_cache(
            cache.path(),
            [
                "toolchain".as_ref(),
                "package".as_ref(),
                "--compiler".as_ref(),
                path.as_os_str(),
            ],
        ));
        assert!(!err.contains("panicked"), "{err}");
        err
    };
    let missing = dir.path().join("no-such-cc");
    let err = run(&missing);
    assert!(
        err.contains("no-such-cc") && err.contains("no such file"),
        "{err}"
    );

    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello\n").unwrap();
    let err = run(&text);
    assert!(err.contains("notes.txt"), "{err}");

    let err = run(Path::new("/bin/true"));
    assert!(err.contains("/bin/true"), "{err}");

    let a = dir.path().join("loop-a");
    let b = dir.path().join("loop-b");
    std::os::unix::fs::symlink(&b, &a).unwrap();
    std::os::unix::fs::symlink(&a, &b).unwrap();
    let err = run(&a);
    assert!(err.contains("loop-a") || err.contains("loop-b"), "{err}");

    let broken = dir.path().join("broken-cc");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), &broken).unwrap();
    let err = run(&broken);
    assert!(
        err.contains("broken-cc") || err.contains("nowhere"),
        "{err}"
    );
}

/// Regression: `recast toolchain inspect /usr/bin/gcc | head` panicked
/// with "failed printing to stdout: Broken pipe". A reader that goes away
/// ends every printing command quietly, as in coreutils.
#[test]
fn a_closed_pipe_ends_printing_commands_quietly() {
    use std::os::unix::process::ExitStatusExt as _;
    let tmp = tempdir();
    for args in [
        &["toolchain", "inspect", "/usr/bin/gcc"][..],
        &["toolchain", "package", "--compiler", "gcc", "--list"],
        &["platform", "list"],
    ] {
        let mut child = recast_with_cache(tmp.path(), args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The reader is gone before the command prints a line.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
        assert!(
            out.status.success() || out.status.signal() == Some(13),
            "{args:?}: {:?} {stderr}",
            out.status
        );
    }
}
