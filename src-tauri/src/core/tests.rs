//! The app core without Tauri: real embedded databases, real calls on loopback with the test
//! pattern and tone, and a recording outlet in place of the window.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use devices::DeviceChoice;
use tokio::sync::Notify;

use super::*;
use crate::settings::{Database, Devices};

/// Every event the core emitted, in order.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<UiEvent>>,
    more: Notify,
}

impl Outlet for Recorder {
    fn emit(&self, ev: UiEvent, _view: &View) {
        self.events.lock().unwrap().push(ev);
        self.more.notify_waiters();
    }
}

impl Recorder {
    /// The first event since `from` that `f` picks, waiting at most 30 s for it.
    async fn wait<T>(&self, what: &str, from: usize, f: impl Fn(&UiEvent) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let more = self.more.notified();
            if let Some(v) = self.events.lock().unwrap()[from..].iter().find_map(&f) {
                return v;
            }
            if tokio::time::timeout_at(deadline, more).await.is_err() {
                let seen: Vec<String> = self.events.lock().unwrap()[from..]
                    .iter()
                    .map(|e| format!("{e:?}"))
                    .collect();
                panic!("timed out waiting for {what}; seen: {seen:#?}");
            }
        }
    }

    fn len(&self) -> usize {
        self.events.lock().unwrap().len()
    }
}

struct App {
    core: Core,
    events: Arc<Recorder>,
    _dir: tempfile::TempDir,
}

/// A core whose settings say `name`, the test sources and `database`, running on this runtime.
fn app(name: &str, database: Database) -> App {
    let dir = tempfile::tempdir().unwrap();
    let folders = Folders {
        config: dir.path().join("config"),
        data: dir.path().join("data"),
    };
    std::fs::create_dir_all(&folders.config).unwrap();
    let settings = Settings {
        name: name.into(),
        database,
        devices: Devices {
            camera: DeviceChoice::Synthetic,
            microphone: DeviceChoice::Synthetic,
            speaker: DeviceChoice::Off,
            display: DeviceChoice::Synthetic,
        },
        ..Settings::default()
    };
    Store::new(&folders.config).save(&settings).unwrap();
    let options = Options {
        loopback_only: true,
        capture: Capture {
            width: 160,
            height: 96,
            fps: 10,
        },
        ..Options::default()
    };
    let events = Arc::new(Recorder::default());
    let (core, task) = Core::new(folders, options, events.clone());
    tokio::spawn(task.run());
    App {
        core,
        events,
        _dir: dir,
    }
}

fn rooms(ev: &UiEvent) -> Option<&Vec<crate::events::RoomView>> {
    match ev {
        UiEvent::Rooms { rooms } => Some(rooms),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_from_create_to_leave_with_the_room_list_following() {
    let a = app("Ann", Database::Embedded);
    assert_eq!(
        a.core.settings().name,
        "Ann",
        "the settings are there at once"
    );
    let room = a.core.create_room("Standup", None).await.unwrap();
    let from = 0;
    a.events
        .wait("the new room in the list", from, |ev| {
            rooms(ev)?
                .iter()
                .find(|r| r.id == room && r.mine && r.occupants == Some(0))
                .map(drop)
        })
        .await;

    let from = a.events.len();
    a.core.join(&room, None, None).await.unwrap();
    // The answer comes after the events: the view already shows the call.
    let (in_room, streams) = a.core.current_call().expect("in the call");
    assert_eq!(in_room, room);
    assert!(
        streams.audio && streams.video,
        "joined with mic and camera: {streams:?}"
    );
    a.events
        .wait("joined", from, |ev| match ev {
            UiEvent::Joined { room: r, name, .. } if *r == room && name == "Standup" => Some(()),
            _ => None,
        })
        .await;
    a.events
        .wait("my presence counted in the list", from, |ev| {
            rooms(ev)?
                .iter()
                .find(|r| r.id == room && r.occupants == Some(1))
                .map(drop)
        })
        .await;
    assert_eq!(
        a.core.settings().recent[0].id,
        room,
        "remembered for quick-join"
    );

    let now = a.core.set_stream(MediaKind::Video, false).await.unwrap();
    assert!(!now.video && now.audio);
    let now = a.core.toggle_stream(MediaKind::Audio).await.unwrap();
    assert!(!now.audio, "toggled the microphone off");
    assert_eq!(a.core.current_call().map(|c| c.1), Some(now));

    let from = a.events.len();
    a.core.leave("you left").await;
    assert_eq!(a.core.current_call(), None);
    a.events
        .wait("left", from, |ev| match ev {
            UiEvent::Left {
                room: r, reason, ..
            } if *r == room && reason == "you left" => Some(()),
            _ => None,
        })
        .await;
    a.events
        .wait("my presence gone from the list", from, |ev| {
            rooms(ev)?
                .iter()
                .find(|r| r.id == room && r.occupants == Some(0))
                .map(drop)
        })
        .await;
    let err = a.core.set_stream(MediaKind::Video, true).await.unwrap_err();
    assert_eq!(err.message, "you are not in a call");
    a.core.shutdown().await;
    let err = a.core.create_room("After", None).await.unwrap_err();
    assert_eq!(
        err,
        UserError::closing(),
        "a closed core answers every request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_replayed_to_a_reloaded_page_and_a_closed_room_ends_the_call() {
    let a = app("Ann", Database::Embedded);
    let room = a.core.create_room("Design", None).await.unwrap();
    let url = a
        .events
        .wait("the database address", 0, |ev| match ev {
            UiEvent::Database {
                connected: true,
                url,
                ..
            } => Some(url.clone()),
            _ => None,
        })
        .await;
    a.core.join(&room, None, None).await.unwrap();
    let b = app("Bob", Database::Remote { url, auth: None });
    b.core.join(&room, None, None).await.unwrap();

    let bob = a
        .events
        .wait("Bob's arrival", 0, |ev| match ev {
            UiEvent::MemberJoined { peer, name, .. } if name == "Bob" => Some(peer.clone()),
            _ => None,
        })
        .await;
    a.core.set_stream(MediaKind::Video, false).await.unwrap();

    // A reloaded page gets the call as it is now, in the core's order.
    let (tx, rx) = oneshot::channel();
    a.core.replay(move |snapshot| {
        let _ = tx.send(snapshot);
    });
    let snapshot = rx.await.unwrap();
    let joined = snapshot
        .iter()
        .position(|e| matches!(e, UiEvent::Joined { streams, .. } if !streams.video))
        .expect("joined, with the camera now off");
    let member = snapshot
        .iter()
        .position(|e| matches!(e, UiEvent::MemberJoined { peer, .. } if *peer == bob))
        .expect("Bob replayed");
    assert!(joined < member, "the call before its members: {snapshot:?}");

    // Ann closes the room: Bob's call ends by itself, one branch of his core's loop.
    let from = b.events.len();
    a.core.destroy_room(&room, None).await.unwrap();
    b.events
        .wait("Bob's call ended", from, |ev| match ev {
            UiEvent::Left { reason, name, .. } if reason == "the room was closed" => {
                Some(name.clone())
            }
            _ => None,
        })
        .await;
    assert_eq!(b.core.current_call(), None);
    assert!(
        a.core.settings().recent.iter().all(|r| r.id != room),
        "forgotten"
    );
    b.core.shutdown().await;
    a.core.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_rooms_and_unreachable_databases_are_errors_in_words() {
    let a = app("Ann", Database::Embedded);
    let err = a
        .core
        .join(&"no-such-room".into(), None, None)
        .await
        .unwrap_err();
    assert!(
        err.hint.as_deref().unwrap_or("").contains("closed"),
        "{err:?}"
    );
    assert_eq!(a.core.current_call(), None);

    // Nothing listens on port 9 of loopback: the failure is reported, and the app keeps going.
    let b = app(
        "Bob",
        Database::Remote {
            url: "http://127.0.0.1:9".into(),
            auth: None,
        },
    );
    let err = b.core.reconnect().await.unwrap_err();
    assert!(err.message.contains("cannot reach the database"), "{err:?}");
    b.events
        .wait("the database shown as down", 0, |ev| match ev {
            UiEvent::Database {
                connected: false,
                message: Some(_),
                ..
            } => Some(()),
            _ => None,
        })
        .await;
    b.core.shutdown().await;
    a.core.shutdown().await;
}
