//! The live room list: [`RoomList`] follows `rooms/`; [`RoomDirectory`] also follows
//! `occupants/<roomId>` of every listed public room, and tells how many people are in each.
//! (The shipped rules let nobody read `occupants/` as a whole, so one stream per public room.)

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::model::RoomInfo;
use super::paths;
use crate::id::RoomId;
use crate::rtdb::{ChildEvent, RtdbClient, StreamEvent, Subscription};

/// A listed room: a well-formed record under a key that is a room id (`docs/protocol.md` §1;
/// anything else could not be joined, nor named in a path).
fn listed(key: &str, value: &serde_json::Value) -> Option<RoomInfo> {
    RoomInfo::from_value(value).filter(|_| super::model::valid_id(key))
}

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
                    listed(&key, &value).map(|info| RoomListEvent::Added {
                        id: key.into(),
                        info,
                    })
                }
                StreamEvent::Child(ChildEvent::Changed { key, value, .. }) => {
                    match listed(&key, &value) {
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

/// The directory's bookkeeping, pure: the rooms, and who is in every public room followed.
#[derive(Debug, Default)]
struct Directory {
    rooms: BTreeMap<String, RoomInfo>,
    members: HashMap<String, BTreeSet<String>>,
}

impl Directory {
    fn listed(&self, id: &str) -> Option<DirectoryEvent> {
        let info = self.rooms.get(id)?.clone();
        let occupants =
            (!info.secured).then(|| self.members.get(id).map(BTreeSet::len).unwrap_or(0));
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
                let info = listed(&key, &value)?;
                self.rooms.insert(key.clone(), info);
                self.listed(&key)
            }
            ChildEvent::Changed { key, value, .. } => match listed(&key, &value) {
                Some(info) => {
                    self.rooms.insert(key.clone(), info);
                    self.listed(&key)
                }
                None => {
                    self.rooms.remove(&key);
                    self.members.remove(&key);
                    Some(DirectoryEvent::Removed { id: key.into() })
                }
            },
            ChildEvent::Removed { key, .. } => {
                self.rooms.remove(&key);
                self.members.remove(&key);
                Some(DirectoryEvent::Removed { id: key.into() })
            }
        }
    }

    /// Whether `id` is a listed public room, whose occupants are followed.
    fn is_public(&self, id: &str) -> bool {
        self.rooms.get(id).is_some_and(|info| !info.secured)
    }

    /// An event of the stream of `occupants/<room>`. Reported only when a public room's count
    /// changes (a heartbeat changes a record, not the count).
    fn on_occupants(&mut self, room: &str, ev: &StreamEvent) -> Option<DirectoryEvent> {
        if !self.is_public(room) {
            return None;
        }
        let here = self.members.entry(room.to_owned()).or_default();
        let before = here.len();
        match ev {
            StreamEvent::Child(ChildEvent::Added { key, .. }) => {
                if super::model::valid_peer_id(key) {
                    here.insert(key.clone());
                }
            }
            StreamEvent::Child(ChildEvent::Removed { key, .. }) => {
                here.remove(key);
            }
            // The whole space as of (re)connecting.
            StreamEvent::Synced(v) => {
                *here = v
                    .as_object()
                    .map(|m| {
                        m.keys()
                            .filter(|k| super::model::valid_peer_id(k))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
            }
            _ => return None,
        }
        if here.len() != before {
            self.listed(room)
        } else {
            None
        }
    }
}

/// The live room list with occupant counts.
pub struct RoomDirectory {
    rooms: Subscription,
    db: RtdbClient,
    /// One task per followed public room, forwarding its `occupants/<room>` stream.
    followers: HashMap<String, JoinHandle<()>>,
    counts_tx: mpsc::UnboundedSender<(String, StreamEvent)>,
    counts: mpsc::UnboundedReceiver<(String, StreamEvent)>,
    directory: Directory,
}

impl RoomDirectory {
    pub(super) fn new(db: RtdbClient) -> Self {
        let (counts_tx, counts) = mpsc::unbounded_channel();
        RoomDirectory {
            rooms: db.subscribe(paths::ROOMS),
            db,
            followers: HashMap::new(),
            counts_tx,
            counts,
            directory: Directory::default(),
        }
    }

    /// Follows the occupants of every listed public room, and only those.
    fn follow(&mut self, ev: &Option<DirectoryEvent>) {
        let id = match ev {
            Some(DirectoryEvent::Listed { id, .. } | DirectoryEvent::Removed { id }) => id,
            _ => return,
        };
        let id = id.to_string();
        if !self.directory.is_public(&id) {
            if let Some(task) = self.followers.remove(&id) {
                task.abort();
            }
            return;
        }
        if self.followers.contains_key(&id) {
            return;
        }
        let mut sub = self.db.subscribe(&paths::occupants(&id));
        let tx = self.counts_tx.clone();
        let room = id.clone();
        let task = tokio::spawn(async move {
            while let Some(ev) = sub.next().await {
                if matches!(ev, StreamEvent::Denied(_) | StreamEvent::Cancelled) {
                    // Counts are a nicety: the list goes on without this one.
                    tracing::debug!(%room, "a room's occupants can no longer be read");
                }
                if tx.send((room.clone(), ev)).is_err() {
                    return;
                }
            }
        });
        self.followers.insert(id, task);
    }

    /// The next change, or `None` if the list of rooms can no longer be read.
    pub async fn next(&mut self) -> Option<DirectoryEvent> {
        loop {
            let ev = tokio::select! {
                ev = self.rooms.next() => {
                    let ev = match ev? {
                        StreamEvent::Child(child) => self.directory.on_room(child),
                        StreamEvent::Synced(_) => Some(DirectoryEvent::Synced),
                        StreamEvent::Disconnected(why) => Some(DirectoryEvent::Disconnected(why)),
                        StreamEvent::Nested(_) => None,
                        StreamEvent::Denied(_) | StreamEvent::Cancelled => return None,
                    };
                    self.follow(&ev);
                    ev
                }
                Some((room, ev)) = self.counts.recv() => self.directory.on_occupants(&room, &ev),
            };
            if ev.is_some() {
                return ev;
            }
        }
    }
}

impl Drop for RoomDirectory {
    fn drop(&mut self) {
        for task in self.followers.values() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

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

    fn child(ev: ChildEvent) -> StreamEvent {
        StreamEvent::Child(ev)
    }

    #[test]
    fn public_rooms_carry_their_count_and_only_changes_are_reported() {
        let mut d = Directory::default();
        assert_eq!(
            occupants(d.on_room(added("pub", room("Standup", false)))),
            Some(Some(0))
        );
        assert_eq!(
            occupants(d.on_occupants(
                "pub",
                &StreamEvent::Synced(json!({"a-peer-id": {}, "b-peer-id": {}, "no": {}}))
            )),
            Some(Some(2))
        );
        assert_eq!(
            occupants(d.on_room(added("priv", room("Secret", true)))),
            Some(None)
        );
        assert_eq!(
            d.on_occupants("priv", &child(added("a-peer-id", json!({})))),
            None,
            "a private room is not counted"
        );
        assert_eq!(
            d.on_occupants("pub", &child(changed("a-peer-id", json!({"seen": 2})))),
            None,
            "a heartbeat"
        );
        assert_eq!(
            occupants(d.on_occupants(
                "pub",
                &child(ChildEvent::Removed {
                    key: "b-peer-id".into(),
                    previous: Value::Null
                })
            )),
            Some(Some(1))
        );
        assert_eq!(
            occupants(d.on_occupants("pub", &StreamEvent::Synced(Value::Null))),
            Some(Some(0)),
            "a reconnect finds the room empty"
        );
        assert_eq!(
            d.on_room(changed("pub", json!({"name": 7}))),
            Some(DirectoryEvent::Removed { id: "pub".into() }),
            "a damaged listing is delisted"
        );
        assert_eq!(
            d.on_occupants("pub", &child(added("c-peer-id", json!({})))),
            None
        );
        assert_eq!(d.on_room(added("bad", json!({"secured": false}))), None);
    }
}
