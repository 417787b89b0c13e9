//! A third-party client against huddle-db: the `firebase-rs` crate (2.2.5), the one the design
//! card names, over HTTPS (it refuses `http://`), with a database secret, including its event
//! stream. If this passes, huddle-db looks like Firebase to a client we did not write.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::OnceLock;
use std::time::Duration;

use firebase_rs::{Firebase, RequestError};
use futures_util::StreamExt;
use rtdb::server::TlsMode;
use rtdb::{Server, ServerConfig};
use serde_json::{json, Value};

const SECRET: &str = "correct-horse";

/// One certificate for the whole test binary: SSL_CERT_FILE is process-wide, and firebase-rs
/// reads it afresh for every request, so parallel tests must all trust the same CA.
fn shared_tls() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let setup = rtdb::tls::generated(dir.path(), "127.0.0.1".parse().unwrap()).unwrap();
        std::env::set_var("SSL_CERT_FILE", setup.ca_file.unwrap());
        dir
    });
    dir.path()
}

async fn tls_server(dir: &std::path::Path) -> Server {
    let tls = shared_tls().join("tls");
    std::fs::create_dir_all(dir.join("tls")).unwrap();
    for f in std::fs::read_dir(&tls).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), dir.join("tls").join(f.file_name())).unwrap();
    }
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), dir.to_owned());
    config.tls = TlsMode::Generated;
    config.secret = Some(SECRET.to_owned());
    // firebase-rs builds its own HTTP clients (OpenSSL for REST, rustls with the native roots for
    // streams); both read the trusted roots from SSL_CERT_FILE, set once in shared_tls().
    Server::start(config).await.unwrap()
}

async fn next_event<S>(stream: &mut S) -> (String, Option<Value>)
where
    S: futures_util::Stream<Item = Result<(String, Option<String>), String>> + Unpin,
{
    let item = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("no event within 10 s")
        .expect("stream ended");
    let (name, data) = item.expect("stream error");
    (name, data.map(|d| serde_json::from_str(&d).unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firebase_rs_reads_writes_and_streams_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let server = tls_server(dir.path()).await;
    let url = server.url();
    assert!(url.starts_with("https://localhost:"), "{url}");

    let db = Firebase::auth(&url, SECRET).unwrap();
    let mut rooms = db.at("rooms");
    // set_with_key is firebase-rs's PUT.
    rooms
        .set_with_key("r1", &json!({"name": "First", "secured": false}))
        .await
        .unwrap();
    let got: Value = db.at("rooms").at("r1").get().await.unwrap();
    assert_eq!(got, json!({"name": "First", "secured": false}));

    // set() is a POST: the server answers with a push id.
    let pushed = db.at("log").set(&json!({"n": 1})).await.unwrap();
    let answer: Value = serde_json::from_str(&pushed.data).unwrap();
    let name = answer["name"].as_str().unwrap().to_owned();
    assert_eq!(name.len(), 20);
    let got: Value = db.at("log").at(&name).get().await.unwrap();
    assert_eq!(got, json!({"n": 1}));

    db.at("rooms")
        .at("r1")
        .update(&json!({"name": "Renamed"}))
        .await
        .unwrap();
    let got: Value = db.at("rooms").at("r1").at("name").get().await.unwrap();
    assert_eq!(got, json!("Renamed"));

    db.at("log").delete().await.unwrap();
    let got: Value = db.at("log").get().await.unwrap();
    assert_eq!(got, Value::Null);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firebase_rs_event_stream_sees_initial_value_then_changes() {
    let dir = tempfile::tempdir().unwrap();
    let server = tls_server(dir.path()).await;
    let db = Firebase::auth(&server.url(), SECRET).unwrap();
    db.at("rooms")
        .at("a")
        .update(&json!({"name": "A"}))
        .await
        .unwrap();

    let events = db.at("rooms").with_realtime_events().unwrap();
    let mut stream = events
        .stream(false)
        .map(|r| r.map_err(|e| format!("{e:?}")));
    let (name, data) = next_event(&mut stream).await;
    assert_eq!(name, "put");
    assert_eq!(
        data.unwrap(),
        json!({"path": "/", "data": {"a": {"name": "A"}}})
    );

    db.at("rooms")
        .at("b")
        .update(&json!({"name": "B"}))
        .await
        .unwrap();
    let (name, data) = next_event(&mut stream).await;
    assert_eq!(name, "patch");
    assert_eq!(data.unwrap(), json!({"path": "/b", "data": {"name": "B"}}));

    db.at("rooms").at("a").delete().await.unwrap();
    let (name, data) = next_event(&mut stream).await;
    assert_eq!(name, "put");
    assert_eq!(data.unwrap(), json!({"path": "/a", "data": null}));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firebase_rs_without_the_secret_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = tls_server(dir.path()).await;
    let db = Firebase::auth(&server.url(), "wrong").unwrap();
    let err = db.at("rooms").get::<Value>().await.unwrap_err();
    assert!(matches!(err, RequestError::Unauthorized), "{err:?}");
    server.shutdown().await;
}
