//! Server profiles: how one server convention spells a platform.
//!
//! A profile is TOML data (schema documented at the top of
//! `platforms/standard.toml`): drop standard keys, map their values, rename
//! them, add fixed properties, and declare keys the user must give. The
//! built-in profiles are compiled in; user files use the same schema.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Platform, PlatformError};

/// The profile used when none is configured.
pub const DEFAULT_PROFILE: &str = "standard";

/// Built-in profile names, in the order `recast platform list` shows them
/// (and advice prefers them).
pub const BUILTIN: &[&str] = &[
    "standard",
    "buildgrid",
    "buildbarn",
    "nativelink",
    "buildbuddy",
    "google-rbe",
    "engflow",
];

fn builtin_text(name: &str) -> Option<&'static str> {
    Some(match name {
        "standard" => include_str!("../../platforms/standard.toml"),
        "buildgrid" => include_str!("../../platforms/buildgrid.toml"),
        "buildbarn" => include_str!("../../platforms/buildbarn.toml"),
        "nativelink" => include_str!("../../platforms/nativelink.toml"),
        "buildbuddy" => include_str!("../../platforms/buildbuddy.toml"),
        "google-rbe" => include_str!("../../platforms/google-rbe.toml"),
        "engflow" => include_str!("../../platforms/engflow.toml"),
        _ => return None,
    })
}

/// The file format.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct Spec {
    description: String,
    #[serde(default)]
    notes: Option<String>,
    #[serde(default)]
    drop: BTreeSet<String>,
    #[serde(default)]
    values: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    rename: BTreeMap<String, String>,
    #[serde(default)]
    add: BTreeMap<String, String>,
    #[serde(default)]
    required: BTreeMap<String, String>,
}

/// One server convention.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// The built-in name, or the file's stem for a user profile.
    pub name: String,
    /// The file a user profile came from.
    pub path: Option<PathBuf>,
    spec: Spec,
}

impl Profile {
    /// Parses profile text; `name` names it in errors and listings.
    pub fn parse(name: &str, text: &str) -> Result<Profile, PlatformError> {
        let spec: Spec = toml::from_str(text).map_err(|e| PlatformError::BadProfile {
            source_name: name.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        Ok(Profile {
            name: name.to_string(),
            path: None,
            spec,
        })
    }

    /// A built-in profile by name.
    pub fn builtin(name: &str) -> Result<Profile, PlatformError> {
        let text = builtin_text(name).ok_or_else(|| PlatformError::UnknownProfile {
            name: name.to_string(),
        })?;
        Profile::parse(name, text)
    }

    /// Every built-in profile, in [`BUILTIN`] order.
    pub fn builtins() -> Vec<Profile> {
        BUILTIN
            .iter()
            .map(|n| Profile::builtin(n).expect("built-in profiles parse (unit-tested)"))
            .collect()
    }

    /// Reads a user profile file.
    pub fn load(path: &Path) -> Result<Profile, PlatformError> {
        let text = std::fs::read_to_string(path).map_err(|e| PlatformError::ProfileIo {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut p = Profile::parse(&path.display().to_string(), &text)?;
        p.name = path.file_stem().map_or_else(
            || path.display().to_string(),
            |s| s.to_string_lossy().into(),
        );
        p.path = Some(path.to_path_buf());
        Ok(p)
    }

    /// A built-in name, or a path (anything with a `/` or ending in `.toml`).
    pub fn resolve(name_or_path: &str) -> Result<Profile, PlatformError> {
        if name_or_path.contains('/') || name_or_path.ends_with(".toml") {
            Profile::load(Path::new(name_or_path))
        } else {
            Profile::builtin(name_or_path)
        }
    }

    pub fn description(&self) -> &str {
        &self.spec.description
    }

    /// What the server's own configuration must say, if anything.
    pub fn notes(&self) -> Option<&str> {
        self.spec.notes.as_deref()
    }

    /// Keys the user must give, with a hint each.
    pub fn required(&self) -> impl Iterator<Item = (&str, &str)> {
        self.spec
            .required
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether this profile adds `key` itself (not from the standard keys).
    pub fn adds(&self, key: &str) -> bool {
        self.spec.add.contains_key(key)
    }

    /// The platform for `standard` properties and the user's `extras`.
    ///
    /// A user key replaces every value the profile produced for it (so
    /// `--platform ISA=arm-a64` asks for arm, not for both); to add an
    /// extension value, give the base value too.
    pub fn apply(
        &self,
        standard: &Platform,
        extras: &[(String, String)],
    ) -> Result<Platform, PlatformError> {
        let out = self.respell(standard, extras)?;
        for (key, hint) in &self.spec.required {
            if !out.iter().any(|(k, _)| k == key) {
                return Err(PlatformError::MissingRequired {
                    profile: self.name.clone(),
                    key: key.clone(),
                    hint: hint.clone(),
                });
            }
        }
        Ok(Platform::new(out))
    }

    /// As [`Profile::apply`], without checking required keys: what this
    /// profile would send, for comparisons.
    pub(crate) fn respell(
        &self,
        standard: &Platform,
        extras: &[(String, String)],
    ) -> Result<Vec<(String, String)>, PlatformError> {
        let s = &self.spec;
        let mut out = Vec::new();
        for (key, value) in standard.pairs() {
            if s.drop.contains(key) {
                continue;
            }
            let value = match s.values.get(key) {
                Some(map) => map
                    .get(value)
                    .ok_or_else(|| PlatformError::UnmappedValue {
                        profile: self.name.clone(),
                        key: key.clone(),
                        value: value.clone(),
                    })?
                    .clone(),
                None => value.clone(),
            };
            let key = s.rename.get(key).unwrap_or(key).clone();
            out.push((key, value));
        }
        out.extend(s.add.iter().map(|(k, v)| (k.clone(), v.clone())));
        out.retain(|(k, _)| !extras.iter().any(|(ek, _)| ek == k));
        out.extend(extras.iter().cloned());
        Ok(out)
    }
}
