//! The REAPI lexicon table (`platforms/lexicon.toml`, compiled in) and the
//! list of known triples (`platforms/triples.txt`).
//!
//! The data is parsed once; a broken built-in file is a bug caught by the
//! unit tests, so parsing it panics rather than returning an error.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;
use target_lexicon::OperatingSystem;

const LEXICON: &str = include_str!("../../platforms/lexicon.toml");
const TRIPLES: &str = include_str!("../../platforms/triples.txt");

/// target-lexicon names → standard values.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Lexicon {
    pub isa: BTreeMap<String, String>,
    pub os_family: BTreeMap<String, String>,
}

pub(crate) fn parse(text: &str) -> Result<Lexicon, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

pub(crate) fn get() -> &'static Lexicon {
    static LEX: OnceLock<Lexicon> = OnceLock::new();
    LEX.get_or_init(|| parse(LEXICON).expect("platforms/lexicon.toml is valid (unit-tested)"))
}

/// The lexicon key of an OS: its target-lexicon name without the Darwin
/// deployment version (`darwin13.0.0` → `darwin`), which does not change
/// what the OS family is.
pub(crate) fn os_name(os: &OperatingSystem) -> String {
    let name = os.to_string();
    if os.is_like_darwin() {
        name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.')
            .to_string()
    } else {
        name
    }
}

/// Architecture names the lexicon maps, with their ISA.
pub fn lexicon_architectures() -> impl Iterator<Item = (&'static str, &'static str)> {
    get().isa.iter().map(|(k, v)| (k.as_str(), v.as_str()))
}

/// Operating-system names the lexicon maps, with their OSFamily.
pub fn lexicon_systems() -> impl Iterator<Item = (&'static str, &'static str)> {
    get()
        .os_family
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
}

/// The triples of `platforms/triples.txt` (rustc's and target-lexicon's).
pub fn known_triples() -> impl Iterator<Item = &'static str> {
    TRIPLES
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
}
