//! clang and clang++: cc1 runs in-process, so beyond the binary's closure
//! clang needs its resource dir (`-print-resource-dir`) and what its GCC
//! installation detection stats (`clang -v`: "Selected GCC installation"),
//! which picks the C++ headers and crt files; the linker and crt files only
//! when linking.

use std::path::{Path, PathBuf};

use super::{Ask, Builder, Contents, Family, FamilyError, Identity, ProbeOptions, Program, paths};
use crate::toolchain::FileSource;

/// The multilib subdirectories clang's detection probes for `crtbegin.o`
/// (x86's biarch layouts and the 64-bit alternative); "" is the dir itself.
const MULTILIB_DIRS: &[&str] = &["", "32", "x32", "64"];

/// Files clang's Linux distro detection reads; they choose link flags.
const DISTRO_FILES: &[&str] = &["/etc/os-release", "/etc/lsb-release", "/etc/debian_version"];

/// The version in `clang --version`'s first line ("Debian clang version
/// 14.0.6", "Apple clang version 15.0.0 (clang-1500.1.0.2.5)").
pub fn parse_clang_version(text: &str) -> Option<String> {
    let line = text.lines().find(|l| l.contains("clang version "))?;
    let rest = line.split("clang version ").nth(1)?;
    let v = rest.split_whitespace().next()?;
    // Debian appends "-++20220101…" to snapshot versions.
    let v = v.split(['-', '+']).next()?;
    (!v.is_empty() && v.starts_with(|c: char| c.is_ascii_digit())).then(|| v.to_string())
}

/// `-print-resource-dir`'s answer: one absolute path.
pub fn parse_resource_dir(text: &str) -> Result<PathBuf, FamilyError> {
    let t = text.trim();
    let p = Path::new(t);
    if p.is_absolute() && !t.contains('\n') {
        Ok(p.to_path_buf())
    } else {
        Err(FamilyError::Parse {
            what: "the output of -print-resource-dir".into(),
            text: text.into(),
        })
    }
}

/// The dir of `clang -v`'s "Selected GCC installation: DIR" (stderr); None
/// when clang found none (then it uses no libstdc++ headers or gcc crt
/// files).
pub fn parse_selected_gcc_installation(text: &str) -> Option<PathBuf> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Selected GCC installation:"))
        .map(|d| PathBuf::from(d.trim()))
        .filter(|d| d.is_absolute())
}

/// Probes a clang driver: its identity and resource dir, then per target
/// its GCC installation and (when linking) linker and crt files.
pub(super) fn probe(
    fs: &dyn FileSource,
    ask: &Ask<'_>,
    opts: &ProbeOptions,
    version_text: &str,
) -> Result<Contents, FamilyError> {
    let mut b = Builder::default();
    let first = version_text.lines().next().unwrap_or_default();
    b.note(format!("clang family: {first}"));
    let version = version(ask, version_text)?;
    let default_target = ask.stdout(&["-dumpmachine"])?;
    // clang prints no host triple; a packaged clang runs where it was
    // found, whose triple is its default one unless it is a cross build.
    b.note(format!(
        "host {default_target}: clang prints only its default target (the binary's own header is the final word)"
    ));

    let sysroot_flag: Vec<String> = opts
        .sysroot
        .iter()
        .map(|s| format!("--sysroot={}", s.display()))
        .collect();
    resource_dir(fs, &ask.with_flags(sysroot_flag.clone()), opts, &mut b)?;
    let targets: Vec<Option<&String>> = if opts.targets.is_empty() {
        vec![None]
    } else {
        opts.targets.iter().map(Some).collect()
    };
    for target in targets {
        let label = target.unwrap_or(&default_target);
        let flags = target.map(|t| format!("--target={t}")).into_iter();
        let ask = ask.with_flags(flags.chain(sysroot_flag.iter().cloned()).collect());
        gcc_installation(fs, &ask, label, &mut b)?;
        if opts.linking {
            linker(fs, &ask, opts, label, &mut b)?;
            super::gcc::link_files(fs, &ask, &mut b)?;
        }
    }
    if opts.linking {
        for f in DISTRO_FILES {
            let p = PathBuf::from(f);
            if paths::is_file(fs, &p) {
                b.files.insert(p);
            }
        }
    }

    let identity = Identity {
        family: Family::Clang,
        version,
        commit: None,
        host: default_target.clone(),
        target: default_target.clone(),
    };
    let included = if opts.targets.is_empty() {
        vec![default_target]
    } else {
        opts.targets.clone()
    };
    Ok(b.finish(
        identity,
        ask.compiler.to_path_buf(),
        opts.sysroot.clone(),
        included,
    ))
}

/// `-dumpversion`, or the version in `--version`'s text when that fails or
/// answers no number.
fn version(ask: &Ask<'_>, version_text: &str) -> Result<String, FamilyError> {
    match ask.stdout(&["-dumpversion"]) {
        Ok(v) if v.starts_with(|c: char| c.is_ascii_digit()) => Ok(v),
        _ => parse_clang_version(version_text).ok_or_else(|| FamilyError::Parse {
            what: "the clang version".into(),
            text: version_text.into(),
        }),
    }
}

/// The resource dir's `include` and `share` trees (and `lib` when
/// linking); a clang without its resource dir is broken.
fn resource_dir(
    fs: &dyn FileSource,
    ask: &Ask<'_>,
    opts: &ProbeOptions,
    b: &mut Builder,
) -> Result<(), FamilyError> {
    let resource = paths::clean(
        fs,
        &parse_resource_dir(&ask.stdout(&["-print-resource-dir"])?)?,
    );
    if !paths::is_dir(fs, &resource) {
        return Err(FamilyError::MissingTool {
            what: format!("clang's resource dir {}", resource.display()),
            searched: vec![resource.clone()],
            hint:
                "the clang installation is incomplete: reinstall it (Debian: libclang-common-N-dev)"
                    .into(),
        });
    }
    b.note(format!("resource dir {}", resource.display()));
    let mut subs = vec!["include", "share"];
    if opts.linking {
        subs.push("lib");
    }
    for sub in subs {
        let d = resource.join(sub);
        if paths::is_dir(fs, &d) {
            b.trees.insert(d);
        }
    }
    Ok(())
}

/// The `crtbegin.o` files of the GCC installation clang selects for one
/// target (`label`). Detection stats them in the dir and its multilib
/// dirs; the headers it then uses reach the bundle through the dependency
/// scan of each compile.
fn gcc_installation(
    fs: &dyn FileSource,
    ask: &Ask<'_>,
    label: &str,
    b: &mut Builder,
) -> Result<(), FamilyError> {
    let v = ask.output(&["-v"])?;
    let Some(dir) = parse_selected_gcc_installation(&v.stderr) else {
        b.note(format!("{label}: clang selected no GCC installation"));
        return Ok(());
    };
    let dir = paths::clean(fs, &dir);
    b.note(format!("{label}: GCC installation {}", dir.display()));
    for m in MULTILIB_DIRS {
        let f = if m.is_empty() {
            dir.join("crtbegin.o")
        } else {
            dir.join(m).join("crtbegin.o")
        };
        if paths::is_file(fs, &f) {
            b.files.insert(f);
        }
    }
    Ok(())
}

/// The linker clang runs for one target (`label`): from its own dirs or
/// from PATH.
fn linker(
    fs: &dyn FileSource,
    ask: &Ask<'_>,
    opts: &ProbeOptions,
    label: &str,
    b: &mut Builder,
) -> Result<(), FamilyError> {
    match ask.program(fs, "ld", &opts.path)? {
        (_, Program::Own(p)) => {
            b.programs.insert(p);
        }
        (_, Program::OnPath(p)) => b.program_on_path(p),
        (ld, Program::Missing) => {
            return Err(FamilyError::MissingTool {
                what: format!("the linker `{ld}` for {label}"),
                searched: opts.path.clone(),
                hint: "install binutils (or lld) or pass the PATH clang runs with".into(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from Debian's clang 14 (`clang -v`, stderr).
    const DEBIAN_V: &str = "Debian clang version 14.0.6\nTarget: x86_64-pc-linux-gnu\nThread model: posix\nInstalledDir: /usr/bin\nFound candidate GCC installation: /usr/bin/../lib/gcc/x86_64-linux-gnu/12\nSelected GCC installation: /usr/bin/../lib/gcc/x86_64-linux-gnu/12\nCandidate multilib: .;@m64\nSelected multilib: .;@m64\n";

    #[test]
    fn version_lines() {
        assert_eq!(parse_clang_version(DEBIAN_V).as_deref(), Some("14.0.6"));
        assert_eq!(
            parse_clang_version("Apple clang version 15.0.0 (clang-1500.1.0.2.5)\nTarget: arm64-apple-darwin23.0.0\n").as_deref(),
            Some("15.0.0")
        );
        assert_eq!(
            parse_clang_version("Ubuntu clang version 18.1.3 (1ubuntu1)\n").as_deref(),
            Some("18.1.3")
        );
        assert_eq!(parse_clang_version("gcc (Debian 12.2.0) 12.2.0\n"), None);
    }

    #[test]
    fn selected_gcc_installation() {
        assert_eq!(
            parse_selected_gcc_installation(DEBIAN_V),
            Some(PathBuf::from("/usr/bin/../lib/gcc/x86_64-linux-gnu/12"))
        );
        // `clang --target=aarch64-linux-gnu -v` here: no cross gcc installed.
        let none = "Debian clang version 14.0.6\nTarget: aarch64-unknown-linux-gnu\nThread model: posix\nInstalledDir: /usr/bin\n";
        assert_eq!(parse_selected_gcc_installation(none), None);
    }

    #[test]
    fn resource_dir() {
        assert_eq!(
            parse_resource_dir("/usr/lib/llvm-14/lib/clang/14.0.6\n").unwrap(),
            PathBuf::from("/usr/lib/llvm-14/lib/clang/14.0.6")
        );
        assert!(matches!(
            parse_resource_dir("lib/clang/14\n"),
            Err(FamilyError::Parse { .. })
        ));
        assert!(matches!(
            parse_resource_dir(""),
            Err(FamilyError::Parse { .. })
        ));
    }
}
