//! What I send: one stream per kind (camera, microphone, screen), each fed by ONE encoder per
//! codec in use whose output is broadcast to every connection using that codec. Each connection
//! packetizes the same encoded frames into a track of its own (a webrtc-rs 0.21 local track
//! delivers to only one PeerConnection), so a source is encoded once per codec whatever the
//! number of peers; only the cheap RTP packetizing is per peer. An encoder runs only while some
//! connection takes its codec: a room of VP8 peers never pays for H.264.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use media::codec::opus::OpusEncoder;
use media::codec::{EncoderSettings, VideoCodec, VideoEncoder};
use media::source::{AudioSource, VideoSource};
use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::sync::broadcast;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};

use crate::codecs::{opus_codec, video_codec, video_pt, OPUS_PT};
use crate::event::MediaKind;
use crate::keyframe::{is_keyframe_request, Keyframes};
use crate::MeshError;

/// One encoded frame or audio packet.
#[derive(Clone, Debug)]
pub struct Encoded {
    /// The bitstream.
    pub data: Bytes,
    /// How long it lasts.
    pub duration: Duration,
    /// A video keyframe (audio packets say true: every one stands alone).
    pub keyframe: bool,
}

/// One codec's output of a stream: the broadcast of its encoded frames and its keyframe flag.
#[derive(Clone)]
struct Output {
    tx: broadcast::Sender<Encoded>,
    keyframe: Arc<Keyframes>,
}

impl Output {
    fn new(capacity: usize, keyframe_wanted: bool) -> Self {
        Output {
            tx: broadcast::channel(capacity).0,
            keyframe: Arc::new(Keyframes::new(keyframe_wanted)),
        }
    }
}

/// A running local stream: its encoders (one per video codec in use; audio has one) and the
/// broadcast of what each produces.
pub struct LocalStream {
    /// The kind.
    pub kind: MediaKind,
    /// Audio: the one output. Video: one per codec, in [`VideoCodec::ALL`] order.
    outputs: Vec<(VideoCodec, Output)>,
    bitrate_kbps: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
}

impl LocalStream {
    /// Sets the encoder's target bitrate (video; audio ignores it).
    pub fn set_bitrate_kbps(&self, kbps: u32) {
        self.bitrate_kbps.store(kbps, Ordering::Relaxed);
    }

    /// The encoder's target bitrate.
    pub fn bitrate_kbps(&self) -> u32 {
        self.bitrate_kbps.load(Ordering::Relaxed)
    }

    /// Asks the encoder of `codec` for a keyframe (a peer using it connected, or lost a
    /// picture). Audio has no keyframes and ignores it.
    pub fn request_keyframe(&self, codec: VideoCodec) {
        if let Some(out) = self.output(codec) {
            out.keyframe.force();
        }
    }

    fn output(&self, codec: VideoCodec) -> Option<&Output> {
        match self.kind {
            MediaKind::Audio => None,
            _ => self
                .outputs
                .iter()
                .find(|(c, _)| *c == codec)
                .map(|(_, o)| o),
        }
    }

    /// The keyframe flag of `codec`'s encoder and its rate limit for remote requests.
    #[cfg(test)]
    pub fn keyframes(&self, codec: VideoCodec) -> &Arc<Keyframes> {
        &self
            .outputs
            .iter()
            .find(|(c, _)| *c == codec)
            .unwrap()
            .1
            .keyframe
    }

    /// A new connection's feed of this stream, encoded with `codec` (audio ignores it).
    pub fn subscribe(&self, codec: VideoCodec) -> Feed {
        let out = self.output(codec).or(self.outputs.first().map(|(_, o)| o));
        let (tx, keyframe) = match out {
            Some(o) => (o.tx.clone(), o.keyframe.clone()),
            // Unreachable: every stream has an output; a closed channel just ends the feed.
            None => (broadcast::channel(1).0, Arc::new(Keyframes::new(false))),
        };
        Feed {
            kind: self.kind,
            codec,
            rx: tx.subscribe(),
            keyframe,
        }
    }
}

/// One connection's copy of a local stream.
pub struct Feed {
    kind: MediaKind,
    codec: VideoCodec,
    rx: broadcast::Receiver<Encoded>,
    keyframe: Arc<Keyframes>,
}

impl Feed {
    /// The kind.
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

impl Drop for LocalStream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
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

/// Starts a video stream: a thread pulls paced frames from `source` and encodes each once per
/// codec that some connection takes; tasks write the encoded frames to the connections' tracks.
pub fn start_video(
    kind: MediaKind,
    mut source: Box<dyn VideoSource>,
    fps: u32,
    bitrate_kbps: u32,
) -> Result<LocalStream, MeshError> {
    let bitrate = Arc::new(AtomicU32::new(bitrate_kbps));
    let stop = Arc::new(AtomicBool::new(false));
    let outputs: Vec<(VideoCodec, Output)> = VideoCodec::ALL
        .iter()
        .map(|c| (*c, Output::new(8, true)))
        .collect();
    let frame_time = Duration::from_secs(1) / fps.max(1);
    {
        let (bitrate, stop, outputs) = (bitrate.clone(), stop.clone(), outputs.clone());
        std::thread::Builder::new()
            .name(format!("huddle-{}-encoder", kind.as_str()))
            .spawn(move || {
                let mut encoders: Vec<Encoding> = outputs
                    .into_iter()
                    .map(|(codec, out)| Encoding {
                        codec,
                        out,
                        encoder: None,
                        kbps: 0,
                        refused: None,
                    })
                    .collect();
                while !stop.load(Ordering::Relaxed) {
                    let frame = match source.next_frame() {
                        Ok(f) => f,
                        Err(e) => {
                            tracing::warn!(error = %e, "video source stopped");
                            return;
                        }
                    };
                    let want = bitrate.load(Ordering::Relaxed);
                    for enc in &mut encoders {
                        enc.encode(kind, &frame, fps, want, frame_time);
                    }
                }
            })
            .map_err(MeshError::encoder_thread(kind))?;
    }
    Ok(LocalStream {
        kind,
        outputs,
        bitrate_kbps: bitrate,
        stop,
    })
}

/// One codec's encoder of a video stream, started when a connection first takes the codec.
struct Encoding {
    codec: VideoCodec,
    out: Output,
    encoder: Option<Box<dyn VideoEncoder>>,
    kbps: u32,
    /// The frame size this codec's encoder refused (OpenH264 stops at 3840x2160): not tried
    /// again until the size changes, while the other codec goes on.
    refused: Option<(u32, u32)>,
}

impl Encoding {
    /// Encodes `frame` if some connection takes this codec and broadcasts the result.
    fn encode(
        &mut self,
        kind: MediaKind,
        frame: &media::VideoFrame,
        fps: u32,
        want_kbps: u32,
        frame_time: Duration,
    ) {
        let size = (frame.width, frame.height);
        if self.out.tx.receiver_count() == 0 || self.refused == Some(size) {
            return;
        }
        let enc = match &mut self.encoder {
            Some(e) => e,
            None => {
                let settings = EncoderSettings {
                    width: frame.width,
                    height: frame.height,
                    fps,
                    bitrate_kbps: want_kbps,
                };
                self.kbps = want_kbps;
                tracing::debug!(
                    codec = self.codec.name(),
                    kind = kind.as_str(),
                    "starting the video encoder"
                );
                match self.codec.encoder(&settings) {
                    Ok(e) => self.encoder.insert(e),
                    Err(e) => return self.refuse(kind, size, &e),
                }
            }
        };
        if want_kbps != self.kbps && enc.set_bitrate(want_kbps).is_ok() {
            self.kbps = want_kbps;
        }
        let force = self.out.keyframe.take();
        match enc.encode(frame, force) {
            Ok(packets) => {
                // Rate control may drop even a forced keyframe when its buffer is low: ask
                // again with the next frame rather than lose the request.
                if force && !packets.iter().any(|p| p.keyframe) {
                    self.out.keyframe.set();
                }
                for p in packets {
                    if p.keyframe {
                        tracing::debug!(
                            kind = kind.as_str(),
                            codec = self.codec.name(),
                            bytes = p.data.len(),
                            kbps = self.kbps,
                            "keyframe encoded"
                        );
                    }
                    // A subscriber may have gone meanwhile: nobody to send to is fine.
                    let _ = self.out.tx.send(Encoded {
                        data: Bytes::from(p.data),
                        duration: frame_time,
                        keyframe: p.keyframe,
                    });
                }
            }
            // A size the codec cannot take (the encoder restarts itself for a new size).
            Err(
                e @ (media::codec::CodecError::H264InvalidConfig(_)
                | media::codec::CodecError::Vp8InvalidConfig(_)),
            ) => self.refuse(kind, size, &e),
            Err(e) => tracing::warn!(error = %e, "dropping a frame the encoder refused"),
        }
    }

    fn refuse(&mut self, kind: MediaKind, size: (u32, u32), e: &media::codec::CodecError) {
        tracing::error!(
            error = %e,
            codec = self.codec.name(),
            kind = kind.as_str(),
            "cannot encode {}x{}: peers using this codec get no picture until the size changes",
            size.0,
            size.1
        );
        self.encoder = None;
        self.refused = Some(size);
    }
}

/// Starts an audio stream: paced 20 ms frames, Opus-encoded once, written to the shared track.
pub fn start_audio(mut source: Box<dyn AudioSource>) -> Result<LocalStream, MeshError> {
    let stop = Arc::new(AtomicBool::new(false));
    let output = Output::new(16, false);
    {
        let (stop, tx) = (stop.clone(), output.tx.clone());
        std::thread::Builder::new()
            .name("huddle-audio-encoder".into())
            .spawn(move || {
                let mut enc = match OpusEncoder::new(32_000) {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the audio encoder");
                        return;
                    }
                };
                while !stop.load(Ordering::Relaxed) {
                    let frame = match source.next_frame() {
                        Ok(f) => f,
                        Err(e) => {
                            tracing::warn!(error = %e, "audio source stopped");
                            return;
                        }
                    };
                    // Nobody takes it (muted, or alone): keep pulling the source, which may be
                    // a microphone listening for the muted hint, but do not encode.
                    if tx.receiver_count() == 0 {
                        continue;
                    }
                    match enc.encode(&frame) {
                        Ok(packet) => {
                            let _ = tx.send(Encoded {
                                data: Bytes::from(packet),
                                duration: Duration::from_millis(20),
                                keyframe: true,
                            });
                        }
                        Err(e) => tracing::warn!(error = %e, "dropping an audio frame the encoder refused"),
                    }
                }
            })
            .map_err(MeshError::encoder_thread(MediaKind::Audio))?;
    }
    Ok(LocalStream {
        kind: MediaKind::Audio,
        // Audio's one output; the codec tag is unused.
        outputs: vec![(VideoCodec::Vp8, output)],
        bitrate_kbps: Arc::new(AtomicU32::new(32)),
        stop,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is the failure report
mod tests {
    use super::*;
    use crate::event::MeshEvent;
    use crate::pc::{self, NetConfig, PcEvent};
    use crate::playout::AudioStreams;
    use crate::remote::{self, Counters};
    use media::synthetic::TestPattern;
    use tokio::sync::mpsc;
    use webrtc::peer_connection::PeerConnection;

    /// Sends every local candidate of one side to the other; hands its remote tracks to `tracks`.
    fn pump(
        mut events: mpsc::UnboundedReceiver<PcEvent>,
        other: Arc<dyn PeerConnection>,
        tracks: mpsc::UnboundedSender<Arc<dyn webrtc::media_stream::track_remote::TrackRemote>>,
    ) {
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                match ev {
                    PcEvent::Candidate(c) => {
                        let _ = other.add_ice_candidate(c).await;
                    }
                    PcEvent::Track(t) => {
                        let _ = tracks.send(t);
                    }
                    PcEvent::Link(_) => {}
                }
            }
        });
    }

    /// A size one codec cannot take (OpenH264 stops at 3840x2160) costs only that codec's
    /// peers their picture: the stream goes on in the other codec.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_size_h264_refuses_leaves_vp8_running() {
        let stream = start_video(
            MediaKind::Screen,
            Box::new(TestPattern::new(4096, 2160, 5)),
            5,
            2000,
        )
        .unwrap();
        let (mut vp8, mut h264) = (
            stream.subscribe(VideoCodec::Vp8).rx,
            stream.subscribe(VideoCodec::H264).rx,
        );
        for _ in 0..3 {
            let frame = tokio::time::timeout(Duration::from_secs(20), vp8.recv())
                .await
                .expect("VP8 keeps encoding")
                .unwrap();
            assert!(!frame.data.is_empty());
        }
        assert!(
            matches!(h264.try_recv(), Err(broadcast::error::TryRecvError::Empty)),
            "H.264 cannot encode 4096x2160"
        );
    }

    /// A receiver that missed the stream's keyframe (nothing forces one on connection here)
    /// decodes video only because its PLI reaches the encoder: neither encoder makes periodic
    /// keyframes of its own.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_late_receiver_gets_a_vp8_keyframe_by_asking_for_it() {
        late_receiver_asks(VideoCodec::Vp8).await;
    }

    /// The same over H.264: the track, the payloader, the depacketizer and the decoder.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_late_receiver_gets_an_h264_keyframe_by_asking_for_it() {
        late_receiver_asks(VideoCodec::H264).await;
    }

    async fn late_receiver_asks(codec: VideoCodec) {
        let net = NetConfig {
            loopback_only: true,
            ..Default::default()
        };
        let pc::Built {
            pc: sender,
            events: sender_events,
            ..
        } = pc::build(&net, codec).await.unwrap();
        let pc::Built {
            pc: receiver,
            events: receiver_events,
            ..
        } = pc::build(&net, codec).await.unwrap();
        let stream = start_video(
            MediaKind::Video,
            Box::new(TestPattern::new(160, 96, 15)),
            15,
            300,
        )
        .unwrap();
        // Nobody takes the stream yet: no encoder runs.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (track, ssrc) = new_track(MediaKind::Video, codec).unwrap();
        sender
            .add_track(track.clone() as Arc<dyn TrackLocal>)
            .await
            .unwrap();
        let writer =
            stream
                .subscribe(codec)
                .write_into(track, ssrc, Arc::new(AtomicBool::new(true)));
        // The feed starts at a keyframe of its own; written before the connection exists, it
        // is dropped, so the receiver can only decode by asking. (Negotiating at once raced:
        // on a fast run the feed's keyframe got through and nothing had to be asked.)
        tokio::time::sleep(Duration::from_millis(300)).await;

        let offer = sender.create_offer(None).await.unwrap();
        sender.set_local_description(offer.clone()).await.unwrap();
        receiver.set_remote_description(offer).await.unwrap();
        let answer = receiver.create_answer(None).await.unwrap();
        receiver
            .set_local_description(answer.clone())
            .await
            .unwrap();
        sender.set_remote_description(answer).await.unwrap();
        let (tracks_tx, mut tracks) = mpsc::unbounded_channel();
        pump(sender_events, receiver.clone(), tracks_tx.clone());
        pump(receiver_events, sender.clone(), tracks_tx);

        let counters = Counters::new(AudioStreams::new());
        let (events, mut events_rx) = mpsc::channel(64);
        // The track's codec as the receiving stack reports it: what went over the wire.
        let (codec_tx, codec_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut codec_tx = Some(codec_tx);
            while let Some(ev) = events_rx.recv().await {
                if let (MeshEvent::TrackAdded { codec, .. }, Some(tx)) = (ev, codec_tx.take()) {
                    let _ = tx.send(codec);
                }
            }
        });
        let track = tokio::time::timeout(Duration::from_secs(10), tracks.recv())
            .await
            .unwrap()
            .unwrap();
        tokio::spawn(remote::receive(
            "sender".into(),
            track,
            counters.clone(),
            events,
            Instant::now(),
            None,
            tokio::sync::watch::channel(signal::room::StreamConfig {
                video: true,
                ..Default::default()
            })
            .1,
        ));
        let deadline = Instant::now() + Duration::from_secs(10);
        while counters.frames.load(Ordering::Relaxed) < 5 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let frames = counters.frames.load(Ordering::Relaxed);
        let intact = counters.intact.load(Ordering::Relaxed);
        let asked = stream.keyframes(codec).forced_for_peers();
        let received_as = codec_rx.await.unwrap();
        writer.abort();
        let _ = sender.close().await;
        let _ = receiver.close().await;
        assert!(
            asked >= 1,
            "the PLI never reached the encoder ({frames} frames)"
        );
        assert!(frames >= 5, "only {frames} frames decoded");
        assert_eq!(
            received_as,
            codec.name(),
            "the track arrived in another codec"
        );
        assert!(
            intact >= 5,
            "only {intact} of {frames} frames read back their stamp"
        );
    }
}
