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
    // The rules are kept for everyone now: the owner is no longer the admin (issue 18, item 11).
    assert_eq!(
        rest.send("GET", "/.settings/rules", None, &owner)
            .await
            .status,
        401
    );
    assert_eq!(kept_rules(dir.path()), rules);
}

/// The rules a server keeps in its data folder.
fn kept_rules(data: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(data.join("rules.json")).unwrap()).unwrap()
}

/// Issue 18, item 11: an open server (no secret) started with rules keeps them for everyone.
/// Before, `Bearer owner` was the admin there: it listed every private space, acted as any
/// user, and replaced the rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_server_with_rules_has_no_owner() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("given-rules.json");
    let rules = json!({"rules": {
        "pub": {".read": true, ".write": true},
        "users": {"$uid": {".read": "auth != null && auth.uid == $uid",
                           ".write": "auth != null && auth.uid == $uid"}}
    }});
    std::fs::write(&file, rules.to_string()).unwrap();
    let mut config = common::config(&dir.path().join("data"));
    config.rules_file = Some(file);
    let server = common::start_in_process(config).await;
    let rest = Rest::new(&server.url());
    let owner = [("Authorization", "Bearer owner")];
    // Data someone wrote as themselves, through the rules (the in-process handle is the admin).
    server
        .db()
        .write_guarded(
            rtdb::WriteOp::Set {
                path: rtdb::DbPath::parse("/users/alice").unwrap(),
                value: json!({"diary": "private"}),
                if_match: None,
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(rest.send("GET", "/users", None, &owner).await.status, 401);
    assert_eq!(
        rest.send("GET", "/users/alice", None, &owner).await.status,
        401
    );
    let as_alice = rest
        .send(
            "GET",
            "/users/alice?auth_variable_override=%7B%22uid%22%3A%22alice%22%7D",
            None,
            &owner,
        )
        .await;
    assert_eq!(
        as_alice.status, 401,
        "owner acted as alice: {}",
        as_alice.text
    );
    let open = json!({"rules": {".read": true, ".write": true}}).to_string();
    let replaced = rest
        .send("PUT", "/.settings/rules", Some(&open), &owner)
        .await;
    assert_eq!(replaced.status, 401, "{}", replaced.text);
    assert_eq!(kept_rules(&dir.path().join("data")), rules);
    // What the rules allow still works, with or without the header.
    assert_eq!(
        rest.send("PUT", "/pub/x", Some("1"), &owner).await.status,
        200
    );
}

/// Issue 18, item 11: a failed `if-match` shows the current value and its ETag only to a caller
/// who may read it; a writer who may not read learns only that the condition failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_condition_does_not_show_what_the_caller_may_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("given-rules.json");
    let rules = json!({"rules": {
        "drop": {".write": true},
        "both": {".read": true, ".write": true}
    }});
    std::fs::write(&file, rules.to_string()).unwrap();
    let mut config = common::config(&dir.path().join("data"));
    config.rules_file = Some(file);
    let server = common::start_in_process(config).await;
    let rest = Rest::new(&server.url());
    for p in ["/drop", "/both"] {
        assert_eq!(
            rest.send("PUT", p, Some("\"secret\""), &[]).await.status,
            200
        );
    }
    let stale = [("if-match", "not-the-etag")];
    let hidden = rest.send("PUT", "/drop", Some("1"), &stale).await;
    assert_eq!(hidden.status, 412, "{}", hidden.text);
    assert!(!hidden.text.contains("secret"), "leaked: {}", hidden.text);
    assert_eq!(hidden.header("etag"), None, "leaked the ETag");
    assert!(hidden.error().contains("ETag mismatch"), "{}", hidden.text);
    let hidden = rest.send("DELETE", "/drop", None, &stale).await;
    assert_eq!(hidden.status, 412);
    assert!(!hidden.text.contains("secret"), "leaked: {}", hidden.text);
    // Where the caller may read, Firebase's answer: the value and its ETag.
    let shown = rest.send("PUT", "/both", Some("1"), &stale).await;
    assert_eq!(shown.status, 412);
    assert_eq!(shown.json(), json!("secret"));
    assert!(shown.header("etag").is_some());
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

/// Rules in the style of a real app: users write only as themselves, data has a shape, rooms are
/// create-once, names are claimed in the same update that sets them, queries need an index.
fn app_rules() -> Value {
    json!({"rules": {
        "profiles": {"$uid": {
            ".read": "auth != null",
            ".write": "auth.uid === $uid",
            ".validate": "newData.hasChildren(['name'])",
            "name": {".validate": "newData.isString() && newData.val().length <= 20"},
            "since": {".validate": "newData.isNumber() && newData.val() <= now"},
            "$other": {".validate": false}
        }},
        "rooms": {
            ".read": true,
            ".indexOn": ["createdAt"],
            "$room": {
                ".write": "(!data.exists() || data.child('owner').val() === auth.uid) && newData.child('owner').val() === auth.uid"
            }
        },
        "names": {"$name": {
            ".write": "newData.val() === auth.uid && newData.parent().parent().child('profiles/' + auth.uid + '/name').val() === $name"
        }}
    }})
}

/// A query string that makes the admin act as `uid`, as Firebase's `auth_variable_override`.
fn as_user(uid: &str) -> String {
    format!("auth={SECRET}&auth_variable_override=%7B%22uid%22%3A%22{uid}%22%7D")
}

async fn status(
    rest: &Rest,
    method: &str,
    path: &str,
    uid: Option<&str>,
    body: Option<&Value>,
) -> u16 {
    let path = match uid {
        Some(uid) => format!("{path}?{}", as_user(uid)),
        None => path.to_owned(),
    };
    let body = body.map(Value::to_string);
    rest.send(method, &path, body.as_deref(), &[])
        .await
        .status
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_write_only_as_themselves_and_validate_shapes_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let server = secured_server(dir.path(), Some(&app_rules())).await;
    let rest = Rest::new(&server.url());
    let me = Some("alice");
    let profile = json!({"name": "Alice", "since": {".sv": "timestamp"}});
    // The server value is resolved before the rules see it: `since <= now` holds.
    assert_eq!(
        status(&rest, "PUT", "/profiles/alice", me, Some(&profile)).await,
        200
    );
    assert_eq!(
        status(&rest, "PUT", "/profiles/bob", me, Some(&profile)).await,
        401
    );
    assert_eq!(
        status(&rest, "PUT", "/profiles/alice", None, Some(&profile)).await,
        401
    );
    assert_eq!(
        status(
            &rest,
            "PUT",
            "/profiles/alice",
            me,
            Some(&json!({"name": 5}))
        )
        .await,
        401
    );
    let extra = json!({"name": "A", "x": 1});
    assert_eq!(
        status(&rest, "PUT", "/profiles/alice", me, Some(&extra)).await,
        401
    );
    let future = json!({"name": "A", "since": 99_999_999_999_999u64});
    assert_eq!(
        status(&rest, "PUT", "/profiles/alice", me, Some(&future)).await,
        401
    );
    // A write below the profile: the profile's .validate is judged on the profile as it would be.
    assert_eq!(
        status(
            &rest,
            "PATCH",
            "/profiles/alice",
            me,
            Some(&json!({"name": "Al"}))
        )
        .await,
        200
    );
    assert_eq!(
        status(&rest, "DELETE", "/profiles/alice/name", me, None).await,
        401
    );
    // Refused writes changed nothing.
    let stored = rest
        .send(
            "GET",
            &format!("/profiles/alice?{}", as_user("alice")),
            None,
            &[],
        )
        .await;
    assert_eq!(stored.json()["name"], json!("Al"));
    // Reads: `auth != null`.
    assert_eq!(
        status(&rest, "GET", "/profiles/alice", None, None).await,
        401
    );
    assert_eq!(
        status(&rest, "GET", "/profiles/alice", Some("bob"), None).await,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_path_update_is_judged_on_its_combined_result() {
    let dir = tempfile::tempdir().unwrap();
    let server = secured_server(dir.path(), Some(&app_rules())).await;
    let rest = Rest::new(&server.url());
    let me = Some("alice");
    assert_eq!(
        status(
            &rest,
            "PUT",
            "/profiles/alice",
            me,
            Some(&json!({"name": "Alice"}))
        )
        .await,
        200
    );
    // Claiming a name is allowed only together with setting it.
    let claim_only = json!({"names/Ally": "alice"});
    assert_eq!(
        status(&rest, "PATCH", "/", me, Some(&claim_only)).await,
        401
    );
    let both = json!({"profiles/alice/name": "Ally", "names/Ally": "alice"});
    assert_eq!(status(&rest, "PATCH", "/", me, Some(&both)).await, 200);
    // One path not allowed refuses the whole update, and none of it is applied.
    let mixed = json!({"profiles/alice/name": "Al", "profiles/bob/name": "Bob"});
    assert_eq!(status(&rest, "PATCH", "/", me, Some(&mixed)).await, 401);
    let name = rest
        .send(
            "GET",
            &format!("/profiles/alice/name?{}", as_user("alice")),
            None,
            &[],
        )
        .await;
    assert_eq!(name.json(), json!("Ally"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_once_rules_hold_under_concurrent_writers_and_before_if_match() {
    let dir = tempfile::tempdir().unwrap();
    let server = secured_server(dir.path(), Some(&app_rules())).await;
    let rest = Rest::new(&server.url());
    // Twenty users race to create one room: the check and the write are one step, so one wins.
    let tries = (0..20).map(|i| {
        let rest = &rest;
        async move {
            let uid = format!("u{i}");
            let body = json!({"owner": uid});
            status(rest, "PUT", "/rooms/race", Some(&uid), Some(&body)).await
        }
    });
    let answers = futures_util::future::join_all(tries).await;
    assert_eq!(
        answers.iter().filter(|s| **s == 200).count(),
        1,
        "{answers:?}"
    );
    assert_eq!(
        answers.iter().filter(|s| **s == 401).count(),
        19,
        "{answers:?}"
    );
    let owner = rest
        .send("GET", "/rooms/race/owner", None, &[])
        .await
        .json();
    let owner = owner.as_str().unwrap().to_owned();
    // A conditional write by someone the rules refuse is refused, not told the current ETag.
    let mallory = format!("/rooms/race?{}", as_user("mallory"));
    let body = json!({"owner": "mallory"}).to_string();
    let refused = rest
        .send("PUT", &mallory, Some(&body), &[("if-match", "wrong")])
        .await;
    assert_eq!(refused.status, 401);
    let mine = format!("/rooms/race?{}", as_user(&owner));
    let body = json!({"owner": owner, "topic": "x"}).to_string();
    let stale = rest
        .send("PUT", &mine, Some(&body), &[("if-match", "wrong")])
        .await;
    assert_eq!(stale.status, 412);
    // Push: the new child's location is what the rules judge.
    let pushed = rest
        .send(
            "POST",
            &format!("/rooms?{}", as_user("alice")),
            Some(r#"{"owner":"alice"}"#),
            &[],
        )
        .await;
    assert_eq!(pushed.status, 200);
    let pushed = rest
        .send(
            "POST",
            &format!("/rooms?{}", as_user("alice")),
            Some(r#"{"owner":"bob"}"#),
            &[],
        )
        .await;
    assert_eq!(pushed.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_ordered_by_a_child_needs_its_index() {
    let dir = tempfile::tempdir().unwrap();
    let server = secured_server(dir.path(), Some(&app_rules())).await;
    let rest = Rest::new(&server.url());
    let ok = rest
        .send(
            "GET",
            "/rooms?orderBy=%22createdAt%22&limitToFirst=1",
            None,
            &[],
        )
        .await;
    assert_eq!(ok.status, 200);
    let by_key = rest
        .send(
            "GET",
            "/rooms?orderBy=%22%24key%22&limitToFirst=1",
            None,
            &[],
        )
        .await;
    assert_eq!(by_key.status, 200);
    let missing = rest
        .send(
            "GET",
            "/rooms?orderBy=%22owner%22&limitToFirst=1",
            None,
            &[],
        )
        .await;
    assert_eq!(missing.status, 400);
    assert_eq!(
        missing.error(),
        "Index not defined, add \".indexOn\": \"owner\", for path \"/rooms\", to the rules"
    );
}
