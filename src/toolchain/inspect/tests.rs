//! The closure of the real compilers installed here (rustc, gcc, cc1,
//! clang), checked against this machine's own loader
//! (`LD_TRACE_LOADED_OBJECTS`), and against the closure's promise that its
//! entries alone reproduce every path the loader opens. Also: bad roots,
//! scripts, and parsing truncated or random bytes. Shared helpers for the
//! other test files live here too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;
use crate::toolchain::HostFs;

/// `path` if it exists, else `None` after saying why (a failure under
/// `RECAST_REQUIRE_PEERS=1`).
pub(super) fn need(path: &str) -> Option<PathBuf> {
    let p = PathBuf::from(path);
    if p.exists() {
        return Some(p);
    }
    let why = format!("{path} is not installed");
    if std::env::var("RECAST_REQUIRE_PEERS").is_ok_and(|v| v == "1") {
        panic!("{why} (RECAST_REQUIRE_PEERS=1)");
    }
    eprintln!("skipping: {why}");
    None
}

pub(super) fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub(super) fn host_closure(roots: &[&Path]) -> Closure {
    let roots: Vec<PathBuf> = roots.iter().map(|p| p.to_path_buf()).collect();
    closure(&HostFs, &roots, &ClosureOptions::default()).unwrap()
}

/// Resolves `path` using nothing but the closure's entries, as a tree
/// materialized from them would: `Some(file)` if it leads to a file entry.
pub(super) fn resolve_in(files: &BTreeMap<PathBuf, ClosureEntry>, path: &Path) -> Option<PathBuf> {
    let mut pending: Vec<String> = comps(path);
    pending.reverse();
    let mut cur = PathBuf::from("/");
    let mut hops = 0;
    while let Some(c) = pending.pop() {
        if c == ".." {
            cur.pop();
            continue;
        }
        let next = cur.join(&c);
        match files.get(&next).map(|e| &e.kind) {
            Some(EntryKind::Symlink { target }) => {
                hops += 1;
                assert!(hops < 40, "cycle at {}", next.display());
                if target.is_absolute() {
                    cur = PathBuf::from("/");
                }
                let mut t = comps(target);
                t.reverse();
                pending.extend(t);
            }
            Some(EntryKind::File { .. }) => {
                return pending.is_empty().then_some(next);
            }
            // A directory exists in the tree only if some entry lies in it.
            None => {
                let inside = files.range(next.clone()..).next();
                if !inside.is_some_and(|(k, _)| k.starts_with(&next) && *k != next) {
                    return None;
                }
                cur = next;
            }
        }
    }
    None
}

fn comps(p: &Path) -> Vec<String> {
    p.components()
        .filter_map(|c| match c {
            std::path::Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
            std::path::Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

/// Every loaded path resolves inside the closure to its file, and every
/// entry matches the disk.
pub(super) fn check_self_contained(c: &Closure) {
    for l in &c.loaded {
        assert_eq!(
            resolve_in(&c.files, &l.path).as_deref(),
            Some(l.file.as_path()),
            "{} does not resolve within the closure",
            l.path.display()
        );
    }
    for (p, e) in &c.files {
        match &e.kind {
            EntryKind::Symlink { target } => assert_eq!(&std::fs::read_link(p).unwrap(), target),
            EntryKind::File { size, .. } => {
                let m = std::fs::symlink_metadata(p).unwrap();
                assert!(m.is_file() && m.len() == *size, "{}", p.display());
            }
        }
    }
}

/// The files this machine's loader maps for `exe`, resolved.
pub(super) fn loader_trace(exe: &Path, ld_library_path: Option<&Path>) -> BTreeSet<PathBuf> {
    let mut cmd = Command::new(exe);
    cmd.env("LD_TRACE_LOADED_OBJECTS", "1")
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("LD_PRELOAD");
    if let Some(p) = ld_library_path {
        cmd.env("LD_LIBRARY_PATH", p);
    }
    let out = run(&mut cmd);
    let mut set = BTreeSet::new();
    for line in out.lines() {
        let line = line.trim();
        let path = match line.split_once(" => ") {
            Some((_, rest)) => rest.split(" (").next().unwrap(),
            None => line.split(" (").next().unwrap(),
        };
        if path.starts_with('/') {
            set.insert(std::fs::canonicalize(path).unwrap());
        }
    }
    assert!(!set.is_empty(), "no trace from {}:\n{out}", exe.display());
    set
}

/// The closure and the real loader agree on the files of `exe`.
pub(super) fn check_against_loader(exe: &Path) -> Closure {
    check_against_loader_with(exe, &ClosureOptions::default())
}

pub(super) fn check_against_loader_with(exe: &Path, opts: &ClosureOptions) -> Closure {
    let c = closure(&HostFs, &[exe.to_path_buf()], opts).unwrap();
    assert!(c.missing.is_empty(), "{:?}", c.missing);
    let ours: BTreeSet<PathBuf> = c
        .loaded
        .iter()
        .filter(|l| l.why != Why::Root)
        .map(|l| std::fs::canonicalize(&l.file).unwrap())
        .collect();
    let lib_path = opts.ld_library_path.first().map(PathBuf::as_path);
    assert_eq!(ours, loader_trace(exe, lib_path), "{}", c.render_tree());
    check_self_contained(&c);
    assert_eq!(c.host.as_ref().unwrap().to_string(), "x86_64-linux");
    c
}

/// The objects loaded under a needed name starting with `prefix`, once each.
pub(super) fn needed<'a>(c: &'a Closure, prefix: &str) -> Vec<&'a Loaded> {
    let mut seen = BTreeSet::new();
    c.loaded
        .iter()
        .filter(|l| matches!(&l.why, Why::Needed { name, .. } if name.starts_with(prefix)))
        .filter(|l| seen.insert(&l.path))
        .collect()
}

#[test]
fn rustc_closure_matches_the_loader() {
    let Ok(out) = Command::new("rustc").args(["--print", "sysroot"]).output() else {
        need("/nonexistent/rustc");
        return;
    };
    let sysroot = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let rustc = sysroot.join("bin/rustc");
    let t = std::time::Instant::now();
    let c = check_against_loader(&rustc);
    eprintln!("rustc closure: {:?}, {} files", t.elapsed(), c.files.len());
    // Found through RUNPATH $ORIGIN/../lib, by the path the loader builds.
    let driver = needed(&c, "librustc_driver-");
    assert_eq!(driver.len(), 1);
    assert!(driver[0].path.starts_with(sysroot.join("bin/../lib")));
    assert!(matches!(
        c.files[&sysroot.join("lib").join(driver[0].path.file_name().unwrap())].kind,
        EntryKind::File { size, .. } if size > 1_000_000
    ));
    assert!(!needed(&c, "libc.so.6").is_empty());
    assert!(c.min_glibc.unwrap() >= (2, 17), "{:?}", c.min_glibc);
    // The interpreter, through whatever links this host has on the way
    // (Debian: /lib64 → usr/lib64, a link in it, /lib → usr/lib).
    let interp = c
        .loaded
        .iter()
        .find(|l| matches!(l.why, Why::Interpreter { .. }))
        .unwrap();
    assert_eq!(interp.path, Path::new("/lib64/ld-linux-x86-64.so.2"));
    assert_eq!(interp.file, std::fs::canonicalize(&interp.path).unwrap());
    if std::fs::read_link("/lib64").is_ok_and(|t| t == Path::new("usr/lib64")) {
        for (link, target) in [
            ("/lib64", "usr/lib64"),
            (
                "/usr/lib64/ld-linux-x86-64.so.2",
                "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            ),
            ("/lib", "usr/lib"),
        ] {
            assert_eq!(
                c.files[Path::new(link)].kind,
                EntryKind::Symlink {
                    target: target.into()
                }
            );
        }
    }
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["host"], "x86_64-linux");
    assert_eq!(json["files"]["/lib64"]["kind"]["target"], "usr/lib64");
    assert_eq!(
        json["files"][rustc.to_str().unwrap()]["why"]["reason"],
        "root"
    );
    let tree = c.render_tree();
    eprintln!("{tree}");
    assert!(tree.contains("host: x86_64-linux"), "{tree}");
    assert!(tree.contains("librustc_driver-"), "{tree}");
}

#[test]
fn gcc_and_cc1_closures_match_the_loader() {
    let (Some(gcc), Some(cc1)) = (
        need("/usr/bin/gcc"),
        need("/usr/lib/gcc/x86_64-linux-gnu/12/cc1"),
    ) else {
        return;
    };
    let c = check_against_loader(&gcc);
    // /usr/bin/gcc → gcc-12 → x86_64-linux-gnu-gcc-12, every link kept.
    assert!(matches!(c.files[&gcc].kind, EntryKind::Symlink { .. }));
    assert_eq!(c.loaded[0].file, std::fs::canonicalize(&gcc).unwrap());
    let c = check_against_loader(&cc1);
    for lib in ["libisl", "libmpc", "libmpfr", "libgmp", "libzstd", "libz."] {
        assert_eq!(needed(&c, lib).len(), 1, "{lib}: {}", c.render_tree());
    }
    // Both roots in one closure: shared libraries once.
    let both = host_closure(&[&gcc, &cc1]);
    assert_eq!(
        both.files
            .keys()
            .filter(|p| p.ends_with("libc.so.6"))
            .count(),
        1
    );
}

#[test]
fn clang_closure_matches_the_loader() {
    let Some(clang) = need("/usr/bin/clang") else {
        return;
    };
    let c = check_against_loader(&clang);
    assert!(
        matches!(&c.files[&clang].kind, EntryKind::Symlink { target } if target.ends_with("bin/clang"))
    );
    assert_eq!(needed(&c, "libLLVM-14.so.1").len(), 1);
    assert_eq!(needed(&c, "libclang-cpp.so.14").len(), 1);
}

#[test]
fn bad_roots_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let err =
        |p: &Path| closure(&HostFs, &[p.to_path_buf()], &ClosureOptions::default()).unwrap_err();
    assert!(
        matches!(err(&d.join("nope")), InspectError::NotFound { path } if path == d.join("nope"))
    );
    std::os::unix::fs::symlink("b", d.join("a")).unwrap();
    std::os::unix::fs::symlink("a", d.join("b")).unwrap();
    let e = err(&d.join("a"));
    assert!(matches!(&e, InspectError::SymlinkLoop { path } if *path == d.join("a")));
    assert!(e.to_string().contains("symbolic links"), "{e}");
    std::os::unix::fs::symlink("missing", d.join("dangling")).unwrap();
    assert!(matches!(
        err(&d.join("dangling")),
        InspectError::NotFound { .. }
    ));
    assert!(matches!(err(d), InspectError::NotAFile { .. }));
    // A truncated copy of a real binary.
    let Some(gcc) = need("/usr/bin/gcc") else {
        return;
    };
    let bytes = std::fs::read(&gcc).unwrap();
    let cut = d.join("gcc-cut");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = err(&cut);
    assert!(
        matches!(&e, InspectError::Malformed { path, .. } if *path == cut),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with(&format!("{}: malformed", cut.display())),
        "{e}"
    );
}

#[test]
fn scripts_follow_their_interpreter() {
    let dir = tempfile::tempdir().unwrap();
    let sh = dir.path().join("wrapper");
    std::fs::write(&sh, "#!/bin/sh\nexec cc \"$@\"\n").unwrap();
    let c = host_closure(&[&sh]);
    assert!(c.missing.is_empty(), "{:?}", c.missing);
    let interp = c
        .loaded
        .iter()
        .find(|l| l.why == Why::Script { of: sh.clone() })
        .unwrap();
    assert_eq!(interp.path, Path::new("/bin/sh"));
    assert_eq!(interp.file, std::fs::canonicalize("/bin/sh").unwrap());
    assert!(
        c.notes
            .iter()
            .any(|n| n.contains("is a script run by /bin/sh"))
    );
    assert_eq!(c.host.as_ref().unwrap().to_string(), "x86_64-linux");
    assert!(!needed(&c, "libc.so.6").is_empty());
    check_self_contained(&c);

    let Some(py) = need("/usr/bin/python3") else {
        return;
    };
    let env = dir.path().join("tool.py");
    std::fs::write(&env, "#!/usr/bin/env python3\nprint(1)\n").unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let opts = ClosureOptions {
        path: vec![empty.clone(), "/usr/bin".into()],
        ..Default::default()
    };
    let c = closure(&HostFs, std::slice::from_ref(&env), &opts).unwrap();
    let ran: Vec<&Path> = c
        .loaded
        .iter()
        .filter(|l| l.why == Why::Script { of: env.clone() })
        .map(|l| l.path.as_path())
        .collect();
    assert_eq!(ran, [Path::new("/usr/bin/env"), py.as_path()]);
    assert!(matches!(c.files[&py].kind, EntryKind::Symlink { .. }));
    assert!(
        c.notes
            .iter()
            .any(|n| n.contains("runs python3 through /usr/bin/env"))
    );
    assert!(c.missing.is_empty(), "{:?}", c.missing);
    // Not on the PATH given: missing, with the PATH as the places searched.
    let opts = ClosureOptions {
        path: vec![empty.clone()],
        ..Default::default()
    };
    let c = closure(&HostFs, std::slice::from_ref(&env), &opts).unwrap();
    assert_eq!(
        c.missing,
        [Missing {
            name: "python3".into(),
            needed_by: env.clone(),
            searched: vec![empty],
        }]
    );
    assert!(c.render_tree().contains("python3: MISSING"));
}

/// xorshift64*: reproducible noise without a dependency.
pub(super) fn noise(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed.max(1);
    move || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Parsing never panics: truncations at every length of a real header,
/// cuts through the whole file, flipped bytes, and random bytes behind
/// each magic.
pub(super) fn check_parse_total(bytes: &[u8]) {
    for n in (0..bytes.len().min(4096)).chain((0..bytes.len()).step_by(997)) {
        let _ = parse(&bytes[..n]);
    }
    let mut rnd = noise(bytes.len() as u64);
    for _ in 0..300 {
        let mut b = bytes[..bytes.len().min(64 * 1024)].to_vec();
        for _ in 0..8 {
            let i = (rnd() as usize) % b.len().min(8192);
            b[i] = rnd() as u8;
        }
        let _ = parse(&b);
    }
}

#[test]
fn parse_is_total() {
    let mut rnd = noise(7);
    for magic in [
        &b"\x7fELF"[..],
        b"\x7fELF\x02\x01\x01",
        b"\x7fELF\x01\x02\x01",
        b"\xcf\xfa\xed\xfe",
        b"\xfe\xed\xfa\xce",
        b"\xca\xfe\xba\xbe\x00\x00\x00\x02",
        b"#!",
        b"",
    ] {
        for len in [0, 1, 8, 64, 200, 4096] {
            let mut b = magic.to_vec();
            b.extend((0..len).map(|_| rnd() as u8));
            let _ = parse(&b);
        }
    }
    for path in [
        "/usr/bin/gcc",
        "/usr/lib/gcc/x86_64-linux-gnu/12/cc1",
        "/bin/sh",
    ] {
        if let Some(p) = need(path) {
            check_parse_total(&std::fs::read(p).unwrap());
        }
    }
    assert!(matches!(
        parse(b"\x7fELF\x02\x01"),
        Err(InspectError::Malformed { .. })
    ));
    assert_eq!(parse(b"!<arch>\nfoo").unwrap(), Binary::Other);
    assert_eq!(parse(b"").unwrap(), Binary::Other);
    // A Java class file shares the fat Mach-O magic.
    assert_eq!(
        parse(b"\xca\xfe\xba\xbe\x00\x00\x00\x34rest").unwrap(),
        Binary::Other
    );
    let e = parse(b"\x7fELF\x02\x01").unwrap_err();
    assert!(e.to_string().starts_with("malformed binary: "), "{e}");
}

#[test]
fn parse_reads_a_real_header() {
    let Some(cc1) = need("/usr/lib/gcc/x86_64-linux-gnu/12/cc1") else {
        return;
    };
    let Binary::Elf(info) = parse(&std::fs::read(cc1).unwrap()).unwrap() else {
        panic!("not ELF");
    };
    assert_eq!(info.host.to_string(), "x86_64-linux");
    assert_eq!(
        (info.class, info.machine, info.little_endian),
        (64, 62, true)
    );
    assert!(info.is_executable() && !info.is_shared_object());
    assert_eq!(info.interp.as_deref(), Some("/lib64/ld-linux-x86-64.so.2"));
    assert!(info.needed.iter().any(|n| n == "libisl.so.23"));
    assert!(info.glibc.unwrap() >= (2, 17));
    let libc = parse(&std::fs::read("/lib/x86_64-linux-gnu/libc.so.6").unwrap()).unwrap();
    let Binary::Elf(libc) = libc else { panic!() };
    assert_eq!(libc.soname.as_deref(), Some("libc.so.6"));
    assert!(libc.is_shared_object());
}
