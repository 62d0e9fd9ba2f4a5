//! Tests against the real rustc (from `$RUSTC`, else `rustc` on PATH):
//! the files it writes are the ones the parser names, the dep-info scan
//! writes nothing else, `--print file-names` agrees with [`Naming`], and
//! `parse_version` reads its `-vV`. Each skips, saying why, when no rustc
//! runs.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use super::super::outputs::{Plan, outputs};
use super::super::*;
use super::words;
use crate::invocation::render_all;

fn rustc() -> Option<String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    match Command::new(&rustc).arg("-vV").output() {
        Ok(o) if o.status.success() => Some(rustc),
        _ => {
            eprintln!("skipped: cannot run {rustc} -vV; set RUSTC to a rustc");
            None
        }
    }
}

fn host(rustc: &str) -> Naming {
    let out = Command::new(rustc).arg("-vV").output().unwrap();
    let version = parse_version(&String::from_utf8_lossy(&out.stdout)).unwrap();
    Naming::for_triple(&version.host)
}

const LIB: &str = "pub fn f() -> u32 { 1 }\n";
const MAIN: &str = "fn main() {}\n";
const PM: &str = "use proc_macro::TokenStream;\n#[proc_macro]\npub fn m(_: TokenStream) -> TokenStream { TokenStream::new() }\n";

/// A fresh directory with the three sources and an empty `out/`.
fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [("lib.rs", LIB), ("main.rs", MAIN), ("pm.rs", PM)] {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    std::fs::create_dir(dir.path().join("out")).unwrap();
    dir
}

/// Every file under `dir` but the sources, relative, sorted.
fn written(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if !["lib.rs", "main.rs", "pm.rs"].contains(&rel.as_str()) {
                    out.push(rel);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// rustc does not create the directories it writes into (cargo and REAPI
/// workers do).
fn make_parents(dir: &Path, rc: &RustCompile) {
    for o in &rc.outputs {
        let parent = Path::new(&o.path).parent().unwrap();
        std::fs::create_dir_all(dir.join(parent)).unwrap();
    }
}

fn run(rustc: &str, dir: &Path, args: &[String]) {
    let out = Command::new(rustc)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rustc {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn rustc_writes_exactly_the_computed_outputs() {
    let Some(rustc) = rustc() else { return };
    let host = host(&rustc);
    let cases = [
        "--crate-name foo lib.rs --crate-type lib --emit=dep-info,metadata,link -C extra-filename=-abc --out-dir out",
        "--crate-name foo main.rs --crate-type bin --emit=dep-info,link -C extra-filename=-abc --out-dir out/bin",
        "--crate-name pm --edition=2021 pm.rs --crate-type proc-macro --emit=dep-info,link -C prefer-dynamic --extern proc_macro --out-dir out",
        "--crate-name foo lib.rs --crate-type staticlib,cdylib,rlib --emit=dep-info,link --out-dir out",
        "--crate-name foo lib.rs --crate-type dylib -C prefer-dynamic --out-dir out",
        "--crate-name foo lib.rs --test --emit=dep-info,link -C extra-filename=-t --out-dir out",
        "--crate-name foo main.rs --crate-type bin --emit=dep-info,metadata -g --out-dir out",
        "--crate-name foo lib.rs --crate-type lib --emit=obj,asm,llvm-ir,llvm-bc,mir,metadata --out-dir out",
        "--crate-name foo lib.rs --crate-type lib --emit=obj,llvm-bc -C codegen-units=4 -o out/z.o",
        "--crate-name foo lib.rs --crate-type lib --emit=link,metadata -C codegen-units=4 --out-dir out",
        "--crate-name foo lib.rs --crate-type lib --emit=link -C extra-filename=-x -o out/z.rlib",
        "--crate-name foo main.rs --crate-type bin --emit=dep-info,link,metadata -C extra-filename=-x -o out/prog.x",
        "--crate-name foo lib.rs --crate-type lib --emit=dep-info=out/a.d,metadata=out/m.rmeta,link --out-dir out2",
        "--crate-name foo lib.rs --crate-type lib --emit=dep-info=out/a.d,link -o out/one.rlib",
        "--crate-name foo lib.rs --crate-type lib",
        "--crate-name foo lib.rs --crate-type lib --emit metadata --emit=dep-info -O --out-dir=out",
    ];
    for case in cases {
        let dir = workdir();
        let args = words(case);
        let rc = parse_with_host(&args, &BTreeMap::new(), &host).unwrap();
        make_parents(dir.path(), &rc);
        run(
            &rustc,
            dir.path(),
            &render_all(&rc.remote_args, &|p| p.to_string()),
        );
        let mut want: Vec<String> = rc.outputs.iter().map(|o| o.path.clone()).collect();
        want.sort();
        assert_eq!(written(dir.path()), want, "{case}");
    }
}

/// The fixture shape cargo uses, with absolute paths.
#[test]
fn rustc_writes_the_outputs_of_a_cargo_line() {
    let Some(rustc) = rustc() else { return };
    let dir = workdir();
    let d = dir.path().display();
    let lib = format!(
        "--crate-name my_app --edition=2021 lib.rs --error-format=json --json=diagnostic-rendered-ansi,artifacts,future-incompat --crate-type lib --emit=dep-info,metadata,link -C embed-bitcode=no -C debuginfo=2 --cfg 'feature=\"std\"' --check-cfg 'cfg(feature, values(\"std\"))' -C metadata=29bff96716fd4b59 -C extra-filename=-46e3d0c1935f1c17 --out-dir {d}/target/debug/deps -L dependency={d}/target/debug/deps"
    );
    let rc = parse_with_host(&words(&lib), &BTreeMap::new(), &host(&rustc)).unwrap();
    make_parents(dir.path(), &rc);
    run(&rustc, dir.path(), &words(&lib));
    let mut want: Vec<String> = rc
        .outputs
        .iter()
        .map(|o| o.path.strip_prefix(&format!("{d}/")).unwrap().to_string())
        .collect();
    want.sort();
    assert_eq!(written(dir.path()), want);
    assert_eq!(
        want,
        [
            "target/debug/deps/libmy_app-46e3d0c1935f1c17.rlib",
            "target/debug/deps/libmy_app-46e3d0c1935f1c17.rmeta",
            "target/debug/deps/my_app-46e3d0c1935f1c17.d",
        ]
    );
}

/// `scan_args` plus the wrapper's `--emit=dep-info=FILE` writes FILE only.
#[test]
fn dep_info_scan_writes_only_its_file() {
    let Some(rustc) = rustc() else { return };
    let host = host(&rustc);
    for case in [
        "--crate-name foo lib.rs --crate-type lib --emit=dep-info,metadata,link -C extra-filename=-abc --out-dir out",
        "--crate-name foo main.rs --crate-type bin --emit=dep-info,link,metadata -o out/prog",
        "--crate-name pm --edition=2021 pm.rs --crate-type proc-macro --emit=dep-info,link -C prefer-dynamic --extern proc_macro --out-dir out",
    ] {
        let dir = workdir();
        let rc = parse_with_host(&words(case), &BTreeMap::new(), &host).unwrap();
        let mut args = render_all(&rc.scan_args, &|p| p.to_string());
        args.push("--emit=dep-info=scan.d".into());
        run(&rustc, dir.path(), &args);
        assert_eq!(written(dir.path()), ["scan.d"], "{case}");
        let text = std::fs::read_to_string(dir.path().join("scan.d")).unwrap();
        assert!(text.contains("lib.rs") || text.contains("main.rs") || text.contains("pm.rs"));
    }
}

/// [`Naming`] against `rustc --print file-names`, one target at a time
/// (targets need no installed std for this). A representative list by
/// default; `RECAST_TEST_ALL_TARGETS=1` checks every target rustc knows.
#[test]
fn naming_matches_print_file_names() {
    let Some(rustc) = rustc() else { return };
    let types = [
        CrateType::Bin,
        CrateType::Rlib,
        CrateType::Dylib,
        CrateType::Cdylib,
        CrateType::Staticlib,
        CrateType::ProcMacro,
    ];
    let targets: Vec<String> = if std::env::var_os("RECAST_TEST_ALL_TARGETS").is_some() {
        let out = Command::new(&rustc)
            .args(["--print", "target-list"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    } else {
        [
            "x86_64-unknown-linux-gnu",
            "aarch64-unknown-linux-musl",
            "aarch64-linux-android",
            "x86_64-unknown-freebsd",
            "x86_64-apple-darwin",
            "aarch64-apple-ios",
            "x86_64-pc-windows-msvc",
            "x86_64-pc-windows-gnu",
            "aarch64-pc-windows-gnullvm",
            "x86_64-pc-cygwin",
            "wasm32-unknown-unknown",
            "wasm32-wasip1",
            "wasm32-unknown-emscripten",
            "x86_64-unknown-uefi",
            "thumbv7em-none-eabi",
        ]
        .map(str::to_string)
        .to_vec()
    };
    let mut wrong = Vec::new();
    for target in &targets {
        let mut args: Vec<String> =
            words("--crate-name foo -C extra-filename=-x --print file-names -");
        args.extend(["--target".into(), target.clone()]);
        for t in types {
            args.extend(["--crate-type".into(), t.as_str().into()]);
        }
        let out = Command::new(&rustc).args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{target}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        let kept: Vec<CrateType> = types
            .into_iter()
            .filter(|t| !stderr.contains(&format!("crate type `{}`", t.as_str())))
            .collect();
        let naming = Naming::for_triple(target);
        let emit = [Emit {
            kind: EmitKind::Link,
            path: None,
        }];
        let plan = Plan {
            crate_name: "foo",
            extra_filename: "-x",
            out_dir: None,
            output: None,
            emit: &emit,
            linked: &kept,
        };
        let mut want: Vec<String> = outputs(&plan, &naming)
            .into_iter()
            .map(|o| o.path)
            .collect();
        let mut got: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        got.sort();
        got.dedup();
        want.sort();
        if got != want {
            wrong.push(format!("{target}: rustc {got:?}, recast {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn parse_version_reads_the_real_rustc() {
    let Some(rustc) = rustc() else { return };
    let out = Command::new(&rustc).arg("-vV").output().unwrap();
    let v = parse_version(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert!(
        v.version_line.starts_with(&format!("rustc {}", v.release)),
        "{v:?}"
    );
    assert!(v.host.contains('-'), "{v:?}");
    assert!(v.llvm_version.is_some(), "{v:?}");
}
