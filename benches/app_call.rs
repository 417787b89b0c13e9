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

use harness::Peer;
use serde_json::Value;
use support::{join_with, App};

const PEERS: usize = 5;
const WINDOW: Duration = Duration::from_secs(10);
const RUN: Duration = Duration::from_secs(120);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::launch(dir.path(), "App").await;
    let db = app.database().await;
    let room = app.create_and_join("Bench").await;
    let _peers: Vec<Peer> = (0..PEERS)
        .map(|i| join_with(&db, &room, &format!("P{i}"), "640x360", 30, &[]))
        .collect();
    app.until(
        "all six tiles with video",
        "return document.querySelectorAll('.tile.has-video').length >= 6",
    )
    .await;
    // Settle, then measure in windows.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let _ = app
        .js("return window.__TAURI__.core.invoke('ui_stats', {reset: true})")
        .await;
    println!("window  tile                      fps   p50_ms  p95_ms");
    let start = Instant::now();
    let mut all: Vec<Value> = Vec::new();
    let mut n = 0;
    while start.elapsed() < RUN {
        tokio::time::sleep(WINDOW).await;
        n += 1;
        let stats = app
            .js("return window.__TAURI__.core.invoke('ui_stats', {reset: true})")
            .await;
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
    app.client.close().await.unwrap();
}
