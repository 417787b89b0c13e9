//! A small internet of network namespaces for calls across NATs and through a TURN relay, on one
//! machine (`crates/peer/tests/nat.rs`, `huddle-mesh-bench --only nat`). The namespaces connect
//! only to each other, through veth pairs made here, all on 198.18.0.0/15 (the range reserved for
//! network tests), and are removed on drop with whatever still runs in them:
//!
//! ```text
//!  home1 198.19.1.2 ── nat1 ─┐                 ┌─ nat2 ── home2 198.19.2.2
//!          (masquerade) .11  └── pub 198.18.0.1 ──┘ .12 (masquerade; "symmetric": fully random)
//!                                coturn :3478 (STUN + TURN, long-term credential)
//! ```
//!
//! The NATs drop unsolicited packets before conntrack keeps them (as home routers do; without
//! it the kernel remaps a port that an early inbound check "took", and even friendly NATs break
//! hole punching). `pub` routes the homes' private range to a neighbour that does not exist, as
//! the internet swallows private addresses: with no route at all, coturn's relay socket gets
//! "network unreachable" for a host candidate and stops relaying anything.
//!
//! Needs root, `ip` (iproute2), `nft` (nftables) and `turnserver` (coturn); `make test`
//! installs them. The signaling database is the caller's: a process started with
//! [`TestNet::command`] in [`PUB_NS`], or in this process with `in_process_db_in` (feature
//! `rtdb`) on a thread moved into [`TestNet::ns_path`].
//!
//! [`Lan`] is the smallest such network: one namespace whose only interface besides loopback
//! is at [`LAN_HOST`], a LAN of one host. It is for stacks that will not use
//! 127.0.0.1 for ICE (Firefox gathers no loopback candidates): everything in the call runs in
//! it, and [`connect_in`] reaches its servers from here.

use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::{Error, Proc};

/// The public side's address: coturn, and the database the caller starts there.
pub const PUB: &str = "198.18.0.1";
/// The namespace of the public side (see [`TestNet::ns`]).
pub const PUB_NS: &str = "pub";
/// coturn's long-term credential.
pub const TURN_USER: &str = "huddle";
pub const TURN_PASSWORD: &str = "relay-s3cret";

/// `stun:` URL of the test network's coturn.
pub fn stun_url() -> String {
    format!("stun:{PUB}:3478")
}

/// `turn:` URL of the test network's coturn.
pub fn turn_url() -> String {
    format!("turn:{PUB}:3478")
}

/// The huddle-peer flags that use coturn for STUN and TURN with the right credential.
pub fn stun_and_turn_flags() -> Vec<String> {
    [
        "--ice-server",
        &stun_url(),
        "--ice-server",
        &turn_url(),
        "--turn-username",
        TURN_USER,
        "--turn-password",
        TURN_PASSWORD,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// True when running as root (namespaces and NATs need it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

fn run(program: &str, args: &[&str]) -> Result<(), Error> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| Error::Start {
            program: program.to_owned(),
            hint: "install iproute2, nftables and coturn (`make test` does)".to_owned(),
            source,
        })?;
    if !out.status.success() {
        return Err(Error::Unexpected {
            program: format!("{program} {}", args.join(" ")),
            problem: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

/// The address of the one host of a [`Lan`].
pub const LAN_HOST: &str = "198.18.9.1";

/// A namespace holding a LAN of one host, [`LAN_HOST`] on a veth interface, with IPv6 off (so
/// that no stack pairs link-local addresses); dropping it kills what still runs in it and
/// removes it.
pub struct Lan {
    name: String,
}

impl Lan {
    pub fn build() -> Result<Lan, Error> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let lan = Lan {
            name: format!(
                "hl{}x{}",
                std::process::id() % 100_000,
                NEXT.fetch_add(1, Ordering::Relaxed)
            ),
        };
        let n = lan.name.as_str();
        run("ip", &["netns", "add", n])?;
        run(
            "ip",
            &[
                "netns",
                "exec",
                n,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
        )?;
        run("ip", &["-n", n, "link", "set", "lo", "up"])?;
        // A veth pair with both ends in the namespace (this kernel has no dummy interfaces):
        // one end holds the address, the other leads nowhere.
        run(
            "ip",
            &[
                "-n", n, "link", "add", "lan0", "type", "veth", "peer", "name", "lan1",
            ],
        )?;
        let addr = format!("{LAN_HOST}/24");
        run("ip", &["-n", n, "addr", "add", &addr, "dev", "lan0"])?;
        for dev in ["lan0", "lan1"] {
            run("ip", &["-n", n, "link", "set", dev, "up"])?;
        }
        Ok(lan)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the namespace is mounted, for `setns` ([`connect_in`], `in_process_db_in`).
    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// `program` to be run in the namespace (`ip netns exec`, which execs it: the child's pid
    /// is the program's).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        kill_and_remove(&self.name);
    }
}

/// Moves the calling thread into the network namespace mounted at `ns_path`: the sockets it
/// makes from then on live there. Only for threads made for it, never a pool's.
pub fn enter(ns_path: &str) -> std::io::Result<()> {
    let file = std::fs::File::open(ns_path)?;
    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)
}

/// A TCP connection to `addr` in the namespace at `ns_path`, made by a thread of its own moved
/// there (the connection keeps its namespace; the caller stays in its own).
pub fn connect_in(ns_path: &str, addr: std::net::SocketAddr) -> std::io::Result<TcpStream> {
    let ns_path = ns_path.to_owned();
    std::thread::spawn(move || {
        enter(&ns_path)?;
        TcpStream::connect_timeout(&addr, Duration::from_secs(5))
    })
    .join()
    .unwrap_or_else(|_| Err(std::io::Error::other("the connecting thread panicked")))
}

/// Kills every process in namespace `ns` and removes it.
fn kill_and_remove(ns: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
    }
    let _ = Command::new("ip").args(["netns", "del", ns]).status();
}

/// The network; dropping it removes it.
pub struct TestNet {
    tag: String,
    turn: Option<Proc>,
    dir: tempfile::TempDir,
}

impl TestNet {
    /// Builds the network above and starts coturn; `symmetric`: home 2's NAT maps every
    /// destination to a new random port (endpoint-dependent), so no direct path to it exists.
    pub fn build(symmetric: bool) -> Result<TestNet, Error> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let tag = format!(
            "hn{}x{}",
            std::process::id() % 100_000,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut net = TestNet {
            tag,
            turn: None,
            dir: tempfile::tempdir()?,
        };
        net.wire(symmetric)?;
        net.start_turn()?;
        Ok(net)
    }

    /// The real name of namespace `name` (`pub`, `nat1`, `nat2`, `home1`, `home2`).
    pub fn ns(&self, name: &str) -> String {
        format!("{}{name}", self.tag)
    }

    /// Where namespace `name` is mounted, for `setns`.
    pub fn ns_path(&self, name: &str) -> String {
        format!("/run/netns/{}", self.ns(name))
    }

    /// `program` to be run in namespace `name` (`ip netns exec`).
    pub fn command(&self, name: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns(name)]).arg(program);
        cmd
    }

    /// A folder that lives as long as the network.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    fn wire(&self, symmetric: bool) -> Result<(), Error> {
        let (p, t) = (self.ns(PUB_NS), self.tag.clone());
        for n in [PUB_NS, "nat1", "nat2", "home1", "home2"] {
            run("ip", &["netns", "add", &self.ns(n)])?;
            run("ip", &["-n", &self.ns(n), "link", "set", "lo", "up"])?;
        }
        run("ip", &["-n", &p, "link", "add", "br0", "type", "bridge"])?;
        run(
            "ip",
            &["-n", &p, "addr", "add", &format!("{PUB}/24"), "dev", "br0"],
        )?;
        run("ip", &["-n", &p, "link", "set", "br0", "up"])?;
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
        )?;
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
        )?;
        for i in [1, 2] {
            let (nat, home) = (self.ns(&format!("nat{i}")), self.ns(&format!("home{i}")));
            let (w, l) = (format!("{t}w{i}"), format!("{t}l{i}"));
            run(
                "ip",
                &[
                    "link", "add", &w, "netns", &p, "type", "veth", "peer", "name", "wan", "netns",
                    &nat,
                ],
            )?;
            run("ip", &["-n", &p, "link", "set", &w, "master", "br0"])?;
            run("ip", &["-n", &p, "link", "set", &w, "up"])?;
            let wan = format!("198.18.0.1{i}/24");
            run("ip", &["-n", &nat, "addr", "add", &wan, "dev", "wan"])?;
            run("ip", &["-n", &nat, "link", "set", "wan", "up"])?;
            run(
                "ip",
                &[
                    "link", "add", &l, "netns", &nat, "type", "veth", "peer", "name", "eth0",
                    "netns", &home,
                ],
            )?;
            run("ip", &["-n", &nat, "link", "set", &l, "name", "lan"])?;
            let lan = format!("198.19.{i}.1/24");
            run("ip", &["-n", &nat, "addr", "add", &lan, "dev", "lan"])?;
            run("ip", &["-n", &nat, "link", "set", "lan", "up"])?;
            let addr = format!("198.19.{i}.2/24");
            run("ip", &["-n", &home, "addr", "add", &addr, "dev", "eth0"])?;
            run("ip", &["-n", &home, "link", "set", "eth0", "up"])?;
            let gateway = format!("198.19.{i}.1");
            run(
                "ip",
                &["-n", &home, "route", "add", "default", "via", &gateway],
            )?;
            run(
                "ip",
                &[
                    "netns",
                    "exec",
                    &nat,
                    "sysctl",
                    "-qw",
                    "net.ipv4.ip_forward=1",
                ],
            )?;
            let mapping = if symmetric && i == 2 {
                "fully-random"
            } else {
                ""
            };
            self.nft(&nat, &nat_rules(mapping))?;
        }
        Ok(())
    }

    /// Moves home 1 to a third network, as a laptop moves to another place: its link to NAT 1
    /// is removed (every connection it had loses its path at once) and it comes up behind a
    /// new friendly NAT 3 (public 198.18.0.13) with a new address, 198.19.3.2.
    pub fn move_home1_to_a_new_network(&self) -> Result<(), Error> {
        let (p, home, nat) = (self.ns(PUB_NS), self.ns("home1"), self.ns("nat3"));
        run("ip", &["netns", "add", &nat])?;
        run("ip", &["-n", &nat, "link", "set", "lo", "up"])?;
        let (w, l) = (format!("{}w3", self.tag), format!("{}l3", self.tag));
        run(
            "ip",
            &[
                "link", "add", &w, "netns", &p, "type", "veth", "peer", "name", "wan", "netns",
                &nat,
            ],
        )?;
        run("ip", &["-n", &p, "link", "set", &w, "master", "br0"])?;
        run("ip", &["-n", &p, "link", "set", &w, "up"])?;
        run(
            "ip",
            &["-n", &nat, "addr", "add", "198.18.0.13/24", "dev", "wan"],
        )?;
        run("ip", &["-n", &nat, "link", "set", "wan", "up"])?;
        run(
            "ip",
            &[
                "netns",
                "exec",
                &nat,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ],
        )?;
        self.nft(&nat, &nat_rules(""))?;
        run("ip", &["-n", &home, "link", "del", "eth0"])?;
        run(
            "ip",
            &[
                "link", "add", &l, "netns", &nat, "type", "veth", "peer", "name", "eth0", "netns",
                &home,
            ],
        )?;
        run(
            "ip",
            &["-n", &nat, "addr", "add", "198.19.3.1/24", "dev", &l],
        )?;
        run("ip", &["-n", &nat, "link", "set", &l, "up"])?;
        run(
            "ip",
            &["-n", &home, "addr", "add", "198.19.3.2/24", "dev", "eth0"],
        )?;
        run("ip", &["-n", &home, "link", "set", "eth0", "up"])?;
        run(
            "ip",
            &["-n", &home, "route", "add", "default", "via", "198.19.3.1"],
        )
    }

    fn nft(&self, ns: &str, script: &str) -> Result<(), Error> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| Error::Start {
                program: "nft".to_owned(),
                hint: "install nftables (`make test` does)".to_owned(),
                source,
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(script.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Err(Error::Unexpected {
                program: format!("nft in {ns}"),
                problem: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(())
    }

    fn start_turn(&mut self) -> Result<(), Error> {
        let dir = self.dir.path().to_owned();
        let log = dir.join("turn.log");
        let mut cmd = self.command(PUB_NS, "turnserver");
        cmd.arg("-n")
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
            .stdout(std::fs::File::create(&log)?)
            .stderr(Stdio::null());
        self.turn = Some(Proc::spawn(&mut cmd, "install coturn (`make test` does)")?);
        // Listening once it says its relay threads are up.
        crate::poll("coturn to start", Duration::from_secs(10), || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.contains("Total General servers").then_some(())
        })
    }
}

/// A home router's rules: masquerade out of `wan` (`mapping`: "" or "fully-random"), and
/// unsolicited packets from `wan` dropped before conntrack keeps them.
fn nat_rules(mapping: &str) -> String {
    format!(
        "table ip nat {{\n chain post {{\n  type nat hook postrouting priority 100;\n  \
         oifname \"wan\" masquerade {mapping}\n }}\n}}\n\
         table ip filter {{\n chain in {{\n  type filter hook input priority 0;\n  \
         iifname \"wan\" ct state new drop\n }}\n}}\n"
    )
}

impl Drop for TestNet {
    fn drop(&mut self) {
        self.turn = None;
        for n in ["home1", "home2", "nat1", "nat2", "nat3", PUB_NS] {
            kill_and_remove(&self.ns(n));
        }
    }
}
