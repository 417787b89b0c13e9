//! The room protocol against a real huddle-db over sockets: rooms, membership, presence,
//! offers/answers/candidates, leave, crash, restart, destroy, private rooms, hostile nodes.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{pid, signaling, Peer, T};
use media::StreamConfig;
use serde_json::{json, Value};
use signal::room::{
    Candidate, JoinOptions, LeaveReason, Privacy, RoomEvent, RoomListEvent, SignalError,
};
use signal::rtdb::{ClientConfig, RtdbClient};

fn joined_id(ev: &RoomEvent) -> Option<(signal::PeerId, bool)> {
    match ev {
        RoomEvent::MemberJoined { member, i_offer } => Some((member.peer_id.clone(), *i_offer)),
        _ => None,
    }
}

/// Raw admin view of the database (the test server's secret reads everything).
async fn raw(url: &str, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{url}/{path}.json?auth={}", common::SECRET))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_are_created_listed_live_and_destroyed() {
    let (_dir, server) = common::server().await;
    let s = signaling(&server.url(), &pid("alice"));
    let mut list = s.watch_rooms();
    assert_eq!(list.next().await, Some(RoomListEvent::Synced));

    let public = s.create_room("Standup", Privacy::Public).await.unwrap();
    let private = s
        .create_room("Secret plans", Privacy::Private("hunter2".into()))
        .await
        .unwrap();
    let mut seen = BTreeMap::new();
    while seen.len() < 2 {
        if let Some(RoomListEvent::Added { id, info }) = list.next().await {
            seen.insert(id, info);
        }
    }
    assert_eq!(seen[&public].name, "Standup");
    assert!(!seen[&public].secured);
    assert!(seen[&private].secured);
    assert_eq!(s.list_rooms().await.unwrap().len(), 2);

    assert!(matches!(
        s.create_room("  ", Privacy::Public).await,
        Err(SignalError::Invalid(_))
    ));
    s.destroy_room(&public, None).await.unwrap();
    assert_eq!(
        list.next().await,
        Some(RoomListEvent::Removed { id: public.clone() })
    );
    assert!(matches!(
        s.join(&public, JoinOptions::new("x")).await,
        Err(SignalError::NoSuchRoom)
    ));
    assert!(matches!(
        s.destroy_room(&private, Some("wrong")).await,
        Err(SignalError::WrongSecret)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_peers_see_each_other_once_and_exactly_one_side_of_each_pair_offers() {
    let (_dir, server) = common::server().await;
    let url = server.url();
    let room = signaling(&url, &pid("host"))
        .create_room("Six", Privacy::Public)
        .await
        .unwrap();
    let names = ["f", "b", "d", "a", "e", "c"];
    let mut peers = Vec::new();
    for n in names {
        peers.push(Peer::join(&url, &room, &pid(n)).await);
    }
    let mut offers: BTreeSet<(signal::PeerId, signal::PeerId)> = BTreeSet::new();
    for p in &mut peers {
        let mut seen = BTreeMap::new();
        while seen.len() < names.len() - 1 {
            let ev = p.next().await;
            let (other, i_offer) =
                joined_id(&ev).unwrap_or_else(|| panic!("{}: unexpected {ev:?}", p.id));
            assert!(
                seen.insert(other.clone(), i_offer).is_none(),
                "{} saw {other} twice",
                p.id
            );
            if i_offer {
                offers.insert((p.id.clone(), other));
            }
        }
        // Heartbeats go on, but nothing else is reported.
        let extra = p.drain_for(Duration::from_millis(600)).await;
        assert!(extra.is_empty(), "{}: unexpected {extra:?}", p.id);
    }
    assert_eq!(offers.len(), 15, "one offerer per pair");
    for (a, b) in &offers {
        assert!(a < b, "the smaller id offers");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offer_answer_and_candidates_are_delivered_once_in_order_and_cleaned_up() {
    let (_dir, server) = common::server().await;
    let url = server.url();
    let (room, mut a, mut b) = common::pair(&url, "Pair").await;

    a.h()
        .send_offer(&pid("b"), "v=0 offer".into())
        .await
        .unwrap();
    for i in 0..5 {
        let c = Candidate {
            candidate: format!("candidate:{i}"),
            sdp_mid: Some("0".into()),
            sdp_m_line_index: Some(0),
            username_fragment: None,
        };
        a.h().send_candidate(&pid("b"), c).await.unwrap();
    }
    assert_eq!(
        b.next().await,
        RoomEvent::Offer {
            from: pid("a"),
            sdp: "v=0 offer".into()
        }
    );
    let mut lines = Vec::new();
    while lines.len() < 5 {
        match b.next().await {
            RoomEvent::Candidate { from, candidate } => {
                assert_eq!(from, pid("a"));
                lines.push(candidate.candidate);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        lines,
        (0..5).map(|i| format!("candidate:{i}")).collect::<Vec<_>>()
    );
    b.h()
        .send_answer(&pid("a"), "v=0 answer".into())
        .await
        .unwrap();
    assert_eq!(
        a.next().await,
        RoomEvent::Answer {
            from: pid("b"),
            sdp: "v=0 answer".into()
        }
    );

    // Consumed messages leave the inboxes; nothing is delivered twice.
    assert!(b.drain_for(Duration::from_millis(500)).await.is_empty());
    assert!(a.drain_for(Duration::from_millis(100)).await.is_empty());
    for kind in ["offers", "answers", "ice_candidates"] {
        assert_eq!(
            raw(&url, &format!("{kind}/{room}")).await,
            Value::Null,
            "{kind} not cleaned"
        );
    }
    // Messages to someone not in the room are refused with a clear error.
    let err = a
        .h()
        .send_offer(&"nobody-here".into(), "v=0".into())
        .await
        .unwrap_err();
    assert!(matches!(err, SignalError::NotInRoom(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_changes_leave_and_cleanup() {
    let (_dir, server) = common::server().await;
    let url = server.url();
    let (room, mut a, mut b) = common::pair(&url, "Room").await;
    b.h()
        .send_offer(&pid("a"), "v=0 renegotiate".into())
        .await
        .unwrap();
    let cam = StreamConfig {
        audio: true,
        video: true,
        screen: false,
    };
    b.h().set_streams(cam).await.unwrap();
    a.until(
        "streams",
        |e| matches!(e, RoomEvent::StreamsChanged { streams, .. } if *streams == cam),
    )
    .await;
    b.handle.take().unwrap().leave().await.unwrap();
    let left = a
        .until("leave", |e| matches!(e, RoomEvent::MemberLeft { .. }))
        .await;
    assert_eq!(
        left,
        RoomEvent::MemberLeft {
            peer_id: pid("b"),
            reason: LeaveReason::Left
        }
    );
    // Nothing of b's is left: record, inboxes, and what b sent to a.
    let occupants = raw(&url, &format!("occupants/{room}")).await;
    assert!(occupants.get(pid("b").as_str()).is_none(), "{occupants}");
    assert_eq!(raw(&url, &format!("offers/{room}")).await, Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_peer_expires_and_is_cleaned_up_by_the_others() {
    let (_dir, server) = common::server().await;
    let url = server.url();
    let room = signaling(&url, &pid("a"))
        .create_room("Crash", Privacy::Public)
        .await
        .unwrap();
    let mut a = Peer::join(&url, &room, &pid("a")).await;
    // b runs on a runtime of its own; shutting that down is a crash (no leave, no heartbeat).
    let (url2, room2) = (url.clone(), room.clone());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (crash_tx, crash_rx) = std::sync::mpsc::channel::<()>();
    let b_thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        // As a client that speaks only REST: no onDisconnect, so only expiry removes it.
        let opts = JoinOptions::new(pid("b")).without_on_disconnect();
        let b = rt.block_on(async move { Peer::join_with(&url2, &room2, &pid("b"), opts).await });
        ready_tx.send(()).unwrap();
        crash_rx.recv().unwrap();
        rt.shutdown_background();
        drop(b);
    });
    tokio::task::spawn_blocking(move || ready_rx.recv().unwrap())
        .await
        .unwrap();
    a.until("b", |e| joined_id(e).is_some()).await;
    a.h().send_offer(&pid("b"), "v=0".into()).await.unwrap();
    crash_tx.send(()).unwrap();
    tokio::task::spawn_blocking(move || b_thread.join().unwrap())
        .await
        .unwrap();
    let left = a
        .until("expiry", |e| matches!(e, RoomEvent::MemberLeft { .. }))
        .await;
    assert_eq!(
        left,
        RoomEvent::MemberLeft {
            peer_id: pid("b"),
            reason: LeaveReason::Expired
        }
    );
    common_wait(|| async { raw(&url, &format!("offers/{room}")).await.is_null() }).await;
    let occupants = raw(&url, &format!("occupants/{room}")).await;
    assert!(occupants.get(pid("b").as_str()).is_none());
}

/// With onDisconnect (the default), a crashed member is removed by the server the moment its
/// connection ends, long before any heartbeat expiry: its record, its inboxes and what it sent
/// to the others all go (`docs/protocol.md` §4b).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_peer_is_removed_at_once_by_on_disconnect() {
    let (_dir, server) = common::server().await;
    let url = server.url();
    // Production presence timing: expiry would take 15 s.
    let slow = signal::room::Timing::default();
    let room = signaling(&url, &pid("a"))
        .create_room("Crash", Privacy::Public)
        .await
        .unwrap();
    let (a_handle, mut a_events) = signaling(&url, &pid("a"))
        .with_timing(slow)
        .join(&room, JoinOptions::new("a"))
        .await
        .unwrap();
    let (url2, room2) = (url.clone(), room.clone());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (crash_tx, crash_rx) = std::sync::mpsc::channel::<()>();
    let b_thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let b = rt.block_on(async move {
            let (h, mut ev) = signaling(&url2, &pid("b"))
                .with_timing(slow)
                .join(&room2, JoinOptions::new("b"))
                .await
                .unwrap();
            // Until a is seen, and b's offer to a is written and the link is armed.
            while !matches!(ev.recv().await, Some(RoomEvent::MemberJoined { .. })) {}
            h.send_offer(&pid("a"), "v=0".into()).await.unwrap();
            (h, ev)
        });
        ready_tx.send(()).unwrap();
        crash_rx.recv().unwrap();
        rt.shutdown_background();
        drop(b);
    });
    tokio::task::spawn_blocking(move || ready_rx.recv().unwrap())
        .await
        .unwrap();
    common_wait(|| async {
        !raw(&url, &format!("offers/{room}/{}", pid("a")))
            .await
            .is_null()
    })
    .await;
    // Give the link time to register what b sent a (it follows the join).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let crashed = tokio::time::Instant::now();
    crash_tx.send(()).unwrap();
    tokio::task::spawn_blocking(move || b_thread.join().unwrap())
        .await
        .unwrap();
    let left = loop {
        let ev = tokio::time::timeout(T, a_events.recv())
            .await
            .expect("b's departure within 10 s")
            .expect("a's room goes on");
        if let RoomEvent::MemberLeft { .. } = ev {
            break ev;
        }
    };
    assert_eq!(
        left,
        RoomEvent::MemberLeft {
            peer_id: pid("b"),
            reason: LeaveReason::Left
        },
        "removed by the server, not expired"
    );
    assert!(
        crashed.elapsed() < slow.expiry,
        "b was only removed after the heartbeat expiry"
    );
    assert!(raw(&url, &format!("occupants/{room}/{}", pid("b")))
        .await
        .is_null());
    assert!(raw(&url, &format!("offers/{room}/{}", pid("a")))
        .await
        .is_null());
    a_handle.leave().await.unwrap();
    drop(a_handle);
    drop(a_events);
}

async fn common_wait<F, Fut>(cond: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + T;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {T:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejoin_after_a_crash_gets_a_new_session_and_no_leftovers() {
    let (_dir, server) = common::server().await;
    let url = server.url();
    let (room, mut a, mut b) = common::pair(&url, "Again").await;
    // a sends b an offer that b never answers; then b "crashes" and comes back at once.
    a.h()
        .send_offer(&pid("b"), "v=0 for the old b".into())
        .await
        .unwrap();
    b.until("offer", |e| matches!(e, RoomEvent::Offer { .. }))
        .await;
    std::mem::forget(b.handle.take());
    let mut b2 = Peer::join(&url, &room, &pid("b")).await;
    assert_eq!(joined_id(&b2.next().await), Some((pid("a"), false)));
    let extra = b2.drain_for(Duration::from_millis(500)).await;
    assert!(
        extra.iter().all(|e| !matches!(e, RoomEvent::Offer { .. })),
        "a leftover was delivered: {extra:?}"
    );
    let ev = a
        .until("rejoin", |e| matches!(e, RoomEvent::MemberLeft { .. }))
        .await;
    assert_eq!(
        ev,
        RoomEvent::MemberLeft {
            peer_id: pid("b"),
            reason: LeaveReason::Rejoined
        }
    );
    assert_eq!(joined_id(&a.next().await), Some((pid("b"), true)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_is_survived_without_duplicates_or_losses() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::server_at(dir.path(), 0).await;
    let port = server.addr().port();
    let url = server.url();
    let (room, mut a, mut b) = common::pair(&url, "Restart").await;
    server.shutdown().await;
    a.until("lost", |e| matches!(e, RoomEvent::SignalingLost(_)))
        .await;
    let server = common::server_at(dir.path(), port).await;
    // Until signaling is back, nothing but connection news: no member is reported again.
    loop {
        match a.next().await {
            RoomEvent::SignalingRestored => break,
            RoomEvent::SignalingLost(_) => {}
            other => panic!("unexpected while reconnecting: {other:?}"),
        }
    }
    // Life goes on: a newcomer is seen once, messages flow.
    let _c = Peer::join(&url, &room, &pid("c")).await;
    assert_eq!(
        joined_id(&a.until("c", |e| joined_id(e).is_some()).await),
        Some((pid("c"), true))
    );
    a.h()
        .send_offer(&pid("b"), "v=0 after restart".into())
        .await
        .unwrap();
    b.until("offer", |e| matches!(e, RoomEvent::Offer { .. }))
        .await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroying_an_occupied_room_closes_it_for_everyone() {
    let (_dir, server) = common::server().await;
    let url = server.url();
    let owner = signaling(&url, &pid("a"));
    let (room, mut a, mut b) = common::pair(&url, "Short-lived").await;
    owner.destroy_room(&room, None).await.unwrap();
    a.until("closed", |e| *e == RoomEvent::RoomClosed).await;
    b.until("closed", |e| *e == RoomEvent::RoomClosed).await;
    for node in ["occupants", "offers", "answers", "ice_candidates", "rooms"] {
        let v = raw(&url, node).await;
        assert!(
            v.get(room.as_str()).is_none(),
            "{node} still has the room: {v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_room_needs_its_secret_and_hides_its_signaling() {
    let (_dir, server) = common::server().await;
    let url = server.url();
    let secret = "correct horse battery staple";
    let room = signaling(&url, &pid("a"))
        .create_room("Private", Privacy::Private(secret.into()))
        .await
        .unwrap();
    let s = signaling(&url, &pid("m"));
    assert!(matches!(
        s.join(&room, JoinOptions::new("m")).await,
        Err(SignalError::SecretRequired)
    ));
    let wrong = JoinOptions {
        secret: Some("Tr0ub4dor".into()),
        ..JoinOptions::new("m")
    };
    assert!(matches!(
        s.join(&room, wrong).await,
        Err(SignalError::WrongSecret)
    ));

    let opts = |n: &str| JoinOptions {
        secret: Some(secret.into()),
        ..JoinOptions::new(n)
    };
    let mut a = Peer::join_with(&url, &room, &pid("a"), opts("Ann")).await;
    let mut b = Peer::join_with(&url, &room, &pid("b"), opts("Bob")).await;
    a.next().await;
    b.next().await;
    // The operator watches candidates go by (they are consumed as soon as b reads them).
    let mut watch = reqwest::Client::new()
        .get(format!("{url}/ice_candidates.json?auth={}", common::SECRET))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    a.h()
        .send_offer(&pid("b"), "v=0 private sdp 192.0.2.7".into())
        .await
        .unwrap();
    let c = Candidate {
        candidate: "candidate:1 1 udp 1 192.0.2.7 5000 typ host".into(),
        sdp_mid: None,
        sdp_m_line_index: Some(0),
        username_fragment: None,
    };
    a.h().send_candidate(&pid("b"), c.clone()).await.unwrap();

    // The operator's view: the payloads are sealed.
    let offers = raw(&url, "offers").await.to_string();
    assert!(
        !offers.contains("192.0.2.7") && offers.contains("\"enc\""),
        "{offers}"
    );
    let mut seen = String::new();
    while !seen.contains("\"enc\"") {
        let chunk = tokio::time::timeout(T, watch.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(!seen.contains("192.0.2.7"), "{seen}");
    // The members' view: plain.
    assert_eq!(
        b.next().await,
        RoomEvent::Offer {
            from: pid("a"),
            sdp: "v=0 private sdp 192.0.2.7".into()
        }
    );
    assert_eq!(
        b.next().await,
        RoomEvent::Candidate {
            from: pid("a"),
            candidate: c
        }
    );

    // A signed-in user without the secret can neither list nor find the room's signaling;
    // one not signed in can read nothing at all.
    let nobody = RtdbClient::new(ClientConfig::new(url.as_str())).unwrap();
    for node in ["rooms", "occupants", "/", &format!("occupants/{room}")] {
        let err = nobody.get(node).await.unwrap_err();
        assert!(err.is_permission_denied(), "{node}: {err}");
    }
    let anon = common::client_as(&url, "outsider-peer-id");
    for node in ["occupants", "offers", "answers", "ice_candidates", "/"] {
        let err = anon.get(node).await.unwrap_err();
        assert!(err.is_permission_denied(), "{node}: {err}");
    }
    assert_eq!(
        anon.get(&format!("occupants/{room}")).await.unwrap(),
        Value::Null,
        "the room id is not its space"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_nodes_are_ignored_and_the_room_goes_on() {
    let (_dir, server) = common::server().await;
    let url = server.url();
    let room = signaling(&url, &pid("a"))
        .create_room("Hostile", Privacy::Public)
        .await
        .unwrap();
    let mut a = Peer::join(&url, &room, &pid("a")).await;
    // Written as the server's admin (its secret), past the rules' validation: what a
    // buggy or hostile writer leaves on a server without those rules.
    let admin = reqwest::Client::new();
    let junk = [
        (
            format!("occupants/{room}/mallory-1"),
            json!({"name": 42, "session": [], "seen": "soon"}),
        ),
        (
            format!("occupants/{room}/mallory-2"),
            json!("just a string"),
        ),
        (
            format!("occupants/{room}/mallory-3"),
            json!({"name": "x".repeat(5000), "session": "s", "joinedAt": 1, "seen": 1, "streams": {"audio": true, "video": true, "screen": true}}),
        ),
        (
            format!("offers/{room}/{}/mallory-1", pid("a")),
            json!({"session": "s", "to": "t", "seq": -1, "sdp": 5}),
        ),
        (
            format!("offers/{room}/{}/ghost-peer", pid("a")),
            json!({"session": "s", "to": "t", "seq": 1, "sdp": "v=0 forged"}),
        ),
        (
            format!("ice_candidates/{room}/{}/mallory-1", pid("a")),
            json!({"x": {"candidate": {"candidate": "c".repeat(10_000)}}}),
        ),
        (
            format!("answers/{room}/{}", pid("a")),
            json!(["array", "of", "junk"]),
        ),
    ];
    for (path, v) in &junk {
        let resp = admin
            .put(format!("{url}/{path}.json?auth={}", common::SECRET))
            .json(v)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
    }
    let noise = a.drain_for(Duration::from_millis(500)).await;
    assert!(noise.is_empty(), "junk produced events: {noise:?}");
    let _b = Peer::join(&url, &room, &pid("b")).await;
    assert_eq!(
        joined_id(&a.until("b", |e| joined_id(e).is_some()).await),
        Some((pid("b"), true))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_whose_record_was_removed_rejoins_with_a_new_session() {
    let (_dir, server) = common::server().await;
    let url = server.url();
    let (room, mut a, mut b) = common::pair(&url, "Evict").await;
    // As if b had been expired by the others while its machine slept.
    let resp = reqwest::Client::new()
        .delete(format!(
            "{url}/occupants/{room}/{}.json?auth={}",
            pid("b"),
            common::SECRET
        ))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    assert_eq!(b.next().await, RoomEvent::Evicted);
    assert!(matches!(b.next().await, RoomEvent::Joined { .. }));
    assert_eq!(joined_id(&b.next().await), Some((pid("a"), false)));
    // a sees b go and come back.
    let left = a
        .until("left", |e| matches!(e, RoomEvent::MemberLeft { .. }))
        .await;
    assert_eq!(
        left,
        RoomEvent::MemberLeft {
            peer_id: pid("b"),
            reason: LeaveReason::Left
        }
    );
    assert_eq!(joined_id(&a.next().await), Some((pid("b"), true)));
}
