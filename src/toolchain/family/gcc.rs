//! gcc and g++: the programs the driver runs (`cc1`, `cc1plus`, `collect2`,
//! `lto-wrapper`, `lto1`, `as`, `ld` when linking), the LTO plugin, `specs`,
//! and the install dir's headers and crt files, each found by asking the
//! driver (`-print-prog-name=`, `-print-file-name=`, `-print-search-dirs`).

use std::path::{Path, PathBuf};

use super::{Ask, Builder, Contents, Family, FamilyError, Identity, ProbeOptions, Program, paths};
use crate::toolchain::FileSource;

/// Helpers gcc runs from its own dirs; `as` and `ld` are handled apart
/// because gcc falls back to PATH for them.
const PROGRAMS: &[&str] = &["cc1", "cc1plus", "collect2", "lto-wrapper", "lto1"];

/// Files the driver passes to the linker (start files, libgcc, libc's
/// pieces); asked one by one, those not found are skipped.
pub(super) const LINK_FILES: &[&str] = &[
    "crt1.o",
    "Scrt1.o",
    "rcrt1.o",
    "crti.o",
    "crtn.o",
    "crtbegin.o",
    "crtbeginS.o",
    "crtbeginT.o",
    "crtend.o",
    "crtendS.o",
    "libgcc.a",
    "libgcc_eh.a",
    "libgcc_s.so",
    "libgcc_s.so.1",
    "libc.so",
    "libc_nonshared.a",
    "libm.so",
    "libm.so.6",
    "libm.a",
    "libmvec.so",
    "libmvec.so.1",
    // What Rust's std links on glibc (-ldl -lpthread -lrt -lutil), as the
    // archives or shared objects the linker resolves those names to.
    "libdl.a",
    "libdl.so",
    "libdl.so.2",
    "libpthread.a",
    "libpthread.so",
    "libpthread.so.0",
    "librt.a",
    "librt.so",
    "librt.so.1",
    "libutil.a",
    "libutil.so",
    "libutil.so.1",
    "libstdc++.so",
    "libstdc++.a",
];

/// The parts of `gcc -v`'s "Configured with:" line a registry key needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfiguredWith {
    pub host: Option<String>,
    pub build: Option<String>,
    pub target: Option<String>,
    /// `--with-sysroot=DIR` (Debian's cross compilers say `/`).
    pub sysroot: Option<String>,
}

/// Reads the "Configured with:" line of `gcc -v` (stderr). None when the
/// line is absent.
pub fn parse_configured_with(text: &str) -> Option<ConfiguredWith> {
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Configured with:"))?;
    let mut out = ConfiguredWith::default();
    for word in line.split_whitespace() {
        // Values may be quoted ('--with-pkgversion=Debian 12.2.0-14'); the
        // ones read here never hold spaces.
        let word = word.trim_matches('\'');
        let Some((key, value)) = word.split_once('=') else {
            continue;
        };
        let slot = match key {
            "--host" => &mut out.host,
            "--build" => &mut out.build,
            "--target" => &mut out.target,
            "--with-sysroot" => &mut out.sysroot,
            _ => continue,
        };
        *slot = Some(value.to_string());
    }
    Some(out)
}

/// gcc's exec prefix from its `-print-search-dirs`: the `install:`
/// directory less its `<machine>/<version>/` (`/usr/lib/gcc/`), with a
/// trailing `/` as `GCC_EXEC_PREFIX` takes it.
pub fn parse_exec_prefix(text: &str) -> Option<String> {
    let (install, _) = parse_search_dirs(text).ok()?;
    let prefix = install.parent()?.parent()?;
    Some(format!("{}/", prefix.display()))
}

/// The `install:` dir of `gcc -print-search-dirs`
/// (`/usr/lib/gcc/x86_64-linux-gnu/12/`) and its `programs:` list.
pub fn parse_search_dirs(text: &str) -> Result<(PathBuf, Vec<PathBuf>), FamilyError> {
    let mut install = None;
    let mut programs = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("install:") {
            install = Some(PathBuf::from(rest.trim()));
        } else if let Some(rest) = line.strip_prefix("programs:") {
            // "programs: =/a/:/b/" — the '=' marks a sysroot-relative list.
            let rest = rest.trim().trim_start_matches('=');
            programs = rest
                .split(':')
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect();
        }
    }
    match install {
        Some(dir) if dir.is_absolute() => Ok((dir, programs)),
        _ => Err(FamilyError::Parse {
            what: "the install: line of -print-search-dirs".into(),
            text: text.into(),
        }),
    }
}

/// `-print-prog-name=X` / `-print-file-name=X` answer: Some(absolute path)
/// when gcc found it in its own dirs, None when it echoed the bare name
/// (not installed there; gcc would then look on PATH).
pub fn parse_prog_name(answer: &str) -> Option<PathBuf> {
    let answer = answer.trim();
    let p = Path::new(answer);
    p.is_absolute().then(|| p.to_path_buf())
}

/// Probes a gcc driver: its identity, then what it runs and reads, each
/// asked of the driver (with `--sysroot=` when one was given).
pub(super) fn probe(
    fs: &dyn FileSource,
    ask: &Ask<'_>,
    opts: &ProbeOptions,
    version_text: &str,
) -> Result<Contents, FamilyError> {
    let mut b = Builder::default();
    b.note(driver_note(ask.compiler, version_text));
    let version = version(ask)?;
    let target = ask.stdout(&["-dumpmachine"])?;
    let configured = parse_configured_with(&ask.output(&["-v"])?.stderr).unwrap_or_default();
    let host = host_triple(&configured, &target, &mut b);
    check_targets(ask.compiler, &opts.targets, &target)?;
    let sysroot = sysroot(fs, ask, opts, &host, &target, &mut b);

    let ask = &ask.with_flags(
        opts.sysroot
            .iter()
            .map(|s| format!("--sysroot={}", s.display()))
            .collect(),
    );
    own_programs(fs, ask, &mut b)?;
    binutils(fs, ask, opts, &mut b)?;
    plugin_and_specs(fs, ask, &mut b)?;
    install_trees(fs, ask, &mut b)?;
    if opts.linking {
        link_files(fs, ask, &mut b)?;
    }

    let identity = Identity {
        family: Family::Gcc,
        version,
        commit: None,
        host,
        target: target.clone(),
    };
    Ok(b.finish(identity, ask.compiler.to_path_buf(), sysroot, vec![target]))
}

/// The first note: which driver (C or C++) and its version line.
fn driver_note(compiler: &Path, version_text: &str) -> String {
    let name = compiler.file_name().unwrap_or_default().to_string_lossy();
    let language = if name.contains("++") { "C++" } else { "C" };
    let first = version_text.lines().next().unwrap_or_default();
    format!("gcc family ({language} driver): {first}")
}

/// The full version: `-dumpfullversion` exists since gcc 7, `-dumpversion`
/// is the fallback.
fn version(ask: &Ask<'_>) -> Result<String, FamilyError> {
    match ask.stdout(&["-dumpfullversion"]) {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => ask.stdout(&["-dumpversion"]),
    }
}

/// The triple gcc runs on, from "Configured with:" (`--host=`, else
/// `--build=`, else the target), noting where it came from.
fn host_triple(configured: &ConfiguredWith, target: &str, b: &mut Builder) -> String {
    match (&configured.host, &configured.build) {
        (Some(h), _) => {
            b.note(format!("host {h}: from -v \"Configured with … --host=\""));
            h.clone()
        }
        (None, Some(build)) => {
            b.note(format!(
                "host {build}: -v gives no --host=, taken from --build= (the binary's own header is the final word)"
            ));
            build.clone()
        }
        (None, None) => {
            b.note(format!(
                "host {target}: -v gives neither --host= nor --build=, assumed native (the binary's own header is the final word)"
            ));
            target.to_string()
        }
    }
}

/// Refuses targets other than gcc's own: a gcc compiles for one.
fn check_targets(compiler: &Path, targets: &[String], target: &str) -> Result<(), FamilyError> {
    match targets.iter().find(|t| !super::same_triple(t, target)) {
        Some(t) => Err(FamilyError::MissingTarget {
            target: t.clone(),
            searched: compiler.to_path_buf(),
            hint: format!(
                "gcc compiles only for the target it was built for ({target}); use {t}-gcc (a cross gcc) or clang --target={t}"
            ),
        }),
        None => Ok(()),
    }
}

/// The sysroot: given, configured into gcc, or Debian's cross layout.
fn sysroot(
    fs: &dyn FileSource,
    ask: &Ask<'_>,
    opts: &ProbeOptions,
    host: &str,
    target: &str,
    b: &mut Builder,
) -> Option<PathBuf> {
    if let Some(s) = &opts.sysroot {
        return Some(s.clone());
    }
    let printed = ask.stdout(&["-print-sysroot"]).unwrap_or_default();
    let cross_dir = PathBuf::from("/usr").join(target);
    if !printed.is_empty() && printed != "/" {
        b.note(format!("sysroot {printed}: from -print-sysroot"));
        Some(PathBuf::from(printed))
    } else if !super::same_triple(host, target) && paths::is_dir(fs, &cross_dir) {
        b.note(format!(
            "sysroot {}: a cross gcc's target dir (Debian layout)",
            cross_dir.display()
        ));
        Some(cross_dir)
    } else {
        None
    }
}

/// The programs in gcc's own dirs ([`PROGRAMS`]); at least one compiler
/// proper must be there.
fn own_programs(fs: &dyn FileSource, ask: &Ask<'_>, b: &mut Builder) -> Result<(), FamilyError> {
    let mut front_ends = 0;
    for prog in PROGRAMS {
        match ask.program(fs, prog, &[])? {
            (_, Program::Own(p)) => {
                if prog.starts_with("cc1") {
                    front_ends += 1;
                }
                b.programs.insert(p);
            }
            (answer, _) => b.note(format!(
                "-print-prog-name={prog}: {answer:?}, not installed; skipped"
            )),
        }
    }
    if front_ends == 0 {
        return Err(FamilyError::MissingTool {
            what: "cc1 and cc1plus".into(),
            searched: vec![ask.compiler.to_path_buf()],
            hint: "this gcc has no compiler proper installed; install the gcc package that provides cc1".into(),
        });
    }
    Ok(())
}

/// `as`, `objcopy` and (when linking) `ld`: from gcc's own dirs, or from
/// PATH as gcc falls back to. `objcopy` splits DWARF for -gsplit-dwarf; a
/// gcc without it still compiles everything else.
fn binutils(
    fs: &dyn FileSource,
    ask: &Ask<'_>,
    opts: &ProbeOptions,
    b: &mut Builder,
) -> Result<(), FamilyError> {
    let mut tools = vec![("as", true), ("objcopy", false)];
    if opts.linking {
        tools.push(("ld", true));
    }
    for (tool, required) in tools {
        match ask.program(fs, tool, &opts.path)? {
            (_, Program::Own(p)) => {
                b.programs.insert(p);
            }
            (answer, Program::OnPath(found)) => {
                b.note(format!(
                    "-print-prog-name={tool}: {answer:?}; gcc runs it from PATH: {}",
                    found.display()
                ));
                b.program_on_path(found);
            }
            (_, Program::Missing) if !required => b.note(format!(
                "{tool}: not found; compiles that need it run locally"
            )),
            (answer, Program::Missing) => {
                return Err(FamilyError::MissingTool {
                    what: format!("`{tool}` (gcc answered {answer:?}, so it looks on PATH)"),
                    searched: opts.path.clone(),
                    hint: "install binutils or pass the PATH gcc runs with".into(),
                });
            }
        }
    }
    Ok(())
}

/// The LTO plugin (dlopened by collect2 and ld; lto-wrapper needs it) and
/// the specs file, when gcc has them.
fn plugin_and_specs(
    fs: &dyn FileSource,
    ask: &Ask<'_>,
    b: &mut Builder,
) -> Result<(), FamilyError> {
    for plugin in ["liblto_plugin.so", "liblto_plugin.so.0"] {
        if let Some(p) = ask.own_file(fs, "file", plugin)? {
            b.libraries.insert(p);
            break;
        }
    }
    match ask.own_file(fs, "file", "specs")? {
        Some(p) => {
            b.files.insert(p);
        }
        None => b.note("no specs file: gcc uses its built-in specs"),
    }
    Ok(())
}

/// The install dir's `include` and `include-fixed` trees.
fn install_trees(fs: &dyn FileSource, ask: &Ask<'_>, b: &mut Builder) -> Result<(), FamilyError> {
    let (install, _) = parse_search_dirs(&ask.stdout(&["-print-search-dirs"])?)?;
    let install = paths::clean(fs, &install);
    b.note(format!("install dir {}", install.display()));
    for sub in ["include", "include-fixed"] {
        let dir = install.join(sub);
        if paths::is_dir(fs, &dir) {
            b.trees.insert(dir);
        }
    }
    Ok(())
}

/// Adds the crt files and libraries the linker is given, as the driver
/// finds them (`-print-file-name=`); gcc and clang share this.
pub(super) fn link_files(
    fs: &dyn FileSource,
    ask: &Ask<'_>,
    b: &mut Builder,
) -> Result<(), FamilyError> {
    let mut missing = Vec::new();
    for f in LINK_FILES {
        match ask.print_name(fs, "file", f)? {
            (_, Some(p)) if paths::stat_followed(fs, &p).is_ok() => {
                b.files.insert(p);
            }
            _ => missing.push(*f),
        }
    }
    if !missing.is_empty() {
        b.note(format!(
            "for linking, not found by -print-file-name: {}",
            missing.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from Debian's gcc 12.2.0 (x86_64).
    const DEBIAN_V: &str = "Using built-in specs.\nCOLLECT_GCC=gcc\nCOLLECT_LTO_WRAPPER=/usr/lib/gcc/x86_64-linux-gnu/12/lto-wrapper\nOFFLOAD_TARGET_NAMES=nvptx-none:amdgcn-amdhsa\nTarget: x86_64-linux-gnu\nConfigured with: ../src/configure -v --with-pkgversion='Debian 12.2.0-14+deb12u1' --with-bugurl=file:///usr/share/doc/gcc-12/README.Bugs --enable-languages=c,ada,c++,go,d,fortran,objc,obj-c++,m2 --prefix=/usr --with-gcc-major-version-only --program-suffix=-12 --enable-multiarch --disable-werror --enable-cet --build=x86_64-linux-gnu --host=x86_64-linux-gnu --target=x86_64-linux-gnu\nThread model: posix\ngcc version 12.2.0 (Debian 12.2.0-14+deb12u1) \n";

    #[test]
    fn configured_with_gives_host_build_target() {
        let c = parse_configured_with(DEBIAN_V).unwrap();
        assert_eq!(c.host.as_deref(), Some("x86_64-linux-gnu"));
        assert_eq!(c.build.as_deref(), Some("x86_64-linux-gnu"));
        assert_eq!(c.target.as_deref(), Some("x86_64-linux-gnu"));
        assert_eq!(c.sysroot, None);
    }

    #[test]
    fn configured_with_of_a_cross_gcc() {
        // The shape of Debian's gcc-12-aarch64-linux-gnu.
        let v = "Target: aarch64-linux-gnu\nConfigured with: ../src/configure -v --with-sysroot=/ --build=x86_64-linux-gnu --host=x86_64-linux-gnu --target=aarch64-linux-gnu\n";
        let c = parse_configured_with(v).unwrap();
        assert_eq!(c.host.as_deref(), Some("x86_64-linux-gnu"));
        assert_eq!(c.target.as_deref(), Some("aarch64-linux-gnu"));
        assert_eq!(c.sysroot.as_deref(), Some("/"));
        assert_eq!(parse_configured_with("gcc version 12\n"), None);
    }

    #[test]
    fn search_dirs_give_the_install_dir() {
        let text = "install: /usr/lib/gcc/x86_64-linux-gnu/12/\nprograms: =/usr/lib/gcc/x86_64-linux-gnu/12/:/usr/lib/gcc/x86_64-linux-gnu/:/usr/lib/gcc/x86_64-linux-gnu/12/../../../../x86_64-linux-gnu/bin/\nlibraries: =/usr/lib/gcc/x86_64-linux-gnu/12/:/lib/x86_64-linux-gnu/\n";
        let (install, programs) = parse_search_dirs(text).unwrap();
        assert_eq!(install, PathBuf::from("/usr/lib/gcc/x86_64-linux-gnu/12/"));
        assert_eq!(programs.len(), 3);
        assert_eq!(
            programs[0],
            PathBuf::from("/usr/lib/gcc/x86_64-linux-gnu/12/")
        );
        let err = parse_search_dirs("programs: =/a/\n").unwrap_err();
        assert!(matches!(err, FamilyError::Parse { .. }), "{err}");
    }

    #[test]
    fn prog_name_bare_means_not_in_gcc_dirs() {
        assert_eq!(
            parse_prog_name("/usr/lib/gcc/x86_64-linux-gnu/12/cc1\n"),
            Some(PathBuf::from("/usr/lib/gcc/x86_64-linux-gnu/12/cc1"))
        );
        assert_eq!(parse_prog_name("as\n"), None);
        assert_eq!(parse_prog_name("specs"), None);
    }
}
