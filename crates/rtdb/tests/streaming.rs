//! Streaming (Server-Sent Events) behaviour of huddle-db, over a real socket on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{ev, Rest, SseStream};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

/// Upper bound for any single event to arrive.
const T: Duration = Duration::from_secs(5);

async fn open_server() -> (tempfile::TempDir, rtdb::Server, Rest) {
    let (dir, server) = common::start_default().await;
    let rest = Rest::new(&server.url());
    (dir, server, rest)
}

/// `GET path.json` as a stream.
async fn stream(rest: &Rest, path: &str) -> SseStream {
    SseStream::open(&rest.url(path)).await
}

/// A raw connection that asks for a stream and then never reads.
async fn raw_stream_request(
    addr: std::net::SocketAddr,
    path: &str,
    small_buffer: bool,
) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if small_buffer {
        socket.set_recv_buffer_size(4096).unwrap();
    }
    let mut s = socket.connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_event_is_put_root_with_the_whole_value() {
    let (_dir, _server, rest) = open_server().await;
    let mut empty = stream(&rest, "/nothing").await;
    assert_eq!(empty.headers.get("cache-control").unwrap(), "no-cache");
    assert_eq!(empty.next_event(T).await, ev("put", "/", Value::Null));

    let v = json!({"a": {"b": [1, 2]}, "c": "d"});
    rest.put("/v", &v).await;
    let mut root = stream(&rest, "/").await;
    assert_eq!(root.next_event(T).await, ev("put", "/", json!({"v": v})));
    let mut at_v = stream(&rest, "/v").await;
    assert_eq!(at_v.next_event(T).await, ev("put", "/", v.clone()));
    let mut leaf = stream(&rest, "/v/c").await;
    assert_eq!(leaf.next_event(T).await, ev("put", "/", json!("d")));
    let mut arr = stream(&rest, "/v/a/b").await;
    assert_eq!(arr.next_event(T).await, ev("put", "/", json!([1, 2])));
    // The absent stream then sees the value appear.
    rest.put("/nothing", &json!(5)).await;
    assert_eq!(empty.next_data_event(T).await, ev("put", "/", json!(5)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_listeners_each_see_a_write_once_with_their_own_path() {
    let (_dir, _server, rest) = open_server().await;
    let mut root = stream(&rest, "/").await;
    let mut a = stream(&rest, "/a").await;
    let mut abc = stream(&rest, "/a/b/c").await;
    let mut z = stream(&rest, "/z").await;
    for s in [&mut root, &mut a, &mut abc, &mut z] {
        assert_eq!(s.next_event(T).await, ev("put", "/", Value::Null));
    }
    let value = json!({"b": {"c": 1}, "x": 2});
    rest.put("/a", &value).await;
    assert_eq!(
        root.next_data_event(T).await,
        ev("put", "/a", value.clone())
    );
    assert_eq!(a.next_data_event(T).await, ev("put", "/", value.clone()));
    assert_eq!(abc.next_data_event(T).await, ev("put", "/", json!(1)));
    // /z saw nothing: the next thing it sees is the write to /z.
    rest.put("/z", &json!("zz")).await;
    assert_eq!(z.next_data_event(T).await, ev("put", "/", json!("zz")));
    assert_eq!(root.next_data_event(T).await, ev("put", "/z", json!("zz")));
    // Nobody got the /a write twice: their next event is the next write below them.
    rest.put("/a/b/c", &json!(2)).await;
    assert_eq!(root.next_data_event(T).await, ev("put", "/a/b/c", json!(2)));
    assert_eq!(a.next_data_event(T).await, ev("put", "/b/c", json!(2)));
    assert_eq!(abc.next_data_event(T).await, ev("put", "/", json!(2)));
    // A write beside /a/b/c is not seen by it.
    rest.put("/a/x", &json!(3)).await;
    assert_eq!(a.next_data_event(T).await, ev("put", "/x", json!(3)));
    // Deleting an ancestor is a put of null for the listener below.
    rest.delete("/a").await;
    assert_eq!(abc.next_data_event(T).await, ev("put", "/", Value::Null));
    assert_eq!(a.next_data_event(T).await, ev("put", "/", Value::Null));
    assert_eq!(root.next_data_event(T).await, ev("put", "/a/x", json!(3)));
    assert_eq!(root.next_data_event(T).await, ev("put", "/a", Value::Null));
    // A root write reaches everyone with their part of it.
    rest.put("/", &json!({"z": "new", "a": {"b": {"c": 7}}}))
        .await;
    assert_eq!(
        root.next_data_event(T).await,
        ev("put", "/", json!({"z": "new", "a": {"b": {"c": 7}}}))
    );
    assert_eq!(abc.next_data_event(T).await, ev("put", "/", json!(7)));
    assert_eq!(z.next_data_event(T).await, ev("put", "/", json!("new")));
    assert_eq!(
        a.next_data_event(T).await,
        ev("put", "/", json!({"b": {"c": 7}}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_is_one_patch_event_above_and_a_put_below() {
    let (_dir, _server, rest) = open_server().await;
    rest.put("/r", &json!({"x": {"k": 0}, "y": 1, "w": 5}))
        .await;
    let mut root = stream(&rest, "/").await;
    let mut at_r = stream(&rest, "/r").await;
    let mut below = stream(&rest, "/r/x").await;
    let mut beside = stream(&rest, "/r/w").await;
    root.next_event(T).await;
    at_r.next_event(T).await;
    assert_eq!(below.next_event(T).await, ev("put", "/", json!({"k": 0})));
    assert_eq!(beside.next_event(T).await, ev("put", "/", json!(5)));

    rest.patch("/r", &json!({"x/k": 1, "y": null})).await;
    assert_eq!(
        root.next_data_event(T).await,
        ev("patch", "/r", json!({"x/k": 1, "y": null}))
    );
    assert_eq!(
        at_r.next_data_event(T).await,
        ev("patch", "/", json!({"x/k": 1, "y": null}))
    );
    assert_eq!(below.next_data_event(T).await, ev("put", "/k", json!(1)));
    // Exactly one event each, and nothing for /r/w: the next write is the next event.
    rest.put("/r/w", &json!(6)).await;
    assert_eq!(beside.next_data_event(T).await, ev("put", "/", json!(6)));
    assert_eq!(root.next_data_event(T).await, ev("put", "/r/w", json!(6)));
    assert_eq!(at_r.next_data_event(T).await, ev("put", "/w", json!(6)));
    rest.put("/r/x/k", &json!(2)).await;
    assert_eq!(below.next_data_event(T).await, ev("put", "/k", json!(2)));
    assert_eq!(rest.get("/r").await, json!({"x": {"k": 2}, "w": 6}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_that_change_nothing_send_no_event() {
    let (_dir, _server, rest) = open_server().await;
    rest.put("/n", &json!({"v": 1, "o": {"p": true}})).await;
    let mut s = stream(&rest, "/n").await;
    assert_eq!(
        s.next_event(T).await,
        ev("put", "/", json!({"v": 1, "o": {"p": true}}))
    );
    // Same value again, in every form.
    rest.put("/n", &json!({"v": 1, "o": {"p": true}})).await;
    rest.put("/n/v", &json!(1)).await;
    rest.patch("/n", &json!({"v": 1, "o/p": true})).await;
    rest.delete("/n/missing").await;
    rest.put("/n/empty", &json!({})).await;
    rest.put("/n/nulls", &json!({"a": null})).await;
    // A real change: the very next event.
    rest.put("/n/v", &json!(2)).await;
    assert_eq!(s.next_data_event(T).await, ev("put", "/v", json!(2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_events_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_in_process(rtdb::ServerConfig {
        keepalive: Duration::from_millis(300),
        ..common::config(dir.path())
    })
    .await;
    let rest = Rest::new(&server.url());
    let mut s = stream(&rest, "/k").await;
    assert_eq!(s.next_event(T).await, ev("put", "/", Value::Null));
    let started = std::time::Instant::now();
    for _ in 0..2 {
        let (name, data) = s.next_event(Duration::from_secs(3)).await;
        assert_eq!(name, "keep-alive");
        assert_eq!(data, Value::Null);
    }
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "keep-alives came too fast: {:?}",
        started.elapsed()
    );
    // Data still flows between keep-alives.
    rest.put("/k", &json!("after")).await;
    assert_eq!(s.next_data_event(T).await, ev("put", "/", json!("after")));
    let (name, _) = s.next_event(Duration::from_secs(3)).await;
    assert_eq!(name, "keep-alive");
}

/// Issue 18, item 10: listeners with the same query at a path share one view per write, and each
/// still gets its own query's view; a query that only orders (no range, no limit) gets the
/// write's own event, the change to its view, not the whole view again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_streams_share_views_and_unbounded_ones_get_the_change() {
    let (_dir, _server, rest) = open_server().await;
    rest.put("/q", &json!({"a": 1, "b": 5, "c": 3})).await;
    let last2 = format!("{}?orderBy=%22%24value%22&limitToLast=2", rest.url("/q"));
    let first1 = format!("{}?orderBy=%22%24key%22&limitToFirst=1", rest.url("/q"));
    let by_key = format!("{}?orderBy=%22%24key%22", rest.url("/q"));
    let mut a = SseStream::open(&last2).await;
    let mut b = SseStream::open(&last2).await;
    let mut c = SseStream::open(&first1).await;
    let mut d = SseStream::open(&by_key).await;
    for s in [&mut a, &mut b] {
        assert_eq!(
            s.next_event(T).await,
            ev("put", "/", json!({"b": 5, "c": 3}))
        );
    }
    assert_eq!(c.next_event(T).await, ev("put", "/", json!({"a": 1})));
    assert_eq!(
        d.next_event(T).await,
        ev("put", "/", json!({"a": 1, "b": 5, "c": 3}))
    );
    rest.put("/q/0", &json!(10)).await;
    for s in [&mut a, &mut b] {
        assert_eq!(
            s.next_data_event(T).await,
            ev("put", "/", json!({"0": 10, "b": 5}))
        );
    }
    // The view is {"0": 10}, which comes back as an array, as Firebase renders it.
    assert_eq!(c.next_data_event(T).await, ev("put", "/", json!([10])));
    assert_eq!(d.next_data_event(T).await, ev("put", "/0", json!(10)));
    rest.patch("/q", &json!({"a": null, "e": 2})).await;
    assert_eq!(
        d.next_data_event(T).await,
        ev("patch", "/", json!({"a": null, "e": 2}))
    );
    // That patch left the first-key view as it was: it sends nothing, so the next event of
    // that stream is the next change of its view.
    rest.put("/q/0", &json!(11)).await;
    assert_eq!(c.next_data_event(T).await, ev("put", "/", json!([11])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_streams_get_the_filtered_view() {
    let (_dir, _server, rest) = open_server().await;
    rest.put("/q", &json!({"a": 1, "b": 5, "c": 3})).await;
    let url = format!("{}?orderBy=%22%24value%22&limitToLast=2", rest.url("/q"));
    let mut s = SseStream::open(&url).await;
    assert_eq!(
        s.next_event(T).await,
        ev("put", "/", json!({"b": 5, "c": 3}))
    );
    rest.put("/q/d", &json!(10)).await;
    assert_eq!(
        s.next_data_event(T).await,
        ev("put", "/", json!({"b": 5, "d": 10}))
    );
    rest.delete("/q/b").await;
    assert_eq!(
        s.next_data_event(T).await,
        ev("put", "/", json!({"c": 3, "d": 10}))
    );
    rest.patch("/q", &json!({"e": 7, "c": null})).await;
    assert_eq!(
        s.next_data_event(T).await,
        ev("put", "/", json!({"e": 7, "d": 10}))
    );

    // A child query with a range.
    rest.put("/people", &json!({"p1": {"age": 20}, "p2": {"age": 40}}))
        .await;
    let url = format!("{}?orderBy=%22age%22&startAt=30", rest.url("/people"));
    let mut s = SseStream::open(&url).await;
    assert_eq!(
        s.next_event(T).await,
        ev("put", "/", json!({"p2": {"age": 40}}))
    );
    rest.put("/people/p1/age", &json!(35)).await;
    assert_eq!(
        s.next_data_event(T).await,
        ev("put", "/", json!({"p1": {"age": 35}, "p2": {"age": 40}}))
    );
    rest.delete("/people").await;
    assert_eq!(s.next_data_event(T).await, ev("put", "/", Value::Null));

    // A malformed query is a 400, not a stream.
    let a = rest
        .send(
            "GET",
            "/q?limitToLast=2",
            None,
            &[("Accept", "text/event-stream")],
        )
        .await;
    assert_eq!(a.status, 400);
    assert_eq!(
        a.json(),
        json!({"error": "orderBy must be defined when other query parameters are defined"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_listeners_each_get_every_event_once_in_order() {
    const LISTENERS: usize = 200;
    const WRITES: i64 = 50;
    let (_dir, server, rest) = open_server().await;
    let client = common::stream_client();
    let mut streams = Vec::new();
    for i in 0..LISTENERS {
        // Half at the written location, half above it.
        let path = if i % 2 == 0 { "/fan" } else { "/" };
        let mut s = SseStream::open_with(&client, &rest.url(path)).await;
        assert_eq!(s.status, 200);
        assert_eq!(s.next_event(T).await, ev("put", "/", Value::Null));
        streams.push((path, s));
    }
    assert_eq!(server.db().stream_count(), LISTENERS);
    let mut readers = tokio::task::JoinSet::new();
    for (path, mut s) in streams {
        readers.spawn(async move {
            let mut got = Vec::new();
            for _ in 0..WRITES {
                got.push(s.next_data_event(Duration::from_secs(30)).await);
            }
            // Nothing more arrives (checked in every task at once, so it costs one wait).
            let extra = s.try_next_event(Duration::from_millis(200)).await;
            (path, got, extra)
        });
    }
    for i in 0..WRITES {
        rest.put("/fan", &json!(i)).await;
    }
    let mut checked = 0;
    while let Some(r) = readers.join_next().await {
        let (path, got, extra) = r.unwrap();
        let want: Vec<_> = (0..WRITES)
            .map(|i| {
                if path == "/" {
                    ev("put", "/fan", json!(i))
                } else {
                    ev("put", "/", json!(i))
                }
            })
            .collect();
        assert_eq!(got, want, "listener at {path}");
        assert_eq!(extra, None, "an extra event at {path}");
        checked += 1;
    }
    assert_eq!(checked, LISTENERS);
}

fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_stops_reading_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_in_process(rtdb::ServerConfig {
        db: rtdb::DbConfig {
            max_stream_queue_bytes: 64 << 10,
            ..rtdb::DbConfig::default()
        },
        ..common::config(dir.path())
    })
    .await;
    let rest = Rest::new(&server.url());
    let db = server.db().clone();
    // Never read from this one, and keep its socket buffer small.
    let _stuck = raw_stream_request(server.addr(), "/big.json", true).await;
    common::wait_until("the stuck stream to register", T, || db.stream_count() == 1).await;
    let rss_before = rss_bytes();
    let chunk = "x".repeat(32 << 10);
    let mut written = 0usize;
    for i in 0..400 {
        // The same location over and over: the data itself stays small.
        rest.put("/big/blob", &json!(format!("{i}{chunk}"))).await;
        written += chunk.len();
        if db.stream_count() == 0 {
            break;
        }
    }
    common::wait_until("the stuck stream to be dropped", T, || {
        db.stream_count() == 0
    })
    .await;
    assert!(
        written <= 16 << 20,
        "the stream was only dropped after {written} bytes"
    );
    if let (Some(before), Some(after)) = (rss_before, rss_bytes()) {
        assert!(
            after < before + (200 << 20),
            "memory grew from {before} to {after}"
        );
    }
    // The server still answers, and new streams work.
    assert!(rest
        .get("/big/blob")
        .await
        .as_str()
        .unwrap()
        .ends_with(&chunk));
    let mut s = stream(&rest, "/other").await;
    assert_eq!(s.next_event(T).await, ev("put", "/", Value::Null));
    rest.put("/other", &json!(1)).await;
    assert_eq!(s.next_data_event(T).await, ev("put", "/", json!(1)));
}

/// Issue 18, item 9: what all streams together hold unread is bounded. Three streams that
/// stopped reading are dropped, furthest behind first, once their backlogs together pass the
/// server's bound, long before any reaches its own bound; a stream that reads keeps going.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_that_stopped_reading_are_dropped_when_all_backlogs_pass_the_bound() {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_in_process(rtdb::ServerConfig {
        db: rtdb::DbConfig {
            max_total_stream_queue_bytes: 2 << 20,
            ..rtdb::DbConfig::default()
        },
        ..common::config(dir.path())
    })
    .await;
    let rest = Rest::new(&server.url());
    let db = server.db().clone();
    let mut stuck = Vec::new();
    for _ in 0..3 {
        stuck.push(raw_stream_request(server.addr(), "/big.json", true).await);
    }
    let mut reader = raw_stream_request(server.addr(), "/big.json", false).await;
    let (seen_tx, mut seen) = tokio::sync::watch::channel(false);
    let reading = tokio::spawn(async move {
        let mut tail = Vec::new();
        let mut buf = vec![0u8; 64 << 10];
        while let Ok(n) = reader.read(&mut buf).await {
            if n == 0 {
                break;
            }
            tail.extend_from_slice(&buf[..n]);
            if tail.windows(8).any(|w| w == b"the-last") {
                let _ = seen_tx.send(true);
            }
            let keep = tail.len().saturating_sub(16);
            tail.drain(..keep);
        }
    });
    common::wait_until("the streams to register", T, || db.stream_count() == 4).await;
    let chunk = "x".repeat(32 << 10);
    let mut written = 0usize;
    for i in 0..300 {
        rest.put("/big/blob", &json!(format!("{i}{chunk}"))).await;
        written += chunk.len();
        if db.stream_count() == 1 {
            break;
        }
    }
    assert_eq!(db.stream_count(), 1, "the stuck streams were not dropped");
    assert!(
        written < 8 << 20,
        "dropped only after {written} bytes each, near their own 16 MiB bound"
    );
    rest.put("/big/blob", &json!("the-last")).await;
    tokio::time::timeout(T, seen.wait_for(|s| *s))
        .await
        .expect("the reading stream did not get the last write")
        .unwrap();
    reading.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_of_clients_that_went_away_are_released() {
    let (_dir, server, rest) = open_server().await;
    let db = server.db().clone();
    let mut streams = Vec::new();
    for _ in 0..10 {
        let mut s = stream(&rest, "/gone").await;
        s.next_event(T).await;
        streams.push(s);
    }
    let mut raws = Vec::new();
    for _ in 0..10 {
        raws.push(raw_stream_request(server.addr(), "/gone.json", false).await);
    }
    common::wait_until("20 streams", T, || db.stream_count() == 20).await;
    drop(streams);
    drop(raws);
    // A closed connection is noticed at the latest when the server next writes to it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut i = 0;
    while db.stream_count() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} streams still registered",
            db.stream_count()
        );
        rest.put("/gone", &json!(i)).await;
        i += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_on_a_secured_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_in_process(rtdb::ServerConfig {
        secret: Some("sekrit".into()),
        ..common::config(dir.path())
    })
    .await;
    let rest = Rest::new(&server.url());
    // Without the secret: 401 with a JSON error, no stream.
    for path in ["/s", "/s?auth=wrong"] {
        let a = rest
            .send("GET", path, None, &[("Accept", "text/event-stream")])
            .await;
        assert_eq!(a.status, 401, "{path}");
        assert!(!a.error().is_empty());
    }
    assert_eq!(server.db().stream_count(), 0);
    let mut s = SseStream::open(&format!("{}?auth=sekrit", rest.url("/s"))).await;
    assert_eq!(s.next_event(T).await, ev("put", "/", Value::Null));
    let bearer = {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("authorization", "Bearer sekrit".parse().unwrap());
        reqwest::Client::builder()
            .default_headers(h)
            .build()
            .unwrap()
    };
    let mut b = SseStream::open_with(&bearer, &rest.url("/s")).await;
    assert_eq!(b.status, 200);
    assert_eq!(b.next_event(T).await, ev("put", "/", Value::Null));
    let w = rest
        .send("PUT", "/s?auth=sekrit", Some(r#"{"m":1}"#), &[])
        .await;
    assert_eq!(w.status, 200);
    assert_eq!(s.next_data_event(T).await, ev("put", "/", json!({"m": 1})));
    assert_eq!(b.next_data_event(T).await, ev("put", "/", json!({"m": 1})));
    // An unauthorised write changes nothing and sends nothing.
    let w = rest.send("PUT", "/s", Some(r#"{"m":2}"#), &[]).await;
    assert_eq!(w.status, 401);
    rest.send("PUT", "/s/m?auth=sekrit", Some("3"), &[]).await;
    assert_eq!(s.next_data_event(T).await, ev("put", "/m", json!(3)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_streams_do_not_stop_rest() {
    const CONNECTIONS: usize = 1000;
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    // All of them come from 127.0.0.1, over the default bound for one address.
    config.limits.per_address = CONNECTIONS + 10;
    let server = common::start_in_process(config).await;
    let rest = Rest::new(&server.url());
    let db = server.db().clone();
    let mut conns = Vec::with_capacity(CONNECTIONS);
    for i in 0..CONNECTIONS {
        conns.push(
            raw_stream_request(server.addr(), &format!("/idle/{}.json", i % 10), false).await,
        );
    }
    common::wait_until(
        "all idle streams to register",
        Duration::from_secs(20),
        || db.stream_count() == CONNECTIONS,
    )
    .await;
    let started = std::time::Instant::now();
    rest.put("/busy", &json!({"still": "here"})).await;
    assert_eq!(rest.get("/busy").await, json!({"still": "here"}));
    // A write that reaches every idle stream, then more REST.
    rest.put(
        "/idle",
        &json!({"0": 1, "1": 1, "2": 1, "3": 1, "4": 1, "5": 1, "6": 1, "7": 1, "8": 1, "9": 1}),
    )
    .await;
    assert_eq!(rest.get("/idle/3").await, json!(1));
    let mut s = stream(&rest, "/busy").await;
    assert_eq!(
        s.next_event(T).await,
        ev("put", "/", json!({"still": "here"}))
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "REST took {:?} with idle streams open",
        started.elapsed()
    );
    drop(conns);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_request_for_a_bad_path_is_a_json_error() {
    let (_dir, server, rest) = open_server().await;
    for url in [
        rest.url("/a.b"),
        format!("{}/no-suffix", server.url()),
        format!("{}/%FF.json", server.url()),
    ] {
        let a = rest
            .send_url("GET", &url, None, &[("Accept", "text/event-stream")])
            .await;
        assert_eq!(a.status, 400, "{url}");
        assert!(!a.error().is_empty());
    }
    assert_eq!(server.db().stream_count(), 0);
    let mut s = stream(&rest, "/fine").await;
    assert_eq!(s.next_event(T).await, ev("put", "/", Value::Null));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_over_generated_tls() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_in_process(rtdb::ServerConfig {
        tls: rtdb::server::TlsMode::Generated,
        ..common::config(dir.path())
    })
    .await;
    let ca = std::fs::read(server.ca_file().unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let url = format!("{}/tls.json", server.url());
    let mut s = SseStream::open_with(&client, &url).await;
    assert_eq!(s.status, 200);
    assert_eq!(s.next_event(T).await, ev("put", "/", Value::Null));
    let w = client.put(&url).body(r#"{"x":1}"#).send().await.unwrap();
    assert_eq!(w.status(), 200);
    assert_eq!(s.next_data_event(T).await, ev("put", "/", json!({"x": 1})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_at_the_size_limit_reaches_a_reading_listener() {
    // Default bounds: any write the server accepts must reach a listener that keeps reading.
    let (_dir, server, rest) = open_server().await;
    let mut s = stream(&rest, "/huge").await;
    assert_eq!(s.next_event(T).await, ev("put", "/", Value::Null));
    // Two strings (each under the 10 MB string limit) making a body of exactly 16 MiB.
    let (n1, n2) = (8 << 20, (16 << 20) - (8 << 20) - 15);
    let body = format!(r#"{{"a":"{}","b":"{}"}}"#, "h".repeat(n1), "i".repeat(n2));
    assert_eq!(body.len(), 16 << 20);
    let a = rest.send("PUT", "/huge", Some(&body), &[]).await;
    assert_eq!(
        a.status,
        200,
        "a 16 MiB body is within the limit: {}",
        &a.text[..a.text.len().min(300)]
    );
    let (name, data) = s.next_data_event(Duration::from_secs(20)).await;
    assert_eq!(name, "put");
    assert_eq!(data["path"], json!("/"));
    assert_eq!(data["data"]["a"].as_str().map(str::len), Some(n1));
    assert_eq!(data["data"]["b"].as_str().map(str::len), Some(n2));
    assert_eq!(server.db().stream_count(), 1);
}

/// A listener that subscribes while writes go on gets its first value and then every later
/// write exactly once: no write missed between the two, none sent twice. Writes are published
/// after the tree's write lock is released (so readers go on meanwhile); this is what the
/// hand-over of locks in the writer keeps true.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_joining_during_writes_misses_none_and_gets_none_twice() {
    let (_dir, server, _rest) = open_server().await;
    let db = server.db().clone();
    let path = rtdb::DbPath::parse("/c").unwrap();
    const LAST: u64 = 600;
    let writer = {
        let (db, path) = (db.clone(), path.clone());
        tokio::spawn(async move {
            for i in 1..=LAST {
                db.write(rtdb::WriteOp::Set {
                    path: path.clone(),
                    value: json!(i),
                    if_match: None,
                })
                .await
                .unwrap();
            }
        })
    };
    let value_of = |frame: &[u8]| -> Option<u64> {
        let text = std::str::from_utf8(frame).unwrap();
        let data = text.split("data: ").nth(1)?.trim();
        let v: Value = serde_json::from_str(data).unwrap();
        v["data"].as_u64()
    };
    let mut checked = 0;
    while !writer.is_finished() {
        let sub = db.subscribe(path.clone(), None, rtdb::rules::Caller::Admin);
        let first = tokio::time::timeout(T, sub.rx.recv())
            .await
            .unwrap()
            .unwrap();
        let Some(mut last) = value_of(&first) else {
            db.unsubscribe(&sub.path, sub.id);
            continue; // before the first write
        };
        for _ in 0..3 {
            if last == LAST {
                break;
            }
            let next = tokio::time::timeout(T, sub.rx.recv())
                .await
                .unwrap()
                .unwrap();
            let v = value_of(&next).unwrap();
            assert_eq!(v, last + 1, "after {last} came {v}");
            last = v;
        }
        db.unsubscribe(&sub.path, sub.id);
        checked += 1;
    }
    writer.await.unwrap();
    assert!(
        checked > 10,
        "only {checked} listeners joined during the writes"
    );
}
