//! A scripted in-memory REAPI server for the client's fault tests: broken
//! Execute streams, corrupted reads, missing inputs, a server without
//! GetCapabilities. Only what a real server will not do on demand belongs
//! here; the happy paths are tested against `recast serve`.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures::Stream;
use prost::Message;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::cas::Digest;
use crate::proto::bytestream::{self as bs, byte_stream_server::ByteStream};
use crate::proto::longrunning::{Operation, operation};
use crate::proto::reapi::{
    self, action_cache_server::ActionCache, capabilities_server::Capabilities,
    content_addressable_storage_server::ContentAddressableStorage, execution_server::Execution,
};
use crate::proto::rpc;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// What the fake does wrong, on purpose.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Flip a byte in every blob read.
    pub corrupt_reads: bool,
    /// Break the next Execute stream after its first message.
    pub break_execute: bool,
    /// Answer `UNIMPLEMENTED` to GetCapabilities.
    pub no_capabilities: bool,
    /// Answer BatchUpdateBlobs with per-blob INVALID_ARGUMENT.
    pub reject_batch_writes: bool,
    /// WaitExecution does not know any operation (as after a restart).
    pub forget_operations: bool,
    /// Finish operations with this error instead of a response.
    pub operation_error: Option<tonic::Code>,
}

#[derive(Default)]
pub struct State {
    pub blobs: HashMap<Digest, Vec<u8>>,
    pub faults: Faults,
    pub caps: reapi::ServerCapabilities,
    /// `RequestMetadata` of every call, in order.
    pub metadata: Vec<reapi::RequestMetadata>,
    /// Names of the calls received, in order.
    pub calls: Vec<String>,
    pub executions: u32,
    /// What GetActionResult answers for every action (None: NOT_FOUND):
    /// the hostile results of the wrapper's tests.
    pub result: Option<reapi::ActionResult>,
}

#[derive(Clone, Default)]
pub struct Fake(pub Arc<Mutex<State>>);

impl Fake {
    fn note<T>(&self, call: &str, req: &Request<T>) {
        let mut s = self.0.lock().unwrap();
        s.calls.push(call.to_string());
        if let Some(v) = req
            .metadata()
            .get_bin(crate::remote::metadata::REQUEST_METADATA_HEADER)
            && let Ok(bytes) = v.to_bytes()
            && let Ok(m) = reapi::RequestMetadata::decode(bytes.as_ref())
        {
            s.metadata.push(m);
        }
    }

    fn read(&self, d: &Digest) -> Option<Vec<u8>> {
        let s = self.0.lock().unwrap();
        let mut data = s.blobs.get(d).cloned()?;
        if s.faults.corrupt_reads && !data.is_empty() {
            data[0] ^= 1;
        }
        Some(data)
    }

    /// Serves on 127.0.0.1:0; returns the URL.
    pub async fn start(&self) -> String {
        self.start_with(None).await
    }

    /// Serves with TLS on 127.0.0.1:0; returns the `grpcs://` URL.
    pub async fn start_with(&self, tls: Option<tonic::transport::ServerTlsConfig>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut builder = tonic::transport::Server::builder();
        let scheme = if tls.is_some() { "grpcs" } else { "grpc" };
        if let Some(tls) = tls {
            builder = builder.tls_config(tls).unwrap();
        }
        let mut router = builder
            .add_service(reapi::execution_server::ExecutionServer::new(self.clone()))
            .add_service(
                reapi::content_addressable_storage_server::ContentAddressableStorageServer::new(
                    self.clone(),
                ),
            )
            .add_service(bs::byte_stream_server::ByteStreamServer::new(self.clone()))
            .add_service(reapi::action_cache_server::ActionCacheServer::new(
                self.clone(),
            ));
        if !self.0.lock().unwrap().faults.no_capabilities {
            router = router.add_service(reapi::capabilities_server::CapabilitiesServer::new(
                self.clone(),
            ));
        }
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        tokio::spawn(router.serve_with_incoming(incoming));
        format!("{scheme}://{addr}")
    }
}

fn digest(d: Option<&reapi::Digest>) -> Result<Digest, Status> {
    Digest::from_proto_opt(d).map_err(|e| Status::invalid_argument(e.to_string()))
}

fn blob_from_resource(name: &str) -> Result<(Digest, bool), Status> {
    let parts: Vec<&str> = name.split('/').collect();
    let n = parts.len();
    if n < 3 {
        return Err(Status::invalid_argument("short resource name"));
    }
    let d = Digest::new(parts[n - 2], parts[n - 1].parse().unwrap_or(-1))
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    Ok((d, name.contains("compressed-blobs/zstd/")))
}

#[tonic::async_trait]
impl Capabilities for Fake {
    async fn get_capabilities(
        &self,
        req: Request<reapi::GetCapabilitiesRequest>,
    ) -> Result<Response<reapi::ServerCapabilities>, Status> {
        self.note("GetCapabilities", &req);
        Ok(Response::new(self.0.lock().unwrap().caps.clone()))
    }
}

#[tonic::async_trait]
impl ActionCache for Fake {
    async fn get_action_result(
        &self,
        req: Request<reapi::GetActionResultRequest>,
    ) -> Result<Response<reapi::ActionResult>, Status> {
        self.note("GetActionResult", &req);
        match self.0.lock().unwrap().result.clone() {
            Some(r) => Ok(Response::new(r)),
            None => Err(Status::not_found("no result")),
        }
    }
    async fn update_action_result(
        &self,
        req: Request<reapi::UpdateActionResultRequest>,
    ) -> Result<Response<reapi::ActionResult>, Status> {
        self.note("UpdateActionResult", &req);
        Ok(Response::new(
            req.into_inner().action_result.unwrap_or_default(),
        ))
    }
}

#[tonic::async_trait]
impl ContentAddressableStorage for Fake {
    async fn find_missing_blobs(
        &self,
        req: Request<reapi::FindMissingBlobsRequest>,
    ) -> Result<Response<reapi::FindMissingBlobsResponse>, Status> {
        self.note("FindMissingBlobs", &req);
        let s = self.0.lock().unwrap();
        let mut missing = Vec::new();
        for d in &req.get_ref().blob_digests {
            if !s.blobs.contains_key(&digest(Some(d))?) {
                missing.push(d.clone());
            }
        }
        Ok(Response::new(reapi::FindMissingBlobsResponse {
            missing_blob_digests: missing,
        }))
    }

    async fn batch_update_blobs(
        &self,
        req: Request<reapi::BatchUpdateBlobsRequest>,
    ) -> Result<Response<reapi::BatchUpdateBlobsResponse>, Status> {
        self.note("BatchUpdateBlobs", &req);
        let mut s = self.0.lock().unwrap();
        let mut responses = Vec::new();
        for r in req.into_inner().requests {
            let d = digest(r.digest.as_ref())?;
            let data = if r.compressor == reapi::compressor::Value::Zstd as i32 {
                zstd::bulk::decompress(&r.data, d.size() as usize)
                    .map_err(|e| Status::invalid_argument(e.to_string()))?
            } else {
                r.data
            };
            let code = if s.faults.reject_batch_writes || Digest::of_bytes(&data) != d {
                tonic::Code::InvalidArgument as i32
            } else {
                s.blobs.insert(d, data);
                0
            };
            responses.push(reapi::batch_update_blobs_response::Response {
                digest: Some(d.to_proto()),
                status: Some(rpc::Status {
                    code,
                    message: if code == 0 {
                        String::new()
                    } else {
                        "digest mismatch".into()
                    },
                    details: vec![],
                }),
            });
        }
        Ok(Response::new(reapi::BatchUpdateBlobsResponse { responses }))
    }

    async fn batch_read_blobs(
        &self,
        req: Request<reapi::BatchReadBlobsRequest>,
    ) -> Result<Response<reapi::BatchReadBlobsResponse>, Status> {
        self.note("BatchReadBlobs", &req);
        let zstd = req
            .get_ref()
            .acceptable_compressors
            .contains(&(reapi::compressor::Value::Zstd as i32));
        let mut responses = Vec::new();
        for pd in &req.get_ref().digests {
            let d = digest(Some(pd))?;
            let (data, code) = match self.read(&d) {
                Some(data) => (data, 0),
                None => (Vec::new(), tonic::Code::NotFound as i32),
            };
            let (data, compressor) = if zstd && code == 0 {
                (zstd::bulk::compress(&data, 1).unwrap(), 1)
            } else {
                (data, 0)
            };
            responses.push(reapi::batch_read_blobs_response::Response {
                digest: Some(pd.clone()),
                data,
                compressor,
                status: Some(rpc::Status {
                    code,
                    ..Default::default()
                }),
            });
        }
        Ok(Response::new(reapi::BatchReadBlobsResponse { responses }))
    }

    type GetTreeStream = BoxStream<reapi::GetTreeResponse>;
    async fn get_tree(
        &self,
        req: Request<reapi::GetTreeRequest>,
    ) -> Result<Response<Self::GetTreeStream>, Status> {
        self.note("GetTree", &req);
        // Two pages: the root on the first, its children on the second.
        let root = digest(req.get_ref().root_digest.as_ref())?;
        let dir = reapi::Directory::decode(
            self.read(&root)
                .ok_or_else(|| Status::not_found("root"))?
                .as_slice(),
        )
        .map_err(|e| Status::data_loss(e.to_string()))?;
        let page = if req.get_ref().page_token.is_empty() {
            reapi::GetTreeResponse {
                directories: vec![dir],
                next_page_token: "children".into(),
            }
        } else {
            let mut children = Vec::new();
            for c in &dir.directories {
                let d = digest(c.digest.as_ref())?;
                let bytes = self.read(&d).ok_or_else(|| Status::not_found("child"))?;
                children.push(reapi::Directory::decode(bytes.as_slice()).unwrap());
            }
            reapi::GetTreeResponse {
                directories: children,
                next_page_token: String::new(),
            }
        };
        Ok(Response::new(Box::pin(tokio_stream::iter([Ok(page)]))))
    }

    async fn split_blob(
        &self,
        _: Request<reapi::SplitBlobRequest>,
    ) -> Result<Response<reapi::SplitBlobResponse>, Status> {
        Err(Status::unimplemented("split"))
    }
    async fn splice_blob(
        &self,
        _: Request<reapi::SpliceBlobRequest>,
    ) -> Result<Response<reapi::SpliceBlobResponse>, Status> {
        Err(Status::unimplemented("splice"))
    }
}

#[tonic::async_trait]
impl ByteStream for Fake {
    type ReadStream = BoxStream<bs::ReadResponse>;
    async fn read(
        &self,
        req: Request<bs::ReadRequest>,
    ) -> Result<Response<Self::ReadStream>, Status> {
        self.note("Read", &req);
        let (d, compressed) = blob_from_resource(&req.get_ref().resource_name)?;
        let data = self.read(&d).ok_or_else(|| Status::not_found("no blob"))?;
        let data = if compressed {
            zstd::bulk::compress(&data, 1).unwrap()
        } else {
            data
        };
        let offset = req.get_ref().read_offset as usize;
        let chunks: Vec<Result<bs::ReadResponse, Status>> = data[offset..]
            .chunks(64 << 10)
            .map(|c| Ok(bs::ReadResponse { data: c.to_vec() }))
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }

    async fn write(
        &self,
        req: Request<Streaming<bs::WriteRequest>>,
    ) -> Result<Response<bs::WriteResponse>, Status> {
        self.note("Write", &req);
        let mut stream = req.into_inner();
        let mut name = String::new();
        let mut data = Vec::new();
        while let Some(msg) = stream.next().await {
            let msg = msg?;
            if name.is_empty() {
                name = msg.resource_name.clone();
                let (d, compressed) = blob_from_resource(&name)?;
                // Early completion for blobs already present.
                if self.0.lock().unwrap().blobs.contains_key(&d) {
                    let committed = if compressed { -1 } else { d.size() as i64 };
                    return Ok(Response::new(bs::WriteResponse {
                        committed_size: committed,
                    }));
                }
            }
            if msg.write_offset as usize != data.len() {
                return Err(Status::invalid_argument("bad offset"));
            }
            data.extend(msg.data);
            if msg.finish_write {
                break;
            }
        }
        let (d, compressed) = blob_from_resource(&name)?;
        let committed = data.len() as i64;
        let plain = if compressed {
            zstd::stream::decode_all(data.as_slice())
                .map_err(|e| Status::invalid_argument(e.to_string()))?
        } else {
            data
        };
        if Digest::of_bytes(&plain) != d {
            return Err(Status::invalid_argument(format!("digest mismatch for {d}")));
        }
        self.0.lock().unwrap().blobs.insert(d, plain);
        Ok(Response::new(bs::WriteResponse {
            committed_size: committed,
        }))
    }

    async fn query_write_status(
        &self,
        _: Request<bs::QueryWriteStatusRequest>,
    ) -> Result<Response<bs::QueryWriteStatusResponse>, Status> {
        Err(Status::unimplemented("query"))
    }
}

fn done(name: &str, resp: reapi::ExecuteResponse) -> Operation {
    Operation {
        name: name.to_string(),
        done: true,
        result: Some(operation::Result::Response(prost_types::Any {
            type_url: "type.googleapis.com/build.bazel.remote.execution.v2.ExecuteResponse".into(),
            value: resp.encode_to_vec(),
        })),
        ..Default::default()
    }
}

impl Fake {
    /// "Runs" an action: checks its inputs are present, answers exit code 7
    /// with stdout naming the action.
    fn outcome(&self, action: &Digest) -> reapi::ExecuteResponse {
        let mut s = self.0.lock().unwrap();
        let mut missing = Vec::new();
        match s
            .blobs
            .get(action)
            .map(|b| reapi::Action::decode(b.as_slice()))
        {
            Some(Ok(a)) => {
                for d in [a.command_digest, a.input_root_digest].iter().flatten() {
                    let d = Digest::from_proto(d).unwrap();
                    if d != Digest::EMPTY && !s.blobs.contains_key(&d) {
                        missing.push(d);
                    }
                }
            }
            _ => missing.push(*action),
        }
        if !missing.is_empty() {
            let pf = rpc::PreconditionFailure {
                violations: missing
                    .iter()
                    .map(|d| rpc::precondition_failure::Violation {
                        r#type: "MISSING".into(),
                        subject: format!("blobs/{d}"),
                        description: String::new(),
                    })
                    .collect(),
            };
            return reapi::ExecuteResponse {
                status: Some(rpc::Status {
                    code: tonic::Code::FailedPrecondition as i32,
                    message: "missing inputs".into(),
                    details: vec![prost_types::Any {
                        type_url: "type.googleapis.com/google.rpc.PreconditionFailure".into(),
                        value: pf.encode_to_vec(),
                    }],
                }),
                ..Default::default()
            };
        }
        s.executions += 1;
        reapi::ExecuteResponse {
            result: Some(reapi::ActionResult {
                exit_code: 7,
                stdout_raw: format!("ran {action}").into_bytes(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

#[tonic::async_trait]
impl Execution for Fake {
    type ExecuteStream = BoxStream<Operation>;
    async fn execute(
        &self,
        req: Request<reapi::ExecuteRequest>,
    ) -> Result<Response<Self::ExecuteStream>, Status> {
        self.note("Execute", &req);
        let action = digest(req.get_ref().action_digest.as_ref())?;
        let name = format!("operations/{}", action.hex());
        let broken = std::mem::take(&mut self.0.lock().unwrap().faults.break_execute);
        if broken {
            let first = Operation {
                name,
                ..Default::default()
            };
            let items = vec![Ok(first), Err(Status::unavailable("connection lost"))];
            return Ok(Response::new(Box::pin(tokio_stream::iter(items))));
        }
        let scripted = self.0.lock().unwrap().faults.operation_error;
        let op = match scripted {
            Some(code) => Operation {
                name,
                done: true,
                result: Some(operation::Result::Error(rpc::Status {
                    code: code as i32,
                    message: "scripted failure".into(),
                    details: vec![],
                })),
                ..Default::default()
            },
            None => done(&name, self.outcome(&action)),
        };
        Ok(Response::new(Box::pin(tokio_stream::iter([Ok(op)]))))
    }

    type WaitExecutionStream = BoxStream<Operation>;
    async fn wait_execution(
        &self,
        req: Request<reapi::WaitExecutionRequest>,
    ) -> Result<Response<Self::WaitExecutionStream>, Status> {
        self.note("WaitExecution", &req);
        if self.0.lock().unwrap().faults.forget_operations {
            return Err(Status::not_found("unknown operation"));
        }
        let hex = req
            .get_ref()
            .name
            .strip_prefix("operations/")
            .ok_or_else(|| Status::not_found("unknown operation"))?
            .to_string();
        let s = self.0.lock().unwrap();
        let action = s
            .blobs
            .keys()
            .find(|d| d.hex() == hex)
            .copied()
            .ok_or_else(|| Status::not_found("unknown operation"))?;
        drop(s);
        let op = done(&req.get_ref().name, self.outcome(&action));
        Ok(Response::new(Box::pin(tokio_stream::iter([Ok(op)]))))
    }
}
