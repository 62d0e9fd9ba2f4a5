//! Response files: the first line is the command line, the rest is what
//! every `@file` holds (including `@file`s of its own: recursion).
#![no_main]
use libfuzzer_sys::fuzz_target;
use recast::invocation::args;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (line, body) = text.split_once('\n').unwrap_or((text, ""));
    let argv: Vec<String> = line.split(' ').map(str::to_string).collect();
    let read = |_: &str| Ok(body.to_string());
    let _ = args::expand(&argv, &read);
    let _ = args::expand_rustc(&argv, &read);
    let _ = args::split_gcc(body);
    let _ = args::split_shell(body);
});
