//! Durability: every write acknowledged with 2xx survives `kill -9` of the server at any moment,
//! and nothing that was never written appears. Torn log tails are dropped with a warning, a
//! second server on the same data folder is refused.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TestServer;
use serde_json::{json, Value};

/// What each writer knows: the last sequence number acknowledged, and the one in flight.
#[derive(Default, Clone, Copy, Debug)]
struct Progress {
    acked: Option<u64>,
    in_flight: Option<u64>,
}

/// Writer `w` PUTs `/crash/w{w}/{n}` for n = 0, 1, 2, ... one at a time, and also keeps
/// `/crash/last/w{w}` = n with a PATCH, until the server stops answering.
async fn writer(url: String, w: usize, progress: Arc<Mutex<Vec<Progress>>>) {
    let client = reqwest::Client::new();
    let pad = "x".repeat(300);
    for n in 0u64.. {
        progress.lock().unwrap()[w].in_flight = Some(n);
        let put = client
            .put(format!("{url}/crash/w{w}/{n}.json"))
            .body(json!({"n": n, "pad": pad}).to_string())
            .send()
            .await;
        let ok = matches!(&put, Ok(r) if r.status().is_success());
        if !ok {
            return;
        }
        let patch = client
            .patch(format!("{url}/crash/last.json"))
            .body(json!({ format!("w{w}"): n }).to_string())
            .send()
            .await;
        if !matches!(&patch, Ok(r) if r.status().is_success()) {
            return;
        }
        progress.lock().unwrap()[w] = Progress {
            acked: Some(n),
            in_flight: None,
        };
    }
}

fn check(state: &Value, progress: &[Progress]) {
    for (w, p) in progress.iter().enumerate() {
        // Integer keys come back as an array when dense enough, as Firebase renders them.
        let present: BTreeMap<u64, Value> = match &state["crash"][format!("w{w}")] {
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| (k.parse::<u64>().expect("numeric key"), v.clone()))
                .collect(),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .filter(|(_, v)| !v.is_null())
                .map(|(i, v)| (i as u64, v.clone()))
                .collect(),
            _ => BTreeMap::new(),
        };
        // Every acknowledged write is there, with its value.
        if let Some(acked) = p.acked {
            for n in 0..=acked {
                let v = present
                    .get(&n)
                    .unwrap_or_else(|| panic!("writer {w}: acknowledged write {n} lost"));
                assert_eq!(
                    v["n"],
                    json!(n),
                    "writer {w}: write {n} has the wrong value"
                );
            }
            let last = state["crash"]["last"][format!("w{w}")]
                .as_u64()
                .expect("last acknowledged patch lost");
            assert!(
                last >= acked,
                "writer {w}: PATCH of {acked} lost (found {last})"
            );
        }
        // Nothing was invented: beyond the acknowledged ones, only the one in flight may appear.
        let limit = p.in_flight.or(p.acked).map_or(0, |n| n + 1);
        for n in present.keys() {
            assert!(
                *n < limit,
                "writer {w}: write {n} appeared but was never sent (limit {limit})"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let data = tempfile::tempdir().unwrap();
    const WRITERS: usize = 16;
    // A 1 MiB compaction bound makes snapshots happen while the writers run, so crashes also
    // land during or around a compaction.
    let args = ["--compact-mib", "1"];
    for round in 0..3 {
        let mut server = TestServer::spawn(data.path(), &args);
        let progress = Arc::new(Mutex::new(vec![Progress::default(); WRITERS]));
        // Each round writes to fresh keys, so the check covers this round's writes only.
        let url = server.url.clone();
        let _ = reqwest::Client::new()
            .delete(format!("{url}/crash.json"))
            .send()
            .await
            .unwrap();
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| tokio::spawn(writer(url.clone(), w, progress.clone())))
            .collect();
        // Let a good number of writes land, then pull the plug mid-stream.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let acked: u64 = progress
                .lock()
                .unwrap()
                .iter()
                .filter_map(|p| p.acked)
                .sum();
            if acked >= 1500 + 500 * round || std::time::Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.kill9();
        for t in tasks {
            t.await.unwrap();
        }
        let snapshot = progress.lock().unwrap().clone();
        assert!(
            snapshot.iter().any(|p| p.acked.is_some()),
            "no write was acknowledged before the kill"
        );

        let restarted = TestServer::spawn(data.path(), &args);
        let state: Value = reqwest::get(restarted.at("/.json"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        check(&state, &snapshot);
        drop(restarted);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_last_record_is_dropped_with_a_warning() {
    let data = tempfile::tempdir().unwrap();
    {
        let server = TestServer::spawn(data.path(), &[]);
        let c = reqwest::Client::new();
        for i in 0..10 {
            let r = c
                .put(server.at(&format!("/t/{i}.json")))
                .body(i.to_string())
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
        }
    }
    // Half a record at the end of the log: what a crash in the middle of an append leaves.
    let log = std::fs::read_dir(data.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("log-"))
        .unwrap();
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3, 4, b'[', b'[']);
    std::fs::write(&log, bytes).unwrap();

    let server = TestServer::spawn(data.path(), &[]);
    let state: Value = reqwest::get(server.at("/t.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state, json!([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
    assert!(
        server.stderr().contains("dropped a torn last record"),
        "no warning:\n{}",
        server.stderr()
    );
    // And the log is usable afterwards.
    let r = reqwest::Client::new()
        .put(server.at("/t/10.json"))
        .body("10")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_data_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let _first = TestServer::spawn(data.path(), &[]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_huddle-db"))
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("in use by another huddle-db"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_cleanly_and_data_stays() {
    let data = tempfile::tempdir().unwrap();
    let mut server = TestServer::spawn(data.path(), &[]);
    let r = reqwest::Client::new()
        .put(server.at("/k.json"))
        .body("\"v\"")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let pid = server.child.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || server.child.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "exit status {exit:?}");
    let server = TestServer::spawn(data.path(), &[]);
    let v: Value = reqwest::get(server.at("/k.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v, json!("v"));
}
