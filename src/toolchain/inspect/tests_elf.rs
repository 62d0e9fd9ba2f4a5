//! The loader's rules on small ELF fixtures built here with gcc: `$ORIGIN`
//! of executables and of libraries reached through symlinks, RPATH vs
//! RUNPATH vs `LD_LIBRARY_PATH`, SONAME symlink chains, wrong-class and
//! wrong-machine candidates, `glibc-hwcaps`, a sysroot with its own
//! `ld.so.conf`, missing libraries, cycles. Where the real loader can run
//! the fixture, the closure is compared with its trace.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::tests::{
    check_against_loader, check_against_loader_with, check_self_contained, host_closure, need,
    needed, run,
};
use super::*;
use crate::toolchain::HostFs;

struct Fx {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Fx {
    fn new() -> Option<Fx> {
        need("/usr/bin/gcc")?;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        Some(Fx { _dir: dir, root })
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Compiles `src` into `out` (relative to the fixture root) with `args`.
    fn cc(&self, out: &str, src: &str, args: &[&str]) -> PathBuf {
        let out = self.p(out);
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        let c = out.with_extension("c");
        std::fs::write(&c, src).unwrap();
        run(Command::new("gcc")
            .arg(&c)
            .arg("-o")
            .arg(&out)
            .args(args)
            .current_dir(&self.root));
        out
    }

    /// A shared library defining `int NAME(void)` returning `value`.
    fn lib(&self, out: &str, name: &str, value: i32, args: &[&str]) -> PathBuf {
        let src = format!("int {name}(void) {{ return {value}; }}\n");
        let mut a = vec!["-shared", "-fPIC"];
        a.extend_from_slice(args);
        self.cc(out, &src, &a)
    }

    fn symlink(&self, target: &str, link: &str) {
        let link = self.p(link);
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, link).unwrap();
    }
}

fn loaded_as<'a>(c: &'a Closure, name: &str) -> Vec<&'a Path> {
    needed(c, name).iter().map(|l| l.path.as_path()).collect()
}

#[test]
fn origin_of_an_executable_is_its_resolved_path() {
    let Some(fx) = Fx::new() else { return };
    fx.lib("real/lib/libf.so", "f", 0, &[]);
    fx.cc(
        "real/bin/prog",
        "int f(void); int main(void) { return f(); }",
        &["-Lreal/lib", "-lf", "-Wl,-rpath,$ORIGIN/../lib"],
    );
    fx.symlink("../real/bin/prog", "link/prog");
    // The loader finds libf by the executable's resolved directory, as the
    // real loader does (it reads /proc/self/exe).
    let c = check_against_loader(&fx.p("link/prog"));
    assert_eq!(loaded_as(&c, "libf.so"), [fx.p("real/bin/../lib/libf.so")]);
    assert_eq!(
        c.files[&fx.p("link/prog")].kind,
        EntryKind::Symlink {
            target: "../real/bin/prog".into()
        }
    );
}

#[test]
fn origin_of_a_library_is_the_path_it_was_found_by() {
    let Some(fx) = Fx::new() else { return };
    fx.lib("A/dep/libh.so", "h", 0, &[]);
    fx.cc(
        "A/lib/libg.so",
        "int h(void); int g(void) { return h(); }",
        &[
            "-shared",
            "-fPIC",
            "-LA/dep",
            "-lh",
            "-Wl,-rpath,$ORIGIN/../dep",
        ],
    );
    fx.symlink("../../A/lib", "C/x/lib");
    fx.cc(
        "C/x/prog",
        "int g(void); int main(void) { return g(); }",
        &["-LA/lib", "-lg", "-Wl,-rpath,$ORIGIN/lib"],
    );
    let c = check_against_loader(&fx.p("C/x/prog"));
    // $ORIGIN of libg is C/x/lib (through the link); `..` then goes up
    // from where the link leads, to A.
    assert_eq!(loaded_as(&c, "libh.so"), [fx.p("C/x/lib/../dep/libh.so")]);
    assert_eq!(needed(&c, "libh.so")[0].file, fx.p("A/dep/libh.so"));
    assert!(matches!(
        c.files[&fx.p("C/x/lib")].kind,
        EntryKind::Symlink { .. }
    ));
}

/// libmid needs libdep; the executable finds libmid, and libdep comes from
/// `a/` (the executable's RPATH, inherited down the loading chain) or `b/`
/// (`LD_LIBRARY_PATH`) depending on the tags.
#[test]
fn rpath_runpath_and_ld_library_path() {
    let Some(fx) = Fx::new() else { return };
    fx.lib("a/libdep.so", "dep", 1, &[]);
    fx.lib("b/libdep.so", "dep", 2, &[]);
    fx.cc(
        "m/libmid.so",
        "int dep(void); int mid(void) { return dep(); }",
        &["-shared", "-fPIC", "-La", "-ldep"],
    );
    let main = "int mid(void); int main(void) { return mid(); }";
    let rp = format!("-Wl,-rpath,{}:{}", fx.p("m").display(), fx.p("a").display());
    fx.cc(
        "rpath",
        main,
        &["-Lm", "-lmid", &rp, "-Wl,--disable-new-dtags"],
    );
    fx.cc(
        "runpath",
        main,
        &["-Lm", "-lmid", &rp, "-Wl,--enable-new-dtags"],
    );
    let with_b = ClosureOptions {
        ld_library_path: vec![fx.p("b")],
        ..Default::default()
    };

    // RPATH comes before LD_LIBRARY_PATH, and applies to libmid's needs.
    let c = check_against_loader_with(&fx.p("rpath"), &with_b);
    assert_eq!(loaded_as(&c, "libdep.so"), [fx.p("a/libdep.so")]);
    // RUNPATH applies to the executable's own needs only: libmid's libdep
    // comes from LD_LIBRARY_PATH.
    let c = check_against_loader_with(&fx.p("runpath"), &with_b);
    assert_eq!(loaded_as(&c, "libdep.so"), [fx.p("b/libdep.so")]);
    // Without LD_LIBRARY_PATH, libmid's libdep is nowhere it may look.
    let c = host_closure(&[&fx.p("runpath")]);
    assert_eq!(c.missing.len(), 1, "{:?}", c.missing);
    let m = &c.missing[0];
    assert_eq!(
        (m.name.as_str(), m.needed_by.as_path()),
        ("libdep.so", fx.p("m/libmid.so").as_path())
    );
    assert!(!m.searched.contains(&fx.p("a")), "{:?}", m.searched);
    assert!(
        m.searched.contains(&PathBuf::from("/usr/lib")),
        "{:?}",
        m.searched
    );
    let tree = c.render_tree();
    assert!(tree.contains("libdep.so: MISSING"), "{tree}");
    assert!(tree.contains("    searched /usr/lib\n"), "{tree}");
}

#[test]
fn soname_chains_are_kept_as_symlinks() {
    let Some(fx) = Fx::new() else { return };
    fx.lib(
        "lib/libfoo.so.1.2.3",
        "foo",
        0,
        &["-Wl,-soname,libfoo.so.1"],
    );
    fx.symlink("libfoo.so.1.2.3", "lib/libfoo.so.1");
    fx.symlink("libfoo.so.1", "lib/libfoo.so");
    fx.cc(
        "prog",
        "int foo(void); int main(void) { return foo(); }",
        &["-Llib", "-lfoo", "-Wl,-rpath,$ORIGIN/lib"],
    );
    let c = check_against_loader(&fx.p("prog"));
    assert_eq!(loaded_as(&c, "libfoo.so.1"), [fx.p("lib/libfoo.so.1")]);
    assert_eq!(
        c.files[&fx.p("lib/libfoo.so.1")],
        ClosureEntry {
            kind: EntryKind::Symlink {
                target: "libfoo.so.1.2.3".into()
            },
            why: Why::SymlinkOf {
                path: fx.p("lib/libfoo.so.1")
            },
        }
    );
    assert!(matches!(
        &c.files[&fx.p("lib/libfoo.so.1.2.3")],
        ClosureEntry { kind: EntryKind::File { executable: true, .. }, why: Why::Needed { name, .. } } if name == "libfoo.so.1"
    ));
    // The link-time name is not something the loader opens.
    assert!(!c.files.contains_key(&fx.p("lib/libfoo.so")));
}

#[test]
fn wrong_class_and_machine_are_skipped() {
    let Some(fx) = Fx::new() else { return };
    let good = fx.lib("good/libw.so", "w", 0, &[]);
    let bytes = std::fs::read(&good).unwrap();
    // The same library claiming to be for aarch64.
    let mut arm = bytes.clone();
    arm[18..20].copy_from_slice(&183u16.to_le_bytes());
    std::fs::create_dir_all(fx.p("arm")).unwrap();
    std::fs::write(fx.p("arm/libw.so"), arm).unwrap();
    // A minimal 32-bit i386 shared object: a header, padded (glibc reads
    // a native-size header and calls anything shorter fatally "too short").
    let mut elf32 = vec![0u8; 4096];
    elf32[..7].copy_from_slice(b"\x7fELF\x01\x01\x01");
    elf32[16..18].copy_from_slice(&3u16.to_le_bytes()); // ET_DYN
    elf32[18..20].copy_from_slice(&3u16.to_le_bytes()); // EM_386
    elf32[20..24].copy_from_slice(&1u32.to_le_bytes());
    elf32[40..42].copy_from_slice(&52u16.to_le_bytes()); // e_ehsize
    std::fs::create_dir_all(fx.p("i386")).unwrap();
    std::fs::write(fx.p("i386/libw.so"), &elf32).unwrap();
    let Binary::Elf(info32) = parse(&elf32).unwrap() else {
        panic!()
    };
    assert_eq!(
        (info32.class, info32.host.to_string().as_str()),
        (32, "i686-linux")
    );
    let rp = ["i386", "arm", "good"].map(|d| fx.p(d).display().to_string());
    fx.cc(
        "prog",
        "int w(void); int main(void) { return w(); }",
        &["-Lgood", "-lw", &format!("-Wl,-rpath,{}", rp.join(":"))],
    );
    let c = check_against_loader(&fx.p("prog"));
    assert_eq!(loaded_as(&c, "libw.so"), [good.as_path()]);
    for d in ["i386", "arm"] {
        let skipped = fx.p(d).join("libw.so").display().to_string();
        assert!(
            c.notes
                .iter()
                .any(|n| n.starts_with(&format!("skipped {skipped}"))),
            "{d}: {:?}",
            c.notes
        );
    }
}

#[test]
fn glibc_hwcaps_variants_are_kept() {
    let Some(fx) = Fx::new() else { return };
    fx.lib("lib/libv.so", "v", 0, &[]);
    fx.lib("lib/glibc-hwcaps/x86-64-v3/libv.so", "v", 3, &[]);
    fx.lib("lib/glibc-hwcaps/x86-64-v2/libonly.so", "o", 2, &[]);
    fx.cc(
        "prog",
        "int v(void); int o(void); int main(void) { return v() + o(); }",
        &[
            "-Llib",
            "-lv",
            "-Llib/glibc-hwcaps/x86-64-v2",
            "-lonly",
            "-Wl,-rpath,$ORIGIN/lib",
        ],
    );
    let c = host_closure(&[&fx.p("prog")]);
    assert!(c.missing.is_empty(), "{:?}", c.missing);
    assert_eq!(loaded_as(&c, "libv.so"), [fx.p("lib/libv.so")]);
    assert_eq!(
        c.files[&fx.p("lib/glibc-hwcaps/x86-64-v3/libv.so")].why,
        Why::Hwcaps {
            of: fx.p("lib/libv.so")
        }
    );
    // Only in a hwcaps directory: found there.
    assert_eq!(
        loaded_as(&c, "libonly.so"),
        [fx.p("lib/glibc-hwcaps/x86-64-v2/libonly.so")]
    );
    check_self_contained(&c);
}

#[test]
fn cycles_end() {
    let Some(fx) = Fx::new() else { return };
    // liba needs libb needs liba.
    fx.lib("lib/liba.so", "a", 0, &[]);
    fx.cc(
        "lib/libb.so",
        "int a(void); int b(void) { return a(); }",
        &["-shared", "-fPIC", "-Llib", "-la"],
    );
    fx.cc(
        "lib/liba.so",
        "int b(void); int a(void) { return 0; } int a2(void) { return b(); }",
        &["-shared", "-fPIC", "-Llib", "-lb", "-Wl,-rpath,$ORIGIN"],
    );
    // A library that is a link to itself, and one whose link dangles.
    fx.symlink("libloop.so", "lib/libloop.so");
    fx.symlink("nowhere.so", "lib/libgone.so");
    fx.lib("stub/libloop.so", "l", 0, &[]);
    fx.lib("stub/libgone.so", "g", 0, &[]);
    fx.cc(
        "prog",
        "int a(void); int l(void); int g(void); int main(void) { return a() + l() + g(); }",
        &[
            "-Llib",
            "-la",
            "-Lstub",
            "-lloop",
            "-lgone",
            "-Wl,-rpath,$ORIGIN/lib",
        ],
    );
    let c = host_closure(&[&fx.p("prog")]);
    assert_eq!(loaded_as(&c, "libb.so"), [fx.p("lib/libb.so")]);
    // libb's liba is the one already loaded.
    assert!(
        c.loaded.iter().any(|l| l.path == fx.p("lib/liba.so")
            && l.why.parent() == Some(fx.p("lib/libb.so").as_path()))
    );
    let missing: Vec<&str> = c.missing.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(missing, ["libloop.so", "libgone.so"]);
    assert!(
        c.notes
            .iter()
            .any(|n| n.contains("libloop.so: too many levels")),
        "{:?}",
        c.notes
    );
}

/// A foreign root: its own `ld.so.conf` with a relative glob include, a
/// Debian-style loader path through absolute symlinks that must stay inside
/// it, and `$LIB` / `$PLATFORM` in RPATH.
#[test]
fn a_sysroot_with_its_own_ld_so_conf() {
    let Some(fx) = Fx::new() else { return };
    let r = |p: &str| fx.p(&format!("root/{p}"));
    let w = |p: &str, text: &str| {
        std::fs::create_dir_all(r(p).parent().unwrap()).unwrap();
        std::fs::write(r(p), text).unwrap();
    };
    w("etc/ld.so.conf", "include conf.d/*.conf\n");
    w("etc/conf.d/a.conf", "/opt/x\n");
    w("etc/conf.d/b.conf", "# second\n/opt/y # here\n");
    w("etc/conf.d/c.txt", "/opt/z\n");
    fx.lib(
        "root/opt/z/libconf.so.1",
        "conf",
        9,
        &["-Wl,-soname,libconf.so.1"],
    );
    fx.lib(
        "root/opt/y/libconf.so.1",
        "conf",
        1,
        &["-Wl,-soname,libconf.so.1"],
    );
    fx.lib("root/opt/lib/x86_64-linux-gnu/libdlib.so", "dlib", 0, &[]);
    fx.lib("root/p/x86_64/libplat.so", "plat", 0, &[]);
    fx.symlink("usr/lib64", "root/lib64");
    fx.symlink("usr/lib", "root/lib");
    fx.symlink(
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        "root/usr/lib64/ld-linux-x86-64.so.2",
    );
    let multi = "root/usr/lib/x86_64-linux-gnu";
    std::fs::create_dir_all(fx.p(multi)).unwrap();
    for f in ["ld-linux-x86-64.so.2", "libc.so.6"] {
        std::fs::copy(
            Path::new("/lib/x86_64-linux-gnu").join(f),
            fx.p(multi).join(f),
        )
        .unwrap();
    }
    fx.cc(
        "root/usr/bin/prog",
        "int conf(void); int dlib(void); int plat(void);\nint main(void) { return conf() + dlib() + plat(); }",
        &[
            "-Lroot/opt/y",
            "-l:libconf.so.1",
            "-Lroot/opt/lib/x86_64-linux-gnu",
            "-ldlib",
            "-Lroot/p/x86_64",
            "-lplat",
            "-Wl,-rpath,/opt/$LIB:/p/$PLATFORM",
            "-Wl,--disable-new-dtags",
        ],
    );
    let sysroot = fx.p("root");
    let opts = ClosureOptions {
        sysroot: sysroot.clone(),
        ..Default::default()
    };
    let c = closure(&HostFs, &[r("usr/bin/prog")], &opts).unwrap();
    assert!(c.missing.is_empty(), "{}", c.render_tree());
    assert_eq!(loaded_as(&c, "libconf.so.1"), [r("opt/y/libconf.so.1")]);
    assert_eq!(
        loaded_as(&c, "libdlib.so"),
        [r("opt/lib/x86_64-linux-gnu/libdlib.so")]
    );
    assert_eq!(loaded_as(&c, "libplat.so"), [r("p/x86_64/libplat.so")]);
    assert_eq!(
        loaded_as(&c, "libc.so.6"),
        [r("lib/x86_64-linux-gnu/libc.so.6")]
    );
    for p in c.files.keys() {
        assert!(
            p.starts_with(&sysroot),
            "{} escapes the sysroot",
            p.display()
        );
    }
    for (link, target) in [
        ("lib64", "usr/lib64"),
        (
            "usr/lib64/ld-linux-x86-64.so.2",
            "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        ),
        ("lib", "usr/lib"),
    ] {
        assert_eq!(
            c.files[&r(link)].kind,
            EntryKind::Symlink {
                target: target.into()
            }
        );
    }
    assert!(matches!(
        c.files[&r("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")].why,
        Why::Interpreter { .. }
    ));
    // The host's /etc/ld.so.conf played no part: without the sysroot's
    // conf, libconf is missing.
    std::fs::remove_file(r("etc/ld.so.conf")).unwrap();
    let c = closure(&HostFs, &[r("usr/bin/prog")], &opts).unwrap();
    assert_eq!(c.missing.len(), 1, "{:?}", c.missing);
    assert_eq!(c.missing[0].name, "libconf.so.1");
}

/// A file that is not ELF where a library is looked for stops glibc's
/// loader ("invalid ELF header"): the closure says so instead of going on.
#[test]
fn a_non_elf_candidate_stops_the_search() {
    let Some(fx) = Fx::new() else { return };
    fx.lib("good/libw.so", "w", 0, &[]);
    std::fs::create_dir_all(fx.p("script")).unwrap();
    let script = format!("INPUT(libw.so.1)\n{}\n", "#".repeat(200));
    std::fs::write(fx.p("script/libw.so"), script).unwrap();
    let rp = format!(
        "-Wl,-rpath,{}:{}",
        fx.p("script").display(),
        fx.p("good").display()
    );
    fx.cc(
        "prog",
        "int w(void); int main(void) { return w(); }",
        &["-Lgood", "-lw", &rp],
    );
    let out = Command::new(fx.p("prog")).output().unwrap();
    assert_eq!(out.status.code(), Some(127), "the real loader stops too");
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid ELF header"));
    let c = host_closure(&[&fx.p("prog")]);
    assert_eq!(c.missing.len(), 1);
    assert_eq!(c.missing[0].searched, [fx.p("script")]);
    let stop = format!(
        "the loader stops at {}: invalid ELF header",
        fx.p("script/libw.so").display()
    );
    assert!(c.notes.contains(&stop), "{:?}", c.notes);
}
