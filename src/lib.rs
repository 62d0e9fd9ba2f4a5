//! recast: compiler invocations on any REAPI v2 server.
//!
//! The binary (`src/main.rs`) only calls [`cli::main`]; everything else is
//! a library so integration tests, benchmarks and fuzz targets can reach the
//! pure layers directly. See ARCHITECTURE.md for the map.

pub mod action;
pub mod arena;
pub mod cas;
pub mod cli;
pub mod config;
pub mod front;
pub mod fsutil;
pub mod invocation;
pub mod lock;
pub mod platform;
pub mod proto;
pub mod remote;
pub mod runner;
pub mod server;
pub mod session;
pub mod toolchain;
pub mod worker;
pub mod wrap;
