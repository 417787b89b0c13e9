//! huddle-db: a Firebase-Realtime-Database-compatible server (REST, Server-Sent Events, and the
//! SDKs' realtime WebSocket protocol) that keeps its data durably on disk.
//!
//! It is Huddle's default signaling backend: the app starts it in-process, `huddle-db` runs it
//! standalone to host rooms for a LAN, and every test of the signaling stack runs against it.
//! The protocol it speaks is described in `docs/rtdb.md`; where it differs from real
//! Firebase, `docs/decisions.md` says so.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let server = rtdb::Server::start(rtdb::ServerConfig::new("127.0.0.1:0".parse()?, "data".into())).await?;
//! println!("listening on {}", server.url());
//! server.shutdown().await;
//! # Ok(()) }
//! ```

// No unsafe code but one call: `db.rs` asks glibc to hand freed memory back (malloc_trim), which
// no safe crate wraps; it is allowed there alone.
#![deny(unsafe_code)]

#[cfg(feature = "server")]
pub mod access;
#[cfg(feature = "server")]
pub mod auth;
#[cfg(feature = "server")]
pub mod db;
pub mod error;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "server")]
pub mod hub;
#[cfg(feature = "server")]
pub mod identity;
#[cfg(feature = "server")]
pub mod limits;
pub mod path;
pub mod pushid;
pub mod query;
#[cfg(feature = "server")]
pub mod realtime;
pub mod rules;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod store;
#[cfg(feature = "server")]
pub mod tls;
pub mod tree;
#[cfg(feature = "server")]
pub mod web;
pub mod wire;

#[cfg(feature = "server")]
pub use db::{Db, DbConfig, WriteOp, WriteResult};
pub use error::DbError;
pub use path::DbPath;
#[cfg(feature = "server")]
pub use server::{Server, ServerConfig};
