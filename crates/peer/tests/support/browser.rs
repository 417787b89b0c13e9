//! Headless Debian Chromium as a Huddle participant, driven over WebDriver (`chromedriver`),
//! shared by the interop tests and `huddle-web-bench`.
//!
//! Chromium reaches nothing but loopback: every host name except 127.0.0.1 resolves to nothing,
//! background networking is off, and the page runs with `loopback=1`, so it signals only its
//! 127.0.0.1 candidates and ignores any other, which makes every ICE destination 127.0.0.1.
//! Waiting is done by polling the page's `window.huddle` state with a bound, never by sleeping.

#![allow(dead_code)] // each user (test file, bench) takes what it needs

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};

/// The flags of `shared/platform-notes.md` plus what keeps Chromium off the network.
pub fn chromium_args(profile: &std::path::Path) -> Vec<String> {
    [
        "--headless=new",
        "--allow-loopback-in-peer-connection",
        "--use-fake-device-for-media-stream=fps=30",
        "--use-fake-ui-for-media-stream",
        "--auto-accept-this-tab-capture",
        "--autoplay-policy=no-user-gesture-required",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-domain-reliability",
        "--disable-breakpad",
        "--disable-client-side-phishing-detection",
        "--disable-features=WebRtcHideLocalIpsWithMdns,OptimizationHints,MediaRouter,Translate,AutofillServerCommunication",
        "--no-pings",
        "--no-first-run",
        "--no-default-browser-check",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--window-size=1280,800",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One Chromium with one tab, behind its own chromedriver. Dropping it ends both.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and Chromium, and opens `url`.
    pub async fn open(url: &str) -> anyhow::Result<Browser> {
        let port = free_port()?;
        let driver =
            Command::new(std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into()))
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context(
                    "cannot start chromedriver (install chromium-driver: scripts/install-deps.sh)",
                )?;
        let profile = tempfile::Builder::new()
            .prefix("huddle-chromium-")
            .tempdir()?;
        let http = reqwest::Client::builder().no_proxy().build()?;
        let base = format!("http://127.0.0.1:{port}");
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
            http,
            _profile: profile,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match browser
                .http
                .get(format!("{}/status", browser.base))
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => break,
                _ if Instant::now() > deadline => bail!("chromedriver did not come up"),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": binary, "args": chromium_args(browser._profile.path())},
        }}});
        let v = browser.call("POST", "/session", Some(caps)).await?;
        browser.session = v["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("no session id in {v}"))?
            .to_owned();
        browser.navigate(url).await?;
        Ok(browser)
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}{}", self.base, path);
        let req = match method {
            "POST" => self.http.post(&url).json(&body.unwrap_or(json!({}))),
            "DELETE" => self.http.delete(&url),
            _ => self.http.get(&url),
        };
        let resp = req
            .send()
            .await
            .with_context(|| format!("WebDriver {path}"))?;
        let ok = resp.status().is_success();
        let v: Value = resp.json().await?;
        if !ok {
            bail!(
                "WebDriver {path}: {}: {}",
                v["value"]["error"],
                v["value"]["message"]
            );
        }
        Ok(v["value"].clone())
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Loads `url` in the tab.
    pub async fn navigate(&self, url: &str) -> anyhow::Result<()> {
        self.call(
            "POST",
            &self.session_path("/url"),
            Some(json!({"url": url})),
        )
        .await?;
        Ok(())
    }

    /// Runs `body` (a function body: `return ...`; may be async) in the page.
    pub async fn eval(&self, body: &str) -> anyhow::Result<Value> {
        self.call(
            "POST",
            &self.session_path("/execute/sync"),
            Some(json!({"script": body, "args": []})),
        )
        .await
    }

    /// The page's `window.huddle.snapshot()`.
    pub async fn state(&self) -> anyhow::Result<Value> {
        self.eval("return window.huddle ? window.huddle.snapshot() : null")
            .await
    }

    /// Polls the page state until `pred` holds; fails with the last state after `timeout`.
    pub async fn wait(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.state().await?;
            if pred(&s) {
                return Ok(s);
            }
            if Instant::now() > deadline {
                // What each connection negotiated (transceivers, both descriptions) tells a
                // signaling fault from a media one.
                let links = self
                    .eval("return window.huddle ? window.huddle.links() : null")
                    .await
                    .unwrap_or_else(|e| Value::String(e.to_string()));
                bail!("browser: no {what} within {timeout:?}; state: {s:#}; links: {links:#}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Chromium's processes (the browser and its children), for CPU accounting and killing.
    pub fn chromium_pids(&self) -> Vec<u32> {
        descendants(self.driver.id())
    }

    /// Ends the browser abruptly (SIGKILL, no `pagehide`): a crash or a closed laptop.
    pub fn kill_chromium(&mut self) {
        for pid in self.chromium_pids() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill_chromium();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Every process below `root` (not `root` itself), from /proc.
pub fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if let Some(ppid) = stat_field(pid, 1).and_then(|s| s.parse::<u32>().ok()) {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(child, parent) in &parent_of {
            if parent == p && !out.contains(&child) {
                out.push(child);
                frontier.push(child);
            }
        }
    }
    out
}

/// Field `i` after the command (0 = state, 1 = ppid, 11 = utime, 12 = stime) of /proc/PID/stat.
pub fn stat_field(pid: u32, i: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(i).map(str::to_owned)
}

/// CPU time (user + system) of `pid` in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let f = |i| {
        stat_field(pid, i)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
    };
    f(11) + f(12)
}

/// `--type=` of a Chromium process (`renderer`, `gpu-process`, `utility`, ...; `browser` if none).
pub fn chromium_type(pid: u32) -> String {
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    // Chromium rewrites its process title: the arguments may be joined by spaces, not NULs.
    let cmd = String::from_utf8_lossy(&cmd);
    let args = || cmd.split(['\0', ' ']);
    let ty = args()
        .find_map(|a| a.strip_prefix("--type="))
        .unwrap_or("browser");
    let sub = args()
        .find_map(|a| a.strip_prefix("--utility-sub-type="))
        .unwrap_or("");
    if sub.is_empty() {
        ty.to_owned()
    } else {
        format!("{ty}:{sub}")
    }
}

/// The page URL for joining `room` on the database at `db` as `peer`.
pub fn page_url(db: &str, room: &str, name: &str, peer: &str, extra: &str) -> String {
    format!("{db}/web/?room={room}&name={name}&peer={peer}&loopback=1{extra}")
}

/// Where a sibling binary of this executable is (`huddle-peer`, `huddle-db`).
pub fn sibling_binary(name: &str) -> PathBuf {
    let me = std::env::current_exe().unwrap_or_default();
    let dir = me.parent().map(PathBuf::from).unwrap_or_default();
    // Test executables live in target/<profile>/deps, binaries in target/<profile>.
    for d in [
        dir.clone(),
        dir.parent().map(PathBuf::from).unwrap_or_default(),
    ] {
        let p = d.join(name);
        if p.exists() {
            return p;
        }
    }
    dir.join(name)
}
