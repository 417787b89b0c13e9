//! Shared test harness: a real huddle-db (in-process, loopback, the shipped rules file) and
//! participants with short presence timing whose events can be awaited with a timeout.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use signal::room::{JoinOptions, RoomEvent, RoomHandle, Signaling, Timing};
use signal::rtdb::{ClientConfig, RtdbClient};
use signal::{PeerId, RoomId};
use tokio::sync::mpsc;

/// Fast presence so crash tests take seconds, not the production 15 s.
pub const FAST: Timing = Timing {
    heartbeat: Duration::from_millis(200),
    expiry: Duration::from_millis(1200),
};
/// How long to wait for an expected event.
pub const T: Duration = Duration::from_secs(10);

/// The admin secret of the test servers. Clients use it acting as their peer id
/// (`auth_variable_override`), so the rules judge each as the user it claims while the tests
/// keep their chosen, ordered peer ids (a real client signs in and its uid is its peer id).
pub const SECRET: &str = "test-admin-secret";

/// The rules file the project ships for real Firebase, enforced by huddle-db too.
pub fn rules_file() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../database.rules.json")
}

/// The shipped rules with their staleness bound (the literal 15000 ms, `docs/protocol.md` §7)
/// replaced by `FAST`'s expiry, written into `dir`: clients expire a silent member after
/// `FAST.expiry`, and the rules must let them remove it by then.
pub fn fast_rules_file(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(rules_file()).unwrap();
    let bound = "now - 15000";
    assert!(
        text.contains(bound),
        "the shipped rules no longer contain the staleness bound `{bound}`"
    );
    let fast = text.replace(bound, &format!("now - {}", FAST.expiry.as_millis()));
    let path = dir.join("fast.rules.json");
    std::fs::write(&path, fast).unwrap();
    path
}

/// A huddle-db on 127.0.0.1 with the shipped rules, in a fresh folder.
pub async fn server() -> (tempfile::TempDir, rtdb::Server) {
    let dir = tempfile::tempdir().unwrap();
    let server = server_at(dir.path(), 0).await;
    (dir, server)
}

/// A huddle-db on 127.0.0.1 with no rules file: everything open, as the app's built-in
/// database runs (the shipped rules do not let anyone list `occupants/`).
pub async fn open_server() -> (tempfile::TempDir, rtdb::Server) {
    let dir = tempfile::tempdir().unwrap();
    let config = rtdb::ServerConfig::new(([127, 0, 0, 1], 0).into(), dir.path().to_owned());
    (dir, rtdb::Server::start(config).await.unwrap())
}

/// A huddle-db on `port` (0 = any) over `dir`.
pub async fn server_at(dir: &Path, port: u16) -> rtdb::Server {
    let mut config = rtdb::ServerConfig::new(([127, 0, 0, 1], port).into(), dir.to_owned());
    config.rules_file = Some(fast_rules_file(dir));
    config.secret = Some(SECRET.into());
    rtdb::Server::start(config).await.unwrap()
}

/// A database client signed in as the user `uid` (see [`SECRET`]).
pub fn client_as(url: &str, uid: &str) -> RtdbClient {
    RtdbClient::new(ClientConfig::new(url).with_secret_acting_as(SECRET, uid)).unwrap()
}

/// The administrator (bypasses the rules), to look at or set up the database.
pub fn admin(url: &str) -> RtdbClient {
    RtdbClient::new(ClientConfig::new(url).with_secret(SECRET)).unwrap()
}

/// A signaling client for `peer_id` against `url`, signed in as `peer_id`.
pub fn signaling(url: &str, peer_id: &str) -> Signaling {
    Signaling::new(client_as(url, peer_id), peer_id).with_timing(FAST)
}

/// A joined participant and its events.
pub struct Peer {
    pub id: PeerId,
    pub handle: Option<RoomHandle>,
    pub events: mpsc::Receiver<RoomEvent>,
}

impl Peer {
    /// Joins `room` as `id` (display name = id).
    pub async fn join(url: &str, room: &RoomId, id: &str) -> Peer {
        Self::join_with(url, room, id, JoinOptions::new(id)).await
    }

    /// Joins with options.
    pub async fn join_with(url: &str, room: &RoomId, id: &str, opts: JoinOptions) -> Peer {
        let (handle, events) = signaling(url, id).join(room, opts).await.unwrap();
        let mut p = Peer {
            id: id.into(),
            handle: Some(handle),
            events,
        };
        let first = p.next().await;
        assert!(matches!(first, RoomEvent::Joined { .. }), "{first:?}");
        p
    }

    pub fn h(&self) -> &RoomHandle {
        self.handle.as_ref().unwrap()
    }

    /// The next event; fails the test after `T`.
    pub async fn next(&mut self) -> RoomEvent {
        tokio::time::timeout(T, self.events.recv())
            .await
            .unwrap_or_else(|_| panic!("{}: no event within {T:?}", self.id))
            .unwrap_or_else(|| panic!("{}: room task ended", self.id))
    }

    /// Skips events until one matches; returns it. Fails after `T`.
    pub async fn until(&mut self, what: &str, pred: impl Fn(&RoomEvent) -> bool) -> RoomEvent {
        let deadline = tokio::time::Instant::now() + T;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.events.recv()).await {
                Ok(Some(ev)) if pred(&ev) => return ev,
                Ok(Some(_)) => continue,
                Ok(None) => panic!("{}: room task ended while waiting for {what}", self.id),
                Err(_) => panic!("{}: no {what} within {T:?}", self.id),
            }
        }
    }

    /// Every event that arrives within `d` (for asserting that nothing unexpected came).
    pub async fn drain_for(&mut self, d: Duration) -> Vec<RoomEvent> {
        let deadline = tokio::time::Instant::now() + d;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.events.recv()).await {
                Ok(Some(ev)) => out.push(ev),
                _ => return out,
            }
        }
    }
}

/// Peer ids that sort in the order given (ids need 8+ characters).
pub fn pid(name: &str) -> PeerId {
    PeerId::new(format!("{name}-peer-id"))
}

/// A public room named `name` with peers `a` and `b` in it, each having seen the other arrive
/// (the smaller id, a, is the one that offers).
pub async fn pair(url: &str, name: &str) -> (RoomId, Peer, Peer) {
    let room = signaling(url, &pid("a"))
        .create_room(name, signal::room::Privacy::Public)
        .await
        .unwrap();
    let mut a = Peer::join(url, &room, &pid("a")).await;
    let mut b = Peer::join(url, &room, &pid("b")).await;
    for (p, other, offers) in [(&mut a, "b", true), (&mut b, "a", false)] {
        match p.next().await {
            RoomEvent::MemberJoined { member, i_offer } => {
                assert_eq!((member.peer_id, i_offer), (pid(other), offers));
            }
            other => panic!("{}: expected the other to arrive, got {other:?}", p.id),
        }
    }
    (room, a, b)
}
