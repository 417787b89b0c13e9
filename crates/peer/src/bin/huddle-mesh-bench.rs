//! `huddle-mesh-bench`: measures calls on this machine with real `huddle-peer` processes and a
//! real `huddle-db`, all on loopback, and prints the figures (see docs/benchmarks.md).
//!
//! 1. join -> first remote frame, 2 peers (p50/p90 over N joins);
//! 2. a 6-peer room: the last joiner's time until it decoded all 5 others;
//! 3. glass-to-glass latency (capture time stamped in the pixels -> decoded), 640x360 at 30 fps;
//! 4. CPU seconds per second of one participant as the mesh grows.
//!
//! Every phase is bounded and stops its processes. Build first: `cargo build --release -p rtdb -p peer`.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::Value;

/// Benchmarks Huddle calls on loopback.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Joins measured in phase 1.
    #[arg(long, default_value_t = 10)]
    joins: usize,
    /// Seconds of the latency and CPU measurements.
    #[arg(long, default_value_t = 8)]
    seconds: u64,
    /// Video size for phases 3 and 4.
    #[arg(long, default_value = "640x360")]
    size: String,
    /// Largest mesh measured in phase 4.
    #[arg(long, default_value_t = 6)]
    max_peers: usize,
    /// Run only this phase: join, six, latency, cpu.
    #[arg(long)]
    only: Option<String>,
    /// Video codec every peer wants (vp8 or h264): all connections use it.
    #[arg(long, default_value = "vp8")]
    codec: String,
}

fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let p = std::env::current_exe()?.with_file_name(name);
    if !p.exists() {
        bail!(
            "{} not found: build it first (cargo build --release -p rtdb -p peer)",
            p.display()
        );
    }
    Ok(p)
}

struct Db {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Db {
    fn start() -> anyhow::Result<Db> {
        let dir = tempfile::tempdir()?;
        let mut child = Command::new(sibling("huddle-db")?)
            .args(["--listen", "127.0.0.1:0", "--data"])
            .arg(dir.path())
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .context("no address")?
            .to_owned();
        Ok(Db {
            child,
            url,
            _dir: dir,
        })
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Peer {
    child: Child,
    lines: mpsc::Receiver<Value>,
}

impl Peer {
    fn spawn(db: &str, room: &str, name: &str, extra: &[&str]) -> anyhow::Result<Peer> {
        let mut child = Command::new(sibling("huddle-peer")?)
            .args([
                "--db",
                db,
                "--room",
                room,
                "--name",
                name,
                "--peer-id",
                &format!("{name}-bench-id"),
            ])
            .args(["--loopback"])
            .args(extra)
            .env("RUST_LOG", "error")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let out = child.stdout.take().context("stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(v).is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Peer { child, lines: rx })
    }

    /// Waits (up to `limit`) for an event matching `pred`.
    fn wait(&self, limit: Duration, pred: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) if pred(&v) => return Ok(v),
                Ok(_) => {}
                Err(_) => bail!("no expected event within {limit:?}"),
            }
        }
    }

    /// Everything printed within `d`.
    fn collect(&self, d: Duration) -> Vec<Value> {
        let deadline = Instant::now() + d;
        let mut out = Vec::new();
        while let Ok(v) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            out.push(v);
        }
        out
    }

    fn cpu_secs(&self) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        let rest = stat.rsplit_once(')').map(|(_, r)| r).context("bad stat")?;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let u: f64 = f.get(11).context("utime")?.parse()?;
        let s: f64 = f.get(12).context("stime")?.parse()?;
        Ok((u + s) / 100.0)
    }

    fn leave(mut self) {
        if let Some(stdin) = self.child.stdin.as_mut() {
            let _ = writeln!(stdin, "leave");
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// The mean of a numeric field over the `stats` events.
fn mean_stat(events: &[Value], field: &str) -> f64 {
    let values: Vec<f64> = events
        .iter()
        .filter(|v| v["type"] == "stats")
        .filter_map(|v| v[field].as_f64())
        .collect();
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

fn first_frame_ms(v: &Value) -> Option<f64> {
    (v["type"] == "first_frame" && v["kind"] == "video")
        .then(|| v["ms_since_join"].as_f64())
        .flatten()
}

const LIMIT: Duration = Duration::from_secs(30);

fn bench_join(joins: usize, codec: &str) -> anyhow::Result<()> {
    let db = Db::start()?;
    let small = ["--size", "320x180", "--fps", "30", "--codec", codec];
    let host = Peer::spawn(
        &db.url,
        "join",
        "host",
        &[&["--create"][..], &small].concat(),
    )?;
    host.wait(LIMIT, |v| v["type"] == "joined")?;
    let mut times = Vec::new();
    for i in 0..joins {
        let p = Peer::spawn(&db.url, "join", &format!("j{i}"), &small)?;
        let ev = p.wait(LIMIT, |v| first_frame_ms(v).is_some())?;
        times.push(first_frame_ms(&ev).unwrap_or(f64::NAN));
        p.leave();
    }
    let all = times
        .iter()
        .map(|t| format!("{t:.0}"))
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "join -> first remote frame, 2 peers, {joins} joins: p50 {:.0} ms, p90 {:.0} ms (all: {all})",
        pct(&mut times.clone(), 0.5),
        pct(&mut times, 0.9)
    );
    Ok(())
}

fn bench_six(codec: &str) -> anyhow::Result<()> {
    let db = Db::start()?;
    let small = [
        "--size", "320x180", "--fps", "15", "--audio", "none", "--codec", codec,
    ];
    let mut resident = Vec::new();
    for i in 0..5 {
        let create: &[&str] = if i == 0 { &["--create"] } else { &[] };
        let p = Peer::spawn(&db.url, "six", &format!("r{i}"), &[create, &small].concat())?;
        p.wait(LIMIT, |v| v["type"] == "joined")?;
        resident.push(p);
    }
    // Let the five settle into their 10 connections.
    resident[4].collect(Duration::from_secs(3));
    let last = Peer::spawn(&db.url, "six", "last", &small)?;
    let mut seen = std::collections::BTreeMap::new();
    while seen.len() < 5 {
        let ev = last.wait(LIMIT, |v| first_frame_ms(v).is_some())?;
        seen.insert(
            ev["peer"].as_str().unwrap_or_default().to_owned(),
            first_frame_ms(&ev).unwrap_or(f64::NAN),
        );
    }
    let worst = seen.values().copied().fold(0.0, f64::max);
    println!(
        "6-peer room: the last joiner decoded all 5 others {worst:.0} ms after it started joining"
    );
    Ok(())
}

fn bench_latency(size: &str, seconds: u64, codec: &str) -> anyhow::Result<()> {
    let db = Db::start()?;
    let args = [
        "--size", size, "--fps", "30", "--audio", "none", "--codec", codec,
    ];
    let a = Peer::spawn(&db.url, "lat", "a", &[&["--create"][..], &args].concat())?;
    a.wait(LIMIT, |v| v["type"] == "joined")?;
    let b = Peer::spawn(&db.url, "lat", "b", &args)?;
    b.wait(LIMIT, |v| first_frame_ms(v).is_some())?;
    let events = b.collect(Duration::from_secs(seconds));
    let mut lat: Vec<f64> = events
        .iter()
        .filter(|v| v["type"] == "stats")
        .filter_map(|v| v["latency_ms"].as_f64())
        .collect();
    let mean_fps = mean_stat(&events, "fps");
    println!(
        "glass-to-glass latency {size} at 30 fps ({} one-second samples): p50 {:.0} ms, max {:.0} ms; received {mean_fps:.1} fps",
        lat.len(),
        pct(&mut lat.clone(), 0.5),
        pct(&mut lat, 1.0)
    );
    Ok(())
}

fn bench_cpu(size: &str, seconds: u64, max_peers: usize, codec: &str) -> anyhow::Result<()> {
    for n in (2..=max_peers).filter(|n| *n == 2 || *n == 3 || *n == max_peers) {
        let db = Db::start()?;
        let args = ["--size", size, "--fps", "30", "--codec", codec];
        let measured = Peer::spawn(&db.url, "cpu", "m", &[&["--create"][..], &args].concat())?;
        measured.wait(LIMIT, |v| v["type"] == "joined")?;
        let mut others = Vec::new();
        for i in 0..n - 1 {
            others.push(Peer::spawn(&db.url, "cpu", &format!("o{i}"), &args)?);
        }
        for _ in 0..n - 1 {
            measured.wait(LIMIT, |v| first_frame_ms(v).is_some())?;
        }
        measured.collect(Duration::from_secs(2));
        let before = measured.cpu_secs()?;
        let events = measured.collect(Duration::from_secs(seconds));
        let used = (measured.cpu_secs()? - before) / seconds as f64;
        let mean_fps = mean_stat(&events, "fps");
        println!(
            "CPU of one participant in a {n}-peer mesh ({size} 30 fps, sending to and decoding {} peers): {used:.2} CPU-s/s; mean received {mean_fps:.1} fps per peer",
            n - 1
        );
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let run = |p: &str| args.only.as_deref().is_none_or(|o| o == p);
    println!(
        "huddle-mesh-bench on {} cores, video codec {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.codec
    );
    let codec = args.codec.as_str();
    if run("join") {
        bench_join(args.joins, codec)?;
    }
    if run("six") {
        bench_six(codec)?;
    }
    if run("latency") {
        bench_latency(&args.size, args.seconds, codec)?;
    }
    if run("cpu") {
        bench_cpu(&args.size, args.seconds, args.max_peers, codec)?;
    }
    Ok(())
}
