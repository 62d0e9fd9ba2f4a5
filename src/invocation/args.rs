//! Response files (`@FILE`): the expansion both compiler parsers run first.
//!
//! gcc and clang (libiberty's `expandargv`/`buildargv`) and rustc
//! (`rustc_driver::args`) read argfiles differently, so there are two entry
//! points: [`expand`] for the C family, [`expand_rustc`] for rustc. Both
//! are pure: files are read only through the `read` callback, which gets
//! the name exactly as written after the `@` (relative names are relative
//! to the compiler's cwd; resolving them is the caller's job).
//!
//! Left to others: what the arguments mean (`gcc`, `rustc`), and whether a
//! `@FILE` that [`expand`] kept literally (the file does not exist, which
//! gcc also tolerates) makes the invocation local — the literal stays in
//! the result for the parser to see.

use std::io;

/// How deep `@FILE` may nest in `@FILE` before [`expand`] gives up, so a
/// file that names itself is an error rather than a hang.
pub const MAX_DEPTH: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    /// Run the compiler locally: it will report (or loop on) the cycle.
    #[error("response file {file} nests deeper than {MAX_DEPTH} levels; does it include itself?")]
    TooDeep { file: String },
    /// The file exists but could not be read (permissions, a directory, bad
    /// UTF-8); for rustc also a missing file, which rustc rejects.
    #[error("cannot read response file {file}: {source}")]
    Unreadable {
        file: String,
        #[source]
        source: io::Error,
    },
    /// An `@shell:FILE` whose quotes do not close.
    #[error(
        "response file {file}: unterminated quote or trailing backslash in shell-style arguments"
    )]
    BadShellQuoting { file: String },
}

/// gcc/clang: replaces every `@FILE` by the arguments in FILE, split by
/// [`split_gcc`], recursively. A FILE that does not exist (the callback
/// returns `NotFound`) is kept as the literal argument `@FILE`, as gcc
/// does; any other read error is [`ArgsError::Unreadable`].
pub fn expand(
    args: &[String],
    read: &dyn Fn(&str) -> io::Result<String>,
) -> Result<Vec<String>, ArgsError> {
    let mut out = Vec::with_capacity(args.len());
    expand_into(args, read, 0, &mut out)?;
    Ok(out)
}

fn expand_into(
    args: &[String],
    read: &dyn Fn(&str) -> io::Result<String>,
    depth: usize,
    out: &mut Vec<String>,
) -> Result<(), ArgsError> {
    for arg in args {
        let Some(file) = arg.strip_prefix('@').filter(|f| !f.is_empty()) else {
            out.push(arg.clone());
            continue;
        };
        if depth >= MAX_DEPTH {
            return Err(ArgsError::TooDeep { file: file.into() });
        }
        match read(file) {
            Ok(text) => expand_into(&split_gcc(&text), read, depth + 1, out)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => out.push(arg.clone()),
            Err(source) => {
                return Err(ArgsError::Unreadable {
                    file: file.into(),
                    source,
                });
            }
        }
    }
    Ok(())
}

/// libiberty's `buildargv`: whitespace (space, tab, newline, CR, VT, FF)
/// separates; `'…'` and `"…"` group; a backslash takes the next character
/// literally — inside quotes too, unlike a shell (`'it\'s'` is `it's`). An
/// empty pair of quotes is an empty argument; a trailing lone backslash is
/// dropped. Only-whitespace text is no arguments.
pub fn split_gcc(text: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut chars = text.chars();
    let mut cur = String::new();
    let mut in_arg = false;
    let (mut squote, mut dquote) = (false, false);
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                in_arg = true;
                if let Some(next) = chars.next() {
                    cur.push(next);
                }
            }
            c if squote => {
                if c == '\'' {
                    squote = false;
                } else {
                    cur.push(c);
                }
            }
            c if dquote => {
                if c == '"' {
                    dquote = false;
                } else {
                    cur.push(c);
                }
            }
            '\'' => (squote, in_arg) = (true, true),
            '"' => (dquote, in_arg) = (true, true),
            ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c' => {
                if in_arg {
                    args.push(std::mem::take(&mut cur));
                    in_arg = false;
                }
            }
            c => {
                in_arg = true;
                cur.push(c);
            }
        }
    }
    if in_arg {
        args.push(cur);
    }
    args
}

/// rustc: every `@FILE` becomes the lines of FILE, one argument per line
/// (`\r\n` or `\n`; an empty line is an empty argument), not expanded
/// again. `@shell:FILE` is split shell-style by [`split_shell`] once
/// `-Zshell-argfiles` (or `-Z shell-argfiles`) has been seen, in the
/// command line or in an earlier argfile, exactly as rustc 1.95 decides;
/// before that `shell:FILE` is a file name. Unlike gcc, a missing file is
/// an error ([`ArgsError::Unreadable`]), because rustc fails on it.
pub fn expand_rustc(
    args: &[String],
    read: &dyn Fn(&str) -> io::Result<String>,
) -> Result<Vec<String>, ArgsError> {
    let mut out = RustcExpander::default();
    for arg in args {
        let Some(file) = arg.strip_prefix('@') else {
            out.push(arg.clone());
            continue;
        };
        let read_file = |name: &str| {
            read(name).map_err(|source| ArgsError::Unreadable {
                file: name.into(),
                source,
            })
        };
        match file.strip_prefix("shell:") {
            Some(path) if out.shell_argfiles => {
                let split = split_shell(&read_file(path)?)
                    .ok_or_else(|| ArgsError::BadShellQuoting { file: path.into() })?;
                split.into_iter().for_each(|a| out.push(a));
            }
            _ => read_file(file)?
                .lines()
                .for_each(|line| out.push(line.to_string())),
        }
    }
    Ok(out.expanded)
}

/// rustc looks at `-Z` options while it expands, because one of them
/// changes how later argfiles are read.
#[derive(Default)]
struct RustcExpander {
    shell_argfiles: bool,
    next_is_z_option: bool,
    expanded: Vec<String>,
}

impl RustcExpander {
    fn push(&mut self, arg: String) {
        let option = if self.next_is_z_option {
            self.next_is_z_option = false;
            Some(arg.as_str())
        } else if arg == "-Z" {
            self.next_is_z_option = true;
            None
        } else {
            arg.strip_prefix("-Z")
        };
        if option == Some("shell-argfiles") {
            self.shell_argfiles = true;
        }
        self.expanded.push(arg);
    }
}

/// POSIX-shell-style words as the `shlex` crate splits them for rustc's
/// `@shell:` argfiles: blanks and newlines separate; `'…'` is literal;
/// in `"…"` a backslash escapes only `$`, `` ` ``, `"`, `\` and newline;
/// outside quotes a backslash escapes any character and backslash-newline
/// joins lines; `#` at the start of a word comments out the rest of the
/// line. `None` for an unterminated quote or a trailing backslash.
pub fn split_shell(text: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| matches!(c, ' ' | '\t' | '\n')).is_some() {}
        match chars.peek() {
            None => return Some(words),
            Some('#') => {
                while chars.next_if(|&c| c != '\n').is_some() {}
                continue;
            }
            Some(_) => {}
        }
        let mut word = String::new();
        while let Some(c) = chars.next() {
            match c {
                ' ' | '\t' | '\n' => break,
                '\\' => match chars.next()? {
                    '\n' => {}
                    c => word.push(c),
                },
                '\'' => loop {
                    match chars.next()? {
                        '\'' => break,
                        c => word.push(c),
                    }
                },
                '"' => loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            '\n' => {}
                            c @ ('$' | '`' | '"' | '\\') => word.push(c),
                            c => {
                                word.push('\\');
                                word.push(c);
                            }
                        },
                        c => word.push(c),
                    }
                },
                c => word.push(c),
            }
        }
        words.push(word);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// A reader over an in-memory set of files; `unreadable` files fail with
    /// a permission error.
    fn files(list: &[(&str, &str)]) -> impl Fn(&str) -> io::Result<String> + use<> {
        let map: BTreeMap<String, String> = list
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name: &str| match name {
            "unreadable" => Err(io::Error::from(io::ErrorKind::PermissionDenied)),
            _ => map
                .get(name)
                .cloned()
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound)),
        }
    }

    // The expected splits were checked against gcc 12 with
    // `gcc -### -E @r.rsp -x c /dev/null`, which prints the `-D` values cc1 gets.
    #[test]
    fn gcc_split_groups_quotes_and_escapes_like_buildargv() {
        assert_eq!(
            split_gcc(r#"-DA="x y" -DB'p q' -DC=a\ b"#),
            strings(&["-DA=x y", "-DBp q", "-DC=a b"])
        );
        assert_eq!(
            split_gcc(r#"-DA="in\"side" -DB='it\'s' -DC=back\\slash -DD=tr\"#),
            strings(&[r#"-DA=in"side"#, "-DB=it's", r"-DC=back\slash", "-DD=tr"])
        );
        assert_eq!(
            split_gcc("-DA\n-DB\t-DC\r\n-DD\x0b-DE\x0c-DF"),
            strings(&["-DA", "-DB", "-DC", "-DD", "-DE", "-DF"])
        );
        assert_eq!(split_gcc("-DA=x\\\ny"), strings(&["-DA=x\ny"]));
        assert_eq!(split_gcc(r#""" '' x"#), strings(&["", "", "x"]));
        assert_eq!(split_gcc("  \n\t "), Vec::<String>::new());
    }

    #[test]
    fn gcc_expands_nested_files_in_place() {
        let read = files(&[("a.rsp", "-DA @b.rsp -DA2"), ("b.rsp", "'-DB x'")]);
        let got = expand(&strings(&["-c", "@a.rsp", "x.c"]), &read).unwrap();
        assert_eq!(got, strings(&["-c", "-DA", "-DB x", "-DA2", "x.c"]));
    }

    #[test]
    fn gcc_keeps_a_missing_file_literally() {
        let got = expand(&strings(&["@missing.rsp", "@", "-c"]), &files(&[])).unwrap();
        assert_eq!(got, strings(&["@missing.rsp", "@", "-c"]));
    }

    #[test]
    fn gcc_unreadable_existing_file_is_an_error() {
        let err = expand(&strings(&["@unreadable"]), &files(&[])).unwrap_err();
        assert!(matches!(err, ArgsError::Unreadable { ref file, .. } if file == "unreadable"));
    }

    #[test]
    fn gcc_self_including_file_is_too_deep_not_a_hang() {
        let read = files(&[("loop.rsp", "-DX @loop.rsp")]);
        let err = expand(&strings(&["@loop.rsp"]), &read).unwrap_err();
        assert!(matches!(err, ArgsError::TooDeep { ref file } if file == "loop.rsp"));
        // Fifteen levels below the command line is still fine.
        let mut list: Vec<(String, String)> = (0..MAX_DEPTH - 1)
            .map(|i| (format!("f{i}"), format!("-D{i} @f{}", i + 1)))
            .collect();
        list.push((format!("f{}", MAX_DEPTH - 1), "-Dlast".into()));
        let refs: Vec<(&str, &str)> = list.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let got = expand(&strings(&["@f0"]), &files(&refs)).unwrap();
        assert_eq!(got.len(), MAX_DEPTH);
        assert_eq!(got.last().unwrap(), "-Dlast");
    }

    #[test]
    fn rustc_reads_one_argument_per_line_without_quoting() {
        let read = files(&[("args", "--crate-name\nfoo bar\r\n'q'\n\n@inner\n")]);
        let got = expand_rustc(&strings(&["--edition=2021", "@args", "x.rs"]), &read).unwrap();
        assert_eq!(
            got,
            strings(&[
                "--edition=2021",
                "--crate-name",
                "foo bar",
                "'q'",
                "",
                "@inner",
                "x.rs"
            ])
        );
    }

    #[test]
    fn rustc_missing_file_is_an_error() {
        let err = expand_rustc(&strings(&["@nope"]), &files(&[])).unwrap_err();
        assert!(matches!(err, ArgsError::Unreadable { ref file, .. } if file == "nope"));
    }

    #[test]
    fn rustc_shell_argfiles_need_the_unstable_flag_first() {
        let read = files(&[
            (
                "sh",
                "--cfg 'feature=\"a b\"' # comment\n-C\\\n opt-level=2",
            ),
            ("shell:sh", "literal name"),
            ("enable", "-Zshell-argfiles"),
        ]);
        let before = expand_rustc(&strings(&["@shell:sh"]), &read).unwrap();
        assert_eq!(before, strings(&["literal name"]));
        let expected = strings(&[
            "-Z",
            "shell-argfiles",
            "--cfg",
            "feature=\"a b\"",
            "-C",
            "opt-level=2",
        ]);
        let after = expand_rustc(&strings(&["-Z", "shell-argfiles", "@shell:sh"]), &read).unwrap();
        assert_eq!(after, expected);
        let via_file = expand_rustc(&strings(&["@enable", "@shell:sh"]), &read).unwrap();
        assert_eq!(via_file[0], "-Zshell-argfiles");
        assert_eq!(via_file[1..], expected[2..]);
        let bad = files(&[("bad", "'open")]);
        let err = expand_rustc(&strings(&["-Zshell-argfiles", "@shell:bad"]), &bad).unwrap_err();
        assert!(matches!(err, ArgsError::BadShellQuoting { ref file } if file == "bad"));
    }

    #[test]
    fn shell_split_handles_double_quote_escapes() {
        assert_eq!(
            split_shell(r#""a\"b\$c\d" e\ f '\n'"#).unwrap(),
            strings(&[r#"a"b$c\d"#, "e f", r"\n"])
        );
        assert_eq!(split_shell("trailing\\"), None);
        assert_eq!(split_shell("a#b #c\nd").unwrap(), strings(&["a#b", "d"]));
    }
}
