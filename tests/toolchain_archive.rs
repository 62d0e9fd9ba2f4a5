//! `recast toolchain export` and `recast toolchain upload --archive`
//! against a real `recast serve`: gcc's bundle written as a tar.gz and
//! published from the archive alone must be the same toolchain (same root,
//! nothing left to upload) as gcc published from the disk.
//!
//! The library side (dist tarballs, sccache layouts, conflicts) is tested
//! in `src/toolchain/archive/tests.rs`.

mod common;

use common::{Server, recast_with_cache, run_ok, tempdir};

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).expect("--json prints JSON")
}

#[test]
fn gcc_exported_then_uploaded_from_the_archive_is_the_same_toolchain() {
    let server = Server::start();
    let url = server.url();
    let cache = tempdir();
    let dir = tempdir();
    let a = dir.path().join("gcc-a.tar.gz");
    let b = dir.path().join("gcc-b.tar.gz");
    for out in [&a, &b] {
        run_ok(&mut recast_with_cache(
            cache.path(),
            [
                "toolchain",
                "export",
                "--compiler",
                "gcc",
                "-o",
                out.to_str().unwrap(),
            ],
        ));
    }
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "export is deterministic"
    );

    let from_disk = json(&run_ok(&mut recast_with_cache(
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
    )));
    // Another client, with nothing cached, publishes from the archive.
    let other = tempdir();
    let from_archive = json(&run_ok(&mut recast_with_cache(
        other.path(),
        [
            "toolchain",
            "upload",
            "--archive",
            a.to_str().unwrap(),
            "--remote",
            &url,
            "--json",
        ],
    )));
    assert_eq!(
        from_archive["root"], from_disk["root"],
        "{from_archive}\n{from_disk}"
    );
    assert_eq!(from_archive["name"], from_disk["name"]);
    // Every file is already there; only the archive's own manifest (its
    // program list differs from a probed gcc's) may be new.
    assert!(
        from_archive["uploaded_bytes"].as_u64().unwrap() < 1 << 20,
        "{from_archive}"
    );

    // A file that is not an archive: a clear error naming it.
    let bad = dir.path().join("bad.tar.gz");
    std::fs::write(&bad, b"not a tarball").unwrap();
    let out = recast_with_cache(
        other.path(),
        [
            "toolchain",
            "upload",
            "--archive",
            bad.to_str().unwrap(),
            "--remote",
            &url,
        ],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.tar.gz"));
}
