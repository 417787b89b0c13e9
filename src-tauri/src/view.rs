//! What the user is shown, as a pure fold of the UI events: the page's snapshot after a reload,
//! the tray's menu and the notifications' room name all read it, so no part of the app keeps a
//! copy of its own. Only [`View::apply`] changes it, and the [`Outlet`] gets each event with
//! the view after it.

use std::collections::BTreeMap;

use media::StreamConfig;
use signal::{PeerId, RoomId};

use crate::events::{RoomView, UiEvent};
use crate::settings::Settings;

/// Where UI events go: the page's event channel, the notifications, the tray. The app core
/// calls it for every event it emits, with the [`View`] that already includes the event.
pub trait Outlet: Send + Sync {
    fn emit(&self, ev: UiEvent, view: &View);
}

/// Everything the page would rebuild itself from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct View {
    settings: Option<Settings>,
    /// The last `database` event.
    database: Option<UiEvent>,
    rooms: Vec<RoomView>,
    call: Option<CallView>,
}

/// The call I am in, as shown.
#[derive(Clone, Debug, PartialEq)]
pub struct CallView {
    pub room: RoomId,
    pub name: String,
    pub me: PeerId,
    /// What I send.
    pub streams: StreamConfig,
    /// Who else is here, by peer id.
    pub members: BTreeMap<PeerId, MemberView>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MemberView {
    pub name: String,
    pub streams: StreamConfig,
}

impl View {
    /// Folds one event in.
    pub fn apply(&mut self, ev: &UiEvent) {
        match ev {
            UiEvent::Settings { settings } => self.settings = Some(settings.clone()),
            UiEvent::Database { .. } => self.database = Some(ev.clone()),
            UiEvent::Rooms { rooms } => self.rooms = rooms.clone(),
            UiEvent::Joined {
                room,
                name,
                me,
                streams,
            } => {
                self.call = Some(CallView {
                    room: room.clone(),
                    name: name.clone(),
                    me: me.clone(),
                    streams: *streams,
                    members: BTreeMap::new(),
                })
            }
            UiEvent::Left { .. } => self.call = None,
            UiEvent::LocalStreams { streams } => {
                if let Some(c) = &mut self.call {
                    c.streams = *streams;
                }
            }
            UiEvent::MemberJoined {
                peer,
                name,
                streams,
            } => {
                if let Some(c) = &mut self.call {
                    let m = MemberView {
                        name: name.clone(),
                        streams: *streams,
                    };
                    c.members.insert(peer.clone(), m);
                }
            }
            UiEvent::MemberLeft { peer, .. } => {
                if let Some(c) = &mut self.call {
                    c.members.remove(peer);
                }
            }
            UiEvent::StreamsChanged { peer, streams } => {
                if let Some(m) = self.call.as_mut().and_then(|c| c.members.get_mut(peer)) {
                    m.streams = *streams;
                }
            }
            _ => {}
        }
    }

    /// The events that bring a freshly loaded page to this view, in the order it needs them.
    pub fn snapshot(&self) -> Vec<UiEvent> {
        let mut out = Vec::new();
        if let Some(settings) = &self.settings {
            out.push(UiEvent::Settings {
                settings: settings.clone(),
            });
        }
        out.extend(self.database.clone());
        out.push(UiEvent::Rooms {
            rooms: self.rooms.clone(),
        });
        if let Some(c) = &self.call {
            out.push(UiEvent::Joined {
                room: c.room.clone(),
                name: c.name.clone(),
                me: c.me.clone(),
                streams: c.streams,
            });
            out.extend(c.members.iter().map(|(peer, m)| UiEvent::MemberJoined {
                peer: peer.clone(),
                name: m.name.clone(),
                streams: m.streams,
            }));
        }
        out
    }

    pub fn settings(&self) -> Option<&Settings> {
        self.settings.as_ref()
    }

    pub fn call(&self) -> Option<&CallView> {
        self.call.as_ref()
    }

    pub fn rooms(&self) -> &[RoomView] {
        &self.rooms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streams(audio: bool, video: bool) -> StreamConfig {
        StreamConfig {
            audio,
            video,
            screen: false,
        }
    }

    fn joined(room: &str) -> UiEvent {
        UiEvent::Joined {
            room: room.into(),
            name: "Standup".into(),
            me: "me".into(),
            streams: streams(true, true),
        }
    }

    fn member(peer: &str, name: &str) -> UiEvent {
        UiEvent::MemberJoined {
            peer: peer.into(),
            name: name.into(),
            streams: streams(true, false),
        }
    }

    #[test]
    fn a_snapshot_replays_the_call_with_what_changed_since_it_began() {
        let mut v = View::default();
        for ev in [
            joined("r1"),
            member("p1", "Bob"),
            member("p2", "Cy"),
            UiEvent::StreamsChanged {
                peer: "p1".into(),
                streams: streams(true, true),
            },
            UiEvent::MemberLeft {
                peer: "p2".into(),
                reason: "left".into(),
            },
            UiEvent::LocalStreams {
                streams: streams(false, true),
            },
        ] {
            v.apply(&ev);
        }
        let snap = v.snapshot();
        assert_eq!(
            snap,
            vec![
                UiEvent::Rooms { rooms: vec![] },
                UiEvent::Joined {
                    room: "r1".into(),
                    name: "Standup".into(),
                    me: "me".into(),
                    streams: streams(false, true),
                },
                UiEvent::MemberJoined {
                    peer: "p1".into(),
                    name: "Bob".into(),
                    streams: streams(true, true),
                },
            ]
        );
        // Folding the snapshot into a fresh view gives the same view: a reloaded page and the
        // tray agree with what was shown before.
        let mut again = View::default();
        for ev in &snap {
            again.apply(ev);
        }
        assert_eq!(again, v);
    }

    #[test]
    fn leaving_forgets_the_call_and_its_members_but_not_the_room_list() {
        let mut v = View::default();
        let rooms = vec![RoomView {
            id: "r1".into(),
            name: "Standup".into(),
            secured: false,
            occupants: Some(2),
            mine: true,
        }];
        v.apply(&UiEvent::Rooms {
            rooms: rooms.clone(),
        });
        v.apply(&joined("r1"));
        v.apply(&member("p1", "Bob"));
        v.apply(&UiEvent::Left {
            room: "r1".into(),
            name: "Standup".into(),
            reason: "you left".into(),
        });
        assert_eq!(v.call(), None);
        assert_eq!(v.rooms(), rooms.as_slice());
        // Arrivals after the call ended (a late event) do not bring it back.
        v.apply(&member("p3", "Dee"));
        assert_eq!(v.call(), None);
        assert_eq!(v.snapshot(), vec![UiEvent::Rooms { rooms }]);
    }

    #[test]
    fn the_last_database_state_is_replayed_even_when_it_failed() {
        let mut v = View::default();
        let down = UiEvent::Database {
            connected: false,
            url: String::new(),
            lan_url: None,
            message: Some("cannot reach the database".into()),
        };
        v.apply(&down);
        assert_eq!(v.snapshot()[0], down);
    }
}
