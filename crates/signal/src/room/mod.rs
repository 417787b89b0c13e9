//! The room protocol of `docs/protocol.md`: rooms (create, list live, destroy), joining and
//! leaving, presence, and the exchange of offers, answers and ICE candidates.
//!
//! ```no_run
//! # async fn demo() -> Result<(), signal::room::SignalError> {
//! use media::StreamConfig;
//! use signal::room::{JoinOptions, Privacy, RoomEvent, Signaling};
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
//!
//! Inside: [`Signaling`] (here) creates, opens, lists (`list`) and destroys rooms. A joined room
//! is a [`RoomHandle`] (`handle`) sending commands to its task (`driver`), which follows the
//! room's streams, feeds the pure [`state::RoomState`], and seals and opens messages with the
//! room key (`envelope`, over `crypto`). `model` holds the stored JSON shapes, `paths` where they
//! live.

pub mod crypto;
mod driver;
mod envelope;
mod error;
mod event;
mod handle;
mod list;
pub mod model;
pub(crate) mod paths;
pub mod state;

use std::sync::Arc;
use std::time::Duration;

use media::StreamConfig;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use crate::auth::{AuthError, FirebaseAuth};
use crate::id::{PeerId, RoomId};
use crate::rtdb::{ClientConfig, Conditional, RtdbClient, RtdbError};
pub use crypto::{CryptoError, RoomKey};
pub use envelope::EnvelopeError;
pub use error::SignalError;
pub use event::RoomEvent;
pub use handle::RoomHandle;
pub use list::{DirectoryEvent, Listing, RoomDirectory, RoomList, RoomListEvent};
pub use model::{Candidate, RecordError, RoomInfo};
pub use paths::Kind;
pub use state::{LeaveReason, Member, MAX_CANDIDATES};

/// A new random peer id, to keep for an installation (`docs/protocol.md` §1).
pub fn new_peer_id() -> PeerId {
    PeerId::new(paths::random_id(16))
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
    pub name: String,
    /// What I send from the start.
    pub streams: StreamConfig,
    /// The room secret, for a private room.
    pub secret: Option<String>,
    /// The video codecs I want to use, most preferred first, as written to my occupant record
    /// (`docs/protocol.md` §4a). Empty: VP8 only, the protocol's default.
    pub codecs: Vec<String>,
    /// Register onDisconnect removal of everything I own in the room over the realtime
    /// protocol, so that a crash removes me at once (`docs/protocol.md` §4b). Off: only the
    /// heartbeat's expiry removes a crashed me, as for a REST-only client.
    pub on_disconnect: bool,
}

impl JoinOptions {
    /// Join as `name`, sending nothing yet, with no secret.
    pub fn new(name: impl Into<String>) -> Self {
        JoinOptions {
            name: name.into(),
            streams: StreamConfig::default(),
            secret: None,
            codecs: Vec::new(),
            on_disconnect: true,
        }
    }

    /// As a client that speaks only REST would join: no onDisconnect.
    pub fn without_on_disconnect(mut self) -> Self {
        self.on_disconnect = false;
        self
    }
}

/// Signaling for one participant.
#[derive(Clone)]
pub struct Signaling {
    db: RtdbClient,
    me: PeerId,
    timing: Timing,
    /// Signed in with Firebase Authentication (not an admin secret, not anonymous access):
    /// a refusal of what the shipped rules allow every signed-in user then means the setup is
    /// wrong, and [`Signaling::setup_error`] says how.
    signed_in: bool,
}

impl Signaling {
    /// Signaling as `peer_id` (stable per installation) over `db`.
    pub fn new(db: RtdbClient, peer_id: impl Into<PeerId>) -> Self {
        Signaling {
            db,
            me: peer_id.into(),
            timing: Timing::default(),
            signed_in: false,
        }
    }

    /// Signs in with `auth` and returns signaling as the signed-in user over a client for
    /// `config` that sends that user's ID tokens: the uid is the peer id (`docs/protocol.md`
    /// §1), which is what the shipped rules check every write against. The credential to keep
    /// for the next run is `auth.credential()`.
    pub async fn sign_in(
        config: ClientConfig,
        auth: Arc<FirebaseAuth>,
    ) -> Result<Signaling, SignalError> {
        let uid = auth.sign_in().await?;
        let db = RtdbClient::new(config.with_auth(auth))?;
        Ok(Signaling {
            signed_in: true,
            ..Signaling::new(db, PeerId::new(uid))
        })
    }

    /// A database error on a step the shipped rules allow every signed-in user (listing
    /// rooms, reading one, creating one): for a signed-in user a refusal there is not about
    /// this room but about the setup, the project's default locked rules or a database of
    /// another project, and the error says what to do (`docs/firebase.md`).
    fn setup_error(&self, e: RtdbError) -> SignalError {
        if self.signed_in {
            if let Some(setup) = AuthError::from_database(&e, true) {
                return SignalError::SignIn(setup);
            }
        }
        SignalError::from(e)
    }

    /// With other presence timing.
    pub fn with_timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }

    /// My peer id.
    pub fn peer_id(&self) -> &PeerId {
        &self.me
    }

    /// The database client.
    pub fn db(&self) -> &RtdbClient {
        &self.db
    }

    /// Creates a room and returns its id.
    pub async fn create_room(&self, name: &str, privacy: Privacy) -> Result<RoomId, SignalError> {
        for _ in 0..3 {
            let id = RoomId::new(paths::random_id(20));
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
        id: &RoomId,
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
        let space = match &privacy {
            Privacy::Private(secret) => {
                let key = derive_key(secret, id).await?;
                info["check"] = Value::String(key.make_check(id));
                Some(key.space().to_owned())
            }
            Privacy::Public => None,
        };
        if let Conditional::Conflict { .. } = self
            .db
            .set_if(&paths::room(id), &info, "null_etag")
            .await
            .map_err(|e| self.setup_error(e))?
        {
            return Err(SignalError::RoomExists);
        }
        // A private room's space is not its id, so the rules learn who created it from
        // `spaces/<space>` (`docs/protocol.md` §2), written right after the room; rules allow
        // it only while absent, so it cannot be taken over later.
        if let Some(space) = space {
            let owner = json!({ "createdBy": self.me });
            if let Conditional::Conflict { .. } = self
                .db
                .set_if(&paths::space(&space), &owner, "null_etag")
                .await?
            {
                return Err(SignalError::Invalid(
                    "the private room's space is already taken".into(),
                ));
            }
        }
        Ok(())
    }

    /// The rooms now.
    pub async fn list_rooms(&self) -> Result<Vec<(RoomId, RoomInfo)>, SignalError> {
        let all = self
            .db
            .get(paths::ROOMS)
            .await
            .map_err(|e| self.setup_error(e))?;
        let Value::Object(map) = all else {
            return Ok(Vec::new());
        };
        Ok(map
            .into_iter()
            .filter(|(id, _)| model::valid_id(id))
            .filter_map(|(id, v)| RoomInfo::from_value(&v).map(|i| (RoomId::new(id), i)))
            .collect())
    }

    /// The room list, live.
    pub fn watch_rooms(&self) -> RoomList {
        RoomList::new(self.db.subscribe(paths::ROOMS))
    }

    /// The room list, live, with how many are in each public room (a record silent past this
    /// signaling's presence expiry is not counted).
    pub fn watch_directory(&self) -> RoomDirectory {
        RoomDirectory::new(self.db.clone(), self.timing)
    }

    /// One room's listing (its name, and whether it is private).
    pub async fn room_info(&self, room_id: &RoomId) -> Result<RoomInfo, SignalError> {
        if !model::valid_id(room_id) {
            return Err(SignalError::NoSuchRoom);
        }
        let raw = self
            .db
            .get(&paths::room(room_id))
            .await
            .map_err(|e| self.setup_error(e))?;
        if raw.is_null() {
            return Err(SignalError::NoSuchRoom);
        }
        RoomInfo::from_value(&raw).ok_or(SignalError::DamagedListing)
    }

    /// Destroys a room and all its signaling in one atomic write.
    pub async fn destroy_room(
        &self,
        room_id: &RoomId,
        secret: Option<&str>,
    ) -> Result<(), SignalError> {
        let (space, key) = self.open_room(room_id, secret).await?;
        let mut patch = Map::new();
        patch.insert(paths::room(room_id), Value::Null);
        if key.is_some() {
            patch.insert(paths::space(&space), Value::Null);
        }
        patch.insert(paths::occupants(&space), Value::Null);
        for kind in Kind::ALL {
            patch.insert(paths::all(kind, &space), Value::Null);
        }
        self.db.update("/", &patch).await?;
        Ok(())
    }

    /// Reads the room and, for a private one, checks the secret: the room's space, and its key.
    async fn open_room(
        &self,
        room_id: &RoomId,
        secret: Option<&str>,
    ) -> Result<(String, Option<RoomKey>), SignalError> {
        let info = self.room_info(room_id).await?;
        if !info.secured {
            return Ok((room_id.to_string(), None));
        }
        let secret = secret
            .filter(|s| !s.is_empty())
            .ok_or(SignalError::SecretRequired)?;
        let key = derive_key(secret, room_id).await?;
        let check = info.check.as_deref().unwrap_or_default();
        if !key.verify_check(check, room_id) {
            return Err(SignalError::WrongSecret);
        }
        Ok((key.space().to_owned(), Some(key)))
    }

    /// Joins a room: registers me, clears leftovers of an earlier session, and starts the
    /// room task. Events arrive on the receiver until I leave or the room ends.
    pub async fn join(
        &self,
        room_id: &RoomId,
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
        let (space, key) = self.open_room(room_id, options.secret.as_deref()).await?;
        let room = driver::Room {
            db: self.db.clone(),
            me: self.me.clone(),
            room_id: room_id.clone(),
            space,
            key,
            name,
            codecs: options.codecs.clone(),
            timing: self.timing,
            on_disconnect: options.on_disconnect,
        };
        driver::start(room, options.streams).await
    }
}

async fn derive_key(secret: &str, room_id: &str) -> Result<RoomKey, SignalError> {
    let (secret, room_id) = (secret.to_owned(), room_id.to_owned());
    tokio::task::spawn_blocking(move || RoomKey::derive(&secret, &room_id))
        .await
        .map_err(|e| CryptoError::Kdf(format!("it stopped: {e}")))?
        .map_err(SignalError::Key)
}
