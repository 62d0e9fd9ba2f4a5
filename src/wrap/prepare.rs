//! A job's action, from what its family said ([`ActionSpec`]) and the
//! toolchains: the input root (toolchains ⊕ scanned files ⊕ directories),
//! the Command (the toolchain's compiler, the job's arguments, the
//! toolchain's environment and `PATH`, the job's environment), the
//! outputs relative to the remote working directory, and where they land
//! here. The same for every family.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::depcache::Seen;
use super::family::{
    ActionSpec, EnvValue, ExposureSpec, Job, Reason, Relocation, RelocationSite, Scanned,
};
use super::inputs::{self, InputsError};
use super::layout::{self, Layout};
use super::on_server::{Landing, Prepared};
use super::placement::{self, MAPPED_ROOT, PathMap};
use super::tool::Tool;
use crate::action::{CommandSpec, Features, OutputSpec};
use crate::cas::tree::Entry;
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
    pub ctx: &'a super::Ctx,
    pub inv: &'a super::Invocation,
    /// The compile's working directory here.
    pub cwd: &'a Path,
    pub project_root: Option<PathBuf>,
    pub platform: &'a [(String, String)],
    pub features: Features,
    pub allowed: Move,
    pub layout: Layout,
    /// The launcher of a namespaced action (bubblewrap, as a bundle).
    pub launcher: Option<&'a Tool>,
}

impl<'a> Site<'a> {
    /// The site with a namespaced action's launcher.
    pub fn with(self, launcher: Option<&'a Tool>) -> Site<'a> {
        Site { launcher, ..self }
    }
}

/// The action for `spec`, laid out for `site`; `job` says how it runs
/// relocated. `Err` is a local reason.
pub fn build(
    site: &Site<'_>,
    tools: &[Tool],
    scanned: &Scanned,
    spec: &ActionSpec,
    job: &dyn Job,
) -> Result<Prepared, Reason> {
    let cwd = placement::normalize(site.cwd);
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
    let relocated = site.layout == Layout::Relocated;
    // A namespaced action is the rooted one with its launcher beside the
    // toolchains, started through the same links as a relocated one.
    let launcher = match (site.layout, site.launcher) {
        (Layout::Namespaced, Some(l)) => Some(l),
        (Layout::Namespaced, None) => return Err(Reason::NotRelocatable),
        _ => None,
    };
    let all: Vec<&Tool> = tools.iter().chain(launcher).collect();
    let loader = match launcher {
        Some(l) => l.manifest().interpreter.as_deref(),
        None => tools[0].manifest().interpreter.as_deref(),
    };
    let links = (relocated || launcher.is_some()).then_some(loader);
    let (map, verify, inputs) = match input_root(&all, &files, spec, &map, &cwd, links) {
        Ok(i) => (map, verify, i),
        Err(InputsError::Unmappable(why)) if verify => {
            tracing::debug!("{why}");
            let identity = PathMap::identity();
            let i = input_root(&all, &files, spec, &identity, &cwd, links).map_err(input_error)?;
            (identity, false, i)
        }
        Err(e) => return Err(input_error(e)),
    };
    let args = render_all(&spec.args, &|p| {
        let abs = placement::absolute(&cwd, p);
        let remote = match spec.renamed.get(&abs) {
            Some(other) => map.arg(&other.to_string_lossy()),
            None if spec.outputs.contains(&abs) => map.output_arg(p),
            None => map.arg(p),
        };
        if relocated {
            layout::rel(&remote)
        } else {
            remote
        }
    });
    let (arguments, env) = if relocated {
        let site = RelocationSite {
            cwd: &cwd,
            map: &map,
            tools,
            scanned,
            ctx: site.ctx,
            inv: site.inv,
        };
        relocated_command(tools, spec, &map, args, job.relocation(&site)?)
    } else {
        let (arguments, env) = rooted_command(tools, spec, &map, args);
        match launcher {
            Some(l) => namespaced_command(l, &map, &cwd, &inputs, arguments, env),
            None => (arguments, env),
        }
    };
    let remote_cwd = map.remote(&cwd);
    let outputs: Vec<String> = spec
        .outputs
        .iter()
        .map(|o| placement::relative_from(&remote_cwd, &map.output(o)))
        .collect();
    let command = CommandSpec {
        arguments,
        env,
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
    let mut forbid = Vec::new();
    if verify && map.is_mapped() {
        forbid.push(MAPPED_ROOT.to_string());
    }
    if relocated {
        forbid.push(layout::PROC_CWD.to_string());
    }
    let landing = Landing {
        local: spec.outputs.clone(),
        unmap: map
            .root()
            .map(|root| (MAPPED_ROOT.to_string(), root.to_string_lossy().into_owned())),
        forbid,
        relocated,
    };
    Prepared::new(&command, site.features, inputs, landing)
}

/// The input root: the toolchains, the scanned files, the job's
/// directories and entries, and for a relocated action the working
/// directory's links to the root and the loader.
fn input_root(
    tools: &[&Tool],
    files: &[Seen],
    spec: &ActionSpec,
    map: &PathMap,
    cwd: &Path,
    links: Option<Option<&str>>,
) -> Result<inputs::Inputs, InputsError> {
    let mut extra = spec.extra.clone();
    if let Some(loader) = links {
        let wd = map.tree_path(cwd);
        let up = up_to_root(&wd);
        let at = |name: &str| {
            if wd.is_empty() {
                name.to_string()
            } else {
                format!("{wd}/{name}")
            }
        };
        extra.push(Entry::symlink(at(layout::ROOT), up));
        if let Some(loader) = loader {
            extra.push(Entry::symlink(
                at(layout::LOADER),
                format!("{}/{loader}", layout::ROOT),
            ));
        }
    }
    extra.extend(
        spec.placed
            .iter()
            .map(|(_, at, digest)| Entry::file(at.clone(), *digest, false)),
    );
    let mut inputs = inputs::build(tools, files, &extra, &spec.dirs, map)?;
    for (local, _, digest) in &spec.placed {
        if !inputs.blobs.iter().any(|b| b.digest == *digest) {
            inputs
                .blobs
                .push(crate::remote::Blob::file(*digest, local.clone()));
        }
    }
    Ok(inputs)
}

/// The rooted command, started on a plain-directory worker by `launcher`
/// (bubblewrap, patched to start through `.r-ld`), which binds the input
/// root as `/` in a user namespace: the command sees this machine's paths
/// as on a rooted worker.
fn namespaced_command(
    launcher: &Tool,
    map: &PathMap,
    cwd: &Path,
    inputs: &inputs::Inputs,
    arguments: Vec<String>,
    mut env: BTreeMap<String, String>,
) -> (Vec<String>, BTreeMap<String, String>) {
    let m = launcher.manifest();
    let wd = map.tree_path(cwd);
    let up = up_to_root(&wd);
    let own = env.remove("LD_LIBRARY_PATH");
    let mut wrapped = vec![layout::rel(&format!("/{}", m.entry))];
    wrapped.extend(layout::namespace_args(
        &up,
        &format!("/{wd}"),
        root_has(&inputs.tree, "tmp"),
        own.as_deref(),
    ));
    wrapped.extend(arguments);
    env.insert(
        "LD_LIBRARY_PATH".into(),
        layout::launcher_libraries(&m.library_path),
    );
    (wrapped, env)
}

/// The input root, from the working directory at tree path `wd`.
fn up_to_root(wd: &str) -> String {
    let depth = wd.split('/').filter(|c| !c.is_empty()).count();
    if depth == 0 {
        ".".to_string()
    } else {
        vec![".."; depth].join("/")
    }
}

/// Whether the root of `tree` has an entry called `name`.
fn root_has(tree: &crate::cas::tree::MerkleTree, name: &str) -> bool {
    use prost::Message as _;
    tree.directories
        .get(&tree.root)
        .and_then(|b| crate::proto::reapi::Directory::decode(b.as_slice()).ok())
        .is_some_and(|d| {
            d.files.iter().any(|f| f.name == name)
                || d.directories.iter().any(|f| f.name == name)
                || d.symlinks.iter().any(|f| f.name == name)
        })
}

/// The command of a rooted action: the toolchain's compiler at its own
/// path, the job's arguments; the toolchains' environment and `PATH`, the
/// job's variables.
fn rooted_command(
    tools: &[Tool],
    spec: &ActionSpec,
    map: &PathMap,
    args: Vec<String>,
) -> (Vec<String>, BTreeMap<String, String>) {
    let m = tools[0].manifest();
    let mut arguments = vec![map.arg(&format!("/{}", m.entry))];
    arguments.extend(args);
    if map.is_mapped() {
        arguments.extend(spec.when_moved.iter().cloned());
    }
    let mut env: BTreeMap<String, String> = m.env.clone();
    let dirs = toolchain_dirs(tools, |m| &m.path_dirs, &|d| map.arg(d));
    if !dirs.is_empty() {
        env.insert("PATH".into(), dirs.join(":"));
    }
    job_env(&mut env, spec, map, false);
    (arguments, env)
}

/// The command of a relocated action: the bundle's shell launches the
/// compiler through the root link with `PWD` set to `/proc/self/cwd` and
/// the job's run-time words; `PATH` and `LD_LIBRARY_PATH` relative.
fn relocated_command(
    tools: &[Tool],
    spec: &ActionSpec,
    map: &PathMap,
    args: Vec<String>,
    r: Relocation,
) -> (Vec<String>, BTreeMap<String, String>) {
    let m = tools[0].manifest();
    let through_root = |d: &str| layout::rel(&map.arg(d));
    let mut script = String::from("PWD=/proc/self/cwd; export PWD; ");
    if !r.runtime.is_empty() {
        script.push_str("P=$(pwd -P); ");
    }
    script.push_str("exec \"$@\"");
    for w in &r.runtime {
        script.push(' ');
        script.push_str(w);
    }
    let mut arguments = vec![
        through_root(layout::SHELL),
        "-c".into(),
        script,
        "sh".into(),
        through_root(&format!("/{}", m.entry)),
    ];
    arguments.extend(r.lead);
    arguments.extend(args);
    arguments.extend(r.tail);
    let mut env: BTreeMap<String, String> = m.env.clone();
    let path = toolchain_dirs(tools, |m| &m.path_dirs, &through_root);
    if !path.is_empty() {
        env.insert("PATH".into(), path.join(":"));
    }
    let libs = toolchain_dirs(tools, |m| &m.library_path, &through_root);
    if !libs.is_empty() {
        env.insert("LD_LIBRARY_PATH".into(), libs.join(":"));
    }
    job_env(&mut env, spec, map, true);
    env.extend(r.env);
    (arguments, env)
}

/// The tree directories `field` lists in every toolchain, once each, as
/// `spell` writes them.
fn toolchain_dirs(
    tools: &[Tool],
    field: impl Fn(&crate::toolchain::manifest::Manifest) -> &Vec<String>,
    spell: &dyn Fn(&str) -> String,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in tools {
        for d in field(t.manifest()) {
            let d = spell(&format!("/{d}"));
            if !out.contains(&d) {
                out.push(d);
            }
        }
    }
    out
}

/// The job's own variables: paths moved with the project, and for a
/// relocated action spelled so they resolve on the worker.
fn job_env(env: &mut BTreeMap<String, String>, spec: &ActionSpec, map: &PathMap, relocated: bool) {
    let path = |v: &str| {
        let m = map.arg(v);
        if relocated { layout::proc_abs(&m) } else { m }
    };
    for (k, v) in &spec.env {
        let v = match v {
            EnvValue::Plain(v) => v.clone(),
            EnvValue::Path(v) => path(v),
            EnvValue::PathList(v) => v
                .split(':')
                .map(|p| {
                    let m = map.arg(p);
                    if relocated { layout::rel(&m) } else { m }
                })
                .collect::<Vec<_>>()
                .join(":"),
        };
        env.insert(k.clone(), v);
    }
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

fn input_error(e: InputsError) -> Reason {
    tracing::info!("{e}");
    Reason::InputTree
}

/// Output paths a job names (relative to `cwd` or absolute), made absolute.
pub fn outputs_of<'a>(cwd: &Path, outputs: impl IntoIterator<Item = &'a str>) -> Vec<PathBuf> {
    outputs
        .into_iter()
        .map(|o| placement::absolute(cwd, o))
        .collect()
}
