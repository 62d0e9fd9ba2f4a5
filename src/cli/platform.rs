//! `recast platform show|list`: the platform properties recast sends, and
//! the profiles and names it knows. Also the one place the CLI resolves a
//! platform (profile, config, flags), for `run` and `doctor` alike.
//!
//! The mapping itself is `crate::platform`; this file only gathers the
//! inputs (flags, environment, config file, the binary to read) and prints.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;

use target_lexicon::{Architecture, OperatingSystem};

use crate::config;
use crate::platform::{self, Platform, Profile};

#[derive(clap::Args, Debug)]
pub struct PlatformArgs {
    #[command(subcommand)]
    pub command: PlatformCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum PlatformCommand {
    /// Print the platform properties recast sends for an execution platform.
    Show(ShowArgs),
    /// List the built-in profiles and the names the lexicon maps.
    List(ListArgs),
}

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// The execution platform as a target triple [default: this machine].
    #[arg(long, value_name = "TRIPLE", conflicts_with = "binary")]
    pub triple: Option<String>,
    /// The execution platform of a tool, read from its binary (ELF or Mach-O).
    #[arg(long, value_name = "PATH")]
    pub binary: Option<std::path::PathBuf>,
    /// Platform profile: a built-in name or a .toml file
    /// [default: RECAST_PLATFORM_PROFILE, else config, else standard].
    #[arg(long, value_name = "NAME|PATH")]
    pub profile: Option<String>,
    /// Extra property (repeatable); replaces the profile's values of KEY.
    #[arg(long = "platform", value_name = "KEY=VALUE")]
    pub platform: Vec<String>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub use crate::platform::Resolved;

/// Resolves the profile and properties (flag > env > config > default)
/// for an execution platform running `os` on `arch`.
pub fn resolve(
    sources: &config::Sources,
    profile_flag: Option<&str>,
    property_flags: &[String],
    os: &OperatingSystem,
    arch: &Architecture,
) -> anyhow::Result<Resolved> {
    let cfg = config::resolve_platform(profile_flag, property_flags, &sources.env, &sources.file)?;
    Ok(platform::resolve(&cfg.profile, &cfg.properties, os, arch)?)
}

/// [`resolve`] for a host named as a toolchain manifest names it.
pub fn resolve_named(
    sources: &config::Sources,
    profile_flag: Option<&str>,
    property_flags: &[String],
    os: &str,
    arch: &str,
) -> anyhow::Result<Resolved> {
    let cfg = config::resolve_platform(profile_flag, property_flags, &sources.env, &sources.file)?;
    Ok(platform::resolve_named(
        &cfg.profile,
        &cfg.properties,
        os,
        arch,
    )?)
}

/// The platform of commands `recast run` and `recast doctor` send: they
/// run what this machine runs, so this machine is the execution platform.
pub fn resolve_host(
    sources: &config::Sources,
    profile_flag: Option<&str>,
    property_flags: &[String],
) -> anyhow::Result<Resolved> {
    let h = target_lexicon::HOST;
    resolve(
        sources,
        profile_flag,
        property_flags,
        &h.operating_system,
        &h.architecture,
    )
    .with_context(|| format!("the platform of this machine ({h})"))
}

pub fn run(args: PlatformArgs, sources: &config::Sources) -> anyhow::Result<ExitCode> {
    match args.command {
        PlatformCommand::Show(a) => show(a, sources),
        PlatformCommand::List(a) => list(a),
    }
}

fn show(args: ShowArgs, sources: &config::Sources) -> anyhow::Result<ExitCode> {
    let (origin, hosts) = if let Some(t) = &args.triple {
        let triple = platform::parse_triple(t)?;
        let host = (t.clone(), triple.operating_system, triple.architecture);
        (format!("triple {t}"), vec![host])
    } else if let Some(path) = &args.binary {
        (format!("binary {}", path.display()), binary_hosts(path)?)
    } else {
        let h = target_lexicon::HOST;
        let host = (h.to_string(), h.operating_system, h.architecture);
        ("this machine".to_string(), vec![host])
    };
    let mut shown = Vec::new();
    for (host, os, arch) in hosts {
        let r = resolve(sources, args.profile.as_deref(), &args.platform, &os, &arch)
            .with_context(|| format!("the platform of {host}"))?;
        shown.push((host, r));
    }
    if args.json {
        let items: Vec<serde_json::Value> = shown
            .iter()
            .map(|(host, r)| {
                serde_json::json!({
                    "host": host,
                    "profile": r.profile.name,
                    "standard": properties_json(&r.standard),
                    "properties": properties_json(&r.platform),
                })
            })
            .collect();
        let v = if items.len() == 1 {
            let mut v = items.into_iter().next().expect("one item");
            v["origin"] = origin.into();
            v
        } else {
            serde_json::json!({ "origin": origin, "slices": items })
        };
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    for (host, r) in &shown {
        println!("{:<20}{host} ({origin})", "execution platform");
        println!(
            "{:<20}{} — {}",
            "profile",
            r.profile.name,
            r.profile.description()
        );
        println!("properties");
        for (k, v) in r.platform.pairs() {
            println!("  {k}={v}");
        }
        if let Some(notes) = r.profile.notes() {
            println!("server configuration\n  {notes}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Each architecture slice of a binary, as (name, OS, architecture); a
/// fat Mach-O file has several.
fn binary_hosts(path: &Path) -> anyhow::Result<Vec<(String, OperatingSystem, Architecture)>> {
    use crate::toolchain::inspect::{self, Binary};
    use crate::toolchain::{FileSource, HostFs};
    let bytes = HostFs
        .read(path)
        .with_context(|| format!("reading {}", path.display()))?;
    let binary = inspect::parse(&bytes).with_context(|| format!("reading {}", path.display()))?;
    let hosts = match binary {
        Binary::Elf(info) => vec![info.host],
        Binary::MachO(slices) => slices.into_iter().map(|s| s.host).collect(),
        Binary::Script { interpreter, .. } => anyhow::bail!(
            "{} is a script run by {interpreter}; show the platform of {interpreter} instead (--binary {interpreter})",
            path.display()
        ),
        Binary::Other => anyhow::bail!(
            "{} is neither an ELF nor a Mach-O executable; give --triple instead",
            path.display()
        ),
    };
    Ok(hosts
        .into_iter()
        .map(|h| (h.to_string(), h.os, h.arch))
        .collect())
}

fn properties_json(p: &Platform) -> serde_json::Value {
    p.pairs()
        .iter()
        .map(|(k, v)| serde_json::json!({ "name": k, "value": v }))
        .collect()
}

fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let profiles = Profile::builtins();
    let (mapped, refused): (Vec<&str>, Vec<&str>) =
        platform::known_triples().partition(|t| platform::from_triple(t).is_ok());
    if args.json {
        let v = serde_json::json!({
            "profiles": profiles.iter().map(|p| serde_json::json!({
                "name": p.name,
                "description": p.description(),
                "notes": p.notes(),
                "required": p.required().map(|(k, _)| k).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "architectures": platform::lexicon_architectures()
                .map(|(a, isa)| serde_json::json!({"name": a, "ISA": isa}))
                .collect::<Vec<_>>(),
            "operating_systems": platform::lexicon_systems()
                .map(|(o, f)| serde_json::json!({"name": o, "OSFamily": f}))
                .collect::<Vec<_>>(),
            "triples": mapped,
            "unmapped_triples": refused,
        });
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    println!("profiles (--platform-profile NAME, or a .toml file of your own)");
    for p in &profiles {
        println!("  {:<12}{}", p.name, p.description());
    }
    println!("\narchitectures → ISA");
    print_columns(platform::lexicon_architectures());
    println!("\noperating systems → OSFamily");
    print_columns(platform::lexicon_systems());
    println!(
        "\ntriples that map ({} of {} known; others name what has no lexicon value)",
        mapped.len(),
        mapped.len() + refused.len()
    );
    for chunk in mapped.chunks(3) {
        let line: Vec<String> = chunk.iter().map(|t| format!("{t:<36}")).collect();
        println!("  {}", line.concat().trim_end());
    }
    Ok(ExitCode::SUCCESS)
}

fn print_columns<'a>(items: impl Iterator<Item = (&'a str, &'a str)>) {
    let items: Vec<String> = items.map(|(k, v)| format!("{k} → {v}")).collect();
    for chunk in items.chunks(3) {
        let line: Vec<String> = chunk.iter().map(|s| format!("{s:<30}")).collect();
        println!("  {}", line.concat().trim_end());
    }
}

/// Adds advice to a server's refusal of the platform, if it is one.
pub fn with_advice(err: anyhow::Error, resolved: &Resolved) -> anyhow::Error {
    let message = format!("{err:#}");
    match resolved.advise(&message) {
        Some(advice) => anyhow::anyhow!("{message}\n{advice}"),
        None => err,
    }
}
