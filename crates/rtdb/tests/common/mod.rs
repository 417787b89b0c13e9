//! Helpers shared by the integration tests: a `huddle-db` child process, an in-process server,
//! an HTTP client and a Server-Sent-Events reader that fails the test instead of hanging.
//!
//! Every server listens on 127.0.0.1 with port 0 and its own data folder.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;

/// How long a server may take to print its `listening on` line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A `huddle-db` binary running as a child process. Dropping it kills the process.
pub struct TestServer {
    /// `http://127.0.0.1:PORT` (or `https://localhost:PORT` under TLS), as the server printed it.
    pub url: String,
    pub child: Child,
    /// The data folder it was started with.
    pub data: PathBuf,
    /// Where the child's stderr (its log) goes.
    pub stderr_log: tempfile::NamedTempFile,
    /// Lines the server printed on stdout after `listening on ...`.
    pub stdout_rest: Arc<Mutex<Vec<String>>>,
}

impl TestServer {
    /// Starts `huddle-db --listen 127.0.0.1:0 --data DATA_DIR EXTRA_ARGS...` and waits for its
    /// `listening on URL` line.
    pub fn spawn(data_dir: &Path, extra_args: &[&str]) -> TestServer {
        Self::spawn_at("127.0.0.1:0", data_dir, extra_args)
    }

    /// The same on a chosen address (to restart a server where its clients look for it).
    pub fn spawn_at(listen: &str, data_dir: &Path, extra_args: &[&str]) -> TestServer {
        let stderr_log = tempfile::Builder::new()
            .prefix("huddle-db-stderr-")
            .suffix(".log")
            .tempfile()
            .expect("stderr log file");
        let stderr = stderr_log.reopen().expect("reopen stderr log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_huddle-db"))
            .arg("--listen")
            .arg(listen)
            .arg("--data")
            .arg(data_dir)
            .args(extra_args)
            .env_remove("HUDDLE_DB_SECRET")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("start huddle-db");
        let stdout = child.stdout.take().expect("piped stdout");
        let stdout_rest = Arc::new(Mutex::new(Vec::new()));
        let (first_tx, first_rx) = std::sync::mpsc::channel::<Option<String>>();
        let rest = stdout_rest.clone();
        // Keep draining stdout for the child's whole life, so it never writes into a closed pipe.
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok);
            let _ = first_tx.send(first);
            for line in lines.map_while(Result::ok) {
                rest.lock().unwrap().push(line);
            }
        });
        let first = match first_rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(Some(line)) => line,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(stderr_log.path()).unwrap_or_default();
                panic!("huddle-db did not print its address ({other:?}); stderr:\n{log}");
            }
        };
        let url = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first stdout line: {first:?}"))
            .trim()
            .to_owned();
        assert!(
            url.starts_with("http://") || url.starts_with("https://"),
            "bad url {url:?}"
        );
        TestServer {
            url,
            child,
            data: data_dir.to_path_buf(),
            stderr_log,
            stdout_rest,
        }
    }

    /// `url` + `path` (e.g. `"/a/b.json"`).
    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// Kills the process with SIGKILL (no shutdown of any kind) and reaps it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The server's log so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr_log.path()).unwrap_or_default()
    }

    /// Stdout lines printed after the `listening on` line, waiting up to `timeout` for at
    /// least `n` of them.
    pub fn stdout_lines(&self, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let lines = self.stdout_rest.lock().unwrap().clone();
            if lines.len() >= n || std::time::Instant::now() >= deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server config on 127.0.0.1:0 with `data_dir`, otherwise defaults.
pub fn config(data_dir: &Path) -> rtdb::ServerConfig {
    rtdb::ServerConfig::new("127.0.0.1:0".parse().unwrap(), data_dir.to_path_buf())
}

/// Starts a server inside this process.
pub async fn start_in_process(config: rtdb::ServerConfig) -> rtdb::Server {
    assert!(
        config.listen.ip().is_loopback(),
        "tests listen on loopback only"
    );
    rtdb::Server::start(config).await.expect("server starts")
}

/// A fresh data folder and an in-process server with default settings on it. Keep the
/// `TempDir` alive as long as the server.
pub async fn start_default() -> (tempfile::TempDir, rtdb::Server) {
    let dir = tempfile::tempdir().unwrap();
    let server = start_in_process(config(dir.path())).await;
    (dir, server)
}

/// An HTTP client with a request timeout, so a broken server fails a test instead of hanging it.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// One Server-Sent Event: its name and its data (JSON; a non-JSON payload becomes a string).
pub type Event = (String, Value);

/// A streaming (`Accept: text/event-stream`) response being read event by event.
pub struct SseStream {
    /// Status of the response.
    pub status: reqwest::StatusCode,
    /// Headers of the response.
    pub headers: reqwest::header::HeaderMap,
    body: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: Vec<u8>,
    /// How much of `buf` is known to hold no event terminator (so big events parse in linear time).
    scanned: usize,
}

impl SseStream {
    /// Opens a stream at `url` with a fresh client; panics unless the answer is 200
    /// `text/event-stream`.
    pub async fn open(url: &str) -> SseStream {
        let s = Self::open_with(&stream_client(), url).await;
        assert_eq!(
            s.status,
            reqwest::StatusCode::OK,
            "stream {url} answered {}",
            s.status
        );
        let ct = s
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(
            ct.starts_with("text/event-stream"),
            "stream {url} has content-type {ct:?}"
        );
        s
    }

    /// Opens a stream with `client`, whatever the answer.
    pub async fn open_with(client: &reqwest::Client, url: &str) -> SseStream {
        let resp = tokio::time::timeout(
            Duration::from_secs(10),
            client.get(url).header("accept", "text/event-stream").send(),
        )
        .await
        .unwrap_or_else(|_| panic!("stream {url}: no response headers within 10 s"))
        .unwrap_or_else(|e| panic!("stream {url}: {e}"));
        let status = resp.status();
        let headers = resp.headers().clone();
        SseStream {
            status,
            headers,
            body: resp.bytes_stream().boxed(),
            buf: Vec::new(),
            scanned: 0,
        }
    }

    /// The next event, or `None` when none arrives within `timeout` or the stream ends.
    pub async fn try_next_event(&mut self, timeout: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(ev) = self.take_buffered() {
                return Some(ev);
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => return None,
                Ok(None) => return None,
                Ok(Some(Err(_))) => return None,
                Ok(Some(Ok(chunk))) => self.buf.extend_from_slice(chunk.as_ref()),
            }
        }
    }

    /// The next event; fails the test when none arrives within `timeout`.
    pub async fn next_event(&mut self, timeout: Duration) -> Event {
        match self.try_next_event(timeout).await {
            Some(ev) => ev,
            None => panic!(
                "no event within {timeout:?} (buffered: {:?})",
                String::from_utf8_lossy(&self.buf)
            ),
        }
    }

    /// The next event that is not a `keep-alive`.
    pub async fn next_data_event(&mut self, timeout: Duration) -> Event {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let ev = self.next_event(left).await;
            if ev.0 != "keep-alive" {
                return ev;
            }
        }
    }

    /// Waits until the server closes the stream (`true`) or `timeout` passes (`false`);
    /// events read meanwhile are discarded.
    pub async fn wait_closed(&mut self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    fn take_buffered(&mut self) -> Option<Event> {
        loop {
            let from = self.scanned.saturating_sub(3);
            let Some((at, len)) = find_event_end(&self.buf[from..]) else {
                self.scanned = self.buf.len();
                return None;
            };
            let end = (from + at, len);
            self.scanned = 0;
            let raw: Vec<u8> = self.buf.drain(..end.0 + end.1).collect();
            let text = String::from_utf8_lossy(&raw[..end.0]).replace("\r\n", "\n");
            let mut name = String::from("message");
            let mut data: Vec<&str> = Vec::new();
            for line in text.split('\n') {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.strip_prefix(' ').unwrap_or(v).to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.strip_prefix(' ').unwrap_or(v));
                }
            }
            if data.is_empty() && name == "message" {
                continue; // a comment or blank block
            }
            let data = data.join("\n");
            let value = serde_json::from_str(&data).unwrap_or(Value::String(data));
            return Some((name, value));
        }
    }
}

/// Position of the blank line ending the first event: (its start, its length).
fn find_event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// A client for streams: no overall timeout (streams are long), but a connect timeout.
pub fn stream_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Builds a `put`/`patch` event as the server sends it, for comparisons.
pub fn ev(name: &str, path: &str, data: Value) -> Event {
    (
        name.to_owned(),
        serde_json::json!({ "path": path, "data": data }),
    )
}

/// A tiny REST client for one server: paths are database paths (`"/a/b"`, `"/"`), `.json` is
/// added here; the typed helpers assert 200.
pub struct Rest {
    /// The client (with a request timeout).
    pub client: reqwest::Client,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

/// Status, headers and body text of an answer.
pub struct Answer {
    pub status: reqwest::StatusCode,
    pub headers: reqwest::header::HeaderMap,
    /// Body as text.
    pub text: String,
}

impl Answer {
    /// Reads a whole response.
    pub async fn read(resp: reqwest::Response) -> Answer {
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        Answer {
            status,
            headers,
            text,
        }
    }

    /// The body as JSON; panics when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?} (status {})",
                self.text, self.status
            )
        })
    }

    /// The `error` message of a `{"error": ...}` body; panics when there is none.
    pub fn error(&self) -> String {
        match self.json().get("error") {
            Some(Value::String(s)) => s.clone(),
            _ => panic!(
                "expected {{\"error\": ...}}, got {:?} (status {})",
                self.text, self.status
            ),
        }
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

impl Rest {
    /// A client for the server at `base`.
    pub fn new(base: &str) -> Rest {
        Rest {
            client: client(),
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// `base` + `path` + `.json` (`"/"` gives `/.json`).
    pub fn url(&self, path: &str) -> String {
        let p = path.trim_end_matches('/');
        format!("{}{}.json", self.base, if p.is_empty() { "/" } else { p })
    }

    /// Sends `method` to `path` (a database path, or anything with `?query`) with an optional
    /// body and extra headers.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let (p, q) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        let mut url = self.url(p);
        if let Some(q) = q {
            url = format!("{url}?{q}");
        }
        self.send_url(method, &url, body.map(|b| b.as_bytes().to_vec()), headers)
            .await
    }

    /// Sends `method` to a full URL.
    pub async fn send_url(
        &self,
        method: &str,
        url: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.client.request(method, url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("request to {url}: {e}"));
        Answer::read(resp).await
    }

    async fn ok(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let text = body.map(Value::to_string);
        let a = self.send(method, path, text.as_deref(), &[]).await;
        assert_eq!(
            a.status,
            reqwest::StatusCode::OK,
            "{method} {path}: {}",
            a.text
        );
        a.json()
    }

    /// GET, asserting 200.
    pub async fn get(&self, path: &str) -> Value {
        self.ok("GET", path, None).await
    }

    /// PUT, asserting 200; the answer body.
    pub async fn put(&self, path: &str, value: &Value) -> Value {
        self.ok("PUT", path, Some(value)).await
    }

    /// PATCH, asserting 200; the answer body.
    pub async fn patch(&self, path: &str, value: &Value) -> Value {
        self.ok("PATCH", path, Some(value)).await
    }

    /// POST, asserting 200; the new key.
    pub async fn post(&self, path: &str, value: &Value) -> String {
        let v = self.ok("POST", path, Some(value)).await;
        v["name"]
            .as_str()
            .unwrap_or_else(|| panic!("POST answered {v}"))
            .to_owned()
    }

    /// DELETE, asserting 200; the answer body.
    pub async fn delete(&self, path: &str) -> Value {
        self.ok("DELETE", path, None).await
    }
}

/// Polls `cond` every 10 ms until it holds; fails the test after `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
