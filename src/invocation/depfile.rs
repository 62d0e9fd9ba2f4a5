//! Make-style dependency files, as gcc/clang `-M`/`-MD` and
//! `rustc --emit=dep-info` write them, read from text (pure).
//!
//! Handled: `targets: prerequisites` rules, backslash-newline
//! continuations, the compilers' quoting (`\ ` for a space with the
//! backslashes before it doubled, `\#` for `#`, `$$` for `$`), the empty
//! rules `-MP` and rustc add for every header, and rustc's comment lines
//! `# env-dep:NAME[=VALUE]` (returned) and `# checksum:…` (skipped).
//! Not handled, because no compiler writes them: variables, recipes,
//! order-only prerequisites, Windows drive letters.
//!
//! Running the scan that produces the text, and mapping the listed paths
//! into an input root, are the wrapper's job.

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rule {
    pub targets: Vec<String>,
    pub prereqs: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Depfile {
    pub rules: Vec<Rule>,
    /// rustc's `# env-dep:` lines in file order: the variable and, when it
    /// was set, its value, unescaped.
    pub env_deps: Vec<(String, Option<String>)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DepfileError {
    /// Not a dependency file (or a truncated one): the caller should not
    /// trust the list and compile locally.
    #[error("dependency file line {line}: words but no `:` after the targets")]
    MissingColon { line: usize },
    #[error("dependency file line {line}: a rule with no target before the `:`")]
    NoTargets { line: usize },
}

/// Parses a dependency file; see the module doc for the syntax.
pub fn parse(text: &str) -> Result<Depfile, DepfileError> {
    let mut out = Depfile::default();
    let mut rest = text;
    let mut line = 1;
    while !rest.is_empty() {
        let start_line = line;
        let trimmed = rest.trim_start_matches([' ', '\t']);
        if let Some(comment) = trimmed.strip_prefix('#') {
            let (text, after) = comment.split_once('\n').unwrap_or((comment, ""));
            if let Some(dep) = text.strip_prefix(" env-dep:") {
                out.env_deps.push(env_dep(dep));
            }
            rest = after;
            line += 1;
            continue;
        }
        let (rule, after, lines) = logical_line(rest);
        rest = after;
        line += lines;
        match rule {
            Words::Empty => {}
            Words::NoColon => return Err(DepfileError::MissingColon { line: start_line }),
            Words::Rule(rule) if rule.targets.is_empty() => {
                return Err(DepfileError::NoTargets { line: start_line });
            }
            Words::Rule(rule) => out.rules.push(rule),
        }
    }
    Ok(out)
}

/// Every prerequisite of every rule, each once, in first-seen order.
pub fn prerequisites(depfile: &Depfile) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    depfile
        .rules
        .iter()
        .flat_map(|r| &r.prereqs)
        .filter(|p| seen.insert(p.as_str()))
        .cloned()
        .collect()
}

enum Words {
    Empty,
    NoColon,
    Rule(Rule),
}

/// Reads one logical line (continuations joined) from the start of `text`:
/// the rule, the text after it, and how many physical lines it spanned.
fn logical_line(text: &str) -> (Words, &str, usize) {
    let mut targets = Vec::new();
    let mut prereqs = Vec::new();
    let mut seen_colon = false;
    let mut word = String::new();
    let mut in_word = false;
    let mut lines = 1;
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut end_word = |word: &mut String, in_word: &mut bool, seen_colon: bool| {
        if *in_word {
            let w = std::mem::take(word);
            if seen_colon {
                prereqs.push(w);
            } else {
                targets.push(w);
            }
            *in_word = false;
        }
    };
    while i < bytes.len() {
        // Work on chars, but every byte we dispatch on is ASCII.
        let c = text[i..].chars().next().expect("in bounds");
        match c {
            '\n' => {
                i += 1;
                break;
            }
            ' ' | '\t' | '\r' => {
                end_word(&mut word, &mut in_word, seen_colon);
                i += 1;
            }
            '\\' => {
                let run = bytes[i..].iter().take_while(|&&b| b == b'\\').count();
                match bytes.get(i + run) {
                    // A continuation; at the very end of the text, nothing.
                    Some(b'\n') | None if run == 1 => {
                        end_word(&mut word, &mut in_word, seen_colon);
                        lines += 1;
                        i = (i + 2).min(bytes.len());
                    }
                    // gcc and clang double the backslashes before an escaped
                    // space: an odd run escapes the space.
                    Some(b' ' | b'\t') => {
                        word.extend(std::iter::repeat_n('\\', run / 2));
                        in_word = true;
                        i += run;
                        if run % 2 == 1 {
                            word.push(bytes[i] as char);
                            i += 1;
                        }
                    }
                    Some(b'#') if run == 1 => {
                        word.push('#');
                        in_word = true;
                        i += 2;
                    }
                    _ => {
                        word.push('\\');
                        in_word = true;
                        i += 1;
                    }
                }
            }
            '$' if bytes.get(i + 1) == Some(&b'$') => {
                word.push('$');
                in_word = true;
                i += 2;
            }
            ':' if !seen_colon => {
                end_word(&mut word, &mut in_word, seen_colon);
                seen_colon = true;
                i += 1;
            }
            c => {
                word.push(c);
                in_word = true;
                i += c.len_utf8();
            }
        }
    }
    end_word(&mut word, &mut in_word, seen_colon);
    let words = if seen_colon {
        Words::Rule(Rule { targets, prereqs })
    } else if targets.is_empty() {
        Words::Empty
    } else {
        Words::NoColon
    };
    (words, &text[i..], lines)
}

/// `NAME=VALUE` or `NAME`, with rustc's `escape_dep_env` undone (`\n`,
/// `\r`, `\\`) in both parts.
fn env_dep(text: &str) -> (String, Option<String>) {
    match text.split_once('=') {
        Some((name, value)) => (unescape_env(name), Some(unescape_env(value))),
        None => (unescape_env(text), None),
    }
}

fn unescape_env(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            // rustc escapes nothing else; keep anything else as written.
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(targets: &[&str], prereqs: &[&str]) -> Rule {
        Rule {
            targets: targets.iter().map(|s| s.to_string()).collect(),
            prereqs: prereqs.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn phony(target: &str) -> Rule {
        rule(&[target], &[])
    }

    // Captured from `gcc -M plain.c` (gcc 12.2.0, Debian), where plain.c
    // includes <stddef.h> and "d$ollar.h".
    const GCC_M: &str = "plain.o: plain.c /usr/include/stdc-predef.h \\
 /usr/lib/gcc/x86_64-linux-gnu/12/include/stddef.h d$$ollar.h
";

    #[test]
    fn gcc_m_output_with_continuation_and_dollar() {
        let d = parse(GCC_M).unwrap();
        assert_eq!(
            d.rules,
            vec![rule(
                &["plain.o"],
                &[
                    "plain.c",
                    "/usr/include/stdc-predef.h",
                    "/usr/lib/gcc/x86_64-linux-gnu/12/include/stddef.h",
                    "d$ollar.h"
                ]
            )]
        );
        assert!(d.env_deps.is_empty());
    }

    // Captured from `gcc -MD -MP -c "my file.c" -o "my file.o"`, where the
    // source includes "sub dir/sp ace.h", "d$ollar.h", "h#ash.h", <stddef.h>.
    const GCC_MD_MP: &str =
        "my\\ file.o: my\\ file.c /usr/include/stdc-predef.h sub\\ dir/sp\\ ace.h \\
 d$$ollar.h h\\#ash.h /usr/lib/gcc/x86_64-linux-gnu/12/include/stddef.h
/usr/include/stdc-predef.h:
sub\\ dir/sp\\ ace.h:
d$$ollar.h:
h\\#ash.h:
/usr/lib/gcc/x86_64-linux-gnu/12/include/stddef.h:
";

    // The same with clang 14.0.6 (it does not list stdc-predef.h, and puts
    // a blank line between the phony rules).
    const CLANG_MD_MP: &str =
        "my\\ file.o: my\\ file.c sub\\ dir/sp\\ ace.h d$$ollar.h h\\#ash.h \\
  /usr/lib/llvm-14/lib/clang/14.0.6/include/stddef.h \\
  /usr/lib/llvm-14/lib/clang/14.0.6/include/__stddef_max_align_t.h

sub\\ dir/sp\\ ace.h:

d$$ollar.h:

h\\#ash.h:

/usr/lib/llvm-14/lib/clang/14.0.6/include/stddef.h:

/usr/lib/llvm-14/lib/clang/14.0.6/include/__stddef_max_align_t.h:
";

    #[test]
    fn gcc_md_mp_unescapes_spaces_hash_and_dollar() {
        let d = parse(GCC_MD_MP).unwrap();
        let headers = [
            "/usr/include/stdc-predef.h",
            "sub dir/sp ace.h",
            "d$ollar.h",
            "h#ash.h",
            "/usr/lib/gcc/x86_64-linux-gnu/12/include/stddef.h",
        ];
        let mut all = vec!["my file.c"];
        all.extend(headers);
        let mut expected = vec![rule(&["my file.o"], &all)];
        expected.extend(headers.iter().map(|h| phony(h)));
        assert_eq!(d.rules, expected);
        assert_eq!(prerequisites(&d), all);
    }

    #[test]
    fn clang_md_mp_blank_lines_between_phony_rules() {
        let d = parse(CLANG_MD_MP).unwrap();
        let all = [
            "my file.c",
            "sub dir/sp ace.h",
            "d$ollar.h",
            "h#ash.h",
            "/usr/lib/llvm-14/lib/clang/14.0.6/include/stddef.h",
            "/usr/lib/llvm-14/lib/clang/14.0.6/include/__stddef_max_align_t.h",
        ];
        assert_eq!(d.rules.len(), 1 + all.len() - 1);
        assert_eq!(d.rules[0], rule(&["my file.o"], &all));
        assert!(d.rules[1..].iter().all(|r| r.prereqs.is_empty()));
        assert_eq!(d.rules[1], phony("sub dir/sp ace.h"));
        assert_eq!(prerequisites(&d), all);
    }

    // `gcc -MMD -MP -c plain.c -MT 'tar$get' -MQ 'q$uoted x'` (gcc 12; clang
    // 14 writes the same plus a blank line): -MT is copied raw, -MQ quoted.
    const GCC_MT_MQ: &str = "tar$get q$$uoted\\ x: plain.c d$$ollar.h
d$$ollar.h:
";

    #[test]
    fn raw_and_quoted_targets() {
        let d = parse(GCC_MT_MQ).unwrap();
        assert_eq!(
            d.rules,
            vec![
                rule(&["tar$get", "q$uoted x"], &["plain.c", "d$ollar.h"]),
                phony("d$ollar.h")
            ]
        );
    }

    // `RECAST_TEST_ENV=plain RECAST_NL_ENV=$'a\nb\\c\rd' rustc --emit=dep-info
    // main.rs` (rustc 1.95.0), main.rs using `mod m;`, include_str! of a file
    // with spaces, env!, and option_env! of an unset variable.
    const RUSTC_DEP_INFO: &str = "main.d: main.rs m.rs sp\\ dir/data\\ file.txt

main.rs:
m.rs:
sp\\ dir/data\\ file.txt:

# env-dep:RECAST_NL_ENV=a\\nb\\\\c\\rd
# env-dep:RECAST_TEST_ENV=plain
# env-dep:RECAST_UNSET_ENV
";

    // The same with `RUSTC_BOOTSTRAP=1 … -Zchecksum-hash-algorithm=sha256`
    // (RECAST_NL_ENV=x), which adds checksum comments at the end.
    const RUSTC_CHECKSUMS: &str = "ck.d: main.rs m.rs sp\\ dir/data\\ file.txt

main.rs:
m.rs:
sp\\ dir/data\\ file.txt:

# env-dep:RECAST_NL_ENV=x
# env-dep:RECAST_TEST_ENV=plain
# env-dep:RECAST_UNSET_ENV
# checksum:sha256=f7a04fc8771bb5a77330963fc7542948f85befcdc6f0b4583efcd85ac47ec3a8 file_len:258 main.rs
# checksum:sha256=dd3e5e4de3e8fbc2b20cdedb05bf2b15fd252def9a0af9c27a8a996fbf572541 file_len:24 m.rs
";

    #[test]
    fn rustc_dep_info_env_deps_are_unescaped() {
        let d = parse(RUSTC_DEP_INFO).unwrap();
        let files = ["main.rs", "m.rs", "sp dir/data file.txt"];
        let mut expected = vec![rule(&["main.d"], &files)];
        expected.extend(files.iter().map(|f| phony(f)));
        assert_eq!(d.rules, expected);
        assert_eq!(
            d.env_deps,
            vec![
                ("RECAST_NL_ENV".to_string(), Some("a\nb\\c\rd".to_string())),
                ("RECAST_TEST_ENV".to_string(), Some("plain".to_string())),
                ("RECAST_UNSET_ENV".to_string(), None),
            ]
        );
        assert_eq!(prerequisites(&d), files);
    }

    #[test]
    fn rustc_checksum_comments_are_skipped() {
        let d = parse(RUSTC_CHECKSUMS).unwrap();
        assert_eq!(d.rules.len(), 4);
        assert_eq!(d.env_deps.len(), 3);
        assert_eq!(d.env_deps[0], ("RECAST_NL_ENV".into(), Some("x".into())));
    }

    #[test]
    fn backslashes_before_an_escaped_space_are_doubled() {
        // A file named `a\ b` is written `a\\\ b`; `a\\ b` is `a\` then `b`.
        let d = parse("t: a\\\\\\ b c\\\\ d e\\f\n").unwrap();
        assert_eq!(d.rules, vec![rule(&["t"], &["a\\ b", "c\\", "d", "e\\f"])]);
    }

    #[test]
    fn colons_after_the_separator_are_part_of_names() {
        let d = parse("x.o: dir:with:colons/h.h y.h\n").unwrap();
        assert_eq!(
            d.rules,
            vec![rule(&["x.o"], &["dir:with:colons/h.h", "y.h"])]
        );
        let d = parse("x.o:y.c").unwrap();
        assert_eq!(d.rules, vec![rule(&["x.o"], &["y.c"])]);
    }

    #[test]
    fn missing_final_newline_and_continuation_at_eof() {
        let d = parse("a.o: a.c \\").unwrap();
        assert_eq!(d.rules, vec![rule(&["a.o"], &["a.c"])]);
    }

    #[test]
    fn garbage_is_an_error_with_its_line() {
        assert_eq!(
            parse("a.o: a.c\n\nnot a rule\n"),
            Err(DepfileError::MissingColon { line: 3 })
        );
        assert_eq!(
            parse("a.o: a.c \\\n b.h\n: x\n"),
            Err(DepfileError::NoTargets { line: 3 })
        );
    }

    #[test]
    fn prerequisites_are_deduplicated_in_first_seen_order() {
        let d = parse("a.o: a.c x.h\nb.o: b.c x.h a.c\n").unwrap();
        assert_eq!(prerequisites(&d), ["a.c", "x.h", "b.c"]);
    }
}
