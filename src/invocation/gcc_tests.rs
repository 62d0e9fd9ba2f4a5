//! Tests for the gcc/clang parser: a table of command lines and what they
//! mean, the argument lists' invariants, and the dependency-scan
//! equivalence checked against the real gcc and clang.

use std::path::Path;
use std::process::Command;

use super::*;
use crate::invocation::render_all;

fn argv(line: &str) -> Vec<String> {
    line.split_whitespace().map(String::from).collect()
}

fn parse_line(line: &str, family: Family) -> Result<CCompile, Local> {
    parse("cc", &argv(line), family)
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.join(",")
    }
}

fn opt(v: Option<&str>) -> String {
    v.unwrap_or("-").to_string()
}

/// The field `key` of `c`, formatted the way the table writes it.
fn field(c: &CCompile, key: &str) -> String {
    match key {
        "src" => c.source.clone(),
        "out" => c.output.clone(),
        "kind" => match c.kind {
            OutputKind::Object => "o".into(),
            OutputKind::Assembly => "s".into(),
        },
        "lang" => opt(c.language.as_deref()),
        "dep" => opt(c.depfile.as_ref().map(|d| d.path.as_str())),
        "sys" => (if c.depfile.as_ref().is_some_and(|d| d.system_headers) {
            "y"
        } else {
            "n"
        })
        .into(),
        "phony" => (if c.depfile.as_ref().is_some_and(|d| d.phony) {
            "y"
        } else {
            "n"
        })
        .into(),
        "dwo" => opt(c.dwo.as_deref()),
        "target" => opt(c.target.as_deref()),
        "sysroot" => opt(c.sysroot.as_deref()),
        "debug" => (if c.debug_info { "y" } else { "n" }).into(),
        "extra" => list(&c.extra_inputs),
        "inc" => list(&c.include_dirs),
        "maps" => {
            let maps: Vec<String> = c
                .prefix_maps
                .iter()
                .map(|(k, o, n)| format!("{k:?}:{o}={n}"))
                .collect();
            list(&maps)
        }
        "scan" => list(&c.scan.dep_flags),
        other => panic!("unknown key {other}"),
    }
}

/// One row per flag family: the command line, then `key=value` pairs to
/// check (`local=REASON` for a local compile). `@clang` runs it as clang.
const TABLE: &[(&str, &str)] = &[
    // Compile-only, outputs as gcc names them.
    (
        "-c src/a.c",
        "src=src/a.c out=a.o kind=o dep=- dwo=- scan=-M",
    ),
    ("-c src/a.c -o build/a.o", "out=build/a.o"),
    ("-c src/a.c -obuild/a.o", "out=build/a.o"),
    ("-S src/a.c", "out=a.s kind=s"),
    ("-c -S a.c", "out=a.s kind=s"),
    ("-c a.tar.c", "out=a.tar.o"),
    ("-c x.cpp", "out=x.o"),
    ("-c x.S", "out=x.o"),
    ("-c x.mm", "out=x.o"),
    ("-c -x c prog", "src=prog lang=c out=prog.o"),
    ("-x c++ -c a.c", "lang=c++"),
    ("-xc++ -c a.c", "lang=c++"),
    ("-x c -x none -c a.c", "lang=-"),
    ("-c a.c -x c++", "lang=-"),
    // Dependency files.
    (
        "-MD -c src/a.c -o build/a.o",
        "dep=build/a.d sys=y phony=n scan=-M,-MQ,build/a.o",
    ),
    (
        "-MMD -MP -c a.c",
        "dep=a.d sys=n phony=y scan=-MM,-MP,-MQ,a.o",
    ),
    (
        "-MD -MF deps/a.d -MT custom -c a.c -o a.o",
        "dep=deps/a.d scan=-M,-MT,custom",
    ),
    (
        "-MD -MFdeps/a.d -MQx -MTy -c a.c",
        "dep=deps/a.d scan=-M,-MQ,x,-MT,y",
    ),
    (
        "-Wp,-MD,.a.o.d -c a.c -o sub/a.o",
        "dep=.a.o.d sys=y scan=-M,-MQ,a.o",
    ),
    (
        "@clang -Wp,-MD,.a.o.d -c a.c -o sub/a.o",
        "dep=.a.o.d scan=-M,-MQ,sub/a.o",
    ),
    ("-Wp,-MMD,x.d -c a.c", "dep=x.d sys=n"),
    ("-MD -c a.c", "dep=a.d scan=-M,-MQ,a.o"),
    ("-MD -S src/a.c", "dep=a.d scan=-M,-MQ,a.o"),
    ("-MD -S src/a.c -o x.s", "dep=x.d scan=-M,-MQ,x.s"),
    ("-MD -c a.c -o b.dir/noext", "dep=b.dir/noext.d"),
    ("-MD -c a.c -o .a.o", "dep=.a.d"),
    ("-MF x.d -MT t -MP -c a.c", "dep=- scan=-M"),
    ("-MG -MD -c a.c", "local=bad_argument"),
    ("-M a.c", "local=preprocess_only"),
    ("-MM a.c", "local=preprocess_only"),
    ("-MJ db.json -c a.c", "local=extra_output"),
    ("-MD -MF - -c a.c", "local=output_to_stdout"),
    ("-Wp,-MD,x.d -MF y.d -c a.c", "local=unsupported_flag"),
    ("-Wp,-MT,x -c a.c", "local=unsupported_flag"),
    ("-Wp,-DX,-UY -c a.c", "src=a.c"),
    ("-Mfoo -c a.c", "local=unsupported_flag"),
    // Paths that are directories or files the compile reads.
    (
        "-Iinc -I inc2 -iquote q -isystem s -idirafter d -B b -c a.c",
        "inc=inc,inc2,q,s,d,b",
    ),
    ("-I=sys/inc -I$SYSROOT/x -c a.c", "inc=-"),
    (
        "-include pre.h -imacros m.h -iprefix p/ -iwithprefix w -c a.c",
        "inc=- extra=-",
    ),
    ("--sysroot=/sr -c a.c", "sysroot=/sr"),
    ("--sysroot /sr -isysroot /is -c a.c", "sysroot=/sr"),
    ("-isysroot /is -c a.c", "sysroot=/is"),
    (
        "-specs=my.specs -specs other.specs -c a.c",
        "extra=my.specs,other.specs",
    ),
    ("-fplugin=./p.so -fplugin=annobin -c a.c", "extra=./p.so"),
    ("-fprofile-use=prof/ -c a.c", "extra=prof/"),
    ("-fprofile-instr-use=x.profdata -c a.c", "extra=x.profdata"),
    ("-fprofile-sample-use=s.prof -c a.c", "extra=s.prof"),
    (
        "-fsanitize=address -fsanitize-blacklist=bl.txt -fsanitize-ignorelist=il.txt -c a.c",
        "extra=bl.txt,il.txt",
    ),
    (
        "@clang -Xclang -include-pch -Xclang pch.pch -Xclang -include -Xclang pch.h -c a.c",
        "extra=pch.pch",
    ),
    ("@clang -ivfsoverlay vfs.yaml -c a.c", "extra=vfs.yaml"),
    ("-fprofile-use -c a.c", "local=profile_use_default_path"),
    ("-fauto-profile -c a.c", "local=profile_use_default_path"),
    // Prefix maps.
    (
        "-fdebug-prefix-map=/src=. -ffile-prefix-map=/b=/c -fmacro-prefix-map=x= -c a.c",
        "maps=Debug:/src=.,File:/b=/c,Macro:x=",
    ),
    ("-fdebug-prefix-map=nomap -c a.c", "local=bad_argument"),
    // Separate values that are not paths, and are not sources.
    ("-D NAME -U OTHER -x c -MT t -MQ q -c a.c", "src=a.c"),
    (
        "-Xpreprocessor -DX -Xassembler --noexecstack -Xlinker -rpath -c a.c",
        "src=a.c",
    ),
    (
        "@clang -target aarch64-linux-gnu -c a.c",
        "target=aarch64-linux-gnu",
    ),
    (
        "@clang --target=x86_64-pc-linux-gnu -c a.c",
        "target=x86_64-pc-linux-gnu",
    ),
    (
        "@clang -arch arm64 -mllvm -inline-threshold=100 -c a.c",
        "src=a.c",
    ),
    (
        "--param max-inline-insns-single=100 --param=ssp-buffer-size=4 -c a.c",
        "src=a.c",
    ),
    ("-L lib -l m -lz -c a.c", "src=a.c"),
    ("-Xpreprocessor -Iinc -c a.c", "local=unsupported_flag"),
    // Plain flags pass through.
    (
        "-O2 -Wall -Werror=format -fPIC -std=c11 -march=x86-64-v3 -fno-strict-aliasing -pthread -m64 -DX=1 -UY -c a.c",
        "src=a.c debug=n",
    ),
    (
        "-fcolor-diagnostics -fdiagnostics-color=always -c a.c",
        "src=a.c",
    ),
    (
        "-Wa,--noexecstack,-mrelax-relocations=no -Wl,-rpath,/x -c a.c",
        "src=a.c",
    ),
    ("-Wa,-adhln=a.lst -c a.c", "local=extra_output"),
    ("-Wa,-I,inc -c a.c", "local=unsupported_flag"),
    ("-fopt-info-vec=vec.txt -c a.c", "local=unsupported_flag"),
    ("-fuse-ld=/usr/bin/ld.lld -c a.c", "src=a.c"),
    ("--output=a.o -c a.c", "local=unsupported_flag"),
    ("@clang -Xclang -fno-pch-timestamp -c a.c", "src=a.c"),
    (
        "@clang -Xclang -load -Xclang plugin.so -c a.c",
        "local=compiler_plugin",
    ),
    (
        "@clang -Xclang -plugin -Xclang name -c a.c",
        "local=compiler_plugin",
    ),
    // Debug info and split DWARF.
    ("-g -c a.c", "debug=y dwo=-"),
    ("-g -g0 -c a.c", "debug=n"),
    ("-g0 -ggdb3 -c a.c", "debug=y"),
    ("-gdwarf-4 -c a.c", "debug=y"),
    ("-gz -gdwarf64 -c a.c", "debug=n"),
    (
        "-g -gsplit-dwarf -c src/a.c -o build/a.o",
        "dwo=build/a.dwo",
    ),
    ("-gsplit-dwarf -c src/a.c", "debug=n dwo=a.dwo"),
    ("@clang -gsplit-dwarf -c src/a.c", "debug=n dwo=-"),
    (
        "@clang -g -gsplit-dwarf -c src/a.c -o b.dir/noext",
        "dwo=b.dir/noext.dwo",
    ),
    ("@clang -g -gsplit-dwarf=single -c a.c", "dwo=-"),
    ("-g -gsplit-dwarf -gno-split-dwarf -c a.c", "dwo=-"),
    ("-g -gsplit-dwarf -S a.c", "dwo=-"),
    (
        "@clang -g -gsplit-dwarf -S src/a.c -o build/x.s",
        "dwo=a.dwo",
    ),
    // Not a single compile.
    ("a.c", "local=linking"),
    ("a.c -o prog", "local=linking"),
    ("-c a.c b.o", "local=linking"),
    ("-c a.c libx.a", "local=linking"),
    ("-c a.c libx.so", "local=linking"),
    ("-c a.c b.c", "local=multiple_sources"),
    ("-c", "local=no_source"),
    ("", "local=no_source"),
    ("-c -", "local=stdin_input"),
    ("-x c -c -", "local=stdin_input"),
    ("-E a.c", "local=preprocess_only"),
    ("-E -c a.c", "local=preprocess_only"),
    ("-fsyntax-only a.c", "local=syntax_only"),
    ("-c a.c -o -", "local=output_to_stdout"),
    ("-c a.h", "local=precompiled_header"),
    ("-x c++-header -c a.hpp", "local=precompiled_header"),
    ("-c a.f90", "local=unsupported_language"),
    ("-c a.s", "local=unsupported_language"),
    ("-x assembler -c a.x", "local=unsupported_language"),
    ("-c a.c -o", "local=bad_argument"),
    ("-c a.c -I", "local=bad_argument"),
    ("-c @missing.rsp a.c", "local=unsupported_flag"),
    // Side outputs and instrumentation.
    ("-save-temps -c a.c", "local=save_temps"),
    ("-save-temps=obj -c a.c", "local=save_temps"),
    ("-fprofile-generate -c a.c", "local=profile_generate"),
    ("-fprofile-generate=dir -c a.c", "local=profile_generate"),
    (
        "@clang -fprofile-instr-generate -c a.c",
        "local=profile_generate",
    ),
    ("--coverage -c a.c", "local=coverage"),
    ("-coverage -c a.c", "local=coverage"),
    ("-fprofile-arcs -c a.c", "local=coverage"),
    ("-ftest-coverage -c a.c", "local=coverage"),
    ("-fdump-tree-all -c a.c", "local=dump_flags"),
    ("-dM -c a.c", "local=dump_flags"),
    ("-da -c a.c", "local=dump_flags"),
    ("-aux-info protos.txt -c a.c", "local=extra_output"),
    (
        "@clang --serialize-diagnostics d.dia -c a.c",
        "local=extra_output",
    ),
    ("-fstack-usage -c a.c", "local=extra_output"),
    ("@clang -ftime-trace -c a.c", "local=extra_output"),
    ("@clang -fmodules -c a.c", "local=modules"),
    ("@clang -fcxx-modules -c a.c", "local=modules"),
    ("-fmodules-ts -c a.cc", "local=modules"),
    ("-dumpbase x -c a.c", "local=unsupported_flag"),
    // Questions to the driver.
    ("-v -c a.c", "local=version_query"),
    ("--version", "local=version_query"),
    ("-### -c a.c", "local=version_query"),
    ("-print-file-name=libc.so", "local=version_query"),
    ("-print-search-dirs", "local=version_query"),
    ("-dumpmachine", "local=version_query"),
    ("-dumpversion", "local=version_query"),
];

#[test]
fn flag_table_rows_mean_what_they_say() {
    let mut failures = Vec::new();
    for (line, want) in TABLE {
        let (family, line) = match line.strip_prefix("@clang ") {
            Some(rest) => (Family::Clang, rest),
            None => (Family::Gcc, *line),
        };
        let got = parse_line(line, family);
        for check in want.split_whitespace() {
            let (key, value) = check.split_once('=').unwrap();
            let actual = match (&got, key) {
                (Err(l), "local") => l.as_str().to_string(),
                (Err(l), _) => format!("local {} ({l})", l.as_str()),
                (Ok(_), "local") => "remote".into(),
                (Ok(c), key) => field(c, key),
            };
            if actual != value {
                failures.push(format!(
                    "{family:?} `{line}`: {key}: want {value}, got {actual}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn tuning_for_this_machines_cpu_runs_here() {
    for flag in ["-march=native", "-mcpu=native", "-mtune=native"] {
        let line = format!("-O2 {flag} -c a.c");
        assert_eq!(
            parse_line(&line, Family::Gcc),
            Err(Local::NativeCpu(flag.into())),
            "{line}"
        );
    }
    assert!(parse_line("-O2 -march=x86-64-v3 -c a.c", Family::Gcc).is_ok());
}

#[test]
fn local_reasons_have_distinct_stats_keys() {
    let all = [
        Local::PreprocessOnly,
        Local::Linking,
        Local::MultipleSources,
        Local::NoSource,
        Local::StdinInput,
        Local::SaveTemps,
        Local::ProfileGenerate,
        Local::ProfileUseDefaultPath(String::new()),
        Local::Coverage,
        Local::DumpFlags(String::new()),
        Local::VersionQuery(String::new()),
        Local::SyntaxOnly,
        Local::OutputToStdout,
        Local::PrecompiledHeader,
        Local::UnsupportedLanguage(String::new()),
        Local::ExtraOutput(String::new()),
        Local::Modules(String::new()),
        Local::CompilerPlugin(String::new()),
        Local::NativeCpu(String::new()),
        Local::UnsupportedFlag(String::new()),
        Local::BadArgument(String::new()),
    ];
    let mut keys: Vec<_> = all.iter().map(Local::as_str).collect();
    assert!(
        keys.iter()
            .all(|k| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
    );
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), all.len());
}

/// The original arguments without the dependency-file flags, computed
/// independently of the parser (separate and joined forms).
fn without_dep_flags(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-MD" | "-MMD" | "-MP" => {}
            "-MF" | "-MT" | "-MQ" => {
                it.next();
            }
            a if a.starts_with("-Wp,-MD,") || a.starts_with("-Wp,-MMD,") => {}
            a if ["-MF", "-MT", "-MQ"].iter().any(|f| a.starts_with(f)) => {}
            a => out.push(a.to_string()),
        }
    }
    out
}

#[test]
fn remote_args_rendered_unchanged_are_the_original_minus_dep_flags() {
    let mut checked = 0;
    for (line, _) in TABLE {
        let (family, line) = match line.strip_prefix("@clang ") {
            Some(rest) => (Family::Clang, rest),
            None => (Family::Gcc, *line),
        };
        let Ok(c) = parse_line(line, family) else {
            continue;
        };
        let args = argv(line);
        let identity = |p: &str| p.to_string();
        assert_eq!(
            render_all(&c.remote_args, &identity),
            without_dep_flags(&args),
            "`{line}`"
        );
        checked += 1;
    }
    assert!(checked > 40, "only {checked} remotable rows");
}

#[test]
fn scan_args_drop_the_compile_mode_output_and_split_dwarf() {
    let c = parse_line(
        "-MD -g -gsplit-dwarf -Iinc -c src/a.c -o build/a.o -DX",
        Family::Gcc,
    )
    .unwrap();
    let identity = |p: &str| p.to_string();
    assert_eq!(
        render_all(&c.scan.args, &identity),
        argv("-g -Iinc src/a.c -DX")
    );
}

#[test]
fn every_path_is_marked() {
    let line = "-Iinc -isystem /sys -include pre.h --sysroot=/sr -specs=s.specs \
                -fplugin=./p.so -fprofile-use=prof.gcda -fdebug-prefix-map=/old=new \
                -B tools -c src/a.c -o build/a.o -DX=1 -O2";
    let c = parse_line(line, Family::Gcc).unwrap();
    let mapped = render_all(&c.remote_args, &|p: &str| format!("<{p}>"));
    assert_eq!(
        mapped,
        argv(
            "-I<inc> -isystem </sys> -include <pre.h> --sysroot=</sr> -specs=<s.specs> \
             -fplugin=<./p.so> -fprofile-use=<prof.gcda> -fdebug-prefix-map=</old>=new \
             -B <tools> -c <src/a.c> -o <build/a.o> -DX=1 -O2"
        )
    );
    assert_eq!(c.include_dirs, ["inc", "/sys", "tools"]);
    assert_eq!(c.extra_inputs, ["s.specs", "./p.so", "prof.gcda"]);
}

#[test]
fn cpp_driver_is_preprocessing() {
    let args = argv("-c a.c");
    assert_eq!(
        parse("/usr/bin/cpp", &args, Family::Gcc),
        Err(Local::PreprocessOnly)
    );
    assert_eq!(
        parse("x86_64-linux-gnu-cpp-12", &args, Family::Gcc),
        Err(Local::PreprocessOnly)
    );
    assert!(parse("/usr/bin/gcc-12", &args, Family::Gcc).is_ok());
}

#[test]
fn dep_targets_keep_kind_and_order() {
    let c = parse_line("-MMD -MT raw$x -MQ quoted -c a.c", Family::Gcc).unwrap();
    let d = c.depfile.unwrap();
    assert_eq!(
        d.targets,
        [
            DepTarget::Raw("raw$x".into()),
            DepTarget::Quoted("quoted".into())
        ]
    );
}

// ---- The scan writes the same dependency file as the compile. ----

/// The cases the wrapper relies on; each runs with gcc and with clang.
/// The source includes a local header and <stddef.h>, so -MD and -MMD
/// differ.
fn equivalence_cases() -> Vec<Vec<String>> {
    let mut cases: Vec<Vec<String>> = [
        "-MD -c src/a.c -o build/a.o -Iinc",
        "-MMD -MP -c a.c -Iinc",
        "-MD -MF deps/a.d -MT custom -c a.c -o a.o -Iinc",
        "-Wp,-MD,.a.o.d -c a.c -o a.o -Iinc",
        "-Wp,-MMD,deps/k.d -c src/a.c -o build/a.o -Iinc",
        "-MD -c a.c -Iinc",
        "-MD -S src/a.c -Iinc",
        "-MD -MP -c src/a.c -o b.dir/noext -Iinc",
        "-MMD -MQ q$x -MT raw -MQ two -c a.c -o build/a.o -Iinc",
        "-MD -g -gsplit-dwarf -c src/a.c -o build/a.o -Iinc",
        "-g -gsplit-dwarf -c src/a.c -Iinc",
        "-gsplit-dwarf -c src/a.c -o build/a.o -Iinc",
        "-MD -g -gsplit-dwarf -S src/a.c -o build/x.s -Iinc",
        "-c -x c noext -Iinc",
    ]
    .iter()
    .map(|l| argv(l))
    .collect();
    // A source and an output with spaces and a `$`.
    cases.push(
        [
            "-MD",
            "-MP",
            "-c",
            "my file.c",
            "-o",
            "build/my $out.o",
            "-Iinc",
        ]
        .map(String::from)
        .to_vec(),
    );
    cases
}

fn write(dir: &Path, path: &str, text: &str) {
    let path = dir.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn run(dir: &Path, cc: &str, args: &[String]) {
    let out = Command::new(cc)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cc} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn check_equivalence(cc: &str, family: Family) {
    let source = "#include \"h.h\"\n#include <stddef.h>\nint x = H;\n";
    for args in equivalence_cases() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for src in ["a.c", "src/a.c", "my file.c", "noext"] {
            write(d, src, source);
        }
        write(d, "inc/h.h", "#define H 1\n");
        for sub in ["build", "deps", "b.dir"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let c = parse(cc, &args, family).unwrap_or_else(|l| panic!("{args:?}: {l}"));

        run(d, cc, &args);
        assert!(
            d.join(&c.output).exists(),
            "{cc} {args:?}: no output at {}",
            c.output
        );
        let dwos: Vec<String> = ["", "build/", "b.dir/"]
            .iter()
            .flat_map(|sub| std::fs::read_dir(d.join(sub)).unwrap())
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "dwo"))
            .map(|p| p.strip_prefix(d).unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            dwos,
            Vec::from_iter(c.dwo.clone()),
            "{cc} {args:?}: .dwo files"
        );
        let scan_tmp = "scan-out.d";
        let mut scan = render_all(&c.scan.args, &|p: &str| p.to_string());
        scan.extend(c.scan.dep_flags.iter().cloned());
        scan.extend(["-MF".to_string(), scan_tmp.to_string()]);
        match &c.depfile {
            Some(dep) => {
                let want = std::fs::read(d.join(&dep.path))
                    .unwrap_or_else(|e| panic!("{cc} {args:?}: no depfile at {}: {e}", dep.path));
                run(d, cc, &scan);
                let got = std::fs::read(d.join(scan_tmp)).unwrap();
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(&want),
                    "{cc} {args:?}: scan {scan:?}"
                );
            }
            None => {
                run(d, cc, &scan);
                let text = std::fs::read_to_string(d.join(scan_tmp)).unwrap();
                let deps = crate::invocation::depfile::parse(&text).unwrap();
                let prereqs = crate::invocation::depfile::prerequisites(&deps);
                assert!(prereqs.iter().any(|p| p == "inc/h.h"), "{prereqs:?}");
            }
        }
    }
}

fn have(cc: &str) -> bool {
    let found = Command::new(cc)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipped: {cc} is not installed");
    }
    found
}

#[test]
fn scan_writes_the_same_depfile_as_gcc() {
    if have("gcc") {
        check_equivalence("gcc", Family::Gcc);
    }
}

#[test]
fn scan_writes_the_same_depfile_as_clang() {
    if have("/usr/bin/clang") {
        check_equivalence("/usr/bin/clang", Family::Clang);
    }
}
