//! The one harness for tests and benchmarks that drive Huddle's processes: a `huddle-db`
//! ([`Db`], or in process with the `rtdb` feature), `huddle-peer`s whose JSON event lines can be
//! waited for ([`Peer`], [`Events`]), a virtual X display ([`Xvfb`]), and with the `browser`
//! feature a browser, Chromium or Firefox ([`browser::Browser`]); a test network of namespaces
//! ([`netns`]); Firebase's Auth emulator ([`AuthEmulator`]).
//!
//! Two rules hold everywhere: every wait has a bound, and when it runs out the error says what
//! was awaited and what was seen instead; every process started here is killed (with whatever
//! it started) when its value is dropped, so a failing test leaves nothing running.
//!
//! Events stay `serde_json::Value`s matched by predicates: the harness knows how to read JSON
//! lines, not what huddle-peer's events are, so it does not change when they do.

#![forbid(unsafe_code)]

mod auth_emulator;
#[cfg(feature = "browser")]
pub mod browser;
mod db;
#[cfg(feature = "rtdb")]
mod db_in_process;
mod error;
mod events;
pub mod netns;
mod peer;
pub mod process;
mod xvfb;

pub use auth_emulator::{AuthEmulator, DEMO_PROJECT};
pub use db::Db;
#[cfg(feature = "rtdb")]
pub use db_in_process::{
    in_process_db, in_process_db_in, in_process_db_with, rules_with_presence_bound, NsDb,
    TEST_PRESENCE_BOUND,
};
pub use error::Error;
pub use events::{poll, Events};
pub use peer::{
    as_test_user, huddle_peer, peer_stderr, test_peer, test_peer_id, Peer, DEFAULT_BOUND,
    TEST_SECRET,
};
pub use process::Proc;
pub use xvfb::Xvfb;
