//! Pixel formats cameras and screens deliver, converted to the I420 the encoders take.
//!
//! Every conversion produces BT.601 limited-range I420 (what the synthetic sources and the VP8
//! path use). Packed RGB/BGR(A) and YUYV go through the `yuv` crate (SIMD; ~0.05-0.09 ms for
//! 360p); NV12 and grey are plain plane copies; MJPEG is decoded by `zune-jpeg` (pure Rust) first.
//! Odd sizes are cropped to even ones (one column or row less): the codecs want even sizes and a
//! 4:2:0 chroma sample must cover whole 2x2 blocks.

use std::time::Duration;

use media::frame::plane_sizes;
use media::VideoFrame;
use yuv::{
    BufferStoreMut, YuvConversionMode, YuvPackedImage, YuvPlanarImageMut, YuvRange,
    YuvStandardMatrix,
};

/// A pixel layout a capture device may deliver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelFormat {
    /// Packed 4:2:2, Y0 U Y1 V (most USB webcams' uncompressed mode).
    Yuyv,
    /// Y plane then interleaved UV at half resolution.
    Nv12,
    /// Planar 4:2:0 already.
    I420,
    /// 8-bit luma only.
    Gray,
    /// Packed R, G, B.
    Rgb24,
    /// Packed B, G, R.
    Bgr24,
    /// Packed B, G, R, A (X11 and most screen capture).
    Bgra,
    /// Packed R, G, B, A.
    Rgba,
    /// A JPEG per frame (webcams at high resolutions).
    Mjpeg,
}

impl PixelFormat {
    /// Bytes per pixel of a packed format's row (0 for planar and compressed ones).
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            PixelFormat::Yuyv => 2,
            PixelFormat::Rgb24 | PixelFormat::Bgr24 => 3,
            PixelFormat::Bgra | PixelFormat::Rgba => 4,
            PixelFormat::Gray => 1,
            PixelFormat::Nv12 | PixelFormat::I420 | PixelFormat::Mjpeg => 0,
        }
    }

    /// How costly converting this format is (lower is cheaper): used to prefer formats that
    /// avoid work when a camera offers several at the wanted size.
    pub fn conversion_cost(self) -> u32 {
        match self {
            PixelFormat::I420 => 0,
            PixelFormat::Nv12 | PixelFormat::Gray => 1,
            PixelFormat::Yuyv => 2,
            PixelFormat::Rgb24 | PixelFormat::Bgr24 | PixelFormat::Bgra | PixelFormat::Rgba => 3,
            PixelFormat::Mjpeg => 10,
        }
    }
}

/// Why a picture could not be converted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConvertError {
    /// The buffer is smaller than the size and format say.
    #[error("a {format:?} picture of {width}x{height} needs {needed} bytes, got {got}")]
    ShortBuffer {
        format: PixelFormat,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        needed: usize,
        got: usize,
    },
    /// The picture is too small to encode (under 2x2).
    #[error("a {0}x{1} picture is too small")]
    TooSmall(u32, u32),
    /// A JPEG frame could not be decoded.
    #[error("undecodable MJPEG frame: {0}")]
    Jpeg(String),
    /// The conversion library refused the layout.
    #[error("conversion failed: {0}")]
    Library(String),
}

/// A captured picture in a device's own layout.
#[derive(Clone, Copy, Debug)]
pub struct RawPicture<'a> {
    pub format: PixelFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per row of a packed format (0: tightly packed). Ignored for planar and MJPEG.
    pub stride: usize,
    pub data: &'a [u8],
}

/// Converts `pic` to an I420 frame stamped `pts`, cropping odd sizes to even.
pub fn to_i420(pic: &RawPicture<'_>, pts: Duration) -> Result<VideoFrame, ConvertError> {
    if pic.format == PixelFormat::Mjpeg {
        return mjpeg_to_i420(pic.data, pts);
    }
    let (w, h) = (pic.width & !1, pic.height & !1);
    if w < 2 || h < 2 {
        return Err(ConvertError::TooSmall(pic.width, pic.height));
    }
    let stride = match pic.stride {
        0 => pic.width as usize * pic.format.bytes_per_pixel(),
        s => s,
    };
    let needed = match pic.format {
        PixelFormat::Nv12 => {
            pic.width as usize * pic.height as usize + 2 * chroma_len(pic.width, pic.height)
        }
        PixelFormat::I420 => {
            let (y, c) = plane_sizes(pic.width, pic.height);
            y + 2 * c
        }
        _ => stride * (pic.height as usize - 1) + pic.width as usize * pic.format.bytes_per_pixel(),
    };
    if pic.data.len() < needed {
        return Err(ConvertError::ShortBuffer {
            format: pic.format,
            width: pic.width,
            height: pic.height,
            needed,
            got: pic.data.len(),
        });
    }
    let mut frame = VideoFrame::black(w, h);
    frame.pts = pts;
    match pic.format {
        PixelFormat::Nv12 => nv12(pic, &mut frame),
        PixelFormat::I420 => i420_crop(pic, &mut frame),
        PixelFormat::Gray => gray(pic, stride, &mut frame),
        PixelFormat::Yuyv => {
            let packed = YuvPackedImage {
                yuy: pic.data,
                yuy_stride: stride as u32,
                width: w,
                height: h,
            };
            with_planes(&mut frame, |img| yuv::yuyv422_to_yuv420(img, &packed))?;
        }
        packed => {
            let f = match packed {
                PixelFormat::Rgb24 => yuv::rgb_to_yuv420,
                PixelFormat::Bgr24 => yuv::bgr_to_yuv420,
                PixelFormat::Rgba => yuv::rgba_to_yuv420,
                _ => yuv::bgra_to_yuv420,
            };
            with_planes(&mut frame, |img| {
                f(
                    img,
                    pic.data,
                    stride as u32,
                    YuvRange::Limited,
                    YuvStandardMatrix::Bt601,
                    YuvConversionMode::Balanced,
                )
            })?;
        }
    }
    Ok(frame)
}

fn chroma_len(width: u32, height: u32) -> usize {
    width.div_ceil(2) as usize * height.div_ceil(2) as usize
}

/// Runs a `yuv` conversion writing straight into `frame`'s three planes.
fn with_planes(
    frame: &mut VideoFrame,
    convert: impl FnOnce(&mut YuvPlanarImageMut<'_, u8>) -> Result<(), yuv::YuvError>,
) -> Result<(), ConvertError> {
    let (w, h) = (frame.width, frame.height);
    let (ylen, clen) = plane_sizes(w, h);
    let (y, rest) = frame.data.split_at_mut(ylen);
    let (u, v) = rest.split_at_mut(clen);
    let mut img = YuvPlanarImageMut {
        y_plane: BufferStoreMut::Borrowed(y),
        y_stride: w,
        u_plane: BufferStoreMut::Borrowed(u),
        u_stride: w / 2,
        v_plane: BufferStoreMut::Borrowed(v),
        v_stride: w / 2,
        width: w,
        height: h,
    };
    convert(&mut img).map_err(|e| ConvertError::Library(e.to_string()))
}

fn nv12(pic: &RawPicture<'_>, frame: &mut VideoFrame) {
    let (sw, sh) = (pic.width as usize, pic.height as usize);
    let (w, h) = (frame.width as usize, frame.height as usize);
    let (ylen, clen) = plane_sizes(frame.width, frame.height);
    let src_uv = &pic.data[sw * sh..];
    let src_cw = sw.div_ceil(2);
    let (y, rest) = frame.data.split_at_mut(ylen);
    let (u, v) = rest.split_at_mut(clen);
    for row in 0..h {
        y[row * w..(row + 1) * w].copy_from_slice(&pic.data[row * sw..row * sw + w]);
    }
    let cw = w / 2;
    for row in 0..h / 2 {
        let src = &src_uv[row * src_cw * 2..row * src_cw * 2 + cw * 2];
        for (i, pair) in src.chunks_exact(2).enumerate() {
            u[row * cw + i] = pair[0];
            v[row * cw + i] = pair[1];
        }
    }
}

fn i420_crop(pic: &RawPicture<'_>, frame: &mut VideoFrame) {
    let (sw, sh) = (pic.width as usize, pic.height as usize);
    let (w, h) = (frame.width as usize, frame.height as usize);
    let (scw, sch) = (sw.div_ceil(2), sh.div_ceil(2));
    let (ylen, clen) = plane_sizes(frame.width, frame.height);
    let cw = w / 2;
    for row in 0..h {
        frame.data[row * w..(row + 1) * w].copy_from_slice(&pic.data[row * sw..row * sw + w]);
    }
    for plane in 0..2 {
        let src = &pic.data[sw * sh + plane * scw * sch..];
        let dst = &mut frame.data[ylen + plane * clen..];
        for row in 0..h / 2 {
            dst[row * cw..(row + 1) * cw].copy_from_slice(&src[row * scw..row * scw + cw]);
        }
    }
}

fn gray(pic: &RawPicture<'_>, stride: usize, frame: &mut VideoFrame) {
    let w = frame.width as usize;
    for row in 0..frame.height as usize {
        let src = &pic.data[row * stride..row * stride + w];
        for (d, &s) in frame.data[row * w..(row + 1) * w].iter_mut().zip(src) {
            // Full-range grey to limited-range luma.
            *d = (16 + (u32::from(s) * 219 + 127) / 255) as u8;
        }
    }
}

/// Decodes one MJPEG frame (a baseline JPEG) and converts it to I420.
pub fn mjpeg_to_i420(jpeg: &[u8], pts: Duration) -> Result<VideoFrame, ConvertError> {
    use zune_jpeg::zune_core::bytestream::ZCursor;
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;
    let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(jpeg), options);
    let rgb = decoder
        .decode()
        .map_err(|e| ConvertError::Jpeg(e.to_string()))?;
    let (w, h) = decoder
        .dimensions()
        .ok_or_else(|| ConvertError::Jpeg("no picture size in the header".into()))?;
    to_i420(
        &RawPicture {
            format: PixelFormat::Rgb24,
            width: w as u32,
            height: h as u32,
            stride: 0,
            data: &rgb,
        },
        pts,
    )
}
