//! Why a compile ran here: the keys `recast stats` counts, typed, so that
//! code which branches on one cannot misspell it.
//!
//! A [`Reason`] is why a compile runs here by design (it links, the
//! compiler runs for this machine only, …); a [`Cause`] is why a remote
//! attempt gave up (the server is unreachable, a blob was missing, …).
//! The strings exist only at the edge: [`Reason::key`] and [`Cause::key`]
//! are what the stats file records, and their tests keep them distinct.

use std::borrow::Cow;

/// Why a compile runs here by design: a `local_reasons` key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The command line's own verdict: the parser's typed reason, spelled
    /// by its own table (`linking`, `preprocess_only`, …).
    Parsed(&'static str),
    /// An argument that is not UTF-8.
    NonUtf8Argument,
    /// A response file that cannot be read.
    ResponseFile,
    /// `zig` with another subcommand than `cc` / `c++`.
    NotACompile,
    /// `zig cc` for this machine (`-target native`, or none) that cannot
    /// be pinned: the workers are another platform, or the pinned
    /// command would be another compile (`native`).
    ZigNativeTarget,
    /// An input named by a flag that is not a file.
    ExtraInputNotAFile,
    /// The compile cannot take the relocated layout its workers need.
    NotRelocatable,
    /// A registry toolchain has no relocated variant.
    RelocatedRegistryToolchain,
    /// A relocated compile's outputs name its working directory.
    RelocatedLeak,
    /// A unit for this machine (build script, proc-macro) where the
    /// workers are another platform.
    HostUnit,
    /// A twin asked for a unit that needs none.
    NoTwinNeeded,
    /// The workers' twin of a host unit is not there.
    NoTwin,
    /// rustc paths that relocated workers would record unmapped.
    RustcPathsNotRemapped,
    /// The compiler's own dependency scan failed.
    ScanFailed,
    /// The compiler's toolchain could not be packaged.
    Toolchain,
    /// The server lacks much of the toolchain, and its upload is going on
    /// in the background.
    ToolchainUploading,
    /// A rustc unit that links, with no linker to package.
    LinksNoLinker,
    /// The input root could not be built.
    InputTree,
    /// The Command could not be built.
    Command,
    /// The workers' platform cannot be told.
    Platform,
    /// The registry has no build of this compiler for the workers.
    NoToolchainForWorkers,
    /// Cache-only mode: the action cache had no result.
    CacheMiss,
    /// Remote mode across a network (results published in the
    /// background): a miss whose output is a linked program compiles here,
    /// since fetching its megabytes would cost more than compiling them.
    LinksHere,
    /// `RECAST_MODE=local`.
    ModeLocal,
    /// A compiler's name that others take too (`cc`), whose binary
    /// answers as no family recast knows.
    UnknownCompiler,
    /// The toolchain's probe found another family than the one decided
    /// for the compile (a file changed between the two).
    FamilyChanged,
}

impl Reason {
    /// The stats key.
    pub fn key(self) -> &'static str {
        match self {
            Reason::Parsed(key) => key,
            Reason::NonUtf8Argument => "non_utf8_argument",
            Reason::ResponseFile => "response_file",
            Reason::NotACompile => "not_a_compile",
            Reason::ZigNativeTarget => "zig_native_target",
            Reason::ExtraInputNotAFile => "extra_input_not_a_file",
            Reason::NotRelocatable => "not_relocatable",
            Reason::RelocatedRegistryToolchain => "relocated_registry_toolchain",
            Reason::RelocatedLeak => RELOCATED_LEAK,
            Reason::HostUnit => "host_unit",
            Reason::NoTwinNeeded => "no_twin_needed",
            Reason::NoTwin => "no_twin",
            Reason::RustcPathsNotRemapped => "rustc_paths_not_remapped",
            Reason::ScanFailed => "scan_failed",
            Reason::Toolchain => "toolchain",
            Reason::ToolchainUploading => "toolchain_uploading",
            Reason::LinksNoLinker => "links_no_linker",
            Reason::InputTree => "input_tree",
            Reason::Command => "command",
            Reason::Platform => "platform",
            Reason::NoToolchainForWorkers => "no_toolchain_for_workers",
            Reason::CacheMiss => "cache_miss",
            Reason::LinksHere => "links_here",
            Reason::ModeLocal => "mode_local",
            Reason::UnknownCompiler => "unknown_compiler",
            Reason::FamilyChanged => "family_changed",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key())
    }
}

/// The key of a relocated compile whose output names its working
/// directory: a reason (it runs here from then on) and a cause alike.
const RELOCATED_LEAK: &str = "relocated_output_leak";

/// Why a remote attempt gave up: a `fallback_causes` key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// No connection to the server.
    Unreachable,
    /// The TLS handshake failed.
    Tls,
    /// The server answered a call with this status.
    Status(tonic::Code),
    /// Blobs a result or an action needs are not on the server.
    MissingBlobs,
    /// A blob that is not what its digest says.
    BadBlob,
    /// An answer that breaks the protocol.
    Protocol,
    /// Reading or writing a file here failed.
    LocalIo,
    /// An output names the project root the action was moved from.
    LocationLeak,
    /// A relocated compile's output names its working directory.
    RelocatedLeak,
    /// The remote settings are wrong.
    Config,
    /// The server hashes with another function than SHA-256.
    DigestFunction,
    /// A result lacks (or repeats) a declared output.
    MissingOutputs,
    /// Execute ended with an error status.
    Execute,
    /// The compile failed where it was expected to succeed.
    CompileFailed,
    /// The server offers no remote execution.
    NoExecution,
    /// The worker could not run the toolchain.
    WorkerFailed,
    /// No worker ran the layout probe.
    NoWorker,
    /// This machine cannot build the layout probe.
    ProbeUnavailable,
    /// The workers' platform cannot be resolved.
    Platform,
    /// The toolchain registry could not be read.
    Registry,
    /// recast itself failed (a task panicked).
    Internal,
}

impl Cause {
    /// The stats key.
    pub fn key(self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Cause::Status(code) => {
                let name = crate::remote::code_name(code).to_ascii_lowercase();
                return Cow::Owned(format!("status_{name}"));
            }
            Cause::Unreachable => "unreachable",
            Cause::Tls => "tls",
            Cause::MissingBlobs => "missing_blobs",
            Cause::BadBlob => "bad_blob",
            Cause::Protocol => "protocol",
            Cause::LocalIo => "local_io",
            Cause::LocationLeak => "location_leak",
            Cause::RelocatedLeak => RELOCATED_LEAK,
            Cause::Config => "config",
            Cause::DigestFunction => "digest_function",
            Cause::MissingOutputs => "missing_outputs",
            Cause::Execute => "execute",
            Cause::CompileFailed => "compile_failed",
            Cause::NoExecution => "no_execution",
            Cause::WorkerFailed => "worker_failed",
            Cause::NoWorker => "no_worker",
            Cause::ProbeUnavailable => "probe_unavailable",
            Cause::Platform => "platform",
            Cause::Registry => "registry",
            Cause::Internal => "internal",
        })
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_distinct_snake_case() {
        let reasons = [
            Reason::NonUtf8Argument,
            Reason::ResponseFile,
            Reason::NotACompile,
            Reason::ZigNativeTarget,
            Reason::ExtraInputNotAFile,
            Reason::NotRelocatable,
            Reason::RelocatedRegistryToolchain,
            Reason::RelocatedLeak,
            Reason::HostUnit,
            Reason::NoTwinNeeded,
            Reason::NoTwin,
            Reason::RustcPathsNotRemapped,
            Reason::ScanFailed,
            Reason::Toolchain,
            Reason::ToolchainUploading,
            Reason::LinksNoLinker,
            Reason::InputTree,
            Reason::Command,
            Reason::Platform,
            Reason::NoToolchainForWorkers,
            Reason::CacheMiss,
            Reason::LinksHere,
            Reason::ModeLocal,
        ];
        let causes = [
            Cause::Unreachable,
            Cause::Tls,
            Cause::Status(tonic::Code::FailedPrecondition),
            Cause::Status(tonic::Code::Unavailable),
            Cause::MissingBlobs,
            Cause::BadBlob,
            Cause::Protocol,
            Cause::LocalIo,
            Cause::LocationLeak,
            Cause::RelocatedLeak,
            Cause::Config,
            Cause::DigestFunction,
            Cause::MissingOutputs,
            Cause::Execute,
            Cause::CompileFailed,
            Cause::NoExecution,
            Cause::WorkerFailed,
            Cause::NoWorker,
            Cause::ProbeUnavailable,
            Cause::Platform,
            Cause::Registry,
            Cause::Internal,
        ];
        let snake = |k: &str| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        let mut seen = std::collections::BTreeSet::new();
        for r in reasons {
            assert!(snake(r.key()), "{r:?}");
            assert!(seen.insert(r.key().to_string()), "{r:?} twice");
        }
        let mut seen = std::collections::BTreeSet::new();
        for c in causes {
            assert!(snake(&c.key()), "{c:?}");
            assert!(seen.insert(c.key().into_owned()), "{c:?} twice");
        }
        assert_eq!(
            Cause::Status(tonic::Code::FailedPrecondition).key(),
            "status_failed_precondition"
        );
        assert_eq!(Reason::RelocatedLeak.key(), Cause::RelocatedLeak.key());
    }
}
