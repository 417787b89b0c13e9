//! huddle-peer with real devices: a screen share of an X display (Xvfb) goes through a real call
//! on loopback and the receiver decodes the colours drawn; missing devices cost only their own
//! stream, with a message, and the call goes on.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

#[path = "support/events.rs"]
mod events;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use events::Events;
use serde_json::Value;

const T: Duration = Duration::from_secs(30);

struct Peer {
    child: Child,
    events: Events,
}

impl Peer {
    fn spawn(db: &str, room: &str, name: &str, extra: &[&str], display: Option<&str>) -> Peer {
        let mut cmd = events::test_peer(db, room, name);
        match display {
            Some(d) => cmd.env("DISPLAY", d),
            None => cmd.env_remove("DISPLAY"),
        };
        let mut child = cmd
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let events = Events::follow(name, child.stdout.take().unwrap());
        Peer { child, events }
    }

    fn id(name: &str) -> String {
        format!("{name}-0000000")
    }

    /// Takes in every line printed so far; the index after them marks "from now on".
    fn mark(&mut self) -> usize {
        self.events.mark()
    }

    /// Waits for an event matching `pred`; returns it. Fails after `T`.
    fn wait(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.wait_from(0, what, pred)
    }

    /// Like `wait`, considering only events from index `from` on.
    fn wait_from(&mut self, from: usize, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.events.wait_from(from, T, what, pred)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn db() -> (tempfile::TempDir, rtdb::Server) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = rtdb::ServerConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().to_owned());
    config.rules_file =
        Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../database.rules.json"));
    let server = rtdb::Server::start(config).await.unwrap();
    (dir, server)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// An Xvfb server on a free display number, killed on drop. `-noreset`: otherwise the server
/// resets (root window back to black) whenever its last client, e.g. xsetroot, disconnects.
struct Xvfb {
    display: String,
    child: Child,
}

impl Xvfb {
    fn start(size: &str) -> Xvfb {
        for n in (100 + std::process::id() % 400 + 7)..1000 {
            if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                || Path::new(&format!("/tmp/.X{n}-lock")).exists()
            {
                continue;
            }
            let display = format!(":{n}");
            let mut child = Command::new("Xvfb")
                .args([
                    &display,
                    "-screen",
                    "0",
                    size,
                    "-nolisten",
                    "tcp",
                    "-noreset",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("Xvfb is needed for this test (scripts/install-deps.sh installs it)");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
                    return Xvfb { display, child };
                }
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("could not start Xvfb");
    }

    fn solid(&self, colour: &str) {
        let status = Command::new("xsetroot")
            .args(["-display", &self.display, "-solid", colour])
            .status()
            .expect("xsetroot is needed (x11-xserver-utils)");
        assert!(status.success());
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn yuv_near(v: &Value, want: [f64; 3], tol: f64) -> bool {
    let Some(m) = v["mean_yuv"].as_array() else {
        return false;
    };
    m.len() == 3
        && m.iter()
            .zip(want)
            .all(|(g, w)| (g.as_f64().unwrap_or(-100.0) - w).abs() <= tol)
}

// BT.601 limited range.
const RED: [f64; 3] = [81.0, 90.0, 240.0];
const BLUE: [f64; 3] = [41.0, 240.0, 110.0];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_x_display_reaches_the_other_peer() {
    let (_dir, server) = db().await;
    let url = server.url();
    blocking(move || {
        let x = Xvfb::start("320x240x24");
        x.solid("#ff0000");
        let listed = Command::new(env!("CARGO_BIN_EXE_huddle-peer"))
            .arg("--list-devices")
            .env("DISPLAY", &x.display)
            .output()
            .unwrap();
        assert!(listed.status.success());
        let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
        assert_eq!(
            listed["displays"][0]["name"], "Display 0 (320x240)",
            "{listed}"
        );

        let screen = [
            "--video",
            "none",
            "--audio",
            "none",
            "--screen",
            "display:0",
        ];
        let mut a = Peer::spawn(
            &url,
            "screen-room",
            "a",
            &[&screen[..], &["--create"]].concat(),
            Some(&x.display),
        );
        a.wait("joined", |v| v["type"] == "joined");
        let watch = ["--video", "none", "--audio", "none", "--report-frames"];
        let mut b = Peer::spawn(&url, "screen-room", "b", &watch, None);
        let from = Peer::id("a");
        let red = b.wait("a red screen from a", |v| {
            v["type"] == "frame"
                && v["peer"] == from.as_str()
                && v["kind"] == "screen"
                && yuv_near(v, RED, 6.0)
        });
        assert_eq!(
            (red["width"].as_u64(), red["height"].as_u64()),
            (Some(320), Some(240))
        );
        // The screen changes: the change arrives.
        let mark = b.mark();
        x.solid("#0000ff");
        b.wait_from(mark, "a blue screen from a", |v| {
            v["type"] == "frame"
                && v["peer"] == from.as_str()
                && v["kind"] == "screen"
                && yuv_near(v, BLUE, 6.0)
        });
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_devices_cost_only_their_stream() {
    let (_dir, server) = db().await;
    let url = server.url();
    blocking(move || {
        // No camera on this machine, no X display: both are reported, the synthetic audio goes.
        let mut a = Peer::spawn(
            &url,
            "nodev-room",
            "a",
            &[
                "--create",
                "--video",
                "camera",
                "--screen",
                "display:3",
                "--audio",
                "synthetic",
            ],
            None,
        );
        let video = a.wait("camera unavailable", |v| {
            v["type"] == "device_unavailable"
                && v["message"].as_str().unwrap_or("").starts_with("video")
        });
        assert!(
            video["message"]
                .as_str()
                .unwrap()
                .contains("no camera found"),
            "{video}"
        );
        let screen = a.wait("display unavailable", |v| {
            v["type"] == "device_unavailable"
                && v["message"].as_str().unwrap_or("").starts_with("screen")
        });
        assert!(
            screen["message"]
                .as_str()
                .unwrap()
                .contains("no screen to capture"),
            "{screen}"
        );
        a.wait("joined", |v| v["type"] == "joined");
        let mut b = Peer::spawn(
            &url,
            "nodev-room",
            "b",
            &["--video", "none", "--audio", "none"],
            None,
        );
        let from = Peer::id("a");
        b.wait("a's audio", |v| {
            v["type"] == "stats"
                && v["peer"] == from.as_str()
                && v["audio_frames_played"].as_u64() > Some(10)
        });
        let joined = b.wait("a as a member", |v| {
            v["type"] == "member_joined" && v["peer"] == from.as_str()
        });
        assert_eq!(joined["streams"]["video"], false, "{joined}");
        assert_eq!(joined["streams"]["screen"], false, "{joined}");
        assert_eq!(joined["streams"]["audio"], true, "{joined}");

        // A sound card that is not there (this box: ALSA's null device only): microphone and
        // speaker are reported, the peer still joins and receives.
        let list = Command::new(env!("CARGO_BIN_EXE_huddle-peer"))
            .arg("--list-devices")
            .output()
            .unwrap();
        let list: Value = serde_json::from_slice(&list.stdout).unwrap();
        let no_sound_card = list["microphones"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["id"] == "alsa:null");
        if no_sound_card {
            let mut c = Peer::spawn(
                &url,
                "nodev-room",
                "c",
                &["--video", "none", "--audio", "mic", "--speaker", "default"],
                None,
            );
            for kind in ["audio: ", "speaker: "] {
                let ev = c.wait(kind, |v| {
                    v["type"] == "device_unavailable"
                        && v["message"].as_str().unwrap_or("").starts_with(kind)
                });
                assert!(
                    ev["message"].as_str().unwrap().contains("not available"),
                    "{ev}"
                );
            }
            c.wait("joined", |v| v["type"] == "joined");
            c.wait("a's audio", |v| {
                v["type"] == "stats"
                    && v["peer"] == from.as_str()
                    && v["audio_frames_played"].as_u64() > Some(10)
            });
        }

        // A flag naming no kind of device is refused in words, before anything starts.
        let out = Command::new(env!("CARGO_BIN_EXE_huddle-peer"))
            .args(["--db", &url, "--room", "x", "--video", "webcam"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("expected synthetic, none, camera or camera:ID"),
            "{err}"
        );
    })
    .await;
}
