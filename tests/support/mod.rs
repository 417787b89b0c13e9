//! What the end-to-end app test runs beside the app: a virtual display (Xvfb), a session bus
//! with a stand-in notification service, tauri-driver (WebDriver for the app's webview), and
//! `huddle-peer` participants. Everything listens on 127.0.0.1 or on Unix sockets.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::process::{free_port, which};
use harness::{huddle_peer, poll, Peer, Proc, Xvfb};
use serde_json::Value;

/// A virtual X display plus a private session bus with a notification service that writes
/// what it is asked to show into `notifications`.
pub struct Desktop {
    pub display: String,
    pub bus: String,
    pub notifications: PathBuf,
    _procs: Vec<Proc>,
    _xvfb: Xvfb,
}

impl Desktop {
    /// Starts Xvfb, dbus-daemon and the fake notification service.
    pub fn start(dir: &Path) -> Desktop {
        let xvfb = Xvfb::start("1280x800x24").unwrap();
        let display = xvfb.display().to_owned();
        let mut dbus = Proc::spawn(
            Command::new("dbus-daemon")
                .args([
                    "--config-file=/usr/share/dbus-1/session.conf",
                    "--nofork",
                    "--print-address=1",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
            "Debian package dbus",
        )
        .unwrap();
        let mut line = String::new();
        BufReader::new(dbus.child().stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("the bus address");
        let bus = line.trim().to_owned();
        let notifications = dir.join("notifications.jsonl");
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/fake_notifications.py");
        let mut fake = Proc::spawn(
            Command::new("/usr/bin/python3")
                .arg(script)
                .arg(&notifications)
                .env("DBUS_SESSION_BUS_ADDRESS", &bus)
                .stdout(Stdio::piped()),
            "python3 with dbus and gi (python3-dbus, python3-gi)",
        )
        .unwrap();
        let mut ready = String::new();
        BufReader::new(fake.child().stdout.take().expect("piped"))
            .read_line(&mut ready)
            .expect("the notification service starts");
        assert_eq!(ready.trim(), "ready", "fake notification service");
        Desktop {
            display,
            bus,
            notifications,
            _procs: vec![fake, dbus],
            _xvfb: xvfb,
        }
    }

    /// Opens a window titled `title` painted one colour (8-bit RGB), somewhere the app's window
    /// partly covers; it closes when the value is dropped.
    pub fn coloured_window(&self, title: &str, rgb: [u8; 3]) -> Proc {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/coloured_window.py");
        let mut p = Proc::spawn(
            Command::new("/usr/bin/python3")
                .arg(script)
                .arg(title)
                .args(rgb.map(|c| c.to_string()))
                .env("DISPLAY", &self.display)
                .env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
            "python3 with GTK (python3-gi, gir1.2-gtk-3.0)",
        )
        .unwrap();
        let mut line = String::new();
        BufReader::new(p.child().stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("the window opens");
        assert_eq!(line.trim(), "drawn", "the window is painted");
        p
    }

    /// Starts another application that takes the focus; it ends when the value is dropped.
    pub fn focus_another_app(&self) -> Proc {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/other_app.py");
        let mut p = Proc::spawn(
            Command::new("/usr/bin/python3")
                .arg(script)
                .env("DISPLAY", &self.display)
                .env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
            "python3 with GTK (python3-gi, gir1.2-gtk-3.0)",
        )
        .unwrap();
        let mut line = String::new();
        BufReader::new(p.child().stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("the other app starts");
        assert_eq!(line.trim(), "focused", "the other app has the focus");
        p
    }

    /// The notifications shown so far.
    pub fn shown(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.notifications)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Asks the window titled `title` to close, as a window manager does when its close
    /// button is clicked (a `WM_DELETE_WINDOW` client message): the application decides.
    pub fn close_window(&self, title: &str) {
        use x11rb::connection::Connection as _;
        use x11rb::protocol::xproto::{
            AtomEnum, ClientMessageEvent, ConnectionExt as _, EventMask,
        };
        let (c, screen) = x11rb::connect(Some(&self.display)).expect("the test display");
        let root = c.setup().roots[screen].root;
        // No window manager here: top-level windows are the root's children.
        let id = c
            .query_tree(root)
            .unwrap()
            .reply()
            .unwrap()
            .children
            .into_iter()
            .find(|&w| {
                c.get_property(false, w, AtomEnum::WM_NAME, AtomEnum::ANY, 0, 256)
                    .ok()
                    .and_then(|r| r.reply().ok())
                    .is_some_and(|r| r.value == title.as_bytes())
            })
            .unwrap_or_else(|| panic!("no window titled {title}"));
        let atom = |name: &[u8]| c.intern_atom(false, name).unwrap().reply().unwrap().atom;
        let (protocols, delete) = (atom(b"WM_PROTOCOLS"), atom(b"WM_DELETE_WINDOW"));
        let msg =
            ClientMessageEvent::new(32, id, protocols, [delete, x11rb::CURRENT_TIME, 0, 0, 0]);
        c.send_event(false, id, EventMask::NO_EVENT, msg).unwrap();
        c.flush().unwrap();
    }

    /// What another program gets when it pastes: the CLIPBOARD selection, read with xclip
    /// (empty when nobody holds it).
    pub fn clipboard(&self) -> String {
        let out = std::process::Command::new("timeout")
            .args(["5", "xclip", "-o", "-selection", "clipboard"])
            .env("DISPLAY", &self.display)
            .output()
            .expect("xclip runs (scripts/install-deps.sh installs it)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// tauri-driver on a free port, with the app's environment.
pub fn tauri_driver(desktop: &Desktop, env: &[(&str, String)]) -> (Proc, u16) {
    // The WebDriver client's rustls needs a process-wide crypto provider (plain HTTP on
    // loopback here, but the client is built for either).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let port = free_port().unwrap();
    let native = free_port().unwrap();
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
    // WebKitWebDriver and the app run below tauri-driver: dropping it ends them too.
    let p = Proc::spawn(&mut cmd, "cargo install tauri-driver").unwrap();
    poll("tauri-driver", Duration::from_secs(15), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .unwrap();
    (p, port)
}

/// Joins `room` on `db` sending synthetic 320x180 video at 15 fps and audio.
pub fn join(db: &str, room: &str, name: &str) -> Peer {
    join_with(db, room, name, "320x180", 15, &[])
}

/// Joins sending synthetic video of `size` at `fps`, and audio, with `extra` huddle-peer flags.
pub fn join_with(db: &str, room: &str, name: &str, size: &str, fps: u32, extra: &[&str]) -> Peer {
    let bin = Path::new(env!("CARGO_BIN_EXE_huddle")).with_file_name("huddle-peer");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p peer` (cargo test --workspace does)",
        bin.display()
    );
    // It signs in at the app's own database, as a guest on the LAN would: its id is a uid.
    let mut cmd = huddle_peer(&bin, db, room, name);
    cmd.args(["--video", "synthetic", "--audio", "synthetic"])
        .args(["--size", size, "--fps", &fps.to_string()])
        .args(extra)
        .stderr(Stdio::null());
    Peer::start(name, &mut cmd).unwrap()
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
        App::launch_with(dir, Some(name)).await
    }

    /// [`App::launch`] with no name chosen yet (`None`): a first run, as far as the name goes.
    pub async fn launch_with(dir: &Path, name: Option<&str>) -> App {
        let config = dir.join("config");
        std::fs::create_dir_all(&config).expect("config dir");
        let mut settings = serde_json::json!({
            "devices": {"camera": "synthetic", "microphone": "synthetic", "speaker": "none", "display": "synthetic"}
        });
        if let Some(name) = name {
            settings["name"] = name.into();
        }
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
            if Instant::now() >= end {
                let page = self
                    .js("const s = window.huddle?.state; return JSON.stringify({state: s, members: [...(window.huddle?.callView.members ?? new Map())].map(([p, m]) => [p, m.name, m.state, m.streams]), tiles: [...document.querySelectorAll('.tile')].map(t => t.dataset.key + ' ' + t.className), toasts: [...document.querySelectorAll('.toast')].map(t => t.textContent)})")
                    .await;
                panic!("timed out waiting for {what}; the page: {page}");
            }
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
        self.until(
            "the microphone meter showing the test tone",
            "return parseFloat(document.getElementById('mic-meter').style.width) > 20",
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
