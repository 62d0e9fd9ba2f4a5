//! `recast platform` and `recast doctor`, and platform refusals explained,
//! driving the real binary against a real `recast serve` on 127.0.0.1.

mod common;

use common::{Server, recast, run_ok, tempdir};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `[{"name": K, "value": V}, …]` → `["K=V", …]`.
fn props(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a property list: {v}"))
        .iter()
        .map(|p| {
            format!(
                "{}={}",
                p["name"].as_str().unwrap(),
                p["value"].as_str().unwrap()
            )
        })
        .collect()
}

fn show_json(args: &[&str]) -> serde_json::Value {
    let out = run_ok(recast(["platform", "show", "--json"]).args(args));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

#[test]
fn show_on_this_host_gives_the_standard_lexicon() {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        eprintln!("skipping: the expected values are for x86_64 Linux");
        return;
    }
    let v = show_json(&[]);
    assert_eq!(props(&v["properties"]), ["ISA=x86-64", "OSFamily=linux"]);
    assert_eq!(v["profile"], "standard");
    assert_eq!(v["origin"], "this machine");

    let v = show_json(&["--profile", "buildbuddy"]);
    assert_eq!(props(&v["properties"]), ["Arch=amd64", "OSFamily=linux"]);

    // The recast binary itself, read by the toolchain inspector.
    let v = show_json(&["--binary", common::BIN]);
    assert_eq!(props(&v["properties"]), ["ISA=x86-64", "OSFamily=linux"]);
    assert_eq!(v["host"], "x86_64-linux");

    let v = show_json(&["--profile", "engflow", "--platform", "Pool=big"]);
    assert_eq!(
        props(&v["properties"]),
        ["ISA=x86-64", "OSFamily=linux", "Pool=big"]
    );
}

#[test]
fn show_for_a_triple_and_the_environment_and_a_user_profile() {
    let v = show_json(&[
        "--triple",
        "aarch64-apple-darwin",
        "--profile",
        "buildbuddy",
    ]);
    assert_eq!(props(&v["properties"]), ["Arch=arm64", "OSFamily=darwin"]);

    // RECAST_PLATFORM_PROFILE / RECAST_PLATFORM, below the flags.
    let out = run_ok(
        recast([
            "platform",
            "show",
            "--json",
            "--triple",
            "x86_64-unknown-linux-gnu",
        ])
        .env("RECAST_PLATFORM_PROFILE", "google-rbe")
        .env("RECAST_PLATFORM", "container-image=docker://img@sha256:00"),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        props(&v["properties"]),
        ["OSFamily=Linux", "container-image=docker://img@sha256:00"]
    );

    let tmp = tempdir();
    let file = tmp.path().join("farm.toml");
    std::fs::write(
        &file,
        "description = \"my farm\"\n[rename]\nISA = \"cpu\"\n[add]\nteam = \"c\"\n",
    )
    .unwrap();
    let v = show_json(&[
        "--triple",
        "x86_64-unknown-linux-gnu",
        "--profile",
        file.to_str().unwrap(),
    ]);
    assert_eq!(
        props(&v["properties"]),
        ["OSFamily=linux", "cpu=x86-64", "team=c"]
    );
    assert_eq!(v["profile"], "farm");
}

#[test]
fn show_refuses_what_it_cannot_map_naming_it() {
    let out = recast(["platform", "show", "--triple", "s390x-unknown-linux-gnu"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("s390x"), "{err}");
    assert!(err.contains("--platform ISA="), "{err}");
    // …and doing what it says works.
    let v = show_json(&[
        "--triple",
        "s390x-unknown-linux-gnu",
        "--platform",
        "ISA=s390x",
    ]);
    assert_eq!(props(&v["properties"]), ["ISA=s390x", "OSFamily=linux"]);

    let out = recast(["platform", "show", "--profile", "google-rbe"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("container-image"), "{err}");

    let out = recast(["platform", "show", "--profile", "no-such"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("\"no-such\""), "{}", stderr(&out));
}

#[test]
fn list_names_every_profile_and_the_lexicon() {
    let out = run_ok(&mut recast(["platform", "list"]));
    let text = stdout(&out);
    for p in [
        "standard",
        "buildgrid",
        "buildbarn",
        "nativelink",
        "buildbuddy",
        "google-rbe",
        "engflow",
    ] {
        assert!(text.contains(&format!("  {p} ")), "{p} missing:\n{text}");
    }
    assert!(text.contains("aarch64 → arm-a64"), "{text}");
    assert!(text.contains("darwin → macos"), "{text}");
    assert!(text.contains("x86_64-unknown-linux-gnu"), "{text}");

    let out = run_ok(&mut recast(["platform", "list", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["profiles"].as_array().unwrap().len(), 7);
    let triples = v["triples"].as_array().unwrap();
    assert!(triples.iter().any(|t| t == "aarch64-apple-darwin"));
    assert!(
        v["unmapped_triples"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "wasm32-unknown-unknown")
    );
}

#[test]
fn doctor_passes_against_the_embedded_server() {
    let server = Server::start_with(&["--workers", "1"]);
    let out = recast(["doctor", "--remote", &server.url()])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}\n{}\nserver:\n{}",
        stderr(&out),
        server.stderr()
    );
    assert!(text.contains("ok    capabilities: REAPI"), "{text}");
    assert!(text.contains("SHA256"), "{text}");
    assert!(text.contains("ok    test action ran on a worker"), "{text}");
    // The link, measured, and the mode the model picks from it: on
    // loopback a miss's link time is far below a compile's.
    assert!(text.contains("ok    link: a new connection "), "{text}");
    assert!(text.contains("(a 2 MiB random blob each way)"), "{text}");
    assert!(text.contains("model a compile: "), "{text}");
    assert!(
        text.contains("advice remote execution (the default) pays"),
        "{text}"
    );
    assert!(text.contains("all checks passed"), "{text}");
}

#[test]
fn doctor_reports_workers_that_do_not_match_the_profile() {
    let server = Server::start_with(&["--workers", "1", "--platform", "Pool=x"]);
    let out = recast([
        "doctor",
        "--remote",
        &server.url(),
        "--platform-profile",
        "engflow",
    ])
    .output()
    .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", stderr(&out));
    assert!(text.contains("FAIL  test action refused"), "{text}");
    assert!(text.contains("Pool=default"), "names the property: {text}");
    assert!(
        text.contains("--platform Pool=x"),
        "says what to do: {text}"
    );

    // With the pool the workers have, the same check passes.
    let out = recast([
        "doctor",
        "--remote",
        &server.url(),
        "--platform-profile",
        "engflow",
        "--platform",
        "Pool=x",
    ])
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", stdout(&out));
}

#[test]
fn doctor_reports_an_unreachable_server() {
    let port = common::free_port();
    let out = recast(["doctor", "--remote", &format!("grpc://127.0.0.1:{port}")])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL  connect"), "{text}");
}

#[test]
fn run_with_an_isa_no_worker_has_names_it_and_says_what_to_do() {
    let server = Server::start_with(&["--workers", "1"]);
    let tmp = tempdir();
    let out = recast([
        "run",
        "--remote",
        &server.url(),
        "--platform",
        "ISA=arm-a64",
        "--input-root",
    ])
    .arg(tmp.path())
    .args(["--", "true"])
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("FAILED_PRECONDITION"), "{err}");
    assert!(
        err.contains("the server refused platform property ISA=arm-a64"),
        "{err}"
    );
    assert!(
        err.contains("--platform ISA=x86-64") || !cfg!(target_arch = "x86_64"),
        "{err}"
    );

    // Without the override, the host's own platform runs.
    let out = recast(["run", "--remote", &server.url(), "--input-root"])
        .arg(tmp.path())
        .args(["--", "true"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}
