//! huddle-peer with real devices: a screen share of an X display (Xvfb) goes through a real call
//! on loopback and the receiver decodes the colours drawn; missing devices cost only their own
//! stream, with a message, and the call goes on.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::process::{Command, Stdio};

use harness::{test_peer, test_peer_id, Peer, Xvfb};
use serde_json::Value;

fn spawn(db: &str, room: &str, name: &str, extra: &[&str], display: Option<&str>) -> Peer {
    let mut cmd = test_peer(env!("CARGO_BIN_EXE_huddle-peer").as_ref(), db, room, name);
    match display {
        Some(d) => cmd.env("DISPLAY", d),
        None => cmd.env_remove("DISPLAY"),
    };
    Peer::start(name, cmd.args(extra).stderr(Stdio::inherit())).unwrap()
}

async fn db() -> (tempfile::TempDir, rtdb::Server) {
    harness::in_process_db().await.unwrap()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
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
        let x = Xvfb::start("320x240x24").unwrap();
        x.xsetroot(&["-solid", "#ff0000"]).unwrap();
        let listed = Command::new(env!("CARGO_BIN_EXE_huddle-peer"))
            .arg("--list-devices")
            .env("DISPLAY", x.display())
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
        let mut a = spawn(
            &url,
            "screen-room",
            "a",
            &[&screen[..], &["--create"]].concat(),
            Some(x.display()),
        );
        a.wait("joined", |v| v["type"] == "joined").unwrap();
        let watch = ["--video", "none", "--audio", "none", "--report-frames"];
        let mut b = spawn(&url, "screen-room", "b", &watch, None);
        let from = test_peer_id("a");
        let red = b
            .wait("a red screen from a", |v| {
                v["type"] == "frame"
                    && v["peer"] == from.as_str()
                    && v["kind"] == "screen"
                    && yuv_near(v, RED, 6.0)
            })
            .unwrap();
        assert_eq!(
            (red["width"].as_u64(), red["height"].as_u64()),
            (Some(320), Some(240))
        );
        // The screen changes: the change arrives.
        let mark = b.mark();
        x.xsetroot(&["-solid", "#0000ff"]).unwrap();
        b.wait_from(mark, "a blue screen from a", |v| {
            v["type"] == "frame"
                && v["peer"] == from.as_str()
                && v["kind"] == "screen"
                && yuv_near(v, BLUE, 6.0)
        })
        .unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_devices_cost_only_their_stream() {
    let (_dir, server) = db().await;
    let url = server.url();
    blocking(move || {
        // No camera on this machine, no X display: both are reported, the synthetic audio goes.
        let mut a = spawn(
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
        let video = a
            .wait("camera unavailable", |v| {
                v["type"] == "device_unavailable"
                    && v["message"].as_str().unwrap_or("").starts_with("video")
            })
            .unwrap();
        assert!(
            video["message"]
                .as_str()
                .unwrap()
                .contains("no camera found"),
            "{video}"
        );
        let screen = a
            .wait("display unavailable", |v| {
                v["type"] == "device_unavailable"
                    && v["message"].as_str().unwrap_or("").starts_with("screen")
            })
            .unwrap();
        assert!(
            screen["message"]
                .as_str()
                .unwrap()
                .contains("no screen to capture"),
            "{screen}"
        );
        a.wait("joined", |v| v["type"] == "joined").unwrap();
        let mut b = spawn(
            &url,
            "nodev-room",
            "b",
            &["--video", "none", "--audio", "none"],
            None,
        );
        let from = test_peer_id("a");
        b.wait("a's audio", |v| {
            v["type"] == "stats"
                && v["peer"] == from.as_str()
                && v["audio_frames_played"].as_u64() > Some(10)
        })
        .unwrap();
        let joined = b
            .wait("a as a member", |v| {
                v["type"] == "member_joined" && v["peer"] == from.as_str()
            })
            .unwrap();
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
            let mut c = spawn(
                &url,
                "nodev-room",
                "c",
                &["--video", "none", "--audio", "mic", "--speaker", "default"],
                None,
            );
            for kind in ["audio: ", "speaker: "] {
                let ev = c
                    .wait(kind, |v| {
                        v["type"] == "device_unavailable"
                            && v["message"].as_str().unwrap_or("").starts_with(kind)
                    })
                    .unwrap();
                assert!(
                    ev["message"].as_str().unwrap().contains("not available"),
                    "{ev}"
                );
            }
            c.wait("joined", |v| v["type"] == "joined").unwrap();
            c.wait("a's audio", |v| {
                v["type"] == "stats"
                    && v["peer"] == from.as_str()
                    && v["audio_frames_played"].as_u64() > Some(10)
            })
            .unwrap();
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
