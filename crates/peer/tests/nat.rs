//! Calls across NATs and through a TURN relay, on one machine (issue 17, §1). Each test builds
//! a small internet of network namespaces that only connect to each other through veth pairs
//! it made, all on 198.18.0.0/15 (the range reserved for network tests), and removes them after:
//!
//! ```text
//!  home1 198.19.1.2 ── nat1 ─┐                 ┌─ nat2 ── home2 198.19.2.2
//!          (masquerade) .11  └── pub 198.18.0.1 ──┘ .12 (masquerade; "symmetric": fully random)
//!                                huddle-db :8080, coturn :3478 (STUN + TURN, long-term credential)
//! ```
//!
//! The NATs drop unsolicited packets before conntrack keeps them (as home routers do; without
//! it the kernel remaps a port that an early inbound check "took", and even friendly NATs break
//! hole punching). `pub` routes the homes' private range to a neighbour that does not exist,
//! as the internet swallows private addresses: with no route at all, coturn's relay socket gets
//! "network unreachable" for a host candidate and stops relaying anything.
//!
//! huddle-db runs in this process (a thread moved into `pub`), coturn and the `huddle-peer`s
//! as processes in their namespaces. Needs root, `nft` (nftables) and `turnserver` (coturn),
//! which `make test` installs; without root the tests say so loudly and pass without running.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use harness::{as_test_user, test_peer_id, Proc};
use serde_json::Value;

const PUB: &str = "198.18.0.1";
const TURN_USER: &str = "huddle";
const TURN_PASSWORD: &str = "relay-s3cret";

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} (installed? `make test` installs it): {e}")
        });
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ns_run(ns: &str, program: &str, args: &[&str]) {
    let mut all = vec!["netns", "exec", ns, program];
    all.extend_from_slice(args);
    run("ip", &all);
}

/// nft in `ns`, from a script.
fn nft(ns: &str, script: &str) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run nft (nftables installed? `make test` installs it)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "nft in {ns}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!(
        "\n\n*** SKIPPED: these tests build network namespaces and NATs, which needs root. Run \
         them as root (CI does). ***\n\n"
    );
    false
}

/// The namespaces of one test, removed on drop (with anything still running in them).
struct Net {
    tag: String,
    db: Option<(
        std::thread::JoinHandle<()>,
        tokio::sync::oneshot::Sender<()>,
    )>,
    db_url: String,
    _turn: Option<Proc>,
    dir: tempfile::TempDir,
}

impl Net {
    fn ns(&self, name: &str) -> String {
        format!("{}{name}", self.tag)
    }

    /// The network above; `symmetric`: home 2's NAT maps every destination to a new random
    /// port (endpoint-dependent), so no direct path to it can be found.
    fn build(symmetric: bool) -> Net {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let tag = format!(
            "hn{}x{}",
            std::process::id() % 100_000,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut net = Net {
            tag,
            db: None,
            db_url: String::new(),
            _turn: None,
            dir: tempfile::tempdir().unwrap(),
        };
        let (p, t) = (net.ns("pub"), net.tag.clone());
        for n in ["pub", "nat1", "nat2", "home1", "home2"] {
            run("ip", &["netns", "add", &net.ns(n)]);
            run("ip", &["-n", &net.ns(n), "link", "set", "lo", "up"]);
        }
        run("ip", &["-n", &p, "link", "add", "br0", "type", "bridge"]);
        run(
            "ip",
            &["-n", &p, "addr", "add", &format!("{PUB}/24"), "dev", "br0"],
        );
        run("ip", &["-n", &p, "link", "set", "br0", "up"]);
        // The internet swallows private addresses (see the module's comment).
        run(
            "ip",
            &[
                "-n",
                &p,
                "neigh",
                "add",
                "198.18.0.254",
                "lladdr",
                "02:00:00:00:00:fe",
                "dev",
                "br0",
                "nud",
                "permanent",
            ],
        );
        run(
            "ip",
            &[
                "-n",
                &p,
                "route",
                "add",
                "198.19.0.0/16",
                "via",
                "198.18.0.254",
            ],
        );
        for i in [1, 2] {
            let (nat, home) = (net.ns(&format!("nat{i}")), net.ns(&format!("home{i}")));
            let (w, l) = (format!("{t}w{i}"), format!("{t}l{i}"));
            run(
                "ip",
                &[
                    "link", "add", &w, "netns", &p, "type", "veth", "peer", "name", "wan", "netns",
                    &nat,
                ],
            );
            run("ip", &["-n", &p, "link", "set", &w, "master", "br0"]);
            run("ip", &["-n", &p, "link", "set", &w, "up"]);
            run(
                "ip",
                &[
                    "-n",
                    &nat,
                    "addr",
                    "add",
                    &format!("198.18.0.1{i}/24"),
                    "dev",
                    "wan",
                ],
            );
            run("ip", &["-n", &nat, "link", "set", "wan", "up"]);
            run(
                "ip",
                &[
                    "link", "add", &l, "netns", &nat, "type", "veth", "peer", "name", "eth0",
                    "netns", &home,
                ],
            );
            run("ip", &["-n", &nat, "link", "set", &l, "name", "lan"]);
            run(
                "ip",
                &[
                    "-n",
                    &nat,
                    "addr",
                    "add",
                    &format!("198.19.{i}.1/24"),
                    "dev",
                    "lan",
                ],
            );
            run("ip", &["-n", &nat, "link", "set", "lan", "up"]);
            run(
                "ip",
                &[
                    "-n",
                    &home,
                    "addr",
                    "add",
                    &format!("198.19.{i}.2/24"),
                    "dev",
                    "eth0",
                ],
            );
            run("ip", &["-n", &home, "link", "set", "eth0", "up"]);
            run(
                "ip",
                &[
                    "-n",
                    &home,
                    "route",
                    "add",
                    "default",
                    "via",
                    &format!("198.19.{i}.1"),
                ],
            );
            ns_run(&nat, "sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
            let mapping = if symmetric && i == 2 {
                "fully-random"
            } else {
                ""
            };
            nft(
                &nat,
                &format!(
                    "table ip nat {{\n chain post {{\n  type nat hook postrouting priority 100;\n  \
                     oifname \"wan\" masquerade {mapping}\n }}\n}}\n\
                     table ip filter {{\n chain in {{\n  type filter hook input priority 0;\n  \
                     iifname \"wan\" ct state new drop\n }}\n}}\n"
                ),
            );
        }
        net.start_turn();
        net.start_db();
        net
    }

    fn start_turn(&mut self) {
        let dir = self.dir.path();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns("pub"), "turnserver", "-n"])
            .args([
                &format!("--listening-ip={PUB}"),
                &format!("--relay-ip={PUB}"),
                "--listening-port=3478",
                "--min-port=49152",
                "--max-port=49407",
                "--lt-cred-mech",
                &format!("--user={TURN_USER}:{TURN_PASSWORD}"),
                "--realm=huddle.test",
                "--fingerprint",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                "--no-multicast-peers",
                "--simple-log",
                "--log-file=stdout",
            ])
            .arg(format!("--db={}", dir.join("turndb").display()))
            .arg(format!("--pidfile={}", dir.join("turn.pid").display()))
            .stdout(std::fs::File::create(dir.join("turn.log")).unwrap())
            .stderr(Stdio::null());
        self._turn = Some(Proc::spawn(&mut cmd, "install coturn (`make test` does)").unwrap());
        // Listening once it says its relay threads are up.
        let log = dir.join("turn.log");
        harness::poll("coturn to start", Duration::from_secs(10), || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.contains("Total General servers").then_some(())
        })
        .unwrap();
    }

    /// huddle-db in a thread of this process that moved into `pub`: its sockets live there.
    fn start_db(&mut self) {
        let ns = format!("/run/netns/{}", self.ns("pub"));
        let (url_tx, url_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let file = std::fs::File::open(&ns).unwrap();
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            // Built after the move, so its threads are in `pub` too.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let (_dir, server) = harness::in_process_db_with(|c| {
                    c.listen = format!("{PUB}:0").parse().unwrap();
                })
                .await
                .unwrap();
                url_tx.send(server.url()).unwrap();
                let _ = stop_rx.await;
                drop(server);
            });
        });
        self.db_url = url_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        self.db = Some((thread, stop_tx));
    }

    /// A `huddle-peer` named `name` in home `home`, with `extra` flags.
    fn peer(&self, home: u8, name: &str, room: &str, extra: &[&str]) -> Member {
        let bin = env!("CARGO_BIN_EXE_huddle-peer");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns(&format!("home{home}")), bin])
            .args(["--db", &self.db_url, "--room", room, "--name", name]);
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

impl Drop for Net {
    fn drop(&mut self) {
        if let Some((thread, stop)) = self.db.take() {
            let _ = stop.send(());
            let _ = thread.join();
        }
        self._turn = None;
        for n in ["home1", "home2", "nat1", "nat2", "pub"] {
            let ns = self.ns(n);
            if let Ok(out) = Command::new("ip").args(["netns", "pids", &ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
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
    format!("stun:{PUB}:3478")
}

fn turn() -> String {
    format!("turn:{PUB}:3478")
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
