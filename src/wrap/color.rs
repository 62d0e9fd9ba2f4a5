//! Colored diagnostics, without splitting the cache.
//!
//! Compilers color their diagnostics when stderr is a terminal, so asking
//! the same question of a remote compile would make a developer's build
//! and a CI build two different actions that never share a hit. As ccache
//! does, the remote compile always colors (a flag that changes no output
//! file), whether this process's stderr is a terminal stays out of every
//! key, and the escapes are taken out here when the user would not have
//! seen them: [`ColorPolicy::replay`].
//!
//! Pure but for [`terminal_colors`].

use std::io::IsTerminal as _;

/// How a job's remote diagnostics relate to what the user would see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorPolicy {
    /// The remote streams are what the user gets (the command line decides
    /// colors itself, or the compiler has none).
    AsIs,
    /// The remote compile colored; keep it when `want` says so.
    Forced { want: Want, encoding: Encoding },
}

/// When the user's own compile would have colored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    Always,
    Never,
    /// When stderr is a terminal (the compilers' default).
    IfTerminal,
}

/// Where the escapes sit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Raw `ESC [ … m` bytes in the text.
    Raw,
    /// Inside JSON strings, as `\u001b[…m` (rustc's `--error-format=json`).
    Json,
}

/// Whether the compilers' automatic choice colors this process's stderr:
/// a terminal, and `TERM` set and not `dumb` (gcc's rule; clang and rustc
/// decline a dumb terminal too).
pub fn terminal_colors(term: Option<&str>) -> bool {
    term.is_some_and(|t| t != "dumb") && std::io::stderr().is_terminal()
}

impl ColorPolicy {
    /// The stream as the user's own compile would have written it, given
    /// whether it would color a terminal's stderr ([`terminal_colors`]).
    pub fn replay(self, bytes: Vec<u8>, terminal: bool) -> Vec<u8> {
        let ColorPolicy::Forced { want, encoding } = self else {
            return bytes;
        };
        let keep = match want {
            Want::Always => true,
            Want::Never => false,
            Want::IfTerminal => terminal,
        };
        if keep {
            return bytes;
        }
        match encoding {
            Encoding::Raw => strip_raw(&bytes),
            Encoding::Json => strip_json(&bytes),
        }
    }
}

/// `bytes` without ANSI escape sequences: CSI (`ESC [ … final`) and OSC
/// (`ESC ] … BEL` or `ESC ] … ESC \`, gcc's hyperlinks).
pub fn strip_raw(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != 0x1b {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'[') => {
                // Parameters and intermediates, then one final byte @..~.
                let mut j = i + 2;
                while j < bytes.len() && !(0x40..=0x7e).contains(&bytes[j]) {
                    j += 1;
                }
                i = j + 1;
            }
            Some(b']') => {
                let mut j = i + 2;
                loop {
                    match bytes.get(j) {
                        None => break,
                        Some(0x07) => {
                            j += 1;
                            break;
                        }
                        Some(0x1b) if bytes.get(j + 1) == Some(&b'\\') => {
                            j += 2;
                            break;
                        }
                        Some(_) => j += 1,
                    }
                }
                i = j;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

/// `bytes` without CSI sequences written as JSON escapes (`\u001b[…m`).
pub fn strip_json(bytes: &[u8]) -> Vec<u8> {
    const ESC: &[u8] = b"\\u001b[";
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(ESC) {
            let mut j = i + ESC.len();
            while j < bytes.len() && !(0x40..=0x7e).contains(&bytes[j]) {
                j += 1;
            }
            i = j + 1;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_escapes_are_stripped_and_text_kept() {
        let colored = b"\x1b[01m\x1b[Ka.c:1:1:\x1b[m\x1b[K \x1b[01;31m\x1b[Kerror: \x1b[m\x1b[Kx \x1b]8;;https://gcc.gnu.org/x\x07-Wfoo\x1b]8;;\x07 \x1b]8;;u\x1b\\y\x1b]8;;\x1b\\\n";
        assert_eq!(strip_raw(colored), b"a.c:1:1: error: x -Wfoo y\n");
        assert_eq!(strip_raw(b"plain \xff text"), b"plain \xff text");
        assert_eq!(strip_raw(b"cut \x1b["), b"cut ");
    }

    #[test]
    fn json_escapes_are_stripped_inside_strings() {
        let line = br#"{"rendered":"\u001b[0m\u001b[1m\u001b[33mwarning\u001b[0m: x\n"}"#;
        assert_eq!(strip_json(line), br#"{"rendered":"warning: x\n"}"#);
    }

    #[test]
    fn the_policy_keeps_colors_only_where_the_user_would_see_them() {
        let forced = |want| ColorPolicy::Forced {
            want,
            encoding: Encoding::Raw,
        };
        let c = b"\x1b[31mred\x1b[m".to_vec();
        assert_eq!(forced(Want::IfTerminal).replay(c.clone(), true), c);
        assert_eq!(forced(Want::IfTerminal).replay(c.clone(), false), b"red");
        assert_eq!(forced(Want::Always).replay(c.clone(), false), c);
        assert_eq!(forced(Want::Never).replay(c.clone(), true), b"red");
        assert_eq!(ColorPolicy::AsIs.replay(c.clone(), false), c);
    }
}
