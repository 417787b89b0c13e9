//! Network outages mid-call, with real processes on a real (if private) network: the test moves
//! itself into a fresh network namespace that has nothing but `lo` (`unshare(CLONE_NEWNET)`, so
//! no packet can leave the machine), runs huddle-db there in-process and two `huddle-peer`
//! processes (children inherit the namespace), and takes `lo` down and up again while video
//! flows. Media AND signaling are lost for the outage, as when a laptop's Wi-Fi drops.
//!
//! Needs root (CAP_SYS_ADMIN) for the namespace, as CI has; without it the test says so loudly
//! and passes without running, since nothing else can stand in for a real outage.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::{as_test_user, huddle_peer, test_peer_id};
use nix::errno::Errno;
use nix::sched::CloneFlags;
use serde_json::Value;

/// Moves this thread (and every thread and process it starts from now on) into a new network
/// namespace with `lo` up. False, after a loud message, when namespaces are unavailable here.
fn enter_private_network() -> bool {
    match nix::sched::unshare(CloneFlags::CLONE_NEWNET) {
        Ok(()) => {
            ip(&["link", "set", "lo", "up"]);
            true
        }
        Err(e @ (Errno::EPERM | Errno::EINVAL | Errno::ENOSYS)) => {
            eprintln!(
                "\n\n*** SKIPPED: cannot create a network namespace ({e}): this test needs root \
                 (CAP_SYS_ADMIN) to take a private `lo` down. Run it as root (CI does). ***\n\n"
            );
            false
        }
        Err(e) => panic!("unshare(CLONE_NEWNET) failed: {e}"),
    }
}

/// Runs `ip ARGS` in the current namespace.
fn ip(args: &[&str]) {
    let status = Command::new("ip")
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("cannot run `ip` (iproute2 installed?): {e}"));
    assert!(status.success(), "ip {args:?} failed");
}

struct Peer {
    name: String,
    peer: harness::Peer,
}

impl Peer {
    fn spawn(db: &str, name: &str, extra: &[&str]) -> Peer {
        let bin = env!("CARGO_BIN_EXE_huddle-peer").as_ref();
        let mut cmd = huddle_peer(bin, db, "outage", name);
        as_test_user(&mut cmd, name)
            .args(["--size", "320x180", "--fps", "15"])
            .args(["--audio", "none"])
            // Presence outlives the outages: a repaired connection, not a rejoin, is the point.
            .args(["--heartbeat-ms", "500", "--expiry-ms", "60000"])
            .args(extra)
            .stderr(Stdio::inherit());
        Peer {
            name: name.to_owned(),
            peer: harness::Peer::start(name, &mut cmd).unwrap(),
        }
    }

    fn id(name: &str) -> String {
        test_peer_id(name)
    }

    /// Takes in every line printed so far; the index after them marks "from now on".
    fn mark(&mut self) -> usize {
        self.peer.mark()
    }

    /// Waits up to `within` for an event from index `from` on matching `pred`.
    fn wait_from(
        &mut self,
        from: usize,
        within: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        self.peer.wait_within(from, within, what, pred).unwrap()
    }

    /// Stats about `other` from index `from` on.
    fn stats_from<'a>(&'a self, from: usize, other: &'a str) -> impl Iterator<Item = &'a Value> {
        let id = Peer::id(other);
        self.peer
            .seen()
            .iter()
            .skip(from)
            .filter(move |v| v["type"] == "stats" && v["peer"] == id.as_str())
    }
}

fn f(v: &Value, field: &str) -> f64 {
    v[field].as_f64().unwrap_or(0.0)
}

/// Takes `lo` down for `outage`, then checks both peers: the connection comes back without
/// anyone leaving or rejoining, and within `bound` of the link's return each decodes the other
/// at `min_fps` intact frames per second or better; no damaged frame is shown meanwhile.
fn outage_and_recovery(peers: &mut [&mut Peer; 2], outage: Duration, bound: Duration) {
    const MIN_FPS: f64 = 10.0; // of 15 sent
    ip(&["link", "set", "lo", "down"]);
    std::thread::sleep(outage);
    ip(&["link", "set", "lo", "up"]);
    let back = Instant::now();
    let marks = [peers[0].mark(), peers[1].mark()];
    let names = [peers[0].name.clone(), peers[1].name.clone()];
    for (i, p) in peers.iter_mut().enumerate() {
        let other = names[1 - i].clone();
        let id = Peer::id(&other);
        let left = bound.saturating_sub(back.elapsed());
        p.wait_from(marks[i], left, &format!("intact video from {other}"), |v| {
            v["type"] == "stats" && v["peer"] == id.as_str() && f(v, "intact_fps") >= MIN_FPS
        });
        eprintln!(
            "{}: video from {other} back intact {:.1} s after the link returned",
            p.name,
            back.elapsed().as_secs_f64()
        );
    }
    // Two more seconds of steady, intact video.
    std::thread::sleep(Duration::from_secs(2));
    for (i, p) in peers.iter_mut().enumerate() {
        p.mark();
        let other = &names[1 - i];
        let damaged: f64 = p
            .stats_from(marks[i], other)
            .map(|v| f(v, "fps") - f(v, "intact_fps"))
            .sum();
        assert_eq!(
            damaged, 0.0,
            "{}: damaged frames from {other} were shown",
            p.name
        );
        let last = p.stats_from(marks[i], other).last().unwrap();
        assert!(f(last, "intact_fps") >= MIN_FPS, "{}: {last}", p.name);
        let id = Peer::id(other);
        let rejoins: Vec<&Value> = p
            .peer
            .seen()
            .iter()
            .filter(|v| {
                (v["type"] == "member_left" || v["type"] == "member_joined")
                    && v["peer"] == id.as_str()
            })
            .collect();
        assert_eq!(
            rejoins.len(),
            1,
            "{}: only the first join: {rejoins:?}",
            p.name
        );
    }
}

#[test]
fn outages_are_repaired_without_a_rejoin_and_video_comes_back_intact() {
    if !enter_private_network() {
        return;
    }
    // Built on this thread after the switch, so its threads (the database) live in the
    // namespace too.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (_dir, server) = runtime.block_on(harness::in_process_db()).unwrap();
    let url = server.url();
    let mut a = Peer::spawn(&url, "a", &["--create"]);
    a.wait_from(0, Duration::from_secs(30), "joined", |v| {
        v["type"] == "joined"
    });
    let mut b = Peer::spawn(&url, "b", &[]);
    for (p, other) in [(&mut a, "b"), (&mut b, "a")] {
        let id = Peer::id(other);
        p.wait_from(0, Duration::from_secs(30), "first frame", |v| {
            v["type"] == "first_frame" && v["peer"] == id.as_str()
        });
    }
    std::thread::sleep(Duration::from_secs(1));

    // 6 s: ICE notices (disconnected) but the path comes back by itself.
    outage_and_recovery(
        &mut [&mut a, &mut b],
        Duration::from_secs(6),
        Duration::from_secs(6),
    );
    for p in [&a, &b] {
        assert!(
            p.peer
                .seen()
                .iter()
                .any(|v| v["type"] == "connection" && v["state"] == "disconnected"),
            "{}: the outage went unnoticed",
            p.name
        );
    }

    // 12 s: a (the smaller id, which repairs) restarts ICE while the link is still down, 3 s
    // after it was reported lost; the restart's offer reaches b once the link is back, and the
    // new ICE session carries the call. Without the restart a's agent, restarted alone, could
    // not reconnect by itself.
    let mark = a.mark();
    outage_and_recovery(
        &mut [&mut a, &mut b],
        Duration::from_secs(12),
        Duration::from_secs(10),
    );
    a.wait_from(mark, Duration::ZERO, "an ICE restart", |v| {
        v["type"] == "ice_restart" && v["peer"] == "b-0000000"
    });
    drop((a, b));
    runtime.block_on(server.shutdown());
}
