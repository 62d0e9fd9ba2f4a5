//! `recast capabilities`: what the server says it can do, as text or JSON.
//!
//! Always asks the server afresh (and refreshes the on-disk cache), since
//! this is what one runs to see whether a server changed.

use std::process::ExitCode;

use crate::config::RemoteArgs;
use crate::remote::{Client, ServerCaps, SymlinkStrategy};
use anyhow::Context as _;

#[derive(clap::Args, Debug)]
pub struct CapabilitiesArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Print the capabilities as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: CapabilitiesArgs, client: Client) -> anyhow::Result<ExitCode> {
    let caps = client
        .fetch_capabilities()
        .await
        .with_context(|| format!("while asking {} for its capabilities", client.url()))?;
    if args.json {
        let mut v = serde_json::to_value(&caps)?;
        v["url"] = client.url().into();
        v["instance"] = client.instance().into();
        println!("{v}");
    } else {
        print!("{}", render(client.url(), client.instance(), &caps));
    }
    Ok(ExitCode::SUCCESS)
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// The human-readable report.
fn render(url: &str, instance: &str, c: &ServerCaps) -> String {
    let instance = if instance.is_empty() {
        "(default)"
    } else {
        instance
    };
    let advertised = if c.max_batch_total_size_bytes <= 0 {
        "no limit".to_string()
    } else {
        format!("{} bytes", c.max_batch_total_size_bytes)
    };
    let max_blob = if c.max_cas_blob_size_bytes <= 0 {
        "no limit".to_string()
    } else {
        format!("{} bytes", c.max_cas_blob_size_bytes)
    };
    let symlinks = match c.symlink_strategy {
        SymlinkStrategy::Allowed => "allowed",
        SymlinkStrategy::Disallowed => "disallowed",
        SymlinkStrategy::Unknown => "unspecified",
    };
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<22}{v}\n"));
    line("server", url.to_string());
    line("instance", instance.to_string());
    line(
        "api versions",
        format!("{} to {}", c.low_api_version, c.high_api_version),
    );
    line("digest functions", c.digest_functions.join(", "));
    line("remote execution", yes_no(c.exec_enabled).to_string());
    line(
        "batch limit",
        format!("{} bytes used (server: {advertised})", c.batch_limit),
    );
    line("max blob size", max_blob);
    line(
        "zstd",
        format!(
            "reads and ByteStream: {}, batch uploads: {}",
            yes_no(c.zstd),
            yes_no(c.zstd_batch_update)
        ),
    );
    line("absolute symlinks", symlinks.to_string());
    line(
        "action cache writes",
        yes_no(c.ac_update_enabled).to_string(),
    );
    line(
        "output_paths (2.1)",
        yes_no(c.supports_output_paths()).to_string(),
    );
    line(
        "Action.platform (2.2)",
        yes_no(c.supports_action_platform()).to_string(),
    );
    if c.assumed {
        out.push_str(
            "(the server does not implement GetCapabilities: REAPI 2.0 defaults assumed)\n",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_assumed_defaults() {
        let text = render("grpc://h:1", "", &ServerCaps::assumed_v2_0());
        assert!(text.contains("instance              (default)\n"), "{text}");
        assert!(
            text.contains("api versions          2.0.0 to 2.0.0\n"),
            "{text}"
        );
        assert!(text.contains("digest functions      SHA256\n"), "{text}");
        assert!(text.contains("REAPI 2.0 defaults assumed"), "{text}");
    }
}
