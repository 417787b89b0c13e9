//! The desktop app end to end: the real `huddle` binary in a virtual display, driven through
//! its webview with WebDriver (tauri-driver + WebKitWebDriver), in a call with real
//! `huddle-peer` participants over loopback. It creates a room, sees a participant arrive (a
//! tile with moving video, a desktop notification), turns its own camera and screen on and
//! off, saves a screenshot of a three-person call to docs/screenshot.png, leaves, destroys the
//! room, and sees a room destroyed by someone else close its call.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use support::{wait_for, Desktop, Peer};

const LONG: Duration = Duration::from_secs(40);

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.unwrap()
}

/// Polls a script until it returns something truthy.
async fn until(c: &Client, what: &str, script: &str) -> Value {
    let end = std::time::Instant::now() + LONG;
    loop {
        let v = js(c, script).await;
        let truthy = !(v.is_null() || v == json!(false) || v == json!(0) || v == json!(""));
        if truthy {
            return v;
        }
        assert!(
            std::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

async fn frames(c: &Client, key: &str) -> u64 {
    let v = js(
        c,
        &format!("const t = document.querySelector('.tile[data-key=\"{key}\"]'); return t ? Number(t.dataset.frames || 0) : 0;"),
    )
    .await;
    v.as_u64().unwrap_or(0)
}

async fn tile_png(c: &Client, key: &str) -> Vec<u8> {
    let el = c
        .find(Locator::Css(&format!(".tile[data-key=\"{key}\"] canvas")))
        .await
        .unwrap();
    el.screenshot().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_in_the_desktop_app() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    // No camera or microphone on a test machine: the app's test sources, as a user would pick
    // them in Settings → Devices.
    std::fs::write(
        config.join("settings.json"),
        json!({
            "name": "Ann",
            "devices": {"camera": "synthetic", "microphone": "synthetic", "speaker": "none", "display": "synthetic"}
        })
        .to_string(),
    )
    .unwrap();
    let desktop = Desktop::start(dir.path());
    let env = [
        ("HUDDLE_CONFIG_DIR", config.display().to_string()),
        (
            "HUDDLE_DATA_DIR",
            dir.path().join("data").display().to_string(),
        ),
        ("HUDDLE_LOOPBACK_ONLY", "1".to_string()),
    ];
    let (_driver, port) = support::tauri_driver(&desktop, &env);
    let caps = json!({
        "browserName": "wry",
        "tauri:options": {"application": env!("CARGO_BIN_EXE_huddle")}
    });
    let caps = caps.as_object().unwrap().clone();
    let c = ClientBuilder::rustls()
        .unwrap()
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session with the app");

    // The built-in database starts by itself.
    let db = until(
        &c,
        "the built-in database",
        "return window.huddle?.state.db.connected && window.huddle.state.db.url",
    )
    .await;
    let db = db.as_str().unwrap().to_owned();
    assert!(db.starts_with("http://127.0.0.1:"), "{db}");

    // Create a room and join it from the pre-join screen.
    c.find(Locator::Id("create-name"))
        .await
        .unwrap()
        .send_keys("Standup")
        .await
        .unwrap();
    c.find(Locator::Id("create-btn"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &c,
        "the pre-join screen",
        "return !document.getElementById('view-prejoin').hidden",
    )
    .await;
    until(
        &c,
        "the camera preview",
        "return document.getElementById('preview-tile').classList.contains('has-video')",
    )
    .await;
    c.find(Locator::Id("prejoin-join"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let room = until(
        &c,
        "being in the call",
        "return window.huddle.state.inCall?.room",
    )
    .await;
    let room = room.as_str().unwrap().to_owned();
    until(&c, "my own tile showing my camera", "return document.querySelector('.tile[data-key=\"self:video\"]')?.classList.contains('has-video')").await;
    let listed = until(
        &c,
        "the room in the list with me in it",
        &format!(
            "return window.huddle.state.rooms.find(r => r.id === '{room}' && r.occupants === 1)"
        ),
    )
    .await;
    assert_eq!(listed["name"], "Standup");
    // The invitation: an app link and, the room being public, a browser link.
    c.find(Locator::Id("copy-invite"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &c,
        "the invitation links",
        &format!("return [...document.querySelectorAll('.toast')].some(t => t.textContent.includes('/web/?room={room}'))"),
    )
    .await;

    // Someone joins while I am in another application: a tile with moving video, and a
    // notification.
    let other_app = desktop.focus_another_app();
    let mut bob = Peer::join(&db, &room, "Bob");
    let bob_key = format!("{}:video", bob.id);
    until(&c, "Bob's tile", &format!("return Number(document.querySelector('.tile[data-key=\"{bob_key}\"]')?.dataset.frames || 0) > 5")).await;
    let a = tile_png(&c, &bob_key).await;
    let f1 = frames(&c, &bob_key).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let b = tile_png(&c, &bob_key).await;
    let f2 = frames(&c, &bob_key).await;
    assert!(f2 > f1, "Bob's video keeps arriving ({f1} -> {f2})");
    assert_ne!(
        a, b,
        "Bob's tile shows moving video (two screenshots differ)"
    );
    bob.wait_event("Ann's video decoded", LONG, |v| {
        v["event"] == "first_frame" && v["kind"] == "video"
    });
    let notified = wait_for("a notification about Bob", Duration::from_secs(10), || {
        desktop
            .shown()
            .into_iter()
            .find(|n| n["summary"] == "Bob joined")
    });
    assert!(
        notified["body"].as_str().unwrap().contains("Standup"),
        "{notified}"
    );
    drop(other_app);

    // My camera off and on: Bob sees the stream change both ways.
    bob.forget();
    c.find(Locator::Id("btn-cam"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &c,
        "camera off",
        "return window.huddle.state.streams.video === false",
    )
    .await;
    bob.wait_event("Ann's camera off", LONG, |v| {
        v["event"] == "stream_changed" && v["streams"]["video"] == false
    });
    until(&c, "my tile without video", "return !document.querySelector('.tile[data-key=\"self:video\"]').classList.contains('has-video')").await;
    c.find(Locator::Id("btn-cam"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    bob.wait_event("Ann's camera on", LONG, |v| {
        v["event"] == "stream_changed" && v["streams"]["video"] == true
    });

    // Screen share: shown large on the stage, and Bob receives it.
    c.find(Locator::Id("btn-screen"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &c,
        "my screen on the stage",
        "return document.querySelector('#stage .tile[data-key=\"self:screen\"]')",
    )
    .await;
    bob.wait_event("Ann's screen", LONG, |v| {
        v["event"] == "first_frame" && v["kind"] == "screen"
    });
    c.find(Locator::Id("btn-screen"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &c,
        "the stage empty again",
        "return !document.querySelector('#stage .tile')",
    )
    .await;

    // A third participant; the screenshot for the docs shows the three of us.
    let cy = Peer::join(&db, &room, "Cy");
    let cy_key = format!("{}:video", cy.id);
    until(&c, "Cy's tile with video", &format!("return Number(document.querySelector('.tile[data-key=\"{cy_key}\"]')?.dataset.frames || 0) > 5")).await;
    until(
        &c,
        "three in the call",
        "return document.getElementById('call-count').textContent.startsWith('3')",
    )
    .await;
    c.find(Locator::Id("toggle-stats"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let png = c.screenshot().await.unwrap();
    std::fs::write(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshot.png"),
        &png,
    )
    .unwrap();
    let graphs = js(&c, "return document.querySelectorAll('.stats-peer').length").await;
    assert_eq!(graphs, json!(2), "a stats box per remote participant");

    // Cy leaves: the tile goes.
    drop(cy);
    until(
        &c,
        "Cy's tile gone",
        &format!("return !document.querySelector('.tile[data-key=\"{cy_key}\"]')"),
    )
    .await;

    // Leave: back home, and Bob sees me go.
    c.find(Locator::Id("btn-leave"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &c,
        "the home screen",
        "return !document.getElementById('view-home').hidden && !window.huddle.state.inCall",
    )
    .await;
    bob.wait_event("Ann leaving", LONG, |v| v["event"] == "member_left");

    // Destroy the room from the list (mine, so offered), confirming: Bob's call ends.
    c.find(Locator::Css(&format!("li[data-room=\"{room}\"] .destroy")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &c,
        "the confirmation",
        "return document.getElementById('confirm-dialog').open",
    )
    .await;
    c.find(Locator::Id("confirm-yes"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &c,
        "the room gone from the list",
        &format!("return !window.huddle.state.rooms.some(r => r.id === '{room}')"),
    )
    .await;
    bob.wait_event("the room closing", LONG, |v| v["event"] == "room_closed");

    // A room destroyed by someone else while I am in it: back home, and a notification.
    c.find(Locator::Id("create-name"))
        .await
        .unwrap()
        .send_keys("Retro")
        .await
        .unwrap();
    c.find(Locator::Id("create-btn"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &c,
        "the pre-join screen",
        "return !document.getElementById('view-prejoin').hidden",
    )
    .await;
    c.find(Locator::Id("prejoin-join"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let retro = until(
        &c,
        "being in Retro",
        "return window.huddle.state.inCall?.room",
    )
    .await;
    let admin = signal::room::Signaling::new(
        signal::rtdb::RtdbClient::new(signal::rtdb::ClientConfig::new(db.clone())).unwrap(),
        "test-admin-0001",
    );
    admin
        .destroy_room(retro.as_str().unwrap(), None)
        .await
        .unwrap();
    until(
        &c,
        "the home screen after the room closed",
        "return !window.huddle.state.inCall && !document.getElementById('view-home').hidden",
    )
    .await;
    wait_for(
        "a notification that the room closed",
        Duration::from_secs(10),
        || {
            desktop
                .shown()
                .into_iter()
                .find(|n| n["summary"] == "The room was closed")
        },
    );
    c.close().await.unwrap();
}
