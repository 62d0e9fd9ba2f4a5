//! The REAPI client: one tonic channel to one server, and the calls recast
//! makes on it (capabilities, CAS, ByteStream, action cache, execution).
//!
//! [`Client`] is cheap to clone; all clones share the channel, the
//! per-process invocation id and the capabilities once fetched. Every call
//! carries the user's headers, `RequestMetadata` and a deadline
//! ([`metadata`]), and transient failures go through the one retry loop
//! ([`retry`]). Every blob read from the server is checked against its
//! digest before anyone sees it. [`run_action`] strings the calls together
//! for one action (cache lookup, upload, execute); [`write_outputs`] puts a
//! result on disk without ever writing through a symlink. Building actions
//! is `action`'s job; deciding what to do with a failure (fall back, exit)
//! is the caller's.

mod action_cache;
mod bytestream;
pub mod capabilities;
mod cas;
pub mod channel;
mod error;
mod execution;
#[cfg(test)]
pub(crate) mod fake;
pub mod metadata;
pub mod outputs;
pub mod retry;
mod session;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tonic::codec::CompressionEncoding;
use tonic::transport::Channel;

pub use crate::cas::blob::{Blob, BlobSource};
pub use capabilities::{ApiVersion, ServerCaps, SymlinkStrategy};
pub use cas::UploadStats;
pub use channel::ServerUrl;
pub use error::{RemoteError, code_name};
pub use outputs::{OutputStats, write_outputs, write_outputs_in};
pub use session::{ActionRun, Outcome, Timings, run_action};

use crate::cas::resource;
use crate::config::RemoteConfig;
use crate::proto::bytestream::byte_stream_client::ByteStreamClient;
use crate::proto::reapi::{
    action_cache_client::ActionCacheClient, capabilities_client::CapabilitiesClient,
    content_addressable_storage_client::ContentAddressableStorageClient,
    execution_client::ExecutionClient,
};
use metadata::CallMetadata;
use retry::{CallKind, retry};

/// Largest message the client sends or accepts. Batches stay near 4 MiB,
/// but GetTree pages and ActionResults with many outputs can be larger.
const MAX_MESSAGE: usize = 256 << 20;

pub use crate::config::Compression;

/// A server and instance as one digest, for state kept per server under
/// the cache dir (capabilities, toolchain upload markers, outboxes).
pub fn server_key(url: &str, instance: &str) -> crate::cas::Digest {
    crate::cas::Digest::of_bytes(format!("{url}\n{instance}").as_bytes())
}

/// `url`, or `url#HASH` where headers (credentials) are sent.
fn caps_key(url: &str, headers: &[(String, String)]) -> String {
    if headers.is_empty() {
        return url.to_string();
    }
    let mut text = String::new();
    for (k, v) in headers {
        text.push_str(&format!("{}\0{v}\0", k.to_ascii_lowercase()));
    }
    let hex = crate::cas::Digest::of_bytes(text.as_bytes()).hex();
    format!("{url}#{}", &hex[..16])
}

/// A connection to one REAPI server (and one instance on it).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    /// The action the calls of this handle are about (`RequestMetadata.action_id`).
    action: Option<crate::cas::Digest>,
}

struct Inner {
    url: String,
    /// The URL, and a hash of the credentials sent, under which the
    /// capabilities are cached: what a server allows (updating its action
    /// cache) may differ between the tokens of one URL.
    caps_key: String,
    server: ServerUrl,
    instance: String,
    /// The connection: made at construction ([`Client::connect`]), or at
    /// the first call that needs it (with `dial`'s settings).
    channel: Arc<tokio::sync::OnceCell<Channel>>,
    dial: Option<RemoteConfig>,
    md: CallMetadata,
    cache_dir: PathBuf,
    caps: tokio::sync::OnceCell<ServerCaps>,
    compression: Compression,
    /// Results on this machine, read with no call: the embedded server's
    /// own store, or the local tier in front of a remote server.
    local: Option<crate::cas::store::StoreReader>,
    /// The local tier, kept up to date with what the server answers
    /// (none for the embedded server, whose store is read directly).
    tier: Option<Arc<crate::cas::store::Tier>>,
}

/// Most bytes a result read from the local store may hold in all; larger
/// ones are the server's to send.
const LOCAL_RESULT_LIMIT: u64 = 64 << 20;

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.inner.url)
            .field("instance", &self.inner.instance)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to `url` (`grpc://`, `grpcs://` or `unix:`) with the
    /// settings in `cfg`. Fails fast, naming the URL, when nothing answers.
    pub async fn connect(cfg: &RemoteConfig, url: &str) -> Result<Client, RemoteError> {
        let (server, channel) = channel::connect(cfg, url).await?;
        Client::with_channel(cfg, url, server, Some(channel), None)
    }

    /// A client of the server at `url` that dials it at the first call
    /// that needs it (failing then as [`Client::connect`] would), with the
    /// local tier `tier` in front: a result kept there is read with no
    /// call, and needs no server. With `front`, calls go to the socket it
    /// finds (this user's warm front, which forwards them to `url` over a
    /// connection it keeps open) instead of a connection of this process.
    pub fn with_tier(
        cfg: &RemoteConfig,
        url: &str,
        tier: Option<crate::cas::store::Tier>,
        front: Option<channel::FindSocket>,
    ) -> Result<Client, RemoteError> {
        let server = channel::parse_url(url)?;
        let channel = front.map(|find| channel::lazy_unix(cfg, find));
        let mut client = Client::with_channel(cfg, url, server, channel, None)?;
        let inner = Arc::get_mut(&mut client.inner).expect("a new client is not shared");
        inner.local = tier.as_ref().map(|t| t.reader());
        inner.tier = tier.map(Arc::new);
        Ok(client)
    }

    /// A client of the embedded server listening at `url` (a socket),
    /// whose store is `store` (its `--dir`): results found there are read
    /// directly, and the socket is dialed (`find` may start the server
    /// first) only when a call is needed. A hit read from the store makes
    /// no call, and needs no server.
    pub fn embedded(
        cfg: &RemoteConfig,
        url: &str,
        store: &Path,
        find: channel::FindSocket,
    ) -> Result<Client, RemoteError> {
        let server = channel::parse_url(url)?;
        let channel = channel::lazy_unix(cfg, find);
        let local = Some(crate::cas::store::StoreReader::new(store));
        Client::with_channel(cfg, url, server, Some(channel), local)
    }

    fn with_channel(
        cfg: &RemoteConfig,
        url: &str,
        server: ServerUrl,
        channel: Option<Channel>,
        local: Option<crate::cas::store::StoreReader>,
    ) -> Result<Client, RemoteError> {
        resource::validate_instance(&cfg.instance).map_err(RemoteError::Config)?;
        let md = CallMetadata::new(&cfg.headers, uuid::Uuid::new_v4().to_string(), cfg.timeout)?;
        Ok(Client {
            inner: Arc::new(Inner {
                url: url.to_string(),
                caps_key: caps_key(url, &cfg.headers),
                server,
                instance: cfg.instance.clone(),
                dial: channel.is_none().then(|| cfg.clone()),
                channel: Arc::new(tokio::sync::OnceCell::new_with(channel)),
                md,
                cache_dir: cfg.cache_dir.clone(),
                caps: tokio::sync::OnceCell::new(),
                compression: cfg.compression,
                local,
                tier: None,
            }),
            action: None,
        })
    }

    /// A handle whose calls all say they concern `action` (uploads, reads),
    /// so server logs group them with its Execute.
    pub fn for_action(&self, action: &crate::cas::Digest) -> Client {
        Client {
            inner: self.inner.clone(),
            action: Some(*action),
        }
    }

    /// The result of `action` read from the server's own store on this
    /// machine, with every output and stream inlined and checked against
    /// its digest; `None` when there is no such store or it lacks a part
    /// (then ask the server).
    pub fn local_result(
        &self,
        action: &crate::cas::Digest,
    ) -> Option<crate::proto::reapi::ActionResult> {
        self.inner
            .local
            .as_ref()?
            .inlined(action, LOCAL_RESULT_LIMIT)
    }

    /// The local tier, if results are kept on this machine.
    pub fn tier(&self) -> Option<&crate::cas::store::Tier> {
        self.inner.tier.as_deref()
    }

    /// The connection, dialed now if it was left for the first call.
    async fn channel(&self) -> Result<Channel, RemoteError> {
        let i = &self.inner;
        i.channel
            .get_or_try_init(|| async {
                let cfg = i.dial.as_ref().ok_or_else(|| RemoteError::Unreachable {
                    url: i.url.clone(),
                    reason: "no connection settings".into(),
                })?;
                channel::connect(cfg, &i.url).await.map(|(_, c)| c)
            })
            .await
            .cloned()
    }

    /// `msg` with headers, metadata and the default deadline.
    fn request<T>(&self, msg: T) -> tonic::Request<T> {
        self.inner.md.request(msg, self.action.as_ref())
    }

    /// The same connection with another compression policy.
    pub fn with_compression(&self, compression: Compression) -> Client {
        let i = &self.inner;
        let caps = tokio::sync::OnceCell::new_with(i.caps.get().cloned());
        Client {
            inner: Arc::new(Inner {
                url: i.url.clone(),
                caps_key: i.caps_key.clone(),
                server: i.server.clone(),
                instance: i.instance.clone(),
                channel: i.channel.clone(),
                dial: i.dial.clone(),
                md: i.md.clone(),
                cache_dir: i.cache_dir.clone(),
                caps,
                compression,
                local: i.local.clone(),
                tier: i.tier.clone(),
            }),
            action: self.action,
        }
    }

    /// Whether the server is on this machine (a loopback address or a
    /// socket), where bandwidth is free.
    pub fn is_loopback(&self) -> bool {
        self.inner.server.is_loopback()
    }

    /// The URL the client was given.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// Names this client's server and instance in file names under the
    /// cache dir ([`server_key`]).
    pub fn server_key(&self) -> crate::cas::Digest {
        server_key(self.url(), self.instance())
    }

    /// The `tool_invocation_id` sent with every call of this client.
    pub fn invocation_id(&self) -> &str {
        self.inner.md.invocation_id()
    }

    /// The server's capabilities: from memory, else the disk cache, else
    /// asked once. A server without GetCapabilities gets REAPI 2.0 defaults.
    pub async fn capabilities(&self) -> Result<ServerCaps, RemoteError> {
        self.inner
            .caps
            .get_or_try_init(|| async {
                let i = &self.inner;
                if let Some(c) = capabilities::load_cached(
                    &i.cache_dir,
                    &i.caps_key,
                    &i.instance,
                    crate::fsutil::now_secs(),
                ) {
                    return Ok(c);
                }
                self.fetch_capabilities().await
            })
            .await
            .cloned()
    }

    /// Asks the server for its capabilities, bypassing every cache (and
    /// refreshing the one on disk).
    pub async fn fetch_capabilities(&self) -> Result<ServerCaps, RemoteError> {
        let client =
            CapabilitiesClient::new(self.channel().await?).max_decoding_message_size(MAX_MESSAGE);
        let req = crate::proto::reapi::GetCapabilitiesRequest {
            instance_name: self.inner.instance.clone(),
        };
        let answer = retry(CallKind::Read, "GetCapabilities", || {
            let mut c = client.clone();
            let req = self.request(req.clone());
            async move { c.get_capabilities(req).await }
        })
        .await;
        let caps = match answer {
            Ok(resp) => ServerCaps::from_proto(&self.inner.url, &resp.into_inner())?,
            Err(s) if s.code() == tonic::Code::Unimplemented => ServerCaps::assumed_v2_0(),
            Err(s) => return Err(self.status("GetCapabilities", &s)),
        };
        let i = &self.inner;
        capabilities::store_cached(
            &i.cache_dir,
            &i.caps_key,
            &i.instance,
            &caps,
            crate::fsutil::now_secs(),
        );
        Ok(caps)
    }

    /// True when blobs should travel zstd-compressed, given what the server
    /// offers (`offered`).
    fn use_zstd(&self, offered: bool) -> bool {
        offered && self.compressing()
    }

    /// Whether this client compresses what crosses the wire: blobs the
    /// server takes compressed, and answers (action results with their
    /// inlined outputs) it asks compressed.
    pub fn compressing(&self) -> bool {
        match self.inner.compression {
            Compression::Always => true,
            Compression::Never => false,
            Compression::Auto => !self.inner.server.is_loopback(),
        }
    }

    /// `client` asking for answers zstd-compressed when this client
    /// compresses (a server that cannot just answers plain).
    fn answers<T>(&self, client: T, accept: impl FnOnce(T) -> T) -> T {
        if self.compressing() {
            accept(client)
        } else {
            client
        }
    }

    fn status(&self, call: &'static str, s: &tonic::Status) -> RemoteError {
        RemoteError::status(&self.inner.url, call, s)
    }

    fn protocol(&self, message: impl Into<String>) -> RemoteError {
        RemoteError::protocol(&self.inner.url, message)
    }

    async fn cas_client(&self) -> Result<ContentAddressableStorageClient<Channel>, RemoteError> {
        Ok(ContentAddressableStorageClient::new(self.channel().await?)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE))
    }

    async fn bytestream_client(&self) -> Result<ByteStreamClient<Channel>, RemoteError> {
        Ok(ByteStreamClient::new(self.channel().await?)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE))
    }

    async fn ac_client(&self) -> Result<ActionCacheClient<Channel>, RemoteError> {
        let c = ActionCacheClient::new(self.channel().await?)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        Ok(self.answers(c, |c| c.accept_compressed(CompressionEncoding::Zstd)))
    }

    async fn exec_client(&self) -> Result<ExecutionClient<Channel>, RemoteError> {
        let c = ExecutionClient::new(self.channel().await?)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        Ok(self.answers(c, |c| c.accept_compressed(CompressionEncoding::Zstd)))
    }
}
