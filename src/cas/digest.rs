//! `Digest`: a SHA-256 hash plus a size, validated where it enters.
//!
//! Everything inside recast works on this checked type; wire `Digest`
//! messages are converted with [`Digest::from_proto`] at the edge, so inner
//! code never sees a short hash, upper-case hex or a negative size.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

use crate::proto::reapi;

/// A content digest: SHA-256 of the bytes and their length.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hash: [u8; 32],
    size: u64,
}

/// Why a digest from outside was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    #[error("digest hash {0:?} is not 64 lowercase hex characters")]
    BadHash(String),
    #[error("digest size {0} is negative")]
    NegativeSize(i64),
    #[error("digest {0:?} is not of the form HASH/SIZE")]
    BadForm(String),
    #[error("missing digest")]
    Missing,
}

impl Digest {
    /// The digest of zero bytes.
    pub const EMPTY: Digest = Digest {
        hash: [
            0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f,
            0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b,
            0x78, 0x52, 0xb8, 0x55,
        ],
        size: 0,
    };

    /// Checks a hash given as hex and a size as the wire carries it.
    pub fn new(hash_hex: &str, size: i64) -> Result<Digest, DigestError> {
        if size < 0 {
            return Err(DigestError::NegativeSize(size));
        }
        let bad = || DigestError::BadHash(hash_hex.to_string());
        let bytes = hash_hex.as_bytes();
        if bytes.len() != 64 {
            return Err(bad());
        }
        // Lower-case hex only, checked and decoded in one pass (every
        // digest read from an entry or the wire comes through here).
        let nibble = |b: u8| match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        };
        let mut hash = [0u8; 32];
        for (out, pair) in hash.iter_mut().zip(bytes.chunks_exact(2)) {
            match (nibble(pair[0]), nibble(pair[1])) {
                (Some(hi), Some(lo)) => *out = hi << 4 | lo,
                _ => return Err(bad()),
            }
        }
        Ok(Digest {
            hash,
            size: size as u64,
        })
    }

    pub fn from_raw(hash: [u8; 32], size: u64) -> Digest {
        Digest { hash, size }
    }

    /// The digest of a byte slice.
    pub fn of_bytes(data: &[u8]) -> Digest {
        Digest {
            hash: Sha256::digest(data).into(),
            size: data.len() as u64,
        }
    }

    /// The digest of a message's canonical encoding, and that encoding.
    pub fn of_message<M: prost::Message>(msg: &M) -> (Digest, Vec<u8>) {
        let bytes = msg.encode_to_vec();
        (Digest::of_bytes(&bytes), bytes)
    }

    pub fn hash_bytes(&self) -> &[u8; 32] {
        &self.hash
    }

    pub fn hex(&self) -> String {
        hex::encode(self.hash)
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Validates a wire digest.
    pub fn from_proto(d: &reapi::Digest) -> Result<Digest, DigestError> {
        Digest::new(&d.hash, d.size_bytes)
    }

    /// Validates an optional wire digest (proto3 message fields are optional).
    pub fn from_proto_opt(d: Option<&reapi::Digest>) -> Result<Digest, DigestError> {
        Digest::from_proto(d.ok_or(DigestError::Missing)?)
    }

    pub fn to_proto(&self) -> reapi::Digest {
        reapi::Digest {
            hash: self.hex(),
            size_bytes: self.size as i64,
        }
    }
}

impl From<Digest> for reapi::Digest {
    fn from(d: Digest) -> reapi::Digest {
        d.to_proto()
    }
}

impl From<&Digest> for reapi::Digest {
    fn from(d: &Digest) -> reapi::Digest {
        d.to_proto()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.hex(), self.size)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

/// Parses `HASH/SIZE`, the form used in resource names and on the command line.
impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Digest, DigestError> {
        let (hash, size) = s
            .split_once('/')
            .ok_or_else(|| DigestError::BadForm(s.to_string()))?;
        let size: i64 = size
            .parse()
            .map_err(|_| DigestError::BadForm(s.to_string()))?;
        Digest::new(hash, size)
    }
}

/// In JSON (manifests, indexes) a digest is its `HASH/SIZE` string.
impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_digest_is_sha256_of_nothing() {
        assert_eq!(Digest::of_bytes(b""), Digest::EMPTY);
        assert_eq!(
            Digest::EMPTY.hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn golden_digest_of_hello() {
        let d = Digest::of_bytes(b"hello");
        assert_eq!(
            d.to_string(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824/5"
        );
    }

    #[test]
    fn refuses_bad_hashes_and_sizes() {
        let good = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        assert!(Digest::new(good, 5).is_ok());
        assert_eq!(Digest::new(good, -1), Err(DigestError::NegativeSize(-1)));
        assert!(matches!(
            Digest::new(&good.to_uppercase(), 5),
            Err(DigestError::BadHash(_))
        ));
        assert!(matches!(
            Digest::new(&good[1..], 5),
            Err(DigestError::BadHash(_))
        ));
        assert!(matches!(
            Digest::new(&format!("{}g", &good[1..]), 5),
            Err(DigestError::BadHash(_))
        ));
        assert!(matches!(
            Digest::from_proto_opt(None),
            Err(DigestError::Missing)
        ));
    }

    #[test]
    fn parses_and_prints_hash_slash_size() {
        let d = Digest::of_bytes(b"abc");
        let s = d.to_string();
        assert_eq!(s.parse::<Digest>().unwrap(), d);
        assert!("nothing".parse::<Digest>().is_err());
        assert!(format!("{}/x", d.hex()).parse::<Digest>().is_err());
    }

    #[test]
    fn proto_round_trip() {
        let d = Digest::of_bytes(b"round trip");
        assert_eq!(Digest::from_proto(&d.to_proto()).unwrap(), d);
    }
}
