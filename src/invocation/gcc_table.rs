//! The gcc/clang flag table: one row per flag that takes an argument,
//! names a file, is an output or a dependency flag, or makes the compile
//! local. Flags that are none of these (`-O2`, `-Wall`, `-fPIC`, `-DX`,
//! `-march=…`, `-g…`) are not listed: the parser passes any unlisted flag
//! through as plain unless it looks like it names a file.
//!
//! Sources: the gcc 12.2 option summary and `gcc -dumpspecs`, clang 14's
//! driver options, and sccache's and ccache's tables for which of them
//! matter to a compile cache. What the rows mean is decided in `gcc.rs`.

use super::{OutputKind, PrefixMapKind};

/// How a flag takes its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Form {
    /// Exactly the name, no value (`-c`).
    Flag,
    /// The value is the next argument (`-Xclang ARG`).
    Separate,
    /// The value is the rest of the argument (`-fplugin=FILE`, `-Wp,…`).
    Joined,
    /// `-I dir` or `-Idir`.
    JoinedOrSeparate,
    /// `-fprofile-use` or `-fprofile-use=PATH`.
    OptionalEq,
    /// `--sysroot DIR` or `--sysroot=DIR`.
    EqOrSeparate,
}

/// What the flag (and its value) means for the compile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    /// Passed through; the value, if any, names no file.
    Plain,
    /// Passed through; the value is a path.
    Path,
    /// A directory searched for headers (or for tools, `-B`).
    IncludeDir,
    /// A file the compile reads that a `-M` scan does not list.
    ExtraInput,
    /// `-fplugin=`: a path when it looks like one, else a plugin name
    /// found in the compiler's own plugin directory.
    Plugin,
    Sysroot,
    Isysroot,
    Target,
    Language,
    Output,
    Compile(OutputKind),
    /// `-MD` (`true`: system headers too) / `-MMD`.
    DepWrite(bool),
    DepFile,
    /// `-MT` (`false`) / `-MQ` (`true`).
    DepTarget(bool),
    DepPhony,
    /// `-MG`: only valid with `-M`/`-MM`.
    DepMissingGenerated,
    PrefixMap(PrefixMapKind),
    SplitDwarf,
    NoSplitDwarf,
    /// Bare: reads a profile at a default place next to the output;
    /// `=PATH`: an extra input.
    ProfileUse,
    Wp,
    Wa,
    Xassembler,
    Xpreprocessor,
    Xclang,
    Local(Why),
}

/// Why a flag makes the compile local (see `Local` for the meanings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Why {
    PreprocessOnly,
    SyntaxOnly,
    SaveTemps,
    ProfileGenerate,
    Coverage,
    DumpFlags,
    VersionQuery,
    ExtraOutput,
    Modules,
    NativeCpu,
    Unsupported,
}

#[derive(Debug)]
pub(super) struct Row {
    pub name: &'static str,
    pub form: Form,
    pub role: Role,
}

/// How an argument matched a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Hit<'a> {
    /// No value.
    Bare,
    /// The value is the rest of this argument.
    Joined(&'a str),
    /// The value is the next argument.
    Next,
}

/// The row with the longest name that `arg` matches, so `-iwithprefixbefore`
/// is not `-iwithprefix` with the value `before`, nor `-include-pch` `-include`.
pub(super) fn lookup(arg: &str) -> Option<(&'static Row, Hit<'_>)> {
    let mut best: Option<(&'static Row, Hit<'_>)> = None;
    for row in ROWS {
        let Some(hit) = matches(row, arg) else {
            continue;
        };
        if best.is_none_or(|(b, _)| row.name.len() > b.name.len()) {
            best = Some((row, hit));
        }
    }
    best
}

fn matches<'a>(row: &Row, arg: &'a str) -> Option<Hit<'a>> {
    let name = row.name;
    let rest = arg.strip_prefix(name)?;
    match (row.form, rest.is_empty()) {
        (Form::Flag, true) => Some(Hit::Bare),
        (Form::Separate | Form::JoinedOrSeparate | Form::EqOrSeparate, true) => Some(Hit::Next),
        (Form::OptionalEq, true) => Some(Hit::Bare),
        (Form::Joined, _) | (Form::JoinedOrSeparate, false) => Some(Hit::Joined(rest)),
        (Form::OptionalEq | Form::EqOrSeparate, false) => rest.strip_prefix('=').map(Hit::Joined),
        (Form::Flag | Form::Separate, false) => None,
    }
}

macro_rules! rows {
    ($($name:literal $form:ident $role:expr;)*) => {
        &[$(Row { name: $name, form: Form::$form, role: $role },)*]
    };
}

use Role::*;
use Why::*;

pub(super) static ROWS: &[Row] = rows! {
    // What to do.
    "-c" Flag Compile(OutputKind::Object);
    "-S" Flag Compile(OutputKind::Assembly);
    "-E" Flag Local(PreprocessOnly);
    "-M" Flag Local(PreprocessOnly);
    "-MM" Flag Local(PreprocessOnly);
    "-fsyntax-only" Flag Local(SyntaxOnly);
    // The driver asks this machine's CPU: a worker's may differ.
    "-march=native" Flag Local(NativeCpu);
    "-mcpu=native" Flag Local(NativeCpu);
    "-mtune=native" Flag Local(NativeCpu);
    "-o" JoinedOrSeparate Output;
    "-x" JoinedOrSeparate Language;
    "-emit-llvm" Flag Local(Unsupported);

    // Dependency files: taken out of the remote command, redone by the scan.
    "-MD" Flag DepWrite(true);
    "-MMD" Flag DepWrite(false);
    "-MF" JoinedOrSeparate DepFile;
    "-MT" JoinedOrSeparate DepTarget(false);
    "-MQ" JoinedOrSeparate DepTarget(true);
    "-MP" Flag DepPhony;
    "-MG" Flag DepMissingGenerated;
    "-MV" Flag Local(Unsupported);
    "-MJ" JoinedOrSeparate Local(ExtraOutput);
    "-Wp," Joined Wp;

    // Preprocessor: values that are paths.
    "-I" JoinedOrSeparate IncludeDir;
    "-I-" Flag Plain;
    "-iquote" JoinedOrSeparate IncludeDir;
    "-isystem" JoinedOrSeparate IncludeDir;
    "-idirafter" JoinedOrSeparate IncludeDir;
    "-isystem-after" JoinedOrSeparate IncludeDir;
    "-cxx-isystem" JoinedOrSeparate IncludeDir;
    "-stdlib++-isystem" JoinedOrSeparate IncludeDir;
    "-F" JoinedOrSeparate IncludeDir;
    "-iframework" JoinedOrSeparate IncludeDir;
    "-B" JoinedOrSeparate IncludeDir;
    "-include" JoinedOrSeparate Path;
    "-imacros" JoinedOrSeparate Path;
    "-iprefix" JoinedOrSeparate Path;
    "-include-pch" Separate ExtraInput;
    "-ivfsoverlay" JoinedOrSeparate ExtraInput;
    "--sysroot" EqOrSeparate Sysroot;
    "-isysroot" JoinedOrSeparate Isysroot;
    "-gcc-toolchain" Separate Path;
    "--gcc-toolchain=" Joined Path;
    "-resource-dir" Separate Path;
    "-resource-dir=" Joined Path;
    "-L" JoinedOrSeparate Path;

    // Values that are not paths (some are relative to another flag's path).
    "-D" JoinedOrSeparate Plain;
    "-U" JoinedOrSeparate Plain;
    "-A" JoinedOrSeparate Plain;
    "-iwithprefix" JoinedOrSeparate Plain;
    "-iwithprefixbefore" JoinedOrSeparate Plain;
    "-iwithsysroot" JoinedOrSeparate Plain;
    "-iframeworkwithsysroot" JoinedOrSeparate Plain;
    "-imultilib" JoinedOrSeparate Plain;
    "-imultiarch" Separate Plain;
    "-undef" Flag Plain;
    "-target" Separate Target;
    "--target=" Joined Target;
    "-arch" Separate Plain;
    "-mllvm" Separate Plain;
    "--param" EqOrSeparate Plain;
    "-l" JoinedOrSeparate Plain;
    "-u" JoinedOrSeparate Plain;
    "-e" JoinedOrSeparate Plain;
    "-T" JoinedOrSeparate Plain;
    "-z" JoinedOrSeparate Plain;
    "-G" JoinedOrSeparate Plain;
    "-framework" Separate Plain;
    "-Wl," Joined Plain;
    "-Xlinker" Separate Plain;
    "-Xanalyzer" Separate Plain;
    "-Xcuda-ptxas" Separate Plain;
    "-Xcuda-fatbinary" Separate Plain;
    "-fuse-ld=" Joined Plain;
    "--ld-path=" Joined Plain;
    "--no-sysroot-suffix" Flag Plain;
    "-fcrash-diagnostics-dir=" Joined Plain;
    "-fdebug-compilation-dir" EqOrSeparate Plain;
    "-ffile-compilation-dir" EqOrSeparate Plain;
    "-fcoverage-compilation-dir" EqOrSeparate Plain;
    "-finstrument-functions-exclude-file-list=" Joined Plain;
    "-finstrument-functions-exclude-function-list=" Joined Plain;
    "-fprofile-exclude-files=" Joined Plain;
    "-fprofile-filter-files=" Joined Plain;

    // Passed on to another tool: checked value by value.
    "-Wa," Joined Wa;
    "-Xassembler" Separate Xassembler;
    "-Xpreprocessor" Separate Xpreprocessor;
    "-Xclang" Separate Xclang;

    // Files read that the -M scan does not list.
    "-specs" EqOrSeparate ExtraInput;
    "--specs" EqOrSeparate ExtraInput;
    "-fplugin=" Joined Plugin;
    "-fprofile-use" OptionalEq ProfileUse;
    "-fprofile-instr-use" OptionalEq ProfileUse;
    "-fprofile-sample-use" OptionalEq ProfileUse;
    "-fauto-profile" OptionalEq ProfileUse;
    "-fbranch-probabilities" Flag ProfileUse;
    "-fprofile-remapping-file=" Joined ExtraInput;
    "-fprofile-list=" Joined ExtraInput;
    "-fsanitize-blacklist=" Joined ExtraInput;
    "-fsanitize-ignorelist=" Joined ExtraInput;
    "-fsanitize-system-blacklist=" Joined ExtraInput;
    "-fsanitize-system-ignorelist=" Joined ExtraInput;
    "-fsanitize-coverage-allowlist=" Joined ExtraInput;
    "-fsanitize-coverage-blocklist=" Joined ExtraInput;
    "-fsanitize-coverage-whitelist=" Joined ExtraInput;
    "-fsanitize-coverage-blacklist=" Joined ExtraInput;
    "-fxray-attr-list=" Joined ExtraInput;
    "-fxray-always-instrument=" Joined ExtraInput;
    "-fxray-never-instrument=" Joined ExtraInput;

    // OLD=NEW path rewrites.
    "-fdebug-prefix-map=" Joined PrefixMap(PrefixMapKind::Debug);
    "-ffile-prefix-map=" Joined PrefixMap(PrefixMapKind::File);
    "-fmacro-prefix-map=" Joined PrefixMap(PrefixMapKind::Macro);
    "-fprofile-prefix-map=" Joined PrefixMap(PrefixMapKind::Profile);
    "-fcoverage-prefix-map=" Joined PrefixMap(PrefixMapKind::Coverage);

    // Split DWARF: a second output.
    "-gsplit-dwarf" OptionalEq SplitDwarf;
    "-gno-split-dwarf" Flag NoSplitDwarf;
    "-gtoggle" Flag Local(Unsupported);

    // Outputs recast does not collect.
    "-save-temps" OptionalEq Local(SaveTemps);
    "--save-temps" OptionalEq Local(SaveTemps);
    "-fprofile-generate" OptionalEq Local(ProfileGenerate);
    "-fprofile-instr-generate" OptionalEq Local(ProfileGenerate);
    "-fcs-profile-generate" OptionalEq Local(ProfileGenerate);
    "-fprofile-arcs" Flag Local(Coverage);
    "-ftest-coverage" Flag Local(Coverage);
    "--coverage" Flag Local(Coverage);
    "-coverage" Flag Local(Coverage);
    "-fdump-" Joined Local(DumpFlags);
    "-d" Joined Local(DumpFlags);
    "-aux-info" Separate Local(ExtraOutput);
    "--serialize-diagnostics" Separate Local(ExtraOutput);
    "-fstack-usage" Flag Local(ExtraOutput);
    "-fcallgraph-info" OptionalEq Local(ExtraOutput);
    "-fsave-optimization-record" OptionalEq Local(ExtraOutput);
    "-foptimization-record-file=" Joined Local(ExtraOutput);
    "-ftime-trace" OptionalEq Local(ExtraOutput);
    "-save-stats" OptionalEq Local(ExtraOutput);

    // Modules: outputs and inputs in caches outside the command line.
    "-fmodules" Flag Local(Modules);
    "-fcxx-modules" Flag Local(Modules);
    "-fmodules-ts" Flag Local(Modules);
    "-fmodule-header" OptionalEq Local(Modules);
    "-fmodule-file=" Joined Local(Modules);
    "-fmodules-cache-path=" Joined Local(Modules);
    "-fmodule-map-file=" Joined Local(Modules);
    "-fprebuilt-module-path=" Joined Local(Modules);
    "-fmodule-mapper=" Joined Local(Modules);

    // Questions to the driver, not compiles.
    "-v" Flag Local(VersionQuery);
    "--verbose" Flag Local(VersionQuery);
    "--version" Flag Local(VersionQuery);
    "-###" Flag Local(VersionQuery);
    "--help" OptionalEq Local(VersionQuery);
    "--target-help" Flag Local(VersionQuery);
    "-print-" Joined Local(VersionQuery);
    "--print-" Joined Local(VersionQuery);
    "-dump" Joined Local(VersionQuery);

    // Change where other outputs go, or how the driver works.
    "-dumpbase" Separate Local(Unsupported);
    "-dumpbase-ext" Separate Local(Unsupported);
    "-dumpdir" Separate Local(Unsupported);
    "-fprofile-dir=" Joined Local(Unsupported);
    "-wrapper" Separate Local(Unsupported);
    "-working-directory" EqOrSeparate Local(Unsupported);
    "--driver-mode=" Joined Local(Unsupported);
    "--config" EqOrSeparate Local(Unsupported);
};

/// Whether a `-g…` flag turns debug info on (`Some(true)`), off
/// (`Some(false)`, `-g0`), or is about something else (`-gz`, `-gsplit-dwarf`).
pub(super) fn debug_level(flag: &str) -> Option<bool> {
    let rest = flag.strip_prefix("-g")?;
    match rest {
        "" | "1" | "2" | "3" => Some(true),
        "0" | "gdb0" => Some(false),
        "gdb" | "gdb1" | "gdb2" | "gdb3" | "dwarf" => Some(true),
        "line-tables-only" | "line-directives-only" | "mlt" | "full" | "used" => Some(true),
        "stabs" | "stabs+" | "xcoff" | "xcoff+" | "vms" | "lldb" | "sce" | "dbx" => Some(true),
        // -gdwarf-4 enables DWARF 4; -gdwarf32/-gdwarf64 only pick the format.
        _ => rest.starts_with("dwarf-").then_some(true),
    }
}

pub(super) enum Class {
    Source,
    Linker,
    Header,
    Unsupported(String),
}

/// `-x LANG`: what a following input is.
pub(super) fn language_class(lang: &str) -> Class {
    match lang {
        "c" | "c++" | "objective-c" | "objective-c++" | "assembler-with-cpp" => Class::Source,
        "cpp-output" | "c++-cpp-output" | "objective-c-cpp-output" | "objc-cpp-output" => {
            Class::Source
        }
        "objective-c++-cpp-output" | "objc++-cpp-output" => Class::Source,
        l if l.ends_with("-header") => Class::Header,
        // Plain assembler is not preprocessed: -M writes no file for it.
        l => Class::Unsupported(l.into()),
    }
}

/// What gcc makes of an input by its suffix when no -x is in effect.
pub(super) fn suffix_class(file: &str) -> Class {
    let name = file.rsplit_once('/').map_or(file, |(_, name)| name);
    let Some((_, suffix)) = name.rsplit_once('.').filter(|(stem, _)| !stem.is_empty()) else {
        return Class::Linker;
    };
    match suffix {
        "c" | "i" | "cc" | "cp" | "cxx" | "cpp" | "CPP" | "c++" | "C" | "ii" => Class::Source,
        "m" | "mi" | "mm" | "M" | "mii" | "S" | "sx" => Class::Source,
        "h" | "hh" | "H" | "hp" | "hxx" | "hpp" | "HPP" | "h++" | "tcc" => Class::Header,
        "s" => Class::Unsupported("assembler".into()),
        "f" | "for" | "ftn" | "F" | "FOR" | "fpp" | "FPP" | "FTN" | "f90" | "f95" | "f03"
        | "f08" | "F90" | "F95" | "F03" | "F08" | "go" | "d" | "di" | "dd" | "ads" | "adb"
        | "cu" | "cuh" | "hip" | "cl" | "clcpp" | "cppm" | "ccm" | "cxxm" | "c++m" | "ixx"
        | "ll" | "bc" | "mod" | "brig" => Class::Unsupported(format!(".{suffix} files")),
        _ => Class::Linker,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_name_wins() {
        let (row, hit) = lookup("-iwithprefixbefore").unwrap();
        assert_eq!((row.name, hit), ("-iwithprefixbefore", Hit::Next));
        let (row, hit) = lookup("-include-pch").unwrap();
        assert_eq!((row.name, hit), ("-include-pch", Hit::Next));
        let (row, hit) = lookup("-includefoo.h").unwrap();
        assert_eq!((row.name, hit), ("-include", Hit::Joined("foo.h")));
        let (row, _) = lookup("-undef").unwrap();
        assert_eq!(row.name, "-undef");
        let (row, _) = lookup("-dumpversion").unwrap();
        assert_eq!(row.name, "-dump");
        let (row, _) = lookup("-dumpdir").unwrap();
        assert_eq!(row.name, "-dumpdir");
    }

    #[test]
    fn optional_eq_needs_the_equals_sign() {
        assert_eq!(lookup("-fprofile-use").unwrap().1, Hit::Bare);
        assert_eq!(lookup("-fprofile-use=x").unwrap().1, Hit::Joined("x"));
        assert!(lookup("-fprofile-use-foo").is_none());
        assert_eq!(lookup("--sysroot=/s").unwrap().1, Hit::Joined("/s"));
        assert_eq!(lookup("--sysroot").unwrap().1, Hit::Next);
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = ROWS.iter().map(|r| r.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }
}
