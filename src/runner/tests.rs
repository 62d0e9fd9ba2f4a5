//! Runner tests with real processes (`/bin/sh`) and a real disk store.

use std::fs;
use std::time::Instant;

use prost::Message;

use super::*;
use crate::cas::store::DiskStore;
use crate::cas::tree::{self, Entry};

struct Fixture {
    _dir: tempfile::TempDir,
    store: DiskStore,
    cfg: RunnerConfig,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = DiskStore::open(&dir.path().join("store"), 1 << 30).unwrap();
    let cfg = RunnerConfig {
        work_dir: dir.path().join("work"),
        worker_name: "test-worker".into(),
        default_timeout: Duration::from_secs(60),
        max_timeout: Duration::from_secs(600),
    };
    Fixture {
        _dir: dir,
        store,
        cfg,
    }
}

impl Fixture {
    /// Uploads files (path, content, executable) and returns the input root.
    fn input(&self, files: &[(&str, &[u8], bool)], symlinks: &[(&str, &str)]) -> Digest {
        let mut entries = Vec::new();
        for (path, data, x) in files {
            let d = Digest::of_bytes(data);
            self.store.write(&d, data).unwrap();
            entries.push(Entry::file(*path, d, *x));
        }
        for (path, target) in symlinks {
            entries.push(Entry::symlink(*path, *target));
        }
        let t = tree::build(&entries).unwrap();
        for (d, bytes) in &t.directories {
            self.store.write(d, bytes).unwrap();
        }
        t.root
    }

    fn run(&self, root: Digest, cmd: &reapi::Command) -> Result<reapi::ActionResult, RunError> {
        self.run_with_timeout(root, cmd, None)
    }

    fn run_with_timeout(
        &self,
        root: Digest,
        cmd: &reapi::Command,
        timeout: Option<prost_types::Duration>,
    ) -> Result<reapi::ActionResult, RunError> {
        let action = reapi::Action {
            input_root_digest: Some(root.to_proto()),
            command_digest: Some(Digest::of_message(cmd).0.to_proto()),
            timeout,
            ..Default::default()
        };
        run_action(&self.store, &self.cfg, &action, cmd)
    }

    fn blob(&self, d: &Option<reapi::Digest>) -> Vec<u8> {
        let d = Digest::from_proto_opt(d.as_ref()).unwrap();
        self.store.read(&d).unwrap().expect("blob stored")
    }

    fn text(&self, d: &Option<reapi::Digest>) -> String {
        String::from_utf8(self.blob(d)).unwrap()
    }

    fn scratch_left(&self) -> usize {
        fs::read_dir(&self.cfg.work_dir)
            .map(|r| r.count())
            .unwrap_or(0)
    }
}

fn sh(script: &str) -> reapi::Command {
    reapi::Command {
        arguments: vec!["/bin/sh".into(), "-c".into(), script.into()],
        environment_variables: vec![env("PATH", "/usr/bin:/bin")],
        ..Default::default()
    }
}

fn env(name: &str, value: &str) -> reapi::command::EnvironmentVariable {
    reapi::command::EnvironmentVariable {
        name: name.into(),
        value: value.into(),
    }
}

#[test]
fn runs_a_script_and_collects_files_dirs_and_symlinks() {
    let f = fixture();
    let root = f.input(&[("in.txt", b"input\n", false)], &[]);
    let mut cmd = sh(
        "cat in.txt > out/a.txt; echo to-stdout; echo to-stderr >&2; \
         mkdir -p d/sub; echo x > d/sub/x; printf '#!/bin/sh\\n' > d/run; chmod +x d/run; \
         ln -s sub/x d/link; ln -s /etc/passwd leak; exit 3",
    );
    cmd.output_paths = vec![
        "d".into(),
        "leak".into(),
        "missing".into(),
        "out/a.txt".into(),
    ];
    let r = f.run(root, &cmd).unwrap();

    assert_eq!(r.exit_code, 3);
    assert_eq!(f.text(&r.stdout_digest), "to-stdout\n");
    assert_eq!(f.text(&r.stderr_digest), "to-stderr\n");
    assert_eq!(r.output_files.len(), 1);
    assert_eq!(
        r.output_files[0].path, "out/a.txt",
        "parent dir was created for it"
    );
    assert_eq!(f.text(&r.output_files[0].digest), "input\n");
    assert!(!r.output_files[0].is_executable);

    // The symlink stays a symlink, pointing where the action made it point.
    assert_eq!(r.output_symlinks.len(), 1);
    assert_eq!(r.output_symlinks[0].path, "leak");
    assert_eq!(r.output_symlinks[0].target, "/etc/passwd");
    assert_eq!(
        r.output_file_symlinks, r.output_symlinks,
        "v2.0 compat copy"
    );

    assert_eq!(r.output_directories.len(), 1);
    let od = &r.output_directories[0];
    assert_eq!(od.path, "d");
    let t = reapi::Tree::decode(f.blob(&od.tree_digest).as_slice()).unwrap();
    assert_eq!(
        Digest::of_message(t.root.as_ref().unwrap()).0.to_proto(),
        od.root_directory_digest.clone().unwrap()
    );
    f.blob(&od.root_directory_digest); // stored on its own too
    let mut entries = tree::flatten_tree_message(&t).unwrap();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let x = Digest::of_bytes(b"x\n");
    assert_eq!(
        entries,
        vec![
            Entry::symlink("link", "sub/x"),
            Entry::file("run", Digest::of_bytes(b"#!/bin/sh\n"), true),
            Entry::dir("sub"),
            Entry::file("sub/x", x, false),
        ]
    );
    assert!(f.store.contains(&x));
    let meta = r.execution_metadata.unwrap();
    assert_eq!(meta.worker, "test-worker");
    assert!(meta.execution_completed_timestamp.is_some());
    assert!(meta.output_upload_completed_timestamp.is_some());
    assert_eq!(f.scratch_left(), 0, "scratch removed");
}

#[test]
fn legacy_outputs_put_symlinks_where_they_were_asked_for() {
    let f = fixture();
    let root = f.input(&[], &[]);
    let mut cmd = sh("mkdir real; echo f > file; ln -s file flink; ln -s real dlink; mkdir outdir");
    cmd.output_files = vec!["file".into(), "flink".into()];
    cmd.output_directories = vec!["dlink".into(), "outdir".into()];
    let r = f.run(root, &cmd).unwrap();
    assert_eq!(r.exit_code, 0);
    assert!(
        r.output_symlinks.is_empty(),
        "v2.1 field only for output_paths"
    );
    assert_eq!(r.output_files.len(), 1);
    assert_eq!(r.output_file_symlinks.len(), 1);
    assert_eq!(r.output_file_symlinks[0].target, "file");
    assert_eq!(r.output_directory_symlinks.len(), 1);
    assert_eq!(r.output_directory_symlinks[0].path, "dlink");
    // An empty output directory is an empty Tree, not an absence.
    assert_eq!(r.output_directories.len(), 1);
    assert_eq!(
        r.output_directories[0].root_directory_digest,
        Some(Digest::EMPTY.to_proto())
    );
}

#[test]
fn environment_is_exactly_the_commands() {
    let f = fixture();
    let root = f.input(&[], &[]);
    // The test process certainly has PATH and usually HOME; neither may leak.
    assert!(std::env::var_os("PATH").is_some());
    let cmd = reapi::Command {
        arguments: vec!["/usr/bin/env".into()],
        environment_variables: vec![env("A", "1"), env("B", "two words")],
        ..Default::default()
    };
    let r = f.run(root, &cmd).unwrap();
    assert_eq!(r.exit_code, 0, "{}", f.text(&r.stderr_digest));
    assert_eq!(f.text(&r.stdout_digest), "A=1\nB=two words\n");
}

#[test]
fn program_found_in_the_commands_path_and_exec_bit_preserved() {
    let f = fixture();
    let tool = b"#!/bin/sh\necho tool ran in $(basename \"$PWD\")\ncp \"$0\" ../copy\n";
    let root = f.input(&[("bin/tool", tool, true), ("sub/keep", b"", false)], &[]);
    let cmd = reapi::Command {
        arguments: vec!["tool".into()],
        environment_variables: vec![env("PATH", "/nonexistent:../bin:/usr/bin:/bin")],
        working_directory: "sub".into(),
        output_files: vec!["../copy".into()],
        ..Default::default()
    };
    // Outputs may climb out of the working directory, not out of the root.
    let r = f.run(root, &cmd).unwrap();
    assert_eq!(r.exit_code, 0, "{}", f.text(&r.stderr_digest));
    assert_eq!(r.output_files[0].path, "../copy");
    assert_eq!(f.blob(&r.output_files[0].digest), tool);
    let mut escape = cmd.clone();
    escape.output_files = vec!["../../copy".into()];
    assert!(matches!(
        f.run(root, &escape),
        Err(RunError::InvalidArgument(_))
    ));

    let cmd = reapi::Command {
        output_files: vec!["copy".into()],
        arguments: vec!["tool".into()],
        working_directory: "sub".into(),
        environment_variables: vec![env("PATH", "../bin:/usr/bin:/bin")],
        ..Default::default()
    };
    let mut cmd2 = cmd.clone();
    cmd2.arguments = vec![
        "sh".into(),
        "-c".into(),
        "../bin/tool; cp ../bin/tool copy".into(),
    ];
    let r = f.run(root, &cmd2).unwrap();
    assert_eq!(r.exit_code, 0, "{}", f.text(&r.stderr_digest));
    assert_eq!(f.text(&r.stdout_digest), "tool ran in sub\n");
    assert!(r.output_files[0].is_executable, "copy keeps the exec bit");
    assert_eq!(f.blob(&r.output_files[0].digest), tool);

    let r = f.run(root, &cmd).unwrap();
    assert_eq!(r.exit_code, 0, "{}", f.text(&r.stderr_digest));
    assert_eq!(f.text(&r.stdout_digest), "tool ran in sub\n");
}

#[test]
fn relative_argv0_is_relative_to_the_working_directory() {
    let f = fixture();
    let root = f.input(&[("w/go.sh", b"#!/bin/sh\necho ok\n", true)], &[]);
    let cmd = reapi::Command {
        arguments: vec!["./go.sh".into()],
        environment_variables: vec![env("PATH", "/usr/bin:/bin")],
        working_directory: "w".into(),
        ..Default::default()
    };
    let r = f.run(root, &cmd).unwrap();
    assert_eq!(f.text(&r.stdout_digest), "ok\n");
}

#[test]
fn unknown_program_exits_127_with_a_message() {
    let f = fixture();
    let root = f.input(&[], &[]);
    let cmd = reapi::Command {
        arguments: vec!["no-such-program-anywhere".into()],
        ..Default::default()
    };
    let r = f.run(root, &cmd).unwrap();
    assert_eq!(r.exit_code, 127);
    assert!(
        f.text(&r.stderr_digest)
            .contains("no-such-program-anywhere")
    );
}

#[test]
fn timeout_kills_the_whole_group_quickly() {
    let f = fixture();
    let root = f.input(&[], &[]);
    let cmd = sh("echo started; sleep 100 & sleep 100");
    let t0 = Instant::now();
    let err = f
        .run_with_timeout(
            root,
            &cmd,
            Some(prost_types::Duration {
                seconds: 0,
                nanos: 500_000_000,
            }),
        )
        .unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    let RunError::Timeout { partial, limit } = err else {
        panic!("{err:?}")
    };
    assert_eq!(f.text(&partial.stdout_digest), "started\n");
    assert_eq!(partial.exit_code, 128 + libc::SIGKILL);
    assert_eq!(f.scratch_left(), 0);
    assert_eq!(limit, TimeLimit::Action(Duration::from_millis(500)));
}

#[test]
fn timeouts_default_and_refuse_over_the_maximum() {
    let f = fixture();
    let mut cfg = f.cfg.clone();
    cfg.default_timeout = Duration::from_millis(300);
    let root = f.input(&[], &[]);
    let action = reapi::Action {
        input_root_digest: Some(root.to_proto()),
        ..Default::default()
    };
    let t0 = Instant::now();
    let err = run_action(&f.store, &cfg, &action, &sh("sleep 100")).unwrap_err();
    assert!(matches!(err, RunError::Timeout { .. }), "{err:?}");
    assert!(t0.elapsed() < Duration::from_secs(10));
    let message = err.to_string();
    assert!(
        message.contains("after 300ms") && message.contains("default"),
        "{message}"
    );

    let too_long = prost_types::Duration {
        seconds: 601,
        nanos: 0,
    };
    let err = f
        .run_with_timeout(root, &sh("true"), Some(too_long))
        .unwrap_err();
    assert!(matches!(err, RunError::InvalidArgument(m) if m.contains("maximum")));
}

#[test]
fn missing_blobs_are_all_listed_before_anything_runs() {
    let f = fixture();
    let present = Digest::of_bytes(b"present");
    f.store.write(&present, b"present").unwrap();
    let gone_file = Digest::of_bytes(b"never uploaded");
    let gone_dir = Digest::of_bytes(b"not a directory we have");
    let root = reapi::Directory {
        files: vec![
            reapi::FileNode {
                name: "a".into(),
                digest: Some(gone_file.to_proto()),
                ..Default::default()
            },
            reapi::FileNode {
                name: "b".into(),
                digest: Some(present.to_proto()),
                ..Default::default()
            },
        ],
        directories: vec![reapi::DirectoryNode {
            name: "sub".into(),
            digest: Some(gone_dir.to_proto()),
        }],
        ..Default::default()
    };
    let (root_digest, bytes) = Digest::of_message(&root);
    f.store.write(&root_digest, &bytes).unwrap();
    let err = f.run(root_digest, &sh("touch ran")).unwrap_err();
    let RunError::MissingBlobs(mut missing) = err else {
        panic!("{err:?}")
    };
    missing.sort();
    let mut want = vec![gone_file, gone_dir];
    want.sort();
    assert_eq!(missing, want);
    assert_eq!(f.scratch_left(), 0);

    let absent_root = Digest::of_bytes(b"no root");
    assert!(matches!(
        f.run(absent_root, &sh("true")),
        Err(RunError::MissingBlobs(m)) if m == vec![absent_root]
    ));
}

#[test]
fn hostile_input_trees_are_refused() {
    let f = fixture();
    let d = Digest::of_bytes(b"x");
    f.store.write(&d, b"x").unwrap();
    let root = reapi::Directory {
        files: vec![reapi::FileNode {
            name: "..".into(),
            digest: Some(d.to_proto()),
            ..Default::default()
        }],
        ..Default::default()
    };
    let (rd, bytes) = Digest::of_message(&root);
    f.store.write(&rd, &bytes).unwrap();
    assert!(matches!(
        f.run(rd, &sh("true")),
        Err(RunError::InvalidArgument(_))
    ));
}

#[test]
fn bad_output_paths_and_commands_are_invalid() {
    let base = sh("true");
    let with = |set: &dyn Fn(&mut reapi::Command)| {
        let mut c = base.clone();
        set(&mut c);
        validate_command(&c)
    };
    assert!(validate_command(&base).is_ok());
    let bad: Vec<fn(&mut reapi::Command)> = vec![
        |c| c.output_paths = vec!["../x".into()],
        |c| c.output_paths = vec!["/abs".into()],
        |c| c.output_files = vec!["a/../../b".into()],
        |c| c.output_directories = vec!["/tmp".into()],
        |c| c.output_files = vec!["a".into(), "a".into()],
        |c| {
            c.output_files = vec!["a".into()];
            c.output_directories = vec!["a".into()];
        },
        |c| c.output_files = vec!["".into()],
        |c| c.working_directory = "../up".into(),
        |c| c.working_directory = "/abs".into(),
        |c| c.arguments.clear(),
        |c| c.environment_variables.push(env("A=B", "c")),
    ];
    for (i, set) in bad.iter().enumerate() {
        assert!(
            matches!(with(set), Err(RunError::InvalidArgument(_))),
            "case {i}"
        );
    }
    // Legacy fields are ignored when output_paths is used.
    assert!(
        with(&|c| {
            c.output_paths = vec!["a".into()];
            c.output_files = vec!["/ignored".into()];
        })
        .is_ok()
    );
    assert!(with(&|c| c.output_directories = vec!["".into()]).is_ok());

    let f = fixture();
    let root = f.input(&[], &[]);
    let mut cmd = sh("true");
    cmd.output_paths = vec!["/etc".into()];
    assert!(matches!(
        f.run(root, &cmd),
        Err(RunError::InvalidArgument(_))
    ));
}

#[test]
fn collection_never_follows_symlinks_out_of_the_root() {
    let f = fixture();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret"), b"secret").unwrap();
    let root = f.input(&[], &[]);
    let script = format!(
        // The worker created `via` and `inside` as parents of outputs.
        "rmdir via inside && ln -s {0} via && mkdir d && ln -s {0} d/out && mkdir -p real/x && echo hi > real/x/f && ln -s real/x inside",
        outside.path().display()
    );
    let mut cmd = sh(&script);
    cmd.output_paths = vec!["via/secret".into(), "d".into(), "inside/f".into()];
    let r = f.run(root, &cmd).unwrap();
    assert_eq!(r.exit_code, 0);
    // Through an inner link: fine. Through one leading outside: absent.
    assert_eq!(r.output_files.len(), 1);
    assert_eq!(r.output_files[0].path, "inside/f");
    assert_eq!(f.text(&r.output_files[0].digest), "hi\n");
    let t = reapi::Tree::decode(f.blob(&r.output_directories[0].tree_digest).as_slice()).unwrap();
    let entries = tree::flatten_tree_message(&t).unwrap();
    assert_eq!(
        entries,
        vec![Entry::symlink("out", outside.path().to_str().unwrap())]
    );
    assert!(!f.store.contains(&Digest::of_bytes(b"secret")));
}

#[test]
fn inputs_are_materialized_with_modes_and_symlinks_and_scratch_is_always_removed() {
    let f = fixture();
    let root = f.input(
        &[("x.sh", b"#!/bin/sh\n", true), ("dir/plain", b"p", false)],
        &[("dir/link", "plain")],
    );
    let mut cmd = sh(
        "test -x x.sh && test ! -x dir/plain && test -L dir/link && \
         test \"$(cat dir/link)\" = p && mkdir locked && touch locked/f && chmod 0500 locked && echo ok",
    );
    cmd.output_paths = vec!["nothing".into()];
    let r = f.run(root, &cmd).unwrap();
    assert_eq!(
        f.text(&r.stdout_digest),
        "ok\n",
        "{}",
        f.text(&r.stderr_digest)
    );
    assert!(r.output_files.is_empty() && r.output_directories.is_empty());
    assert_eq!(
        f.scratch_left(),
        0,
        "removed despite the read-only directory"
    );
    // Hard-linked inputs left the store's copies intact.
    let plain = Digest::of_bytes(b"p");
    assert_eq!(f.store.read(&plain).unwrap().unwrap(), b"p");
}
