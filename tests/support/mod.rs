//! What the end-to-end app test runs beside the app: a virtual display (Xvfb), a session bus
//! with a stand-in notification service, tauri-driver (WebDriver for the app's webview), and
//! `huddle-peer` participants. Everything listens on 127.0.0.1 or on Unix sockets.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Kills the process when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Waits until `f` gives `Some`, or panics after `timeout` saying what was awaited.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < end,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A virtual X display plus a private session bus with a notification service that writes
/// what it is asked to show into `notifications`.
pub struct Desktop {
    pub display: String,
    pub bus: String,
    pub notifications: PathBuf,
    _procs: Vec<Proc>,
}

impl Desktop {
    /// Starts Xvfb, dbus-daemon and the fake notification service.
    pub fn start(dir: &Path) -> Desktop {
        let n = (90..140)
            .find(|n| !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists())
            .expect("a free X display number");
        let display = format!(":{n}");
        let xvfb = Command::new("Xvfb")
            .args([&display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb (Debian package xvfb; `make test` installs it)");
        let xvfb = Proc(xvfb);
        wait_for("the X display", Duration::from_secs(10), || {
            Path::new(&format!("/tmp/.X11-unix/X{n}"))
                .exists()
                .then_some(())
        });
        let mut dbus = Command::new("dbus-daemon")
            .args([
                "--config-file=/usr/share/dbus-1/session.conf",
                "--nofork",
                "--print-address=1",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon (Debian package dbus)");
        let mut line = String::new();
        BufReader::new(dbus.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("the bus address");
        let bus = line.trim().to_owned();
        let dbus = Proc(dbus);
        let notifications = dir.join("notifications.jsonl");
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/fake_notifications.py");
        let mut fake = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(&notifications)
            .env("DBUS_SESSION_BUS_ADDRESS", &bus)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 with dbus and gi (python3-dbus, python3-gi)");
        let mut ready = String::new();
        BufReader::new(fake.stdout.take().expect("piped"))
            .read_line(&mut ready)
            .expect("the notification service starts");
        assert_eq!(ready.trim(), "ready", "fake notification service");
        Desktop {
            display,
            bus,
            notifications,
            _procs: vec![Proc(fake), dbus, xvfb],
        }
    }

    /// Starts another application that takes the focus; it ends when the value is dropped.
    pub fn focus_another_app(&self) -> Proc {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/other_app.py");
        let mut p = Command::new("/usr/bin/python3")
            .arg(script)
            .env("DISPLAY", &self.display)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with GTK (python3-gi, gir1.2-gtk-3.0)");
        let mut line = String::new();
        BufReader::new(p.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("the other app starts");
        assert_eq!(line.trim(), "focused", "the other app has the focus");
        Proc(p)
    }

    /// The notifications shown so far.
    pub fn shown(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.notifications)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// tauri-driver on a free port, with the app's environment.
pub fn tauri_driver(desktop: &Desktop, env: &[(&str, String)]) -> (Proc, u16) {
    // The WebDriver client's rustls needs a process-wide crypto provider (plain HTTP on
    // loopback here, but the client is built for either).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let port = free_port();
    let native = free_port();
    let bin =
        which("tauri-driver").expect("tauri-driver (`make test` installs it with cargo install)");
    let mut cmd = Command::new(bin);
    cmd.args([
        "--port",
        &port.to_string(),
        "--native-port",
        &native.to_string(),
    ])
    .env("DISPLAY", &desktop.display)
    .env("DBUS_SESSION_BUS_ADDRESS", &desktop.bus)
    .env("WEBKIT_DISABLE_COMPOSITING_MODE", "1")
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let p = Proc(cmd.spawn().expect("tauri-driver starts"));
    wait_for("tauri-driver", Duration::from_secs(15), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    (p, port)
}

/// A program on the PATH (or in ~/.cargo/bin).
pub fn which(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// A `huddle-peer` and its JSON events.
pub struct Peer {
    pub name: String,
    /// Its peer id in the room.
    pub id: String,
    proc: Proc,
    events: mpsc::Receiver<Value>,
    seen: Vec<Value>,
}

impl Peer {
    /// Joins `room` on `db` sending synthetic 320x180 video at 15 fps and audio.
    pub fn join(db: &str, room: &str, name: &str) -> Peer {
        Peer::join_with(db, room, name, "320x180", 15, &[])
    }

    /// Joins sending synthetic video of `size` at `fps`, and audio, with `extra` huddle-peer
    /// flags.
    pub fn join_with(
        db: &str,
        room: &str,
        name: &str,
        size: &str,
        fps: u32,
        extra: &[&str],
    ) -> Peer {
        let bin = Path::new(env!("CARGO_BIN_EXE_huddle")).with_file_name("huddle-peer");
        assert!(
            bin.exists(),
            "{} is missing: build it with `cargo build -p peer` (cargo test --workspace does)",
            bin.display()
        );
        let id = format!("test-{}-{}", name.to_lowercase(), std::process::id());
        let mut child = Command::new(bin)
            .args([
                "--db",
                db,
                "--room",
                room,
                "--name",
                name,
                "--peer-id",
                &id,
                "--video",
                "synthetic",
                "--audio",
                "synthetic",
                "--size",
                size,
                "--fps",
                &fps.to_string(),
                "--loopback",
            ])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("huddle-peer starts");
        let out = child.stdout.take().expect("piped");
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
        Peer {
            name: name.into(),
            id,
            proc: Proc(child),
            events: rx,
            seen: Vec::new(),
        }
    }

    /// Waits for an event that satisfies `f` (looking at earlier ones too).
    pub fn wait_event(
        &mut self,
        what: &str,
        timeout: Duration,
        f: impl Fn(&Value) -> bool,
    ) -> Value {
        if let Some(v) = self.seen.iter().find(|v| f(v)) {
            return v.clone();
        }
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if f(&v) {
                        return v;
                    }
                }
                Err(_) => panic!(
                    "{}: timed out waiting for {what}; saw {:?}",
                    self.name, self.seen
                ),
            }
        }
    }

    /// Forgets the events seen so far (to wait for a new one).
    pub fn forget(&mut self) {
        while self.events.try_recv().is_ok() {}
        self.seen.clear();
    }

    /// Sends a stdin command (`video off`, `leave`...).
    pub fn command(&mut self, line: &str) {
        use std::io::Write;
        if let Some(stdin) = self.proc.0.stdin.as_mut() {
            let _ = writeln!(stdin, "{line}");
        }
    }
}

/// The app under test: its desktop, tauri-driver, and a WebDriver session with its window.
pub struct App {
    /// The virtual desktop it runs on.
    pub desktop: Desktop,
    /// The WebDriver session.
    pub client: fantoccini::Client,
    _driver: Proc,
}

impl App {
    /// Starts the `huddle` binary with its settings and data in `dir`: display name `name`,
    /// the test camera, microphone and screen (no devices on a test machine, as a user would
    /// pick them in Settings → Devices), ICE on loopback.
    pub async fn launch(dir: &Path, name: &str) -> App {
        let config = dir.join("config");
        std::fs::create_dir_all(&config).expect("config dir");
        let settings = serde_json::json!({
            "name": name,
            "devices": {"camera": "synthetic", "microphone": "synthetic", "speaker": "none", "display": "synthetic"}
        });
        std::fs::write(config.join("settings.json"), settings.to_string()).expect("settings");
        let desktop = Desktop::start(dir);
        let env = [
            ("HUDDLE_CONFIG_DIR", config.display().to_string()),
            ("HUDDLE_DATA_DIR", dir.join("data").display().to_string()),
            ("HUDDLE_LOOPBACK_ONLY", "1".to_string()),
        ];
        let (driver, port) = tauri_driver(&desktop, &env);
        let caps = serde_json::json!({
            "browserName": "wry",
            "tauri:options": {"application": env!("CARGO_BIN_EXE_huddle")}
        });
        let client = fantoccini::ClientBuilder::rustls()
            .expect("a TLS setup for the WebDriver client")
            .capabilities(caps.as_object().cloned().unwrap_or_default())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session with the app");
        App {
            desktop,
            client,
            _driver: driver,
        }
    }

    /// Runs a script in the page.
    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .expect("the page runs the script")
    }

    /// Polls a script until it returns something truthy (at most 40 s).
    pub async fn until(&self, what: &str, script: &str) -> Value {
        let end = Instant::now() + Duration::from_secs(40);
        loop {
            let v = self.js(script).await;
            let falsy = v.is_null() || v == Value::Bool(false) || v == 0 || v == "";
            if !falsy {
                return v;
            }
            assert!(Instant::now() < end, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Clicks the element with this id.
    pub async fn click(&self, id: &str) {
        self.client
            .find(fantoccini::Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("#{id}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking #{id}: {e}"));
    }

    /// The built-in database's URL, once it runs.
    pub async fn database(&self) -> String {
        let db = self
            .until(
                "the built-in database",
                "return window.huddle?.state.db.connected && window.huddle.state.db.url",
            )
            .await;
        db.as_str().unwrap_or_default().to_owned()
    }

    /// Creates a public room from the home screen and joins it through the pre-join screen
    /// (waiting for the camera preview); returns the room id.
    pub async fn create_and_join(&self, name: &str) -> String {
        self.client
            .find(fantoccini::Locator::Id("create-name"))
            .await
            .expect("the create form")
            .send_keys(name)
            .await
            .expect("typing the room name");
        self.click("create-btn").await;
        self.until(
            "the pre-join screen",
            "return !document.getElementById('view-prejoin').hidden",
        )
        .await;
        self.until(
            "the camera preview",
            "return document.getElementById('preview-tile').classList.contains('has-video')",
        )
        .await;
        self.click("prejoin-join").await;
        let room = self
            .until(
                "being in the call",
                "return window.huddle.state.inCall?.room",
            )
            .await;
        room.as_str().unwrap_or_default().to_owned()
    }
}
