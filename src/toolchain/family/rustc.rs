//! rustc: its identity from `rustc -vV`, then the sysroot's layout
//! (`bin/rustc`, `lib/librustc_driver-*.so`, the real `libLLVM.so`,
//! `lib/rustlib/<target>/lib` per target, `rust-lld` and `gcc-ld/` when
//! linking). The layout is read through a [`FileSource`], so a sysroot
//! still packed in an archive, or built for another host, is described
//! without running anything ([`rustc_from_sysroot`]).

use std::path::{Path, PathBuf};

use super::{Ask, Builder, Contents, Family, FamilyError, Identity, ProbeOptions, paths};
use crate::toolchain::{FileSource, Kind};

/// The fields of `rustc -vV` an identity needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RustcVersion {
    /// `release:` ("1.95.0", "1.97.0-nightly").
    pub release: String,
    /// `commit-hash:`; None for builds without git info ("unknown").
    pub commit: Option<String>,
    /// `host:` triple.
    pub host: String,
    /// `LLVM version:`, when printed.
    pub llvm: Option<String>,
}

/// Parses `rustc -vV`.
pub fn parse_rustc_vv(text: &str) -> Result<RustcVersion, FamilyError> {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let parse_err = |what: &str| FamilyError::Parse {
        what: format!("the {what} line of rustc -vV"),
        text: text.into(),
    };
    if !text.starts_with("rustc ") {
        return Err(parse_err("first"));
    }
    Ok(RustcVersion {
        release: field("release:").ok_or_else(|| parse_err("release:"))?,
        commit: field("commit-hash:").filter(|c| c != "unknown"),
        host: field("host:").ok_or_else(|| parse_err("host:"))?,
        llvm: field("LLVM version:"),
    })
}

pub(super) fn probe(
    fs: &dyn FileSource,
    ask: &Ask<'_>,
    opts: &ProbeOptions,
) -> Result<Contents, FamilyError> {
    let vv = parse_rustc_vv(&ask.stdout(&["-vV"])?)?;
    let sysroot = PathBuf::from(ask.stdout(&["--print", "sysroot"])?);
    let identity = Identity {
        family: Family::Rustc,
        version: vv.release.clone(),
        commit: vv.commit.clone(),
        host: vv.host.clone(),
        target: vv.host.clone(),
    };
    let mut contents = rustc_from_sysroot(fs, &sysroot, identity, opts)?;
    // A rustup proxy (~/.cargo/bin/rustc → rustup) answers for the
    // toolchain it picks but is not the compiler: package the real one.
    let given = paths::resolve(fs, ask.compiler).ok();
    let real = paths::resolve(fs, &contents.entry).ok();
    let mut notes = vec![format!(
        "rustc -vV: {} ({}), host {}{}",
        vv.release,
        vv.commit.as_deref().unwrap_or("no commit hash"),
        vv.host,
        vv.llvm.map(|l| format!(", LLVM {l}")).unwrap_or_default()
    )];
    if given.is_some() && given == real {
        contents.entry = ask.compiler.to_path_buf();
    } else {
        notes.push(format!(
            "{} is not the compiler (a rustup proxy or a wrapper); asked --print sysroot, it answered {}: packaging {}",
            ask.compiler.display(),
            sysroot.display(),
            contents.entry.display()
        ));
    }
    notes.append(&mut contents.notes);
    contents.notes = notes;
    Ok(contents)
}

/// rustc without running it: the layout of the sysroot at `sysroot` read
/// through `fs` (an installed toolchain, or a foreign one in an archive).
pub fn rustc_from_sysroot(
    fs: &dyn FileSource,
    sysroot: &Path,
    identity: Identity,
    opts: &ProbeOptions,
) -> Result<Contents, FamilyError> {
    let mut b = Builder::default();
    let entry = sysroot.join("bin/rustc");
    if !paths::is_file(fs, &entry) {
        return Err(FamilyError::MissingTool {
            what: "bin/rustc".into(),
            searched: vec![entry],
            hint: "this is not a rustc sysroot: pass the dir `rustc --print sysroot` names".into(),
        });
    }
    b.note(format!("sysroot {}", sysroot.display()));

    // rustc is a small binary over librustc_driver and LLVM. The loader
    // closure of bin/rustc finds them too; listing them says they are
    // required, and picks the real libLLVM over its linker-script alias.
    let lib = sysroot.join("lib");
    let mut names = read_dir_sorted(fs, &lib)?;
    names.retain(|n| n.starts_with("lib") && n.contains(".so"));
    let mut driver = false;
    for name in names {
        let p = lib.join(&name);
        match stat_kind(fs, &p) {
            Some(Kind::File) | Some(Kind::Symlink) => {}
            _ => continue,
        }
        if !is_elf(fs, &p) {
            b.note(format!(
                "{}: not ELF (a linker script), skipped",
                p.display()
            ));
            continue;
        }
        driver |= name.starts_with("librustc_driver-");
        b.libraries.insert(p);
    }
    if !driver {
        return Err(FamilyError::MissingTool {
            what: "librustc_driver-*.so".into(),
            searched: vec![lib],
            hint: "the rustc component of this toolchain is incomplete: reinstall it (rustup toolchain install)".into(),
        });
    }

    let targets = if opts.targets.is_empty() {
        vec![identity.host.clone()]
    } else {
        opts.targets.clone()
    };
    for t in &targets {
        let dir = sysroot.join("lib/rustlib").join(t).join("lib");
        if !paths::is_dir(fs, &dir) {
            return Err(FamilyError::MissingTarget {
                target: t.clone(),
                searched: dir,
                hint: format!("install its standard library with `rustup target add {t}`"),
            });
        }
        b.trees.insert(dir);
    }

    if opts.linking {
        let bin = sysroot.join("lib/rustlib").join(&identity.host).join("bin");
        let lld = bin.join("rust-lld");
        if paths::is_file(fs, &lld) {
            b.programs.insert(lld);
        } else {
            b.note(format!(
                "{}: absent; linking uses the system linker only",
                lld.display()
            ));
        }
        // gcc-ld/ holds `ld.lld` wrappers that cc is pointed at with -B;
        // each runs ../rust-lld.
        let gcc_ld = bin.join("gcc-ld");
        if paths::is_dir(fs, &gcc_ld) {
            for name in read_dir_sorted(fs, &gcc_ld)? {
                b.programs.insert(gcc_ld.join(name));
            }
        }
        b.note(
            "linking on *-linux-gnu runs `cc` as the linker driver: package a C compiler too (recast toolchain package --compiler cc)",
        );
    }

    Ok(b.finish(identity, entry, opts.sysroot.clone(), targets))
}

fn stat_kind(fs: &dyn FileSource, p: &Path) -> Option<Kind> {
    fs.symlink_metadata(p).ok().map(|m| m.kind)
}

fn is_elf(fs: &dyn FileSource, p: &Path) -> bool {
    fs.read(p).is_ok_and(|b| b.starts_with(b"\x7fELF"))
}

fn read_dir_sorted(fs: &dyn FileSource, dir: &Path) -> Result<Vec<String>, FamilyError> {
    let mut names: Vec<String> = fs
        .read_dir(dir)
        .map_err(|source| FamilyError::Io {
            path: dir.to_path_buf(),
            source,
        })?
        .into_iter()
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STABLE: &str = "rustc 1.95.0 (59807616e 2026-04-14)\nbinary: rustc\ncommit-hash: 59807616e1fa2540724bfbac14d7976d7e4a3860\ncommit-date: 2026-04-14\nhost: x86_64-unknown-linux-gnu\nrelease: 1.95.0\nLLVM version: 22.1.2\n";

    #[test]
    fn vv_of_a_release() {
        let v = parse_rustc_vv(STABLE).unwrap();
        assert_eq!(v.release, "1.95.0");
        assert_eq!(
            v.commit.as_deref(),
            Some("59807616e1fa2540724bfbac14d7976d7e4a3860")
        );
        assert_eq!(v.host, "x86_64-unknown-linux-gnu");
        assert_eq!(v.llvm.as_deref(), Some("22.1.2"));
    }

    #[test]
    fn vv_of_a_local_build_has_no_commit() {
        let text = "rustc 1.97.0-dev\nbinary: rustc\ncommit-hash: unknown\ncommit-date: unknown\nhost: aarch64-apple-darwin\nrelease: 1.97.0-dev\n";
        let v = parse_rustc_vv(text).unwrap();
        assert_eq!(v.commit, None);
        assert_eq!(v.host, "aarch64-apple-darwin");
        assert_eq!(v.llvm, None);
    }

    #[test]
    fn vv_without_host_is_an_error() {
        let err = parse_rustc_vv("rustc 1.0.0\nrelease: 1.0.0\n").unwrap_err();
        assert!(err.to_string().contains("host:"), "{err}");
        assert!(parse_rustc_vv("Python 3.11.2\n").is_err());
    }
}
