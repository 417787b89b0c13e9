//! One connection's copy of a local stream: the encoded frames of the stream's encoder for the
//! connection's codec, written into the connection's own track (webrtc-rs 0.21 binds a local
//! track to one PeerConnection), and the keyframe requests coming back about that track.

use std::sync::atomic::{AtomicBool, Ordering};
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

use super::Encoded;
use crate::codecs::{opus_codec, video_codec, video_pt, OPUS_PT};
use crate::event::MediaKind;
use crate::keyframe::{is_keyframe_request, Keyframes};
use crate::MeshError;

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
    /// While `link_up` is false (the connection lost its path) the frames are dropped, not
    /// queued: they would otherwise sit in webrtc-rs's pacer as seconds of stale media drained at
    /// the collapsed estimate. Writing resumes at a keyframe (asked for), since the receiver
    /// cannot tell that frames were skipped. (Before
    /// the first connection frames are written anyway: webrtc-rs starts sending a little before
    /// our Connected event is handled, and gating there cost ~60 ms of every join.)
    pub fn write_into(
        mut self,
        track: Arc<TrackLocalStaticSample>,
        ssrc: u32,
        link_up: Arc<AtomicBool>,
    ) -> tokio::task::JoinHandle<()> {
        let pt = if self.kind == MediaKind::Audio {
            OPUS_PT
        } else {
            video_pt(self.codec)
        };
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
                        if !link_up.load(Ordering::Relaxed) {
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
                        if let Err(e) = writer.sample_writer(ssrc, pt).write_sample(&sample).await {
                            tracing::trace!(error = %e, "a sample was not sent (connection not up yet?)");
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
