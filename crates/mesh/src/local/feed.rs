//! One connection's copy of a local stream: the encoded frames of the stream's encoder for the
//! connection's codec, written into the connection's own track (webrtc-rs 0.21 binds a local
//! track to one PeerConnection), and the keyframe requests coming back about that track.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use media::codec::VideoCodec;
use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::sync::broadcast;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::rtp_transceiver::RtpSender;

use super::Encoded;
use crate::codecs::{negotiated_pt, opus_codec, video_codec, video_pt, OPUS_PT};
use crate::event::MediaKind;
use crate::keyframe::{is_keyframe_request, Keyframes};
use crate::MeshError;

/// What the writers of a connection's tracks need to know about the connection; its peer task
/// keeps it current.
#[derive(Debug)]
pub struct LinkState {
    /// False while the connection has lost its path (see [`Feed::write_into`]).
    pub up: AtomicBool,
    /// Completed offer/answer exchanges so far: each may renumber the payload types.
    pub negotiations: AtomicU64,
}

impl LinkState {
    pub fn new() -> Arc<LinkState> {
        Arc::new(LinkState {
            up: AtomicBool::new(true),
            negotiations: AtomicU64::new(0),
        })
    }
}

/// One connection's copy of a local stream.
pub struct Feed {
    pub(super) kind: MediaKind,
    pub(super) codec: VideoCodec,
    pub(super) rx: broadcast::Receiver<Encoded>,
    pub(super) keyframe: Arc<Keyframes>,
}

impl Feed {
    pub fn kind(&self) -> MediaKind {
        self.kind
    }

    /// The video codec it carries (meaningless for audio).
    pub fn codec(&self) -> VideoCodec {
        self.codec
    }

    /// Starts a task writing the stream into `track` (this connection's track of this kind) and
    /// passing the keyframe requests the remote sends about that track (PLI/FIR, see
    /// [`crate::keyframe`]) to the stream's encoder, rate-limited; it ends when the stream stops
    /// or the returned handle is aborted. While a track is paused nobody reads its requests,
    /// which is fine: the remote receives nothing, so it has nothing to ask about.
    ///
    /// While `link.up` is false (the connection lost its path) the frames are dropped, not
    /// queued: they would otherwise sit in webrtc-rs's pacer as seconds of stale media drained at
    /// the collapsed estimate. Writing resumes at a keyframe (asked for), since the receiver
    /// cannot tell that frames were skipped. (Before
    /// the first connection frames are written anyway: webrtc-rs starts sending a little before
    /// our Connected event is handled, and gating there cost ~60 ms of every join.)
    ///
    /// Frames go out with the payload type the connection negotiated last, which `sender` (the
    /// track's) tells: see [`PayloadType`].
    ///
    /// With `new_track` (a track just added, whose m-section the next exchange negotiates),
    /// nothing is written until that exchange has completed: webrtc-rs sends as soon as our own
    /// offer is set, before the peer has it, and Firefox gives packets of an SSRC it does not
    /// know yet to whichever receiver takes their payload type, for good: a screen shared
    /// mid-call then never reached the screen's m-section. Writing starts at a keyframe.
    pub fn write_into(
        mut self,
        track: Arc<TrackLocalStaticSample>,
        ssrc: u32,
        sender: Arc<dyn RtpSender>,
        link: Arc<LinkState>,
        new_track: bool,
    ) -> tokio::task::JoinHandle<()> {
        let mut before_exchange = new_track.then(|| link.negotiations.load(Ordering::Relaxed));
        let mut pt = PayloadType::new(self.kind, self.codec, sender);
        let writer = track;
        tokio::spawn(async move {
            // `poll` answers None once the track is unbound (the connection closed).
            let mut feedback_open = true;
            // A feed starts at a keyframe too: the stream's first one may have been broadcast
            // before this subscription, and a delta frame the receiver has no reference for
            // decodes as garbage it cannot detect (its sequence numbers are contiguous).
            let mut resume_at_keyframe = true;
            loop {
                let received = tokio::select! {
                    r = self.rx.recv() => r,
                    ev = writer.poll(), if feedback_open => {
                        match ev {
                            Some(ev) => self.on_feedback(ev, ssrc),
                            None => feedback_open = false,
                        }
                        continue;
                    }
                };
                match received {
                    Ok(encoded) => {
                        if let Some(at_start) = before_exchange {
                            if link.negotiations.load(Ordering::Relaxed) == at_start {
                                continue; // resume_at_keyframe is still set
                            }
                            before_exchange = None;
                        }
                        if !link.up.load(Ordering::Relaxed) {
                            // Skipped frames break the receiver's reference chain without a
                            // trace in the sequence numbers: resume only from a keyframe.
                            resume_at_keyframe = true;
                            continue;
                        }
                        if resume_at_keyframe {
                            if !encoded.keyframe {
                                self.keyframe.set();
                                continue;
                            }
                            resume_at_keyframe = false;
                        }
                        let sample = Sample {
                            data: encoded.data,
                            duration: encoded.duration,
                            ..Sample::new(Instant::now())
                        };
                        let number = pt.get(link.negotiations.load(Ordering::Relaxed)).await;
                        if let Err(e) = writer
                            .sample_writer(ssrc, number)
                            .write_sample(&sample)
                            .await
                        {
                            tracing::trace!(error = %e, "a sample was not sent (connection not up yet?)");
                            pt.failed();
                        }
                    }
                    // This connection fell behind: skip to the present, from a keyframe.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        resume_at_keyframe = true;
                        self.keyframe.set();
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        })
    }
}

/// The payload type one connection's track is written with. Our offers number the codecs our
/// way, but an answer to another stack's offer takes the offer's numbers (Firefox: Opus 109,
/// VP8 120), and webrtc-rs drops RTP whose payload type its sender did not negotiate: a track
/// written with our own number would send nothing while the connection says "connected". So
/// the number is read from the sender's negotiated codecs: first, after every completed
/// exchange (a glare lost after our own offer, or any renegotiation, can renumber; webrtc-rs
/// drops a wrongly numbered packet later, in its driver, so the write itself succeeds), and
/// after any failed write (before the connection is up every write fails). That costs a lock of
/// the connection per frame only while writes fail.
struct PayloadType {
    ours: rtc::rtp_transceiver::rtp_sender::RTCRtpCodec,
    sender: Arc<dyn RtpSender>,
    current: u8,
    stale: bool,
    /// The exchange `current` was read after.
    read_after: u64,
}

impl PayloadType {
    fn new(kind: MediaKind, codec: VideoCodec, sender: Arc<dyn RtpSender>) -> Self {
        let (ours, current) = if kind == MediaKind::Audio {
            (opus_codec().rtp_codec, OPUS_PT)
        } else {
            (video_codec(codec).rtp_codec, video_pt(codec))
        };
        PayloadType {
            ours,
            sender,
            current,
            stale: true,
            read_after: 0,
        }
    }

    /// The number to write with, `negotiations` exchanges into the connection.
    async fn get(&mut self, negotiations: u64) -> u8 {
        if self.stale || negotiations != self.read_after {
            if let Ok(params) = self.sender.get_parameters().await {
                if let Some(pt) = negotiated_pt(&params.rtp_parameters.codecs, &self.ours) {
                    if pt != self.current {
                        tracing::debug!(
                            codec = %self.ours.mime_type,
                            ours = self.current,
                            negotiated = pt,
                            "sending with the payload type the connection negotiated"
                        );
                        self.current = pt;
                    }
                    self.stale = false;
                    self.read_after = negotiations;
                }
            }
        }
        self.current
    }

    fn failed(&mut self) {
        self.stale = true;
    }
}

impl Feed {
    /// RTCP about this connection's track of the stream: a keyframe request forces a keyframe
    /// from the stream's encoder unless one was forced very recently.
    fn on_feedback(&self, ev: TrackLocalEvent, ssrc: u32) {
        let TrackLocalEvent::OnRtcpPacket(packets) = ev else {
            return;
        };
        if self.kind == MediaKind::Audio || !packets.iter().any(|p| is_keyframe_request(p.as_ref()))
        {
            return;
        }
        let forced = self.keyframe.requested_by_peer();
        tracing::debug!(
            kind = self.kind.as_str(),
            ssrc,
            forced,
            "keyframe request from the remote (PLI/FIR){}",
            if forced {
                ""
            } else {
                "; one was forced less than 500 ms ago"
            }
        );
    }
}

/// A new local track of `kind` (video in `video`) with a random SSRC.
pub fn new_track(
    kind: MediaKind,
    video: VideoCodec,
) -> Result<(Arc<TrackLocalStaticSample>, u32), MeshError> {
    let ssrc = rand::random::<u32>();
    let (codec_kind, codec) = match kind {
        MediaKind::Audio => (RtpCodecKind::Audio, opus_codec()),
        MediaKind::Video | MediaKind::Screen => (RtpCodecKind::Video, video_codec(video)),
    };
    let track = MediaStreamTrack::new(
        "huddle".to_owned(),
        // Unique per connection and kind, not just the kind: webrtc-rs 0.21 routes feedback
        // (PLI/FIR) to a track by its id and tries the remote tracks first, so with plain
        // "video" on both sides a receiver's keyframe request about my camera was delivered to
        // my copy of THEIR camera and never reached my encoder.
        format!("{}-{ssrc:08x}", kind.as_str()),
        kind.as_str().to_owned(),
        codec_kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: codec.rtp_codec,
            ..Default::default()
        }],
    );
    let track = TrackLocalStaticSample::new(Instant::now(), track)
        .map_err(MeshError::webrtc("creating a track"))?;
    Ok((Arc::new(track), ssrc))
}
