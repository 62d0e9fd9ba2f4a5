//! Archives built here from the toolchains installed on this machine: a
//! Rust dist tarball (and its standalone components) made from rustup's
//! sysroot, and an sccache-style rooted archive of gcc's bundle written by
//! [`export`]. A missing compiler prints `skipping: …`, or fails under
//! `RECAST_REQUIRE_PEERS=1`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;
use crate::toolchain::HostFs;
use crate::toolchain::bundle::{self, Bundle};
use crate::toolchain::family::{Family, parse_rustc_vv};
use crate::toolchain::index::{self, FileIndex};
use crate::toolchain::inspect::{self, ClosureOptions};
use crate::toolchain::listing::{Item, Listing};
use crate::toolchain::local::{self, Request};

fn env_path() -> Vec<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default()
}

fn skip(why: &str) {
    if std::env::var("RECAST_REQUIRE_PEERS").is_ok_and(|v| v == "1") {
        panic!("{why} (RECAST_REQUIRE_PEERS=1)");
    }
    eprintln!("skipping: {why}");
}

fn stdout(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn package(
    fs: &dyn crate::toolchain::FileSource,
    c: &crate::toolchain::family::Contents,
) -> Bundle {
    bundle::package(
        fs,
        c,
        &ClosureOptions::default(),
        &mut FileIndex::in_memory(),
    )
    .unwrap_or_else(|e| panic!("packaging {}: {e}", c.entry.display()))
}

/// A tar(.gz) at `out` holding `files`: archive path → host path.
fn write_tar(out: &Path, files: &[(String, PathBuf)], extra: &[(String, Vec<u8>)], gzip: bool) {
    let file = std::fs::File::create(out).unwrap();
    let w: Box<dyn std::io::Write> = if gzip {
        Box::new(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::fast(),
        ))
    } else {
        Box::new(file)
    };
    let mut b = tar::Builder::new(w);
    for (name, data) in extra {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    for (name, host) in files {
        b.append_path_with_name(host, name).unwrap();
    }
    b.into_inner().unwrap().flush().unwrap();
}

/// Every file under `dir` (recursively), as paths relative to it.
fn walk(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir.join(rel)).unwrap() {
        let e = e.unwrap();
        let r = rel.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            walk(dir, &r, out);
        } else {
            out.push(r);
        }
    }
}

/// The host files rustc's binaries load from outside its sysroot (libc,
/// libm, libgcc_s, ld.so), as a rooted archive: what a dist tarball lacks.
fn base_system_archive(sysroot: &Path, lib_files: &[PathBuf], out: &Path) {
    let mut roots = vec![sysroot.join("bin/rustc")];
    roots.extend(lib_files.iter().map(|f| sysroot.join(f)));
    let closure = inspect::closure(&HostFs, &roots, &ClosureOptions::default()).unwrap();
    let mut listing = Listing::new();
    for (path, entry) in &closure.files {
        if path.starts_with(sysroot) {
            continue;
        }
        let item = match &entry.kind {
            inspect::EntryKind::File { executable, size } => Item::File {
                executable: *executable,
                size: *size,
            },
            inspect::EntryKind::Symlink { target } => Item::Symlink {
                target: target.clone(),
            },
        };
        listing.items.insert(path.clone(), item);
    }
    let paths: Vec<PathBuf> = listing
        .items
        .iter()
        .filter(|(_, i)| matches!(i, Item::File { .. }))
        .map(|(p, _)| p.clone())
        .collect();
    assert!(
        paths
            .iter()
            .any(|p| p.to_string_lossy().contains("libc.so")),
        "{paths:?}"
    );
    let files = index::digest_all(&HostFs, &paths, &mut FileIndex::in_memory()).unwrap();
    export_listing(&HostFs, &listing, &files, out).unwrap();
}

#[test]
fn dist_tarballs_of_the_installed_rustc_import_with_its_identity_and_one_root() {
    let (Some(vv), Some(sysroot)) = (
        stdout("rustc", &["-vV"]),
        stdout("rustc", &["--print", "sysroot"]),
    ) else {
        return skip("rustc not on PATH");
    };
    let vv = parse_rustc_vv(&vv).unwrap();
    let sysroot = PathBuf::from(sysroot.trim());
    let host = vv.host.clone();
    let release = vv.release.clone();
    let commit = vv.commit.clone().unwrap_or_default();
    let dir = tempfile::tempdir().unwrap();

    let mut lib_files: Vec<PathBuf> = std::fs::read_dir(sysroot.join("lib"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| {
            e.file_type().unwrap().is_file() && e.file_name().to_string_lossy().contains(".so")
        })
        .map(|e| PathBuf::from("lib").join(e.file_name()))
        .collect();
    lib_files.sort();
    let mut std_files = Vec::new();
    walk(
        &sysroot,
        &PathBuf::from(format!("lib/rustlib/{host}/lib")),
        &mut std_files,
    );
    std_files.sort();
    let std_comp = format!("rust-std-{host}");
    let version_text = stdout("rustc", &["-V"])
        .unwrap()
        .trim()
        .trim_start_matches("rustc ")
        .to_string();

    // rust-<ver>-<host>/{components,version,git-commit-hash,rustc/…,rust-std-<host>/…}
    let comp_entries = |top: &str, comp: &str, files: &[PathBuf]| -> Vec<(String, PathBuf)> {
        files
            .iter()
            .map(|f| (format!("{top}/{comp}/{}", f.display()), sysroot.join(f)))
            .collect()
    };
    let meta = |top: &str, comps: &str| {
        vec![
            (
                format!("{top}/components"),
                format!("{comps}\n").into_bytes(),
            ),
            (
                format!("{top}/version"),
                format!("{version_text}\n").into_bytes(),
            ),
            (
                format!("{top}/git-commit-hash"),
                format!("{commit}\n").into_bytes(),
            ),
            (
                format!("{top}/rustc/manifest.in"),
                b"file:bin/rustc\n".to_vec(),
            ),
        ]
    };
    let mut rustc_files = vec![PathBuf::from("bin/rustc")];
    rustc_files.extend(lib_files.iter().cloned());
    let top = format!("rust-{release}-{host}");
    let mut all = comp_entries(&top, "rustc", &rustc_files);
    all.extend(comp_entries(&top, &std_comp, &std_files));
    let full = dir.path().join(format!("{top}.tar.gz"));
    write_tar(
        &full,
        &all,
        &meta(&top, &format!("rustc\n{std_comp}")),
        true,
    );

    // The same as two standalone component tarballs, uncompressed.
    let rtop = format!("rustc-{release}-{host}");
    let rustc_tar = dir.path().join(format!("{rtop}.tar"));
    write_tar(
        &rustc_tar,
        &comp_entries(&rtop, "rustc", &rustc_files),
        &meta(&rtop, "rustc"),
        false,
    );
    let stop = format!("rust-std-{release}-{host}");
    let std_tar = dir.path().join(format!("{stop}.tar"));
    let mut std_meta = meta(&stop, &std_comp);
    std_meta.pop();
    write_tar(
        &std_tar,
        &comp_entries(&stop, &std_comp, &std_files),
        &std_meta,
        false,
    );

    let base = dir.path().join("base.tar.gz");
    base_system_archive(&sysroot, &lib_files, &base);

    let fs = open(&[full.clone(), base.clone()]).unwrap();
    let dist = fs.layout().rust.clone().expect("a dist layout");
    assert_eq!(
        dist.sysroot,
        PathBuf::from(format!("/opt/recast/rust-{release}-{host}"))
    );
    assert_eq!(dist.targets, vec![host.clone()]);
    assert_eq!(fs.layout().rooted, vec![base.clone()]);
    let contents = import(&fs, None, &Default::default()).unwrap();
    assert_eq!(contents.identity.family, Family::Rustc);
    assert_eq!(contents.identity.version, vv.release);
    assert_eq!(contents.identity.commit, vv.commit);
    assert_eq!(contents.identity.host, vv.host);
    assert!(
        contents
            .libraries
            .iter()
            .any(|l| l.to_string_lossy().contains("librustc_driver-"))
    );
    let first = package(&fs, &contents);
    assert_eq!(
        first.manifest.entry,
        format!("opt/recast/rust-{release}-{host}/bin/rustc")
    );
    assert!(first.manifest.interpreter.is_some());
    drop(fs);

    let again = open(&[full.clone(), base.clone()]).unwrap();
    let second = package(&again, &import(&again, None, &Default::default()).unwrap());
    assert_eq!(first.tree.root, second.tree.root, "same archive, same root");
    drop(again);

    let split = open(&[rustc_tar, std_tar, base]).unwrap();
    let contents = import(&split, Some(Path::new("bin/rustc")), &Default::default()).unwrap();
    let third = package(&split, &contents);
    assert_eq!(
        first.tree.root, third.tree.root,
        "components merge as the full tarball does"
    );

    // A target the archives hold no standard library for says what to add.
    let err = import(
        &split,
        None,
        &crate::toolchain::family::ProbeOptions {
            targets: vec!["aarch64-apple-darwin".into()],
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("rust-std-"), "{err}");
}

fn gcc_bundle(cache: &Path) -> Option<Bundle> {
    let Some(gcc) = env_path()
        .into_iter()
        .map(|d| d.join("gcc"))
        .find(|p| p.is_file())
    else {
        skip("gcc not on PATH");
        return None;
    };
    let req = Request {
        compiler: gcc,
        path: env_path(),
        ..Default::default()
    };
    Some(local::resolve(cache, &req).unwrap().bundle)
}

#[test]
fn gcc_bundle_exports_byte_identically_and_imports_back_to_the_same_root() {
    let dir = tempfile::tempdir().unwrap();
    let Some(bundle) = gcc_bundle(&dir.path().join("cache")) else {
        return;
    };
    let a = dir.path().join("a.tar.gz");
    let b = dir.path().join("b.tar.gz");
    let stats = export(&bundle, &HostFs, &a).unwrap();
    export(&bundle, &HostFs, &b).unwrap();
    let (ba, bb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(ba, bb, "same bundle, same bytes");
    assert_eq!(stats.files, bundle.manifest.files);
    assert_eq!(stats.size, bundle.manifest.size);
    assert_eq!(stats.compressed, ba.len() as u64);

    // What sccache-dist unpacks: relative paths, root-owned, epoch mtime.
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(&ba[..]));
    let mut names = Vec::new();
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        assert_eq!(
            (h.mtime().unwrap(), h.uid().unwrap(), h.gid().unwrap()),
            (0, 0, 0)
        );
        assert!(matches!(h.mode().unwrap(), 0o755 | 0o644 | 0o777));
        let p = e.path().unwrap().into_owned();
        assert!(!p.is_absolute(), "{}", p.display());
        if h.entry_type() == tar::EntryType::Symlink {
            assert!(!e.link_name().unwrap().unwrap().is_absolute());
        }
        names.push(p);
    }
    let mut sorted = names.clone();
    sorted.sort_by_key(|p| p.to_string_lossy().into_owned());
    assert_eq!(names, sorted, "entries sorted by path");

    let fs = open(std::slice::from_ref(&a)).unwrap();
    assert_eq!(fs.layout().rust, None);
    let contents = import(&fs, None, &Default::default()).unwrap();
    assert_eq!(contents.identity.family, Family::Gcc);
    assert_eq!(contents.identity.version, bundle.manifest.identity.version);
    assert_eq!(contents.identity.target, bundle.manifest.identity.target);
    let back = package(&fs, &contents);
    assert_eq!(
        back.tree.root, bundle.tree.root,
        "export → import keeps the tree"
    );
    let again = package(
        &fs,
        &import(
            &fs,
            Some(Path::new(&bundle.manifest.entry)),
            &Default::default(),
        )
        .unwrap(),
    );
    assert_eq!(again.tree.root, back.tree.root);
}

#[test]
fn corrupt_and_missing_archives_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.tar.gz");
    std::fs::write(&text, "not an archive\n".repeat(100)).unwrap();
    let missing = dir.path().join("missing.tar");
    // A real gzip stream cut short.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(&mut gz);
    let mut h = tar::Header::new_gnu();
    h.set_size(100_000);
    h.set_mode(0o755);
    tar.append_data(&mut h, "usr/bin/gcc", &noise(100_000)[..])
        .unwrap();
    tar.finish().unwrap();
    drop(tar);
    let bytes = gz.finish().unwrap();
    let cut = dir.path().join("cut.tgz");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    for p in [&text, &missing, &cut] {
        let err = open(std::slice::from_ref(p)).unwrap_err();
        assert!(err.to_string().contains(&*p.to_string_lossy()), "{err}");
    }
    // Readable, but holding no compiler: say so, and what to pass.
    let tools = dir.path().join("tools.tar");
    write_tar(
        &tools,
        &[],
        &[("usr/share/doc/x".into(), b"doc".to_vec())],
        false,
    );
    let fs = open(&[tools]).unwrap();
    let err = import(&fs, None, &Default::default()).unwrap_err();
    assert!(err.to_string().contains("--entry"), "{err}");
}

/// Incompressible bytes, so a cut lands inside the deflate stream.
pub(super) fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Dist tarballs in memory: `(top, components, version, files)`.
fn dist(top: &str, comps: &str, version: &str, files: &[(&str, &[u8])]) -> Raw {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: String, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        b.append_data(&mut h, name, data).unwrap();
    };
    add(format!("{top}/components"), comps.as_bytes());
    add(format!("{top}/version"), version.as_bytes());
    for (name, data) in files {
        add(format!("{top}/{name}"), data);
    }
    let bytes = b.into_inner().unwrap();
    read::read_from(Path::new(&format!("{top}.tar")), &bytes[..]).unwrap()
}

#[test]
fn dist_tarballs_must_agree_and_hold_a_rustc() {
    let v1 = "1.91.0 (f8297e351 2025-10-28)";
    let rustc = || {
        dist(
            "rustc-1.91.0-x86_64-unknown-linux-gnu",
            "rustc",
            v1,
            &[("rustc/bin/rustc", b"a")],
        )
    };
    let std = |v: &str| {
        dist(
            "rust-std-1.91.0-aarch64-apple-darwin",
            "rust-std-aarch64-apple-darwin",
            v,
            &[(
                "rust-std-aarch64-apple-darwin/lib/rustlib/aarch64-apple-darwin/lib/libstd.rlib",
                b"s",
            )],
        )
    };
    assert_eq!(
        detect_layout(&rustc()),
        ArchiveKind::RustDist {
            top: "rustc-1.91.0-x86_64-unknown-linux-gnu".into()
        }
    );
    let fs = from_raws(vec![rustc(), std(v1)]).unwrap();
    let d = fs.layout().rust.clone().unwrap();
    assert_eq!(d.host, "x86_64-unknown-linux-gnu");
    assert_eq!(d.targets, vec!["aarch64-apple-darwin".to_string()]);
    assert_eq!(d.release, "1.91.0");
    assert!(
        fs.node(Path::new(
            "/opt/recast/rust-1.91.0-x86_64-unknown-linux-gnu/bin/rustc"
        ))
        .is_some()
    );
    assert!(
        fs.node(
            &d.sysroot
                .join("lib/rustlib/aarch64-apple-darwin/lib/libstd.rlib")
        )
        .is_some()
    );
    // The host's own std is missing: say which tarball to add.
    let err = import(&fs, None, &Default::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("rust-std-1.91.0-x86_64-unknown-linux-gnu"),
        "{err}"
    );

    let err = from_raws(vec![rustc(), std("1.92.0 (0123456ab 2025-12-01)")]).unwrap_err();
    assert!(err.to_string().contains("one release"), "{err}");
    let err = from_raws(vec![std(v1)]).unwrap_err();
    assert!(err.to_string().contains("no rustc component"), "{err}");
    let other = dist(
        "rustc-1.91.0-x86_64-unknown-linux-gnu",
        "rustc",
        v1,
        &[("rustc/bin/rustc", b"b")],
    );
    let err = from_raws(vec![rustc(), other]).unwrap_err();
    assert!(matches!(err, ArchiveError::Conflict { .. }), "{err}");
}
