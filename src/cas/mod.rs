//! Content-addressed storage core: digests, hashing, Merkle trees, and the
//! status that names missing blobs.
//!
//! Pure: no tokio, tonic or processes. Blob stores live in `store`, which the
//! server and the runner share.

mod digest;
pub mod hash;
pub mod missing;
pub mod resource;
pub mod store;
pub mod tree;

pub use digest::{Digest, DigestError};
