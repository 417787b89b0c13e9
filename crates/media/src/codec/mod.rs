//! Video (VP8) and audio (Opus) codecs behind small safe wrappers.
//!
//! VP8 is the default video codec because it carries no patent licence burden (see the platform
//! notes); libvpx is driven through raw bindings so we control realtime knobs the high-level
//! crates hide (forced keyframes, live bitrate changes, thread count). Opus goes through the safe
//! `opus` crate, so the only unsafe code of the media crate lives in [`vp8`].

pub mod opus;
pub mod vp8;

use std::time::Duration;

pub use self::opus::{OpusDecoder, OpusEncoder};
pub use self::vp8::{Vp8Config, Vp8Decoder, Vp8Encoder};

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
        /// Announced width.
        width: u32,
        /// Announced height.
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
        /// Claimed width.
        width: u32,
        /// Claimed height.
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
        /// Samples present.
        actual: usize,
    },
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
    /// The VP8 bitstream of one frame.
    pub data: Vec<u8>,
    /// True for a keyframe, which a receiver can decode without any earlier frame.
    pub keyframe: bool,
    /// Capture time of the source frame, carried through so the RTP timestamp matches capture.
    pub pts: Duration,
}
