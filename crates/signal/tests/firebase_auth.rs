//! Sign-in against Firebase's own Auth emulator over real sockets: anonymous sign-up, the ID
//! token's claims, a saved credential keeping the uid, forced refreshes shared by concurrent
//! callers, users deleted or disabled behind the client's back, anonymous sign-in disabled, a
//! missing key, an unreachable host; and the database client's side of it against a small fake
//! database that refuses expired tokens (401 on REST, `auth_revoked` on streams).
//!
//! The emulator comes from `bash scripts/install-deps.sh test` (tests/firebase/node_modules).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use harness::{AuthEmulator, DEMO_PROJECT};
use serde_json::{json, Value};
use signal::auth::{AuthError, AuthEvent, AuthHost, AuthSettings, Credential, FirebaseAuth};
use signal::rtdb::{ClientConfig, RtdbClient, StreamEvent, TokenSource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(10);

/// The emulator's tokens carry `iat` in whole seconds: a refresh within the same second as the
/// previous token gives the same token back. Tests that need a different token wait this long.
const NEXT_SECOND: Duration = Duration::from_millis(1100);

fn emulator() -> AuthEmulator {
    let emu = AuthEmulator::start().unwrap();
    eprintln!("Auth emulator ready in {:?}", emu.startup());
    emu
}

fn settings(emu: &AuthEmulator) -> AuthSettings {
    AuthSettings::new("any-key-the-emulator-accepts").with_host(AuthHost::emulator(emu.host()))
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// The emulator's own opinion of a token: `accounts:lookup` answers only for a valid one.
async fn lookup_uid(emu: &AuthEmulator, id_token: &str) -> Result<String, String> {
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/identitytoolkit.googleapis.com/v1/accounts:lookup?key=k",
            emu.origin()
        ))
        .json(&json!({ "idToken": id_token }))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let body: Value = resp.json().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(body.to_string());
    }
    Ok(body["users"][0]["localId"]
        .as_str()
        .unwrap_or("")
        .to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_gives_a_uid_with_the_right_claims_and_a_saved_credential_keeps_it() {
    let emu = tokio::task::spawn_blocking(emulator).await.unwrap();
    let auth = FirebaseAuth::new(settings(&emu)).unwrap();
    let mut saved = auth.credential();
    assert_eq!(auth.uid(), None);
    let uid = auth.sign_in().await.unwrap();
    assert!(!uid.is_empty());
    assert_eq!(auth.uid().as_deref(), Some(uid.as_str()));

    let token = auth.token().await.unwrap();
    let c = claims(&token);
    assert_eq!(c["sub"], json!(uid));
    assert_eq!(c["user_id"], json!(uid));
    assert_eq!(c["firebase"]["sign_in_provider"], json!("anonymous"));
    assert_eq!(c["aud"], json!(DEMO_PROJECT));
    assert_eq!(
        c["iss"],
        json!(format!("https://securetoken.google.com/{DEMO_PROJECT}"))
    );
    assert_eq!(
        c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(),
        3600
    );
    let left = auth.token_expires_in().unwrap();
    assert!(left > Duration::from_secs(3500), "{left:?}");
    assert_eq!(lookup_uid(&emu, &token).await.unwrap(), uid);
    // Asking again uses the held token: no second call to the server.
    assert_eq!(auth.token().await.unwrap(), token);
    assert_eq!(auth.stats().sign_ups, 1);
    assert_eq!(auth.stats().refreshes, 0);

    // What the app saves, and the next run with it: the same user.
    saved.changed().await.unwrap();
    let credential: Credential = saved.borrow().clone().unwrap();
    assert_eq!(credential.uid, uid);
    let again = FirebaseAuth::new(settings(&emu).with_saved(Some(credential))).unwrap();
    assert_eq!(
        again.uid().as_deref(),
        Some(uid.as_str()),
        "known before any request"
    );
    assert_eq!(again.sign_in().await.unwrap(), uid);
    assert_eq!(again.stats().sign_ups, 0);
    assert_eq!(again.stats().refreshes, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_refresh_is_one_refresh_for_ten_concurrent_callers() {
    let emu = tokio::task::spawn_blocking(emulator).await.unwrap();
    let auth = FirebaseAuth::new(settings(&emu)).unwrap();
    let uid = auth.sign_in().await.unwrap();
    let first = auth.token().await.unwrap();
    tokio::time::sleep(NEXT_SECOND).await;

    // invalidate(), then ten callers at once.
    auth.invalidate();
    let tokens = ten(&auth, None).await;
    assert_eq!(auth.stats().refreshes, 1, "{:?}", auth.stats());
    assert!(tokens.iter().all(|t| *t == tokens[0]), "one token for all");
    let second = tokens[0].clone();
    assert_ne!(second, first);
    assert_eq!(lookup_uid(&emu, &second).await.unwrap(), uid);
    assert!(claims(&second)["iat"].as_u64() > claims(&first)["iat"].as_u64());
    tokio::time::sleep(NEXT_SECOND).await;

    // Ten callers that each saw `second` refused (ten streams' 401s): still one refresh.
    let tokens = ten(&auth, Some(second.clone())).await;
    assert_eq!(auth.stats().refreshes, 2, "{:?}", auth.stats());
    assert!(tokens.iter().all(|t| *t == tokens[0] && *t != second));
    // A late report of the old token changes nothing.
    auth.invalidate_token(&second);
    assert_eq!(auth.token().await.unwrap(), tokens[0]);
    assert_eq!(auth.stats().refreshes, 2);
    assert_eq!(auth.stats().sign_ups, 1);
}

async fn ten(auth: &Arc<FirebaseAuth>, refused: Option<String>) -> Vec<String> {
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let auth = auth.clone();
            let refused = refused.clone();
            tokio::spawn(async move {
                if let Some(r) = refused {
                    auth.invalidate_token(&r);
                }
                auth.token().await.unwrap()
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_or_disabled_user_is_replaced_by_a_new_one_and_it_is_said() {
    let emu = tokio::task::spawn_blocking(emulator).await.unwrap();
    let auth = FirebaseAuth::new(settings(&emu)).unwrap();
    let mut events = auth.events();
    let saved = auth.credential();
    let first = auth.sign_in().await.unwrap();
    assert_eq!(
        events.recv().await.unwrap(),
        AuthEvent::SignedUp { uid: first.clone() }
    );

    // Deleted in the console: the emulator answers INVALID_REFRESH_TOKEN (Google answers
    // USER_NOT_FOUND); both end the session.
    emu.delete_user(&first).unwrap();
    auth.invalidate();
    let token = auth.token().await.unwrap();
    let second = auth.uid().unwrap();
    assert_ne!(second, first);
    assert_eq!(claims(&token)["sub"], json!(second));
    match events.recv().await.unwrap() {
        AuthEvent::Replaced {
            old_uid,
            new_uid,
            reason,
        } => {
            assert_eq!(
                (old_uid.as_str(), new_uid.as_str()),
                (first.as_str(), second.as_str())
            );
            assert_eq!(
                reason,
                AuthError::SessionEnded {
                    code: "INVALID_REFRESH_TOKEN".into()
                }
            );
            assert!(
                reason.to_string().contains("new anonymous user"),
                "{reason}"
            );
        }
        other => panic!("expected Replaced, got {other:?}"),
    }
    assert_eq!(
        saved.borrow().as_ref().unwrap().uid,
        second,
        "the new one to save"
    );

    // Disabled: USER_DISABLED, the same way out.
    emu.disable_user(&second).unwrap();
    auth.invalidate();
    auth.token().await.unwrap();
    let third = auth.uid().unwrap();
    assert_ne!(third, second);
    match events.recv().await.unwrap() {
        AuthEvent::Replaced { reason, .. } => assert_eq!(
            reason,
            AuthError::SessionEnded {
                code: "USER_DISABLED".into()
            }
        ),
        other => panic!("expected Replaced, got {other:?}"),
    }
    assert_eq!(auth.stats().sign_ups, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_sign_in_disabled_and_a_missing_key_are_typed_errors() {
    let emu = tokio::task::spawn_blocking(emulator).await.unwrap();
    let tenant = emu.tenant_without_anonymous().unwrap();
    let auth = FirebaseAuth::new(settings(&emu).with_tenant(tenant)).unwrap();
    let e = auth.sign_in().await.unwrap_err();
    assert_eq!(e, AuthError::AnonymousDisabled);
    assert!(e.to_string().contains("enable \"Anonymous\""), "{e}");

    // The emulator takes any key but no key at all; Google's "API key not valid" body is
    // checked by the unit tests of the error mapping.
    let mut no_key = settings(&emu);
    no_key.api_key.clear();
    let e = FirebaseAuth::new(no_key)
        .unwrap()
        .sign_in()
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::InvalidApiKey { .. }), "{e:?}");
    // Through the database client the same error arrives, still typed.
    let mut no_key = settings(&emu);
    no_key.api_key.clear();
    let db = RtdbClient::new(
        ClientConfig::new("http://127.0.0.1:9").with_auth(FirebaseAuth::new(no_key).unwrap()),
    )
    .unwrap();
    match db.get("x").await.unwrap_err() {
        signal::rtdb::RtdbError::SignIn(AuthError::InvalidApiKey { .. }) => {}
        other => panic!("expected SignIn(InvalidApiKey), got {other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_sign_in_server_says_so() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let auth = FirebaseAuth::new(
        AuthSettings::new("k").with_host(AuthHost::emulator(&format!("127.0.0.1:{port}"))),
    )
    .unwrap();
    let e = auth.sign_in().await.unwrap_err();
    assert!(matches!(e, AuthError::Unreachable { .. }), "{e:?}");
    assert!(e.is_transient());
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
}

/// A database that knows which tokens are revoked: REST answers 401 `Auth token is expired`
/// for them, streams get `auth_revoked` when `revoke` is bumped and their token is revoked.
struct FakeDb {
    url: String,
    revoked: Arc<Mutex<HashSet<String>>>,
    revoke: watch::Sender<u32>,
    seen: Arc<Mutex<Vec<String>>>,
}

async fn fake_db() -> FakeDb {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let revoked = Arc::new(Mutex::new(HashSet::new()));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (revoke, _) = watch::channel(0);
    let (r, s, w) = (revoked.clone(), seen.clone(), revoke.clone());
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(serve(conn, r.clone(), s.clone(), w.subscribe()));
        }
    });
    FakeDb {
        url,
        revoked,
        revoke,
        seen,
    }
}

async fn serve(
    mut conn: TcpStream,
    revoked: Arc<Mutex<HashSet<String>>>,
    seen: Arc<Mutex<Vec<String>>>,
    mut revoke: watch::Receiver<u32>,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let token = head
        .split_whitespace()
        .nth(1)
        .and_then(|target| target.split("auth=").nth(1))
        .map(|t| t.split('&').next().unwrap_or("").to_owned())
        .unwrap_or_default();
    seen.lock().unwrap().push(token.clone());
    let is_revoked = |t: &str| revoked.lock().unwrap().contains(t);
    let stream = head.to_ascii_lowercase().contains("text/event-stream");
    if is_revoked(&token) {
        let body = r#"{"error" : "Auth token is expired"}"#;
        let _ = conn
            .write_all(
                format!(
                    "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )
            .await;
        return;
    }
    if !stream {
        let _ = conn
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1\r\nconnection: close\r\n\r\n1")
            .await;
        return;
    }
    let _ = conn
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\nevent: put\ndata: {\"path\":\"/\",\"data\":null}\n\n")
        .await;
    loop {
        if revoke.changed().await.is_err() {
            return;
        }
        if is_revoked(&token) {
            let _ = conn
                .write_all(b"event: auth_revoked\ndata: \"credential is no longer valid\"\n\n")
                .await;
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_client_refreshes_once_on_401_and_once_for_ten_revoked_streams() {
    let emu = tokio::task::spawn_blocking(emulator).await.unwrap();
    let auth = FirebaseAuth::new(settings(&emu)).unwrap();
    let db_server = fake_db().await;
    let db = RtdbClient::new(ClientConfig::new(&db_server.url).with_auth(auth.clone())).unwrap();

    // REST: the held token expired on the server's side; one refresh, one retry, success.
    let t0 = auth.token().await.unwrap();
    db_server.revoked.lock().unwrap().insert(t0.clone());
    tokio::time::sleep(NEXT_SECOND).await;
    assert_eq!(db.get("x").await.unwrap(), json!(1));
    assert_eq!(auth.stats().refreshes, 1);
    let t1 = auth.token().await.unwrap();
    assert_ne!(t1, t0);
    assert_eq!(
        *db_server.seen.lock().unwrap(),
        vec![t0.clone(), t1.clone()],
        "one refused try, one retry"
    );

    // Ten streams on t1; t1 is revoked; each hears auth_revoked and reconnects, one refresh.
    let mut subs = Vec::new();
    for i in 0..10 {
        let mut sub = db.subscribe(&format!("s{i}"));
        until_synced(&mut sub).await;
        subs.push(sub);
    }
    tokio::time::sleep(NEXT_SECOND).await;
    db_server.revoked.lock().unwrap().insert(t1.clone());
    db_server.revoke.send_modify(|n| *n += 1);
    for sub in &mut subs {
        let ev = tokio::time::timeout(WAIT, sub.next()).await.unwrap();
        assert!(matches!(ev, Some(StreamEvent::Disconnected(_))), "{ev:?}");
        until_synced(sub).await;
    }
    assert_eq!(auth.stats().refreshes, 2, "{:?}", auth.stats());
    let t2 = auth.token().await.unwrap();
    let seen = db_server.seen.lock().unwrap().clone();
    assert_eq!(
        seen.iter().filter(|t| **t == t2).count(),
        10,
        "ten reopened on t2"
    );
    assert_eq!(seen.len(), 2 + 10 + 10);

    // A stream opened with a token that the server already refuses: one refresh, one retry,
    // and it syncs instead of ending as denied.
    tokio::time::sleep(NEXT_SECOND).await;
    db_server.revoked.lock().unwrap().insert(t2.clone());
    let mut late = db.subscribe("late");
    until_synced(&mut late).await;
    assert_eq!(auth.stats().refreshes, 3, "{:?}", auth.stats());
    assert_ne!(auth.token().await.unwrap(), t2);
}

async fn until_synced(sub: &mut signal::rtdb::Subscription) {
    loop {
        match tokio::time::timeout(WAIT, sub.next()).await.unwrap() {
            Some(StreamEvent::Synced(_)) => return,
            Some(StreamEvent::Child(_)) => {}
            other => panic!("expected Synced, got {other:?}"),
        }
    }
}
