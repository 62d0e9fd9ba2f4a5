//! `recast front`: this user's warm front for a remote server, in the
//! foreground. Wrapped compiles start it themselves when they need it
//! (`RECAST_FRONT`); this command is for running one by hand.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{self, Endpoint, RemoteArgs};

/// Arguments of `recast front`.
#[derive(Clone, Debug, clap::Args)]
pub struct FrontArgs {
    /// The Unix socket to listen on, `unix:PATH` (0600; only this user's
    /// processes are answered). Printed on the first stdout line as
    /// `listening on unix:PATH`.
    #[arg(long, value_name = "unix:PATH")]
    pub listen: String,
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Stop after SECS without a call while none is open (0: never).
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub idle_timeout: u64,
}

/// Forwards calls until SIGTERM, SIGINT or the idle timeout.
pub async fn run(args: FrontArgs, sources: &config::Sources) -> anyhow::Result<ExitCode> {
    let path = args
        .listen
        .strip_prefix("unix:")
        .map(|p| PathBuf::from(p.strip_prefix("//").unwrap_or(p)))
        .filter(|p| p.is_absolute())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--listen {}: a front listens on a Unix socket, unix:/ABSOLUTE/PATH",
                args.listen
            )
        })?;
    let cfg = config::resolve(&args.remote, &sources.env, &sources.file)?;
    let Endpoint::Url(url) = &cfg.endpoint else {
        anyhow::bail!(
            "a front forwards to a remote server: give it with --remote grpc://HOST:PORT \
             (or grpcs://)"
        );
    };
    crate::front::serve(crate::front::FrontOptions {
        listen: path,
        upstream: url.clone(),
        remote: cfg.clone(),
        idle_timeout: (args.idle_timeout > 0)
            .then(|| std::time::Duration::from_secs(args.idle_timeout)),
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}
