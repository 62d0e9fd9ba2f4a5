//! Client tests over real gRPC against the scripted server in `fake`:
//! round trips through batches and ByteStream, digest verification,
//! broken Execute streams, missing inputs, capabilities caching.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::fake::{Fake, Faults};
use super::*;
use crate::cas::Digest;
use crate::config::{Endpoint, RemoteConfig};
use crate::proto::reapi;
use crate::proto::semver::SemVer;

/// A batch limit small enough that ByteStream is exercised by 100 KiB blobs.
const SMALL_BATCH: i64 = 64 << 10;

fn caps(zstd: bool) -> reapi::ServerCapabilities {
    let z = if zstd {
        vec![reapi::compressor::Value::Zstd as i32]
    } else {
        vec![]
    };
    reapi::ServerCapabilities {
        cache_capabilities: Some(reapi::CacheCapabilities {
            digest_functions: vec![reapi::digest_function::Value::Sha256 as i32],
            max_batch_total_size_bytes: SMALL_BATCH,
            supported_compressors: z.clone(),
            supported_batch_update_compressors: z,
            ..Default::default()
        }),
        execution_capabilities: Some(reapi::ExecutionCapabilities {
            digest_function: reapi::digest_function::Value::Sha256 as i32,
            exec_enabled: true,
            ..Default::default()
        }),
        low_api_version: Some(SemVer {
            major: 2,
            ..Default::default()
        }),
        high_api_version: Some(SemVer {
            major: 2,
            minor: 3,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn config(cache_dir: &Path) -> RemoteConfig {
    RemoteConfig {
        endpoint: Endpoint::Embedded,
        instance: String::new(),
        headers: vec![("authorization".into(), "Bearer t".into())],
        tls_ca: None,
        tls_cert: None,
        tls_key: None,
        timeout: Duration::from_secs(30),
        cache_dir: cache_dir.to_path_buf(),
        compression: crate::config::Compression::Auto,
    }
}

struct Setup {
    fake: Fake,
    client: Client,
    _dir: tempfile::TempDir,
}

async fn setup(faults: Faults, zstd: bool) -> Setup {
    let fake = Fake::default();
    {
        let mut s = fake.0.lock().unwrap();
        s.faults = faults;
        s.caps = caps(zstd);
    }
    let url = fake.start().await;
    let dir = tempfile::tempdir().unwrap();
    let client = Client::connect(&config(dir.path()), &url).await.unwrap();
    Setup {
        fake,
        client,
        _dir: dir,
    }
}

fn calls(f: &Fake, name: &str) -> usize {
    f.0.lock()
        .unwrap()
        .calls
        .iter()
        .filter(|c| *c == name)
        .count()
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test]
async fn nothing_listening_names_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let err = Client::connect(&config(dir.path()), "grpc://127.0.0.1:1")
        .await
        .unwrap_err();
    assert!(matches!(err, RemoteError::Unreachable { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "cannot reach grpc://127.0.0.1:1: connection refused. Is the server running? Set --remote or RECAST_REMOTE."
    );
}

#[tokio::test]
async fn capabilities_are_cached_on_disk() {
    let s = setup(Faults::default(), false).await;
    let caps = s.client.capabilities().await.unwrap();
    assert_eq!(caps.batch_limit, SMALL_BATCH as u64);
    assert!(caps.supports_action_platform());
    // A second process (client) with the same cache dir does not ask again.
    let again = Client::connect(&config(s._dir.path()), s.client.url())
        .await
        .unwrap();
    assert_eq!(again.capabilities().await.unwrap(), caps);
    assert_eq!(calls(&s.fake, "GetCapabilities"), 1);
}

#[tokio::test]
async fn a_server_without_capabilities_gets_v2_0_defaults() {
    let s = setup(
        Faults {
            no_capabilities: true,
            ..Default::default()
        },
        false,
    )
    .await;
    let caps = s.client.capabilities().await.unwrap();
    assert!(caps.assumed && !caps.supports_output_paths());
}

async fn round_trip(compression: Compression, zstd: bool) {
    let s = setup(Faults::default(), zstd).await;
    let client = s.client.with_compression(compression);
    let dir = tempfile::tempdir().unwrap();
    let big = pattern(300 << 10, 1);
    let big_path = dir.path().join("big");
    std::fs::write(&big_path, &big).unwrap();
    let blobs = vec![
        Blob::from_bytes(b"small one".to_vec()),
        Blob::from_bytes(pattern(20 << 10, 2)),
        Blob::file(Digest::of_bytes(&big), &big_path),
        Blob::from_bytes(Vec::new()),
        Blob::from_bytes(b"small one".to_vec()),
    ];
    let digests: Vec<Digest> = blobs.iter().map(|b| b.digest).collect();
    assert_eq!(client.find_missing(&digests).await.unwrap().len(), 3);
    let stats = client.upload_missing(blobs).await.unwrap();
    assert_eq!(stats.blobs, 3);
    assert_eq!(stats.bytes, 9 + (20 << 10) + (300 << 10));
    assert!(client.find_missing(&digests).await.unwrap().is_empty());
    assert_eq!(calls(&s.fake, "Write"), 1);

    let got = client.read_blobs(&digests).await.unwrap();
    assert_eq!(got.len(), 4);
    assert_eq!(got[&Digest::of_bytes(&big)], big);
    assert_eq!(got[&Digest::EMPTY], b"");
    assert_eq!(calls(&s.fake, "Read"), 1);

    let out = dir.path().join("out");
    client
        .download_to_file(&Digest::of_bytes(&big), &out)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), big);
    // Uploading a present blob again completes early.
    client
        .upload(vec![Blob::file(Digest::of_bytes(&big), &big_path)])
        .await
        .unwrap();
}

#[tokio::test]
async fn blobs_round_trip_through_batches_and_bytestream() {
    round_trip(Compression::Never, false).await;
}

#[tokio::test]
async fn blobs_round_trip_compressed() {
    round_trip(Compression::Always, true).await;
}

#[tokio::test]
async fn corrupted_downloads_are_refused_and_removed() {
    let s = setup(Faults::default(), false).await;
    let small = b"tiny".to_vec();
    let big = pattern(200 << 10, 3);
    s.client
        .upload(vec![
            Blob::from_bytes(small.clone()),
            Blob::from_bytes(big.clone()),
        ])
        .await
        .unwrap();
    s.fake.0.lock().unwrap().faults.corrupt_reads = true;
    for data in [small, big] {
        let d = Digest::of_bytes(&data);
        match s.client.read_blob(&d).await.unwrap_err() {
            RemoteError::BadBlob { digest, got, .. } => {
                assert_eq!(digest, d);
                assert_ne!(got, d);
            }
            e => panic!("{e}"),
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        assert!(s.client.download_to_file(&d, &p).await.is_err());
        assert!(!p.exists(), "an unverified file was left on disk");
    }
    let absent = Digest::of_bytes(b"never uploaded");
    assert!(matches!(
        s.client.read_blob(&absent).await.unwrap_err(),
        RemoteError::NotFound { .. }
    ));
}

#[tokio::test]
async fn per_blob_upload_failures_keep_their_code() {
    let s = setup(
        Faults {
            reject_batch_writes: true,
            ..Default::default()
        },
        false,
    )
    .await;
    let err = s
        .client
        .upload(vec![Blob::from_bytes(b"x".to_vec())])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(tonic::Code::InvalidArgument), "{err}");
}

/// Puts an action whose command is NOT uploaded; returns it and the command.
fn action_blobs() -> (Blob, Blob) {
    let command = Blob::from_message(&reapi::Command {
        arguments: vec!["true".into()],
        ..Default::default()
    });
    let action = Blob::from_message(&reapi::Action {
        command_digest: Some(command.digest.to_proto()),
        input_root_digest: Some(Digest::EMPTY.to_proto()),
        ..Default::default()
    });
    (action, command)
}

#[tokio::test]
async fn missing_inputs_are_uploaded_and_execution_retried_once() {
    let s = setup(Faults::default(), false).await;
    let (action, command) = action_blobs();
    s.client.upload(vec![action.clone()]).await.unwrap();
    match s.client.execute(&action.digest, false).await.unwrap_err() {
        RemoteError::MissingBlobs(m) => assert_eq!(m, vec![command.digest]),
        e => panic!("{e}"),
    }
    let blobs: HashMap<Digest, Blob> = [(command.digest, command.clone())].into();
    let (resp, stats) = s
        .client
        .execute_with_upload(&action.digest, false, None, &blobs)
        .await
        .unwrap();
    assert_eq!(stats.blobs, 1);
    let result = resp.result.unwrap();
    assert_eq!(result.exit_code, 7);
    let (stdout, stderr) = s.client.std_streams(&result).await.unwrap();
    assert_eq!(stdout, format!("ran {}", action.digest).into_bytes());
    assert!(stderr.is_empty());
}

#[tokio::test]
async fn a_broken_execute_stream_is_resumed_with_wait_execution() {
    let s = setup(
        Faults {
            break_execute: true,
            ..Default::default()
        },
        false,
    )
    .await;
    let (action, command) = action_blobs();
    let outcome = run_action(
        &s.client,
        ActionRun {
            action_digest: action.digest,
            blobs: vec![action.clone(), command],
            present: Vec::new(),
            skip_cache: false,
            looked_up: false,
            timeout: None,
            inline_outputs: Vec::new(),
        },
    )
    .await
    .unwrap();
    assert!(outcome.ok() && !outcome.cached);
    assert_eq!(outcome.result.unwrap().exit_code, 7);
    assert_eq!(outcome.uploaded.blobs, 2);
    assert_eq!(calls(&s.fake, "Execute"), 1);
    assert_eq!(calls(&s.fake, "WaitExecution"), 1);
    assert_eq!(s.fake.0.lock().unwrap().executions, 1);

    // Every call carried RequestMetadata with one invocation id; the
    // execution calls named the action.
    let state = s.fake.0.lock().unwrap();
    assert_eq!(state.metadata.len(), state.calls.len());
    for (m, call) in state.metadata.iter().zip(&state.calls) {
        assert_eq!(m.tool_invocation_id, s.client.invocation_id());
        assert_eq!(m.tool_details.as_ref().unwrap().tool_name, "recast");
        // run_action's calls all concern the action, uploads included.
        if call != "GetCapabilities" {
            assert_eq!(m.action_id, action.digest.hex(), "{call}");
        }
    }
}

#[tokio::test]
async fn a_forgotten_operation_is_executed_again() {
    let s = setup(
        Faults {
            break_execute: true,
            forget_operations: true,
            ..Default::default()
        },
        false,
    )
    .await;
    let (action, command) = action_blobs();
    s.client
        .upload(vec![action.clone(), command])
        .await
        .unwrap();
    let resp = s.client.execute(&action.digest, false).await.unwrap();
    assert_eq!(resp.result.unwrap().exit_code, 7);
    assert_eq!(calls(&s.fake, "Execute"), 2);
    assert_eq!(calls(&s.fake, "WaitExecution"), 1);
}

#[tokio::test]
async fn an_operation_error_keeps_its_code() {
    let s = setup(
        Faults {
            operation_error: Some(tonic::Code::PermissionDenied),
            ..Default::default()
        },
        false,
    )
    .await;
    let (action, _) = action_blobs();
    let err = s.client.execute(&action.digest, true).await.unwrap_err();
    assert_eq!(err.code(), Some(tonic::Code::PermissionDenied), "{err}");
    assert!(err.to_string().contains("scripted failure"), "{err}");
}

#[tokio::test]
async fn get_tree_follows_pages() {
    let s = setup(Faults::default(), false).await;
    let leaf = reapi::Directory::default();
    let (leaf_digest, _) = Digest::of_message(&leaf);
    let root = reapi::Directory {
        directories: vec![reapi::DirectoryNode {
            name: "sub".into(),
            digest: Some(leaf_digest.to_proto()),
        }],
        ..Default::default()
    };
    let root_blob = Blob::from_message(&root);
    s.client.upload(vec![root_blob.clone()]).await.unwrap();
    s.fake
        .0
        .lock()
        .unwrap()
        .blobs
        .insert(leaf_digest, Vec::new());
    let dirs = s.client.get_tree(&root_blob.digest).await.unwrap();
    assert_eq!(dirs, vec![root, leaf]);
}

#[tokio::test]
async fn outputs_are_written_from_files_trees_and_symlinks() {
    let s = setup(Faults::default(), false).await;
    let obj = pattern(100 << 10, 9);
    let hdr = b"#define X 1\n".to_vec();
    let tree = crate::cas::tree::build(&[
        crate::cas::tree::Entry::file("inc/x.h", Digest::of_bytes(&hdr), false),
        crate::cas::tree::Entry::symlink("inc/y.h", "x.h"),
        crate::cas::tree::Entry::dir("empty"),
    ])
    .unwrap();
    let tree_blob = Blob::from_message(&tree.to_tree_message());
    s.client
        .upload(vec![
            Blob::from_bytes(obj.clone()),
            Blob::from_bytes(hdr.clone()),
            tree_blob.clone(),
            Blob::from_bytes(b"warning: x\n".to_vec()),
        ])
        .await
        .unwrap();
    let result = reapi::ActionResult {
        output_files: vec![reapi::OutputFile {
            path: "out/a.o".into(),
            digest: Some(Digest::of_bytes(&obj).to_proto()),
            is_executable: true,
            ..Default::default()
        }],
        output_directories: vec![reapi::OutputDirectory {
            path: "gen".into(),
            tree_digest: Some(tree_blob.digest.to_proto()),
            ..Default::default()
        }],
        output_symlinks: vec![reapi::OutputSymlink {
            path: "latest".into(),
            target: "out/a.o".into(),
            ..Default::default()
        }],
        stderr_digest: Some(Digest::of_bytes(b"warning: x\n").to_proto()),
        ..Default::default()
    };
    let root = tempfile::tempdir().unwrap();
    let stats = write_outputs(&s.client, &result, root.path())
        .await
        .unwrap();
    assert_eq!(stats.files, 2);
    let r = root.path();
    assert_eq!(std::fs::read(r.join("out/a.o")).unwrap(), obj);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(r.join("out/a.o"))
            .unwrap()
            .permissions()
            .mode()
            & 0o111,
        0o111
    );
    assert_eq!(std::fs::read(r.join("gen/inc/x.h")).unwrap(), hdr);
    assert_eq!(
        std::fs::read_link(r.join("gen/inc/y.h")).unwrap(),
        Path::new("x.h")
    );
    assert!(r.join("gen/empty").is_dir());
    assert_eq!(
        std::fs::read_link(r.join("latest")).unwrap(),
        Path::new("out/a.o")
    );
    let (out, err) = s.client.std_streams(&result).await.unwrap();
    assert!(out.is_empty());
    assert_eq!(err, b"warning: x\n");

    // A result naming a path outside the root is refused, nothing written.
    let mut evil = result.clone();
    evil.output_files[0].path = "../escaped.o".into();
    assert!(write_outputs(&s.client, &evil, r).await.is_err());
    assert!(!r.parent().unwrap().join("escaped.o").exists());
    // So is one that would write through a symlinked directory.
    std::os::unix::fs::symlink("/tmp", r.join("sneaky")).unwrap();
    let mut evil = result.clone();
    evil.output_files[0].path = "sneaky/x.o".into();
    assert!(write_outputs(&s.client, &evil, r).await.is_err());
}

/// Makes a CA, a server certificate for 127.0.0.1 and a client
/// certificate with the `openssl` tool; `None` (test skipped) without it.
fn make_certs(dir: &Path) -> Option<()> {
    let run = |args: &[&str]| {
        std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|_| ())
    };
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .ok()?;
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=recast test CA",
    ])?;
    for who in ["server", "client"] {
        run(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{who}.key"),
            "-out",
            &format!("{who}.csr"),
            "-subj",
            "/CN=localhost",
        ])?;
        run(&[
            "x509",
            "-req",
            "-in",
            &format!("{who}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{who}.pem"),
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ])?;
    }
    Some(())
}

#[tokio::test]
async fn grpcs_with_a_custom_ca_and_client_certificate() {
    use tonic::transport::{Certificate, Identity, ServerTlsConfig};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    if make_certs(d).is_none() {
        eprintln!("skipped: the openssl tool is not available to make test certificates");
        return;
    }
    let read = |f: &str| std::fs::read(d.join(f)).unwrap();
    let fake = Fake::default();
    fake.0.lock().unwrap().caps = caps(false);
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(read("server.pem"), read("server.key")))
        .client_ca_root(Certificate::from_pem(read("ca.pem")));
    let url = fake.start_with(Some(tls)).await;
    assert!(url.starts_with("grpcs://127.0.0.1:"));

    let mut cfg = config(d);
    cfg.tls_ca = Some(d.join("ca.pem"));
    cfg.tls_cert = Some(d.join("client.pem"));
    cfg.tls_key = Some(d.join("client.key"));
    let client = Client::connect(&cfg, &url).await.unwrap();
    assert!(client.fetch_capabilities().await.unwrap().exec_enabled);

    // Only half of a client identity is a configuration error.
    let mut half = cfg.clone();
    half.tls_key = None;
    assert!(matches!(
        Client::connect(&half, &url).await.unwrap_err(),
        RemoteError::Config(_)
    ));
    // A CA that did not sign the server's certificate: the handshake fails.
    let mut wrong = cfg.clone();
    wrong.tls_ca = Some(d.join("client.pem"));
    let err = match Client::connect(&wrong, &url).await {
        Err(e) => e,
        Ok(c) => c.fetch_capabilities().await.unwrap_err(),
    };
    assert!(matches!(err, RemoteError::Tls { .. }), "{err}");
    assert!(err.to_string().contains(&url), "{err}");
}

/// zstd both ways against recast's own server (only the client's loopback
/// default keeps it from being exercised by the end-to-end tests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zstd_round_trip_against_the_embedded_server() {
    let dir = tempfile::tempdir().unwrap();
    let opts = crate::server::ServeOptions {
        listen: crate::server::Listen::Tcp("127.0.0.1:0".parse().unwrap()),
        dir: dir.path().join("server"),
        max_size: 1 << 30,
        workers: 1,
        platform: vec![],
        sandbox: Default::default(),
        tls: None,
        tokens: None,
        idle_timeout: None,
    };
    let (addr, server) = crate::server::spawn(opts).await.unwrap();
    let cfg = config(&dir.path().join("cache"));
    let client = Client::connect(&cfg, &format!("grpc://{addr}"))
        .await
        .unwrap()
        .with_compression(Compression::Always);
    let caps = client.capabilities().await.unwrap();
    assert!(caps.zstd && caps.zstd_batch_update, "{caps:?}");

    let small = b"compress me ".repeat(2000);
    let big = b"and me, but bigger ".repeat(400_000); // 7.6 MB: ByteStream
    let blobs = vec![
        Blob::from_bytes(small.clone()),
        Blob::from_bytes(big.clone()),
    ];
    let digests: Vec<Digest> = blobs.iter().map(|b| b.digest).collect();
    client.upload_missing(blobs).await.unwrap();
    assert!(client.find_missing(&digests).await.unwrap().is_empty());
    let got = client.read_blobs(&digests).await.unwrap();
    assert_eq!(got[&digests[0]], small);
    assert_eq!(got[&digests[1]], big);

    // A real action whose output is large and compressible.
    let command = Blob::from_message(&reapi::Command {
        arguments: vec![
            "/bin/sh".into(),
            "-c".into(),
            "yes 0123456789 | head -c 6000000 > out; echo done".into(),
        ],
        environment_variables: vec![reapi::command::EnvironmentVariable {
            name: "PATH".into(),
            value: "/usr/bin:/bin".into(),
        }],
        output_paths: vec!["out".into()],
        ..Default::default()
    });
    let action = Blob::from_message(&crate::action::build_action(
        &command.digest,
        &Digest::EMPTY,
        None,
        false,
        &[],
        false,
    ));
    let outcome = run_action(
        &client,
        ActionRun {
            action_digest: action.digest,
            blobs: vec![action.clone(), command],
            present: Vec::new(),
            skip_cache: false,
            looked_up: false,
            timeout: None,
            inline_outputs: Vec::new(),
        },
    )
    .await
    .unwrap();
    assert!(outcome.ok(), "{:?}", outcome.status);
    let result = outcome.result.unwrap();
    let root = tempfile::tempdir().unwrap();
    write_outputs(&client, &result, root.path()).await.unwrap();
    let out = std::fs::read(root.path().join("out")).unwrap();
    assert_eq!(out.len(), 6_000_000);
    assert!(out.starts_with(b"0123456789\n0123"));
    let (stdout, _) = client.std_streams(&result).await.unwrap();
    assert_eq!(stdout, b"done\n");
    server.abort();
}
