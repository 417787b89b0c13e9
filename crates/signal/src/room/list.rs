//! The live room list: [`RoomList`] follows `rooms/`; [`RoomDirectory`] follows `occupants/`
//! too, and tells how many people are in each public room.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::model::RoomInfo;
use crate::id::RoomId;
use crate::rtdb::{ChildEvent, StreamEvent, Subscription};

/// A change to the live room list.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum RoomListEvent {
    /// A room appeared (or was already there when the list started).
    Added {
        id: RoomId,
        info: RoomInfo,
    },
    Changed {
        id: RoomId,
        info: RoomInfo,
    },
    /// A room was destroyed.
    Removed {
        id: RoomId,
    },
    /// The list is complete as of now (after the first load and after reconnects).
    Synced,
    /// The connection to the database broke; the list resumes when it is back.
    Disconnected(String),
}

/// The live room list.
pub struct RoomList {
    sub: Subscription,
}

impl RoomList {
    pub(super) fn new(sub: Subscription) -> Self {
        RoomList { sub }
    }

    /// The next change, or `None` if the list can no longer be read.
    pub async fn next(&mut self) -> Option<RoomListEvent> {
        loop {
            let ev = match self.sub.next().await? {
                StreamEvent::Child(ChildEvent::Added { key, value }) => {
                    RoomInfo::from_value(&value).map(|info| RoomListEvent::Added {
                        id: key.into(),
                        info,
                    })
                }
                StreamEvent::Child(ChildEvent::Changed { key, value, .. }) => {
                    match RoomInfo::from_value(&value) {
                        Some(info) => Some(RoomListEvent::Changed {
                            id: key.into(),
                            info,
                        }),
                        None => Some(RoomListEvent::Removed { id: key.into() }),
                    }
                }
                StreamEvent::Child(ChildEvent::Removed { key, .. }) => {
                    Some(RoomListEvent::Removed { id: key.into() })
                }
                StreamEvent::Synced(_) => Some(RoomListEvent::Synced),
                StreamEvent::Disconnected(why) => Some(RoomListEvent::Disconnected(why)),
                _ => return None,
            };
            if ev.is_some() {
                return ev;
            }
        }
    }
}

/// A room as a room list shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Listing {
    pub info: RoomInfo,
    /// How many are in it now; `None` for a private room, whose occupants are stored under a
    /// name derived from its secret, so the list cannot count them.
    pub occupants: Option<usize>,
}

/// A change to the live room list with occupant counts.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum DirectoryEvent {
    /// A room appeared (or was already there when the directory started), or its listing or
    /// the number of people in it changed.
    Listed { id: RoomId, listing: Listing },
    /// A room was destroyed.
    Removed { id: RoomId },
    /// The list of rooms is complete as of now (after the first load and after reconnects).
    Synced,
    /// The connection to the database broke; the list resumes when it is back.
    Disconnected(String),
}

/// The directory's bookkeeping, pure: the rooms, and the occupant count of every space (a
/// public room's space is its id).
#[derive(Debug, Default)]
struct Directory {
    rooms: BTreeMap<String, RoomInfo>,
    counts: HashMap<String, usize>,
}

impl Directory {
    fn listed(&self, id: &str) -> Option<DirectoryEvent> {
        let info = self.rooms.get(id)?.clone();
        let occupants = (!info.secured).then(|| self.counts.get(id).copied().unwrap_or(0));
        Some(DirectoryEvent::Listed {
            id: id.into(),
            listing: Listing { info, occupants },
        })
    }

    /// A child event of `rooms/`: a room that does not parse is not listed (and is delisted if
    /// it was), as in [`RoomList`].
    fn on_room(&mut self, ev: ChildEvent) -> Option<DirectoryEvent> {
        match ev {
            ChildEvent::Added { key, value } => {
                let info = RoomInfo::from_value(&value)?;
                self.rooms.insert(key.clone(), info);
                self.listed(&key)
            }
            ChildEvent::Changed { key, value, .. } => match RoomInfo::from_value(&value) {
                Some(info) => {
                    self.rooms.insert(key.clone(), info);
                    self.listed(&key)
                }
                None => {
                    self.rooms.remove(&key);
                    Some(DirectoryEvent::Removed { id: key.into() })
                }
            },
            ChildEvent::Removed { key, .. } => {
                self.rooms.remove(&key);
                Some(DirectoryEvent::Removed { id: key.into() })
            }
        }
    }

    /// A child event of `occupants/`: one space's occupants. Reported only when a public
    /// room's count changes (a heartbeat changes the space, not the count).
    fn on_occupants(&mut self, ev: ChildEvent) -> Option<DirectoryEvent> {
        let (key, before, now) = match ev {
            ChildEvent::Added { key, value } | ChildEvent::Changed { key, value, .. } => {
                let now = count(&value);
                let before = self.counts.insert(key.clone(), now).unwrap_or(0);
                (key, before, now)
            }
            ChildEvent::Removed { key, .. } => {
                let before = self.counts.remove(&key).unwrap_or(0);
                (key, before, 0)
            }
        };
        let public = self.rooms.get(&key).is_some_and(|info| !info.secured);
        if public && before != now {
            self.listed(&key)
        } else {
            None
        }
    }
}

/// The number of occupant records in a space.
fn count(v: &Value) -> usize {
    v.as_object().map(|m| m.len()).unwrap_or(0)
}

/// The live room list with occupant counts.
pub struct RoomDirectory {
    rooms: Subscription,
    /// `None` once `occupants/` can no longer be read: counts are a nicety, the list goes on.
    occupants: Option<Subscription>,
    directory: Directory,
}

impl RoomDirectory {
    pub(super) fn new(rooms: Subscription, occupants: Subscription) -> Self {
        RoomDirectory {
            rooms,
            occupants: Some(occupants),
            directory: Directory::default(),
        }
    }

    /// The next change, or `None` if the list of rooms can no longer be read.
    pub async fn next(&mut self) -> Option<DirectoryEvent> {
        loop {
            let ev = tokio::select! {
                ev = self.rooms.next() => match ev? {
                    StreamEvent::Child(child) => self.directory.on_room(child),
                    StreamEvent::Synced(_) => Some(DirectoryEvent::Synced),
                    StreamEvent::Disconnected(why) => Some(DirectoryEvent::Disconnected(why)),
                    StreamEvent::Denied(_) | StreamEvent::Cancelled => return None,
                },
                ev = next_of(&mut self.occupants) => match ev {
                    Some(StreamEvent::Child(child)) => self.directory.on_occupants(child),
                    // The list of rooms reports the connection.
                    Some(StreamEvent::Synced(_) | StreamEvent::Disconnected(_)) => None,
                    Some(StreamEvent::Denied(_) | StreamEvent::Cancelled) | None => {
                        tracing::debug!("occupant counts can no longer be read; the room list goes on without them");
                        self.occupants = None;
                        None
                    }
                },
            };
            if ev.is_some() {
                return ev;
            }
        }
    }
}

/// The next event of `sub`, or never if there is none.
async fn next_of(sub: &mut Option<Subscription>) -> Option<StreamEvent> {
    match sub {
        Some(sub) => sub.next().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn added(key: &str, value: Value) -> ChildEvent {
        ChildEvent::added(key, value)
    }

    fn changed(key: &str, value: Value) -> ChildEvent {
        ChildEvent::changed(key, value)
    }

    fn room(name: &str, secured: bool) -> Value {
        let mut v = json!({"name": name, "secured": secured, "createdAt": 1, "createdBy": "x"});
        if secured {
            v["check"] = json!("c");
        }
        v
    }

    fn occupants(event: Option<DirectoryEvent>) -> Option<Option<usize>> {
        match event? {
            DirectoryEvent::Listed { listing, .. } => Some(listing.occupants),
            _ => None,
        }
    }

    #[test]
    fn public_rooms_carry_their_count_and_only_changes_are_reported() {
        let mut d = Directory::default();
        // Occupants may arrive before their room: counted, not reported.
        assert_eq!(
            d.on_occupants(added("pub", json!({"a": {}, "b": {}}))),
            None
        );
        assert_eq!(
            occupants(d.on_room(added("pub", room("Standup", false)))),
            Some(Some(2))
        );
        assert_eq!(
            occupants(d.on_room(added("priv", room("Secret", true)))),
            Some(None)
        );
        assert_eq!(
            d.on_occupants(added("c_space", json!({"a": {}}))),
            None,
            "a private space"
        );
        assert_eq!(
            d.on_occupants(changed("pub", json!({"a": {"seen": 2}, "b": {}}))),
            None,
            "a heartbeat"
        );
        assert_eq!(
            occupants(d.on_occupants(changed("pub", json!({"a": {}})))),
            Some(Some(1))
        );
        assert_eq!(
            occupants(d.on_occupants(ChildEvent::Removed {
                key: "pub".into(),
                previous: Value::Null
            })),
            Some(Some(0))
        );
        assert_eq!(
            d.on_room(changed("pub", json!({"name": 7}))),
            Some(DirectoryEvent::Removed { id: "pub".into() }),
            "a damaged listing is delisted"
        );
        assert_eq!(d.on_room(added("bad", json!({"secured": false}))), None);
    }
}
