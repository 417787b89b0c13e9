//! What the engine tells its user (the app, `huddle-peer`), in one typed stream.

pub use media::{MediaKind, StreamConfig};
use serde::Serialize;

use crate::negotiation::Link;

/// Per-peer receive statistics, reported every second.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PeerStats {
    /// Video frames decoded so far (camera and screen).
    pub frames_decoded: u64,
    /// Decoded frames per second over the last second.
    pub fps: f64,
    /// Of those, frames whose embedded stamp read back intact (only synthetic senders draw one:
    /// a picture damaged by loss fails the stamp's checksum).
    pub intact_fps: f64,
    /// Received bitrate over the last second, all media.
    pub bitrate_kbps: f64,
    /// Round-trip time, when known.
    pub rtt_ms: Option<f64>,
    /// Audio packets received so far.
    pub audio_packets: u64,
    /// Audio frames decoded from received packets and played out so far.
    pub audio_frames_played: u64,
    /// Audio frames concealed so far (a packet lost, late or undecodable): with
    /// `audio_frames_played`, how much of what was heard was made up.
    pub audio_concealed: u64,
    /// Glass-to-glass latency of the last decoded frame (from the timestamp in its pixels).
    pub latency_ms: Option<f64>,
}

/// Everything that happens in a call.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum MeshEvent {
    /// I am in the room.
    Joined {
        /// The room.
        room: String,
        /// My session.
        session: String,
    },
    /// Someone arrived.
    MemberJoined {
        /// Their id.
        peer_id: String,
        /// Display name.
        name: String,
        /// What they send.
        streams: StreamConfig,
    },
    /// Someone left (or was dropped).
    MemberLeft {
        /// Their id.
        peer_id: String,
        /// Why, in words.
        reason: String,
    },
    /// Someone changed what they send.
    StreamChanged {
        /// Their id.
        peer_id: String,
        /// What they send now.
        streams: StreamConfig,
    },
    /// A remote track started.
    TrackAdded {
        /// From whom.
        peer_id: String,
        /// Which.
        kind: MediaKind,
        /// Its codec, lower case: `opus`, `vp8`, `h264` (empty when the stack did not say).
        codec: String,
    },
    /// A remote track ended.
    TrackRemoved {
        /// From whom.
        peer_id: String,
        /// Which.
        kind: MediaKind,
    },
    /// The connection to a peer changed state.
    Connection {
        /// With whom.
        peer_id: String,
        /// Its state.
        state: Link,
    },
    /// The connection to a peer lost its path and is being repaired by an ICE restart (new
    /// candidates gathered and exchanged, without leaving the room).
    IceRestart {
        /// With whom.
        peer_id: String,
    },
    /// The first frame of a remote video track was decoded.
    FirstFrame {
        /// From whom.
        peer_id: String,
        /// Which track.
        kind: MediaKind,
        /// Since I joined.
        ms_since_join: u64,
    },
    /// A remote participant started or stopped speaking (emitted on a change only, so the app
    /// can highlight the active speaker without being flooded every 20 ms).
    AudioLevel {
        /// Who.
        peer_id: String,
        /// Their audio level when the change was detected, in dBFS (-100 for silence).
        level_dbfs: f32,
        /// Whether they are speaking now.
        speaking: bool,
    },
    /// Statistics for one peer.
    Stats {
        /// Whose.
        peer_id: String,
        /// The figures.
        stats: PeerStats,
    },
    /// The room was destroyed.
    RoomClosed,
    /// The signaling database cannot be reached; the call goes on peer to peer and signaling
    /// resumes by itself (no one can join or renegotiate meanwhile).
    SignalingLost {
        /// Why, in words.
        reason: String,
    },
    /// The signaling database is reachable again.
    SignalingRestored,
    /// Something went wrong; the words are for the user.
    Error {
        /// What.
        message: String,
    },
}
