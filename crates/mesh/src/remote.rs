//! What I receive from one peer: video RTP reassembled into frames, decoded, checked, counted,
//! and handed to a sink (the app draws; `huddle-peer` only counts); audio RTP handed to the
//! call's playout (see [`crate::playout`]), which decodes and mixes every peer's audio on one
//! clock.

use signal::PeerId;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use media::codec::VideoCodec;
use media::StreamConfig;
use media::VideoFrame;
use rtc::media::io::sample_builder::SampleBuilder;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::codec::h264::H264Packet;
use rtc::rtp::codec::vp8::Vp8Packet;
use rtc::rtp::packetizer::Depacketizer;
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use crate::continuity::Continuity;
use crate::event::{MediaKind, MeshEvent};
use crate::playout::{AudioStreams, PlayoutCounters, StreamGuard};

/// Where decoded video goes (the app's renderer); called on the receiving task.
pub type VideoSink = Arc<dyn Fn(&PeerId, MediaKind, &VideoFrame) + Send + Sync>;

/// Counters of one peer's incoming media, read once a second for [`crate::PeerStats`], and the
/// call's audio playout that this peer's audio tracks feed (it travels with the counters because
/// both are per-call context every receive task of the peer needs).
pub struct Counters {
    /// Video frames decoded.
    pub frames: AtomicU64,
    /// Decoded frames whose embedded stamp read back (synthetic senders draw one; a damaged
    /// picture fails its checksum).
    pub intact: AtomicU64,
    /// Payload bytes received.
    pub bytes: AtomicU64,
    /// Audio packets received.
    pub audio_packets: AtomicU64,
    /// Latency of the last stamped frame in microseconds (`u64::MAX`: none yet).
    pub latency_us: AtomicU64,
    /// Round-trip time to the peer in microseconds, from the connection's statistics
    /// (`u64::MAX`: none yet).
    pub rtt_us: AtomicU64,
    /// The congestion controller's target for this connection, bits per second (0: none yet).
    pub target_bps: AtomicU64,
    /// The connection's path ([`crate::event::Path`] as a code; 0: none yet).
    pub path: std::sync::atomic::AtomicU8,
    /// Audio frames played and concealed (counted by the playout task).
    pub playout: Arc<PlayoutCounters>,
    /// The call's registry of remote audio streams.
    pub audio: AudioStreams,
}

impl Counters {
    /// Fresh counters for a peer whose audio plays through `audio`.
    pub fn new(audio: AudioStreams) -> Arc<Self> {
        Arc::new(Counters {
            frames: AtomicU64::new(0),
            intact: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            audio_packets: AtomicU64::new(0),
            latency_us: AtomicU64::new(u64::MAX),
            rtt_us: AtomicU64::new(u64::MAX),
            target_bps: AtomicU64::new(0),
            path: std::sync::atomic::AtomicU8::new(0),
            playout: Arc::default(),
            audio,
        })
    }
}

/// RTP payload reassembly for the video codec a track carries.
enum VideoPayload {
    Vp8(Vp8Packet),
    H264(H264Packet),
}

impl VideoPayload {
    fn new(codec: VideoCodec) -> Self {
        match codec {
            VideoCodec::Vp8 => VideoPayload::Vp8(Vp8Packet::default()),
            // Annex B out (start codes between NAL units), as OpenH264 reads it.
            VideoCodec::H264 => VideoPayload::H264(H264Packet::default()),
        }
    }
}

impl Depacketizer for VideoPayload {
    fn depacketize(&mut self, b: &Bytes) -> rtc::shared::error::Result<Bytes> {
        match self {
            VideoPayload::Vp8(p) => p.depacketize(b),
            VideoPayload::H264(p) => p.depacketize(b),
        }
    }

    fn is_partition_head(&self, payload: &Bytes) -> bool {
        match self {
            VideoPayload::Vp8(p) => p.is_partition_head(payload),
            VideoPayload::H264(p) => p.is_partition_head(payload),
        }
    }

    fn is_partition_tail(&self, marker: bool, payload: &Bytes) -> bool {
        match self {
            VideoPayload::Vp8(p) => p.is_partition_tail(marker, payload),
            VideoPayload::H264(p) => p.is_partition_tail(marker, payload),
        }
    }
}

/// The codec name a track reports in events: `opus`, `vp8`, `h264`, or the MIME subtype of
/// anything else, lower case.
fn codec_name(mime: &str) -> String {
    mime.rsplit('/').next().unwrap_or(mime).to_ascii_lowercase()
}

/// Registers a remote audio track with the call's playout; it plays until the guard is dropped.
fn play_audio(counters: &Counters, peer_id: &str, ssrc: u32) -> Option<StreamGuard> {
    match counters
        .audio
        .register(peer_id, ssrc, counters.playout.clone())
    {
        Ok(guard) => Some(guard),
        Err(e) => {
            tracing::warn!(peer = %peer_id, error = %e, "cannot play this peer's audio");
            None
        }
    }
}

/// Reads one remote track until it ends.
///
/// The track's life as the user sees it (`TrackAdded`/`TrackRemoved`) follows what the sender
/// announces in the room (`streams`, watched here): a stream turned off is only
/// paused on the wire (see docs/decisions.md), so the announcement is what ends it here. While
/// it is off nothing is delivered (stragglers still in flight are dropped); once it is on
/// again, the next packet brings the track back.
pub async fn receive(
    peer_id: PeerId,
    track: Arc<dyn TrackRemote>,
    counters: Arc<Counters>,
    events: mpsc::Sender<MeshEvent>,
    joined_at: Instant,
    sink: Option<VideoSink>,
    mut streams: watch::Receiver<StreamConfig>,
) {
    let kind =
        MediaKind::from_track_id(&track.track_id().await).unwrap_or(match track.kind().await {
            rtc::rtp_transceiver::rtp_sender::RtpCodecKind::Audio => MediaKind::Audio,
            _ => MediaKind::Video,
        });
    let media_ssrc = track.ssrcs().await.first().copied().unwrap_or(0);
    let mime = track
        .codec(media_ssrc)
        .await
        .map(|c| c.mime_type)
        .unwrap_or_default();
    let codec = codec_name(&mime);
    // What the connection negotiated (ours offer exactly one video codec; a browser's answer
    // to its own offer lists VP8 first): VP8 unless the track says H.264.
    let video_codec = VideoCodec::from_name(&codec).unwrap_or(VideoCodec::Vp8);
    let _ = events
        .send(MeshEvent::TrackAdded {
            peer_id: peer_id.clone(),
            kind,
            codec: codec.clone(),
        })
        .await;
    let mut shown = true;
    // A lost packet may hold a frame back only briefly: NACK gets one retransmission chance,
    // then the frame is given up (and a PLI asks for a keyframe). Bounding it by packet count
    // alone let one loss at a low bitrate stall video for seconds.
    let mut builder = SampleBuilder::new(128, VideoPayload::new(video_codec), 90_000)
        .with_max_time_delay(std::time::Duration::from_millis(200));
    let mut decoder = match kind {
        MediaKind::Audio => None,
        _ => match video_codec.decoder() {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::warn!(peer = %peer_id, error = %e, "cannot decode this peer's video");
                None
            }
        },
    };
    // Registered while the track is shown: dropping the guard (stream off, track ended, task
    // gone) takes the stream out of the mix.
    let mut audio = match kind {
        MediaKind::Audio => play_audio(&counters, &peer_id, media_ssrc),
        _ => None,
    };
    let mut first = true;
    let mut continuity = Continuity::new();
    let ask_for_keyframe = || async {
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc,
        };
        let _ = track.write_rtcp(vec![Box::new(pli)]).await;
    };
    let mut streams_open = true;
    loop {
        let ev = tokio::select! {
            ev = track.poll() => ev,
            changed = streams.changed(), if streams_open => {
                if changed.is_err() {
                    streams_open = false;
                } else if shown && !streams.borrow_and_update().get(kind) {
                    shown = false;
                    audio = None;
                    let _ = events
                        .send(MeshEvent::TrackRemoved { peer_id: peer_id.clone(), kind })
                        .await;
                }
                continue;
            }
        };
        let Some(ev) = ev else { break };
        let TrackRemoteEvent::OnRtpPacket(packet) = ev else {
            if matches!(ev, TrackRemoteEvent::OnEnded) {
                break;
            }
            continue;
        };
        if !shown && streams.borrow().get(kind) {
            shown = true;
            if kind == MediaKind::Audio {
                audio = play_audio(&counters, &peer_id, media_ssrc);
            }
            let _ = events
                .send(MeshEvent::TrackAdded {
                    peer_id: peer_id.clone(),
                    kind,
                    codec: codec.clone(),
                })
                .await;
        }
        if !shown && kind == MediaKind::Audio {
            // In flight when the sender turned the stream off (or ahead of its announcement).
            continue;
        }
        counters
            .bytes
            .fetch_add(packet.payload.len() as u64, Ordering::Relaxed);
        if kind == MediaKind::Audio {
            counters.audio_packets.fetch_add(1, Ordering::Relaxed);
            // Padding-only packets carry no audio; Opus would read an empty one as a loss.
            if let (Some(audio), false) = (&audio, packet.payload.is_empty()) {
                audio.push(
                    packet.header.sequence_number,
                    packet.payload.to_vec(),
                    Instant::now(),
                );
            }
            continue;
        }
        let Some(dec) = decoder.as_mut() else {
            continue;
        };
        if !packet.payload.is_empty() {
            continuity.packet(packet.header.timestamp, packet.header.sequence_number);
        }
        builder.push(Instant::now(), packet);
        while let Some(sample) = builder.pop(Instant::now()) {
            let verdict = continuity.frame(
                sample.packet_timestamp,
                video_codec.is_keyframe(&sample.data),
                sample.prev_dropped_packets,
                Instant::now(),
            );
            if verdict.request_keyframe {
                tracing::debug!(peer = %peer_id, held_back = continuity.held_back, "a frame was lost; holding video until a keyframe");
                ask_for_keyframe().await;
            }
            if !verdict.decode {
                continue;
            }
            match dec.decode(&sample.data) {
                // Video while the track is not shown is still reassembled and decoded, only
                // not delivered: the stragglers of a stream turned off, or the keyframe that
                // starts a stream turned on, which may beat its announcement here.
                Ok(Some(_)) if !shown => {}
                Ok(Some(frame)) => {
                    counters.frames.fetch_add(1, Ordering::Relaxed);
                    if let Some(stamp) = media::stamp::read(&frame) {
                        counters.intact.fetch_add(1, Ordering::Relaxed);
                        let now = media::stamp::now_ms();
                        let latency = now.saturating_sub(stamp.capture_ms);
                        counters.latency_us.store(latency * 1000, Ordering::Relaxed);
                    }
                    if first {
                        first = false;
                        let ms = joined_at.elapsed().as_millis() as u64;
                        let _ = events
                            .send(MeshEvent::FirstFrame {
                                peer_id: peer_id.clone(),
                                kind,
                                ms_since_join: ms,
                            })
                            .await;
                    }
                    if let Some(sink) = &sink {
                        sink(&peer_id, kind, &frame);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(peer = %peer_id, error = %e, "undecodable frame; asking for a keyframe");
                    if continuity.undecodable(Instant::now()) {
                        ask_for_keyframe().await;
                    }
                }
            }
        }
    }
    drop(audio);
    if shown {
        let _ = events.send(MeshEvent::TrackRemoved { peer_id, kind }).await;
    }
}
