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

pub use engine::{Mesh, MeshConfig};
pub use event::{MeshEvent, PeerStats};
pub use media::codec::VideoCodec;
pub use media::source::{AudioSink, SharedAudioSink, Sources};
pub use media::{MediaKind, StreamConfig};
pub use pc::{IceServer, NetConfig};

/// Errors of the engine, in words a user understands.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// Signaling failed (room missing, wrong secret, database unreachable...).
    #[error(transparent)]
    Signal(#[from] signal::room::SignalError),
    /// A device or codec failed.
    #[error("media: {0}")]
    Media(String),
    /// The WebRTC stack refused something.
    #[error("connection: {0}")]
    WebRtc(String),
    /// The call has ended.
    #[error("the call has ended")]
    Closed,
}

impl MeshError {
    fn webrtc(e: impl std::fmt::Display) -> Self {
        MeshError::WebRtc(e.to_string())
    }
}

impl From<media::source::MediaError> for MeshError {
    fn from(e: media::source::MediaError) -> Self {
        MeshError::Media(e.to_string())
    }
}
