//! A camera or screen stream's encoder thread: paced frames pulled from the source, each encoded
//! once per codec that some connection takes, the output broadcast to those connections. A
//! thread, not a task: encoding a frame takes milliseconds of CPU that would stall the runtime.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use media::codec::{EncoderSettings, VideoCodec, VideoEncoder};
use media::source::VideoSource;

use super::{Encoded, LocalStream, Output};
use crate::event::MediaKind;
use crate::MeshError;

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
