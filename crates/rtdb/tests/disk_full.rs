//! A full disk, for real: huddle-db on a small tmpfs that runs out of inodes or of space in the
//! middle of its compactions, then `kill -9` and a restart. Every write that was acknowledged is
//! there afterwards; a write that could not be stored was refused with a 503 that says why, and
//! is not there (issue 18, item 7). Mounting needs root, as the network tests do.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::TestServer;
use serde_json::{json, Value};

/// A tmpfs mounted on a fresh temporary folder; unmounted (lazily, in case a file is still
/// open) and removed on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(options: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "huddle-disk-full"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs and needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// 100 KB a value: 24 of them take a 1 MiB log through two compactions.
fn value(i: usize) -> Value {
    json!({"i": i, "pad": "x".repeat(100_000)})
}

/// PUTs `/v/<i>` for `0..n`, one at a time; returns which were acknowledged, and the bodies of
/// the refusals.
async fn put_all(url: &str, n: usize) -> (Vec<bool>, Vec<(u16, String)>) {
    let client = reqwest::Client::new();
    let mut acked = Vec::new();
    let mut refused = Vec::new();
    for i in 0..n {
        let r = client
            .put(format!("{url}/v/{i}.json"))
            .body(value(i).to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        acked.push(r.status().is_success());
        if !r.status().is_success() {
            refused.push((status, r.text().await.unwrap_or_default()));
        }
    }
    (acked, refused)
}

/// Restarts on the same data and checks every acknowledged write is there, and nothing that
/// was refused.
async fn check_after_restart(data: &Path, acked: &[bool], case: &str) -> String {
    let server = TestServer::spawn(data, &["--compact-mib", "1"]);
    let client = reqwest::Client::new();
    for (i, ok) in acked.iter().enumerate() {
        let got: Value = client
            .get(server.at(&format!("/v/{i}/i.json")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if *ok {
            assert_eq!(got, json!(i), "{case}: acknowledged write {i} lost");
        } else {
            assert_eq!(got, Value::Null, "{case}: refused write {i} is there");
        }
    }
    assert!(
        !data.join("snapshot.hdb.tmp").exists(),
        "{case}: an unfinished snapshot was left behind"
    );
    server.stderr()
}

/// Out of inodes. A running server holds six (the mount's root, the data folder, LOCK,
/// identity/ and its key, the log), seven once a snapshot exists; a compaction needs two more
/// (the next log, the snapshot's temporary file). With 6, 7 or 8 in all, some compaction cannot
/// create one of them; with 9 every one can. Before, the snapshot landed, the next log
/// failed, writes went on into the old log, and the restart deleted it: 13 of 24 lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_inodes_during_compaction_loses_no_acknowledged_write() {
    for inodes in 6..=9 {
        let case = format!("{inodes} inodes");
        let disk = Tmpfs::mount(&format!("size=16m,nr_inodes={inodes}"));
        std::fs::create_dir(disk.data()).unwrap();
        let mut server = TestServer::spawn(&disk.data(), &["--compact-mib", "1"]);
        let (acked, refused) = put_all(&server.url, 24).await;
        assert!(refused.is_empty(), "{case}: writes refused: {refused:?}");
        let log = server.stderr();
        server.kill9();
        if inodes < 9 {
            assert!(
                log.contains("snapshot failed"),
                "{case}: no failure hit:\n{log}"
            );
        } else {
            assert!(
                log.contains("snapshot written"),
                "{case}: no snapshot:\n{log}"
            );
        }
        check_after_restart(&disk.data(), &acked, &case).await;
    }
}

/// Out of space: a snapshot fails half-written (its temporary file is removed), then the log
/// itself fills and writes are refused with a 503 that names the cause, not acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_space_refuses_writes_with_a_reason_and_loses_no_acknowledged_one() {
    let disk = Tmpfs::mount("size=3m");
    let mut server = TestServer::spawn(&disk.data(), &["--compact-mib", "1"]);
    let client = reqwest::Client::new();
    let leaf = server.at("/leaf.json");
    client.put(&leaf).body("\"kept\"").send().await.unwrap();
    let (acked, refused) = put_all(&server.url, 40).await;
    // A refused write below a leaf (which would have replaced it) leaves the leaf as it was.
    let below = client
        .put(server.at("/leaf/below.json"))
        .body(value(0).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(below.status().as_u16(), 503);
    let now = client
        .get(&leaf)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(now, "\"kept\"", "the refused write changed what was stored");
    let log = server.stderr();
    server.kill9();
    assert!(
        log.contains("snapshot failed"),
        "no failed snapshot:\n{log}"
    );
    let first_refused = acked
        .iter()
        .position(|a| !a)
        .expect("the disk never filled");
    assert!(first_refused > 10, "refused from write {first_refused} on");
    let (status, body) = &refused[0];
    assert_eq!(*status, 503, "{body}");
    assert!(
        body.contains("could not save this write") && body.contains("No space left"),
        "{body}"
    );
    check_after_restart(&disk.data(), &acked, "3 MiB").await;
}
