//! Child processes that end with their value, and what /proc says about processes.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::Error;

/// A child process, killed when dropped together with every process below it.
///
/// The processes below matter: tauri-driver starts WebKitWebDriver which starts the app, and
/// chromedriver starts Chromium's whole tree. They are found through /proc before the child is
/// killed (afterwards they would be orphans, no longer below it). The child stays in our process
/// group, so a Ctrl-C on the test run still reaches it.
pub struct Proc {
    name: String,
    child: Child,
}

impl Proc {
    /// Starts `cmd`; `hint` says what to install or build when the program cannot be started.
    pub fn spawn(cmd: &mut Command, hint: &str) -> Result<Proc, Error> {
        let name = Path::new(cmd.get_program())
            .file_name()
            .unwrap_or(cmd.get_program())
            .to_string_lossy()
            .into_owned();
        let child = cmd.spawn().map_err(|source| Error::Start {
            program: cmd.get_program().to_string_lossy().into_owned(),
            hint: hint.to_owned(),
            source,
        })?;
        Ok(Proc { name, child })
    }

    /// The program's file name, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The child itself, to take its pipes, wait for it or send it a signal.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Waits up to `within` for the process to exit by itself.
    pub fn wait_exit(&mut self, within: Duration) -> Result<ExitStatus, Error> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(Error::TimedOut {
                    who: self.name.clone(),
                    what: "exit".to_owned(),
                    within,
                    seen: "it is still running".to_owned(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the processes below it, then it (SIGKILL: a crash, nothing runs on the way out).
    pub fn kill(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        kill_all(&descendants(self.child.id()));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// SIGKILL to each of `pids`, through kill(1): the workspace has no unsafe code for kill(2).
pub fn kill_all(pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg("-9")
        .args(pids.iter().map(u32::to_string))
        .stderr(std::process::Stdio::null())
        .status();
}

/// Every process below `root` (not `root` itself), from /proc.
pub fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if let Some(ppid) = stat_field(pid, 1).and_then(|s| s.parse::<u32>().ok()) {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(child, parent) in &parent_of {
            if parent == p && !out.contains(&child) {
                out.push(child);
                frontier.push(child);
            }
        }
    }
    out
}

/// Field `i` after the command (0 = state, 1 = ppid, 11 = utime, 12 = stime) of /proc/PID/stat.
pub fn stat_field(pid: u32, i: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command, in parentheses, may itself hold spaces and parentheses.
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(i).map(str::to_owned)
}

/// CPU time (user + system) of `pid` in clock ticks (100 a second on Linux).
pub fn cpu_ticks(pid: u32) -> u64 {
    let f = |i| {
        stat_field(pid, i)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
    };
    f(11) + f(12)
}

/// Clock ticks to seconds.
pub fn ticks_to_secs(ticks: u64) -> f64 {
    ticks as f64 / 100.0
}

/// Where a binary beside this executable is (`huddle-peer`, `huddle-db`): test executables live
/// in target/<profile>/deps, binaries in target/<profile>.
pub fn sibling_binary(name: &str) -> PathBuf {
    let me = std::env::current_exe().unwrap_or_default();
    let dir = me.parent().map(PathBuf::from).unwrap_or_default();
    for d in [
        dir.clone(),
        dir.parent().map(PathBuf::from).unwrap_or_default(),
    ] {
        let p = d.join(name);
        if p.exists() {
            return p;
        }
    }
    dir.join(name)
}

/// A free TCP port on loopback (free when asked: a program given it binds it soon after).
pub fn free_port() -> Result<u16, Error> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A program on the PATH or in ~/.cargo/bin (where `cargo install` puts tauri-driver).
pub fn which(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn dropping_a_proc_kills_what_it_started_too() {
        let mut p = Proc::spawn(
            Command::new("sh").args(["-c", "sleep 60 & sleep 60 & wait"]),
            "sh",
        )
        .unwrap();
        let below = poll_below(p.id());
        assert_eq!(below.len(), 2, "{below:?}");
        assert!(p.wait_exit(Duration::from_millis(50)).is_err());
        drop(p);
        for pid in below {
            // Killed; gone once its new parent (init or a subreaper) has reaped it.
            let gone = crate::poll("the sleep to end", Duration::from_secs(5), || {
                (stat_field(pid, 0).is_none_or(|s| s == "Z")).then_some(())
            });
            assert!(gone.is_ok(), "{pid} is still running");
        }
    }

    fn poll_below(pid: u32) -> Vec<u32> {
        crate::poll("two sleeps", Duration::from_secs(5), || {
            let d = descendants(pid);
            (d.len() == 2).then_some(d)
        })
        .unwrap()
    }
}
