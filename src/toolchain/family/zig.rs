//! zig (`zig cc`, `zig c++`): one statically linked binary and its `lib/`
//! tree (clang's headers, every libc's headers and sources, zig's own
//! standard library). `zig version` names it, `zig env` says where its
//! library lives and what it runs on.

use std::path::{Path, PathBuf};

use super::{Ask, Builder, Contents, Family, FamilyError, Identity, ProbeOptions, paths};
use crate::toolchain::FileSource;

/// What `zig env` says that a toolchain needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZigEnv {
    /// `.lib_dir`, as printed (absolute when zig was named by an absolute
    /// path and run from `/`; else relative to the directory it ran in).
    pub lib_dir: String,
    /// `.target`, the native target (`x86_64-linux.6.1...6.1-gnu.2.36`).
    pub target: String,
}

/// Reads the fields of `zig env` (a ZON record, `.key = "value",` lines).
pub fn parse_zig_env(text: &str) -> Result<ZigEnv, FamilyError> {
    let field = |key: &str| {
        text.lines().find_map(|l| {
            let v = l.trim().strip_prefix(&format!(".{key} = \""))?;
            v.strip_suffix("\",").or_else(|| v.strip_suffix('"'))
        })
    };
    let missing = |what: &str| FamilyError::Parse {
        what: format!("the .{what} field of zig env"),
        text: text.into(),
    };
    Ok(ZigEnv {
        lib_dir: field("lib_dir")
            .ok_or_else(|| missing("lib_dir"))?
            .to_string(),
        target: field("target")
            .ok_or_else(|| missing("target"))?
            .to_string(),
    })
}

/// zig's native target as a plain triple: `x86_64-linux.6.1...6.1-gnu.2.36`
/// → `x86_64-linux-gnu` (OS and C library versions dropped).
pub fn plain_triple(target: &str) -> String {
    target
        .split('-')
        .map(|part| part.split('.').next().unwrap_or(part))
        .collect::<Vec<_>>()
        .join("-")
}

pub(super) fn probe(
    fs: &dyn FileSource,
    ask: &Ask<'_>,
    opts: &ProbeOptions,
) -> Result<Contents, FamilyError> {
    let version = ask.stdout(&["version"])?;
    let env = parse_zig_env(&ask.stdout(&["env"])?)?;
    let lib_dir =
        find_lib_dir(fs, ask.compiler, &env.lib_dir).ok_or_else(|| FamilyError::MissingTool {
            what: "zig's lib directory".into(),
            searched: lib_candidates(ask.compiler),
            hint: format!(
                "zig env says {:?}; keep zig's lib/ beside its binary",
                env.lib_dir
            ),
        })?;
    let host = plain_triple(&env.target);
    let note = format!("zig version: {version}; native target {}", env.target);
    Ok(contents(ask.compiler, version, host, lib_dir, note, opts))
}

/// A zig toolchain: its binary and library tree.
fn contents(
    zig: &Path,
    version: String,
    host: String,
    lib_dir: PathBuf,
    note: String,
    opts: &ProbeOptions,
) -> Contents {
    let mut b = Builder::default();
    b.note(note);
    b.note(format!("lib directory: {}", lib_dir.display()));
    b.trees.insert(lib_dir);
    let identity = Identity {
        family: Family::Zig,
        version,
        commit: None,
        host: host.clone(),
        target: host,
    };
    // zig compiles for every target its library has headers for.
    b.finish(identity, zig.to_path_buf(), None, opts.targets.clone())
}

/// zig described from its files alone, for a binary this machine cannot
/// run (the macOS build of zig, read on Linux): the version its binary
/// spells for `zig ld --version` ([`version_in_binary`]), the library
/// beside it, and its platform from its header. `None`: not a zig whose
/// version can be read so.
pub(super) fn from_files(fs: &dyn FileSource, zig: &Path, opts: &ProbeOptions) -> Option<Contents> {
    let bytes = fs.read(zig).ok()?;
    let version = version_in_binary(&bytes)?;
    let host = match crate::toolchain::inspect::parse(&bytes).ok()? {
        crate::toolchain::inspect::Binary::Elf(e) => e.host,
        crate::toolchain::inspect::Binary::MachO(slices) => slices.first()?.host.clone(),
        _ => return None,
    };
    let lib_dir = find_lib_dir(fs, zig, "")?;
    let host = match host.os {
        target_lexicon::OperatingSystem::Darwin(_) => format!("{}-macos-none", host.arch),
        os => format!("{}-{os}", host.arch),
    };
    let note = format!("zig version: {version}, read from the binary (not run: it is for {host})");
    Some(contents(zig, version, host, lib_dir, note, opts))
}

/// The version a zig binary spells in the answer of its linker's
/// `--version` (`"zig ld 0.16.0\n"`, NUL-terminated): present in every
/// build, whatever its object format. `None` unless exactly one version is
/// spelled so.
pub fn version_in_binary(bytes: &[u8]) -> Option<String> {
    const MARK: &[u8] = b"zig ld ";
    let mut found: Option<&[u8]> = None;
    let mut at = 0;
    while let Some(i) = find(&bytes[at..], MARK) {
        let start = at + i + MARK.len();
        at = start;
        let rest = &bytes[start..];
        let Some(end) = find(rest, b"\n\0") else {
            break;
        };
        let v = &rest[..end];
        let plausible = !v.is_empty()
            && v.len() <= 64
            && v[0].is_ascii_digit()
            && v.iter()
                .all(|c| c.is_ascii_alphanumeric() || b".-+".contains(c));
        if !plausible {
            continue;
        }
        match found {
            Some(f) if f != v => return None,
            _ => found = Some(v),
        }
    }
    found.map(|v| String::from_utf8_lossy(v).into_owned())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

/// Where zig looks for its library beside its binary.
fn lib_candidates(zig: &Path) -> Vec<PathBuf> {
    let dir = zig.parent().unwrap_or(Path::new("/"));
    vec![
        dir.join("lib"),
        dir.join("lib/zig"),
        dir.join("../lib/zig"),
        dir.join("../lib"),
    ]
}

/// The library directory: `zig env`'s when absolute, else the first
/// candidate beside the binary that holds `std/std.zig`.
fn find_lib_dir(fs: &dyn FileSource, zig: &Path, said: &str) -> Option<PathBuf> {
    let said = Path::new(said);
    let candidates = said
        .is_absolute()
        .then(|| said.to_path_buf())
        .into_iter()
        .chain(lib_candidates(zig));
    for c in candidates {
        if paths::is_file(fs, &c.join("std/std.zig")) {
            return paths::resolve(fs, &c).ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zig_env_gives_the_library_and_the_native_target() {
        let text = ".{\n    .zig_exe = \"/opt/zig/zig\",\n    .lib_dir = \"/opt/zig/lib\",\n    .std_dir = \"/opt/zig/lib/std\",\n    .version = \"0.17.0\",\n    .target = \"x86_64-linux.6.18.44...6.18.44-gnu.2.36\",\n}\n";
        let e = parse_zig_env(text).unwrap();
        assert_eq!(e.lib_dir, "/opt/zig/lib");
        assert_eq!(plain_triple(&e.target), "x86_64-linux-gnu");
        assert_eq!(plain_triple("aarch64-linux-musl"), "aarch64-linux-musl");
        assert!(parse_zig_env(".{}\n").is_err());
    }

    /// The linker's version answer names the version in every build; other
    /// version-like strings (LLVM's, zlib's) do not count, and two
    /// different answers mean nothing can be said.
    #[test]
    fn a_zig_binary_spells_its_version_for_its_linker() {
        let bin = b"\x7fELF..21.1.0\0zig 0.16.0\0agent=zig/0.16.0\n\0zig ld 0.16.0\n\0IfsVersion";
        assert_eq!(version_in_binary(bin).as_deref(), Some("0.16.0"));
        let dev = b"zig ld 0.17.0-dev.42+abc123\n\0";
        assert_eq!(
            version_in_binary(dev).as_deref(),
            Some("0.17.0-dev.42+abc123")
        );
        let twice = b"zig ld 0.16.0\n\0 zig ld 0.16.0\n\0";
        assert_eq!(version_in_binary(twice).as_deref(), Some("0.16.0"));
        assert_eq!(
            version_in_binary(b"zig ld 0.16.0\n\0zig ld 0.15.1\n\0"),
            None
        );
        assert_eq!(version_in_binary(b"zig ld %s\n\0"), None);
        assert_eq!(version_in_binary(b"zig ld 0.16.0"), None);
        assert_eq!(version_in_binary(b"GNU ld 2.40\n\0"), None);
    }
}
