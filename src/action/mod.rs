//! Building `Command` and `Action` messages from plain values (pure: no
//! tokio, tonic or processes).
//!
//! The messages are canonical so that the same command gives the same
//! action digest on every machine: environment sorted by name, outputs
//! sorted, platform properties sorted by name then value, absent fields left
//! absent. Which fields to fill (REAPI 2.0's `output_files` /
//! `output_directories` or 2.1's `output_paths`; `Action.platform` from 2.2)
//! is the caller's choice, made from the server's capabilities. Collecting
//! the input root from disk lives in [`input`].

pub mod input;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::cas::Digest;
use crate::cas::tree::valid_name;
use crate::proto::reapi;

/// Why a command cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ActionError {
    #[error("output path {0:?} must be relative, without '.', '..' or empty components")]
    BadOutputPath(String),
    #[error("working directory {0:?} must be relative, without '.', '..' or empty components")]
    BadWorkingDirectory(String),
    #[error("output path {0:?} is named twice (as a file and as a directory)")]
    DuplicateOutput(String),
    #[error("the command has no arguments")]
    NoArguments,
    #[error("environment variable name {0:?} is empty or contains '='")]
    BadEnvName(String),
}

/// One output the command produces.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct OutputSpec {
    /// Relative to the working directory.
    pub path: String,
    pub is_dir: bool,
}

/// A command, as plain values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommandSpec {
    pub arguments: Vec<String>,
    /// Exactly the environment the command runs with.
    pub env: BTreeMap<String, String>,
    pub outputs: Vec<OutputSpec>,
    /// Relative to the input root; empty for the root itself.
    pub working_directory: String,
    pub platform: Vec<(String, String)>,
}

/// Which REAPI fields the server understands (from its capabilities).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    /// `Command.output_paths` (REAPI ≥ 2.1); otherwise the legacy fields.
    pub output_paths: bool,
    /// `Action.platform` (REAPI ≥ 2.2).
    pub action_platform: bool,
}

/// Checks an output path: relative, no empty, `.` or `..` components.
pub fn validate_output_path(path: &str) -> Result<(), ActionError> {
    if path.is_empty() || path.starts_with('/') || !path.split('/').all(valid_name) {
        return Err(ActionError::BadOutputPath(path.to_string()));
    }
    Ok(())
}

/// Checks an output path of a Command that runs in `working_directory`:
/// as [`validate_output_path`], except that it may start with `..`
/// components, as many as the working directory is deep (so it stays in
/// the input root): a compile in a crate's directory writing into the
/// workspace's `target/`.
pub fn validate_output_path_from(working_directory: &str, path: &str) -> Result<(), ActionError> {
    let depth = working_directory
        .split('/')
        .filter(|c| !c.is_empty())
        .count();
    let ups = path.split('/').take_while(|c| *c == "..").count();
    let rest: Vec<&str> = path.split('/').skip(ups).collect();
    if ups > depth || rest.is_empty() {
        return Err(ActionError::BadOutputPath(path.to_string()));
    }
    validate_output_path(&rest.join("/"))
}

/// Platform properties sorted by name then value; `None` when empty, so an
/// empty platform does not change the digest.
pub fn platform_message(props: &[(String, String)]) -> Option<reapi::Platform> {
    if props.is_empty() {
        return None;
    }
    let mut sorted = props.to_vec();
    sorted.sort();
    sorted.dedup();
    Some(reapi::Platform {
        properties: sorted
            .into_iter()
            .map(|(name, value)| reapi::platform::Property { name, value })
            .collect(),
    })
}

/// Builds the canonical `Command` for `spec`.
pub fn build_command(
    spec: &CommandSpec,
    features: Features,
) -> Result<reapi::Command, ActionError> {
    if spec.arguments.is_empty() {
        return Err(ActionError::NoArguments);
    }
    if !spec.working_directory.is_empty() && validate_output_path(&spec.working_directory).is_err()
    {
        return Err(ActionError::BadWorkingDirectory(
            spec.working_directory.clone(),
        ));
    }
    if let Some(bad) = spec.env.keys().find(|k| k.is_empty() || k.contains('=')) {
        return Err(ActionError::BadEnvName(bad.clone()));
    }
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for o in &spec.outputs {
        validate_output_path_from(&spec.working_directory, &o.path)?;
        if o.is_dir {
            dirs.push(o.path.clone());
        } else {
            files.push(o.path.clone());
        }
    }
    files.sort();
    files.dedup();
    dirs.sort();
    dirs.dedup();
    if let Some(both) = files.iter().find(|f| dirs.binary_search(f).is_ok()) {
        return Err(ActionError::DuplicateOutput(both.clone()));
    }
    let mut cmd = reapi::Command {
        arguments: spec.arguments.clone(),
        environment_variables: spec
            .env
            .iter()
            .map(|(name, value)| reapi::command::EnvironmentVariable {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        platform: platform_message(&spec.platform),
        working_directory: spec.working_directory.clone(),
        ..Default::default()
    };
    if features.output_paths {
        let mut all: Vec<String> = files.into_iter().chain(dirs).collect();
        all.sort();
        cmd.output_paths = all;
    } else {
        cmd.output_files = files;
        cmd.output_directories = dirs;
    }
    Ok(cmd)
}

/// Builds the `Action` tying a command to its input root.
pub fn build_action(
    command_digest: &Digest,
    input_root_digest: &Digest,
    timeout: Option<Duration>,
    do_not_cache: bool,
    platform: &[(String, String)],
    include_platform: bool,
) -> reapi::Action {
    reapi::Action {
        command_digest: Some(command_digest.to_proto()),
        input_root_digest: Some(input_root_digest.to_proto()),
        timeout: timeout.map(|t| prost_types::Duration {
            seconds: t.as_secs() as i64,
            nanos: t.subsec_nanos() as i32,
        }),
        do_not_cache,
        platform: if include_platform {
            platform_message(platform)
        } else {
            None
        },
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_may_start_with_as_many_dotdots_as_the_working_directory_is_deep() {
        assert!(validate_output_path_from("a/b", "../../t/x.rlib").is_ok());
        assert!(validate_output_path_from("a/b", "../x").is_ok());
        assert!(validate_output_path_from("", "x/y").is_ok());
        for bad in ["../../../x", "../a/../x", "..", "../", "x/.."] {
            assert!(validate_output_path_from("a/b", bad).is_err(), "{bad}");
        }
    }

    const NEW: Features = Features {
        output_paths: true,
        action_platform: true,
    };
    const OLD: Features = Features {
        output_paths: false,
        action_platform: false,
    };

    fn spec() -> CommandSpec {
        CommandSpec {
            arguments: vec!["/bin/sh".into(), "-c".into(), "echo hi > out/a.txt".into()],
            env: [("PATH", "/usr/bin:/bin"), ("LANG", "C")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            outputs: vec![
                OutputSpec {
                    path: "out/a.txt".into(),
                    is_dir: false,
                },
                OutputSpec {
                    path: "gen".into(),
                    is_dir: true,
                },
                OutputSpec {
                    path: "b.o".into(),
                    is_dir: false,
                },
            ],
            working_directory: String::new(),
            platform: vec![
                ("OSFamily".into(), "linux".into()),
                ("ISA".into(), "x86-64".into()),
            ],
        }
    }

    #[test]
    fn output_paths_validation() {
        for ok in ["a", "a/b.o", "dir/sub/x", "..a", "a.."] {
            assert!(validate_output_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "/abs", "a/../b", "..", ".", "./a", "a//b", "a/", "a/./b", "x\0y",
        ] {
            assert!(validate_output_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn command_is_canonical() {
        let c = build_command(&spec(), NEW).unwrap();
        assert_eq!(c.environment_variables[0].name, "LANG");
        assert_eq!(c.output_paths, vec!["b.o", "gen", "out/a.txt"]);
        assert!(c.output_files.is_empty() && c.output_directories.is_empty());
        let p = c.platform.unwrap().properties;
        assert_eq!(
            (p[0].name.as_str(), p[1].name.as_str()),
            ("ISA", "OSFamily")
        );

        let legacy = build_command(&spec(), OLD).unwrap();
        assert_eq!(legacy.output_files, vec!["b.o", "out/a.txt"]);
        assert_eq!(legacy.output_directories, vec!["gen"]);
        assert!(legacy.output_paths.is_empty());

        // Order of the inputs does not matter.
        let mut shuffled = spec();
        shuffled.outputs.reverse();
        shuffled.platform.reverse();
        assert_eq!(
            Digest::of_message(&build_command(&shuffled, NEW).unwrap()).0,
            Digest::of_message(&build_command(&spec(), NEW).unwrap()).0
        );
    }

    #[test]
    fn platform_sorted_by_name_then_value() {
        let p = platform_message(&[
            ("b".into(), "2".into()),
            ("a".into(), "z".into()),
            ("b".into(), "1".into()),
        ])
        .unwrap();
        let flat: Vec<_> = p
            .properties
            .iter()
            .map(|p| format!("{}={}", p.name, p.value))
            .collect();
        assert_eq!(flat, vec!["a=z", "b=1", "b=2"]);
        assert!(platform_message(&[]).is_none());
    }

    #[test]
    fn refuses_bad_commands() {
        let mut s = spec();
        s.outputs.push(OutputSpec {
            path: "../escape".into(),
            is_dir: false,
        });
        assert_eq!(
            build_command(&s, NEW),
            Err(ActionError::BadOutputPath("../escape".into()))
        );
        let mut s = spec();
        s.outputs.push(OutputSpec {
            path: "gen".into(),
            is_dir: false,
        });
        assert_eq!(
            build_command(&s, NEW),
            Err(ActionError::DuplicateOutput("gen".into()))
        );
        let mut s = spec();
        s.working_directory = "/abs".into();
        assert!(matches!(
            build_command(&s, NEW),
            Err(ActionError::BadWorkingDirectory(_))
        ));
        let mut s = spec();
        s.arguments.clear();
        assert_eq!(build_command(&s, NEW), Err(ActionError::NoArguments));
        let mut s = spec();
        s.env.insert("A=B".into(), "x".into());
        assert!(matches!(
            build_command(&s, NEW),
            Err(ActionError::BadEnvName(_))
        ));
    }

    #[test]
    fn golden_digests() {
        // Pinned, and cross-checked with a hand-written protobuf encoder: a
        // change here changes every action-cache key.
        let cmd = build_command(&spec(), NEW).unwrap();
        let (cmd_digest, _) = Digest::of_message(&cmd);
        assert_eq!(
            cmd_digest.to_string(),
            "3a48d1642ddb35aec40fee932c174b5b30d99ea804bf42b8ae8465c074e4a543/125"
        );
        let legacy = Digest::of_message(&build_command(&spec(), OLD).unwrap()).0;
        assert_eq!(
            legacy.to_string(),
            "d4ae96d7b43a26c979d9d578bd61dbaf11ed85e994d3dd2ae431827a17905b0b/125"
        );
        let action = build_action(
            &cmd_digest,
            &Digest::EMPTY,
            Some(Duration::from_millis(90_500)),
            false,
            &spec().platform,
            true,
        );
        assert_eq!(action.timeout.unwrap().nanos, 500_000_000);
        assert_eq!(
            Digest::of_message(&action).0.to_string(),
            "9da7d9bed43f1dc061e7d5b179d9c2fda348b063488a9747af4f7a18c47a3ecf/184"
        );
        let old = build_action(
            &cmd_digest,
            &Digest::EMPTY,
            None,
            true,
            &spec().platform,
            false,
        );
        assert!(old.platform.is_none() && old.timeout.is_none() && old.do_not_cache);
        assert_eq!(
            Digest::of_message(&old).0.to_string(),
            "86115aa292111e8f88b279736ae1d7e99fca8b6f9e71be4428e3dd7efacb9467/140"
        );
    }
}
