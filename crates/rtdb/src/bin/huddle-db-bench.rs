//! `huddle-db-bench`: measures huddle-db on this machine and prints the figures.
//!
//! It starts the sibling `huddle-db` binary as a child process (so its memory is measured alone),
//! on loopback with a fresh data folder, and drives it over real sockets:
//! 1. durable writes/s with N concurrent writers (each write acknowledged only after fsync);
//! 2. streaming fan-out latency (write sent -> event parsed at each of N listeners), p50/p99,
//!    over SSE and over the realtime protocol (`/.ws`, one WebSocket per listener), one after
//!    the other in the same run;
//! 3. resident memory of the server holding N idle SSE streams, then N idle realtime
//!    connections (each with one listen);
//! 4. large legal writes: a 12.5 MB PUT of 600,000 small objects and a 15 MB array of zeros,
//!    with the server's peak and settled RSS, the slowest small GET answered meanwhile, and
//!    the RSS after the data is deleted;
//! 5. 20,000 slow connections (half-sent requests from 100 loopback addresses, held by two child
//!    processes of this binary, each re-opened a second after the server closes it:
//!    `--slow-retry-ms`) against a server with its default bounds, while a new client GETs a
//!    small node every 50 ms: how long each GET took and how many failed.
//!
//! Every phase is bounded in time or count and stops by itself.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use futures_util::StreamExt;
use serde_json::json;

/// Benchmarks huddle-db on loopback.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Concurrent writers in the write-throughput phase.
    #[arg(long, default_value_t = 64)]
    writers: usize,
    /// Seconds the write phase runs.
    #[arg(long, default_value_t = 5)]
    write_secs: u64,
    /// Listeners in the fan-out phase.
    #[arg(long, default_value_t = 1000)]
    listeners: usize,
    /// Writes observed in the fan-out phase.
    #[arg(long, default_value_t = 100)]
    fanout_writes: usize,
    /// Idle streams in the memory phase.
    #[arg(long, default_value_t = 10_000)]
    idle_streams: usize,
    /// Query streams in the queries phase.
    #[arg(long, default_value_t = 300)]
    query_streams: usize,
    /// Seconds the slow phase measures GETs for.
    #[arg(long, default_value_t = 10)]
    slow_secs: u64,
    /// How long the slow phase's attackers wait to re-open a connection the server closed.
    #[arg(long, default_value_t = 1000)]
    slow_retry_ms: u64,
    /// Run only this phase: writes, fanout, idle, bigwrite, queries, stuck or slow.
    #[arg(long)]
    only: Option<String>,
    /// (Internal: the slow phase's attacker.) Hold this many slow connections to this server.
    #[arg(long, hide = true, num_args = 2, value_names = ["ADDR", "COUNT"])]
    hold_slow: Option<Vec<String>>,
    /// (Internal.) The attacker's first source address is 127.<this>.0.1.
    #[arg(long, hide = true, default_value_t = 1)]
    hold_net: u8,
}

struct ServerProcess {
    child: Child,
    url: String,
    _data: tempfile::TempDir,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    fn start() -> anyhow::Result<Self> {
        // Every client of the bench is on 127.0.0.1.
        Self::start_with(&[
            "--max-connections-per-address",
            "100000",
            "--max-connections",
            "100000",
        ])
    }

    fn start_with(args: &[&str]) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?.with_file_name("huddle-db");
        let data = tempfile::tempdir()?;
        let mut child = Command::new(&exe)
            .args(["--listen", "127.0.0.1:0", "--data"])
            .arg(data.path())
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .context("unexpected first line")?
            .to_owned();
        Ok(ServerProcess {
            child,
            url,
            _data: data,
        })
    }

    /// User + system CPU seconds the server has used so far.
    fn cpu_secs(&self) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).context("bad stat")?;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = f
            .get(11)
            .zip(f.get(12))
            .and_then(|(u, s)| Some(u.parse::<f64>().ok()? + s.parse::<f64>().ok()?))
            .context("bad stat")?;
        Ok(ticks / 100.0)
    }

    fn rss_mib(&self) -> anyhow::Result<f64> {
        self.status_mib("VmRSS:")
    }

    /// The highest RSS the server has had since it started.
    fn peak_rss_mib(&self) -> anyhow::Result<f64> {
        self.status_mib("VmHWM:")
    }

    fn status_mib(&self, field: &str) -> anyhow::Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no {field}"))?;
        Ok(kib / 1024.0)
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn bench_writes(url: &str, writers: usize, secs: u64) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(writers)
        .build()?;
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (client, done, url) = (client.clone(), done.clone(), url.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                let resp = client
                    .put(format!("{url}/bench/w{w}/{}.json", n % 100))
                    .body(json!({"n": n, "who": w}).to_string())
                    .send()
                    .await?;
                if !resp.status().is_success() {
                    bail!("write failed: {}", resp.status());
                }
                n += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let total = done.load(Ordering::Relaxed);
    println!(
        "durable writes: {total} in {elapsed:.2} s with {writers} concurrent writers = {:.0} writes/s",
        total as f64 / elapsed
    );
    Ok(())
}

/// Reads SSE events off a response, calling `on_put` with each `put`/`patch` data line.
async fn read_events(resp: reqwest::Response, mut on_event: impl FnMut(&str)) {
    let mut stream = resp.bytes_stream();
    let mut buf = Vec::new();
    while let Some(Ok(chunk)) = stream.next().await {
        buf.extend_from_slice(&chunk);
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = buf.drain(..end + 2).collect();
            if let Ok(text) = std::str::from_utf8(&event) {
                if let Some(data) = text.lines().find_map(|l| l.strip_prefix("data: ")) {
                    on_event(data);
                }
            }
        }
    }
}

async fn bench_fanout(
    server: &ServerProcess,
    listeners: usize,
    writes: usize,
) -> anyhow::Result<()> {
    let url = server.url.as_str();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let origin = Instant::now();
    let samples = Arc::new(std::sync::Mutex::new(Vec::with_capacity(
        listeners * writes,
    )));
    let ready = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..listeners {
        let resp = client
            .get(format!("{url}/fan.json"))
            .header("accept", "text/event-stream")
            .send()
            .await?;
        let (samples, ready) = (samples.clone(), ready.clone());
        tasks.push(tokio::spawn(async move {
            let mut seen = 0usize;
            read_events(resp, |data| {
                seen += 1;
                if seen == 1 {
                    ready.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                // data: {"data":{"sent_us":N},"path":"/"}; a string scan keeps the load
                // generator's own CPU (it shares the 2 cores with the server) out of the figure.
                let now = origin.elapsed().as_micros() as u64;
                let sent = data
                    .split("\"sent_us\":")
                    .nth(1)
                    .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|n| n.parse::<u64>().ok());
                if let (Some(sent), Ok(mut s)) = (sent, samples.lock()) {
                    s.push((now.saturating_sub(sent)) as f64 / 1000.0);
                }
            })
            .await;
        }));
    }
    while (ready.load(Ordering::Relaxed) as usize) < listeners {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let writer = reqwest::Client::new();
    let cpu_before = server.cpu_secs()?;
    for _ in 0..writes {
        let sent = origin.elapsed().as_micros() as u64;
        writer
            .put(format!("{url}/fan.json"))
            .body(json!({"sent_us": sent}).to_string())
            .send()
            .await?;
        // Let each event drain before the next, so we measure latency, not queueing.
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let server_cpu = server.cpu_secs()? - cpu_before;
    for t in &tasks {
        t.abort();
    }
    let mut s = samples
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    println!(
        "fan-out: {listeners} listeners x {writes} writes = {} events (expected {}); write->event latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        s.len(),
        listeners * writes,
        percentile(&s, 0.5),
        percentile(&s, 0.99),
        s.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "fan-out: server CPU {:.2} s for {} events = {:.1} us per delivered event",
        server_cpu,
        s.len(),
        server_cpu * 1e6 / s.len().max(1) as f64
    );
    Ok(())
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A realtime connection listening at `path`, its hello and first push read.
async fn ws_listen(url: &str, path: &str) -> anyhow::Result<Ws> {
    use futures_util::SinkExt;
    let ws_url = format!("{}/.ws?v=5&ns=bench", url.replacen("http", "ws", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await?;
    let listen = json!({"t": "d", "d": {"r": 1, "a": "q", "b": {"p": path, "h": ""}}});
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        listen.to_string(),
    ))
    .await?;
    // Hello, the initial push, the listen's answer.
    for _ in 0..3 {
        ws.next().await.context("connection closed early")??;
    }
    Ok(ws)
}

async fn bench_fanout_realtime(
    server: &ServerProcess,
    listeners: usize,
    writes: usize,
) -> anyhow::Result<()> {
    let url = server.url.as_str();
    let origin = Instant::now();
    let samples = Arc::new(std::sync::Mutex::new(Vec::with_capacity(
        listeners * writes,
    )));
    let mut tasks = Vec::new();
    for _ in 0..listeners {
        let mut ws = ws_listen(url, "/fan").await?;
        let samples = samples.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(msg)) = ws.next().await {
                let tokio_tungstenite::tungstenite::Message::Text(text) = msg else {
                    continue;
                };
                let now = origin.elapsed().as_micros() as u64;
                // The same string scan as the SSE reader, for the same reason.
                let sent = text
                    .as_str()
                    .split("\"sent_us\":")
                    .nth(1)
                    .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|n| n.parse::<u64>().ok());
                if let (Some(sent), Ok(mut s)) = (sent, samples.lock()) {
                    s.push((now.saturating_sub(sent)) as f64 / 1000.0);
                }
            }
        }));
    }
    let writer = reqwest::Client::new();
    let cpu_before = server.cpu_secs()?;
    for _ in 0..writes {
        let sent = origin.elapsed().as_micros() as u64;
        writer
            .put(format!("{url}/fan.json"))
            .body(json!({"sent_us": sent}).to_string())
            .send()
            .await?;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let server_cpu = server.cpu_secs()? - cpu_before;
    for t in &tasks {
        t.abort();
    }
    let mut s = samples
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    println!(
        "fan-out (realtime): {listeners} listeners x {writes} writes = {} events (expected {}); write->event latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; server CPU {:.1} us per delivered event",
        s.len(),
        listeners * writes,
        percentile(&s, 0.5),
        percentile(&s, 0.99),
        s.last().copied().unwrap_or(f64::NAN),
        server_cpu * 1e6 / s.len().max(1) as f64
    );
    Ok(())
}

async fn bench_idle_realtime(server: &ServerProcess, connections: usize) -> anyhow::Result<()> {
    let before = server.rss_mib()?;
    let mut held = Vec::with_capacity(connections);
    for i in 0..connections {
        let ws = ws_listen(&server.url, &format!("/idle/{}", i % 100))
            .await
            .with_context(|| format!("opening realtime connection {i}"))?;
        held.push(ws);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = server.rss_mib()?;
    println!(
        "idle realtime connections: {connections} open, one listen each; server RSS {before:.1} MiB before, {after:.1} MiB with them ({:.1} KiB per connection)",
        (after - before) * 1024.0 / connections as f64
    );
    drop(held);
    Ok(())
}

async fn bench_idle(server: &ServerProcess, streams: usize) -> anyhow::Result<()> {
    let before = server.rss_mib()?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let mut held = Vec::with_capacity(streams);
    for i in 0..streams {
        let resp = client
            .get(format!("{}/idle/{}.json", server.url, i % 100))
            .header("accept", "text/event-stream")
            .send()
            .await
            .with_context(|| format!("opening stream {i}"))?;
        held.push(resp);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = server.rss_mib()?;
    let answer = client
        .get(format!("{}/idle.json?shallow=true", server.url))
        .send()
        .await?
        .status();
    println!(
        "idle streams: {streams} open; server RSS {before:.1} MiB before, {after:.1} MiB with them ({:.1} KiB per stream); REST still answers: {answer}",
        (after - before) * 1024.0 / streams as f64
    );
    drop(held);
    Ok(())
}

/// A client that GETs `/small` every 20 ms until stopped, timing each answer: how long other
/// work kept a reader waiting.
struct SmallReads {
    done: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<Duration>,
}

impl SmallReads {
    fn start(client: &reqwest::Client, url: &str) -> SmallReads {
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (client, url, stop) = (client.clone(), url.to_owned(), done.clone());
        let task = tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                if client.get(format!("{url}/small.json")).send().await.is_ok() {
                    slowest = slowest.max(t.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            slowest
        });
        SmallReads { done, task }
    }

    /// Stops the reads; the slowest answer seen.
    async fn slowest(self) -> anyhow::Result<Duration> {
        self.done.store(true, Ordering::Relaxed);
        Ok(self.task.await?)
    }
}

/// `streams` SSE streams whose clients never read (a 4 KiB receive buffer), each at its own
/// `/stuck/<i>`, then `writes` PUTs of `/stuck` giving each of them 256 KiB (each stream's event
/// is its own frame, so nothing is shared between their backlogs): prints the server's RSS and
/// a GET's time.
async fn bench_stuck_streams(
    server: &ServerProcess,
    streams: usize,
    writes: usize,
) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    let addr: std::net::SocketAddr = server
        .url
        .strip_prefix("http://")
        .context("not an http URL")?
        .parse()?;
    let before = server.rss_mib()?;
    let mut held = Vec::with_capacity(streams);
    for _ in 0..streams {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_recv_buffer_size(4096)?;
        let mut s = socket.connect(addr).await?;
        let req = format!(
            "GET /stuck/{}.json HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n",
            held.len()
        );
        s.write_all(req.as_bytes()).await?;
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let client = reqwest::Client::new();
    let chunk = "x".repeat(256 << 10);
    for i in 0..writes {
        let body: serde_json::Map<String, serde_json::Value> = (0..streams)
            .map(|s| (s.to_string(), json!(format!("{i}{chunk}"))))
            .collect();
        client
            .put(format!("{}/stuck.json?print=silent", server.url))
            .body(serde_json::Value::Object(body).to_string())
            .send()
            .await?
            .error_for_status()?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = server.rss_mib()?;
    let t = Instant::now();
    client
        .get(format!("{}/stuck.json?shallow=true", server.url))
        .send()
        .await?
        .error_for_status()?;
    let get_ms = t.elapsed().as_secs_f64() * 1e3;
    println!(
        "stuck streams: {streams} clients that never read, {writes} writes of 256 KiB to each: server RSS {before:.1} MiB before, {after:.1} MiB after; a GET then took {get_ms:.1} ms"
    );
    drop(held);
    Ok(())
}

/// `streams` SSE streams with `query` (`{n}` in it: 100 + the stream's index) on a 1 MB node,
/// each drained by its own task; then 20 small writes into the node, one after another, while a
/// reader GETs a small node every 20 ms. Prints each write's time (until its answer) and the
/// slowest GET meanwhile.
async fn bench_query_streams(
    server: &ServerProcess,
    query: &str,
    streams: usize,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let node: serde_json::Map<String, serde_json::Value> = (0..10_000)
        .map(|i| (format!("k{i:05}"), json!("x".repeat(90))))
        .collect();
    let body = serde_json::Value::Object(node).to_string();
    let mib = body.len() as f64 / (1024.0 * 1024.0);
    client
        .put(format!("{}/q.json?print=silent", server.url))
        .body(body)
        .send()
        .await?
        .error_for_status()?;
    client
        .put(format!("{}/small.json", server.url))
        .body("1")
        .send()
        .await?
        .error_for_status()?;
    let received = Arc::new(AtomicU64::new(0));
    let mut drains = Vec::with_capacity(streams);
    let encoded: String = form_urlencoded::byte_serialize(query.as_bytes()).collect();
    let encoded = encoded.replace("%3D", "=").replace("%26", "&");
    for i in 0..streams {
        // `{n}` in the query: each stream its own (100 + i), so no two share a view.
        let encoded = encoded.replace("%7Bn%7D", &(100 + i).to_string());
        let resp = client
            .get(format!("{}/q.json?{encoded}", server.url))
            .header("accept", "text/event-stream")
            .send()
            .await
            .with_context(|| format!("opening query stream {i}"))?
            .error_for_status()?;
        let received = received.clone();
        drains.push(tokio::spawn(async move {
            let mut body = resp.bytes_stream();
            while let Some(Ok(chunk)) = body.next().await {
                received.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let initial = received.load(Ordering::Relaxed);
    let reader = SmallReads::start(&client, &server.url);
    let mut took = Vec::new();
    for i in 0..20 {
        let t = Instant::now();
        client
            .put(format!("{}/q/k{:05}.json?print=silent", server.url, i * 7))
            .body(format!("\"y{i}\""))
            .send()
            .await?
            .error_for_status()?;
        took.push(t.elapsed().as_secs_f64() * 1e3);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let slowest_get = reader.slowest().await?;
    let after_writes = received.load(Ordering::Relaxed) - initial;
    for d in drains {
        d.abort();
    }
    took.sort_by(f64::total_cmp);
    println!(
        "query streams: {streams} x `{query}` on a {mib:.1} MiB node; 20 small writes: p50 {:.1} ms, max {:.1} ms; slowest small GET meanwhile {:.0} ms; {:.0} bytes sent per stream per write",
        percentile(&took, 0.5),
        took.last().copied().unwrap_or(f64::NAN),
        slowest_get.as_secs_f64() * 1e3,
        after_writes as f64 / streams as f64 / 20.0,
    );
    Ok(())
}

/// One large PUT at `/big` while a reader GETs a small node every 20 ms; prints the write's
/// time, the server's peak RSS, the slowest GET meanwhile, then a shallow GET's time and the
/// RSS once the data is deleted.
async fn bench_big_write(server: &ServerProcess, what: &str, body: String) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    client
        .put(format!("{}/small.json", server.url))
        .body("1")
        .send()
        .await?
        .error_for_status()?;
    let before = server.rss_mib()?;
    let mib = body.len() as f64 / (1024.0 * 1024.0);
    let reader = SmallReads::start(&client, &server.url);
    let t = Instant::now();
    client
        .put(format!("{}/big.json?print=silent", server.url))
        .body(body)
        .send()
        .await?
        .error_for_status()?;
    let took = t.elapsed();
    let slowest_get = reader.slowest().await?;
    let peak = server.peak_rss_mib()?;
    let settled = server.rss_mib()?;
    let t = Instant::now();
    client
        .get(format!("{}/big.json?shallow=true", server.url))
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    let shallow = t.elapsed();
    client
        .delete(format!("{}/big.json", server.url))
        .send()
        .await?
        .error_for_status()?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let deleted = server.rss_mib()?;
    println!(
        "large write ({what}, {mib:.1} MiB): PUT {:.2} s; server RSS {before:.1} MiB before, peak {peak:.1} MiB ({:.1}x the body), {settled:.1} MiB holding it, {deleted:.1} MiB after DELETE; slowest small GET during the write {:.0} ms; shallow GET {:.0} ms",
        took.as_secs_f64(),
        (peak - before) / mib,
        slowest_get.as_secs_f64() * 1e3,
        shallow.as_secs_f64() * 1e3,
    );
    Ok(())
}

/// 600,000 small objects in 12.5 MB, as the issue measured.
fn many_small_objects() -> String {
    let mut s = String::with_capacity(13 << 20);
    s.push('{');
    for i in 0..600_000 {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!("\"k{i:06}\":{{\"v\":{}}}", i % 10));
    }
    s.push('}');
    s
}

/// A 15 MB array of zeros.
fn array_of_zeros() -> String {
    let n = 15 * 1024 * 1024 / 2;
    let mut s = String::with_capacity(n * 2 + 2);
    s.push('[');
    for i in 0..n {
        s.push_str(if i == 0 { "0" } else { ",0" });
    }
    s.push(']');
    s
}

/// Connections per source address in the slow phase (under the server's 256 per address).
const SLOW_PER_ADDRESS: usize = 200;
/// How long an attacker of the slow phase keeps going, at most.
const SLOW_ATTACK: Duration = Duration::from_secs(60);

/// The slow phase's attacker (a child process, so that the 20,000 sockets fit under two
/// processes' open-file limits): `count` connections from 127.`net`.x.y, each sending the start
/// of a request and never its end, re-opened `retry` after the server closes it (slowloris
/// waits 15 s), until its
/// parent closes stdin or [`SLOW_ATTACK`] has passed. Prints `held` once all are open.
async fn hold_slow(addr: &str, count: usize, net: u8, retry: Duration) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let to: std::net::SocketAddr = addr.parse()?;
    let deadline = tokio::time::Instant::now() + SLOW_ATTACK;
    let closed = Arc::new(AtomicU64::new(0));
    let (opened_tx, mut opened_rx) = tokio::sync::mpsc::channel::<()>(count.max(1));
    for i in 0..count {
        let host = i / SLOW_PER_ADDRESS;
        let source = std::net::Ipv4Addr::new(127, net, (host / 250) as u8, (host % 250 + 1) as u8);
        let (closed, opened) = (closed.clone(), opened_tx.clone());
        tokio::spawn(async move {
            let mut first = true;
            while tokio::time::Instant::now() < deadline {
                let held = async {
                    let socket = tokio::net::TcpSocket::new_v4()?;
                    socket.bind((source, 0).into())?;
                    let mut s = socket.connect(to).await?;
                    s.write_all(b"GET /slow.json HTTP/1.1\r\nHost: db\r\n")
                        .await?;
                    if first {
                        first = false;
                        let _ = opened.send(()).await;
                    }
                    let mut buf = [0u8; 512];
                    while s.read(&mut buf).await? > 0 {}
                    anyhow::Ok(())
                };
                let _ = tokio::time::timeout_at(deadline, held).await;
                closed.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(retry).await;
            }
        });
    }
    drop(opened_tx);
    let mut opened = 0;
    while opened < count && opened_rx.recv().await.is_some() {
        opened += 1;
    }
    println!("held {opened}");
    // The parent closes stdin (or dies) to stop the attack.
    let stop = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    });
    let _ = tokio::time::timeout_at(deadline, stop).await;
    println!("closed by the server {}", closed.load(Ordering::Relaxed));
    Ok(())
}

/// An attacker process of the slow phase; killed on drop.
struct Attacker(Child);

impl Drop for Attacker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn bench_slow_connections(secs: u64, retry_ms: u64) -> anyhow::Result<()> {
    // The server's own bounds: 256 per address, 16,384 in all, 30 s for a request's headers.
    let server = ServerProcess::start_with(&[])?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()?;
    client
        .put(format!("{}/small.json", server.url))
        .body("1")
        .send()
        .await?
        .error_for_status()?;
    let addr = server.url.trim_start_matches("http://").to_owned();
    let exe = std::env::current_exe()?;
    let mut attackers = Vec::new();
    for net in [1u8, 2] {
        let child = Command::new(&exe)
            .args([
                "--hold-slow",
                &addr,
                "10000",
                "--hold-net",
                &net.to_string(),
            ])
            .args(["--slow-retry-ms", &retry_ms.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        attackers.push(Attacker(child));
    }
    let t = Instant::now();
    let mut outs = Vec::new();
    for a in &mut attackers {
        let mut out = BufReader::new(a.0.stdout.take().context("no stdout")?);
        let mut line = String::new();
        out.read_line(&mut line)?;
        println!("slow connections: attacker {}", line.trim());
        outs.push(out);
    }
    println!(
        "slow connections: 20,000 opened in {:.1} s; server RSS {:.1} MiB",
        t.elapsed().as_secs_f64(),
        server.rss_mib()?
    );
    let mut took = Vec::new();
    let mut failed = Vec::new();
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        let t = Instant::now();
        match client
            .get(format!("{}/small.json", server.url))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => took.push(t.elapsed().as_secs_f64() * 1e3),
            Ok(r) => failed.push(r.status().to_string()),
            Err(e) => failed.push(format!("{e}")),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rss = server.rss_mib()?;
    let mut closed = Vec::new();
    for (a, mut out) in attackers.iter_mut().zip(outs) {
        drop(a.0.stdin.take());
        let mut line = String::new();
        out.read_line(&mut line)?;
        closed.push(line.trim().to_owned());
    }
    took.sort_by(f64::total_cmp);
    failed.sort();
    failed.dedup();
    println!(
        "slow connections: a new client's GET every 50 ms for {secs} s: {} answered, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {} failed {:?}; server RSS {rss:.1} MiB; attackers: {}",
        took.len(),
        percentile(&took, 0.5),
        percentile(&took, 0.99),
        took.last().copied().unwrap_or(f64::NAN),
        failed.len(),
        failed.iter().take(3).collect::<Vec<_>>(),
        closed.join(", "),
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    if let Some(hold) = &args.hold_slow {
        let (addr, count) = (&hold[0], hold[1].parse()?);
        let retry = Duration::from_millis(args.slow_retry_ms);
        return hold_slow(addr, count, args.hold_net, retry).await;
    }
    let run = |phase: &str| args.only.as_deref().is_none_or(|o| o == phase);
    println!(
        "huddle-db-bench on {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if run("writes") {
        let server = ServerProcess::start()?;
        bench_writes(&server.url, args.writers, args.write_secs).await?;
    }
    if run("fanout") {
        let server = ServerProcess::start()?;
        bench_fanout(&server, args.listeners, args.fanout_writes).await?;
        drop(server);
        let server = ServerProcess::start()?;
        bench_fanout_realtime(&server, args.listeners, args.fanout_writes).await?;
    }
    if run("idle") {
        let server = ServerProcess::start()?;
        bench_idle(&server, args.idle_streams).await?;
        drop(server);
        let server = ServerProcess::start()?;
        bench_idle_realtime(&server, args.idle_streams).await?;
    }
    if run("queries") {
        for query in [
            r#"orderBy="$key""#,
            r#"orderBy="$key"&limitToLast=100"#,
            r#"orderBy="$key"&limitToFirst={n}"#,
        ] {
            let server = ServerProcess::start()?;
            bench_query_streams(&server, query, args.query_streams).await?;
        }
    }
    if run("stuck") {
        let server = ServerProcess::start()?;
        bench_stuck_streams(&server, 50, 64).await?;
    }
    if run("slow") {
        bench_slow_connections(args.slow_secs, args.slow_retry_ms).await?;
    }
    if run("bigwrite") {
        // A fresh server each, so each peak is its own.
        let server = ServerProcess::start()?;
        bench_big_write(&server, "600,000 small objects", many_small_objects()).await?;
        drop(server);
        let server = ServerProcess::start()?;
        bench_big_write(&server, "an array of zeros", array_of_zeros()).await?;
    }
    Ok(())
}
