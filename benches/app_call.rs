//! The desktop app in a six-person call: five `huddle-peer`s sending 640x360 at 30 fps, and
//! the app (release build, under Xvfb, driven by WebDriver) drawing all of them. Prints, for
//! every 10 s window over two minutes, each tile's drawn frames per second and its latency from
//! capture (the stamp in the pixels) to drawn, p50 and p95; then the totals.
//!
//! `cargo build --release -p peer && cargo bench --bench app_call` (needs what `make test`
//! installs: Xvfb, WebKitWebDriver, tauri-driver). Figures go to docs/benchmarks.md.
#![allow(clippy::unwrap_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use serde_json::{json, Value};
use support::{Desktop, Peer};

const PEERS: usize = 5;
const WINDOW: Duration = Duration::from_secs(10);
const RUN: Duration = Duration::from_secs(120);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("settings.json"),
        json!({"name": "App", "start_with_audio": true, "start_with_video": true,
               "devices": {"camera": "synthetic", "microphone": "synthetic", "speaker": "none", "display": "synthetic"}})
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
    let caps = json!({"browserName": "wry", "tauri:options": {"application": env!("CARGO_BIN_EXE_huddle")}});
    let c = ClientBuilder::rustls()
        .unwrap()
        .capabilities(caps.as_object().unwrap().clone())
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session with the app");
    let js = |s: &'static str| {
        let c = c.clone();
        async move { c.execute(s, vec![]).await.unwrap() }
    };
    let wait = |s: &'static str| {
        let c = c.clone();
        async move {
            let end = Instant::now() + Duration::from_secs(60);
            loop {
                let v = c.execute(s, vec![]).await.unwrap();
                if !(v.is_null() || v == json!(false)) {
                    return v;
                }
                assert!(Instant::now() < end, "timed out: {s}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let db = wait("return window.huddle?.state.db.connected && window.huddle.state.db.url").await;
    let db = db.as_str().unwrap().to_owned();
    c.find(Locator::Id("create-name"))
        .await
        .unwrap()
        .send_keys("Bench")
        .await
        .unwrap();
    c.find(Locator::Id("create-btn"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait("return !document.getElementById('view-prejoin').hidden").await;
    c.find(Locator::Id("prejoin-join"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let room = wait("return window.huddle.state.inCall?.room").await;
    let room = room.as_str().unwrap().to_owned();
    let _peers: Vec<Peer> = (0..PEERS)
        .map(|i| Peer::join_with(&db, &room, &format!("P{i}"), "640x360", 30))
        .collect();
    wait("return document.querySelectorAll('.tile.has-video').length >= 6").await;
    // Settle, then measure in windows.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let _ = js("return window.__TAURI__.core.invoke('ui_stats', {reset: true})").await;
    println!("window  tile                      fps   p50_ms  p95_ms");
    let start = Instant::now();
    let mut all: Vec<Value> = Vec::new();
    let mut n = 0;
    while start.elapsed() < RUN {
        tokio::time::sleep(WINDOW).await;
        n += 1;
        let stats = js("return window.__TAURI__.core.invoke('ui_stats', {reset: true})").await;
        for t in stats.as_array().cloned().unwrap_or_default() {
            if t["key"].as_str().is_some_and(|k| k.starts_with("self")) {
                continue;
            }
            println!(
                "{:>6}  {:<24} {:>5.1}  {:>6.1}  {:>6.1}",
                n,
                t["key"].as_str().unwrap_or(""),
                t["fps"].as_f64().unwrap_or(0.0),
                t["latency_p50_ms"].as_f64().unwrap_or(f64::NAN),
                t["latency_p95_ms"].as_f64().unwrap_or(f64::NAN)
            );
            all.push(t);
        }
    }
    let fps: Vec<f64> = all.iter().filter_map(|t| t["fps"].as_f64()).collect();
    let p50: Vec<f64> = all
        .iter()
        .filter_map(|t| t["latency_p50_ms"].as_f64())
        .collect();
    let p95: Vec<f64> = all
        .iter()
        .filter_map(|t| t["latency_p95_ms"].as_f64())
        .collect();
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = |v: &[f64]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    println!(
        "summary: {} remote tiles x {n} windows; fps min {:.1}; p50 max {:.1} ms; p95 max {:.1} ms",
        PEERS,
        min(&fps),
        max(&p50),
        max(&p95)
    );
    c.close().await.unwrap();
}
