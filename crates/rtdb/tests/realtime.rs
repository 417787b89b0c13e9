//! huddle-db's realtime protocol under bad input and faults, from a raw WebSocket client:
//! unreadable and unknown messages get an error and the connection stays usable; an oversized
//! message closes only its connection; a client that stops reading is dropped with bounded
//! memory; a client that goes silent is noticed and its onDisconnect runs; onDisconnect work the
//! rules refuse is refused at registration and never runs; listens per connection are bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const T: Duration = Duration::from_secs(10);

async fn connect(url: &str) -> Ws {
    let ws_url = format!("{}/.ws?v=5&ns=test", url.replacen("http", "ws", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["t"], "c");
    assert_eq!(hello["d"]["t"], "h");
    assert_eq!(hello["d"]["d"]["v"], "5");
    ws
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

async fn request(ws: &mut Ws, r: u64, action: &str, body: Value) {
    send(ws, json!({"t": "d", "d": {"r": r, "a": action, "b": body}})).await;
}

/// The next JSON text message (pings are answered by tungstenite as they are read).
async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(T, ws.next())
            .await
            .expect("a message in time")
            .expect("the connection is open")
            .expect("a readable message");
        if let Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

/// The answer to request `r`, skipping pushes.
async fn answer(ws: &mut Ws, r: u64) -> Value {
    loop {
        let m = next_json(ws).await;
        if m["d"]["r"] == r {
            return m["d"]["b"].clone();
        }
    }
}

async fn rest_get(url: &str, path: &str) -> Value {
    common::client()
        .get(format!("{url}/{path}.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_get_an_error_and_the_connection_stays_usable() {
    let (_dir, server) = common::start_default().await;
    let url = server.url();
    let mut ws = connect(&url).await;
    ws.send(Message::text("{not json")).await.unwrap();
    let e = next_json(&mut ws).await;
    assert_eq!(
        (e["t"].as_str(), e["d"]["t"].as_str()),
        (Some("c"), Some("e")),
        "{e}"
    );
    send(
        &mut ws,
        json!({"t": "d", "d": {"r": 1, "a": "p", "b": {"d": 1}}}),
    )
    .await;
    let e = next_json(&mut ws).await;
    assert!(e["d"]["d"].as_str().unwrap().contains("no path"), "{e}");
    request(&mut ws, 2, "frobnicate", json!({})).await;
    assert_eq!(answer(&mut ws, 2).await["s"], "invalid_action");
    request(&mut ws, 3, "q", json!({"p": "/a", "q": {"l": -1}, "t": 1})).await;
    assert_eq!(answer(&mut ws, 3).await["s"], "invalid_data");
    request(&mut ws, 4, "p", json!({"p": "/a/b", "d": {"x": 1}})).await;
    assert_eq!(answer(&mut ws, 4).await["s"], "ok");
    assert_eq!(rest_get(&url, "a").await, json!({"b": {"x": 1}}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_closes_only_its_connection() {
    let (_dir, server) = common::start_default().await;
    let url = server.url();
    let mut other = connect(&url).await;
    let mut ws = connect(&url).await;
    let huge =
        json!({"t": "d", "d": {"r": 1, "a": "p", "b": {"p": "/big", "d": "x".repeat(17 << 20)}}});
    let _ = ws.send(Message::text(huge.to_string())).await;
    let closed = tokio::time::timeout(T, async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the connection stays open after a 17 MiB message"
    );
    assert_eq!(rest_get(&url, "big").await, Value::Null);
    request(&mut other, 1, "p", json!({"p": "/ok", "d": true})).await;
    assert_eq!(answer(&mut other, 1).await["s"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped() {
    let (_dir, server) = common::start_default().await;
    let url = server.url();
    let mut slow = connect(&url).await;
    request(&mut slow, 1, "q", json!({"p": "/feed", "h": ""})).await;
    assert_eq!(answer(&mut slow, 1).await["s"], "ok");
    // 64 writes of 1 MiB while `slow` reads nothing: more than its 16 MiB bound and the
    // sockets' buffers together.
    let client = common::client();
    for i in 0..64 {
        let resp = client
            .put(format!("{url}/feed.json"))
            .body(json!(format!("{i}:{}", "y".repeat(1 << 20))).to_string())
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
    }
    let mut pushes = 0;
    let mut joiner = rtdb::wire::frames::Joiner::new(64 << 20);
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match slow.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(Message::Text(t))) => {
                    if joiner.push(t.as_str()).unwrap().is_some() {
                        pushes += 1;
                    }
                }
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the slow client was never dropped");
    assert!(
        pushes < 64,
        "all {pushes} pushes were kept for a client that did not read"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_noticed_and_its_on_disconnect_runs() {
    let (_dir, server) = common::start_default().await;
    let url = server.url();
    let mut ws = connect(&url).await;
    request(&mut ws, 1, "p", json!({"p": "/here/me", "d": true})).await;
    assert_eq!(answer(&mut ws, 1).await["s"], "ok");
    request(&mut ws, 2, "o", json!({"p": "/here/me", "d": null})).await;
    assert_eq!(answer(&mut ws, 2).await["s"], "ok");
    // From now on the client neither reads (so answers no ping) nor sends.
    let started = std::time::Instant::now();
    loop {
        if rest_get(&url, "here/me").await == Value::Null {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "a client silent for 30 s still counts as connected"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        started.elapsed() >= rtdb::realtime::DEAD_AFTER - Duration::from_secs(1),
        "removed before the client had been silent long"
    );
    drop(ws);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_disconnect_work_the_rules_refuse_is_refused_when_registered_and_never_runs() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.json");
    std::fs::write(
        &rules,
        r#"{"rules": {"open": {".read": true, ".write": true}, "locked": {".read": true}}}"#,
    )
    .unwrap();
    let mut config = common::config(&dir.path().join("data"));
    config.rules_file = Some(rules);
    config.secret = Some("s3cret".into());
    let server = common::start_in_process(config).await;
    let url = server.url();
    let client = common::client();
    let put = client
        .put(format!("{url}/locked/v.json?auth=s3cret"))
        .body("1")
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    let mut ws = connect(&url).await;
    request(&mut ws, 1, "o", json!({"p": "/locked/v", "d": null})).await;
    assert_eq!(answer(&mut ws, 1).await["s"], "permission_denied");
    request(
        &mut ws,
        2,
        "om",
        json!({"p": "/locked", "d": {"v": null, "w": 1}}),
    )
    .await;
    assert_eq!(answer(&mut ws, 2).await["s"], "permission_denied");
    request(&mut ws, 3, "o", json!({"p": "/open/gone", "d": "yes"})).await;
    assert_eq!(answer(&mut ws, 3).await["s"], "ok");
    ws.close(None).await.unwrap();
    let started = std::time::Instant::now();
    while rest_get(&url, "open/gone").await != json!("yes") {
        assert!(started.elapsed() < T, "the allowed onDisconnect never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rest_get(&url, "locked/v").await, json!(1));
    assert_eq!(rest_get(&url, "locked/w").await, Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listens_per_connection_are_bounded() {
    let (_dir, server) = common::start_default().await;
    let mut ws = connect(&server.url()).await;
    let n = rtdb::realtime::MAX_LISTENS as u64;
    for r in 1..=n + 1 {
        request(&mut ws, r, "q", json!({"p": format!("/l/{r}"), "h": ""})).await;
    }
    let mut last = Value::Null;
    let mut oks = 0;
    for r in 1..=n + 1 {
        last = answer(&mut ws, r).await;
        if last["s"] == "ok" {
            oks += 1;
        }
    }
    assert_eq!(oks, n);
    assert_eq!(last["s"], "invalid_data", "{last}");
}

/// Issue 18, item 9: realtime connections count in the bound on what all clients together hold
/// unread, as SSE streams do. Three that stopped reading are closed once their backlogs together
/// pass it, long before any reaches its own 16 MiB; one that reads keeps going.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_stopped_reading_are_dropped_when_all_backlogs_pass_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_in_process(rtdb::ServerConfig {
        db: rtdb::DbConfig {
            max_total_stream_queue_bytes: 2 << 20,
            ..rtdb::DbConfig::default()
        },
        ..common::config(dir.path())
    })
    .await;
    let url = server.url();
    let db = server.db().clone();
    let ws_url = format!("{}/.ws?v=5&ns=test", url.replacen("http", "ws", 1));
    let mut stuck = Vec::new();
    for _ in 0..3 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let tcp = socket.connect(server.addr()).await.unwrap();
        let tcp = tokio_tungstenite::MaybeTlsStream::Plain(tcp);
        let (mut ws, _) = tokio_tungstenite::client_async(ws_url.as_str(), tcp)
            .await
            .unwrap();
        next_json(&mut ws).await; // the handshake
        request(&mut ws, 1, "q", json!({"p": "/big", "h": ""})).await;
        assert_eq!(answer(&mut ws, 1).await["s"], "ok");
        stuck.push(ws); // and never read again
    }
    let mut reader = connect(&url).await;
    request(&mut reader, 1, "q", json!({"p": "/big", "h": ""})).await;
    assert_eq!(answer(&mut reader, 1).await["s"], "ok");
    let (seen_tx, mut seen) = tokio::sync::watch::channel(false);
    let reading = tokio::spawn(async move {
        while let Some(Ok(msg)) = reader.next().await {
            if let Message::Text(t) = msg {
                if t.as_str().contains("the-last") {
                    let _ = seen_tx.send(true);
                }
            }
        }
    });
    common::wait_until("the listens to register", T, || db.stream_count() == 4).await;
    let client = common::client();
    let chunk = "x".repeat(32 << 10);
    let mut written = 0usize;
    for i in 0..300 {
        let resp = client
            .put(format!("{url}/big/blob.json?print=silent"))
            .body(json!(format!("{i}{chunk}")).to_string())
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
        written += chunk.len();
        if db.stream_count() == 1 {
            break;
        }
    }
    common::wait_until("the stuck connections to close", T, || {
        db.stream_count() == 1
    })
    .await;
    assert!(
        written < 8 << 20,
        "dropped only after {written} bytes each, near their own 16 MiB bound"
    );
    client
        .put(format!("{url}/big/blob.json"))
        .body(json!("the-last").to_string())
        .send()
        .await
        .unwrap();
    tokio::time::timeout(T, seen.wait_for(|s| *s))
        .await
        .expect("the reading connection did not get the last write")
        .unwrap();
    reading.abort();
    drop(stuck);
}
