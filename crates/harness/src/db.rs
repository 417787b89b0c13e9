//! A `huddle-db` process on a free loopback port with its data in a temporary folder.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::{Error, Proc};

/// How long huddle-db may take to open its (empty) data folder and bind.
const START_BOUND: Duration = Duration::from_secs(20);

/// A running `huddle-db`; dropping it kills the server and removes its data.
pub struct Db {
    url: String,
    _proc: Proc,
    _dir: tempfile::TempDir,
}

impl Db {
    /// Starts `bin` (a huddle-db binary) on 127.0.0.1 with a fresh data folder and the shipped
    /// rules, and waits for the `listening on URL` line it prints once it accepts requests.
    pub fn start(bin: &Path) -> Result<Db, Error> {
        Db::start_with(bin, &[])
    }

    /// [`Db::start`] with more flags (`--secret S`: a writer the rules do not judge, for
    /// hostile-writer benchmarks).
    pub fn start_with(bin: &Path, extra: &[&str]) -> Result<Db, Error> {
        let dir = tempfile::tempdir()?;
        let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../database.rules.json");
        let mut proc = Proc::spawn(
            Command::new(bin)
                .args(["--listen", "127.0.0.1:0", "--data"])
                .arg(dir.path())
                .arg("--rules")
                .arg(rules)
                .args(extra)
                .env("RUST_LOG", "error")
                .stdout(Stdio::piped()),
            "build it first: cargo build --release -p rtdb -p peer",
        )?;
        let out = proc.child().stdout.take();
        let line = first_line(out, START_BOUND).ok_or_else(|| Error::Unexpected {
            program: bin.display().to_string(),
            problem: format!("printed no address within {START_BOUND:?}"),
        })?;
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .ok_or_else(|| Error::Unexpected {
                program: bin.display().to_string(),
                problem: format!("said {line:?} instead of `listening on URL`"),
            })?
            .to_owned();
        Ok(Db {
            url,
            _proc: proc,
            _dir: dir,
        })
    }

    /// Its base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// The first line of `out`, read on a thread so that a program that prints nothing cannot hang
/// the caller past `within`.
pub(crate) fn first_line(
    out: Option<impl Read + Send + 'static>,
    within: Duration,
) -> Option<String> {
    let out = out?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        if BufReader::new(out).read_line(&mut line).is_ok() {
            let _ = tx.send(line);
        }
    });
    rx.recv_timeout(within).ok()
}
