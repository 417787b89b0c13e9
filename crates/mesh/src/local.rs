//! What I send: one stream per kind (camera, microphone, screen), each fed by ONE encoder whose
//! output is broadcast to every connection. Each connection packetizes the same encoded frames
//! into a track of its own (a webrtc-rs 0.21 local track delivers to only one PeerConnection),
//! so a source is encoded once whatever the number of peers; only the cheap RTP packetizing is
//! per peer.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use media::codec::opus::OpusEncoder;
use media::codec::vp8::{Vp8Config, Vp8Encoder};
use media::source::{AudioSource, VideoSource};
use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::sync::broadcast;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;

use crate::codecs::{opus_codec, vp8_codec, OPUS_PT, VP8_PT};
use crate::event::MediaKind;
use crate::MeshError;

/// One encoded frame or audio packet and how long it lasts.
pub type Encoded = (Bytes, Duration);

/// A running local stream: the encoder and the broadcast of what it produces.
pub struct LocalStream {
    /// The kind.
    pub kind: MediaKind,
    tx: broadcast::Sender<Encoded>,
    keyframe: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl LocalStream {
    /// Asks the encoder for a keyframe (a peer connected, or lost a picture).
    pub fn request_keyframe(&self) {
        self.keyframe.store(true, Ordering::Relaxed);
    }

    /// A new connection's feed of this stream.
    pub fn subscribe(&self) -> Feed {
        Feed {
            kind: self.kind,
            rx: self.tx.subscribe(),
            keyframe: self.keyframe.clone(),
        }
    }
}

/// One connection's copy of a local stream.
pub struct Feed {
    kind: MediaKind,
    rx: broadcast::Receiver<Encoded>,
    keyframe: Arc<AtomicBool>,
}

impl Feed {
    /// The kind.
    pub fn kind(&self) -> MediaKind {
        self.kind
    }

    /// Starts a task writing the stream into `track` (this connection's track of this kind);
    /// it ends when the stream stops or the returned handle is aborted.
    pub fn write_into(
        mut self,
        track: Arc<TrackLocalStaticSample>,
        ssrc: u32,
    ) -> tokio::task::JoinHandle<()> {
        let pt = if self.kind == MediaKind::Audio {
            OPUS_PT
        } else {
            VP8_PT
        };
        let writer = track;
        tokio::spawn(async move {
            loop {
                match self.rx.recv().await {
                    Ok((data, duration)) => {
                        let sample = Sample {
                            data,
                            duration,
                            ..Sample::new(Instant::now())
                        };
                        if let Err(e) = writer.sample_writer(ssrc, pt).write_sample(&sample).await {
                            tracing::trace!(error = %e, "a sample was not sent (connection not up yet?)");
                        }
                    }
                    // This connection fell behind: skip to the present, from a keyframe.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        self.keyframe.store(true, Ordering::Relaxed)
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        })
    }
}

impl Drop for LocalStream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A new local track of `kind` with a random SSRC.
pub fn new_track(kind: MediaKind) -> Result<(Arc<TrackLocalStaticSample>, u32), MeshError> {
    let ssrc = rand::random::<u32>();
    let (codec_kind, codec) = match kind {
        MediaKind::Audio => (RtpCodecKind::Audio, opus_codec()),
        MediaKind::Video | MediaKind::Screen => (RtpCodecKind::Video, vp8_codec()),
    };
    let track = MediaStreamTrack::new(
        "huddle".to_owned(),
        kind.as_str().to_owned(),
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
    let track = TrackLocalStaticSample::new(Instant::now(), track).map_err(MeshError::webrtc)?;
    Ok((Arc::new(track), ssrc))
}

/// Starts a video stream: a thread pulls paced frames from `source`, encodes each once, and a
/// task writes the encoded frames to the shared track.
pub fn start_video(
    kind: MediaKind,
    mut source: Box<dyn VideoSource>,
    fps: u32,
    bitrate_kbps: u32,
) -> Result<LocalStream, MeshError> {
    let keyframe = Arc::new(AtomicBool::new(true));
    let bitrate = Arc::new(AtomicU32::new(bitrate_kbps));
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, _) = broadcast::channel::<Encoded>(8);
    let frame_time = Duration::from_secs(1) / fps.max(1);
    {
        let (keyframe, bitrate, stop, tx) =
            (keyframe.clone(), bitrate.clone(), stop.clone(), tx.clone());
        std::thread::Builder::new()
            .name(format!("huddle-{}-encoder", kind.as_str()))
            .spawn(move || {
                let mut encoder: Option<Vp8Encoder> = None;
                let mut current_kbps = 0;
                while !stop.load(Ordering::Relaxed) {
                    let frame = match source.next_frame() {
                        Ok(f) => f,
                        Err(e) => {
                            tracing::warn!(error = %e, "video source stopped");
                            return;
                        }
                    };
                    let want = bitrate.load(Ordering::Relaxed);
                    let enc = match &mut encoder {
                        Some(e) => e,
                        None => {
                            let cfg = Vp8Config {
                                width: frame.width,
                                height: frame.height,
                                fps,
                                bitrate_kbps: want,
                                threads: 1,
                            };
                            match Vp8Encoder::new(cfg) {
                                Ok(e) => {
                                    current_kbps = want;
                                    encoder.insert(e)
                                }
                                Err(e) => {
                                    tracing::error!(error = %e, "cannot start the video encoder");
                                    return;
                                }
                            }
                        }
                    };
                    if want != current_kbps && enc.set_bitrate(want).is_ok() {
                        current_kbps = want;
                    }
                    let force = keyframe.swap(false, Ordering::Relaxed);
                    match enc.encode(&frame, force) {
                        Ok(packets) => {
                            for p in packets {
                                // No subscriber yet is fine: nobody to send to.
                                let _ = tx.send((Bytes::from(p.data), frame_time));
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "dropping a frame the encoder refused")
                        }
                    }
                }
            })
            .map_err(|e| MeshError::Media(e.to_string()))?;
    }
    Ok(LocalStream {
        kind,
        tx,
        keyframe,
        stop,
    })
}

/// Starts an audio stream: paced 20 ms frames, Opus-encoded once, written to the shared track.
pub fn start_audio(mut source: Box<dyn AudioSource>) -> Result<LocalStream, MeshError> {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, _) = broadcast::channel::<Encoded>(16);
    {
        let (stop, tx) = (stop.clone(), tx.clone());
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
                    match enc.encode(&frame) {
                        Ok(packet) => {
                            let _ = tx.send((Bytes::from(packet), Duration::from_millis(20)));
                        }
                        Err(e) => tracing::warn!(error = %e, "dropping an audio frame the encoder refused"),
                    }
                }
            })
            .map_err(|e| MeshError::Media(e.to_string()))?;
    }
    Ok(LocalStream {
        kind: MediaKind::Audio,
        tx,
        keyframe: Arc::new(AtomicBool::new(false)),
        stop,
    })
}
