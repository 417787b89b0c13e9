//! The client's onDisconnect link against a real huddle-db (with the shipped rules): it signs
//! in as the user the REST calls are made as, the rules judge what it registers, the server
//! runs it when the link goes, and a cancel leaves nothing to run.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::time::Duration;

use common::{client_as, pid, T};
use serde_json::{json, Map, Value};
use signal::rtdb::LinkState;

async fn until_state(
    od: &signal::rtdb::OnDisconnect,
    want: impl Fn(&LinkState) -> bool,
) -> LinkState {
    let mut rx = od.state();
    tokio::time::timeout(T, async {
        loop {
            let now = rx.borrow_and_update().clone();
            if want(&now) {
                return now;
            }
            rx.changed().await.unwrap();
        }
    })
    .await
    .unwrap_or_else(|_| panic!("state stayed {:?}", *rx.borrow()))
}

async fn until_null(url: &str, path: &str) {
    let admin = common::admin(url);
    tokio::time::timeout(T, async {
        while !admin.get(path).await.unwrap().is_null() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{path} is still there"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_work_runs_when_the_link_goes_and_not_after_a_cancel() {
    let (_dir, server) = common::server().await;
    let url = server.url();
    let me = pid("a");
    let room = common::signaling(&url, &me)
        .create_room("Link", signal::room::Privacy::Public)
        .await
        .unwrap();
    let db = client_as(&url, &me);
    let record = format!("occupants/{room}/{me}");
    db.set(
        &record,
        &json!({"name": "A", "session": "aaaaSession00001", "joinedAt": 1, "seen": 1,
        "streams": {"audio": false, "video": false, "screen": false}}),
    )
    .await
    .unwrap();
    let od = db.on_disconnect();
    let mut patch = Map::new();
    patch.insert(record.clone(), Value::Null);
    od.update("/", patch);
    until_state(&od, |s| *s == LinkState::Armed).await;
    drop(od);
    until_null(&url, &record).await;

    // Cancelled: nothing runs.
    db.set(
        &record,
        &json!({"name": "A", "session": "aaaaSession00002", "joinedAt": 1, "seen": 1,
        "streams": {"audio": false, "video": false, "screen": false}}),
    )
    .await
    .unwrap();
    let od = db.on_disconnect();
    let mut patch = Map::new();
    patch.insert(record.clone(), Value::Null);
    od.update("/", patch);
    until_state(&od, |s| *s == LinkState::Armed).await;
    od.cancel().await.unwrap();
    drop(od);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!common::admin(&url).get(&record).await.unwrap().is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_the_rules_refuse_is_refused_with_a_reason() {
    let (_dir, server) = common::server().await;
    let url = server.url();
    let room = common::signaling(&url, &pid("b"))
        .create_room("Theirs", signal::room::Privacy::Public)
        .await
        .unwrap();
    // a would write a record for b when a goes: only b may write b's record.
    let other = format!("occupants/{room}/{}", pid("b"));
    let od = client_as(&url, &pid("a")).on_disconnect();
    let mut patch = Map::new();
    patch.insert(other, json!({"name": "forged"}));
    od.update("/", patch);
    let state = until_state(&od, |s| matches!(s, LinkState::Refused(_))).await;
    let LinkState::Refused(words) = state else {
        unreachable!()
    };
    assert!(words.contains("permission_denied"), "{words}");
}
