//! `recast setup cargo`: one step to send a cargo project's compiles
//! through recast, rustc and build scripts' C alike.
//!
//! cargo passes `RUSTC_WRAPPER` to rustc only; the `cc` crate that build
//! scripts use to compile C honours it just for the wrappers it knows
//! (sccache, cachepot, buildcache). So besides `[build] rustc-wrapper`,
//! the `[env]` table (which cargo passes on to build scripts) names recast
//! as `CC` and `CXX`, and `CC_KNOWN_WRAPPER_CUSTOM` tells the `cc` crate
//! that `recast` is a wrapper, so it asks the compiler behind it its
//! questions. `[env]` entries never override a variable the user set.
//!
//! The file is edited, not rewritten: comments and other settings stay.
//! A key that is already set to something else is not touched (the command
//! says which and stops), unless `--force`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

#[derive(clap::Args, Debug)]
pub struct SetupArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand, Debug)]
enum What {
    /// Write `.cargo/config.toml` so cargo builds go through recast.
    Cargo(CargoArgs),
}

#[derive(clap::Args, Debug)]
struct CargoArgs {
    /// The project (its `.cargo/config.toml`) [default: the current
    /// directory].
    #[arg(value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Write `$CARGO_HOME/config.toml` instead (every project of this user).
    #[arg(long, conflicts_with = "dir")]
    global: bool,
    /// Print the settings instead of writing them.
    #[arg(long)]
    print: bool,
    /// Replace values already set to something else.
    #[arg(long)]
    force: bool,
}

pub fn run(args: SetupArgs, sources: &crate::config::Sources) -> anyhow::Result<ExitCode> {
    let What::Cargo(args) = args.what;
    let me = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .context("finding recast's own path")?;
    let wanted = cargo_settings(&me);
    if args.print {
        print!("{}", snippet(&wanted));
        return Ok(ExitCode::SUCCESS);
    }
    let path = if args.global {
        let home = match sources.env.get("CARGO_HOME") {
            Some(h) => PathBuf::from(h),
            None => PathBuf::from(
                sources
                    .env
                    .get("HOME")
                    .context("neither CARGO_HOME nor HOME is set")?,
            )
            .join(".cargo"),
        };
        home.join("config.toml")
    } else {
        let dir = match args.dir {
            Some(d) => d,
            None => std::env::current_dir()?,
        };
        dir.join(".cargo").join("config.toml")
    };
    let old = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let edited =
        edit(&old, &wanted, args.force).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if edited == old {
        println!(
            "{} already sends cargo's compiles through recast",
            path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    crate::fsutil::write_atomic(&path, edited.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    println!(
        "wrote {}: rustc and build scripts' C and C++ go through {}",
        path.display(),
        me.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// One setting: a table, a key and its value.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Setting {
    table: &'static str,
    key: &'static str,
    value: String,
}

/// What cargo needs to send every compile through the recast at `me`.
fn cargo_settings(me: &Path) -> Vec<Setting> {
    let me = me.display().to_string();
    let set = |table, key, value: String| Setting { table, key, value };
    vec![
        set("build", "rustc-wrapper", me.clone()),
        set("env", "CC", format!("{me} cc")),
        set("env", "CXX", format!("{me} c++")),
        set("env", "CC_KNOWN_WRAPPER_CUSTOM", "recast".into()),
    ]
}

/// The settings as TOML to paste.
fn snippet(settings: &[Setting]) -> String {
    let mut out = String::new();
    let mut table = "";
    for s in settings {
        if s.table != table {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!("[{}]\n", s.table));
            table = s.table;
        }
        out.push_str(&format!("{} = {}\n", s.key, quoted(&s.value)));
    }
    out
}

fn quoted(v: &str) -> String {
    toml::Value::String(v.to_string()).to_string()
}

/// `text` (a cargo config file) with `settings` in it: a missing key is
/// added under its table's header (the table appended if missing), a key
/// with the same value is left, one with another value is an error unless
/// `force` (then its line is replaced). The result is parsed back and
/// checked to hold every setting.
fn edit(text: &str, settings: &[Setting], force: bool) -> Result<String, String> {
    let doc: toml::Table = toml::from_str(text).map_err(|e| format!("not valid TOML: {e}"))?;
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for s in settings {
        let current = doc
            .get(s.table)
            .and_then(|t| t.as_table())
            .and_then(|t| t.get(s.key));
        match current {
            Some(v) if v.as_str() == Some(s.value.as_str()) => continue,
            Some(v) if !force => {
                return Err(format!(
                    "[{}] {} is already {v}; run again with --force to set it to {}",
                    s.table,
                    s.key,
                    quoted(&s.value)
                ));
            }
            _ => {}
        }
        let line = format!("{} = {}", s.key, quoted(&s.value));
        let header = lines
            .iter()
            .position(|l| l.trim() == format!("[{}]", s.table));
        match header {
            Some(h) => {
                // Replace the key's line within the table, or add one.
                let end = lines[h + 1..]
                    .iter()
                    .position(|l| l.trim_start().starts_with('['))
                    .map_or(lines.len(), |i| h + 1 + i);
                let existing = (h + 1..end).find(|&i| {
                    let l = lines[i].trim_start();
                    l.strip_prefix(s.key)
                        .is_some_and(|rest| rest.trim_start().starts_with('='))
                });
                // After the table's last line (not its trailing blanks).
                let last = (h + 1..end)
                    .rev()
                    .find(|&i| !lines[i].trim().is_empty())
                    .unwrap_or(h);
                match existing {
                    Some(i) => lines[i] = line,
                    None => lines.insert(last + 1, line),
                }
            }
            None => {
                if lines.last().is_some_and(|l| !l.trim().is_empty()) {
                    lines.push(String::new());
                }
                lines.push(format!("[{}]", s.table));
                lines.push(line);
            }
        }
    }
    let mut out = lines.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    // The edit is textual; what cargo will read is checked here.
    let back: toml::Table = toml::from_str(&out).map_err(|e| {
        format!(
            "cannot add the settings to this file's layout ({e}); add them by hand:\n{}",
            snippet(settings)
        )
    })?;
    for s in settings {
        let got = back
            .get(s.table)
            .and_then(|t| t.as_table())
            .and_then(|t| t.get(s.key))
            .and_then(|v| v.as_str());
        if got != Some(s.value.as_str()) {
            return Err(format!(
                "cannot add [{}] {} to this file's layout (dotted keys or inline tables?); add it by hand:\n{}",
                s.table,
                s.key,
                snippet(settings)
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted() -> Vec<Setting> {
        cargo_settings(Path::new("/opt/recast/bin/recast"))
    }

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn an_empty_file_gets_both_tables() {
        let out = edit("", &wanted(), false).unwrap();
        assert_eq!(out, snippet(&wanted()));
        let t = table(&out);
        assert_eq!(
            t["build"]["rustc-wrapper"].as_str(),
            Some("/opt/recast/bin/recast")
        );
        assert_eq!(t["env"]["CC"].as_str(), Some("/opt/recast/bin/recast cc"));
        assert_eq!(t["env"]["CXX"].as_str(), Some("/opt/recast/bin/recast c++"));
        assert_eq!(t["env"]["CC_KNOWN_WRAPPER_CUSTOM"].as_str(), Some("recast"));
        // Twice is once.
        assert_eq!(edit(&out, &wanted(), false).unwrap(), out);
    }

    #[test]
    fn comments_and_other_settings_stay() {
        let text = "# team settings\n[build]\njobs = 4 # two cores\n\n[env]\nFOO = \"bar\"\n\n[profile.release]\nlto = true\n";
        let out = edit(text, &wanted(), false).unwrap();
        assert!(out.starts_with("# team settings\n[build]\n"), "{out}");
        assert!(out.contains("jobs = 4 # two cores"), "{out}");
        let t = table(&out);
        assert_eq!(t["build"]["jobs"].as_integer(), Some(4));
        assert_eq!(t["env"]["FOO"].as_str(), Some("bar"));
        assert_eq!(t["profile"]["release"]["lto"].as_bool(), Some(true));
        assert_eq!(t["env"]["CC"].as_str(), Some("/opt/recast/bin/recast cc"));
    }

    #[test]
    fn another_wrapper_is_kept_unless_forced() {
        let text = "[build]\nrustc-wrapper = \"sccache\"\n";
        let err = edit(text, &wanted(), false).unwrap_err();
        assert!(
            err.contains("already \"sccache\"") && err.contains("--force"),
            "{err}"
        );
        let out = edit(text, &wanted(), true).unwrap();
        let t = table(&out);
        assert_eq!(
            t["build"]["rustc-wrapper"].as_str(),
            Some("/opt/recast/bin/recast")
        );
        assert!(!out.contains("sccache"), "{out}");
    }

    #[test]
    fn a_layout_it_cannot_edit_is_refused_with_the_snippet() {
        let text = "build.jobs = 2\n";
        let err = edit(text, &wanted(), false).unwrap_err();
        assert!(err.contains("rustc-wrapper = "), "{err}");
        assert!(
            edit("[build\n", &wanted(), false)
                .unwrap_err()
                .contains("not valid TOML")
        );
    }
}
