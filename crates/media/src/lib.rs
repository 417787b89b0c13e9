//! Huddle's media pipeline pieces: raw frames, sources (synthetic ones that need no device; real
//! devices come behind the same traits), the VP8 and Opus codecs behind small safe wrappers, and
//! audio jitter buffering and mixing.

// Unsafe code is confined to the codec FFI wrappers (codec/), each block with its reason.
pub mod frame;

pub use frame::{AudioFrame, VideoFrame, SAMPLES_PER_FRAME, SAMPLE_RATE};
