//! The Firebase-RTDB client (`signal::rtdb`) against real huddle-db servers over loopback
//! sockets: REST round trips, conditional writes, typed errors, TLS, streams with child events,
//! reconnects without duplicates or losses, the keep-alive watchdog, cancel and denial, and
//! token sources. A few tests use a hand-written fake server to make the network misbehave.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use rtdb::server::TlsMode;
use rtdb::{Server, ServerConfig};
use serde_json::{json, Map, Value};
use signal::rtdb::{
    server_timestamp, ChildEvent, ClientConfig, Conditional, RtdbClient, RtdbError, StreamEvent,
    Subscription, TokenSource,
};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{timeout, Instant};

/// How long to wait for an event that must come.
const WAIT: Duration = Duration::from_secs(5);

/// A server on 127.0.0.1 (any port) in a fresh folder, configured by `f`.
async fn start_with(f: impl FnOnce(&mut ServerConfig)) -> (TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(([127, 0, 0, 1], 0).into(), dir.path().to_owned());
    f(&mut config);
    let server = Server::start(config).await.unwrap();
    (dir, server)
}

/// An open server (no rules file, no secret: everything allowed).
async fn open_server() -> (TempDir, Server) {
    start_with(|_| {}).await
}

fn client(url: &str) -> RtdbClient {
    RtdbClient::new(ClientConfig::new(url)).unwrap()
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn added(key: &str, value: Value) -> StreamEvent {
    StreamEvent::Child(ChildEvent::Added {
        key: key.into(),
        value,
    })
}

fn changed(key: &str, value: Value, previous: Value) -> StreamEvent {
    StreamEvent::Child(ChildEvent::Changed {
        key: key.into(),
        value,
        previous,
    })
}

fn removed(key: &str, previous: Value) -> StreamEvent {
    StreamEvent::Child(ChildEvent::Removed {
        key: key.into(),
        previous,
    })
}

fn key_of(ev: &StreamEvent) -> String {
    match ev {
        StreamEvent::Child(
            ChildEvent::Added { key, .. }
            | ChildEvent::Changed { key, .. }
            | ChildEvent::Removed { key, .. },
        ) => key.clone(),
        other => panic!("not a child event: {other:?}"),
    }
}

/// The next event; fails the test after `WAIT` or when the stream ended.
async fn next_event(sub: &mut Subscription) -> StreamEvent {
    timeout(WAIT, sub.next())
        .await
        .unwrap_or_else(|_| panic!("no stream event within {WAIT:?}"))
        .expect("the stream ended")
}

/// The next `n` events, sorted by child key (for writes that change several children at once).
async fn next_children(sub: &mut Subscription, n: usize) -> Vec<StreamEvent> {
    let mut out = Vec::new();
    for _ in 0..n {
        let ev = next_event(sub).await;
        assert!(matches!(ev, StreamEvent::Child(_)), "{ev:?} after {out:?}");
        out.push(ev);
    }
    out.sort_by_key(key_of);
    out
}

/// Child events up to and including the next `Synced`, skipping (and counting) `Disconnected`.
/// Anything else fails the test, as does no `Synced` within `wait`.
async fn until_synced(sub: &mut Subscription, wait: Duration) -> (Vec<StreamEvent>, Value, usize) {
    let deadline = Instant::now() + wait;
    let mut children = Vec::new();
    let mut disconnects = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = timeout(left, sub.next())
            .await
            .unwrap_or_else(|_| panic!("no Synced within {wait:?}; so far {children:?}"))
            .expect("the stream ended before Synced");
        match ev {
            StreamEvent::Synced(v) => return (children, v, disconnects),
            StreamEvent::Disconnected(_) => disconnects += 1,
            StreamEvent::Child(_) => children.push(ev),
            other => panic!("unexpected {other:?} before Synced"),
        }
    }
}

/// Every event within `d` (stops early if the stream ends).
async fn drain_for(sub: &mut Subscription, d: Duration) -> Vec<StreamEvent> {
    let deadline = Instant::now() + d;
    let mut out = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, sub.next()).await {
            Ok(Some(ev)) => out.push(ev),
            _ => return out,
        }
    }
}

/// Asserts the stream has stopped: `next()` is `None` (promptly).
async fn assert_ended(sub: &mut Subscription) {
    let next = timeout(WAIT, sub.next())
        .await
        .expect("the stream neither ended nor produced an event");
    assert_eq!(next, None, "the stream should have stopped");
}

// ---------------------------------------------------------------------------------------------
// 1. REST
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_round_trip_set_get_update_push_delete() {
    let (_dir, server) = open_server().await;
    let db = client(&server.url());

    assert_eq!(db.get("nothing/here").await.unwrap(), Value::Null);
    assert_eq!(db.get("/").await.unwrap(), Value::Null, "empty database");

    db.set("a", &json!({"x": 1, "y": {"z": "deep"}, "old": true}))
        .await
        .unwrap();
    assert_eq!(
        db.get("a").await.unwrap(),
        json!({"x": 1, "y": {"z": "deep"}, "old": true})
    );
    assert_eq!(db.get("a/y/z").await.unwrap(), json!("deep"));
    assert_eq!(db.get("/a/y/").await.unwrap(), json!({"z": "deep"}));

    // Multi-path update: "y/w" goes deep without touching y/z; null deletes.
    db.update(
        "a",
        &obj(json!({"y/w": 2, "old": null, "x": "one", "n/m": {"k": false}})),
    )
    .await
    .unwrap();
    assert_eq!(
        db.get("a").await.unwrap(),
        json!({"x": "one", "y": {"z": "deep", "w": 2}, "n": {"m": {"k": false}}})
    );
    // An empty update is a no-op, not an error.
    db.update("a", &Map::new()).await.unwrap();
    // set replaces entirely.
    db.set("a/y", &json!(7)).await.unwrap();
    assert_eq!(db.get("a/y").await.unwrap(), json!(7));
    // set null deletes.
    db.set("a/x", &Value::Null).await.unwrap();
    assert_eq!(db.get("a/x").await.unwrap(), Value::Null);

    // push: 20-character, increasing IDs that read back.
    let id1 = db.push("list", &json!({"n": 1})).await.unwrap();
    let id2 = db.push("list", &json!({"n": 2})).await.unwrap();
    assert_eq!(id1.len(), 20, "{id1}");
    assert_eq!(id2.len(), 20, "{id2}");
    assert!(id1 < id2, "push IDs sort by creation: {id1} {id2}");
    assert_eq!(
        db.get(&format!("list/{id1}")).await.unwrap(),
        json!({"n": 1})
    );
    let mut both = Map::new();
    both.insert(id1.clone(), json!({"n": 1}));
    both.insert(id2.clone(), json!({"n": 2}));
    assert_eq!(db.get("list").await.unwrap(), Value::Object(both));

    // Server timestamp.
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    db.set("ts", &server_timestamp()).await.unwrap();
    let ts = db.get("ts").await.unwrap().as_u64().unwrap();
    assert!(
        ts + 5_000 >= before && ts <= before + 60_000,
        "{ts} vs {before}"
    );

    // delete, and delete of something absent.
    db.delete("a").await.unwrap();
    assert_eq!(db.get("a").await.unwrap(), Value::Null);
    assert_eq!(db.get("a/n/m").await.unwrap(), Value::Null);
    db.delete("a").await.unwrap();
    db.delete(&format!("list/{id1}")).await.unwrap();
    assert_eq!(db.get(&format!("list/{id1}")).await.unwrap(), Value::Null);
    assert_eq!(
        db.get("list").await.unwrap().as_object().unwrap().len(),
        1,
        "only the other push is left"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_with_spaces_unicode_and_url_characters_survive() {
    let (_dir, server) = open_server().await;
    let db = client(&server.url());
    let keys = [
        "hello world",
        "ünïcödé ✓ 日本語",
        "emoji 🎉",
        "a+b%20c?d=e&f",
        "semi;colon,comma:colon@at",
        "-_~",
        "'quote\" back\\slash",
    ];
    for k in keys {
        db.set(&format!("weird/{k}/v"), &json!(k)).await.unwrap();
    }
    for k in keys {
        assert_eq!(
            db.get(&format!("weird/{k}/v")).await.unwrap(),
            json!(k),
            "{k:?}"
        );
        assert_eq!(
            db.get(&format!("weird/{k}")).await.unwrap(),
            json!({"v": k})
        );
    }
    // The server stored the decoded keys, not their encodings.
    let all = db.get("weird").await.unwrap();
    let mut stored: Vec<&str> = all
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = keys.to_vec();
    stored.sort_unstable();
    expected.sort_unstable();
    assert_eq!(stored, expected);

    // Keys inside values and update paths keep their characters too.
    db.update("weird", &obj(json!({"hello world/ü n": 1})))
        .await
        .unwrap();
    assert_eq!(db.get("weird/hello world/ü n").await.unwrap(), json!(1));
    let id = db.push("weird/emoji 🎉", &json!("p")).await.unwrap();
    assert_eq!(
        db.get(&format!("weird/emoji 🎉/{id}")).await.unwrap(),
        json!("p")
    );
    db.delete("weird/a+b%20c?d=e&f").await.unwrap();
    assert_eq!(db.get("weird/a+b%20c?d=e&f").await.unwrap(), Value::Null);
    assert_eq!(
        db.get("weird/hello world/v").await.unwrap(),
        json!("hello world"),
        "deleting one odd key left the others"
    );
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 2. Conditional writes
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_writes_with_etags() {
    let (_dir, server) = open_server().await;
    let db = client(&server.url());
    let other = client(&server.url());

    db.set("counter", &json!({"n": 1})).await.unwrap();
    let (value, e1) = db.get_with_etag("counter").await.unwrap();
    assert_eq!(value, json!({"n": 1}));
    assert!(!e1.is_empty());

    let e2 = match db.set_if("counter", &json!({"n": 2}), &e1).await.unwrap() {
        Conditional::Written(e) => e,
        c => panic!("expected Written, got {c:?}"),
    };
    assert_ne!(e1, e2, "a new value has a new ETag");
    assert_eq!(
        db.get_with_etag("counter").await.unwrap(),
        (json!({"n": 2}), e2.clone()),
        "the ETag returned by the write is the current one"
    );

    // Someone else writes; our stale ETag conflicts and we learn the current value and ETag.
    other.set("counter/n", &json!(3)).await.unwrap();
    let (_, e3) = other.get_with_etag("counter").await.unwrap();
    match db.set_if("counter", &json!({"n": 99}), &e2).await.unwrap() {
        Conditional::Conflict { current, etag } => {
            assert_eq!(current, json!({"n": 3}));
            assert_eq!(etag, e3);
        }
        c => panic!("expected Conflict, got {c:?}"),
    }
    assert_eq!(
        db.get("counter").await.unwrap(),
        json!({"n": 3}),
        "not written"
    );
    // The ETag from the conflict lets the retry succeed.
    assert!(matches!(
        db.set_if("counter", &json!({"n": 4}), &e3).await.unwrap(),
        Conditional::Written(_)
    ));
    assert_eq!(db.get("counter").await.unwrap(), json!({"n": 4}));

    // null_etag: create only if absent.
    let (absent, null_tag) = db.get_with_etag("lock").await.unwrap();
    assert_eq!(absent, Value::Null);
    assert_eq!(null_tag, "null_etag", "the ETag of absence");
    assert!(matches!(
        db.set_if("lock", &json!("mine"), "null_etag")
            .await
            .unwrap(),
        Conditional::Written(_)
    ));
    match other
        .set_if("lock", &json!("theirs"), "null_etag")
        .await
        .unwrap()
    {
        Conditional::Conflict { current, etag } => {
            assert_eq!(current, json!("mine"));
            assert_eq!(etag, db.get_with_etag("lock").await.unwrap().1);
        }
        c => panic!("expected Conflict, got {c:?}"),
    }
    assert_eq!(db.get("lock").await.unwrap(), json!("mine"));
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 3. Typed errors
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_data_and_bad_paths_keep_the_servers_message() {
    let (_dir, server) = open_server().await;
    let db = client(&server.url());

    let err = db.set("a", &json!({"bad.key": 1})).await.unwrap_err();
    match &err {
        RtdbError::Http { status, message } => {
            assert_eq!(*status, 400);
            assert!(message.starts_with("Invalid data;"), "{message}");
            assert!(message.contains("bad.key"), "{message}");
            assert!(!message.contains("{\"error\""), "unwrapped: {message}");
        }
        other => panic!("expected Http 400, got {other:?}"),
    }
    assert!(!err.is_transient());
    assert!(!err.is_permission_denied());
    assert!(err.to_string().contains("bad.key"), "{err}");
    assert_eq!(db.get("a").await.unwrap(), Value::Null, "nothing written");

    // The same through update and push.
    let err = db
        .update("a", &obj(json!({"x": {"$bad": 1}})))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RtdbError::Http { status: 400, message } if message.contains("$bad")),
        "{err:?}"
    );
    let err = db.push("a", &json!({"#no": 1})).await.unwrap_err();
    assert!(
        matches!(&err, RtdbError::Http { status: 400, message } if message.contains("#no")),
        "{err:?}"
    );

    // A key the client percent-encodes but the server refuses in a path.
    let err = db.get("a.b").await.unwrap_err();
    match &err {
        RtdbError::Http { status, message } => {
            assert_eq!(*status, 400);
            assert!(message.starts_with("Invalid path"), "{message}");
            assert!(message.contains("a.b"), "{message}");
        }
        other => panic!("expected Http 400, got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secured_server_needs_the_secret() {
    let (_dir, server) = start_with(|c| c.secret = Some("s".into())).await;
    let url = server.url();

    let anonymous = client(&url);
    for err in [
        anonymous.get("x").await.unwrap_err(),
        anonymous.set("x", &json!(1)).await.unwrap_err(),
        anonymous.push("x", &json!(1)).await.unwrap_err(),
        anonymous.delete("x").await.unwrap_err(),
    ] {
        assert!(err.is_permission_denied(), "{err:?}");
        assert!(!err.is_transient(), "{err:?}");
        match err {
            RtdbError::Http { status, message } => {
                assert_eq!(status, 401);
                assert_eq!(message, "Permission denied");
            }
            other => panic!("{other:?}"),
        }
    }
    let wrong = RtdbClient::new(ClientConfig::new(&url).with_secret("not-s")).unwrap();
    assert!(wrong.get("x").await.unwrap_err().is_permission_denied());

    let admin = RtdbClient::new(ClientConfig::new(&url).with_secret("s")).unwrap();
    admin.set("x", &json!({"y": 1})).await.unwrap();
    assert_eq!(admin.get("x").await.unwrap(), json!({"y": 1}));
    let (_, tag) = admin.get_with_etag("x").await.unwrap();
    assert!(matches!(
        admin.set_if("x", &json!(2), &tag).await.unwrap(),
        Conditional::Written(_)
    ));
    assert!(
        anonymous.get("x").await.unwrap_err().is_permission_denied(),
        "still nothing for the anonymous client"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_is_a_transient_network_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let db = client(&format!("http://127.0.0.1:{port}"));
    for err in [
        db.get("x").await.unwrap_err(),
        db.set("x", &json!(1)).await.unwrap_err(),
    ] {
        assert!(matches!(err, RtdbError::Network(_)), "{err:?}");
        assert!(err.is_transient());
        assert!(!err.is_permission_denied());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_http_url_is_a_config_error() {
    for url in ["ftp://x", "x.firebaseio.com", "", "ws://127.0.0.1:1"] {
        match RtdbClient::new(ClientConfig::new(url)) {
            Err(RtdbError::Config(msg)) => assert!(msg.contains("http"), "{msg}"),
            Err(other) => panic!("{url:?}: expected Config, got {other:?}"),
            Ok(_) => panic!("{url:?} was accepted"),
        }
    }
    // A trailing slash is fine.
    let c = RtdbClient::new(ClientConfig::new("http://127.0.0.1:1/")).unwrap();
    assert_eq!(c.url(), "http://127.0.0.1:1");
}

// ---------------------------------------------------------------------------------------------
// 4. TLS
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_generated_ca() {
    let (_dir, server) = start_with(|c| c.tls = TlsMode::Generated).await;
    let url = server.url();
    assert!(url.starts_with("https://"), "{url}");
    let pem = std::fs::read(server.ca_file().unwrap()).unwrap();

    let db = RtdbClient::new(ClientConfig::new(&url).with_ca_pem(pem.clone())).unwrap();
    db.set("secure/x", &json!({"hello": "tls"})).await.unwrap();
    assert_eq!(
        db.get("secure").await.unwrap(),
        json!({"x": {"hello": "tls"}})
    );

    // Streams work over TLS too.
    let mut sub = db.subscribe("secure");
    let (children, value, disconnects) = until_synced(&mut sub, WAIT).await;
    assert_eq!(children, vec![added("x", json!({"hello": "tls"}))]);
    assert_eq!(value, json!({"x": {"hello": "tls"}}));
    assert_eq!(disconnects, 0);
    let writer = RtdbClient::new(ClientConfig::new(&url).with_ca_pem(pem)).unwrap();
    writer.set("secure/y", &json!(1)).await.unwrap();
    assert_eq!(next_event(&mut sub).await, added("y", json!(1)));

    // Without the CA the certificate is not trusted: a network error that says why.
    let untrusting = client(&url);
    let err = untrusting.get("secure").await.unwrap_err();
    match &err {
        RtdbError::Network(msg) => assert!(msg.to_lowercase().contains("certificate"), "{msg}"),
        other => panic!("expected Network, got {other:?}"),
    }
    drop(sub);
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 5. Streams
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_yields_existing_children_then_live_child_events() {
    let (_dir, server) = open_server().await;
    let url = server.url();
    let writer = client(&url);
    writer
        .set(
            "rooms",
            &json!({"r1": {"name": "one"}, "r2": {"name": "two"}}),
        )
        .await
        .unwrap();
    writer.set("elsewhere", &json!(0)).await.unwrap();

    let reader = client(&url);
    let mut sub = reader.subscribe("rooms");
    let (children, value, disconnects) = until_synced(&mut sub, WAIT).await;
    assert_eq!(
        children,
        vec![
            added("r1", json!({"name": "one"})),
            added("r2", json!({"name": "two"}))
        ]
    );
    assert_eq!(value, json!({"r1": {"name": "one"}, "r2": {"name": "two"}}));
    assert_eq!(disconnects, 0);

    // A new child.
    writer
        .set("rooms/r3", &json!({"name": "three"}))
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut sub).await,
        added("r3", json!({"name": "three"}))
    );

    // A deep write: Changed of the top child, with its whole new and previous value.
    writer.set("rooms/r1/name", &json!("uno")).await.unwrap();
    assert_eq!(
        next_event(&mut sub).await,
        changed("r1", json!({"name": "uno"}), json!({"name": "one"}))
    );

    // A push.
    let id = writer
        .push("rooms", &json!({"name": "pushed"}))
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut sub).await,
        added(&id, json!({"name": "pushed"}))
    );

    // A multi-path update: one removal, one deep change, one addition.
    writer
        .update(
            "rooms",
            &obj(json!({"r2": null, "r3/topic": "x", "r5/name": "five"})),
        )
        .await
        .unwrap();
    assert_eq!(
        next_children(&mut sub, 3).await,
        vec![
            removed("r2", json!({"name": "two"})),
            changed(
                "r3",
                json!({"name": "three", "topic": "x"}),
                json!({"name": "three"})
            ),
            added("r5", json!({"name": "five"})),
        ]
    );

    // An update from above the streamed location that touches it and elsewhere.
    writer
        .update("", &obj(json!({"rooms/r1/name": "eins", "other/x": 1})))
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut sub).await,
        changed("r1", json!({"name": "eins"}), json!({"name": "uno"}))
    );

    // Writes to unrelated paths (including look-alike prefixes) produce nothing: the next event
    // is the one for the marker write made after them.
    writer.set("other/deep/x", &json!(1)).await.unwrap();
    writer.set("roomsX", &json!(1)).await.unwrap();
    writer.set("room", &json!({"r1": 1})).await.unwrap();
    writer.set("elsewhere", &Value::Null).await.unwrap();
    writer
        .update("", &obj(json!({"roomz/a": 1, "other/y": 2})))
        .await
        .unwrap();
    // A write that leaves a child as it was is no event either.
    writer.set("rooms/r5/name", &json!("five")).await.unwrap();
    writer.delete("rooms/never-existed").await.unwrap();
    writer.delete("rooms/r3").await.unwrap();
    assert_eq!(
        next_event(&mut sub).await,
        removed("r3", json!({"name": "three", "topic": "x"}))
    );

    // Deleting the last leaf of a child removes the child.
    writer.set("rooms/r5/name", &Value::Null).await.unwrap();
    assert_eq!(
        next_event(&mut sub).await,
        removed("r5", json!({"name": "five"}))
    );

    // Replacing the whole location: the difference, child by child.
    writer
        .set("rooms", &json!({"r1": {"name": "eins"}, "new": 1}))
        .await
        .unwrap();
    assert_eq!(
        next_children(&mut sub, 2).await,
        vec![
            removed(&id, json!({"name": "pushed"})),
            added("new", json!(1)),
        ]
    );

    // Deleting the location removes every child.
    writer.delete("rooms").await.unwrap();
    assert_eq!(
        next_children(&mut sub, 2).await,
        vec![
            removed("new", json!(1)),
            removed("r1", json!({"name": "eins"})),
        ]
    );
    assert!(
        drain_for(&mut sub, Duration::from_millis(300))
            .await
            .is_empty(),
        "nothing more"
    );
    drop(sub);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_of_a_leaf_and_of_an_absent_location() {
    let (_dir, server) = open_server().await;
    let db = client(&server.url());
    let mut empty = db.subscribe("nothing/yet");
    let (children, value, _) = until_synced(&mut empty, WAIT).await;
    assert!(children.is_empty(), "{children:?}");
    assert_eq!(value, Value::Null);
    db.set("nothing/yet/k", &json!("v")).await.unwrap();
    assert_eq!(next_event(&mut empty).await, added("k", json!("v")));

    db.set("leaf", &json!(5)).await.unwrap();
    let mut leaf = db.subscribe("leaf");
    let (children, value, _) = until_synced(&mut leaf, WAIT).await;
    assert!(children.is_empty(), "a leaf has no children: {children:?}");
    assert_eq!(value, json!(5));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_subscription_closes_the_connection() {
    // Short server keep-alives so the server notices the closed socket at its next write.
    let (_dir, server) = start_with(|c| c.keepalive = Duration::from_millis(100)).await;
    let db = client(&server.url());
    let mut sub = db.subscribe("x");
    until_synced(&mut sub, WAIT).await;
    assert_eq!(server.db().stream_count(), 1);
    drop(sub);
    let deadline = Instant::now() + WAIT;
    while server.db().stream_count() != 0 {
        assert!(
            Instant::now() < deadline,
            "the server still has {} streams",
            server.db().stream_count()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 6. Reconnect
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_resumes_without_duplicates_or_losses() {
    let dir = tempfile::tempdir().unwrap();
    let config = |port: u16| ServerConfig::new(([127, 0, 0, 1], port).into(), dir.path().into());
    let server = Server::start(config(0)).await.unwrap();
    let port = server.addr().port();
    let url = server.url();

    let writer = client(&url);
    writer
        .set(
            "rooms",
            &json!({"a": {"n": 1}, "b": {"n": 2}, "c": {"n": 3}}),
        )
        .await
        .unwrap();
    let reader = client(&url);
    let mut sub = reader.subscribe("rooms");
    let (children, _, _) = until_synced(&mut sub, WAIT).await;
    assert_eq!(
        children,
        vec![
            added("a", json!({"n": 1})),
            added("b", json!({"n": 2})),
            added("c", json!({"n": 3})),
        ]
    );

    server.shutdown().await;
    let ev = next_event(&mut sub).await;
    assert!(matches!(ev, StreamEvent::Disconnected(_)), "{ev:?}");

    // While the server is down: no data events (only reports of failed reconnect attempts).
    let during = drain_for(&mut sub, Duration::from_millis(800)).await;
    assert!(
        during
            .iter()
            .all(|e| matches!(e, StreamEvent::Disconnected(_))),
        "{during:?}"
    );

    // Writes while the stream is down, through a server on another port over the same data, so
    // they certainly happen before the client reconnects.
    let side = Server::start(config(0)).await.unwrap();
    assert_ne!(side.addr().port(), port);
    let w = client(&side.url());
    w.set("rooms/b/n", &json!(20)).await.unwrap();
    w.delete("rooms/c").await.unwrap();
    w.set("rooms/d", &json!({"n": 4})).await.unwrap();
    side.shutdown().await;

    // The same port and data again.
    let server = Server::start(config(port)).await.unwrap();
    assert_eq!(server.url(), url);
    let (mut children, value, _) = until_synced(&mut sub, Duration::from_secs(20)).await;
    children.sort_by_key(key_of);
    assert_eq!(
        children,
        vec![
            changed("b", json!({"n": 20}), json!({"n": 2})),
            removed("c", json!({"n": 3})),
            added("d", json!({"n": 4})),
        ],
        "exactly the changes made while down; `a` is not re-reported"
    );
    assert_eq!(value, json!({"a": {"n": 1}, "b": {"n": 20}, "d": {"n": 4}}));

    // Live again: each write exactly once (the marker after shows nothing came between).
    let writer = client(&url);
    writer.set("rooms/e", &json!({"n": 5})).await.unwrap();
    assert_eq!(next_event(&mut sub).await, added("e", json!({"n": 5})));
    writer.set("rooms/a/n", &json!(10)).await.unwrap();
    assert_eq!(
        next_event(&mut sub).await,
        changed("a", json!({"n": 10}), json!({"n": 1}))
    );
    assert!(
        drain_for(&mut sub, Duration::from_millis(300))
            .await
            .is_empty(),
        "no repeats"
    );
    drop(sub);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_after_writes_made_once_the_server_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let config = |port: u16| ServerConfig::new(([127, 0, 0, 1], port).into(), dir.path().into());
    let server = Server::start(config(0)).await.unwrap();
    let port = server.addr().port();
    let url = server.url();
    client(&url)
        .set("rooms", &json!({"a": 1, "b": 2}))
        .await
        .unwrap();
    let mut sub = client(&url).subscribe("rooms");
    assert_eq!(until_synced(&mut sub, WAIT).await.0.len(), 2);

    server.shutdown().await;
    assert!(matches!(
        next_event(&mut sub).await,
        StreamEvent::Disconnected(_)
    ));
    let server = Server::start(config(port)).await.unwrap();
    // Written right away: before or after the client is back, it must arrive exactly once.
    let writer = client(&url);
    writer.set("rooms/c", &json!(3)).await.unwrap();
    writer.delete("rooms/a").await.unwrap();

    let mut seen = Vec::new();
    let mut synced = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    // Until both changes are seen and the stream has synced.
    while !(synced && seen.len() >= 2) {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = timeout(left, sub.next())
            .await
            .unwrap_or_else(|_| panic!("so far {seen:?}, synced {synced}"))
            .unwrap();
        match ev {
            StreamEvent::Synced(v) => {
                synced = true;
                if seen.len() >= 2 {
                    assert_eq!(v, json!({"b": 2, "c": 3}));
                }
            }
            StreamEvent::Disconnected(_) => {}
            StreamEvent::Child(_) => seen.push(ev),
            other => panic!("{other:?}"),
        }
    }
    seen.sort_by_key(key_of);
    assert_eq!(seen, vec![removed("a", json!(1)), added("c", json!(3))]);
    writer.set("rooms/marker", &json!(true)).await.unwrap();
    assert_eq!(next_event(&mut sub).await, added("marker", json!(true)));
    drop(sub);
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 7. Keep-alive watchdog
// ---------------------------------------------------------------------------------------------

const SSE_HEAD: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n";
const PUT_NULL: &str = "event: put\ndata: {\"path\":\"/\",\"data\":null}\n\n";

/// Reads one request head from a fake server's socket.
async fn read_request_head(sock: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = timeout(WAIT, sock.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "the client closed before sending a request");
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8(buf).unwrap()
}

async fn accept(listener: &TcpListener) -> TcpStream {
    timeout(WAIT, listener.accept())
        .await
        .expect("no connection")
        .unwrap()
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_stream_is_reopened_by_the_watchdog() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = ClientConfig::new(format!("http://{}", listener.local_addr().unwrap()));
    config.stream_idle_timeout = Duration::from_millis(500);
    let db = RtdbClient::new(config).unwrap();
    let mut sub = db.subscribe("room");

    let mut first = accept(&listener).await;
    let head = read_request_head(&mut first).await;
    assert!(head.starts_with("GET /room.json"), "{head}");
    assert!(
        head.to_lowercase().contains("accept: text/event-stream"),
        "{head}"
    );
    first
        .write_all(format!("{SSE_HEAD}{PUT_NULL}").as_bytes())
        .await
        .unwrap();
    first.flush().await.unwrap();
    assert_eq!(next_event(&mut sub).await, StreamEvent::Synced(Value::Null));

    // Then silence, with the socket still open.
    let silent_since = Instant::now();
    let ev = timeout(Duration::from_secs(2), sub.next())
        .await
        .expect("no Disconnected within 2 s of silence")
        .unwrap();
    assert!(matches!(ev, StreamEvent::Disconnected(_)), "{ev:?}");
    assert!(
        silent_since.elapsed() >= Duration::from_millis(400),
        "the watchdog fired early: {:?}",
        silent_since.elapsed()
    );

    // And it connects again.
    let mut second = accept(&listener).await;
    let head = read_request_head(&mut second).await;
    assert!(head.starts_with("GET /room.json"), "{head}");
    second
        .write_all(format!("{SSE_HEAD}{PUT_NULL}").as_bytes())
        .await
        .unwrap();
    assert_eq!(next_event(&mut sub).await, StreamEvent::Synced(Value::Null));
    drop(first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_keep_alives_keep_a_quiet_stream_connected() {
    let (_dir, server) = start_with(|c| c.keepalive = Duration::from_millis(200)).await;
    let mut config = ClientConfig::new(server.url());
    config.stream_idle_timeout = Duration::from_secs(1);
    let db = RtdbClient::new(config).unwrap();
    db.set("quiet/a", &json!(1)).await.unwrap();
    let mut sub = db.subscribe("quiet");
    let (children, _, _) = until_synced(&mut sub, WAIT).await;
    assert_eq!(children, vec![added("a", json!(1))]);

    let events = drain_for(&mut sub, Duration::from_secs(3)).await;
    assert!(
        events.is_empty(),
        "3 s of keep-alives only, yet: {events:?}"
    );
    // Still the same live stream.
    db.set("quiet/b", &json!(2)).await.unwrap();
    assert_eq!(next_event(&mut sub).await, added("b", json!(2)));
    drop(sub);
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 8. Cancel and denial
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_rules_cancel_the_stream() {
    let (_dir, server) = open_server().await;
    let url = server.url();
    let db = client(&url);
    db.set("rooms/r1", &json!(1)).await.unwrap();
    let mut sub = db.subscribe("rooms");
    let (children, _, _) = until_synced(&mut sub, WAIT).await;
    assert_eq!(children, vec![added("r1", json!(1))]);

    let resp = reqwest::Client::new()
        .put(format!("{url}/.settings/rules.json"))
        .header("Authorization", "Bearer owner")
        .body(r#"{"rules":{"other":{".read":true}}}"#)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());

    assert_eq!(next_event(&mut sub).await, StreamEvent::Cancelled);
    assert_ended(&mut sub).await;

    // A new subscription is refused outright.
    let mut again = db.subscribe("rooms");
    let ev = next_event(&mut again).await;
    assert!(matches!(ev, StreamEvent::Denied(_)), "{ev:?}");
    assert_ended(&mut again).await;
    // What the rules still allow works.
    let mut other = db.subscribe("other");
    assert_eq!(until_synced(&mut other, WAIT).await.1, Value::Null);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribing_without_credentials_is_denied() {
    let (_dir, server) = start_with(|c| c.secret = Some("s".into())).await;
    let mut sub = client(&server.url()).subscribe("rooms");
    match next_event(&mut sub).await {
        StreamEvent::Denied(msg) => assert!(msg.contains("Permission denied"), "{msg}"),
        other => panic!("expected Denied, got {other:?}"),
    }
    assert_ended(&mut sub).await;

    let admin = RtdbClient::new(ClientConfig::new(server.url()).with_secret("s")).unwrap();
    admin.set("rooms/r", &json!(1)).await.unwrap();
    let mut sub = admin.subscribe("rooms");
    let (children, _, _) = until_synced(&mut sub, WAIT).await;
    assert_eq!(children, vec![added("r", json!(1))]);
    drop(sub);
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 9. Token sources
// ---------------------------------------------------------------------------------------------

/// Hands out `tokens[number of invalidations]` (the last one once exhausted) and counts calls.
struct Counting {
    tokens: Vec<String>,
    token_calls: AtomicUsize,
    invalidations: AtomicUsize,
}

impl Counting {
    fn new(tokens: &[&str]) -> Arc<Self> {
        Arc::new(Counting {
            tokens: tokens.iter().map(|t| (*t).to_owned()).collect(),
            token_calls: AtomicUsize::new(0),
            invalidations: AtomicUsize::new(0),
        })
    }
    fn calls(&self) -> usize {
        self.token_calls.load(SeqCst)
    }
    fn invalidated(&self) -> usize {
        self.invalidations.load(SeqCst)
    }
}

impl TokenSource for Counting {
    fn token(&self) -> BoxFuture<'_, Result<String, RtdbError>> {
        self.token_calls.fetch_add(1, SeqCst);
        let i = self.invalidations.load(SeqCst).min(self.tokens.len() - 1);
        let t = self.tokens[i].clone();
        Box::pin(async move { Ok(t) })
    }

    fn invalidate(&self) {
        self.invalidations.fetch_add(1, SeqCst);
    }
}

fn with_source(url: &str, src: &Arc<Counting>) -> RtdbClient {
    let src: Arc<dyn TokenSource> = src.clone();
    RtdbClient::new(ClientConfig {
        auth: Some(src),
        ..ClientConfig::new(url)
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_source_is_asked_for_every_request() {
    let (_dir, server) = start_with(|c| c.secret = Some("tok-1".into())).await;
    let url = server.url();

    let good = Counting::new(&["tok-1"]);
    let db = with_source(&url, &good);
    db.set("x", &json!(1)).await.unwrap();
    assert_eq!(good.calls(), 1);
    assert_eq!(db.get("x").await.unwrap(), json!(1));
    assert_eq!(good.calls(), 2);
    db.update("", &obj(json!({"y": 2}))).await.unwrap();
    db.push("z", &json!(3)).await.unwrap();
    db.delete("y").await.unwrap();
    assert_eq!(good.calls(), 5);
    let mut sub = db.subscribe("x");
    assert_eq!(until_synced(&mut sub, WAIT).await.1, json!(1));
    assert_eq!(good.calls(), 6, "the stream asked too");
    assert_eq!(good.invalidated(), 0);
    drop(sub);

    // A stale token: the stream is denied and the source told to refresh; the next requests use
    // the fresh one.
    let stale = Counting::new(&["tok-0", "tok-1"]);
    let db = with_source(&url, &stale);
    let err = db.get("x").await.unwrap_err();
    assert!(err.is_permission_denied(), "{err:?}");
    let mut sub = db.subscribe("x");
    let ev = next_event(&mut sub).await;
    assert!(matches!(ev, StreamEvent::Denied(_)), "{ev:?}");
    assert_ended(&mut sub).await;
    assert_eq!(stale.invalidated(), 1);
    assert_eq!(db.get("x").await.unwrap(), json!(1));
    let mut sub = db.subscribe("x");
    assert_eq!(until_synced(&mut sub, WAIT).await.1, json!(1));
    assert_eq!(stale.calls(), 4);
    drop(sub);
    server.shutdown().await;
}

/// A source that cannot produce a credential.
struct Broken;

impl TokenSource for Broken {
    fn token(&self) -> BoxFuture<'_, Result<String, RtdbError>> {
        Box::pin(async { Err(RtdbError::Credentials("sign-in server unreachable".into())) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_token_source_is_a_credentials_error() {
    let (_dir, server) = start_with(|c| c.secret = Some("s".into())).await;
    let db = RtdbClient::new(ClientConfig {
        auth: Some(Arc::new(Broken)),
        ..ClientConfig::new(server.url())
    })
    .unwrap();
    match db.get("x").await.unwrap_err() {
        RtdbError::Credentials(msg) => assert!(msg.contains("unreachable"), "{msg}"),
        other => panic!("expected Credentials, got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_revoked_fetches_a_fresh_token_and_reconnects() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let src = Counting::new(&["first-token", "second-token"]);
    let db = with_source(&format!("http://{}", listener.local_addr().unwrap()), &src);
    let mut sub = db.subscribe("room");

    let mut first = accept(&listener).await;
    let head = read_request_head(&mut first).await;
    assert!(
        head.starts_with("GET /room.json?auth=first-token "),
        "{head}"
    );
    first
        .write_all(format!("{SSE_HEAD}{PUT_NULL}").as_bytes())
        .await
        .unwrap();
    assert_eq!(next_event(&mut sub).await, StreamEvent::Synced(Value::Null));
    first
        .write_all(b"event: auth_revoked\ndata: \"credential is no longer valid\"\n\n")
        .await
        .unwrap();
    let ev = next_event(&mut sub).await;
    assert!(matches!(ev, StreamEvent::Disconnected(_)), "{ev:?}");
    assert_eq!(src.invalidated(), 1);

    let mut second = accept(&listener).await;
    let head = read_request_head(&mut second).await;
    assert!(
        head.starts_with("GET /room.json?auth=second-token "),
        "{head}"
    );
    second
        .write_all(
            format!("{SSE_HEAD}event: put\ndata: {{\"path\":\"/\",\"data\":{{\"k\":1}}}}\n\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(next_event(&mut sub).await, added("k", json!(1)));
    assert_eq!(
        next_event(&mut sub).await,
        StreamEvent::Synced(json!({"k": 1}))
    );
}
