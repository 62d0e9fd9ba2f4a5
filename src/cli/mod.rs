//! Command-line entry: argument parsing and dispatch, nothing else.
//!
//! A command line that names a compiler (`recast gcc …`, `recast
//! /path/to/rustc …` as cargo's `RUSTC_WRAPPER` runs it, or recast invoked
//! through a link named `gcc`) goes to the wrapper (`crate::wrap`) before
//! clap sees it. Otherwise each subcommand lives in its own file with its
//! own `Args` struct; this module resolves the remote configuration (flag >
//! env > file), starts the embedded server when nothing is configured, and
//! hands a connected client to the subcommand.

mod capabilities;
mod doctor;
mod front;
mod platform;
mod run;
mod serve;
mod setup;
mod stats;
mod toolchain;
mod worker;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config;

#[derive(Parser, Debug)]
#[command(
    name = "recast",
    version,
    about = "Run commands on any Remote Execution API v2 server",
    long_about = "recast runs commands on a server speaking the Bazel \
Remote Execution API v2 (BuildGrid, Buildbarn, NativeLink, BuildBuddy, EngFlow), or on its \
own embedded server, which it starts on demand when no server is configured.\n\n\
Server: --remote, else RECAST_REMOTE, else `remote` in $XDG_CONFIG_HOME/recast/config.toml, \
else the embedded per-user server."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the embedded REAPI server (CAS, action cache, execution).
    Serve(serve::ServeArgs),
    /// Run one command remotely: upload a directory, execute, write outputs back.
    Run(run::RunArgs),
    /// Show what a server supports.
    Capabilities(capabilities::CapabilitiesArgs),
    /// Stop the embedded per-user server and the warm fronts started on demand.
    StopServer,
    /// Keep a warm connection to a remote server for this user's compiles
    /// (started on demand; see RECAST_FRONT).
    Front(front::FrontArgs),
    /// Show the platform properties recast sends, and the server profiles.
    Platform(platform::PlatformArgs),
    /// Check a server: connection, capabilities, auth, a worker for this platform, and the link (which mode pays).
    Doctor(doctor::DoctorArgs),
    /// Execute actions for a Remote Workers API scheduler (BuildGrid).
    Worker(worker::WorkerArgs),
    /// Package compilers into CAS trees and publish them on the server.
    Toolchain(toolchain::ToolchainArgs),
    /// Show what wrapped compiles did: hits, remote runs, local runs, fallbacks.
    Stats(stats::StatsArgs),
    /// Set a build tool up to compile through recast (`recast setup cargo`).
    Setup(setup::SetupArgs),
    /// Send results that compiles left in an outbox (started by compiles
    /// themselves; see RECAST_PUBLISH).
    #[command(hide = true)]
    PublishPending {
        /// The outbox, `<cache>/outbox/SERVER`.
        dir: std::path::PathBuf,
    },
}

/// Subcommand names, so a compiler named like one is never mistaken.
const SUBCOMMANDS: [&str; 14] = [
    "serve",
    "publish-pending",
    "front",
    "run",
    "capabilities",
    "stop-server",
    "platform",
    "doctor",
    "worker",
    "toolchain",
    "stats",
    "setup",
    "help",
    "version",
];

/// Parses the command line `argv` (the program's name first) and runs the
/// subcommand on a tokio runtime.
pub fn main(argv: Vec<std::ffi::OsString>) -> ExitCode {
    if let crate::wrap::Detected::Compiler {
        name, args_from, ..
    } = crate::wrap::entry::detect(&argv, &SUBCOMMANDS)
    {
        // The compiler's stderr is the user's: nothing of recast's unless
        // RECAST_LOG asks (with no subscriber, every event costs nothing,
        // and no filter is built: a hit is under 2 ms).
        if std::env::var_os(config::vars::LOG).is_some() {
            init_logging("off");
        }
        return crate::wrap::main(argv, name, args_from);
    }
    let cli = Cli::parse_from(argv);
    init_logging("warn");
    if !matches!(
        cli.command,
        Command::Serve(_) | Command::Worker(_) | Command::Front(_)
    ) {
        quiet_on_closed_pipe();
    }
    // The front only copies frames: on one thread they never cross threads.
    let runtime = match if matches!(cli.command, Command::Front(_)) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    }
    .enable_all()
    .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("recast: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(async {
        let sources = config::Sources::read()?;
        dispatch(cli.command, &sources).await
    }) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("recast: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Runs one command with the environment and config file read once.
async fn dispatch(command: Command, sources: &config::Sources) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => serve::run(args, sources).await,
        Command::Front(args) => front::run(args, sources).await,
        Command::Run(args) => {
            let client = connect(&args.remote, sources).await?;
            run::run(args, client, sources).await
        }
        Command::Capabilities(args) => {
            let client = connect(&args.remote, sources).await?;
            capabilities::run(args, client).await
        }
        Command::Platform(args) => platform::run(args, sources),
        Command::Doctor(args) => doctor::run(args, sources).await,
        Command::Worker(args) => worker::run(args, sources).await,
        Command::Toolchain(args) => toolchain::run(args, sources).await,
        Command::Stats(args) => stats::run(args, sources),
        Command::Setup(args) => setup::run(args, sources),
        Command::StopServer => {
            let dir = crate::session::cache_dir(&sources.env)?;
            crate::session::embedded::stop(&dir)
        }
        Command::PublishPending { dir } => {
            crate::wrap::outbox::main(&dir).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub use crate::session::connect;

/// A command whose reader goes away (`recast toolchain inspect … | head`)
/// ends quietly, as coreutils and ripgrep do, instead of panicking in
/// `println!`: SIGPIPE gets its default action back (Rust ignores it).
/// Servers keep ignoring it: a client that hangs up must not stop them.
fn quiet_on_closed_pipe() {
    // SAFETY: `signal` with SIG_DFL installs no handler code, and this
    // runs before the process starts any thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Logs to stderr as `RECAST_LOG` says, else at `default`.
fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env(config::vars::LOG)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
