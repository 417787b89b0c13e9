//! JSON event lines read from a process on a thread, kept in order, and waited for with a bound.

use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Error;

/// How many of the events seen a failed wait lists (the most recent ones): enough to see what
/// the process was doing, not a screenful of once-a-second stats.
const SHOWN: usize = 40;

enum Line {
    Json(Value),
    NotJson(String),
}

/// The JSON events one process prints, one per line, in order.
///
/// Everything taken in stays in [`Events::seen`], so a wait can look back: "from the start"
/// (index 0) finds an event that came before the wait began; [`Events::mark`] gives the index
/// for "from now on".
pub struct Events {
    who: String,
    lines: mpsc::Receiver<Line>,
    seen: Vec<Value>,
    /// A line that was not JSON: every later wait fails with it.
    broken: Option<String>,
}

impl Events {
    /// Reads `out` (a child's stdout) on its own thread; `who` names the process in errors.
    pub fn follow(who: &str, out: impl Read + Send + 'static) -> Events {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let line = match serde_json::from_str(&line) {
                    Ok(v) => Line::Json(v),
                    Err(_) => Line::NotJson(line),
                };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Events {
            who: who.to_owned(),
            lines: rx,
            seen: Vec::new(),
            broken: None,
        }
    }

    /// Every event taken in so far.
    pub fn seen(&self) -> &[Value] {
        &self.seen
    }

    /// Takes in every event printed so far; the index after them marks "from now on".
    pub fn mark(&mut self) -> usize {
        while let Ok(line) = self.lines.try_recv() {
            self.take(line);
        }
        self.seen.len()
    }

    fn take(&mut self, line: Line) -> Option<&Value> {
        match line {
            Line::Json(v) => {
                self.seen.push(v);
                self.seen.last()
            }
            Line::NotJson(l) => {
                self.broken.get_or_insert(l);
                None
            }
        }
    }

    /// Waits up to `within` for an event from index `from` on that matches `pred`, looking at
    /// the ones already seen first.
    pub fn wait_from(
        &mut self,
        from: usize,
        within: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value, Error> {
        if let Some(v) = self.seen.iter().skip(from).find(|v| pred(v)) {
            return Ok(v.clone());
        }
        let deadline = Instant::now() + within;
        loop {
            if let Some(line) = &self.broken {
                return Err(Error::NotJson {
                    who: self.who.clone(),
                    line: line.clone(),
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(v) = self.take(line) {
                        if pred(v) {
                            return Ok(v.clone());
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(Error::TimedOut {
                        who: self.who.clone(),
                        what: what.to_owned(),
                        within,
                        seen: self.since(from),
                    })
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Error::Ended {
                        who: self.who.clone(),
                        what: what.to_owned(),
                        seen: self.since(from),
                    })
                }
            }
        }
    }

    /// Waits up to `within` for an event matching `pred`, from the first one on.
    pub fn wait(
        &mut self,
        within: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value, Error> {
        self.wait_from(0, within, what, pred)
    }

    /// The events from `from` on, written out for an error, one per line.
    fn since(&self, from: usize) -> String {
        let all = &self.seen[from.min(self.seen.len())..];
        if all.is_empty() {
            return "saw nothing since the mark".to_owned();
        }
        let skipped = all.len().saturating_sub(SHOWN);
        let mut out = format!("saw {} events since the mark", all.len());
        if skipped > 0 {
            out += &format!(", the last {SHOWN}");
        }
        out.push(':');
        for v in &all[skipped..] {
            out += &format!("\n  {v}");
        }
        out
    }
}

/// Calls `f` every 100 ms until it gives `Some`, for up to `within`; the error names `what`.
pub fn poll<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T, Error> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(Error::TimedOut {
                who: "poll".to_owned(),
                what: what.to_owned(),
                within,
                seen: "it never held".to_owned(),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn waits_look_back_and_forward_and_say_what_they_saw() {
        let out = b"{\"type\":\"joined\"}\n{\"type\":\"stats\",\"fps\":3}\n".as_slice();
        let mut e = Events::follow("p", out);
        let v = e
            .wait(Duration::from_secs(5), "stats", |v| v["type"] == "stats")
            .unwrap();
        assert_eq!(v["fps"], 3);
        // An event seen before the wait began is found from index 0, not from a later mark.
        assert!(e
            .wait(Duration::ZERO, "joined", |v| v["type"] == "joined")
            .is_ok());
        let mark = e.mark();
        let err = e
            .wait_from(mark, Duration::from_secs(5), "left", |v| {
                v["type"] == "left"
            })
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("p: its output ended"), "{err}");
        let err = e
            .wait(Duration::from_secs(5), "left", |v| v["type"] == "left")
            .unwrap_err()
            .to_string();
        assert!(err.contains(r#"{"type":"joined"}"#), "{err}");
    }

    #[test]
    fn a_line_that_is_not_json_fails_the_wait() {
        let mut e = Events::follow("p", b"{\"type\":\"joined\"}\nhello\n".as_slice());
        let err = e
            .wait(Duration::from_secs(5), "left", |v| v["type"] == "left")
            .unwrap_err();
        assert!(
            matches!(err, Error::NotJson { ref line, .. } if line == "hello"),
            "{err}"
        );
    }

    #[test]
    fn polling_gives_up_after_its_bound() {
        let err = poll("never", Duration::from_millis(150), || None::<()>).unwrap_err();
        assert!(err.to_string().contains("no never within"), "{err}");
        assert_eq!(poll("now", Duration::ZERO, || Some(7)).unwrap(), 7);
    }
}
