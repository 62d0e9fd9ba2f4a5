//! `recast stats`: what wrapped compiles did, summed from the per-user
//! stats file (`crate::wrap::stats`).

use std::process::ExitCode;

use crate::config;
use crate::wrap::stats;

#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    /// Print one JSON object (field names are stable).
    #[arg(long)]
    pub json: bool,
    /// Start counting again from zero.
    #[arg(long)]
    pub zero: bool,
}

pub fn run(args: StatsArgs, sources: &config::Sources) -> anyhow::Result<ExitCode> {
    let dir = crate::session::cache_dir(&sources.env)?;
    if args.zero {
        stats::zero(&dir)?;
        eprintln!("recast: statistics zeroed");
        return Ok(ExitCode::SUCCESS);
    }
    let s = stats::read(&dir)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(ExitCode::SUCCESS);
    }
    let pct = |n: u64| {
        if s.counts.compiles == 0 {
            0.0
        } else {
            100.0 * n as f64 / s.counts.compiles as f64
        }
    };
    println!("compiles            {:>10}", s.counts.compiles);
    println!(
        "cache hits          {:>10}  {:5.1} %",
        s.counts.cache_hits,
        pct(s.counts.cache_hits)
    );
    if s.counts.cache_hits > 0 {
        let server = s.counts.cache_hits - s.local_hits.min(s.counts.cache_hits);
        println!("  {:<28}{:>8}", "read here, no call", s.local_hits);
        println!("  {:<28}{:>8}", "from the server", server);
    }
    println!(
        "remote executions   {:>10}  {:5.1} %",
        s.counts.remote_executions,
        pct(s.counts.remote_executions)
    );
    if s.counts.compile_errors > 0 {
        println!("  compile errors            {:>8}", s.counts.compile_errors);
    }
    if s.remote_false_failures > 0 {
        println!(
            "  remote false failures     {:>8}  (failed remotely, compiled here; see {})",
            s.remote_false_failures,
            crate::wrap::log::path(&dir).display()
        );
    }
    println!(
        "local runs          {:>10}  {:5.1} %",
        s.counts.local_runs,
        pct(s.counts.local_runs)
    );
    if s.compiled_first > 0 {
        println!(
            "  {:<28}{:>8}  (listed their own reads: no scan first)",
            "of which compiled first", s.compiled_first
        );
    }
    for (reason, n) in &s.local_reasons {
        println!("  {reason:<28}{n:>8}");
    }
    println!(
        "fallbacks           {:>10}  {:5.1} %",
        s.counts.fallbacks,
        pct(s.counts.fallbacks)
    );
    for (cause, n) in &s.fallback_causes {
        println!("  {cause:<28}{n:>8}");
    }
    if !s.by_family.is_empty() {
        println!(
            "{:<20}{:>10}{:>10}{:>10}{:>10}{:>10}",
            "by family", "compiles", "hits", "remote", "local", "fallbacks"
        );
        for (family, f) in &s.by_family {
            println!(
                "  {family:<18}{:>10}{:>10}{:>10}{:>10}{:>10}",
                f.compiles, f.cache_hits, f.remote_executions, f.local_runs, f.fallbacks
            );
        }
    }
    if s.results_queued > 0 || s.results_published_later > 0 {
        println!(
            "results sent later  {:>10}  of {} queued (compiled here; RECAST_PUBLISH)",
            s.results_published_later, s.results_queued
        );
    }
    println!("bytes uploaded      {:>10}", s.bytes_uploaded);
    println!("bytes downloaded    {:>10}", s.bytes_downloaded);
    println!(
        "time saved          {:>10.1} s",
        s.time_saved_ms as f64 / 1000.0
    );
    // The local tier in front of a remote server, if one was ever used.
    let tier = crate::session::tier_dir(&dir);
    if let Some(bytes) = std::fs::read_to_string(tier.join("size"))
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
    {
        let bound = config::resolve_wrap(&sources.env, &sources.file)
            .map(|w| format!(" of {}", mib(w.tier_size)))
            .unwrap_or_default();
        println!(
            "local tier          {:>10}{bound}  ({})",
            mib(bytes),
            tier.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}
