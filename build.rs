//! Compiles the vendored protobuf definitions under `proto/` into Rust
//! (prost messages + tonic clients/servers). Pure Rust: `protox` parses the
//! .proto files, so no `protoc` binary is needed.

use std::io;
use std::path::{Path, PathBuf};

const PROTO_ROOT: &str = "proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    static_unwinder();

    let mut files = Vec::new();
    collect_protos(Path::new(PROTO_ROOT), &mut files)?;
    files.sort();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    let fds = protox::compile(&files, [PROTO_ROOT])?;

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;

    Ok(())
}

/// On glibc Linux, gcc's unwinder is linked in from `libgcc_eh.a` rather
/// than loaded from `libgcc_s.so.1` (std's default there; a static glibc
/// build does the same). Every wrapped compile starts this binary, and that
/// library's constructor asks the processor its features, CPUID after
/// CPUID: in a virtual machine each is a trap to the hypervisor, and all
/// of it, with the loading, was 3% of a 2 ms cache hit. The whole archive
/// is taken, since the crates that call the unwinder come after this one
/// on the link line; the linker's `--as-needed` then drops `libgcc_s`.
fn static_unwinder() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-lib=static:+whole-archive,-bundle=gcc_eh");
    }
}

/// Recursively collects every `*.proto` file below `dir`.
fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
