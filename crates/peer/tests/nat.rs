//! Calls across NATs and through a TURN relay, on one machine (issue 17, §1), in the small
//! internet of network namespaces of `harness::netns` (two homes behind NATs, one of them
//! symmetric, and a public side with coturn), removed after each test. huddle-db runs in this
//! process, on a thread moved into the public namespace; the `huddle-peer`s run in the homes.
//! Needs root, nftables and coturn (`make test` installs them); without root the tests say so
//! loudly and pass without running.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::process::Command;
use std::time::Duration;

use harness::netns::{self, TestNet, PUB, PUB_NS, TURN_PASSWORD, TURN_USER};
use harness::{as_test_user, test_peer_id};
use serde_json::Value;

fn is_root() -> bool {
    if netns::is_root() {
        return true;
    }
    eprintln!(
        "\n\n*** SKIPPED: these tests build network namespaces and NATs, which needs root. Run \
         them as root (CI does). ***\n\n"
    );
    false
}

/// The test network with huddle-db serving on its public side.
struct Net {
    db: harness::NsDb,
    // Dropped last: the database's thread ends first.
    net: TestNet,
}

impl Net {
    fn build(symmetric: bool) -> Net {
        let net = TestNet::build(symmetric).unwrap();
        let listen = format!("{PUB}:0").parse().unwrap();
        let db = harness::in_process_db_in(&net.ns_path(PUB_NS), listen, |_| {}).unwrap();
        Net { db, net }
    }

    /// A `huddle-peer` named `name` in home `home`, with `extra` flags.
    fn peer(&self, home: u8, name: &str, room: &str, extra: &[&str]) -> Member {
        let mut cmd: Command = self
            .net
            .command(&format!("home{home}"), env!("CARGO_BIN_EXE_huddle-peer"));
        cmd.args(["--db", &self.db.url(), "--room", room, "--name", name]);
        as_test_user(&mut cmd, name)
            .args(["--size", "160x96", "--fps", "15", "--audio", "none"])
            .args(extra)
            .stderr(harness::peer_stderr());
        Member {
            name: name.to_owned(),
            peer: harness::Peer::start(name, &mut cmd).unwrap(),
        }
    }
}

struct Member {
    name: String,
    peer: harness::Peer,
}

impl Member {
    /// Waits until its stats about `other` show intact video and the path it takes (sampled
    /// once a second, so it may follow the first frames); that stats event.
    fn intact_video_from(&mut self, other: &str) -> Value {
        let id = test_peer_id(other);
        self.peer
            .wait_within(
                0,
                Duration::from_secs(40),
                &format!("{}: intact video from {other}", self.name),
                |v| {
                    v["type"] == "stats"
                        && v["peer"] == id.as_str()
                        && v["intact_fps"].as_f64().unwrap_or(0.0) >= 5.0
                        && !v["path"].is_null()
                },
            )
            .unwrap()
    }
}

fn stun() -> String {
    netns::stun_url()
}

fn turn() -> String {
    netns::turn_url()
}

/// Both see the other's video, over a path of `kind`.
fn video_both_ways_over(a: &mut Member, b: &mut Member, kind: &str) {
    for (me, other) in [(&mut *a, "b"), (&mut *b, "a")] {
        let stats = me.intact_video_from(other);
        assert_eq!(stats["path"], kind, "{}: {stats}", me.name);
    }
}

#[test]
fn peers_behind_friendly_nats_connect_directly_with_stun() {
    if !is_root() {
        return;
    }
    let net = Net::build(false);
    let stun = stun();
    let mut a = net.peer(1, "a", "r", &["--create", "--ice-server", &stun]);
    let mut b = net.peer(2, "b", "r", &["--ice-server", &stun]);
    video_both_ways_over(&mut a, &mut b, "stun");
}

#[test]
fn a_symmetric_nat_is_crossed_through_the_turn_relay() {
    if !is_root() {
        return;
    }
    let net = Net::build(true);
    let (stun, turn) = (stun(), turn());
    let servers = [
        "--ice-server",
        &stun,
        "--ice-server",
        &turn,
        "--turn-username",
        TURN_USER,
        "--turn-password",
        TURN_PASSWORD,
    ];
    let mut a = net.peer(1, "a", "r", &[&["--create"][..], &servers].concat());
    let mut b = net.peer(2, "b", "r", &servers);
    video_both_ways_over(&mut a, &mut b, "relay");
    // The configured server was fine: nobody was told otherwise.
    for m in [&a, &b] {
        assert!(
            !m.peer
                .seen()
                .iter()
                .any(|v| v["type"] == "ice_server_problem"),
            "{}: {:?}",
            m.name,
            m.peer.seen()
        );
    }
}

#[test]
fn relay_only_goes_through_the_relay_even_where_a_direct_path_exists() {
    if !is_root() {
        return;
    }
    let net = Net::build(false);
    let (stun, turn) = (stun(), turn());
    let relay = [
        "--ice-server",
        &turn,
        "--turn-username",
        TURN_USER,
        "--turn-password",
        TURN_PASSWORD,
        "--relay-only",
    ];
    // Only a asks for it: a's side offers the other nothing but its relay.
    let mut a = net.peer(1, "a", "r", &[&["--create"][..], &relay].concat());
    let mut b = net.peer(2, "b", "r", &["--ice-server", &stun]);
    video_both_ways_over(&mut a, &mut b, "relay");
}

#[test]
fn wrong_turn_credentials_are_reported_naming_the_server() {
    if !is_root() {
        return;
    }
    let net = Net::build(true);
    let turn = turn();
    let mut a = net.peer(
        1,
        "a",
        "r",
        &[
            "--create",
            "--ice-server",
            &turn,
            "--turn-username",
            TURN_USER,
            "--turn-password",
            "not-the-password",
        ],
    );
    let problem = a
        .peer
        .wait("the TURN problem", |v| v["type"] == "ice_server_problem")
        .unwrap();
    assert_eq!(problem["url"], turn.as_str(), "{problem}");
    let message = problem["message"].as_str().unwrap();
    assert!(
        message.contains(&turn) && message.contains("refused the user name or password"),
        "{message}"
    );
}

/// Issue 17, §4: a laptop moves to another network mid-call (new address, behind another NAT).
/// The call should repair itself by an ICE restart: video back both ways, nobody leaving or
/// joining again. It does not yet (run it with `--ignored`): the signaling connections opened
/// from the old address hang until their timeouts (10 s a request, 75 s a quiet stream), and
/// with them renewed (branch `wip-network-change`) the ICE restart's offer and answer get
/// through but webrtc-rs's restarted ICE never connects from the new address; the call comes
/// back only ~20 s after the move, when the old connection's onDisconnect removes the mover
/// and it rejoins.
#[test]
#[ignore = "known failure: an ICE restart after an address change does not connect (issue 17, §4)"]
fn a_peer_that_moves_to_another_network_mid_call_keeps_the_call() {
    if !is_root() {
        return;
    }
    let net = Net::build(false);
    let stun = stun();
    let mut a = net.peer(1, "a", "r", &["--create", "--ice-server", &stun]);
    let mut b = net.peer(2, "b", "r", &["--ice-server", &stun]);
    video_both_ways_over(&mut a, &mut b, "stun");
    let marks = [a.peer.mark(), b.peer.mark()];
    net.net.move_home1_to_a_new_network().unwrap();
    let moved = std::time::Instant::now();
    for (i, (me, other)) in [(&mut a, "b"), (&mut b, "a")].into_iter().enumerate() {
        let id = test_peer_id(other);
        // Frames that were in flight can show as intact for a moment after the move: wait for
        // the repair (an ICE restart) first, then for intact video after it.
        let restart = me
            .peer
            .wait_within(marks[i], Duration::from_secs(30), "an ICE restart", |v| {
                (v["type"] == "ice_restart" && v["peer"] == id.as_str())
                    || (v["type"] == "connection"
                        && v["peer"] == id.as_str()
                        && v["state"] == "disconnected")
            })
            .unwrap();
        let _ = restart;
        let from = me.peer.mark();
        me.peer
            .wait_within(from, Duration::from_secs(40), "intact video again", |v| {
                v["type"] == "stats"
                    && v["peer"] == id.as_str()
                    && v["intact_fps"].as_f64().unwrap_or(0.0) >= 5.0
            })
            .unwrap();
        eprintln!(
            "{}: intact video from {other} {:.1} s after the move",
            me.name,
            moved.elapsed().as_secs_f64()
        );
    }
    for m in [&a, &b] {
        let rejoins = m
            .peer
            .seen()
            .iter()
            .filter(|v| v["type"] == "member_left" || v["type"] == "member_joined")
            .count();
        assert_eq!(
            rejoins,
            1,
            "{}: only the first join: {:?}",
            m.name,
            m.peer.seen()
        );
    }
}
