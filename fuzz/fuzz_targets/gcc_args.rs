//! gcc/clang command lines: NUL-separated arguments; the parser must never
//! panic, and a plan it accepts must render back to arguments.
#![no_main]
use libfuzzer_sys::fuzz_target;
use recast::invocation::gcc;
use recast::toolchain::family::Family;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let args: Vec<String> = text.split('\0').map(str::to_string).collect();
    for family in [Family::Gcc, Family::Clang] {
        if let Ok(c) = gcc::parse("gcc", &args, family) {
            let _ = recast::invocation::render_all(&c.remote_args, &|p| p.to_string());
            let _ = recast::invocation::render_all(&c.scan.args, &|p| p.to_string());
        }
    }
});
