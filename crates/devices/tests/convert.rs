//! Every pixel format against a straightforward floating-point BT.601 limited-range reference.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;

use devices::convert::{mjpeg_to_i420, to_i420, ConvertError, PixelFormat, RawPicture};
use media::VideoFrame;

/// A deterministic picture with smooth gradients, hard edges and saturated blocks.
fn rgb_picture(w: usize, h: usize) -> Vec<[u8; 3]> {
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let px = if (x / 16 + y / 16) % 5 == 0 {
                [255, 0, 0]
            } else if (x / 16 + y / 16) % 7 == 0 {
                [0, 0, 255]
            } else {
                [
                    (x * 255 / w) as u8,
                    (y * 255 / h) as u8,
                    ((x + y) * 255 / (w + h)) as u8,
                ]
            };
            out.push(px);
        }
    }
    out
}

fn luma(p: [u8; 3]) -> f64 {
    let [r, g, b] = p.map(f64::from);
    16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0
}

fn chroma(p: [u8; 3]) -> (f64, f64) {
    let [r, g, b] = p.map(f64::from);
    (
        128.0 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0,
        128.0 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0,
    )
}

/// Reference I420 of an RGB picture (chroma: the 2x2 block's average), cropped to even size.
fn reference(rgb: &[[u8; 3]], w: usize, h: usize) -> VideoFrame {
    let (ew, eh) = (w & !1, h & !1);
    let mut f = VideoFrame::black(ew as u32, eh as u32);
    let (ylen, clen) = (ew * eh, (ew / 2) * (eh / 2));
    for y in 0..eh {
        for x in 0..ew {
            f.data[y * ew + x] = luma(rgb[y * w + x]).round() as u8;
        }
    }
    for cy in 0..eh / 2 {
        for cx in 0..ew / 2 {
            let (mut u, mut v) = (0.0, 0.0);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let (cu, cv) = chroma(rgb[(cy * 2 + dy) * w + cx * 2 + dx]);
                u += cu / 4.0;
                v += cv / 4.0;
            }
            f.data[ylen + cy * (ew / 2) + cx] = u.round() as u8;
            f.data[ylen + clen + cy * (ew / 2) + cx] = v.round() as u8;
        }
    }
    f
}

/// Largest and mean absolute difference per plane.
fn compare(got: &VideoFrame, want: &VideoFrame) -> [(u8, f64); 3] {
    assert_eq!((got.width, got.height), (want.width, want.height));
    assert!(got.is_well_formed());
    let planes = |f: &VideoFrame| [f.y().to_vec(), f.u().to_vec(), f.v().to_vec()];
    let (g, w) = (planes(got), planes(want));
    let mut out = [(0u8, 0.0); 3];
    for i in 0..3 {
        let diffs: Vec<u8> = g[i]
            .iter()
            .zip(&w[i])
            .map(|(a, b)| a.abs_diff(*b))
            .collect();
        out[i] = (
            *diffs.iter().max().unwrap(),
            diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64,
        );
    }
    out
}

fn assert_close(got: &VideoFrame, want: &VideoFrame, max: u8, what: &str) {
    let diff = compare(got, want);
    for (plane, (worst, mean)) in ["Y", "U", "V"].iter().zip(diff) {
        assert!(
            worst <= max && mean < 1.0,
            "{what}: plane {plane} differs by up to {worst} (mean {mean:.2})"
        );
    }
}

const W: usize = 98; // not a multiple of 16, and with a stride gap in some cases
const H: usize = 63; // odd: cropped to 62

fn packed(rgb: &[[u8; 3]], order: [usize; 3], alpha: bool, stride: usize) -> Vec<u8> {
    let bpp = if alpha { 4 } else { 3 };
    let mut out = vec![0xEE; stride * H];
    for y in 0..H {
        for x in 0..W {
            let p = rgb[y * W + x];
            let o = y * stride + x * bpp;
            for (i, &c) in order.iter().enumerate() {
                out[o + i] = p[c];
            }
            if alpha {
                out[o + 3] = 0x80;
            }
        }
    }
    out
}

#[test]
fn packed_rgb_formats_match_the_reference() {
    let rgb = rgb_picture(W, H);
    let want = reference(&rgb, W, H);
    for (format, order, alpha) in [
        (PixelFormat::Rgb24, [0, 1, 2], false),
        (PixelFormat::Bgr24, [2, 1, 0], false),
        (PixelFormat::Rgba, [0, 1, 2], true),
        (PixelFormat::Bgra, [2, 1, 0], true),
    ] {
        let bpp = if alpha { 4 } else { 3 };
        let stride = W * bpp + 8; // rows padded, as X11 and drivers do
        let data = packed(&rgb, order, alpha, stride);
        let pic = RawPicture {
            format,
            width: W as u32,
            height: H as u32,
            stride,
            data: &data,
        };
        let got = to_i420(&pic, Duration::from_millis(7)).unwrap();
        assert_eq!(got.pts, Duration::from_millis(7));
        assert_close(&got, &want, 3, &format!("{format:?}"));
    }
}

/// YUYV and NV12 carry YUV already: the conversion must move samples, not change them.
#[test]
fn yuyv_and_nv12_keep_the_samples() {
    let (w, h) = (W & !1, H & !1);
    let rgb = rgb_picture(w, h);
    let want = reference(&rgb, w, h);
    // Build YUYV from the reference: each row pair shares the I420 chroma row.
    let mut yuyv = vec![0u8; w * h * 2];
    let mut nv12 = vec![0u8; w * h + w * h / 2];
    let (y, u, v) = (want.y(), want.u(), want.v());
    for row in 0..h {
        for x in (0..w).step_by(2) {
            let c = (row / 2) * (w / 2) + x / 2;
            let o = row * w * 2 + x * 2;
            yuyv[o..o + 4].copy_from_slice(&[y[row * w + x], u[c], y[row * w + x + 1], v[c]]);
        }
    }
    nv12[..w * h].copy_from_slice(y);
    for (i, (a, b)) in u.iter().zip(v).enumerate() {
        nv12[w * h + 2 * i] = *a;
        nv12[w * h + 2 * i + 1] = *b;
    }
    for (format, data) in [(PixelFormat::Yuyv, &yuyv), (PixelFormat::Nv12, &nv12)] {
        let pic = RawPicture {
            format,
            width: w as u32,
            height: h as u32,
            stride: 0,
            data,
        };
        let got = to_i420(&pic, Duration::ZERO).unwrap();
        // YUYV's 4:2:2 chroma is averaged over the row pair; both rows carry the same value.
        assert_close(&got, &want, 1, &format!("{format:?}"));
    }
}

#[test]
fn mjpeg_decodes_to_the_picture() {
    let (w, h) = (W & !1, H & !1);
    let rgb = rgb_picture(w, h);
    let flat: Vec<u8> = rgb.iter().flatten().copied().collect();
    let mut jpeg = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut jpeg, 100);
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_4_4);
    enc.encode(&flat, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    let got = mjpeg_to_i420(&jpeg, Duration::ZERO).unwrap();
    let diff = compare(&got, &reference(&rgb, w, h));
    for (plane, (worst, mean)) in ["Y", "U", "V"].iter().zip(diff) {
        // JPEG is lossy even at quality 100: small errors at the hard block edges.
        assert!(
            mean < 1.5 && worst <= 24,
            "MJPEG plane {plane}: up to {worst}, mean {mean:.2}"
        );
    }
    assert!(matches!(
        mjpeg_to_i420(b"not a jpeg", Duration::ZERO),
        Err(ConvertError::Jpeg(_))
    ));
}

#[test]
fn gray_and_i420_and_bad_input() {
    let gray: Vec<u8> = (0..(W * H)).map(|i| (i % 256) as u8).collect();
    let pic = RawPicture {
        format: PixelFormat::Gray,
        width: W as u32,
        height: H as u32,
        stride: W,
        data: &gray,
    };
    let got = to_i420(&pic, Duration::ZERO).unwrap();
    assert_eq!(got.y()[0], 16);
    assert_eq!(got.y()[255], 235);
    assert!(got.u().iter().chain(got.v()).all(|&c| c == 128));

    // An odd-sized I420 picture is cropped, plane by plane.
    let src = VideoFrame {
        width: 5,
        height: 3,
        data: (0..(15 + 2 * 6)).map(|i| i as u8).collect(),
        pts: Duration::ZERO,
    };
    let pic = RawPicture {
        format: PixelFormat::I420,
        width: 5,
        height: 3,
        stride: 0,
        data: &src.data,
    };
    let got = to_i420(&pic, Duration::ZERO).unwrap();
    assert_eq!(got.y(), &[0, 1, 2, 3, 5, 6, 7, 8]);
    assert_eq!(got.u(), &[15, 16]);
    assert_eq!(got.v(), &[21, 22]);

    let short = RawPicture {
        format: PixelFormat::Bgra,
        width: 64,
        height: 64,
        stride: 0,
        data: &[0; 100],
    };
    let err = to_i420(&short, Duration::ZERO).unwrap_err();
    assert!(
        err.to_string().contains("needs 16384 bytes, got 100"),
        "{err}"
    );
    let tiny = RawPicture {
        format: PixelFormat::Rgb24,
        width: 1,
        height: 9,
        stride: 0,
        data: &[0; 27],
    };
    assert_eq!(
        to_i420(&tiny, Duration::ZERO).unwrap_err(),
        ConvertError::TooSmall(1, 9)
    );
}
