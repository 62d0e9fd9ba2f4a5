//! Writing an `ActionResult` back into a local directory, safely, and
//! fetching its stdout/stderr.
//!
//! Every path from the server is checked again here (relative, no `..`,
//! no empty components), every parent must be a real directory inside the
//! root (created if absent, never a symlink), and every file is downloaded
//! into a temporary name beside its destination, verified, given its mode,
//! then renamed over the target. Symlinks from the server are recreated as
//! symlinks whatever they point at, and never followed while writing.
//! Existing files the result does not mention are left alone.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use prost::Message;

use super::{Client, RemoteError};
use crate::action::validate_output_path;
use crate::cas::Digest;
use crate::cas::tree::{Node, flatten_tree_message};
use crate::proto::reapi;

/// The largest stdout or stderr recast holds in memory to replay.
pub const MAX_STREAM: u64 = 256 << 20;

/// What writing the outputs took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutputStats {
    pub files: u64,
    pub bytes: u64,
}

/// One file to put in place.
#[derive(Debug)]
struct FileOut {
    digest: Digest,
    path: String,
    executable: bool,
    /// Content the server inlined (already verified).
    inline: Option<Vec<u8>>,
}

/// Everything the result asks for, by relative path.
#[derive(Debug, Default)]
struct Wanted {
    dirs: Vec<String>,
    files: Vec<FileOut>,
    symlinks: BTreeMap<String, String>,
}

impl Wanted {
    /// Every file's bytes came with the result, and they are few.
    fn all_inline(&self) -> bool {
        let mut bytes = 0;
        self.files.iter().all(|f| {
            bytes += f.digest.size();
            f.inline.is_some() || f.digest == Digest::EMPTY
        }) && bytes <= WRITE_HERE
    }
}

/// A symlink to create: temp path, final path, target.
type Link = (PathBuf, PathBuf, String);

/// A file ready for download: temp path, final path.
#[derive(Debug)]
struct Placed {
    digest: Digest,
    tmp: PathBuf,
    dest: PathBuf,
    executable: bool,
    inline: Option<Vec<u8>>,
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}/{b}")
    }
}

fn bad_path(server: &str, path: &str, why: impl std::fmt::Display) -> RemoteError {
    RemoteError::protocol(server, format!("output path {path:?} refused: {why}"))
}

/// Makes sure `root/comps...` exists as real directories, creating what is
/// missing; refuses symlinks and files in the way.
fn make_dirs(root: &Path, comps: &[&str]) -> io::Result<PathBuf> {
    let mut cur = root.to_path_buf();
    for c in comps {
        cur.push(c);
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(m) => {
                let what = if m.file_type().is_symlink() {
                    "a symlink"
                } else {
                    "not a directory"
                };
                return Err(io::Error::other(format!(
                    "{} is {what}; refusing to write through it",
                    cur.display()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => match std::fs::create_dir(&cur) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if !std::fs::symlink_metadata(&cur)?.file_type().is_dir() {
                        return Err(io::Error::other(format!(
                            "{} appeared as a non-directory",
                            cur.display()
                        )));
                    }
                }
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        }
    }
    Ok(cur)
}

fn tmp_beside(dir: &Path) -> PathBuf {
    dir.join(format!(".recast-{}.tmp", uuid::Uuid::new_v4().simple()))
}

/// Checks every path, creates directories, and picks temp names (blocking).
fn prepare(
    server: &str,
    root: &Path,
    wanted: Wanted,
) -> Result<(Vec<Placed>, Vec<Link>), RemoteError> {
    let split = |p: &str| -> Result<Vec<String>, RemoteError> {
        validate_output_path(p).map_err(|e| bad_path(server, p, e))?;
        Ok(p.split('/').map(str::to_string).collect())
    };
    let io_err = |p: &str, e: io::Error| RemoteError::io(root.join(p), e);
    for d in &wanted.dirs {
        let comps = split(d)?;
        let refs: Vec<&str> = comps.iter().map(String::as_str).collect();
        make_dirs(root, &refs).map_err(|e| io_err(d, e))?;
    }
    let parent_of = |p: &str| -> Result<(PathBuf, PathBuf), RemoteError> {
        let comps = split(p)?;
        let (name, parents) = comps.split_last().expect("validated path is not empty");
        let refs: Vec<&str> = parents.iter().map(String::as_str).collect();
        let dir = make_dirs(root, &refs).map_err(|e| io_err(p, e))?;
        Ok((dir.clone(), dir.join(name)))
    };
    let mut placed = Vec::new();
    for f in wanted.files {
        let (dir, dest) = parent_of(&f.path)?;
        placed.push(Placed {
            digest: f.digest,
            tmp: tmp_beside(&dir),
            dest,
            executable: f.executable,
            inline: f.inline,
        });
    }
    let mut links = Vec::new();
    for (path, target) in wanted.symlinks {
        let (dir, dest) = parent_of(&path)?;
        links.push((tmp_beside(&dir), dest, target));
    }
    Ok((placed, links))
}

/// Sets modes and renames temp files and symlinks into place (blocking).
fn commit(placed: &[Placed], links: &[Link]) -> Result<(), RemoteError> {
    for p in placed {
        if p.digest == Digest::EMPTY || p.inline.is_some() {
            let data = p.inline.as_deref().unwrap_or_default();
            std::fs::write(&p.tmp, data).map_err(|e| RemoteError::io(&p.tmp, e))?;
        }
        let mode = if p.executable { 0o755 } else { 0o644 };
        std::fs::set_permissions(&p.tmp, std::fs::Permissions::from_mode(mode))
            .map_err(|e| RemoteError::io(&p.tmp, e))?;
        replace(&p.tmp, &p.dest)?;
    }
    for (tmp, dest, target) in links {
        std::os::unix::fs::symlink(target, tmp).map_err(|e| RemoteError::io(tmp, e))?;
        replace(tmp, dest)?;
    }
    Ok(())
}

/// Renames `tmp` over `dest` ([`crate::fsutil::rename_replacing`]).
fn replace(tmp: &Path, dest: &Path) -> Result<(), RemoteError> {
    crate::fsutil::rename_replacing(tmp, dest).map_err(|e| RemoteError::io(dest, e))
}

fn cleanup(placed: &[Placed], links: &[Link]) {
    for p in placed {
        let _ = std::fs::remove_file(&p.tmp);
    }
    for (tmp, _, _) in links {
        let _ = std::fs::remove_file(tmp);
    }
}

fn digest_of(server: &str, what: &str, d: Option<&reapi::Digest>) -> Result<Digest, RemoteError> {
    Digest::from_proto_opt(d).map_err(|e| RemoteError::protocol(server, format!("{what}: {e}")))
}

/// Inline content, if the server sent any, checked against the digest.
fn checked_inline(
    server: &str,
    digest: Digest,
    data: &[u8],
) -> Result<Option<Vec<u8>>, RemoteError> {
    // Empty is empty, inlined or not: nothing to fetch.
    if digest == Digest::EMPTY {
        return Ok(Some(Vec::new()));
    }
    if data.is_empty() {
        return Ok(None);
    }
    let got = Digest::of_bytes(data);
    if got != digest {
        return Err(RemoteError::BadBlob {
            server: server.to_string(),
            digest,
            got,
        });
    }
    Ok(Some(data.to_vec()))
}

impl Client {
    /// Lists what `result` asks to be written, fetching output directory trees.
    async fn wanted(&self, result: &reapi::ActionResult) -> Result<Wanted, RemoteError> {
        let server = self.url();
        let mut w = Wanted::default();
        for f in &result.output_files {
            let digest = digest_of(server, &f.path, f.digest.as_ref())?;
            w.files.push(FileOut {
                digest,
                path: f.path.clone(),
                executable: f.is_executable,
                inline: checked_inline(server, digest, &f.contents)?,
            });
        }
        let tree_digests: Vec<Digest> = result
            .output_directories
            .iter()
            .map(|d| digest_of(server, &d.path, d.tree_digest.as_ref()))
            .collect::<Result<_, _>>()?;
        let trees = self.read_blobs(&tree_digests).await?;
        for (dir, td) in result.output_directories.iter().zip(&tree_digests) {
            let tree = reapi::Tree::decode(trees[td].as_slice()).map_err(|e| {
                self.protocol(format!("output directory {:?}: bad Tree: {e}", dir.path))
            })?;
            let entries = flatten_tree_message(&tree)
                .map_err(|e| self.protocol(format!("output directory {:?}: {e}", dir.path)))?;
            w.dirs.push(dir.path.clone());
            for e in entries {
                let path = join(&dir.path, &e.path);
                match e.node {
                    Node::Directory => w.dirs.push(path),
                    Node::File { digest, executable } => w.files.push(FileOut {
                        digest,
                        path,
                        executable,
                        inline: None,
                    }),
                    Node::Symlink { target } => {
                        w.symlinks.insert(path, target);
                    }
                }
            }
        }
        for s in result
            .output_symlinks
            .iter()
            .chain(&result.output_file_symlinks)
            .chain(&result.output_directory_symlinks)
        {
            w.symlinks.insert(s.path.clone(), s.target.clone());
        }
        Ok(w)
    }

    /// The action's stdout and stderr, inline or downloaded, verified. A
    /// stream larger than [`MAX_STREAM`] is refused (memory stays bounded
    /// whatever a server claims).
    pub async fn std_streams(
        &self,
        result: &reapi::ActionResult,
    ) -> Result<(Vec<u8>, Vec<u8>), RemoteError> {
        let server = self.url();
        let mut fetch = Vec::new();
        let mut pick = |raw: &[u8],
                        d: Option<&reapi::Digest>|
         -> Result<Result<Vec<u8>, Digest>, RemoteError> {
            match d {
                None => Ok(Ok(raw.to_vec())),
                Some(d) => {
                    let digest = digest_of(server, "stdout/stderr", Some(d))?;
                    if digest.size() > MAX_STREAM {
                        return Err(RemoteError::protocol(
                            server,
                            format!(
                                "an output stream of {} bytes is more than recast replays ({MAX_STREAM})",
                                digest.size()
                            ),
                        ));
                    }
                    match checked_inline(server, digest, raw)? {
                        Some(data) => Ok(Ok(data)),
                        None => {
                            fetch.push(digest);
                            Ok(Err(digest))
                        }
                    }
                }
            }
        };
        let out = pick(&result.stdout_raw, result.stdout_digest.as_ref())?;
        let err = pick(&result.stderr_raw, result.stderr_digest.as_ref())?;
        let mut blobs = self.read_blobs(&fetch).await?;
        let take = |r: Result<Vec<u8>, Digest>| match r {
            Ok(v) => v,
            Err(d) => blobs.get(&d).cloned().unwrap_or_default(),
        };
        let stdout = take(out);
        let stderr = take(err);
        blobs.clear();
        Ok((stdout, stderr))
    }
}

/// Writes the outputs of `result` under `root` (the action's working
/// directory on this machine). See the module doc for the rules.
pub async fn write_outputs(
    client: &Client,
    result: &reapi::ActionResult,
    root: &Path,
) -> Result<OutputStats, RemoteError> {
    write_outputs_in(client, vec![(root.to_path_buf(), result.clone())], None).await
}

/// A look at a downloaded output file (where it goes, its bytes) before it
/// is put in place: `Err` names what is wrong, and then nothing is written.
pub type Check = dyn Fn(&Path, &[u8]) -> Result<(), String> + Send + Sync;

/// [`write_outputs`] for several results, each under its own root, all or
/// nothing: every file is downloaded and passed through `check` before
/// the first one is renamed into place. A refused file is
/// [`RemoteError::Refused`].
pub async fn write_outputs_in(
    client: &Client,
    groups: Vec<(PathBuf, reapi::ActionResult)>,
    check: Option<std::sync::Arc<Check>>,
) -> Result<OutputStats, RemoteError> {
    let mut placed = Vec::new();
    let mut links = Vec::new();
    for (root, result) in groups {
        let wanted = client.wanted(&result).await?;
        let server = client.url().to_string();
        let prepared = if wanted.all_inline() {
            prepare(&server, &root, wanted)
        } else {
            tokio::task::spawn_blocking(move || prepare(&server, &root, wanted))
                .await
                .expect("output preparation panicked")
        };
        match prepared {
            Ok((p, l)) => {
                placed.extend(p);
                links.extend(l);
            }
            Err(e) => {
                cleanup(&placed, &links);
                return Err(e);
            }
        }
    }
    let stats = OutputStats {
        files: placed.len() as u64,
        bytes: placed.iter().map(|p| p.digest.size()).sum(),
    };
    let downloads: Vec<(Digest, PathBuf)> = placed
        .iter()
        .filter(|p| p.digest != Digest::EMPTY && p.inline.is_none())
        .map(|p| (p.digest, p.tmp.clone()))
        .collect();
    let downloads_none = downloads.is_empty();
    if let Err(e) = client.download_to_files(downloads).await {
        cleanup(&placed, &links);
        return Err(e);
    }
    let server = client.url().to_string();
    let finish = move || {
        check_all(&server, &placed, check.as_deref())
            .and_then(|()| commit(&placed, &links))
            .inspect_err(|_| cleanup(&placed, &links))
    };
    if stats.bytes <= WRITE_HERE && downloads_none {
        finish()?;
    } else {
        tokio::task::spawn_blocking(finish)
            .await
            .expect("output commit panicked")?;
    }
    Ok(stats)
}

/// Most bytes of outputs, all of them inline, written on the calling
/// thread: a blocking-pool thread costs more than a few small writes (a
/// hit's object file).
const WRITE_HERE: u64 = 1 << 20;

/// Runs `check` over every placed file's bytes (inline or downloaded).
fn check_all(server: &str, placed: &[Placed], check: Option<&Check>) -> Result<(), RemoteError> {
    let Some(check) = check else {
        return Ok(());
    };
    for p in placed {
        let refused = |why: String| RemoteError::Refused {
            server: server.to_string(),
            path: p.dest.clone(),
            why,
        };
        match &p.inline {
            Some(data) => check(&p.dest, data).map_err(refused)?,
            None if p.digest == Digest::EMPTY => check(&p.dest, &[]).map_err(refused)?,
            None => {
                let data = std::fs::read(&p.tmp).map_err(|e| RemoteError::io(&p.tmp, e))?;
                check(&p.dest, &data).map_err(refused)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_dirs_creates_and_refuses_symlinks_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let p = make_dirs(root, &["a", "b"]).unwrap();
        assert!(p.is_dir());
        std::os::unix::fs::symlink("/tmp", root.join("link")).unwrap();
        let err = make_dirs(root, &["link", "x"]).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        std::fs::write(root.join("file"), "x").unwrap();
        assert!(make_dirs(root, &["file", "x"]).is_err());
        assert!(make_dirs(root, &[]).unwrap() == root);
    }

    #[test]
    fn prepare_refuses_escaping_paths() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["../x", "/etc/passwd", "a//b", "a/../../b", "", "./a"] {
            let wanted = Wanted {
                files: vec![FileOut {
                    digest: Digest::EMPTY,
                    path: bad.into(),
                    executable: false,
                    inline: None,
                }],
                ..Default::default()
            };
            let err = prepare("s", dir.path(), wanted).unwrap_err();
            assert!(matches!(err, RemoteError::Protocol { .. }), "{bad}: {err}");
        }
        let wanted = Wanted {
            symlinks: [("x/../../y".to_string(), "t".to_string())].into(),
            ..Default::default()
        };
        assert!(prepare("s", dir.path(), wanted).is_err());
    }

    #[test]
    fn commit_writes_files_modes_and_symlinks_without_following() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // An existing symlink at an output path is replaced, not followed.
        let victim = root.join("victim");
        std::fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, root.join("out.o")).unwrap();
        let wanted = Wanted {
            dirs: vec!["d/e".into()],
            files: vec![
                FileOut {
                    digest: Digest::of_bytes(b"obj"),
                    path: "out.o".into(),
                    executable: false,
                    inline: Some(b"obj".to_vec()),
                },
                FileOut {
                    digest: Digest::EMPTY,
                    path: "d/run".into(),
                    executable: true,
                    inline: None,
                },
            ],
            symlinks: [("d/abs".to_string(), "/etc/passwd".to_string())].into(),
        };
        let (placed, links) = prepare("s", root, wanted).unwrap();
        commit(&placed, &links).unwrap();
        assert_eq!(std::fs::read(root.join("out.o")).unwrap(), b"obj");
        assert!(
            !std::fs::symlink_metadata(root.join("out.o"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        let m = std::fs::metadata(root.join("d/run")).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o755);
        assert_eq!(m.len(), 0);
        assert_eq!(
            std::fs::read_link(root.join("d/abs")).unwrap(),
            PathBuf::from("/etc/passwd")
        );
        assert!(root.join("d/e").is_dir());
        // No temp files left behind.
        let stray: Vec<_> = std::fs::read_dir(root.join("d"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".recast-"))
            .collect();
        assert!(stray.is_empty());
    }

    #[test]
    fn commit_replaces_an_existing_file_by_name_and_leaves_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // The old file is replaced by name: a hard link to it elsewhere
        // keeps the old bytes, as after a compiler's own rename or unlink.
        std::fs::write(root.join("a.o"), "old").unwrap();
        std::fs::hard_link(root.join("a.o"), root.join("other")).unwrap();
        std::fs::create_dir(root.join("dir.o")).unwrap();
        std::fs::write(root.join("dir.o/inside"), "x").unwrap();
        let file = |path: &str| FileOut {
            digest: Digest::of_bytes(b"new"),
            path: path.into(),
            executable: false,
            inline: Some(b"new".to_vec()),
        };
        let wanted = Wanted {
            files: vec![file("a.o")],
            ..Default::default()
        };
        let (placed, links) = prepare("s", root, wanted).unwrap();
        commit(&placed, &links).unwrap();
        assert_eq!(std::fs::read(root.join("a.o")).unwrap(), b"new");
        assert_eq!(std::fs::read(root.join("other")).unwrap(), b"old");
        let wanted = Wanted {
            files: vec![file("dir.o")],
            ..Default::default()
        };
        let (placed, links) = prepare("s", root, wanted).unwrap();
        let err = commit(&placed, &links).unwrap_err();
        assert!(err.to_string().contains("dir.o"), "{err}");
        assert_eq!(std::fs::read(root.join("dir.o/inside")).unwrap(), b"x");
        cleanup(&placed, &links);
    }

    #[test]
    fn inline_content_is_verified() {
        let d = Digest::of_bytes(b"abc");
        assert_eq!(
            checked_inline("s", d, b"abc").unwrap(),
            Some(b"abc".to_vec())
        );
        assert_eq!(checked_inline("s", d, b"").unwrap(), None);
        assert!(matches!(
            checked_inline("s", d, b"abd").unwrap_err(),
            RemoteError::BadBlob { .. }
        ));
    }
}
