//! The `recast` binary.
//!
//! `main` is the C entry point rather than Rust's: std's start-up, skipped
//! here, reads `/proc/self/maps` to place a guard page under the main
//! thread's stack, installs signal handlers on an alternate stack and polls
//! the standard descriptors, about 60 µs in all. A cache hit runs in under
//! 2 ms, so that is 3% of each. What of it matters is kept: SIGPIPE is
//! ignored as std ignores it (a closed pipe is an error to handle, not a
//! death; children get it back, as std's `Command` resets it), and stdout
//! is flushed on the way out by `std::process::exit`. A stack overflow
//! is a plain SIGSEGV rather than std's message.
//!
//! Built as a test (`cargo test` makes one of every binary), the test
//! harness's own `main` stands instead.
#![cfg_attr(not(test), no_main)]

#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn main(argc: std::ffi::c_int, argv: *const *const std::ffi::c_char) -> std::ffi::c_int {
    // SAFETY: setting a signal's disposition to ignore touches no memory.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let code = recast::cli::main(args(argc, argv));
    // `ExitCode` has no stable way back to a number; a Unix exit status is
    // one byte, so the byte is the one that compares equal.
    let n = (0..=u8::MAX).find(|&n| std::process::ExitCode::from(n) == code);
    std::process::exit(n.map_or(1, i32::from))
}

/// The command line, from the C entry's own `argv`: std's
/// `env::args_os` is empty where the C library does not hand it to
/// constructors (musl, the static release build), since std's start-up
/// is skipped.
#[cfg(not(test))]
fn args(argc: std::ffi::c_int, argv: *const *const std::ffi::c_char) -> Vec<std::ffi::OsString> {
    use std::os::unix::ffi::OsStrExt;
    let n = usize::try_from(argc).unwrap_or(0);
    (0..n)
        .map(|i| {
            // SAFETY: the C runtime passes `argc` valid, NUL-terminated
            // strings in `argv`, alive for the whole process.
            let arg = unsafe { std::ffi::CStr::from_ptr(*argv.add(i)) };
            std::ffi::OsStr::from_bytes(arg.to_bytes()).to_owned()
        })
        .collect()
}

/// A cache hit's allocations come from a static arena, with no call to
/// the kernel (`recast::arena`).
#[global_allocator]
static ALLOC: recast::arena::Arena = recast::arena::Arena::new();
