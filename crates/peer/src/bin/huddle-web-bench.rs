//! `huddle-web-bench`: `huddle-peer` side by side with a Chromium participant running the web
//! client, in the same rooms on this machine (real `huddle-db`, everything on loopback), and
//! prints the figures recorded in docs/benchmarks.md:
//!
//! 1. join -> first remote frame (p50 over N joins): a huddle-peer joining a room whose host is a
//!    huddle-peer, vs the web client joining the same kind of room (its page loaded once; each
//!    join is `window.huddle.join()` .. first presented frame);
//! 2. CPU of one participant in a 6-participant mesh at 640x360 30 fps: the measured participant
//!    is a huddle-peer, then a Chromium (all its processes; renderer, GPU and network service
//!    listed), the other five the same huddle-peers both times;
//! 3. glass-to-glass latency measured the same way for every direction: the sender paints its
//!    capture time into the pixels (crates/media/src/stamp.rs; the web client's `source=stamp`
//!    canvas), the receiver reads it from the decoded frame.
//!
//! Needs `chromium` and `chromium-driver`; build first: `cargo build --release -p rtdb -p peer`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Parser;
use harness::browser::{self, page_url, Browser};
use harness::process::{cpu_ticks, sibling_binary, ticks_to_secs};
use harness::{huddle_peer, peer_stderr, Db, Peer as Native};
use serde_json::Value;

/// Benchmarks the web client against huddle-peer on loopback.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Joins measured per client in phase 1.
    #[arg(long, default_value_t = 10)]
    joins: usize,
    /// Seconds of the CPU and latency measurements.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Run only this phase: join, cpu, latency.
    #[arg(long)]
    only: Option<String>,
}

const LIMIT: Duration = Duration::from_secs(40);
const VIDEO: [&str; 4] = ["--size", "640x360", "--fps", "30"];

fn start_db() -> anyhow::Result<Db> {
    Ok(Db::start(&sibling_binary("huddle-db"))?)
}

fn native(db: &Db, room: &str, id: &str, args: &[&str]) -> anyhow::Result<Native> {
    let bin = sibling_binary("huddle-peer");
    let mut cmd = huddle_peer(&bin, db.url(), room, id);
    Ok(Native::start(id, cmd.args(args).stderr(peer_stderr()))?.with_bound(LIMIT))
}

fn pct(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn list(v: &[f64]) -> String {
    v.iter()
        .map(|t| format!("{t:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

async fn bench_join(joins: usize) -> anyhow::Result<()> {
    let db = start_db()?;
    let mut host = native(
        &db,
        "join",
        "host-bench-id",
        &[&["--create"][..], &VIDEO].concat(),
    )?;
    blocking(|| host.wait("joined", |v| v["type"] == "joined"))?;
    // Joiners have larger ids than the host, so the host offers in both series.
    let mut ours = Vec::new();
    for i in 0..joins {
        let mut p = native(&db, "join", &format!("j{i}-bench-id"), &VIDEO)?;
        let ev = blocking(|| {
            p.wait("first frame", |v| {
                v["type"] == "first_frame" && v["kind"] == "video"
            })
        })?;
        ours.push(ev["ms_since_join"].as_f64().unwrap_or(f64::NAN));
        p.send("leave")?;
        blocking(|| p.wait("left", |v| v["type"] == "left"))?;
    }
    // The guest signs in once when the page loads (its uid is its peer id), not per join.
    let url = format!("{}/web/?loopback=1&w=640&h=360&fps=30", db.url());
    let b = Browser::open(&url).await?;
    b.peer_id(LIMIT).await?;
    let mut chromium = Vec::new();
    for i in 0..joins {
        b.eval(&format!(
            "window.huddle.join('join', 'web{i}'); return true"
        ))
        .await?;
        let s = b
            .wait("first frame", LIMIT, |s| {
                s["members"]["host-bench-id"]["firstFrameMs"]["video"].is_number()
            })
            .await?;
        chromium.push(
            s["members"]["host-bench-id"]["firstFrameMs"]["video"]
                .as_f64()
                .unwrap_or(f64::NAN),
        );
        b.eval("return await window.huddle.leave()").await?;
        b.wait("left", LIMIT, |s| s["phase"] == "left").await?;
    }
    println!(
        "join -> first remote frame, host huddle-peer 640x360 30 fps, {joins} joins each:\n  huddle-peer: p50 {:.0} ms, p90 {:.0} ms (all: {})\n  Chromium:    p50 {:.0} ms, p90 {:.0} ms (all: {})",
        pct(&ours, 0.5),
        pct(&ours, 0.9),
        list(&ours),
        pct(&chromium, 0.5),
        pct(&chromium, 0.9),
        list(&chromium),
    );
    Ok(())
}

/// Five huddle-peers in room `cpu` (the first creates it), all connected to each other.
fn five(db: &Db) -> anyhow::Result<Vec<Native>> {
    let mut out = Vec::new();
    for i in 0..5 {
        let create: &[&str] = if i == 0 { &["--create"] } else { &[] };
        let mut p = native(
            db,
            "cpu",
            &format!("o{i}-bench-id"),
            &[create, &VIDEO].concat(),
        )?;
        blocking(|| p.wait("joined", |v| v["type"] == "joined"))?;
        out.push(p);
    }
    Ok(out)
}

async fn bench_cpu(seconds: u64) -> anyhow::Result<()> {
    let window = Duration::from_secs(seconds);
    // Our participant.
    let ours = {
        let db = start_db()?;
        let _others = five(&db)?;
        let mut m = native(&db, "cpu", "m-bench-id", &VIDEO)?;
        for _ in 0..5 {
            blocking(|| m.wait("first frames", |v| v["type"] == "first_frame"))?;
        }
        blocking(|| std::thread::sleep(Duration::from_secs(2))); // past the join burst
        let mark = m.mark();
        let before = m.cpu_ticks();
        let start = Instant::now();
        blocking(|| std::thread::sleep(window));
        let used = ticks_to_secs(m.cpu_ticks() - before) / start.elapsed().as_secs_f64();
        let end = m.mark();
        // Mean received fps per peer over the window, from the once-a-second stats.
        let mut per_peer: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for v in m.seen()[mark..end].iter().filter(|v| v["type"] == "stats") {
            if let (Some(p), Some(f)) = (v["peer"].as_str(), v["fps"].as_f64()) {
                per_peer.entry(p.to_owned()).or_default().push(f);
            }
        }
        let fps: Vec<f64> = per_peer
            .values()
            .map(|v| v.iter().sum::<f64>() / v.len().max(1) as f64)
            .collect();
        println!(
            "CPU, 6-participant mesh, 640x360 30 fps: huddle-peer {used:.2} CPU-s/s; mean fps received per peer: {} (it encodes once, 640x360 30 fps)",
            list(&fps)
        );
        used
    };
    // Chromium in the same place.
    let db = start_db()?;
    let _others = five(&db)?;
    let b = Browser::open(&page_url(db.url(), "cpu", "web", "&w=640&h=360&fps=30")).await?;
    b.wait("video from all five", LIMIT, |s| {
        (0..5).all(|i| {
            s["members"][format!("o{i}-bench-id")]["recv"]["video"]["framesDecoded"].as_u64()
                > Some(0)
        })
    })
    .await?;
    blocking(|| std::thread::sleep(Duration::from_secs(2)));
    let at_start = b.state().await?;
    let pids = b.pids();
    let before: BTreeMap<u32, u64> = pids.iter().map(|&p| (p, cpu_ticks(p))).collect();
    let start = Instant::now();
    blocking(|| std::thread::sleep(window));
    let secs = start.elapsed().as_secs_f64();
    let mut by_type: BTreeMap<String, f64> = BTreeMap::new();
    for (&pid, &t0) in &before {
        let used = ticks_to_secs(cpu_ticks(pid).saturating_sub(t0)) / secs;
        *by_type.entry(browser::chromium_type(pid)).or_default() += used;
    }
    let total: f64 = by_type.values().sum();
    let core: f64 = by_type
        .iter()
        .filter(|(t, _)| t.starts_with("renderer") || t.starts_with("gpu") || t.contains("network"))
        .map(|(_, v)| v)
        .sum();
    let s = b.state().await?;
    // Mean rates over the window, per peer: frames decoded from it, frames encoded for it.
    let rate = |path: &[&str], i: usize| -> f64 {
        let get = |v: &Value| {
            let mut x = &v["members"][format!("o{i}-bench-id")];
            for p in path {
                x = &x[*p];
            }
            x.as_f64().unwrap_or(0.0)
        };
        (get(&s) - get(&at_start)) / secs
    };
    let fps: Vec<f64> = (0..5)
        .map(|i| rate(&["recv", "video", "framesDecoded"], i))
        .collect();
    let sent: Vec<f64> = (0..5)
        .map(|i| rate(&["sent", "framesEncoded"], i))
        .collect();
    let sent_info: Vec<String> = (0..5)
        .map(|i| {
            let x = &s["members"][format!("o{i}-bench-id")]["sent"];
            let why = x["limitation"].as_str().unwrap_or("?");
            format!("{}x{} ({why})", x["width"], x["height"])
        })
        .collect();
    let parts: Vec<String> = by_type.iter().map(|(t, v)| format!("{t} {v:.2}")).collect();
    println!(
        "CPU, 6-participant mesh, 640x360 30 fps: Chromium renderer+GPU+network {core:.2} CPU-s/s, all processes {total:.2} ({});\n  mean fps received per peer: {}; encoded per connection: {} at {}",
        parts.join(", "),
        list(&fps),
        list(&sent),
        sent_info.join(", ")
    );
    println!(
        "  ratio huddle-peer / Chromium: {:.2} (renderer+GPU+network), {:.2} (all processes)",
        ours / core,
        ours / total
    );
    Ok(())
}

async fn bench_latency(seconds: u64) -> anyhow::Result<()> {
    let db = start_db()?;
    let mut a = native(
        &db,
        "lat",
        "a-bench-id",
        &[&["--create"][..], &VIDEO, &["--audio", "none"][..]].concat(),
    )?;
    blocking(|| a.wait("joined", |v| v["type"] == "joined"))?;
    let mut n = native(
        &db,
        "lat",
        "n-bench-id",
        &[&VIDEO[..], &["--audio", "none"][..]].concat(),
    )?;
    let b = Browser::open(&page_url(
        db.url(),
        "lat",
        "web",
        "&w=640&h=360&fps=30&source=stamp&audio=0&latency=1",
    ))
    .await?;
    // The guest's peer id is the uid it signed in as.
    let web_id = b.peer_id(LIMIT).await?;
    b.wait("video from both", LIMIT, |s| {
        s["members"]["a-bench-id"]["latencyMs"].is_number()
            && s["members"]["n-bench-id"]["latencyMs"].is_number()
    })
    .await?;
    for p in [&mut a, &mut n] {
        blocking(|| {
            p.wait("browser video", |v| {
                v["type"] == "first_frame" && v["peer"] == web_id.as_str()
            })
        })?;
    }
    let start_marks = [a.mark(), n.mark()];
    let mut to_browser = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        let s = b.state().await?;
        if let Some(l) = s["members"]["a-bench-id"]["latencyMs"].as_f64() {
            to_browser.push(l);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let samples = |p: &mut Native, mark: usize, from: &str| -> Vec<f64> {
        p.mark();
        p.seen()[mark..]
            .iter()
            .filter(|v| v["type"] == "stats" && v["peer"] == from)
            .filter_map(|v| v["latency_ms"].as_f64())
            .collect()
    };
    let native_to_native = samples(&mut n, start_marks[1], "a-bench-id");
    let browser_to_native = samples(&mut a, start_marks[0], &web_id);
    if native_to_native.is_empty() || browser_to_native.is_empty() || to_browser.is_empty() {
        bail!("no latency samples: n<-a {native_to_native:?}, a<-web {browser_to_native:?}, web<-a {to_browser:?}");
    }
    println!(
        "glass-to-glass, 640x360 30 fps, capture stamp -> decoded frame ({seconds} one-second samples each, p50 / max):\n  huddle-peer -> huddle-peer: {:.0} / {:.0} ms\n  huddle-peer -> Chromium:    {:.0} / {:.0} ms (read from the presented frame via canvas)\n  Chromium -> huddle-peer:    {:.0} / {:.0} ms (Chromium sends a stamped canvas.captureStream)",
        pct(&native_to_native, 0.5),
        pct(&native_to_native, 1.0),
        pct(&to_browser, 0.5),
        pct(&to_browser, 1.0),
        pct(&browser_to_native, 0.5),
        pct(&browser_to_native, 1.0),
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let run = |p: &str| args.only.as_deref().is_none_or(|o| o == p);
    println!(
        "huddle-web-bench on {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if run("join") {
        bench_join(args.joins).await?;
    }
    if run("cpu") {
        bench_cpu(args.seconds).await?;
    }
    if run("latency") {
        bench_latency(args.seconds).await?;
    }
    Ok(())
}
