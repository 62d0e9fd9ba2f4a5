//! Missing blobs as REAPI reports them: a FAILED_PRECONDITION
//! `google.rpc.Status` whose `PreconditionFailure` holds one MISSING
//! violation per blob, its subject `blobs/{hash}/{size}`. The server and
//! the worker build it here; the client reads it back into digests
//! (`remote::execution`) to upload them and retry.

use prost::Message as _;

use super::Digest;
use crate::proto::rpc;

/// `Any.type_url` of the `PreconditionFailure` detail.
pub const PRECONDITION_FAILURE_URL: &str = "type.googleapis.com/google.rpc.PreconditionFailure";

/// The REAPI spelling of a missing blob in a `PreconditionFailure`.
pub fn subject(d: &Digest) -> String {
    format!("blobs/{}/{}", d.hex(), d.size())
}

/// "N blob(s) missing from the CAS: " and the first five subjects.
pub fn describe(ds: &[Digest]) -> String {
    let shown: Vec<String> = ds.iter().take(5).map(subject).collect();
    let more = if ds.len() > 5 { ", …" } else { "" };
    format!(
        "{} blob(s) missing from the CAS: {}{more}",
        ds.len(),
        shown.join(", ")
    )
}

/// The status naming `ds` missing, so that a client uploads them.
pub fn status(ds: &[Digest]) -> rpc::Status {
    let pf = rpc::PreconditionFailure {
        violations: ds
            .iter()
            .map(|d| rpc::precondition_failure::Violation {
                r#type: "MISSING".into(),
                subject: subject(d),
                description: String::new(),
            })
            .collect(),
    };
    rpc::Status {
        code: rpc::Code::FailedPrecondition as i32,
        message: describe(ds),
        details: vec![prost_types::Any {
            type_url: PRECONDITION_FAILURE_URL.into(),
            value: pf.encode_to_vec(),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_blobs_status_names_each_blob() {
        let ds: Vec<Digest> = (0..7u8).map(|i| Digest::of_bytes(&[i])).collect();
        let s = status(&ds);
        assert_eq!(s.code, 9, "FAILED_PRECONDITION");
        assert!(
            s.message
                .starts_with("7 blob(s) missing from the CAS: blobs/")
        );
        assert!(s.message.ends_with(", …"), "{}", s.message);
        let pf = rpc::PreconditionFailure::decode(s.details[0].value.as_slice()).unwrap();
        assert_eq!(pf.violations.len(), 7);
        assert_eq!(pf.violations[6].subject, subject(&ds[6]));
    }
}
