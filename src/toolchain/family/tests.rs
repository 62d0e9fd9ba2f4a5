//! Probes of the real compilers installed here (gcc 12, clang 14, rustc via
//! rustup), of things that are not compilers, and of a fake rustc sysroot.
//! A missing compiler prints `skipping: …`, or fails under
//! `RECAST_REQUIRE_PEERS=1`.

use std::path::{Path, PathBuf};

use super::*;

fn env_path() -> Vec<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default()
}

/// The compiler `name` on PATH (not resolved), or None after saying why.
fn tool(name: &str) -> Option<PathBuf> {
    let found = env_path()
        .into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        let why = format!("{name} not on PATH");
        if std::env::var("RECAST_REQUIRE_PEERS").is_ok_and(|v| v == "1") {
            panic!("{why} (RECAST_REQUIRE_PEERS=1)");
        }
        eprintln!("skipping: {why}");
    }
    found
}

fn opts() -> ProbeOptions {
    ProbeOptions {
        path: env_path(),
        ..Default::default()
    }
}

fn names(list: &[PathBuf]) -> Vec<String> {
    list.iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

fn assert_sorted_unique(list: &[PathBuf]) {
    let mut s = list.to_vec();
    s.sort();
    s.dedup();
    assert_eq!(s, list, "sorted and unique");
}

fn assert_exist(c: &Contents) {
    for p in c.programs.iter().chain(&c.libraries).chain(&c.files) {
        assert!(p.exists(), "{} listed but absent", p.display());
        assert!(
            !p.to_string_lossy().contains(".."),
            "{} not clean",
            p.display()
        );
    }
    for d in &c.trees {
        assert!(d.is_dir(), "{} is not a dir", d.display());
    }
    for l in [&c.programs, &c.libraries, &c.trees, &c.files] {
        assert_sorted_unique(l);
    }
}

#[test]
fn gcc_lists_cc1_as_and_the_lto_plugin() {
    let Some(gcc) = tool("gcc") else { return };
    let c = probe(&gcc, &opts()).unwrap();
    assert_eq!(c.identity.family, Family::Gcc);
    assert!(
        c.identity
            .version
            .starts_with(|ch: char| ch.is_ascii_digit())
    );
    assert_eq!(c.identity.commit, None);
    assert!(c.identity.target.contains("linux"), "{:?}", c.identity);
    assert_eq!(c.entry, gcc);
    let progs = names(&c.programs);
    for p in ["cc1", "collect2", "lto-wrapper", "as"] {
        assert!(progs.iter().any(|n| n == p), "{p} missing from {progs:?}");
    }
    assert!(
        !progs.iter().any(|n| n == "ld"),
        "ld only when linking: {progs:?}"
    );
    assert!(names(&c.libraries).contains(&"liblto_plugin.so".to_string()));
    // `as` is found on PATH, so its dir must be on the remote PATH.
    let as_path = c.programs.iter().find(|p| p.ends_with("as")).unwrap();
    assert!(
        c.path_dirs
            .contains(&as_path.parent().unwrap().to_path_buf())
    );
    // The install dir's headers: stddef.h is gcc's own.
    assert!(
        c.trees.iter().any(|t| t.join("stddef.h").is_file()),
        "{:?}",
        c.trees
    );
    assert!(
        c.files.is_empty(),
        "no crt files without linking: {:?}",
        c.files
    );
    assert_exist(&c);
    // Same compiler, same answer.
    assert_eq!(probe(&gcc, &opts()).unwrap(), c);
}

#[test]
fn gcc_linking_adds_ld_collect2_and_crt_files() {
    let Some(gcc) = tool("gcc") else { return };
    let o = ProbeOptions {
        linking: true,
        ..opts()
    };
    let c = probe(&gcc, &o).unwrap();
    assert!(
        names(&c.programs).contains(&"ld".to_string()),
        "{:?}",
        c.programs
    );
    let files = names(&c.files);
    for f in ["crtbegin.o", "crtend.o", "crti.o", "crt1.o", "libgcc.a"] {
        assert!(files.contains(&f.to_string()), "{f} missing from {files:?}");
    }
    assert_exist(&c);
}

#[test]
fn gcc_rejects_a_foreign_target_and_a_missing_as() {
    let Some(gcc) = tool("gcc") else { return };
    let o = ProbeOptions {
        targets: vec!["aarch64-unknown-linux-gnu".into()],
        ..opts()
    };
    let err = probe(&gcc, &o).unwrap_err();
    assert!(matches!(err, FamilyError::MissingTarget { .. }), "{err}");
    assert!(err.to_string().contains("aarch64"), "{err}");
    // The native triple spelled another way is the same target.
    let o = ProbeOptions {
        targets: vec!["x86_64-unknown-linux-gnu".into()],
        ..opts()
    };
    if cfg!(all(target_arch = "x86_64", target_os = "linux")) {
        probe(&gcc, &o).unwrap();
    }
    // No PATH: gcc's bare `as` answer cannot be resolved.
    let o = ProbeOptions {
        path: vec![],
        ..opts()
    };
    let err = probe(&gcc, &o).unwrap_err();
    assert!(matches!(err, FamilyError::MissingTool { .. }), "{err}");
    assert!(err.to_string().contains("`as`"), "{err}");
}

#[test]
fn gcc_with_sysroot_keeps_it_apart() {
    let Some(gcc) = tool("gcc") else { return };
    let d = tempfile::tempdir().unwrap();
    let o = ProbeOptions {
        sysroot: Some(d.path().to_path_buf()),
        ..opts()
    };
    let c = probe(&gcc, &o).unwrap();
    assert_eq!(c.sysroot.as_deref(), Some(d.path()));
    assert!(c.files.iter().all(|f| !f.starts_with(d.path())));
}

#[test]
fn gxx_is_gcc_family_with_cc1plus() {
    let Some(gxx) = tool("g++") else { return };
    let c = probe(&gxx, &opts()).unwrap();
    assert_eq!(c.identity.family, Family::Gcc);
    assert!(names(&c.programs).contains(&"cc1plus".to_string()));
    assert!(
        c.notes.iter().any(|n| n.contains("C++ driver")),
        "{:?}",
        c.notes
    );
}

#[test]
fn cc_symlink_is_gcc_and_keeps_its_name() {
    let Some(cc) = tool("cc") else { return };
    let c = probe(&cc, &opts()).unwrap();
    // Debian's cc → /etc/alternatives/cc → gcc; clang could be chosen too.
    assert!(matches!(c.identity.family, Family::Gcc | Family::Clang));
    assert_eq!(c.entry, cc);
}

#[test]
fn clang_lists_its_resource_dir_and_gcc_installation() {
    let Some(clang) = tool("clang") else { return };
    let c = probe(&clang, &opts()).unwrap();
    assert_eq!(c.identity.family, Family::Clang);
    let resource = PathBuf::from(
        run(&clang, &["-print-resource-dir".into()])
            .unwrap()
            .stdout
            .trim(),
    );
    assert!(c.trees.contains(&resource.join("include")), "{:?}", c.trees);
    assert!(
        !c.trees.contains(&resource.join("lib")),
        "lib/ only when linking"
    );
    assert!(
        c.programs.is_empty(),
        "cc1 runs in-process: {:?}",
        c.programs
    );
    // Debian's clang selects gcc 12's dir; its detection stats crtbegin.o.
    if c.notes.iter().any(|n| n.contains("GCC installation /")) {
        assert!(
            names(&c.files).contains(&"crtbegin.o".to_string()),
            "{:?}",
            c.files
        );
    }
    assert_exist(&c);

    let o = ProbeOptions {
        linking: true,
        ..opts()
    };
    let l = probe(&clang, &o).unwrap();
    assert!(
        names(&l.programs).iter().any(|n| n.starts_with("ld")),
        "{:?}",
        l.programs
    );
    assert!(
        names(&l.files).contains(&"crt1.o".to_string()),
        "{:?}",
        l.files
    );
    assert_exist(&l);
}

#[test]
fn clang_cross_target_is_recorded() {
    let Some(clang) = tool("clang") else { return };
    let o = ProbeOptions {
        targets: vec!["aarch64-linux-gnu".into()],
        ..opts()
    };
    let c = probe(&clang, &o).unwrap();
    assert_eq!(c.targets, vec!["aarch64-linux-gnu".to_string()]);
    assert!(
        c.notes.iter().any(|n| n.starts_with("aarch64-linux-gnu:")),
        "{:?}",
        c.notes
    );
}

/// The real rustc behind rustup's proxy, or the one on PATH.
fn rustc_sysroot() -> Option<(PathBuf, PathBuf)> {
    let rustc = tool("rustc")?;
    let out = run(&rustc, &["--print".into(), "sysroot".into()]).unwrap();
    Some((rustc, PathBuf::from(out.stdout.trim())))
}

#[test]
fn rustc_through_the_proxy_lists_driver_llvm_and_std() {
    let Some((rustc, sysroot)) = rustc_sysroot() else {
        return;
    };
    let c = probe(&rustc, &opts()).unwrap();
    assert_eq!(c.identity.family, Family::Rustc);
    assert!(
        c.identity.commit.as_ref().is_some_and(|h| h.len() == 40),
        "{:?}",
        c.identity
    );
    assert_eq!(c.entry, sysroot.join("bin/rustc"));
    let libs = names(&c.libraries);
    assert!(
        libs.iter().any(|n| n.starts_with("librustc_driver-")),
        "{libs:?}"
    );
    // The real LLVM, never its linker-script alias.
    for l in &c.libraries {
        let head = std::fs::read(l).unwrap();
        assert!(head.starts_with(b"\x7fELF"), "{} is not ELF", l.display());
    }
    let host = &c.identity.host;
    assert!(
        c.trees
            .contains(&sysroot.join("lib/rustlib").join(host).join("lib"))
    );
    assert_eq!(c.targets, vec![host.clone()]);
    assert!(
        c.programs.is_empty(),
        "rust-lld only when linking: {:?}",
        c.programs
    );
    if std::fs::symlink_metadata(&rustc).is_ok_and(|m| m.file_type().is_symlink()) {
        assert!(
            c.notes.iter().any(|n| n.contains("rustup proxy")),
            "{:?}",
            c.notes
        );
    }
    assert_exist(&c);

    // Asking the real binary gives the same toolchain, entry as given.
    let real = probe(&sysroot.join("bin/rustc"), &opts()).unwrap();
    assert_eq!(real.identity, c.identity);
    assert_eq!(real.libraries, c.libraries);
    assert!(!real.notes.iter().any(|n| n.contains("rustup proxy")));
}

#[test]
fn rustc_linking_adds_rust_lld_and_gcc_ld() {
    let Some((rustc, _)) = rustc_sysroot() else {
        return;
    };
    let o = ProbeOptions {
        linking: true,
        ..opts()
    };
    let c = probe(&rustc, &o).unwrap();
    let progs = names(&c.programs);
    assert!(progs.contains(&"rust-lld".to_string()), "{progs:?}");
    assert!(
        c.programs
            .iter()
            .any(|p| p.parent().unwrap().ends_with("gcc-ld")),
        "{progs:?}"
    );
    assert_exist(&c);
}

#[test]
fn rustc_target_not_installed_names_the_dir() {
    let Some((rustc, sysroot)) = rustc_sysroot() else {
        return;
    };
    let t = "riscv32imc-unknown-none-elf";
    if sysroot.join("lib/rustlib").join(t).exists() {
        eprintln!("skipping: {t} is installed here");
        return;
    }
    let o = ProbeOptions {
        targets: vec![t.into()],
        ..opts()
    };
    let err = probe(&rustc, &o).unwrap_err();
    let FamilyError::MissingTarget {
        target, searched, ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(target, t);
    assert_eq!(searched, &sysroot.join("lib/rustlib").join(t).join("lib"));
    assert!(
        err.to_string().contains(&format!("rustup target add {t}")),
        "{err}"
    );
}

#[test]
fn not_compilers() {
    let d = tempfile::tempdir().unwrap();
    let text = d.path().join("gcc");
    std::fs::write(&text, "int main() {}\n").unwrap();
    let script = d.path().join("clang");
    std::fs::write(&script, "echo hello\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut cases = vec![text, script, PathBuf::from("/bin/true")];
    if Path::new("/usr/bin/python3").exists() {
        cases.push("/usr/bin/python3".into());
    }
    for p in cases {
        let err = probe(&p, &opts()).unwrap_err();
        assert!(
            matches!(err, FamilyError::NotACompiler { .. }),
            "{}: {err}",
            p.display()
        );
        assert!(err.to_string().contains("not a compiler"), "{err}");
    }
    let err = probe(Path::new("/nonexistent/gcc"), &opts()).unwrap_err();
    assert!(matches!(err, FamilyError::Io { .. }), "{err}");
}

#[test]
fn detect_reads_the_text() {
    let gcc = "gcc (Debian 12.2.0-14+deb12u1) 12.2.0\nCopyright (C) 2022 Free Software Foundation, Inc.\nThis is free software; see the source for copying conditions.  There is NO\nwarranty; not even for MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.\n";
    assert_eq!(detect(Path::new("/usr/bin/gcc"), gcc), Some(Family::Gcc));
    let cc = gcc.replacen("gcc (", "cc (", 1);
    assert_eq!(detect(Path::new("/usr/bin/cc"), &cc), Some(Family::Gcc));
    let gfortran = "GNU Fortran (Debian 12.2.0-14) 12.2.0\nCopyright (C) 2022 Free Software Foundation, Inc.\nThis is free software; see the source for copying conditions.  There is NO\n";
    assert_eq!(detect(Path::new("/usr/bin/gfortran"), gfortran), None);
    let clang = "Debian clang version 14.0.6\nTarget: x86_64-pc-linux-gnu\nThread model: posix\nInstalledDir: /usr/bin\n";
    assert_eq!(detect(Path::new("/usr/bin/cc"), clang), Some(Family::Clang));
    assert_eq!(
        detect(
            Path::new("/x/rustc"),
            "rustc 1.95.0 (59807616e 2026-04-14)\n"
        ),
        Some(Family::Rustc)
    );
    let coreutils = "true (GNU coreutils) 9.1\nCopyright (C) 2022 Free Software Foundation, Inc.\nThis is free software: you are free to change and redistribute it.\n";
    assert_eq!(detect(Path::new("/bin/true"), coreutils), None);
    let gas = "GNU assembler (GNU Binutils for Debian) 2.40\nCopyright (C) 2023 Free Software Foundation, Inc.\nThis program is free software; you may redistribute it\n";
    assert_eq!(detect(Path::new("/usr/bin/as"), gas), None);
    assert_eq!(
        detect(Path::new("/usr/bin/python3"), "Python 3.11.2\n"),
        None
    );
    assert_eq!(detect(Path::new("/usr/bin/gcc"), ""), None);
}

#[test]
fn family_serializes_lower_case() {
    assert_eq!(serde_json::to_string(&Family::Rustc).unwrap(), "\"rustc\"");
    let f: Family = serde_json::from_str("\"clang\"").unwrap();
    assert_eq!(f, Family::Clang);
}

/// A scripted gcc: every answer captured from a cross gcc's shape, so the
/// Debian cross layout is tested without installing one.
#[test]
fn scripted_cross_gcc_takes_host_from_configure_and_as_from_its_dirs() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().canonicalize().unwrap();
    let install = root.join("usr/lib/gcc-cross/aarch64-linux-gnu/12");
    let tbin = root.join("usr/aarch64-linux-gnu/bin");
    std::fs::create_dir_all(install.join("include")).unwrap();
    std::fs::create_dir_all(&tbin).unwrap();
    let exe = |p: &Path| {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::write(p, b"\x7fELF").unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    let compiler = root.join("aarch64-linux-gnu-gcc");
    for p in [
        install.join("cc1"),
        install.join("collect2"),
        tbin.join("as"),
        compiler.clone(),
    ] {
        exe(&p);
    }
    std::fs::write(install.join("liblto_plugin.so"), b"\x7fELF").unwrap();
    let (install2, tbin2) = (install.clone(), tbin.clone());
    let runner = move |_: &Path, args: &[String]| -> io::Result<RunOutput> {
        let last = args.last().map(String::as_str).unwrap_or("");
        let stdout = match last {
            "--version" => "aarch64-linux-gnu-gcc (Debian 12.2.0-14) 12.2.0\nThis is free software; see the source for copying conditions.  There is NO\n".into(),
            "-dumpfullversion" => "12.2.0\n".into(),
            "-dumpmachine" => "aarch64-linux-gnu\n".into(),
            "-print-sysroot" => "\n".into(),
            "-print-prog-name=cc1" => format!("{}\n", install2.join("cc1").display()),
            "-print-prog-name=collect2" => format!("{}\n", install2.join("collect2").display()),
            "-print-prog-name=as" => format!("{}/../bin/as\n", tbin2.display()),
            "-print-file-name=liblto_plugin.so" => format!("{}\n", install2.join("liblto_plugin.so").display()),
            "-print-search-dirs" => format!("install: {}/\nprograms: =/x/\n", install2.display()),
            other if other.starts_with("-print-prog-name=") => format!("{}\n", &other[17..]),
            other if other.starts_with("-print-file-name=") => format!("{}\n", &other[17..]),
            _ => String::new(),
        };
        let stderr = if last == "-v" {
            "Target: aarch64-linux-gnu\nConfigured with: ../src/configure -v --with-sysroot=/ --build=x86_64-linux-gnu --host=x86_64-linux-gnu --target=aarch64-linux-gnu\n".into()
        } else {
            String::new()
        };
        Ok(RunOutput {
            code: Some(0),
            stdout,
            stderr,
        })
    };
    let c = probe_with(
        &crate::toolchain::HostFs,
        &runner,
        &compiler,
        &ProbeOptions::default(),
    )
    .unwrap();
    assert_eq!(c.identity.host, "x86_64-linux-gnu");
    assert_eq!(c.identity.target, "aarch64-linux-gnu");
    assert_eq!(
        c.programs,
        vec![
            tbin.join("as"),
            install.join("cc1"),
            install.join("collect2")
        ]
    );
    assert_eq!(c.libraries, vec![install.join("liblto_plugin.so")]);
    assert_eq!(c.trees, vec![install.join("include")]);
    assert!(c.path_dirs.is_empty(), "as came from gcc's own dirs");
    // gcc prints no sysroot, so the Debian rule decides: /usr/<target> is
    // the sysroot where Debian's cross packages installed it, and none is
    // invented where they did not.
    let debian = Path::new("/usr/aarch64-linux-gnu");
    assert_eq!(c.sysroot, debian.is_dir().then(|| debian.to_path_buf()));
    assert!(
        c.notes.iter().any(|n| n.contains("not installed")),
        "{:?}",
        c.notes
    );
}

/// A rustc sysroot laid out by hand: linker-script alias skipped, targets
/// checked through the FileSource alone.
#[test]
fn rustc_from_a_hand_made_sysroot() {
    let d = tempfile::tempdir().unwrap();
    let s = d.path().canonicalize().unwrap();
    std::fs::create_dir_all(s.join("bin")).unwrap();
    std::fs::create_dir_all(s.join("lib/rustlib/aarch64-apple-darwin/lib")).unwrap();
    std::fs::write(s.join("bin/rustc"), b"\xcf\xfa\xed\xfe").unwrap();
    std::fs::write(s.join("lib/librustc_driver-abc.so"), b"\x7fELF...").unwrap();
    std::fs::write(
        s.join("lib/libLLVM.so.22.1-rust-1.95.0-stable"),
        b"\x7fELF...",
    )
    .unwrap();
    std::fs::write(
        s.join("lib/libLLVM-22-rust-1.95.0-stable.so"),
        b"INPUT(libLLVM.so.22.1-rust-1.95.0-stable)\n",
    )
    .unwrap();
    let id = Identity {
        family: Family::Rustc,
        version: "1.95.0".into(),
        commit: None,
        host: "aarch64-apple-darwin".into(),
        target: "aarch64-apple-darwin".into(),
    };
    let fs = crate::toolchain::HostFs;
    let c = rustc_from_sysroot(&fs, &s, id.clone(), &ProbeOptions::default()).unwrap();
    assert_eq!(c.entry, s.join("bin/rustc"));
    assert_eq!(
        c.libraries,
        vec![
            s.join("lib/libLLVM.so.22.1-rust-1.95.0-stable"),
            s.join("lib/librustc_driver-abc.so")
        ]
    );
    assert_eq!(
        c.trees,
        vec![s.join("lib/rustlib/aarch64-apple-darwin/lib")]
    );
    assert!(
        c.notes.iter().any(|n| n.contains("linker script")),
        "{:?}",
        c.notes
    );
    let o = ProbeOptions {
        targets: vec!["wasm32-unknown-unknown".into()],
        ..Default::default()
    };
    let err = rustc_from_sysroot(&fs, &s, id.clone(), &o).unwrap_err();
    assert!(matches!(err, FamilyError::MissingTarget { .. }), "{err}");
    std::fs::remove_file(s.join("lib/librustc_driver-abc.so")).unwrap();
    let err = rustc_from_sysroot(&fs, &s, id, &ProbeOptions::default()).unwrap_err();
    assert!(err.to_string().contains("librustc_driver"), "{err}");
}

#[test]
fn a_compilers_name_says_its_family_or_asks_the_binary() {
    use Named::{Ask, Sure};
    for (n, want) in [
        ("gcc", Some(Ask(Family::Gcc))),
        ("g++-12", Some(Ask(Family::Gcc))),
        ("cc", Some(Ask(Family::Gcc))),
        ("c++", Some(Ask(Family::Gcc))),
        ("aarch64-linux-gnu-gcc", Some(Ask(Family::Gcc))),
        ("x86_64-linux-gnu-g++-12", Some(Ask(Family::Gcc))),
        ("gcc.exe", Some(Ask(Family::Gcc))),
        ("clang", Some(Sure(Family::Clang))),
        ("clang++-14", Some(Sure(Family::Clang))),
        ("zig", Some(Sure(Family::Zig))),
        ("rustc", Some(Sure(Family::Rustc))),
        ("rustc-1.91", Some(Sure(Family::Rustc))),
        ("rustdoc", None),
        ("ld", None),
        ("make", None),
        ("gcc-ar", None),
        ("recast", None),
        ("gcc-", None),
    ] {
        assert_eq!(Family::named(n), want, "{n}");
        assert_eq!(Family::of_name(n), want.map(Named::family), "{n}");
    }
}

#[test]
fn a_name_others_take_is_decided_by_what_the_binary_answers() {
    let cc = Path::new("/usr/bin/cc");
    let apple = "Apple clang version 15.0.0 (clang-1500.3.9.4)\nTarget: arm64-apple-darwin23.4.0\nThread model: posix\n";
    let gcc = "cc (Debian 12.2.0-14) 12.2.0\nCopyright (C) 2022 Free Software Foundation, Inc.\nThis is free software; see the source for copying conditions.  There is NO\n";
    let tcc = "tcc version 0.9.27 (x86_64 Linux)\n";
    let ask = Named::Ask(Family::Gcc);
    assert_eq!(decide(cc, ask, || Some(apple.into())), Some(Family::Clang));
    assert_eq!(decide(cc, ask, || Some(gcc.into())), Some(Family::Gcc));
    assert_eq!(decide(cc, ask, || Some(tcc.into())), None);
    // A compiler that cannot be asked is none recast knows.
    assert_eq!(decide(cc, ask, || None), None);
    // A sure name is never asked.
    let sure = Named::Sure(Family::Clang);
    assert_eq!(
        decide(Path::new("/usr/bin/clang"), sure, || panic!("asked")),
        Some(Family::Clang)
    );
}

#[test]
fn gccs_exec_prefix_is_its_install_dir_less_machine_and_version() {
    let text = "install: /usr/lib/gcc/x86_64-linux-gnu/12/\nprograms: =/usr/lib/gcc/x86_64-linux-gnu/12/:/usr/libexec/gcc/\nlibraries: =/usr/lib/\n";
    assert_eq!(parse_exec_prefix(text).as_deref(), Some("/usr/lib/gcc/"));
    assert_eq!(parse_exec_prefix("programs: =/a/\n"), None);
    assert_eq!(parse_exec_prefix("install: relative/12/\n"), None);
}
