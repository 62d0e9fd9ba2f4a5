//! Mach-O headers, thin or fat: per architecture slice, the platform, the
//! dylibs it loads (and how: plain, weak, re-exported, upward), its
//! `LC_RPATH`s and its own install name. Resolving `@rpath` and friends is
//! `dyld`'s job.

use goblin::mach::constants::cputype as cpu;
use goblin::mach::load_command::{CommandVariant, LoadCommand};
use goblin::mach::{Mach, MachO, SingleArch};
use target_lexicon::{
    Aarch64Architecture, Architecture, ArmArchitecture, OperatingSystem, X86_32Architecture,
};

use super::{Host, InspectError, guarded, malformed};

/// One architecture slice of a Mach-O file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachOInfo {
    pub host: Host,
    pub cputype: u32,
    pub cpusubtype: u32,
    pub filetype: MachFileType,
    /// In load-command order: what dyld loads, and how.
    pub dylibs: Vec<(DylibKind, String)>,
    /// `LC_RPATH` entries, unexpanded.
    pub rpaths: Vec<String>,
    /// `LC_ID_DYLIB`: the name a dylib is linked as.
    pub install_name: Option<String>,
}

/// How a dylib is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum DylibKind {
    /// `LC_LOAD_DYLIB` (and `LC_LAZY_LOAD_DYLIB`): required.
    Load,
    /// `LC_LOAD_WEAK_DYLIB`: dyld goes on without it.
    Weak,
    /// `LC_REEXPORT_DYLIB`: required, its symbols are re-exported.
    Reexport,
    /// `LC_LOAD_UPWARD_DYLIB`: required, a dependency cycle allowed by design.
    Upward,
}

/// `mach_header.filetype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum MachFileType {
    Execute,
    Dylib,
    Bundle,
    Dylinker,
    Object,
    Other(u32),
}

const MH_MAGIC: u32 = 0xfeed_face;
const MH_MAGIC_64: u32 = 0xfeed_facf;
const FAT_MAGIC: u32 = 0xcafe_babe;
const FAT_MAGIC_64: u32 = 0xcafe_babf;

/// Java class files share the fat magic; their next word (the class file
/// version) is far above any real slice count, which is how `file` tells
/// them apart.
const MAX_FAT_ARCHES: u32 = 20;

pub(crate) fn is_macho(bytes: &[u8]) -> bool {
    let Some(word) = bytes.get(..4) else {
        return false;
    };
    let be = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
    let le = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
    if be == FAT_MAGIC || be == FAT_MAGIC_64 {
        // Too short to count slices: call it Mach-O so the parser says why.
        return bytes
            .get(4..8)
            .is_none_or(|n| u32::from_be_bytes([n[0], n[1], n[2], n[3]]) < MAX_FAT_ARCHES);
    }
    [MH_MAGIC, MH_MAGIC_64].contains(&be) || [MH_MAGIC, MH_MAGIC_64].contains(&le)
}

pub(crate) fn parse(bytes: &[u8]) -> Result<Vec<MachOInfo>, InspectError> {
    if bytes.len() >= 4
        && u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) == FAT_MAGIC_64
    {
        return Err(malformed("Mach-O: 64-bit fat headers are not supported"));
    }
    match guarded("Mach-O", || Mach::parse(bytes))? {
        Mach::Binary(m) => Ok(vec![info(&m, bytes)?]),
        Mach::Fat(fat) => {
            let arches = guarded("Mach-O", || fat.arches())?;
            if arches.is_empty() {
                return Err(malformed("Mach-O: fat file with no slices"));
            }
            let mut out = Vec::with_capacity(arches.len());
            for (i, arch) in arches.iter().enumerate() {
                let slice = arch.slice(bytes);
                if slice.is_empty() {
                    return Err(malformed(format!(
                        "Mach-O: slice {i} lies outside the file (offset {}, size {})",
                        arch.offset, arch.size
                    )));
                }
                match guarded("Mach-O", || fat.get(i))? {
                    SingleArch::MachO(m) => out.push(info(&m, slice)?),
                    // A fat static library: nothing the loader follows.
                    SingleArch::Archive(_) => return Ok(Vec::new()),
                }
            }
            Ok(out)
        }
    }
}

fn info(m: &MachO<'_>, bytes: &[u8]) -> Result<MachOInfo, InspectError> {
    let h = &m.header;
    let mut dylibs = Vec::new();
    let mut rpaths = Vec::new();
    let mut install_name = None;
    for lc in &m.load_commands {
        match &lc.command {
            CommandVariant::LoadDylib(c) | CommandVariant::LazyLoadDylib(c) => {
                dylibs.push((DylibKind::Load, lc_str(bytes, lc, c.dylib.name)?));
            }
            CommandVariant::LoadWeakDylib(c) => {
                dylibs.push((DylibKind::Weak, lc_str(bytes, lc, c.dylib.name)?));
            }
            CommandVariant::ReexportDylib(c) => {
                dylibs.push((DylibKind::Reexport, lc_str(bytes, lc, c.dylib.name)?));
            }
            CommandVariant::LoadUpwardDylib(c) => {
                dylibs.push((DylibKind::Upward, lc_str(bytes, lc, c.dylib.name)?));
            }
            CommandVariant::Rpath(c) => rpaths.push(lc_str(bytes, lc, c.path)?),
            CommandVariant::IdDylib(c) => install_name = Some(lc_str(bytes, lc, c.dylib.name)?),
            _ => {}
        }
    }
    use goblin::mach::header as mh;
    let filetype = match h.filetype {
        mh::MH_EXECUTE => MachFileType::Execute,
        mh::MH_DYLIB => MachFileType::Dylib,
        mh::MH_BUNDLE => MachFileType::Bundle,
        mh::MH_DYLINKER => MachFileType::Dylinker,
        mh::MH_OBJECT => MachFileType::Object,
        t => MachFileType::Other(t),
    };
    Ok(MachOInfo {
        host: Host {
            os: OperatingSystem::Darwin(None),
            arch: arch_of(h.cputype, h.cpusubtype),
        },
        cputype: h.cputype,
        cpusubtype: h.cpusubtype,
        filetype,
        dylibs,
        rpaths,
        install_name,
    })
}

/// The NUL-terminated string at `offset` inside load command `lc`.
fn lc_str(bytes: &[u8], lc: &LoadCommand, offset: u32) -> Result<String, InspectError> {
    let size = lc.command.cmdsize();
    let start = lc.offset.checked_add(offset as usize);
    let end = lc.offset.checked_add(size);
    let raw = match (start, end) {
        (Some(s), Some(e)) if s <= e => bytes.get(s..e),
        _ => None,
    }
    .ok_or_else(|| malformed("Mach-O: load command string out of bounds"))?;
    let raw = raw.split(|b| *b == 0).next().unwrap_or_default();
    String::from_utf8(raw.to_vec()).map_err(|_| malformed("Mach-O: load command path is not UTF-8"))
}

fn arch_of(cputype: u32, subtype: u32) -> Architecture {
    let sub = subtype & !cpu::CPU_SUBTYPE_MASK;
    match cputype {
        cpu::CPU_TYPE_X86_64 if sub == cpu::CPU_SUBTYPE_X86_64_H => Architecture::X86_64h,
        cpu::CPU_TYPE_X86_64 => Architecture::X86_64,
        cpu::CPU_TYPE_X86 => Architecture::X86_32(X86_32Architecture::I386),
        cpu::CPU_TYPE_ARM64 | cpu::CPU_TYPE_ARM64_32 => {
            Architecture::Aarch64(Aarch64Architecture::Aarch64)
        }
        cpu::CPU_TYPE_ARM => Architecture::Arm(ArmArchitecture::Armv7),
        cpu::CPU_TYPE_POWERPC => Architecture::Powerpc,
        cpu::CPU_TYPE_POWERPC64 => Architecture::Powerpc64,
        _ => Architecture::Unknown,
    }
}
