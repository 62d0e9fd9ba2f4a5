//! Rust dist tarballs (static.rust-lang.org): merging their components
//! into one sysroot, and rustc's identity from `version`,
//! `git-commit-hash` and the tarball's name.
//!
//! A dist tarball is `<pkg>-<ver>-<triple>/` holding `components` (one
//! component directory name a line), `version` ("1.91.0 (f8297e351
//! 2025-10-28)"), `git-commit-hash`, `install.sh`, and one directory per
//! component whose contents (minus its `manifest.in`) install under the
//! prefix. Installing is only copying, so merging is too: each component's
//! files go to the same sysroot, which the family probe then reads
//! (`rustc_from_sysroot`) without running anything.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::fs::{ArchiveFs, Node, normalize};
use super::read::Raw;
use super::{ArchiveError, DIST_ROOT, RustDist, insert};
use crate::toolchain::family::{self, Contents, Family, Identity, ProbeOptions};

/// What one tarball says about itself.
#[derive(Debug)]
struct Meta {
    release: String,
    commit: Option<String>,
    components: Vec<String>,
    /// The triple in the top directory's name (host for `rustc`, target
    /// for `rust-std`).
    triple: Option<String>,
}

fn text(raw: &Raw, top: &Path, name: &str) -> Option<String> {
    raw.file(&format!("{}/{name}", top.display()))
        .map(|b| String::from_utf8_lossy(b).trim().to_string())
}

fn meta_of(raw: &Raw, top: &Path) -> Result<Meta, ArchiveError> {
    let source = raw.source.display();
    let version = text(raw, top, "version").ok_or_else(|| {
        ArchiveError::Layout(format!(
            "{source}: a Rust dist tarball without {}/version; pass the tarball as downloaded from static.rust-lang.org",
            top.display()
        ))
    })?;
    let release = version
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    let components = text(raw, top, "components")
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    Ok(Meta {
        release,
        commit: text(raw, top, "git-commit-hash").filter(|c| !c.is_empty()),
        components,
        triple: triple_of_top(&top.to_string_lossy()),
    })
}

/// The triple at the end of a dist directory name:
/// `rust-1.91.0-x86_64-unknown-linux-gnu`, `rust-std-nightly-wasm32-wasip1`,
/// `rustc-1.92.0-beta.3-aarch64-apple-darwin`.
pub(super) fn triple_of_top(name: &str) -> Option<String> {
    let tokens: Vec<&str> = name.split('-').collect();
    let channel = ["nightly", "beta", "stable", "dev"];
    let v = tokens
        .iter()
        .position(|t| t.starts_with(|c: char| c.is_ascii_digit()) || channel.contains(t))?;
    let mut rest = &tokens[v + 1..];
    // The pre-release part of a version (`1.92.0-beta.3`).
    if rest
        .first()
        .is_some_and(|t| channel.iter().any(|c| t.starts_with(c)))
    {
        rest = &rest[1..];
    }
    (!rest.is_empty()).then(|| rest.join("-"))
}

/// Merges the components of every dist tarball into one sysroot in `fs`.
pub(super) fn merge(
    fs: &mut ArchiveFs,
    archives: Vec<(Raw, PathBuf)>,
) -> Result<RustDist, ArchiveError> {
    let metas = archives
        .iter()
        .map(|(raw, top)| meta_of(raw, top))
        .collect::<Result<Vec<_>, _>>()?;
    check_one_release(&archives, &metas)?;
    let first = &metas[0];
    let host = rustc_host(&archives, &metas)?;
    let sysroot = PathBuf::from(DIST_ROOT).join(format!("rust-{}-{host}", first.release));
    let (release, commit) = (first.release.clone(), first.commit.clone());
    let mut components = BTreeSet::new();
    for ((raw, top), meta) in archives.into_iter().zip(metas) {
        add_components(fs, raw, &top, &meta, &sysroot)?;
        components.extend(meta.components);
    }
    let targets = components
        .iter()
        .filter_map(|c| c.strip_prefix("rust-std-"))
        .map(String::from)
        .collect();
    Ok(RustDist {
        sysroot,
        release,
        commit,
        host,
        components: components.into_iter().collect(),
        targets,
    })
}

/// Refuses tarballs of different releases (or commits).
fn check_one_release(archives: &[(Raw, PathBuf)], metas: &[Meta]) -> Result<(), ArchiveError> {
    let first = &metas[0];
    for (m, (raw, _)) in metas.iter().zip(archives) {
        if m.release != first.release || m.commit != first.commit {
            return Err(ArchiveError::Layout(format!(
                "{} is rust {} ({}) but {} is rust {} ({}); pass tarballs of one release",
                archives[0].0.source.display(),
                first.release,
                first.commit.as_deref().unwrap_or("no commit"),
                raw.source.display(),
                m.release,
                m.commit.as_deref().unwrap_or("no commit"),
            )));
        }
    }
    Ok(())
}

/// The one host the tarballs hold a rustc for.
fn rustc_host(archives: &[(Raw, PathBuf)], metas: &[Meta]) -> Result<String, ArchiveError> {
    let hosts: BTreeSet<&str> = metas
        .iter()
        .filter(|m| m.components.iter().any(|c| c == "rustc"))
        .filter_map(|m| m.triple.as_deref())
        .collect();
    let names = || {
        archives
            .iter()
            .map(|(r, _)| r.source.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let release = &metas[0].release;
    match hosts.len() {
        1 => Ok(hosts.into_iter().next().unwrap_or_default().to_string()),
        0 => Err(ArchiveError::Layout(format!(
            "no rustc component among {}: add rust-{release}-<host>.tar.gz or rustc-{release}-<host>.tar.gz",
            names(),
        ))),
        _ => Err(ArchiveError::Layout(format!(
            "rustc for several hosts ({}) among {}: pass one host's rustc",
            hosts.into_iter().collect::<Vec<_>>().join(", "),
            names()
        ))),
    }
}

/// Puts the files of one tarball's listed components (under `top`) into
/// `sysroot`.
fn add_components(
    fs: &mut ArchiveFs,
    raw: Raw,
    top: &Path,
    meta: &Meta,
    sysroot: &Path,
) -> Result<(), ArchiveError> {
    let listed: BTreeSet<&str> = meta.components.iter().map(String::as_str).collect();
    let source = raw.source.clone();
    for (rel, node) in raw.entries {
        let Ok(inner) = rel.strip_prefix(top) else {
            continue;
        };
        let mut parts = inner.iter();
        let Some(comp) = parts.next().and_then(|c| c.to_str()) else {
            continue;
        };
        let rest: PathBuf = parts.collect();
        // Top-level files (install.sh, version) and the installer's
        // own file lists are not part of the sysroot.
        if !listed.contains(comp) || rest.as_os_str().is_empty() || rest == Path::new("manifest.in")
        {
            continue;
        }
        let node = match node {
            Node::Dir { .. } => Node::dir(),
            n => n,
        };
        insert(fs, &normalize(&sysroot.join(rest)), node, &source)?;
    }
    Ok(())
}

/// rustc from the merged sysroot.
pub(super) fn contents(
    fs: &ArchiveFs,
    dist: &RustDist,
    entry: Option<&Path>,
    opts: &ProbeOptions,
) -> Result<Contents, ArchiveError> {
    let rustc = dist.sysroot.join("bin/rustc");
    if let Some(e) = entry {
        let named = [normalize(e), normalize(&dist.sysroot.join(e))];
        if !named.contains(&rustc) {
            return Err(ArchiveError::Entry(format!(
                "--entry {}: these Rust dist tarballs hold one compiler, {}; drop --entry or name bin/rustc",
                e.display(),
                rustc.display()
            )));
        }
    }
    let wanted = if opts.targets.is_empty() {
        vec![dist.host.clone()]
    } else {
        opts.targets.clone()
    };
    for t in &wanted {
        if !dist.targets.contains(t) {
            return Err(ArchiveError::Layout(format!(
                "no standard library for {t} in the archives (they hold: {}); add rust-std-{}-{t}.tar.gz",
                if dist.targets.is_empty() {
                    "none".to_string()
                } else {
                    dist.targets.join(", ")
                },
                dist.release
            )));
        }
    }
    let identity = Identity {
        family: Family::Rustc,
        version: dist.release.clone(),
        commit: dist.commit.clone(),
        host: dist.host.clone(),
        target: dist.host.clone(),
    };
    let mut contents = family::rustc_from_sysroot(fs, &dist.sysroot, identity, opts)?;
    contents.notes.insert(
        0,
        format!(
            "rust {} ({}) for {} from Rust dist tarballs, components {}",
            dist.release,
            dist.commit.as_deref().unwrap_or("no commit hash"),
            dist.host,
            dist.components.join(", ")
        ),
    );
    Ok(contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triples_come_off_dist_directory_names() {
        let t = |n: &str| triple_of_top(n);
        assert_eq!(
            t("rust-1.91.0-x86_64-unknown-linux-gnu").as_deref(),
            Some("x86_64-unknown-linux-gnu")
        );
        assert_eq!(
            t("rust-std-1.91.0-aarch64-apple-darwin").as_deref(),
            Some("aarch64-apple-darwin")
        );
        assert_eq!(
            t("rustc-nightly-wasm32-wasip1").as_deref(),
            Some("wasm32-wasip1")
        );
        assert_eq!(
            t("rustc-1.92.0-beta.3-x86_64-pc-windows-msvc").as_deref(),
            Some("x86_64-pc-windows-msvc")
        );
        assert_eq!(t("rust-1.91.0"), None);
        assert_eq!(t("toolchain"), None);
    }
}
