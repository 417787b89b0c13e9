//! Interop with the most used WebRTC stacks: the web client (`web/`, served by huddle-db at
//! `/web/`) in Debian's Chromium (headless) and Firefox ESR (on its own Xvfb) with fake devices,
//! in one room with real `huddle-peer` processes, on an in-process huddle-db. Every test runs
//! with each browser, and one with both in the call. A call with Chromium alone listens and
//! connects on 127.0.0.1 only; Firefox gathers no loopback candidates, so a call with Firefox
//! happens in a test LAN (`harness::netns::Lan`, one namespace whose only address is
//! 198.18.9.1) holding the database, the browsers and the natives ([`Site`]); that needs root,
//! and without it those tests say so loudly and pass without running.
//! Each guest signs in anonymously to that huddle-db (web/auth.js): its peer id is its uid,
//! read from the page, never chosen by the test.
//!
//! Needs `chromium`, `chromium-driver`, `firefox-esr` and `xvfb` (scripts/install-deps.sh
//! installs them).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::{Duration, Instant};

use std::process::Command;

use harness::browser::{invite_url, page_url, Browser, Engine};
use harness::netns::{self, Lan, LAN_HOST};
use harness::{peer_stderr, Peer, TEST_SECRET};
use serde_json::Value;

const T: Duration = Duration::from_secs(30);
const HEARTBEAT_MS: u64 = 300;
const EXPIRY_MS: u64 = 2000;
/// A participant that vanished is dropped within the presence bound plus one check of each side.
const DROP_BOUND: Duration = Duration::from_millis(EXPIRY_MS + 2500);

/// Where a test's call happens: on 127.0.0.1 here, or, with Firefox in it, in a test LAN with
/// the database serving there.
struct Site {
    db: Served,
    // Dropped after the database: its thread leaves the namespace first.
    lan: Option<Lan>,
}

enum Served {
    /// The server, then its data (dropped in this order).
    Here {
        server: rtdb::Server,
        _data: tempfile::TempDir,
    },
    InLan(harness::NsDb),
}

impl Site {
    /// The site for a call with `engines`; `None` (said loudly) when it needs root and we are not.
    async fn new(engines: &[Engine]) -> Option<Site> {
        Site::with(engines, |_| {}).await
    }

    /// [`Site::new`] with the database's configuration changed by `tweak`.
    async fn with(
        engines: &[Engine],
        tweak: impl FnOnce(&mut rtdb::ServerConfig) + Send + 'static,
    ) -> Option<Site> {
        if !engines.contains(&Engine::Firefox) {
            let (dir, server) = harness::in_process_db_with(tweak).await.unwrap();
            return Some(Site {
                db: Served::Here { server, _data: dir },
                lan: None,
            });
        }
        if !netns::is_root() {
            eprintln!(
                "\n\n*** SKIPPED: a call with Firefox runs in a test LAN (a network namespace), \
                 which needs root. Run the tests as root (CI does). ***\n\n"
            );
            return None;
        }
        let lan = Lan::build().unwrap();
        let listen = format!("{LAN_HOST}:0").parse().unwrap();
        let db = harness::in_process_db_in(&lan.path(), listen, tweak).unwrap();
        Some(Site {
            db: Served::InLan(db),
            lan: Some(lan),
        })
    }

    fn url(&self) -> String {
        match &self.db {
            Served::Here { server, .. } => server.url(),
            Served::InLan(db) => db.url(),
        }
    }

    /// A native peer `id` in `room`, with `extra` flags: on loopback here, or in the LAN.
    fn native(&self, room: &str, id: &str, extra: &[&str]) -> Peer {
        let bin = env!("CARGO_BIN_EXE_huddle-peer");
        let mut cmd = match &self.lan {
            Some(lan) => lan.command(bin),
            None => Command::new(bin),
        };
        cmd.args(["--db", &self.url(), "--room", room, "--name", id]);
        if self.lan.is_none() {
            cmd.arg("--loopback");
        }
        spawn_native(cmd, id, extra)
    }

    /// `engine` showing `url`, here or in the LAN.
    async fn open(&self, engine: Engine, url: &str) -> Browser {
        match &self.lan {
            Some(lan) => Browser::open_in_lan(engine, lan, url).await,
            None => Browser::open_in(engine, url).await,
        }
        .unwrap()
    }

    /// A guest named `name` in `room`, and its peer id (the uid it signed in as).
    async fn guest(&self, engine: Engine, room: &str, name: &str) -> (Browser, String) {
        let b = self.open(engine, &call_url(&self.url(), room, name)).await;
        let id = b.peer_id(T).await.unwrap();
        (b, id)
    }
}

/// `cmd` (huddle-peer with its database, room and name) with the tests' timing and id.
fn spawn_native(mut cmd: Command, id: &str, extra: &[&str]) -> Peer {
    let timing = [
        "--size",
        "320x180",
        "--fps",
        "15",
        "--heartbeat-ms",
        "300",
        "--expiry-ms",
        "2000",
    ];
    let args: Vec<&str> = timing.iter().chain(extra).copied().collect();
    // Chosen ids, the name as the id: which side offers first depends on their order (see the
    // tests' comments). The test secret acts as that user, so the rules judge it as one.
    cmd.args(["--secret", TEST_SECRET, "--peer-id", id]);
    Peer::start(id, cmd.args(&args).stderr(peer_stderr())).unwrap()
}

fn call_url(db: &str, room: &str, name: &str) -> String {
    let extra = format!("&hb={HEARTBEAT_MS}&expiry={EXPIRY_MS}&w=320&h=180&fps=15");
    page_url(db, room, name, &extra)
}

/// Blocking waits on a native peer, without starving the runtime that serves the database.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

fn recv<'a>(state: &'a Value, peer: &str, kind: &str) -> &'a Value {
    &state["members"][peer]["recv"][kind]
}

fn frames(state: &Value, peer: &str, kind: &str) -> u64 {
    recv(state, peer, kind)["framesDecoded"]
        .as_u64()
        .unwrap_or(0)
}

fn fps(state: &Value, peer: &str, kind: &str) -> f64 {
    recv(state, peer, kind)["fps"].as_f64().unwrap_or(0.0)
}

/// Every participant decodes every other's video and receives their audio. Browsers are
/// (peer id, name, page); a native's name is its peer id.
async fn full_mesh(browsers: &[(&str, &str, &Browser)], natives: &mut [Peer]) {
    let everyone: Vec<(String, String)> = browsers
        .iter()
        .map(|(id, name, _)| ((*id).to_owned(), (*name).to_owned()))
        .chain(
            natives
                .iter()
                .map(|n| (n.peer_id().to_owned(), n.peer_id().to_owned())),
        )
        .collect();
    for (me, _, b) in browsers {
        let named: Vec<(String, String)> =
            everyone.iter().filter(|(p, _)| p != me).cloned().collect();
        let others: Vec<String> = named.iter().map(|(p, _)| p.clone()).collect();
        b.wait("video and audio from everyone", T, |s| {
            others.iter().all(|p| {
                frames(s, p, "video") > 10 && recv(s, p, "audio")["packets"].as_u64() > Some(20)
            })
        })
        .await
        .unwrap();
        // One tile per other participant, showing their name.
        let tiles = b
            .eval("return [...document.querySelectorAll('.tile[data-peer]')].map(t => t.dataset.peer + ' ' + t.textContent)")
            .await
            .unwrap();
        let tiles: Vec<&str> = tiles
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(tiles.len(), others.len(), "{tiles:?}");
        for (p, name) in &named {
            assert!(
                tiles.iter().any(|t| t.starts_with(&format!("{p} {name}"))),
                "no tile for {p} ({name}): {tiles:?}"
            );
        }
    }
    for n in natives.iter_mut() {
        let me = n.peer_id().to_owned();
        for (p, _) in everyone.iter().filter(|(p, _)| *p != me) {
            let p = p.clone();
            blocking(|| {
                n.wait(&format!("video from {p}"), |v| {
                    v["type"] == "first_frame" && v["peer"] == p.as_str() && v["kind"] == "video"
                })
                .unwrap();
                n.wait(&format!("audio from {p}"), |v| {
                    v["type"] == "stats"
                        && v["peer"] == p.as_str()
                        && v["audio_packets"].as_u64() > Some(10)
                })
                .unwrap();
            });
        }
    }
}

/// Turns `kind` on or off in browser `b`; what the page says if it could not. Sharing the
/// screen is a click on its button, as a user's: `getDisplayMedia` wants a real activation.
async fn toggle(b: &Browser, kind: &str, on: bool) {
    let done = if kind == "screen" && on {
        b.click("screen").await.unwrap();
        // A refusal is only in the status line (read below).
        b.wait("the screen shared", T, |s| s["sending"]["screen"] == true)
            .await
            .map_or(Value::Bool(false), |s| s["sending"]["screen"].clone())
    } else {
        b.eval(&format!(
            "return await window.huddle.toggle('{kind}', {on})"
        ))
        .await
        .unwrap()
    };
    if done != true {
        let status = b
            .eval("return document.getElementById('status').textContent")
            .await
            .unwrap();
        panic!("the browser could not turn {kind} {on}: {status}");
    }
}

/// `who` (a browser) turns its camera off and on, then its microphone, then shares its screen
/// (a new track: the browser offers) and unshares it; then `sharer` (a native peer) shares its
/// screen (the native side offers).
async fn toggles_and_renegotiation(
    who: &str,
    b: &Browser,
    watchers: &[&Browser],
    natives: &mut [Peer],
    sharer: usize,
) {
    let marks: Vec<usize> = natives.iter_mut().map(Peer::mark).collect();
    toggle(b, "video", false).await;
    for (n, &mark) in natives.iter_mut().zip(&marks) {
        blocking(|| {
            n.wait_from(mark, "camera off", |v| {
                v["type"] == "streams_changed" && v["peer"] == who && v["streams"]["video"] == false
            })
            .unwrap();
            n.wait_from(mark, "video stopped", |v| {
                v["type"] == "stats" && v["peer"] == who && v["fps"].as_f64() == Some(0.0)
            })
            .unwrap();
        });
    }
    for w in watchers {
        w.wait("camera off seen", T, |s| {
            s["members"][who]["streams"]["video"] == false && fps(s, who, "video") == 0.0
        })
        .await
        .unwrap();
    }
    let marks: Vec<usize> = natives.iter_mut().map(Peer::mark).collect();
    toggle(b, "video", true).await;
    for (n, &mark) in natives.iter_mut().zip(&marks) {
        blocking(|| {
            n.wait_from(mark, "camera on", |v| {
                v["type"] == "streams_changed" && v["peer"] == who && v["streams"]["video"] == true
            })
            .unwrap();
            n.wait_from(mark, "video flowing again", |v| {
                v["type"] == "stats" && v["peer"] == who && v["fps"].as_f64() >= Some(5.0)
            })
            .unwrap();
        });
    }
    for w in watchers {
        w.wait("camera back", T, |s| fps(s, who, "video") >= 5.0)
            .await
            .unwrap();
    }
    // The microphone off and on: the others see the flag.
    for on in [false, true] {
        let marks: Vec<usize> = natives.iter_mut().map(Peer::mark).collect();
        toggle(b, "audio", on).await;
        for (n, &mark) in natives.iter_mut().zip(&marks) {
            blocking(|| {
                n.wait_from(mark, "microphone flag", |v| {
                    v["type"] == "streams_changed"
                        && v["peer"] == who
                        && v["streams"]["audio"] == on
                })
                .unwrap();
            });
        }
        for w in watchers {
            w.wait("microphone flag", T, |s| {
                s["members"][who]["streams"]["audio"] == on
            })
            .await
            .unwrap();
        }
    }
    // Renegotiation started by the browser: a new screen track.
    toggle(b, "screen", true).await;
    for n in natives.iter_mut() {
        blocking(|| {
            n.wait("the browser's screen", |v| {
                v["type"] == "first_frame" && v["peer"] == who && v["kind"] == "screen"
            })
            .unwrap();
        });
    }
    for w in watchers {
        w.wait("the browser's screen", T, |s| frames(s, who, "screen") > 5)
            .await
            .unwrap();
    }
    // Unsharing: the others see the flag drop.
    let marks: Vec<usize> = natives.iter_mut().map(Peer::mark).collect();
    toggle(b, "screen", false).await;
    for (n, &mark) in natives.iter_mut().zip(&marks) {
        blocking(|| {
            n.wait_from(mark, "screen unshared", |v| {
                v["type"] == "streams_changed"
                    && v["peer"] == who
                    && v["streams"]["screen"] == false
            })
            .unwrap();
        });
    }
    // Renegotiation started by a native peer (it shares its screen for the first time).
    let sid = natives[sharer].peer_id().to_owned();
    natives[sharer].send("screen on").unwrap();
    for w in watchers.iter().chain([&b]) {
        w.wait("the native peer's screen", T, |s| {
            frames(s, &sid, "screen") > 5 && s["members"][&sid]["streams"]["screen"] == true
        })
        .await
        .unwrap();
    }
}

/// Kills native `victim`: every browser drops it within the presence bound.
async fn native_killed(victim: &mut Peer, browsers: &[&Browser]) {
    let id = victim.peer_id().to_owned();
    victim.kill();
    let start = Instant::now();
    for b in browsers {
        b.wait("the killed native dropped", DROP_BOUND, |s| {
            s["members"].get(&id).is_none()
        })
        .await
        .unwrap();
    }
    eprintln!("browsers dropped killed {id} after {:?}", start.elapsed());
}

/// Kills browser `victim` (no pagehide, no leave): everyone else drops it within the bound.
async fn browser_killed(
    victim: &mut Browser,
    id: &str,
    browsers: &[&Browser],
    natives: &mut [Peer],
) {
    victim.kill();
    let start = Instant::now();
    for n in natives.iter_mut() {
        let left = blocking(|| {
            n.wait_within(0, DROP_BOUND, "the killed browser dropped", |v| {
                v["type"] == "member_left" && v["peer"] == id
            })
            .unwrap()
        });
        assert_eq!(left["reason"], "expired", "{left}");
    }
    for b in browsers {
        b.wait("the killed browser dropped", DROP_BOUND, |s| {
            s["members"].get(id).is_none()
        })
        .await
        .unwrap();
    }
    eprintln!("everyone dropped killed {id} after {:?}", start.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_and_two_native_peers() {
    one_browser_and_two_native_peers(Engine::Chromium).await;
}

/// Firefox numbers its payload types its own way (Opus 109, VP8 120): the natives answer with
/// those numbers and send with them, or media flows one way only. A screen a native starts
/// sharing mid-call must not be sent before Firefox has the offer that announces it (see
/// `Feed::write_into`), or Firefox files its packets under another m-section.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firefox_and_two_native_peers() {
    one_browser_and_two_native_peers(Engine::Firefox).await;
}

async fn one_browser_and_two_native_peers(engine: Engine) {
    let Some(site) = Site::new(&[engine]).await else {
        return;
    };
    let mut a = site.native("web-a", "a-native-1", &["--create"]);
    blocking(|| a.wait("joined", |v| v["type"] == "joined").unwrap());
    // z shares its screen from the start: it answers the first offers of both others, which
    // have no m-section for a screen, so it must offer its screen itself afterwards.
    let z = site.native("web-a", "z-native-2", &["--screen", "synthetic"]);
    let zid = z.peer_id().to_owned();
    let (mut web, wid) = site.guest(engine, "web-a", "m-browser-1").await;
    let mut natives = [a, z];
    full_mesh(&[(&wid, "m-browser-1", &web)], &mut natives).await;
    web.wait("the screen z shared when it joined", T, |s| {
        frames(s, &zid, "screen") > 5 && s["members"][&zid]["streams"]["screen"] == true
    })
    .await
    .unwrap();
    blocking(|| {
        natives[0]
            .wait("the screen z shared when it joined", |v| {
                v["type"] == "first_frame" && v["peer"] == zid.as_str() && v["kind"] == "screen"
            })
            .unwrap();
    });
    toggles_and_renegotiation(&wid, &web, &[], &mut natives, 0).await;
    native_killed(&mut natives[1], &[&web]).await;
    browser_killed(&mut web, &wid, &[], &mut natives[..1]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_and_one_native_peer() {
    let site = Site::new(&[Engine::Chromium]).await.unwrap();
    let url = site.url();
    let mut n = site.native("web-b", "k-native-1", &["--create"]);
    blocking(|| n.wait("joined", |v| v["type"] == "joined").unwrap());
    // Asked to join a private room, or one that does not exist, the page says so in words.
    let private = serde_json::json!({"name": "Secret", "secured": true, "createdAt": 1,
        "createdBy": n.peer_id(), "check": "AAAA"});
    let put = reqwest::Client::new()
        // As the admin: a private room whose secret nobody here knows, made by hand.
        .put(format!("{url}/rooms/private-one.json?auth={TEST_SECRET}"))
        .json(&private)
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    let (b1, b1_id) = site
        .guest(Engine::Chromium, "private-one", "b-browser-1")
        .await;
    let s = b1
        .wait("the private-room refusal", T, |s| s["phase"] == "private")
        .await
        .unwrap();
    let words = s["error"].as_str().unwrap();
    assert!(
        words.contains("private room") && words.contains("Huddle app"),
        "{words}"
    );
    b1.navigate(&page_url(&url, "no-such-room", "x", ""))
        .await
        .unwrap();
    let s = b1
        .wait("the missing-room error", T, |s| s["phase"] == "error")
        .await
        .unwrap();
    assert!(
        s["error"].as_str().unwrap().contains("does not exist"),
        "{s}"
    );
    b1.navigate(&call_url(&url, "web-b", "b-browser-1"))
        .await
        .unwrap();
    assert_eq!(b1.peer_id(T).await.unwrap(), b1_id, "one uid per browser");
    let (mut b2, b2_id) = site.guest(Engine::Chromium, "web-b", "s-browser-2").await;
    assert_ne!(b1_id, b2_id, "two browsers are two guests");
    let mut natives = [n];
    full_mesh(
        &[(&b1_id, "b-browser-1", &b1), (&b2_id, "s-browser-2", &b2)],
        &mut natives,
    )
    .await;
    toggles_and_renegotiation(&b2_id, &b2, &[&b1], &mut natives, 0).await;
    browser_killed(&mut b2, &b2_id, &[&b1], &mut natives).await;
    native_killed(&mut natives[0], &[&b1]).await;
}

/// Firefox and Chromium in one call with a native peer: each browser's offers and answers are
/// taken by the other browser and by the native, renegotiation started by each kind of side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firefox_chromium_and_a_native_peer() {
    let Some(site) = Site::new(&[Engine::Firefox, Engine::Chromium]).await else {
        return;
    };
    let mut n = site.native("web-f", "k-native-1", &["--create"]);
    blocking(|| n.wait("joined", |v| v["type"] == "joined").unwrap());
    let (mut ff, ff_id) = site.guest(Engine::Firefox, "web-f", "f-firefox").await;
    let (ch, ch_id) = site.guest(Engine::Chromium, "web-f", "c-chromium").await;
    let mut natives = [n];
    full_mesh(
        &[(&ff_id, "f-firefox", &ff), (&ch_id, "c-chromium", &ch)],
        &mut natives,
    )
    .await;
    toggles_and_renegotiation(&ff_id, &ff, &[&ch], &mut natives, 0).await;
    toggles_and_renegotiation(&ch_id, &ch, &[&ff], &mut natives, 0).await;
    browser_killed(&mut ff, &ff_id, &[&ch], &mut natives).await;
    native_killed(&mut natives[0], &[&ch]).await;
}

/// The claims of the guest's current ID token, decoded in the page.
async fn token_claims(b: &Browser) -> Value {
    b.eval(
        "const t = window.huddle.auth().token; \
         const p = t.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'); \
         return JSON.parse(atob(p + '='.repeat((4 - p.length % 4) % 4)));",
    )
    .await
    .unwrap()
}

/// A call that outlives several token lifetimes: the guest refreshes ahead of expiry, its
/// streams are revoked and reopened with the fresh token (once per stream per lifetime, not in
/// a storm), and media keeps flowing both ways to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chromium_guest_call_outlives_its_tokens() {
    a_guest_call_outlives_its_tokens(Engine::Chromium).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firefox_guest_call_outlives_its_tokens() {
    a_guest_call_outlives_its_tokens(Engine::Firefox).await;
}

async fn a_guest_call_outlives_its_tokens(engine: Engine) {
    const LIFETIME_S: u64 = 5;
    const CALL: Duration = Duration::from_secs(20);
    /// The room, the occupants and three inboxes.
    const STREAMS: u64 = 5;
    let Some(site) = Site::with(&[engine], |c| {
        c.token_lifetime = Duration::from_secs(LIFETIME_S);
    })
    .await
    else {
        return;
    };
    let mut n = site.native("web-t", "t-native-1", &["--create"]);
    blocking(|| n.wait("joined", |v| v["type"] == "joined").unwrap());
    let opened = Instant::now();
    let (b, me) = site.guest(engine, "web-t", "guest").await;
    let claims = token_claims(&b).await;
    assert_eq!(claims["sub"], me.as_str(), "peer id is the uid: {claims}");
    assert_eq!(claims["user_id"], me.as_str(), "{claims}");
    assert_eq!(
        claims["firebase"]["sign_in_provider"], "anonymous",
        "{claims}"
    );
    // The native is the guest's only other member, whatever id the server gave it.
    let s = b
        .wait("the native in the room", T, |s| {
            s["members"].as_object().is_some_and(|m| m.len() == 1)
        })
        .await
        .unwrap();
    let other = s["members"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    blocking(|| {
        n.wait("the guest, by its uid", |v| {
            v["type"] == "member_joined" && v["peer"] == me.as_str()
        })
        .unwrap();
    });
    b.wait("video from the native", T, |s| {
        frames(s, &other, "video") > 10
    })
    .await
    .unwrap();
    let mut n_mark = n.mark();
    let mut last = frames(&b.state().await.unwrap(), &other, "video");
    let start = Instant::now();
    while start.elapsed() < CALL {
        tokio::time::sleep(Duration::from_secs(2)).await;
        // Every two seconds, both ways: no gap as long as a token change.
        let s = b.state().await.unwrap();
        assert_eq!(s["phase"], "joined", "{s}");
        assert!(s["members"].get(&other).is_some(), "the native left: {s}");
        let now = frames(&s, &other, "video");
        assert!(
            now >= last + 10,
            "video from the native stalled at {:?}: {last} -> {now} frames; auth {}",
            start.elapsed(),
            b.eval("return window.huddle.auth()").await.unwrap()
        );
        last = now;
        blocking(|| {
            n.wait_from(n_mark, "the guest's video still flowing", |v| {
                v["type"] == "stats" && v["peer"] == me.as_str() && v["fps"].as_f64() >= Some(5.0)
            })
            .unwrap();
        });
        n_mark = n.mark();
    }
    blocking(|| {
        assert!(
            !n.seen()
                .iter()
                .any(|v| v["type"] == "member_left" && v["peer"] == me.as_str()),
            "the native dropped the guest"
        );
    });
    let mut auth = b.eval("return window.huddle.auth()").await.unwrap();
    let elapsed = opened.elapsed().as_secs();
    auth["token"] = Value::Null; // not worth printing
    eprintln!("after {elapsed} s with {LIFETIME_S} s tokens: {auth}");
    let count = |k: &str| auth[k].as_u64().unwrap();
    assert_eq!(count("signUps"), 1, "one guest: {auth}");
    assert_eq!(auth["uid"], me.as_str(), "{auth}");
    // Refreshed at three quarters of each lifetime: about elapsed / 3.75 times.
    let lifetimes = elapsed / LIFETIME_S;
    assert!(
        count("refreshes") >= lifetimes.saturating_sub(1).max(3),
        "{auth}"
    );
    assert!(
        count("refreshes") <= 2 * lifetimes + 2,
        "a refresh storm: {auth}"
    );
    // Each stream is revoked once per token it was opened with: at least once each over the
    // call, and about once per lifetime, not more.
    assert!(count("reopens") >= STREAMS, "streams not reopened: {auth}");
    assert!(
        count("reopens") <= STREAMS * (lifetimes + 2),
        "a reopen storm: {auth}"
    );
    // The token in use is a fresh one, still the same uid.
    let claims = token_claims(&b).await;
    assert_eq!(claims["sub"], me.as_str(), "{claims}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        claims["exp"].as_u64().unwrap() + 1 >= now,
        "the held token expired: {claims}, now {now}"
    );
}

/// A guest keeps its uid across a reload (the refresh token is kept per origin), rejoins under
/// it, and a second browser profile is a second guest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chromium_guest_keeps_its_uid_across_a_reload() {
    a_guest_keeps_its_uid_across_a_reload(Engine::Chromium).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firefox_guest_keeps_its_uid_across_a_reload() {
    a_guest_keeps_its_uid_across_a_reload(Engine::Firefox).await;
}

async fn a_guest_keeps_its_uid_across_a_reload(engine: Engine) {
    let Some(site) = Site::new(&[engine]).await else {
        return;
    };
    let url = site.url();
    let mut n = site.native("web-r", "r-native-1", &["--create"]);
    blocking(|| n.wait("joined", |v| v["type"] == "joined").unwrap());
    let (b, first) = site.guest(engine, "web-r", "guest").await;
    assert_eq!(
        b.eval("return window.huddle.auth().signUps").await.unwrap(),
        1
    );
    blocking(|| {
        n.wait("the guest", |v| {
            v["type"] == "member_joined" && v["peer"] == first.as_str()
        })
        .unwrap();
    });
    let mark = n.mark();
    // Loading the page again (WebDriver returns once it has loaded): a reload.
    b.navigate(&call_url(&url, "web-r", "guest")).await.unwrap();
    // The reloaded page signs in with the kept refresh token: no new sign-up.
    let s = b
        .wait("signed in again", T, |s| {
            s["me"].is_string() && s["phase"] == "joined"
        })
        .await
        .unwrap();
    assert_eq!(s["me"], first.as_str(), "{s}");
    let auth = b.eval("return window.huddle.auth()").await.unwrap();
    assert_eq!(auth["signUps"], 0, "{auth}");
    assert_eq!(auth["refreshes"], 1, "{auth}");
    assert_eq!(token_claims(&b).await["sub"], first.as_str());
    blocking(|| {
        n.wait_from(mark, "the same guest back", |v| {
            v["type"] == "member_joined" && v["peer"] == first.as_str()
        })
        .unwrap();
    });
    let (_other, second) = site.guest(engine, "web-r", "another").await;
    assert_ne!(first, second, "another browser is another guest");
}

/// An invitation opens a pre-join step: the room by its name, my camera in my tile, and
/// nothing sent to the room until Join.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chromium_guest_sees_their_camera_before_joining() {
    a_guest_sees_their_camera_before_joining(Engine::Chromium).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firefox_guest_sees_their_camera_before_joining() {
    a_guest_sees_their_camera_before_joining(Engine::Firefox).await;
}

async fn a_guest_sees_their_camera_before_joining(engine: Engine) {
    let Some(site) = Site::new(&[engine]).await else {
        return;
    };
    let mut n = site.native("web-p", "p-native-1", &["--create"]);
    blocking(|| n.wait("joined", |v| v["type"] == "joined").unwrap());
    let extra = format!("&hb={HEARTBEAT_MS}&expiry={EXPIRY_MS}&w=320&h=180&fps=15");
    let b = site
        .open(engine, &invite_url(&site.url(), "web-p", "Pat", &extra))
        .await;
    let s = b
        .wait("my camera, before joining", T, |s| {
            s["phase"] == "idle" && s["sending"]["video"] == true && s["me"].is_string()
        })
        .await
        .unwrap();
    assert_eq!(
        s["sending"]["audio"], false,
        "the microphone waits for Join: {s}"
    );
    let deadline = Instant::now() + T;
    let shown = loop {
        let v = b
            .eval("return document.getElementById('status').textContent")
            .await
            .unwrap();
        if v.as_str().is_some_and(|t| t.contains("“web-p”")) {
            break v;
        }
        assert!(Instant::now() < deadline, "the room by its name: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        shown.as_str().unwrap().contains("Check your camera"),
        "{shown}"
    );
    assert_eq!(
        b.eval("return document.getElementById('name').value")
            .await
            .unwrap(),
        "Pat"
    );
    let me = s["me"].as_str().unwrap().to_owned();
    // A second of looking at myself: nobody in the room hears of me.
    tokio::time::sleep(Duration::from_secs(1)).await;
    n.mark(); // takes in what it printed so far
    assert!(
        !n.seen().iter().any(|v| v["type"] == "member_joined"),
        "nothing reaches the room before Join: {:?}",
        n.seen()
    );
    b.click("join-btn").await.unwrap();
    blocking(|| {
        n.wait("the guest, after Join", |v| {
            v["type"] == "member_joined" && v["peer"] == me.as_str()
        })
        .unwrap();
    });
    b.wait("joined, sending what the boxes said", T, |s| {
        s["phase"] == "joined" && s["sending"]["video"] == true && s["sending"]["audio"] == true
    })
    .await
    .unwrap();
}

/// A server that refuses the page's API key: the guest is told so in words, and joins nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_sign_in_is_explained_in_chromium() {
    a_refused_sign_in_is_explained(Engine::Chromium).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_sign_in_is_explained_in_firefox() {
    a_refused_sign_in_is_explained(Engine::Firefox).await;
}

async fn a_refused_sign_in_is_explained(engine: Engine) {
    let Some(site) = Site::with(&[engine], |c| {
        c.api_key = Some("the-hosts-own-key".into());
    })
    .await
    else {
        return;
    };
    let b = site
        .open(engine, &call_url(&site.url(), "any-room", "guest"))
        .await;
    let s = b
        .wait("the sign-in refusal", T, |s| s["phase"] == "error")
        .await
        .unwrap();
    let words = s["error"].as_str().unwrap();
    assert!(
        words.contains("sign-in key") && words.contains("--api-key"),
        "{words}"
    );
    assert!(s["me"].is_null(), "{s}");
    let shown = b
        .eval("return document.getElementById('status').textContent")
        .await
        .unwrap();
    assert_eq!(shown.as_str(), Some(words), "the page shows it");
}
