//! A hostile third client, writing over REST with the admin secret (so no rules stop it),
//! against real participants in a room on a real huddle-db: issue 18, "Peers". Each test names
//! the item it covers; each failed on the code before its fix.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::time::Duration;

use common::pid;
use serde_json::{json, Value};
use signal::room::RoomEvent;
use signal::RoomId;

/// The session in `peer`'s occupant record, as the database holds it.
async fn session_of(url: &str, room: &RoomId, peer: &str) -> String {
    let rec = common::admin(url)
        .get(&format!("occupants/{room}/{peer}"))
        .await
        .unwrap();
    rec["session"].as_str().unwrap_or_default().to_owned()
}

fn forged_record(session: &str) -> Value {
    json!({"name": "a", "session": session, "joinedAt": {".sv": "timestamp"},
           "seen": {".sv": "timestamp"},
           "streams": {"audio": true, "video": true, "screen": false}})
}

fn member_session(ev: &RoomEvent, who: &str) -> Option<String> {
    match ev {
        RoomEvent::MemberJoined { member, .. } if member.peer_id.as_str() == who => {
            Some(member.session.clone())
        }
        _ => None,
    }
}

/// Item 2: a full occupant record PUT over A's, with another session, made B drop A for good
/// and believe the writer. A now takes its record back with a new session; B follows A's new
/// session, not the forged one, and a replayed offer in the forged session is not answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_occupant_record_is_reclaimed_by_its_owner() {
    let (_dir, server) = common::server().await;
    let url = server.url();
    let (room, mut a, mut b) = common::pair(&url, "Forged").await;
    let (a_id, b_id) = (pid("a"), pid("b"));
    let original = session_of(&url, &room, &a_id).await;
    let forged = "forgedforgedforg";
    let admin = common::admin(&url);
    admin
        .set(&format!("occupants/{room}/{a_id}"), &forged_record(forged))
        .await
        .unwrap();

    a.until("the reclaim", |e| matches!(e, RoomEvent::Reclaimed))
        .await;
    let RoomEvent::Joined { session: mine } = a.next().await else {
        panic!("a: no new session after the reclaim");
    };
    assert!(mine != original && mine != forged);
    let seen = b
        .until("a under its own new session", |e| {
            member_session(e, &a_id).is_some_and(|s| s == mine)
        })
        .await;
    assert!(member_session(&seen, &a_id).is_some());
    // The record stays A's (A's heartbeats refresh its own record, not the writer's).
    tokio::time::sleep(common::FAST.heartbeat * 3).await;
    assert_eq!(session_of(&url, &room, &a_id).await, mine);

    // A replayed offer "from A" in the forged session is not delivered; A's real one is.
    let b_session = session_of(&url, &room, &b_id).await;
    admin
        .set(
            &format!("offers/{room}/{b_id}/{a_id}"),
            &json!({"session": forged, "to": b_session, "seq": 1, "sdp": "v=0 forged"}),
        )
        .await
        .unwrap();
    let after = b.drain_for(Duration::from_millis(800)).await;
    assert!(
        !after.iter().any(|e| matches!(e, RoomEvent::Offer { .. })),
        "{after:?}"
    );
    a.h().send_offer(&b_id, "v=0 real".into()).await.unwrap();
    let got = b
        .until("a's real offer", |e| matches!(e, RoomEvent::Offer { .. }))
        .await;
    assert_eq!(
        got,
        RoomEvent::Offer {
            from: a_id.clone(),
            sdp: "v=0 real".into()
        }
    );
    drop(a);
}

/// Item 2, the limit: two writers that keep taking the same record (a second copy of the app
/// with the same identity) do not rejoin against each other forever: after a few reclaims in a
/// minute the room ends with words that say why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_taken_again_and_again_ends_the_room_with_a_reason() {
    let (_dir, server) = common::server().await;
    let url = server.url();
    let (room, mut a, _b) = common::pair(&url, "Twins").await;
    let admin = common::admin(&url);
    let path = format!("occupants/{room}/{}", pid("a"));
    let mut reclaims = 0;
    for i in 0..10 {
        admin
            .set(&path, &forged_record(&format!("forgedforged{i:04}")))
            .await
            .unwrap();
        let ev = a
            .until("a reclaim or the end", |e| {
                matches!(e, RoomEvent::Reclaimed | RoomEvent::Failed(_))
            })
            .await;
        match ev {
            RoomEvent::Reclaimed => {
                reclaims += 1;
                // Wait for the new record to be back before taking it again.
                a.until("the new session", |e| matches!(e, RoomEvent::Joined { .. }))
                    .await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            RoomEvent::Failed(why) => {
                assert!(why.contains("same identity"), "{why}");
                assert_eq!(reclaims, 3);
                return;
            }
            _ => unreachable!(),
        }
    }
    panic!("reclaimed {reclaims} times without giving up");
}

/// Item 4: `rooms/<room>` set to something that is not an object ended the call for everyone
/// (`room_closed`). A malformed room record is ignored; only `null` ends the room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_record_overwritten_with_a_non_object_does_not_end_the_call() {
    let (_dir, server) = common::server().await;
    let url = server.url();
    let (room, mut a, mut b) = common::pair(&url, "Overwritten").await;
    let admin = common::admin(&url);
    let path = format!("rooms/{room}");
    let listing = admin.get(&path).await.unwrap();
    for junk in [
        json!("garbage"),
        json!(42),
        json!([1, 2]),
        json!({"name": 7}),
    ] {
        admin.set(&path, &junk).await.unwrap();
        for p in [&mut a, &mut b] {
            let evs = p.drain_for(Duration::from_millis(400)).await;
            assert!(
                !evs.iter().any(|e| matches!(e, RoomEvent::RoomClosed)),
                "{}: {junk} ended the room: {evs:?}",
                p.id
            );
        }
    }
    // Still a call: signaling goes through.
    a.h()
        .send_offer(&pid("b"), "v=0 still".into())
        .await
        .unwrap();
    b.until("the offer", |e| matches!(e, RoomEvent::Offer { .. }))
        .await;
    // A real end is still seen, from the malformed record too (the room's data goes with it).
    let mut destroy = serde_json::Map::new();
    for p in ["rooms", "occupants", "offers", "answers", "ice_candidates"] {
        destroy.insert(format!("{p}/{room}"), Value::Null);
    }
    admin.update("/", &destroy).await.unwrap();
    a.until("closed", |e| *e == RoomEvent::RoomClosed).await;
    b.until("closed", |e| *e == RoomEvent::RoomClosed).await;
    // And from a well-formed record deleted alone.
    let (room, mut c, _d) = common::pair(&url, "Plain").await;
    assert!(listing.is_object());
    admin.delete(&format!("rooms/{room}")).await.unwrap();
    c.until("closed", |e| *e == RoomEvent::RoomClosed).await;
}

/// Item 5: occupants under keys that are no peer ids (unicode, 700 characters) were taken as
/// members, and names with terminal escapes or right-to-left overrides were shown as they are.
/// Such keys are ignored; names are neutralised (each control or bidi character shown as
/// U+FFFD).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_occupant_keys_are_no_members_and_names_are_neutralised() {
    let (_dir, server) = common::server().await;
    let url = server.url();
    let (room, _a, mut b) = common::pair(&url, "Odd").await;
    let admin = common::admin(&url);
    let rec = |name: &str| {
        json!({"name": name, "session": "mallorysession01", "joinedAt": {".sv": "timestamp"},
               "seen": {".sv": "timestamp"},
               "streams": {"audio": false, "video": false, "screen": false}})
    };
    let long = "x".repeat(700);
    for key in ["ünïcode-peer-id", long.as_str(), "short"] {
        admin
            .set(&format!("occupants/{room}/{key}"), &rec("Mallory"))
            .await
            .unwrap();
    }
    admin
        .set(
            &format!("occupants/{room}/mallory-peer-id"),
            &rec("Eve\u{1b}[2J\u{202e}gpj.exe"),
        )
        .await
        .unwrap();
    let ev = b
        .until("a member", |e| matches!(e, RoomEvent::MemberJoined { .. }))
        .await;
    let RoomEvent::MemberJoined { member, .. } = ev else {
        unreachable!()
    };
    assert_eq!(member.peer_id.as_str(), "mallory-peer-id", "{member:?}");
    assert_eq!(member.name, "Eve\u{FFFD}[2J\u{FFFD}gpj.exe");
    let more = b.drain_for(Duration::from_millis(500)).await;
    assert!(
        !more
            .iter()
            .any(|e| matches!(e, RoomEvent::MemberJoined { .. })),
        "{more:?}"
    );
}

/// Item 3: an offer (or answer) to A "from B", in B's real session, with `seq` = u64::MAX made A
/// refuse every later message of B's session (renegotiation and ICE restarts never complete).
/// Such a seq is refused, and B's real messages still go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_seq_does_not_block_later_offers_and_answers() {
    let (_dir, server) = common::server().await;
    let url = server.url();
    let (room, mut a, b) = common::pair(&url, "Seq").await;
    let (a_id, b_id) = (pid("a"), pid("b"));
    let admin = common::admin(&url);
    let (a_session, b_session) = (
        session_of(&url, &room, &a_id).await,
        session_of(&url, &room, &b_id).await,
    );
    for kind in ["offers", "answers"] {
        admin
            .set(
                &format!("{kind}/{room}/{a_id}/{b_id}"),
                &json!({"session": b_session, "to": a_session, "seq": u64::MAX,
                        "sdp": "v=0 poison"}),
            )
            .await
            .unwrap();
    }
    b.h()
        .send_offer(&a_id, "v=0 real offer".into())
        .await
        .unwrap();
    let got = a
        .until("b's offer", |e| matches!(e, RoomEvent::Offer { .. }))
        .await;
    assert_eq!(
        got,
        RoomEvent::Offer {
            from: b_id.clone(),
            sdp: "v=0 real offer".into()
        }
    );
    b.h()
        .send_answer(&a_id, "v=0 real answer".into())
        .await
        .unwrap();
    let got = a
        .until("b's answer", |e| matches!(e, RoomEvent::Answer { .. }))
        .await;
    assert_eq!(
        got,
        RoomEvent::Answer {
            from: b_id.clone(),
            sdp: "v=0 real answer".into()
        }
    );
    // And a renegotiation after that.
    b.h().send_offer(&a_id, "v=0 again".into()).await.unwrap();
    let got = a
        .until("b's next offer", |e| matches!(e, RoomEvent::Offer { .. }))
        .await;
    assert!(matches!(got, RoomEvent::Offer { sdp, .. } if sdp == "v=0 again"));
}

/// How many children the database holds at `path` (0 when absent; `usize::MAX` when it
/// cannot tell: the old code's A kept the server too busy to answer).
async fn children(url: &str, path: &str) -> usize {
    match common::admin(url).get(path).await {
        Ok(Value::Object(m)) => m.len(),
        Ok(Value::Null) => 0,
        Ok(_) => 1,
        Err(_) => usize::MAX,
    }
}

/// Pushes `n` candidates to `path` with `session`/`to`, from 8 writers at once.
async fn flood(url: &str, path: &str, session: &str, to: &str, n: usize) {
    let mut writers = Vec::new();
    for w in 0..8 {
        let (admin, path) = (common::admin(url), path.to_owned());
        let rec = json!({"session": session, "to": to,
                         "candidate": {"candidate": format!("candidate:{w} 1 udp 2122260223 10.0.0.{w} 40000 typ host"),
                                       "sdpMid": "0", "sdpMLineIndex": 0}});
        writers.push(tokio::spawn(async move {
            for _ in 0..n / 8 {
                admin.push(&path, &rec).await.unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
}

/// Item 1: 5,000 candidates pushed "from B" to A, in B's session, took A to 4.7 GB (every push
/// re-delivered B's whole queue, and every held candidate was parsed again) and all were
/// handed to the engine; 100,000 to a stale session of A's stayed in the database and in A's
/// memory. Now A delivers at most MAX_CANDIDATES per sender session, deletes the rest unread
/// (and everything addressed to a session not its own), and the call goes on: B's next offer,
/// A's answer and B's candidates after it go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_flood_is_bounded_deleted_and_the_call_goes_on() {
    let (_dir, server) = common::server().await;
    let url = server.url();
    let (room, mut a, mut b) = common::pair(&url, "Flood").await;
    let (a_id, b_id) = (pid("a"), pid("b"));
    let (a_session, b_session) = (
        session_of(&url, &room, &a_id).await,
        session_of(&url, &room, &b_id).await,
    );
    let slot = format!("ice_candidates/{room}/{a_id}/{b_id}");
    const FLOOD: usize = 12_000;
    const STALE: usize = 4_000;
    let flooding = {
        let (url, slot, b_session, a_session) = (
            url.clone(),
            slot.clone(),
            b_session.clone(),
            a_session.clone(),
        );
        tokio::spawn(async move {
            flood(&url, &slot, &b_session, &a_session, FLOOD).await;
            flood(&url, &slot, &b_session, "stalestalestale1", STALE).await;
        })
    };
    // A takes its allowance and deletes the rest; the queue empties once the writers stop.
    let mut delivered = 0;
    let mut done = false;
    for _ in 0..240 {
        delivered += a
            .drain_for(Duration::from_millis(250))
            .await
            .iter()
            .filter(|e| matches!(e, RoomEvent::Candidate { from, .. } if *from == b_id))
            .count();
        if !done && flooding.is_finished() {
            done = true;
        }
        if done && children(&url, &slot).await == 0 {
            break;
        }
    }
    flooding.await.unwrap();
    let left = children(&url, &slot).await;
    assert_eq!(left, 0, "A left {left} of the flood in its inbox");
    assert_eq!(
        delivered,
        signal::room::MAX_CANDIDATES,
        "delivered to the engine"
    );

    // The call goes on: a renegotiation from B, and its candidates (a new allowance).
    b.h().send_offer(&a_id, "v=0 after".into()).await.unwrap();
    let got = a
        .until("b's offer", |e| matches!(e, RoomEvent::Offer { .. }))
        .await;
    assert!(matches!(got, RoomEvent::Offer { sdp, .. } if sdp == "v=0 after"));
    a.h().send_answer(&b_id, "v=0 answer".into()).await.unwrap();
    b.until("a's answer", |e| matches!(e, RoomEvent::Answer { .. }))
        .await;
    let real = signal::room::Candidate {
        candidate: "candidate:9 1 udp 2122260223 127.0.0.1 40009 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
        username_fragment: None,
    };
    b.h().send_candidate(&a_id, real.clone()).await.unwrap();
    let got = a
        .until("b's candidate", |e| {
            matches!(e, RoomEvent::Candidate { .. })
        })
        .await;
    assert_eq!(
        got,
        RoomEvent::Candidate {
            from: b_id.clone(),
            candidate: real
        }
    );
}
