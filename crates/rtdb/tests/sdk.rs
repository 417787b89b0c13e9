//! The official Firebase SDKs are the judge of huddle-db's realtime protocol: the `firebase`
//! JS SDK (12.19.0) and `firebase-admin` on Node run `tests/firebase/realtime-sdk.mjs` against
//! real huddle-db processes over real sockets: `.info`, set/update/push/remove, child events
//! with prevChildKey and a moving query window, queries by key/value/child, server values and
//! increments from two clients, contending transactions, onDisconnect on a clean goOffline and
//! on a client killed with SIGKILL, values of hundreds of KB, permission errors from rules, and
//! a server killed and restarted mid-session (writes made meanwhile applied, listeners resume).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TestServer;

/// Everything but `locked/` is open to anyone, so the SDK's permission errors can be seen.
const RULES: &str =
    r#"{"rules": {"$top": {".read": "$top !== 'locked'", ".write": "$top !== 'locked'"}}}"#;

const CASES: &[&str] = &[
    "info",
    "crud",
    "child-events",
    "queries",
    "server-values",
    "transactions",
    "on-disconnect-offline",
    "on-disconnect-sigkill",
    "large-values",
    "permissions",
    "restart",
    "admin-sdk",
];

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_official_sdks_work_against_huddle_db() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let sdk = repo.join("tests/firebase/node_modules/firebase/package.json");
    let admin_sdk = repo.join("tests/firebase/node_modules/firebase-admin/package.json");
    if Command::new("node").arg("--version").output().is_err()
        || !sdk.exists()
        || !admin_sdk.exists()
    {
        // `make test` installs them (`scripts/install-deps.sh test`), so on CI this always runs.
        eprintln!("skipped: needs node and the Firebase SDKs (run `scripts/install-deps.sh test`)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.json");
    std::fs::write(&rules, RULES).unwrap();
    let data = dir.path().join("data");
    let listen = format!("127.0.0.1:{}", free_port());
    let rules_arg = rules.to_str().unwrap().to_owned();
    let mut server = Some(TestServer::spawn_at(
        &listen,
        &data,
        &["--rules", &rules_arg],
    ));
    let admin_dir = tempfile::tempdir().unwrap();
    let admin_server = TestServer::spawn(admin_dir.path(), &[]);
    let port = listen.rsplit(':').next().unwrap().to_owned();
    let admin_port = admin_server.url.rsplit(':').next().unwrap().to_owned();

    let mut node = Command::new("node")
        .arg(repo.join("tests/firebase/realtime-sdk.mjs"))
        .env("PORT", &port)
        .env("ADMIN_PORT", &admin_port)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = node.stdin.take().unwrap();
    let stdout = BufReader::new(node.stdout.take().unwrap());
    let stderr = node.stderr.take().unwrap();
    let err_log = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let mut passed = Vec::new();
    let mut transcript = String::new();
    let started = Instant::now();
    for line in stdout.lines().map_while(Result::ok) {
        transcript.push_str(&line);
        transcript.push('\n');
        eprintln!("{line}");
        if let Some(case) = line.strip_prefix("ok ") {
            passed.push(case.to_owned());
        } else if line == "kill" {
            server.take().unwrap().kill9();
            writeln!(stdin, "killed").unwrap();
        } else if line == "start" {
            server = Some(TestServer::spawn_at(&listen, &data, &[]));
            writeln!(stdin, "started").unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the SDK run did not finish:\n{transcript}"
        );
    }
    let status = node.wait().unwrap();
    let errors = err_log.join().unwrap();
    assert!(
        status.success(),
        "the SDK run failed ({status}):\n{transcript}\n{errors}"
    );
    assert_eq!(passed, CASES, "cases passed:\n{transcript}\n{errors}");
}
