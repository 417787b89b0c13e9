//! VP8 decoding: untrusted network input in, tightly packed I420 frames out.

// The workspace denies unsafe code; the VP8 module is the only place that talks to libvpx over
// FFI, so it is the one exemption, and every unsafe block says why it is sound.
#![allow(unsafe_code)]

use std::os::raw::{c_int, c_uint};
use std::time::Duration;

use vpx_sys::{
    vp8_dec_control_id, vpx_codec_control_, vpx_codec_dec_cfg_t, vpx_codec_dec_init_ver,
    vpx_codec_decode, vpx_codec_err_t, vpx_codec_get_frame, vpx_codec_iter_t,
    vpx_codec_peek_stream_info, vpx_codec_stream_info_t, vpx_codec_vp8_dx, vpx_image_t,
    vpx_img_fmt, VPX_DECODER_ABI_VERSION,
};

use super::context::{err_string, Context};
use crate::codec::CodecError;
use crate::frame::{plane_sizes, VideoFrame};

/// Largest picture [`Vp8Decoder`] agrees to decode, in pixels (a little over 4K UHD).
///
/// A VP8 keyframe header may announce up to 16383x16383; without a cap, one forged packet from a
/// peer would make libvpx allocate gigabytes.
pub const MAX_DECODE_PIXELS: u64 = 4096 * 2304;

/// A VP8 decoder (libvpx) that turns untrusted network input into tightly packed I420 frames.
pub struct Vp8Decoder {
    ctx: Context,
}

impl std::fmt::Debug for Vp8Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vp8Decoder").finish_non_exhaustive()
    }
}

impl Vp8Decoder {
    /// Opens a single-threaded decoder.
    pub fn new() -> Result<Self, CodecError> {
        let dec_cfg = vpx_codec_dec_cfg_t {
            threads: 1,
            w: 0,
            h: 0,
        };
        let ctx = Context::init(|ctx| {
            // SAFETY: `ctx` points to writable zeroed memory for a context, `dec_cfg` is a
            // complete configuration that libvpx copies during the call, and the ABI version is
            // the one the bindings were generated for.
            unsafe {
                vpx_codec_dec_init_ver(
                    ctx,
                    vpx_codec_vp8_dx(),
                    &dec_cfg,
                    0,
                    VPX_DECODER_ABI_VERSION as c_int,
                )
            }
        })
        .map_err(|err| CodecError::Vp8Decode(format!("cannot open: {}", err_string(err))))?;
        Ok(Vp8Decoder { ctx })
    }

    /// Decodes one compressed frame.
    ///
    /// Returns `Ok(None)` when the frame decodes but is not meant to be shown. Any damage
    /// (garbage, truncation, a delta frame whose references were damaged or never received) is
    /// an error; the caller should drop the frame and request a keyframe. The returned frame's
    /// `pts` is zero: the caller stamps it from the RTP timestamp.
    pub fn decode(&mut self, data: &[u8]) -> Result<Option<VideoFrame>, CodecError> {
        let corrupt = |msg: String| Err(CodecError::Vp8CorruptFrame(msg));
        let Some(&first) = data.first() else {
            return corrupt("empty input".into());
        };
        let Ok(len) = c_uint::try_from(data.len()) else {
            return corrupt(format!("{} bytes is not a frame", data.len()));
        };
        // Bit 0 of a VP8 frame tag clear means keyframe: check its announced size before libvpx
        // allocates buffers for it.
        if first & 1 == 0 {
            let mut si = vpx_codec_stream_info_t {
                sz: std::mem::size_of::<vpx_codec_stream_info_t>() as c_uint,
                w: 0,
                h: 0,
                is_kf: 0,
            };
            // SAFETY: the VP8 interface is static, `data` is valid for `len` bytes and `si` is a
            // properly sized, writable stream-info struct.
            let err = unsafe {
                vpx_codec_peek_stream_info(vpx_codec_vp8_dx(), data.as_ptr(), len, &mut si)
            };
            if err != vpx_codec_err_t::VPX_CODEC_OK {
                return corrupt(format!("bad keyframe header: {}", err_string(err)));
            }
            if u64::from(si.w) * u64::from(si.h) > MAX_DECODE_PIXELS {
                return Err(CodecError::Vp8FrameTooLarge {
                    width: si.w,
                    height: si.h,
                    max_pixels: MAX_DECODE_PIXELS,
                });
            }
        }

        // SAFETY: the context is an initialised decoder and `data` is valid for `len` bytes for
        // the duration of the call (libvpx does not keep the pointer: no input fragments mode).
        let err = unsafe {
            vpx_codec_decode(
                self.ctx.as_mut_ptr(),
                data.as_ptr(),
                len,
                std::ptr::null_mut(),
                0,
            )
        };
        if err != vpx_codec_err_t::VPX_CODEC_OK {
            return corrupt(self.ctx.error());
        }
        // libvpx only fails outright on damage it cannot get past; a bitstream that ends early
        // or references damaged frames is decoded anyway and merely flagged.
        let mut corrupted: c_int = 0;
        // SAFETY: VP8D_GET_FRAME_CORRUPTED takes an `int *`, which points to a live local.
        let err = unsafe {
            vpx_codec_control_(
                self.ctx.as_mut_ptr(),
                vp8_dec_control_id::VP8D_GET_FRAME_CORRUPTED as c_int,
                &mut corrupted as *mut c_int,
            )
        };
        if err == vpx_codec_err_t::VPX_CODEC_OK && corrupted != 0 {
            return corrupt("damaged bitstream or missing reference".into());
        }

        let mut iter: vpx_codec_iter_t = std::ptr::null();
        // SAFETY: the context is initialised and `iter` starts at null as libvpx requires.
        let img = unsafe { vpx_codec_get_frame(self.ctx.as_mut_ptr(), &mut iter) };
        if img.is_null() {
            return Ok(None);
        }
        // SAFETY: a non-null image stays valid until the next decode call on this context.
        let img = unsafe { &*img };
        copy_i420(img).map(Some)
    }
}

/// Copies a decoded image into a tightly packed I420 frame, honouring libvpx's padded strides.
fn copy_i420(img: &vpx_image_t) -> Result<VideoFrame, CodecError> {
    let bad = |msg: String| Err(CodecError::Vp8Decode(msg));
    if img.fmt != vpx_img_fmt::VPX_IMG_FMT_I420 {
        return bad(format!("unexpected image format {:?}", img.fmt));
    }
    let (width, height) = (img.d_w, img.d_h);
    if width == 0 || height == 0 {
        return bad(format!("empty {width}x{height} image"));
    }
    let (cw, ch) = (width.div_ceil(2) as usize, height.div_ceil(2) as usize);
    let (y_len, c_len) = plane_sizes(width, height);
    let mut data = Vec::with_capacity(y_len + 2 * c_len);
    let planes = [
        (0, width as usize, height as usize),
        (1, cw, ch),
        (2, cw, ch),
    ];
    for (plane, w, h) in planes {
        let src = img.planes[plane];
        let stride = img.stride[plane];
        if src.is_null() || stride < 0 || (stride as usize) < w {
            return bad(format!("unusable plane {plane} (stride {stride})"));
        }
        for row in 0..h {
            // SAFETY: libvpx guarantees each plane holds at least `h` rows of `stride` bytes for
            // the displayed size, and we checked stride >= w, so the row is in bounds.
            let line = unsafe { std::slice::from_raw_parts(src.add(row * stride as usize), w) };
            data.extend_from_slice(line);
        }
    }
    Ok(VideoFrame {
        width,
        height,
        data,
        pts: Duration::ZERO,
    })
}
