//! `recast toolchain`: inspect, package, publish and manage toolchains.
//!
//! - `inspect PATH`: the loader closure of one binary, as a tree or JSON.
//! - `package --compiler PATH`: the bundle, locally (root digest, manifest).
//! - `upload --compiler PATH` (or `--archive FILE…`): package and publish
//!   in the server's registry.
//! - `export --compiler PATH -o FILE.tar.gz`: the bundle as a deterministic
//!   tar.gz (an sccache-dist `path_override` archive).
//! - `list`, `show NAME|DIGEST`, `rm NAME|DIGEST`: the server's registry.
//!
//! The work is in `crate::toolchain`; this file turns flags into requests
//! and results into text.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, bail};

use crate::config::{self, Env, RemoteArgs};
use crate::remote::UploadStats;
use crate::toolchain::archive::{self, ArchiveFs};
use crate::toolchain::bundle::{self, Bundle};
use crate::toolchain::family::{Family, ProbeOptions};
use crate::toolchain::index::FileIndex;
use crate::toolchain::inspect::{self, ClosureOptions};
use crate::toolchain::local::{self, Request};
use crate::toolchain::{FileSource, HostFs, registry};

#[derive(clap::Args, Debug)]
pub struct ToolchainArgs {
    #[command(subcommand)]
    pub command: ToolchainCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum ToolchainCommand {
    /// Show every file the loader opens to run a binary, and why.
    Inspect(InspectArgs),
    /// Package a compiler into a CAS tree locally; print its root digest.
    Package(PackageArgs),
    /// Package a compiler and publish it in the server's registry.
    Upload(UploadArgs),
    /// Write a compiler's bundle as a deterministic tar.gz.
    Export(ExportArgs),
    /// List the toolchains published on the server.
    List(ListArgs),
    /// Show one published toolchain's manifest.
    Show(ShowArgs),
    /// Remove a toolchain from the server's registry.
    Rm(ShowArgs),
    /// Send a toolchain upload a compile left for the background (started
    /// by compiles themselves; see RECAST_TOOLCHAIN_UPLOAD).
    #[command(hide = true)]
    PushPending(PushPendingArgs),
}

#[derive(clap::Args, Debug)]
pub struct PushPendingArgs {
    /// The upload's description, `<cache>/uploads/NAME.json`.
    pub file: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// The binary (or script) to inspect.
    pub path: PathBuf,
    /// Print the closure as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct CompilerArgs {
    /// The compiler: a path, or a name looked up on PATH.
    #[arg(long, value_name = "PATH", required_unless_present = "archives")]
    pub compiler: Option<PathBuf>,
    /// Read the toolchain from archives instead, without extracting them:
    /// Rust dist tarballs (`rust-<ver>-<host>.tar.gz`, or its component
    /// tarballs) merged into one sysroot, or rooted archives (sccache's
    /// `--package-toolchain` output, a base system's libc). Repeatable.
    #[arg(long = "archive", value_name = "FILE", conflicts_with = "compiler")]
    pub archives: Vec<PathBuf>,
    /// With --archive: the compiler inside the archives (`bin/rustc`,
    /// `usr/bin/gcc`), when there is more than one.
    #[arg(long, value_name = "PATH", requires = "archives")]
    pub entry: Option<PathBuf>,
    /// Include the libraries for this target (repeatable; default: the
    /// compiler's own).
    #[arg(long = "target", value_name = "TRIPLE")]
    pub targets: Vec<String>,
    /// Package this sysroot with the compiler.
    #[arg(long, value_name = "DIR")]
    pub sysroot: Option<PathBuf>,
    /// Include what linking needs (linker, crt files, rust-lld).
    #[arg(long)]
    pub linking: bool,
}

#[derive(clap::Args, Debug)]
pub struct PackageArgs {
    #[command(flatten)]
    pub compiler: CompilerArgs,
    /// Print the manifest as JSON, with whether it came from the local
    /// index and how long packaging took.
    #[arg(long)]
    pub json: bool,
    /// Print every path in the bundle (source paths), one per line.
    #[arg(long, conflicts_with = "json")]
    pub list: bool,
}

#[derive(clap::Args, Debug)]
pub struct UploadArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    #[command(flatten)]
    pub compiler: CompilerArgs,
    /// Print what was published as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub compiler: CompilerArgs,
    /// The archive to write (`.tar.gz`); it appears whole or not at all.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// A toolchain name (`rustc-1.91.0-x86_64-linux`) or digest.
    pub what: String,
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: ToolchainArgs, sources: &config::Sources) -> anyhow::Result<ExitCode> {
    match args.command {
        ToolchainCommand::Inspect(a) => inspect_cmd(a),
        ToolchainCommand::Package(a) => package_cmd(a).await,
        ToolchainCommand::Upload(a) => upload_cmd(a, sources).await,
        ToolchainCommand::Export(a) => export_cmd(a).await,
        ToolchainCommand::List(a) => list_cmd(a, sources).await,
        ToolchainCommand::Show(a) => show_cmd(a, false, sources).await,
        ToolchainCommand::Rm(a) => show_cmd(a, true, sources).await,
        ToolchainCommand::PushPending(a) => {
            let client = crate::session::connect(&RemoteArgs::default(), sources).await?;
            crate::wrap::upload::push_pending(&a.file, &client).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn env_paths(name: &str) -> Vec<PathBuf> {
    std::env::var_os(name)
        .map(|v| {
            std::env::split_paths(&v)
                .filter(|p| p.is_absolute())
                .collect()
        })
        .unwrap_or_default()
}

/// `name` as an absolute path: as given if it has a `/`, else from PATH.
fn locate(name: &Path) -> anyhow::Result<PathBuf> {
    if name.components().count() > 1 || name.is_absolute() {
        let abs = if name.is_absolute() {
            name.to_path_buf()
        } else {
            std::env::current_dir()?.join(name)
        };
        if !abs.exists() {
            if let Ok(target) = std::fs::read_link(&abs) {
                bail!(
                    "{}: a broken symbolic link (to {}, which does not resolve)",
                    abs.display(),
                    target.display()
                );
            }
            bail!("{}: no such file", abs.display());
        }
        return Ok(abs);
    }
    for dir in env_paths("PATH") {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!(
        "{}: not found on PATH; give the compiler's full path",
        name.display()
    )
}

fn toolchain_cache() -> anyhow::Result<PathBuf> {
    Ok(crate::session::cache_dir(&Env::from_process())?.join("toolchains"))
}

fn inspect_cmd(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let path = locate(&args.path)?;
    let opts = ClosureOptions {
        ld_library_path: env_paths("LD_LIBRARY_PATH"),
        path: env_paths("PATH"),
        ..ClosureOptions::default()
    };
    let closure = inspect::closure(&HostFs, std::slice::from_ref(&path), &opts)?;
    // What the compiler is, where its files say so without running it
    // (zig, even a build for another machine).
    let identity = crate::toolchain::family::identity_from_files(&HostFs, &path);
    if args.json {
        let mut value = serde_json::to_value(&closure)?;
        if let (Some(id), Some(map)) = (&identity, value.as_object_mut()) {
            map.insert("identity".into(), serde_json::to_value(id)?);
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        if let Some(id) = &identity {
            println!(
                "{} {} for {}, read from its files",
                id.family, id.version, id.host
            );
        }
        print!("{}", closure.render_tree());
    }
    Ok(if closure.missing.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn request(args: &CompilerArgs, compiler: &Path) -> anyhow::Result<Request> {
    Ok(Request {
        compiler: locate(compiler)?,
        targets: args.targets.clone(),
        sysroot: args.sysroot.clone(),
        linking: args.linking,
        path: env_paths("PATH"),
        ld_library_path: env_paths("LD_LIBRARY_PATH"),
    })
}

/// A packaged toolchain and where its files are read from.
struct Packaged {
    bundle: Bundle,
    /// Recognised from the local index, without probing or hashing.
    warm: bool,
    /// The archives it came from (`None`: this machine's files).
    archive: Option<Box<ArchiveFs>>,
    seconds: f64,
}

impl Packaged {
    fn fs(&self) -> &dyn FileSource {
        match &self.archive {
            Some(fs) => fs.as_ref(),
            None => &HostFs,
        }
    }
}

/// Packages what `args` names: an installed compiler (through the local
/// index) or the compiler inside `--archive` files (read in place).
async fn resolve(args: &CompilerArgs) -> anyhow::Result<Packaged> {
    let started = Instant::now();
    if let Some(compiler) = &args.compiler {
        let req = request(args, compiler)?;
        let cache = toolchain_cache()?;
        let compiler = req.compiler.clone();
        let resolved = tokio::task::spawn_blocking(move || local::resolve(&cache, &req))
            .await
            .context("packaging thread")?
            .with_context(|| format!("packaging the toolchain of {}", compiler.display()))?;
        return Ok(Packaged {
            bundle: resolved.bundle,
            warm: resolved.warm,
            archive: None,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    let archives = args.archives.clone();
    let entry = args.entry.clone();
    let opts = ProbeOptions {
        targets: args.targets.clone(),
        sysroot: args.sysroot.clone(),
        linking: args.linking,
        path: Vec::new(),
    };
    let names = archives
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let (bundle, fs) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let fs = archive::open(&archives)?;
        let contents = archive::import(&fs, entry.as_deref(), &opts)?;
        let bundle = bundle::package(
            &fs,
            &contents,
            &ClosureOptions::default(),
            &mut FileIndex::in_memory(),
        )?;
        Ok((bundle, fs))
    })
    .await
    .context("packaging thread")?
    .with_context(|| format!("packaging the toolchain in {names}"))?;
    Ok(Packaged {
        bundle,
        warm: false,
        archive: Some(Box::new(fs)),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The bundle of `compiler` (a path or a name on PATH), packaged or
/// recognised from the local index; for commands that ship it.
pub async fn bundle_of(compiler: &Path) -> anyhow::Result<Bundle> {
    let args = CompilerArgs {
        compiler: Some(compiler.to_path_buf()),
        archives: Vec::new(),
        entry: None,
        targets: Vec::new(),
        sysroot: None,
        linking: false,
    };
    Ok(resolve(&args).await?.bundle)
}

async fn export_cmd(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let packaged = resolve(&args.compiler).await?;
    let out = args.output.clone();
    let stats = {
        let started = Instant::now();
        let stats = archive::export(&packaged.bundle, packaged.fs(), &out)
            .with_context(|| format!("exporting {}", packaged.bundle.manifest.name))?;
        (stats, started.elapsed().as_secs_f64())
    };
    let (stats, secs) = stats;
    let m = &packaged.bundle.manifest;
    println!("{}", out.display());
    eprintln!(
        "recast: {} {}: {} files, {} symlinks, {} → {} in {:.2} s",
        m.name,
        m.root,
        stats.files,
        stats.symlinks,
        human(stats.size),
        human(stats.compressed),
        secs
    );
    Ok(ExitCode::SUCCESS)
}

async fn package_cmd(args: PackageArgs) -> anyhow::Result<ExitCode> {
    let resolved = resolve(&args.compiler).await?;
    let secs = resolved.seconds;
    let m = &resolved.bundle.manifest;
    if args.json {
        let v = serde_json::json!({
            "manifest": m,
            "warm": resolved.warm,
            "seconds": secs,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if args.list {
        let mut out = std::io::stdout().lock();
        for p in resolved.bundle.listing.items.keys() {
            writeln!(out, "{}", p.display())?;
        }
    } else {
        println!("{}", m.root);
        eprintln!(
            "recast: {} {}: {} files, {} symlinks, {} ({}; {:.3} s)",
            m.name,
            m.host,
            m.files,
            m.symlinks,
            human(m.size),
            if resolved.warm {
                "unchanged, from the local index"
            } else {
                "packaged"
            },
            secs
        );
    }
    for p in &resolved.bundle.skipped {
        eprintln!("recast: warning: left out {} (name not UTF-8)", p.display());
    }
    Ok(ExitCode::SUCCESS)
}

async fn upload_cmd(args: UploadArgs, sources: &config::Sources) -> anyhow::Result<ExitCode> {
    let resolved = resolve(&args.compiler).await?;
    let secs = resolved.seconds;
    let client = super::connect(&args.remote, sources).await?;
    let tty = std::io::stderr().is_terminal() && !args.json;
    let started = Instant::now();
    let progress = move |sent: u64, total: u64| {
        if tty && total > 0 {
            let rate = sent as f64 / started.elapsed().as_secs_f64().max(1e-3);
            let left = if rate > 0.0 {
                format!(", {:.0} s left", total.saturating_sub(sent) as f64 / rate)
            } else {
                String::new()
            };
            eprint!(
                "\rrecast: uploading {} / {} ({}/s{left})   ",
                human(sent),
                human(total),
                human(rate as u64)
            );
            let _ = std::io::stderr().flush();
        }
    };
    let (bundle, relocated) = relocated_too(&client, &resolved, &progress).await?;
    let published = registry::publish(&client, resolved.fs(), &bundle, &progress)
        .await
        .with_context(|| format!("publishing {} to {}", bundle.manifest.name, client.url()))?;
    if tty {
        eprintln!();
    }
    // What was sent, the relocated variant's blobs included.
    let (sent_blobs, sent_bytes) = match &relocated {
        Ok(r) => (
            published.uploaded.blobs + r.blobs,
            published.uploaded.bytes + r.bytes,
        ),
        Err(_) => (published.uploaded.blobs, published.uploaded.bytes),
    };
    let upload_secs = started.elapsed().as_secs_f64();
    let m = &bundle.manifest;
    if args.json {
        let v = serde_json::json!({
            "name": m.name,
            "root": m.root.to_string(),
            "host": m.host.to_string(),
            "files": m.files,
            "size": m.size,
            "uploaded_blobs": sent_blobs,
            "uploaded_bytes": sent_bytes,
            "relocated": m.relocated.as_ref().map(|r| r.root.to_string()),
            "package_seconds": secs,
            "upload_seconds": upload_secs,
            "warm": resolved.warm,
        });
        println!("{v}");
    } else {
        println!("{} {}", m.name, m.root);
        eprintln!(
            "recast: published {} to {}: {} of {} blobs sent ({} of {}) in {:.2} s",
            m.name,
            client.url(),
            sent_blobs,
            published.blobs,
            human(sent_bytes),
            human(published.bytes),
            upload_secs
        );
        match relocated {
            Ok(_) => eprintln!(
                "recast: with its relocated variant, for workers that run actions in a plain directory"
            ),
            Err(why) => eprintln!(
                "recast: without a relocated variant ({why}): workers that run actions in a plain directory will not get it"
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The toolchain to publish: for one installed here, with its relocated
/// variant uploaded and named in the manifest (a client of another
/// platform cannot make it), and gcc's exec prefix, which such a client
/// cannot ask for. Beside it, what the variant's upload sent, or why
/// there is none.
async fn relocated_too(
    client: &crate::remote::Client,
    resolved: &Packaged,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> anyhow::Result<(Bundle, Result<UploadStats, String>)> {
    let bundle = &resolved.bundle;
    let mut manifest = bundle.manifest.clone();
    let shell = Path::new("/bin/sh");
    let sent = if resolved.archive.is_some() {
        Err("read from archives, not installed here".to_string())
    } else if !shell.is_file() {
        Err(format!("no launcher: {} is missing", shell.display()))
    } else {
        let cache = toolchain_cache()?;
        match crate::toolchain::relocate::relocate(&cache, bundle, shell) {
            Err(e) => Err(e),
            Ok(relocated) => {
                let sent = registry::upload_tree(client, &HostFs, &relocated, progress)
                    .await
                    .with_context(|| format!("uploading the relocated {}", manifest.name))?;
                let compiler = Path::new("/").join(&manifest.entry);
                let family = manifest.identity.family;
                let gcc_exec_prefix = (family == Family::Gcc)
                    .then(|| ask_exec_prefix(&compiler))
                    .flatten();
                let zig_lib_dir = (family == Family::Zig)
                    .then(|| zig_lib_dir(&compiler))
                    .flatten();
                manifest.relocated = Some(crate::toolchain::manifest::RelocatedTree {
                    root: relocated.manifest.root,
                    gcc_exec_prefix,
                    zig_lib_dir,
                    interpreter: (relocated.manifest.interpreter != manifest.interpreter)
                        .then(|| relocated.manifest.interpreter.clone())
                        .flatten(),
                    library_path: if relocated.manifest.library_path != manifest.library_path {
                        relocated.manifest.library_path.clone()
                    } else {
                        Vec::new()
                    },
                });
                Ok(sent)
            }
        }
    };
    let bundle = Bundle {
        manifest,
        tree: bundle.tree.clone(),
        files: bundle.files.clone(),
        closure: None,
        listing: bundle.listing.clone(),
        skipped: bundle.skipped.clone(),
        sources: bundle.sources.clone(),
    };
    Ok((bundle, sent))
}

/// gcc's exec prefix (`-print-search-dirs`' install dir less its machine
/// and version: `/usr/lib/gcc/`).
fn ask_exec_prefix(gcc: &Path) -> Option<String> {
    let out = std::process::Command::new(gcc)
        .arg("-print-search-dirs")
        .env("LC_ALL", "C")
        .output()
        .ok()?;
    crate::toolchain::family::parse_exec_prefix(&String::from_utf8_lossy(&out.stdout))
}

/// zig's library directory (`zig env`, run from `/` so that it is
/// absolute), as a tree path.
fn zig_lib_dir(zig: &Path) -> Option<String> {
    let out = std::process::Command::new(zig)
        .arg("env")
        .current_dir("/")
        .env_remove("ZIG_LIB_DIR")
        .output()
        .ok()?;
    let env =
        crate::toolchain::family::parse_zig_env(&String::from_utf8_lossy(&out.stdout)).ok()?;
    env.lib_dir.strip_prefix('/').map(str::to_string)
}

async fn list_cmd(args: ListArgs, sources: &config::Sources) -> anyhow::Result<ExitCode> {
    let client = super::connect(&args.remote, sources).await?;
    let all = registry::list(&client)
        .await
        .with_context(|| format!("reading the toolchain registry of {}", client.url()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else if all.is_empty() {
        eprintln!(
            "recast: no toolchains published on {}; `recast toolchain upload --compiler PATH` publishes one",
            client.url()
        );
    } else {
        for l in &all {
            println!(
                "{:<40} {:>9} {:>6} files  {}",
                l.name,
                human(l.size),
                l.files,
                l.root
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn show_cmd(
    args: ShowArgs,
    remove: bool,
    sources: &config::Sources,
) -> anyhow::Result<ExitCode> {
    let client = super::connect(&args.remote, sources).await?;
    if remove {
        let gone = registry::remove(&client, &args.what).await?;
        eprintln!("recast: removed {} from {}", gone.name, client.url());
        return Ok(ExitCode::SUCCESS);
    }
    let (_, manifest) = registry::show(&client, &args.what).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&manifest)?);
    } else {
        let m = &manifest;
        println!("name      {}", m.name);
        println!("family    {} {}", m.identity.family, m.identity.version);
        if let Some(c) = &m.identity.commit {
            println!("commit    {c}");
        }
        println!("host      {}", m.host);
        println!("entry     {}", m.entry);
        println!("root      {}", m.root);
        println!(
            "files     {} ({}), {} symlinks",
            m.files,
            human(m.size),
            m.symlinks
        );
        if let Some(g) = &m.min_glibc {
            println!("glibc     ≥ {g}");
        }
        if !m.targets.is_empty() {
            println!("targets   {}", m.targets.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
