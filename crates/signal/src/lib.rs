//! Huddle's signaling over a Firebase Realtime Database (real Firebase or the embedded huddle-db).
//!
//! - [`auth`]: anonymous sign-in with Firebase Authentication (or huddle-db's same endpoints),
//!   a token source for the client that refreshes ID tokens before and when they expire.
//! - [`rtdb`]: the database client: REST operations, conditional writes, and streams that yield
//!   child events from a local cache and survive reconnects.
//! - [`room`]: the room protocol of `docs/protocol.md` on top of it: rooms, occupants with
//!   heartbeat presence, offers, answers and ICE candidates, private rooms with encrypted payloads.

#![forbid(unsafe_code)]

pub mod auth;
pub mod id;
pub mod room;
pub mod rtdb;

pub use id::{PeerId, RoomId};
pub use room::new_peer_id;
