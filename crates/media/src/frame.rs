//! Raw media as it flows between sources, codecs and sinks.

use std::time::Duration;

/// One planar I420 (YUV 4:2:0) picture, tightly packed: Y is `width * height` bytes, U and V are
/// `ceil(width/2) * ceil(height/2)` bytes each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoFrame {
    /// Width in pixels (even numbers are best for the codecs).
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Y, then U, then V.
    pub data: Vec<u8>,
    /// Capture time, on the source's clock (for pacing and RTP timestamps).
    pub pts: Duration,
}

impl VideoFrame {
    /// A black frame.
    pub fn black(width: u32, height: u32) -> Self {
        let (y, c) = plane_sizes(width, height);
        let mut data = vec![16u8; y + 2 * c];
        data[y..].fill(128);
        VideoFrame {
            width,
            height,
            data,
            pts: Duration::ZERO,
        }
    }

    /// Chroma plane width.
    pub fn chroma_width(&self) -> u32 {
        self.width.div_ceil(2)
    }

    /// Chroma plane height.
    pub fn chroma_height(&self) -> u32 {
        self.height.div_ceil(2)
    }

    /// The Y plane.
    pub fn y(&self) -> &[u8] {
        &self.data[..plane_sizes(self.width, self.height).0]
    }

    /// The Y plane, writable.
    pub fn y_mut(&mut self) -> &mut [u8] {
        let y = plane_sizes(self.width, self.height).0;
        &mut self.data[..y]
    }

    /// The U plane.
    pub fn u(&self) -> &[u8] {
        let (y, c) = plane_sizes(self.width, self.height);
        &self.data[y..y + c]
    }

    /// The V plane.
    pub fn v(&self) -> &[u8] {
        let (y, c) = plane_sizes(self.width, self.height);
        &self.data[y + c..y + 2 * c]
    }

    /// True when `data` has exactly the size the dimensions need.
    pub fn is_well_formed(&self) -> bool {
        let (y, c) = plane_sizes(self.width, self.height);
        self.width > 0 && self.height > 0 && self.data.len() == y + 2 * c
    }
}

/// Sizes of the Y plane and of each chroma plane.
pub fn plane_sizes(width: u32, height: u32) -> (usize, usize) {
    let y = width as usize * height as usize;
    let c = width.div_ceil(2) as usize * height.div_ceil(2) as usize;
    (y, c)
}

/// Audio sample rate used everywhere inside Huddle (Opus's native rate).
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples per channel in one 20 ms audio frame at 48 kHz.
pub const SAMPLES_PER_FRAME: usize = 960;

/// 20 ms of mono 48 kHz audio as signed 16-bit samples.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioFrame {
    /// Exactly [`SAMPLES_PER_FRAME`] samples.
    pub samples: Vec<i16>,
    /// Capture time, on the source's clock.
    pub pts: Duration,
}

impl AudioFrame {
    /// 20 ms of silence.
    pub fn silence(pts: Duration) -> Self {
        AudioFrame {
            samples: vec![0; SAMPLES_PER_FRAME],
            pts,
        }
    }
}
