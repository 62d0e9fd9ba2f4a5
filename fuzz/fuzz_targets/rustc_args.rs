//! rustc command lines (as cargo writes them): NUL-separated arguments.
#![no_main]
use libfuzzer_sys::fuzz_target;
use recast::invocation::rustc;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let args: Vec<String> = text.split('\0').map(str::to_string).collect();
    let env = std::collections::BTreeMap::new();
    if let Ok(r) = rustc::parse(&args, &env) {
        let _ = recast::invocation::render_all(&r.remote_args, &|p| p.to_string());
    }
    for triple in ["x86_64-apple-darwin", "x86_64-pc-windows-msvc", "wasm32-unknown-unknown"] {
        let _ = rustc::parse_with_host(&args, &env, &rustc::Naming::for_triple(triple));
    }
});
