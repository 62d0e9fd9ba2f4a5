//! A job's action, from what its family said ([`ActionSpec`]) and the
//! toolchains: the input root (toolchains ⊕ scanned files ⊕ directories),
//! the Command (the toolchain's compiler, the job's arguments, the
//! toolchain's environment and `PATH`, the job's environment), the
//! outputs relative to the remote working directory, and where they land
//! here. The same for every family.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::depcache::Seen;
use super::family::{ActionSpec, EnvValue, ExposureSpec, Scanned};
use super::inputs::{self, InputsError};
use super::paths::{self, MAPPED_ROOT, PathMap};
use super::remote::{Landing, Prepared};
use super::tool::Tool;
use crate::action::{CommandSpec, Features, OutputSpec};
use crate::invocation::render_all;

/// Whether the project root may move this time (`false` once a moved
/// run of the compile showed it sees its location).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Move {
    Allowed,
    Never,
}

/// Where and for whom an action is built.
pub struct Site<'a> {
    /// The compile's working directory here.
    pub cwd: &'a Path,
    pub project_root: Option<PathBuf>,
    pub platform: &'a [(String, String)],
    pub features: Features,
    pub allowed: Move,
}

/// The action for `spec`. `Err` is a local reason.
pub fn build(
    site: &Site<'_>,
    tools: &[Tool],
    scanned: &Scanned,
    spec: &ActionSpec,
) -> Result<Prepared, &'static str> {
    let cwd = paths::normalize(site.cwd);
    let (map, verify) = choose_map(
        &cwd,
        site.project_root.as_deref(),
        &spec.exposure,
        site.allowed,
    );
    let files: Vec<Seen> = scanned
        .files
        .iter()
        .filter(|f| !spec.dropped.contains(&f.path))
        .cloned()
        .collect();
    let (map, verify, inputs) = match inputs::build(tools, &files, &spec.extra, &spec.dirs, &map) {
        Ok(i) => (map, verify, i),
        Err(InputsError::Unmappable(why)) if verify => {
            tracing::debug!("{why}");
            let identity = PathMap::identity();
            let i = inputs::build(tools, &files, &spec.extra, &spec.dirs, &identity)
                .map_err(input_error)?;
            (identity, false, i)
        }
        Err(e) => return Err(input_error(e)),
    };
    let m = tools[0].manifest();
    let mut arguments = vec![map.arg(&format!("/{}", m.entry))];
    arguments.extend(render_all(&spec.args, &|p| {
        let abs = paths::absolute(&cwd, p);
        match spec.renamed.get(&abs) {
            Some(other) => map.arg(&other.to_string_lossy()),
            None if spec.outputs.contains(&abs) => map.output_arg(p),
            None => map.arg(p),
        }
    }));
    if map.is_mapped() {
        arguments.extend(spec.when_moved.iter().cloned());
    }
    let remote_cwd = map.remote(&cwd);
    let outputs: Vec<String> = spec
        .outputs
        .iter()
        .map(|o| paths::relative_from(&remote_cwd, &map.output(o)))
        .collect();
    let command = CommandSpec {
        arguments,
        env: command_env(tools, spec, &map),
        outputs: outputs
            .iter()
            .map(|p| OutputSpec {
                path: p.clone(),
                is_dir: false,
            })
            .collect(),
        working_directory: map.tree_path(&cwd),
        platform: site.platform.to_vec(),
    };
    let landing = Landing {
        local: spec.outputs.clone(),
        unmap: map
            .root()
            .map(|root| (MAPPED_ROOT.to_string(), root.to_string_lossy().into_owned())),
        forbid: (verify && map.is_mapped()).then(|| MAPPED_ROOT.to_string()),
    };
    Prepared::new(&command, site.features, inputs, landing)
}

/// The path mapping, and whether its outputs must be checked for the
/// moved root (only a move the job merely predicted is checked).
fn choose_map(
    cwd: &Path,
    project_root: Option<&Path>,
    exposure: &ExposureSpec,
    allowed: Move,
) -> (PathMap, bool) {
    match (exposure, allowed) {
        (ExposureSpec::Fixed, _) | (ExposureSpec::Observed(_), Move::Never) => {
            (PathMap::identity(), false)
        }
        (ExposureSpec::Observed(e), Move::Allowed) => (PathMap::choose(project_root, cwd, e), true),
        (ExposureSpec::Forced(root), _) => (PathMap::moved(root), false),
    }
}

fn input_error(e: InputsError) -> &'static str {
    tracing::info!("{e}");
    "input_tree"
}

/// The toolchains' environment, `PATH` through their helper directories,
/// then the job's own variables (paths moved with the project).
fn command_env(tools: &[Tool], spec: &ActionSpec, map: &PathMap) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = tools[0].manifest().env.clone();
    let mut path_dirs: Vec<String> = Vec::new();
    for t in tools {
        for d in &t.manifest().path_dirs {
            let d = map.arg(&format!("/{d}"));
            if !path_dirs.contains(&d) {
                path_dirs.push(d);
            }
        }
    }
    if !path_dirs.is_empty() {
        env.insert("PATH".into(), path_dirs.join(":"));
    }
    for (k, v) in &spec.env {
        let v = match v {
            EnvValue::Plain(v) => v.clone(),
            EnvValue::Path(v) => map.arg(v),
        };
        env.insert(k.clone(), v);
    }
    env
}

/// Output paths a job names (relative to `cwd` or absolute), made absolute.
pub fn outputs_of<'a>(cwd: &Path, outputs: impl IntoIterator<Item = &'a str>) -> Vec<PathBuf> {
    outputs
        .into_iter()
        .map(|o| paths::absolute(cwd, o))
        .collect()
}
