//! What every video encoder does before it compresses a frame, written once: refuse a frame
//! whose buffer does not hold its claimed size, and follow a change of picture size by opening
//! the encoder again for the new size (which starts that size with a keyframe).

use super::CodecError;
use crate::frame::VideoFrame;

/// An encoder opened for one picture size, opened again for another.
pub(crate) trait Resizable: Sized {
    /// The codec's name, for the log.
    const NAME: &'static str;

    /// The size the encoder codes a `width`x`height` frame at (H.264 crops odd sides to even).
    fn coded_size(width: u32, height: u32) -> (u32, u32) {
        (width, height)
    }

    /// The size the encoder is open for, as [`Resizable::coded_size`] gives it.
    fn size(&self) -> (u32, u32);

    /// A new encoder with the same settings for frames of `width`x`height`.
    fn reopened(&self, width: u32, height: u32) -> Result<Self, CodecError>;
}

/// The prologue of `encode`: checks `frame`, and replaces an encoder opened for another size
/// with one for this frame's size. The new encoder is built before the old one goes, so a size
/// the codec refuses leaves the old one usable.
pub(crate) fn prepare<E: Resizable>(encoder: &mut E, frame: &VideoFrame) -> Result<(), CodecError> {
    check_frame(frame)?;
    let (from, to) = (encoder.size(), E::coded_size(frame.width, frame.height));
    if from != to {
        *encoder = encoder.reopened(frame.width, frame.height)?;
        tracing::debug!(
            from = %format!("{}x{}", from.0, from.1),
            to = %format!("{}x{}", to.0, to.1),
            "{} encoder restarted for a new frame size",
            E::NAME
        );
    }
    Ok(())
}

/// A frame whose buffer does not hold its claimed size of I420 is refused in words, before any
/// encoder reads it.
pub(crate) fn check_frame(frame: &VideoFrame) -> Result<(), CodecError> {
    if frame.is_well_formed() {
        return Ok(());
    }
    let (y, c) = crate::frame::plane_sizes(frame.width, frame.height);
    Err(CodecError::MalformedVideoFrame {
        width: frame.width,
        height: frame.height,
        expected: y + 2 * c,
        actual: frame.data.len(),
    })
}
