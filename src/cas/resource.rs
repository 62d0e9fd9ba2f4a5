//! ByteStream resource names, both ways (pure): built by the client,
//! parsed by the server, from one grammar so the two cannot drift apart.
//!
//! Read:  `{instance}/blobs/{hash}/{size}` or
//!        `{instance}/compressed-blobs/{compressor}/{hash}/{size}`
//! Write: `{instance}/uploads/{uuid}/blobs/{hash}/{size}[/{anything}]` or
//!        `{instance}/uploads/{uuid}/compressed-blobs/{compressor}/{hash}/{size}[/{anything}]`
//!
//! With an empty instance name the leading `{instance}/` is left out. The
//! instance name may contain slashes, so a name is parsed by finding the
//! first reserved segment (`blobs`, `compressed-blobs`, `uploads`) rather
//! than by position: [`validate_instance`] keeps those words out of
//! instance names, which is what keeps this unambiguous.

use crate::cas::Digest;

/// How the bytes of a resource are encoded on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Identity,
    Zstd,
}

/// A parsed read (or the blob part of a write) resource name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobResource {
    pub instance: String,
    pub digest: Digest,
    pub compression: Compression,
}

/// A parsed write resource name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadResource {
    pub instance: String,
    pub upload_id: String,
    pub digest: Digest,
    pub compression: Compression,
}

/// Why a resource name was refused; always INVALID_ARGUMENT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    #[error("resource name {0:?} has no blobs/ or compressed-blobs/ segment")]
    NoBlob(String),
    #[error("resource name {0:?} has no uploads/{{uuid}}/ segment")]
    NoUpload(String),
    #[error("resource name {name:?}: {reason}")]
    Malformed { name: String, reason: String },
}

/// Parses a ByteStream Read resource name.
pub fn parse_read(name: &str) -> Result<BlobResource, ResourceError> {
    let segs: Vec<&str> = name.split('/').collect();
    let at = segs
        .iter()
        .position(|s| *s == "blobs" || *s == "compressed-blobs")
        .ok_or_else(|| ResourceError::NoBlob(name.to_string()))?;
    let (digest, compression, used) = parse_blob(name, &segs[at..])?;
    if used != segs.len() - at {
        return Err(malformed(name, "unexpected segments after the size"));
    }
    Ok(BlobResource {
        instance: segs[..at].join("/"),
        digest,
        compression,
    })
}

/// Parses a ByteStream Write resource name; anything after the size is
/// allowed (the spec leaves it for client metadata such as a file name).
pub fn parse_write(name: &str) -> Result<UploadResource, ResourceError> {
    let segs: Vec<&str> = name.split('/').collect();
    let at = segs
        .iter()
        .position(|s| *s == "uploads")
        .ok_or_else(|| ResourceError::NoUpload(name.to_string()))?;
    let upload_id = match segs.get(at + 1) {
        Some(id) if !id.is_empty() => *id,
        _ => return Err(malformed(name, "empty upload id")),
    };
    let rest = &segs[at + 2..];
    match rest.first() {
        Some(&"blobs") | Some(&"compressed-blobs") => {}
        _ => return Err(ResourceError::NoBlob(name.to_string())),
    }
    let (digest, compression, _) = parse_blob(name, rest)?;
    Ok(UploadResource {
        instance: segs[..at].join("/"),
        upload_id: upload_id.to_string(),
        digest,
        compression,
    })
}

/// Parses `blobs/{hash}/{size}` or `compressed-blobs/{c}/{hash}/{size}` at
/// the start of `segs`; returns how many segments it used.
fn parse_blob(name: &str, segs: &[&str]) -> Result<(Digest, Compression, usize), ResourceError> {
    let (compression, at) = if segs[0] == "blobs" {
        (Compression::Identity, 1)
    } else {
        let c = match segs.get(1) {
            Some(&"zstd") => Compression::Zstd,
            Some(&"identity") => Compression::Identity,
            Some(other) => {
                return Err(malformed(
                    name,
                    &format!("unsupported compressor {other:?} (this server offers zstd)"),
                ));
            }
            None => return Err(malformed(name, "missing compressor")),
        };
        (c, 2)
    };
    let (Some(hash), Some(size)) = (segs.get(at), segs.get(at + 1)) else {
        return Err(malformed(name, "expected .../{hash}/{size}"));
    };
    let size: i64 = size
        .parse()
        .map_err(|_| malformed(name, &format!("size {size:?} is not a number")))?;
    let digest = Digest::new(hash, size).map_err(|e| malformed(name, &e.to_string()))?;
    Ok((digest, compression, at + 2))
}

fn malformed(name: &str, reason: &str) -> ResourceError {
    ResourceError::Malformed {
        name: name.to_string(),
        reason: reason.to_string(),
    }
}

/// Path segments the spec reserves: an instance name containing one would
/// make resource names ambiguous.
const RESERVED: [&str; 7] = [
    "blobs",
    "uploads",
    "actions",
    "actionResults",
    "operations",
    "capabilities",
    "compressed-blobs",
];

fn prefix(instance: &str) -> String {
    if instance.is_empty() {
        String::new()
    } else {
        format!("{instance}/")
    }
}

fn blob_part(digest: &Digest, compressed: bool) -> String {
    let kind = if compressed {
        "compressed-blobs/zstd"
    } else {
        "blobs"
    };
    format!("{kind}/{}/{}", digest.hex(), digest.size())
}

/// Resource name for a ByteStream Read.
pub fn read_name(instance: &str, digest: &Digest, compressed: bool) -> String {
    format!("{}{}", prefix(instance), blob_part(digest, compressed))
}

/// Resource name for a ByteStream Write; `upload_id` is unique per attempt.
pub fn write_name(instance: &str, upload_id: &str, digest: &Digest, compressed: bool) -> String {
    format!(
        "{}uploads/{upload_id}/{}",
        prefix(instance),
        blob_part(digest, compressed)
    )
}

/// Checks an instance name: empty, or `/`-separated non-empty segments none
/// of which is a reserved word.
pub fn validate_instance(instance: &str) -> Result<(), String> {
    if instance.is_empty() {
        return Ok(());
    }
    for seg in instance.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." {
            return Err(format!(
                "instance name {instance:?} has an empty, '.' or '..' path segment"
            ));
        }
        if RESERVED.contains(&seg) {
            return Err(format!(
                "instance name {instance:?} contains the reserved segment {seg:?}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    fn d() -> Digest {
        Digest::new(H, 5).unwrap()
    }

    #[test]
    fn read_names_with_any_instance() {
        let r = parse_read(&format!("blobs/{H}/5")).unwrap();
        assert_eq!(r.instance, "");
        assert_eq!(r.digest, d());
        assert_eq!(r.compression, Compression::Identity);

        let r = parse_read(&format!("main/blobs/{H}/5")).unwrap();
        assert_eq!(r.instance, "main");

        let r = parse_read(&format!("a/b/c/compressed-blobs/zstd/{H}/5")).unwrap();
        assert_eq!(r.instance, "a/b/c");
        assert_eq!(r.compression, Compression::Zstd);
    }

    #[test]
    fn bad_read_names() {
        assert!(matches!(
            parse_read("main/x/y"),
            Err(ResourceError::NoBlob(_))
        ));
        assert!(parse_read(&format!("blobs/{H}")).is_err());
        assert!(parse_read(&format!("blobs/{H}/five")).is_err());
        assert!(parse_read(&format!("blobs/{H}/-1")).is_err());
        assert!(parse_read(&format!("blobs/{}/5", H.to_uppercase())).is_err());
        assert!(parse_read(&format!("blobs/{H}/5/extra")).is_err());
        let e = parse_read(&format!("compressed-blobs/brotli/{H}/5")).unwrap_err();
        assert!(e.to_string().contains("brotli"), "{e}");
    }

    #[test]
    fn parse_write_names() {
        let w = parse_write(&format!("uploads/u-1/blobs/{H}/5")).unwrap();
        assert_eq!(w.instance, "");
        assert_eq!(w.upload_id, "u-1");
        assert_eq!(w.digest, d());
        assert_eq!(w.compression, Compression::Identity);

        let w = parse_write(&format!("x/y/uploads/u-2/compressed-blobs/zstd/{H}/5")).unwrap();
        assert_eq!(w.instance, "x/y");
        assert_eq!(w.compression, Compression::Zstd);

        // Trailing metadata after the size is the client's business.
        let w = parse_write(&format!("i/uploads/u/blobs/{H}/5/some/file.o")).unwrap();
        assert_eq!(w.instance, "i");
        assert_eq!(w.digest, d());
    }

    #[test]
    fn bad_write_names() {
        assert!(matches!(
            parse_write(&format!("blobs/{H}/5")),
            Err(ResourceError::NoUpload(_))
        ));
        assert!(parse_write(&format!("uploads//blobs/{H}/5")).is_err());
        assert!(parse_write("uploads/u").is_err());
        assert!(parse_write(&format!("uploads/u/other/{H}/5")).is_err());
        assert!(parse_write(&format!("uploads/u/blobs/{H}")).is_err());
    }

    #[test]
    fn build_read_names() {
        assert_eq!(read_name("", &d(), false), format!("blobs/{H}/5"));
        assert_eq!(read_name("main", &d(), false), format!("main/blobs/{H}/5"));
        assert_eq!(
            read_name("a/b", &d(), true),
            format!("a/b/compressed-blobs/zstd/{H}/5")
        );
        assert_eq!(
            read_name("", &d(), true),
            format!("compressed-blobs/zstd/{H}/5")
        );
    }

    #[test]
    fn build_write_names() {
        assert_eq!(
            write_name("", "u-1", &d(), false),
            format!("uploads/u-1/blobs/{H}/5")
        );
        assert_eq!(
            write_name("x/y/z", "u-1", &d(), true),
            format!("x/y/z/uploads/u-1/compressed-blobs/zstd/{H}/5")
        );
    }

    #[test]
    fn instance_names() {
        assert!(validate_instance("").is_ok());
        assert!(validate_instance("main").is_ok());
        assert!(validate_instance("a/b-c/d_e").is_ok());
        assert!(validate_instance("/a").is_err());
        assert!(validate_instance("a/").is_err());
        assert!(validate_instance("a//b").is_err());
        assert!(validate_instance("a/../b").is_err());
        assert!(validate_instance("x/blobs").is_err());
        assert!(validate_instance("uploads").is_err());
        assert!(validate_instance("compressed-blobs/y").is_err());
    }

    #[test]
    fn built_names_parse_back() {
        for instance in ["", "main", "a/b/c"] {
            for compressed in [false, true] {
                let want = if compressed {
                    Compression::Zstd
                } else {
                    Compression::Identity
                };
                let r = parse_read(&read_name(instance, &d(), compressed)).unwrap();
                assert_eq!(
                    (r.instance.as_str(), r.digest, r.compression),
                    (instance, d(), want)
                );
                let w = parse_write(&write_name(instance, "u-9", &d(), compressed)).unwrap();
                assert_eq!(
                    (
                        w.instance.as_str(),
                        w.upload_id.as_str(),
                        w.digest,
                        w.compression
                    ),
                    (instance, "u-9", d(), want)
                );
            }
        }
    }
}
