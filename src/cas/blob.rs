//! A blob to upload: its digest and where its bytes are, in memory or in a
//! file that hashed to it. Reading and sending them is the client's job
//! (`remote`); file sources (`toolchain::FileSource`) say where theirs are.

use std::path::PathBuf;

use super::Digest;

/// Where an upload's bytes come from.
#[derive(Clone, Debug)]
pub enum BlobSource {
    Bytes(Vec<u8>),
    /// A file whose content hashed to the blob's digest.
    File(PathBuf),
}

/// A blob to upload: its digest and where to read it.
#[derive(Clone, Debug)]
pub struct Blob {
    pub digest: Digest,
    pub source: BlobSource,
}

impl Blob {
    pub fn from_bytes(data: Vec<u8>) -> Blob {
        Blob {
            digest: Digest::of_bytes(&data),
            source: BlobSource::Bytes(data),
        }
    }

    /// A message, encoded as the digest sees it.
    pub fn from_message<M: prost::Message>(msg: &M) -> Blob {
        let (digest, bytes) = Digest::of_message(msg);
        Blob {
            digest,
            source: BlobSource::Bytes(bytes),
        }
    }

    pub fn file(digest: Digest, path: impl Into<PathBuf>) -> Blob {
        Blob {
            digest,
            source: BlobSource::File(path.into()),
        }
    }
}
