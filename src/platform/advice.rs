//! From a server's refusal of a platform to what the user should do.
//!
//! Servers refuse platforms in their own words: the embedded server says
//! `no worker matches platform property ISA=arm-a64 (workers offer
//! ISA=x86-64)`; BuildGrid says `Unregistered platform property [Pool=…].
//! Known properties are: [{'OSFamily', 'ISA'}]`. [`Rejection::parse`] reads
//! both; [`advise`] compares what each built-in profile would have sent
//! with what the server offers, and says which profile fits, or where the
//! refused property came from. Pure: callers pass the message and the
//! platform they sent.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::{Platform, Profile};

/// What a server said about a platform it refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rejection {
    /// The refused properties; the value when the server named it.
    pub refused: Vec<(String, Option<String>)>,
    /// What the workers offer for the refused keys (embedded server): each
    /// key with its values, empty when no worker has the key.
    pub offered: Option<BTreeMap<String, BTreeSet<String>>>,
    /// The keys the server accepts at all (BuildGrid).
    pub known_keys: Option<BTreeSet<String>>,
}

impl Rejection {
    /// Reads a refusal out of a status message; `None` when the message is
    /// not about the platform.
    pub fn parse(message: &str) -> Option<Rejection> {
        if let Some(r) = parse_no_worker(message) {
            return Some(r);
        }
        parse_unregistered(message)
    }
}

/// `no worker matches platform propert{y,ies} K=V[, K=V] (workers offer K=V, K=W; no K)`.
fn parse_no_worker(message: &str) -> Option<Rejection> {
    let at = message.find("no worker matches platform propert")?;
    let rest = &message[at..];
    let rest = rest
        .strip_prefix("no worker matches platform properties ")
        .or_else(|| rest.strip_prefix("no worker matches platform property "))?;
    let (asked, offered) = match rest.find(" (workers offer ") {
        Some(i) => (&rest[..i], Some(&rest[i + " (workers offer ".len()..])),
        None => (rest, None),
    };
    let refused = asked
        .split(", ")
        .filter_map(super::parse_property)
        .map(|(k, v)| (k, Some(v)))
        .collect::<Vec<_>>();
    if refused.is_empty() {
        return None;
    }
    let offered = offered.map(|o| {
        let o = o.rfind(')').map_or(o, |i| &o[..i]);
        let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for group in o.split("; ") {
            if let Some(key) = group.strip_prefix("no ") {
                map.entry(key.to_string()).or_default();
                continue;
            }
            for (k, v) in group.split(", ").filter_map(super::parse_property) {
                map.entry(k).or_default().insert(v);
            }
        }
        map
    });
    Some(Rejection {
        refused,
        offered,
        known_keys: None,
    })
}

/// BuildGrid: `Unregistered platform property [K=['v']]. Known properties
/// are: [{'OSFamily', 'ISA'}]`, or older `… [K]. …`, or just `Unregistered
/// platform property.`
fn parse_unregistered(message: &str) -> Option<Rejection> {
    let lower = message.to_ascii_lowercase();
    let at = lower.find("unregistered platform property")?;
    let rest = &message[at + "unregistered platform property".len()..];
    let mut refused = Vec::new();
    if let Some(inner) = rest.trim_start().strip_prefix('[') {
        let end = inner.find(['=', ']']).unwrap_or(inner.len());
        let key = inner[..end].trim();
        if !key.is_empty() {
            refused.push((key.to_string(), None));
        }
    }
    // Without a list, what BuildGrid registers by default.
    let known_keys = match message.find("Known properties are:") {
        Some(i) => message[i..]
            .split('\'')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect::<BTreeSet<_>>(),
        None => [super::OS_FAMILY, super::ISA]
            .map(str::to_string)
            .into_iter()
            .collect(),
    };
    Some(Rejection {
        refused,
        offered: None,
        known_keys: Some(known_keys),
    })
}

/// What to tell the user about a refused platform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advice {
    /// The refused properties as `K=V` (or `K`).
    pub refused: Vec<String>,
    /// A built-in profile that fits the server better, if one does.
    pub profile: Option<String>,
    /// What to do, most specific first.
    pub hints: Vec<String>,
}

impl fmt::Display for Advice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.refused.is_empty() {
            write!(f, "the server refused the platform")?;
        } else {
            write!(
                f,
                "the server refused platform property {}",
                self.refused.join(", ")
            )?;
        }
        for h in &self.hints {
            write!(f, "\n  - {h}")?;
        }
        Ok(())
    }
}

/// Advice for a server's refusal `message` of the platform made by
/// `profile` from `standard` and the user's `extras`; `None` when the
/// message is not a platform refusal.
pub fn advise(
    message: &str,
    standard: &Platform,
    extras: &[(String, String)],
    profile: &Profile,
) -> Option<Advice> {
    let rejection = Rejection::parse(message)?;
    let sent = profile.apply(standard, extras).ok();
    let refused_pairs = refused_pairs(&rejection, sent.as_ref());
    let refused: Vec<String> = refused_pairs
        .iter()
        .map(|(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => k.clone(),
        })
        .collect();

    let fitting = fitting_profile(&rejection, standard, extras, profile);
    let mut hints = Vec::new();
    if let Some((name, same)) = &fitting {
        let also = if same.is_empty() {
            String::new()
        } else {
            format!(" (same properties as {})", same.join(", "))
        };
        hints.push(format!(
            "this server spells platforms as profile `{name}` does{also}: retry with --platform-profile {name} (or RECAST_PLATFORM_PROFILE={name}, or profile = \"{name}\" under [platform] in config.toml)"
        ));
    }
    for (key, value) in &refused_pairs {
        hints.push(property_hint(
            key,
            value.as_deref(),
            &rejection,
            extras,
            profile,
        ));
    }
    hints.push(
        "`recast platform show --profile NAME` prints what each profile sends; `recast doctor` checks the server"
            .to_string(),
    );
    Some(Advice {
        refused,
        profile: fitting.map(|(n, _)| n),
        hints,
    })
}

/// The refused properties: as the server named them, or after a bare
/// "Unregistered platform property." the keys of `sent` the server does
/// not know by default.
fn refused_pairs(rejection: &Rejection, sent: Option<&Platform>) -> Vec<(String, Option<String>)> {
    let mut refused_pairs = rejection.refused.clone();
    if refused_pairs.is_empty()
        && let Some(sent) = sent
    {
        for (k, v) in sent.pairs() {
            if k != super::OS_FAMILY && k != super::ISA {
                refused_pairs.push((k.clone(), Some(v.clone())));
            }
        }
    }
    refused_pairs
}

/// What to do about one refused property `key` (=`value`): where it came
/// from (the user, the profile, its spelling, the tool's host), what the
/// workers offer instead, and how to change it.
fn property_hint(
    key: &str,
    value: Option<&str>,
    rejection: &Rejection,
    extras: &[(String, String)],
    profile: &Profile,
) -> String {
    let offered = rejection.offered.as_ref().and_then(|o| o.get(key));
    let offer_text = match offered {
        Some(vs) if !vs.is_empty() => Some(format!(
            "the workers offer {}",
            vs.iter()
                .map(|v| format!("{key}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Some(_) => Some(format!("no worker has {key}")),
        None => None,
    };
    let shown = match value {
        Some(v) => format!("{key}={v}"),
        None => key.to_string(),
    };
    let from_user = extras.iter().any(|(k, _)| k == key);
    let from_profile = profile.adds(key);
    let respelled = !from_user && !from_profile && key != super::OS_FAMILY && key != super::ISA;
    let mut hint = if from_user {
        format!(
            "{shown} is your own property (--platform, RECAST_PLATFORM or [platform.properties])"
        )
    } else if from_profile {
        format!("{shown} is added by profile `{}`", profile.name)
    } else if respelled {
        format!(
            "{shown} is how profile `{}` spells the standard properties",
            profile.name
        )
    } else {
        format!(
            "{shown} describes where the tool runs (the host of its binary; this machine for `recast run`)"
        )
    };
    if let Some(t) = &offer_text {
        hint.push_str(&format!("; {t}"));
    }
    match (offered, from_user || from_profile) {
        _ if respelled => hint.push_str(": this server does not use that spelling"),
        (Some(vs), true) if !vs.is_empty() => {
            let v = vs.iter().next().expect("not empty");
            hint.push_str(&format!(": pass --platform {key}={v}, or drop {key}"));
        }
        (_, true) => hint.push_str(&format!(": drop {key} or choose a profile without it")),
        (Some(_), false) => hint.push_str(
            ": run a toolchain built for the workers' platform, or use a server with such workers",
        ),
        (None, false) => {}
    }
    if rejection.known_keys.is_some() || rejection.offered.is_none() {
        hint.push_str(&format!(
            "; or register {key} on the server (BuildGrid: `property-keys` in the scheduler's config)"
        ));
    }
    hint
}

/// The first built-in profile other than `current` whose properties the
/// server would accept, judged from what the refusal reveals, and the
/// other profiles that send the same properties.
fn fitting_profile(
    rejection: &Rejection,
    standard: &Platform,
    extras: &[(String, String)],
    current: &Profile,
) -> Option<(String, Vec<String>)> {
    if rejection.offered.is_none() && rejection.known_keys.is_none() {
        return None;
    }
    let current_sends = current.respell(standard, extras).ok().map(Platform::new);
    let refused: Vec<&(String, Option<String>)> = rejection.refused.iter().collect();
    let fits = |sends: &Platform| -> bool {
        if let Some(known) = &rejection.known_keys
            && sends.pairs().iter().any(|(k, _)| !known.contains(k))
        {
            return false;
        }
        if let Some(offered) = &rejection.offered {
            for (k, v) in sends.pairs() {
                if offered.get(k).is_some_and(|vs| !vs.contains(v)) {
                    return false;
                }
            }
        }
        !refused.iter().any(|(k, v)| {
            sends
                .pairs()
                .iter()
                .any(|(sk, sv)| sk == k && v.as_ref().is_none_or(|v| v == sv))
        })
    };
    let mut found: Option<(String, Platform)> = None;
    let mut same = Vec::new();
    for p in Profile::builtins() {
        if p.name == current.name {
            continue;
        }
        let Ok(sends) = p.respell(standard, extras).map(Platform::new) else {
            continue;
        };
        if Some(&sends) == current_sends.as_ref() {
            continue;
        }
        match &found {
            None if fits(&sends) => found = Some((p.name.clone(), sends)),
            Some((_, s)) if *s == sends => same.push(p.name.clone()),
            _ => {}
        }
    }
    found.map(|(n, _)| (n, same))
}
