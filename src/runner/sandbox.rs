//! The bubblewrap sandbox: the command runs with the materialized input
//! root as `/` and nothing of the host visible.
//!
//! `--sandbox bwrap` exists to prove a toolchain hermetic: no host
//! directory is bound, so a command that reaches for `/usr/lib` or `/bin/sh`
//! fails instead of silently using the worker's copy. Only `/dev`, a fresh
//! `/proc` and a `/tmp` tmpfs are provided, every namespace bwrap supports
//! is unshared (no network), and the sandbox dies with the worker. This
//! module only builds the bwrap invocation and checks, before starting it,
//! that the program exists inside the root (so a missing program is a
//! shell-like exit 127, not bwrap's own exit 1); `exec` runs it and
//! `collect` reads the outputs from the root as usual.

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
    /// `bwrap` with the input root as `/` and no host binds.
    Bwrap,
}

/// One sandboxed run: where bwrap is, the host directory that becomes `/`,
/// and the working directory relative to it.
#[derive(Clone, Debug)]
pub struct Jail {
    pub bwrap: PathBuf,
    pub root: PathBuf,
    pub workdir: String,
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
        [
            "--bind",
            &root,
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--tmpfs",
            "/tmp",
            "--unshare-all",
            "--die-with-parent",
            "--chdir",
            &chdir,
            "--",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
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
            if let Some(abs) = p.strip_prefix('/') {
                self.root.join(abs)
            } else {
                self.root.join(self.workdir.trim_matches('/')).join(p)
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
        let top = Jail {
            workdir: String::new(),
            ..j
        };
        let args = top.bwrap_args();
        let chdir = args.iter().position(|a| a == "--chdir").unwrap();
        assert_eq!(args[chdir + 1], "/");
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
