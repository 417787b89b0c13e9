//! huddle-peers that sign in for real (anonymously, at the in-process huddle-db's own origin,
//! as a user's app does): the uid is the peer id, a saved credential keeps it across runs, and a
//! call outlives several token lifetimes without a hiccup.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::{Duration, Instant};

use harness::{huddle_peer, peer_stderr, Peer};
use serde_json::Value;

fn spawn(db: &str, room: &str, name: &str, extra: &[&str]) -> Peer {
    let bin = env!("CARGO_BIN_EXE_huddle-peer").as_ref();
    let mut cmd = huddle_peer(bin, db, room, name);
    cmd.args(["--size", "160x96", "--fps", "15"])
        .args(["--heartbeat-ms", "300", "--expiry-ms", "2000"])
        .args(extra)
        .stderr(peer_stderr());
    Peer::start(name, &mut cmd).unwrap()
}

fn signed_in(p: &Peer) -> Value {
    p.seen()
        .iter()
        .find(|v| v["type"] == "signed_in")
        .cloned()
        .unwrap()
}

/// The uid a saved credential names: the same user on the next run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_credential_keeps_the_peer_id_across_runs() {
    let (dir, server) = harness::in_process_db().await.unwrap();
    let url = server.url();
    let saved = dir.path().join("cred.json");
    let saved_arg = saved.to_str().unwrap().to_owned();
    let first = tokio::task::spawn_blocking({
        let (url, saved_arg) = (url.clone(), saved_arg.clone());
        move || {
            let mut p = spawn(&url, "keep", "k", &["--create", "--credential", &saved_arg]);
            assert_eq!(signed_in(&p)["admin"], false, "it signed in, no secret");
            p.wait("joined", |v| v["type"] == "joined").unwrap();
            p.leave(Duration::from_secs(10)).unwrap();
            p.peer_id().to_owned()
        }
    })
    .await
    .unwrap();
    let text = std::fs::read_to_string(&saved).unwrap();
    let cred: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        cred["uid"],
        first.as_str(),
        "the file names the uid: {text}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the credential is readable by its user only");
    }
    let (again, other) = tokio::task::spawn_blocking(move || {
        let mut p = spawn(&url, "keep", "k", &["--credential", &saved_arg]);
        p.wait("joined", |v| v["type"] == "joined").unwrap();
        let again = p.peer_id().to_owned();
        let q = spawn(&url, "keep", "q", &[]);
        (again, q.peer_id().to_owned())
    })
    .await
    .unwrap();
    assert_eq!(again, first, "the same user on the second run");
    assert_ne!(other, first, "without the credential, another user");
}

/// Issue 13's "done means": tokens of 20 s, a 90 s call. Both peers refresh ahead of expiry
/// (about once a lifetime, not in a storm), nobody leaves, and each keeps decoding the other's
/// video in every 3 s window to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_in_call_outlives_its_tokens() {
    const LIFETIME: Duration = Duration::from_secs(20);
    const CALL: Duration = Duration::from_secs(90);
    const WINDOW: Duration = Duration::from_secs(3);
    let (_dir, server) = harness::in_process_db_with(|c| c.token_lifetime = LIFETIME)
        .await
        .unwrap();
    let url = server.url();
    tokio::task::spawn_blocking(move || {
        let mut a = spawn(&url, "long", "a", &["--create", "--audio", "none"]);
        a.wait("joined", |v| v["type"] == "joined").unwrap();
        let mut b = spawn(&url, "long", "b", &["--audio", "none"]);
        let (aid, bid) = (a.peer_id().to_owned(), b.peer_id().to_owned());
        assert_ne!(aid, bid);
        for (p, other) in [(&mut a, bid.clone()), (&mut b, aid.clone())] {
            assert_eq!(signed_in(p)["admin"], false);
            p.wait("first video frame", |v| {
                v["type"] == "first_frame" && v["peer"] == other.as_str()
            })
            .unwrap();
        }
        let start = Instant::now();
        let mut marks = [a.mark(), b.mark()];
        while start.elapsed() < CALL {
            std::thread::sleep(WINDOW);
            for (i, (p, other)) in [(&mut a, &bid), (&mut b, &aid)].into_iter().enumerate() {
                let other = other.clone();
                p.wait_within(marks[i], WINDOW, "video still flowing", |v| {
                    v["type"] == "stats"
                        && v["peer"] == other.as_str()
                        && v["fps"].as_f64().unwrap_or(0.0) >= 5.0
                })
                .unwrap_or_else(|e| panic!("at {:?}: {e}", start.elapsed()));
                marks[i] = p.mark();
            }
        }
        let lifetimes = CALL.as_secs() / LIFETIME.as_secs();
        for (p, other) in [(&a, &bid), (&b, &aid)] {
            let seen = p.seen();
            let left: Vec<&Value> = seen
                .iter()
                .filter(|v| {
                    (v["type"] == "member_left" && v["peer"] == other.as_str())
                        || v["type"] == "error"
                        || v["type"] == "peer_unreachable"
                })
                .collect();
            assert!(left.is_empty(), "{}: {left:?}", p.peer_id());
            let auth: Vec<&Value> = seen.iter().filter(|v| v["type"] == "auth").collect();
            let last = auth.last().copied().cloned().unwrap_or(Value::Null);
            eprintln!(
                "{} after {:?} with {LIFETIME:?} tokens: {last}",
                p.peer_id(),
                start.elapsed()
            );
            assert!(
                auth.iter()
                    .all(|v| v["what"] == "refreshed" && v["uid"] == p.peer_id()),
                "the same user throughout: {auth:?}"
            );
            let refreshes = last["refreshes"].as_u64().unwrap_or(0);
            assert!(refreshes >= lifetimes - 1, "not refreshed: {auth:?}");
            assert!(refreshes <= 2 * lifetimes + 2, "a refresh storm: {auth:?}");
            assert_eq!(last["sign_ups"], 1, "one sign-up: {last}");
        }
        for mut p in [a, b] {
            p.leave(Duration::from_secs(10)).unwrap();
        }
    })
    .await
    .unwrap();
}
