//! `huddle-mesh-bench`: measures calls on this machine with real `huddle-peer` processes and a
//! real `huddle-db`, all on loopback, and prints the figures (see docs/benchmarks.md).
//!
//! 1. join -> first remote frame, 2 peers (p50/p90 over N joins);
//! 2. a 6-peer room: the last joiner's time until it decoded all 5 others;
//! 3. glass-to-glass latency (capture time stamped in the pixels -> decoded), 640x360 at 30 fps;
//! 4. CPU seconds per second of one participant as the mesh grows;
//! 5. how long a participant killed with SIGKILL stays in the others' room: with onDisconnect
//!    (`docs/protocol.md` §4b) and, alternated in the same run, with the heartbeat alone;
//! 6. (`--only flood`, not run by default) a candidate flood: a third client with the
//!    database's secret pushes `--flood` candidates "from b" to a, in b's session, as fast as
//!    it can; a's memory (RSS) and the video frame rates both ways before, during and after.
//!
//! 7. (`--only nat`, not run by default: needs root, nftables and coturn) join -> first frame
//!    and glass-to-glass latency across the NATs of `harness::netns`, direct (friendly NATs,
//!    STUN) against relayed (a symmetric NAT, TURN; and relay-only), alternated in one run.
//!
//! Every phase is bounded and stops its processes. Build first: `cargo build --release -p rtdb -p peer`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use harness::process::{sibling_binary, ticks_to_secs};
use harness::{huddle_peer, Db, Peer};
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
    /// Kills measured per mode in phase 5.
    #[arg(long, default_value_t = 5)]
    kills: usize,
    /// Run only this phase: join, six, latency, cpu, kill, flood, rejoins, nat (the last three
    /// run only when named).
    #[arg(long)]
    only: Option<String>,
    /// Candidates pushed in the flood phase.
    #[arg(long, default_value_t = 100_000)]
    flood: usize,
    /// Forced rejoins in the rejoins phase.
    #[arg(long, default_value_t = 10)]
    rejoins: usize,
    /// The huddle-peer the flood and rejoins phases run (default: the one beside this binary), to
    /// measure another build.
    #[arg(long)]
    flood_peer: Option<std::path::PathBuf>,
    /// Video codec every peer wants (vp8 or h264): all connections use it.
    #[arg(long, default_value = "vp8")]
    codec: String,
}

fn sibling(name: &str) -> anyhow::Result<std::path::PathBuf> {
    let p = sibling_binary(name);
    if !p.exists() {
        bail!(
            "{} not found: build it first (cargo build --release -p rtdb -p peer)",
            p.display()
        );
    }
    Ok(p)
}

fn start_db() -> anyhow::Result<Db> {
    Ok(Db::start(&sibling("huddle-db")?)?)
}

fn spawn(db: &str, room: &str, name: &str, extra: &[&str]) -> anyhow::Result<Peer> {
    let bin = sibling("huddle-peer")?;
    let mut cmd = huddle_peer(Path::new(&bin), db, room, name);
    cmd.args(extra)
        .env("RUST_LOG", "error")
        .stderr(Stdio::inherit());
    Ok(Peer::start(name, &mut cmd)?.with_bound(LIMIT))
}

/// Everything `p` prints within `d`.
fn collect(p: &mut Peer, d: Duration) -> Vec<Value> {
    let from = p.mark();
    std::thread::sleep(d);
    let to = p.mark();
    p.seen()[from..to].to_vec()
}

fn cpu_secs(p: &Peer) -> f64 {
    ticks_to_secs(p.cpu_ticks())
}

/// Leaves (bounded): a peer that does not go in time is killed when dropped.
fn leave(mut p: Peer) {
    if let Err(e) = p.leave(Duration::from_secs(5)) {
        eprintln!("{e}");
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
    let db = start_db()?;
    let small = ["--size", "320x180", "--fps", "30", "--codec", codec];
    let mut host = spawn(
        db.url(),
        "join",
        "host",
        &[&["--create"][..], &small].concat(),
    )?;
    host.wait("joined", |v| v["type"] == "joined")?;
    let mut times = Vec::new();
    let mut sign_ins = Vec::new();
    for i in 0..joins {
        let mut p = spawn(db.url(), "join", &format!("j{i}"), &small)?;
        let signed_in = p.wait("signed_in", |v| v["type"] == "signed_in")?;
        sign_ins.push(signed_in["sign_in_ms"].as_f64().unwrap_or(f64::NAN));
        let ev = p.wait("first frame", |v| first_frame_ms(v).is_some())?;
        times.push(first_frame_ms(&ev).unwrap_or(f64::NAN));
        leave(p);
    }
    // Each joiner is a new user: this is a first run's sign-up, which a saved user's refresh
    // replaces on later runs; either happens once per session, before the join.
    let with_sign_in: Vec<f64> = times.iter().zip(&sign_ins).map(|(j, s)| j + s).collect();
    println!(
        "sign-in (anonymous sign-up at the huddle-db), {joins} joiners: p50 {:.1} ms, p90 {:.1} ms; sign-in + join -> first frame p50 {:.0} ms",
        pct(&mut sign_ins.clone(), 0.5),
        pct(&mut sign_ins, 0.9),
        pct(&mut with_sign_in.clone(), 0.5),
    );
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
    let db = start_db()?;
    let small = [
        "--size", "320x180", "--fps", "15", "--audio", "none", "--codec", codec,
    ];
    let mut resident = Vec::new();
    for i in 0..5 {
        let create: &[&str] = if i == 0 { &["--create"] } else { &[] };
        let mut p = spawn(
            db.url(),
            "six",
            &format!("r{i}"),
            &[create, &small].concat(),
        )?;
        p.wait("joined", |v| v["type"] == "joined")?;
        resident.push(p);
    }
    // Let the five settle into their 10 connections.
    std::thread::sleep(Duration::from_secs(3));
    let mut last = spawn(db.url(), "six", "last", &small)?;
    let mut seen = std::collections::BTreeMap::new();
    for r in &resident {
        let from = r.peer_id().to_owned();
        let ev = last.wait(&format!("first frame from {from}"), |v| {
            first_frame_ms(v).is_some() && v["peer"] == from.as_str()
        })?;
        seen.insert(from, first_frame_ms(&ev).unwrap_or(f64::NAN));
    }
    let worst = seen.values().copied().fold(0.0, f64::max);
    println!(
        "6-peer room: the last joiner decoded all 5 others {worst:.0} ms after it started joining"
    );
    Ok(())
}

fn bench_latency(size: &str, seconds: u64, codec: &str) -> anyhow::Result<()> {
    let db = start_db()?;
    let args = [
        "--size", size, "--fps", "30", "--audio", "none", "--codec", codec,
    ];
    let mut a = spawn(db.url(), "lat", "a", &[&["--create"][..], &args].concat())?;
    a.wait("joined", |v| v["type"] == "joined")?;
    let mut b = spawn(db.url(), "lat", "b", &args)?;
    b.wait("first frame", |v| first_frame_ms(v).is_some())?;
    let events = collect(&mut b, Duration::from_secs(seconds));
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
        let db = start_db()?;
        let args = ["--size", size, "--fps", "30", "--codec", codec];
        let mut measured = spawn(db.url(), "cpu", "m", &[&["--create"][..], &args].concat())?;
        measured.wait("joined", |v| v["type"] == "joined")?;
        let mut others = Vec::new();
        for i in 0..n - 1 {
            others.push(spawn(db.url(), "cpu", &format!("o{i}"), &args)?);
        }
        for o in &others {
            let from = o.peer_id().to_owned();
            measured.wait(&format!("first frame from {from}"), |v| {
                first_frame_ms(v).is_some() && v["peer"] == from.as_str()
            })?;
        }
        std::thread::sleep(Duration::from_secs(2));
        let before = cpu_secs(&measured);
        let events = collect(&mut measured, Duration::from_secs(seconds));
        let used = (cpu_secs(&measured) - before) / seconds as f64;
        let mean_fps = mean_stat(&events, "fps");
        println!(
            "CPU of one participant in a {n}-peer mesh ({size} 30 fps, sending to and decoding {} peers): {used:.2} CPU-s/s; mean received {mean_fps:.1} fps per peer",
            n - 1
        );
    }
    Ok(())
}

/// Phase 5: a victim joins a watcher's call (video both ways), is killed with SIGKILL, and the
/// time until the watcher reports it gone is taken; the two modes alternate.
fn bench_kill(kills: usize) -> anyhow::Result<()> {
    let db = start_db()?;
    let small = ["--size", "160x96", "--fps", "15"];
    let mut watcher = spawn(
        db.url(),
        "kill",
        "watcher",
        &[&["--create"][..], &small[..]].concat(),
    )?;
    watcher.wait("watcher joined", |v| v["type"] == "joined")?;
    let mut times: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for i in 0..kills * 2 {
        let heartbeat_only = i % 2 == 1;
        let mut extra: Vec<&str> = small.to_vec();
        if heartbeat_only {
            extra.push("--no-on-disconnect");
        }
        let name = format!("victim{i}");
        let mut victim = spawn(db.url(), "kill", &name, &extra)?;
        let id = victim.peer_id().to_owned();
        let mark = watcher.mark();
        watcher.wait_from(mark, "the victim's video", |v| {
            first_frame_ms(v).is_some() && v["peer"] == id.as_str()
        })?;
        // Let the link register what the victim sent (it follows the join).
        std::thread::sleep(Duration::from_millis(500));
        let mark = watcher.mark();
        let killed = std::time::Instant::now();
        victim.kill();
        watcher.wait_from(mark, "the killed victim gone", |v| {
            v["type"] == "member_left" && v["peer"] == id.as_str()
        })?;
        times[usize::from(heartbeat_only)].push(killed.elapsed().as_secs_f64() * 1000.0);
    }
    for (label, t) in ["onDisconnect", "heartbeat only"]
        .iter()
        .zip(times.iter_mut())
    {
        println!(
            "killed participant gone ({label}, {} kills): p50 {:.0} ms, max {:.0} ms",
            t.len(),
            pct(t, 0.5),
            pct(t, 1.0)
        );
    }
    leave(watcher);
    Ok(())
}

/// Resident memory of process `pid`, MiB.
/// huddle-db on the public side of `net`, with the shipped rules; its URL.
fn start_db_in(net: &harness::netns::TestNet) -> anyhow::Result<(harness::Proc, String)> {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../database.rules.json");
    let mut cmd = net.command(harness::netns::PUB_NS, sibling("huddle-db")?);
    cmd.args([
        "--listen",
        &format!("{}:8080", harness::netns::PUB),
        "--data",
    ])
    .arg(net.dir().join("db"))
    .arg("--rules")
    .arg(rules)
    .env("RUST_LOG", "error")
    .stdout(Stdio::piped());
    let mut db = harness::Proc::spawn(&mut cmd, "build it first")?;
    let out = db.child().stdout.take().context("no stdout")?;
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line)?;
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .with_context(|| format!("huddle-db said {line:?}"))?
        .to_owned();
    Ok((db, url))
}

/// Join -> first frame and glass-to-glass latency across NATs: `joins` rounds, each trying
/// every path once (alternated, so a slower moment of the machine hits all of them alike).
fn bench_nat(joins: usize, seconds: u64, codec: &str) -> anyhow::Result<()> {
    use harness::netns::{self, TestNet};
    if !netns::is_root() {
        bail!("the nat phase builds network namespaces and NATs: run it as root");
    }
    let turn = netns::stun_and_turn_flags();
    let turn: Vec<&str> = turn.iter().map(String::as_str).collect();
    let stun = ["--ice-server".to_owned(), netns::stun_url()];
    let stun: Vec<&str> = stun.iter().map(String::as_str).collect();
    let relay_only: Vec<&str> = turn.iter().copied().chain(["--relay-only"]).collect();
    // (label, symmetric NAT, a's flags, b's flags)
    let paths: [(&str, bool, &[&str], &[&str]); 3] = [
        ("direct through NAT (STUN)", false, &stun, &stun),
        ("relayed: symmetric NAT (TURN)", true, &turn, &turn),
        (
            "relayed: relay-only (TURN)",
            false,
            &relay_only,
            &relay_only,
        ),
    ];
    let small = [
        "--size", "320x180", "--fps", "30", "--audio", "none", "--codec", codec,
    ];
    let mut joined: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    let mut latency: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    let mut kinds: Vec<String> = vec![String::new(); paths.len()];
    let peer_bin = sibling("huddle-peer")?;
    for round in 0..joins {
        for (i, (_, symmetric, a_flags, b_flags)) in paths.iter().enumerate() {
            let net = TestNet::build(*symmetric)?;
            let (_db, url) = start_db_in(&net)?;
            let peer = |home: &str, name: &str, flags: &[&str], create: bool| {
                let mut cmd = net.command(home, &peer_bin);
                cmd.args(["--db", &url, "--room", "nat", "--name", name])
                    .args(if create { &["--create"][..] } else { &[] })
                    .args(small)
                    .args(flags)
                    .env("RUST_LOG", "error")
                    .stderr(Stdio::inherit());
                Peer::start(name, &mut cmd).map(|p| p.with_bound(LIMIT))
            };
            let mut a = peer("home1", "a", a_flags, true)?;
            a.wait("joined", |v| v["type"] == "joined")?;
            let mut b = peer("home2", "b", b_flags, false)?;
            let ev = b.wait("first frame", |v| first_frame_ms(v).is_some())?;
            joined[i].push(first_frame_ms(&ev).unwrap_or(f64::NAN));
            let events = collect(&mut b, Duration::from_secs(seconds));
            latency[i].extend(
                events
                    .iter()
                    .filter(|v| v["type"] == "stats")
                    .filter_map(|v| v["latency_ms"].as_f64()),
            );
            if let Some(path) = events.iter().rev().find_map(|v| v["path"].as_str()) {
                kinds[i] = path.to_owned();
            }
            leave(b);
            leave(a);
            eprintln!("nat: round {} of {joins}, path {} done", round + 1, i + 1);
        }
    }
    for (i, (label, ..)) in paths.iter().enumerate() {
        println!(
            "across NATs, {label} [path {}]: join -> first frame p50 {:.0} ms, p90 {:.0} ms ({} joins); glass-to-glass 320x180 p50 {:.0} ms, max {:.0} ms ({} samples)",
            kinds[i],
            pct(&mut joined[i].clone(), 0.5),
            pct(&mut joined[i], 0.9),
            joins,
            pct(&mut latency[i].clone(), 0.5),
            pct(&mut latency[i].clone(), 1.0),
            latency[i].len(),
        );
    }
    Ok(())
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?.to_owned();
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// Mean and lowest received video fps from `from` over the `stats` events.
fn fps_from(events: &[Value], from: &str) -> (f64, f64) {
    let v: Vec<f64> = events
        .iter()
        .filter(|v| v["type"] == "stats" && v["peer"] == from)
        .filter_map(|v| v["fps"].as_f64())
        .collect();
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    (mean, v.iter().copied().fold(f64::INFINITY, f64::min))
}

/// [`fps_from`] over what `p` printed since `mark`.
fn fps_since(p: &mut Peer, mark: usize, from: &str) -> (f64, f64) {
    let to = p.mark();
    fps_from(&p.seen()[mark..to], from)
}

/// A flooded participant past this is killed: the machine is shared.
const FLOOD_RSS_CAP_MIB: f64 = 4096.0;

/// Phase 6: a candidate flood (issue 18, item 1).
fn bench_flood(n: usize, peer_bin: Option<&Path>, codec: &str) -> anyhow::Result<()> {
    use signal::rtdb::{ClientConfig, RtdbClient};
    let db = Db::start_with(&sibling("huddle-db")?, &["--secret", harness::TEST_SECRET])?;
    let bin = match peer_bin {
        Some(p) => p.to_owned(),
        None => sibling("huddle-peer")?,
    };
    let args = [
        "--size", "320x180", "--fps", "30", "--audio", "none", "--codec", codec,
    ];
    let start = |name: &str, extra: &[&str]| -> anyhow::Result<Peer> {
        let mut cmd = huddle_peer(&bin, db.url(), "flood", name);
        harness::as_test_user(&mut cmd, name);
        cmd.args(extra)
            .env("RUST_LOG", "error,signal=warn")
            .stderr(Stdio::inherit());
        Ok(Peer::start(name, &mut cmd)?.with_bound(LIMIT))
    };
    let mut a = start("a", &[&["--create"][..], &args].concat())?;
    a.wait("a joined", |v| v["type"] == "joined")?;
    let mut b = start("b", &args)?;
    let (a_id, b_id) = (a.peer_id().to_owned(), b.peer_id().to_owned());
    a.wait("b's video", |v| first_frame_ms(v).is_some())?;
    b.wait("a's video", |v| first_frame_ms(v).is_some())?;
    std::thread::sleep(Duration::from_secs(3));
    let rss_before = rss_mib(a.pid());
    let (ma, mb) = (a.mark(), b.mark());
    std::thread::sleep(Duration::from_secs(5));
    let before = (fps_since(&mut a, ma, &b_id), fps_since(&mut b, mb, &a_id));

    let rt = tokio::runtime::Runtime::new()?;
    let admin = RtdbClient::new(ClientConfig::new(db.url()).with_secret(harness::TEST_SECRET))?;
    let session = |peer: &str| -> anyhow::Result<String> {
        let rec = rt.block_on(admin.get(&format!("occupants/flood/{peer}")))?;
        Ok(rec["session"].as_str().unwrap_or_default().to_owned())
    };
    let (a_session, b_session) = (session(&a_id)?, session(&b_id)?);
    let slot = format!("ice_candidates/flood/{a_id}/{b_id}");
    let mut killed = false;
    let mut before = before;
    let mut rss_before = rss_before;
    // A flood in a's current session, then one addressed to a session a no longer has.
    for (round, (what, to)) in [
        ("a's session", a_session.as_str()),
        ("a stale session", "stalestalestale1"),
    ]
    .into_iter()
    .enumerate()
    {
        if killed {
            break;
        }
        let record = serde_json::json!({"session": b_session, "to": to,
            "candidate": {"candidate": "candidate:1 1 udp 2122260223 10.9.9.9 40000 typ host",
                          "sdpMid": "0", "sdpMLineIndex": 0}});

        // a's memory, sampled while it is flooded (and a is stopped past the cap).
        let pid = a.pid();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sampler = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut peak = 0.0f64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let now = rss_mib(pid);
                    peak = peak.max(now);
                    if now > FLOOD_RSS_CAP_MIB {
                        let _ = std::process::Command::new("kill")
                            .args(["-9", &pid.to_string()])
                            .status();
                        return (peak, true);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                (peak, false)
            })
        };
        let (ma, mb) = (a.mark(), b.mark());
        let posted = std::time::Instant::now();
        rt.block_on(async {
            let writers: Vec<_> = (0..16)
                .map(|_| {
                    let (admin, slot, record) = (admin.clone(), slot.clone(), record.clone());
                    tokio::spawn(async move {
                        for _ in 0..n / 16 {
                            if let Err(e) = admin.push(&slot, &record).await {
                                eprintln!("flood write: {e}");
                            }
                        }
                    })
                })
                .collect();
            for w in writers {
                let _ = w.await;
            }
        });
        let posted = posted.elapsed();
        let during = (fps_since(&mut a, ma, &b_id), fps_since(&mut b, mb, &a_id));
        // Until a has emptied its inbox (bounded).
        let mut left = usize::MAX;
        let drained = std::time::Instant::now();
        for _ in 0..240 {
            left = match rt.block_on(admin.get(&slot)) {
                Ok(Value::Object(m)) => m.len(),
                Ok(_) => 0,
                Err(_) => usize::MAX,
            };
            if left == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let drained = drained.elapsed();
        std::thread::sleep(Duration::from_secs(3));
        let (ma, mb) = (a.mark(), b.mark());
        std::thread::sleep(Duration::from_secs(5));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (peak, was_killed) = sampler.join().unwrap_or((f64::NAN, false));
        let rss_after = rss_mib(pid);
        let after = (fps_since(&mut a, ma, &b_id), fps_since(&mut b, mb, &a_id));
        let left = if left == usize::MAX {
            "unknown".to_owned()
        } else {
            left.to_string()
        };
        println!(
            "candidate flood, {n} pushed to a ({what}) as b in {:.1} s: a's RSS {rss_before:.1} MiB before, peak {peak:.1}{}, {rss_after:.1} after (+{:.1}); {left} left in a's inbox {:.1} s after the last push",
            posted.as_secs_f64(),
            if was_killed { " (killed at the cap)" } else { "" },
            rss_after - rss_before,
            drained.as_secs_f64(),
        );
        for (label, ((a_mean, a_min), (b_mean, b_min))) in
            [("before", before), ("during", during), ("after", after)]
        {
            if label == "before" && round > 0 {
                continue;
            }
            println!(
                "  {label}: a receives b at {a_mean:.1} fps (min {a_min:.0}), b receives a at {b_mean:.1} fps (min {b_min:.0})"
            );
        }
        killed = was_killed;
        before = after;
        rss_before = rss_after;
    }
    leave(b);
    if !killed {
        leave(a);
    }
    Ok(())
}

/// Phase 7: a's memory over forced rejoins (issue 18, item 6). A third client with the
/// database's secret deletes a's occupant record; a sees itself evicted, rejoins with a new
/// session and rebuilds its connection; repeated `n` times.
fn bench_rejoins(n: usize, peer_bin: Option<&Path>, codec: &str) -> anyhow::Result<()> {
    use signal::rtdb::{ClientConfig, RtdbClient};
    let db = Db::start_with(&sibling("huddle-db")?, &["--secret", harness::TEST_SECRET])?;
    let bin = match peer_bin {
        Some(p) => p.to_owned(),
        None => sibling("huddle-peer")?,
    };
    let args = [
        "--size", "320x180", "--fps", "30", "--audio", "none", "--codec", codec,
    ];
    let start = |name: &str, extra: &[&str]| -> anyhow::Result<Peer> {
        let mut cmd = huddle_peer(&bin, db.url(), "rejoin", name);
        harness::as_test_user(&mut cmd, name);
        cmd.args(extra)
            .env("RUST_LOG", "error")
            .stderr(Stdio::inherit());
        Ok(Peer::start(name, &mut cmd)?.with_bound(LIMIT))
    };
    let mut a = start("a", &[&["--create"][..], &args].concat())?;
    a.wait("a joined", |v| v["type"] == "joined")?;
    let mut b = start("b", &args)?;
    let (a_id, b_id) = (a.peer_id().to_owned(), b.peer_id().to_owned());
    a.wait("b's video", |v| first_frame_ms(v).is_some())?;
    b.wait("a's video", |v| first_frame_ms(v).is_some())?;
    std::thread::sleep(Duration::from_secs(3));
    let rt = tokio::runtime::Runtime::new()?;
    let admin = RtdbClient::new(ClientConfig::new(db.url()).with_secret(harness::TEST_SECRET))?;
    let mut rss = vec![rss_mib(a.pid())];
    for i in 0..n {
        let mark = a.mark();
        let bmark = b.mark();
        rt.block_on(admin.delete(&format!("occupants/rejoin/{a_id}")))?;
        a.wait_from(mark, "a rejoined", |v| v["type"] == "joined")?;
        let id = b_id.clone();
        a.wait_from(mark, &format!("b's video after rejoin {i}"), |v| {
            first_frame_ms(v).is_some() && v["peer"] == id.as_str()
        })?;
        let id = a_id.clone();
        b.wait_from(bmark, &format!("a's video after rejoin {i}"), |v| {
            first_frame_ms(v).is_some() && v["peer"] == id.as_str()
        })?;
        std::thread::sleep(Duration::from_secs(2));
        rss.push(rss_mib(a.pid()));
    }
    let all = rss
        .iter()
        .map(|r| format!("{r:.1}"))
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "forced rejoins, {n}: a's RSS {:.1} MiB before, {:.1} after (+{:.1}); after each: {all}",
        rss[0],
        rss[rss.len() - 1],
        rss[rss.len() - 1] - rss[0]
    );
    leave(b);
    leave(a);
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
    if run("kill") {
        bench_kill(args.kills)?;
    }
    if args.only.as_deref() == Some("flood") {
        bench_flood(args.flood, args.flood_peer.as_deref(), codec)?;
    }
    if args.only.as_deref() == Some("nat") {
        bench_nat(args.joins, args.seconds, codec)?;
    }
    if args.only.as_deref() == Some("rejoins") {
        bench_rejoins(args.rejoins, args.flood_peer.as_deref(), codec)?;
    }
    Ok(())
}
