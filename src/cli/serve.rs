//! `recast serve`: runs the embedded REAPI server in the foreground.
//!
//! Only argument handling lives here (defaults, `--max-size 10G`,
//! `--platform KEY=VALUE`); the server itself is `crate::server`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::config;
use crate::server::{self, Listen, ServeOptions, TokenSource};

/// Arguments of `recast serve`.
#[derive(Clone, Debug, clap::Args)]
pub struct ServeArgs {
    /// Where to listen: HOST:PORT (port 0 picks a free port), or
    /// `unix:PATH` for a Unix socket that answers only this user. Printed
    /// on the first stdout line as `listening on grpc://HOST:PORT` or
    /// `listening on unix:PATH`.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8980")]
    pub listen: String,
    /// State directory (CAS, action cache, scratch space)
    /// [default: <cache dir>/server].
    #[arg(long, value_name = "PATH")]
    pub dir: Option<PathBuf>,
    /// CAS size bound; least recently used blobs are evicted past it.
    /// Accepts suffixes K, M, G, T (powers of 1024), e.g. 10G.
    #[arg(long, value_name = "BYTES", default_value = "20G", value_parser = crate::config::parse_size)]
    pub max_size: u64,
    /// Actions run at once [default: number of cores].
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Platform property every worker offers besides the host's OSFamily
    /// and ISA (repeatable; repeat a key to offer several values).
    #[arg(long = "platform", value_name = "KEY=VALUE", value_parser = parse_property)]
    pub platform: Vec<(String, String)>,
    /// How actions are isolated (see the values).
    #[arg(long, value_enum, default_value_t = super::worker::SandboxArg::Auto)]
    pub sandbox: super::worker::SandboxArg,
    /// Serve TLS (`grpcs://`) with this certificate chain (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (mutual TLS).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Refuse calls that do not send `authorization: Bearer TOKEN`, TOKEN
    /// being this file's content (surrounding whitespace ignored); that
    /// token may do everything.
    #[arg(long, value_name = "FILE", conflicts_with = "auth_tokens")]
    pub auth_token_file: Option<PathBuf>,
    /// Accept the bearer tokens listed in FILE, each with its scopes
    /// (read, write-cas, write-ac, execute); the file is read again when it
    /// changes. See README, "Tokens and scopes".
    #[arg(long, value_name = "FILE")]
    pub auth_tokens: Option<PathBuf>,
    /// Serve TCP without tokens or client certificates. Anyone who can
    /// reach the address, every local user included, can then run
    /// commands as this user and write its cache.
    #[arg(long)]
    pub allow_unauthenticated: bool,
    /// Check every stored blob against its digest, remove the corrupt
    /// ones, print what was found and exit (1 if anything was corrupt)
    /// instead of serving. Stop the server using --dir first.
    #[arg(long)]
    pub verify: bool,
    /// Stop after SECS without a call while no action runs (0: never).
    /// The embedded default's server is started with
    /// `RECAST_IDLE_TIMEOUT` (default 3600).
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub idle_timeout: u64,
}

/// Runs the server until SIGTERM or SIGINT.
pub async fn run(args: ServeArgs, sources: &config::Sources) -> anyhow::Result<ExitCode> {
    let dir = match args.dir {
        // Actions run in directories under it, each as its own working
        // directory: a relative name would be resolved twice.
        Some(d) => std::path::absolute(&d)
            .with_context(|| format!("--dir {}: cannot make it absolute", d.display()))?,
        None => {
            let cache = config::cache_dir(&sources.env)?;
            crate::fsutil::ensure_private_dir(&cache)?;
            cache.join("server")
        }
    };
    if args.verify {
        return verify(&dir, args.max_size).await;
    }
    let listen = match args.listen.strip_prefix("unix:") {
        Some(path) => {
            let path = PathBuf::from(path.strip_prefix("//").unwrap_or(path));
            anyhow::ensure!(
                path.is_absolute(),
                "--listen unix:{}: give the socket's absolute path",
                path.display()
            );
            Listen::Unix(path)
        }
        None => Listen::Tcp(resolve(&args.listen).await?),
    };
    let workers = match args.workers {
        Some(0) => anyhow::bail!("--workers must be at least 1"),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let sandbox = args.sandbox.checked()?;
    let read = |p: &PathBuf, what: &str| {
        std::fs::read(p).with_context(|| format!("reading the {what} {}", p.display()))
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(server::TlsFiles {
            cert: read(cert, "TLS certificate")?,
            key: read(key, "TLS key")?,
            client_ca: args
                .tls_client_ca
                .as_ref()
                .map(|p| read(p, "client CA"))
                .transpose()?,
        }),
        _ => None,
    };
    let tokens = match (&args.auth_token_file, &args.auth_tokens) {
        (Some(p), _) => {
            let token = String::from_utf8(read(p, "auth token file")?)
                .with_context(|| format!("{} is not text", p.display()))?
                .trim()
                .to_string();
            anyhow::ensure!(!token.is_empty(), "{} holds no token", p.display());
            Some(TokenSource::Single(token))
        }
        (None, Some(p)) => Some(TokenSource::File(p.clone())),
        (None, None) => None,
    };
    if let Listen::Tcp(addr) = &listen
        && tokens.is_none()
        && args.tls_client_ca.is_none()
    {
        let who = who_am_i(&sources.env);
        if !args.allow_unauthenticated {
            anyhow::bail!(
                "refusing to listen on {addr} without authentication: every local user{} could \
                 run commands as {who} and write its cache. Give --auth-tokens FILE (or \
                 --auth-token-file FILE, or --tls-client-ca with --tls-cert/--tls-key), listen \
                 on unix:PATH (this user only), or accept the risk with --allow-unauthenticated.",
                if addr.ip().is_loopback() {
                    ""
                } else {
                    " and anyone who can reach this address"
                }
            );
        }
        let warning = format!(
            "recast serve: WARNING: listening on {addr} without authentication \
             (--allow-unauthenticated): anyone who can reach this address, every local user \
             included, can run commands as {who}."
        );
        eprintln!("{warning}");
        tracing::warn!("{warning}");
    }
    // The store holds every user's sources and objects: the owner's only.
    crate::fsutil::ensure_private_dir(&dir)?;
    server::serve(ServeOptions {
        listen,
        dir,
        max_size: args.max_size,
        workers,
        platform: args.platform,
        sandbox,
        tls,
        tokens,
        idle_timeout: (args.idle_timeout > 0)
            .then(|| std::time::Duration::from_secs(args.idle_timeout)),
    })
    .await?;
    // Actions still running sit on blocking threads the runtime would wait
    // for on drop; the server is done, so leave now.
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    std::process::exit(0)
}

/// `recast serve --verify`: every blob of the store in `dir` hashed.
async fn verify(dir: &std::path::Path, max_size: u64) -> anyhow::Result<ExitCode> {
    let dir = dir.to_path_buf();
    let started = std::time::Instant::now();
    let (report, dir) = tokio::task::spawn_blocking(move || {
        let store = crate::cas::store::DiskStore::open(&dir, max_size)?;
        Ok::<_, anyhow::Error>((store.verify_all(), dir))
    })
    .await??;
    println!(
        "{}: {} blobs, {} bytes checked in {:.1} s; {} corrupt{}",
        dir.display(),
        report.checked,
        report.bytes,
        started.elapsed().as_secs_f64(),
        report.corrupt.len(),
        if report.corrupt.is_empty() {
            ""
        } else {
            " (removed: clients upload them again)"
        }
    );
    for d in &report.corrupt {
        println!("corrupt {d}");
    }
    Ok(if report.corrupt.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// "uid 1000 (alice)", for messages about who would be exposed.
fn who_am_i(env: &config::Env) -> String {
    let uid = rustix::process::geteuid().as_raw();
    match env.get("USER").or_else(|| env.get("LOGNAME")) {
        Some(name) if !name.is_empty() => format!("uid {uid} ({name})"),
        _ => format!("uid {uid}"),
    }
}

/// `HOST:PORT` → the first address it resolves to.
async fn resolve(listen: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(addr) = listen.parse() {
        return Ok(addr);
    }
    tokio::net::lookup_host(listen)
        .await
        .with_context(|| format!("--listen {listen:?} is not HOST:PORT"))?
        .next()
        .with_context(|| format!("--listen {listen:?} resolves to no address"))
}

/// `KEY=VALUE` → the pair; the key must not be empty.
pub fn parse_property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::config::parse_size;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("10G"), Ok(10 << 30));
        assert_eq!(parse_size("20GiB"), Ok(20 << 30));
        assert_eq!(parse_size("3mb"), Ok(3 << 20));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("2T"), Ok(2 << 40));
        assert_eq!(parse_size("7B"), Ok(7));
        assert!(parse_size("").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("10X").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn properties() {
        assert_eq!(
            parse_property("ISA=x86-64"),
            Ok(("ISA".into(), "x86-64".into()))
        );
        assert_eq!(parse_property("k=a=b"), Ok(("k".into(), "a=b".into())));
        assert_eq!(parse_property("k="), Ok(("k".into(), String::new())));
        assert!(parse_property("=v").is_err());
        assert!(parse_property("novalue").is_err());
    }

    #[test]
    fn defaults_and_flags() {
        let a = Cli::parse_from(["x"]).serve;
        assert_eq!(a.listen, "127.0.0.1:8980");
        assert_eq!(a.max_size, 20 << 30);
        assert!(a.dir.is_none() && a.workers.is_none() && a.platform.is_empty());
        let a = Cli::parse_from([
            "x",
            "--listen",
            "127.0.0.1:0",
            "--dir",
            "/d",
            "--max-size",
            "1G",
            "--workers",
            "3",
            "--platform",
            "Pool=a",
            "--platform",
            "Pool=b",
        ])
        .serve;
        assert_eq!(a.listen, "127.0.0.1:0");
        assert_eq!(a.dir, Some(PathBuf::from("/d")));
        assert_eq!(a.max_size, 1 << 30);
        assert_eq!(a.workers, Some(3));
        assert_eq!(a.platform.len(), 2);
        assert!(Cli::try_parse_from(["x", "--platform", "nokey"]).is_err());
    }
}
