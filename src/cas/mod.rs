//! Content-addressed storage core: digests, hashing, Merkle trees, blobs
//! to upload, and the status that names missing ones.
//!
//! Pure: no tokio, tonic or processes. Blob stores live in `store`, which the
//! server and the runner share.

pub mod blob;
mod digest;
pub mod hash;
pub mod missing;
pub mod resource;
pub mod store;
pub mod tree;

pub use digest::{Digest, DigestError};
