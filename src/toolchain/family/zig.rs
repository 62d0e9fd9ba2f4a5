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
    let mut b = Builder::default();
    b.note(format!(
        "zig version: {version}; native target {}",
        env.target
    ));
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
    Ok(b.finish(
        identity,
        ask.compiler.to_path_buf(),
        None,
        opts.targets.clone(),
    ))
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
}
