//! ByteStream resource names, as the REAPI spec spells them, and the
//! instance-name rules that keep them unambiguous (pure).
//!
//! Read:  `{instance}/blobs/{hash}/{size}` or
//!        `{instance}/compressed-blobs/zstd/{hash}/{size}`
//! Write: `{instance}/uploads/{uuid}/blobs/{hash}/{size}` or
//!        `{instance}/uploads/{uuid}/compressed-blobs/zstd/{hash}/{size}`
//! With an empty instance name the leading `{instance}/` is left out.
//! Parsing these names is the server's business (`server`).

use crate::cas::Digest;

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

    fn d() -> Digest {
        Digest::of_bytes(b"hello")
    }
    const H: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    #[test]
    fn read_names() {
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
    fn write_names() {
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
}
