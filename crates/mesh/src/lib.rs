//! Huddle's room engine: every participant holds one WebRTC connection (webrtc-rs 0.21) to every
//! other, sends its camera, microphone and screen to all of them — each source encoded once —
//! and receives theirs.
//!
//! - [`negotiation`]: the pure state machine for one peer (perfect negotiation, repair);
//! - [`engine`]: the room task (membership, local streams, stats) and [`Mesh`], its handle;
//! - `peer`: one task per remote peer owning its PeerConnection; `local`/`remote`: media in
//!   and out;
//! - [`playout`]: the call's single audio playout clock (jitter buffers, decoding, mixing,
//!   who is speaking).

#![forbid(unsafe_code)]

mod answer;
mod candidate;
mod codecs;
pub mod congestion;
pub mod continuity;
pub mod engine;
pub mod event;
pub mod keyframe;
mod local;
pub mod negotiation;
pub mod pc;
mod peer;
pub mod playout;
pub mod remote;
pub mod retransmit;
pub mod turn_check;

pub use engine::{Mesh, MeshConfig};
pub use event::{MeshEvent, Path, PeerStats};
pub use pc::{IceServer, NetConfig};

use media::MediaKind;

/// Errors of the engine, each saying what failed. Its `Display` is a whole sentence a user can
/// be shown (the app shows only the top message), and the cause stays reachable through
/// `source()`.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// Signaling failed (room missing, wrong secret, database unreachable...).
    #[error(transparent)]
    Signal(#[from] signal::room::SignalError),
    /// A camera, microphone or screen could not be opened: another device may do.
    #[error("media: {0}")]
    Media(#[from] media::source::MediaError),
    /// A codec could not be opened (the Opus decoder of a new audio stream).
    #[error("media: {0}")]
    Codec(#[from] media::codec::CodecError),
    /// The thread that encodes a local stream could not be started.
    #[error("media: cannot start the {kind} encoder thread: {source}")]
    EncoderThread {
        kind: MediaKind,
        #[source]
        source: std::io::Error,
    },
    /// The WebRTC stack refused `what` the engine asked of it.
    #[error("connection: {what}: {source}")]
    WebRtc {
        what: &'static str,
        #[source]
        source: webrtc::error::Error,
    },
    /// The call has ended.
    #[error("the call has ended")]
    Closed,
}

impl MeshError {
    /// For `map_err`: the WebRTC stack refused `what`.
    fn webrtc(what: &'static str) -> impl FnOnce(webrtc::error::Error) -> Self {
        move |source| MeshError::WebRtc { what, source }
    }

    /// For `map_err`: the encoder thread of `kind` could not be started.
    fn encoder_thread(kind: MediaKind) -> impl FnOnce(std::io::Error) -> Self {
        move |source| MeshError::EncoderThread { kind, source }
    }
}
