//! zig's native target, pinned for a worker.
//!
//! `zig cc` without `-target` compiles for this machine: its CPU and
//! features (cpuid), its kernel and C library versions, the C library's
//! headers (found by running this machine's `cc`), and the system
//! directories a native compile adds (`/usr/local/include`). A worker
//! would find its own. So the remote command names what zig found here:
//! `-target` as `zig env` spells this machine, `-mcpu=` its CPU with the
//! features that differ from the model's, the C library in a `ZIG_LIBC`
//! file (`zig libc`'s answer, shipped with the action at a path of its
//! own, `/recast/zig/`), and the missing
//! system directories with `-isystem`.
//!
//! That this is the same compile is checked, not assumed: the `-cc1`
//! line zig prints for `-###` must be the same for the user's command and
//! for the pinned one, but for system directories named twice (clang
//! keeps the first) and for two directories in another order that hold
//! no file of the same name (`zig c++` puts its libunwind headers after
//! the native `/usr/local/include`, and a user's `-isystem` goes after
//! them). Otherwise the compile runs here. Both answers are kept for a
//! day under `<cache>/answers/`, as other compiler answers are.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Ctx;
use super::family::Reason;
use super::layout;
use crate::toolchain::family::parse_zig_env;

/// What this machine's native target is, as flags a worker can take.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Pin {
    /// Before the user's arguments: `-target T -mcpu=C`.
    pub lead: Vec<String>,
    /// After them: `-isystem D` for each system directory the native
    /// compile adds and the pinned one would not.
    pub tail: Vec<String>,
    /// The `ZIG_LIBC` file: this machine's C library, as `zig libc`
    /// describes it.
    pub libc: PathBuf,
}

/// The pin for `zig <sub> <args>` run from `ctx`'s working directory,
/// `Err` when the pinned compile would not be the same.
pub(crate) fn pin(ctx: &Ctx, zig: &Path, sub: &str, args: &[String]) -> Result<Pin, Reason> {
    if ctx.var("ZIG_LIBC").is_some() {
        // The user's own C library file: theirs to ship.
        return Err(Reason::ZigNativeTarget);
    }
    let observed = observed_env(ctx);
    let stamp = super::depcache::stamp(zig).ok_or(Reason::ZigNativeTarget)?;
    let mut parts = vec![
        zig.as_os_str().as_encoded_bytes().to_vec(),
        format!("{stamp:?}").into_bytes(),
    ];
    parts.extend(
        observed
            .iter()
            .map(|(k, v)| format!("{k}={v}").into_bytes()),
    );
    let machine = layout::remembered(ctx, "zig-native", parts.clone(), || Some(machine(ctx, zig)))
        .flatten()
        .ok_or(Reason::ZigNativeTarget)?;
    parts.push(ctx.cwd.as_os_str().as_encoded_bytes().to_vec());
    parts.push(sub.as_bytes().to_vec());
    parts.extend(args.iter().map(|a| a.as_bytes().to_vec()));
    let same = layout::remembered(ctx, "zig-pinned", parts, || {
        let user = cc1(ctx, zig, sub, &[], args, &[], None)?;
        let pinned = cc1(
            ctx,
            zig,
            sub,
            &machine.lead,
            args,
            &machine.tail,
            Some(&machine.libc),
        )?;
        let same = same_compile(&user, &pinned, &files_under);
        if !same {
            tracing::info!("zig's pinned native target gives another -cc1 line; compiling here");
        }
        Some(same)
    });
    match same {
        Some(true) => Ok(machine),
        _ => Err(Reason::ZigNativeTarget),
    }
}

/// The variables zig's native detection reads beyond its own: Nix's
/// (`NIX_CFLAGS_COMPILE` adds directories) and the C search paths.
fn observed_env(ctx: &Ctx) -> BTreeMap<&str, &str> {
    ctx.env
        .0
        .iter()
        .filter(|(k, _)| {
            k.starts_with("NIX_")
                || k.starts_with("ZIG_")
                || matches!(
                    k.as_str(),
                    "CPATH" | "C_INCLUDE_PATH" | "CPLUS_INCLUDE_PATH" | "LIBRARY_PATH"
                )
        })
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// This machine's pin, from an empty C compile; `None`: zig cannot
/// describe this machine in flags a worker takes.
fn machine(ctx: &Ctx, zig: &Path) -> Option<Pin> {
    let env = super::process::ask(zig, &["env".into()], &ctx.cwd, None)?;
    let target = parse_zig_env(&env).ok()?.target;
    let libc_text = super::process::ask(zig, &["libc".into()], &ctx.cwd, None)?;
    let libc = ctx.cache_dir.join("answers").join(format!(
        "zig-libc-{}.txt",
        &crate::cas::Digest::of_bytes(libc_text.as_bytes()).hex()[..32]
    ));
    if !libc.is_file() {
        crate::fsutil::write_private(&libc, libc_text.as_bytes(), false).ok()?;
    }
    let probe: Vec<String> = ["-x", "c", "-c", "/dev/null", "-o", "/dev/null"]
        .map(String::from)
        .to_vec();
    let native = cc1(ctx, zig, "cc", &[], &probe, &[], None)?;
    let cpu = target_cpu(&native)?.to_string();
    let model = vec!["-target".into(), target.clone(), format!("-mcpu={cpu}")];
    let modelled = cc1(ctx, zig, "cc", &model, &probe, &[], Some(&libc))?;
    let mcpu = mcpu(&cpu, &features(&native), &features(&modelled));
    let have = system_dirs(&modelled);
    let tail = system_dirs(&native)
        .into_iter()
        .filter(|d| !have.contains(d))
        .flat_map(|d| ["-isystem".to_string(), d])
        .collect();
    Some(Pin {
        lead: vec!["-target".into(), target, format!("-mcpu={mcpu}")],
        tail,
        libc,
    })
}

/// The `-cc1` line of `zig <sub> -### lead args tail`, as words.
fn cc1(
    ctx: &Ctx,
    zig: &Path,
    sub: &str,
    lead: &[String],
    args: &[String],
    tail: &[String],
    libc: Option<&Path>,
) -> Option<Vec<String>> {
    let all: Vec<String> = [sub.to_string(), "-###".to_string()]
        .into_iter()
        .chain(lead.iter().cloned())
        .chain(args.iter().cloned())
        .chain(tail.iter().cloned())
        .collect();
    let text = super::process::ask(zig, &all, &ctx.cwd, libc.map(|l| ("ZIG_LIBC", l)))?;
    cc1_words(&text)
}

/// The words of the first line naming `"-cc1"`: zig prints each one
/// double-quoted, with `\` escaping `"` and `\`.
pub(crate) fn cc1_words(text: &str) -> Option<Vec<String>> {
    let line = text.lines().find(|l| l.contains("\"-cc1\""))?;
    let mut words = Vec::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut word = String::new();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => word.push(chars.next()?),
                c => word.push(c),
            }
        }
        words.push(word);
    }
    Some(words)
}

/// The last `-target-cpu` value (the first is the host's, for tuning).
fn target_cpu(words: &[String]) -> Option<&str> {
    words
        .windows(2)
        .rev()
        .find(|w| w[0] == "-target-cpu")
        .map(|w| w[1].as_str())
}

/// `-target-feature ±name` pairs: name → sign.
fn features(words: &[String]) -> BTreeMap<&str, char> {
    words
        .windows(2)
        .filter(|w| w[0] == "-target-feature")
        .filter_map(|w| {
            let mut chars = w[1].chars();
            let sign = chars.next().filter(|c| matches!(c, '+' | '-'))?;
            Some((chars.as_str(), sign))
        })
        .collect()
}

/// zig's `-mcpu=` for `cpu` with the features where `native` differs
/// from `modelled` (the model's defaults): `znver5-movdir64b+avx`.
pub(crate) fn mcpu(
    cpu: &str,
    native: &BTreeMap<&str, char>,
    modelled: &BTreeMap<&str, char>,
) -> String {
    let mut out = cpu.to_string();
    for (name, sign) in native {
        if modelled.get(name) != Some(sign) {
            out.push(*sign);
            out.push_str(name);
        }
    }
    for (name, sign) in modelled {
        if !native.contains_key(name) {
            out.push(if *sign == '+' { '-' } else { '+' });
            out.push_str(name);
        }
    }
    out
}

/// The `-isystem` directories in order, each once (clang keeps the
/// first of a repeated system directory).
pub(crate) fn system_dirs(words: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in words.windows(2).filter(|w| w[0] == "-isystem") {
        if !out.contains(&w[1]) {
            out.push(w[1].clone());
        }
    }
    out
}

/// Whether two `-cc1` lines are one compile: the same words but for
/// `-isystem` pairs, and the same system directories, where any two that
/// come in another order hold no file of the same name (`files`: the
/// relative paths under a directory, `None` when it cannot be read or is
/// too big to tell), so that every `#include` and `#include_next` finds
/// the same file.
pub(crate) fn same_compile(
    a: &[String],
    b: &[String],
    files: &dyn Fn(&str) -> Option<BTreeSet<String>>,
) -> bool {
    let rest = |w: &[String]| {
        let mut out = Vec::new();
        let mut i = 0;
        while i < w.len() {
            if w[i] == "-isystem" {
                i += 2;
                continue;
            }
            out.push(w[i].clone());
            i += 1;
        }
        out
    };
    if rest(a) != rest(b) {
        return false;
    }
    let (da, db) = (system_dirs(a), system_dirs(b));
    if da.len() != db.len() || da.iter().any(|d| !db.contains(d)) {
        return false;
    }
    let at = |d: &String| db.iter().position(|x| x == d).unwrap_or(usize::MAX);
    for (i, x) in da.iter().enumerate() {
        for y in &da[i + 1..] {
            if at(x) < at(y) {
                continue;
            }
            let (Some(fx), Some(fy)) = (files(x), files(y)) else {
                return false;
            };
            if !fx.is_disjoint(&fy) {
                return false;
            }
        }
    }
    true
}

/// The relative paths of the files under `dir` (a missing directory has
/// none); `None` past [`MAX_FILES`] or when it cannot be read.
fn files_under(dir: &str) -> Option<BTreeSet<String>> {
    let root = Path::new(dir);
    let mut out = BTreeSet::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && d == root => return Some(out),
            Err(_) => return None,
        };
        for e in entries {
            let path = e.ok()?.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.insert(path.strip_prefix(root).ok()?.to_string_lossy().into_owned());
                if out.len() > MAX_FILES {
                    return None;
                }
            }
        }
    }
    Some(out)
}

/// How many files [`files_under`] lists before it gives up.
const MAX_FILES: usize = 20_000;

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn the_cc1_line_is_read_word_by_word() {
        let text = "info: x\n \"/z/zig\" \"-cc1\" \"-triple\" \"x86_64-unknown-linux-gnu\" \"-D\" \"Q=\\\"a b\\\"\"\n";
        assert_eq!(
            cc1_words(text).unwrap(),
            [
                "/z/zig",
                "-cc1",
                "-triple",
                "x86_64-unknown-linux-gnu",
                "-D",
                "Q=\"a b\""
            ]
        );
        assert_eq!(cc1_words("no line here"), None);
    }

    #[test]
    fn features_that_differ_from_the_model_join_the_cpu() {
        let native = words(
            "-target-cpu x86-64 -target-cpu znver5 -target-feature +avx -target-feature -movdiri -target-feature +sse2",
        );
        let model = words(
            "-target-cpu znver5 -target-feature +avx -target-feature +movdiri -target-feature +sse2 -target-feature +pku",
        );
        assert_eq!(target_cpu(&native), Some("znver5"));
        assert_eq!(
            mcpu("znver5", &features(&native), &features(&model)),
            "znver5-movdiri-pku"
        );
        assert_eq!(
            mcpu("znver5", &features(&model), &features(&model)),
            "znver5"
        );
    }

    #[test]
    fn one_compile_may_name_a_system_directory_twice() {
        let native = words(
            "-cc1 -O2 -isystem /z/include -isystem /usr/include -isystem /usr/local/include -isystem /usr/include -c",
        );
        let pinned = words(
            "-cc1 -O2 -isystem /z/include -isystem /usr/include -isystem /usr/local/include -c",
        );
        let files = |d: &str| -> Option<BTreeSet<String>> {
            match d {
                "/usr/local/include" => Some(BTreeSet::new()),
                "/usr/include" => Some(["stdio.h".to_string()].into()),
                "/z/include" => Some(["stdio.h".to_string(), "unwind.h".to_string()].into()),
                _ => None,
            }
        };
        assert!(same_compile(&native, &pinned, &files));
        // Swapped, but one of the two holds nothing: the same lookups.
        let swapped = words(
            "-cc1 -O2 -isystem /z/include -isystem /usr/local/include -isystem /usr/include -c",
        );
        assert!(same_compile(&native, &swapped, &files));
        // Swapped, and both hold stdio.h: another compile.
        let shadowed = words(
            "-cc1 -O2 -isystem /usr/include -isystem /z/include -isystem /usr/local/include -c",
        );
        assert!(!same_compile(&native, &shadowed, &files));
        // A directory that cannot be listed cannot be swapped.
        let unknown =
            words("-cc1 -O2 -isystem /z/include -isystem /usr/include -isystem /opt/x -c");
        let unknown2 =
            words("-cc1 -O2 -isystem /z/include -isystem /opt/x -isystem /usr/include -c");
        assert!(same_compile(&unknown, &unknown, &files));
        assert!(!same_compile(&unknown, &unknown2, &files));
        let other = words(
            "-cc1 -O3 -isystem /z/include -isystem /usr/include -isystem /usr/local/include -c",
        );
        assert!(!same_compile(&native, &other, &files));
        let fewer = words("-cc1 -O2 -isystem /z/include -isystem /usr/include -c");
        assert!(!same_compile(&native, &fewer, &files));
        assert_eq!(
            system_dirs(&native),
            ["/z/include", "/usr/include", "/usr/local/include"]
        );
    }
}
