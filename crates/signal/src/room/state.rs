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
    candidates: BTreeMap<String, Value>,
    /// Highest seq accepted per (sender, sender session), per kind.
    last_offer: BTreeMap<(String, String), u64>,
    last_answer: BTreeMap<(String, String), u64>,
    delivered_candidates: BTreeSet<(String, String)>,
    expiring: BTreeSet<(String, String)>,
    /// My earlier sessions in this room: events about them still queued are history, not a
    /// takeover.
    past_sessions: Vec<String>,
    /// The foreign session I last reclaimed my record from, until my own record is back.
    taken_by: Option<String>,
}

/// How many of my earlier sessions are remembered (a few rejoins' worth of queued events).
const PAST_SESSIONS: usize = 8;

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
            candidates: BTreeMap::new(),
            last_offer: BTreeMap::new(),
            last_answer: BTreeMap::new(),
            delivered_candidates: BTreeSet::new(),
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
        self.candidates.remove(peer);
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
        self.delivered_candidates.retain(|(from, _)| from != peer);
    }

    /// Members whose heartbeat is older than the bound, each reported once per session.
    pub fn newly_expired(&mut self, local_now_ms: i64) -> Vec<Member> {
        let Some(now) = self.server_now(local_now_ms) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for m in self.members.values() {
            if now - m.seen > self.expiry_ms
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
            Kind::Candidate => &mut self.candidates,
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
            let accepted = AcceptedSdp {
                from: from.into(),
                record: rec,
            };
            match kind {
                Kind::Offer => out.offer = Some(accepted),
                _ => out.answer = Some(accepted),
            }
        }
        if let Some(Value::Object(map)) = self.candidates.get(from) {
            // Push ids sort by time: BTreeMap iteration is push order.
            for (id, raw) in map {
                let rec = match CandidateRecord::from_value(raw) {
                    Ok(rec) => rec,
                    Err(error) => {
                        tracing::warn!(%from, %id, %error, "ignoring a malformed candidate");
                        continue;
                    }
                };
                if rec.to != self.session || rec.session != sender_session {
                    continue;
                }
                if self
                    .delivered_candidates
                    .insert((from.to_owned(), id.clone()))
                {
                    out.candidates.push(AcceptedCandidate {
                        from: from.into(),
                        id: id.clone(),
                        record: rec,
                    });
                }
            }
        }
        out
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
            s.newly_expired(10_000).is_empty(),
            "alice is 15 s old: not yet"
        );
        let gone = s.newly_expired(10_001 + 1);
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
        // Candidates in push order, each once.
        let c = |n: &str| json!({"session": "a1", "to": "S", "candidate": {"candidate": n, "sdpMid": "0", "sdpMLineIndex": 0}});
        let first = s.on_inbox(
            Kind::Candidate,
            added("alice-peer", json!({"-B": c("2"), "-A": c("1")})),
        );
        let lines: Vec<_> = first
            .candidates
            .iter()
            .map(|c| c.record.candidate.as_ref().unwrap().candidate.clone())
            .collect();
        assert_eq!(lines, ["1", "2"]);
        let more = s.on_inbox(
            Kind::Candidate,
            changed(
                "alice-peer",
                json!({"-A": c("1"), "-B": c("2"), "-C": c("3")}),
            ),
        );
        assert_eq!(more.candidates.len(), 1);
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
