//! A browser as a Huddle participant: headless Debian Chromium driven over WebDriver
//! (`chromedriver`), or Firefox ESR driven over WebDriver BiDi ([`firefox`]); the interop tests
//! and `huddle-web-bench`. Both run the same page and are read the same way.
//!
//! The browsers reach nothing but loopback: Chromium resolves every host name except 127.0.0.1
//! to nothing, Firefox sends every other request to a proxy that is not there, background
//! networking is off, and the page runs with `loopback=1`, so it signals only its 127.0.0.1
//! candidates and ignores any other, which makes every ICE destination 127.0.0.1.
//!
//! Firefox gathers no 127.0.0.1 candidates at all, whatever its preferences say, so a call with
//! Firefox runs in a test LAN instead ([`Browser::open_in_lan`], [`netns::Lan`]): the browser,
//! the database and every peer in one namespace whose only address is
//! [`netns::LAN_HOST`], reached from the tests through a forwarded WebDriver port.
//! Waiting is done by polling the page's `window.huddle` state with a bound, never by sleeping.

mod firefox;
mod forward;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::netns::{self, Lan};
use crate::process::{descendants, free_port, kill_all};
use crate::{Error, Proc};

/// Which browser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Chromium,
    Firefox,
}

/// Headless with fake camera, microphone and screen picker that need no click, WebRTC allowed on
/// loopback and no GPU (none on a test machine), plus what keeps Chromium off the network.
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
        "--window-size=1280,800",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([
        format!(
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE {}",
            netns::LAN_HOST
        ),
        format!("--user-data-dir={}", profile.display()),
    ])
    .collect()
}

/// One browser with one tab. Dropping it ends the browser and whatever drives it.
pub struct Browser {
    driver: Driver,
    // Declared last: dropped after the browser that writes to it.
    _profile: tempfile::TempDir,
}

enum Driver {
    Chromium(Chromium),
    Firefox(Box<firefox::Firefox>),
}

/// Chromium behind its own chromedriver.
struct Chromium {
    /// chromedriver; Chromium's processes are below it, and go with it.
    driver: Proc,
    base: String,
    session: String,
    http: reqwest::Client,
    /// To chromedriver's port, when it runs in a LAN.
    _forward: Option<forward::Forward>,
}

/// `program` as a command here, or in `lan`'s namespace.
fn command_in(lan: Option<&Lan>, program: String) -> Command {
    match lan {
        Some(lan) => lan.command(program),
        None => Command::new(program),
    }
}

/// Where the tests reach `port` of a browser's driver: the port itself, or one forwarded into
/// `lan`.
async fn reach(lan: Option<&Lan>, port: u16) -> Result<(u16, Option<forward::Forward>), Error> {
    match lan {
        Some(lan) => {
            let f = forward::Forward::to(lan, port).await?;
            Ok((f.port(), Some(f)))
        }
        None => Ok((port, None)),
    }
}

impl Browser {
    /// Starts Chromium and opens `url`.
    pub async fn open(url: &str) -> Result<Browser, Error> {
        Browser::open_in(Engine::Chromium, url).await
    }

    /// Starts `engine` and opens `url`.
    pub async fn open_in(engine: Engine, url: &str) -> Result<Browser, Error> {
        Browser::open_at(engine, None, url).await
    }

    /// Starts `engine` in `lan`'s namespace and opens `url` (an address in the LAN).
    pub async fn open_in_lan(engine: Engine, lan: &Lan, url: &str) -> Result<Browser, Error> {
        Browser::open_at(engine, Some(lan), url).await
    }

    async fn open_at(engine: Engine, lan: Option<&Lan>, url: &str) -> Result<Browser, Error> {
        let profile = tempfile::Builder::new()
            .prefix(match engine {
                Engine::Chromium => "huddle-chromium-",
                Engine::Firefox => "huddle-firefox-",
            })
            .tempdir()?;
        let driver = match engine {
            Engine::Chromium => Driver::Chromium(Chromium::start(profile.path(), lan, url).await?),
            Engine::Firefox => Driver::Firefox(Box::new(
                firefox::Firefox::start(profile.path(), lan).await?,
            )),
        };
        let browser = Browser {
            driver,
            _profile: profile,
        };
        browser.navigate(url).await?;
        Ok(browser)
    }

    /// Loads `url` in the tab.
    pub async fn navigate(&self, url: &str) -> Result<(), Error> {
        match &self.driver {
            Driver::Chromium(c) => c.navigate(url).await,
            Driver::Firefox(f) => f.navigate(url).await,
        }
    }

    /// Runs `body` (a function body: `return ...`; may be async) in the page.
    pub async fn eval(&self, body: &str) -> Result<Value, Error> {
        match &self.driver {
            Driver::Chromium(c) => c.eval(body).await,
            Driver::Firefox(f) => f.eval(body).await,
        }
    }

    /// Clicks the element with id `id` as a user would (a trusted click, with the transient
    /// activation that `getDisplayMedia` needs).
    pub async fn click(&self, id: &str) -> Result<(), Error> {
        match &self.driver {
            Driver::Chromium(c) => c.click(id).await,
            Driver::Firefox(f) => f.click(id).await,
        }
    }

    /// The page's `window.huddle.snapshot()`.
    pub async fn state(&self) -> Result<Value, Error> {
        self.eval("return window.huddle ? window.huddle.snapshot() : null")
            .await
    }

    /// The guest's peer id: the uid it signed in as (web/auth.js), once it has signed in.
    pub async fn peer_id(&self, timeout: Duration) -> Result<String, Error> {
        let s = self
            .wait("signed in", timeout, |s| s["me"].is_string())
            .await?;
        Ok(s["me"].as_str().unwrap_or_default().to_owned())
    }

    /// Polls the page state until `pred` holds; fails with the last state after `timeout`.
    pub async fn wait(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value, Error> {
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
                return Err(Error::TimedOut {
                    who: "browser".to_owned(),
                    what: what.to_owned(),
                    within: timeout,
                    seen: format!("state: {s:#}; links: {links:#}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The browser's processes (for Chromium, everything below chromedriver), for CPU
    /// accounting.
    pub fn pids(&self) -> Vec<u32> {
        match &self.driver {
            Driver::Chromium(c) => descendants(c.driver.id()),
            Driver::Firefox(f) => f.pids(),
        }
    }

    /// Ends the browser abruptly (SIGKILL, no `pagehide`): a crash or a closed laptop.
    pub fn kill(&mut self) {
        match &mut self.driver {
            Driver::Chromium(c) => kill_all(&descendants(c.driver.id())),
            Driver::Firefox(f) => f.kill(),
        }
    }
}

impl Chromium {
    /// Starts chromedriver (in `lan`, if any), and Chromium with a profile in `profile`, to
    /// open `url`.
    async fn start(
        profile: &std::path::Path,
        lan: Option<&Lan>,
        url: &str,
    ) -> Result<Chromium, Error> {
        // Free here: in a LAN, the port forwarded to it from here is the same.
        let port = free_port()?;
        let program = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let driver = Proc::spawn(
            command_in(lan, program)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            "Debian package chromium-driver; scripts/install-deps.sh installs it",
        )?;
        let http = reqwest::Client::builder().no_proxy().build()?;
        let (port, forward) = reach(lan, port).await?;
        let base = format!("http://127.0.0.1:{port}");
        let mut browser = Chromium {
            driver,
            base,
            session: String::new(),
            http,
            _forward: forward,
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
                _ if Instant::now() > deadline => {
                    return Err(Error::Unexpected {
                        program: "chromedriver".to_owned(),
                        problem: "did not answer /status within 20 s".to_owned(),
                    })
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let mut args = chromium_args(profile);
        if lan.is_some() {
            // A page from the LAN's host is not a secure context by itself (127.0.0.1 is), and
            // only secure contexts get cameras.
            let origin: String = url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
            args.push(format!(
                "--unsafely-treat-insecure-origin-as-secure={origin}"
            ));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": binary, "args": args},
        }}});
        let v = browser.call("POST", "/session", Some(caps)).await?;
        browser.session = text(&v["sessionId"], "/session", || {
            format!("no session id in {v}")
        })?;
        Ok(browser)
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, Error> {
        let url = format!("{}{}", self.base, path);
        let req = match method {
            "POST" => self.http.post(&url).json(&body.unwrap_or(json!({}))),
            "DELETE" => self.http.delete(&url),
            _ => self.http.get(&url),
        };
        let resp = req.send().await?;
        let ok = resp.status().is_success();
        let v: Value = resp.json().await?;
        if !ok {
            return Err(Error::WebDriver {
                path: path.to_owned(),
                message: format!("{}: {}", v["value"]["error"], v["value"]["message"]),
            });
        }
        Ok(v["value"].clone())
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Loads `url` in the tab.
    pub async fn navigate(&self, url: &str) -> Result<(), Error> {
        self.call(
            "POST",
            &self.session_path("/url"),
            Some(json!({"url": url})),
        )
        .await?;
        Ok(())
    }

    /// WebDriver's element click on the element with id `id`.
    async fn click(&self, id: &str) -> Result<(), Error> {
        let found = self
            .call(
                "POST",
                &self.session_path("/element"),
                Some(json!({"using": "css selector", "value": format!("#{id}")})),
            )
            .await?;
        // The element reference's key is fixed by the WebDriver specification.
        let element = text(
            &found["element-6066-11e4-a52e-4f735466cecf"],
            "/element",
            || format!("no element #{id}: {found}"),
        )?;
        self.call(
            "POST",
            &self.session_path(&format!("/element/{element}/click")),
            Some(json!({})),
        )
        .await?;
        Ok(())
    }

    /// Runs `body` (a function body: `return ...`; may be async) in the page.
    pub async fn eval(&self, body: &str) -> Result<Value, Error> {
        self.call(
            "POST",
            &self.session_path("/execute/sync"),
            Some(json!({"script": body, "args": []})),
        )
        .await
    }
}

/// The string `v` holds, or a WebDriver error of `path` saying what was `missing`.
fn text(v: &Value, path: &str, missing: impl FnOnce() -> String) -> Result<String, Error> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| Error::WebDriver {
            path: path.to_owned(),
            message: missing(),
        })
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

/// The page URL that joins `room` on the database at `db` under `name` at once (`autojoin=1`,
/// no pre-join step); on a loopback
/// database the page signals and accepts 127.0.0.1 candidates only (`loopback=1`), in a
/// [`Lan`] all of them (there are no others). The guest's peer id is the uid it signs in as:
/// read it with [`Browser::peer_id`].
pub fn page_url(db: &str, room: &str, name: &str, extra: &str) -> String {
    format!("{}&autojoin=1", invite_url(db, room, name, extra))
}

/// [`page_url`] without `autojoin`: the page a person opens from an invitation, which shows
/// the camera and waits for Join.
pub fn invite_url(db: &str, room: &str, name: &str, extra: &str) -> String {
    let loopback = if db.starts_with("http://127.0.0.1:") {
        "&loopback=1"
    } else {
        ""
    };
    format!("{db}/web/?room={room}&name={name}{loopback}{extra}")
}
