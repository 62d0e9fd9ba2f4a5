//! Generated protobuf / gRPC bindings (see `build.rs` and `proto/`).
//!
//! The module tree mirrors the protobuf package names exactly, because the
//! generated code refers to other packages through relative `super::` paths.
//! Well-known types (`google.protobuf.*`) map to `prost_types`. Each generated
//! module allows the lints that machine-generated code does not satisfy.

pub mod build {
    pub mod bazel {
        pub mod remote {
            pub mod execution {
                /// `build.bazel.remote.execution.v2` (REAPI v2).
                pub mod v2 {
                    #![allow(
                        clippy::all,
                        clippy::pedantic,
                        missing_docs,
                        rustdoc::broken_intra_doc_links,
                        rustdoc::bare_urls,
                        rustdoc::invalid_html_tags
                    )]
                    tonic::include_proto!("build.bazel.remote.execution.v2");
                }
            }
        }

        /// `build.bazel.semver`.
        pub mod semver {
            #![allow(clippy::all, clippy::pedantic, missing_docs)]
            tonic::include_proto!("build.bazel.semver");
        }
    }
}

pub mod google {
    /// `google.bytestream`.
    pub mod bytestream {
        #![allow(
            clippy::all,
            clippy::pedantic,
            missing_docs,
            rustdoc::broken_intra_doc_links,
            rustdoc::bare_urls
        )]
        tonic::include_proto!("google.bytestream");
    }

    /// `google.longrunning`.
    pub mod longrunning {
        #![allow(
            clippy::all,
            clippy::pedantic,
            missing_docs,
            rustdoc::broken_intra_doc_links,
            rustdoc::bare_urls
        )]
        tonic::include_proto!("google.longrunning");
    }

    /// `google.rpc` (`Status`, `Code`).
    pub mod rpc {
        #![allow(clippy::all, clippy::pedantic, missing_docs)]
        tonic::include_proto!("google.rpc");
    }

    pub mod devtools {
        pub mod remoteworkers {
            /// `google.devtools.remoteworkers.v1test2` (Remote Workers API /
            /// Bots service, as used by BuildGrid).
            pub mod v1test2 {
                #![allow(
                    clippy::all,
                    clippy::pedantic,
                    missing_docs,
                    rustdoc::broken_intra_doc_links,
                    rustdoc::bare_urls
                )]
                tonic::include_proto!("google.devtools.remoteworkers.v1test2");
            }
        }
    }
}

/// Short aliases for the packages used throughout the crate.
pub use build::bazel::remote::execution::v2 as reapi;
pub use build::bazel::semver;
pub use google::bytestream;
pub use google::devtools::remoteworkers::v1test2 as rwapi;
pub use google::longrunning;
pub use google::rpc;
