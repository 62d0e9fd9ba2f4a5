//! The names rustc 1.95 gives its outputs (`rustc_session::output` and
//! `OutputFilenames`), computed from the parsed flags and the target's
//! file-name conventions. Checked against real rustc by the tests
//! (`--print file-names` for many targets, and real compiles).

use std::path::{Path, PathBuf};

use super::{CrateType, Emit, EmitKind, Local, LocalReason};

/// One file rustc will write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RustOutput {
    pub path: String,
    pub kind: OutputKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputKind {
    /// Any `--emit` kind but `link`.
    Emit(EmitKind),
    /// `--emit link` for one crate type; a `--test` harness is `Bin`.
    Link(CrateType),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Unix,
    Apple,
    /// Windows and Cygwin: linking writes import libraries and PDBs too.
    Windows,
    /// Linking writes a `.js` and a `.wasm`.
    Emscripten,
}

/// A target's file-name conventions, the fields of rustc's target spec
/// that name outputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Naming {
    pub dll_prefix: &'static str,
    pub dll_suffix: &'static str,
    pub staticlib_prefix: &'static str,
    pub staticlib_suffix: &'static str,
    pub exe_suffix: &'static str,
    family: Family,
}

impl Naming {
    /// The conventions of a target triple as rustc 1.95 spells it
    /// (checked against `--print file-names` for all its targets).
    pub fn for_triple(triple: &str) -> Naming {
        let mut n = Naming::family(triple);
        let has = |parts: &[&str]| parts.iter().any(|p| triple.contains(p));
        if has(&["-wrs-vxworks"]) {
            n.exe_suffix = ".vxe";
        } else if has(&["-nintendo-3ds", "-sony-vita", "hexagon-unknown-qurt"])
            || triple.starts_with("avr-")
        {
            n.exe_suffix = ".elf";
        } else if has(&["-sony-psx"]) {
            n.exe_suffix = ".exe";
        } else if triple.starts_with("nvptx") {
            (n.exe_suffix, n.dll_prefix, n.dll_suffix) = (".ptx", "", ".ptx");
        } else if triple.starts_with("amdgcn") {
            (n.dll_prefix, n.dll_suffix) = ("", ".elf");
        } else if triple.ends_with("-aix") {
            n.dll_suffix = ".a";
        }
        n
    }

    fn family(triple: &str) -> Naming {
        let unix = Naming {
            dll_prefix: "lib",
            dll_suffix: ".so",
            staticlib_prefix: "lib",
            staticlib_suffix: ".a",
            exe_suffix: "",
            family: Family::Unix,
        };
        if triple.contains("windows") || triple.contains("cygwin") {
            let msvc = triple.ends_with("-msvc");
            Naming {
                dll_prefix: "",
                dll_suffix: ".dll",
                staticlib_prefix: if msvc { "" } else { "lib" },
                staticlib_suffix: if msvc { ".lib" } else { ".a" },
                exe_suffix: ".exe",
                family: Family::Windows,
            }
        } else if triple.contains("-apple-") {
            Naming {
                dll_suffix: ".dylib",
                family: Family::Apple,
                ..unix
            }
        } else if triple.contains("emscripten") {
            Naming {
                dll_prefix: "",
                dll_suffix: ".wasm",
                exe_suffix: ".js",
                family: Family::Emscripten,
                ..unix
            }
        } else if triple.starts_with("wasm") {
            Naming {
                dll_prefix: "",
                dll_suffix: ".wasm",
                exe_suffix: ".wasm",
                ..unix
            }
        } else if triple.ends_with("-uefi") {
            Naming {
                exe_suffix: ".efi",
                ..unix
            }
        } else {
            unix
        }
    }

    /// The conventions of the OS recast was built for, which is rustc's
    /// default target when recast runs it here.
    pub fn this_machine() -> Naming {
        Naming::for_triple(if cfg!(all(windows, target_env = "msvc")) {
            "x86_64-pc-windows-msvc"
        } else if cfg!(windows) {
            "x86_64-pc-windows-gnu"
        } else if cfg!(target_vendor = "apple") {
            "aarch64-apple-darwin"
        } else {
            "x86_64-unknown-linux-gnu"
        })
    }

    /// Refuses linking whose side files are not modelled. `split_debug`:
    /// debuginfo is on and `-C split-debuginfo` was not `off` (Apple's
    /// default then writes a `.dSYM` bundle).
    pub(super) fn check_link(&self, links: bool, split_debug: bool) -> Result<(), Local> {
        if !links {
            return Ok(());
        }
        match self.family {
            Family::Unix => Ok(()),
            Family::Apple if !split_debug => Ok(()),
            Family::Apple => Err(Local {
                reason: LocalReason::SplitDebuginfo,
                detail: "linking with debuginfo for an Apple target writes a .dSYM".into(),
            }),
            Family::Windows | Family::Emscripten => Err(Local {
                reason: LocalReason::UnsupportedTarget,
                detail: "linking for this target writes side files (import library, PDB, .wasm)"
                    .into(),
            }),
        }
    }
}

/// What decides output names.
pub(super) struct Plan<'a> {
    pub crate_name: &'a str,
    pub extra_filename: &'a str,
    pub out_dir: Option<&'a str>,
    pub output: Option<&'a str>,
    pub emit: &'a [Emit],
    /// The crate types `link` is emitted for (`[Bin]` under `--test`).
    pub linked: &'a [CrateType],
}

/// The files rustc writes for `plan`, without duplicates (two crate types
/// can share a name, e.g. dylib and cdylib).
///
/// rustc's rules: with `-o` and at most one kind without a path, that kind
/// goes to the `-o` path exactly; with `-o` and more, each goes next to it
/// with the `-o` stem (plus `-C extra-filename`) where rustc uses the stem,
/// and `--out-dir` is ignored either way. Library and metadata names always
/// use the crate name; a `KIND=PATH` is used exactly.
pub(super) fn outputs(plan: &Plan, naming: &Naming) -> Vec<RustOutput> {
    let extra = plan.extra_filename;
    let crate_stem = format!("{}{extra}", plan.crate_name);
    let unnamed = plan.emit.iter().filter(|e| e.path.is_none()).count();
    let (dir, stem, single) = match plan.output {
        Some(o) => {
            let p = Path::new(o);
            let dir = p.parent().unwrap_or(Path::new("")).to_path_buf();
            let stem = p
                .file_stem()
                .map_or(plan.crate_name.into(), |s| s.to_string_lossy());
            (dir, format!("{stem}{extra}"), (unnamed <= 1).then_some(o))
        }
        None => (
            PathBuf::from(plan.out_dir.unwrap_or("")),
            crate_stem.clone(),
            None,
        ),
    };
    // rustc's `with_directory_and_extension`: set_extension replaces a
    // dotted tail of the stem.
    let with_ext = |ext: &str| {
        let mut p = dir.join(&stem);
        p.set_extension(ext);
        p
    };
    let link_name = |t| match t {
        CrateType::Lib | CrateType::Rlib => dir.join(format!("lib{crate_stem}.rlib")),
        CrateType::Dylib | CrateType::Cdylib | CrateType::ProcMacro => {
            let (prefix, suffix) = (naming.dll_prefix, naming.dll_suffix);
            dir.join(format!("{prefix}{crate_stem}{suffix}"))
        }
        CrateType::Staticlib => {
            let (prefix, suffix) = (naming.staticlib_prefix, naming.staticlib_suffix);
            dir.join(format!("{prefix}{crate_stem}{suffix}"))
        }
        CrateType::Bin => match naming.exe_suffix.strip_prefix('.') {
            Some(ext) => with_ext("").with_extension(ext),
            None => with_ext(""),
        },
    };
    let mut out: Vec<RustOutput> = Vec::new();
    let mut add = |path: PathBuf, kind| {
        let path = path.to_string_lossy().into_owned();
        if !out.iter().any(|o| o.path == path) {
            out.push(RustOutput { path, kind });
        }
    };
    for e in plan.emit {
        let given = e.path.as_deref().or(single).map(PathBuf::from);
        let ext = match e.kind {
            EmitKind::Link => {
                for &t in plan.linked {
                    let path = given.clone().unwrap_or_else(|| link_name(t));
                    add(path, OutputKind::Link(t));
                }
                continue;
            }
            EmitKind::Metadata => {
                let path = given.unwrap_or_else(|| dir.join(format!("lib{crate_stem}.rmeta")));
                add(path, OutputKind::Emit(e.kind));
                continue;
            }
            EmitKind::DepInfo => "d",
            EmitKind::Obj => "o",
            EmitKind::Asm => "s",
            EmitKind::LlvmIr => "ll",
            EmitKind::LlvmBc => "bc",
            EmitKind::Mir => "mir",
        };
        add(
            given.unwrap_or_else(|| with_ext(ext)),
            OutputKind::Emit(e.kind),
        );
    }
    out
}
