//! buildbox-casd 1.4.25 with local execution on 127.0.0.1, for the
//! interop and hermetic tests.
//!
//! casd runs each action with buildbox-run (bubblewrap) chrooted into the
//! input root. [`Casd::start`] binds the host's `/usr` read-only inside, so
//! host tools such as `/bin/sh` and gcc work; [`Casd::start_bare`] binds
//! nothing, so only what the input root holds exists: a command works there
//! only if its toolchain is hermetic.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::{free_port, peer, recast, run_ok, tempdir, wait_listening};

/// A buildbox-casd on a free port, killed on drop.
pub struct Casd {
    child: Child,
    port: u16,
    _tmp: tempfile::TempDir,
}

/// Debian's merged /usr: /bin, /lib and /lib64 are links into /usr on the
/// host, so inside the chroot they must be binds of the /usr directories
/// (binding /bin itself fails).
const HOST_USR: [&str; 4] = [
    "--runner-arg=--ro-bind-mount=/usr:/usr",
    "--runner-arg=--ro-bind-mount=/usr/bin:/bin",
    "--runner-arg=--ro-bind-mount=/usr/lib:/lib",
    "--runner-arg=--ro-bind-mount=/usr/lib64:/lib64",
];

impl Casd {
    /// casd with the host's /usr visible in the chroot, or `None` (after
    /// printing why) when a peer is missing and peers are not required.
    pub fn start() -> Option<Casd> {
        Casd::spawn(&HOST_USR)
    }

    /// casd whose chroot holds the input root and nothing else.
    pub fn start_bare() -> Option<Casd> {
        Casd::spawn(&[])
    }

    fn spawn(runner_args: &[&str]) -> Option<Casd> {
        let casd = peer("buildbox-casd")?;
        let runner = peer("buildbox-run")?;
        peer("bwrap")?;
        let tmp = tempdir();
        let log = tmp.path().join("casd.log");
        let port = free_port();
        let mut child = Command::new(casd)
            .arg(format!("--bind=127.0.0.1:{port}"))
            .arg(format!("--buildbox-run={}", runner.display()))
            .arg("--jobs=2")
            .args(runner_args)
            .arg(tmp.path().join("cache"))
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log).unwrap())
            .stderr(fs::File::create(tmp.path().join("casd.err")).unwrap())
            .spawn()
            .expect("spawning buildbox-casd");
        wait_listening(
            port,
            &mut child,
            "buildbox-casd",
            &tmp.path().join("casd.err"),
        );
        Some(Casd {
            child,
            port,
            _tmp: tmp,
        })
    }

    pub fn url(&self) -> String {
        format!("grpc://127.0.0.1:{}", self.port)
    }

    /// `recast run --remote <casd> [flags] -- argv` in `root`.
    pub fn run(&self, root: &Path, flags: &[&str], argv: &[&str]) -> std::process::Output {
        let mut cmd = recast(["run", "--remote", &self.url(), "--input-root"]);
        cmd.arg(root).args(flags).arg("--").args(argv);
        run_ok(&mut cmd)
    }
}

impl Drop for Casd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
