//! Everything the backend tells the UI, in one typed stream: the names of all events live in
//! this one enum (serialized as `{"type": "<snake_case name>", ...}`).

use media::MediaKind;
use media::StreamConfig;
use mesh::event::GiveUpReason;
use mesh::{MeshEvent, PeerStats};
use serde::Serialize;
use signal::{PeerId, RoomId};

use crate::settings::Settings;

/// A room as the room list shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RoomView {
    pub id: RoomId,
    pub name: String,
    /// Private (needs a secret).
    pub secured: bool,
    /// People in it now; unknown for private rooms (their occupants are stored under a name
    /// only the secret gives).
    pub occupants: Option<usize>,
    /// I created it (so I may destroy it).
    pub mine: bool,
}

/// One event for the UI.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum UiEvent {
    /// The settings now (after load or save).
    Settings {
        settings: Settings,
    },
    /// The database: connected or not, and where.
    Database {
        connected: bool,
        /// The URL the app talks to.
        url: String,
        /// The URL others on the LAN can use, when hosting.
        lan_url: Option<String>,
        /// What went wrong, in words.
        message: Option<String>,
    },
    /// The room list changed (the whole list, sorted by name).
    Rooms {
        rooms: Vec<RoomView>,
    },
    /// I am in a room.
    Joined {
        room: RoomId,
        name: String,
        /// My peer id (my tile's key is `self`).
        me: PeerId,
        /// What I send.
        streams: StreamConfig,
    },
    /// I left (or was removed).
    Left {
        /// The room's id and name, as `joined` gave them.
        room: RoomId,
        name: String,
        /// Why, in words.
        reason: String,
    },
    /// What I send changed (from the UI, a shortcut or the tray).
    LocalStreams {
        streams: StreamConfig,
    },
    MemberJoined {
        peer: PeerId,
        name: String,
        /// What they send.
        streams: StreamConfig,
    },
    MemberLeft {
        peer: PeerId,
        reason: String,
    },
    /// Someone started or stopped sending something.
    StreamsChanged {
        peer: PeerId,
        streams: StreamConfig,
    },
    /// A remote track started or ended.
    Track {
        peer: PeerId,
        kind: MediaKind,
        /// Started (true) or ended.
        added: bool,
        /// Its codec (`vp8`, `h264`, `opus`) when it started.
        #[serde(skip_serializing_if = "Option::is_none")]
        codec: Option<String>,
    },
    /// Connection state with a peer (`new`, `connecting`, `connected`, `disconnected`, `failed`).
    Connection {
        peer: PeerId,
        state: String,
    },
    /// First picture from a peer.
    FirstFrame {
        peer: PeerId,
        /// Camera or screen.
        kind: MediaKind,
        /// Since I joined.
        ms_since_join: u64,
    },
    /// Someone started or stopped speaking (`self` for me).
    Speaking {
        peer: PeerId,
        speaking: bool,
        /// Level in dBFS.
        level_dbfs: f32,
    },
    /// Receive statistics for a peer, every second.
    Stats {
        peer: PeerId,
        stats: PeerStats,
    },
    /// The call's signaling connection was lost or came back.
    Signaling {
        connected: bool,
        message: Option<String>,
    },
    /// An invitation arrived (deep link): the UI shows the pre-join screen for it.
    Invite {
        room: RoomId,
        /// Its database, when the link names one.
        db: Option<String>,
    },
    /// Something went wrong; `hint` suggests what to do.
    Error {
        message: String,
        hint: Option<String>,
    },
    /// Something worth knowing that is not a failure (shown calmly, not in red).
    Notice {
        message: String,
        hint: Option<String>,
    },
    /// The pre-join microphone meter: the loudest level of the last 100 ms, in dBFS.
    MicLevel {
        dbfs: f32,
    },
    /// The window was closed during a call: the page asks whether to leave and quit or keep
    /// the call going from the tray.
    CloseAsked,
}

impl UiEvent {
    /// An error with an optional hint.
    pub fn error(message: impl Into<String>, hint: Option<&str>) -> Self {
        UiEvent::Error {
            message: message.into(),
            hint: hint.map(str::to_owned),
        }
    }

    /// A notice with an optional hint.
    pub fn notice(message: impl Into<String>, hint: Option<&str>) -> Self {
        UiEvent::Notice {
            message: message.into(),
            hint: hint.map(str::to_owned),
        }
    }

    /// The UI's form of an engine event (`None` for what the UI does not show).
    pub fn from_mesh(ev: MeshEvent) -> Option<Self> {
        Some(match ev {
            MeshEvent::MemberJoined {
                peer_id,
                name,
                streams,
            } => UiEvent::MemberJoined {
                peer: peer_id,
                name,
                streams,
            },
            MeshEvent::MemberLeft { peer_id, reason } => UiEvent::MemberLeft {
                peer: peer_id,
                reason: reason.as_str().into(),
            },
            MeshEvent::StreamsChanged { peer_id, streams } => UiEvent::StreamsChanged {
                peer: peer_id,
                streams,
            },
            MeshEvent::TrackAdded {
                peer_id,
                kind,
                codec,
            } => UiEvent::Track {
                peer: peer_id,
                kind,
                added: true,
                codec: Some(codec),
            },
            MeshEvent::TrackRemoved { peer_id, kind } => UiEvent::Track {
                peer: peer_id,
                kind,
                added: false,
                codec: None,
            },
            MeshEvent::Connection { peer_id, state } => UiEvent::Connection {
                peer: peer_id,
                state: state.as_str().into(),
            },
            MeshEvent::FirstFrame {
                peer_id,
                kind,
                ms_since_join,
            } => UiEvent::FirstFrame {
                peer: peer_id,
                kind,
                ms_since_join,
            },
            MeshEvent::AudioLevel {
                peer_id,
                level_dbfs,
                speaking,
            } => UiEvent::Speaking {
                peer: peer_id,
                speaking,
                level_dbfs,
            },
            MeshEvent::Stats { peer_id, stats } => UiEvent::Stats {
                peer: peer_id,
                stats,
            },
            MeshEvent::PeerUnreachable { peer_id, reason } => {
                let hint = match reason {
                    GiveUpReason::NoRoute => Some("Add a TURN server in Settings → Network."),
                    _ => None,
                };
                UiEvent::error(format!("{peer_id}: {reason}"), hint)
            }
            MeshEvent::IceServerProblem { message, .. } => UiEvent::error(
                message,
                Some("Check the server and its user name and password in Settings → Network."),
            ),
            MeshEvent::Error { message } => UiEvent::error(message, None),
            MeshEvent::SignalingLost { reason } => UiEvent::Signaling {
                connected: false,
                message: Some(format!(
                    "lost the connection to the database ({reason}); the call goes on and reconnects"
                )),
            },
            MeshEvent::SignalingRestored => UiEvent::Signaling {
                connected: true,
                message: None,
            },
            // Joined and RoomClosed are turned into Joined/Left by the call task, which
            // knows the room's name and why the call ended.
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn events_serialize_with_their_type_name() {
        let ev = UiEvent::MemberJoined {
            peer: "p1".into(),
            name: "Ann".into(),
            streams: StreamConfig {
                audio: true,
                video: false,
                screen: false,
            },
        };
        let v = serde_json::to_value(&ev).unwrap();
        assert_eq!(v["type"], "member_joined");
        assert_eq!(v["name"], "Ann");
        assert_eq!(v["streams"]["audio"], true);
        let v = serde_json::to_value(UiEvent::error("db down", Some("check it"))).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["hint"], "check it");
    }

    #[test]
    fn engine_events_map_to_ui_events() {
        let ev = UiEvent::from_mesh(MeshEvent::Connection {
            peer_id: "p".into(),
            state: mesh::negotiation::Link::Connected,
        })
        .unwrap();
        assert_eq!(
            ev,
            UiEvent::Connection {
                peer: "p".into(),
                state: "connected".into()
            }
        );
        let ev = UiEvent::from_mesh(MeshEvent::PeerUnreachable {
            peer_id: "p".into(),
            reason: GiveUpReason::NoRoute,
        })
        .unwrap();
        assert!(matches!(ev, UiEvent::Error { hint: Some(_), .. }));
        assert_eq!(UiEvent::from_mesh(MeshEvent::RoomClosed), None);
    }
}
