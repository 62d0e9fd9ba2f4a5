//! gcc's `-H` trace, read out of a compile's stderr (pure).
//!
//! With `-H`, gcc prints every header it enters, one per line, as dots
//! for the include depth, a space and the path as it opened it (the
//! string `-M` lists: system headers in their canonical spelling), and at
//! the very end a list of headers that could use include guards, after a
//! heading line. Diagnostics never start with a dot and a space, and the
//! guard list names only headers already traced, so both are told from
//! the compile's own messages line by line; what is left is the stderr
//! the compile gives without `-H`.
//!
//! A line that marks a precompiled header (`! file.gch` used, `x
//! file.gch` rejected) means the trace does not list what the compile
//! read: [`split`] gives `None`, and the caller lists the reads another
//! way.

/// gcc's heading for the headers that could use include guards (its
/// English text: the caller uses `-H` only where messages are not
/// translated).
pub const GUARDS_HEADING: &[u8] = b"Multiple include guards may be useful for:";

/// A compile's stderr, split.
#[derive(Debug, PartialEq, Eq)]
pub struct Trace {
    /// Every header entered, each once, in first-entered order.
    pub headers: Vec<String>,
    /// The stderr without the trace: the compile's own messages.
    pub rest: Vec<u8>,
}

/// Splits `stderr` into the trace and the rest; `None` where the trace
/// cannot be trusted to list every file read (a precompiled header, a
/// path that is not UTF-8).
pub fn split(stderr: &[u8]) -> Option<Trace> {
    let mut headers: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut rest = Vec::with_capacity(stderr.len());
    let mut in_guards = false;
    for line in stderr.split_inclusive(|&b| b == b'\n') {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        if in_guards {
            match std::str::from_utf8(text) {
                Ok(path) if seen.contains(path) => continue,
                _ => in_guards = false,
            }
        }
        let dots = text.iter().take_while(|&&b| b == b'.').count();
        if dots > 0 && text.get(dots) == Some(&b' ') && text.len() > dots + 1 {
            let path = std::str::from_utf8(&text[dots + 1..]).ok()?;
            if seen.insert(path.to_string()) {
                headers.push(path.to_string());
            }
            continue;
        }
        if text.starts_with(b"! ") || text.starts_with(b"x ") {
            return None;
        }
        if text == GUARDS_HEADING {
            in_guards = true;
            continue;
        }
        rest.extend_from_slice(line);
    }
    Some(Trace { headers, rest })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trace_and_the_guard_list_leave_the_messages_as_they_were() {
        let stderr = [
            "In file included from a.c:1:",
            ". a.h",
            ".. /usr/include/stdio.h",
            "a.h:3:5: warning: unused variable 'x' [-Wunused-variable]",
            "    3 |   int x;",
            "      |       ^",
            ".. ./b h.h",
            ". /usr/include/stdio.h",
            "Multiple include guards may be useful for:",
            "./b h.h",
            "a.h",
            "",
        ]
        .join("\n");
        let stderr = stderr.as_bytes();
        let t = split(stderr).unwrap();
        assert_eq!(t.headers, ["a.h", "/usr/include/stdio.h", "./b h.h"]);
        assert_eq!(
            String::from_utf8(t.rest).unwrap(),
            "In file included from a.c:1:\n\
             a.h:3:5: warning: unused variable 'x' [-Wunused-variable]\n    3 |   int x;\n      |       ^\n"
        );
    }

    #[test]
    fn a_line_after_the_guard_list_that_it_did_not_trace_is_kept() {
        let stderr =
            b". a.h\nMultiple include guards may be useful for:\na.h\n[{\"kind\": \"note\"}]";
        let t = split(stderr).unwrap();
        assert_eq!(t.rest, b"[{\"kind\": \"note\"}]");
        // A heading with nothing traced, and dots that are no trace line.
        let t = split(b"Multiple include guards may be useful for:\n...\n../a.c:1:1: error: x\n")
            .unwrap();
        assert!(t.headers.is_empty());
        assert_eq!(t.rest, b"...\n../a.c:1:1: error: x\n");
    }

    #[test]
    fn a_precompiled_header_is_no_trace_to_trust() {
        assert_eq!(split(b"! a.h.gch\n. b.h\n"), None);
        assert_eq!(split(b"x a.h.gch\n! a.h.gch\n"), None);
        assert_eq!(split(b". \xff.h\n"), None);
    }
}
