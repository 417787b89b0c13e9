//! What a joined room tells its owner.

use super::model::Candidate;
use super::state::{LeaveReason, Member};
use crate::id::PeerId;
use media::StreamConfig;

/// What happens in a joined room, in order.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum RoomEvent {
    /// I am in (again, after an eviction) with this session.
    Joined { session: String },
    /// Someone is here; `i_offer`: this side sends the first offer.
    MemberJoined { member: Member, i_offer: bool },
    MemberLeft {
        peer_id: PeerId,
        reason: LeaveReason,
    },
    /// Someone started or stopped sending camera, microphone or screen.
    StreamsChanged {
        peer_id: PeerId,
        streams: StreamConfig,
    },
    /// An offer to answer.
    Offer { from: PeerId, sdp: String },
    /// An answer to my offer.
    Answer { from: PeerId, sdp: String },
    /// A trickled ICE candidate.
    Candidate { from: PeerId, candidate: Candidate },
    /// The room was destroyed; the task has ended.
    RoomClosed,
    /// My presence had expired (e.g. after a suspend) and I was removed; I joined again with a
    /// new session (a `Joined` and a `MemberJoined` per member follow): rebuild connections.
    Evicted,
    /// Another client wrote my occupant record with its own session (someone forging me, or a
    /// second copy of the app with my id); I wrote mine again with a new session (a `Joined`
    /// and a `MemberJoined` per member follow): rebuild connections.
    Reclaimed,
    /// The database connection broke; signaling resumes by itself.
    SignalingLost(String),
    /// Signaling is back; nothing was lost or repeated.
    SignalingRestored,
    /// The room can no longer be followed (access was withdrawn); the task has ended.
    Failed(String),
}
