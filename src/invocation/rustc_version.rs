//! `rustc -vV` output, read from its text (running rustc is the
//! toolchain inspector's job).

/// What `rustc -vV` reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RustcVersion {
    /// The first line, e.g. `rustc 1.95.0 (59807616e 2026-04-14)`.
    pub version_line: String,
    /// `release:`, e.g. `1.95.0` or `1.97.0-nightly`.
    pub release: String,
    /// `commit-hash:`; None when absent or `unknown` (some distro builds).
    pub commit_hash: Option<String>,
    /// `commit-date:`; None when absent or `unknown`.
    pub commit_date: Option<String>,
    /// `host:`, the default target, e.g. `x86_64-unknown-linux-gnu`.
    pub host: String,
    /// `LLVM version:`; None for a rustc built without LLVM.
    pub llvm_version: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("not `rustc -vV` output (the first line is {0:?}); is this compiler rustc?")]
    NotRustc(String),
    #[error("`rustc -vV` output has no `{0}:` line")]
    Missing(&'static str),
}

/// Reads `rustc -vV` output.
pub fn parse_version(vv: &str) -> Result<RustcVersion, VersionError> {
    let first = vv.lines().next().unwrap_or_default().trim();
    if !first.starts_with("rustc ") {
        return Err(VersionError::NotRustc(first.to_string()));
    }
    let field = |name: &str| -> Option<String> {
        vv.lines()
            .skip(1)
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let known = |v: Option<String>| v.filter(|v| v != "unknown");
    Ok(RustcVersion {
        version_line: first.to_string(),
        release: field("release").ok_or(VersionError::Missing("release"))?,
        commit_hash: known(field("commit-hash")),
        commit_date: known(field("commit-date")),
        host: field("host").ok_or(VersionError::Missing("host"))?,
        llvm_version: field("LLVM version"),
    })
}
