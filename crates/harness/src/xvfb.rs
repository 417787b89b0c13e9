//! One virtual X display (Xvfb) on a display number it picks itself.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::db::first_line;
use crate::{Error, Proc};

const START_BOUND: Duration = Duration::from_secs(10);

/// An Xvfb server, killed on drop.
pub struct Xvfb {
    display: String,
    _proc: Proc,
}

impl Xvfb {
    /// Starts a server with one screen of `size` (`WIDTHxHEIGHTxDEPTH`).
    ///
    /// `-displayfd 1`: Xvfb takes the first free display number and writes it on stdout once it
    /// accepts clients, so parallel tests never race for a number and nobody polls for
    /// /tmp/.X11-unix. `-noreset`: without it the server resets (root window back to black)
    /// whenever its last client disconnects, e.g. after each `xsetroot`.
    pub fn start(size: &str) -> Result<Xvfb, Error> {
        let mut proc = Proc::spawn(
            Command::new("Xvfb")
                .args(["-displayfd", "1", "-screen", "0", size])
                .args(["-nolisten", "tcp", "-noreset"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
            "Debian package xvfb; scripts/install-deps.sh installs it",
        )?;
        let out = proc.child().stdout.take();
        let n = first_line(out, START_BOUND)
            .and_then(|l| l.trim().parse::<u32>().ok())
            .ok_or_else(|| Error::Unexpected {
                program: "Xvfb".to_owned(),
                problem: format!("gave no display number within {START_BOUND:?}"),
            })?;
        Ok(Xvfb {
            display: format!(":{n}"),
            _proc: proc,
        })
    }

    /// Its `DISPLAY`, e.g. `:3`.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// Runs `xsetroot -display D ARGS` (paints the root window: `-solid '#ff0000'`, `-bitmap`).
    pub fn xsetroot(&self, args: &[&str]) -> Result<(), Error> {
        let status = Command::new("xsetroot")
            .args(["-display", &self.display])
            .args(args)
            .status()
            .map_err(|source| Error::Start {
                program: "xsetroot".to_owned(),
                hint: "Debian package x11-xserver-utils".to_owned(),
                source,
            })?;
        if !status.success() {
            return Err(Error::Unexpected {
                program: "xsetroot".to_owned(),
                problem: format!("{args:?} failed: {status}"),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn two_servers_get_two_displays_that_answer() {
        let a = Xvfb::start("64x48x24").unwrap();
        let b = Xvfb::start("64x48x24").unwrap();
        assert_ne!(a.display(), b.display());
        a.xsetroot(&["-solid", "#ff0000"]).unwrap();
        b.xsetroot(&["-solid", "#0000ff"]).unwrap();
        let display = a.display().to_owned();
        drop(a);
        let err = Xvfb {
            display,
            _proc: Proc::spawn(&mut Command::new("true"), "").unwrap(),
        }
        .xsetroot(&["-solid", "#ff0000"]);
        assert!(err.is_err(), "the display is gone with its server");
    }
}
