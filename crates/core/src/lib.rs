//! The pure logic of tiktok-edge. Nothing here touches the Workers runtime: every function is
//! plain Rust over plain types, tested on the host with `cargo test`. The Worker crate at the
//! repository root does the I/O and calls into these modules.

pub mod admin;
pub mod auth;
pub mod b64;
pub mod collect;
pub mod config;
pub mod consent;
pub mod cookies;
pub mod cors;
pub mod edge;
pub mod error;
pub mod hash;
pub mod health;
pub mod json;
pub mod keys;
pub mod limits;
pub mod log;
pub mod money;
pub mod pixels;
pub mod privacy;
pub mod proof;
pub mod queue;
pub mod refusals;
pub mod routes;
pub mod secret;
pub mod session;
pub mod shard;
pub mod shopify;
pub mod snippet;
pub mod text;
pub mod tiktok;
pub mod urls;
pub mod vec_map;

pub use error::Error;
