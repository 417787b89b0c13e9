//! Firebase's Auth emulator (`firebase emulators:start --only auth`) on free loopback ports, as a
//! real implementation of the sign-in and refresh endpoints to test the client against.
//!
//! It is kept offline: `CI=true` stops firebase-tools fetching its message of the day,
//! `NO_UPDATE_NOTIFIER` its update check, a `demo-` project makes it touch no real project, and
//! `HOME` in the temporary folder keeps its config store (and any usage opt-in) away from the
//! user's. The hub and logging ports are chosen free too, so that tests can run side by side.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::free_port;
use crate::{Error, Proc};

/// Measured: ready in about 2.5 s on this kind of machine; the bound leaves room for a loaded one.
const START_BOUND: Duration = Duration::from_secs(60);

/// The project every test uses (`demo-` projects never reach Google).
pub const DEMO_PROJECT: &str = "demo-huddle";

/// A running Auth emulator; dropping it stops it and everything it started.
pub struct AuthEmulator {
    host: String,
    startup: Duration,
    _proc: Proc,
    _dir: tempfile::TempDir,
}

impl AuthEmulator {
    /// Starts the emulator installed by `scripts/install-deps.sh test` (or the `firebase` named
    /// by `HUDDLE_FIREBASE_BIN`) and waits until it answers.
    pub fn start() -> Result<AuthEmulator, Error> {
        let bin = firebase_bin();
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let hub = free_port()?;
        let logging = free_port()?;
        let config = serde_json::json!({
            "emulators": {
                "auth": { "host": "127.0.0.1", "port": port },
                "hub": { "host": "127.0.0.1", "port": hub },
                "logging": { "host": "127.0.0.1", "port": logging },
                "ui": { "enabled": false },
            }
        });
        std::fs::write(dir.path().join("firebase.json"), config.to_string())?;
        std::fs::create_dir_all(dir.path().join("home"))?;
        let log_path = dir.path().join("emulator.log");
        let log = std::fs::File::create(&log_path)?;
        let started = Instant::now();
        let proc = Proc::spawn(
            Command::new(&bin)
                .args([
                    "emulators:start",
                    "--only",
                    "auth",
                    "--project",
                    DEMO_PROJECT,
                ])
                .current_dir(dir.path())
                .env("HOME", dir.path().join("home"))
                // Its hub writes a locator file per project in the temp folder, and a killed
                // emulator leaves it behind; a folder of its own keeps parallel tests apart.
                .env("TMPDIR", dir.path())
                .env("CI", "true")
                .env("NO_UPDATE_NOTIFIER", "1")
                .env_remove("FIREBASE_AUTH_EMULATOR_HOST")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log),
            "install it with: bash scripts/install-deps.sh test",
        )?;
        let host = format!("127.0.0.1:{port}");
        let mut emulator = AuthEmulator {
            host,
            startup: Duration::ZERO,
            _proc: proc,
            _dir: dir,
        };
        let mut exited = None;
        let answered = crate::poll("the Auth emulator to answer", START_BOUND, || {
            if let Ok(Some(status)) = emulator._proc.child().try_wait() {
                exited = Some(status);
                return Some(false);
            }
            emulator
                .request("GET", "/", None, None)
                .ok()
                .filter(|(status, body)| *status == 200 && body.contains("authEmulator"))
                .map(|_| true)
        });
        if !matches!(answered, Ok(true)) {
            let output = std::fs::read_to_string(&log_path).unwrap_or_default();
            let last = |text: &str| {
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(15)..].join("\n")
            };
            let mut tail = last(&output);
            // Once it exited (status 2) right after "All emulators ready" with nothing more on
            // its output: its debug log may say why.
            if let Ok(debug) =
                std::fs::read_to_string(emulator._dir.path().join("firebase-debug.log"))
            {
                tail += &format!("\nfirebase-debug.log ends:\n{}", last(&debug));
            }
            return Err(Error::Unexpected {
                program: bin.display().to_string(),
                problem: format!(
                    "did not answer on {} ({}); its last output:\n{tail}",
                    emulator.host,
                    match (exited, answered) {
                        (Some(s), _) => format!("it exited: {s}"),
                        (None, Err(e)) => e.to_string(),
                        (None, Ok(_)) => "unknown".to_owned(),
                    }
                ),
            });
        }
        emulator.startup = started.elapsed();
        Ok(emulator)
    }

    /// `127.0.0.1:PORT`, as `FIREBASE_AUTH_EMULATOR_HOST` takes it.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.host)
    }

    /// How long it took from spawn to the first answer.
    pub fn startup(&self) -> Duration {
        self.startup
    }

    /// Deletes a user, as an administrator would in the console (`Bearer owner` is the
    /// emulator's admin credential).
    pub fn delete_user(&self, uid: &str) -> Result<(), Error> {
        self.admin(
            &format!("/identitytoolkit.googleapis.com/v1/projects/{DEMO_PROJECT}/accounts:delete"),
            serde_json::json!({ "localId": uid }),
        )
        .map(drop)
    }

    /// Disables a user (its refresh then fails with `USER_DISABLED`).
    pub fn disable_user(&self, uid: &str) -> Result<(), Error> {
        self.admin(
            &format!("/identitytoolkit.googleapis.com/v1/projects/{DEMO_PROJECT}/accounts:update"),
            serde_json::json!({ "localId": uid, "disableUser": true }),
        )
        .map(drop)
    }

    /// A tenant with anonymous sign-in disabled, and its id. The emulator's default project
    /// always allows anonymous sign-in; a tenant's setting is the one it lets a test turn off.
    pub fn tenant_without_anonymous(&self) -> Result<String, Error> {
        let body = self.admin(
            &format!("/identitytoolkit.googleapis.com/v2/projects/{DEMO_PROJECT}/tenants"),
            serde_json::json!({ "displayName": "no-anon", "enableAnonymousUser": false }),
        )?;
        body.get("tenantId")
            .and_then(|t| t.as_str())
            .map(str::to_owned)
            .ok_or_else(|| Error::Unexpected {
                program: "Auth emulator".into(),
                problem: format!("created a tenant without an id: {body}"),
            })
    }

    fn admin(&self, path: &str, body: serde_json::Value) -> Result<serde_json::Value, Error> {
        let (status, text) = self.request("POST", path, Some(&body.to_string()), Some("owner"))?;
        if status != 200 {
            return Err(Error::Unexpected {
                program: "Auth emulator".into(),
                problem: format!("{path} answered {status}: {text}"),
            });
        }
        Ok(serde_json::from_str(&text).unwrap_or_default())
    }

    /// One plain HTTP/1.0 request (the harness has no HTTP client without the browser feature).
    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        bearer: Option<&str>,
    ) -> Result<(u16, String), Error> {
        let mut s = TcpStream::connect(&self.host)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let body = body.unwrap_or("");
        let auth = bearer
            .map(|b| format!("authorization: Bearer {b}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nhost: {}\r\ncontent-type: application/json\r\n{auth}content-length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        )?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        let status = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    }
}

/// `tests/firebase/node_modules/.bin/firebase` at the repository root.
fn firebase_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("HUDDLE_FIREBASE_BIN") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/firebase/node_modules/.bin/firebase")
}
