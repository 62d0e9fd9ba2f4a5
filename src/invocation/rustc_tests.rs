//! Parser tests on command lines captured from cargo 1.95 (`cargo build
//! -v`, `--release`, `cargo test --no-run -v`, `cargo check -v`, with
//! `CARGO_INCREMENTAL=0` where noted) on a workspace with a lib, a bin, a
//! build script, a proc-macro crate and an integration test. The tests
//! that run the real rustc are in `rustc_tests_real.rs`.

use std::collections::BTreeMap;

use super::*;
use crate::invocation::{Arg, render_all};

#[path = "rustc_tests_real.rs"]
mod real;

/// Splits a command line the way `sh` would for the quoting cargo's `-v`
/// output uses (single and double quotes, no escapes inside single).
pub(super) fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    cur.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => cur.extend(chars.next()),
                        c => cur.push(c),
                    }
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

fn strs(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// The environment cargo 1.95 gave rustc for the `my-app` lib, plus what a
/// user's shell adds.
fn cargo_env() -> BTreeMap<String, String> {
    [
        (
            "CARGO",
            "/root/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/bin/cargo",
        ),
        ("CARGO_CRATE_NAME", "my_app"),
        ("CARGO_HOME", "/root/.cargo"),
        ("CARGO_INCREMENTAL", "0"),
        (
            "CARGO_MAKEFLAGS",
            "-j --jobserver-fds=6,7 --jobserver-auth=6,7",
        ),
        ("CARGO_MANIFEST_DIR", "/tmp/rc/ws/app"),
        ("CARGO_MANIFEST_PATH", "/tmp/rc/ws/app/Cargo.toml"),
        ("CARGO_PKG_AUTHORS", ""),
        ("CARGO_PKG_NAME", "my-app"),
        ("CARGO_PKG_VERSION", "0.1.0"),
        ("CARGO_PRIMARY_PACKAGE", "1"),
        ("CARGO_REGISTRY_TOKEN", "secret"),
        ("CARGO_TARGET_TMPDIR", "/tmp/rc/ws/target/tmp"),
        ("HOME", "/root"),
        (
            "OUT_DIR",
            "/tmp/rc/ws/target/debug/build/my-app-55d0261d938f1320/out",
        ),
        ("PATH", "/usr/bin:/bin"),
        ("RUSTC_BOOTSTRAP", "1"),
        ("RUSTC_WRAPPER", "recast"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

const DEBUG_DEPS: &str = "/tmp/rc/ws/target/debug/deps";

/// `cargo build -v` (CARGO_INCREMENTAL=0): the proc-macro.
const PM: &str = "--crate-name pm --edition=2024 pm/src/lib.rs --error-format=json --json=diagnostic-rendered-ansi,artifacts,future-incompat --crate-type proc-macro --emit=dep-info,link -C prefer-dynamic -C embed-bitcode=no --check-cfg 'cfg(docsrs,test)' --check-cfg 'cfg(feature, values())' -C metadata=e565937305acce54 -C extra-filename=-7cdbf9dff645a865 --out-dir /tmp/rc/ws/target/debug/deps -L dependency=/tmp/rc/ws/target/debug/deps --extern proc_macro";
/// The build script.
const BUILD_SCRIPT: &str = "--crate-name build_script_build --edition=2021 app/build.rs --error-format=json --json=diagnostic-rendered-ansi,artifacts,future-incompat --crate-type bin --emit=dep-info,link -C embed-bitcode=no --cfg 'feature=\"default\"' --cfg 'feature=\"std\"' --check-cfg 'cfg(docsrs,test)' --check-cfg 'cfg(feature, values(\"default\", \"std\"))' -C metadata=0bb17f831829d12a -C extra-filename=-409ab3e73b4109da --out-dir /tmp/rc/ws/target/debug/build/my-app-409ab3e73b4109da -L dependency=/tmp/rc/ws/target/debug/deps";
/// The lib, depending on the proc-macro.
const LIB: &str = "--crate-name my_app --edition=2021 app/src/lib.rs --error-format=json --json=diagnostic-rendered-ansi,artifacts,future-incompat --crate-type lib --emit=dep-info,metadata,link -C embed-bitcode=no -C debuginfo=2 --cfg 'feature=\"default\"' --cfg 'feature=\"std\"' --check-cfg 'cfg(docsrs,test)' --check-cfg 'cfg(feature, values(\"default\", \"std\"))' -C metadata=29bff96716fd4b59 -C extra-filename=-46e3d0c1935f1c17 --out-dir /tmp/rc/ws/target/debug/deps -L dependency=/tmp/rc/ws/target/debug/deps --extern pm=/tmp/rc/ws/target/debug/deps/libpm-7cdbf9dff645a865.so";
/// `cargo test --no-run -v`: the bin's unit tests.
const BIN_TEST: &str = "--crate-name my_app --edition=2021 app/src/main.rs --error-format=json --json=diagnostic-rendered-ansi,artifacts,future-incompat --emit=dep-info,link -C embed-bitcode=no -C debuginfo=2 --test --cfg 'feature=\"default\"' --cfg 'feature=\"std\"' --check-cfg 'cfg(docsrs,test)' --check-cfg 'cfg(feature, values(\"default\", \"std\"))' -C metadata=1a74f6e3cf2a7ab6 -C extra-filename=-4c2685f0645bbc64 --out-dir /tmp/rc/ws/target/debug/deps -L dependency=/tmp/rc/ws/target/debug/deps --extern my_app=/tmp/rc/ws/target/debug/deps/libmy_app-46e3d0c1935f1c17.rlib --extern pm=/tmp/rc/ws/target/debug/deps/libpm-7cdbf9dff645a865.so";
/// The proc-macro's unit tests.
const PM_TEST: &str = "--crate-name pm --edition=2024 pm/src/lib.rs --error-format=json --json=diagnostic-rendered-ansi,artifacts,future-incompat --emit=dep-info,link -C prefer-dynamic -C embed-bitcode=no -C debuginfo=2 --test --check-cfg 'cfg(docsrs,test)' --check-cfg 'cfg(feature, values())' -C metadata=057ff2a18029d0b9 -C extra-filename=-9f26217016c04952 --out-dir /tmp/rc/ws/target/debug/deps -L dependency=/tmp/rc/ws/target/debug/deps --extern proc_macro";
/// `cargo check -v`: the bin.
const BIN_CHECK: &str = "--crate-name my_app --edition=2021 app/src/main.rs --error-format=json --json=diagnostic-rendered-ansi,artifacts,future-incompat --crate-type bin --emit=dep-info,metadata -C embed-bitcode=no -C debuginfo=2 --cfg 'feature=\"default\"' --cfg 'feature=\"std\"' --check-cfg 'cfg(docsrs,test)' --check-cfg 'cfg(feature, values(\"default\", \"std\"))' -C metadata=3078714bcd749690 -C extra-filename=-f705a354a610b360 --out-dir /tmp/rc/ws/target/debug/deps -L dependency=/tmp/rc/ws/target/debug/deps --extern my_app=/tmp/rc/ws/target/debug/deps/libmy_app-771f9ffac3b776d8.rmeta --extern pm=/tmp/rc/ws/target/debug/deps/libpm-7cdbf9dff645a865.so";
/// `cargo build -v --release`: the bin.
const BIN_RELEASE: &str = "--crate-name my_app --edition=2021 app/src/main.rs --error-format=json --json=diagnostic-rendered-ansi,artifacts,future-incompat --crate-type bin --emit=dep-info,link -C opt-level=3 -C embed-bitcode=no --cfg 'feature=\"default\"' --cfg 'feature=\"std\"' --check-cfg 'cfg(docsrs,test)' --check-cfg 'cfg(feature, values(\"default\", \"std\"))' -C metadata=9228e5212965c1ce -C extra-filename=-3a9048009740879f --out-dir /tmp/rc/ws/target/release/deps -C strip=debuginfo -L dependency=/tmp/rc/ws/target/release/deps --extern my_app=/tmp/rc/ws/target/release/deps/libmy_app-9d2fea7ebd94b7d5.rlib --extern pm=/tmp/rc/ws/target/release/deps/libpm-3055993f9b9b6a42.so";
/// `cargo build -v` without CARGO_INCREMENTAL=0: the lib.
const LIB_INCREMENTAL: &str = "--crate-name my_app --edition=2021 app/src/lib.rs --error-format=json --json=diagnostic-rendered-ansi,artifacts,future-incompat --crate-type lib --emit=dep-info,metadata,link -C embed-bitcode=no -C debuginfo=2 --cfg 'feature=\"default\"' --cfg 'feature=\"std\"' --check-cfg 'cfg(docsrs,test)' --check-cfg 'cfg(feature, values(\"default\", \"std\"))' -C metadata=5f9f9386c0512e77 -C extra-filename=-87962f63a99ba3bb --out-dir /tmp/rc/ws/target/debug/deps -C incremental=/tmp/rc/ws/target/debug/incremental -L dependency=/tmp/rc/ws/target/debug/deps --extern pm=/tmp/rc/ws/target/debug/deps/libpm-2c61cc1d30490ca0.so";
/// Cargo's probe of the compiler.
const PROBE: &str = "- --crate-name ___ --print=file-names --crate-type bin --crate-type rlib --crate-type dylib --crate-type cdylib --crate-type staticlib --crate-type proc-macro --print=sysroot --print=split-debuginfo --print=crate-name --print=cfg -Wwarnings";

use CrateType as C;
use EmitKind as E;
use OutputKind::{Emit as Em, Link as Ln};

fn ok(line: &str) -> RustCompile {
    let args = words(line);
    let host = Naming::for_triple("x86_64-unknown-linux-gnu");
    parse_with_host(&args, &cargo_env(), &host).unwrap_or_else(|e| panic!("{e} for {line}"))
}

#[test]
fn cargo_lines_name_the_files_rustc_writes() {
    let d = DEBUG_DEPS;
    let bs = "/tmp/rc/ws/target/debug/build/my-app-409ab3e73b4109da";
    let r = "/tmp/rc/ws/target/release/deps";
    type Row<'a> = (&'a str, &'a str, &'a [(OutputKind, String)], bool);
    let table: &[Row] = &[
        (
            "proc-macro",
            PM,
            &[
                (Em(E::DepInfo), format!("{d}/pm-7cdbf9dff645a865.d")),
                (Ln(C::ProcMacro), format!("{d}/libpm-7cdbf9dff645a865.so")),
            ],
            true,
        ),
        (
            "build script",
            BUILD_SCRIPT,
            &[
                (
                    Em(E::DepInfo),
                    format!("{bs}/build_script_build-409ab3e73b4109da.d"),
                ),
                (
                    Ln(C::Bin),
                    format!("{bs}/build_script_build-409ab3e73b4109da"),
                ),
            ],
            true,
        ),
        (
            "lib",
            LIB,
            &[
                (Em(E::DepInfo), format!("{d}/my_app-46e3d0c1935f1c17.d")),
                (
                    Em(E::Metadata),
                    format!("{d}/libmy_app-46e3d0c1935f1c17.rmeta"),
                ),
                (Ln(C::Lib), format!("{d}/libmy_app-46e3d0c1935f1c17.rlib")),
            ],
            false,
        ),
        (
            "bin test harness",
            BIN_TEST,
            &[
                (Em(E::DepInfo), format!("{d}/my_app-4c2685f0645bbc64.d")),
                (Ln(C::Bin), format!("{d}/my_app-4c2685f0645bbc64")),
            ],
            true,
        ),
        (
            "proc-macro test harness",
            PM_TEST,
            &[
                (Em(E::DepInfo), format!("{d}/pm-9f26217016c04952.d")),
                (Ln(C::Bin), format!("{d}/pm-9f26217016c04952")),
            ],
            true,
        ),
        (
            "check bin",
            BIN_CHECK,
            &[
                (Em(E::DepInfo), format!("{d}/my_app-f705a354a610b360.d")),
                (
                    Em(E::Metadata),
                    format!("{d}/libmy_app-f705a354a610b360.rmeta"),
                ),
            ],
            false,
        ),
        (
            "release bin",
            BIN_RELEASE,
            &[
                (Em(E::DepInfo), format!("{r}/my_app-3a9048009740879f.d")),
                (Ln(C::Bin), format!("{r}/my_app-3a9048009740879f")),
            ],
            true,
        ),
    ];
    for (name, line, want, links) in table {
        let rc = ok(line);
        let got: Vec<(OutputKind, String)> = rc
            .outputs
            .iter()
            .map(|o| (o.kind, o.path.clone()))
            .collect();
        assert_eq!(&got, want, "{name}");
        assert_eq!(rc.links, *links, "{name}");
        assert_eq!(rc.dep_info.as_deref(), Some(want[0].1.as_str()), "{name}");
        assert!(rc.error_format_json && rc.json_artifacts, "{name}");
    }
}

#[test]
fn remote_args_render_back_to_the_original() {
    for line in [
        PM,
        BUILD_SCRIPT,
        LIB,
        BIN_TEST,
        PM_TEST,
        BIN_CHECK,
        BIN_RELEASE,
    ] {
        let args = words(line);
        let rc = ok(line);
        assert_eq!(
            render_all(&rc.remote_args, &|p| p.to_string()),
            args,
            "{line}"
        );
        // The scan drops only --emit.
        let scan: Vec<String> = args
            .iter()
            .filter(|a| !a.starts_with("--emit"))
            .cloned()
            .collect();
        assert_eq!(render_all(&rc.scan_args, &|p| p.to_string()), scan);
    }
}

#[test]
fn every_path_is_marked() {
    let rc = ok(BIN_RELEASE);
    let paths: Vec<&str> = rc
        .remote_args
        .iter()
        .filter_map(|a| match a {
            Arg::Path { path, .. } => Some(path.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        paths,
        [
            "app/src/main.rs",
            "/tmp/rc/ws/target/release/deps",
            "/tmp/rc/ws/target/release/deps",
            "/tmp/rc/ws/target/release/deps/libmy_app-9d2fea7ebd94b7d5.rlib",
            "/tmp/rc/ws/target/release/deps/libpm-3055993f9b9b6a42.so",
        ]
    );
    assert!(
        rc.remote_args
            .contains(&Arg::path("dependency=", "/tmp/rc/ws/target/release/deps"))
    );
    assert!(rc.remote_args.contains(&Arg::path(
        "my_app=",
        "/tmp/rc/ws/target/release/deps/libmy_app-9d2fea7ebd94b7d5.rlib"
    )));
    // A path mapped into an input root lands after the prefix.
    let mapped = render_all(&rc.remote_args, &|p| format!("/root{p}"));
    assert!(mapped.contains(&"dependency=/root/tmp/rc/ws/target/release/deps".to_string()));
}

#[test]
fn externs_search_paths_and_inputs() {
    let rc = ok(BIN_TEST);
    assert_eq!(rc.crate_name, "my_app");
    assert!(rc.test);
    assert!(rc.crate_types.is_empty());
    assert_eq!(rc.source, "app/src/main.rs");
    assert_eq!(rc.extra_filename, "-4c2685f0645bbc64");
    assert_eq!(rc.out_dir.as_deref(), Some(DEBUG_DEPS));
    assert_eq!(
        rc.externs,
        [
            Extern {
                name: "my_app".into(),
                path: Some(format!("{DEBUG_DEPS}/libmy_app-46e3d0c1935f1c17.rlib")),
                modifiers: vec![],
            },
            Extern {
                name: "pm".into(),
                path: Some(format!("{DEBUG_DEPS}/libpm-7cdbf9dff645a865.so")),
                modifiers: vec![],
            },
        ]
    );
    assert_eq!(
        rc.search_paths,
        [SearchPath {
            kind: SearchKind::Dependency,
            path: DEBUG_DEPS.into()
        }]
    );
    let kinds: Vec<InputKind> = rc.inputs.iter().map(|i| i.kind).collect();
    assert_eq!(
        kinds,
        [
            InputKind::SearchDir(SearchKind::Dependency),
            InputKind::Extern,
            InputKind::Extern
        ]
    );

    let pm = ok(PM);
    assert_eq!(pm.crate_types, [C::ProcMacro]);
    assert_eq!(
        pm.externs,
        [Extern {
            name: "proc_macro".into(),
            path: None,
            modifiers: vec![]
        }]
    );
    assert!(pm.remote_args.contains(&Arg::plain("proc_macro")));
}

#[test]
fn env_keeps_what_the_compile_observes() {
    let rc = ok(LIB);
    let p = |s: &str| EnvValue::Path(s.into());
    let v = |s: &str| EnvValue::Plain(s.into());
    let want = vec![
        (
            "CARGO",
            p("/root/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/bin/cargo"),
        ),
        ("CARGO_CRATE_NAME", v("my_app")),
        ("CARGO_MANIFEST_DIR", p("/tmp/rc/ws/app")),
        ("CARGO_MANIFEST_PATH", p("/tmp/rc/ws/app/Cargo.toml")),
        ("CARGO_PKG_AUTHORS", v("")),
        ("CARGO_PKG_NAME", v("my-app")),
        ("CARGO_PKG_VERSION", v("0.1.0")),
        ("CARGO_PRIMARY_PACKAGE", v("1")),
        ("CARGO_TARGET_TMPDIR", p("/tmp/rc/ws/target/tmp")),
        (
            "OUT_DIR",
            p("/tmp/rc/ws/target/debug/build/my-app-55d0261d938f1320/out"),
        ),
        ("RUSTC_BOOTSTRAP", v("1")),
    ];
    let want: Vec<(String, EnvValue)> = want.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    assert_eq!(rc.env, want);
}

#[test]
fn local_cases() {
    let table: &[(&str, LocalReason)] = &[
        (LIB_INCREMENTAL, R::Incremental),
        (PROBE, R::StdinInput),
        ("--crate-name a a.rs --crate-type lib --print=cfg", R::Print),
        ("--print cfg", R::Print),
        ("-vV", R::VersionQuery),
        ("-V", R::VersionQuery),
        ("--version", R::VersionQuery),
        ("--help", R::Help),
        ("-h", R::Help),
        ("--explain E0308", R::Explain),
        ("-C help", R::Print),
        ("-W help", R::Print),
        ("-Zhelp", R::Print),
        ("--crate-name a --crate-type lib", R::NoSource),
        (
            "--crate-name a a.rs b.rs --crate-type lib",
            R::MultipleSources,
        ),
        ("a.rs --crate-type lib", R::NoCrateName),
        ("--crate-name a a.rs", R::NoCrateType),
        (
            "--crate-name a a.rs --crate-type lib -C save-temps",
            R::SaveTemps,
        ),
        (
            "--crate-name a a.rs --crate-type lib -Csave-temps=yes",
            R::SaveTemps,
        ),
        (
            "--crate-name a a.rs --crate-type lib -C profile-generate=/tmp/pgo",
            R::ProfileGenerate,
        ),
        (
            "--crate-name a a.rs --crate-type bin -C split-debuginfo=packed",
            R::SplitDebuginfo,
        ),
        (
            "--crate-name a a.rs --crate-type bin -Csplit-debuginfo=unpacked",
            R::SplitDebuginfo,
        ),
        (
            "--crate-name a a.rs --crate-type lib --emit=obj -C codegen-units=4",
            R::CodegenUnits,
        ),
        (
            "--crate-name a a.rs --crate-type lib --emit=llvm-bc,link -Ccodegen-units=2",
            R::CodegenUnits,
        ),
        (
            "--crate-name a a.rs --crate-type lib -Z self-profile",
            R::UnstableOutputFlag,
        ),
        (
            "--crate-name a a.rs --crate-type lib -Zself-profile=/tmp/p",
            R::UnstableOutputFlag,
        ),
        (
            "--crate-name a a.rs --crate-type lib -Z dump-mir=all",
            R::UnstableOutputFlag,
        ),
        (
            "--crate-name a a.rs --crate-type lib -Z dump_mir_dir=x",
            R::UnstableOutputFlag,
        ),
        (
            "--crate-name a a.rs --crate-type lib -Zcodegen-backend=/x.so",
            R::UnstableOutputFlag,
        ),
        ("--crate-name a a.rs --crate-type lib -o -", R::StdoutOutput),
        (
            "--crate-name a a.rs --crate-type lib --emit=mir=-",
            R::StdoutOutput,
        ),
        (
            "--crate-name a a.rs --crate-type lib --frobnicate",
            R::UnsupportedFlag,
        ),
        (
            "--crate-name a a.rs --crate-type lib -O3",
            R::UnsupportedFlag,
        ),
        (
            "--crate-name a a.rs --crate-type lib --pretty=expanded",
            R::UnsupportedFlag,
        ),
        (
            "--crate-name a a.rs --crate-type lib --test=yes",
            R::UnsupportedFlag,
        ),
        (
            "--crate-name a a.rs --crate-type lib @args.txt",
            R::BadArgument,
        ),
        ("--crate-name a a.rs --crate-type rlib,wasm", R::BadArgument),
        (
            "--crate-name a a.rs --crate-type lib --emit=link,exe",
            R::BadArgument,
        ),
        (
            "--crate-name a a.rs --crate-type lib --remap-path-prefix nothing",
            R::BadArgument,
        ),
        (
            "--crate-name a a.rs --crate-type lib --extern",
            R::BadArgument,
        ),
        ("--crate-name a a.rs --crate-type lib -L", R::BadArgument),
        (
            "--crate-name a a.rs --crate-type lib -L native=",
            R::BadArgument,
        ),
        (
            "--crate-name a a.rs --crate-type bin --target x86_64-pc-windows-msvc",
            R::UnsupportedTarget,
        ),
        (
            "--crate-name a a.rs --crate-type cdylib --target x86_64-pc-windows-gnu",
            R::UnsupportedTarget,
        ),
        (
            "--crate-name a a.rs --crate-type bin --target wasm32-unknown-emscripten",
            R::UnsupportedTarget,
        ),
        (
            "--crate-name a a.rs --crate-type bin --target my.json",
            R::UnsupportedTarget,
        ),
        (
            "--crate-name a a.rs --crate-type bin -g --target aarch64-apple-darwin",
            R::SplitDebuginfo,
        ),
    ];
    let host = Naming::for_triple("x86_64-unknown-linux-gnu");
    for (line, reason) in table {
        let err = parse_with_host(&words(line), &BTreeMap::new(), &host)
            .err()
            .unwrap_or_else(|| panic!("{line} parsed"));
        assert_eq!(err.reason, *reason, "{line}: {err}");
    }
    assert_eq!(R::Incremental.as_str(), "incremental");
    assert_eq!(R::UnstableOutputFlag.as_str(), "unstable_output_flag");
    let err = parse(&words(LIB_INCREMENTAL), &BTreeMap::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "runs locally (incremental): -C incremental=/tmp/rc/ws/target/debug/incremental"
    );
}

#[test]
fn local_reason_keys_are_distinct_snake_case() {
    let keys: std::collections::BTreeSet<&str> =
        LocalReason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(keys.len(), LocalReason::ALL.len());
    assert!(
        keys.iter()
            .all(|k| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
    );
}

#[test]
fn rust_target_path_makes_a_bare_target_local() {
    let env: BTreeMap<String, String> =
        [("RUST_TARGET_PATH".to_string(), "/specs".to_string())].into();
    let err = parse(
        &words("--crate-name a a.rs --crate-type lib --target custom"),
        &env,
    )
    .unwrap_err();
    assert_eq!(err.reason, R::UnsupportedTarget);
}

#[test]
fn targets_that_link_fine_or_need_no_linker() {
    for line in [
        "--crate-name a a.rs --crate-type lib --target x86_64-pc-windows-msvc",
        "--crate-name a a.rs --crate-type staticlib --target x86_64-pc-windows-msvc",
        "--crate-name a a.rs --crate-type bin --target aarch64-apple-darwin",
        "--crate-name a a.rs --crate-type bin -g -C split-debuginfo=off --target aarch64-apple-darwin",
        "--crate-name a a.rs --crate-type bin -g -C debuginfo=0 --target aarch64-apple-darwin",
        "--crate-name a a.rs --crate-type lib --target my.json",
        "--crate-name a a.rs --crate-type bin --emit=metadata --target x86_64-pc-windows-msvc",
    ] {
        let rc = parse(&words(line), &BTreeMap::new()).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert!(!rc.links || line.contains("apple"), "{line}");
    }
    let rc = ok("--crate-name a a.rs --crate-type lib --target my.json");
    assert_eq!(rc.target, Some(Target::SpecFile("my.json".into())));
    assert_eq!(
        rc.inputs,
        [RustInput {
            path: "my.json".into(),
            kind: InputKind::TargetSpec
        }]
    );
    assert!(rc.remote_args.contains(&Arg::path("", "my.json")));
    let rc = ok("--crate-name a a.rs --crate-type staticlib --target=x86_64-pc-windows-msvc");
    assert_eq!(
        rc.target,
        Some(Target::Triple("x86_64-pc-windows-msvc".into()))
    );
    assert_eq!(rc.outputs[0].path, "a.lib");
}

#[test]
fn attached_and_separate_forms() {
    let line = "--crate-name=a a.rs --crate-type=lib,rlib --crate-type bin -Cextra-filename=-x \
         --codegen=metadata=m -Ldependency=/d -L/all -L native=/n -Lframework=/f -L crate=/c \
         -L odd=/o --extern=priv:foo=/x/libfoo.rlib --extern noprelude,nounused:bar=b.rmeta \
         --extern std -Aunused -W missing-docs --deny=warnings --forbid unsafe-code \
         --force-warn=dead-code --cap-lints=allow -lstatic=z -l dylib=m --cfg=test \
         --sysroot=/sys --out-dir=out -Zunstable-options -Z threads=2 --env-set A=b \
         --crate-attr=no_std -g -O -v --verbose --color=always --diagnostic-width 100 \
         --edition 2021 --remap-path-scope=all";
    let rc = ok(line);
    assert_eq!(rc.crate_types, [C::Lib, C::Rlib, C::Bin]);
    assert_eq!(rc.extra_filename, "-x");
    assert_eq!(rc.sysroot.as_deref(), Some("/sys"));
    let sp: Vec<(SearchKind, &str)> = rc
        .search_paths
        .iter()
        .map(|s| (s.kind, s.path.as_str()))
        .collect();
    assert_eq!(
        sp,
        [
            (SearchKind::Dependency, "/d"),
            (SearchKind::All, "/all"),
            (SearchKind::Native, "/n"),
            (SearchKind::Framework, "/f"),
            (SearchKind::Crate, "/c"),
            (SearchKind::All, "odd=/o"),
        ]
    );
    assert_eq!(
        rc.externs,
        [
            Extern {
                name: "foo".into(),
                path: Some("/x/libfoo.rlib".into()),
                modifiers: vec!["priv".into()]
            },
            Extern {
                name: "bar".into(),
                path: Some("b.rmeta".into()),
                modifiers: vec!["noprelude".into(), "nounused".into()]
            },
            Extern {
                name: "std".into(),
                path: None,
                modifiers: vec![]
            },
        ]
    );
    for arg in [
        Arg::path("-Ldependency=", "/d"),
        Arg::path("-L", "/all"),
        Arg::path("native=", "/n"),
        Arg::path("--extern=priv:foo=", "/x/libfoo.rlib"),
        Arg::path("noprelude,nounused:bar=", "b.rmeta"),
        Arg::path("--sysroot=", "/sys"),
        Arg::path("--out-dir=", "out"),
    ] {
        assert!(rc.remote_args.contains(&arg), "{arg:?}");
    }
    assert_eq!(render_all(&rc.remote_args, &|p| p.to_string()), words(line));
}

#[test]
fn remap_path_prefix_splits_at_the_last_equals() {
    let rc = ok(
        "--crate-name a a.rs --crate-type lib --remap-path-prefix /a=b=/c --remap-path-prefix=/src=",
    );
    assert!(rc.remote_args.contains(&Arg::PrefixMap {
        flag: String::new(),
        old: "/a=b".into(),
        new: "/c".into()
    }));
    assert!(rc.remote_args.contains(&Arg::PrefixMap {
        flag: "--remap-path-prefix=".into(),
        old: "/src".into(),
        new: String::new()
    }));
    let original = render_all(&rc.remote_args, &|p| p.to_string());
    assert_eq!(
        original,
        words(
            "--crate-name a a.rs --crate-type lib --remap-path-prefix /a=b=/c --remap-path-prefix=/src="
        )
    );
}

#[test]
fn codegen_paths() {
    let rc = ok(
        "--crate-name a a.rs --crate-type bin -C linker=/usr/bin/clang -Cprofile-use=/p/merged.profdata -C dlltool=dlltool -C link-arg=-fuse-ld=lld -C prefer-dynamic -C target-cpu=native",
    );
    assert_eq!(rc.linker.as_deref(), Some("/usr/bin/clang"));
    assert!(
        rc.remote_args
            .contains(&Arg::path("linker=", "/usr/bin/clang"))
    );
    assert!(
        rc.remote_args
            .contains(&Arg::path("-Cprofile-use=", "/p/merged.profdata"))
    );
    assert!(rc.remote_args.contains(&Arg::plain("dlltool=dlltool")));
    assert!(
        rc.remote_args
            .contains(&Arg::plain("link-arg=-fuse-ld=lld"))
    );
    let kinds: Vec<InputKind> = rc.inputs.iter().map(|i| i.kind).collect();
    assert_eq!(kinds, [InputKind::Tool, InputKind::ProfileUse]);
    // A bare linker name is looked up in PATH: not a path.
    let rc = ok("--crate-name a a.rs --crate-type bin -C linker=cc");
    assert_eq!(rc.linker.as_deref(), Some("cc"));
    assert!(rc.inputs.is_empty());
    assert!(rc.remote_args.contains(&Arg::plain("linker=cc")));
    // rustc reads `_` in codegen keys as `-`.
    let err = parse(
        &words("--crate-name a a.rs --crate-type bin -C save_temps"),
        &BTreeMap::new(),
    );
    assert_eq!(err.unwrap_err().reason, R::SaveTemps);
    assert!(ok("--crate-name a a.rs --crate-type bin -C save-temps=no").links);
}

fn paths(rc: &RustCompile) -> Vec<&str> {
    rc.outputs.iter().map(|o| o.path.as_str()).collect()
}

/// Each row was checked by running rustc 1.95 with the same flags and
/// listing what it wrote (see `rustc_tests_real.rs` for the automated form).
#[test]
fn output_naming_rules() {
    let table: &[(&str, &[&str])] = &[
        // No --out-dir: the cwd.
        ("--crate-name foo lib.rs --crate-type lib", &["libfoo.rlib"]),
        (
            "--crate-name foo main.rs --crate-type bin --emit=dep-info,metadata,link -C extra-filename=-abc --out-dir o2",
            &["o2/foo-abc.d", "o2/libfoo-abc.rmeta", "o2/foo-abc"],
        ),
        (
            "--crate-name foo lib.rs --crate-type staticlib,cdylib --crate-type dylib --emit=dep-info,link,obj,asm,llvm-ir,llvm-bc,mir -C extra-filename=-abc --out-dir o4",
            &[
                "o4/foo-abc.d",
                "o4/libfoo-abc.a",
                "o4/libfoo-abc.so",
                "o4/foo-abc.o",
                "o4/foo-abc.s",
                "o4/foo-abc.ll",
                "o4/foo-abc.bc",
                "o4/foo-abc.mir",
            ],
        ),
        // --test ignores --crate-type.
        (
            "--crate-name foo lib.rs --test --crate-type lib --emit=dep-info,link -C extra-filename=-abc --out-dir o5",
            &["o5/foo-abc.d", "o5/foo-abc"],
        ),
        // -o with two kinds: next to it, its stem for dep-info, the crate name for the rlib.
        (
            "--crate-name foo lib.rs --crate-type lib --emit=dep-info,link -C extra-filename=-abc -o o6/out.x",
            &["o6/out-abc.d", "o6/libfoo-abc.rlib"],
        ),
        // -o with one kind: exactly, ignoring extra-filename.
        (
            "--crate-name foo lib.rs --crate-type lib --emit=link -C extra-filename=-abc -o o7/out.x",
            &["o7/out.x"],
        ),
        // -o wins over --out-dir; bin uses the -o stem.
        (
            "--crate-name foo main.rs --crate-type bin --emit=dep-info,link -C extra-filename=-abc -o p1/out.x --out-dir p1/zz",
            &["p1/out-abc.d", "p1/out-abc"],
        ),
        (
            "--crate-name foo lib.rs --crate-type lib --emit=metadata,dep-info -o p6/m.rmeta",
            &["p6/libfoo.rmeta", "p6/m.d"],
        ),
        // Explicit paths exactly, the rest in --out-dir.
        (
            "--crate-name foo lib.rs --crate-type lib --emit=dep-info=o9/dep.d --emit=metadata=o9/m.rmeta --emit link --out-dir o9",
            &["o9/dep.d", "o9/m.rmeta", "o9/libfoo.rlib"],
        ),
        // One unnamed kind beside named ones: it takes -o.
        (
            "--crate-name foo lib.rs --crate-type lib --emit=dep-info=x.d,link -o out/y.rlib",
            &["x.d", "out/y.rlib"],
        ),
        // A later --emit of a kind replaces its path.
        (
            "--crate-name foo lib.rs --crate-type lib --emit=dep-info=x.d --emit=dep-info,link --out-dir o",
            &["o/foo.d", "o/libfoo.rlib"],
        ),
        (
            "--crate-name foo main.rs --crate-type bin --target x86_64-unknown-uefi --out-dir o",
            &["o/foo.efi"],
        ),
        (
            "--crate-name foo main.rs --crate-type bin,cdylib --target wasm32-unknown-unknown --out-dir o",
            &["o/foo.wasm"],
        ),
    ];
    for (line, want) in table {
        assert_eq!(paths(&ok(line)), *want, "{line}");
    }
}

#[test]
fn emit_paths_are_marked_one_per_argument() {
    let rc =
        ok("--crate-name foo lib.rs --crate-type lib --emit=dep-info=d/x.d,metadata,link=l/y.rlib");
    let emits: Vec<&Arg> = rc
        .remote_args
        .iter()
        .filter(|a| a.original().starts_with("--emit"))
        .collect();
    assert_eq!(
        emits,
        [
            &Arg::plain("--emit=metadata"),
            &Arg::path("--emit=dep-info=", "d/x.d"),
            &Arg::path("--emit=link=", "l/y.rlib"),
        ]
    );
    assert_eq!(rc.dep_info.as_deref(), Some("d/x.d"));
    let rc = ok("--crate-name foo lib.rs --crate-type lib --emit dep-info=d/x.d");
    assert_eq!(
        rc.remote_args[5..],
        [Arg::plain("--emit"), Arg::path("dep-info=", "d/x.d")]
    );
    assert!(rc.scan_args.iter().all(|a| !a.original().contains("emit")));
}

#[test]
fn parse_version_reads_rustc_vv() {
    let vv = "rustc 1.95.0 (59807616e 2026-04-14)\nbinary: rustc\ncommit-hash: 59807616e1fa2540724bfbac14d7976d7e4a3860\ncommit-date: 2026-04-14\nhost: x86_64-unknown-linux-gnu\nrelease: 1.95.0\nLLVM version: 22.1.2\n";
    assert_eq!(
        parse_version(vv),
        Ok(RustcVersion {
            version_line: "rustc 1.95.0 (59807616e 2026-04-14)".into(),
            release: "1.95.0".into(),
            commit_hash: Some("59807616e1fa2540724bfbac14d7976d7e4a3860".into()),
            commit_date: Some("2026-04-14".into()),
            host: "x86_64-unknown-linux-gnu".into(),
            llvm_version: Some("22.1.2".into()),
        })
    );
    let distro = "rustc 1.80.0\nbinary: rustc\ncommit-hash: unknown\ncommit-date: unknown\nhost: aarch64-unknown-linux-gnu\nrelease: 1.80.0\n";
    let v = parse_version(distro).unwrap();
    assert_eq!(
        (v.commit_hash, v.llvm_version, v.host.as_str()),
        (None, None, "aarch64-unknown-linux-gnu")
    );
    assert_eq!(
        parse_version("gcc (GCC) 13.2\n"),
        Err(VersionError::NotRustc("gcc (GCC) 13.2".into()))
    );
    assert_eq!(
        parse_version("rustc 1.0\nrelease: 1.0\n"),
        Err(VersionError::Missing("host"))
    );
}

#[test]
fn words_splits_like_sh() {
    assert_eq!(
        words(r#"--cfg 'feature="std"' --check-cfg "cfg(a, values(\"x\"))"  b"#),
        strs(&[
            "--cfg",
            "feature=\"std\"",
            "--check-cfg",
            "cfg(a, values(\"x\"))",
            "b"
        ])
    );
    assert_eq!(words("''"), strs(&[""]));
}
