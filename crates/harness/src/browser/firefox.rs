//! Firefox ESR as a Huddle participant, driven over WebDriver BiDi, which Firefox serves itself
//! (`--remote-debugging-port`): no geckodriver, whose npm package downloads a binary.
//!
//! The client is the handful of commands the tests need (`session.new`,
//! `browsingContext.getTree` / `navigate`, `script.callFunction`), one at a time over one
//! WebSocket: a reply is matched to its command by id, and events, which nothing subscribes to,
//! are skipped. Every read has a bound.
//!
//! Firefox runs in a real window on its own Xvfb, not `--headless`: a headless Firefox has no
//! screen, so `getDisplayMedia` finds nothing to share. The profile is made fresh each time,
//! with fake camera and microphone, no permission prompts, real addresses in ICE candidates
//! (no mDNS names), and every HTTP(S) request not for 127.0.0.1 or the test LAN's host sent to
//! a proxy at 127.0.0.1:9, where nothing listens: like Chromium's `--host-resolver-rules`, it
//! keeps the browser off the network. Firefox gathers no 127.0.0.1 candidates whatever its
//! preferences say (`media.peerconnection.ice.loopback` included), so calls with it run in a
//! [`Lan`] (see the parent module).

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::forward::Forward;
use crate::netns::Lan;
use crate::process::{descendants, free_port};
use crate::{Error, Proc, Xvfb};

/// How long one command may take: a navigation or a `toggle` that renegotiates included.
const COMMAND_BOUND: Duration = Duration::from_secs(60);
/// From start until the BiDi port accepts a session.
const START_BOUND: Duration = Duration::from_secs(40);

/// Preferences of the fresh profile (`user.js`).
const PREFS: &[(&str, &str)] = &[
    // Fake devices and no prompts (getDisplayMedia still needs a user activation: every
    // script call carries one, as a click would).
    ("media.navigator.streams.fake", "true"),
    ("media.navigator.permission.disabled", "true"),
    ("media.autoplay.default", "0"),
    ("media.autoplay.blocking_policy", "0"),
    // ICE in the test LAN: real addresses rather than mDNS names (no multicast there).
    ("media.peerconnection.ice.obfuscate_host_addresses", "false"),
    // Off the network: everything but 127.0.0.1 and the test LAN's host goes to a proxy that
    // is not there.
    ("network.proxy.type", "1"),
    ("network.proxy.http", "\"127.0.0.1\""),
    ("network.proxy.http_port", "9"),
    ("network.proxy.share_proxy_settings", "true"),
    ("network.proxy.no_proxies_on", "\"127.0.0.1, 198.18.9.1\""),
    // A page from the test LAN's host is not a secure context by itself (127.0.0.1 is), and
    // only secure contexts get cameras.
    ("dom.securecontext.allowlist", "\"198.18.9.1\""),
    ("network.trr.mode", "5"),
    ("network.dns.disablePrefetch", "true"),
    ("network.predictor.enabled", "false"),
    ("network.http.speculative-parallel-limit", "0"),
    ("network.captive-portal-service.enabled", "false"),
    ("network.connectivity-service.enabled", "false"),
    ("app.update.disabledForTesting", "true"),
    ("browser.safebrowsing.update.enabled", "false"),
    ("datareporting.policy.dataSubmissionEnabled", "false"),
    ("toolkit.telemetry.enabled", "false"),
    ("browser.shell.checkDefaultBrowser", "false"),
];

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One Firefox with one tab, on its own display. Dropping it ends Firefox (and its content
/// processes), then the display.
pub(super) struct Firefox {
    firefox: Proc,
    ws: Mutex<Ws>,
    next_id: AtomicU64,
    context: String,
    /// To the BiDi port, when Firefox runs in a LAN.
    _forward: Option<Forward>,
    _display: Xvfb,
}

impl Firefox {
    /// Starts Firefox (in `lan`, if any) with a fresh profile in `profile` and opens a BiDi
    /// session on its tab.
    pub(super) async fn start(
        profile: &std::path::Path,
        lan: Option<&Lan>,
    ) -> Result<Firefox, Error> {
        let prefs: String = PREFS
            .iter()
            .map(|(k, v)| format!("user_pref(\"{k}\", {v});\n"))
            .collect();
        std::fs::write(profile.join("user.js"), prefs)?;
        let display = Xvfb::start("1280x800x24")?;
        let port = free_port()?;
        let program = std::env::var("FIREFOX").unwrap_or_else(|_| "firefox-esr".into());
        let firefox = Proc::spawn(
            super::command_in(lan, program)
                .arg(format!("--remote-debugging-port={port}"))
                .arg("--profile")
                .arg(profile)
                .args(["--no-remote", "--new-instance", "about:blank"])
                .env("DISPLAY", display.display())
                .env("MOZ_CRASHREPORTER_DISABLE", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            "Debian package firefox-esr; scripts/install-deps.sh installs it",
        )?;
        let (port, forward) = super::reach(lan, port).await?;
        let url = format!("ws://127.0.0.1:{port}/session");
        let deadline = Instant::now() + START_BOUND;
        let ws = loop {
            match tokio_tungstenite::connect_async(url.as_str()).await {
                Ok((ws, _)) => break ws,
                Err(e) if Instant::now() > deadline => {
                    return Err(Error::Unexpected {
                        program: "firefox-esr".to_owned(),
                        problem: format!(
                            "WebDriver BiDi at {url} not up within {START_BOUND:?}: {e}"
                        ),
                    })
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let mut ff = Firefox {
            firefox,
            ws: Mutex::new(ws),
            next_id: AtomicU64::new(1),
            context: String::new(),
            _forward: forward,
            _display: display,
        };
        ff.command("session.new", json!({"capabilities": {}}))
            .await?;
        let tree = ff.command("browsingContext.getTree", json!({})).await?;
        ff.context = super::text(
            &tree["contexts"][0]["context"],
            "browsingContext.getTree",
            || format!("no top-level browsing context in {tree}"),
        )?;
        Ok(ff)
    }

    /// Sends one command and returns its `result`, or its error as [`Error::WebDriver`].
    async fn command(&self, method: &str, params: Value) -> Result<Value, Error> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let failed = |message: String| Error::WebDriver {
            path: method.to_owned(),
            message,
        };
        let mut ws = self.ws.lock().await;
        let text = json!({"id": id, "method": method, "params": params}).to_string();
        ws.send(Message::text(text))
            .await
            .map_err(|e| failed(format!("could not send: {e}")))?;
        let deadline = tokio::time::Instant::now() + COMMAND_BOUND;
        loop {
            let msg = tokio::time::timeout_at(deadline, ws.next())
                .await
                .map_err(|_| failed(format!("no reply within {COMMAND_BOUND:?}")))?;
            let text = match msg {
                Some(Ok(Message::Text(t))) => t,
                Some(Ok(Message::Close(_))) | None => {
                    return Err(failed("Firefox closed the connection".to_owned()))
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(failed(format!("connection failed: {e}"))),
            };
            let Ok(v) = serde_json::from_str::<Value>(&text) else {
                return Err(failed(format!("a reply that is not JSON: {text}")));
            };
            if v["id"].as_u64() != Some(id) {
                continue; // an event
            }
            if v["type"] == "error" {
                return Err(failed(format!("{}: {}", v["error"], v["message"])));
            }
            return Ok(v["result"].clone());
        }
    }

    /// Loads `url` and returns once the new document has loaded. BiDi's `wait: complete` alone
    /// is not enough: loading the URL the tab already shows, it once returned while the old
    /// document was still there, so a mark left in the old one must be gone too.
    pub(super) async fn navigate(&self, url: &str) -> Result<(), Error> {
        let mark = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.eval(&format!("window.__huddleDocument = {mark}"))
            .await?;
        self.command(
            "browsingContext.navigate",
            json!({"context": self.context, "url": url, "wait": "complete"}),
        )
        .await?;
        let deadline = Instant::now() + COMMAND_BOUND;
        let check = format!(
            "return window.__huddleDocument !== {mark} && document.readyState === 'complete'"
        );
        loop {
            // A script may also fail while the documents change over: asked again.
            let now = self.eval(&check).await;
            if matches!(now, Ok(Value::Bool(true))) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::WebDriver {
                    path: "browsingContext.navigate".to_owned(),
                    message: format!("{url} not loaded within {COMMAND_BOUND:?}: {now:?}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `body` (a function body, may use `await`) in the page as if after a click, and
    /// returns its value through JSON (BiDi's own serialization is typed and nested).
    pub(super) async fn eval(&self, body: &str) -> Result<Value, Error> {
        let function = format!(
            "async () => {{ const v = await (async () => {{ {body} }})(); \
             return v === undefined ? null : JSON.stringify(v); }}"
        );
        let r = self
            .command(
                "script.callFunction",
                json!({
                    "functionDeclaration": function,
                    "awaitPromise": true,
                    "userActivation": true,
                    "target": {"context": self.context},
                    "resultOwnership": "none",
                }),
            )
            .await?;
        if r["type"] == "exception" {
            return Err(Error::WebDriver {
                path: "script.callFunction".to_owned(),
                message: format!("the script threw: {}", r["exceptionDetails"]["text"]),
            });
        }
        match r["result"]["value"].as_str() {
            Some(json) => serde_json::from_str(json).map_err(|e| Error::WebDriver {
                path: "script.callFunction".to_owned(),
                message: format!("the script's value is not JSON ({e}): {json}"),
            }),
            None => Ok(Value::Null),
        }
    }

    /// A real left click (BiDi input actions) at the centre of the element with id `id`, as a
    /// user's: what a transient activation must come from for sure (`userActivation` on a
    /// script call reaches the page too late now and then, and `getDisplayMedia` refuses).
    pub(super) async fn click(&self, id: &str) -> Result<(), Error> {
        let at = self
            .eval(&format!(
                "const e = document.getElementById({id:?}); if (!e) return null; \
                 e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); \
                 return [Math.round(r.x + r.width / 2), Math.round(r.y + r.height / 2)]"
            ))
            .await?;
        let (Some(x), Some(y)) = (at[0].as_i64(), at[1].as_i64()) else {
            return Err(Error::WebDriver {
                path: "input.performActions".to_owned(),
                message: format!("no element #{id} to click"),
            });
        };
        self.command(
            "input.performActions",
            json!({"context": self.context, "actions": [{
                "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
                "actions": [
                    {"type": "pointerMove", "x": x, "y": y},
                    {"type": "pointerDown", "button": 0},
                    {"type": "pointerUp", "button": 0},
                ],
            }]}),
        )
        .await?;
        Ok(())
    }

    /// Firefox's processes: the main one and its content processes.
    pub(super) fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.firefox.id()];
        pids.extend(descendants(self.firefox.id()));
        pids
    }

    /// SIGKILL to Firefox and its content processes: a crash, no `pagehide`.
    pub(super) fn kill(&mut self) {
        self.firefox.kill();
    }
}
