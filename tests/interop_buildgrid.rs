//! `recast worker` as BuildGrid's bot, with `recast run` as the client:
//! compiles byte-identical to local ones, platform matching between two
//! workers, a worker killed mid-action, the bubblewrap sandbox, and a
//! graceful SIGTERM.
//!
//! Each test gets its own BuildGrid and PostgreSQL (`common::buildgrid`).
//! Skipped with a message when BuildGrid is not installed, unless
//! `RECAST_REQUIRE_PEERS=1`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::buildgrid::{BuildGrid, Tuning, Worker};
use common::{json_summary, recast, run_ok, tempdir};

/// `recast run` against `grid` in `root`, with `--json`. Calls time out
/// after two minutes, so an action no worker takes fails the test rather
/// than hanging it.
fn run_cmd(grid: &BuildGrid, root: &Path, extra: &[&str], argv: &[&str]) -> Command {
    let mut cmd = recast([
        "run",
        "--remote",
        &grid.url(),
        "--timeout",
        "120",
        "--json",
        "--input-root",
    ]);
    cmd.arg(root).args(extra).arg("--").args(argv);
    cmd
}

/// The action digest a `--json` run reports.
fn action_of(out: &Output) -> String {
    json_summary(&out.stdout)["action_digest"]
        .as_str()
        .expect("action_digest in the summary")
        .to_string()
}

fn host_isa() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x86-64",
        "aarch64" => "arm-a64",
        other => panic!("no REAPI ISA name for {other} in this test"),
    }
}

/// The real rustc behind rustup's proxy: actions get no HOME, so the proxy
/// could not find its toolchain.
fn real_rustc() -> PathBuf {
    let out = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .expect("rustc on PATH");
    assert!(out.status.success());
    let sysroot = String::from_utf8(out.stdout).unwrap();
    PathBuf::from(sysroot.trim()).join("bin/rustc")
}

#[test]
fn gcc_and_rustc_compiles_through_buildgrid_match_local_ones() {
    let Some(grid) = BuildGrid::start() else {
        return;
    };
    let worker = Worker::start(&grid.url(), "compiler", &["--jobs", "2"]);

    // gcc -c with a header, remote vs local.
    let remote = tempdir();
    let local = tempdir();
    for dir in [remote.path(), local.path()] {
        std::fs::write(dir.join("answer.h"), "#define ANSWER 42\n").unwrap();
        std::fs::write(
            dir.join("main.c"),
            "#include \"answer.h\"\nint answer(void) { return ANSWER; }\n",
        )
        .unwrap();
    }
    let gcc = ["gcc", "-O2", "-c", "main.c", "-o", "main.o"];
    let out = run_ok(&mut run_cmd(
        &grid,
        remote.path(),
        &["--output", "main.o"],
        &gcc,
    ));
    assert_eq!(json_summary(&out.stdout)["exit_code"], 0);
    run_ok(
        Command::new(gcc[0])
            .args(&gcc[1..])
            .current_dir(local.path()),
    );
    let got = std::fs::read(remote.path().join("main.o")).unwrap();
    assert!(!got.is_empty());
    assert_eq!(
        got,
        std::fs::read(local.path().join("main.o")).unwrap(),
        "remote and local gcc -c outputs differ"
    );
    worker.wait_for_log(&action_of(&out), Duration::from_secs(10));

    // rustc --crate-type=lib, emitting an object (an rlib's metadata
    // records the absolute working directory, which differs remotely).
    let rustc = real_rustc();
    let rustc = rustc.to_str().unwrap();
    for dir in [remote.path(), local.path()] {
        std::fs::write(
            dir.join("lib.rs"),
            "pub fn triple(x: u64) -> u64 { x * 3 }\n#[unsafe(no_mangle)] pub extern \"C\" fn tripled() -> u64 { triple(14) }\n",
        )
        .unwrap();
    }
    let args = [
        rustc,
        "--crate-type=lib",
        "--crate-name=tri",
        "--edition=2021",
        "-C",
        "opt-level=2",
        "--emit=obj",
        "-o",
        "tri.o",
        "lib.rs",
    ];
    let out = run_ok(&mut run_cmd(
        &grid,
        remote.path(),
        &["--output", "tri.o"],
        &args,
    ));
    run_ok(
        Command::new(args[0])
            .args(&args[1..])
            .current_dir(local.path()),
    );
    let got = std::fs::read(remote.path().join("tri.o")).unwrap();
    assert!(got.len() > 100);
    assert_eq!(
        got,
        std::fs::read(local.path().join("tri.o")).unwrap(),
        "remote and local rustc outputs differ"
    );
    worker.wait_for_log(&action_of(&out), Duration::from_secs(10));

    // A compile error comes back as the compiler's exit code and stderr.
    std::fs::write(remote.path().join("bad.c"), "int f( { }\n").unwrap();
    let out = run_cmd(
        &grid,
        remote.path(),
        &[],
        &["gcc", "-c", "bad.c", "-o", "bad.o"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "gcc's exit code is replayed");
    assert!(String::from_utf8_lossy(&out.stderr).contains("error"));
}

#[test]
fn actions_land_only_on_the_worker_with_their_isa() {
    let Some(grid) = BuildGrid::start() else {
        return;
    };
    let isa = host_isa();
    let native = Worker::start(
        &grid.url(),
        "native",
        &["--platform", &format!("ISA={isa}")],
    );
    // This machine pretends to be an arm64 worker: `--platform ISA=…`
    // replaces the host's ISA rather than adding to it.
    let other = Worker::start(&grid.url(), "foreign", &["--platform", "ISA=arm-a64"]);
    let root = tempdir();
    let mut ran_on = Vec::new();
    for (i, want) in [isa, "arm-a64", isa, "arm-a64"].iter().enumerate() {
        let out = run_ok(&mut run_cmd(
            &grid,
            root.path(),
            &["--platform", &format!("ISA={want}"), "--skip-cache"],
            &["/bin/sh", "-c", &format!("echo run {i}")],
        ));
        assert!(String::from_utf8_lossy(&out.stdout).starts_with(&format!("run {i}\n")));
        ran_on.push((*want, action_of(&out)));
    }
    for (want, digest) in &ran_on {
        let (right, wrong) = if *want == isa {
            (&native, &other)
        } else {
            (&other, &native)
        };
        right.wait_for_log(digest, Duration::from_secs(10));
        assert!(
            !wrong.log().contains(digest.as_str()),
            "action for ISA={want} ran on worker {}",
            wrong.name
        );
    }
}

#[test]
fn a_killed_workers_lease_goes_to_another_worker() {
    // A short keepalive so the dead bot's session is reaped in seconds.
    let Some(grid) = BuildGrid::start_with(Tuning {
        keepalive_secs: 5,
        reaper_secs: 0.5,
    }) else {
        return;
    };
    let doomed = Worker::start(&grid.url(), "doomed", &[]);
    let root = tempdir();
    let client = run_cmd(
        &grid,
        root.path(),
        &["--output", "out.txt", "--skip-cache"],
        &[
            "/bin/sh",
            "-c",
            "sleep 2; echo survived > out.txt; echo done",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    doomed.wait_for_log("lease started", Duration::from_secs(30));
    let rescuer = Worker::start(&grid.url(), "rescuer", &[]);
    doomed.signal(libc::SIGKILL);
    let t = Instant::now();
    let out = client.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "client failed: {}\n{}\nBuildGrid log tail:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        tail(&grid.log(), 40)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("done\n"));
    assert_eq!(
        std::fs::read_to_string(root.path().join("out.txt")).unwrap(),
        "survived\n"
    );
    let digest = action_of(&out);
    rescuer.wait_for_log(&digest, Duration::from_secs(5));
    assert!(
        !doomed.log().contains(&digest),
        "the killed worker cannot have completed the action"
    );
    eprintln!(
        "lease reassigned and finished {:?} after the kill",
        t.elapsed()
    );
}

/// A static test program: prints whether it can see the host's
/// /etc/passwd. Compiled locally; `None` when static linking is impossible.
fn static_probe(dir: &Path) -> Option<PathBuf> {
    let src = dir.join("probe.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\nint main(void) { FILE *f = fopen(\"/etc/passwd\", \"r\"); printf(\"probe passwd=%s\\n\", f ? \"visible\" : \"hidden\"); return 0; }\n",
    )
    .unwrap();
    let bin = dir.join("probe");
    let ok = Command::new("gcc")
        .args(["-static", "-O1", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .is_ok_and(|s| s.success());
    std::fs::remove_file(&src).unwrap();
    ok.then_some(bin)
}

#[test]
fn bwrap_sandbox_sees_only_the_input_root() {
    if common::peer("bwrap").is_none() {
        return;
    }
    let Some(grid) = BuildGrid::start() else {
        return;
    };
    let root = tempdir();
    let have_probe = static_probe(root.path()).is_some();

    let mut sandboxed = Worker::start(&grid.url(), "jailed", &["--sandbox", "bwrap"]);
    // No /bin/sh inside: the shell's own "not found".
    let out = run_cmd(
        &grid,
        root.path(),
        &["--skip-cache"],
        &["/bin/sh", "-c", "echo should not run"],
    )
    .output()
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(127),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("sandbox"));
    if have_probe {
        let out = run_ok(&mut run_cmd(
            &grid,
            root.path(),
            &["--skip-cache"],
            &["./probe"],
        ));
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with("probe passwd=hidden\n"),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    } else {
        eprintln!("note: gcc -static unavailable; only the negative sandbox check ran");
    }
    sandboxed.signal(libc::SIGTERM);
    assert!(
        sandboxed
            .wait_exit(Duration::from_secs(30))
            .is_some_and(|s| s.success())
    );

    // The same actions without the sandbox see the host.
    let _plain = Worker::start(&grid.url(), "plain", &[]);
    let out = run_ok(&mut run_cmd(
        &grid,
        root.path(),
        &["--skip-cache"],
        &["/bin/sh", "-c", "echo should not run"],
    ));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("should not run\n"));
    if have_probe {
        let out = run_ok(&mut run_cmd(
            &grid,
            root.path(),
            &["--skip-cache"],
            &["./probe"],
        ));
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("probe passwd=visible\n"));
    }
}

#[test]
fn sigterm_finishes_the_running_action_then_exits_zero() {
    let Some(grid) = BuildGrid::start() else {
        return;
    };
    let mut worker = Worker::start(&grid.url(), "graceful", &[]);
    let root = tempdir();
    let client = run_cmd(
        &grid,
        root.path(),
        &["--skip-cache"],
        &["/bin/sh", "-c", "sleep 1.5; echo finished"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    worker.wait_for_log("lease started", Duration::from_secs(30));
    worker.signal(libc::SIGTERM);
    let status = worker.wait_exit(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "worker exit {status:?}; log:\n{}",
        worker.log()
    );
    let out = client.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("finished\n"));
    let log = worker.log();
    assert!(log.contains("lease completed"), "{log}");
    assert!(log.contains("bot session closed"), "{log}");

    // An idle worker leaves at once.
    let mut idle = Worker::start(&grid.url(), "idle", &[]);
    idle.wait_for_log("bot session created", Duration::from_secs(30));
    let t = Instant::now();
    idle.signal(libc::SIGINT);
    assert!(
        idle.wait_exit(Duration::from_secs(10))
            .is_some_and(|s| s.success())
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[test]
fn a_property_buildgrid_does_not_know_is_named_with_the_profile_to_use() {
    let Some(grid) = BuildGrid::start() else {
        return;
    };
    let _worker = Worker::start(&grid.url(), "any", &[]);
    let root = tempdir();
    // The engflow profile adds Pool=default; this BuildGrid registers only
    // OSFamily and ISA, so it refuses the action before any worker sees it.
    let out = run_cmd(
        &grid,
        root.path(),
        &["--platform-profile", "engflow"],
        &["/bin/true"],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("FAILED_PRECONDITION"), "{err}");
    assert!(err.contains("refused platform property Pool"), "{err}");
    assert!(
        err.contains("--platform-profile buildgrid") || err.contains("--platform-profile standard"),
        "{err}"
    );
    // The profile it suggests runs.
    run_ok(&mut run_cmd(
        &grid,
        root.path(),
        &["--platform-profile", "buildgrid"],
        &["/bin/true"],
    ));
}
