//! The room's bookkeeping as a pure state machine: no sockets, no clock of its own (times are
//! passed in). The driver feeds it the child events of the occupants stream and the inboxes and
//! does the I/O it asks for; tests drive it directly.
//!
//! Messages can arrive before the occupant record that vouches for their sender (the streams
//! are independent connections), so inbox values are kept per sender and re-examined whenever
//! that sender's record changes: nothing valid is dropped for arriving early.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::model::{valid_peer_id, CandidateRecord, Occupant, SdpRecord};
use super::paths::Kind;
use crate::id::PeerId;
use crate::rtdb::ChildEvent;
use media::StreamConfig;

/// Another participant, as the room sees them.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    pub peer_id: PeerId,
    pub name: String,
    /// Session of their current join.
    pub session: String,
    /// What they send.
    pub streams: StreamConfig,
    /// The video codecs they want, most preferred first (empty: VP8 only).
    pub codecs: Vec<String>,
    /// Server time in ms since the epoch.
    pub joined_at: i64,
    /// Server ms of their last heartbeat.
    pub seen: i64,
}

/// Why a member is gone; in JSON a word (`"left"`, `"expired"`, `"rejoined"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// They left (or their record was removed while fresh).
    Left,
    /// Their heartbeat stopped for longer than the presence bound.
    Expired,
    /// They joined again with a new session (a restart); a `MemberJoined` follows.
    Rejoined,
}

impl LeaveReason {
    /// The reason as a word, the same as its JSON form.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaveReason::Left => "left",
            LeaveReason::Expired => "expired",
            LeaveReason::Rejoined => "rejoined",
        }
    }
}

/// What the state machine tells the driver about membership.
#[derive(Clone, Debug, PartialEq)]
pub enum Membership {
    /// Someone arrived; `i_offer` says whether this side sends the first offer.
    Joined { member: Member, i_offer: bool },
    /// Someone is gone.
    Left {
        peer_id: PeerId,
        reason: LeaveReason,
    },
    /// Someone changed what they send.
    StreamsChanged {
        peer_id: PeerId,
        streams: StreamConfig,
    },
    /// My own record was removed while I am in the room.
    MyRecordGone,
    /// My own record now holds another session: another client wrote it (a forgery, or a
    /// second installation with my id). I must write mine again with a new session, or the
    /// others follow the writer and my heartbeat keeps its record alive.
    MyRecordTaken { session: String },
}

/// An accepted offer or answer (still possibly encrypted).
#[derive(Clone, Debug, PartialEq)]
pub struct AcceptedSdp {
    pub from: PeerId,
    pub record: SdpRecord,
}

/// An accepted candidate (still possibly encrypted).
#[derive(Clone, Debug, PartialEq)]
pub struct AcceptedCandidate {
    pub from: PeerId,
    /// Its push id (for deleting it once delivered).
    pub id: String,
    pub record: CandidateRecord,
}

/// The room as one participant sees it.
#[derive(Debug)]
pub struct RoomState {
    me: String,
    session: String,
    expiry_ms: i64,
    members: BTreeMap<String, Member>,
    my_record_seen: bool,
    clock_offset_ms: Option<i64>,
    next_seq: u64,
    /// Latest raw value per sender, per inbox.
    offers: BTreeMap<String, Value>,
    answers: BTreeMap<String, Value>,
    /// Highest seq accepted per (sender, sender session), per kind.
    last_offer: BTreeMap<(String, String), u64>,
    last_answer: BTreeMap<(String, String), u64>,
    /// What is known of candidates; every part bounded (issue 18, item 1).
    cands: Candidates,
    expiring: BTreeSet<(String, String)>,
    /// My earlier sessions in this room: events about them still queued are history, not a
    /// takeover.
    past_sessions: Vec<String>,
    /// The foreign session I last reclaimed my record from, until my own record is back.
    taken_by: Option<String>,
}

/// How many of my earlier sessions are remembered (a few rejoins' worth of queued events).
const PAST_SESSIONS: usize = 8;

/// Candidates delivered per sender session, counted from the last offer or answer accepted
/// from it (`docs/protocol.md` §5). A real connection trickles tens: a host candidate per
/// local address and transport, one server-reflexive per STUN server, one relayed per TURN
/// server, gathered again after an ICE restart (each comes with an offer or answer). Past it
/// the sender is flooding (issue 18, item 1: 5,000 took a peer to 4.7 GB and its video to
/// 0-7 fps) and the rest is deleted unread.
pub const MAX_CANDIDATES: usize = 200;

/// Candidates held per sender until its occupant record vouches for them.
const MAX_PENDING: usize = MAX_CANDIDATES;
/// ... and in all: senders need not be members, and anyone may write any key.
const MAX_PENDING_TOTAL: usize = 4 * MAX_CANDIDATES;
/// Ended sessions remembered, to tell their late candidates from early ones of a new session.
const ENDED_SESSIONS: usize = 64;

/// The candidates side of the inbox. Nothing here grows with what a sender writes: a
/// candidate is looked at once, when it arrives (or once more when its sender's record does),
/// and is delivered, held (bounded) or discarded; discarded ones are deleted from the
/// database by the driver ([`RoomState::take_discarded`]).
#[derive(Debug, Default)]
struct Candidates {
    /// Not yet deliverable (the sender's record, or its session, not seen yet), per sender,
    /// by push id (push order).
    pending: BTreeMap<String, BTreeMap<String, CandidateRecord>>,
    pending_total: usize,
    /// Delivered and not yet seen removed: a reconnect's replay is not delivered twice.
    delivered: BTreeSet<(String, String)>,
    /// Delivered per (sender, sender session) since its last accepted offer or answer.
    accepted: BTreeMap<(String, String), usize>,
    /// (sender, session or reason) already warned about: one warning, not one per candidate.
    warned: BTreeSet<(String, String)>,
    /// Addressed to a session not mine, per member (a few are leftovers of a rejoin).
    misaddressed: BTreeMap<String, usize>,
    /// Warned about senders that are not members.
    said_strangers: bool,
    /// (sender, session) pairs that ended: their candidates are leftovers.
    ended: std::collections::VecDeque<(String, String)>,
    /// To delete from the database, unread: (sender, push id).
    discarded: Vec<(String, String)>,
}

impl Candidates {
    fn warn_once(&mut self, from: &str, what: &str) -> bool {
        self.warned.insert((from.to_owned(), what.to_owned()))
    }

    fn discard(&mut self, from: &str, id: &str) {
        self.discarded.push((from.to_owned(), id.to_owned()));
    }

    fn unhold(&mut self, from: &str, id: &str) -> Option<CandidateRecord> {
        let held = self.pending.get_mut(from)?;
        let rec = held.remove(id)?;
        if held.is_empty() {
            self.pending.remove(from);
        }
        self.pending_total -= 1;
        Some(rec)
    }

    fn ended(&self, from: &str, session: &str) -> bool {
        self.ended.iter().any(|(f, s)| f == from && s == session)
    }
}

/// How long past the expiry bound a peer waits before removing a silent member: a tenth of
/// the bound, at most 1 s (16 s for the protocol's 15 s).
pub fn expiry_margin_ms(expiry_ms: i64) -> i64 {
    (expiry_ms / 10).min(1000)
}

impl RoomState {
    /// A fresh join as `me` with `session`; members silent for `expiry_ms` are gone.
    pub fn new(me: &str, session: &str, expiry_ms: i64) -> Self {
        RoomState {
            me: me.to_owned(),
            session: session.to_owned(),
            expiry_ms,
            members: BTreeMap::new(),
            my_record_seen: false,
            clock_offset_ms: None,
            next_seq: 0,
            offers: BTreeMap::new(),
            answers: BTreeMap::new(),
            last_offer: BTreeMap::new(),
            last_answer: BTreeMap::new(),
            cands: Candidates::default(),
            expiring: BTreeSet::new(),
            past_sessions: Vec::new(),
            taken_by: None,
        }
    }

    pub fn session(&self) -> &str {
        &self.session
    }

    /// Starts over with a new session (after being expired), keeping what is known of others.
    pub fn rejoin(&mut self, session: &str) {
        let old = std::mem::replace(&mut self.session, session.to_owned());
        self.past_sessions.push(old);
        if self.past_sessions.len() > PAST_SESSIONS {
            self.past_sessions.remove(0);
        }
        self.my_record_seen = false;
        self.next_seq = 0;
        // Every connection starts over with my new session, and so does every allowance;
        // what was held for the old one is a leftover.
        self.cands.accepted.clear();
        let held: Vec<(String, String)> = self
            .cands
            .pending
            .iter()
            .flat_map(|(f, m)| m.keys().map(move |id| (f.clone(), id.clone())))
            .collect();
        for (from, id) in held {
            self.cands.unhold(&from, &id);
            self.cands.discard(&from, &id);
        }
    }

    /// The other participants.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    pub fn member(&self, peer: &str) -> Option<&Member> {
        self.members.get(peer)
    }

    /// True once my own record has come back on the occupants stream.
    pub fn my_record_seen(&self) -> bool {
        self.my_record_seen
    }

    /// The next `seq` for an offer or answer I send.
    pub fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// The server's clock estimated from my own heartbeats, if any arrived yet.
    pub fn server_now(&self, local_now_ms: i64) -> Option<i64> {
        self.clock_offset_ms.map(|o| local_now_ms + o)
    }

    /// A child event of `occupants/<space>` at local time `now`.
    pub fn on_occupant(&mut self, ev: ChildEvent, local_now_ms: i64) -> Vec<Membership> {
        match ev {
            ChildEvent::Added { key, value } | ChildEvent::Changed { key, value, .. } => {
                self.occupant_now(key, &value, local_now_ms)
            }
            ChildEvent::Removed { key, .. } => self.occupant_gone(&key, local_now_ms),
        }
    }

    fn occupant_now(&mut self, peer: String, value: &Value, local_now_ms: i64) -> Vec<Membership> {
        if !valid_peer_id(&peer) {
            // Not a peer id (docs/protocol.md §1): nobody could be signed in as it, and it
            // cannot name the paths messages would go to.
            tracing::warn!(
                peer = %peer.chars().take(80).collect::<String>().escape_debug(),
                "ignoring an occupant whose key is not a peer id"
            );
            return Vec::new();
        }
        let Some(rec) = Occupant::from_value(value) else {
            tracing::warn!(%peer, "ignoring an incomplete or malformed occupant record");
            return Vec::new();
        };
        if peer == self.me {
            if rec.session == self.session {
                self.my_record_seen = true;
                self.taken_by = None;
                self.clock_offset_ms = Some(rec.seen - local_now_ms);
                return Vec::new();
            }
            let history = self.past_sessions.contains(&rec.session)
                || self.taken_by.as_deref() == Some(rec.session.as_str());
            if history {
                return Vec::new();
            }
            // Until my own record is back, heartbeats would refresh the other writer's.
            self.my_record_seen = false;
            self.taken_by = Some(rec.session.clone());
            return vec![Membership::MyRecordTaken {
                session: rec.session,
            }];
        }
        let member = Member {
            peer_id: peer.as_str().into(),
            name: rec.name,
            session: rec.session,
            streams: rec.streams,
            codecs: rec.codecs,
            joined_at: rec.joined_at,
            seen: rec.seen,
        };
        let mut out = Vec::new();
        match self.members.get(&peer) {
            Some(old) if old.session == member.session => {
                if old.streams != member.streams {
                    out.push(Membership::StreamsChanged {
                        peer_id: peer.as_str().into(),
                        streams: member.streams,
                    });
                }
            }
            Some(old) => {
                let old_session = old.session.clone();
                self.forget_session(&peer, &old_session);
                out.push(Membership::Left {
                    peer_id: peer.as_str().into(),
                    reason: LeaveReason::Rejoined,
                });
                out.push(Membership::Joined {
                    member: member.clone(),
                    i_offer: self.me < peer,
                });
            }
            None => out.push(Membership::Joined {
                member: member.clone(),
                i_offer: self.me < peer,
            }),
        }
        self.members.insert(peer, member);
        out
    }

    fn occupant_gone(&mut self, peer: &str, local_now_ms: i64) -> Vec<Membership> {
        if peer == self.me {
            let was = std::mem::replace(&mut self.my_record_seen, false);
            return if was {
                vec![Membership::MyRecordGone]
            } else {
                Vec::new()
            };
        }
        let Some(old) = self.members.remove(peer) else {
            return Vec::new();
        };
        let stale = self
            .server_now(local_now_ms)
            .is_some_and(|now| now - old.seen > self.expiry_ms);
        let was_expiring = self
            .expiring
            .remove(&(peer.to_owned(), old.session.clone()));
        self.forget_session(peer, &old.session);
        let reason = if stale || was_expiring {
            LeaveReason::Expired
        } else {
            LeaveReason::Left
        };
        self.offers.remove(peer);
        self.answers.remove(peer);
        // What it sent goes with it (its own leave, or the expiry's cleanup, deletes it).
        if let Some(held) = self.cands.pending.remove(peer) {
            self.cands.pending_total -= held.len();
        }
        self.cands.misaddressed.remove(peer);
        self.cands.warned.retain(|(from, _)| from != peer);
        vec![Membership::Left {
            peer_id: peer.into(),
            reason,
        }]
    }

    /// What was counted for `peer`'s `session`: it is over (a new session's counter restarts
    /// at 1), and kept it would grow with every rejoin.
    fn forget_session(&mut self, peer: &str, session: &str) {
        let key = (peer.to_owned(), session.to_owned());
        self.last_offer.remove(&key);
        self.last_answer.remove(&key);
        self.expiring.remove(&key);
        self.cands.delivered.retain(|(from, _)| from != peer);
        self.cands.accepted.remove(&key);
        self.cands.warned.remove(&key);
        self.cands.ended.push_back(key);
        if self.cands.ended.len() > ENDED_SESSIONS {
            self.cands.ended.pop_front();
        }
        // Its candidates held for that session are leftovers now.
        let stale: Vec<String> = self
            .cands
            .pending
            .get(peer)
            .map(|m| {
                m.iter()
                    .filter(|(_, r)| r.session == session)
                    .map(|(id, _)| id.clone())
                    .collect()
            })
            .unwrap_or_default();
        for id in stale {
            self.cands.unhold(peer, &id);
            self.cands.discard(peer, &id);
        }
    }

    /// Members whose heartbeat is older than the bound plus a margin, each reported once per
    /// session.
    ///
    /// The margin (docs/protocol.md section 4, "Expiry") is what makes every other peer call
    /// the removal "expired": their server-clock estimates differ from mine by milliseconds, and
    /// a removal they see before their own bound has passed would read as a leave.
    pub fn newly_expired(&mut self, local_now_ms: i64) -> Vec<Member> {
        let Some(now) = self.server_now(local_now_ms) else {
            return Vec::new();
        };
        let bound = self.expiry_ms + expiry_margin_ms(self.expiry_ms);
        let mut out = Vec::new();
        for m in self.members.values() {
            if now - m.seen > bound
                && self
                    .expiring
                    .insert((m.peer_id.to_string(), m.session.clone()))
            {
                out.push(m.clone());
            }
        }
        out
    }

    /// A child event of one of my inboxes; returns what became deliverable.
    pub fn on_inbox(&mut self, kind: Kind, ev: ChildEvent) -> Inbound {
        let (from, value) = match ev {
            ChildEvent::Added { key, value } | ChildEvent::Changed { key, value, .. } => {
                (key, Some(value))
            }
            ChildEvent::Removed { key, .. } => (key, None),
        };
        let store = match kind {
            Kind::Offer => &mut self.offers,
            Kind::Answer => &mut self.answers,
            Kind::Candidate => {
                // Candidates come one at a time ([`RoomState::on_candidate`]); a sender's whole
                // queue at once is not a form the nested stream produces.
                tracing::debug!(%from, "ignoring a whole candidate queue");
                return Inbound::default();
            }
        };
        match value {
            Some(v) => {
                store.insert(from.clone(), v);
            }
            None => {
                store.remove(&from);
            }
        }
        self.ready_from(&from)
    }

    /// Re-examines everything held for `from` (after their occupant record changed).
    pub fn ready_from(&mut self, from: &str) -> Inbound {
        let mut out = Inbound::default();
        let Some(member) = self.members.get(from) else {
            return out;
        };
        let sender_session = member.session.clone();
        let key = (from.to_owned(), sender_session.clone());
        for (kind, store, last) in [
            (Kind::Offer, &self.offers, &mut self.last_offer),
            (Kind::Answer, &self.answers, &mut self.last_answer),
        ] {
            let Some(raw) = store.get(from) else { continue };
            let Some(rec) = SdpRecord::from_value(raw) else {
                tracing::warn!(%from, ?kind, "ignoring a malformed message");
                continue;
            };
            if rec.to != self.session || rec.session != sender_session {
                continue;
            }
            let last_seq = last.get(&key).copied().unwrap_or(0);
            if !seq_acceptable(last_seq, rec.seq) {
                if rec.seq != last_seq {
                    tracing::warn!(%from, ?kind, seq = rec.seq, last = last_seq, "ignoring a message whose seq no sender could have reached");
                }
                continue;
            }
            last.insert(key.clone(), rec.seq);
            // A new exchange (an ICE restart gathers again): a new allowance of candidates.
            self.cands.accepted.remove(&key);
            let accepted = AcceptedSdp {
                from: from.into(),
                record: rec,
            };
            match kind {
                Kind::Offer => out.offer = Some(accepted),
                _ => out.answer = Some(accepted),
            }
        }
        // Held candidates, looked at again now that the sender's record changed.
        let held: Vec<String> = self
            .cands
            .pending
            .get(from)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for id in held {
            if let Some(rec) = self.cands.unhold(from, &id) {
                self.examine(from, id, rec, &mut out);
            }
        }
        out
    }

    /// A child event of my candidates inbox: one candidate `from` a sender, added, changed
    /// or removed. Costs what the one candidate costs, however many the sender wrote.
    pub fn on_candidate(&mut self, from: &str, ev: ChildEvent) -> Inbound {
        let mut out = Inbound::default();
        let (id, value) = match ev {
            ChildEvent::Added { key, value } | ChildEvent::Changed { key, value, .. } => {
                (key, value)
            }
            ChildEvent::Removed { key, .. } => {
                // Consumed (or discarded): forget it.
                self.cands.delivered.remove(&(from.to_owned(), key.clone()));
                self.cands.unhold(from, &key);
                return out;
            }
        };
        let key = (from.to_owned(), id);
        if self.cands.delivered.contains(&key) {
            return out;
        }
        let (from_owned, id) = key;
        let from = from_owned.as_str();
        if !valid_peer_id(from) {
            self.stranger(from, &id, "a sender key that is not a peer id");
            return out;
        }
        let rec = match CandidateRecord::from_value(&value) {
            Ok(rec) => rec,
            Err(error) => {
                if self.members.contains_key(from) && self.cands.warn_once(from, "malformed") {
                    tracing::warn!(%from, %error, "ignoring a malformed candidate (said once per sender)");
                }
                self.cands.discard(from, &id);
                return out;
            }
        };
        self.examine(from, id, rec, &mut out);
        out
    }

    /// One candidate, parsed: delivered, held or discarded.
    fn examine(&mut self, from: &str, id: String, rec: CandidateRecord, out: &mut Inbound) {
        if rec.to != self.session {
            // To an earlier session of mine (or none): a leftover, never deliverable.
            self.misaddressed(from);
            self.cands.discard(from, &id);
            return;
        }
        let current = self.members.get(from).map(|m| m.session.as_str());
        if current != Some(rec.session.as_str()) {
            if self.cands.ended(from, &rec.session) {
                self.cands.discard(from, &id);
                return;
            }
            self.hold(from, id, rec);
            return;
        }
        let key = (from.to_owned(), rec.session.clone());
        let count = self.cands.accepted.entry(key).or_insert(0);
        if *count >= MAX_CANDIDATES {
            if self.cands.warn_once(from, &rec.session) {
                tracing::warn!(
                    %from,
                    session = %rec.session,
                    limit = MAX_CANDIDATES,
                    "a participant sent more ICE candidates than any connection needs; \
                     deleting the rest unread (said once per session)"
                );
            }
            self.cands.discard(from, &id);
            return;
        }
        *count += 1;
        self.cands.delivered.insert((from.to_owned(), id.clone()));
        out.candidates.push(AcceptedCandidate {
            from: from.into(),
            id,
            record: rec,
        });
    }

    /// Held until `from`'s record (or its new session) arrives, within bounds.
    fn hold(&mut self, from: &str, id: String, rec: CandidateRecord) {
        let mine = self.cands.pending.get(from).map_or(0, BTreeMap::len);
        if mine >= MAX_PENDING || self.cands.pending_total >= MAX_PENDING_TOTAL {
            if self.members.contains_key(from) {
                if self.cands.warn_once(from, "pending") {
                    tracing::warn!(
                        %from,
                        limit = MAX_PENDING,
                        "too many ICE candidates from a session that is not the sender's; \
                         deleting the rest unread (said once per sender)"
                    );
                }
                self.cands.discard(from, &id);
            } else {
                self.stranger(
                    from,
                    &id,
                    "too many candidates from someone not in the room",
                );
            }
            return;
        }
        if self
            .cands
            .pending
            .entry(from.to_owned())
            .or_default()
            .insert(id, rec)
            .is_none()
        {
            self.cands.pending_total += 1;
        }
    }

    fn misaddressed(&mut self, from: &str) {
        if !self.members.contains_key(from) {
            return;
        }
        let n = self.cands.misaddressed.entry(from.to_owned()).or_insert(0);
        *n += 1;
        if *n == MAX_CANDIDATES {
            tracing::warn!(
                %from,
                "a participant keeps sending ICE candidates to a session that is not mine; \
                 deleting them unread (said once per sender)"
            );
        }
    }

    fn stranger(&mut self, from: &str, id: &str, why: &str) {
        if !std::mem::replace(&mut self.cands.said_strangers, true) {
            tracing::warn!(
                from = %from.chars().take(80).collect::<String>().escape_debug(),
                why,
                "deleting ICE candidates unread (said once per room)"
            );
        }
        self.cands.discard(from, id);
    }

    /// Candidates to delete from my inbox unread, as (sender, push id); drained.
    pub fn take_discarded(&mut self) -> Vec<(String, String)> {
        std::mem::take(&mut self.cands.discarded)
    }

    /// How many candidates are held in memory (pending and delivered-not-yet-removed).
    pub fn held_candidates(&self) -> usize {
        self.cands.pending_total + self.cands.delivered.len()
    }

    /// Everything I sent to `to` that is addressed to an old session of theirs is stale; the
    /// same for what `from` sent me from an old session. Returns the senders whose held messages
    /// are leftovers to delete (to my session: no; theirs: old).
    pub fn stale_senders(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (from, raw) in self.offers.iter().chain(self.answers.iter()) {
            if SdpRecord::from_value(raw).is_some_and(|r| r.to != self.session) {
                out.push(from.clone());
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// How far a sender's `seq` may move from the last one accepted from its session, per kind
/// (`docs/protocol.md` §5). A real sender counts up by one per offer or answer, to everyone:
/// between two of its messages to me it sends far fewer than this to the others.
pub const MAX_SEQ_STEP: u64 = 1000;

/// Whether a message with `seq` is new, given the last `seq` accepted of its kind from that
/// sender session (0: none yet). The same `seq` again is the message already delivered (its
/// slot is re-examined when the sender's record changes). A real sender only counts up, and
/// by less than [`MAX_SEQ_STEP`]; a value far beyond is a writer that is not the sender, and
/// taking it would refuse the sender's real messages until it caught up (for u64::MAX, never).
/// A value behind the last, within the step, is taken too: a slot holds only the sender's
/// latest message, so it is the sender going on after another writer pushed the count ahead.
pub fn seq_acceptable(last: u64, seq: u64) -> bool {
    seq != last && seq.abs_diff(last) <= MAX_SEQ_STEP && seq > 0
}

/// Messages that became deliverable, in order: answer and offer (at most one each), then
/// candidates in push order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inbound {
    /// An offer to answer.
    pub offer: Option<AcceptedSdp>,
    /// An answer to apply.
    pub answer: Option<AcceptedSdp>,
    /// Candidates to add.
    pub candidates: Vec<AcceptedCandidate>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn occ(session: &str, seen: i64, video: bool) -> Value {
        json!({"name": "N", "session": session, "joinedAt": 1, "seen": seen,
               "streams": {"audio": true, "video": video, "screen": false}})
    }

    fn added(key: &str, value: Value) -> ChildEvent {
        ChildEvent::added(key, value)
    }

    fn changed(key: &str, value: Value) -> ChildEvent {
        ChildEvent::changed(key, value)
    }

    #[test]
    fn the_smaller_id_offers_first() {
        let mut s = RoomState::new("bob-peer", "S", 15_000);
        let out = s.on_occupant(added("alice-peer", occ("a1", 0, true)), 0);
        assert!(matches!(
            &out[..],
            [Membership::Joined { i_offer: false, .. }]
        ));
        let out = s.on_occupant(added("carol-peer", occ("c1", 0, true)), 0);
        assert!(matches!(
            &out[..],
            [Membership::Joined { i_offer: true, .. }]
        ));
        assert!(
            s.on_occupant(added("bob-peer", occ("S", 1000, true)), 0)
                .is_empty(),
            "my own record"
        );
    }

    #[test]
    fn heartbeats_are_silent_stream_changes_are_not_and_a_new_session_is_a_rejoin() {
        let mut s = RoomState::new("bob-peer", "S", 15_000);
        s.on_occupant(added("alice-peer", occ("a1", 0, true)), 0);
        assert!(s
            .on_occupant(changed("alice-peer", occ("a1", 5000, true)), 0)
            .is_empty());
        let out = s.on_occupant(changed("alice-peer", occ("a1", 6000, false)), 0);
        assert!(matches!(&out[..], [Membership::StreamsChanged { streams, .. }] if !streams.video));
        let out = s.on_occupant(changed("alice-peer", occ("a2", 7000, false)), 0);
        assert!(matches!(
            &out[..],
            [
                Membership::Left {
                    reason: LeaveReason::Rejoined,
                    ..
                },
                Membership::Joined { .. }
            ]
        ));
    }

    /// Issue 18, item 2: my record rewritten with another session is a takeover, reported
    /// once per foreign session; my own earlier sessions are history.
    #[test]
    fn my_record_under_another_session_is_a_takeover_reported_once() {
        let mut s = RoomState::new("bob-peer", "S1", 15_000);
        s.on_occupant(added("bob-peer", occ("S1", 1000, true)), 0);
        assert!(s.my_record_seen());
        let out = s.on_occupant(changed("bob-peer", occ("EVIL", 2000, true)), 0);
        assert_eq!(
            out,
            vec![Membership::MyRecordTaken {
                session: "EVIL".into()
            }]
        );
        assert!(!s.my_record_seen(), "no heartbeat into their record");
        // Its heartbeats, or my own patch landing on it, before my new record is back.
        assert!(s
            .on_occupant(changed("bob-peer", occ("EVIL", 3000, true)), 0)
            .is_empty());
        s.rejoin("S2");
        assert!(s
            .on_occupant(changed("bob-peer", occ("S1", 3000, true)), 0)
            .is_empty());
        s.on_occupant(changed("bob-peer", occ("S2", 4000, true)), 0);
        assert!(s.my_record_seen());
        // Taken again, even by the same session, once my record was back.
        assert_eq!(
            s.on_occupant(changed("bob-peer", occ("EVIL", 5000, true)), 0)
                .len(),
            1
        );
    }

    /// Issue 18, item 5: keys that are not peer ids are no members.
    #[test]
    fn occupants_whose_key_is_not_a_peer_id_are_ignored() {
        let mut s = RoomState::new("bob-peer", "S", 15_000);
        for key in [
            "short",
            "ünïcode-peer-id",
            &"x".repeat(700),
            "a/b-peer-id",
            "a.b-peer-id",
        ] {
            assert!(
                s.on_occupant(added(key, occ("a1", 0, true)), 0).is_empty(),
                "{key}"
            );
        }
        assert_eq!(s.members().count(), 0);
        assert_eq!(
            s.on_occupant(added("carol-peer", occ("c1", 0, true)), 0)
                .len(),
            1
        );
    }

    /// Issue 18, item 3: a seq no sender could have reached is refused, and one behind the
    /// last (the sender going on after someone pushed the count ahead) is taken.
    #[test]
    fn seq_moves_by_a_bounded_step_either_way() {
        assert!(seq_acceptable(0, 1) && seq_acceptable(5, 6) && seq_acceptable(5, 900));
        assert!(!seq_acceptable(5, 5), "the same message again");
        assert!(!seq_acceptable(0, u64::MAX) && !seq_acceptable(5, 5 + MAX_SEQ_STEP + 1));
        assert!(seq_acceptable(5 + MAX_SEQ_STEP, 6));

        let mut s = RoomState::new("bob-peer", "S", 15_000);
        s.on_occupant(added("alice-peer", occ("a1", 0, true)), 0);
        let offer =
            |seq: u64, sdp: &str| json!({"session": "a1", "to": "S", "seq": seq, "sdp": sdp});
        let got = |s: &mut RoomState, v| {
            s.on_inbox(Kind::Offer, changed("alice-peer", v))
                .offer
                .map(|o| o.record.sdp.unwrap())
        };
        assert_eq!(got(&mut s, offer(1, "one")), Some("one".into()));
        assert_eq!(got(&mut s, offer(u64::MAX, "poison")), None);
        assert_eq!(got(&mut s, offer(2, "two")), Some("two".into()));
        assert_eq!(
            got(&mut s, offer(2 + MAX_SEQ_STEP, "ahead")),
            Some("ahead".into())
        );
        assert_eq!(got(&mut s, offer(3, "three")), Some("three".into()));
        // Re-examined when alice's record changes: not delivered twice.
        s.on_occupant(changed("alice-peer", occ("a1", 10, false)), 0);
        assert!(s.ready_from("alice-peer").offer.is_none());
        // Her counter restarts with a new session; the old session's count is forgotten.
        s.on_occupant(changed("alice-peer", occ("a2", 20, false)), 0);
        let restarted = json!({"session": "a2", "to": "S", "seq": 1, "sdp": "again"});
        assert_eq!(got(&mut s, restarted), Some("again".into()));
        assert_eq!(s.last_offer.len(), 1);
    }

    #[test]
    fn expiry_uses_the_server_clock_from_my_own_heartbeat() {
        let mut s = RoomState::new("bob-peer", "S", 15_000);
        s.on_occupant(added("alice-peer", occ("a1", 100_000, true)), 0);
        assert!(
            s.newly_expired(1_000_000).is_empty(),
            "no clock yet: nobody expires"
        );
        // My own record: server said 110_000 when my local clock said 5_000.
        s.on_occupant(added("bob-peer", occ("S", 110_000, true)), 5_000);
        assert!(
            s.newly_expired(11_000).is_empty(),
            "alice is 16 s old: stale, but within the margin"
        );
        let gone = s.newly_expired(11_002);
        assert_eq!(gone.len(), 1);
        assert!(s.newly_expired(20_000).is_empty(), "reported once");
        let out = s.on_occupant(
            ChildEvent::Removed {
                key: "alice-peer".into(),
                previous: Value::Null,
            },
            20_000,
        );
        assert_eq!(
            out,
            vec![Membership::Left {
                peer_id: "alice-peer".into(),
                reason: LeaveReason::Expired
            }]
        );
    }

    #[test]
    fn messages_wait_for_their_senders_record_and_are_delivered_once_in_order() {
        let mut s = RoomState::new("bob-peer", "S", 15_000);
        let offer = json!({"session": "a1", "to": "S", "seq": 1, "sdp": "v=0"});
        // The offer arrives before alice's occupant record: held, not dropped.
        assert_eq!(
            s.on_inbox(Kind::Offer, added("alice-peer", offer.clone())),
            Inbound::default()
        );
        s.on_occupant(added("alice-peer", occ("a1", 0, true)), 0);
        let ready = s.ready_from("alice-peer");
        assert_eq!(ready.offer.unwrap().record.sdp.as_deref(), Some("v=0"));
        // The same offer again (e.g. a reconnect) is not delivered twice.
        assert!(s
            .on_inbox(Kind::Offer, changed("alice-peer", offer))
            .offer
            .is_none());
        // Candidates one at a time, each once.
        let c = |n: &str| json!({"session": "a1", "to": "S", "candidate": {"candidate": n, "sdpMid": "0", "sdpMLineIndex": 0}});
        let line = |i: &Inbound| -> Vec<String> {
            i.candidates
                .iter()
                .map(|c| c.record.candidate.as_ref().unwrap().candidate.clone())
                .collect()
        };
        let first = s.on_candidate("alice-peer", added("-A", c("1")));
        assert_eq!(line(&first), ["1"]);
        assert_eq!(first.candidates[0].id, "-A");
        // A replay (reconnect) of a delivered one is not delivered again...
        assert!(s
            .on_candidate("alice-peer", added("-A", c("1")))
            .candidates
            .is_empty());
        assert_eq!(
            line(&s.on_candidate("alice-peer", added("-B", c("2")))),
            ["2"]
        );
        // ... and once its deletion is seen it is forgotten.
        s.on_candidate(
            "alice-peer",
            ChildEvent::Removed {
                key: "-A".into(),
                previous: Value::Null,
            },
        );
        assert_eq!(s.held_candidates(), 1);
    }

    /// Issue 18, item 1: a sender session gets MAX_CANDIDATES; the rest is discarded (to be
    /// deleted) and nothing is held for it; an accepted offer starts a new allowance.
    /// Candidates to a session not mine are discarded at once; those of an unknown sender
    /// are held, bounded.
    #[test]
    fn candidates_are_bounded_per_sender_session_and_the_excess_discarded() {
        let mut s = RoomState::new("bob-peer", "S", 15_000);
        s.on_occupant(added("alice-peer", occ("a1", 0, true)), 0);
        let c = |to: &str| json!({"session": "a1", "to": to, "candidate": {"candidate": "x"}});
        let mut delivered = 0;
        for i in 0..5000 {
            delivered += s
                .on_candidate("alice-peer", added(&format!("-{i:06}"), c("S")))
                .candidates
                .len();
        }
        assert_eq!(delivered, MAX_CANDIDATES);
        assert_eq!(
            s.held_candidates(),
            MAX_CANDIDATES,
            "delivered, awaiting deletion"
        );
        let gone = s.take_discarded();
        assert_eq!(gone.len(), 5000 - MAX_CANDIDATES);
        assert_eq!(
            gone[0],
            ("alice-peer".into(), format!("-{MAX_CANDIDATES:06}"))
        );
        // A new exchange: a new allowance.
        let offer = json!({"session": "a1", "to": "S", "seq": 1, "sdp": "v=0"});
        assert!(s
            .on_inbox(Kind::Offer, added("alice-peer", offer))
            .offer
            .is_some());
        assert_eq!(
            s.on_candidate("alice-peer", added("-z", c("S")))
                .candidates
                .len(),
            1
        );
        // Addressed to an old session of mine: discarded, never held.
        for i in 0..1000 {
            assert!(s
                .on_candidate("alice-peer", added(&format!("-old{i}"), c("OLD")))
                .candidates
                .is_empty());
        }
        assert_eq!(s.take_discarded().len(), 1000);
        // From someone whose record has not arrived: held, but only so many.
        let early = json!({"session": "c1", "to": "S", "candidate": {"candidate": "y"}});
        for i in 0..1000 {
            s.on_candidate("carol-peer", added(&format!("-{i:04}"), early.clone()));
        }
        assert_eq!(s.take_discarded().len(), 1000 - MAX_PENDING);
        s.on_occupant(added("carol-peer", occ("c1", 0, true)), 0);
        assert_eq!(s.ready_from("carol-peer").candidates.len(), MAX_PENDING);
        // Carol rejoins: what comes late from her old session is a leftover...
        s.on_occupant(changed("carol-peer", occ("c2", 10, true)), 0);
        s.on_candidate("carol-peer", added("-late", early));
        assert_eq!(
            s.take_discarded(),
            [("carol-peer".to_owned(), "-late".to_owned())]
        );
        // ... and what comes early from her next one is held for it.
        let next = json!({"session": "c3", "to": "S", "candidate": {"candidate": "z"}});
        assert!(s
            .on_candidate("carol-peer", added("-next", next))
            .candidates
            .is_empty());
        assert!(s.take_discarded().is_empty());
        s.on_occupant(changed("carol-peer", occ("c3", 20, true)), 0);
        assert_eq!(s.ready_from("carol-peer").candidates.len(), 1);
    }

    #[test]
    fn leftovers_of_old_sessions_are_never_delivered() {
        let mut s = RoomState::new("bob-peer", "S2", 15_000);
        s.on_occupant(added("alice-peer", occ("a1", 0, true)), 0);
        // Addressed to my previous session.
        let old = json!({"session": "a1", "to": "S1", "seq": 9, "sdp": "old"});
        assert!(s
            .on_inbox(Kind::Offer, added("alice-peer", old))
            .offer
            .is_none());
        assert_eq!(s.stale_senders(), ["alice-peer"]);
        // From alice's previous session.
        let old = json!({"session": "a0", "to": "S2", "seq": 9, "sdp": "old"});
        assert!(s
            .on_inbox(Kind::Offer, changed("alice-peer", old))
            .offer
            .is_none());
        // A forged sender that is not in the room.
        let forged = json!({"session": "zz", "to": "S2", "seq": 1, "sdp": "evil"});
        assert!(s
            .on_inbox(Kind::Offer, added("mallory-peer", forged))
            .offer
            .is_none());
    }
}
