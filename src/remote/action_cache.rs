//! ActionCache calls: look up a result by action digest, store one.
//!
//! A miss (NOT_FOUND) is an answer, not an error. Whether the blobs a hit
//! refers to can still be downloaded is checked when they are read.

use super::retry::{CallKind, retry};
use super::{Client, RemoteError};
use crate::cas::Digest;
use crate::proto::reapi;

impl Client {
    /// The cached result of `action`, or `None` on a miss.
    pub async fn get_action_result(
        &self,
        action: &Digest,
    ) -> Result<Option<reapi::ActionResult>, RemoteError> {
        self.get_action_result_inline(action, &[]).await
    }

    /// [`Client::get_action_result`], asking the server to inline the
    /// output files named in `files` (small objects come back in the same
    /// round trip; the server may decline).
    pub async fn get_action_result_inline(
        &self,
        action: &Digest,
        files: &[String],
    ) -> Result<Option<reapi::ActionResult>, RemoteError> {
        let req = reapi::GetActionResultRequest {
            instance_name: self.inner.instance.clone(),
            action_digest: Some(action.to_proto()),
            // Saves two round trips when the server is willing.
            inline_stdout: true,
            inline_stderr: true,
            inline_output_files: files.to_vec(),
            ..Default::default()
        };
        let client = self.ac_client().await?;
        match retry(CallKind::Read, "GetActionResult", || {
            let mut c = client.clone();
            let req = self.inner.md.request(req.clone(), Some(action));
            async move { c.get_action_result(req).await }
        })
        .await
        {
            Ok(r) => Ok(Some(r.into_inner())),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(self.status("GetActionResult", &s)),
        }
    }

    /// Stores `result` as the result of `action`; returns what the server kept.
    pub async fn update_action_result(
        &self,
        action: &Digest,
        result: reapi::ActionResult,
    ) -> Result<reapi::ActionResult, RemoteError> {
        let req = reapi::UpdateActionResultRequest {
            instance_name: self.inner.instance.clone(),
            action_digest: Some(action.to_proto()),
            action_result: Some(result),
            ..Default::default()
        };
        let client = self.ac_client().await?;
        retry(CallKind::Write, "UpdateActionResult", || {
            let mut c = client.clone();
            let req = self.inner.md.request(req.clone(), Some(action));
            async move { c.update_action_result(req).await }
        })
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| self.status("UpdateActionResult", &s))
    }
}
