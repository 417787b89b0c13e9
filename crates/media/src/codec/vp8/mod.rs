//! VP8 encoding and decoding through libvpx's raw C API: [`Vp8Encoder`] (realtime, one pass
//! CBR), [`Vp8Decoder`] (hardened against what the network sends), and the libvpx context both
//! hold (`context`, where the FFI bookkeeping lives).

mod context;
mod decoder;
mod encoder;

pub use decoder::{Vp8Decoder, MAX_DECODE_PIXELS};
pub use encoder::{Vp8Config, Vp8Encoder};

#[cfg(test)]
mod tests;
