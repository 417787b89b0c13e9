//! The microphone's encoder thread: paced 20 ms frames, Opus-encoded once for every connection
//! (audio has one codec, so one encoder whatever the peers want).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use media::codec::opus::OpusEncoder;
use media::codec::VideoCodec;
use media::source::AudioSource;

use super::{Encoded, LocalStream, Output};
use crate::event::MediaKind;
use crate::MeshError;

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
