//! The closure as text for people: who loads what as a tree (each object
//! expanded once), then what is missing and where it was looked for, what
//! the OS provides, and the notes.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::closure::{Closure, EntryKind, Loaded, Why};
use super::macho::DylibKind;

impl Closure {
    /// A tree of who needs what, then the missing libraries with the places
    /// searched, the OS-provided ones, the minimum glibc and the host.
    pub fn render_tree(&self) -> String {
        let mut s = String::new();
        match &self.host {
            Some(h) => {
                let _ = write!(s, "host: {h}");
                for other in self.hosts.iter().skip(1) {
                    let _ = write!(s, ", {other}");
                }
                s.push('\n');
            }
            None => s.push_str("host: unknown (no binary among the roots)\n"),
        }
        if let Some((major, minor)) = self.min_glibc {
            let _ = writeln!(s, "min glibc: {major}.{minor}");
        }
        let mut children: HashMap<&Path, Vec<&Loaded>> = HashMap::new();
        for l in &self.loaded {
            if let Some(p) = l.why.parent() {
                children.entry(p).or_default().push(l);
            }
        }
        let mut missing: HashMap<&Path, Vec<&str>> = HashMap::new();
        for m in &self.missing {
            missing.entry(&m.needed_by).or_default().push(&m.name);
        }
        let mut expanded = HashSet::new();
        let tree = Tree {
            children: &children,
            missing: &missing,
        };
        for root in self.loaded.iter().filter(|l| l.why == Why::Root) {
            let _ = writeln!(s, "{}", label(root));
            tree.draw(&mut s, &root.path, "", &mut expanded);
        }
        if !self.missing.is_empty() {
            let _ = writeln!(s, "missing ({}):", self.missing.len());
            for m in &self.missing {
                let _ = writeln!(s, "  {} (needed by {})", m.name, m.needed_by.display());
                if m.searched.is_empty() {
                    s.push_str("    searched: nowhere\n");
                }
                for p in &m.searched {
                    let _ = writeln!(s, "    searched {}", p.display());
                }
            }
        }
        if !self.os_provided.is_empty() {
            s.push_str("provided by the OS:\n");
            for (name, by) in &self.os_provided {
                let _ = writeln!(s, "  {name} (needed by {})", by.display());
            }
        }
        if !self.notes.is_empty() {
            s.push_str("notes:\n");
            for n in &self.notes {
                let _ = writeln!(s, "  {n}");
            }
        }
        let (mut files, mut links, mut bytes) = (0, 0, 0u64);
        for e in self.files.values() {
            match e.kind {
                EntryKind::File { size, .. } => {
                    files += 1;
                    bytes += size;
                }
                EntryKind::Symlink { .. } => links += 1,
            }
        }
        let _ = writeln!(s, "{files} files, {links} symlinks, {bytes} bytes");
        s
    }
}

struct Tree<'a> {
    children: &'a HashMap<&'a Path, Vec<&'a Loaded>>,
    missing: &'a HashMap<&'a Path, Vec<&'a str>>,
}

impl Tree<'_> {
    fn draw(&self, s: &mut String, node: &Path, indent: &str, expanded: &mut HashSet<PathBuf>) {
        let kids = self
            .children
            .get(node)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let lost = self
            .missing
            .get(node)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if kids.is_empty() && lost.is_empty() {
            return;
        }
        if !expanded.insert(node.to_path_buf()) {
            let _ = writeln!(s, "{indent}└─ (dependencies shown above)");
            return;
        }
        let total = kids.len() + lost.len();
        for (n, kid) in kids.iter().enumerate() {
            let last = n + 1 == total;
            let _ = writeln!(s, "{indent}{}{}", branch(last), label(kid));
            let deeper = format!("{indent}{}", if last { "   " } else { "│  " });
            self.draw(s, &kid.path, &deeper, expanded);
        }
        for (n, name) in lost.iter().enumerate() {
            let last = kids.len() + n + 1 == total;
            let _ = writeln!(s, "{indent}{}{name}: MISSING", branch(last));
        }
    }
}

fn branch(last: bool) -> &'static str {
    if last { "└─ " } else { "├─ " }
}

fn label(l: &Loaded) -> String {
    let target = if l.file != l.path {
        format!("{} → {}", l.path.display(), l.file.display())
    } else {
        l.path.display().to_string()
    };
    match &l.why {
        Why::Root => format!("{target} [root]"),
        Why::Interpreter { .. } => format!("{target} [interpreter]"),
        Why::Needed { name, .. } => format!("{name}: {target}"),
        Why::Hwcaps { .. } => format!("{target} [glibc-hwcaps variant]"),
        Why::Dylib { name, kind, .. } => {
            let kind = match kind {
                DylibKind::Load => "",
                DylibKind::Weak => " [weak]",
                DylibKind::Reexport => " [re-export]",
                DylibKind::Upward => " [upward]",
            };
            format!("{name}: {target}{kind}")
        }
        Why::Script { .. } => format!("{target} [#! interpreter]"),
        Why::SymlinkOf { .. } => target,
    }
}
