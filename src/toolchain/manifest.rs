//! The manifest: what a toolchain tree is and how to run it.
//!
//! Serialized as JSON next to the tree (in the local cache, in the server's
//! CAS through the registry). Paths in it are tree paths: relative to the
//! tree's root, which mirrors the source's absolute paths (`usr/bin/gcc`).
//! Pure data; building one is `bundle`'s job.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::family::Identity;
use crate::cas::Digest;

/// Bumped when the manifest's meaning changes; older ones are rebuilt.
pub const SCHEMA: u32 = 2;

/// A toolchain's description, stored beside its tree. Fields added later
/// are optional and ignored by readers that predate them (a registry is
/// shared by clients of several versions); [`SCHEMA`] changes when a
/// field's meaning does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema: u32,
    /// `family-version-arch-os`, e.g. `rustc-1.91.0-x86_64-linux`.
    pub name: String,
    pub identity: Identity,
    /// Where the toolchain's binaries run, from their headers: the
    /// execution platform of every action that uses this tree.
    pub host: HostDesc,
    /// The compiler, as a tree path (the path it was given by, symlinks
    /// kept: `usr/bin/gcc`, not `usr/bin/x86_64-linux-gnu-gcc-12`).
    pub entry: String,
    /// Programs the compiler runs (cc1, as, rust-lld), as tree paths.
    pub programs: Vec<String>,
    /// Directories to put on `PATH` so the compiler finds its helpers.
    pub path_dirs: Vec<String>,
    /// Directories holding the bundled shared libraries, for a run that
    /// does not chroot into the tree (`LD_LIBRARY_PATH`, relative).
    pub library_path: Vec<String>,
    /// The ELF loader the binaries name (`lib64/ld-linux-x86-64.so.2`).
    pub interpreter: Option<String>,
    /// Environment the compiler needs remotely.
    pub env: BTreeMap<String, String>,
    /// Targets whose libraries are in the tree.
    pub targets: Vec<String>,
    /// The sysroot packaged with it, as a tree path.
    pub sysroot: Option<String>,
    /// Highest `GLIBC_x.y` any file needs: workers must have at least this
    /// when they do not chroot into the tree.
    pub min_glibc: Option<String>,
    /// Root digest of the tree (`hash/size`).
    pub root: Digest,
    /// Bytes in regular files.
    pub size: u64,
    pub files: u64,
    pub symlinks: u64,
    /// Libraries the OS provides (macOS shared cache): not in the tree.
    pub os_provided: Vec<String>,
    /// The same toolchain made to run from a plain directory
    /// (`relocate`), as published beside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relocated: Option<RelocatedTree>,
}

/// A published relocated toolchain, and what a client that cannot run
/// the compiler needs to know to use it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelocatedTree {
    /// Root digest of its tree.
    pub root: Digest,
    /// gcc's exec prefix (`/usr/lib/gcc/`), for `GCC_EXEC_PREFIX`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcc_exec_prefix: Option<String>,
    /// zig's library directory, as a tree path, for `ZIG_LIB_DIR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zig_lib_dir: Option<String>,
    /// Its loader and library directories, where they differ from the
    /// toolchain's: a static toolchain (zig) runs its launcher's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub library_path: Vec<String>,
}

/// A binary's platform, in target-lexicon's names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostDesc {
    /// `x86_64`, `aarch64`, …
    pub arch: String,
    /// `linux`, `darwin`, …
    pub os: String,
}

impl HostDesc {
    /// A target triple (`aarch64-apple-darwin`) as manifests name hosts.
    pub fn from_triple(triple: &str) -> Result<HostDesc, String> {
        let t = crate::platform::parse_triple(triple).map_err(|e| e.to_string())?;
        Ok(HostDesc {
            arch: t.architecture.to_string(),
            os: t.operating_system.to_string(),
        })
    }
}

impl std::fmt::Display for HostDesc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.arch, self.os)
    }
}

impl Manifest {
    /// The conventional name of a toolchain.
    pub fn name_for(identity: &Identity, host: &HostDesc) -> String {
        format!("{}-{}-{}", identity.family, identity.version, host)
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("a manifest always serializes");
        v.push(b'\n');
        v
    }

    pub fn from_json(bytes: &[u8]) -> Result<Manifest, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The command line prefix and environment that run the compiler from
    /// a working directory `cwd` (a tree path): the entry as a path
    /// relative to `cwd`, so the same argv works when the worker chroots
    /// into the input root and when it runs in a plain directory; `PATH`
    /// and `LD_LIBRARY_PATH` likewise relative.
    pub fn invocation(&self, cwd: &str) -> (String, BTreeMap<String, String>) {
        let up = up_from(cwd);
        let rel = |p: &str| {
            let s = format!("{up}{p}");
            if s.is_empty() { ".".to_string() } else { s }
        };
        let mut env = self.env.clone();
        if !self.path_dirs.is_empty() {
            let dirs: Vec<String> = self.path_dirs.iter().map(|d| rel(d)).collect();
            env.insert("PATH".into(), dirs.join(":"));
        }
        if !self.library_path.is_empty() {
            let dirs: Vec<String> = self.library_path.iter().map(|d| rel(d)).collect();
            env.insert("LD_LIBRARY_PATH".into(), dirs.join(":"));
        }
        let mut argv0 = rel(&self.entry);
        if !argv0.contains('/') {
            argv0 = format!("./{argv0}");
        }
        (argv0, env)
    }
}

/// `../` once per component of `cwd`.
fn up_from(cwd: &str) -> String {
    cwd.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(|_| "../")
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A gcc manifest, for tests here and elsewhere.
    pub(crate) fn sample() -> Manifest {
        Manifest {
            schema: SCHEMA,
            name: "gcc-12.2.0-x86_64-linux".into(),
            identity: Identity {
                family: super::super::family::Family::Gcc,
                version: "12.2.0".into(),
                commit: None,
                host: "x86_64-linux-gnu".into(),
                target: "x86_64-linux-gnu".into(),
            },
            host: HostDesc {
                arch: "x86_64".into(),
                os: "linux".into(),
            },
            entry: "usr/bin/gcc".into(),
            programs: vec![],
            path_dirs: vec!["usr/bin".into()],
            library_path: vec!["lib/x86_64-linux-gnu".into()],
            interpreter: Some("lib64/ld-linux-x86-64.so.2".into()),
            env: BTreeMap::new(),
            targets: vec![],
            sysroot: None,
            min_glibc: Some("2.34".into()),
            root: Digest::EMPTY,
            size: 0,
            files: 0,
            symlinks: 0,
            os_provided: vec![],
            relocated: None,
        }
    }

    #[test]
    fn invocation_is_relative_to_the_working_directory() {
        let m = sample();
        let (argv0, env) = m.invocation("home/u/proj");
        assert_eq!(argv0, "../../../usr/bin/gcc");
        assert_eq!(env["PATH"], "../../../usr/bin");
        assert_eq!(env["LD_LIBRARY_PATH"], "../../../lib/x86_64-linux-gnu");
        let (argv0, env) = m.invocation("");
        assert_eq!(argv0, "usr/bin/gcc");
        assert_eq!(env["PATH"], "usr/bin");
    }

    #[test]
    fn json_round_trips_and_a_newer_publishers_fields_are_ignored() {
        let m = sample();
        let back = Manifest::from_json(&m.to_json()).unwrap();
        assert_eq!(back, m);
        let mut v: serde_json::Value = serde_json::from_slice(&m.to_json()).unwrap();
        v["surprise"] = 1.into();
        assert_eq!(Manifest::from_json(v.to_string().as_bytes()).unwrap(), m);
        v["host"]["surprise"] = 1.into();
        assert!(Manifest::from_json(v.to_string().as_bytes()).is_err());
    }

    #[test]
    fn triples_name_hosts_as_manifests_do() {
        assert_eq!(
            HostDesc::from_triple("x86_64-unknown-linux-gnu").unwrap(),
            HostDesc {
                arch: "x86_64".into(),
                os: "linux".into()
            }
        );
        assert_eq!(
            HostDesc::from_triple("aarch64-apple-darwin").unwrap().os,
            "darwin"
        );
        assert!(HostDesc::from_triple("not-a-triple-at-all-x").is_err());
    }
}
