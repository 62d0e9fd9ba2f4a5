//! Rooted archives (sccache's `--package-toolchain` output, or recast's
//! own export): the compiler inside, and its identity from the layout.
//!
//! Such an archive is already a closure: every file it holds goes into the
//! tree (the whole view is one data tree), and every ELF executable in it
//! is a program whose loader closure must be complete, so a partial
//! archive is caught when packaging. Identity, kept simple:
//! - rustc: the sysroot around `bin/rustc`; release and commit from the
//!   version string compiled into `librustc_driver`; host from
//!   `lib/rustlib/<triple>/`.
//! - gcc: `usr/lib/gcc/<triple>/<ver>/` (the full version from the driver's
//!   strings when the directory names only the major, as Debian's does).
//! - clang: `lib/clang/<ver>/`; the triple from `lib/clang/<ver>/lib/<triple>/`,
//!   else gcc's directory, else `--target`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::ArchiveError;
use super::fs::{ArchiveFs, Node, normalize};
use crate::toolchain::family::{self, Contents, Family, Identity, ProbeOptions};
use crate::toolchain::{FileSource, Kind};

/// The family a compiler's file name says, if it is one an archive's
/// toolchain is read for (gcc, clang, rustc): [`Family::of_name`].
pub(super) fn family_of_name(name: &str) -> Option<Family> {
    Family::of_name(name).filter(|f| *f != Family::Zig)
}

/// `path` with every symlink resolved, or None if it dangles.
fn real(fs: &ArchiveFs, path: &Path) -> Option<PathBuf> {
    let mut hops = 0;
    let mut p = normalize(path);
    'outer: loop {
        let mut done = PathBuf::from("/");
        let comps: Vec<_> = p.iter().skip(1).map(PathBuf::from).collect();
        for (i, c) in comps.iter().enumerate() {
            let next = done.join(c);
            match fs.node(&next)? {
                Node::Symlink { target } => {
                    hops += 1;
                    if hops > 40 {
                        return None;
                    }
                    let mut np = if target.is_absolute() {
                        target.clone()
                    } else {
                        done.join(target)
                    };
                    for rest in &comps[i + 1..] {
                        np.push(rest);
                    }
                    p = normalize(&np);
                    continue 'outer;
                }
                _ => done = next,
            }
        }
        return Some(done);
    }
}

fn is_exec_file(fs: &ArchiveFs, path: &Path) -> bool {
    real(fs, path)
        .and_then(|r| fs.symlink_metadata(&r).ok())
        .is_some_and(|m| m.kind == Kind::File && m.executable)
}

/// The compiler to package: `entry` when given, else the only one found.
fn pick_entry(fs: &ArchiveFs, entry: Option<&Path>) -> Result<(PathBuf, Family), ArchiveError> {
    let sources = fs
        .sources()
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if let Some(e) = entry {
        let path = normalize(&Path::new("/").join(e));
        if !is_exec_file(fs, &path) {
            return Err(ArchiveError::Entry(format!(
                "--entry {}: no executable file at {} in {sources}",
                e.display(),
                path.display()
            )));
        }
        let family = family_by_names(fs, &path).ok_or_else(|| {
            ArchiveError::Identity(format!(
                "{} in {sources}: cannot tell which compiler this is from its name; pass --entry naming gcc, g++, clang, clang++ or rustc",
                path.display()
            ))
        })?;
        return Ok((path, family));
    }
    // Every compiler-named executable in a `bin/`, grouped by the file it
    // finally is: `gcc`, `gcc-12` and `x86_64-linux-gnu-gcc-12` are one.
    let mut by_real: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    for (path, node) in fs.paths() {
        let in_bin = path.parent().and_then(|d| d.file_name()) == Some("bin".as_ref());
        let named = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(family_of_name)
            .is_some();
        if in_bin
            && named
            && !matches!(node, Node::Dir { .. })
            && is_exec_file(fs, path)
            && let Some(r) = real(fs, path)
        {
            by_real.entry(r).or_default().push(path.to_path_buf());
        }
    }
    match by_real.len() {
        1 => {
            let (_, mut names) = by_real.into_iter().next().unwrap_or_default();
            // The plainest name: `gcc` over `x86_64-linux-gnu-gcc-12`.
            names.sort_by_key(|p| (p.as_os_str().len(), p.clone()));
            let path = names.swap_remove(0);
            let family = family_by_names(fs, &path).ok_or_else(|| {
                ArchiveError::Identity(format!(
                    "{}: cannot tell which compiler this is; pass --entry",
                    path.display()
                ))
            })?;
            Ok((path, family))
        }
        0 => Err(ArchiveError::Entry(format!(
            "no compiler (gcc, g++, clang, clang++, rustc) in a bin/ directory of {sources}; pass --entry PATH naming it inside the archive"
        ))),
        _ => Err(ArchiveError::Entry(format!(
            "several compilers in {sources}: {}; pass --entry naming one",
            by_real
                .values()
                .map(|names| names
                    .iter()
                    .min_by_key(|p| p.as_os_str().len())
                    .map(|p| p.display().to_string())
                    .unwrap_or_default())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The family from the real file's name first (`cc` → … → `gcc-12`),
/// then from the name given.
fn family_by_names(fs: &ArchiveFs, path: &Path) -> Option<Family> {
    let name_of = |p: &Path| {
        p.file_name()
            .and_then(|n| n.to_str())
            .and_then(family_of_name)
    };
    real(fs, path)
        .as_deref()
        .and_then(name_of)
        .or_else(|| name_of(path))
}

/// The compiler of a rooted archive as [`Contents`].
pub(super) fn contents(
    fs: &ArchiveFs,
    entry: Option<&Path>,
    opts: &ProbeOptions,
) -> Result<Contents, ArchiveError> {
    let (entry, family) = pick_entry(fs, entry)?;
    if family == Family::Rustc {
        return rustc(fs, &entry, opts);
    }
    let (identity, note) = match family {
        Family::Gcc => gcc_identity(fs, &entry)?,
        _ => clang_identity(fs, opts)?,
    };
    // Everything the archive holds ships; each ELF executable's loader
    // closure is checked by the packager.
    let mut programs = BTreeSet::new();
    let mut path_dirs = BTreeSet::new();
    for (path, node) in fs.paths() {
        if let Node::File { data, mode } = node {
            if mode & 0o111 != 0 && data.starts_with(b"\x7fELF") && path != entry {
                programs.insert(path.to_path_buf());
            }
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if (name == "as" || name.ends_with("-as"))
                && let Some(d) = path.parent()
            {
                path_dirs.insert(d.to_path_buf());
            }
        }
    }
    if let Some(d) = entry.parent() {
        path_dirs.insert(d.to_path_buf());
    }
    let targets = vec![identity.target.clone()];
    Ok(Contents {
        identity,
        entry,
        programs: programs.into_iter().collect(),
        libraries: Vec::new(),
        trees: vec![PathBuf::from("/")],
        files: Vec::new(),
        sysroot: opts.sysroot.clone(),
        path_dirs: path_dirs.into_iter().collect(),
        env: BTreeMap::new(),
        targets,
        notes: vec![
            format!(
                "imported from {}",
                fs.sources()
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            note,
        ],
    })
}

/// rustc packaged by sccache: its sysroot is two levels above `bin/rustc`.
fn rustc(fs: &ArchiveFs, entry: &Path, opts: &ProbeOptions) -> Result<Contents, ArchiveError> {
    let sysroot = entry
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let lib = sysroot.join("lib");
    let driver = fs
        .read_dir(&lib)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|n| n.into_string().ok())
        .find(|n| n.starts_with("librustc_driver-") && n.contains(".so"))
        .ok_or_else(|| {
            ArchiveError::Identity(format!(
                "{}: no lib/librustc_driver-*.so beside it, so its version cannot be told; pass an archive holding the whole rustc sysroot",
                entry.display()
            ))
        })?;
    let bytes = fs
        .read(&lib.join(&driver))
        .map_err(|e| ArchiveError::Identity(e.to_string()))?;
    let (release, commit) = rustc_version_in(&bytes).ok_or_else(|| {
        ArchiveError::Identity(format!(
            "{}: no rustc version string found in it; import the official dist tarball instead",
            lib.join(&driver).display()
        ))
    })?;
    let rustlib = sysroot.join("lib/rustlib");
    let triples: Vec<String> = fs
        .read_dir(&rustlib)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|n| n.into_string().ok())
        .filter(|t| fs.read_dir(&rustlib.join(t).join("lib")).is_ok())
        .collect();
    let with_bin: Vec<&String> = triples
        .iter()
        .filter(|t| fs.read_dir(&rustlib.join(t).join("bin")).is_ok())
        .collect();
    let host = match (triples.as_slice(), with_bin.as_slice()) {
        ([one], _) => one.clone(),
        (_, [one]) => (*one).clone(),
        _ => {
            return Err(ArchiveError::Identity(format!(
                "{}: cannot tell rustc's host among the targets in {} ({}); import the official dist tarball instead",
                entry.display(),
                rustlib.display(),
                triples.join(", ")
            )));
        }
    };
    let identity = Identity {
        family: Family::Rustc,
        version: release,
        commit,
        host: host.clone(),
        target: host,
    };
    Ok(family::rustc_from_sysroot(fs, &sysroot, identity, opts)?)
}

/// `("1.95.0", Some(full hash))` from the bytes of `librustc_driver`: the
/// `rustc -V` string `1.95.0 (59807616e 2026-04-14)` is compiled in, and
/// the full hash appears in its `/rustc/<hash>/` source paths.
pub(super) fn rustc_version_in(bytes: &[u8]) -> Option<(String, Option<String>)> {
    let is_hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
    let mut from = 0;
    while let Some(i) = find(&bytes[from..], b" (").map(|i| i + from) {
        from = i + 2;
        // ` (` + 9 hex + ` ` + YYYY-MM-DD + `)`
        let tail = bytes.get(i + 2..i + 2 + 9 + 1 + 10 + 1)?;
        let date_ok = tail[10..20].iter().enumerate().all(|(k, c)| {
            if k == 4 || k == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
        if !(tail[..9].iter().all(is_hex) && tail[9] == b' ' && date_ok && tail[20] == b')') {
            continue;
        }
        let start = bytes[..i]
            .iter()
            .rposition(|c| !(c.is_ascii_alphanumeric() || *c == b'.' || *c == b'-'))
            .map_or(0, |p| p + 1);
        // The version glued to whatever string precedes it in .rodata:
        // take from the first digit of `X.Y.Z`.
        let word = &bytes[start..i];
        let Some(d) = (0..word.len()).find(|&k| {
            word[k].is_ascii_digit()
                && (k == 0 || !(word[k - 1].is_ascii_digit() || word[k - 1] == b'.'))
                && is_release(&word[k..])
        }) else {
            continue;
        };
        let release = String::from_utf8_lossy(&word[d..]).into_owned();
        let short = &tail[..9];
        let mut commit = None;
        let mut f = 0;
        while let Some(j) = find(&bytes[f..], short).map(|j| j + f) {
            f = j + 1;
            let run = bytes[j..].iter().take(41).take_while(|c| is_hex(c)).count();
            if run == 40 && (j == 0 || !is_hex(&bytes[j - 1])) {
                commit = Some(String::from_utf8_lossy(&bytes[j..j + 40]).into_owned());
                break;
            }
        }
        return Some((release, commit));
    }
    None
}

/// `1.95.0`, `1.97.0-nightly`, `1.92.0-beta.3`.
fn is_release(w: &[u8]) -> bool {
    let s = String::from_utf8_lossy(w);
    let (num, pre) = s.split_once('-').unwrap_or((&s, ""));
    let parts: Vec<&str> = num.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        && pre.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// gcc's identity from `usr/lib/gcc/<triple>/<ver>/` (or `usr/libexec/…`).
fn gcc_identity(fs: &ArchiveFs, entry: &Path) -> Result<(Identity, String), ArchiveError> {
    let mut found = BTreeSet::new();
    for base in ["/usr/lib/gcc", "/usr/libexec/gcc", "/usr/lib64/gcc"] {
        for triple in names(fs, Path::new(base)) {
            for ver in names(fs, &Path::new(base).join(&triple)) {
                if ver.starts_with(|c: char| c.is_ascii_digit()) {
                    found.insert((triple.clone(), ver));
                }
            }
        }
    }
    let (triple, ver) = match found.len() {
        1 => found.into_iter().next().unwrap_or_default(),
        0 => {
            return Err(ArchiveError::Identity(format!(
                "{}: no usr/lib/gcc/<triple>/<version>/ in the archive, so gcc's version and target cannot be told; the archive must hold gcc's cc1 directory",
                entry.display()
            )));
        }
        _ => {
            return Err(ArchiveError::Identity(format!(
                "{}: several gcc installations in the archive ({}); pass an archive of one gcc",
                entry.display(),
                found
                    .iter()
                    .map(|(t, v)| format!("{t}/{v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    };
    // Debian names the directory after the major version only; the
    // driver holds the full one (`-dumpfullversion`) as a C string.
    let mut version = ver.clone();
    if !ver.contains('.')
        && let Ok(bytes) = fs.read(entry)
        && let Some(full) = bytes
            .split(|b| *b == 0)
            .filter_map(|s| std::str::from_utf8(s).ok())
            .find(|s| s.split_once('.').is_some_and(|(m, _)| m == ver) && is_release(s.as_bytes()))
    {
        version = full.to_string();
    }
    let note =
        format!("gcc {version} for {triple}, from the archive's usr/lib/gcc/{triple}/{ver}/");
    Ok((
        Identity {
            family: Family::Gcc,
            version,
            commit: None,
            host: triple.clone(),
            target: triple,
        },
        note,
    ))
}

/// clang's identity from its resource directory, `…/lib/clang/<ver>/`.
fn clang_identity(fs: &ArchiveFs, opts: &ProbeOptions) -> Result<(Identity, String), ArchiveError> {
    let mut versions = BTreeSet::new();
    let mut triples = BTreeSet::new();
    for (path, node) in fs.paths() {
        if !matches!(node, Node::Dir { .. }) {
            continue;
        }
        let parent = path.parent();
        let in_clang = parent.and_then(|p| p.file_name()) == Some("clang".as_ref())
            && parent
                .and_then(Path::parent)
                .and_then(|p| p.file_name())
                .is_some_and(|n| n == "lib" || n == "lib64");
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if in_clang && name.starts_with(|c: char| c.is_ascii_digit()) {
            versions.insert(name.to_string());
            for t in names(fs, &path.join("lib")) {
                if t.matches('-').count() >= 2 {
                    triples.insert(t);
                }
            }
        }
    }
    let version = match versions.len() {
        1 => versions.into_iter().next().unwrap_or_default(),
        0 => {
            return Err(ArchiveError::Identity(
                "no lib/clang/<version>/ resource directory in the archive, so clang's version cannot be told; the archive must hold clang's resource dir".into(),
            ));
        }
        _ => {
            return Err(ArchiveError::Identity(format!(
                "several clang resource directories in the archive ({}); pass an archive of one clang",
                versions.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
    };
    if triples.is_empty() {
        for base in ["/usr/lib/gcc", "/usr/lib64/gcc"] {
            triples.extend(names(fs, Path::new(base)));
        }
    }
    let triple = match (triples.len(), opts.targets.first()) {
        (_, Some(t)) => t.clone(),
        (1, None) => triples.into_iter().next().unwrap_or_default(),
        _ => {
            return Err(ArchiveError::Identity(format!(
                "cannot tell clang {version}'s target triple from the archive; pass --target <triple>"
            )));
        }
    };
    let note = format!("clang {version} for {triple}, from the archive's resource directory");
    Ok((
        Identity {
            family: Family::Clang,
            version,
            commit: None,
            host: triple.clone(),
            target: triple,
        },
        note,
    ))
}

/// Sorted names in the directory at `dir` (none if it is not one).
fn names(fs: &ArchiveFs, dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs
        .read_dir(dir)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|n| n.into_string().ok())
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiler_names_give_their_family() {
        let f = |n: &str| family_of_name(n);
        assert_eq!(f("gcc"), Some(Family::Gcc));
        assert_eq!(f("x86_64-linux-gnu-gcc-12"), Some(Family::Gcc));
        assert_eq!(f("g++-12"), Some(Family::Gcc));
        assert_eq!(f("clang++-14"), Some(Family::Clang));
        assert_eq!(f("clang"), Some(Family::Clang));
        assert_eq!(f("rustc"), Some(Family::Rustc));
        assert_eq!(f("gcc-ar-12"), None);
        assert_eq!(f("clang-tidy"), None);
        assert_eq!(f("rustdoc"), None);
    }

    #[test]
    fn rustc_version_is_found_among_other_strings() {
        let blob = b"xx/rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library/a.rs\0indirect_branch_cs_prefix1.95.0 (59807616e 2026-04-14)target-abi";
        let (release, commit) = rustc_version_in(blob).unwrap();
        assert_eq!(release, "1.95.0");
        assert_eq!(
            commit.as_deref(),
            Some("59807616e1fa2540724bfbac14d7976d7e4a3860")
        );
        let nightly = b"abc1.97.0-nightly (0123456ab 2026-05-01)";
        assert_eq!(
            rustc_version_in(nightly),
            Some(("1.97.0-nightly".to_string(), None))
        );
        assert_eq!(rustc_version_in(b"no version (here 2026)"), None);
    }
}
