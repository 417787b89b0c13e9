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
    app_at(
        tempfile::tempdir().unwrap(),
        name,
        database,
        crate::conn::EmbeddedOptions::default(),
    )
}

/// [`app`] over the folders in `dir` (a restart when they were used before), its embedded
/// server set with `embedded`.
fn app_at(
    dir: tempfile::TempDir,
    name: &str,
    database: Database,
    embedded: crate::conn::EmbeddedOptions,
) -> App {
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
        embedded,
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
    assert_eq!(
        err.message, "the database at http://127.0.0.1:9 cannot be reached",
        "{err:?}"
    );
    assert!(
        err.hint
            .as_deref()
            .is_some_and(|h| h.contains("not running")),
        "{err:?}"
    );
    assert!(
        !format!("{err}").contains("os error"),
        "no socket words: {err:?}"
    );
    // An invitation to a database nobody hosts any more says the same, in the same words.
    let err = a
        .core
        .join(&"standup".into(), None, Some("http://127.0.0.1:9".into()))
        .await
        .unwrap_err();
    assert_eq!(
        err.message, "the database at http://127.0.0.1:9 cannot be reached",
        "{err:?}"
    );
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

/// The `me` of the next `Joined` since `from`.
async fn joined_as(a: &App, from: usize) -> PeerId {
    a.events
        .wait("joined", from, |ev| match ev {
            UiEvent::Joined { me, .. } => Some(me.clone()),
            _ => None,
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_id_is_the_uid_the_embedded_server_issued_and_a_restart_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("data").join("credentials");
    let a = app_at(dir, "Ann", Database::Embedded, Default::default());
    let room = a.core.create_room("Mine", None).await.unwrap();
    a.core.join(&room, None, None).await.unwrap();
    let me = joined_as(&a, 0).await;
    let invited = a.core.invitation().await.unwrap();
    assert_eq!(invited.reach, crate::links::Reach::ThisComputer);
    assert!(invited.can_host);

    // The credential file holds the uid the server issued, readable by the user only.
    let files: Vec<_> = std::fs::read_dir(&creds)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let saved: signal::auth::Credential =
        serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    assert_eq!(saved.uid, me.as_str(), "the peer id is the signed-in uid");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let settings_json =
        std::fs::read_to_string(a._dir.path().join("config/settings.json")).unwrap();
    assert!(
        !settings_json.contains(&saved.refresh_token),
        "the refresh token is not in the settings"
    );
    a.core.leave("restart").await;
    a.core.shutdown().await;

    // Restarted over the same folders: the same user, and the room is still mine.
    let a = app_at(a._dir, "Ann", Database::Embedded, Default::default());
    a.core.reconnect().await.unwrap();
    a.events
        .wait("my room, still mine", 0, |ev| {
            rooms(ev)?.iter().find(|r| r.id == room && r.mine).map(drop)
        })
        .await;
    a.core.join(&room, None, None).await.unwrap();
    assert_eq!(joined_as(&a, 0).await, me, "the same uid after a restart");
    assert_eq!(
        a.core.invitation().await.unwrap().db,
        invited.db,
        "the built-in database keeps its address: invitations made before still work"
    );
    a.core.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosting_for_the_lan_moves_the_call_and_its_invitation_reaches_the_network() {
    let hosting = crate::conn::EmbeddedOptions {
        host_on_loopback: true,
        ..Default::default()
    };
    let a = app_at(
        tempfile::tempdir().unwrap(),
        "Ann",
        Database::Embedded,
        hosting,
    );
    let room = a.core.create_room("Standup", None).await.unwrap();
    a.core.join(&room, None, None).await.unwrap();
    let me = joined_as(&a, 0).await;
    a.core.set_stream(MediaKind::Audio, false).await.unwrap();
    let before = a.core.invitation().await.unwrap();
    let port = |url: &str| url.rsplit(':').next().unwrap().to_owned();

    let from = a.events.len();
    a.core.host_for_lan().await.unwrap();
    assert_eq!(joined_as(&a, from).await, me, "back in the room as myself");
    let after = a.core.invitation().await.unwrap();
    assert_eq!(after.room, room);
    assert_eq!(after.reach, crate::links::Reach::Lan, "{after:?}");
    assert!(!after.can_host, "already hosting");
    assert_eq!(port(&after.db), port(&before.db), "the same port, hosted");
    assert!(
        matches!(a.core.settings().database, Database::Host { port: p, secret: None }
            if p.to_string() == port(&before.db)),
        "{:?}",
        a.core.settings().database
    );
    let streams = a.core.current_call().map(|(_, s)| s).expect("in the call");
    assert!(
        streams.video && !streams.audio,
        "I send what I sent: {streams:?}"
    );

    // Someone else uses the new link: we meet in the room.
    let b = app(
        "Bob",
        Database::Remote {
            url: after.db.clone(),
            auth: None,
        },
    );
    let from = a.events.len();
    b.core.join(&room, None, None).await.unwrap();
    a.events
        .wait("Bob, through the hosted database", from, |ev| match ev {
            UiEvent::MemberJoined { name, .. } if name == "Bob" => Some(()),
            _ => None,
        })
        .await;
    // Not offered twice: hosting again is refused in words.
    let err = a.core.host_for_lan().await.unwrap_err();
    assert!(
        err.message.contains("not using its built-in database"),
        "{err:?}"
    );
    b.core.shutdown().await;
    a.core.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_refuses_the_api_key_is_explained() {
    let a = app_at(
        tempfile::tempdir().unwrap(),
        "Ann",
        Database::Embedded,
        crate::conn::EmbeddedOptions {
            server_api_key: Some("the-right-key".into()),
            ..Default::default()
        },
    );
    let err = a.core.reconnect().await.unwrap_err();
    assert!(err.message.contains("cannot sign in"), "{err:?}");
    assert!(
        err.hint
            .as_deref()
            .is_some_and(|h| h.contains("API key was refused")),
        "{err:?}"
    );
    a.core.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_outlives_its_tokens() {
    let short = crate::conn::EmbeddedOptions {
        token_lifetime: Some(Duration::from_secs(5)),
        ..Default::default()
    };
    let a = app_at(
        tempfile::tempdir().unwrap(),
        "Ann",
        Database::Embedded,
        short,
    );
    a.core.reconnect().await.unwrap();
    let url = a
        .events
        .wait("the database up", 0, |ev| match ev {
            UiEvent::Database {
                connected: true,
                url,
                ..
            } => Some(url.clone()),
            _ => None,
        })
        .await;
    let room = a.core.create_room("Long", None).await.unwrap();
    a.core.join(&room, None, None).await.unwrap();
    let ann = joined_as(&a, 0).await;
    let b = app(
        "Bob",
        Database::Remote {
            url: url.clone(),
            auth: None,
        },
    );
    b.core.join(&room, None, None).await.unwrap();
    let bob = joined_as(&b, 0).await;
    assert_ne!(ann, bob);
    a.events
        .wait("Bob joined", 0, |ev| match ev {
            UiEvent::MemberJoined { peer, .. } if *peer == bob => Some(()),
            _ => None,
        })
        .await;
    let (from_a, from_b) = (a.events.len(), b.events.len());
    // Three token lifetimes: every token either holds has expired twice over.
    tokio::time::sleep(Duration::from_secs(15)).await;
    for (who, app, from) in [("Ann", &a, from_a), ("Bob", &b, from_b)] {
        let events = app.events.events.lock().unwrap();
        let trouble: Vec<String> = events[from..]
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    UiEvent::MemberLeft { .. } | UiEvent::Left { .. } | UiEvent::Error { .. }
                )
            })
            .map(|e| format!("{e:?}"))
            .collect();
        assert!(trouble.is_empty(), "{who} lost something: {trouble:#?}");
    }
    // Both still heartbeat: the occupants the server holds are seen within the last 10 s.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as f64;
    let client = signal::rtdb::RtdbClient::new(
        signal::rtdb::ClientConfig::new(url.clone()).with_auth(
            signal::auth::FirebaseAuth::new(signal::auth::AuthSettings::for_database(
                &url,
                "huddle-app",
            ))
            .unwrap(),
        ),
    )
    .unwrap();
    let occupants: serde_json::Value = client.get(&format!("occupants/{room}")).await.unwrap();
    for peer in [&ann, &bob] {
        let seen = occupants[peer.as_str()]["seen"].as_f64();
        assert!(
            seen.is_some_and(|s| now_ms - s < 10_000.0),
            "{peer} not heartbeating: {occupants}"
        );
    }
    assert_eq!(a.core.current_call().map(|c| c.0), Some(room.clone()));
    assert_eq!(b.core.current_call().map(|c| c.0), Some(room));
    b.core.shutdown().await;
    a.core.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_user_the_server_refuses_is_replaced_by_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("data").join("credentials");
    std::fs::create_dir_all(&creds).unwrap();
    // What a data folder holds after the server's accounts were lost, or was copied from
    // another machine: a user this server never issued.
    let file = creds.join("embedded-huddle-app.json");
    std::fs::write(
        &file,
        r#"{"uid":"ghost-user-of-another-server","refresh_token":"not-one-of-mine"}"#,
    )
    .unwrap();
    let a = app_at(dir, "Ann", Database::Embedded, Default::default());
    a.core.reconnect().await.unwrap();
    let room = a.core.create_room("Fresh", None).await.unwrap();
    a.core.join(&room, None, None).await.unwrap();
    let me = joined_as(&a, 0).await;
    let invited = a.core.invitation().await.unwrap();
    assert_eq!(invited.reach, crate::links::Reach::ThisComputer);
    assert!(invited.can_host);
    assert_ne!(me.as_str(), "ghost-user-of-another-server");
    // Saved by a task of its own: give it a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let saved = loop {
        let saved: signal::auth::Credential =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        if saved.uid == me.as_str() || std::time::Instant::now() > deadline {
            break saved;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(saved.uid, me.as_str(), "the new user is the one kept");
    a.core.shutdown().await;
}
