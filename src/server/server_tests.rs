//! The wired server over real loopback gRPC: the services answer on the
//! port `spawn` bound, with the raised message limits.

use futures::StreamExt;
use prost::Message as _;

use super::*;
use crate::cas::Digest;
use crate::proto::bytestream::byte_stream_client::ByteStreamClient;
use crate::proto::bytestream::{ReadRequest, WriteRequest};
use crate::proto::google::longrunning::operations_client::OperationsClient;
use crate::proto::longrunning::{GetOperationRequest, operation};
use crate::proto::reapi;
use crate::proto::reapi::capabilities_client::CapabilitiesClient;
use crate::proto::reapi::content_addressable_storage_client::ContentAddressableStorageClient;
use crate::proto::reapi::execution_client::ExecutionClient;

async fn start() -> (tempfile::TempDir, tonic::transport::Channel) {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _handle) = spawn(ServeOptions {
        listen: crate::server::Listen::Tcp("127.0.0.1:0".parse().unwrap()),
        dir: dir.path().join("server"),
        max_size: 1 << 30,
        workers: 1,
        platform: vec![("Pool".into(), "test".into())],
        sandbox: Default::default(),
        tls: None,
        tokens: None,
        idle_timeout: None,
    })
    .await
    .unwrap();
    assert_ne!(addr.port(), 0);
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    (dir, channel)
}

#[tokio::test]
async fn serves_capabilities_cas_and_bytestream_over_grpc() {
    let (_dir, ch) = start().await;
    let caps = CapabilitiesClient::new(ch.clone())
        .get_capabilities(reapi::GetCapabilitiesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(caps.execution_capabilities.unwrap().exec_enabled);

    // A batch near the advertised limit fits the raised message size.
    let mut cas = ContentAddressableStorageClient::new(ch.clone())
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE);
    let data = vec![b'x'; 4 << 20];
    let d = Digest::of_bytes(&data);
    let resp = cas
        .batch_update_blobs(reapi::BatchUpdateBlobsRequest {
            requests: vec![reapi::batch_update_blobs_request::Request {
                digest: Some(d.to_proto()),
                data: data.clone(),
                compressor: 0,
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.responses[0].status.as_ref().unwrap().code, 0);

    // ByteStream: write 5 MiB in 1 MiB pieces, read it back.
    let big: Vec<u8> = (0..5 << 20).map(|i: u32| (i % 251) as u8).collect();
    let bd = Digest::of_bytes(&big);
    let name = format!("inst/uploads/abc/blobs/{}/{}", bd.hex(), bd.size());
    let reqs: Vec<WriteRequest> = big
        .chunks(1 << 20)
        .enumerate()
        .map(|(i, c)| WriteRequest {
            resource_name: if i == 0 { name.clone() } else { String::new() },
            write_offset: (i << 20) as i64,
            finish_write: (i + 1) << 20 >= big.len(),
            data: c.to_vec(),
        })
        .collect();
    let mut bs = ByteStreamClient::new(ch.clone());
    let written = bs
        .write(futures::stream::iter(reqs))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(written.committed_size, big.len() as i64);
    let mut stream = bs
        .read(ReadRequest {
            resource_name: format!("inst/blobs/{}/{}", bd.hex(), bd.size()),
            read_offset: 0,
            read_limit: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(msg) = stream.message().await.unwrap() {
        assert!(msg.data.len() <= bytestream::CHUNK);
        got.extend(msg.data);
    }
    assert_eq!(got, big);
}

#[tokio::test]
async fn executes_over_grpc_with_typed_operations() {
    let (_dir, ch) = start().await;
    let mut cas = ContentAddressableStorageClient::new(ch.clone());
    let mut put = async |bytes: Vec<u8>| {
        let d = Digest::of_bytes(&bytes);
        cas.batch_update_blobs(reapi::BatchUpdateBlobsRequest {
            requests: vec![reapi::batch_update_blobs_request::Request {
                digest: Some(d.to_proto()),
                data: bytes,
                compressor: 0,
            }],
            ..Default::default()
        })
        .await
        .unwrap();
        d
    };
    let root = put(reapi::Directory::default().encode_to_vec()).await;
    let command = put(reapi::Command {
        arguments: vec!["/bin/sh".into(), "-c".into(), "echo hi".into()],
        ..Default::default()
    }
    .encode_to_vec())
    .await;
    let action = put(reapi::Action {
        command_digest: Some(command.to_proto()),
        input_root_digest: Some(root.to_proto()),
        ..Default::default()
    }
    .encode_to_vec())
    .await;

    // Operations stream back zstd-framed to a caller that accepts it.
    let mut exec =
        ExecutionClient::new(ch.clone()).accept_compressed(tonic::codec::CompressionEncoding::Zstd);
    let mut stream = exec
        .execute(reapi::ExecuteRequest {
            action_digest: Some(action.to_proto()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    while let Some(op) = stream.next().await {
        let op = op.unwrap();
        let md = op.metadata.as_ref().unwrap();
        assert_eq!(
            md.type_url,
            "type.googleapis.com/build.bazel.remote.execution.v2.ExecuteOperationMetadata"
        );
        let md = reapi::ExecuteOperationMetadata::decode(md.value.as_slice()).unwrap();
        assert_eq!(md.action_digest, Some(action.to_proto()));
        last = Some(op);
    }
    let op = last.unwrap();
    assert!(op.done);
    let Some(operation::Result::Response(any)) = &op.result else {
        panic!("no response");
    };
    assert_eq!(
        any.type_url,
        "type.googleapis.com/build.bazel.remote.execution.v2.ExecuteResponse"
    );
    let r = reapi::ExecuteResponse::decode(any.value.as_slice()).unwrap();
    assert_eq!(r.result.unwrap().exit_code, 0);

    let got = OperationsClient::new(ch.clone())
        .get_operation(GetOperationRequest {
            name: op.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, op);

    let e = exec
        .wait_execution(reapi::WaitExecutionRequest {
            name: "operations/unknown".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn results_are_zstd_for_callers_that_accept_it_and_plain_for_others() {
    use crate::proto::reapi::action_cache_client::ActionCacheClient;
    let (_dir, ch) = start().await;
    // An output that compresses well, stored, and a result naming it.
    let object: Vec<u8> = (0..20_000u32).map(|i| (i % 13) as u8).collect();
    let d = Digest::of_bytes(&object);
    ContentAddressableStorageClient::new(ch.clone())
        .batch_update_blobs(reapi::BatchUpdateBlobsRequest {
            requests: vec![reapi::batch_update_blobs_request::Request {
                digest: Some(d.to_proto()),
                data: object.clone(),
                compressor: 0,
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    let action = Digest::of_bytes(b"an action");
    let result = reapi::ActionResult {
        output_files: vec![reapi::OutputFile {
            path: "out.o".into(),
            digest: Some(d.to_proto()),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut plain = ActionCacheClient::new(ch.clone());
    plain
        .update_action_result(reapi::UpdateActionResultRequest {
            action_digest: Some(action.to_proto()),
            action_result: Some(result),
            ..Default::default()
        })
        .await
        .unwrap();
    let ask = reapi::GetActionResultRequest {
        action_digest: Some(action.to_proto()),
        inline_output_files: vec!["out.o".into()],
        ..Default::default()
    };
    let zstd = tonic::codec::CompressionEncoding::Zstd;
    for (mut client, encoding) in [
        (plain.clone(), None),
        (plain.accept_compressed(zstd), Some("zstd")),
    ] {
        let got = client.get_action_result(ask.clone()).await.unwrap();
        assert_eq!(
            got.metadata()
                .get("grpc-encoding")
                .map(|v| v.to_str().unwrap()),
            encoding
        );
        assert_eq!(got.into_inner().output_files[0].contents, object);
    }
}
