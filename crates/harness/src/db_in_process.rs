//! huddle-db inside the test process, with the repository's rules: what the peer tests call a
//! signaling server. In process it needs no binary built beforehand and starts in milliseconds.

use std::path::Path;

use crate::Error;

/// Starts an rtdb server on a free loopback port with `database.rules.json` enforced and
/// [`crate::TEST_SECRET`] as its admin secret (for [`crate::as_test_user`]; everyone else signs
/// in). Keep the folder as long as the server: dropping it removes the data.
pub async fn in_process_db() -> Result<(tempfile::TempDir, rtdb::Server), Error> {
    in_process_db_with(|_| {}).await
}

/// The presence bound of the peer tests (`--expiry-ms 2000`): a member silent this long may be
/// removed by the others, so the rules must allow it after as long, not after the shipped 15 s.
pub const TEST_PRESENCE_BOUND: u64 = 2000;

/// The shipped rules with their staleness literal (`now - 15000`, the protocol's presence bound;
/// rules have no constants) replaced by `bound_ms`, written into `dir`. Fails if the literal is
/// gone, so a test cannot silently run with the long bound.
pub fn rules_with_presence_bound(dir: &Path, bound_ms: u64) -> Result<std::path::PathBuf, Error> {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../database.rules.json");
    let text = std::fs::read_to_string(&shipped)?;
    let literal = "now - 15000";
    if !text.contains(literal) {
        return Err(Error::Unexpected {
            program: "database.rules.json".to_owned(),
            problem: format!("the staleness bound `{literal}` is no longer in it"),
        });
    }
    let path = dir.join("test.rules.json");
    std::fs::write(&path, text.replace(literal, &format!("now - {bound_ms}")))?;
    Ok(path)
}

/// [`in_process_db`] with `tweak` applied to the configuration first (a short token lifetime...).
pub async fn in_process_db_with(
    tweak: impl FnOnce(&mut rtdb::ServerConfig),
) -> Result<(tempfile::TempDir, rtdb::Server), Error> {
    let dir = tempfile::tempdir()?;
    let mut config = rtdb::ServerConfig::new(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        dir.path().to_owned(),
    );
    config.rules_file = Some(rules_with_presence_bound(dir.path(), TEST_PRESENCE_BOUND)?);
    config.secret = Some(crate::TEST_SECRET.to_owned());
    tweak(&mut config);
    let server = rtdb::Server::start(config).await?;
    Ok((dir, server))
}

/// An in-process huddle-db serving inside a network namespace (see [`in_process_db_in`]); dropping
/// it stops the server, then its thread.
pub struct NsDb {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NsDb {
    pub fn url(&self) -> String {
        self.url.clone()
    }
}

impl Drop for NsDb {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// [`in_process_db_with`] on a thread of its own moved into the network namespace at `ns_path`
/// (with a runtime built after the move, so its threads are there too), listening on `listen`
/// there.
pub fn in_process_db_in(
    ns_path: &str,
    listen: std::net::SocketAddr,
    tweak: impl FnOnce(&mut rtdb::ServerConfig) + Send + 'static,
) -> Result<NsDb, Error> {
    let ns_path = ns_path.to_owned();
    let (url_tx, url_rx) = std::sync::mpsc::channel::<Result<String, Error>>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let started = crate::netns::enter(&ns_path)
            .map_err(Error::from)
            .and_then(|()| {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(Error::from)
            });
        let runtime = match started {
            Ok(r) => r,
            Err(e) => {
                let _ = url_tx.send(Err(e));
                return;
            }
        };
        runtime.block_on(async move {
            let served = in_process_db_with(|c| {
                c.listen = listen;
                tweak(c);
            })
            .await;
            match served {
                Ok((_dir, server)) => {
                    let _ = url_tx.send(Ok(server.url()));
                    let _ = stop_rx.await;
                    drop(server);
                }
                Err(e) => {
                    let _ = url_tx.send(Err(e));
                }
            }
        });
    });
    let mut db = NsDb {
        url: String::new(),
        stop: Some(stop_tx),
        thread: Some(thread),
    };
    db.url = url_rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .map_err(|_| Error::Unexpected {
            program: "huddle-db in a namespace".to_owned(),
            problem: "did not start within 20 s".to_owned(),
        })??;
    Ok(db)
}
