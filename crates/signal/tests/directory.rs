//! What the app's room list needs, against a real huddle-db: one room's listing by id, and the
//! live list with how many are in each public room.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::{pid, signaling, Peer, T};
use serde_json::json;
use signal::room::{DirectoryEvent, JoinOptions, Privacy, RoomDirectory, SignalError};

/// The next directory event; fails the test after `T`.
async fn next(dir: &mut RoomDirectory) -> DirectoryEvent {
    tokio::time::timeout(T, dir.next())
        .await
        .unwrap_or_else(|_| panic!("no directory event within {T:?}"))
        .expect("the directory ended")
}

/// Skips directory events until `id` is listed with `occupants`.
async fn until_listed(dir: &mut RoomDirectory, id: &str, occupants: Option<usize>) {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, dir.next()).await {
            Ok(Some(DirectoryEvent::Listed { id: got, listing }))
                if got == id && listing.occupants == occupants =>
            {
                return
            }
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the directory ended while waiting for {id} with {occupants:?}"),
            Err(_) => panic!("{id} was not listed with {occupants:?} within {T:?}"),
        }
    }
}

/// The id of `DirectoryEvent::Listed`, and its count.
fn listed(ev: &DirectoryEvent) -> Option<(&str, Option<usize>)> {
    match ev {
        DirectoryEvent::Listed { id, listing } => Some((id.as_str(), listing.occupants)),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_room_s_listing_is_read_by_id() {
    let (_dir, server) = common::server().await;
    let s = signaling(&server.url(), &pid("alice"));
    let public = s.create_room("Standup", Privacy::Public).await.unwrap();
    let private = s
        .create_room("Plans", Privacy::Private("hunter2".into()))
        .await
        .unwrap();

    let info = s.room_info(&public).await.unwrap();
    assert_eq!(info.name, "Standup");
    assert!(!info.secured);
    assert_eq!(info.created_by, pid("alice"));
    let info = s.room_info(&private).await.unwrap();
    assert!(info.secured && info.check.is_some());

    assert!(matches!(
        s.room_info(&"no-such-room".into()).await,
        Err(SignalError::NoSuchRoom)
    ));
    assert!(matches!(
        s.room_info(&"../rooms".into()).await,
        Err(SignalError::NoSuchRoom)
    ));

    // A listing that is not a room (only an administrator can write one past the rules): a
    // typed error, for showing and for joining alike.
    common::admin(&server.url())
        .set(
            "rooms/damaged",
            &json!({"name": 7, "secured": false, "createdAt": 1, "createdBy": "x"}),
        )
        .await
        .unwrap();
    assert!(matches!(
        s.room_info(&"damaged".into()).await,
        Err(SignalError::DamagedListing)
    ));
    assert!(matches!(
        s.join(&"damaged".into(), JoinOptions::new("Bob")).await,
        Err(SignalError::DamagedListing)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_counts_who_is_in_each_public_room() {
    // Over the shipped rules, which let nobody list `occupants/`: one stream per public room.
    let (_dir, server) = common::server().await;
    let url = server.url();
    let host = signaling(&url, &pid("host"));
    // A room with someone in it before the directory starts: the first load counts them.
    let early = host.create_room("Early", Privacy::Public).await.unwrap();
    let mut x = Peer::join(&url, &early, &pid("x")).await;

    let mut dir = signaling(&url, &pid("watcher")).watch_directory();
    until_listed(&mut dir, &early, Some(1)).await;

    let public = host.create_room("Standup", Privacy::Public).await.unwrap();
    let private = host
        .create_room("Plans", Privacy::Private("hunter2".into()))
        .await
        .unwrap();
    until_listed(&mut dir, &public, Some(0)).await;
    until_listed(&mut dir, &private, None).await;

    let a = Peer::join(&url, &public, &pid("a")).await;
    until_listed(&mut dir, &public, Some(1)).await;
    let b = Peer::join(&url, &public, &pid("b")).await;
    until_listed(&mut dir, &public, Some(2)).await;

    // Someone in the private room, heartbeats everywhere: nothing to report. The next event
    // is b leaving.
    let secret = JoinOptions {
        secret: Some("hunter2".into()),
        ..JoinOptions::new("c")
    };
    let _c = Peer::join_with(&url, &private, &pid("c"), secret).await;
    tokio::time::sleep(common::FAST.heartbeat * 3).await;
    b.h().leave().await.unwrap();
    let ev = next(&mut dir).await;
    assert_eq!(listed(&ev), Some((public.as_str(), Some(1))), "{ev:?}");

    a.h().leave().await.unwrap();
    let ev = next(&mut dir).await;
    assert_eq!(listed(&ev), Some((public.as_str(), Some(0))), "{ev:?}");

    x.h().leave().await.unwrap();
    x.handle = None;
    host.destroy_room(&public, None).await.unwrap();
    let mut removed = false;
    while !removed {
        match next(&mut dir).await {
            DirectoryEvent::Removed { id } => {
                assert_eq!(id, public);
                removed = true;
            }
            DirectoryEvent::Listed { id, listing } => {
                assert_eq!(
                    (id, listing.occupants),
                    (early.clone(), Some(0)),
                    "x left Early"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_lists_rooms_where_occupants_cannot_be_listed() {
    // The shipped rules refuse to list `occupants/` (a private room's space must stay
    // unguessable): the directory never asks for it, and the list works.
    let (_dir, server) = common::server().await;
    let s = signaling(&server.url(), &pid("alice"));
    let mut dir = s.watch_directory();
    assert_eq!(next(&mut dir).await, DirectoryEvent::Synced);
    let room = s.create_room("Standup", Privacy::Public).await.unwrap();
    loop {
        if let Some((id, _)) = listed(&next(&mut dir).await) {
            assert_eq!(room, id);
            break;
        }
    }
    s.destroy_room(&room, None).await.unwrap();
    assert_eq!(next(&mut dir).await, DirectoryEvent::Removed { id: room });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn someone_who_crashed_is_not_counted_once_their_record_falls_silent() {
    let (_dir, server) = common::server().await;
    let url = server.url();
    let host = signaling(&url, &pid("host"));
    let room = host.create_room("Standup", Privacy::Public).await.unwrap();
    // What a process killed mid-call leaves when nobody else is in the room to expire it: its
    // record, with nobody to refresh `seen`.
    let ghost = format!("occupants/{room}/{}", pid("ghost"));
    common::admin(&url)
        .set(
            &ghost,
            &json!({"name": "Ghost", "session": "s1", "joinedAt": 1, "seen": 1,
                    "streams": {"audio": true, "video": true, "screen": false}}),
        )
        .await
        .unwrap();

    let mut dir = signaling(&url, &pid("watcher")).watch_directory();
    until_listed(&mut dir, &room, Some(1)).await;
    // Past the expiry bound, unrefreshed: not counted, though the record is still there.
    until_listed(&mut dir, &room, Some(0)).await;
    assert!(
        !common::admin(&url).get(&ghost).await.unwrap().is_null(),
        "the record stays; only the count knows"
    );
    // Someone who heartbeats is counted for as long as they are in the room.
    let a = Peer::join(&url, &room, &pid("a")).await;
    until_listed(&mut dir, &room, Some(1)).await;
    tokio::time::sleep(common::FAST.expiry * 3).await;
    a.h().leave().await.unwrap();
    let ev = next(&mut dir).await;
    assert_eq!(
        listed(&ev),
        Some((room.as_str(), Some(0))),
        "a left: {ev:?}"
    );
}
