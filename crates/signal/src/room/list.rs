//! The live room list: [`RoomList`] follows `rooms/`; [`RoomDirectory`] also follows
//! `occupants/<roomId>` of every listed public room, and tells how many people are in each.
//! (The shipped rules let nobody read `occupants/` as a whole, so one stream per public room.)

use std::collections::{BTreeMap, HashMap};

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

/// The directory's bookkeeping, pure (local time in ms passed in): the rooms, and who is in
/// every public room followed.
///
/// Someone whose record stops changing is gone: a present occupant's heartbeat rewrites `seen`
/// every few seconds, so a record silent for longer than the presence bound belongs to a
/// process that crashed or lost its network, and is not counted, before anyone removes it. (A
/// record already there when the directory starts counts until it has been silent that long
/// here: this clock cannot read the age of a server timestamp.)
#[derive(Debug)]
struct Directory {
    rooms: BTreeMap<String, RoomInfo>,
    /// Per followed public room: each occupant, and when its record last changed.
    members: HashMap<String, BTreeMap<String, i64>>,
    /// The count last reported per room: only changes are reported.
    reported: HashMap<String, usize>,
    /// A record unchanged for longer is someone gone.
    silent_ms: i64,
}

impl Default for Directory {
    fn default() -> Self {
        Directory::for_timing(super::Timing::default())
    }
}

impl Directory {
    /// Silent means past the expiry of rooms on `timing`, with the margin peers give it.
    fn for_timing(timing: super::Timing) -> Self {
        let expiry = i64::try_from(timing.expiry.as_millis()).unwrap_or(i64::MAX / 2);
        Directory::new(expiry + super::state::expiry_margin_ms(expiry))
    }

    fn new(silent_ms: i64) -> Self {
        Directory {
            rooms: BTreeMap::new(),
            members: HashMap::new(),
            reported: HashMap::new(),
            silent_ms,
        }
    }

    /// How many of a room's occupants are present at `now`.
    fn count(&self, id: &str, now: i64) -> usize {
        self.members.get(id).map_or(0, |m| {
            m.values()
                .filter(|last| now - **last <= self.silent_ms)
                .count()
        })
    }

    fn listed(&mut self, id: &str, now: i64) -> Option<DirectoryEvent> {
        let info = self.rooms.get(id)?.clone();
        let occupants = (!info.secured).then(|| self.count(id, now));
        match occupants {
            Some(n) => self.reported.insert(id.to_owned(), n),
            None => self.reported.remove(id),
        };
        Some(DirectoryEvent::Listed {
            id: id.into(),
            listing: Listing { info, occupants },
        })
    }

    /// A listing again when its count is not the one last reported.
    fn if_changed(&mut self, id: &str, now: i64) -> Option<DirectoryEvent> {
        let n = self.count(id, now);
        if self.reported.get(id) == Some(&n) {
            return None;
        }
        self.listed(id, now)
    }

    fn forget(&mut self, id: &str) {
        self.rooms.remove(id);
        self.members.remove(id);
        self.reported.remove(id);
    }

    /// A child event of `rooms/`: a room that does not parse is not listed (and is delisted if
    /// it was), as in [`RoomList`].
    fn on_room(&mut self, ev: ChildEvent, now: i64) -> Option<DirectoryEvent> {
        match ev {
            ChildEvent::Added { key, value } => {
                let info = listed(&key, &value)?;
                self.rooms.insert(key.clone(), info);
                self.listed(&key, now)
            }
            ChildEvent::Changed { key, value, .. } => match listed(&key, &value) {
                Some(info) => {
                    self.rooms.insert(key.clone(), info);
                    self.listed(&key, now)
                }
                None => {
                    self.forget(&key);
                    Some(DirectoryEvent::Removed { id: key.into() })
                }
            },
            ChildEvent::Removed { key, .. } => {
                self.forget(&key);
                Some(DirectoryEvent::Removed { id: key.into() })
            }
        }
    }

    /// Whether `id` is a listed public room, whose occupants are followed.
    fn is_public(&self, id: &str) -> bool {
        self.rooms.get(id).is_some_and(|info| !info.secured)
    }

    /// An event of the stream of `occupants/<room>`. Reported only when a public room's count
    /// changes (a heartbeat keeps someone counted, it does not change the count).
    fn on_occupants(&mut self, room: &str, ev: &StreamEvent, now: i64) -> Option<DirectoryEvent> {
        if !self.is_public(room) {
            return None;
        }
        let here = self.members.entry(room.to_owned()).or_default();
        match ev {
            StreamEvent::Child(ChildEvent::Added { key, .. } | ChildEvent::Changed { key, .. }) => {
                if super::model::valid_peer_id(key) {
                    here.insert(key.clone(), now);
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
                            .map(|k| (k.clone(), now))
                            .collect()
                    })
                    .unwrap_or_default();
            }
            _ => return None,
        }
        self.if_changed(room, now)
    }

    /// The rooms whose count changed by time alone: someone who fell silent.
    fn tick(&mut self, now: i64) -> Vec<DirectoryEvent> {
        let public: Vec<String> = self
            .rooms
            .iter()
            .filter(|(_, info)| !info.secured)
            .map(|(id, _)| id.clone())
            .collect();
        public
            .iter()
            .filter_map(|id| self.if_changed(id, now))
            .collect()
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
    /// The directory's clock starts here.
    start: tokio::time::Instant,
    /// Re-counts every second: someone who falls silent leaves the count by time alone.
    recount: tokio::time::Interval,
    /// Changes found by a recount, not yet returned.
    pending: std::collections::VecDeque<DirectoryEvent>,
}

impl RoomDirectory {
    pub(super) fn new(db: RtdbClient, timing: super::Timing) -> Self {
        let (counts_tx, counts) = mpsc::unbounded_channel();
        RoomDirectory {
            rooms: db.subscribe(paths::ROOMS),
            db,
            followers: HashMap::new(),
            counts_tx,
            counts,
            directory: Directory::for_timing(timing),
            start: tokio::time::Instant::now(),
            recount: tokio::time::interval(std::time::Duration::from_secs(1)),
            pending: std::collections::VecDeque::new(),
        }
    }

    fn now_ms(&self) -> i64 {
        i64::try_from(self.start.elapsed().as_millis()).unwrap_or(i64::MAX)
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
            if let Some(ev) = self.pending.pop_front() {
                return Some(ev);
            }
            let ev = tokio::select! {
                ev = self.rooms.next() => {
                    let now = self.now_ms();
                    let ev = match ev? {
                        StreamEvent::Child(child) => self.directory.on_room(child, now),
                        StreamEvent::Synced(_) => Some(DirectoryEvent::Synced),
                        StreamEvent::Disconnected(why) => Some(DirectoryEvent::Disconnected(why)),
                        StreamEvent::Nested(_) => None,
                        StreamEvent::Denied(_) | StreamEvent::Cancelled => return None,
                    };
                    self.follow(&ev);
                    ev
                }
                Some((room, ev)) = self.counts.recv() => {
                    let now = self.now_ms();
                    self.directory.on_occupants(&room, &ev, now)
                }
                _ = self.recount.tick() => {
                    let now = self.now_ms();
                    self.pending.extend(self.directory.tick(now));
                    None
                }
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
            occupants(d.on_room(added("pub", room("Standup", false)), 0)),
            Some(Some(0))
        );
        assert_eq!(
            occupants(d.on_occupants(
                "pub",
                &StreamEvent::Synced(json!({"a-peer-id": {}, "b-peer-id": {}, "no": {}})),
                0
            )),
            Some(Some(2))
        );
        assert_eq!(
            occupants(d.on_room(added("priv", room("Secret", true)), 0)),
            Some(None)
        );
        assert_eq!(
            d.on_occupants("priv", &child(added("a-peer-id", json!({}))), 0),
            None,
            "a private room is not counted"
        );
        assert_eq!(
            d.on_occupants("pub", &child(changed("a-peer-id", json!({"seen": 2}))), 0),
            None,
            "a heartbeat"
        );
        assert_eq!(
            occupants(d.on_occupants(
                "pub",
                &child(ChildEvent::Removed {
                    key: "b-peer-id".into(),
                    previous: Value::Null
                }),
                0
            )),
            Some(Some(1))
        );
        assert_eq!(
            occupants(d.on_occupants("pub", &StreamEvent::Synced(Value::Null), 0)),
            Some(Some(0)),
            "a reconnect finds the room empty"
        );
        assert_eq!(
            d.on_room(changed("pub", json!({"name": 7})), 0),
            Some(DirectoryEvent::Removed { id: "pub".into() }),
            "a damaged listing is delisted"
        );
        assert_eq!(
            d.on_occupants("pub", &child(added("c-peer-id", json!({}))), 0),
            None
        );
        assert_eq!(d.on_room(added("bad", json!({"secured": false})), 0), None);
    }

    #[test]
    fn someone_whose_record_falls_silent_is_not_counted() {
        let mut d = Directory::new(16_000);
        d.on_room(added("pub", room("Standup", false)), 0);
        d.on_occupants("pub", &child(added("a-peer-id", json!({"seen": 1}))), 0);
        assert_eq!(
            occupants(d.on_occupants("pub", &child(added("b-peer-id", json!({"seen": 1}))), 0)),
            Some(Some(2))
        );
        // A heartbeats every 5 s; B crashed and its record stays.
        for t in (5_000..=20_000).step_by(5_000) {
            // Whichever comes first, a recount or another's heartbeat, reports the change.
            let mut changes = d.tick(t);
            changes.extend(d.on_occupants(
                "pub",
                &child(changed("a-peer-id", json!({"seen": t}))),
                t,
            ));
            if t <= 15_000 {
                assert!(changes.is_empty(), "at {t}: {changes:?}");
            } else {
                assert_eq!(changes.len(), 1, "at {t}: {changes:?}");
                assert_eq!(occupants(changes.into_iter().next()), Some(Some(1)));
            }
        }
        assert!(d.tick(21_000).is_empty(), "reported once");
        // B comes back (a new heartbeat, or a rejoin rewrites its record): counted again.
        assert_eq!(
            occupants(d.on_occupants(
                "pub",
                &child(changed("b-peer-id", json!({"seen": 22}))),
                22_000
            )),
            Some(Some(2))
        );
        // Private rooms have no count to change.
        d.on_room(added("priv", room("Secret", true)), 22_000);
        assert!(d.tick(60_000).iter().all(|e| matches!(e,
            DirectoryEvent::Listed { id, .. } if id.as_str() == "pub")));
    }
}
