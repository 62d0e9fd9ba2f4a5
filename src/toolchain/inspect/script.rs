//! `#!` lines, read the way Linux's `binfmt_script` does: the interpreter
//! path up to the first blank, then the rest of the line (trimmed) as one
//! optional argument, all within the first 256 bytes. Following
//! `/usr/bin/env NAME` is the closure's job, which knows the `PATH`.

use super::{Binary, InspectError, malformed};

/// The kernel reads no further than this (`BINPRM_BUF_SIZE`).
const LINE_MAX: usize = 256;

pub(crate) fn parse(bytes: &[u8]) -> Result<Binary, InspectError> {
    let head = &bytes[2..bytes.len().min(LINE_MAX)];
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = std::str::from_utf8(line).map_err(|_| malformed("#! line is not UTF-8"))?;
    let line = line.trim_matches([' ', '\t', '\r']);
    let (interpreter, arg) = match line.find([' ', '\t']) {
        Some(i) => {
            let arg = line[i..].trim_matches([' ', '\t']);
            (&line[..i], (!arg.is_empty()).then(|| arg.to_owned()))
        }
        None => (line, None),
    };
    if interpreter.is_empty() {
        return Err(malformed("#! line names no interpreter"));
    }
    Ok(Binary::Script {
        interpreter: interpreter.to_owned(),
        arg,
    })
}

/// The program `/usr/bin/env` runs for a `#!` argument: `python3` in
/// `python3`, `-S python3 -u`, `-i PYTHONPATH=x python3` (env's own options
/// and `NAME=value` assignments skipped). `None` when there is none.
pub(crate) fn env_program(arg: &str) -> Option<&str> {
    let mut words = arg.split_ascii_whitespace();
    while let Some(w) = words.next() {
        match w {
            // Options of `env` that take a value as the next word.
            "-u" | "--unset" | "-C" | "--chdir" => {
                words.next();
            }
            _ if w.starts_with('-') || w.contains('=') => {}
            _ => return Some(w),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(s: &str) -> (String, Option<String>) {
        match parse(s.as_bytes()).unwrap() {
            Binary::Script { interpreter, arg } => (interpreter, arg),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn shebang_lines() {
        assert_eq!(script("#!/bin/sh\necho"), ("/bin/sh".into(), None));
        assert_eq!(
            script("#! /usr/bin/env  python3 -u \r\nx"),
            ("/usr/bin/env".into(), Some("python3 -u".into()))
        );
        assert_eq!(script("#!/bin/bash"), ("/bin/bash".into(), None));
        assert!(parse(b"#!\n").is_err());
        assert!(parse(b"#!   \t\nfoo").is_err());
        assert!(parse(b"#!/bin/\xff\n").is_err());
        // Past 256 bytes the kernel sees no more of the line.
        let long = format!("#!/bin/{}", "x".repeat(300));
        assert_eq!(script(&long).0.len(), LINE_MAX - 2);
    }

    #[test]
    fn env_arguments() {
        assert_eq!(env_program("python3"), Some("python3"));
        assert_eq!(env_program("-S python3 -u"), Some("python3"));
        assert_eq!(env_program("-u HOME A=b perl -w"), Some("perl"));
        assert_eq!(env_program("-i"), None);
    }
}
