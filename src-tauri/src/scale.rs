//! Scales an I420 frame down to the size its tile is shown at, before it crosses the IPC
//! boundary: the webview's ceiling is per message and per byte (platform notes), so a 640x360
//! frame shown in a 320x180 tile should cost a quarter of the bytes.

use fast_image_resize::{images::Image, images::ImageRef, FilterType, PixelType};
use fast_image_resize::{ResizeAlg, ResizeOptions, Resizer};
use media::frame::VideoFrame;

/// The size to send a `w`x`h` frame at for a tile of `tile_w`x`tile_h` device pixels: the
/// largest size that fits the tile with the frame's aspect ratio, never larger than the frame,
/// with even sides (I420 halves them for chroma). A tile of unknown size (0) gets the frame as is.
pub fn target_size(w: u32, h: u32, tile_w: u32, tile_h: u32) -> (u32, u32) {
    if tile_w == 0 || tile_h == 0 || w == 0 || h == 0 || (w <= tile_w && h <= tile_h) {
        return (w, h);
    }
    let scale = f64::min(tile_w as f64 / w as f64, tile_h as f64 / h as f64);
    let even = |v: f64| ((v as u32) & !1).max(2);
    (even(w as f64 * scale), even(h as f64 * scale))
}

/// Keeps one resizer (its buffers are reused between frames).
#[derive(Default)]
pub struct Scaler {
    resizer: Resizer,
}

impl Scaler {
    /// `frame` at `w`x`h` (a copy when the size is already right).
    pub fn scale(&mut self, frame: &VideoFrame, w: u32, h: u32) -> VideoFrame {
        if (w, h) == (frame.width, frame.height) || !frame.is_well_formed() {
            return frame.clone();
        }
        let mut out = VideoFrame::black(w, h);
        let (cw, ch) = (frame.chroma_width(), frame.chroma_height());
        let planes = [
            (frame.y(), frame.width, frame.height),
            (frame.u(), cw, ch),
            (frame.v(), cw, ch),
        ];
        let (ocw, och) = (out.chroma_width(), out.chroma_height());
        let mut parts = Vec::with_capacity(3);
        for (i, (plane, pw, ph)) in planes.into_iter().enumerate() {
            let (dw, dh) = if i == 0 { (w, h) } else { (ocw, och) };
            parts.push(self.plane(plane, pw, ph, dw, dh));
        }
        let mut data = Vec::with_capacity(out.data.len());
        for p in parts {
            data.extend_from_slice(&p);
        }
        out.data = data;
        out.pts = frame.pts;
        out
    }

    fn plane(&mut self, src: &[u8], w: u32, h: u32, dw: u32, dh: u32) -> Vec<u8> {
        let Ok(src_img) = ImageRef::new(w, h, src, PixelType::U8) else {
            return vec![128; (dw * dh) as usize];
        };
        let mut dst = Image::new(dw, dh, PixelType::U8);
        let opts = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
        match self.resizer.resize(&src_img, &mut dst, &opts) {
            Ok(()) => dst.into_vec(),
            Err(_) => vec![128; (dw * dh) as usize],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_sizes_fit_the_tile_keep_the_aspect_and_are_even() {
        assert_eq!(target_size(640, 360, 320, 240), (320, 180));
        assert_eq!(
            target_size(640, 360, 1280, 720),
            (640, 360),
            "never upscaled"
        );
        assert_eq!(target_size(640, 360, 0, 0), (640, 360));
        let (w, h) = target_size(1280, 720, 333, 333);
        assert_eq!((w % 2, h % 2), (0, 0));
        assert!(w <= 333 && h <= 333 && w == 332);
    }

    #[test]
    fn a_flat_frame_scales_to_the_same_colour() {
        let mut f = VideoFrame::black(640, 360);
        let (ys, cs) = media::frame::plane_sizes(640, 360);
        f.data[..ys].fill(200);
        f.data[ys..ys + cs].fill(60);
        f.data[ys + cs..].fill(190);
        let out = Scaler::default().scale(&f, 320, 180);
        assert!(out.is_well_formed());
        assert_eq!((out.width, out.height), (320, 180));
        assert!(out.y().iter().all(|&v| v == 200));
        assert!(out.u().iter().all(|&v| v == 60));
        assert!(out.v().iter().all(|&v| v == 190));
    }
}
