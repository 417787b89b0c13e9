//! Security rules over HTTP: what anonymous callers may read and write, the admin's rules
//! endpoint, `cancel` for streams the new rules no longer allow, and rules kept across restarts.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::time::Duration;

use common::{ev, Rest, SseStream};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(5);
const SECRET: &str = "admin-secret";

/// The capability layout Huddle uses for private rooms: a room's signaling sits under a path
/// derived from its secret; `/private` itself cannot be listed.
fn capability_rules() -> Value {
    json!({"rules": {
        "rooms": {".read": true, ".write": true},
        "private": {"$cap": {".read": true, ".write": true}}
    }})
}

async fn secured_server(dir: &std::path::Path, rules: Option<&Value>) -> rtdb::Server {
    let mut config = common::config(dir);
    config.secret = Some(SECRET.into());
    if let Some(rules) = rules {
        let file = dir.join("given-rules.json");
        std::fs::write(&file, rules.to_string()).unwrap();
        config.rules_file = Some(file);
    }
    common::start_in_process(config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_callers_get_exactly_what_the_rules_grant() {
    let dir = tempfile::tempdir().unwrap();
    let server = secured_server(dir.path(), Some(&capability_rules())).await;
    let rest = Rest::new(&server.url());

    assert_eq!(
        rest.send("PUT", "/rooms/r1", Some(r#"{"name":"R"}"#), &[])
            .await
            .status,
        200
    );
    assert_eq!(
        rest.send("GET", "/rooms", None, &[]).await.json(),
        json!({"r1": {"name": "R"}})
    );
    assert_eq!(
        rest.send("PUT", "/private/cap123/offer", Some(r#""sdp""#), &[])
            .await
            .status,
        200
    );
    assert_eq!(
        rest.send("GET", "/private/cap123", None, &[]).await.json(),
        json!({"offer": "sdp"})
    );

    // Listing the capabilities, or reading the root, is denied.
    for path in ["/private", "/"] {
        let a = rest.send("GET", path, None, &[]).await;
        assert_eq!(
            (a.status.as_u16(), a.error()),
            (401, "Permission denied".to_owned()),
            "{path}"
        );
    }
    let a = rest.send("PUT", "/elsewhere", Some("1"), &[]).await;
    assert_eq!(a.status, 401);
    // A PATCH touching one forbidden path is refused whole.
    let a = rest
        .send(
            "PATCH",
            "/",
            Some(r#"{"rooms/r2":{"name":"x"},"elsewhere/y":1}"#),
            &[],
        )
        .await;
    assert_eq!(a.status, 401);
    let admin = format!("/.json?auth={SECRET}");
    let all = rest
        .send_url("GET", &format!("{}{admin}", server.url()), None, &[])
        .await
        .json();
    assert_eq!(
        all["rooms"],
        json!({"r1": {"name": "R"}}),
        "the refused PATCH changed something"
    );
    assert!(all.get("elsewhere").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secured_server_without_rules_is_closed_to_anonymous_callers() {
    let dir = tempfile::tempdir().unwrap();
    let server = secured_server(dir.path(), None).await;
    let rest = Rest::new(&server.url());
    assert_eq!(rest.send("GET", "/rooms", None, &[]).await.status, 401);
    let mut s = SseStream::open_with(&common::stream_client(), &rest.url("/rooms")).await;
    assert_eq!(s.status, 401);
    assert_eq!(
        rest.send("GET", &format!("/rooms?auth={SECRET}"), None, &[])
            .await
            .status,
        200
    );
    assert!(s.try_next_event(Duration::from_millis(100)).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_rules_cancel_the_streams_they_no_longer_allow() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_in_process(common::config(dir.path())).await;
    let rest = Rest::new(&server.url());
    let mut room = SseStream::open(&rest.url("/room")).await;
    let mut lobby = SseStream::open(&rest.url("/lobby")).await;
    assert_eq!(room.next_event(T).await, ev("put", "/", Value::Null));
    assert_eq!(lobby.next_event(T).await, ev("put", "/", Value::Null));

    let owner = [("Authorization", "Bearer owner")];
    let rules = json!({"rules": {"lobby": {".read": true, ".write": true}}});
    let a = rest
        .send("PUT", "/.settings/rules", Some(&rules.to_string()), &owner)
        .await;
    assert_eq!(a.status, 200, "{}", a.text);

    assert_eq!(room.next_event(T).await, ("cancel".to_owned(), Value::Null));
    assert!(room.wait_closed(T).await, "a cancelled stream must end");
    assert_eq!(server.db().stream_count(), 1);
    // The allowed stream goes on.
    rest.send("PUT", "/lobby/x", Some("1"), &[]).await;
    assert_eq!(lobby.next_event(T).await, ev("put", "/x", json!(1)));
    // And the rules read back as set.
    assert_eq!(
        rest.send("GET", "/.settings/rules", None, &owner)
            .await
            .json(),
        rules
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_admin_sets_rules_and_only_supported_ones() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_in_process(common::config(dir.path())).await;
    let rest = Rest::new(&server.url());
    let rules = json!({"rules": {".read": false}}).to_string();
    assert_eq!(
        rest.send("PUT", "/.settings/rules", Some(&rules), &[])
            .await
            .status,
        401
    );
    let owner = [("Authorization", "Bearer owner")];
    let bad = json!({"rules": {"x": {".read": "root.child('x').frob() == 1"}}}).to_string();
    let a = rest
        .send("PUT", "/.settings/rules", Some(&bad), &owner)
        .await;
    assert_eq!(a.status, 400);
    assert!(
        a.error().contains(
            "/x/.read \"root.child('x').frob() == 1\" is not supported: the method .frob()"
        ),
        "{}",
        a.error()
    );
    // Nothing changed: the open server still answers anonymous reads.
    assert_eq!(rest.send("GET", "/x", None, &[]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let server = common::start_in_process(common::config(dir.path())).await;
        let rest = Rest::new(&server.url());
        let rules = json!({"rules": {"pub": {".read": true}}}).to_string();
        let owner = [("Authorization", "Bearer owner")];
        assert_eq!(
            rest.send("PUT", "/.settings/rules", Some(&rules), &owner)
                .await
                .status,
            200
        );
        server.shutdown().await;
    }
    let server = common::start_in_process(common::config(dir.path())).await;
    let rest = Rest::new(&server.url());
    assert_eq!(rest.send("GET", "/pub", None, &[]).await.status, 200);
    assert_eq!(rest.send("GET", "/secret", None, &[]).await.status, 401);
}
