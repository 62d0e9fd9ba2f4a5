//! The values [`parse`](super::parse) returns: crate types, `--emit`
//! kinds, externs, search paths, inputs, environment values, and the
//! reasons for a local run.

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CrateType {
    /// `lib`: an rlib, rustc's default library type.
    Lib,
    Rlib,
    Bin,
    ProcMacro,
    Dylib,
    Cdylib,
    Staticlib,
}

impl CrateType {
    pub fn parse(s: &str) -> Option<CrateType> {
        Some(match s {
            "lib" => CrateType::Lib,
            "rlib" => CrateType::Rlib,
            "bin" => CrateType::Bin,
            "proc-macro" => CrateType::ProcMacro,
            "dylib" => CrateType::Dylib,
            "cdylib" => CrateType::Cdylib,
            "staticlib" => CrateType::Staticlib,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CrateType::Lib => "lib",
            CrateType::Rlib => "rlib",
            CrateType::Bin => "bin",
            CrateType::ProcMacro => "proc-macro",
            CrateType::Dylib => "dylib",
            CrateType::Cdylib => "cdylib",
            CrateType::Staticlib => "staticlib",
        }
    }

    /// Linking this type runs the external linker.
    pub fn needs_linker(self) -> bool {
        matches!(
            self,
            CrateType::Bin | CrateType::ProcMacro | CrateType::Dylib | CrateType::Cdylib
        )
    }
}

/// One `--emit` kind, with the path given for it, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Emit {
    pub kind: EmitKind,
    pub path: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EmitKind {
    DepInfo,
    Metadata,
    Link,
    Obj,
    Asm,
    LlvmIr,
    LlvmBc,
    Mir,
}

impl EmitKind {
    pub fn parse(s: &str) -> Option<EmitKind> {
        Some(match s {
            "dep-info" => EmitKind::DepInfo,
            "metadata" => EmitKind::Metadata,
            "link" => EmitKind::Link,
            "obj" => EmitKind::Obj,
            "asm" => EmitKind::Asm,
            "llvm-ir" => EmitKind::LlvmIr,
            "llvm-bc" => EmitKind::LlvmBc,
            "mir" => EmitKind::Mir,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EmitKind::DepInfo => "dep-info",
            EmitKind::Metadata => "metadata",
            EmitKind::Link => "link",
            EmitKind::Obj => "obj",
            EmitKind::Asm => "asm",
            EmitKind::LlvmIr => "llvm-ir",
            EmitKind::LlvmBc => "llvm-bc",
            EmitKind::Mir => "mir",
        }
    }
}

/// `--target`: rustc reads a value ending in `.json` as a target spec file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Triple(String),
    SpecFile(String),
}

/// `--extern [MODIFIERS:]NAME[=PATH]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extern {
    pub name: String,
    /// None for a crate from the sysroot (`--extern proc_macro`).
    pub path: Option<String>,
    /// `priv`, `noprelude`, `nounused`, `force`, as given.
    pub modifiers: Vec<String>,
}

/// `-L [KIND=]PATH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchPath {
    pub kind: SearchKind,
    pub path: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SearchKind {
    Dependency,
    Crate,
    Native,
    Framework,
    All,
}

impl SearchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SearchKind::Dependency => "dependency",
            SearchKind::Crate => "crate",
            SearchKind::Native => "native",
            SearchKind::Framework => "framework",
            SearchKind::All => "all",
        }
    }
}

/// A file or directory named on the command line that rustc reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RustInput {
    pub path: String,
    pub kind: InputKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// An `--extern` crate file (rlib, rmeta, or a proc-macro dylib).
    Extern,
    /// An `-L` directory.
    SearchDir(SearchKind),
    /// `-C linker` or `-C dlltool`, when given as a path.
    Tool,
    /// `--target` spec file.
    TargetSpec,
    /// `-C profile-use`.
    ProfileUse,
    /// `--sysroot` directory.
    Sysroot,
}

/// An environment value, marked when it names a local path (which the
/// wrapper may have to map into the input root).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvValue {
    Plain(String),
    Path(String),
}

/// Why an invocation runs locally.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("runs locally ({}): {detail}", reason.as_str())]
pub struct Local {
    pub reason: LocalReason,
    /// The argument or fact that decided it.
    pub detail: String,
}

impl Local {
    pub(super) fn new(reason: LocalReason, detail: impl Into<String>) -> Local {
        Local {
            reason,
            detail: detail.into(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LocalReason {
    /// `-C incremental`: the session directory lives here.
    Incremental,
    /// `--print`, `-C help`, `-W help`, `-Z help`.
    Print,
    /// `-V`, `--version`, `-vV`.
    VersionQuery,
    /// `-h`, `--help`.
    Help,
    /// `--explain`.
    Explain,
    /// `-` as the input.
    StdinInput,
    /// An output to stdout (`-o -`, `--emit KIND=-`).
    StdoutOutput,
    NoSource,
    MultipleSources,
    /// No `--crate-name`: the name may come from the source.
    NoCrateName,
    /// No `--crate-type` (and no `--test`): the type may come from the source.
    NoCrateType,
    SaveTemps,
    ProfileGenerate,
    /// `-C codegen-units=N` (N > 1) with `--emit` obj, asm, llvm-ir or
    /// llvm-bc and no `-o`: rustc keeps one intermediate per codegen unit,
    /// named by a hash.
    CodegenUnits,
    /// `-C split-debuginfo=packed|unpacked`, or an Apple target's default
    /// (a `.dSYM` bundle) when linking with debuginfo: extra files whose
    /// names are not all predictable.
    SplitDebuginfo,
    /// Linked outputs whose side files (Windows import libraries and PDBs,
    /// emscripten's `.wasm`) or names (a target spec file) are not modelled.
    UnsupportedTarget,
    UnsupportedFlag,
    BadArgument,
    /// A `-Z` flag that writes files besides the outputs, or reads a
    /// file the command line does not otherwise name.
    UnstableOutputFlag,
}

impl LocalReason {
    /// Every reason, for statistics tables.
    pub const ALL: [LocalReason; 19] = [
        LocalReason::Incremental,
        LocalReason::Print,
        LocalReason::VersionQuery,
        LocalReason::Help,
        LocalReason::Explain,
        LocalReason::StdinInput,
        LocalReason::StdoutOutput,
        LocalReason::NoSource,
        LocalReason::MultipleSources,
        LocalReason::NoCrateName,
        LocalReason::NoCrateType,
        LocalReason::SaveTemps,
        LocalReason::ProfileGenerate,
        LocalReason::CodegenUnits,
        LocalReason::SplitDebuginfo,
        LocalReason::UnsupportedTarget,
        LocalReason::UnsupportedFlag,
        LocalReason::BadArgument,
        LocalReason::UnstableOutputFlag,
    ];

    /// A stable key for statistics.
    pub fn as_str(self) -> &'static str {
        match self {
            LocalReason::Incremental => "incremental",
            LocalReason::Print => "print",
            LocalReason::VersionQuery => "version_query",
            LocalReason::Help => "help",
            LocalReason::Explain => "explain",
            LocalReason::StdinInput => "stdin_input",
            LocalReason::StdoutOutput => "stdout_output",
            LocalReason::NoSource => "no_source",
            LocalReason::MultipleSources => "multiple_sources",
            LocalReason::NoCrateName => "no_crate_name",
            LocalReason::NoCrateType => "no_crate_type",
            LocalReason::SaveTemps => "save_temps",
            LocalReason::ProfileGenerate => "profile_generate",
            LocalReason::CodegenUnits => "codegen_units",
            LocalReason::SplitDebuginfo => "split_debuginfo",
            LocalReason::UnsupportedTarget => "unsupported_target",
            LocalReason::UnsupportedFlag => "unsupported_flag",
            LocalReason::BadArgument => "bad_argument",
            LocalReason::UnstableOutputFlag => "unstable_output_flag",
        }
    }
}
