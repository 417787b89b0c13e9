//! A `huddle-peer` process whose JSON-line events can be waited for with a bound.

#![allow(dead_code)] // each user (test file, bench) takes what it needs

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

/// One `huddle-peer`. Dropping it kills the process.
pub struct Native {
    /// Its peer id.
    pub id: String,
    /// The process.
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<Value>,
    /// Every event read so far.
    pub seen: Vec<Value>,
}

impl Native {
    /// Starts `bin --db DB --room ROOM --name ID --peer-id ID --loopback ARGS...`.
    pub fn spawn(
        bin: &Path,
        db: &str,
        room: &str,
        id: &str,
        args: &[&str],
    ) -> anyhow::Result<Native> {
        let mut child = Command::new(bin)
            .args([
                "--db",
                db,
                "--room",
                room,
                "--name",
                id,
                "--peer-id",
                id,
                "--loopback",
            ])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // HUDDLE_PEER_STDERR=1 shows the peers' logs (with RUST_LOG) when a test fails.
            .stderr(if std::env::var_os("HUDDLE_PEER_STDERR").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(v).is_err() {
                        return;
                    }
                }
            }
        });
        let stdin = child.stdin.take();
        Ok(Native {
            id: id.to_owned(),
            child,
            stdin,
            lines: rx,
            seen: Vec::new(),
        })
    }

    /// Index after everything read so far ("from now on").
    pub fn mark(&mut self) -> usize {
        while let Ok(v) = self.lines.try_recv() {
            self.seen.push(v);
        }
        self.seen.len()
    }

    /// Waits for an event from index `from` on matching `pred`.
    pub fn wait_from(
        &mut self,
        from: usize,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        if let Some(v) = self.seen.iter().skip(from).find(|v| pred(v)) {
            return Ok(v.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return Ok(v);
                    }
                }
                Err(_) => {
                    let tail: Vec<_> = self.seen.iter().rev().take(25).collect();
                    bail!(
                        "{}: no {what} within {timeout:?}; last events: {tail:#?}",
                        self.id
                    )
                }
            }
        }
    }

    /// Waits for an event matching `pred` (from the start).
    pub fn wait(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        self.wait_from(0, what, timeout, pred)
    }

    /// Sends a stdin command (`video off`, `screen on`, `leave`, ...).
    pub fn send(&mut self, line: &str) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("stdin closed")?;
        writeln!(stdin, "{line}")?;
        stdin.flush()?;
        Ok(())
    }

    /// Kills the process (a crash: no leave).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Native {
    fn drop(&mut self) {
        self.kill();
    }
}
