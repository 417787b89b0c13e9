//! The task of a joined room: it holds the room's five feeds, runs the heartbeat and expiry,
//! and turns the pure [`RoomState`]'s decisions into database writes and [`RoomEvent`]s.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use super::crypto::RoomKey;
use super::envelope::{self, Route};
use super::event::RoomEvent;
use super::handle::{Command, Outgoing, RoomHandle};
use super::model::{Occupant, MAX_SDP};
use super::paths::{self, Kind};
use super::state::{AcceptedCandidate, AcceptedSdp, Inbound, Member, Membership, RoomState};
use super::{SignalError, Timing};
use crate::id::{PeerId, RoomId};
use crate::rtdb::{ChildEvent, Conditional, RtdbClient, StreamEvent, Subscription};
use media::StreamConfig;

/// How long a leave waits for the server to drop its onDisconnect operations, and for a
/// heartbeat in flight to land.
const LEAVE_CANCEL: Duration = Duration::from_secs(2);

/// The room joined, as opened by [`Signaling::join`](super::Signaling::join).
pub(super) struct Room {
    pub db: RtdbClient,
    pub me: PeerId,
    pub room_id: RoomId,
    /// Where the room's signaling lives: the room id, or a private room's derived space.
    pub space: String,
    pub key: Option<RoomKey>,
    pub name: String,
    pub codecs: Vec<String>,
    pub timing: Timing,
    pub on_disconnect: bool,
}

/// The streams a joined room follows, each its own connection (`docs/protocol.md` §4, Join 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Feed {
    /// `rooms/<roomId>`: becomes null when the room is destroyed.
    Room,
    /// `occupants/<space>`: who is here.
    Occupants,
    /// One of my inboxes.
    Inbox(Kind),
}

struct Feeds {
    room: Subscription,
    occupants: Subscription,
    offers: Subscription,
    answers: Subscription,
    candidates: Subscription,
}

impl Feeds {
    fn open(room: &Room) -> Self {
        let inbox = |kind| {
            room.db
                .subscribe(&paths::inbox(kind, &room.space, &room.me))
        };
        Feeds {
            room: room.db.subscribe(&paths::room(&room.room_id)),
            occupants: room.db.subscribe(&paths::occupants(&room.space)),
            offers: inbox(Kind::Offer),
            answers: inbox(Kind::Answer),
            // Candidates one at a time, never a sender's whole queue per push (issue 18,
            // item 1); what the state machine will not hold need not be kept here either.
            candidates: room.db.subscribe_nested(
                &paths::inbox(Kind::Candidate, &room.space, &room.me),
                KEEP_CANDIDATES,
            ),
        }
    }
}

/// Candidates kept per sender by the candidates stream's cache: what is delivered or held
/// (each bounded by [`super::state::MAX_CANDIDATES`]) until the deletion is seen, with room
/// for deletions running behind.
const KEEP_CANDIDATES: usize = 5 * super::state::MAX_CANDIDATES;

/// Paths deleted per request by the [`janitor`].
const JANITOR_BATCH: usize = 1000;
/// Deletions waiting for the janitor; past this, a candidate is left in the database (my
/// next join empties my inbox).
const JANITOR_QUEUE: usize = 20_000;

/// Which feeds are down: signaling is reported lost when the first one breaks, and restored
/// only when every one that broke is in sync again.
#[derive(Debug, Default)]
struct Connectivity {
    down: BTreeSet<Feed>,
    lost: bool,
}

impl Connectivity {
    /// `feed` is in sync; true when that restores signaling.
    fn synced(&mut self, feed: Feed) -> bool {
        self.down.remove(&feed);
        let restored = self.lost && self.down.is_empty();
        if restored {
            self.lost = false;
        }
        restored
    }

    /// `feed` broke; true when that loses signaling.
    fn broke(&mut self, feed: Feed) -> bool {
        self.down.insert(feed);
        !std::mem::replace(&mut self.lost, true)
    }
}

/// Registers me and starts the task.
pub(super) async fn start(
    room: Room,
    streams: StreamConfig,
) -> Result<(RoomHandle, mpsc::Receiver<RoomEvent>), SignalError> {
    let session = paths::random_id(16);
    register(&room, &session, streams).await?;
    // After the join write, so the removal it registers has something to remove; what I
    // will send to others is added as they arrive (`arm_for`).
    let presence = room.on_disconnect.then(|| {
        let od = room.db.on_disconnect();
        od.update(
            "/",
            cleanup_paths(&room.space, &room.me, std::iter::empty()),
        );
        od
    });
    let feeds = Feeds::open(&room);
    let (tx, rx) = mpsc::channel(64);
    let (events, events_rx) = mpsc::channel(1024);
    let handle = RoomHandle::new(tx, room.me.clone(), room.room_id.clone());
    let expiry_ms = room.timing.expiry.as_millis() as i64;
    let room_db_clone = room.db.clone();
    let task = Task {
        state: RoomState::new(&room.me, &session, expiry_ms),
        room,
        streams,
        events,
        clock: Instant::now(),
        room_keys: 0,
        room_synced: false,
        connectivity: Connectivity::default(),
        reclaims: Vec::new(),
        said_reclaimed: false,
        heartbeat_in_flight: None,
        presence,
        janitor: janitor(room_db_clone),
    };
    let _ = task.events.send(RoomEvent::Joined { session }).await;
    tokio::spawn(task.run(rx, feeds));
    Ok((handle, events_rx))
}

/// The join write (`docs/protocol.md` §4): my record, and my inboxes emptied, atomically.
async fn register(room: &Room, session: &str, streams: StreamConfig) -> Result<(), SignalError> {
    let mut patch = Map::new();
    patch.insert(
        paths::occupant(&room.space, &room.me),
        Occupant::join_value(&room.name, session, streams, &room.codecs),
    );
    for kind in Kind::ALL {
        patch.insert(paths::inbox(kind, &room.space, &room.me), Value::Null);
    }
    room.db.update("/", &patch).await?;
    Ok(())
}

/// Every path `peer` owns in the room, given the others in it (`docs/protocol.md` §4, Leave).
fn cleanup_paths<'a>(
    space: &str,
    peer: &str,
    others: impl Iterator<Item = &'a str>,
) -> Map<String, Value> {
    let mut patch = Map::new();
    patch.insert(paths::occupant(space, peer), Value::Null);
    for kind in Kind::ALL {
        patch.insert(paths::inbox(kind, space, peer), Value::Null);
    }
    for other in others.filter(|o| *o != peer) {
        for kind in Kind::ALL {
            patch.insert(paths::slot(kind, space, other, peer), Value::Null);
        }
    }
    patch
}

struct Task {
    room: Room,
    state: RoomState,
    /// What I send, to write again when I rejoin after an eviction.
    streams: StreamConfig,
    events: mpsc::Sender<RoomEvent>,
    /// The local time the state machine is fed, in ms since the join.
    clock: Instant,
    /// Children of `rooms/<roomId>`: the room is destroyed when the last one goes.
    room_keys: usize,
    room_synced: bool,
    connectivity: Connectivity,
    /// When I took my record back from another writer, within [`RECLAIM_WINDOW`].
    reclaims: Vec<Instant>,
    /// The takeover warning is logged once per room.
    said_reclaimed: bool,
    /// My onDisconnect operations (`docs/protocol.md` §4b); dropped with the task, which
    /// makes the server run them.
    presence: Option<crate::rtdb::OnDisconnect>,
    /// The last heartbeat's request: a leave waits for it, since a `PATCH` of `seen` landing
    /// after the leave would recreate a partial record (a ghost that only rules refuse).
    heartbeat_in_flight: Option<tokio::task::JoinHandle<()>>,
    /// Deletes consumed and discarded candidates, in batches.
    janitor: mpsc::Sender<String>,
}

/// A task deleting the paths it is sent, many per request: one request per candidate would
/// be 100,000 requests for a flood. It ends, after the last batch, when the room task does.
fn janitor(db: RtdbClient) -> mpsc::Sender<String> {
    let (tx, mut rx) = mpsc::channel::<String>(JANITOR_QUEUE);
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut batch = Map::new();
            batch.insert(first, Value::Null);
            while batch.len() < JANITOR_BATCH {
                match rx.try_recv() {
                    Ok(p) => {
                        batch.insert(p, Value::Null);
                    }
                    Err(_) => break,
                }
            }
            if let Err(e) = db.update("/", &batch).await {
                tracing::debug!(error = %e, paths = batch.len(), "could not delete candidates");
            }
        }
    });
    tx
}

/// Takeovers of my record answered by a reclaim within [`RECLAIM_WINDOW`] before giving up.
const MAX_RECLAIMS: usize = 3;
const RECLAIM_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// A change a feed reported.
enum Change {
    Child(ChildEvent),
    Nested(crate::rtdb::NestedEvent),
}

/// Whether the task goes on.
enum Flow {
    Continue,
    Stop,
}

impl Task {
    fn now(&self) -> i64 {
        self.clock.elapsed().as_millis() as i64
    }

    async fn emit(&self, ev: RoomEvent) {
        let _ = self.events.send(ev).await;
    }

    async fn run(mut self, mut commands: mpsc::Receiver<Command>, mut feeds: Feeds) {
        let mut heartbeat = tokio::time::interval(self.room.timing.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut expiry = tokio::time::interval(self.room.timing.heartbeat / 2);
        loop {
            let flow = tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(c) => self.command(c).await,
                    None => {
                        // The handle was dropped: leave, as if asked to.
                        let _ = self.leave().await;
                        Flow::Stop
                    }
                },
                ev = feeds.room.next() => self.room_event(ev).await,
                ev = feeds.occupants.next() => self.occupant_event(ev).await,
                ev = feeds.offers.next() => self.inbox_event(Kind::Offer, ev).await,
                ev = feeds.answers.next() => self.inbox_event(Kind::Answer, ev).await,
                ev = feeds.candidates.next() => self.inbox_event(Kind::Candidate, ev).await,
                _ = heartbeat.tick() => { self.heartbeat(); Flow::Continue }
                _ = expiry.tick() => { self.expire(); Flow::Continue }
            };
            if matches!(flow, Flow::Stop) {
                return;
            }
        }
    }

    /// Connection bookkeeping shared by all feeds; `Some` is a child event to handle.
    async fn connection(
        &mut self,
        feed: Feed,
        ev: Option<StreamEvent>,
    ) -> Result<Option<Change>, Flow> {
        match ev {
            Some(StreamEvent::Child(c)) => Ok(Some(Change::Child(c))),
            Some(StreamEvent::Nested(n)) => Ok(Some(Change::Nested(n))),
            Some(StreamEvent::Synced(_)) => {
                if self.connectivity.synced(feed) {
                    self.emit(RoomEvent::SignalingRestored).await;
                }
                Ok(None)
            }
            Some(StreamEvent::Disconnected(why)) => {
                if self.connectivity.broke(feed) {
                    self.emit(RoomEvent::SignalingLost(why)).await;
                }
                Ok(None)
            }
            Some(StreamEvent::Denied(why)) => {
                self.emit(RoomEvent::Failed(format!(
                    "the database no longer lets us follow the room: {why}"
                )))
                .await;
                Err(Flow::Stop)
            }
            Some(StreamEvent::Cancelled) | None => {
                self.emit(RoomEvent::Failed(
                    "the database stopped the room's stream".into(),
                ))
                .await;
                Err(Flow::Stop)
            }
        }
    }

    async fn room_event(&mut self, ev: Option<StreamEvent>) -> Flow {
        if let Some(StreamEvent::Synced(v)) = &ev {
            self.room_synced = true;
            if v.is_null() {
                self.emit(RoomEvent::RoomClosed).await;
                return Flow::Stop;
            }
        }
        match self.connection(Feed::Room, ev).await {
            Err(flow) => flow,
            Ok(None) => Flow::Continue,
            Ok(Some(Change::Child(ChildEvent::Added { .. }))) => {
                self.room_keys += 1;
                Flow::Continue
            }
            Ok(Some(Change::Child(ChildEvent::Removed { .. }))) => {
                self.room_keys = self.room_keys.saturating_sub(1);
                if self.room_keys == 0 && self.room_synced {
                    return self.room_emptied().await;
                }
                Flow::Continue
            }
            Ok(Some(_)) => Flow::Continue,
        }
    }

    /// The room's record lost its last child: destroyed if it is now `null`, but a value that
    /// is not an object (a string written over it) also has no children, and a malformed
    /// record ends nothing (`docs/protocol.md` §3). Should the room then really be destroyed,
    /// my own record goes with it, and that is noticed in [`Task::my_record_gone`].
    async fn room_emptied(&mut self) -> Flow {
        match self.room.db.get(&paths::room(&self.room.room_id)).await {
            Ok(Value::Null) => {
                self.emit(RoomEvent::RoomClosed).await;
                Flow::Stop
            }
            Ok(other) => {
                let shape = match other {
                    Value::Object(_) => "an empty object",
                    Value::Array(_) => "an array",
                    Value::String(_) => "a string",
                    Value::Number(_) => "a number",
                    Value::Bool(_) => "a boolean",
                    Value::Null => "null",
                };
                tracing::warn!(room = %self.room.room_id, shape, "ignoring a malformed room record (only null ends the room)");
                Flow::Continue
            }
            Err(e) => {
                // Cannot tell: stay; a destroyed room also removes my record, which is re-checked.
                tracing::warn!(error = %e, "the room record emptied and cannot be read");
                Flow::Continue
            }
        }
    }

    async fn occupant_event(&mut self, ev: Option<StreamEvent>) -> Flow {
        let child = match self.connection(Feed::Occupants, ev).await {
            Err(flow) => return flow,
            Ok(Some(Change::Child(c))) => c,
            Ok(_) => return Flow::Continue,
        };
        let now = self.now();
        for change in self.state.on_occupant(child, now) {
            match change {
                Membership::Joined { member, i_offer } => {
                    let peer = member.peer_id.clone();
                    self.arm_for(&peer);
                    self.emit(RoomEvent::MemberJoined { member, i_offer }).await;
                    let ready = self.state.ready_from(&peer);
                    self.deliver(ready).await;
                }
                Membership::Left { peer_id, reason } => {
                    self.emit(RoomEvent::MemberLeft { peer_id, reason }).await
                }
                Membership::StreamsChanged { peer_id, streams } => {
                    self.emit(RoomEvent::StreamsChanged { peer_id, streams })
                        .await
                }
                Membership::MyRecordGone => return self.my_record_gone().await,
                Membership::MyRecordTaken { session } => {
                    return self.my_record_taken(session).await
                }
            }
        }
        // Candidates held for a session that just ended.
        self.discard();
        Flow::Continue
    }

    /// My record vanished: the room was destroyed, or I was expired. Tell which.
    async fn my_record_gone(&mut self) -> Flow {
        match self.room.db.get(&paths::room(&self.room.room_id)).await {
            Ok(Value::Null) => {
                self.emit(RoomEvent::RoomClosed).await;
                Flow::Stop
            }
            Ok(_) => {
                self.emit(RoomEvent::Evicted).await;
                self.rejoin("could not rejoin after being expired").await
            }
            Err(e) => {
                tracing::warn!(error = %e, "my occupant record vanished and the room cannot be read");
                Flow::Continue
            }
        }
    }

    /// Writes my record again with a new session and presents everyone as newly joined (join
    /// step 2, `seq` restarting at 1).
    async fn rejoin(&mut self, failure: &str) -> Flow {
        let session = paths::random_id(16);
        if let Err(e) = register(&self.room, &session, self.streams).await {
            self.emit(RoomEvent::Failed(format!("{failure}: {e}")))
                .await;
            return Flow::Stop;
        }
        self.state.rejoin(&session);
        // What it discards was in my inbox, which the join write just emptied.
        drop(self.state.take_discarded());
        self.emit(RoomEvent::Joined { session }).await;
        let members: Vec<Member> = self.state.members().cloned().collect();
        for member in members {
            let i_offer = self.room.me < member.peer_id;
            self.emit(RoomEvent::MemberJoined { member, i_offer }).await;
        }
        Flow::Continue
    }

    /// Another writer put its session into my record. Left alone, the others take it for me
    /// (they drop my connection and answer whatever it sends as me), and my heartbeat keeps
    /// its record fresh; so I write mine again with a new session. A second installation
    /// with my id would do the same to me, forever: after [`MAX_RECLAIMS`] in
    /// [`RECLAIM_WINDOW`] the room gives up with words that say so.
    async fn my_record_taken(&mut self, foreign: String) -> Flow {
        let now = Instant::now();
        self.reclaims
            .retain(|at| now.duration_since(*at) < RECLAIM_WINDOW);
        if self.reclaims.len() >= MAX_RECLAIMS {
            self.emit(RoomEvent::Failed(
                "another client keeps writing this participant's place in the room (a second \
                 copy of the app with the same identity, or someone forging it); left the room"
                    .into(),
            ))
            .await;
            return Flow::Stop;
        }
        self.reclaims.push(now);
        if !std::mem::replace(&mut self.said_reclaimed, true) {
            tracing::warn!(
                room = %self.room.room_id,
                %foreign,
                "another client wrote my occupant record with its own session; writing mine again \
                 with a new session (said once per room)"
            );
        } else {
            tracing::debug!(%foreign, "my occupant record was taken again; reclaiming");
        }
        self.emit(RoomEvent::Reclaimed).await;
        self.rejoin("could not take back my place in the room")
            .await
    }

    async fn inbox_event(&mut self, kind: Kind, ev: Option<StreamEvent>) -> Flow {
        match self.connection(Feed::Inbox(kind), ev).await {
            Err(flow) => flow,
            Ok(None) => Flow::Continue,
            Ok(Some(Change::Child(child))) => {
                let ready = self.state.on_inbox(kind, child);
                self.deliver(ready).await;
                Flow::Continue
            }
            Ok(Some(Change::Nested(n))) => {
                let ready = self.state.on_candidate(&n.parent, n.event);
                self.deliver(ready).await;
                Flow::Continue
            }
        }
    }

    /// The slot a message from `from` to me came in by.
    fn inbound<'a>(
        &'a self,
        kind: Kind,
        from: &'a str,
        from_session: &'a str,
        to_session: &'a str,
    ) -> Route<'a> {
        Route {
            kind,
            space: &self.room.space,
            from,
            to: &self.room.me,
            from_session,
            to_session,
        }
    }

    fn open_sdp(&self, kind: Kind, acc: &AcceptedSdp) -> Option<String> {
        let r = &acc.record;
        let route = self.inbound(kind, &acc.from, &r.session, &r.to);
        envelope::open_sdp(self.room.key.as_ref(), route, r)
            .inspect_err(|error| {
                tracing::warn!(from = %acc.from, ?kind, %error, "ignoring a message that does not open");
            })
            .ok()
    }

    async fn deliver(&mut self, ready: Inbound) {
        if let Some(acc) = ready.answer {
            if let Some(sdp) = self.open_sdp(Kind::Answer, &acc) {
                let from = acc.from.clone();
                self.emit(RoomEvent::Answer { from, sdp }).await
            }
            // Consumed: the slot is mine to empty (the sender writes it again only after a new offer).
            let db = self.room.db.clone();
            let slot = paths::slot(Kind::Answer, &self.room.space, &self.room.me, &acc.from);
            tokio::spawn(async move {
                if let Err(e) = db.delete(&slot).await {
                    tracing::debug!(error = %e, "could not clear a consumed answer");
                }
            });
        }
        if let Some(acc) = ready.offer {
            if let Some(sdp) = self.open_sdp(Kind::Offer, &acc) {
                let from = acc.from.clone();
                self.emit(RoomEvent::Offer { from, sdp }).await
            }
        }
        for c in ready.candidates {
            self.deliver_candidate(&c).await;
            self.delete_candidate(&c.from, &c.id);
        }
        self.discard();
    }

    /// Deletes what the state machine discarded (`docs/protocol.md` §2a: the receiver may
    /// delete any candidate in its inbox).
    fn discard(&mut self) {
        for (from, id) in self.state.take_discarded() {
            self.delete_candidate(&from, &id);
        }
    }

    fn delete_candidate(&self, from: &str, id: &str) {
        let slot = paths::slot(Kind::Candidate, &self.room.space, &self.room.me, from);
        if self.janitor.try_send(format!("{slot}/{id}")).is_err() {
            tracing::debug!("candidate deletions are behind; leaving one in the database");
        }
    }

    async fn deliver_candidate(&self, c: &AcceptedCandidate) {
        let r = &c.record;
        let route = self.inbound(Kind::Candidate, &c.from, &r.session, &r.to);
        match envelope::open_candidate(self.room.key.as_ref(), route, r) {
            Ok(candidate) => {
                let from = c.from.clone();
                self.emit(RoomEvent::Candidate { from, candidate }).await
            }
            Err(error) => {
                tracing::warn!(from = %c.from, %error, "ignoring a candidate that does not open or is malformed")
            }
        }
    }

    async fn command(&mut self, cmd: Command) -> Flow {
        match cmd {
            Command::SetStreams(streams, reply) => {
                self.streams = streams;
                let path = paths::occupant(&self.room.space, &self.room.me);
                let mut patch = Map::new();
                patch.insert("streams".into(), json!(streams));
                let _ = reply.send(self.room.db.update(&path, &patch).await.map_err(Into::into));
                Flow::Continue
            }
            Command::Send { to, msg, reply } => {
                let _ = reply.send(self.send(&to, msg).await);
                Flow::Continue
            }
            Command::Leave(reply) => {
                let _ = reply.send(self.leave().await);
                Flow::Stop
            }
        }
    }

    async fn send(&mut self, to: &str, msg: Outgoing) -> Result<(), SignalError> {
        let to_session = self
            .state
            .member(to)
            .map(|m| m.session.clone())
            .ok_or_else(|| SignalError::NotInRoom(to.to_owned()))?;
        let session = self.state.session().to_owned();
        let (space, me, key) = (&self.room.space, &self.room.me, self.room.key.as_ref());
        let route = |kind| Route {
            kind,
            space,
            from: me,
            to,
            from_session: &session,
            to_session: &to_session,
        };
        match msg {
            Outgoing::Offer(sdp) | Outgoing::Answer(sdp) if sdp.len() > MAX_SDP => {
                Err(SignalError::Invalid("the SDP is too large".into()))
            }
            Outgoing::Offer(sdp) => {
                let seq = self.state.next_seq();
                let rec = envelope::seal_sdp(key, route(Kind::Offer), seq, sdp);
                let slot = paths::slot(Kind::Offer, space, to, me);
                self.room.db.set(&slot, &json!(rec)).await?;
                Ok(())
            }
            Outgoing::Answer(sdp) => {
                let seq = self.state.next_seq();
                let rec = envelope::seal_sdp(key, route(Kind::Answer), seq, sdp);
                let mut patch = Map::new();
                patch.insert(paths::slot(Kind::Offer, space, me, to), Value::Null);
                patch.insert(paths::slot(Kind::Answer, space, to, me), json!(rec));
                self.room.db.update("/", &patch).await?;
                Ok(())
            }
            Outgoing::Candidate(c) => {
                if !c.is_reasonable() {
                    return Err(SignalError::Invalid(
                        "the ICE candidate is too large".into(),
                    ));
                }
                let rec = envelope::seal_candidate(key, route(Kind::Candidate), c);
                let slot = paths::slot(Kind::Candidate, space, to, me);
                self.room.db.push(&slot, &json!(rec)).await?;
                Ok(())
            }
        }
    }

    /// What I send `peer` goes into its inbox: have the server remove it if I vanish.
    fn arm_for(&self, peer: &PeerId) {
        if let Some(presence) = &self.presence {
            let mut patch = Map::new();
            for kind in Kind::ALL {
                patch.insert(
                    paths::slot(kind, &self.room.space, peer, &self.room.me),
                    Value::Null,
                );
            }
            presence.update("/", patch);
        }
    }

    async fn leave(&mut self) -> Result<(), SignalError> {
        // A clean leave does its own cleanup; what is registered must not run later (after
        // a rejoin it would remove the new record).
        if let Some(presence) = self.presence.take() {
            if let Ok(Err(e)) = tokio::time::timeout(LEAVE_CANCEL, presence.cancel()).await {
                tracing::debug!(error = %e, "could not cancel onDisconnect");
            }
        }
        if let Some(beat) = self.heartbeat_in_flight.take() {
            let _ = tokio::time::timeout(LEAVE_CANCEL, beat).await;
        }
        let others: Vec<PeerId> = self.state.members().map(|m| m.peer_id.clone()).collect();
        let patch = cleanup_paths(
            &self.room.space,
            &self.room.me,
            others.iter().map(PeerId::as_str),
        );
        self.room.db.update("/", &patch).await?;
        Ok(())
    }

    fn heartbeat(&mut self) {
        // Never recreate a record that was removed: a partial record would be a ghost.
        if !self.state.my_record_seen() {
            return;
        }
        // One at a time: a slow server gets no pile of them.
        if self
            .heartbeat_in_flight
            .as_ref()
            .is_some_and(|beat| !beat.is_finished())
        {
            return;
        }
        let db = self.room.db.clone();
        let path = paths::occupant(&self.room.space, &self.room.me);
        self.heartbeat_in_flight = Some(tokio::spawn(async move {
            let mut patch = Map::new();
            patch.insert("seen".into(), crate::rtdb::server_timestamp());
            if let Err(e) = db.update(&path, &patch).await {
                tracing::debug!(error = %e, "heartbeat failed");
            }
        }));
    }

    fn expire(&mut self) {
        let now = self.now();
        for gone in self.state.newly_expired(now) {
            let db = self.room.db.clone();
            let space = self.room.space.clone();
            let mut everyone: Vec<PeerId> =
                self.state.members().map(|m| m.peer_id.clone()).collect();
            everyone.push(self.room.me.clone());
            tokio::spawn(async move {
                if let Err(e) = remove_expired(&db, &space, &gone, &everyone).await {
                    tracing::debug!(peer = %gone.peer_id, error = %e, "could not remove an expired occupant");
                }
            });
        }
    }
}

/// Removes an occupant whose heartbeat stopped, unless it came back meanwhile (ETag check).
async fn remove_expired(
    db: &RtdbClient,
    space: &str,
    gone: &Member,
    everyone: &[PeerId],
) -> Result<(), SignalError> {
    let path = paths::occupant(space, &gone.peer_id);
    let (current, etag) = db.get_with_etag(&path).await?;
    let still_stale = Occupant::from_value(&current)
        .is_some_and(|o| o.session == gone.session && o.seen == gone.seen);
    if !still_stale {
        return Ok(());
    }
    if let Conditional::Written(_) = db.set_if(&path, &Value::Null, &etag).await? {
        tracing::info!(peer = %gone.peer_id, "removed an occupant whose heartbeat stopped");
        let patch = cleanup_paths(space, &gone.peer_id, everyone.iter().map(PeerId::as_str));
        db.update("/", &patch).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signaling_is_lost_once_and_restored_when_every_broken_feed_is_back() {
        let mut c = Connectivity::default();
        // Initial syncs restore nothing: nothing was lost.
        assert!(!c.synced(Feed::Room));
        assert!(c.broke(Feed::Occupants), "the first break is reported");
        assert!(!c.broke(Feed::Inbox(Kind::Offer)), "a second is not");
        assert!(!c.synced(Feed::Occupants), "the offers inbox is still down");
        assert!(
            !c.synced(Feed::Room),
            "a feed that never broke restores nothing"
        );
        assert!(
            c.synced(Feed::Inbox(Kind::Offer)),
            "every broken feed is back"
        );
        assert!(!c.synced(Feed::Inbox(Kind::Offer)), "reported once");
        assert!(
            c.broke(Feed::Inbox(Kind::Candidate)),
            "a new loss is reported"
        );
    }
}
