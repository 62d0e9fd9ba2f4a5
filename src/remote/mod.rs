//! gRPC client for REAPI servers.
