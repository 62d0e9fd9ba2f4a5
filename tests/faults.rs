//! Faults the protocol core must turn into clear, safe outcomes: no server,
//! a blob under the wrong digest, an action past its timeout, output paths
//! that escape the input root. Raw gRPC calls go to the real `recast serve`.

mod common;

use std::time::{Duration, Instant};

use common::{Server, free_port, recast, tempdir};
use prost::Message;
use recast::cas::Digest;
use recast::proto::google::bytestream::{WriteRequest, byte_stream_client::ByteStreamClient};
use recast::proto::google::longrunning::operation;
use recast::proto::reapi::{
    self, action_cache_client::ActionCacheClient,
    content_addressable_storage_client::ContentAddressableStorageClient,
    execution_client::ExecutionClient,
};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn channel(server: &Server) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

#[test]
fn no_server_at_the_address_is_a_clear_error_naming_it() {
    let port = free_port();
    let url = format!("grpc://127.0.0.1:{port}");
    let tmp = tempdir();
    let out = recast(["run", "--remote", &url, "--input-root"])
        .arg(tmp.path())
        .args(["--", "true"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&url), "names the server: {err}");
    assert!(err.contains("cannot reach"), "{err}");
}

#[test]
fn a_blob_under_the_wrong_digest_is_refused_with_invalid_argument() {
    let server = Server::start();
    rt().block_on(async {
        let ch = channel(&server).await;
        let mut cas = ContentAddressableStorageClient::new(ch.clone());
        let lie = Digest::of_bytes(b"what it claims to be");
        let resp = cas
            .batch_update_blobs(reapi::BatchUpdateBlobsRequest {
                requests: vec![reapi::batch_update_blobs_request::Request {
                    digest: Some(lie.to_proto()),
                    data: b"what it really is!!!".to_vec(),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let status = resp.responses[0].status.clone().unwrap();
        assert_eq!(
            status.code,
            tonic::Code::InvalidArgument as i32,
            "{status:?}"
        );

        // Same through ByteStream.
        let mut bs = ByteStreamClient::new(ch.clone());
        let big_lie = Digest::of_bytes(&vec![1u8; 5 << 20]);
        let data = vec![2u8; 5 << 20];
        let name = format!(
            "uploads/{}/blobs/{}/{}",
            uuid::Uuid::new_v4(),
            big_lie.hex(),
            big_lie.size()
        );
        let chunks: Vec<WriteRequest> = data
            .chunks(1 << 20)
            .enumerate()
            .map(|(i, c)| WriteRequest {
                resource_name: if i == 0 { name.clone() } else { String::new() },
                write_offset: (i << 20) as i64,
                finish_write: (i + 1) << 20 >= data.len(),
                data: c.to_vec(),
            })
            .collect();
        let err = bs.write(futures::stream::iter(chunks)).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");

        let missing = cas
            .find_missing_blobs(reapi::FindMissingBlobsRequest {
                blob_digests: vec![lie.to_proto(), big_lie.to_proto()],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            missing.missing_blob_digests.len(),
            2,
            "neither lie was stored"
        );
    });
}

#[test]
fn an_action_past_its_timeout_ends_with_deadline_exceeded() {
    let server = Server::start();
    let tmp = tempdir();
    let start = Instant::now();
    let out = recast([
        "run",
        "--remote",
        &server.url(),
        "--timeout-action",
        "1",
        "--input-root",
    ])
    .arg(tmp.path())
    .args(["--", "/bin/sh", "-c", "echo started; sleep 60"])
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "took {:?}",
        start.elapsed()
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DEADLINE_EXCEEDED"), "{err}");
    assert!(
        err.contains("timed out after 1s") && err.contains("--timeout-action"),
        "the limit and how to change it: {err}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("started"),
        "partial stdout replayed"
    );
}

#[test]
fn output_paths_that_escape_are_refused_by_the_client() {
    let server = Server::start();
    let tmp = tempdir();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    for bad in ["../escape", "/tmp/recast-escape-test"] {
        let out = recast([
            "run",
            "--remote",
            &server.url(),
            "--output",
            bad,
            "--input-root",
        ])
        .arg(&root)
        .args(["--", "/bin/sh", "-c", "echo no > ../escape"])
        .output()
        .unwrap();
        assert!(!out.status.success(), "{bad} accepted");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(bad),
            "error names {bad}"
        );
    }
    assert!(
        !tmp.path().join("escape").exists(),
        "nothing written outside the root"
    );
}

#[test]
fn output_paths_that_escape_are_refused_by_the_server() {
    let server = Server::start();
    rt().block_on(async {
        let ch = channel(&server).await;
        let mut cas = ContentAddressableStorageClient::new(ch.clone());
        for bad in ["../x", "/abs/x", "a/../../x"] {
            let command = reapi::Command {
                arguments: vec!["/bin/true".into()],
                output_paths: vec![bad.into()],
                ..Default::default()
            };
            let (cmd_digest, cmd_bytes) = Digest::of_message(&command);
            let action = reapi::Action {
                command_digest: Some(cmd_digest.to_proto()),
                input_root_digest: Some(Digest::EMPTY.to_proto()),
                ..Default::default()
            };
            let (action_digest, action_bytes) = Digest::of_message(&action);
            let up = |d: Digest, data: Vec<u8>| reapi::batch_update_blobs_request::Request {
                digest: Some(d.to_proto()),
                data,
                ..Default::default()
            };
            cas.batch_update_blobs(reapi::BatchUpdateBlobsRequest {
                requests: vec![up(cmd_digest, cmd_bytes), up(action_digest, action_bytes)],
                ..Default::default()
            })
            .await
            .unwrap();
            let mut exec = ExecutionClient::new(ch.clone());
            let code = match exec
                .execute(reapi::ExecuteRequest {
                    action_digest: Some(action_digest.to_proto()),
                    skip_cache_lookup: true,
                    ..Default::default()
                })
                .await
            {
                Err(status) => status.code() as i32,
                Ok(stream) => {
                    let mut stream = stream.into_inner();
                    let mut last = None;
                    while let Some(op) = stream.message().await.unwrap() {
                        last = Some(op);
                    }
                    match last.and_then(|op| op.result) {
                        Some(operation::Result::Response(any)) => {
                            let r = reapi::ExecuteResponse::decode(any.value.as_slice()).unwrap();
                            r.status.map_or(0, |s| s.code)
                        }
                        Some(operation::Result::Error(s)) => s.code,
                        None => panic!("operation for {bad} never finished"),
                    }
                }
            };
            assert_eq!(
                code,
                tonic::Code::InvalidArgument as i32,
                "output path {bad}"
            );
            // Nothing was cached for it either.
            let mut ac = ActionCacheClient::new(ch.clone());
            let got = ac
                .get_action_result(reapi::GetActionResultRequest {
                    action_digest: Some(action_digest.to_proto()),
                    ..Default::default()
                })
                .await;
            assert_eq!(got.unwrap_err().code(), tonic::Code::NotFound);
        }
    });
}

#[test]
fn a_platform_no_worker_offers_is_refused_naming_the_property() {
    let tmp = tempdir();
    let run_on = |server: &Server| {
        recast([
            "run",
            "--remote",
            &server.url(),
            "--platform",
            "ISA=no-such-isa",
            "--input-root",
        ])
        .arg(tmp.path())
        .args(["--", "true"])
        .output()
        .unwrap()
    };
    let out = run_on(&Server::start());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("FAILED_PRECONDITION"), "{err}");
    assert!(err.contains("ISA=no-such-isa"), "names the property: {err}");

    // A server started with the extra property takes the same action.
    let out = run_on(&Server::start_with(&["--platform", "ISA=no-such-isa"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
}
