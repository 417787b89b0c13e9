//! One remote peer: the task that owns its PeerConnection, runs the [`Negotiation`] machine, and
//! carries out its actions through webrtc-rs and the room's signaling.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use media::StreamConfig;
use signal::room::RoomHandle;
use signal::PeerId;
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::peer_connection::{
    PeerConnection, RTCSessionDescription, RTCStatsReport, RTCStatsReportEntry, StatsSelector,
};

use crate::answer::{self, DtlsRole};
use crate::candidate;
use crate::event::{MediaKind, MeshEvent};
use crate::local::{Feed, LinkState};
use crate::negotiation::{Action, GiveUpReason, Input, Link, Negotiation, RepairPolicy};
use crate::pc::{self, NetConfig, PcEvent};
use crate::remote::{self, Counters, VideoSink};
use media::codec::VideoCodec;

/// What the room task tells a peer task.
pub enum PeerCommand {
    /// Signaling from this peer.
    Signal(Input),
    /// Start (or resume) sending this local stream.
    AddTrack(Feed),
    /// Pause sending this kind (the track stays negotiated, so resuming needs no new offer).
    RemoveTrack(MediaKind),
    /// What the peer says it sends now (its room record): ends or revives its tracks here.
    RemoteStreams(StreamConfig),
    /// The peer left: close.
    Close,
}

/// What a peer task tells the room task.
pub enum PeerReport {
    /// The link is up: local encoders should send a keyframe.
    Connected(PeerId),
    /// Negotiation completed: new tracks need a keyframe.
    Negotiated(PeerId),
    /// Gave up on the peer: repair ran out of time.
    GaveUp {
        peer_id: PeerId,
        reason: GiveUpReason,
    },
}

/// Everything a peer task needs.
pub struct PeerSetup {
    pub peer_id: PeerId,
    pub me: PeerId,
    /// The room's signaling.
    pub room: Arc<RoomHandle>,
    pub net: NetConfig,
    pub repair: RepairPolicy,
    /// The user's events.
    pub events: mpsc::Sender<MeshEvent>,
    /// Reports to the room task.
    pub reports: mpsc::UnboundedSender<PeerReport>,
    /// When I joined (for first-frame times).
    pub joined_at: Instant,
    /// Where decoded video goes.
    pub sink: Option<VideoSink>,
    /// Incoming media counters for this peer.
    pub counters: Arc<Counters>,
    /// What the peer said it sends when it joined.
    pub remote_streams: StreamConfig,
    /// The connection's video codec (`codecs::choose`): every video track I send is in it.
    pub video_codec: VideoCodec,
}

/// Runs one peer until it is closed or given up.
pub async fn run(
    setup: PeerSetup,
    feeds: Vec<Feed>,
    i_offer: bool,
    mut commands: mpsc::UnboundedReceiver<PeerCommand>,
) {
    let pc::Built {
        pc,
        events: mut pc_events,
        estimate,
        send,
    } = match pc::build(&setup.net, setup.video_codec).await {
        Ok(x) => x,
        Err(e) => {
            let _ = setup
                .events
                .send(MeshEvent::Error {
                    message: format!("cannot create a connection: {e}"),
                })
                .await;
            return;
        }
    };
    let mut neg = Negotiation::new(&setup.me, &setup.peer_id, setup.repair, Instant::now());
    let mut senders: BTreeMap<MediaKind, Sending> = BTreeMap::new();
    let link_state = LinkState::new();
    let (remote_streams, _) = watch::channel(setup.remote_streams);
    let mut lost = false;
    let mut dtls = DtlsRole::default();
    for feed in feeds {
        add_track(&*pc, &mut senders, feed, &link_state).await;
    }
    let mut pending = Vec::new();
    if i_offer {
        pending.extend(neg.handle(Input::NegotiationNeeded, Instant::now()));
    }
    let mut rtt_tick = tokio::time::interval(Duration::from_secs(1));
    let mut estimate_tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        // Carry out what the machine asked; each result is fed back in order.
        while !pending.is_empty() {
            let actions = std::mem::take(&mut pending);
            for action in actions {
                if let Some(input) = execute(&setup, &*pc, &mut dtls, action).await {
                    // An exchange completed: the writers re-read their payload types.
                    if matches!(input, Input::AnswerReady(_) | Input::AnswerApplied) {
                        link_state.negotiations.fetch_add(1, Ordering::Relaxed);
                    }
                    // An answer fits my tracks into the offer's m-sections; one it had no room
                    // for (a screen shared before this peer's offer came) needs my own offer.
                    let left_out = matches!(&input, Input::AnswerReady(sdp)
                        if !answer::carries_all(sdp, senders.values().map(|s| s.ssrc)));
                    pending.extend(neg.handle(input, Instant::now()));
                    if left_out {
                        tracing::debug!(peer = %setup.peer_id, "a track had no m-section in the offer: offering it");
                        pending.extend(neg.handle(Input::NegotiationNeeded, Instant::now()));
                    }
                }
            }
        }
        tokio::select! {
            cmd = commands.recv() => match cmd {
                None | Some(PeerCommand::Close) => break,
                Some(PeerCommand::Signal(input)) => pending.extend(neg.handle(input, Instant::now())),
                Some(PeerCommand::AddTrack(feed)) => {
                    if add_track(&*pc, &mut senders, feed, &link_state).await {
                        pending.extend(neg.handle(Input::NegotiationNeeded, Instant::now()));
                    }
                }
                Some(PeerCommand::RemoteStreams(streams)) => {
                    remote_streams.send_replace(streams);
                }
                Some(PeerCommand::RemoveTrack(kind)) => {
                    if let Some(writer) = senders.get_mut(&kind).and_then(|s| s.writer.take()) {
                        writer.abort();
                    }
                }
            },
            ev = pc_events.recv() => match ev {
                None => break,
                Some(PcEvent::Candidate(init)) => {
                    let local = pc.local_description().await;
                    let c = candidate::from_init(init, local.as_ref().map(|d| d.sdp.as_str()));
                    if let Err(e) = setup.room.send_candidate(&setup.peer_id, c).await {
                        tracing::debug!(peer = %setup.peer_id, error = %e, "could not send a candidate");
                    }
                }
                Some(PcEvent::Link(link)) => {
                    // Media is not fed to a path that is lost (see `Feed::write_into`), and a
                    // path that comes back is estimated afresh.
                    let down = matches!(link, Link::Disconnected | Link::Failed);
                    link_state.up.store(!down, Ordering::Relaxed);
                    if down {
                        lost = true;
                    } else if link == Link::Connected && std::mem::take(&mut lost) {
                        estimate.restart();
                    }
                    if link == Link::Connected {
                        let _ = setup.reports.send(PeerReport::Connected(setup.peer_id.clone()));
                    }
                    let _ = setup.events.send(MeshEvent::Connection { peer_id: setup.peer_id.clone(), state: link }).await;
                    pending.extend(neg.handle(Input::LinkChanged(link), Instant::now()));
                }
                Some(PcEvent::Track(track)) => {
                    tokio::spawn(remote::receive(
                        setup.peer_id.clone(),
                        track,
                        setup.counters.clone(),
                        setup.events.clone(),
                        setup.joined_at,
                        setup.sink.clone(),
                        remote_streams.subscribe(),
                    ));
                }
            },
            // Recomputed every turn: whatever the machine was fed may have moved its deadline.
            _ = sleep_until(neg.poll_timeout()) => {
                pending.extend(neg.handle(Input::Timeout, Instant::now()));
            }
            _ = estimate_tick.tick() => {
                setup.counters.target_bps.store(estimate.bps() as u64, Ordering::Relaxed);
            }
            _ = rtt_tick.tick() => {
                tracing::debug!(
                    peer = %setup.peer_id,
                    estimate_kbps = estimate.bps() as u64 / 1000,
                    retransmitted = send.retransmitted.load(Ordering::Relaxed),
                    stale_resends_dropped = send.stale_dropped.load(Ordering::Relaxed),
                    pacer_refused = send.pacer_refused.load(Ordering::Relaxed),
                    "send path"
                );
                let report = pc.get_stats(Instant::now(), StatsSelector::None).await;
                if let Some(rtt) = round_trip_time(&report) {
                    let us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX - 1);
                    setup.counters.rtt_us.store(us, Ordering::Relaxed);
                }
                let path = path_of(&report);
                let code = crate::event::Path::to_code(path);
                if setup.counters.path.swap(code, Ordering::Relaxed) != code {
                    tracing::info!(peer = %setup.peer_id, ?path, "connection path");
                }
            }
        }
    }
    for writer in senders.into_values().filter_map(|s| s.writer) {
        writer.abort();
    }
    if let Err(e) = pc.close().await {
        tracing::debug!(peer = %setup.peer_id, error = %e, "closing the connection");
    }
}

/// Sleeps until `at`; forever when there is no deadline.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// The kind of path of the connection's selected candidate pair (None before ICE chose one).
fn path_of(report: &RTCStatsReport) -> Option<crate::event::Path> {
    let selected = report
        .transport()
        .map(|t| t.selected_candidate_pair_id.as_str())
        .filter(|id| !id.is_empty())?;
    let pair = report.candidate_pairs().find(|p| p.stats.id == selected)?;
    // A pair names its candidates by the ICE agent's ids; webrtc-rs 0.21 files the candidates
    // themselves under "RTCLocalIceCandidate_<id>" / "RTCRemoteIceCandidate_<id>".
    let kind = |id: &str, local: bool| {
        report.iter().find_map(|entry| {
            let (c, prefix) = match entry {
                RTCStatsReportEntry::LocalCandidate(c) if local => (c, "RTCLocalIceCandidate_"),
                RTCStatsReportEntry::RemoteCandidate(c) if !local => (c, "RTCRemoteIceCandidate_"),
                _ => return None,
            };
            let named = c.stats.id == id || c.stats.id.strip_prefix(prefix) == Some(id);
            named.then_some(c.candidate_type)
        })
    };
    crate::event::Path::of(
        kind(&pair.local_candidate_id, true)?,
        // A remote candidate the checks discovered (peer-reflexive) was never signalled, so it
        // has no entry: the other side is behind a NAT.
        kind(&pair.remote_candidate_id, false)
            .unwrap_or(rtc::peer_connection::transport::RTCIceCandidateType::Prflx),
    )
}

/// The connection's round-trip time: the selected ICE candidate pair's last STUN round trip
/// (webrtc-rs measures it on every connectivity and consent check), or else the RTT from RTCP
/// receiver reports (webrtc-rs 0.21 reports it as 0: it does not compute it yet).
fn round_trip_time(report: &RTCStatsReport) -> Option<Duration> {
    let positive =
        |secs: f64| (secs > 0.0 && secs.is_finite()).then(|| Duration::from_secs_f64(secs));
    let selected = report
        .transport()
        .map(|t| t.selected_candidate_pair_id.as_str())
        .filter(|id| !id.is_empty());
    let pairs = || report.candidate_pairs();
    selected
        .and_then(|id| pairs().find(|p| p.stats.id == id))
        .and_then(|p| positive(p.current_round_trip_time))
        .or_else(|| {
            pairs()
                .filter(|p| p.nominated)
                .find_map(|p| positive(p.current_round_trip_time))
        })
        .or_else(|| {
            report.iter().find_map(|entry| match entry {
                RTCStatsReportEntry::RemoteInboundRtp(s) => positive(s.round_trip_time),
                _ => None,
            })
        })
}

/// A local track negotiated on this connection, and the task feeding it (none while paused).
struct Sending {
    track: Arc<webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample>,
    ssrc: u32,
    sender: Arc<dyn webrtc::rtp_transceiver::RtpSender>,
    writer: Option<tokio::task::JoinHandle<()>>,
}

/// Feeds `feed` into this connection; true when a new track was added (renegotiation needed),
/// false when an existing one was resumed.
async fn add_track(
    pc: &dyn PeerConnection,
    senders: &mut BTreeMap<MediaKind, Sending>,
    feed: Feed,
    link: &Arc<LinkState>,
) -> bool {
    let kind = feed.kind();
    if let Some(sending) = senders.get_mut(&kind) {
        if let Some(old) = sending.writer.take() {
            old.abort();
        }
        sending.writer = Some(feed.write_into(
            sending.track.clone(),
            sending.ssrc,
            sending.sender.clone(),
            link.clone(),
            false,
        ));
        return false;
    }
    let (track, ssrc) = match crate::local::new_track(kind, feed.codec()) {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(error = %e, kind = kind.as_str(), "could not create a track");
            return false;
        }
    };
    match pc.add_track(track.clone() as Arc<dyn TrackLocal>).await {
        Ok(sender) => {
            // A new sender: its m-section is in the next exchange.
            let writer =
                Some(feed.write_into(track.clone(), ssrc, sender.clone(), link.clone(), true));
            senders.insert(
                kind,
                Sending {
                    track,
                    ssrc,
                    sender,
                    writer,
                },
            );
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, kind = kind.as_str(), "could not add a track");
            false
        }
    }
}

/// Carries out one action; returns the input that reports its result, if any.
async fn execute(
    setup: &PeerSetup,
    pc: &dyn PeerConnection,
    dtls: &mut DtlsRole,
    action: Action,
) -> Option<Input> {
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        tracing::warn!(peer = %setup.peer_id, error = %e, "{what} failed");
        Some(Input::OperationFailed(format!("{what}: {e}")))
    };
    match action {
        Action::CreateOffer { ice_restart } => {
            if ice_restart {
                tracing::info!(peer = %setup.peer_id, "connection lost: ICE restart");
                let _ = setup
                    .events
                    .send(MeshEvent::IceRestart {
                        peer_id: setup.peer_id.clone(),
                    })
                    .await;
            }
            let options =
                ice_restart.then_some(rtc::peer_connection::configuration::RTCOfferOptions {
                    ice_restart: true,
                });
            let offer = match pc.create_offer(options).await {
                Ok(o) => o,
                Err(e) => return failed("creating an offer", &e),
            };
            let sdp = offer.sdp.clone();
            if let Err(e) = pc.set_local_description(offer).await {
                return failed("setting the local offer", &e);
            }
            Some(Input::OfferReady(sdp))
        }
        Action::SendOffer(sdp) => match setup.room.send_offer(&setup.peer_id, sdp).await {
            Ok(()) => None,
            Err(e) => failed("sending the offer", &e),
        },
        Action::Rollback => {
            match RTCSessionDescription::rollback(None) {
                Ok(desc) => {
                    if let Err(e) = pc.set_local_description(desc).await {
                        tracing::warn!(peer = %setup.peer_id, error = %e, "rollback failed");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot build a rollback"),
            }
            None
        }
        Action::RollbackRemote => {
            // Only needed when the offer was applied and the answer failed; after a refused
            // offer the connection is still stable and webrtc-rs says there is nothing to undo.
            if pc.pending_remote_description().await.is_some() {
                match RTCSessionDescription::rollback(None) {
                    Ok(desc) => {
                        if let Err(e) = pc.set_remote_description(desc).await {
                            tracing::warn!(peer = %setup.peer_id, error = %e, "rolling their offer back failed");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot build a rollback"),
                }
            }
            None
        }
        Action::AcceptOffer(sdp) => {
            let offer = match RTCSessionDescription::offer(sdp) {
                Ok(o) => o,
                Err(e) => return failed("reading the offer", &e),
            };
            if let Err(e) = pc.set_remote_description(offer).await {
                return failed("applying the offer", &e);
            }
            let answer = match pc.create_answer(None).await {
                Ok(a) => a,
                Err(e) => return failed("creating the answer", &e),
            };
            // webrtc-rs answers `active` even where it is the DTLS server: the answer sent says
            // the role kept (see `answer`). The one set locally must stay as webrtc-rs made it
            // (it refuses any other), and it reads `a=setup` only in the first exchange.
            let sdp = dtls.keep_in_answer(&answer.sdp);
            if let Err(e) = pc.set_local_description(answer).await {
                return failed("setting the answer", &e);
            }
            dtls.learn_from_my_answer(&sdp);
            let _ = setup
                .reports
                .send(PeerReport::Negotiated(setup.peer_id.clone()));
            Some(Input::AnswerReady(sdp))
        }
        Action::SendAnswer(sdp) => match setup.room.send_answer(&setup.peer_id, sdp).await {
            Ok(()) => None,
            Err(e) => failed("sending the answer", &e),
        },
        Action::ApplyAnswer(sdp) => {
            let answer = match RTCSessionDescription::answer(sdp.clone()) {
                Ok(a) => a,
                Err(e) => return failed("reading the answer", &e),
            };
            if let Err(e) = pc.set_remote_description(answer).await {
                return failed("applying the answer", &e);
            }
            dtls.learn_from_their_answer(&sdp);
            let _ = setup
                .reports
                .send(PeerReport::Negotiated(setup.peer_id.clone()));
            Some(Input::AnswerApplied)
        }
        Action::AddCandidate(c) => {
            if let Err(e) = pc.add_ice_candidate(candidate::to_init(c)).await {
                tracing::debug!(peer = %setup.peer_id, error = %e, "a remote candidate was refused");
            }
            None
        }
        Action::GiveUp(reason) => {
            let _ = setup.reports.send(PeerReport::GaveUp {
                peer_id: setup.peer_id.clone(),
                reason,
            });
            None
        }
    }
}
