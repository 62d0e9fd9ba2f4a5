//! dyld's rules on Mach-O fixtures built here with Debian's clang, lld
//! (`ld64.lld`) and `llvm-lipo`: `@rpath` through the loading chain,
//! `@loader_path`, `@executable_path`, weak / re-exported / upward dylibs,
//! libSystem from the OS, arm64 and fat files. Skipped (or failed under
//! `RECAST_REQUIRE_PEERS=1`) without the tools.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::tests::{check_parse_total, need, run};
use super::*;
use crate::toolchain::HostFs;

const LD64: &str = "/usr/lib/llvm-14/bin/ld64.lld";
const LIPO: &str = "/usr/lib/llvm-14/bin/llvm-lipo";

/// A text stub of libSystem, so the fixtures link to it as real ones do.
const LIBSYSTEM_TBD: &str = "--- !tapi-tbd
tbd-version:     4
targets:         [ x86_64-macos, arm64-macos ]
install-name:    '/usr/lib/libSystem.B.dylib'
current-version: 1311
exports:
  - targets:         [ x86_64-macos, arm64-macos ]
    symbols:         [ dyld_stub_binder ]
...
";

struct Fx {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Fx {
    fn new() -> Option<Fx> {
        need("/usr/bin/clang")?;
        need(LD64)?;
        need(LIPO)?;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        std::fs::write(root.join("libSystem.tbd"), LIBSYSTEM_TBD).unwrap();
        Some(Fx { _dir: dir, root })
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Compiles `src` for `arch` and links it into `out` with `args`.
    fn build(&self, arch: &str, out: &str, src: &str, args: &[&str]) -> PathBuf {
        let out_path = self.p(out);
        std::fs::create_dir_all(out_path.parent().unwrap()).unwrap();
        let c = self.p(&format!("{}.c", out.replace('/', "_")));
        let o = c.with_extension(format!("{arch}.o"));
        std::fs::write(&c, src).unwrap();
        let target = if arch == "arm64" {
            "arm64-apple-macos11"
        } else {
            "x86_64-apple-darwin"
        };
        run(Command::new("clang")
            .arg(format!("--target={target}"))
            .arg("-c")
            .arg(&c)
            .arg("-o")
            .arg(&o));
        let version = if arch == "arm64" { "11.0" } else { "10.15" };
        run(Command::new(LD64)
            .args(["-arch", arch, "-platform_version", "macos", version, "11.0"])
            .arg(&o)
            .arg("libSystem.tbd")
            .args(["-undefined", "dynamic_lookup", "-o"])
            .arg(&out_path)
            .args(args)
            .current_dir(&self.root));
        out_path
    }

    /// The same layout for one architecture under `prefix`: lib/libt
    /// (`@rpath`), lib/libr (`@loader_path`), lib/libu (needs libt with
    /// `-rpath @loader_path/../lib`, re-exports libr), lib/libw (weak),
    /// bin/m (`-rpath @executable_path/../lib`).
    fn layout(&self, arch: &str, prefix: &str) {
        let p = |s: &str| format!("{prefix}/{s}");
        let dylib = |name: &str| {
            vec![
                "-dylib".to_owned(),
                "-install_name".to_owned(),
                name.to_owned(),
            ]
        };
        let build = |out: &str, src: &str, args: Vec<String>| {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            self.build(arch, &p(out), src, &args);
        };
        build(
            "lib/libt.dylib",
            "int t(void) { return 1; }",
            dylib("@rpath/libt.dylib"),
        );
        build(
            "lib/libr.dylib",
            "int r(void) { return 2; }",
            dylib("@loader_path/libr.dylib"),
        );
        build(
            "lib/libw.dylib",
            "int w(void) { return 3; }",
            dylib("@rpath/libw.dylib"),
        );
        build(
            "lib/libgone.dylib",
            "int g(void) { return 4; }",
            dylib("@rpath/libgone.dylib"),
        );
        let mut u = dylib("@rpath/libu.dylib");
        u.extend(
            [
                "-L",
                &p("lib"),
                "-lt",
                "-reexport-lr",
                "-rpath",
                "@loader_path/../lib",
            ]
            .map(str::to_owned),
        );
        build(
            "lib/libu.dylib",
            "int t(void); int u(void) { return t(); }",
            u,
        );
        let m = [
            "-execute",
            "-e",
            "_main",
            "-L",
            &p("lib"),
            "-lu",
            "-weak-lw",
            "-weak-lgone",
            "-rpath",
            "@executable_path/../lib",
        ]
        .map(str::to_owned)
        .to_vec();
        build("bin/m", "int u(void); int main(void) { return u(); }", m);
        std::fs::remove_file(self.p(&p("lib/libgone.dylib"))).unwrap();
    }
}

fn loaded<'a>(c: &'a Closure, name: &str) -> Vec<(&'a Path, &'a Why)> {
    c.loaded
        .iter()
        .filter(|l| matches!(&l.why, Why::Dylib { name: n, .. } if n == name))
        .map(|l| (l.path.as_path(), &l.why))
        .collect()
}

/// Turns the load command of `name` in the thin little-endian file at
/// `path` into `LC_LOAD_UPWARD_DYLIB` (lld cannot emit it yet).
fn make_upward(path: &Path, name: &str) {
    use goblin::mach::load_command::{CommandVariant, LC_LOAD_UPWARD_DYLIB};
    let mut bytes = std::fs::read(path).unwrap();
    let m = goblin::mach::MachO::parse(&bytes, 0).unwrap();
    let off = m
        .load_commands
        .iter()
        .find(|lc| match &lc.command {
            CommandVariant::LoadDylib(c) => {
                let s = lc.offset + c.dylib.name as usize;
                bytes[s..].starts_with(name.as_bytes())
            }
            _ => false,
        })
        .unwrap()
        .offset;
    bytes[off..off + 4].copy_from_slice(&LC_LOAD_UPWARD_DYLIB.to_le_bytes());
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn thin_x86_64_closure() {
    let Some(fx) = Fx::new() else { return };
    fx.layout("x86_64", "x");
    make_upward(&fx.p("x/lib/libu.dylib"), "@rpath/libt.dylib");
    let exe = fx.p("x/bin/m");
    let c = closure(
        &HostFs,
        std::slice::from_ref(&exe),
        &ClosureOptions::default(),
    )
    .unwrap();
    assert!(c.missing.is_empty(), "{}", c.render_tree());
    assert_eq!(c.host.as_ref().unwrap().to_string(), "x86_64-darwin");
    assert_eq!(c.hosts.len(), 1);
    // @rpath from the executable's @executable_path/../lib.
    let u = loaded(&c, "@rpath/libu.dylib");
    assert_eq!(u.len(), 1);
    assert_eq!(u[0].0, fx.p("x/bin/../lib/libu.dylib"));
    // libu's libt: upward, through libu's own @loader_path/../lib first.
    let t = loaded(&c, "@rpath/libt.dylib");
    assert_eq!(t[0].0, fx.p("x/bin/../lib/../lib/libt.dylib"));
    assert!(matches!(
        t[0].1,
        Why::Dylib {
            kind: DylibKind::Upward,
            ..
        }
    ));
    // Re-exported, by @loader_path.
    let r = loaded(&c, "@loader_path/libr.dylib");
    assert_eq!(r[0].0, fx.p("x/bin/../lib/libr.dylib"));
    // (lld 14 writes both a load and a re-export command for it.)
    let Binary::MachO(u) = parse(&std::fs::read(fx.p("x/lib/libu.dylib")).unwrap()).unwrap() else {
        panic!()
    };
    let reexport = (DylibKind::Reexport, "@loader_path/libr.dylib".to_owned());
    assert!(u[0].dylibs.contains(&reexport), "{:?}", u[0].dylibs);
    assert_eq!(u[0].install_name.as_deref(), Some("@rpath/libu.dylib"));
    assert_eq!(u[0].filetype, MachFileType::Dylib);
    // Weak: one found, one missing (a note, not a missing library).
    assert!(matches!(
        loaded(&c, "@rpath/libw.dylib")[0].1,
        Why::Dylib {
            kind: DylibKind::Weak,
            ..
        }
    ));
    assert!(
        c.notes
            .iter()
            .any(|n| n.contains("weak dylib @rpath/libgone.dylib not found")),
        "{:?}",
        c.notes
    );
    // libSystem lives in the OS's shared cache.
    let sys: Vec<&str> = c.os_provided.iter().map(|(n, _)| n.as_str()).collect();
    assert!(sys.iter().all(|n| *n == "/usr/lib/libSystem.B.dylib"));
    assert!(c.os_provided.iter().any(|(_, by)| *by == exe));
    assert_eq!(c.min_glibc, None);
    let files: Vec<PathBuf> = c.files.keys().cloned().collect();
    let want: Vec<PathBuf> = [
        "bin/m",
        "lib/libr.dylib",
        "lib/libt.dylib",
        "lib/libu.dylib",
        "lib/libw.dylib",
    ]
    .iter()
    .map(|f| fx.p("x").join(f))
    .collect();
    assert_eq!(files, want);
    super::tests::check_self_contained(&c);
    let tree = c.render_tree();
    assert!(tree.contains("host: x86_64-darwin"), "{tree}");
    assert!(
        tree.contains("[upward]") && tree.contains("[weak]"),
        "{tree}"
    );
    assert!(
        tree.contains("provided by the OS:\n  /usr/lib/libSystem.B.dylib"),
        "{tree}"
    );

    // A dylib as the root: @executable_path unknown, @rpath from itself.
    let c = closure(
        &HostFs,
        &[fx.p("x/lib/libu.dylib")],
        &ClosureOptions::default(),
    )
    .unwrap();
    assert!(c.missing.is_empty(), "{:?}", c.missing);
    assert_eq!(
        loaded(&c, "@rpath/libt.dylib")[0].0,
        fx.p("x/lib/../lib/libt.dylib")
    );

    // Missing: named, with every candidate tried.
    std::fs::remove_file(fx.p("x/lib/libt.dylib")).unwrap();
    let c = closure(
        &HostFs,
        std::slice::from_ref(&exe),
        &ClosureOptions::default(),
    )
    .unwrap();
    assert_eq!(c.missing.len(), 1, "{:?}", c.missing);
    let m = &c.missing[0];
    assert_eq!(m.name, "@rpath/libt.dylib");
    assert_eq!(
        m.searched,
        [
            fx.p("x/bin/../lib/../lib/libt.dylib"),
            fx.p("x/bin/../lib/libt.dylib")
        ]
    );
}

#[test]
fn arm64_and_fat_closures() {
    let Some(fx) = Fx::new() else { return };
    fx.layout("x86_64", "x");
    fx.layout("arm64", "a");
    for f in [
        "bin/m",
        "lib/libt.dylib",
        "lib/libr.dylib",
        "lib/libu.dylib",
        "lib/libw.dylib",
    ] {
        let out = fx.p(&format!("fat/{f}"));
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        run(Command::new(LIPO)
            .arg("-create")
            .arg(fx.p(&format!("x/{f}")))
            .arg(fx.p(&format!("a/{f}")))
            .arg("-output")
            .arg(&out));
    }
    let c = closure(&HostFs, &[fx.p("a/bin/m")], &ClosureOptions::default()).unwrap();
    assert!(c.missing.is_empty(), "{:?}", c.missing);
    assert_eq!(c.host.as_ref().unwrap().to_string(), "aarch64-darwin");
    assert_eq!(c.files.len(), 5);

    let fat = fx.p("fat/bin/m");
    let bytes = std::fs::read(&fat).unwrap();
    let Binary::MachO(slices) = parse(&bytes).unwrap() else {
        panic!("not Mach-O")
    };
    let hosts: Vec<String> = slices.iter().map(|s| s.host.to_string()).collect();
    assert_eq!(hosts, ["x86_64-darwin", "aarch64-darwin"]);
    assert!(slices.iter().all(|s| s.filetype == MachFileType::Execute));
    assert_eq!(slices[0].rpaths, ["@executable_path/../lib"]);
    let c = closure(
        &HostFs,
        std::slice::from_ref(&fat),
        &ClosureOptions::default(),
    )
    .unwrap();
    assert!(c.missing.is_empty(), "{:?}", c.missing);
    let hosts: Vec<String> = c.hosts.iter().map(ToString::to_string).collect();
    assert_eq!(hosts, ["x86_64-darwin", "aarch64-darwin"]);
    assert_eq!(c.files.len(), 5);
    check_parse_total(&bytes);
    check_parse_total(&std::fs::read(fx.p("x/lib/libu.dylib")).unwrap());

    // An x86_64 process cannot use an arm64-only dylib: skipped, missing.
    std::fs::copy(fx.p("a/lib/libt.dylib"), fx.p("x/lib/libt.dylib")).unwrap();
    let c = closure(&HostFs, &[fx.p("x/bin/m")], &ClosureOptions::default()).unwrap();
    assert_eq!(c.missing.len(), 1, "{:?}", c.missing);
    assert!(
        c.notes
            .iter()
            .any(|n| n.contains("no slice for CPU type 0x1000007")),
        "{:?}",
        c.notes
    );

    // Truncated: a clear error naming the file.
    let cut = fx.p("cut");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let e = closure(
        &HostFs,
        std::slice::from_ref(&cut),
        &ClosureOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&e, InspectError::Malformed { path, .. } if *path == cut),
        "{e}"
    );
}

/// Found by `fuzz/fuzz_targets/inspect_macho.rs`: an `LC_MAIN` with a
/// `__TEXT` segment whose file offset lies above its address made goblin
/// 0.10 subtract with overflow (a panic in debug builds).
#[test]
fn a_text_segment_above_its_address_is_malformed_not_a_panic() {
    let u32le = |v: u32| v.to_le_bytes();
    let u64le = |v: u64| v.to_le_bytes();
    let mut seg = Vec::new();
    seg.extend(u32le(0x19)); // LC_SEGMENT_64
    seg.extend(u32le(72));
    seg.extend(*b"__TEXT\0\0\0\0\0\0\0\0\0\0");
    for v in [0u64, 0x1000, 0x1000, 0] {
        seg.extend(u64le(v)); // vmaddr, vmsize, fileoff, filesize
    }
    for v in [5u32, 5, 0, 0] {
        seg.extend(u32le(v)); // maxprot, initprot, nsects, flags
    }
    let mut main = Vec::new();
    main.extend(u32le(0x8000_0028)); // LC_MAIN
    main.extend(u32le(24));
    main.extend(u64le(0x10));
    main.extend(u64le(0));
    let mut bytes = Vec::new();
    bytes.extend(u32le(0xfeed_facf)); // MH_MAGIC_64
    bytes.extend(u32le(0x0100_0007)); // x86_64
    bytes.extend(u32le(3));
    bytes.extend(u32le(2)); // MH_EXECUTE
    bytes.extend(u32le(2));
    bytes.extend(u32le((seg.len() + main.len()) as u32));
    bytes.extend(u32le(0));
    bytes.extend(u32le(0));
    bytes.extend(seg);
    bytes.extend(main);
    bytes.resize(0x2000, 0);
    match super::parse(&bytes) {
        Err(InspectError::Malformed { reason, .. }) => {
            assert!(reason.contains("Mach-O"), "{reason}")
        }
        // A goblin that checks its arithmetic may accept the file.
        Ok(_) => {}
        Err(e) => panic!("{e}"),
    }
}
