//! `Capabilities.GetCapabilities`: what this server supports.
//!
//! The values here are promises the other services keep: the batch limit is
//! enforced by `cas`, zstd is served by `cas` and `bytestream`, and API
//! 2.3 means `Action.platform` and `output_paths` are understood.

use crate::proto::reapi::capabilities_server::Capabilities;
use crate::proto::{reapi, semver};

/// Largest total of blob bytes in one BatchUpdateBlobs/BatchReadBlobs call.
/// Well under the gRPC message limit the server is configured with, so a
/// full batch plus its framing always fits in one message.
pub const MAX_BATCH_TOTAL_SIZE: i64 = 4 * 1024 * 1024;

/// The capabilities of every instance of this server (instances are not
/// distinguished: one CAS, one action cache), as told to a caller who may
/// (`ac_update`) or may not update the action cache.
pub fn server_capabilities(ac_update: bool) -> reapi::ServerCapabilities {
    use reapi::compressor::Value as Compressor;
    use reapi::digest_function::Value as DigestFunction;
    let sha256 = DigestFunction::Sha256 as i32;
    let version = |major, minor| semver::SemVer {
        major,
        minor,
        patch: 0,
        prerelease: String::new(),
    };
    reapi::ServerCapabilities {
        cache_capabilities: Some(reapi::CacheCapabilities {
            digest_functions: vec![sha256],
            action_cache_update_capabilities: Some(reapi::ActionCacheUpdateCapabilities {
                update_enabled: ac_update,
            }),
            cache_priority_capabilities: None,
            max_batch_total_size_bytes: MAX_BATCH_TOTAL_SIZE,
            symlink_absolute_path_strategy: reapi::symlink_absolute_path_strategy::Value::Allowed
                as i32,
            supported_compressors: vec![Compressor::Zstd as i32],
            supported_batch_update_compressors: vec![Compressor::Zstd as i32],
            ..Default::default()
        }),
        execution_capabilities: Some(reapi::ExecutionCapabilities {
            digest_function: sha256,
            exec_enabled: true,
            execution_priority_capabilities: None,
            supported_node_properties: Vec::new(),
            digest_functions: vec![sha256],
        }),
        deprecated_api_version: None,
        low_api_version: Some(version(2, 0)),
        high_api_version: Some(version(2, 3)),
    }
}

/// The Capabilities service.
#[derive(Clone, Debug, Default)]
pub struct CapabilitiesService;

#[tonic::async_trait]
impl Capabilities for CapabilitiesService {
    async fn get_capabilities(
        &self,
        request: tonic::Request<reapi::GetCapabilitiesRequest>,
    ) -> Result<tonic::Response<reapi::ServerCapabilities>, tonic::Status> {
        super::auth::require(&request, super::auth::Scope::Read)?;
        tracing::debug!(instance = %request.get_ref().instance_name, "GetCapabilities");
        let ac_update = super::auth::scopes_of(&request).allows(super::auth::Scope::WriteAc);
        Ok(tonic::Response::new(server_capabilities(ac_update)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::auth::{Scope, Scopes};

    fn asked_with(scopes: Option<Scopes>) -> tonic::Request<reapi::GetCapabilitiesRequest> {
        let mut req = tonic::Request::new(Default::default());
        if let Some(s) = scopes {
            req.extensions_mut().insert(s);
        }
        req
    }

    #[tokio::test]
    async fn each_caller_is_told_whether_it_may_update_the_action_cache() {
        let ro = Scopes::of(&[Scope::Read, Scope::WriteCas, Scope::Execute]);
        let caps = CapabilitiesService
            .get_capabilities(asked_with(Some(ro)))
            .await
            .unwrap()
            .into_inner();
        let update = caps
            .cache_capabilities
            .unwrap()
            .action_cache_update_capabilities;
        assert!(!update.unwrap().update_enabled);
        let e = CapabilitiesService
            .get_capabilities(asked_with(None))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
    }

    #[tokio::test]
    async fn advertises_sha256_zstd_and_api_2_0_to_2_3() {
        let caps = CapabilitiesService
            .get_capabilities(asked_with(Some(Scopes::ALL)))
            .await
            .unwrap()
            .into_inner();
        let cache = caps.cache_capabilities.unwrap();
        assert_eq!(cache.digest_functions, vec![1]);
        assert_eq!(cache.max_batch_total_size_bytes, 4 << 20);
        assert_eq!(cache.supported_batch_update_compressors, vec![1]);
        assert!(
            cache
                .action_cache_update_capabilities
                .unwrap()
                .update_enabled
        );
        assert_eq!(cache.symlink_absolute_path_strategy, 2);
        let exec = caps.execution_capabilities.unwrap();
        assert!(exec.exec_enabled);
        assert_eq!(exec.digest_function, 1);
        assert_eq!(caps.low_api_version.unwrap().major, 2);
        let high = caps.high_api_version.unwrap();
        assert_eq!((high.major, high.minor), (2, 3));
        assert!(caps.deprecated_api_version.is_none());
    }
}
