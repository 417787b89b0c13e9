//! Huddle's media pipeline pieces: the shared words for what a participant sends ([`MediaKind`],
//! [`StreamConfig`]), raw frames, sources (synthetic ones that need no device; real
//! devices come behind the same traits), the VP8 and Opus codecs behind small safe wrappers, and
//! audio jitter buffering and mixing.

// Unsafe code is confined to the codec FFI wrappers (codec/), each block with its reason.
pub mod codec;
pub mod frame;
pub mod jitter;
pub mod mixer;
pub mod source;
pub mod stamp;
pub mod stream;
pub mod synthetic;

pub use frame::{AudioFrame, VideoFrame, SAMPLES_PER_FRAME, SAMPLE_RATE};
pub use stream::{MediaKind, StreamConfig};
