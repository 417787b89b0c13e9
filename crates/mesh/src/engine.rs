//! The room task: membership from the signaling, one peer task per remote member, the local
//! streams (one encoder each, shared by every connection), the call's audio playout, and
//! statistics.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use media::codec::VideoCodec;
use media::source::Sources;
use media::StreamConfig;
use signal::room::{JoinOptions, RoomEvent, RoomHandle, Signaling};
use signal::{PeerId, RoomId};
use tokio::sync::{mpsc, oneshot};

use crate::event::{MediaKind, MeshEvent, PeerStats};
use crate::local::{self, LocalStream};
use crate::negotiation::{Input, RepairPolicy};
use crate::pc::NetConfig;
use crate::peer::{self, PeerCommand, PeerReport, PeerSetup};
use crate::playout::{self, AudioPlayout, AudioStreams, PlayoutTask, SharedAudioSink};
use crate::remote::{Counters, VideoSink};
use crate::MeshError;

/// How often encoders are set to the congestion estimate.
const FOLLOW_CONGESTION_EVERY: Duration = Duration::from_millis(200);

/// How the engine runs.
#[derive(Clone)]
pub struct MeshConfig {
    pub net: NetConfig,
    pub repair: RepairPolicy,
    /// Video frame rate.
    pub fps: u32,
    /// Starting video bitrate.
    pub video_kbps: u32,
    /// Where decoded remote video goes.
    pub sink: Option<VideoSink>,
    /// Where the mix of everyone's audio goes. With none, remote audio is still decoded and
    /// measured (statistics, who is speaking), just not played.
    pub audio_sink: Option<SharedAudioSink>,
    /// How often statistics are reported.
    pub stats_every: Duration,
    /// The video codecs I want, most preferred first. VP8 only by default; H.264 is used with
    /// a peer only when both want it (`codecs::choose`, `docs/protocol.md` §4a).
    pub video_codecs: Vec<VideoCodec>,
}

impl Default for MeshConfig {
    fn default() -> Self {
        MeshConfig {
            net: NetConfig::default(),
            repair: RepairPolicy::default(),
            fps: 30,
            video_kbps: 800,
            sink: None,
            audio_sink: None,
            stats_every: Duration::from_secs(1),
            video_codecs: vec![VideoCodec::Vp8],
        }
    }
}

enum Command {
    SetStream(MediaKind, bool, oneshot::Sender<Result<(), MeshError>>),
    SetMuted(bool, oneshot::Sender<Result<(), MeshError>>),
    Leave(oneshot::Sender<()>),
}

/// A call in progress. Dropping it leaves.
pub struct Mesh {
    tx: mpsc::Sender<Command>,
}

struct PeerEntry {
    cmd: mpsc::UnboundedSender<PeerCommand>,
    /// The connection's video codec.
    codec: VideoCodec,
    counters: Arc<Counters>,
    last_frames: u64,
    last_intact: u64,
    last_bytes: u64,
}

struct RoomTask {
    room: Arc<RoomHandle>,
    me: PeerId,
    config: MeshConfig,
    sources: Arc<dyn Sources>,
    events: mpsc::Sender<MeshEvent>,
    reports_tx: mpsc::UnboundedSender<PeerReport>,
    peers: BTreeMap<PeerId, PeerEntry>,
    local: BTreeMap<MediaKind, LocalStream>,
    /// The microphone while muted: still running (see [`Mesh::set_muted`]), sent to nobody.
    muted_audio: Option<LocalStream>,
    joined_at: Instant,
    /// Every remote audio track of the call, fed by the receive tasks.
    audio: AudioStreams,
    /// Plays `audio`; stops when the room task ends (dropped with it).
    _playout: PlayoutTask,
}

impl Mesh {
    /// Joins `room_id` and starts sending what `streams` says.
    pub async fn join(
        signaling: &Signaling,
        room_id: &RoomId,
        mut options: JoinOptions,
        config: MeshConfig,
        sources: Arc<dyn Sources>,
    ) -> Result<(Mesh, mpsc::Receiver<MeshEvent>), MeshError> {
        let joined_at = Instant::now();
        let wanted = options.streams;
        options.codecs = config
            .video_codecs
            .iter()
            .map(|c| c.name().to_owned())
            .collect();
        let (room, room_events) = signaling.join(room_id, options).await?;
        let (events, events_rx) = mpsc::channel(1024);
        // Said while the call goes on: a relay that will not work is worth a sentence.
        let servers = config.net.ice_servers.clone();
        let problems = events.clone();
        tokio::spawn(async move {
            for problem in crate::turn_check::check_all(&servers).await {
                tracing::warn!(%problem, "TURN server unusable");
                let _ = problems
                    .send(MeshEvent::IceServerProblem {
                        url: problem.url().to_owned(),
                        message: problem.to_string(),
                    })
                    .await;
            }
        });
        let (reports_tx, reports_rx) = mpsc::unbounded_channel();
        let audio = AudioStreams::new();
        let playout = AudioPlayout::new(audio.clone(), config.audio_sink.clone());
        let playout = playout::spawn(playout, events.clone());
        let mut task = RoomTask {
            room: Arc::new(room),
            me: signaling.peer_id().clone(),
            config,
            sources,
            events,
            reports_tx,
            peers: BTreeMap::new(),
            local: BTreeMap::new(),
            muted_audio: None,
            joined_at,
            audio,
            _playout: playout,
        };
        for (kind, on) in [
            (MediaKind::Audio, wanted.audio),
            (MediaKind::Video, wanted.video),
            (MediaKind::Screen, wanted.screen),
        ] {
            if on {
                task.start_local(kind)?;
            }
        }
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(task.run(room_events, reports_rx, rx));
        Ok((Mesh { tx }, events_rx))
    }

    /// Starts or stops sending camera, microphone or screen (renegotiates with every peer).
    pub async fn set_stream(&self, kind: MediaKind, on: bool) -> Result<(), MeshError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Command::SetStream(kind, on, reply))
            .await
            .map_err(|_| MeshError::Closed)?;
        answer.await.map_err(|_| MeshError::Closed)?
    }

    /// Mutes or unmutes the microphone the way calls do it: muted, the others see my
    /// microphone off and receive nothing (no renegotiation: the track pauses), but the
    /// microphone keeps running, so a "you are muted" hint can listen to it and unmuting is
    /// instant (no device to reopen, no first words lost). Unmuting with no microphone running
    /// starts it; `set_stream(Audio, false)` closes it, muted or not.
    pub async fn set_muted(&self, muted: bool) -> Result<(), MeshError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Command::SetMuted(muted, reply))
            .await
            .map_err(|_| MeshError::Closed)?;
        answer.await.map_err(|_| MeshError::Closed)?
    }

    /// Leaves the room (everything I own in it is removed) and closes every connection.
    pub async fn leave(self) {
        let (reply, done) = oneshot::channel();
        if self.tx.send(Command::Leave(reply)).await.is_ok() {
            let _ = done.await;
        }
    }
}

impl RoomTask {
    fn streams(&self) -> StreamConfig {
        StreamConfig::from_fn(|kind| self.local.contains_key(&kind))
    }

    fn start_local(&mut self, kind: MediaKind) -> Result<(), MeshError> {
        if self.local.contains_key(&kind) {
            return Ok(());
        }
        let stream = match kind {
            MediaKind::Audio => local::start_audio(self.sources.audio()?)?,
            _ => local::start_video(
                kind,
                self.sources.video(kind)?,
                self.config.fps,
                self.config.video_kbps,
            )?,
        };
        for peer in self.peers.values() {
            let _ = peer
                .cmd
                .send(PeerCommand::AddTrack(stream.subscribe(peer.codec)));
        }
        self.local.insert(kind, stream);
        Ok(())
    }

    async fn emit(&self, ev: MeshEvent) {
        let _ = self.events.send(ev).await;
    }

    async fn run(
        mut self,
        mut room_events: mpsc::Receiver<RoomEvent>,
        mut reports: mpsc::UnboundedReceiver<PeerReport>,
        mut commands: mpsc::Receiver<Command>,
    ) {
        let mut stats = tokio::time::interval(self.config.stats_every);
        // Encoders follow the congestion estimate several times a second: an encoder still at
        // the old rate a second after the estimate fell fills the pacer's queue meanwhile.
        let mut congestion = tokio::time::interval(FOLLOW_CONGESTION_EVERY);
        loop {
            tokio::select! {
                ev = room_events.recv() => match ev {
                    Some(ev) => if !self.room_event(ev).await { break },
                    None => break,
                },
                Some(report) = reports.recv() => self.report(report).await,
                cmd = commands.recv() => match cmd {
                    Some(Command::SetStream(kind, on, reply)) => {
                        let _ = reply.send(self.set_stream(kind, on).await);
                    }
                    Some(Command::SetMuted(muted, reply)) => {
                        let _ = reply.send(self.set_muted(muted).await);
                    }
                    Some(Command::Leave(reply)) => {
                        self.close_all();
                        if let Err(e) = self.room.leave().await {
                            tracing::warn!(error = %e, "leaving the room");
                        }
                        let _ = reply.send(());
                        return;
                    }
                    None => {
                        self.close_all();
                        let _ = self.room.leave().await;
                        return;
                    }
                },
                _ = stats.tick() => self.stats().await,
                _ = congestion.tick() => self.follow_congestion(),
            }
        }
        self.close_all();
    }

    fn close_all(&mut self) {
        for (_, peer) in std::mem::take(&mut self.peers) {
            let _ = peer.cmd.send(PeerCommand::Close);
        }
        self.audio.clear();
        self.local.clear();
        self.muted_audio = None;
    }

    /// Closes the connection to `peer_id`, if any, and stops playing its audio at once (its
    /// tracks may take a while to report their end).
    fn remove_peer(&mut self, peer_id: &str) {
        if let Some(peer) = self.peers.remove(peer_id) {
            let _ = peer.cmd.send(PeerCommand::Close);
        }
        self.audio.remove_peer(peer_id);
    }

    async fn set_stream(&mut self, kind: MediaKind, on: bool) -> Result<(), MeshError> {
        if kind == MediaKind::Audio && on && self.muted_audio.is_some() {
            return self.set_muted(false).await;
        }
        if kind == MediaKind::Audio && !on {
            self.muted_audio = None;
        }
        if on {
            self.start_local(kind)?;
        } else if self.local.remove(&kind).is_some() {
            for peer in self.peers.values() {
                let _ = peer.cmd.send(PeerCommand::RemoveTrack(kind));
            }
        }
        self.room.set_streams(self.streams()).await?;
        Ok(())
    }

    async fn set_muted(&mut self, muted: bool) -> Result<(), MeshError> {
        if muted {
            if let Some(stream) = self.local.remove(&MediaKind::Audio) {
                for peer in self.peers.values() {
                    let _ = peer.cmd.send(PeerCommand::RemoveTrack(MediaKind::Audio));
                }
                self.muted_audio = Some(stream);
            }
        } else if let Some(stream) = self.muted_audio.take() {
            // The connections' audio tracks are paused, not gone: this resumes them.
            for peer in self.peers.values() {
                let _ = peer
                    .cmd
                    .send(PeerCommand::AddTrack(stream.subscribe(peer.codec)));
            }
            self.local.insert(MediaKind::Audio, stream);
        } else {
            self.start_local(MediaKind::Audio)?;
        }
        self.room.set_streams(self.streams()).await?;
        Ok(())
    }

    /// Handles one signaling event; false ends the task.
    async fn room_event(&mut self, ev: RoomEvent) -> bool {
        match ev {
            RoomEvent::Joined { session } => {
                let room = self.room.room_id().to_owned();
                self.emit(MeshEvent::Joined { room, session }).await;
            }
            RoomEvent::MemberJoined { member, i_offer } => {
                self.emit(MeshEvent::MemberJoined {
                    peer_id: member.peer_id.clone(),
                    name: member.name.clone(),
                    streams: member.streams,
                })
                .await;
                let codec = crate::codecs::choose(
                    &self.me,
                    &self.config.video_codecs,
                    &member.peer_id,
                    &member.codecs,
                );
                tracing::debug!(peer = %member.peer_id, codec = codec.name(), "video codec chosen");
                self.add_peer(member.peer_id, i_offer, member.streams, codec);
            }
            RoomEvent::MemberLeft { peer_id, reason } => {
                self.remove_peer(&peer_id);
                self.emit(MeshEvent::MemberLeft { peer_id, reason }).await;
            }
            RoomEvent::StreamsChanged { peer_id, streams } => {
                if let Some(peer) = self.peers.get(&peer_id) {
                    let _ = peer.cmd.send(PeerCommand::RemoteStreams(streams));
                }
                self.emit(MeshEvent::StreamsChanged { peer_id, streams })
                    .await;
            }
            RoomEvent::Offer { from, sdp } => self.route(&from, Input::RemoteOffer(sdp)),
            RoomEvent::Answer { from, sdp } => self.route(&from, Input::RemoteAnswer(sdp)),
            RoomEvent::Candidate { from, candidate } => {
                self.route(&from, Input::RemoteCandidate(candidate))
            }
            RoomEvent::Evicted | RoomEvent::Reclaimed => {
                // Everyone saw me leave (or rejoin): start every connection again.
                for (_, peer) in std::mem::take(&mut self.peers) {
                    let _ = peer.cmd.send(PeerCommand::Close);
                }
                self.audio.clear();
            }
            RoomEvent::RoomClosed => {
                self.emit(MeshEvent::RoomClosed).await;
                return false;
            }
            RoomEvent::Failed(message) => {
                self.emit(MeshEvent::Error { message }).await;
                return false;
            }
            RoomEvent::SignalingLost(why) => {
                tracing::info!(%why, "signaling lost; reconnecting");
                self.emit(MeshEvent::SignalingLost { reason: why }).await;
            }
            RoomEvent::SignalingRestored => {
                tracing::info!("signaling restored");
                self.emit(MeshEvent::SignalingRestored).await;
            }
            _ => {}
        }
        true
    }

    fn route(&self, from: &str, input: Input) {
        match self.peers.get(from) {
            Some(peer) => {
                let _ = peer.cmd.send(PeerCommand::Signal(input));
            }
            None => tracing::debug!(%from, "signaling from someone without a connection"),
        }
    }

    fn add_peer(
        &mut self,
        peer_id: PeerId,
        i_offer: bool,
        remote_streams: StreamConfig,
        codec: VideoCodec,
    ) {
        self.remove_peer(&peer_id);
        let (cmd, cmd_rx) = mpsc::unbounded_channel();
        let counters = Counters::new(self.audio.clone());
        let setup = PeerSetup {
            peer_id: peer_id.clone(),
            me: self.me.clone(),
            room: self.room.clone(),
            net: self.config.net.clone(),
            repair: self.config.repair,
            events: self.events.clone(),
            reports: self.reports_tx.clone(),
            joined_at: self.joined_at,
            sink: self.config.sink.clone(),
            counters: counters.clone(),
            remote_streams,
            video_codec: codec,
        };
        let feeds = self.local.values().map(|s| s.subscribe(codec)).collect();
        tokio::spawn(peer::run(setup, feeds, i_offer, cmd_rx));
        self.peers.insert(
            peer_id,
            PeerEntry {
                cmd,
                codec,
                counters,
                last_frames: 0,
                last_intact: 0,
                last_bytes: 0,
            },
        );
    }

    async fn report(&mut self, report: PeerReport) {
        match report {
            PeerReport::Connected(peer) | PeerReport::Negotiated(peer) => {
                // The new or changed connection needs a picture it can start decoding from,
                // from the encoder of its codec.
                let Some(codec) = self.peers.get(&peer).map(|p| p.codec) else {
                    return;
                };
                tracing::debug!(%peer, codec = codec.name(), "keyframe requested");
                for s in self.local.values() {
                    s.request_keyframe(codec);
                }
            }
            PeerReport::GaveUp { peer_id, reason } => {
                self.remove_peer(&peer_id);
                self.emit(MeshEvent::PeerUnreachable { peer_id, reason })
                    .await;
            }
        }
    }

    /// Every encoder follows the weakest connection's congestion estimate (see `congestion`).
    fn follow_congestion(&self) {
        let estimates = self
            .peers
            .values()
            .map(|p| p.counters.target_bps.load(Ordering::Relaxed))
            .filter(|bps| *bps > 0)
            .map(|bps| bps as f64);
        let Some(kbps) = crate::congestion::encoder_kbps(estimates) else {
            return;
        };
        for (kind, stream) in &self.local {
            if *kind == MediaKind::Audio {
                continue;
            }
            let want = kbps.min(
                self.config
                    .video_kbps
                    .max(crate::congestion::MIN_VIDEO_KBPS),
            );
            if stream.bitrate_kbps() != want {
                tracing::debug!(
                    kind = kind.as_str(),
                    kbps = want,
                    "encoder follows the congestion estimate"
                );
                stream.set_bitrate_kbps(want);
            }
        }
    }

    async fn stats(&mut self) {
        let secs = self.config.stats_every.as_secs_f64().max(0.001);
        let mut out = Vec::new();
        for (peer_id, p) in &mut self.peers {
            let frames = p.counters.frames.load(Ordering::Relaxed);
            let intact = p.counters.intact.load(Ordering::Relaxed);
            let bytes = p.counters.bytes.load(Ordering::Relaxed);
            // Latency of frames decoded in this period only: a stale figure would hide a stall.
            let latency = p.counters.latency_us.swap(u64::MAX, Ordering::Relaxed);
            let rtt = p.counters.rtt_us.load(Ordering::Relaxed);
            let stats = PeerStats {
                frames_decoded: frames,
                fps: (frames - p.last_frames) as f64 / secs,
                intact_fps: (intact - p.last_intact) as f64 / secs,
                bitrate_kbps: (bytes - p.last_bytes) as f64 * 8.0 / 1000.0 / secs,
                rtt_ms: (rtt != u64::MAX).then(|| rtt as f64 / 1000.0),
                path: crate::event::Path::from_code(p.counters.path.load(Ordering::Relaxed)),
                audio_packets: p.counters.audio_packets.load(Ordering::Relaxed),
                audio_frames_played: p.counters.playout.played.load(Ordering::Relaxed),
                audio_concealed: p.counters.playout.concealed.load(Ordering::Relaxed),
                latency_ms: (latency != u64::MAX).then(|| latency as f64 / 1000.0),
            };
            p.last_frames = frames;
            p.last_intact = intact;
            p.last_bytes = bytes;
            out.push(MeshEvent::Stats {
                peer_id: peer_id.clone(),
                stats,
            });
        }
        for ev in out {
            self.emit(ev).await;
        }
    }
}
