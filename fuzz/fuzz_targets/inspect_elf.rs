//! The ELF inspector on untrusted bytes (given the ELF magic, so every
//! input reaches the ELF parser): an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut bytes = b"\x7fELF".to_vec();
    bytes.extend_from_slice(data.strip_prefix(b"\x7fELF").unwrap_or(data));
    let _ = recast::toolchain::inspect::parse(&bytes);
});
