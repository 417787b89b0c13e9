//! What the engine tells its user (the app, `huddle-peer`), in one typed stream.
//!
//! The events serialize in the one JSON dialect every layer speaks: `{"type": "<snake_case
//! name>", ...}`, the remote participant in `peer`, states and reasons as words.
//! `huddle-peer` prints them as they are, one a line (see docs/huddle-peer.md).

pub use media::{MediaKind, StreamConfig};
use rtc::peer_connection::transport::RTCIceCandidateType;
use serde::Serialize;
pub use signal::room::LeaveReason;
use signal::{PeerId, RoomId};

pub use crate::negotiation::{GiveUpReason, Link};

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
    /// How the connection's media travels, once ICE has chosen a path.
    pub path: Option<Path>,
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

/// The kind of path a connection's selected ICE candidate pair takes, as a participants panel
/// shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Path {
    /// Host to host: the same network, no NAT between.
    Direct,
    /// Straight between the two, through NAT, on addresses STUN (or the connectivity checks)
    /// found: a server-reflexive or peer-reflexive candidate on either side.
    Stun,
    /// Through a TURN relay (either side's relay candidate).
    Relay,
}

impl Path {
    /// From the types of the selected pair's two candidates.
    pub fn of(local: RTCIceCandidateType, remote: RTCIceCandidateType) -> Option<Path> {
        use RTCIceCandidateType::*;
        match (local, remote) {
            (Relay, _) | (_, Relay) => Some(Path::Relay),
            (Srflx | Prflx, _) | (_, Srflx | Prflx) => Some(Path::Stun),
            (Host, Host) => Some(Path::Direct),
            _ => None,
        }
    }

    fn code(self) -> u8 {
        self as u8 + 1
    }

    /// The inverse of the code kept in an atomic (0: none yet).
    pub(crate) fn from_code(code: u8) -> Option<Path> {
        [Path::Direct, Path::Stun, Path::Relay]
            .into_iter()
            .find(|p| p.code() == code)
    }

    pub(crate) fn to_code(path: Option<Path>) -> u8 {
        path.map_or(0, Path::code)
    }
}

/// Everything that happens in a call.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum MeshEvent {
    /// I am in the room.
    Joined {
        room: RoomId,
        /// This join's session id (a rejoin gets a new one).
        session: String,
    },
    MemberJoined {
        #[serde(rename = "peer")]
        peer_id: PeerId,
        name: String,
        streams: StreamConfig,
    },
    /// Someone left (or was dropped).
    MemberLeft {
        #[serde(rename = "peer")]
        peer_id: PeerId,
        reason: LeaveReason,
    },
    /// Someone changed what they send.
    StreamsChanged {
        #[serde(rename = "peer")]
        peer_id: PeerId,
        streams: StreamConfig,
    },
    /// A remote track started.
    TrackAdded {
        #[serde(rename = "peer")]
        peer_id: PeerId,
        kind: MediaKind,
        /// Its codec, lower case: `opus`, `vp8`, `h264` (empty when the stack did not say).
        codec: String,
    },
    /// A remote track ended.
    TrackRemoved {
        #[serde(rename = "peer")]
        peer_id: PeerId,
        kind: MediaKind,
    },
    /// The connection to a peer changed state.
    Connection {
        #[serde(rename = "peer")]
        peer_id: PeerId,
        state: Link,
    },
    /// The connection to a peer lost its path and is being repaired by an ICE restart (new
    /// candidates gathered and exchanged, without leaving the room).
    IceRestart {
        #[serde(rename = "peer")]
        peer_id: PeerId,
    },
    /// A configured TURN server cannot be used (checked when the call starts): it refused the
    /// credentials, refused to relay, did not answer, or its address is unusable. Connections
    /// that need a relay will not get one from it.
    IceServerProblem {
        /// The server's URL, as configured.
        url: String,
        /// What is wrong, in words (it names the server).
        message: String,
    },
    /// I gave up connecting to a peer (repair ran out of time): the connection is closed, though
    /// the peer may still be in the room.
    PeerUnreachable {
        #[serde(rename = "peer")]
        peer_id: PeerId,
        reason: GiveUpReason,
    },
    /// The first frame of a remote video track was decoded.
    FirstFrame {
        #[serde(rename = "peer")]
        peer_id: PeerId,
        kind: MediaKind,
        ms_since_join: u64,
    },
    /// A remote participant started or stopped speaking (emitted on a change only, so the app
    /// can highlight the active speaker without being flooded every 20 ms).
    AudioLevel {
        #[serde(rename = "peer")]
        peer_id: PeerId,
        /// Their audio level when the change was detected, in dBFS (-100 for silence).
        #[serde(serialize_with = "tenth_of_a_db")]
        level_dbfs: f32,
        speaking: bool,
    },
    /// Statistics for one peer.
    Stats {
        #[serde(rename = "peer")]
        peer_id: PeerId,
        #[serde(flatten)]
        stats: PeerStats,
    },
    /// The room was destroyed.
    RoomClosed,
    /// The signaling database cannot be reached; the call goes on peer to peer and signaling
    /// resumes by itself (no one can join or renegotiate meanwhile).
    SignalingLost {
        /// Why, in the words of the error that cut it off.
        reason: String,
    },
    /// The signaling database is reachable again.
    SignalingRestored,
    /// Something went wrong; the words are for the user.
    Error { message: String },
}

/// A tenth of a dB is all a level meter shows; the rest is f32 noise in the JSON.
fn tenth_of_a_db<S: serde::Serializer>(level: &f32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((f64::from(*level) * 10.0).round() / 10.0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is the failure report
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn to_json(ev: MeshEvent) -> Value {
        serde_json::to_value(ev).unwrap()
    }

    /// The dialect huddle-peer prints and its readers (tests, benches, scripts) parse.
    #[test]
    fn events_serialize_in_the_one_dialect() {
        let streams = StreamConfig {
            audio: true,
            video: false,
            screen: false,
        };
        assert_eq!(
            to_json(MeshEvent::MemberJoined {
                peer_id: "p".into(),
                name: "Ann".into(),
                streams,
            }),
            json!({"type": "member_joined", "peer": "p", "name": "Ann",
                   "streams": {"audio": true, "video": false, "screen": false}})
        );
        assert_eq!(
            to_json(MeshEvent::MemberLeft {
                peer_id: "p".into(),
                reason: LeaveReason::Expired,
            }),
            json!({"type": "member_left", "peer": "p", "reason": "expired"})
        );
        assert_eq!(
            to_json(MeshEvent::StreamsChanged {
                peer_id: "p".into(),
                streams,
            })["type"],
            "streams_changed"
        );
        assert_eq!(
            to_json(MeshEvent::TrackAdded {
                peer_id: "p".into(),
                kind: MediaKind::Screen,
                codec: "vp8".into(),
            }),
            json!({"type": "track_added", "peer": "p", "kind": "screen", "codec": "vp8"})
        );
        assert_eq!(
            to_json(MeshEvent::Connection {
                peer_id: "p".into(),
                state: Link::Disconnected,
            }),
            json!({"type": "connection", "peer": "p", "state": "disconnected"})
        );
        assert_eq!(
            to_json(MeshEvent::PeerUnreachable {
                peer_id: "p".into(),
                reason: GiveUpReason::NoRoute,
            }),
            json!({"type": "peer_unreachable", "peer": "p", "reason": "no_route"})
        );
        assert_eq!(
            to_json(MeshEvent::AudioLevel {
                peer_id: "p".into(),
                level_dbfs: -23.456,
                speaking: true,
            }),
            json!({"type": "audio_level", "peer": "p", "level_dbfs": -23.5, "speaking": true})
        );
        assert_eq!(
            to_json(MeshEvent::RoomClosed),
            json!({"type": "room_closed"})
        );
    }

    #[test]
    fn stats_are_flat_beside_the_peer() {
        let v = to_json(MeshEvent::Stats {
            peer_id: "p".into(),
            stats: PeerStats {
                fps: 29.5,
                rtt_ms: Some(3.0),
                path: Some(Path::Relay),
                ..PeerStats::default()
            },
        });
        assert_eq!(v["type"], "stats");
        assert_eq!(v["peer"], "p");
        assert_eq!(v["fps"], 29.5);
        assert_eq!(v["rtt_ms"], 3.0);
        assert_eq!(v["latency_ms"], Value::Null);
        assert_eq!(v["path"], "relay");
        assert!(v.get("stats").is_none(), "{v}");
    }

    #[test]
    fn a_path_is_named_by_its_most_indirect_candidate() {
        use RTCIceCandidateType::*;
        assert_eq!(Path::of(Host, Host), Some(Path::Direct));
        assert_eq!(Path::of(Srflx, Host), Some(Path::Stun));
        assert_eq!(Path::of(Host, Prflx), Some(Path::Stun));
        assert_eq!(Path::of(Srflx, Relay), Some(Path::Relay));
        assert_eq!(Path::of(Relay, Host), Some(Path::Relay));
        assert_eq!(Path::of(Unspecified, Host), None);
        for p in [
            None,
            Some(Path::Direct),
            Some(Path::Stun),
            Some(Path::Relay),
        ] {
            assert_eq!(Path::from_code(Path::to_code(p)), p);
        }
    }

    #[test]
    fn words_for_states_and_reasons_are_their_json() {
        use Link::*;
        for link in [New, Connecting, Connected, Disconnected, Failed] {
            assert_eq!(serde_json::to_value(link).unwrap(), link.as_str());
        }
        for reason in [
            LeaveReason::Left,
            LeaveReason::Expired,
            LeaveReason::Rejoined,
        ] {
            assert_eq!(serde_json::to_value(reason).unwrap(), reason.as_str());
        }
    }
}
