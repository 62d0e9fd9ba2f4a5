//! The bubblewrap sandboxes: the command runs with the materialized input
//! root as `/`, so absolute paths in it mean what they meant on the client
//! (recast's wrappers mirror every input at its absolute path).
//!
//! Two kinds:
//! - `chroot`: the input root is `/`; each top-level directory of the host
//!   that the input root does not have is bound read-only (so `/bin/sh`
//!   works for a plain `recast run`, while a shipped toolchain's `/usr`
//!   hides the host's).
//! - `bwrap`: nothing of the host is visible. It exists to prove a
//!   toolchain hermetic: a command that reaches for `/usr/lib` or `/bin/sh`
//!   fails instead of silently using the worker's copy.
//!
//! Both provide `/dev`, a fresh `/proc` and a `/tmp` tmpfs (unless the
//! input root has a `tmp` of its own), unshare every namespace bwrap
//! supports (no network), and die with the worker. This module only builds
//! the bwrap invocation and checks, before starting it, that the program
//! exists inside (so a missing program is a shell-like exit 127, not
//! bwrap's own exit 1); `exec` runs it and `collect` reads the outputs from
//! the root as usual.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// How an action is isolated from the host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sandbox {
    /// A plain child process in the materialized directory (what
    /// `recast serve` does): host files stay reachable by absolute path.
    #[default]
    None,
    /// `bwrap` with the input root as `/` and the host's other top-level
    /// directories read-only.
    Chroot,
    /// `bwrap` with the input root as `/` and no host binds.
    Bwrap,
}

impl Sandbox {
    /// Whether actions see the input root as `/`.
    pub fn is_chroot(self) -> bool {
        !matches!(self, Sandbox::None)
    }
}

/// One sandboxed run: where bwrap is, the host directory that becomes `/`,
/// the working directory relative to it, and whether the host's other
/// top-level directories are visible.
#[derive(Clone, Debug)]
pub struct Jail {
    pub bwrap: PathBuf,
    pub root: PathBuf,
    pub workdir: String,
    pub host: bool,
    /// Host directories a chroot hides under an empty tmpfs (the worker's
    /// own state: its CAS, its other actions' scratch space).
    pub hide: Vec<PathBuf>,
}

/// Top-level host entries never bound into a chroot: bwrap provides fresh
/// ones, or (the root's own) they would hide the input root.
const NOT_FROM_HOST: [&str; 3] = ["dev", "proc", "tmp"];

/// Whether bwrap can make a sandbox here (user namespaces allowed): tried
/// once per process.
pub fn bwrap_works() -> bool {
    static WORKS: OnceLock<bool> = OnceLock::new();
    *WORKS.get_or_init(|| {
        let Some(bwrap) = find_bwrap() else {
            return false;
        };
        Command::new(bwrap)
            .args(["--ro-bind", "/", "/", "--unshare-all", "--", "/bin/true"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// The `bwrap` on the worker's own `PATH` (looked up once).
pub fn find_bwrap() -> Option<PathBuf> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let path = std::env::var_os("PATH")?;
            std::env::split_paths(&path)
                .map(|d| d.join("bwrap"))
                .find(|p| is_executable_file(p))
        })
        .clone()
}

impl Jail {
    /// The bwrap arguments before `--` and the command's own argv.
    pub fn bwrap_args(&self) -> Vec<String> {
        let chdir = format!("/{}", self.workdir.trim_matches('/'));
        let root = self.root.to_string_lossy().into_owned();
        let mut args: Vec<String> = ["--bind", &root, "/", "--dev", "/dev", "--proc", "/proc"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if self.host {
            args.extend(self.host_binds());
            for h in &self.hide {
                let top = h.components().find_map(|c| match c {
                    std::path::Component::Normal(n) => Some(n),
                    _ => None,
                });
                let from_host = top.is_some_and(|t| {
                    !NOT_FROM_HOST.contains(&t.to_string_lossy().as_ref())
                        && std::fs::symlink_metadata(self.root.join(t)).is_err()
                });
                if from_host && h.is_dir() {
                    args.extend(["--tmpfs".to_string(), h.to_string_lossy().into_owned()]);
                }
            }
        }
        // A fresh /tmp, unless the input root has one of its own: a tmpfs
        // over it would hide inputs (and the working directory, for a
        // project under /tmp).
        if !self.root.join("tmp").exists() {
            args.extend(["--tmpfs".to_string(), "/tmp".to_string()]);
        }
        args.extend(
            [
                "--unshare-all",
                "--die-with-parent",
                "--chdir",
                &chdir,
                "--",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        args
    }

    /// Read-only binds (and symlinks, for a merged `/usr`'s `/bin`) of the
    /// host's top-level entries the input root does not have.
    fn host_binds(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir("/") else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !NOT_FROM_HOST.contains(&n.as_str()))
            .filter(|n| std::fs::symlink_metadata(self.root.join(n)).is_err())
            .collect();
        names.sort();
        let mut args = Vec::new();
        for name in names {
            let host = Path::new("/").join(&name);
            match std::fs::symlink_metadata(&host) {
                Ok(m) if m.file_type().is_symlink() => {
                    if let Ok(target) = std::fs::read_link(&host) {
                        args.push("--symlink".to_string());
                        args.push(target.to_string_lossy().into_owned());
                        args.push(host.to_string_lossy().into_owned());
                    }
                }
                Ok(m) if m.is_dir() => {
                    let h = host.to_string_lossy().into_owned();
                    args.extend(["--ro-bind".to_string(), h.clone(), h]);
                }
                _ => {}
            }
        }
        args
    }

    /// The bwrap command for `argv` (environment, stdio and process group
    /// are the caller's), or why the program cannot be found inside the
    /// root. bwrap passes its environment on, and execvp inside resolves a
    /// bare name with the command's `PATH`, as the unsandboxed run does.
    pub fn command(&self, argv: &[String], env: &[(&str, &str)]) -> Result<Command, String> {
        let argv0 = &argv[0];
        if self.resolve_inside(argv0, env).is_none() {
            return Err(format!(
                "{argv0:?} is not an executable file inside the sandbox (the input root is its `/`; no host file is visible)"
            ));
        }
        let mut cmd = Command::new(&self.bwrap);
        cmd.args(self.bwrap_args())
            .args(argv)
            .current_dir(&self.root);
        Ok(cmd)
    }

    /// Where execvp inside the sandbox would find `argv0`, as a host path.
    /// Symlinks are followed on the host, so an absolute symlink inside the
    /// root may be misjudged; bwrap then reports the failure itself.
    fn resolve_inside(&self, argv0: &str, env: &[(&str, &str)]) -> Option<PathBuf> {
        let inside = |p: &str| -> PathBuf {
            let abs = match p.strip_prefix('/') {
                Some(abs) => abs.to_string(),
                None => format!("{}/{p}", self.workdir.trim_matches('/')),
            };
            let abs = abs.trim_start_matches('/');
            let top = abs.split('/').next().unwrap_or("");
            // In a chroot, a top-level name the root lacks is the host's.
            if self.host
                && !top.is_empty()
                && !NOT_FROM_HOST.contains(&top)
                && std::fs::symlink_metadata(self.root.join(top)).is_err()
            {
                Path::new("/").join(abs)
            } else {
                self.root.join(abs)
            }
        };
        if argv0.contains('/') {
            let p = inside(argv0);
            return is_executable_file(&p).then_some(p);
        }
        let path_var = env.iter().rev().find(|(k, _)| *k == "PATH")?.1;
        path_var
            .split(':')
            .map(|dir| inside(if dir.is_empty() { "." } else { dir }).join(argv0))
            .find(|p| is_executable_file(p))
    }
}

fn is_executable_file(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn jail(root: &Path) -> Jail {
        Jail {
            bwrap: PathBuf::from("/usr/bin/bwrap"),
            root: root.to_path_buf(),
            workdir: "src/app".into(),
            host: false,
            hide: Vec::new(),
        }
    }

    #[test]
    fn bwrap_binds_only_the_root_and_changes_into_the_workdir() {
        let j = jail(Path::new("/scratch/root"));
        let args = j.bwrap_args();
        assert_eq!(&args[..3], ["--bind", "/scratch/root", "/"]);
        let chdir = args.iter().position(|a| a == "--chdir").unwrap();
        assert_eq!(args[chdir + 1], "/src/app");
        assert!(args.contains(&"--unshare-all".to_string()));
        assert!(args.contains(&"--die-with-parent".to_string()));
        assert_eq!(args.last().unwrap(), "--");
        // Exactly one bind: the root. No host directory is visible inside.
        assert_eq!(args.iter().filter(|a| a.contains("bind")).count(), 1);
        assert!(args.windows(2).any(|w| w == ["--tmpfs", "/tmp"]));
        let top = Jail {
            workdir: String::new(),
            ..j
        };
        let args = top.bwrap_args();
        let chdir = args.iter().position(|a| a == "--chdir").unwrap();
        assert_eq!(args[chdir + 1], "/");
    }

    #[test]
    fn a_chroot_shows_the_host_dirs_the_input_root_lacks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        fs::write(root.join("usr/bin/cc"), b"x").unwrap();
        fs::set_permissions(root.join("usr/bin/cc"), fs::Permissions::from_mode(0o755)).unwrap();
        let j = Jail {
            host: true,
            ..jail(root)
        };
        let args = j.bwrap_args();
        // The root's /usr wins; the host's /etc is there, read-only.
        assert!(!args.iter().any(|a| a == "/usr"), "{args:?}");
        assert!(
            args.windows(3).any(|w| w == ["--ro-bind", "/etc", "/etc"]),
            "{args:?}"
        );
        assert_eq!(
            j.resolve_inside("/usr/bin/cc", &[]),
            Some(root.join("usr/bin/cc"))
        );
        // /bin/sh comes from the host (through /bin or a merged /usr link).
        if Path::new("/etc/passwd").exists() {
            assert!(
                j.resolve_inside("/etc/passwd", &[]).is_none(),
                "not executable"
            );
        }
    }

    #[test]
    fn a_tmp_in_the_input_root_is_not_hidden_by_a_tmpfs() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("tmp/proj")).unwrap();
        let args = jail(dir.path()).bwrap_args();
        assert!(!args.iter().any(|a| a == "--tmpfs"), "{args:?}");
    }

    #[test]
    fn programs_are_looked_up_inside_the_root_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("bin")).unwrap();
        fs::create_dir_all(root.join("src/app/tools")).unwrap();
        for p in ["bin/cc", "src/app/tools/gen"] {
            fs::write(root.join(p), b"x").unwrap();
            fs::set_permissions(root.join(p), fs::Permissions::from_mode(0o755)).unwrap();
        }
        let j = jail(root);
        let env = [("PATH", "/bin:tools")];
        assert_eq!(j.resolve_inside("cc", &env), Some(root.join("bin/cc")));
        assert_eq!(
            j.resolve_inside("gen", &env),
            Some(root.join("src/app/tools/gen"))
        );
        assert_eq!(j.resolve_inside("/bin/cc", &[]), Some(root.join("bin/cc")));
        assert_eq!(
            j.resolve_inside("./tools/gen", &[]),
            Some(root.join("src/app/tools/gen"))
        );
        // The host's /bin/sh exists, but not inside this root.
        assert_eq!(j.resolve_inside("sh", &env), None);
        assert_eq!(j.resolve_inside("/bin/sh", &env), None);
        assert!(j.command(&["sh".into()], &env).is_err());
        assert!(j.command(&["cc".into(), "-c".into()], &env).is_ok());
    }
}
