//! A joined room: the task that holds the room's streams, runs the heartbeat and expiry, and
//! turns the pure [`RoomState`]'s decisions into database writes and [`RoomEvent`]s.

use std::time::Instant;

use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, oneshot};

use super::crypto::{aad, RoomKey};
use super::model::{Candidate, CandidateRecord, Occupant, SdpRecord, StreamConfig};
use super::paths::{self, Kind};
use super::state::{AcceptedSdp, Inbound, LeaveReason, Member, Membership, RoomState};
use super::{SignalError, Timing};
use crate::rtdb::{ChildEvent, Conditional, RtdbClient, StreamEvent, Subscription};

/// What happens in a joined room, in order.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum RoomEvent {
    /// I am in (again, after an eviction) with this session.
    Joined { session: String },
    /// Someone is here; `i_offer`: this side sends the first offer.
    MemberJoined { member: Member, i_offer: bool },
    /// Someone is gone.
    MemberLeft {
        peer_id: String,
        reason: LeaveReason,
    },
    /// Someone started or stopped sending camera, microphone or screen.
    StreamsChanged {
        peer_id: String,
        streams: StreamConfig,
    },
    /// An offer to answer.
    Offer { from: String, sdp: String },
    /// An answer to my offer.
    Answer { from: String, sdp: String },
    /// A trickled ICE candidate.
    Candidate { from: String, candidate: Candidate },
    /// The room was destroyed; the task has ended.
    RoomClosed,
    /// My presence had expired (e.g. after a suspend) and I was removed; I joined again with a
    /// new session (a `Joined` and a `MemberJoined` per member follow): rebuild connections.
    Evicted,
    /// The database connection broke; signaling resumes by itself.
    SignalingLost(String),
    /// Signaling is back; nothing was lost or repeated.
    SignalingRestored,
    /// The room can no longer be followed (access was withdrawn); the task has ended.
    Failed(String),
}

enum Outgoing {
    Offer(String),
    Answer(String),
    Candidate(Candidate),
}

enum Command {
    SetStreams(StreamConfig, oneshot::Sender<Result<(), SignalError>>),
    Send {
        to: String,
        msg: Outgoing,
        reply: oneshot::Sender<Result<(), SignalError>>,
    },
    Leave(oneshot::Sender<Result<(), SignalError>>),
}

/// My membership of a room. Dropping it leaves the room.
pub struct RoomHandle {
    tx: mpsc::Sender<Command>,
    me: String,
    room_id: String,
}

impl RoomHandle {
    /// My peer id.
    pub fn peer_id(&self) -> &str {
        &self.me
    }

    /// The room.
    pub fn room_id(&self) -> &str {
        &self.room_id
    }

    async fn call(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<(), SignalError>>) -> Command,
    ) -> Result<(), SignalError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| SignalError::Closed)?;
        answer.await.map_err(|_| SignalError::Closed)?
    }

    /// Tells the room what I now send.
    pub async fn set_streams(&self, streams: StreamConfig) -> Result<(), SignalError> {
        self.call(|r| Command::SetStreams(streams, r)).await
    }

    /// Sends an offer to `to`.
    pub async fn send_offer(&self, to: &str, sdp: String) -> Result<(), SignalError> {
        self.call(|reply| Command::Send {
            to: to.to_owned(),
            msg: Outgoing::Offer(sdp),
            reply,
        })
        .await
    }

    /// Answers `to`'s offer.
    pub async fn send_answer(&self, to: &str, sdp: String) -> Result<(), SignalError> {
        self.call(|reply| Command::Send {
            to: to.to_owned(),
            msg: Outgoing::Answer(sdp),
            reply,
        })
        .await
    }

    /// Trickles a candidate to `to`.
    pub async fn send_candidate(&self, to: &str, candidate: Candidate) -> Result<(), SignalError> {
        self.call(|reply| Command::Send {
            to: to.to_owned(),
            msg: Outgoing::Candidate(candidate),
            reply,
        })
        .await
    }

    /// Leaves: removes everything I own in the room in one atomic write.
    pub async fn leave(&self) -> Result<(), SignalError> {
        self.call(Command::Leave).await
    }
}

pub(super) struct Room {
    pub db: RtdbClient,
    pub me: String,
    pub room_id: String,
    pub space: String,
    pub key: Option<RoomKey>,
    pub name: String,
    pub codecs: Vec<String>,
    pub timing: Timing,
}

struct Streams {
    room: Subscription,
    occupants: Subscription,
    offers: Subscription,
    answers: Subscription,
    candidates: Subscription,
}

/// Registers me and starts the task.
pub(super) async fn start(
    room: Room,
    streams: StreamConfig,
) -> Result<(RoomHandle, mpsc::Receiver<RoomEvent>), SignalError> {
    let session = paths::random_id(16);
    register(&room, &session, streams).await?;
    let subs = Streams {
        room: room.db.subscribe(&paths::room(&room.room_id)),
        occupants: room.db.subscribe(&paths::occupants(&room.space)),
        offers: room
            .db
            .subscribe(&paths::inbox(Kind::Offer, &room.space, &room.me)),
        answers: room
            .db
            .subscribe(&paths::inbox(Kind::Answer, &room.space, &room.me)),
        candidates: room
            .db
            .subscribe(&paths::inbox(Kind::Candidate, &room.space, &room.me)),
    };
    let (tx, rx) = mpsc::channel(64);
    let (events, events_rx) = mpsc::channel(1024);
    let handle = RoomHandle {
        tx,
        me: room.me.clone(),
        room_id: room.room_id.clone(),
    };
    let expiry_ms = room.timing.expiry.as_millis() as i64;
    let task = Task {
        state: RoomState::new(&room.me, &session, expiry_ms),
        room,
        streams,
        events,
        clock: Instant::now(),
        room_keys: 0,
        room_synced: false,
        down: [false; 5],
        lost: false,
    };
    let _ = task.events.send(RoomEvent::Joined { session }).await;
    tokio::spawn(task.run(rx, subs));
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
    streams: StreamConfig,
    events: mpsc::Sender<RoomEvent>,
    clock: Instant,
    room_keys: usize,
    room_synced: bool,
    down: [bool; 5],
    lost: bool,
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

    async fn run(mut self, mut commands: mpsc::Receiver<Command>, mut subs: Streams) {
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
                ev = subs.room.next() => self.room_event(0, ev).await,
                ev = subs.occupants.next() => self.occupant_event(ev).await,
                ev = subs.offers.next() => self.inbox_event(2, Kind::Offer, ev).await,
                ev = subs.answers.next() => self.inbox_event(3, Kind::Answer, ev).await,
                ev = subs.candidates.next() => self.inbox_event(4, Kind::Candidate, ev).await,
                _ = heartbeat.tick() => { self.heartbeat(); Flow::Continue }
                _ = expiry.tick() => { self.expire(); Flow::Continue }
            };
            if matches!(flow, Flow::Stop) {
                return;
            }
        }
    }

    /// Connection bookkeeping shared by all streams; `Some` is a child event to handle.
    async fn connection(
        &mut self,
        idx: usize,
        ev: Option<StreamEvent>,
    ) -> Result<Option<ChildEvent>, Flow> {
        match ev {
            Some(StreamEvent::Child(c)) => Ok(Some(c)),
            Some(StreamEvent::Synced(_)) => {
                self.down[idx] = false;
                if self.lost && !self.down.iter().any(|d| *d) {
                    self.lost = false;
                    self.emit(RoomEvent::SignalingRestored).await;
                }
                Ok(None)
            }
            Some(StreamEvent::Disconnected(why)) => {
                self.down[idx] = true;
                if !self.lost {
                    self.lost = true;
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

    async fn room_event(&mut self, idx: usize, ev: Option<StreamEvent>) -> Flow {
        if let Some(StreamEvent::Synced(v)) = &ev {
            self.room_synced = true;
            if v.is_null() {
                self.emit(RoomEvent::RoomClosed).await;
                return Flow::Stop;
            }
        }
        match self.connection(idx, ev).await {
            Err(flow) => flow,
            Ok(None) => Flow::Continue,
            Ok(Some(ChildEvent::Added { .. })) => {
                self.room_keys += 1;
                Flow::Continue
            }
            Ok(Some(ChildEvent::Removed { .. })) => {
                self.room_keys = self.room_keys.saturating_sub(1);
                if self.room_keys == 0 && self.room_synced {
                    self.emit(RoomEvent::RoomClosed).await;
                    return Flow::Stop;
                }
                Flow::Continue
            }
            Ok(Some(ChildEvent::Changed { .. })) => Flow::Continue,
        }
    }

    async fn occupant_event(&mut self, ev: Option<StreamEvent>) -> Flow {
        let child = match self.connection(1, ev).await {
            Err(flow) => return flow,
            Ok(None) => return Flow::Continue,
            Ok(Some(c)) => c,
        };
        let now = self.now();
        for change in self.state.on_occupant(child, now) {
            match change {
                Membership::Joined { member, i_offer } => {
                    let peer = member.peer_id.clone();
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
            }
        }
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
                let session = paths::random_id(16);
                if let Err(e) = register(&self.room, &session, self.streams).await {
                    self.emit(RoomEvent::Failed(format!(
                        "could not rejoin after being expired: {e}"
                    )))
                    .await;
                    return Flow::Stop;
                }
                self.state.rejoin(&session);
                self.emit(RoomEvent::Joined { session }).await;
                let members: Vec<Member> = self.state.members().cloned().collect();
                for member in members {
                    let i_offer = self.room.me < member.peer_id;
                    self.emit(RoomEvent::MemberJoined { member, i_offer }).await;
                }
                Flow::Continue
            }
            Err(e) => {
                tracing::warn!(error = %e, "my occupant record vanished and the room cannot be read");
                Flow::Continue
            }
        }
    }

    async fn inbox_event(&mut self, idx: usize, kind: Kind, ev: Option<StreamEvent>) -> Flow {
        match self.connection(idx, ev).await {
            Err(flow) => flow,
            Ok(None) => Flow::Continue,
            Ok(Some(child)) => {
                let ready = self.state.on_inbox(kind, child);
                self.deliver(ready).await;
                Flow::Continue
            }
        }
    }

    fn open_sdp(&self, kind: Kind, acc: &AcceptedSdp) -> Option<String> {
        let r = &acc.record;
        match (&r.sdp, &r.enc, &self.room.key) {
            (Some(sdp), None, None) => Some(sdp.clone()),
            (None, Some(enc), Some(key)) => {
                let ad = aad(
                    kind.aad_name(),
                    &self.room.space,
                    &acc.from,
                    &self.room.me,
                    &r.session,
                    &r.to,
                    Some(r.seq),
                );
                let plain = key.open(enc, &ad).ok()?;
                serde_json::from_slice::<String>(&plain).ok()
            }
            _ => None,
        }
    }

    fn open_candidate(&self, from: &str, r: &CandidateRecord) -> Option<Candidate> {
        let c = match (&r.candidate, &r.enc, &self.room.key) {
            (Some(c), None, None) => c.clone(),
            (None, Some(enc), Some(key)) => {
                let ad = aad(
                    Kind::Candidate.aad_name(),
                    &self.room.space,
                    from,
                    &self.room.me,
                    &r.session,
                    &r.to,
                    None,
                );
                serde_json::from_slice::<Candidate>(&key.open(enc, &ad).ok()?).ok()?
            }
            _ => return None,
        };
        c.is_reasonable().then_some(c)
    }

    async fn deliver(&mut self, ready: Inbound) {
        if let Some(acc) = ready.answer {
            match self.open_sdp(Kind::Answer, &acc) {
                Some(sdp) => {
                    self.emit(RoomEvent::Answer {
                        from: acc.from.clone(),
                        sdp,
                    })
                    .await
                }
                None => {
                    tracing::warn!(from = %acc.from, "ignoring an answer that does not decrypt or is in the wrong form")
                }
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
            match self.open_sdp(Kind::Offer, &acc) {
                Some(sdp) => {
                    self.emit(RoomEvent::Offer {
                        from: acc.from.clone(),
                        sdp,
                    })
                    .await
                }
                None => {
                    tracing::warn!(from = %acc.from, "ignoring an offer that does not decrypt or is in the wrong form")
                }
            }
        }
        if ready.candidates.is_empty() {
            return;
        }
        let mut consumed = Map::new();
        for c in ready.candidates {
            match self.open_candidate(&c.from, &c.record) {
                Some(candidate) => {
                    self.emit(RoomEvent::Candidate {
                        from: c.from.clone(),
                        candidate,
                    })
                    .await
                }
                None => {
                    tracing::warn!(from = %c.from, "ignoring a candidate that does not decrypt or is malformed")
                }
            }
            let slot = paths::slot(Kind::Candidate, &self.room.space, &self.room.me, &c.from);
            consumed.insert(format!("{slot}/{}", c.id), Value::Null);
        }
        let db = self.room.db.clone();
        tokio::spawn(async move {
            if let Err(e) = db.update("/", &consumed).await {
                tracing::debug!(error = %e, "could not clear consumed candidates");
            }
        });
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
        let space = self.room.space.clone();
        let me = self.room.me.clone();
        match msg {
            Outgoing::Offer(sdp) | Outgoing::Answer(sdp) if sdp.len() > super::model::MAX_SDP => {
                Err(SignalError::Invalid("the SDP is too large".into()))
            }
            Outgoing::Offer(sdp) => {
                let rec = self.sdp_record(Kind::Offer, to, &to_session, sdp);
                self.room
                    .db
                    .set(&paths::slot(Kind::Offer, &space, to, &me), &rec)
                    .await?;
                Ok(())
            }
            Outgoing::Answer(sdp) => {
                let rec = self.sdp_record(Kind::Answer, to, &to_session, sdp);
                let mut patch = Map::new();
                patch.insert(paths::slot(Kind::Offer, &space, &me, to), Value::Null);
                patch.insert(paths::slot(Kind::Answer, &space, to, &me), rec);
                self.room.db.update("/", &patch).await?;
                Ok(())
            }
            Outgoing::Candidate(c) => {
                if !c.is_reasonable() {
                    return Err(SignalError::Invalid(
                        "the ICE candidate is too large".into(),
                    ));
                }
                let mut rec = json!({"session": session, "to": to_session});
                match &self.room.key {
                    None => rec["candidate"] = json!(c),
                    Some(key) => {
                        let ad = aad(
                            Kind::Candidate.aad_name(),
                            &space,
                            &me,
                            to,
                            &session,
                            &to_session,
                            None,
                        );
                        rec["enc"] =
                            json!(key.seal(&serde_json::to_vec(&c).unwrap_or_default(), &ad));
                    }
                }
                self.room
                    .db
                    .push(&paths::slot(Kind::Candidate, &space, to, &me), &rec)
                    .await?;
                Ok(())
            }
        }
    }

    fn sdp_record(&mut self, kind: Kind, to: &str, to_session: &str, sdp: String) -> Value {
        let seq = self.state.next_seq();
        let session = self.state.session().to_owned();
        let record = match &self.room.key {
            None => SdpRecord {
                session: session.clone(),
                to: to_session.to_owned(),
                seq,
                sdp: Some(sdp),
                enc: None,
            },
            Some(key) => {
                let ad = aad(
                    kind.aad_name(),
                    &self.room.space,
                    &self.room.me,
                    to,
                    &session,
                    to_session,
                    Some(seq),
                );
                let plain = serde_json::to_vec(&sdp).unwrap_or_default();
                SdpRecord {
                    session,
                    to: to_session.to_owned(),
                    seq,
                    sdp: None,
                    enc: Some(key.seal(&plain, &ad)),
                }
            }
        };
        json!(record)
    }

    async fn leave(&mut self) -> Result<(), SignalError> {
        let others: Vec<String> = self.state.members().map(|m| m.peer_id.clone()).collect();
        let patch = cleanup_paths(
            &self.room.space,
            &self.room.me,
            others.iter().map(String::as_str),
        );
        self.room.db.update("/", &patch).await?;
        Ok(())
    }

    fn heartbeat(&self) {
        // Never recreate a record that was removed: a partial record would be a ghost.
        if !self.state.my_record_seen() {
            return;
        }
        let db = self.room.db.clone();
        let path = paths::occupant(&self.room.space, &self.room.me);
        tokio::spawn(async move {
            let mut patch = Map::new();
            patch.insert("seen".into(), crate::rtdb::server_timestamp());
            if let Err(e) = db.update(&path, &patch).await {
                tracing::debug!(error = %e, "heartbeat failed");
            }
        });
    }

    fn expire(&mut self) {
        let now = self.now();
        for gone in self.state.newly_expired(now) {
            let db = self.room.db.clone();
            let space = self.room.space.clone();
            let mut everyone: Vec<String> =
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
    everyone: &[String],
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
        let patch = cleanup_paths(space, &gone.peer_id, everyone.iter().map(String::as_str));
        db.update("/", &patch).await?;
    }
    Ok(())
}
