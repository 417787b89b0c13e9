//! Interop with the most used WebRTC stack: the web client (`web/`, served by huddle-db at
//! `/web/`) in headless Debian Chromium with fake devices, in one room with real `huddle-peer`
//! processes, on an in-process huddle-db. Everything listens and connects on 127.0.0.1 only.
//!
//! Needs `chromium` and `chromium-driver` (scripts/install-deps.sh installs them).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::{Duration, Instant};

use harness::browser::{page_url, Browser};
use harness::{huddle_peer, peer_stderr, Peer};
use serde_json::Value;

const T: Duration = Duration::from_secs(30);
const HEARTBEAT_MS: u64 = 300;
const EXPIRY_MS: u64 = 2000;
/// A participant that vanished is dropped within the presence bound plus one check of each side.
const DROP_BOUND: Duration = Duration::from_millis(EXPIRY_MS + 2500);

async fn db() -> (tempfile::TempDir, rtdb::Server) {
    harness::in_process_db().await.unwrap()
}

fn spawn_native(db: &str, room: &str, id: &str, extra: &[&str]) -> Peer {
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
    let bin = env!("CARGO_BIN_EXE_huddle-peer").as_ref();
    let mut cmd = huddle_peer(bin, db, room, id, id);
    Peer::start(id, cmd.args(&args).stderr(peer_stderr())).unwrap()
}

async fn open_browser(db: &str, room: &str, id: &str) -> Browser {
    let extra = format!("&hb={HEARTBEAT_MS}&expiry={EXPIRY_MS}&w=320&h=180&fps=15");
    Browser::open(&page_url(db, room, id, id, &extra))
        .await
        .unwrap()
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

/// Every participant decodes every other's video and receives their audio.
async fn full_mesh(browsers: &[(&str, &Browser)], natives: &mut [Peer]) {
    let everyone: Vec<String> = browsers
        .iter()
        .map(|(id, _)| (*id).to_owned())
        .chain(natives.iter().map(|n| n.peer_id().to_owned()))
        .collect();
    for (me, b) in browsers {
        let others: Vec<String> = everyone.iter().filter(|p| p != me).cloned().collect();
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
        for p in &others {
            assert!(
                tiles.iter().any(|t| t.starts_with(&format!("{p} {p}"))),
                "no tile for {p}: {tiles:?}"
            );
        }
    }
    for n in natives.iter_mut() {
        let me = n.peer_id().to_owned();
        for p in everyone.iter().filter(|p| **p != me) {
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

/// `who` (a browser) turns its camera off and on, then shares its screen (a new track: the
/// browser offers); then `sharer` (a native peer) shares its screen (the native side offers).
async fn toggles_and_renegotiation(
    who: &str,
    b: &Browser,
    watchers: &[&Browser],
    natives: &mut [Peer],
    sharer: usize,
) {
    let marks: Vec<usize> = natives.iter_mut().map(Peer::mark).collect();
    assert_eq!(
        b.eval("return await window.huddle.toggle('video', false)")
            .await
            .unwrap(),
        true
    );
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
    assert_eq!(
        b.eval("return await window.huddle.toggle('video', true)")
            .await
            .unwrap(),
        true
    );
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
        let cmd = format!("return await window.huddle.toggle('audio', {on})");
        assert_eq!(b.eval(&cmd).await.unwrap(), true);
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
    assert_eq!(
        b.eval("return await window.huddle.toggle('screen', true)")
            .await
            .unwrap(),
        true
    );
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
    assert_eq!(
        b.eval("return await window.huddle.toggle('screen', false)")
            .await
            .unwrap(),
        true
    );
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
    victim.kill_chromium();
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
async fn one_browser_and_two_native_peers() {
    let (_dir, server) = db().await;
    let url = server.url();
    let mut a = spawn_native(&url, "web-a", "a-native-1", &["--create"]);
    blocking(|| a.wait("joined", |v| v["type"] == "joined").unwrap());
    // z shares its screen from the start: it answers the first offers of both others, which
    // have no m-section for a screen, so it must offer its screen itself afterwards.
    let z = spawn_native(&url, "web-a", "z-native-2", &["--screen", "synthetic"]);
    // "m-..." sits between the natives: polite towards one, impolite (first offerer) towards the other.
    let mut web = open_browser(&url, "web-a", "m-browser-1").await;
    let mut natives = [a, z];
    full_mesh(&[("m-browser-1", &web)], &mut natives).await;
    web.wait("the screen z shared when it joined", T, |s| {
        frames(s, "z-native-2", "screen") > 5
            && s["members"]["z-native-2"]["streams"]["screen"] == true
    })
    .await
    .unwrap();
    blocking(|| {
        natives[0]
            .wait("the screen z shared when it joined", |v| {
                v["type"] == "first_frame" && v["peer"] == "z-native-2" && v["kind"] == "screen"
            })
            .unwrap();
    });
    toggles_and_renegotiation("m-browser-1", &web, &[], &mut natives, 0).await;
    native_killed(&mut natives[1], &[&web]).await;
    browser_killed(&mut web, "m-browser-1", &[], &mut natives[..1]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_and_one_native_peer() {
    let (_dir, server) = db().await;
    let url = server.url();
    let mut n = spawn_native(&url, "web-b", "k-native-1", &["--create"]);
    blocking(|| n.wait("joined", |v| v["type"] == "joined").unwrap());
    // Asked to join a private room, or one that does not exist, the page says so in words.
    let private = serde_json::json!({"name": "Secret", "secured": true, "createdAt": 1,
        "createdBy": "k-native-1", "check": "AAAA"});
    let put = reqwest::Client::new()
        .put(format!("{url}/rooms/private-one.json"))
        .json(&private)
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    let b1 = open_browser(&url, "private-one", "b-browser-1").await;
    let s = b1
        .wait("the private-room refusal", T, |s| s["phase"] == "private")
        .await
        .unwrap();
    let words = s["error"].as_str().unwrap();
    assert!(
        words.contains("private room") && words.contains("Huddle app"),
        "{words}"
    );
    b1.navigate(&page_url(&url, "no-such-room", "x", "b-browser-1", ""))
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
    let extra = format!("&hb={HEARTBEAT_MS}&expiry={EXPIRY_MS}&w=320&h=180&fps=15");
    b1.navigate(&page_url(
        &url,
        "web-b",
        "b-browser-1",
        "b-browser-1",
        &extra,
    ))
    .await
    .unwrap();
    let mut b2 = open_browser(&url, "web-b", "s-browser-2").await;
    let mut natives = [n];
    full_mesh(&[("b-browser-1", &b1), ("s-browser-2", &b2)], &mut natives).await;
    toggles_and_renegotiation("s-browser-2", &b2, &[&b1], &mut natives, 0).await;
    browser_killed(&mut b2, "s-browser-2", &[&b1], &mut natives).await;
    native_killed(&mut natives[0], &[&b1]).await;
}
