//! The room protocol of `docs/protocol.md`: rooms (create, list live, destroy), joining and
//! leaving, presence, and the exchange of offers, answers and ICE candidates.
//!
//! ```no_run
//! # async fn demo() -> Result<(), signal::room::SignalError> {
//! use signal::room::{JoinOptions, Privacy, RoomEvent, Signaling, StreamConfig};
//! use signal::rtdb::{ClientConfig, RtdbClient};
//! let db = RtdbClient::new(ClientConfig::new("http://127.0.0.1:9000"))?;
//! let alice = Signaling::new(db, "alice-peer-id");
//! let room = alice.create_room("Standup", Privacy::Public).await?;
//! let (handle, mut events) = alice.join(&room, JoinOptions::new("Alice")).await?;
//! while let Some(ev) = events.recv().await {
//!     if let RoomEvent::MemberJoined { member, i_offer } = ev {
//!         println!("{} arrived; I offer: {i_offer}", member.name);
//!     }
//! }
//! handle.leave().await?;
//! # Ok(()) }
//! ```

pub mod crypto;
pub mod model;
pub mod paths;
mod session;
pub mod state;

use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use crate::rtdb::{ChildEvent, Conditional, RtdbClient, RtdbError, StreamEvent, Subscription};
pub use crypto::{CryptoError, RoomKey};
pub use model::{Candidate, RoomInfo, StreamConfig};
pub use paths::Kind;
pub use session::{RoomEvent, RoomHandle};
pub use state::{LeaveReason, Member};

/// Errors a user can meet, in words they understand.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    /// No room with that id.
    #[error("the room does not exist (it may have been closed)")]
    NoSuchRoom,
    /// A private room was joined without a secret.
    #[error("this room is private: it needs its secret")]
    SecretRequired,
    /// The secret does not open the room.
    #[error("wrong secret for this room")]
    WrongSecret,
    /// The database refused (wrong database secret, or its rules).
    #[error("the database refused access: {0}")]
    PermissionDenied(String),
    /// The database could not be used.
    #[error(transparent)]
    Database(RtdbError),
    /// A name or option is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// A room with that id exists already.
    #[error("a room with that id exists already")]
    RoomExists,
    /// The peer is not (or no longer) in the room.
    #[error("{0} is not in the room")]
    NotInRoom(String),
    /// The room task has ended (left, closed, or the room was destroyed).
    #[error("no longer in the room")]
    Closed,
}

impl From<RtdbError> for SignalError {
    fn from(e: RtdbError) -> Self {
        if e.is_permission_denied() {
            SignalError::PermissionDenied(e.to_string())
        } else {
            SignalError::Database(e)
        }
    }
}

/// Public, or private behind a secret.
#[derive(Clone, Debug)]
pub enum Privacy {
    /// Anyone who sees the room list may join.
    Public,
    /// Joining needs this secret; signaling payloads are encrypted with a key derived from it.
    Private(String),
}

/// Presence timing (`docs/protocol.md` §7); tests shorten it.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// How often `seen` is refreshed.
    pub heartbeat: Duration,
    /// An occupant silent for longer is removed.
    pub expiry: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat: Duration::from_secs(5),
            expiry: Duration::from_secs(15),
        }
    }
}

/// How to join.
#[derive(Clone, Debug)]
pub struct JoinOptions {
    /// Display name.
    pub name: String,
    /// What I send from the start.
    pub streams: StreamConfig,
    /// The room secret, for a private room.
    pub secret: Option<String>,
    /// The video codecs I want to use, most preferred first, as written to my occupant record
    /// (`docs/protocol.md` §4a). Empty: VP8 only, the protocol's default.
    pub codecs: Vec<String>,
}

impl JoinOptions {
    /// Join as `name`, sending nothing yet, with no secret.
    pub fn new(name: impl Into<String>) -> Self {
        JoinOptions {
            name: name.into(),
            streams: StreamConfig::default(),
            secret: None,
            codecs: Vec::new(),
        }
    }
}

/// A change to the live room list.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum RoomListEvent {
    /// A room appeared (or was already there when the list started).
    Added { id: String, info: RoomInfo },
    /// A room's listing changed.
    Changed { id: String, info: RoomInfo },
    /// A room was destroyed.
    Removed { id: String },
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
    /// The next change, or `None` if the list can no longer be read.
    pub async fn next(&mut self) -> Option<RoomListEvent> {
        loop {
            let ev = match self.sub.next().await? {
                StreamEvent::Child(ChildEvent::Added { key, value }) => {
                    RoomInfo::from_value(&value).map(|info| RoomListEvent::Added { id: key, info })
                }
                StreamEvent::Child(ChildEvent::Changed { key, value, .. }) => {
                    match RoomInfo::from_value(&value) {
                        Some(info) => Some(RoomListEvent::Changed { id: key, info }),
                        None => Some(RoomListEvent::Removed { id: key }),
                    }
                }
                StreamEvent::Child(ChildEvent::Removed { key, .. }) => {
                    Some(RoomListEvent::Removed { id: key })
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

/// Signaling for one participant.
#[derive(Clone)]
pub struct Signaling {
    db: RtdbClient,
    me: String,
    timing: Timing,
}

impl Signaling {
    /// Signaling as `peer_id` (stable per installation) over `db`.
    pub fn new(db: RtdbClient, peer_id: impl Into<String>) -> Self {
        Signaling {
            db,
            me: peer_id.into(),
            timing: Timing::default(),
        }
    }

    /// With other presence timing.
    pub fn with_timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }

    /// My peer id.
    pub fn peer_id(&self) -> &str {
        &self.me
    }

    /// The database client.
    pub fn db(&self) -> &RtdbClient {
        &self.db
    }

    /// Creates a room and returns its id.
    pub async fn create_room(&self, name: &str, privacy: Privacy) -> Result<String, SignalError> {
        for _ in 0..3 {
            let id = paths::random_id(20);
            match self.create_room_with_id(&id, name, privacy.clone()).await {
                Err(SignalError::RoomExists) => continue,
                other => return other.map(|()| id),
            }
        }
        Err(SignalError::Invalid("could not pick a free room id".into()))
    }

    /// Creates a room with a chosen id (e.g. a readable one from the command line).
    pub async fn create_room_with_id(
        &self,
        id: &str,
        name: &str,
        privacy: Privacy,
    ) -> Result<(), SignalError> {
        if !model::valid_id(id) {
            return Err(SignalError::Invalid(
                "a room id needs 1 to 64 characters of [A-Za-z0-9_-]".into(),
            ));
        }
        let name = name.trim();
        if name.is_empty() || name.chars().count() > model::MAX_NAME {
            return Err(SignalError::Invalid(format!(
                "a room name needs 1 to {} characters",
                model::MAX_NAME
            )));
        }
        let mut info = json!({
            "name": name,
            "secured": matches!(privacy, Privacy::Private(_)),
            "createdAt": crate::rtdb::server_timestamp(),
            "createdBy": self.me,
        });
        if let Privacy::Private(secret) = &privacy {
            let key = derive_key(secret, id).await?;
            info["check"] = Value::String(key.make_check(id));
        }
        match self.db.set_if(&paths::room(id), &info, "null_etag").await? {
            Conditional::Written(_) => Ok(()),
            Conditional::Conflict { .. } => Err(SignalError::RoomExists),
        }
    }

    /// The rooms now.
    pub async fn list_rooms(&self) -> Result<Vec<(String, RoomInfo)>, SignalError> {
        let all = self.db.get(paths::ROOMS).await?;
        let Value::Object(map) = all else {
            return Ok(Vec::new());
        };
        Ok(map
            .into_iter()
            .filter_map(|(id, v)| RoomInfo::from_value(&v).map(|i| (id, i)))
            .collect())
    }

    /// The room list, live.
    pub fn watch_rooms(&self) -> RoomList {
        RoomList {
            sub: self.db.subscribe(paths::ROOMS),
        }
    }

    /// Destroys a room and all its signaling in one atomic write.
    pub async fn destroy_room(
        &self,
        room_id: &str,
        secret: Option<&str>,
    ) -> Result<(), SignalError> {
        let (info, space, _) = self.open_room(room_id, secret).await?;
        let _ = info;
        let mut patch = Map::new();
        patch.insert(paths::room(room_id), Value::Null);
        patch.insert(paths::occupants(&space), Value::Null);
        for kind in Kind::ALL {
            patch.insert(paths::all(kind, &space), Value::Null);
        }
        self.db.update("/", &patch).await?;
        Ok(())
    }

    /// Reads the room and, for a private one, checks the secret: the room's info, its space,
    /// and its key.
    async fn open_room(
        &self,
        room_id: &str,
        secret: Option<&str>,
    ) -> Result<(RoomInfo, String, Option<RoomKey>), SignalError> {
        if !model::valid_id(room_id) {
            return Err(SignalError::NoSuchRoom);
        }
        let raw = self.db.get(&paths::room(room_id)).await?;
        if raw.is_null() {
            return Err(SignalError::NoSuchRoom);
        }
        let info = RoomInfo::from_value(&raw)
            .ok_or_else(|| SignalError::Invalid("the room's listing is damaged".into()))?;
        if !info.secured {
            return Ok((info, room_id.to_owned(), None));
        }
        let secret = secret
            .filter(|s| !s.is_empty())
            .ok_or(SignalError::SecretRequired)?;
        let key = derive_key(secret, room_id).await?;
        let check = info.check.as_deref().unwrap_or_default();
        if !key.verify_check(check, room_id) {
            return Err(SignalError::WrongSecret);
        }
        Ok((info, key.space().to_owned(), Some(key)))
    }

    /// Joins a room: registers me, clears leftovers of an earlier session, and starts the
    /// room task. Events arrive on the receiver until I leave or the room ends.
    pub async fn join(
        &self,
        room_id: &str,
        options: JoinOptions,
    ) -> Result<(RoomHandle, mpsc::Receiver<RoomEvent>), SignalError> {
        let name = options.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > model::MAX_NAME {
            return Err(SignalError::Invalid(format!(
                "a display name needs 1 to {} characters",
                model::MAX_NAME
            )));
        }
        if !model::valid_id(&self.me) || self.me.len() < 8 {
            return Err(SignalError::Invalid(
                "a peer id needs 8 to 64 characters of [A-Za-z0-9_-]".into(),
            ));
        }
        let (_info, space, key) = self.open_room(room_id, options.secret.as_deref()).await?;
        let room = session::Room {
            db: self.db.clone(),
            me: self.me.clone(),
            room_id: room_id.to_owned(),
            space,
            key,
            name,
            codecs: options.codecs.clone(),
            timing: self.timing,
        };
        session::start(room, options.streams).await
    }
}

async fn derive_key(secret: &str, room_id: &str) -> Result<RoomKey, SignalError> {
    let (secret, room_id) = (secret.to_owned(), room_id.to_owned());
    tokio::task::spawn_blocking(move || RoomKey::derive(&secret, &room_id))
        .await
        .map_err(|e| SignalError::Invalid(format!("key derivation stopped: {e}")))?
        .map_err(|e| SignalError::Invalid(e.to_string()))
}
