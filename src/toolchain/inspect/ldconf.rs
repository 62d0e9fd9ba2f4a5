//! `/etc/ld.so.conf` and its `include`s: the directories `ldconfig` puts
//! in the loader's cache, in file order. We read the configuration instead
//! of `/etc/ld.so.cache` because the cache is a binary format whose layout
//! changed across glibc versions, is absent from archives and fresh roots,
//! and only ever lists libraries found in these directories.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::walk::{Walker, in_root};

/// One meaningful line of an `ld.so.conf` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConfLine {
    Dir(String),
    /// Glob patterns; relative ones are relative to the including file's
    /// directory.
    Include(Vec<String>),
}

/// Parses one file's text. Comments (`#`), blank lines and `hwcap` lines
/// are dropped; a directory's old `=TYPE` suffix is cut.
pub(crate) fn parse(text: &str) -> Vec<ConfLine> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_ascii_whitespace();
        match words.next() {
            Some("include") => out.push(ConfLine::Include(words.map(str::to_owned).collect())),
            Some("hwcap") => {}
            _ => {
                // ldconfig also splits a line at ':', ',' and blanks.
                for dir in line.split([':', ',', ' ', '\t']) {
                    let dir = dir.split('=').next().unwrap_or_default();
                    if !dir.is_empty() {
                        out.push(ConfLine::Dir(dir.to_owned()));
                    }
                }
            }
        }
    }
    out
}

/// The directories listed by `<sysroot>/etc/ld.so.conf` and everything it
/// includes, as paths under `sysroot`, deduplicated in first-seen order.
/// Unreadable files are skipped: the loader would find nothing there either.
pub(crate) fn dirs(walker: &mut Walker<'_>, sysroot: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut seen_files = HashSet::new();
    read_file(
        walker,
        sysroot,
        &in_root(sysroot, Path::new("/etc/ld.so.conf")),
        &mut seen_files,
        &mut out,
    );
    let mut seen = HashSet::new();
    out.retain(|d| seen.insert(d.clone()));
    out
}

fn read_file(
    walker: &mut Walker<'_>,
    sysroot: &Path,
    file: &Path,
    seen: &mut HashSet<PathBuf>,
    out: &mut Vec<PathBuf>,
) {
    // An include cycle would otherwise never end.
    if !seen.insert(file.to_path_buf()) {
        return;
    }
    // Resolved by the walker, not the source, so that absolute links stay
    // inside the sysroot.
    let Ok(resolved) = walker.resolve(file, super::walk::chroot_for(file, sysroot)) else {
        return;
    };
    let Ok(bytes) = walker.fs().read(&resolved.file) else {
        return;
    };
    let text = String::from_utf8_lossy(&bytes);
    for line in parse(&text) {
        match line {
            ConfLine::Dir(d) if d.starts_with('/') => out.push(in_root(sysroot, Path::new(&d))),
            ConfLine::Dir(_) => {}
            ConfLine::Include(patterns) => {
                for pattern in patterns {
                    let pattern = if pattern.starts_with('/') {
                        in_root(sysroot, Path::new(&pattern))
                    } else {
                        file.parent().unwrap_or(sysroot).join(pattern)
                    };
                    for f in glob(walker, sysroot, &pattern) {
                        read_file(walker, sysroot, &f, seen, out);
                    }
                }
            }
        }
    }
}

/// Expands `*`, `?` and `[...]` in any component of an absolute pattern,
/// sorted like glob(3). Components without wildcards are taken as they are.
fn glob(walker: &mut Walker<'_>, sysroot: &Path, pattern: &Path) -> Vec<PathBuf> {
    let mut found = vec![PathBuf::from("/")];
    for comp in pattern.components().skip(1) {
        let comp = comp.as_os_str().to_string_lossy().into_owned();
        let mut next = Vec::new();
        for base in &found {
            if !comp.contains(['*', '?', '[']) {
                next.push(base.join(&comp));
                continue;
            }
            let Ok(resolved) = walker.resolve(base, super::walk::chroot_for(base, sysroot)) else {
                continue;
            };
            let Ok(names) = walker.fs().read_dir(&resolved.file) else {
                continue;
            };
            let mut names: Vec<String> = names
                .into_iter()
                .filter_map(|n| n.into_string().ok())
                .filter(|n| !n.starts_with('.') && matches(comp.as_bytes(), n.as_bytes()))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| base.join(n)));
        }
        found = next;
    }
    found
}

/// fnmatch(3) without flags, enough for `*.conf`, `lib?.conf`, `[a-z]*`.
pub(crate) fn matches(pat: &[u8], name: &[u8]) -> bool {
    match pat.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| matches(rest, &name[i..])),
        Some((b'?', rest)) => !name.is_empty() && matches(rest, &name[1..]),
        Some((b'[', rest)) => {
            let Some(close) = rest.iter().skip(1).position(|b| *b == b']').map(|i| i + 1) else {
                return name.first() == Some(&b'[') && matches(rest, &name[1..]);
            };
            let Some((&c, name_rest)) = name.split_first() else {
                return false;
            };
            let (negate, set) = match rest[..close].split_first() {
                Some((b'!' | b'^', set)) => (true, set),
                _ => (false, &rest[..close]),
            };
            let mut hit = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == b'-' {
                    hit |= set[i] <= c && c <= set[i + 2];
                    i += 3;
                } else {
                    hit |= set[i] == c;
                    i += 1;
                }
            }
            hit != negate && matches(&rest[close + 1..], name_rest)
        }
        Some((&p, rest)) => name.first() == Some(&p) && matches(rest, &name[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines() {
        let text = "# comment\ninclude /etc/ld.so.conf.d/*.conf other.conf\n\n/usr/local/lib # x\nhwcap 1 foo\n/opt/a:/opt/b,/opt/c=libc6\n";
        assert_eq!(
            parse(text),
            vec![
                ConfLine::Include(vec!["/etc/ld.so.conf.d/*.conf".into(), "other.conf".into()]),
                ConfLine::Dir("/usr/local/lib".into()),
                ConfLine::Dir("/opt/a".into()),
                ConfLine::Dir("/opt/b".into()),
                ConfLine::Dir("/opt/c".into()),
            ]
        );
    }

    #[test]
    fn fnmatch() {
        assert!(matches(b"*.conf", b"libc.conf"));
        assert!(!matches(b"*.conf", b"libc.conf~"));
        assert!(matches(b"lib?.conf", b"libc.conf"));
        assert!(matches(b"[a-c]*", b"b1"));
        assert!(!matches(b"[!a-c]*", b"b1"));
        assert!(matches(b"*", b""));
        assert!(!matches(b"x[", b"x"));
        assert!(matches(b"x[", b"x["));
    }
}
