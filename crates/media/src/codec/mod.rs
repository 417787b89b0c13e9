//! Video (VP8, H.264) and audio (Opus) codecs behind small safe wrappers.
//!
//! VP8 is the default video codec because it carries no patent licence burden (see the platform
//! notes); libvpx is driven through raw bindings so we control realtime knobs the high-level
//! crates hide (forced keyframes, live bitrate changes, thread count). H.264 (OpenH264, built
//! from source) is the option a call uses when both sides want it. Opus goes through the safe
//! `opus` crate, so the only unsafe code of the media crate lives in [`vp8`] and [`h264`].
//!
//! [`VideoCodec`] names a video codec and builds its real-time encoder and its decoder behind
//! [`VideoEncoder`] and [`VideoDecoder`], so the call engine handles both the same way.

pub mod h264;
pub mod opus;
mod prologue;
pub mod vp8;

use std::time::Duration;

use crate::frame::VideoFrame;

pub use self::h264::{H264Config, H264Decoder, H264Encoder};
pub use self::opus::{OpusDecoder, OpusEncoder};
pub use self::vp8::{Vp8Config, Vp8Decoder, Vp8Encoder};

/// libvpx's frame-drop threshold for real-time VP8 (libwebrtc's value): on a poor link fewer
/// frames, each intact, rather than every frame overshooting the rate.
const VP8_FRAME_DROP_THRESHOLD: u32 = 30;

/// A video codec Huddle can send and receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VideoCodec {
    /// VP8 (libvpx): the default, the one every participant has.
    Vp8,
    /// H.264 Constrained Baseline (OpenH264): used when both sides ask for it.
    H264,
}

impl VideoCodec {
    /// Every codec, the default first.
    pub const ALL: [VideoCodec; 2] = [VideoCodec::Vp8, VideoCodec::H264];

    /// The name used in the room protocol and on the command line (`vp8`, `h264`).
    pub fn name(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => "vp8",
            VideoCodec::H264 => "h264",
        }
    }

    /// Reads a name as [`Self::name`] writes it, in any case (`H264` and `h.264` too).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().replace('.', "").as_str() {
            "vp8" => Some(VideoCodec::Vp8),
            "h264" => Some(VideoCodec::H264),
            _ => None,
        }
    }

    /// A real-time encoder: bitrate-driven, keyframes only when asked for (or for a new size),
    /// and skipping a frame rather than overshooting the rate.
    pub fn encoder(self, settings: &EncoderSettings) -> Result<Box<dyn VideoEncoder>, CodecError> {
        Ok(match self {
            VideoCodec::Vp8 => {
                let mut e = Vp8Encoder::new(Vp8Config {
                    width: settings.width,
                    height: settings.height,
                    fps: settings.fps,
                    bitrate_kbps: settings.bitrate_kbps,
                    threads: 1,
                })?;
                if let Err(err) = e.set_frame_dropping(VP8_FRAME_DROP_THRESHOLD) {
                    tracing::warn!(error = %err, "VP8 frame dropping unavailable");
                }
                Box::new(e)
            }
            VideoCodec::H264 => Box::new(H264Encoder::new(H264Config {
                width: settings.width,
                height: settings.height,
                fps: settings.fps,
                bitrate_kbps: settings.bitrate_kbps,
            })?),
        })
    }

    /// A decoder waiting for its first keyframe.
    pub fn decoder(self) -> Result<Box<dyn VideoDecoder>, CodecError> {
        Ok(match self {
            VideoCodec::Vp8 => Box::new(Vp8Decoder::new()?),
            VideoCodec::H264 => Box::new(H264Decoder::new()?),
        })
    }

    /// Whether one compressed frame of this codec is a keyframe (junk says false).
    pub fn is_keyframe(self, data: &[u8]) -> bool {
        match self {
            // Bit 0 of the VP8 frame tag is clear on a keyframe.
            VideoCodec::Vp8 => data.first().is_some_and(|b| b & 1 == 0),
            VideoCodec::H264 => h264::is_keyframe(data),
        }
    }
}

impl std::fmt::Display for VideoCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VideoCodec::Vp8 => "VP8",
            VideoCodec::H264 => "H.264",
        })
    }
}

/// What a [`VideoCodec::encoder`] starts with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncoderSettings {
    /// Picture width in pixels.
    pub width: u32,
    /// Picture height in pixels.
    pub height: u32,
    /// Nominal frame rate.
    pub fps: u32,
    /// Starting target bitrate in kbit/s.
    pub bitrate_kbps: u32,
}

/// A video encoder of any codec.
pub trait VideoEncoder: Send {
    /// Compresses one frame (nothing when rate control skipped it); `force_keyframe` answers a
    /// receiver's picture-loss indication.
    fn encode(
        &mut self,
        frame: &VideoFrame,
        force_keyframe: bool,
    ) -> Result<Vec<EncodedFrame>, CodecError>;

    /// Changes the target bitrate without a keyframe.
    fn set_bitrate(&mut self, kbps: u32) -> Result<(), CodecError>;
}

/// A video decoder of any codec.
pub trait VideoDecoder: Send {
    /// Decodes one compressed frame; `Ok(None)` when it holds no picture to show. Damage is an
    /// error: drop the frame and ask the sender for a keyframe.
    fn decode(&mut self, data: &[u8]) -> Result<Option<VideoFrame>, CodecError>;
}

impl VideoEncoder for Vp8Encoder {
    fn encode(
        &mut self,
        frame: &VideoFrame,
        force_keyframe: bool,
    ) -> Result<Vec<EncodedFrame>, CodecError> {
        Vp8Encoder::encode(self, frame, force_keyframe)
    }

    fn set_bitrate(&mut self, kbps: u32) -> Result<(), CodecError> {
        Vp8Encoder::set_bitrate(self, kbps)
    }
}

impl VideoEncoder for H264Encoder {
    fn encode(
        &mut self,
        frame: &VideoFrame,
        force_keyframe: bool,
    ) -> Result<Vec<EncodedFrame>, CodecError> {
        H264Encoder::encode(self, frame, force_keyframe)
    }

    fn set_bitrate(&mut self, kbps: u32) -> Result<(), CodecError> {
        H264Encoder::set_bitrate(self, kbps)
    }
}

impl VideoDecoder for Vp8Decoder {
    fn decode(&mut self, data: &[u8]) -> Result<Option<VideoFrame>, CodecError> {
        Vp8Decoder::decode(self, data)
    }
}

impl VideoDecoder for H264Decoder {
    fn decode(&mut self, data: &[u8]) -> Result<Option<VideoFrame>, CodecError> {
        H264Decoder::decode(self, data)
    }
}

/// Everything that can go wrong while encoding or decoding media.
///
/// Decoder errors are expected in normal operation (packet loss, garbage from the network): the
/// caller should drop the frame and ask the sender for a keyframe, never tear the call down.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The VP8 encoder refused its configuration (zero size, zero frame rate, zero bitrate, ...).
    #[error("VP8 encoder: invalid configuration: {0}")]
    Vp8InvalidConfig(String),
    /// libvpx failed while encoding.
    #[error("VP8 encoder: {0}")]
    Vp8Encode(String),
    /// The VP8 bitstream could not be decoded (random bytes, truncation, missing reference).
    #[error("VP8 decoder: corrupt frame ({0})")]
    Vp8CorruptFrame(String),
    /// A VP8 keyframe announced a picture bigger than we are willing to allocate for.
    #[error("VP8 decoder: a {width}x{height} frame exceeds the {max_pixels} pixel limit")]
    Vp8FrameTooLarge {
        width: u32,
        height: u32,
        /// The limit, in pixels (width * height).
        max_pixels: u64,
    },
    /// libvpx failed for a reason that is not the input's fault (initialisation, allocation).
    #[error("VP8 decoder: {0}")]
    Vp8Decode(String),
    /// A [`VideoFrame`](crate::frame::VideoFrame) whose buffer does not match its dimensions.
    #[error(
        "malformed video frame: {width}x{height} needs {expected} bytes of I420, got {actual}"
    )]
    MalformedVideoFrame {
        width: u32,
        height: u32,
        /// Bytes the dimensions need.
        expected: usize,
        /// Bytes actually present.
        actual: usize,
    },
    /// An [`AudioFrame`](crate::frame::AudioFrame) without exactly 960 samples.
    #[error("malformed audio frame: {actual} samples, expected {expected}")]
    MalformedAudioFrame {
        /// Samples required per frame.
        expected: usize,
        actual: usize,
    },
    /// The H.264 encoder refused its configuration (odd or zero size, zero frame rate, ...).
    #[error("H.264 encoder: invalid configuration: {0}")]
    H264InvalidConfig(String),
    /// OpenH264 failed while encoding.
    #[error("H.264 encoder: {0}")]
    H264Encode(String),
    /// The H.264 bitstream could not be decoded (garbage, truncation, missing reference).
    #[error("H.264 decoder: corrupt frame ({0})")]
    H264CorruptFrame(String),
    /// An H.264 stream announced a picture bigger than we are willing to allocate for.
    #[error("H.264 decoder: a {width}x{height} frame exceeds the {max_pixels} pixel limit")]
    H264FrameTooLarge {
        width: u32,
        height: u32,
        /// The limit, in pixels (width * height).
        max_pixels: u64,
    },
    /// OpenH264 failed for a reason that is not the input's fault (initialisation).
    #[error("H.264 decoder: {0}")]
    H264Decode(String),
    /// libopus failed while creating or running the encoder.
    #[error("Opus encoder: {0}")]
    OpusEncode(#[source] ::opus::Error),
    /// libopus failed while creating or running the decoder (corrupt packet included).
    #[error("Opus decoder: {0}")]
    OpusDecode(#[source] ::opus::Error),
    /// An Opus packet decoded to a duration other than 20 ms, which the pipeline cannot mix.
    #[error("Opus decoder: packet holds {actual} samples, expected {expected}")]
    OpusUnexpectedDuration {
        /// Samples per frame the pipeline works with.
        expected: usize,
        /// Samples the packet decoded to.
        actual: usize,
    },
}

/// One compressed video frame, ready for RTP packetisation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedFrame {
    /// The bitstream of one frame (VP8, or H.264 in Annex B form).
    pub data: Vec<u8>,
    /// True for a keyframe, which a receiver can decode without any earlier frame.
    pub keyframe: bool,
    /// Capture time of the source frame, carried through so the RTP timestamp matches capture.
    pub pts: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_and_keyframes_are_recognised() {
        for c in VideoCodec::ALL {
            assert_eq!(VideoCodec::from_name(c.name()), Some(c));
        }
        assert_eq!(VideoCodec::from_name("H.264"), Some(VideoCodec::H264));
        assert_eq!(VideoCodec::from_name("av1"), None);
        // VP8: bit 0 of the frame tag is 0 on a keyframe (RFC 6386 9.1).
        assert!(VideoCodec::Vp8.is_keyframe(&[0x50, 0x01]));
        assert!(!VideoCodec::Vp8.is_keyframe(&[0x51]));
        assert!(!VideoCodec::Vp8.is_keyframe(&[]));
        // H.264: an IDR slice (NAL type 5) after a start code; SPS alone or a P slice is not.
        assert!(VideoCodec::H264.is_keyframe(&[0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x65, 0x88]));
        assert!(!VideoCodec::H264.is_keyframe(&[0, 0, 0, 1, 0x67, 1]));
        assert!(!VideoCodec::H264.is_keyframe(&[0, 0, 1, 0x41, 0x9a]));
        assert!(!VideoCodec::H264.is_keyframe(&[0x65]));
    }
}
