//! Execution platforms: which REAPI platform properties an action carries.
//!
//! The execution platform is the *host* of the tool that will run on the
//! worker (read from its binary by the toolchain inspector, or this machine
//! for `recast run`), never the `--target` it compiles for: a cross
//! compiler for aarch64 that runs on x86_64 Linux needs an x86_64 Linux
//! worker, and `--target` only picks libraries inside its toolchain.
//!
//! Two steps, both data-driven from `platforms/` (compiled in):
//! [`standard`] maps target-lexicon's OS and architecture to the REAPI
//! lexicon (`OSFamily`, `ISA`, from `lexicon.toml`); a [`Profile`] then
//! respells them for one server convention and adds the user's properties.
//! [`advise`] turns a server's refusal of a platform into what to do.
//!
//! Pure: no tokio, tonic or processes; only [`Profile::load`] reads a file.
//! Putting the result on `Command.platform` / `Action.platform` is
//! `action`'s job.

mod advice;
mod lexicon;
mod profile;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use target_lexicon::{Architecture, OperatingSystem, Triple};

pub use advice::{Advice, Rejection, advise};
pub use lexicon::{known_triples, lexicon_architectures, lexicon_systems};
pub use profile::{BUILTIN, DEFAULT_PROFILE, Profile};

/// The standard key for the operating system family.
pub const OS_FAMILY: &str = "OSFamily";
/// The standard key for the instruction set architecture.
pub const ISA: &str = "ISA";

/// Platform properties, sorted by name then value, without duplicates: the
/// order REAPI requires so that equal platforms hash equally.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Platform(Vec<(String, String)>);

impl Platform {
    pub fn new(mut pairs: Vec<(String, String)>) -> Platform {
        pairs.sort();
        pairs.dedup();
        Platform(pairs)
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    pub fn into_pairs(self) -> Vec<(String, String)> {
        self.0
    }

    /// Every value of `key`.
    pub fn values<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Platform {
    /// `ISA=x86-64 OSFamily=linux`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (k, v) in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

/// Why no platform could be made; each variant names what was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlatformError {
    #[error(
        "{triple:?} is not a target triple recast can read ({reason}); write it as rustc does, e.g. x86_64-unknown-linux-gnu"
    )]
    BadTriple { triple: String, reason: String },

    #[error("architecture {arch}{} has no ISA in the REAPI lexicon (platforms/lexicon.toml); name the worker's properties yourself with --platform ISA=VALUE", in_triple(.triple))]
    UnknownArchitecture {
        arch: String,
        triple: Option<String>,
    },

    #[error("operating system {os}{} has no OSFamily in the REAPI lexicon (platforms/lexicon.toml); name the worker's properties yourself with --platform OSFamily=VALUE", in_triple(.triple))]
    UnknownOs { os: String, triple: Option<String> },

    #[error("no platform profile named {name:?}; built in: {}; or give the path of a .toml profile", BUILTIN.join(", "))]
    UnknownProfile { name: String },

    #[error("platform profile {source_name}: {message}")]
    BadProfile {
        source_name: String,
        message: String,
    },

    #[error("cannot read platform profile {}: {message}", path.display())]
    ProfileIo { path: PathBuf, message: String },

    #[error(
        "profile {profile} has no spelling for {key}={value}; choose another profile, or give the property yourself with --platform"
    )]
    UnmappedValue {
        profile: String,
        key: String,
        value: String,
    },

    #[error(
        "profile {profile} needs the property {key} ({hint}); pass --platform {key}=VALUE, set RECAST_PLATFORM, or put it under [platform.properties] in config.toml"
    )]
    MissingRequired {
        profile: String,
        key: String,
        hint: String,
    },
}

fn in_triple(triple: &Option<String>) -> String {
    triple
        .as_ref()
        .map(|t| format!(" (of {t})"))
        .unwrap_or_default()
}

impl PlatformError {
    fn in_triple(self, triple: &str) -> PlatformError {
        let t = Some(triple.to_string());
        match self {
            PlatformError::UnknownArchitecture { arch, .. } => {
                PlatformError::UnknownArchitecture { arch, triple: t }
            }
            PlatformError::UnknownOs { os, .. } => PlatformError::UnknownOs { os, triple: t },
            other => other,
        }
    }
}

/// The standard properties (`OSFamily`, `ISA`) of an execution platform.
///
/// `os` and `arch` describe where the tool *runs* (its binary's host), not
/// the target it compiles for. An OS or architecture without a lexicon
/// value is an error naming it.
pub fn standard(os: &OperatingSystem, arch: &Architecture) -> Result<Platform, PlatformError> {
    standard_given(os, arch, &[])
}

/// As [`standard`], except that a key the user gives in `extras` need not
/// be in the lexicon: the user's value will replace it anyway (see
/// [`Profile::apply`]), which is how an s390x host gets `ISA=…` at all.
pub fn standard_given(
    os: &OperatingSystem,
    arch: &Architecture,
    extras: &[(String, String)],
) -> Result<Platform, PlatformError> {
    let given = |key: &str| extras.iter().any(|(k, _)| k == key);
    let lex = lexicon::get();
    let mut pairs = Vec::new();
    let os_name = lexicon::os_name(os);
    match lex.os_family.get(&os_name) {
        Some(family) => pairs.push((OS_FAMILY.to_string(), family.clone())),
        None if given(OS_FAMILY) => {}
        None => {
            return Err(PlatformError::UnknownOs {
                os: os_name,
                triple: None,
            });
        }
    }
    let arch_name = arch.to_string();
    match lex.isa.get(&arch_name) {
        Some(isa) => pairs.push((ISA.to_string(), isa.clone())),
        None if given(ISA) => {}
        None => {
            return Err(PlatformError::UnknownArchitecture {
                arch: arch_name,
                triple: None,
            });
        }
    }
    Ok(Platform::new(pairs))
}

/// The platform of one action, with what it was made from (for advice).
#[derive(Clone, Debug)]
pub struct Resolved {
    pub profile: Profile,
    /// `OSFamily`/`ISA` of the execution platform.
    pub standard: Platform,
    /// The user's properties (flags > env > config file).
    pub extras: Vec<(String, String)>,
    /// What goes on `Command.platform` and `Action.platform`.
    pub platform: Platform,
}

impl Resolved {
    /// Advice when a server's `message` refuses this platform.
    pub fn advise(&self, message: &str) -> Option<Advice> {
        advise(message, &self.standard, &self.extras, &self.profile)
    }
}

/// The one platform resolution: the platform an action sends when its
/// tool runs `os` on `arch`, spelled by the profile `profile` (a built-in
/// name or a file) with the user's `extras` (already resolved: flag >
/// env > config file).
pub fn resolve(
    profile: &str,
    extras: &[(String, String)],
    os: &OperatingSystem,
    arch: &Architecture,
) -> Result<Resolved, PlatformError> {
    let profile = Profile::resolve(profile)?;
    let standard = standard_given(os, arch, extras)?;
    let platform = profile.apply(&standard, extras)?;
    Ok(Resolved {
        profile,
        standard,
        extras: extras.to_vec(),
        platform,
    })
}

/// [`resolve`] for an OS and architecture named as target-lexicon names
/// them (a toolchain manifest's host); a name it does not know is an
/// error with the same advice as one missing from the lexicon.
pub fn resolve_named(
    profile: &str,
    extras: &[(String, String)],
    os: &str,
    arch: &str,
) -> Result<Resolved, PlatformError> {
    let os_parsed: OperatingSystem = os.parse().map_err(|()| PlatformError::UnknownOs {
        os: os.to_string(),
        triple: None,
    })?;
    let arch_parsed: Architecture =
        arch.parse()
            .map_err(|()| PlatformError::UnknownArchitecture {
                arch: arch.to_string(),
                triple: None,
            })?;
    resolve(profile, extras, &os_parsed, &arch_parsed)
}

/// Parses a target triple (`x86_64-unknown-linux-gnu`, `aarch64-apple-darwin`)
/// as target-lexicon does.
pub fn parse_triple(triple: &str) -> Result<Triple, PlatformError> {
    Triple::from_str(triple).map_err(|e| PlatformError::BadTriple {
        triple: triple.to_string(),
        reason: e.to_string(),
    })
}

/// The standard properties of the platform a triple names, as the host of
/// a tool (see [`standard`]). Errors name the triple.
pub fn from_triple(triple: &str) -> Result<Platform, PlatformError> {
    let t = parse_triple(triple)?;
    standard(&t.operating_system, &t.architecture).map_err(|e| e.in_triple(triple))
}

/// The standard properties of this machine (the platform recast was built for).
pub fn host() -> Result<Platform, PlatformError> {
    let h = target_lexicon::HOST;
    standard(&h.operating_system, &h.architecture).map_err(|e| e.in_triple(&h.to_string()))
}

/// Parses `KEY=VALUE` (the key non-empty; the value may contain `=`).
pub fn parse_property(s: &str) -> Option<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Some((k.trim().to_string(), v.to_string())),
        _ => None,
    }
}
