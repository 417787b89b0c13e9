//! Opus voice encoding and decoding (48 kHz mono, 20 ms frames) through the safe `opus` crate.

use std::time::Duration;

use ::opus::{Application, Bitrate, Channels, Decoder, Encoder};

use super::CodecError;
use crate::frame::{AudioFrame, SAMPLES_PER_FRAME, SAMPLE_RATE};

/// Largest packet we let the encoder produce; libopus recommends 4000 bytes as a safe upper
/// bound, far above what one 20 ms voice frame ever needs.
const MAX_PACKET: usize = 4000;

/// Loss rate the encoder assumes until told otherwise. libopus only spends bits on in-band FEC
/// when this is non-zero, so enabling FEC alone would do nothing.
const EXPECTED_LOSS_PERCENT: i32 = 10;

/// A 48 kHz mono Opus encoder tuned for speech over lossy networks.
#[derive(Debug)]
pub struct OpusEncoder {
    inner: Encoder,
}

impl OpusEncoder {
    /// Opens an encoder at `bitrate_bps` (libopus accepts 500..=512000) in VoIP mode with in-band
    /// forward error correction, so a receiver can rebuild a lost packet from the next one.
    pub fn new(bitrate_bps: i32) -> Result<Self, CodecError> {
        let mut inner = Encoder::new(SAMPLE_RATE, Channels::Mono, Application::Voip)
            .map_err(CodecError::OpusEncode)?;
        inner
            .set_bitrate(Bitrate::Bits(bitrate_bps))
            .map_err(CodecError::OpusEncode)?;
        inner.set_inband_fec(true).map_err(CodecError::OpusEncode)?;
        inner
            .set_packet_loss_perc(EXPECTED_LOSS_PERCENT)
            .map_err(CodecError::OpusEncode)?;
        Ok(OpusEncoder { inner })
    }

    /// Compresses one 20 ms frame into one Opus packet; frames without exactly
    /// [`SAMPLES_PER_FRAME`] samples are rejected (Opus cannot encode arbitrary lengths).
    pub fn encode(&mut self, frame: &AudioFrame) -> Result<Vec<u8>, CodecError> {
        if frame.samples.len() != SAMPLES_PER_FRAME {
            return Err(CodecError::MalformedAudioFrame {
                expected: SAMPLES_PER_FRAME,
                actual: frame.samples.len(),
            });
        }
        self.inner
            .encode_vec(&frame.samples, MAX_PACKET)
            .map_err(CodecError::OpusEncode)
    }
}

/// A 48 kHz mono Opus decoder that always yields exactly one 20 ms frame per call.
#[derive(Debug)]
pub struct OpusDecoder {
    inner: Decoder,
}

impl OpusDecoder {
    /// Opens a decoder.
    pub fn new() -> Result<Self, CodecError> {
        let inner = Decoder::new(SAMPLE_RATE, Channels::Mono).map_err(CodecError::OpusDecode)?;
        Ok(OpusDecoder { inner })
    }

    /// Decodes `packet`, or with `None` synthesises 20 ms of concealment for a lost packet.
    ///
    /// Corrupt packets and packets that do not hold exactly 20 ms are errors, since the mixer
    /// works in fixed 960-sample frames; the caller can fall back to `decode(None, ..)`.
    pub fn decode(
        &mut self,
        packet: Option<&[u8]>,
        pts: Duration,
    ) -> Result<AudioFrame, CodecError> {
        let mut samples = vec![0i16; SAMPLES_PER_FRAME];
        // The opus crate treats an empty slice as "packet lost"; an empty packet from the
        // network therefore also gets concealment rather than an error.
        let input = packet.unwrap_or(&[]);
        let n = self
            .inner
            .decode(input, &mut samples, false)
            .map_err(CodecError::OpusDecode)?;
        if n != SAMPLES_PER_FRAME {
            return Err(CodecError::OpusUnexpectedDuration {
                expected: SAMPLES_PER_FRAME,
                actual: n,
            });
        }
        Ok(AudioFrame { samples, pts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, t0: usize) -> AudioFrame {
        let samples = (0..SAMPLES_PER_FRAME)
            .map(|i| {
                let t = (t0 + i) as f32 / SAMPLE_RATE as f32;
                (8000.0 * (2.0 * std::f32::consts::PI * freq * t).sin()) as i16
            })
            .collect();
        AudioFrame {
            samples,
            pts: Duration::from_millis(t0 as u64 / 48),
        }
    }

    fn energy(samples: &[i16]) -> f64 {
        samples
            .iter()
            .map(|&s| f64::from(s) * f64::from(s))
            .sum::<f64>()
            / samples.len() as f64
    }

    #[test]
    fn codec_types_are_send() {
        fn assert_send<T: Send>() {}
        assert_send::<OpusEncoder>();
        assert_send::<OpusDecoder>();
    }

    #[test]
    fn sine_round_trip_keeps_energy() {
        let mut enc = OpusEncoder::new(32_000).expect("encoder");
        let mut dec = OpusDecoder::new().expect("decoder");
        let (mut e_in, mut e_out) = (0.0, 0.0);
        for k in 0..50 {
            let frame = sine(440.0, k * SAMPLES_PER_FRAME);
            let packet = enc.encode(&frame).expect("encode");
            assert!(
                !packet.is_empty() && packet.len() < 400,
                "{} bytes",
                packet.len()
            );
            let out = dec.decode(Some(&packet), frame.pts).expect("decode");
            assert_eq!(out.samples.len(), SAMPLES_PER_FRAME);
            assert_eq!(out.pts, frame.pts);
            // Skip the codec's start-up (look-ahead and rate adaptation).
            if k >= 10 {
                e_in += energy(&frame.samples);
                e_out += energy(&out.samples);
            }
        }
        let ratio = e_out / e_in;
        assert!(
            (0.7..1.3).contains(&ratio),
            "output/input energy {ratio:.3}"
        );
    }

    #[test]
    fn packet_loss_concealment_yields_a_full_frame() {
        let mut enc = OpusEncoder::new(24_000).expect("encoder");
        let mut dec = OpusDecoder::new().expect("decoder");
        // Concealment before anything was received is silence, but still a full frame.
        let out = dec.decode(None, Duration::ZERO).expect("plc");
        assert_eq!(out.samples.len(), SAMPLES_PER_FRAME);
        for k in 0..10 {
            let packet = enc
                .encode(&sine(440.0, k * SAMPLES_PER_FRAME))
                .expect("encode");
            dec.decode(Some(&packet), Duration::ZERO).expect("decode");
        }
        let pts = Duration::from_millis(200);
        let out = dec.decode(None, pts).expect("plc");
        assert_eq!(out.samples.len(), SAMPLES_PER_FRAME);
        assert_eq!(out.pts, pts);
        // Concealment continues the tone rather than going silent.
        assert!(energy(&out.samples) > 1000.0);
    }

    #[test]
    fn malformed_audio_frames_are_rejected() {
        let mut enc = OpusEncoder::new(24_000).expect("encoder");
        for len in [0, 480, 959, 961, 1920] {
            let frame = AudioFrame {
                samples: vec![0; len],
                pts: Duration::ZERO,
            };
            let err = enc.encode(&frame).expect_err("wrong length");
            assert!(
                matches!(err, CodecError::MalformedAudioFrame { actual, .. } if actual == len),
                "{err}"
            );
        }
        assert!(OpusEncoder::new(0).is_err());
    }

    #[test]
    fn garbage_packets_do_not_panic() {
        let mut dec = OpusDecoder::new().expect("decoder");
        let mut x: u64 = 0x1234_5678_9abc_def1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..3000 {
            let len = (next() % 300) as usize + 1;
            let packet: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Opus has little redundancy, so many random packets are legal: only the frame size
            // and the absence of panics are checked.
            if let Ok(frame) = dec.decode(Some(&packet), Duration::ZERO) {
                assert_eq!(frame.samples.len(), SAMPLES_PER_FRAME);
            }
        }
    }
}
