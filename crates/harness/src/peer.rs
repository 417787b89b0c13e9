//! A `huddle-peer` process: its stdin for commands, its stdout as [`Events`].

use std::io::Write;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::{process, Error, Events, Proc};

/// The bound of [`Peer::wait`]: a join, an ICE exchange and a first decoded frame take about a
/// second on loopback; thirty leave room for a loaded CI machine without hiding a hang.
pub const DEFAULT_BOUND: Duration = Duration::from_secs(30);

/// `bin --db DB --room ROOM --name NAME --loopback`: a peer that signs in (anonymously, at the
/// database's own origin for a huddle-db) and so gets a uid from the server as its peer id, read
/// from its first event by [`Peer::start`]. Loopback: it gathers and accepts 127.0.0.1 candidates
/// only, so nothing leaves the machine. Add flags with `.args(...)`.
pub fn huddle_peer(bin: &Path, db: &str, room: &str, name: &str) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(["--db", db, "--room", room, "--name", name, "--loopback"]);
    cmd
}

/// The admin secret [`crate::in_process_db`] starts its server with.
pub const TEST_SECRET: &str = "huddle-test-admin-secret";

/// Makes `cmd` (a [`huddle_peer`]) hold [`TEST_SECRET`] acting as [`test_peer_id`]`(name)`
/// instead of signing in. The rules still judge it as that user, but its id is chosen: tests
/// whose assertions depend on which peer offers or repairs (the smaller id) need "a" < "b".
pub fn as_test_user<'a>(cmd: &'a mut Command, name: &str) -> &'a mut Command {
    cmd.args(["--secret", TEST_SECRET, "--peer-id", &test_peer_id(name)])
}

/// The peer id [`as_test_user`] gives `name`.
pub fn test_peer_id(name: &str) -> String {
    format!("{name}-0000000")
}

/// `huddle-peer` the way the call and device tests run it: [`as_test_user`], small video at
/// 15 fps, and a short presence bound so departures show within about two seconds.
pub fn test_peer(bin: &Path, db: &str, room: &str, name: &str) -> Command {
    let mut cmd = huddle_peer(bin, db, room, name);
    as_test_user(&mut cmd, name);
    cmd.args(["--size", "160x96", "--fps", "15"]).args([
        "--heartbeat-ms",
        "300",
        "--expiry-ms",
        "2000",
    ]);
    cmd
}

/// Where a quiet peer's stderr goes: nowhere, unless `HUDDLE_PEER_STDERR` is set, which shows
/// the peers' logs (with `RUST_LOG`) when a test fails.
pub fn peer_stderr() -> Stdio {
    if std::env::var_os("HUDDLE_PEER_STDERR").is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    }
}

/// One `huddle-peer`; dropping it kills the process (a crash: it sends no leave).
pub struct Peer {
    peer_id: String,
    proc: Proc,
    stdin: Option<ChildStdin>,
    events: Events,
    bound: Duration,
}

impl Peer {
    /// Starts `cmd` (see [`huddle_peer`]) with stdin and stdout piped and waits for its
    /// `signed_in` event, which says its peer id; `name` labels it in errors. Its stderr is left
    /// as `cmd` has it.
    pub fn start(name: &str, cmd: &mut Command) -> Result<Peer, Error> {
        let mut proc = Proc::spawn(
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped()),
            "build it first: cargo build -p peer",
        )?;
        let out = proc
            .child()
            .stdout
            .take()
            .ok_or_else(|| Error::Unexpected {
                program: proc.name().to_owned(),
                problem: "no stdout pipe".to_owned(),
            })?;
        let stdin = proc.child().stdin.take();
        let mut events = Events::follow(name, out);
        let signed_in = events.wait_from(0, DEFAULT_BOUND, "signed_in", |v| {
            v["type"] == "signed_in" || v["type"] == "error"
        })?;
        let Some(peer_id) = signed_in["peer"].as_str() else {
            return Err(Error::Unexpected {
                program: name.to_owned(),
                problem: format!("it did not sign in: {signed_in}"),
            });
        };
        Ok(Peer {
            peer_id: peer_id.to_owned(),
            proc,
            stdin,
            events,
            bound: DEFAULT_BOUND,
        })
    }

    /// Waits of [`Peer::wait`] and [`Peer::wait_from`] give up after `bound` instead of
    /// [`DEFAULT_BOUND`].
    pub fn with_bound(mut self, bound: Duration) -> Peer {
        self.bound = bound;
        self
    }

    pub fn peer_id(&self) -> &str {
        &self.peer_id
    }

    /// Every event taken in so far, in order.
    pub fn seen(&self) -> &[Value] {
        self.events.seen()
    }

    /// Takes in every event printed so far; the index after them marks "from now on".
    pub fn mark(&mut self) -> usize {
        self.events.mark()
    }

    /// Waits for an event matching `pred`, among those already seen too.
    pub fn wait(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Result<Value, Error> {
        self.events.wait_from(0, self.bound, what, pred)
    }

    /// Waits for an event matching `pred` from index `from` (a [`Peer::mark`]) on.
    pub fn wait_from(
        &mut self,
        from: usize,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value, Error> {
        self.events.wait_from(from, self.bound, what, pred)
    }

    /// [`Peer::wait_from`] with its own bound.
    pub fn wait_within(
        &mut self,
        from: usize,
        within: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value, Error> {
        self.events.wait_from(from, within, what, pred)
    }

    /// Sends a stdin command (`video off`, `screen on`, `leave`, ...).
    pub fn send(&mut self, line: &str) -> Result<(), Error> {
        let stdin = self.stdin.as_mut().ok_or_else(|| Error::Unexpected {
            program: self.peer_id.clone(),
            problem: "its stdin is closed".to_owned(),
        })?;
        writeln!(stdin, "{line}")?;
        stdin.flush()?;
        Ok(())
    }

    /// Sends `leave` and waits up to `within` for the process to exit.
    pub fn leave(&mut self, within: Duration) -> Result<ExitStatus, Error> {
        self.send("leave")?;
        self.proc.wait_exit(within)
    }

    /// Kills the process (a crash: no leave).
    pub fn kill(&mut self) {
        self.proc.kill();
    }

    /// The process itself, e.g. to wait for its exit status.
    pub fn child(&mut self) -> &mut Child {
        self.proc.child()
    }

    /// Its process id (to read its memory in /proc).
    pub fn pid(&self) -> u32 {
        self.proc.id()
    }

    /// CPU time it has used, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        process::cpu_ticks(self.proc.id())
    }
}
