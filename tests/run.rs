//! `recast run` end to end: the real binary against a real `recast serve` on
//! 127.0.0.1, with real commands and real gcc. Outputs are compared byte for
//! byte with the same command run locally.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Server, json_summary, noise, recast, run_ok, tempdir};

/// Copies a directory tree (files, symlinks, dirs) for a local reference run.
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let ty = entry.file_type().unwrap();
        if ty.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if ty.is_dir() {
            copy_tree(&src, &dst);
        } else {
            fs::copy(&src, &dst).unwrap();
        }
    }
}

fn write(root: &Path, rel: &str, data: impl AsRef<[u8]>) -> PathBuf {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, data).unwrap();
    p
}

fn run_remote(
    server: &Server,
    root: &Path,
    outputs: &[&str],
    argv: &[&str],
) -> std::process::Output {
    let mut cmd = recast(["run", "--json", "--remote", &server.url(), "--input-root"]);
    cmd.arg(root);
    for o in outputs {
        cmd.args(["--output", o]);
    }
    cmd.arg("--").args(argv);
    cmd.output().unwrap()
}

#[test]
fn shell_command_outputs_match_a_local_run() {
    let server = Server::start();
    let tmp = tempdir();
    let remote_root = tmp.path().join("remote");
    write(&remote_root, "in.txt", "hello remote world\n");
    write(
        &remote_root,
        "tools/run.sh",
        "#!/bin/sh\necho from-script\n",
    );
    let script = remote_root.join("tools/run.sh");
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let local_root = tmp.path().join("local");
    copy_tree(&remote_root, &local_root);

    let script = "tr a-z A-Z < in.txt > out.txt; ./tools/run.sh > ran.txt; \
                  mkdir -p gen/deep; echo x > gen/deep/f; cp tools/run.sh gen/exe; \
                  ln -s ../out.txt gen/link; echo to-stdout; echo to-stderr >&2; exit 3";
    let argv = ["/bin/sh", "-c", script];
    let out = run_remote(
        &server,
        &remote_root,
        &["out.txt", "ran.txt", "gen/"],
        &argv,
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(stdout.starts_with("to-stdout\n"), "{stdout}");
    assert_eq!(json_summary(&out.stdout)["exit_code"], 3);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "to-stderr\n");

    let local = Command::new("/bin/sh")
        .args(["-c", script])
        .current_dir(&local_root)
        .output()
        .unwrap();
    assert_eq!(local.status.code(), Some(3));
    for f in ["out.txt", "ran.txt", "gen/deep/f", "gen/exe"] {
        assert_eq!(
            fs::read(remote_root.join(f)).unwrap(),
            fs::read(local_root.join(f)).unwrap(),
            "{f} differs from a local run"
        );
    }
    assert_eq!(
        fs::read_to_string(remote_root.join("out.txt")).unwrap(),
        "HELLO REMOTE WORLD\n"
    );
    let mode = fs::metadata(remote_root.join("gen/exe"))
        .unwrap()
        .permissions()
        .mode();
    assert!(mode & 0o100 != 0, "exec bit kept on gen/exe");
    assert_eq!(
        fs::read_link(remote_root.join("gen/link")).unwrap(),
        Path::new("../out.txt")
    );
}

#[test]
fn gcc_compile_is_byte_identical_to_local() {
    let server = Server::start();
    let tmp = tempdir();
    let root = tmp.path().join("remote");
    write(
        &root,
        "include/greet.h",
        "#define GREETING \"hi\"\nint greet(int);\n",
    );
    write(
        &root,
        "src/hello.c",
        "#include \"greet.h\"\n#include <stdio.h>\nint greet(int n) { printf(\"%s %d\\n\", GREETING, n); return n * 2; }\n",
    );
    let local = tmp.path().join("local");
    copy_tree(&root, &local);
    let argv = [
        "gcc",
        "-O2",
        "-Iinclude",
        "-c",
        "src/hello.c",
        "-o",
        "hello.o",
    ];
    let out = run_remote(&server, &root, &["hello.o"], &argv);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    run_ok(Command::new(argv[0]).args(&argv[1..]).current_dir(&local));
    let remote_obj = fs::read(root.join("hello.o")).unwrap();
    assert!(remote_obj.starts_with(b"\x7fELF"));
    assert_eq!(remote_obj, fs::read(local.join("hello.o")).unwrap());

    // A compile error is replayed, not hidden.
    write(&root, "src/bad.c", "int f( { return }\n");
    let out = run_remote(
        &server,
        &root,
        &["bad.o"],
        &["gcc", "-c", "src/bad.c", "-o", "bad.o"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("src/bad.c"));
    assert!(!root.join("bad.o").exists());
}

#[test]
fn second_identical_run_is_answered_from_the_action_cache() {
    let server = Server::start();
    let tmp = tempdir();
    write(tmp.path(), "a.txt", "abc");
    let argv = [
        "/bin/sh",
        "-c",
        "sha256sum a.txt > sum.txt; date +%s%N > when.txt",
    ];
    let first = run_remote(&server, tmp.path(), &["sum.txt", "when.txt"], &argv);
    assert!(first.status.success());
    assert_eq!(json_summary(&first.stdout)["cached"], false);
    let when = fs::read(tmp.path().join("when.txt")).unwrap();
    // Outputs left by the first run are not inputs: the digest is the same.
    fs::write(tmp.path().join("when.txt"), "stale").unwrap();
    fs::remove_file(tmp.path().join("sum.txt")).unwrap();

    let second = run_remote(&server, tmp.path(), &["sum.txt", "when.txt"], &argv);
    assert!(second.status.success());
    let s = json_summary(&second.stdout);
    assert_eq!(s["cached"], true);
    assert_eq!(
        s["action_digest"],
        json_summary(&first.stdout)["action_digest"]
    );
    // Same bytes as the first run: the result came from the cache, not a rerun.
    assert_eq!(fs::read(tmp.path().join("when.txt")).unwrap(), when);
    assert!(
        fs::read_to_string(tmp.path().join("sum.txt"))
            .unwrap()
            .contains("a.txt")
    );
}

#[test]
fn blobs_over_4_and_64_mib_travel_through_bytestream() {
    let server = Server::start();
    let tmp = tempdir();
    let small = noise(5 << 20, 1);
    let big = noise(70 << 20, 2);
    write(tmp.path(), "five", &small);
    write(tmp.path(), "seventy", &big);
    let argv = [
        "/bin/sh",
        "-c",
        "sha256sum five seventy > sums; cat seventy five > joined",
    ];
    let out = run_remote(&server, tmp.path(), &["sums", "joined"], &argv);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sums = fs::read_to_string(tmp.path().join("sums")).unwrap();
    let local_sums = Command::new("sha256sum")
        .args(["five", "seventy"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert_eq!(sums.as_bytes(), local_sums.stdout.as_slice());
    let joined = fs::read(tmp.path().join("joined")).unwrap();
    assert_eq!(joined.len(), big.len() + small.len());
    assert!(joined[..big.len()] == big[..] && joined[big.len()..] == small[..]);
}

#[test]
fn restart_keeps_the_cas_and_the_action_cache() {
    let tmp = tempdir();
    let dir = tmp.path().join("server");
    let work = tmp.path().join("work");
    write(&work, "in", "persist me");
    let argv = ["/bin/sh", "-c", "cat in in > out"];
    let mut server = Server::start_in(&dir, &[]);
    let first = run_remote(&server, &work, &["out"], &argv);
    assert!(first.status.success());
    assert_eq!(json_summary(&first.stdout)["cached"], false);
    server.stop();

    // A write that a crash left behind must be cleaned at start.
    let stray = dir.join("tmp").join("stray-upload");
    fs::create_dir_all(stray.parent().unwrap()).unwrap();
    fs::write(&stray, "half a blob").unwrap();
    let stray_in_shard = dir.join("cas").join("00").join("tmp.stray");
    fs::create_dir_all(stray_in_shard.parent().unwrap()).unwrap();
    fs::write(&stray_in_shard, "another half").unwrap();

    let server = Server::start_in(&dir, &[]);
    fs::remove_file(work.join("out")).unwrap();
    let second = run_remote(&server, &work, &["out"], &argv);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let s = json_summary(&second.stdout);
    assert_eq!(s["cached"], true, "the action cache survived the restart");
    assert_eq!(
        s["uploaded_blobs"], 0,
        "the CAS survived the restart: nothing re-uploaded"
    );
    assert_eq!(
        fs::read_to_string(work.join("out")).unwrap(),
        "persist mepersist me"
    );
    assert!(!stray.exists(), "stray temp file removed at start");
    assert!(
        !stray_in_shard.exists(),
        "stray temp file in a shard removed at start"
    );
}

#[test]
fn fifty_concurrent_runs_all_succeed() {
    let server = Server::start();
    let tmp = tempdir();
    let url = server.url();
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let root = tmp.path().join(format!("job{i}"));
            write(&root, "n", format!("{i}\n"));
            let url = url.clone();
            std::thread::spawn(move || {
                let mut cmd = recast(["run", "--remote", &url, "--output", "out", "--input-root"]);
                cmd.arg(&root)
                    .args(["--", "/bin/sh", "-c", "echo $(( $(cat n) * 3 )) > out"]);
                let out = cmd.output().unwrap();
                (i, root, out)
            })
        })
        .collect();
    for h in handles {
        let (i, root, out) = h.join().unwrap();
        assert!(
            out.status.success(),
            "job {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            fs::read_to_string(root.join("out")).unwrap(),
            format!("{}\n", i * 3)
        );
    }
}
