//! ELF headers: the platform, the interpreter, the dynamic section's
//! `DT_NEEDED` / `DT_RPATH` / `DT_RUNPATH` / `DT_SONAME`, and the highest
//! `GLIBC_x.y` version needed. Searching for the libraries named is
//! `elf_search`'s job.

use goblin::elf::{Elf, header};
use target_lexicon::{
    Aarch64Architecture, Architecture, ArmArchitecture, Mips32Architecture, Mips64Architecture,
    OperatingSystem, Riscv32Architecture, Riscv64Architecture, X86_32Architecture,
};

use super::{Host, InspectError, malformed};

/// What an ELF file's header and dynamic section say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    pub host: Host,
    /// 32 or 64 (`EI_CLASS`).
    pub class: u8,
    /// `e_machine`.
    pub machine: u16,
    pub little_endian: bool,
    pub kind: ElfKind,
    /// `PT_INTERP`: the dynamic loader the kernel maps first.
    pub interp: Option<String>,
    pub needed: Vec<String>,
    /// `DT_RPATH` entries, split at `:`, unexpanded.
    pub rpath: Vec<String>,
    /// `DT_RUNPATH` entries, split at `:`, unexpanded.
    pub runpath: Vec<String>,
    pub soname: Option<String>,
    /// The highest `GLIBC_x.y[.z]` in the version-needs section, as (x, y).
    pub glibc: Option<(u32, u32)>,
}

/// What the loader does with the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ElfKind {
    /// `ET_EXEC`, or a PIE (`ET_DYN` with `DF_1_PIE`, or with an
    /// interpreter and no `SONAME`).
    Executable,
    /// Any other `ET_DYN`: a library (or `ld.so` itself).
    SharedObject,
    /// `ET_REL`: an object file.
    Relocatable,
    Other,
}

impl ElfInfo {
    pub fn is_executable(&self) -> bool {
        self.kind == ElfKind::Executable
    }
    pub fn is_shared_object(&self) -> bool {
        self.kind == ElfKind::SharedObject
    }
}

pub(crate) fn parse(bytes: &[u8]) -> Result<ElfInfo, InspectError> {
    let elf = super::guarded("ELF", || Elf::parse(bytes))?;
    let h = &elf.header;
    let class = match h.e_ident[header::EI_CLASS] {
        header::ELFCLASS32 => 32,
        header::ELFCLASS64 => 64,
        c => return Err(malformed(format!("ELF: unknown class {c}"))),
    };
    let little_endian = elf.little_endian;
    let host = Host {
        os: os_of(h.e_ident[header::EI_OSABI]),
        arch: arch_of(h.e_machine, class, little_endian),
    };
    let pie = elf
        .dynamic
        .as_ref()
        .is_some_and(|d| d.info.flags_1 & goblin::elf::dynamic::DF_1_PIE != 0);
    let kind = match h.e_type {
        header::ET_EXEC => ElfKind::Executable,
        // libc.so.6 has an interpreter too (it runs): a SONAME says library.
        header::ET_DYN if pie || (elf.interpreter.is_some() && elf.soname.is_none()) => {
            ElfKind::Executable
        }
        header::ET_DYN => ElfKind::SharedObject,
        header::ET_REL => ElfKind::Relocatable,
        _ => ElfKind::Other,
    };
    let split = |v: &[&str]| -> Vec<String> {
        v.iter()
            .flat_map(|s| s.split(':'))
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let mut glibc = None;
    if let Some(vn) = &elf.verneed {
        for need in vn.iter() {
            for aux in need.iter() {
                let version = elf.dynstrtab.get_at(aux.vna_name).and_then(glibc_version);
                glibc = glibc.max(version);
            }
        }
    }
    Ok(ElfInfo {
        host,
        class,
        machine: h.e_machine,
        little_endian,
        kind,
        interp: elf.interpreter.map(str::to_owned),
        needed: elf.libraries.iter().map(|s| (*s).to_owned()).collect(),
        rpath: split(&elf.rpaths),
        runpath: split(&elf.runpaths),
        soname: elf.soname.map(str::to_owned),
        glibc,
    })
}

/// `GLIBC_2.34` → (2, 34); `GLIBC_2.2.5` → (2, 2); `GLIBC_PRIVATE` → none.
pub(crate) fn glibc_version(name: &str) -> Option<(u32, u32)> {
    let rest = name.strip_prefix("GLIBC_")?;
    let mut parts = rest.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

fn os_of(osabi: u8) -> OperatingSystem {
    match osabi {
        header::ELFOSABI_NETBSD => OperatingSystem::Netbsd,
        header::ELFOSABI_SOLARIS => OperatingSystem::Solaris,
        header::ELFOSABI_FREEBSD => OperatingSystem::Freebsd,
        header::ELFOSABI_OPENBSD => OperatingSystem::Openbsd,
        // SYSV (0) and GNU (3) are what Linux toolchains write.
        _ => OperatingSystem::Linux,
    }
}

const EM_LOONGARCH: u16 = 258;

pub(crate) fn arch_of(machine: u16, class: u8, le: bool) -> Architecture {
    match (machine, class) {
        (header::EM_X86_64, _) => Architecture::X86_64,
        (header::EM_386, _) => Architecture::X86_32(X86_32Architecture::I686),
        (header::EM_AARCH64, _) if le => Architecture::Aarch64(Aarch64Architecture::Aarch64),
        (header::EM_AARCH64, _) => Architecture::Aarch64(Aarch64Architecture::Aarch64be),
        (header::EM_ARM, _) if le => Architecture::Arm(ArmArchitecture::Arm),
        (header::EM_ARM, _) => Architecture::Arm(ArmArchitecture::Armeb),
        (header::EM_RISCV, 64) => Architecture::Riscv64(Riscv64Architecture::Riscv64gc),
        (header::EM_RISCV, _) => Architecture::Riscv32(Riscv32Architecture::Riscv32gc),
        (header::EM_PPC64, _) if le => Architecture::Powerpc64le,
        (header::EM_PPC64, _) => Architecture::Powerpc64,
        (header::EM_PPC, _) => Architecture::Powerpc,
        (header::EM_S390, _) => Architecture::S390x,
        (EM_LOONGARCH, _) => Architecture::LoongArch64,
        (header::EM_MIPS, 64) if le => Architecture::Mips64(Mips64Architecture::Mips64el),
        (header::EM_MIPS, 64) => Architecture::Mips64(Mips64Architecture::Mips64),
        (header::EM_MIPS, _) if le => Architecture::Mips32(Mips32Architecture::Mipsel),
        (header::EM_MIPS, _) => Architecture::Mips32(Mips32Architecture::Mips),
        (header::EM_SPARCV9, _) => Architecture::Sparc64,
        (header::EM_SPARC, _) => Architecture::Sparc,
        _ => Architecture::Unknown,
    }
}

/// The Debian multiarch triples a machine's libraries live under
/// (`/usr/lib/<triple>`); several for ABIs that share a machine.
pub(crate) fn multiarch_triples(machine: u16, class: u8, le: bool) -> &'static [&'static str] {
    match (machine, class, le) {
        (header::EM_X86_64, 64, _) => &["x86_64-linux-gnu"],
        (header::EM_X86_64, 32, _) => &["x86_64-linux-gnux32"],
        (header::EM_386, ..) => &["i386-linux-gnu"],
        (header::EM_AARCH64, _, true) => &["aarch64-linux-gnu"],
        (header::EM_AARCH64, _, false) => &["aarch64_be-linux-gnu"],
        (header::EM_ARM, ..) => &["arm-linux-gnueabihf", "arm-linux-gnueabi"],
        (header::EM_RISCV, 64, _) => &["riscv64-linux-gnu"],
        (header::EM_PPC64, _, true) => &["powerpc64le-linux-gnu"],
        (header::EM_PPC64, _, false) => &["powerpc64-linux-gnu"],
        (header::EM_PPC, ..) => &["powerpc-linux-gnu"],
        (header::EM_S390, ..) => &["s390x-linux-gnu"],
        (EM_LOONGARCH, ..) => &["loongarch64-linux-gnu"],
        (header::EM_MIPS, 64, true) => &["mips64el-linux-gnuabi64"],
        (header::EM_MIPS, 64, false) => &["mips64-linux-gnuabi64"],
        (header::EM_MIPS, _, true) => &["mipsel-linux-gnu"],
        (header::EM_MIPS, _, false) => &["mips-linux-gnu"],
        (header::EM_SPARCV9, ..) => &["sparc64-linux-gnu"],
        _ => &[],
    }
}

/// The loader's `$PLATFORM` for a machine (`AT_PLATFORM` on Linux).
pub(crate) fn default_platform(machine: u16, class: u8, le: bool) -> &'static str {
    match (machine, class, le) {
        (header::EM_X86_64, ..) => "x86_64",
        (header::EM_386, ..) => "i686",
        (header::EM_AARCH64, ..) => "aarch64",
        (header::EM_ARM, _, true) => "v7l",
        (header::EM_ARM, _, false) => "v7b",
        (header::EM_RISCV, ..) => "riscv64",
        (header::EM_PPC64, _, true) => "power8",
        (header::EM_PPC64, _, false) => "power8",
        (header::EM_S390, ..) => "z13",
        (EM_LOONGARCH, ..) => "loongarch",
        _ => "unknown",
    }
}
