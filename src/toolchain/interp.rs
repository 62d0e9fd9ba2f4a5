//! An ELF executable's interpreter (`PT_INTERP`), read and replaced in
//! place, so a toolchain runs from a plain directory: the kernel resolves
//! a relative interpreter against the working directory of the process
//! that calls `execve`, and every program of a compile (the driver, `cc1`,
//! `as`, `collect2`, `ld`, the linker rustc runs) runs in the action's
//! working directory, where a link named as the new interpreter leads to
//! the bundle's own loader.
//!
//! Pure: bytes in, bytes out. Only the program headers are read; a file
//! that is not an ELF executable with an interpreter is left alone.

/// Where the interpreter's path sits in the file: offset and size of the
/// `PT_INTERP` segment (its string, NUL included, and any padding).
pub fn interp_slot(bytes: &[u8]) -> Option<(usize, usize)> {
    if bytes.len() < 52 || &bytes[..4] != b"\x7fELF" {
        return None;
    }
    let is64 = match bytes[4] {
        1 => false,
        2 => true,
        _ => return None,
    };
    let le = match bytes[5] {
        1 => true,
        2 => false,
        _ => return None,
    };
    let u16_at = |o: usize| -> Option<u64> {
        let b: [u8; 2] = bytes.get(o..o + 2)?.try_into().ok()?;
        Some(u64::from(if le {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        }))
    };
    let u32_at = |o: usize| -> Option<u64> {
        let b: [u8; 4] = bytes.get(o..o + 4)?.try_into().ok()?;
        Some(u64::from(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }))
    };
    let u64_at = |o: usize| -> Option<u64> {
        let b: [u8; 8] = bytes.get(o..o + 8)?.try_into().ok()?;
        Some(if le {
            u64::from_le_bytes(b)
        } else {
            u64::from_be_bytes(b)
        })
    };
    let word = |o: usize| if is64 { u64_at(o) } else { u32_at(o) };
    let (phoff, phentsize, phnum) = if is64 {
        (u64_at(0x20)?, u16_at(0x36)?, u16_at(0x38)?)
    } else {
        (u32_at(0x1c)?, u16_at(0x2a)?, u16_at(0x2c)?)
    };
    for i in 0..phnum {
        let ph = usize::try_from(phoff.checked_add(i.checked_mul(phentsize)?)?).ok()?;
        if u32_at(ph)? != 3 {
            continue;
        }
        // PT_INTERP: p_offset and p_filesz.
        let (offset, size) = if is64 {
            (word(ph + 8)?, word(ph + 32)?)
        } else {
            (word(ph + 4)?, word(ph + 16)?)
        };
        let (offset, size) = (usize::try_from(offset).ok()?, usize::try_from(size).ok()?);
        if size == 0 || offset.checked_add(size)? > bytes.len() {
            return None;
        }
        return Some((offset, size));
    }
    None
}

/// The interpreter `bytes` names, if any.
pub fn interp(bytes: &[u8]) -> Option<&str> {
    let (offset, size) = interp_slot(bytes)?;
    let raw = &bytes[offset..offset + size];
    let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
    std::str::from_utf8(&raw[..end]).ok()
}

/// `bytes` with its interpreter replaced by `new`, padded with NULs to the
/// old size; `None` when it names none, or `new` does not fit.
pub fn with_interp(bytes: &[u8], new: &str) -> Option<Vec<u8>> {
    let (offset, size) = interp_slot(bytes)?;
    if new.len() + 1 > size || new.contains('\0') {
        return None;
    }
    let mut out = bytes.to_vec();
    let slot = &mut out[offset..offset + size];
    slot.fill(0);
    slot[..new.len()].copy_from_slice(new.as_bytes());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_executables_interpreter_is_read_and_replaced() {
        let exe = std::env::current_exe().unwrap();
        let bytes = std::fs::read(&exe).unwrap();
        let old = interp(&bytes).expect("a dynamically linked test binary");
        assert!(old.contains("ld-linux") || old.contains("ld.so"), "{old}");
        let patched = with_interp(&bytes, ".r-ld").unwrap();
        assert_eq!(patched.len(), bytes.len());
        assert_eq!(interp(&patched), Some(".r-ld"));
        // Only the slot changed.
        let (offset, size) = interp_slot(&bytes).unwrap();
        assert_eq!(patched[..offset], bytes[..offset]);
        assert_eq!(patched[offset + size..], bytes[offset + size..]);
        assert!(with_interp(&bytes, &"x".repeat(size)).is_none(), "too long");
    }

    #[test]
    fn files_without_an_interpreter_are_left_alone() {
        assert_eq!(interp_slot(b"#!/bin/sh\necho hi\n"), None);
        assert_eq!(interp_slot(b"\x7fELF"), None);
        assert_eq!(
            with_interp(
                b"plain text that is long enough to be read as a header",
                "x"
            ),
            None
        );
    }
}
