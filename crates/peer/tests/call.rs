//! Real calls on loopback: several `huddle-peer` processes in one room on an in-process
//! huddle-db, every connection a real webrtc-rs PeerConnection gathering on 127.0.0.1 only.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::BTreeSet;
use std::process::Stdio;

use harness::{test_peer, test_peer_id, Peer};
use serde_json::Value;

fn spawn(db: &str, room: &str, name: &str, extra: &[&str]) -> Peer {
    let bin = env!("CARGO_BIN_EXE_huddle-peer").as_ref();
    let mut cmd = test_peer(bin, db, room, name);
    Peer::start(name, cmd.args(extra).stderr(Stdio::inherit())).unwrap()
}

/// Waits for the first decoded frame of `kind` from `other`.
fn first_frame_from(p: &mut Peer, other: &str, kind: &str) -> Value {
    let from = test_peer_id(other);
    let kind = kind.to_owned();
    p.wait(&format!("first {kind} frame from {other}"), move |v| {
        v["type"] == "first_frame" && v["peer"] == from.as_str() && v["kind"] == kind.as_str()
    })
    .unwrap()
}

async fn db() -> (tempfile::TempDir, rtdb::Server) {
    harness::in_process_db().await.unwrap()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_peers_form_a_full_mesh_toggle_leave_and_crash() {
    let (_dir, server) = db().await;
    let url = server.url();
    blocking(move || {
        let mut a = spawn(&url, "mesh-room", "a", &["--create"]);
        a.wait("joined", |v| v["type"] == "joined").unwrap();
        let mut b = spawn(&url, "mesh-room", "b", &[]);
        let mut c = spawn(&url, "mesh-room", "c", &[]);
        // Every peer decodes every other's video and receives their audio.
        for (p, others) in [
            (&mut a, ["b", "c"]),
            (&mut b, ["a", "c"]),
            (&mut c, ["a", "b"]),
        ] {
            for o in others {
                first_frame_from(p, o, "video");
                let id = test_peer_id(o);
                p.wait(&format!("audio from {o}"), move |v| {
                    v["type"] == "stats"
                        && v["peer"] == id.as_str()
                        && v["audio_packets"].as_u64().unwrap_or(0) > 10
                })
                .unwrap();
            }
        }
        // a turns its camera off and on: the others see the change, its video stops, then resumes.
        let marks = [b.mark(), c.mark()];
        a.send("video off").unwrap();
        for (p, mark) in [(&mut b, marks[0]), (&mut c, marks[1])] {
            p.wait_from(mark, "a's camera off", |v| {
                v["type"] == "streams_changed"
                    && v["peer"] == "a-0000000"
                    && v["streams"]["video"] == false
            })
            .unwrap();
            p.wait_from(mark, "a's video track removed", |v| {
                v["type"] == "track_removed" && v["peer"] == "a-0000000" && v["kind"] == "video"
            })
            .unwrap();
            p.wait_from(mark, "a's video stopped", |v| {
                v["type"] == "stats"
                    && v["peer"] == "a-0000000"
                    && v["fps"].as_f64() == Some(0.0)
                    && v["audio_packets"].as_u64() > Some(0)
            })
            .unwrap();
        }
        let marks = [b.mark(), c.mark()];
        a.send("video on").unwrap();
        for (p, mark) in [(&mut b, marks[0]), (&mut c, marks[1])] {
            p.wait_from(mark, "a's camera on", |v| {
                v["type"] == "streams_changed"
                    && v["peer"] == "a-0000000"
                    && v["streams"]["video"] == true
            })
            .unwrap();
            p.wait_from(mark, "a's video track back", |v| {
                v["type"] == "track_added" && v["peer"] == "a-0000000" && v["kind"] == "video"
            })
            .unwrap();
            p.wait_from(mark, "a's video flowing again", |v| {
                v["type"] == "stats"
                    && v["peer"] == "a-0000000"
                    && v["fps"].as_f64().unwrap_or(0.0) >= 5.0
            })
            .unwrap();
        }
        // c leaves cleanly; b is killed.
        c.send("leave").unwrap();
        c.wait("left", |v| v["type"] == "left").unwrap();
        assert!(c.child().wait().unwrap().success(), "a clean leave exits 0");
        a.wait("c left", |v| {
            v["type"] == "member_left" && v["peer"] == "c-0000000" && v["reason"] == "left"
        })
        .unwrap();
        b.child().kill().unwrap();
        let _ = b.child().wait();
        a.wait("b dropped", |v| {
            v["type"] == "member_left" && v["peer"] == "b-0000000"
        })
        .unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_audio_is_played_and_its_speaker_detected() {
    let (_dir, server) = db().await;
    let url = server.url();
    blocking(move || {
        let mut a = spawn(&url, "voice", "a", &["--create", "--video", "none"]);
        a.wait("joined", |v| v["type"] == "joined").unwrap();
        let _b = spawn(&url, "voice", "b", &["--video", "none"]);
        // b sends the speech-like tone: a hears it, plays it out and sees b start speaking.
        let played = |v: &Value| v["audio_frames_played"].as_u64().unwrap_or(0);
        let first = a
            .wait("b's audio played", |v| {
                v["type"] == "stats" && v["peer"] == "b-0000000" && played(v) > 10
            })
            .unwrap();
        a.wait("b speaking", |v| {
            v["type"] == "audio_level" && v["peer"] == "b-0000000" && v["speaking"] == true
        })
        .unwrap();
        a.wait("b's audio still playing", |v| {
            v["type"] == "stats" && v["peer"] == "b-0000000" && played(v) > played(&first) + 25
        })
        .unwrap();
        // The connection's round-trip time (the ICE pair's STUN round trip) is in the stats.
        a.wait("a round-trip time to b", |v| {
            v["type"] == "stats" && v["peer"] == "b-0000000" && v["rtt_ms"].as_f64() > Some(0.0)
        })
        .unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_rooms_and_clear_errors() {
    let (_dir, server) = db().await;
    let url = server.url();
    blocking(move || {
        let mut a = spawn(
            &url,
            "secret-room",
            "a",
            &["--create", "--private", "s3cret", "--audio", "none"],
        );
        a.wait("joined", |v| v["type"] == "joined").unwrap();
        let mut b = spawn(
            &url,
            "secret-room",
            "b",
            &["--private", "s3cret", "--audio", "none"],
        );
        first_frame_from(&mut b, "a", "video");
        first_frame_from(&mut a, "b", "video");
        // The wrong secret, a missing room and an unreachable database: exit 2 with words.
        for (args, words) in [
            (vec!["--private", "wrong"], "wrong secret"),
            (vec![], "needs its secret"),
        ] {
            let mut x = spawn(&url, "secret-room", "x", &args);
            let err = x.wait("error", |v| v["type"] == "error").unwrap();
            assert!(err["message"].as_str().unwrap().contains(words), "{err}");
            assert_eq!(x.child().wait().unwrap().code(), Some(2));
        }
        let mut x = spawn(&url, "no-such-room", "x", &[]);
        let err = x.wait("error", |v| v["type"] == "error").unwrap();
        assert!(
            err["message"].as_str().unwrap().contains("does not exist"),
            "{err}"
        );
        assert_eq!(x.child().wait().unwrap().code(), Some(2));
        let mut x = spawn("http://127.0.0.1:9", "room", "x", &[]);
        let err = x.wait("error", |v| v["type"] == "error").unwrap();
        assert!(
            err["message"]
                .as_str()
                .unwrap()
                .contains("cannot reach the database"),
            "{err}"
        );
        assert_eq!(x.child().wait().unwrap().code(), Some(2));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossing_renegotiations_resolve() {
    let (_dir, server) = db().await;
    let url = server.url();
    blocking(move || {
        let mut a = spawn(&url, "glare", "a", &["--create", "--audio", "none"]);
        a.wait("joined", |v| v["type"] == "joined").unwrap();
        let mut b = spawn(&url, "glare", "b", &["--audio", "none"]);
        first_frame_from(&mut a, "b", "video");
        first_frame_from(&mut b, "a", "video");
        // Both start sharing their screens at the same moment: offers cross.
        a.send("screen on").unwrap();
        b.send("screen on").unwrap();
        first_frame_from(&mut a, "b", "screen");
        first_frame_from(&mut b, "a", "screen");
        let kinds: BTreeSet<String> = a
            .seen()
            .iter()
            .filter(|v| v["type"] == "track_added")
            .map(|v| v["kind"].as_str().unwrap().to_owned())
            .collect();
        assert!(
            kinds.contains("screen") && kinds.contains("video"),
            "{kinds:?}"
        );
    })
    .await;
}

/// A peer sharing its screen from the moment it joins answers the first offer, which has no
/// m-section for a screen (the offerer has none): it must offer its screen itself afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screen_shared_at_join_reaches_the_first_offerer() {
    let (_dir, server) = db().await;
    let url = server.url();
    blocking(move || {
        let mut a = spawn(&url, "early", "a", &["--create", "--audio", "none"]);
        a.wait("joined", |v| v["type"] == "joined").unwrap();
        // "a" < "b": a sends the first offer (its camera only), b answers it.
        let mut b = spawn(
            &url,
            "early",
            "b",
            &["--audio", "none", "--screen", "synthetic"],
        );
        b.wait("joined", |v| v["type"] == "joined").unwrap();
        first_frame_from(&mut a, "b", "video");
        first_frame_from(&mut a, "b", "screen");
        first_frame_from(&mut b, "a", "video");
    })
    .await;
}

/// a and b both want H.264 and use it with each other, screen share included; c wants only VP8,
/// so a and b send it VP8 (each of them encoding its camera twice, once per codec) and every
/// picture still decodes with its stamp intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_between_peers_that_both_want_it_vp8_with_the_rest() {
    let (_dir, server) = db().await;
    let url = server.url();
    blocking(move || {
        let h264 = ["--codec", "h264", "--audio", "none"];
        let mut a = spawn(&url, "codecs", "a", &[&h264[..], &["--create"]].concat());
        a.wait("joined", |v| v["type"] == "joined").unwrap();
        let mut b = spawn(&url, "codecs", "b", &h264);
        let mut c = spawn(&url, "codecs", "c", &["--audio", "none"]);
        let codec_of = |p: &mut Peer, from: &str, kind: &str| -> String {
            let (id, kind) = (test_peer_id(from), kind.to_owned());
            let track = p
                .wait(&format!("{kind} track from {from}"), move |v| {
                    v["type"] == "track_added"
                        && v["peer"] == id.as_str()
                        && v["kind"] == kind.as_str()
                })
                .unwrap();
            track["codec"].as_str().unwrap().to_owned()
        };
        for (p, pairs) in [
            (&mut a, [("b", "h264"), ("c", "vp8")]),
            (&mut b, [("a", "h264"), ("c", "vp8")]),
            (&mut c, [("a", "vp8"), ("b", "vp8")]),
        ] {
            for (from, want) in pairs {
                assert_eq!(codec_of(p, from, "video"), want, "{from}'s camera");
                let id = test_peer_id(from);
                // Intact: the stamp in the pixels read back, so the picture decoded right.
                p.wait(&format!("intact video from {from}"), move |v| {
                    v["type"] == "stats"
                        && v["peer"] == id.as_str()
                        && v["intact_fps"].as_f64().unwrap_or(0.0) >= 5.0
                })
                .unwrap();
            }
        }
        // A screen share added later goes over a new m-section in the connection's codec.
        a.send("screen on").unwrap();
        assert_eq!(codec_of(&mut b, "a", "screen"), "h264");
        assert_eq!(codec_of(&mut c, "a", "screen"), "vp8");
        first_frame_from(&mut b, "a", "screen");
        first_frame_from(&mut c, "a", "screen");
    })
    .await;
}

/// Muting (`mute on`) is what the others see as microphone off, with no audio reaching them;
/// unmuting brings the same track back at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn muting_stops_the_audio_others_get_and_unmuting_resumes_it() {
    let (_dir, server) = db().await;
    let url = server.url();
    blocking(move || {
        let mut a = spawn(&url, "mute", "a", &["--create", "--video", "none"]);
        a.wait("joined", |v| v["type"] == "joined").unwrap();
        let mut b = spawn(&url, "mute", "b", &["--video", "none"]);
        let packets = |v: &Value| v["audio_packets"].as_u64().unwrap_or(0);
        let from_a = |v: &Value| v["type"] == "stats" && v["peer"] == "a-0000000";
        b.wait("a's audio", |v| from_a(v) && packets(v) > 20)
            .unwrap();
        // Seen by b: a's microphone flag and its audio track, after `a` sends `cmd`.
        let switched = |a: &mut Peer, b: &mut Peer, cmd: &str, on: bool| {
            let mark = b.mark();
            a.send(cmd).unwrap();
            b.wait_from(mark, &format!("a's microphone on={on}"), |v| {
                v["type"] == "streams_changed"
                    && v["peer"] == "a-0000000"
                    && v["streams"]["audio"] == on
            })
            .unwrap();
            let event = if on { "track_added" } else { "track_removed" };
            b.wait_from(mark, &format!("a's audio {event}"), |v| {
                v["type"] == event && v["peer"] == "a-0000000" && v["kind"] == "audio"
            })
            .unwrap();
            mark
        };
        switched(&mut a, &mut b, "mute on", false);
        // Once the last packets in flight are in, the count stands still (stats every second).
        let mut counts = Vec::new();
        for _ in 0..3 {
            let m = b.mark();
            counts.push(packets(
                &b.wait_from(m, "stats while muted", from_a).unwrap(),
            ));
        }
        assert!(
            counts[2] <= counts[0] + 1,
            "audio kept coming while muted: {counts:?}"
        );
        let mark = switched(&mut a, &mut b, "mute off", true);
        let resumed = counts[2] + 20;
        b.wait_from(mark, "a's audio flowing again", move |v| {
            from_a(v) && packets(v) > resumed
        })
        .unwrap();
    })
    .await;
}
