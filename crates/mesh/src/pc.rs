//! Building a PeerConnection the way every Huddle connection needs it, and turning its callbacks
//! into messages for the task that owns it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::Registry;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceCandidateInit, RTCIceServer, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, SettingEngineBuilder,
};

use rtc::interceptor::{NackGeneratorBuilder, NackResponderBuilder, PacerBuilder, Slot};
use rtc::peer_connection::configuration::RTCIceTransportPolicy;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;

/// Packets the pacer may hold (~0.5 s at 800 kbit/s; a 640x360 keyframe is ~15-30).
const PACER_QUEUE_PACKETS: usize = 48;

use crate::codecs::{opus_codec, video_codec};
use crate::congestion::{self, Estimate};
use crate::keyframe::{KeyframeRequestsToApp, KEYFRAME_REQUESTS_SLOT};
use crate::negotiation::Link;
use crate::retransmit::{
    CountingPacer, SendCounters, StaleRetransmissions, MAX_NACKS_PER_PACKET,
    STALE_RETRANSMISSIONS_SLOT,
};
use crate::MeshError;
use media::codec::VideoCodec;
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_congestion_control, configure_rtcp_reports, configure_simulcast_extension_headers,
    CongestionFeedback,
};

/// Where and how connections gather candidates.
#[derive(Clone, Debug, Default)]
pub struct NetConfig {
    /// STUN/TURN servers (`stun:host:port`, `turn:host:port` with credentials).
    pub ice_servers: Vec<IceServer>,
    /// Gather on loopback only (tests); otherwise on all interfaces.
    pub loopback_only: bool,
    /// Connect only through a TURN relay (ICE transport policy "relay"): the other side never
    /// learns my address. Needs a `turn:` server.
    pub relay_only: bool,
    /// The webrtc-rs runtime every connection's sockets, timers and tasks go through; `None`
    /// is webrtc-rs's default (tokio). The seam for tests: a runtime whose UDP sockets are in
    /// memory, or can be cut, gives outages without a network namespace (see
    /// `tests/outage.rs`). Only the PeerConnections use it; the engine's own tasks stay on
    /// the ambient tokio runtime.
    pub runtime: Option<Arc<dyn webrtc::runtime::Runtime>>,
}

/// One STUN or TURN server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IceServer {
    /// `stun:...` or `turn:...` URLs.
    pub urls: Vec<String>,
    /// TURN user name.
    pub username: String,
    pub credential: String,
}

/// What a PeerConnection reports to its owner.
pub enum PcEvent {
    /// A local candidate to trickle.
    Candidate(RTCIceCandidateInit),
    /// The connection's state changed.
    Link(Link),
    /// A remote track started.
    Track(Arc<dyn TrackRemote>),
}

struct Handler {
    tx: mpsc::UnboundedSender<PcEvent>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(init) => {
                let _ = self.tx.send(PcEvent::Candidate(init));
            }
            Err(e) => tracing::debug!(error = %e, "could not serialise a local candidate"),
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let link = match state {
            RTCPeerConnectionState::Connected => Link::Connected,
            RTCPeerConnectionState::Disconnected => Link::Disconnected,
            RTCPeerConnectionState::Failed => Link::Failed,
            RTCPeerConnectionState::Connecting => Link::Connecting,
            _ => Link::New,
        };
        let _ = self.tx.send(PcEvent::Link(link));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.tx.send(PcEvent::Track(track));
    }
}

/// A PeerConnection just built, with what its owner reads from it.
pub struct Built {
    pub pc: Arc<dyn PeerConnection>,
    pub events: mpsc::UnboundedReceiver<PcEvent>,
    /// Its congestion estimate.
    pub estimate: Estimate,
    /// What its send path refused or repeated.
    pub send: Arc<SendCounters>,
}

/// A new PeerConnection with `video` (the connection's one video codec, see `codecs::choose`)
/// and Opus; congestion control; NACK with bounded repetition
/// (see `retransmit`), RTCP reports, and an interceptor passing keyframe requests to the
/// application; mDNS off (we exchange real addresses through encrypted or trusted signaling,
/// and mDNS needs multicast, which a loopback-only namespace does not have).
pub async fn build(net: &NetConfig, video: VideoCodec) -> Result<Built, MeshError> {
    build_numbered(net, video, None).await
}

/// [`build`] with other payload types for the video codec and Opus (`(video, opus)`), as
/// another stack numbers them (Firefox offers Opus as 109 and VP8 as 120): for tests.
pub async fn build_numbered(
    net: &NetConfig,
    video: VideoCodec,
    numbers: Option<(u8, u8)>,
) -> Result<Built, MeshError> {
    let (mut video_params, mut opus_params) = (video_codec(video), opus_codec());
    if let Some((video_pt, opus_pt)) = numbers {
        video_params.payload_type = video_pt;
        opus_params.payload_type = opus_pt;
    }
    let mut media = MediaEngine::default();
    media
        .register_codec(video_params, RtpCodecKind::Video)
        .map_err(MeshError::webrtc("registering the video codec"))?;
    media
        .register_codec(opus_params, RtpCodecKind::Audio)
        .map_err(MeshError::webrtc("registering Opus"))?;
    // Send-side congestion control (transport-cc feedback + GCC + pacer); see `congestion`.
    let (estimator, estimate) = congestion::gcc();
    let send = Arc::new(SendCounters::default());
    let registry = configure_congestion_control(
        Registry::new(),
        estimator,
        CongestionFeedback::Twcc,
        &mut media,
    )
    .map_err(MeshError::webrtc("setting up congestion control"))?
    // The default pacer queues up to 4096 packets: after an outage, or on a link slower than
    // the encoder, that is tens of seconds of stale media drained at the collapsed estimate.
    // A short queue drops instead; the receiver then asks for a keyframe and catches up.
    .with(
        Slot::Pacer,
        CountingPacer::new(
            PacerBuilder::new()
                .with_queue_limit(PACER_QUEUE_PACKETS)
                .build(),
            send.clone(),
        ),
    );
    // webrtc-rs's defaults (`register_default_interceptors`) minus its NACK generator, which
    // re-asks for a lost packet every 100 ms without end (see `retransmit`). The NACK feedback
    // types are in `video_codec`.
    configure_simulcast_extension_headers(&mut media)
        .map_err(MeshError::webrtc("registering the RTP header extensions"))?;
    let registry = configure_rtcp_reports(registry)
        .with(Slot::NackResponder, NackResponderBuilder::new().build())
        .with(
            Slot::NackGenerator,
            NackGeneratorBuilder::new()
                .with_max_nacks_per_packet(MAX_NACKS_PER_PACKET)
                .build(),
        )
        .with(
            Slot::from(STALE_RETRANSMISSIONS_SLOT),
            StaleRetransmissions::new(send.clone()),
        )
        // Without it the sender never sees a PLI or FIR (see `keyframe`).
        .with(
            Slot::from(KEYFRAME_REQUESTS_SLOT),
            KeyframeRequestsToApp::default(),
        );
    let settings = SettingEngineBuilder::default()
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        // webrtc-rs paces connectivity checks every 200 ms by default, so even a loopback call
        // waits a tick before its first check; libwebrtc paces at ~50 ms. Same 1.4 s budget.
        .with_ice_connection_attempts(Some(Duration::from_millis(50)), Some(28))
        // The controlling side waits 2 s before it nominates a relayed pair (0.5 s for a
        // server-reflexive one), in case a better pair turns up: webrtc-rs cannot switch once
        // it nominated. With relay only, nothing better can: nominate at once (join through the
        // relay 2.96 s -> see docs/benchmarks.md).
        .with_relay_acceptance_min_wait(net.relay_only.then_some(Duration::ZERO))
        .build();
    let policy = if net.relay_only {
        RTCIceTransportPolicy::Relay
    } else {
        RTCIceTransportPolicy::All
    };
    let config = RTCConfigurationBuilder::new()
        .with_ice_transport_policy(policy)
        .with_ice_servers(
            net.ice_servers
                .iter()
                .map(|s| RTCIceServer {
                    urls: s.urls.clone(),
                    username: s.username.clone(),
                    credential: s.credential.clone(),
                })
                .collect(),
        )
        .build();
    let (tx, rx) = mpsc::unbounded_channel();
    let addr = if net.loopback_only {
        "127.0.0.1:0"
    } else {
        "0.0.0.0:0"
    };
    let mut builder = PeerConnectionBuilder::new();
    if let Some(runtime) = &net.runtime {
        builder = builder.with_runtime(runtime.clone());
    }
    let pc = builder
        .with_configuration(config)
        .with_media_engine(media)
        .with_setting_engine(settings)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(Handler { tx }))
        .with_udp_addrs(vec![addr])
        .build()
        .await
        .map_err(MeshError::webrtc("creating the peer connection"))?;
    Ok(Built {
        pc: Arc::new(pc),
        events: rx,
        estimate,
        send,
    })
}
