//! Sign-in on huddle-db over real sockets: the Firebase Auth endpoints (anonymous sign-up and
//! token refresh), the ID tokens they issue as the database's credential (`auth.uid` in rules),
//! uids kept across restarts, expiry (401 on REST, `auth_revoked` on streams), tokens of another
//! server refused, and Google's error shapes for bad requests.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::path::Path;
use std::time::Duration;

use common::SseStream;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(5);
const SIGN_UP: &str = "/identitytoolkit.googleapis.com/v1/accounts:signUp";
const TOKEN: &str = "/securetoken.googleapis.com/v1/token";

fn user_rules() -> Value {
    json!({"rules": {"users": {"$uid": {".read": "auth.uid === $uid", ".write": "auth.uid === $uid"}}}})
}

async fn server_with(dir: &Path, lifetime: Duration, api_key: Option<&str>) -> rtdb::Server {
    let file = dir.join("given-rules.json");
    std::fs::write(&file, user_rules().to_string()).unwrap();
    let mut config = common::config(dir);
    config.rules_file = Some(file);
    config.token_lifetime = lifetime;
    config.api_key = api_key.map(str::to_owned);
    common::start_in_process(config).await
}

async fn server(dir: &Path) -> rtdb::Server {
    server_with(dir, Duration::from_secs(3600), None).await
}

async fn post_json(url: &str, body: &str) -> (u16, Value) {
    let resp = common::client()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    assert_eq!(
        resp.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap()),
        Some("*"),
        "a browser may call sign-in from any origin"
    );
    (status, resp.json().await.unwrap())
}

async fn sign_up(base: &str) -> Value {
    let (status, body) = post_json(
        &format!("{base}{SIGN_UP}?key=any-key"),
        r#"{"returnSecureToken":true}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn refresh_form(base: &str, refresh_token: &str) -> (u16, Value) {
    let resp = common::client()
        .post(format!("{base}{TOKEN}?key=any-key"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=refresh_token&refresh_token={refresh_token}"
        ))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

/// PUT at `path` with `?auth=token`: (status, body).
async fn put_as(base: &str, path: &str, token: &str, value: Value) -> (u16, Value) {
    let resp = common::client()
        .put(format!("{base}{path}.json?auth={token}"))
        .body(value.to_string())
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

fn google_error(body: &Value) -> (&str, &str, u64) {
    let e = &body["error"];
    assert!(e["errors"].is_array(), "{body}");
    (
        e["message"].as_str().unwrap(),
        e["status"].as_str().unwrap(),
        e["code"].as_u64().unwrap(),
    )
}

fn jwt_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn sign_up_gives_a_token_the_rules_know_by_uid() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    let base = server.url();
    let body = sign_up(&base).await;
    assert_eq!(body["kind"], "identitytoolkit#SignupNewUserResponse");
    assert_eq!(body["expiresIn"], "3600");
    let uid = body["localId"].as_str().unwrap();
    let id_token = body["idToken"].as_str().unwrap();
    assert!(!body["refreshToken"].as_str().unwrap().is_empty());

    let claims = jwt_claims(id_token);
    assert_eq!(claims["sub"], uid);
    assert_eq!(claims["user_id"], uid);
    assert_eq!(claims["provider_id"], "anonymous");
    assert_eq!(claims["firebase"]["sign_in_provider"], "anonymous");
    assert_eq!(claims["firebase"]["identities"], json!({}));
    let project = claims["aud"].as_str().unwrap();
    assert_eq!(
        claims["iss"],
        format!("https://securetoken.google.com/{project}")
    );
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        3600
    );

    // Writes as oneself pass, as someone else fail; the same with the Bearer header.
    let (s, _) = put_as(&base, &format!("/users/{uid}/name"), id_token, json!("Ann")).await;
    assert_eq!(s, 200);
    let (s, _) = put_as(&base, "/users/someone-else/name", id_token, json!("x")).await;
    assert_eq!(s, 401);
    let resp = common::client()
        .get(format!("{base}/users/{uid}/name.json"))
        .header("authorization", format!("Bearer {id_token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!("Ann"));
    // With no token at all, the caller is anonymous and the rules say no.
    let resp = common::client()
        .get(format!("{base}/users/{uid}/name.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    let other = sign_up(&base).await;
    assert_ne!(
        other["localId"], body["localId"],
        "every sign-up is a new user"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn refresh_keeps_the_uid_also_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    let base = server.url();
    let first = sign_up(&base).await;
    let uid = first["localId"].as_str().unwrap().to_owned();
    let refresh_token = first["refreshToken"].as_str().unwrap().to_owned();
    let old_id_token = first["idToken"].as_str().unwrap().to_owned();

    let (status, body) = refresh_form(&base, &refresh_token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_id"], uid.as_str());
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], "3600");
    assert_eq!(body["refresh_token"], refresh_token.as_str());
    assert_eq!(body["access_token"], body["id_token"]);
    assert_eq!(
        body["project_id"],
        jwt_claims(&old_id_token)["aud"],
        "the project id is the tokens' audience"
    );
    let claims = jwt_claims(body["id_token"].as_str().unwrap());
    assert_eq!(claims["sub"], uid.as_str());
    assert_eq!(
        claims["auth_time"],
        jwt_claims(&old_id_token)["auth_time"],
        "auth_time is the sign-in's, not the refresh's"
    );
    server.shutdown().await;

    let server = server_with(dir.path(), Duration::from_secs(3600), None).await;
    let base = server.url();
    let (s, body) = put_as(&base, &format!("/users/{uid}/x"), &old_id_token, json!(1)).await;
    assert_eq!(
        s, 200,
        "an unexpired token of before the restart still works: {body}"
    );
    // JSON bodies work for the token endpoint too, as Google's does.
    let (status, body) = post_json(
        &format!("{base}{TOKEN}?key=k"),
        &json!({"grant_type": "refresh_token", "refresh_token": refresh_token}).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_id"], uid.as_str(), "the uid survives a restart");
    let (s, _) = put_as(
        &base,
        &format!("/users/{uid}/x"),
        body["id_token"].as_str().unwrap(),
        json!(2),
    )
    .await;
    assert_eq!(s, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn an_expired_token_gets_401_and_ends_its_stream_with_auth_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(dir.path(), Duration::from_secs(2), None).await;
    let base = server.url();
    let body = sign_up(&base).await;
    assert_eq!(body["expiresIn"], "2");
    let uid = body["localId"].as_str().unwrap();
    let token = body["idToken"].as_str().unwrap();

    let client = common::stream_client();
    let mut stream =
        SseStream::open_with(&client, &format!("{base}/users/{uid}.json?auth={token}")).await;
    assert_eq!(stream.status, 200);
    let (name, data) = stream.next_data_event(T).await;
    assert_eq!(
        (name.as_str(), data),
        ("put", json!({"path": "/", "data": null}))
    );
    let (name, data) = stream.next_data_event(T).await;
    assert_eq!(name, "auth_revoked");
    assert_eq!(data, json!("credential is no longer valid"));
    assert!(stream.wait_closed(T).await, "the server closes the stream");

    let (s, body) = put_as(&base, &format!("/users/{uid}/x"), token, json!(1)).await;
    assert_eq!(s, 401);
    assert_eq!(body, json!({"error": "Auth token is expired"}));
    let resp = common::client()
        .get(format!("{base}/users/{uid}.json"))
        .header("accept", "text/event-stream")
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        401,
        "a stream cannot be opened with it either"
    );

    server.shutdown().await;
}

#[tokio::test]
async fn refresh_after_expiry_continues_as_the_same_user() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(dir.path(), Duration::from_secs(1), None).await;
    let base = server.url();
    let body = sign_up(&base).await;
    let uid = body["localId"].as_str().unwrap();
    // Minted at the next whole second, a 1 s token is refused at most 2 s from now.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (s, _) = put_as(
        &base,
        &format!("/users/{uid}/x"),
        body["idToken"].as_str().unwrap(),
        json!(1),
    )
    .await;
    assert_eq!(s, 401);
    let (status, fresh) = refresh_form(&base, body["refreshToken"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    let (s, _) = put_as(
        &base,
        &format!("/users/{uid}/x"),
        fresh["id_token"].as_str().unwrap(),
        json!(1),
    )
    .await;
    assert_eq!(s, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn a_token_of_another_server_and_garbage_are_refused() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = server(dir_a.path()).await;
    let b = server(dir_b.path()).await;
    let from_b = sign_up(&b.url()).await;
    let uid = from_b["localId"].as_str().unwrap();
    let token_b = from_b["idToken"].as_str().unwrap();
    let (s, body) = put_as(&a.url(), &format!("/users/{uid}/x"), token_b, json!(1)).await;
    assert_eq!(s, 401);
    assert_eq!(body, json!({"error": "Could not parse auth token."}));
    for garbage in ["a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "x.y.z"] {
        let (s, body) = put_as(&a.url(), "/users/x/y", garbage, json!(1)).await;
        assert_eq!(s, 401, "{garbage}");
        assert_eq!(body, json!({"error": "Could not parse auth token."}));
    }
    // A refresh token of b means nothing to a.
    let (status, body) = refresh_form(&a.url(), from_b["refreshToken"].as_str().unwrap()).await;
    assert_eq!(status, 400);
    assert_eq!(
        google_error(&body),
        ("INVALID_REFRESH_TOKEN", "INVALID_ARGUMENT", 400)
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn bad_sign_in_requests_get_googles_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(dir.path(), Duration::from_secs(3600), Some("the-key")).await;
    let base = server.url();
    let signup = |key: &str| format!("{base}{SIGN_UP}{key}");
    let (s, body) = post_json(&signup(""), "{}").await;
    assert_eq!(s, 403);
    assert_eq!(
        google_error(&body),
        (
            "The request is missing a valid API key.",
            "PERMISSION_DENIED",
            403
        )
    );
    let (s, body) = post_json(&signup("?key=wrong"), "{}").await;
    assert_eq!(s, 400);
    assert_eq!(
        google_error(&body),
        (
            "API key not valid. Please pass a valid API key.",
            "INVALID_ARGUMENT",
            400
        )
    );
    let (s, body) = post_json(&signup("?key=the-key"), "{not json").await;
    assert_eq!(s, 400);
    assert_eq!(google_error(&body).1, "INVALID_ARGUMENT");
    let (s, body) = post_json(&signup("?key=the-key"), "").await;
    assert_eq!(s, 200, "an empty body is an anonymous sign-up: {body}");

    let token = format!("{base}{TOKEN}?key=the-key");
    for (form, message) in [
        ("", "MISSING_GRANT_TYPE"),
        ("grant_type=password", "INVALID_GRANT_TYPE"),
        ("grant_type=refresh_token", "MISSING_REFRESH_TOKEN"),
        (
            "grant_type=refresh_token&refresh_token=nope",
            "INVALID_REFRESH_TOKEN",
        ),
        ("%%%=&&==", "MISSING_GRANT_TYPE"),
    ] {
        let resp = common::client()
            .post(&token)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{form}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            google_error(&body),
            (message, "INVALID_ARGUMENT", 400),
            "{form}"
        );
    }
    let resp = common::client().get(&token).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    // The server still answers after all that.
    let (s, _) = post_json(&signup("?key=the-key"), r#"{"returnSecureToken":true}"#).await;
    assert_eq!(s, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn the_signing_key_is_private_to_its_owner() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    sign_up(&server.url()).await;
    server.shutdown().await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["identity/key.json", "identity/accounts.json"] {
            let mode = std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
    }
}

/// What a token adds to a request end to end: `cargo test -p rtdb --release --test identity
/// request_cost -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a measurement, not a check"]
async fn request_cost() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    let base = server.url();
    let body = sign_up(&base).await;
    let uid = body["localId"].as_str().unwrap();
    let token = body["idToken"].as_str().unwrap();
    let client = common::client();
    let n = 1000;
    let rounds = [("as admin (owner)", ""), ("with an ID token", token)];
    for (label, auth) in rounds.into_iter().chain(rounds) {
        let start = std::time::Instant::now();
        for i in 0..n {
            let mut req = client
                .put(format!("{base}/users/{uid}/n.json"))
                .body(i.to_string());
            req = if auth.is_empty() {
                req.header("authorization", "Bearer owner")
            } else {
                req.header("authorization", format!("Bearer {auth}"))
            };
            assert_eq!(req.send().await.unwrap().status(), 200);
        }
        println!("PUT {label}: {:?} per request", start.elapsed() / n);
    }
    server.shutdown().await;
}
