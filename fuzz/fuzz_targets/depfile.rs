//! Make-style depfiles and rustc dep-info.
#![no_main]
use libfuzzer_sys::fuzz_target;
use recast::invocation::depfile;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(d) = depfile::parse(text)
    {
        let _ = depfile::prerequisites(&d);
    }
});
