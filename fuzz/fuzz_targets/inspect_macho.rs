//! The Mach-O inspector (thin 64-bit, and fat) on untrusted bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let magic: &[u8] = match kind % 3 {
        0 => &[0xcf, 0xfa, 0xed, 0xfe], // MH_MAGIC_64, little-endian
        1 => &[0xca, 0xfe, 0xba, 0xbe], // FAT_MAGIC
        _ => &[0xce, 0xfa, 0xed, 0xfe], // MH_MAGIC
    };
    let mut bytes = magic.to_vec();
    bytes.extend_from_slice(rest);
    let _ = recast::toolchain::inspect::parse(&bytes);
});
