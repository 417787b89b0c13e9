//! The JSON events a `huddle-peer` prints, read on a thread and waited for with a bound: the
//! part every test that drives `huddle-peer` processes shares.

use std::io::{BufRead, BufReader};
use std::process::ChildStdout;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The events of one `huddle-peer`, in order.
pub struct Events {
    name: String,
    lines: mpsc::Receiver<Value>,
    /// Every event taken in so far.
    pub seen: Vec<Value>,
}

impl Events {
    /// Reads `stdout` of the peer called `name`; a line that is not JSON fails the test.
    pub fn follow(name: &str, stdout: ChildStdout) -> Events {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| panic!("not a JSON line: {line}"));
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        Events {
            name: name.to_owned(),
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Takes in every event printed so far; the index after them marks "from now on".
    pub fn mark(&mut self) -> usize {
        while let Ok(v) = self.lines.try_recv() {
            self.seen.push(v);
        }
        self.seen.len()
    }

    /// Waits up to `within` for an event from index `from` on that matches `pred`.
    pub fn wait_from(
        &mut self,
        from: usize,
        within: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        if let Some(v) = self.seen.iter().skip(from).find(|v| pred(v)) {
            return v.clone();
        }
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(_) => panic!(
                    "{}: no {what} within {within:?}; saw since the mark {:#?}",
                    self.name,
                    &self.seen[from.min(self.seen.len())..]
                ),
            }
        }
    }
}

/// `huddle-peer` joining `room` on `db` as `name` (peer id `<name>-0000000`) the way the
/// call and device tests run it: candidates on 127.0.0.1 only, small video at 15 fps, and a
/// short presence bound so departures show quickly.
#[allow(dead_code)] // the outage test starts its peers in a namespace, with its own flags
pub fn test_peer(db: &str, room: &str, name: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_huddle-peer"));
    cmd.args(["--db", db, "--room", room, "--name", name])
        .args(["--peer-id", &format!("{name}-0000000")])
        .args(["--loopback", "--size", "160x96", "--fps", "15"])
        .args(["--heartbeat-ms", "300", "--expiry-ms", "2000"]);
    cmd
}
