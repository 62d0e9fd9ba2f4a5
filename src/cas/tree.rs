//! Merkle trees of `Directory` messages, both ways.
//!
//! [`build`] turns a flat list of entries into canonical `Directory`
//! messages: names sorted by code point, no duplicates, no `.`, `..`, `/` or
//! NUL in a name. The same entries give the same root digest on every machine.
//! [`flatten`] goes back from untrusted `Directory` messages (a GetTree answer,
//! an output `Tree`) to entries, refusing anything `build` would not produce.
//! Reading and writing the files themselves is left to the callers.

use std::collections::{BTreeMap, HashMap};

use prost::Message;

use super::Digest;
use crate::proto::reapi;

/// What sits at a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    File { digest: Digest, executable: bool },
    Symlink { target: String },
    Directory,
}

/// One path (relative, `/`-separated) and what sits there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub node: Node,
}

impl Entry {
    pub fn file(path: impl Into<String>, digest: Digest, executable: bool) -> Entry {
        Entry {
            path: path.into(),
            node: Node::File { digest, executable },
        }
    }
    pub fn symlink(path: impl Into<String>, target: impl Into<String>) -> Entry {
        Entry {
            path: path.into(),
            node: Node::Symlink {
                target: target.into(),
            },
        }
    }
    pub fn dir(path: impl Into<String>) -> Entry {
        Entry {
            path: path.into(),
            node: Node::Directory,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TreeError {
    #[error("invalid name {0:?} in a tree (empty, '.', '..', or containing '/' or NUL)")]
    BadName(String),
    #[error("path {0:?} appears twice in the tree")]
    Duplicate(String),
    #[error("path {0:?} is used both as a directory and as a file or symlink")]
    NotADirectory(String),
    #[error("names in directory {0:?} are not sorted")]
    Unsorted(String),
    #[error("directory {0} is not in the tree")]
    MissingDirectory(Digest),
    #[error("bad digest in directory {path:?}: {error}")]
    BadDigest {
        path: String,
        error: super::DigestError,
    },
    #[error("tree has more than {0} entries")]
    TooLarge(usize),
    #[error("directory message does not decode: {0}")]
    Decode(String),
}

/// A built tree: the root digest and every directory message by digest.
#[derive(Clone, Debug, Default)]
pub struct MerkleTree {
    pub root: Digest,
    pub directories: BTreeMap<Digest, Vec<u8>>,
}

impl Default for Digest {
    fn default() -> Digest {
        Digest::EMPTY
    }
}

impl MerkleTree {
    /// The root and its descendants as one `Tree` message (an output directory).
    pub fn to_tree_message(&self) -> reapi::Tree {
        let decode = |b: &Vec<u8>| reapi::Directory::decode(b.as_slice()).expect("own encoding");
        reapi::Tree {
            root: Some(decode(&self.directories[&self.root])),
            children: self
                .directories
                .iter()
                .filter(|(d, _)| **d != self.root)
                .map(|(_, b)| decode(b))
                .collect(),
        }
    }
}

/// True for a name that may appear in a `Directory`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

/// Splits a relative path into checked components; `""` and `"."` are the root.
pub fn split_path(path: &str) -> Result<Vec<&str>, TreeError> {
    if path.is_empty() || path == "." {
        return Ok(Vec::new());
    }
    path.split('/')
        .map(|c| {
            if valid_name(c) {
                Ok(c)
            } else {
                Err(TreeError::BadName(path.to_string()))
            }
        })
        .collect()
}

#[derive(Default)]
struct DirBuilder {
    files: BTreeMap<String, (Digest, bool)>,
    symlinks: BTreeMap<String, String>,
    dirs: BTreeMap<String, DirBuilder>,
}

impl DirBuilder {
    fn taken(&self, name: &str) -> bool {
        self.files.contains_key(name)
            || self.symlinks.contains_key(name)
            || self.dirs.contains_key(name)
    }

    fn encode(&self, out: &mut BTreeMap<Digest, Vec<u8>>) -> Digest {
        let directories = self
            .dirs
            .iter()
            .map(|(name, child)| reapi::DirectoryNode {
                name: name.clone(),
                digest: Some(child.encode(out).to_proto()),
            })
            .collect();
        let msg = reapi::Directory {
            files: self
                .files
                .iter()
                .map(|(name, (d, x))| reapi::FileNode {
                    name: name.clone(),
                    digest: Some(d.to_proto()),
                    is_executable: *x,
                    ..Default::default()
                })
                .collect(),
            directories,
            symlinks: self
                .symlinks
                .iter()
                .map(|(name, target)| reapi::SymlinkNode {
                    name: name.clone(),
                    target: target.clone(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let (digest, bytes) = Digest::of_message(&msg);
        out.insert(digest, bytes);
        digest
    }
}

/// Builds canonical directory messages from entries. Parent directories are
/// implied; a path given twice is an error, even with the same content.
pub fn build<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Result<MerkleTree, TreeError> {
    let mut root = DirBuilder::default();
    for entry in entries {
        let parts = split_path(&entry.path)?;
        let Some((last, parents)) = parts.split_last() else {
            match entry.node {
                Node::Directory => continue,
                _ => return Err(TreeError::BadName(entry.path.clone())),
            }
        };
        let mut dir = &mut root;
        for (i, p) in parents.iter().enumerate() {
            if dir.files.contains_key(*p) || dir.symlinks.contains_key(*p) {
                return Err(TreeError::NotADirectory(parts[..=i].join("/")));
            }
            dir = dir.dirs.entry(p.to_string()).or_default();
        }
        let name = last.to_string();
        match &entry.node {
            Node::Directory => {
                if dir.files.contains_key(&name) || dir.symlinks.contains_key(&name) {
                    return Err(TreeError::NotADirectory(entry.path.clone()));
                }
                // A directory named twice, or implied by a deeper path first, is fine.
                dir.dirs.entry(name).or_default();
            }
            Node::File { digest, executable } => {
                if dir.taken(&name) {
                    return Err(TreeError::Duplicate(entry.path.clone()));
                }
                dir.files.insert(name, (*digest, *executable));
            }
            Node::Symlink { target } => {
                if dir.taken(&name) {
                    return Err(TreeError::Duplicate(entry.path.clone()));
                }
                dir.symlinks.insert(name, target.clone());
            }
        }
    }
    let mut directories = BTreeMap::new();
    let root = root.encode(&mut directories);
    Ok(MerkleTree { root, directories })
}

/// Most entries a flattened tree may have: content addressing allows a small
/// message set to describe an exponentially large tree.
pub const MAX_ENTRIES: usize = 5_000_000;

/// Walks untrusted directory messages from `root` and lists every entry,
/// parents before children. Checks names, order and duplicates per directory.
pub fn flatten(
    root: &Digest,
    dirs: &HashMap<Digest, reapi::Directory>,
) -> Result<Vec<Entry>, TreeError> {
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), *root)];
    while let Some((prefix, digest)) = stack.pop() {
        let dir = dirs
            .get(&digest)
            .ok_or(TreeError::MissingDirectory(digest))?;
        check_directory(&prefix, dir)?;
        let join = |name: &str| {
            if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}/{name}")
            }
        };
        for f in &dir.files {
            let path = join(&f.name);
            let digest = Digest::from_proto_opt(f.digest.as_ref()).map_err(|error| {
                TreeError::BadDigest {
                    path: path.clone(),
                    error,
                }
            })?;
            out.push(Entry::file(path, digest, f.is_executable));
        }
        for s in &dir.symlinks {
            out.push(Entry::symlink(join(&s.name), s.target.clone()));
        }
        for d in dir.directories.iter().rev() {
            let path = join(&d.name);
            let digest = Digest::from_proto_opt(d.digest.as_ref()).map_err(|error| {
                TreeError::BadDigest {
                    path: path.clone(),
                    error,
                }
            })?;
            out.push(Entry::dir(path.clone()));
            stack.push((path, digest));
        }
        if out.len() > MAX_ENTRIES {
            return Err(TreeError::TooLarge(MAX_ENTRIES));
        }
    }
    Ok(out)
}

/// Flattens an output `Tree` message (root plus children).
pub fn flatten_tree_message(tree: &reapi::Tree) -> Result<Vec<Entry>, TreeError> {
    let root = tree
        .root
        .as_ref()
        .ok_or_else(|| TreeError::Decode("Tree has no root".into()))?;
    let mut dirs = HashMap::new();
    for child in &tree.children {
        dirs.insert(Digest::of_message(child).0, child.clone());
    }
    let root_digest = Digest::of_message(root).0;
    dirs.insert(root_digest, root.clone());
    flatten(&root_digest, &dirs)
}

fn check_directory(path: &str, dir: &reapi::Directory) -> Result<(), TreeError> {
    let names = dir
        .files
        .iter()
        .map(|f| &f.name)
        .chain(dir.directories.iter().map(|d| &d.name))
        .chain(dir.symlinks.iter().map(|s| &s.name));
    let mut seen = std::collections::HashSet::new();
    for name in names {
        if !valid_name(name) {
            return Err(TreeError::BadName(name.clone()));
        }
        if !seen.insert(name.as_str()) {
            return Err(TreeError::Duplicate(format!("{path}/{name}")));
        }
    }
    let sorted = |v: Vec<&String>| v.windows(2).all(|w| w[0] < w[1]);
    if !sorted(dir.files.iter().map(|f| &f.name).collect())
        || !sorted(dir.directories.iter().map(|d| &d.name).collect())
        || !sorted(dir.symlinks.iter().map(|s| &s.name).collect())
    {
        return Err(TreeError::Unsorted(path.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Digest {
        Digest::of_bytes(s.as_bytes())
    }

    #[test]
    fn empty_tree_is_the_empty_directory() {
        let t = build(&[]).unwrap();
        // An empty Directory encodes to zero bytes.
        assert_eq!(t.root, Digest::EMPTY);
        assert_eq!(t.directories.len(), 1);
    }

    #[test]
    fn golden_root_digest() {
        let entries = vec![
            Entry::file("src/main.c", d("int main(){}\n"), false),
            Entry::file("run.sh", d("#!/bin/sh\n"), true),
            Entry::symlink("lib/libz.so", "libz.so.1"),
            Entry::dir("out"),
        ];
        let t = build(&entries).unwrap();
        // Pinned: any change in canonical encoding changes every cache key.
        assert_eq!(
            t.root.to_string(),
            "0ed332893ed13db1cdc16470993e7200cecb76f5dead45750d4b9f084e46d7d1/311",
            "update only on purpose"
        );
    }

    #[test]
    fn encoding_is_the_canonical_wire_form() {
        // Directory{files: [FileNode{name: "a", digest: {hash, 1}, is_executable: true}]},
        // written out by hand from the field numbers.
        let digest = d("1");
        let mut dg = vec![0x0a, 64];
        dg.extend_from_slice(digest.hex().as_bytes());
        dg.extend_from_slice(&[0x10, 1]);
        let mut node = vec![0x0a, 1, b'a', 0x12, dg.len() as u8];
        node.extend_from_slice(&dg);
        node.extend_from_slice(&[0x20, 1]);
        let mut want = vec![0x0a, node.len() as u8];
        want.extend_from_slice(&node);
        let t = build(&[Entry::file("a", digest, true)]).unwrap();
        assert_eq!(t.directories[&t.root], want);
        assert_eq!(t.root, Digest::of_bytes(&want));
    }

    #[test]
    fn order_of_entries_does_not_matter() {
        let a = vec![
            Entry::file("b/x", d("1"), false),
            Entry::file("a", d("2"), true),
            Entry::file("b/c/y", d("3"), false),
            Entry::symlink("Z", "a"),
        ];
        let mut b = a.clone();
        b.reverse();
        assert_eq!(build(&a).unwrap().root, build(&b).unwrap().root);
        assert_eq!(build(&a).unwrap().directories.len(), 3);
    }

    #[test]
    fn names_sort_by_code_point() {
        let t = build(&[
            Entry::file("b", d("1"), false),
            Entry::file("B", d("1"), false),
            Entry::file("é", d("1"), false),
            Entry::file("a", d("1"), false),
        ])
        .unwrap();
        let root = reapi::Directory::decode(t.directories[&t.root].as_slice()).unwrap();
        let names: Vec<_> = root.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["B", "a", "b", "é"]);
    }

    #[test]
    fn refuses_bad_names_duplicates_and_conflicts() {
        for bad in ["../x", "a/./b", "/abs", "a//b", "a/"] {
            assert!(
                matches!(
                    build(&[Entry::file(bad, d("1"), false)]),
                    Err(TreeError::BadName(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            build(&[
                Entry::file("a", d("1"), false),
                Entry::file("a", d("1"), false)
            ]),
            Err(TreeError::Duplicate(_))
        ));
        assert!(matches!(
            build(&[
                Entry::file("a", d("1"), false),
                Entry::file("a/b", d("1"), false)
            ]),
            Err(TreeError::NotADirectory(_))
        ));
        assert!(matches!(
            build(&[Entry::symlink("a", "x"), Entry::dir("a")]),
            Err(TreeError::NotADirectory(_))
        ));
    }

    #[test]
    fn flatten_inverts_build() {
        let entries = vec![
            Entry::file("a/b/c.txt", d("c"), false),
            Entry::file("a/x", d("x"), true),
            Entry::symlink("a/l", "x"),
            Entry::dir("empty"),
        ];
        let t = build(&entries).unwrap();
        let dirs: HashMap<_, _> = t
            .directories
            .iter()
            .map(|(k, v)| (*k, reapi::Directory::decode(v.as_slice()).unwrap()))
            .collect();
        let mut got = flatten(&t.root, &dirs).unwrap();
        got.retain(|e| e.node != Node::Directory || e.path == "empty");
        got.sort_by(|a, b| a.path.cmp(&b.path));
        let mut want = entries.clone();
        want.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(got, want);
        let from_tree = flatten_tree_message(&t.to_tree_message()).unwrap();
        assert_eq!(from_tree.len(), 6);
    }

    #[test]
    fn flatten_refuses_hostile_directories() {
        let bad = |dir: reapi::Directory| {
            let root = Digest::of_message(&dir).0;
            flatten(&root, &HashMap::from([(root, dir)]))
        };
        let file = |name: &str| reapi::FileNode {
            name: name.into(),
            digest: Some(d("1").to_proto()),
            ..Default::default()
        };
        assert!(matches!(
            bad(reapi::Directory {
                files: vec![file("..")],
                ..Default::default()
            }),
            Err(TreeError::BadName(_))
        ));
        assert!(matches!(
            bad(reapi::Directory {
                files: vec![file("a/b")],
                ..Default::default()
            }),
            Err(TreeError::BadName(_))
        ));
        assert!(matches!(
            bad(reapi::Directory {
                files: vec![file("b"), file("a")],
                ..Default::default()
            }),
            Err(TreeError::Unsorted(_))
        ));
        assert!(matches!(
            bad(reapi::Directory {
                files: vec![file("a")],
                symlinks: vec![reapi::SymlinkNode {
                    name: "a".into(),
                    target: "x".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            Err(TreeError::Duplicate(_))
        ));
        let missing = reapi::Directory {
            directories: vec![reapi::DirectoryNode {
                name: "sub".into(),
                digest: Some(d("nope").to_proto()),
            }],
            ..Default::default()
        };
        assert!(matches!(bad(missing), Err(TreeError::MissingDirectory(_))));
    }
}
