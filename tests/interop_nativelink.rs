//! Interop: recast's client against NativeLink 1.6.6, a REAPI engine
//! written independently of recast (Rust), run as one process holding a
//! whole cluster (`tests/common/nativelink.rs`).
//!
//! NativeLink's local worker runs each command in its action's directory
//! with the host's filesystem visible; the hermetic variant wraps every
//! command in bubblewrap through the worker's `entrypoint`, so only the
//! input root (plus `/proc` and `/dev`) exists. There a command runs only
//! if the input root brings its loader and libraries: the tests ship
//! coreutils with their ELF closure and start them through the loader.
//! Without NativeLink (`scripts/peers/nativelink.sh`) or bwrap the tests
//! skip, or fail under `RECAST_REQUIRE_PEERS=1`.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::nativelink::{NativeLink, Options, host_isa};
use common::{json_summary, recast_with_cache, run_ok, tempdir};

fn write(root: &Path, rel: &str, bytes: impl AsRef<[u8]>) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, bytes).unwrap();
}

/// `recast run --remote <nl> --input-root root [flags] -- argv`, with a
/// cache dir of its own under `tmp`.
fn run(nl: &NativeLink, tmp: &Path, root: &Path, flags: &[&str], argv: &[&str]) -> Command {
    let mut cmd = recast_with_cache(&tmp.join("cache"), ["run", "--remote", &nl.url()]);
    cmd.arg("--input-root")
        .arg(root)
        .args(flags)
        .arg("--")
        .args(argv);
    cmd
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `cmd`, panicking with its output and NativeLink's log unless it
/// exits 0.
fn ok(nl: &NativeLink, cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawning recast");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({})\nstdout:\n{}\nstderr:\n{}\nnativelink log:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr),
        nl.log()
    );
    out
}

/// The shared objects and the loader `ldd` lists for a program:
/// `(libraries, loader)`.
fn parse_ldd(out: &str) -> (Vec<String>, Option<String>) {
    let mut libs = Vec::new();
    let mut loader = None;
    for line in out.lines().map(str::trim) {
        if let Some((_, rest)) = line.split_once(" => ") {
            if let Some(path) = rest
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/'))
            {
                libs.push(path.to_string());
            }
        } else if line.starts_with('/') {
            loader = line.split_whitespace().next().map(str::to_string);
        }
    }
    (libs, loader)
}

/// Copies `/bin/<tool>` into `root/bin/`, its libraries into `root/lib/`
/// and its loader to `root/ld.so`, and returns the argv prefix that starts
/// it with nothing from the host: `./ld.so --library-path ./lib ./bin/<tool>`.
fn bundle(root: &Path, tool: &str) -> Vec<String> {
    let program = Path::new("/bin").join(tool);
    let out = run_ok(Command::new("ldd").arg(&program));
    let (libs, loader) = parse_ldd(&text(&out.stdout));
    let loader = loader.unwrap_or_else(|| panic!("ldd names no loader for {tool}"));
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir_all(root.join("lib")).unwrap();
    fs::copy(&program, root.join("bin").join(tool)).unwrap();
    for lib in libs {
        let name = Path::new(&lib).file_name().unwrap();
        fs::copy(&lib, root.join("lib").join(name)).unwrap();
    }
    fs::copy(&loader, root.join("ld.so")).unwrap();
    fs::set_permissions(root.join("ld.so"), fs::Permissions::from_mode(0o755)).unwrap();
    [
        "./ld.so",
        "--library-path",
        "./lib",
        &format!("./bin/{tool}"),
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn parse_ldd_finds_libraries_and_the_loader() {
    let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\
               \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f4e)\n\
               \t/lib64/ld-linux-x86-64.so.2 (0x00007f4f)\n";
    let (libs, loader) = parse_ldd(out);
    assert_eq!(libs, ["/lib/x86_64-linux-gnu/libc.so.6"]);
    assert_eq!(loader.as_deref(), Some("/lib64/ld-linux-x86-64.so.2"));
}

#[test]
fn nativelink_capabilities_are_read() {
    let Some(nl) = NativeLink::start() else {
        return;
    };
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let out = ok(
        &nl,
        &mut recast_with_cache(&cache, ["capabilities", "--remote", &nl.url()]),
    );
    assert!(
        text(&out.stdout).contains("SHA256"),
        "{}",
        text(&out.stdout)
    );

    let out = ok(
        &nl,
        &mut recast_with_cache(&cache, ["capabilities", "--json", "--remote", &nl.url()]),
    );
    let caps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(caps["exec_enabled"], true, "{caps}");
    eprintln!(
        "nativelink accepted connections {:?} after spawn",
        nl.started_in
    );
}

#[test]
fn nativelink_runs_a_relative_command_then_answers_from_its_cache() {
    let Some(nl) = NativeLink::start() else {
        return;
    };
    let tmp = tempdir();
    let root = tmp.path().join("root");
    write(&root, "in.txt", "input\n");
    write(
        &root,
        "tools/copy.sh",
        "#!/bin/sh\nset -e\ncat in.txt > out/result.txt\necho ran in \"$(basename \"$(dirname \"$PWD\")\")\"\n",
    );
    fs::set_permissions(
        root.join("tools/copy.sh"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let flags = ["--output", "out/result.txt", "--json"];
    let argv = ["./tools/copy.sh"];

    let out = ok(&nl, &mut run(&nl, tmp.path(), &root, &flags, &argv));
    assert_eq!(
        fs::read_to_string(root.join("out/result.txt")).unwrap(),
        "input\n"
    );
    assert!(
        text(&out.stdout).starts_with("ran in "),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(json_summary(&out.stdout)["cached"], false);

    // The whole `out/`: an empty one left behind would change the input
    // root, hence the action.
    fs::remove_dir_all(root.join("out")).unwrap();
    let again = ok(&nl, &mut run(&nl, tmp.path(), &root, &flags, &argv));
    assert_eq!(json_summary(&again.stdout)["cached"], true);
    assert_eq!(
        fs::read_to_string(root.join("out/result.txt")).unwrap(),
        "input\n"
    );
    // The cached stdout is the first run's, operation id and all.
    let first_line = |o: &Output| text(&o.stdout).lines().next().map(str::to_string);
    assert_eq!(first_line(&again), first_line(&out));
}

#[test]
fn nativelink_hermetic_runs_a_command_through_its_own_loader() {
    let Some(nl) = NativeLink::start_hermetic() else {
        return;
    };
    let tmp = tempdir();
    let root = tmp.path().join("root");
    write(&root, "in.txt", "input\n");
    let mut argv = bundle(&root, "cp");
    argv.extend(["in.txt", "out/copy.txt"].map(String::from));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();

    let flags = ["--output", "out/copy.txt", "--json"];
    let out = ok(&nl, &mut run(&nl, tmp.path(), &root, &flags, &argv));
    assert_eq!(
        fs::read_to_string(root.join("out/copy.txt")).unwrap(),
        "input\n"
    );
    assert_eq!(json_summary(&out.stdout)["cached"], false);
    fs::remove_dir_all(root.join("out")).unwrap();
    let again = ok(&nl, &mut run(&nl, tmp.path(), &root, &flags, &argv));
    assert_eq!(json_summary(&again.stdout)["cached"], true);
    assert_eq!(
        fs::read_to_string(root.join("out/copy.txt")).unwrap(),
        "input\n"
    );
}

#[test]
fn nativelink_hermetic_hides_the_host() {
    let Some(nl) = NativeLink::start_hermetic() else {
        return;
    };
    let tmp = tempdir();
    let root = tmp.path().join("root");
    write(&root, "in.txt", "input\n");

    // A host program: bwrap cannot even find it.
    let out = run(&nl, tmp.path(), &root, &[], &["/bin/sh", "-c", "true"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "/bin/sh ran in the hermetic sandbox");
    assert!(
        text(&out.stderr).contains("/bin/sh"),
        "stderr does not name /bin/sh:\n{}",
        text(&out.stderr)
    );

    // A bundled program runs, but sees no host file.
    let mut argv = bundle(&root, "cat");
    argv.extend(["in.txt", "/etc/passwd"].map(String::from));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = run(&nl, tmp.path(), &root, &[], &argv).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "input\n");
    assert!(
        text(&out.stderr).contains("/etc/passwd: No such file or directory"),
        "{}",
        text(&out.stderr)
    );
}

/// What `recast doctor` relies on: NativeLink never refuses an action
/// whose platform no worker offers. Execute is accepted and the operation
/// stays queued (the scheduler logs that no worker matches) for as long as
/// the client waits.
#[test]
fn nativelink_queues_an_action_no_worker_offers() {
    let Some(nl) = NativeLink::start() else {
        return;
    };
    let tmp = tempdir();
    let root = tmp.path().join("root");
    write(&root, "in.txt", "input\n");
    let mut child = run(
        &nl,
        tmp.path(),
        &root,
        &["--platform", "ISA=no-such-isa"],
        &["/bin/true"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    nl.wait_for_log(
        "No workers in capability index match required properties",
        Duration::from_secs(30),
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("recast run ended ({st}) instead of waiting:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();

    // The same action with this host's ISA runs at once.
    let isa = format!("ISA={}", host_isa());
    ok(
        &nl,
        &mut run(
            &nl,
            tmp.path(),
            &root,
            &["--platform", &isa],
            &["/bin/true"],
        ),
    );
}

/// NativeLink passes the action's directory to the command through
/// `additional_environment`, and runs the command in its `work/`.
#[test]
fn nativelink_passes_the_action_directory() {
    let Some(nl) = NativeLink::start_with(Options {
        environment: vec![(
            "ACTION_DIR".to_string(),
            common::nativelink::EnvSource::ActionDirectory,
        )],
        ..Options::default()
    }) else {
        return;
    };
    let tmp = tempdir();
    let root = tmp.path().join("root");
    write(&root, "in.txt", "input\n");
    let out = ok(
        &nl,
        &mut run(
            &nl,
            tmp.path(),
            &root,
            &[],
            &["/bin/sh", "-c", "echo \"$ACTION_DIR\"; pwd -P"],
        ),
    );
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    let (dir, cwd) = (lines.next().unwrap(), lines.next().unwrap());
    let work = nl.dir.join("work");
    assert_eq!(Path::new(dir).parent(), Some(work.as_path()), "{stdout}");
    assert_eq!(cwd, format!("{dir}/work"), "{stdout}");
}

/// A key the scheduler does not declare and no worker offers restricts
/// nothing: NativeLink matches undeclared keys only against workers that
/// declare them.
#[test]
fn nativelink_ignores_a_key_no_one_declares() {
    let Some(nl) = NativeLink::start() else {
        return;
    };
    let tmp = tempdir();
    let root = tmp.path().join("root");
    write(&root, "in.txt", "input\n");
    ok(
        &nl,
        &mut run(
            &nl,
            tmp.path(),
            &root,
            &["--platform", "Pool=anything"],
            &["/bin/true"],
        ),
    );
}
