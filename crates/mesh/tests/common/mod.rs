//! Shared setup for the engine's in-process tests: a real huddle-db on loopback (the shipped
//! rules file), and members that are real `Mesh::join`s with synthetic sources, each a real
//! webrtc-rs PeerConnection per remote member, whose events and received media can be awaited
//! with a bound.
//!
//! Every match on a [`MeshEvent`] the tests need lives here (the `is_*` and `stats_of`
//! helpers), so the tests read like the protocol and a change to the event vocabulary is
//! fixed in one place.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use media::codec::VideoCodec;
use media::frame::AudioFrame;
use media::source::AudioSink;
use media::synthetic::SyntheticSources;
use media::MediaKind;
use media::StreamConfig;
use mesh::event::LeaveReason;
use mesh::{Mesh, MeshConfig, MeshEvent, NetConfig, PeerStats};
use signal::room::{JoinOptions, Privacy, Signaling, Timing};
use signal::rtdb::{ClientConfig, RtdbClient};
use signal::RoomId;
use tokio::sync::{mpsc, watch};

/// How long to wait for anything expected. Generous: two CPU cores are shared with other
/// builds, and a bound only matters when something never comes.
pub const T: Duration = Duration::from_secs(30);

/// Presence as huddle-peer's tests set it: a member that vanishes is dropped in ~2 s.
pub const FAST: Timing = Timing {
    heartbeat: Duration::from_millis(300),
    expiry: Duration::from_millis(2000),
};

/// The admin secret of the test servers. Members use it acting as their peer id
/// (`auth_variable_override`), so the rules judge each as the user it claims while the tests
/// keep their chosen, ordered peer ids (a real client signs in and its uid is its peer id).
const SECRET: &str = "test-admin-secret";

/// A huddle-db on 127.0.0.1 with the shipped rules, in a fresh folder (kept while the folder
/// handle lives). The rules' staleness bound (the literal 15000 ms, `docs/protocol.md` §7)
/// becomes `FAST`'s expiry, so members may remove a crashed one when they judge it gone.
pub async fn server() -> (tempfile::TempDir, rtdb::Server) {
    let dir = tempfile::tempdir().unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../database.rules.json");
    let text = std::fs::read_to_string(shipped).unwrap();
    let bound = "now - 15000";
    assert!(
        text.contains(bound),
        "the shipped rules no longer contain the staleness bound `{bound}`"
    );
    let rules = dir.path().join("fast.rules.json");
    std::fs::write(
        &rules,
        text.replace(bound, &format!("now - {}", FAST.expiry.as_millis())),
    )
    .unwrap();
    let mut config = rtdb::ServerConfig::new(([127, 0, 0, 1], 0).into(), dir.path().to_owned());
    config.rules_file = Some(rules);
    config.secret = Some(SECRET.into());
    (dir, rtdb::Server::start(config).await.unwrap())
}

/// The peer id of member `name`: ids order the roles (the smaller one offers and repairs), so
/// "a" < "b" < "c" holds for the ids too.
pub fn id(name: &str) -> String {
    format!("{name}-0000000")
}

/// A public room on `url`; returns its id.
pub async fn room(url: &str, name: &str) -> RoomId {
    signaling(url, "room-maker")
        .create_room(name, Privacy::Public)
        .await
        .unwrap()
}

fn signaling(url: &str, name: &str) -> Signaling {
    let db =
        RtdbClient::new(ClientConfig::new(url).with_secret_acting_as(SECRET, id(name))).unwrap();
    Signaling::new(db, id(name)).with_timing(FAST)
}

/// What a member's sinks were handed: decoded video frames per sender and kind, and mixed
/// audio frames that carried sound.
#[derive(Clone, Debug, Default)]
pub struct Received {
    pub video: BTreeMap<(String, MediaKind), u64>,
    pub loud_audio_frames: u64,
}

/// The mix the engine plays, measured: a frame whose peak is well above silence counts.
struct CountingSpeaker(watch::Sender<Received>);

impl AudioSink for CountingSpeaker {
    fn play(&mut self, frame: &AudioFrame) {
        let peak = frame.samples.iter().map(|s| s.unsigned_abs()).max();
        if peak.unwrap_or(0) > 1000 {
            self.0.send_modify(|r| r.loud_audio_frames += 1);
        }
    }
}

/// One participant: a joined [`Mesh`], its events (kept in `seen`, in order) and what it
/// received.
pub struct Member {
    pub name: String,
    pub mesh: Option<Mesh>,
    events: mpsc::Receiver<MeshEvent>,
    pub seen: Vec<MeshEvent>,
    received: watch::Receiver<Received>,
}

impl Member {
    /// Joins `room` as `name`, sending `streams` from the synthetic sources, VP8 only.
    pub async fn join(url: &str, room: &RoomId, name: &str, streams: StreamConfig) -> Member {
        Self::join_with(url, room, name, streams, |_| {}).await
    }

    /// Joins with the engine's settings changed by `tune` (codecs, network, repair).
    pub async fn join_with(
        url: &str,
        room: &RoomId,
        name: &str,
        streams: StreamConfig,
        tune: impl FnOnce(&mut MeshConfig),
    ) -> Member {
        let (tx, received) = watch::channel(Received::default());
        let video = tx.clone();
        let mut config = MeshConfig {
            net: NetConfig {
                loopback_only: true,
                ..NetConfig::default()
            },
            fps: 15,
            stats_every: Duration::from_millis(500),
            sink: Some(Arc::new(move |from: &signal::PeerId, kind, _frame: &_| {
                video.send_modify(|r| *r.video.entry((from.to_string(), kind)).or_default() += 1);
            })),
            audio_sink: Some(Arc::new(Mutex::new(CountingSpeaker(tx)))),
            ..MeshConfig::default()
        };
        tune(&mut config);
        let options = JoinOptions {
            streams,
            ..JoinOptions::new(name)
        };
        let sources = Arc::new(SyntheticSources::new(160, 96, 15));
        let (mesh, events) = Mesh::join(&signaling(url, name), room, options, config, sources)
            .await
            .unwrap_or_else(|e| panic!("{name} cannot join: {e}"));
        let mut member = Member {
            name: name.to_owned(),
            mesh: Some(mesh),
            events,
            seen: Vec::new(),
            received,
        };
        // From the first event: `Joined` may already be queued when `join` returns.
        member
            .wait_from(0, "joined", |ev| matches!(ev, MeshEvent::Joined { .. }))
            .await;
        member
    }

    pub fn mesh(&self) -> &Mesh {
        self.mesh.as_ref().unwrap()
    }

    /// Leaves the room the way the app does (and waits until it has).
    pub async fn leave(&mut self) {
        self.mesh.take().unwrap().leave().await;
    }

    /// The index after every event seen so far: "from now on" for [`Member::wait_from`].
    pub fn mark(&mut self) -> usize {
        while let Ok(ev) = self.events.try_recv() {
            self.seen.push(ev);
        }
        self.seen.len()
    }

    /// The first event at index `from` or later (see [`Member::mark`]) that matches `pred`; fails
    /// the test after [`T`]. Events that may come in either order are awaited from one mark.
    pub async fn wait_from(
        &mut self,
        from: usize,
        what: &str,
        pred: impl Fn(&MeshEvent) -> bool,
    ) -> MeshEvent {
        if let Some(ev) = self
            .seen
            .get(from..)
            .into_iter()
            .flatten()
            .find(|e| pred(e))
        {
            return ev.clone();
        }
        let deadline = tokio::time::Instant::now() + T;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(ev)) => {
                    self.seen.push(ev.clone());
                    if pred(&ev) {
                        return ev;
                    }
                }
                Ok(None) => panic!("{}: the call ended while waiting for {what}", self.name),
                Err(_) => panic!(
                    "{}: no {what} within {T:?}; last events: {:?}",
                    self.name,
                    &self.seen[self.seen.len().saturating_sub(8)..]
                ),
            }
        }
    }

    /// The next statistics about `from` at index `mark` or later that satisfy `pred`.
    pub async fn stats_from(
        &mut self,
        mark: usize,
        from: &str,
        what: &str,
        pred: impl Fn(&PeerStats) -> bool,
    ) -> PeerStats {
        let ev = self
            .wait_from(mark, what, |ev| stats_of(ev, from).is_some_and(&pred))
            .await;
        stats_of(&ev, from).unwrap().clone()
    }

    /// Video frames of `kind` from member `from` handed to my sink so far.
    pub fn frames(&self, from: &str, kind: MediaKind) -> u64 {
        let key = (id(from), kind);
        self.received.borrow().video.get(&key).copied().unwrap_or(0)
    }

    /// Mixed audio frames with sound in them played so far.
    pub fn loud_audio_frames(&self) -> u64 {
        self.received.borrow().loud_audio_frames
    }

    /// Waits until more than `after` frames of `kind` from `from` reached my sink.
    pub async fn frames_beyond(&mut self, from: &str, kind: MediaKind, after: u64) {
        let key = (id(from), kind);
        let got = |r: &Received| r.video.get(&key).copied().unwrap_or(0) > after;
        self.received_until(&format!("{} {kind} frames from {from}", after + 1), got)
            .await;
    }

    /// Waits until more than `after` loud audio frames were played.
    pub async fn audio_beyond(&mut self, after: u64) {
        self.received_until(&format!("{} loud audio frames", after + 1), |r| {
            r.loud_audio_frames > after
        })
        .await;
    }

    async fn received_until(&mut self, what: &str, pred: impl Fn(&Received) -> bool) {
        let waited = tokio::time::timeout(T, self.received.wait_for(|r| pred(r)))
            .await
            .map(|r| r.is_ok());
        match waited {
            Ok(true) => {}
            Ok(false) => panic!("{}: the sinks are gone while waiting for {what}", self.name),
            Err(_) => panic!(
                "{}: no {what} within {T:?} (got {:?})",
                self.name,
                self.received.borrow()
            ),
        }
    }
}

/// The statistics in `ev` if it is about member `from`.
pub fn stats_of<'a>(ev: &'a MeshEvent, from: &str) -> Option<&'a PeerStats> {
    match ev {
        MeshEvent::Stats { peer_id, stats } if *peer_id == id(from) => Some(stats),
        _ => None,
    }
}

/// Member `from` said it sends (or stopped sending) `kind`.
pub fn is_streams_changed(ev: &MeshEvent, from: &str, kind: MediaKind, on: bool) -> bool {
    matches!(ev, MeshEvent::StreamsChanged { peer_id, streams }
        if *peer_id == id(from) && streams.get(kind) == on)
}

/// A track of `kind` from member `from` started; its codec, if so.
pub fn track_added(ev: &MeshEvent, from: &str, kind: MediaKind) -> Option<String> {
    match ev {
        MeshEvent::TrackAdded {
            peer_id,
            kind: k,
            codec,
        } if *peer_id == id(from) && *k == kind => Some(codec.clone()),
        _ => None,
    }
}

/// A track of `kind` from member `from` ended.
pub fn is_track_removed(ev: &MeshEvent, from: &str, kind: MediaKind) -> bool {
    matches!(ev, MeshEvent::TrackRemoved { peer_id, kind: k } if *peer_id == id(from) && *k == kind)
}

/// Member `from` arrived.
pub fn is_member_joined(ev: &MeshEvent, from: &str) -> bool {
    matches!(ev, MeshEvent::MemberJoined { peer_id, .. } if *peer_id == id(from))
}

/// Member `from` left, for `reason`.
pub fn is_member_left(ev: &MeshEvent, from: &str, reason: LeaveReason) -> bool {
    matches!(ev, MeshEvent::MemberLeft { peer_id, reason: r } if *peer_id == id(from) && *r == reason)
}

/// Member `from` left or was dropped, for whatever reason.
pub fn is_departure(ev: &MeshEvent, from: &str) -> bool {
    matches!(ev, MeshEvent::MemberLeft { peer_id, .. } if *peer_id == id(from))
}

/// The connection to member `with` reached `state`.
pub fn is_link(ev: &MeshEvent, with: &str, state: mesh::negotiation::Link) -> bool {
    matches!(ev, MeshEvent::Connection { peer_id, state: s } if *peer_id == id(with) && *s == state)
}

/// An ICE restart towards member `with` began.
pub fn is_ice_restart(ev: &MeshEvent, with: &str) -> bool {
    matches!(ev, MeshEvent::IceRestart { peer_id } if *peer_id == id(with))
}

/// What a member sends: `on` kinds, the rest off.
pub fn sending(on: &[MediaKind]) -> StreamConfig {
    StreamConfig::from_fn(|k| on.contains(&k))
}

/// Both codecs, H.264 preferred: what `huddle-peer --codec h264` asks for.
pub fn h264_first(config: &mut MeshConfig) {
    config.video_codecs = vec![VideoCodec::H264, VideoCodec::Vp8];
}
