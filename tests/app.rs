//! The desktop app end to end: the real `huddle` binary in a virtual display, driven through
//! its webview with WebDriver (tauri-driver + WebKitWebDriver), in a call with real
//! `huddle-peer` participants over loopback. It creates a room, sees a participant arrive (a
//! tile with moving video, a desktop notification), turns its own camera and screen on and
//! off, saves a screenshot of a three-person call to docs/screenshot.png, leaves, destroys the
//! room, and sees a room destroyed by someone else close its call.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use fantoccini::actions::InputSource as _;
use fantoccini::{Client, Locator};
use harness::poll;
use huddle_app::frames::TileKey;
use media::MediaKind;
use serde_json::json;
use support::{join_with, App};

const LONG: Duration = Duration::from_secs(40);

async fn frames(app: &App, key: &str) -> u64 {
    let v = app.js(
        &format!("const t = document.querySelector('.tile[data-key=\"{key}\"]'); return t ? Number(t.dataset.frames || 0) : 0;"),
    )
    .await;
    v.as_u64().unwrap_or(0)
}

/// The share of a screenshot's pixels in the test pattern's vivid bar colours (yellow, cyan,
/// green, magenta, red, blue): most of a tile showing the pattern, none of an avatar tile.
fn vivid_share(png_bytes: &[u8]) -> f64 {
    let mut reader = png::Decoder::new(std::io::Cursor::new(png_bytes))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert!(channels >= 3, "{:?}", info.color_type);
    let px = buf[..info.buffer_size()].chunks_exact(channels);
    let total = px.len().max(1);
    let vivid = px
        .filter(|p| {
            let (hi, lo) = (p[..3].iter().max().unwrap(), p[..3].iter().min().unwrap());
            *hi >= 150 && hi - lo >= 120
        })
        .count();
    vivid as f64 / total as f64
}

/// A screenshot of the whole tile (its canvas is hidden when there is no video).
async fn whole_tile_png(c: &Client, key: &str) -> Vec<u8> {
    c.find(Locator::Css(&format!(".tile[data-key=\"{key}\"]")))
        .await
        .unwrap()
        .screenshot()
        .await
        .unwrap()
}

/// Saves the window as docs/<name>.png (the README shows them).
async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("docs/{name}.png")),
        &png,
    )
    .unwrap();
}

/// The name the app should offer on first run: this account's full name from the passwd
/// database (GECOS up to its first comma), unless it is empty or just the login name.
fn expected_suggestion() -> String {
    let uid = String::from_utf8(
        std::process::Command::new("id")
            .arg("-u")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let line = std::process::Command::new("getent")
        .args(["passwd", uid.trim()])
        .output()
        .unwrap()
        .stdout;
    let line = String::from_utf8_lossy(&line);
    let fields: Vec<&str> = line.trim().split(':').collect();
    let login = fields.first().copied().unwrap_or_default();
    let full = fields
        .get(4)
        .and_then(|g| g.split(',').next())
        .unwrap_or_default()
        .trim();
    if full.is_empty() || full == login {
        String::new()
    } else {
        full.to_owned()
    }
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
    let app = App::launch_with(dir.path(), None).await;
    let (c, desktop) = (&app.client, &app.desktop);

    // First run: my name is asked before anything else, offered from my account's full name.
    app.until(
        "the first-run name prompt",
        "return document.getElementById('welcome-dialog').open",
    )
    .await;
    let offered = app
        .js("return document.getElementById('welcome-name').value")
        .await;
    assert_eq!(offered, json!(expected_suggestion()), "the name offered");
    let field = c.find(Locator::Id("welcome-name")).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys("Ann").await.unwrap();
    shot(c, "first-run").await;
    field.send_keys("\u{E007}").await.unwrap(); // Enter
    app.until(
        "my name saved, shown in the header",
        "return !document.getElementById('welcome-dialog').open && window.huddle.state.settings.name === 'Ann' && document.getElementById('me').textContent === 'Ann'",
    )
    .await;

    // The built-in database starts by itself.
    let db = app.database().await;
    assert!(db.starts_with("http://127.0.0.1:"), "{db}");

    // Settings: prefer H.264 (used with whoever wants it too; VP8 with everyone else), saved
    // with Enter in a text field.
    app.click("open-settings").await;
    app.click("set-h264").await;
    c.find(Locator::Id("set-name"))
        .await
        .unwrap()
        .send_keys("\u{E007}")
        .await
        .unwrap();
    app.until(
        "the H.264 preference saved by Enter",
        "return window.huddle.state.settings.prefer_h264 === true && !document.getElementById('settings-dialog').open",
    )
    .await;
    // Esc throws a change away.
    app.click("open-settings").await;
    app.click("set-h264").await;
    c.find(Locator::Id("set-name"))
        .await
        .unwrap()
        .send_keys("\u{E00C}")
        .await
        .unwrap();
    app.until(
        "Settings closed by Esc",
        "return !document.getElementById('settings-dialog').open",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.js("return window.huddle.state.settings.prefer_h264")
            .await,
        json!(true),
        "Esc saved nothing"
    );

    // Create a room and join it from the pre-join screen.
    let room = app.create_and_join("Standup").await;
    app.until("my own tile showing my camera", "return document.querySelector('.tile[data-key=\"self:video\"]')?.classList.contains('has-video')").await;
    let listed = app
        .until(
            "the room in the list with me in it",
            &format!(
            "return window.huddle.state.rooms.find(r => r.id === '{room}' && r.occupants === 1)"
        ),
        )
        .await;
    assert_eq!(listed["name"], "Standup");
    assert_eq!(
        app.js("return document.querySelector('.tile[data-key=\"self:video\"] .avatar span').textContent").await,
        json!("A"),
        "my avatar's initials come from my name, not from its label"
    );
    // The invitation: an app link (on the clipboard at once) and, the room being public, a
    // browser link; the built-in database reaches only this computer, and hosting is offered.
    app.click("copy-invite").await;
    app.until(
        "the invitation, copied",
        "return document.getElementById('invite-dialog').open && document.getElementById('invite-status').textContent === 'Copied.'",
    )
    .await;
    let link = app
        .js("return document.getElementById('invite-app').value")
        .await;
    let link = link.as_str().unwrap().to_owned();
    assert!(
        link.starts_with(&format!("huddle://join/{room}?db=")),
        "{link}"
    );
    assert_eq!(desktop.clipboard(), link, "the clipboard holds the link");
    let web = app
        .js("return document.getElementById('invite-web').value")
        .await;
    assert!(
        web.as_str()
            .unwrap()
            .ends_with(&format!("/web/?room={room}")),
        "{web}"
    );
    let reach = app
        .js("return document.getElementById('invite-reach').textContent")
        .await;
    assert!(
        reach.as_str().unwrap().starts_with("Only this computer"),
        "{reach}"
    );
    assert_eq!(
        app.js("return document.getElementById('invite-host-offer').hidden")
            .await,
        json!(false),
        "hosting for the network is offered"
    );
    shot(c, "invite").await;
    // One click hosts it (on loopback in this test) and moves the call; the link then reaches
    // the network, and the clipboard holds it.
    app.click("invite-host").await;
    app.until(
        "the invitation for the network",
        "return document.getElementById('invite-reach').textContent.startsWith('People on your network') && document.getElementById('invite-status').textContent === 'Copied.' && window.huddle.state.inCall",
    )
    .await;
    assert_eq!(
        app.js("return document.getElementById('invite-host-offer').hidden")
            .await,
        json!(true)
    );
    let hosted = app
        .js("return document.getElementById('invite-app').value")
        .await;
    assert_eq!(desktop.clipboard(), hosted.as_str().unwrap());
    assert_eq!(
        app.js("return window.huddle.state.settings.database.mode")
            .await,
        json!("host")
    );
    app.click("invite-done").await;
    let db = app.database().await;
    app.until("my own tile showing my camera again", "return document.querySelector('.tile[data-key=\"self:video\"]')?.classList.contains('has-video')").await;

    // The keyboard: Tab reaches my tile's Pin button, and it is visible when it has the focus;
    // `?` lists the shortcuts.
    let mut pin_focused = false;
    for _ in 0..30 {
        c.active_element()
            .await
            .unwrap()
            .send_keys("\u{E004}")
            .await
            .unwrap(); // Tab
        if app
            .js("return document.activeElement?.classList.contains('pin')")
            .await
            == json!(true)
        {
            pin_focused = true;
            break;
        }
    }
    assert!(pin_focused, "Tab reaches a Pin button");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        app.js("const e = document.activeElement; return [getComputedStyle(e).opacity, e.getAttribute('aria-label')]").await,
        json!(["1", "Pin Ann (you)"]),
        "a focused Pin button is visible and named"
    );
    app.js("document.activeElement.blur()").await;
    c.active_element()
        .await
        .unwrap()
        .send_keys("?")
        .await
        .unwrap();
    app.until(
        "the shortcuts",
        "return document.getElementById('shortcuts-dialog').open",
    )
    .await;
    app.click("shortcuts-close").await;

    // Someone joins while I am in another application: a tile with moving video, and a
    // notification.
    let other_app = desktop.focus_another_app();
    let mut bob = join_with(&db, &room, "Bob", "320x180", 15, &["--report-frames"]);
    let bob_key = TileKey::peer(&bob.peer_id().into(), MediaKind::Video).to_string();
    app.until("Bob's tile", &format!("return Number(document.querySelector('.tile[data-key=\"{bob_key}\"]')?.dataset.frames || 0) > 5")).await;
    let a = tile_png(c, &bob_key).await;
    let f1 = frames(&app, &bob_key).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let b = tile_png(c, &bob_key).await;
    let f2 = frames(&app, &bob_key).await;
    assert!(f2 > f1, "Bob's video keeps arriving ({f1} -> {f2})");
    assert_ne!(
        a, b,
        "Bob's tile shows moving video (two screenshots differ)"
    );
    // Bob turns his camera off: his tile keeps no pixel of his last picture, only his avatar.
    let with_video = vivid_share(&whole_tile_png(c, &bob_key).await);
    assert!(
        with_video > 0.3,
        "Bob's pattern fills his tile: {with_video:.3}"
    );
    bob.send("video off").unwrap();
    app.until(
        "Bob's avatar",
        &format!("return !document.querySelector('.tile[data-key=\"{bob_key}\"]').classList.contains('has-video')"),
    )
    .await;
    let avatar = vivid_share(&whole_tile_png(c, &bob_key).await);
    assert!(
        avatar < 0.01,
        "no pixel of Bob's last frame: {avatar:.3} of the tile is pattern"
    );
    assert_eq!(
        app.js(&format!("return document.querySelector('.tile[data-key=\"{bob_key}\"] .avatar span').textContent")).await,
        json!("B")
    );
    bob.send("video on").unwrap();
    let f = frames(&app, &bob_key).await;
    app.until(
        "Bob's video back",
        &format!("return document.querySelector('.tile[data-key=\"{bob_key}\"]').classList.contains('has-video') && Number(document.querySelector('.tile[data-key=\"{bob_key}\"]').dataset.frames) > {f}"),
    )
    .await;
    bob.wait_within(0, LONG, "Ann's video decoded", |v| {
        v["type"] == "first_frame" && v["kind"] == "video"
    })
    .unwrap();
    // Bob does not ask for H.264: Ann, who prefers it, sends him VP8.
    let track = bob
        .wait_within(0, LONG, "Ann's camera track", |v| {
            v["type"] == "track_added" && v["kind"] == "video"
        })
        .unwrap();
    assert_eq!(track["codec"], "vp8", "{track}");
    assert_eq!(
        app.js("return window.huddle.chimes.join").await,
        json!(1),
        "a short sound for Bob's arrival"
    );
    let notified = poll("a notification about Bob", Duration::from_secs(10), || {
        desktop
            .shown()
            .into_iter()
            .find(|n| n["summary"] == "Bob joined")
    })
    .unwrap();
    assert!(
        notified["body"].as_str().unwrap().contains("Standup"),
        "{notified}"
    );
    drop(other_app);

    // My camera off and on: Bob sees the stream change both ways.
    let mark = bob.mark();
    app.click("btn-cam").await;
    app.until(
        "camera off",
        "return window.huddle.state.streams.video === false",
    )
    .await;
    bob.wait_within(mark, LONG, "Ann's camera off", |v| {
        v["type"] == "streams_changed" && v["streams"]["video"] == false
    })
    .unwrap();
    app.until("my tile without video", "return !document.querySelector('.tile[data-key=\"self:video\"]').classList.contains('has-video')").await;
    // The button says what it does next, and its icon is slashed.
    assert_eq!(
        app.js("const b = document.getElementById('btn-cam'); return [b.getAttribute('aria-label'), b.getAttribute('aria-pressed'), getComputedStyle(b.querySelector('.slash')).display !== 'none']").await,
        json!(["Turn on camera", "false", true])
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mine = vivid_share(&whole_tile_png(c, "self:video").await);
    assert!(
        mine < 0.01,
        "no pixel of my last frame: {mine:.3} of my tile is pattern"
    );
    app.click("btn-cam").await;
    bob.wait_within(mark, LONG, "Ann's camera on", |v| {
        v["type"] == "streams_changed" && v["streams"]["video"] == true
    })
    .unwrap();

    // Screen share: a picker with a live picture of the display and of each window. Sharing
    // one window sends that window (Bob sees its size and colour, though the app's window
    // covers part of it); my own share stays a small tile, and a bar says I am presenting.
    let rgb = [200u8, 30, 160];
    let _shared = desktop.coloured_window("Quarterly plan", rgb);
    app.click("btn-screen").await;
    let cards = app
        .until(
            "the picker with the display and the window, with pictures",
            "const cards = [...document.querySelectorAll('#share-dialog .share-card')]; const w = cards.find(c => c.textContent === 'Quarterly plan'); const d = cards.find(c => c.textContent.startsWith('Entire screen 1 (1280x800)')); return document.getElementById('share-dialog').open && w && d && w.querySelector('img')?.src.startsWith('data:image/png') && d.querySelector('img')?.src.startsWith('data:image/png') && cards.map(c => c.textContent)",
        )
        .await;
    assert!(
        !cards.as_array().unwrap().iter().any(|c| c == "Huddle"),
        "Huddle's own window is not offered: {cards}"
    );
    shot(c, "share-picker").await;
    let window = app
        .js("return [...document.querySelectorAll('#share-windows .share-card')].find(c => c.textContent === 'Quarterly plan').dataset.target")
        .await;
    c.find(Locator::Css(&format!(
        ".share-card[data-target=\"{}\"]",
        window.as_str().unwrap()
    )))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    app.click("share-go").await;
    app.until(
        "the presenting bar",
        "return !document.getElementById('presenting-bar').hidden && document.getElementById('presenting-what').textContent === 'You are presenting the window “Quarterly plan”'",
    )
    .await;
    app.until(
        "my share as a small tile, not on the stage",
        "return document.querySelector('#grid .tile[data-key=\"self:screen\"]') && !document.querySelector('#stage .tile')",
    )
    .await;
    bob.wait_within(mark, LONG, "Ann's screen", |v| {
        v["type"] == "first_frame" && v["kind"] == "screen"
    })
    .unwrap();
    // BT.601 limited range, as the encoder's input.
    let [r, g, b] = rgb.map(f64::from);
    let want = [
        16.0 + 0.257 * r + 0.504 * g + 0.098 * b,
        128.0 - 0.148 * r - 0.291 * g + 0.439 * b,
        128.0 + 0.439 * r - 0.368 * g - 0.071 * b,
    ];
    let frame = bob
        .wait_within(mark, LONG, "the window's picture at Bob", |v| {
            v["type"] == "frame"
                && v["kind"] == "screen"
                && v["mean_yuv"].as_array().is_some_and(|m| {
                    m.iter()
                        .zip(want)
                        .all(|(got, w)| (got.as_f64().unwrap_or(-99.0) - w).abs() < 10.0)
                })
        })
        .unwrap_or_else(|e| panic!("{e}; wanted mean YUV {want:?}"));
    assert_eq!(
        (frame["width"].as_u64(), frame["height"].as_u64()),
        (Some(480), Some(270)),
        "{frame}"
    );
    app.click("presenting-stop").await;
    app.until(
        "sharing stopped",
        "return document.getElementById('presenting-bar').hidden && !document.querySelector('.tile[data-key=\"self:screen\"]')",
    )
    .await;

    // Double-clicking Bob's tile gives it the stage; again takes it back.
    for on_stage in [true, false] {
        let tile = c
            .find(Locator::Css(&format!(".tile[data-key=\"{bob_key}\"]")))
            .await
            .unwrap();
        let button = fantoccini::actions::MOUSE_BUTTON_LEFT;
        let double = fantoccini::actions::MouseActions::new("mouse".into())
            .then(fantoccini::actions::PointerAction::MoveToElement {
                element: tile,
                duration: None,
                x: 0.0,
                y: 0.0,
            })
            .then(fantoccini::actions::PointerAction::Down { button })
            .then(fantoccini::actions::PointerAction::Up { button })
            .then(fantoccini::actions::PointerAction::Down { button })
            .then(fantoccini::actions::PointerAction::Up { button });
        c.perform_actions(double).await.unwrap();
        app.until(
            &format!("Bob's tile on the stage: {on_stage}"),
            &format!("return Boolean(document.querySelector('#stage .tile[data-key=\"{bob_key}\"]')) === {on_stage}"),
        )
        .await;
    }

    // A third participant; the screenshot for the docs shows the three of us.
    // Cy prefers H.264 too: that is what Ann and Cy use with each other.
    let mut cy = join_with(&db, &room, "Cy", "320x180", 15, &["--codec", "h264"]);
    let cy_key = TileKey::peer(&cy.peer_id().into(), MediaKind::Video).to_string();
    app.until("Cy's tile with video", &format!("return Number(document.querySelector('.tile[data-key=\"{cy_key}\"]')?.dataset.frames || 0) > 5")).await;
    app.until(
        "three in the call",
        "return document.getElementById('call-count').textContent.startsWith('3')",
    )
    .await;
    app.click("toggle-stats").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let png = c.screenshot().await.unwrap();
    std::fs::write(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshot.png"),
        &png,
    )
    .unwrap();
    let graphs = app
        .js("return document.querySelectorAll('.stats-peer').length")
        .await;
    assert_eq!(graphs, json!(2), "a stats box per remote participant");
    let bob_id = bob.peer_id().to_owned();
    let track = cy
        .wait_within(0, LONG, "Ann's camera track", |v| {
            v["type"] == "track_added" && v["kind"] == "video" && v["peer"] != bob_id.as_str()
        })
        .unwrap();
    assert_eq!(track["codec"], "h264", "{track}");
    // ... while Bob and Cy, who do not both want it, use VP8.
    let track = cy
        .wait_within(0, LONG, "Bob's camera track", |v| {
            v["type"] == "track_added" && v["kind"] == "video" && v["peer"] == bob_id.as_str()
        })
        .unwrap();
    assert_eq!(track["codec"], "vp8", "{track}");
    // Each box names its connection's video codec: VP8 with Bob, H.264 with Cy.
    for (peer, codec) in [(bob.peer_id(), "VP8"), (cy.peer_id(), "H.264")] {
        app.until(
            &format!("{codec} in {peer}'s stats"),
            &format!("return document.querySelector('.stats-peer[data-peer=\"{peer}\"] h3')?.textContent.endsWith('{codec}')"),
        )
        .await;
    }

    // Cy's process freezes (as a machine that sleeps or drops off the network): the tile greys
    // when the connection is lost and says so, then goes when presence says Cy is gone, in
    // words.
    let stopped = std::process::Command::new("kill")
        .args(["-STOP", &cy.pid().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    app.until(
        "Cy's tile greyed, the connection lost",
        &format!("const t = document.querySelector('.tile[data-key=\"{cy_key}\"]'); return t && t.classList.contains('lost') && t.querySelector('.conn').textContent.startsWith('Connection lost')"),
    )
    .await;
    app.until(
        "Cy's tile gone",
        &format!("return !document.querySelector('.tile[data-key=\"{cy_key}\"]')"),
    )
    .await;
    app.until(
        "Cy lost connection, in words",
        "return [...document.querySelectorAll('.toast')].some(t => t.textContent === 'Cy lost connection.')",
    )
    .await;
    drop(cy);

    // Leave: back home, and Bob sees me go.
    app.click("btn-leave").await;
    app.until(
        "the home screen",
        "return !document.getElementById('view-home').hidden && !window.huddle.state.inCall",
    )
    .await;
    bob.wait_within(mark, LONG, "Ann leaving", |v| v["type"] == "member_left")
        .unwrap();

    // Destroy the room from the list (mine, so offered), confirming: Bob's call ends.
    c.find(Locator::Css(&format!("li[data-room=\"{room}\"] .destroy")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    app.until(
        "the confirmation",
        "return document.getElementById('confirm-dialog').open",
    )
    .await;
    app.click("confirm-yes").await;
    app.until(
        "the room gone from the list",
        &format!("return !window.huddle.state.rooms.some(r => r.id === '{room}')"),
    )
    .await;
    bob.wait_within(mark, LONG, "the room closing", |v| {
        v["type"] == "room_closed"
    })
    .unwrap();

    // A room I am in destroyed elsewhere (only its creator may: the rules refuse anyone else),
    // as from my other device signed in as the same user: back home, and a notification.
    let retro = app.create_and_join("Retro").await;
    let elsewhere = same_user_elsewhere(&dir.path().join("data"), &db).await;
    let stranger = signed_in_stranger(&db).await;
    assert!(
        matches!(
            stranger.destroy_room(&retro.as_str().into(), None).await,
            Err(signal::room::SignalError::PermissionDenied(_))
        ),
        "someone who did not create the room cannot destroy it"
    );
    elsewhere
        .destroy_room(&retro.as_str().into(), None)
        .await
        .unwrap();
    app.until(
        "the home screen after the room closed",
        "return !window.huddle.state.inCall && !document.getElementById('view-home').hidden",
    )
    .await;
    poll(
        "a notification that the room closed",
        Duration::from_secs(10),
        || {
            desktop
                .shown()
                .into_iter()
                .find(|n| n["summary"] == "The room was closed")
        },
    )
    .unwrap();

    // Closing the window during a call asks first; "keep running in the tray" hides it and
    // the call goes on.
    app.create_and_join("Wrap-up").await;
    desktop.close_window("Huddle");
    app.until(
        "the question before closing",
        "return document.getElementById('close-dialog').open",
    )
    .await;
    app.click("close-tray").await;
    app.until(
        "the window hidden, still in the call",
        "return window.__TAURI__.window.getCurrentWindow().isVisible().then(v => !v && Boolean(window.huddle.state.inCall))",
    )
    .await;
    c.clone().close().await.unwrap();
}

/// Signaling as the app's own user (its saved credential), from outside the app.
async fn same_user_elsewhere(data: &std::path::Path, db: &str) -> signal::room::Signaling {
    let file = std::fs::read_dir(data.join("credentials"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .expect("the app keeps its user's credential");
    let saved: signal::auth::Credential =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let auth = signal::auth::FirebaseAuth::new(
        signal::auth::AuthSettings::for_database(db, "huddle-app").with_saved(Some(saved)),
    )
    .unwrap();
    signal::room::Signaling::sign_in(signal::rtdb::ClientConfig::new(db), auth)
        .await
        .unwrap()
}

/// Another signed-in user of the app's database.
async fn signed_in_stranger(db: &str) -> signal::room::Signaling {
    let auth =
        signal::auth::FirebaseAuth::new(signal::auth::AuthSettings::for_database(db, "huddle-app"))
            .unwrap();
    signal::room::Signaling::sign_in(signal::rtdb::ClientConfig::new(db), auth)
        .await
        .unwrap()
}
