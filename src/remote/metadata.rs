//! What rides along with every call: the user's extra headers, REAPI's
//! `RequestMetadata` (tool, invocation id, action id) and the deadline.
//!
//! Header checking happens once, when the client is built, so a bad
//! `--remote-header` fails before any call and names the header.

use std::time::Duration;

use prost::Message;
use tonic::metadata::{AsciiMetadataValue, BinaryMetadataValue, MetadataKey, MetadataMap};

use super::RemoteError;
use crate::cas::Digest;
use crate::proto::reapi;

/// The binary header REAPI servers read `RequestMetadata` from.
pub const REQUEST_METADATA_HEADER: &str = "build.bazel.remote.execution.v2.requestmetadata-bin";

/// Headers and metadata shared by all calls of one client.
#[derive(Clone, Debug)]
pub struct CallMetadata {
    base: MetadataMap,
    invocation_id: String,
    timeout: Duration,
}

impl CallMetadata {
    /// Checks `headers` (keys ending in `-bin` take base64 values) and fixes
    /// the invocation id for this client.
    pub fn new(
        headers: &[(String, String)],
        invocation_id: String,
        timeout: Duration,
    ) -> Result<CallMetadata, RemoteError> {
        let mut base = MetadataMap::new();
        for (k, v) in headers {
            let bad = |why: &str| RemoteError::Config(format!("remote header {k:?}: {why}"));
            let key = k.to_ascii_lowercase();
            if key.ends_with("-bin") {
                let key = MetadataKey::from_bytes(key.as_bytes())
                    .map_err(|_| bad("not a valid header name"))?;
                let bytes = decode_base64(v).ok_or_else(|| bad("a -bin value must be base64"))?;
                base.insert_bin(key, BinaryMetadataValue::from_bytes(&bytes));
            } else {
                let key = MetadataKey::from_bytes(key.as_bytes())
                    .map_err(|_| bad("not a valid header name"))?;
                let printable = v.bytes().all(|b| (0x20..0x7f).contains(&b));
                let value = AsciiMetadataValue::try_from(v.as_str())
                    .ok()
                    .filter(|_| printable)
                    .ok_or_else(|| bad("the value must be printable ASCII"))?;
                base.insert(key, value);
            }
        }
        Ok(CallMetadata {
            base,
            invocation_id,
            timeout,
        })
    }

    pub fn invocation_id(&self) -> &str {
        &self.invocation_id
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The `RequestMetadata` message for a call, about `action` if any.
    pub fn request_metadata(&self, action: Option<&Digest>) -> reapi::RequestMetadata {
        reapi::RequestMetadata {
            tool_details: Some(reapi::ToolDetails {
                tool_name: "recast".into(),
                tool_version: env!("CARGO_PKG_VERSION").into(),
            }),
            action_id: action.map(|d| d.hex()).unwrap_or_default(),
            tool_invocation_id: self.invocation_id.clone(),
            ..Default::default()
        }
    }

    /// Wraps a message with the headers, metadata and the default deadline.
    pub fn request<T>(&self, msg: T, action: Option<&Digest>) -> tonic::Request<T> {
        self.request_with_timeout(msg, action, self.timeout)
    }

    /// As [`request`](Self::request), with a deadline of its own.
    pub fn request_with_timeout<T>(
        &self,
        msg: T,
        action: Option<&Digest>,
        timeout: Duration,
    ) -> tonic::Request<T> {
        let mut md = self.base.clone();
        let encoded = self.request_metadata(action).encode_to_vec();
        md.insert_bin(
            REQUEST_METADATA_HEADER,
            BinaryMetadataValue::from_bytes(&encoded),
        );
        let mut req = tonic::Request::from_parts(md, Default::default(), msg);
        req.set_timeout(timeout);
        req
    }
}

/// Standard or URL-safe base64, padding optional. `None` if malformed.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    }
    let s = s.trim().trim_end_matches('=').as_bytes();
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= val(*c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_both_alphabets_with_and_without_padding() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8").unwrap(), b"hello");
        assert_eq!(decode_base64("aGk=").unwrap(), b"hi");
        assert_eq!(decode_base64("").unwrap(), b"");
        assert_eq!(decode_base64("-_8").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode_base64("+/8=").unwrap(), vec![0xfb, 0xff]);
        assert!(decode_base64("a").is_none());
        assert!(decode_base64("a!==").is_none());
    }

    #[test]
    fn every_request_carries_headers_and_request_metadata() {
        let md = CallMetadata::new(
            &[
                ("authorization".into(), "Bearer t".into()),
                ("X-Key-Bin".into(), "aGk=".into()),
            ],
            "inv-1".into(),
            Duration::from_secs(3),
        )
        .unwrap();
        let action = Digest::of_bytes(b"action");
        let req = md.request((), Some(&action));
        let m = req.metadata();
        assert_eq!(m.get("authorization").unwrap(), "Bearer t");
        assert_eq!(
            m.get_bin("x-key-bin").unwrap().to_bytes().unwrap().as_ref(),
            b"hi"
        );
        assert_eq!(m.get("grpc-timeout").unwrap(), "3000000u");
        let raw = m
            .get_bin(REQUEST_METADATA_HEADER)
            .unwrap()
            .to_bytes()
            .unwrap();
        let rm = reapi::RequestMetadata::decode(raw.as_ref()).unwrap();
        assert_eq!(rm.tool_details.as_ref().unwrap().tool_name, "recast");
        assert_eq!(
            rm.tool_details.unwrap().tool_version,
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(rm.tool_invocation_id, "inv-1");
        assert_eq!(rm.action_id, action.hex());
        let rm = md.request_metadata(None);
        assert_eq!(rm.action_id, "");
    }

    #[test]
    fn bad_headers_are_named() {
        for (k, v) in [("bad key", "v"), ("k", "caf\u{e9}"), ("k-bin", "!!")] {
            let err = CallMetadata::new(&[(k.into(), v.into())], String::new(), Duration::ZERO)
                .unwrap_err();
            assert!(err.to_string().contains(k), "{err}");
        }
    }
}
