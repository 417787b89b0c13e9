//! VP8 encoding and decoding through libvpx's raw C API.
//!
//! The encoder is tuned for interactive calls the way WebRTC tunes libvpx: one pass, constant
//! bitrate, no look-ahead, error resilient, fast speed preset, and keyframes only when asked for
//! (a receiver's picture-loss indication) or after a long safety interval.

// The workspace denies unsafe code; this module is the only place that talks to libvpx over FFI,
// so it is the one exemption, and every unsafe block below says why it is sound.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::raw::{c_int, c_uint, c_ulong};
use std::time::Duration;

use vpx_sys::{
    vp8_dec_control_id, vp8e_enc_control_id, vp8e_token_partitions, vpx_codec_control_,
    vpx_codec_ctx_t, vpx_codec_cx_pkt_kind, vpx_codec_dec_cfg_t, vpx_codec_dec_init_ver,
    vpx_codec_decode, vpx_codec_destroy, vpx_codec_enc_cfg_t, vpx_codec_enc_config_default,
    vpx_codec_enc_config_set, vpx_codec_enc_init_ver, vpx_codec_encode, vpx_codec_err_t,
    vpx_codec_err_to_string, vpx_codec_error, vpx_codec_error_detail, vpx_codec_get_cx_data,
    vpx_codec_get_frame, vpx_codec_iter_t, vpx_codec_peek_stream_info, vpx_codec_stream_info_t,
    vpx_codec_vp8_cx, vpx_codec_vp8_dx, vpx_enc_frame_flags_t, vpx_enc_pass, vpx_image_t,
    vpx_img_fmt, vpx_img_wrap, vpx_kf_mode, vpx_rational, vpx_rc_mode, VPX_DECODER_ABI_VERSION,
    VPX_DL_REALTIME, VPX_EFLAG_FORCE_KF, VPX_ENCODER_ABI_VERSION, VPX_ERROR_RESILIENT_DEFAULT,
    VPX_FRAME_IS_KEY,
};

use super::{check_frame, CodecError, EncodedFrame};
use crate::frame::{plane_sizes, VideoFrame};

/// Largest picture [`Vp8Decoder`] agrees to decode, in pixels (a little over 4K UHD).
///
/// A VP8 keyframe header may announce up to 16383x16383; without a cap, one forged packet from a
/// peer would make libvpx allocate gigabytes.
pub const MAX_DECODE_PIXELS: u64 = 4096 * 2304;

/// VP8 stores dimensions in 14 bits.
const MAX_DIMENSION: u32 = 16383;
/// libvpx rejects more encoder threads than this.
const MAX_THREADS: u32 = 64;
/// Encoder timestamps use the RTP video clock so they map onto RTP timestamps one to one.
const TIMEBASE_HZ: u64 = 90_000;
/// libvpx rescales timestamps to a 10 MHz clock in signed 64-bit arithmetic, where overflow would
/// be undefined behaviour; past this bound (about 70 days at 90 kHz, a wide margin) the encoder
/// restarts its clock.
const MAX_TICKS: i64 = 1 << 39;
/// Speed preset: negative means "realtime, adapt to the deadline"; -6 is WebRTC's choice on
/// desktop x86 and meets our per-frame budget on one core (see the platform notes).
const CPU_USED: c_int = -6;

/// Settings of a [`Vp8Encoder`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vp8Config {
    /// Picture width in pixels (1..=16383).
    pub width: u32,
    /// Picture height in pixels (1..=16383).
    pub height: u32,
    /// Nominal frame rate; rate control follows the frames' real timestamps, this is only the
    /// starting estimate and the fallback when timestamps do not advance.
    pub fps: u32,
    /// Target bitrate in kbit/s.
    pub bitrate_kbps: u32,
    /// Encoder threads (0 is treated as 1, at most 64).
    pub threads: u32,
}

impl Vp8Config {
    fn validate(&self) -> Result<(), CodecError> {
        let invalid = |msg: String| Err(CodecError::Vp8InvalidConfig(msg));
        if !(1..=MAX_DIMENSION).contains(&self.width) || !(1..=MAX_DIMENSION).contains(&self.height)
        {
            return invalid(format!(
                "size {}x{} outside 1x1..={MAX_DIMENSION}x{MAX_DIMENSION}",
                self.width, self.height
            ));
        }
        if self.fps == 0 || u64::from(self.fps) > TIMEBASE_HZ {
            return invalid(format!("frame rate {} outside 1..={TIMEBASE_HZ}", self.fps));
        }
        if self.bitrate_kbps == 0 {
            return invalid("bitrate must be at least 1 kbit/s".into());
        }
        if self.threads > MAX_THREADS {
            return invalid(format!("{} threads, at most {MAX_THREADS}", self.threads));
        }
        Ok(())
    }

    /// Duration of one frame at the nominal rate, in timebase ticks.
    fn frame_ticks(&self) -> i64 {
        // validate() keeps fps in 1..=TIMEBASE_HZ, so this is at least 1 and fits easily.
        (TIMEBASE_HZ / u64::from(self.fps.max(1))) as i64
    }
}

/// An initialised libvpx codec context, destroyed on drop.
///
/// Boxed so the context never moves once libvpx has initialised it: libvpx does not promise that
/// a live context may be relocated.
struct Context(Box<vpx_codec_ctx_t>);

// SAFETY: a libvpx context has no thread affinity (no thread-locals, no callbacks registered
// here); it just must not be used from two threads at once, which `&mut self` on every method
// that touches it guarantees. It is deliberately not `Sync`.
unsafe impl Send for Context {}

impl Context {
    /// Runs one of libvpx's `*_init_ver` functions on a fresh context.
    fn init(
        init: impl FnOnce(*mut vpx_codec_ctx_t) -> vpx_codec_err_t,
    ) -> Result<Self, vpx_codec_err_t> {
        let mut ctx = Box::new(MaybeUninit::<vpx_codec_ctx_t>::zeroed());
        let err = init(ctx.as_mut_ptr());
        if err != vpx_codec_err_t::VPX_CODEC_OK {
            // libvpx already cleaned up after a failed init; there is nothing to destroy.
            return Err(err);
        }
        // SAFETY: all-zero bytes are a valid vpx_codec_ctx_t (null pointers, integer flags and
        // `err` = VPX_CODEC_OK = 0), and the successful init call has filled in the rest.
        Ok(Context(unsafe { ctx.assume_init() }))
    }

    fn as_mut_ptr(&mut self) -> *mut vpx_codec_ctx_t {
        &mut *self.0
    }

    /// libvpx's last error message for this context, with its detail when there is one.
    fn error(&mut self) -> String {
        // SAFETY: the context is initialised; vpx_codec_error returns a static NUL-terminated
        // string and vpx_codec_error_detail either null or a string owned by the context, which
        // we copy before the context can change again.
        unsafe {
            let msg = CStr::from_ptr(vpx_codec_error(self.as_mut_ptr())).to_string_lossy();
            let detail = vpx_codec_error_detail(self.as_mut_ptr());
            if detail.is_null() {
                msg.into_owned()
            } else {
                format!("{msg}: {}", CStr::from_ptr(detail).to_string_lossy())
            }
        }
    }

    /// Sets an integer-valued codec control.
    fn control(&mut self, id: c_int, value: c_int) -> Result<(), String> {
        // SAFETY: the context is initialised, and every control passed here takes a plain int as
        // its variadic argument.
        let err = unsafe { vpx_codec_control_(self.as_mut_ptr(), id, value) };
        if err == vpx_codec_err_t::VPX_CODEC_OK {
            Ok(())
        } else {
            Err(self.error())
        }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: the context was successfully initialised (Context::init only returns those) and
        // is destroyed exactly once, here.
        unsafe {
            vpx_codec_destroy(self.as_mut_ptr());
        }
    }
}

/// Static description of a libvpx error code, for failures where no context exists yet.
fn err_string(err: vpx_codec_err_t) -> String {
    // SAFETY: vpx_codec_err_to_string returns a static NUL-terminated string for any code.
    unsafe { CStr::from_ptr(vpx_codec_err_to_string(err)) }
        .to_string_lossy()
        .into_owned()
}

/// A libvpx encoder context together with the configuration it was opened with.
struct RawEncoder {
    // Declared first so the context is destroyed before the configuration it was built from.
    ctx: Context,
    /// Kept so set_bitrate can change one field and hand the whole struct back to libvpx.
    enc_cfg: Box<vpx_codec_enc_cfg_t>,
}

// SAFETY: the only pointers inside vpx_codec_enc_cfg_t are the (null) two-pass statistics
// buffers, which we never set; the context is Send (see above).
unsafe impl Send for RawEncoder {}

impl RawEncoder {
    fn new(cfg: &Vp8Config) -> Result<Self, CodecError> {
        cfg.validate()?;
        let mut raw = Box::new(MaybeUninit::<vpx_codec_enc_cfg_t>::uninit());
        // SAFETY: vpx_codec_vp8_cx returns a pointer to libvpx's static VP8 interface; the call
        // only writes to `raw`, which is valid for a whole vpx_codec_enc_cfg_t.
        let err = unsafe { vpx_codec_enc_config_default(vpx_codec_vp8_cx(), raw.as_mut_ptr(), 0) };
        if err != vpx_codec_err_t::VPX_CODEC_OK {
            return Err(CodecError::Vp8InvalidConfig(format!(
                "no default configuration: {}",
                err_string(err)
            )));
        }
        // SAFETY: on success vpx_codec_enc_config_default assigned a complete struct to `raw`.
        // (std::mem::zeroed is not an option: vpx_bit_depth has no zero variant.)
        let mut enc_cfg: Box<vpx_codec_enc_cfg_t> = unsafe { raw.assume_init() };

        enc_cfg.g_w = cfg.width;
        enc_cfg.g_h = cfg.height;
        enc_cfg.g_threads = cfg.threads.max(1);
        enc_cfg.g_timebase = vpx_rational {
            num: 1,
            den: TIMEBASE_HZ as c_int,
        };
        // Lets a receiver keep decoding after losing a frame instead of waiting for a keyframe.
        enc_cfg.g_error_resilient = VPX_ERROR_RESILIENT_DEFAULT;
        enc_cfg.g_pass = vpx_enc_pass::VPX_RC_ONE_PASS;
        // Any look-ahead is added latency on every frame.
        enc_cfg.g_lag_in_frames = 0;
        enc_cfg.rc_end_usage = vpx_rc_mode::VPX_CBR;
        enc_cfg.rc_target_bitrate = cfg.bitrate_kbps;
        // Every captured frame is encoded so the output is predictable for the pacer; congestion
        // is handled by lowering the bitrate (set_bitrate), not by skipping frames here.
        enc_cfg.rc_dropframe_thresh = 0;
        // A resize inside the encoder would change the decoded size behind the app's back.
        enc_cfg.rc_resize_allowed = 0;
        // WebRTC's realtime values: a 1 s buffer so CBR reacts within a second, a quantiser range
        // that avoids wasting bits on near-lossless frames, and undershoot allowed more than
        // overshoot because overshoot turns into queueing delay.
        enc_cfg.rc_min_quantizer = 2;
        enc_cfg.rc_max_quantizer = 56;
        enc_cfg.rc_undershoot_pct = 100;
        enc_cfg.rc_overshoot_pct = 15;
        enc_cfg.rc_buf_initial_sz = 500;
        enc_cfg.rc_buf_optimal_sz = 600;
        enc_cfg.rc_buf_sz = 1000;
        // Keyframes are requested explicitly on picture loss; the interval is only a backstop.
        enc_cfg.kf_mode = vpx_kf_mode::VPX_KF_AUTO;
        enc_cfg.kf_min_dist = 0;
        enc_cfg.kf_max_dist = 3000;

        let cfg_ptr: *const vpx_codec_enc_cfg_t = &*enc_cfg;
        let mut ctx = Context::init(|ctx| {
            // SAFETY: `ctx` points to writable zeroed memory for a context, `cfg_ptr` to a
            // complete configuration that outlives the call (libvpx copies it), and the ABI
            // version is the one the bindings were generated for.
            unsafe {
                vpx_codec_enc_init_ver(
                    ctx,
                    vpx_codec_vp8_cx(),
                    cfg_ptr,
                    0,
                    VPX_ENCODER_ABI_VERSION as c_int,
                )
            }
        })
        .map_err(|err| {
            CodecError::Vp8InvalidConfig(format!("libvpx refused it: {}", err_string(err)))
        })?;

        // Token partitions let a multi-threaded decoder work on several at once; one partition
        // is the most compact when we encode single-threaded.
        let partitions = match enc_cfg.g_threads {
            0 | 1 => vp8e_token_partitions::VP8_ONE_TOKENPARTITION,
            2..=3 => vp8e_token_partitions::VP8_TWO_TOKENPARTITION,
            4..=7 => vp8e_token_partitions::VP8_FOUR_TOKENPARTITION,
            _ => vp8e_token_partitions::VP8_EIGHT_TOKENPARTITION,
        };
        // Caps keyframes at the size of half the optimal buffer so a keyframe does not stall
        // the stream (WebRTC's formula), expressed as a percentage of an average frame.
        let max_intra_pct = (enc_cfg.rc_buf_optimal_sz / 2 * cfg.fps / 10).max(300);
        let controls = [
            (vp8e_enc_control_id::VP8E_SET_CPUUSED, CPU_USED),
            (vp8e_enc_control_id::VP8E_SET_NOISE_SENSITIVITY, 0),
            // Skips encoding of blocks that barely changed: cheap and invisible on webcams.
            (vp8e_enc_control_id::VP8E_SET_STATIC_THRESHOLD, 1),
            (
                vp8e_enc_control_id::VP8E_SET_TOKEN_PARTITIONS,
                partitions as c_int,
            ),
            (
                vp8e_enc_control_id::VP8E_SET_MAX_INTRA_BITRATE_PCT,
                max_intra_pct.min(c_int::MAX as u32) as c_int,
            ),
        ];
        for (id, value) in controls {
            ctx.control(id as c_int, value).map_err(|e| {
                CodecError::Vp8InvalidConfig(format!("control {id:?} = {value}: {e}"))
            })?;
        }
        Ok(RawEncoder { ctx, enc_cfg })
    }
}

/// A realtime VP8 encoder (libvpx, one pass CBR, no look-ahead).
///
/// Each input frame yields its compressed frame immediately; the encoder follows size changes of
/// its input by restarting itself, which starts the new size with a keyframe.
pub struct Vp8Encoder {
    raw: RawEncoder,
    cfg: Vp8Config,
    /// Capture time that maps to timestamp 0 of the current libvpx session.
    base_pts: Option<Duration>,
    /// Timestamp (in ticks) of the previous frame, to keep timestamps strictly increasing.
    last_ticks: Option<i64>,
    /// libvpx's frame-drop threshold (see [`Vp8Encoder::set_frame_dropping`]); 0 = never.
    drop_threshold: u32,
}

impl std::fmt::Debug for Vp8Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vp8Encoder")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Vp8Encoder {
    /// Opens an encoder; fails with [`CodecError::Vp8InvalidConfig`] when libvpx or our own
    /// checks reject `cfg`.
    pub fn new(cfg: Vp8Config) -> Result<Self, CodecError> {
        let raw = RawEncoder::new(&cfg)?;
        Ok(Vp8Encoder {
            raw,
            cfg,
            base_pts: None,
            last_ticks: None,
            drop_threshold: 0,
        })
    }

    /// Lets rate control skip frames when the target bitrate cannot carry every frame at the
    /// coarsest quantiser (a poor link): `threshold` is how empty (in percent) the rate
    /// control's buffer may get before a frame is dropped; libwebrtc uses 30 for VP8. A dropped
    /// frame yields no output and is never referenced, so the stream stays decodable. 0 (the
    /// default) encodes every frame.
    pub fn set_frame_dropping(&mut self, threshold: u32) -> Result<(), CodecError> {
        self.drop_threshold = threshold.min(100);
        self.apply_frame_dropping()
    }

    fn apply_frame_dropping(&mut self) -> Result<(), CodecError> {
        self.raw.enc_cfg.rc_dropframe_thresh = self.drop_threshold;
        let cfg_ptr: *const vpx_codec_enc_cfg_t = &*self.raw.enc_cfg;
        // SAFETY: as in set_bitrate: an initialised encoder and a complete configuration.
        let err = unsafe { vpx_codec_enc_config_set(self.raw.ctx.as_mut_ptr(), cfg_ptr) };
        if err != vpx_codec_err_t::VPX_CODEC_OK {
            return Err(CodecError::Vp8InvalidConfig(format!(
                "frame dropping {}: {}",
                self.drop_threshold,
                self.raw.ctx.error()
            )));
        }
        Ok(())
    }

    /// The current configuration (width and height follow the last encoded frame, the bitrate
    /// the last [`set_bitrate`](Self::set_bitrate)).
    pub fn config(&self) -> &Vp8Config {
        &self.cfg
    }

    /// Changes the target bitrate without restarting the encoder (no keyframe is produced).
    pub fn set_bitrate(&mut self, kbps: u32) -> Result<(), CodecError> {
        if kbps == 0 {
            return Err(CodecError::Vp8InvalidConfig(
                "bitrate must be at least 1 kbit/s".into(),
            ));
        }
        let previous = self.raw.enc_cfg.rc_target_bitrate;
        self.raw.enc_cfg.rc_target_bitrate = kbps;
        let cfg_ptr: *const vpx_codec_enc_cfg_t = &*self.raw.enc_cfg;
        // SAFETY: the context is an initialised encoder and `cfg_ptr` a complete configuration
        // of the same size, which libvpx copies.
        let err = unsafe { vpx_codec_enc_config_set(self.raw.ctx.as_mut_ptr(), cfg_ptr) };
        if err != vpx_codec_err_t::VPX_CODEC_OK {
            self.raw.enc_cfg.rc_target_bitrate = previous;
            return Err(CodecError::Vp8InvalidConfig(format!(
                "bitrate {kbps} kbit/s: {}",
                self.raw.ctx.error()
            )));
        }
        self.cfg.bitrate_kbps = kbps;
        Ok(())
    }

    /// Compresses one frame; `force_keyframe` answers a receiver's picture-loss indication.
    ///
    /// Returns the compressed frames libvpx produced for this input (one in practice, since
    /// there is no look-ahead; none when frame dropping is on and rate control skipped this
    /// one), each stamped with `frame.pts`.
    pub fn encode(
        &mut self,
        frame: &VideoFrame,
        force_keyframe: bool,
    ) -> Result<Vec<EncodedFrame>, CodecError> {
        check_frame(frame)?;
        if frame.width != self.cfg.width || frame.height != self.cfg.height {
            let cfg = Vp8Config {
                width: frame.width,
                height: frame.height,
                ..self.cfg.clone()
            };
            // Build the new encoder first so a refused size leaves the old one usable.
            self.raw = RawEncoder::new(&cfg)?;
            tracing::debug!(
                from = %format!("{}x{}", self.cfg.width, self.cfg.height),
                to = %format!("{}x{}", cfg.width, cfg.height),
                "VP8 encoder restarted for a new frame size"
            );
            self.cfg = cfg;
            self.base_pts = None;
            self.last_ticks = None;
            self.apply_frame_dropping()?;
        }
        let mut ticks = self.timestamp(frame.pts);
        if ticks > MAX_TICKS {
            self.raw = RawEncoder::new(&self.cfg)?;
            self.base_pts = None;
            self.last_ticks = None;
            self.apply_frame_dropping()?;
            ticks = self.timestamp(frame.pts);
        }

        let (y_len, c_len) = plane_sizes(frame.width, frame.height);
        let mut img = MaybeUninit::<vpx_image_t>::uninit();
        // SAFETY: vpx_img_wrap only fills in the descriptor `img` (it zeroes it first) and stores
        // the data pointer; the buffer is at least as large as libvpx's I420 layout for this size
        // except for odd sizes, whose plane pointers and strides we overwrite below anyway.
        let wrapped = unsafe {
            vpx_img_wrap(
                img.as_mut_ptr(),
                vpx_img_fmt::VPX_IMG_FMT_I420,
                frame.width,
                frame.height,
                1,
                frame.data.as_ptr().cast_mut(),
            )
        };
        if wrapped.is_null() {
            return Err(CodecError::Vp8Encode(format!(
                "cannot describe a {}x{} I420 image",
                frame.width, frame.height
            )));
        }
        // SAFETY: vpx_img_wrap returned non-null, so it initialised every field of `img`.
        let mut img = unsafe { img.assume_init() };
        // Our frames are tightly packed; libvpx would assume even-rounded strides for odd sizes.
        // is_well_formed guarantees exactly y_len + 2 * c_len bytes, so the splits cannot fail.
        let (y_plane, chroma) = frame.data.split_at(y_len);
        let (u_plane, v_plane) = chroma.split_at(c_len);
        img.planes[0] = y_plane.as_ptr().cast_mut();
        img.planes[1] = u_plane.as_ptr().cast_mut();
        img.planes[2] = v_plane.as_ptr().cast_mut();
        img.stride[0] = frame.width as c_int;
        img.stride[1] = frame.chroma_width() as c_int;
        img.stride[2] = frame.chroma_width() as c_int;

        let flags: vpx_enc_frame_flags_t = if force_keyframe {
            VPX_EFLAG_FORCE_KF as vpx_enc_frame_flags_t
        } else {
            0
        };
        // SAFETY: the context is an initialised encoder whose configured size equals the image's;
        // the image describes `frame.data`, which outlives the call, with in-bounds planes and
        // strides; libvpx only reads the pixels (the *mut in vpx_image_t is a C API artefact).
        let err = unsafe {
            vpx_codec_encode(
                self.raw.ctx.as_mut_ptr(),
                &img,
                ticks,
                self.cfg.frame_ticks() as c_ulong,
                flags,
                c_ulong::from(VPX_DL_REALTIME),
            )
        };
        if err != vpx_codec_err_t::VPX_CODEC_OK {
            return Err(CodecError::Vp8Encode(self.raw.ctx.error()));
        }

        let mut out = Vec::with_capacity(1);
        let mut iter: vpx_codec_iter_t = std::ptr::null();
        loop {
            // SAFETY: the context is initialised and `iter` is the iterator libvpx asked for,
            // started at null and only advanced by libvpx.
            let pkt = unsafe { vpx_codec_get_cx_data(self.raw.ctx.as_mut_ptr(), &mut iter) };
            if pkt.is_null() {
                break;
            }
            // SAFETY: a non-null packet is valid until the next call into the encoder.
            let pkt = unsafe { &*pkt };
            if pkt.kind != vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT {
                continue;
            }
            // SAFETY: for VPX_CODEC_CX_FRAME_PKT the `frame` member of the union is the live one,
            // and `buf` points to `sz` bytes owned by the encoder until the next call, which we
            // copy out now.
            let (data, flags) = unsafe {
                let f = pkt.data.frame;
                let len = usize::try_from(f.sz).unwrap_or(0);
                let data = if f.buf.is_null() || len == 0 {
                    Vec::new()
                } else {
                    std::slice::from_raw_parts(f.buf.cast::<u8>(), len).to_vec()
                };
                (data, f.flags)
            };
            out.push(EncodedFrame {
                data,
                keyframe: flags & VPX_FRAME_IS_KEY != 0,
                pts: frame.pts,
            });
        }
        Ok(out)
    }

    /// Maps a capture time to a strictly increasing encoder timestamp, so rate control sees the
    /// real frame rate; timestamps that do not advance get one nominal frame duration.
    fn timestamp(&mut self, pts: Duration) -> i64 {
        let base = *self.base_pts.get_or_insert(pts);
        let ticks = pts.checked_sub(base).map(|d| {
            let t = d.as_nanos() * u128::from(TIMEBASE_HZ) / 1_000_000_000;
            i64::try_from(t).unwrap_or(i64::MAX)
        });
        let ticks = match (ticks, self.last_ticks) {
            (Some(t), Some(last)) if t > last => t,
            (_, Some(last)) => last.saturating_add(self.cfg.frame_ticks()),
            (t, None) => t.unwrap_or(0),
        };
        self.last_ticks = Some(ticks);
        ticks
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth pattern drifting over time, plus a moving bright square, so every frame differs.
    fn pattern(width: u32, height: u32, t: u32) -> VideoFrame {
        let mut f = VideoFrame::black(width, height);
        let (y_len, c_len) = plane_sizes(width, height);
        let tf = t as f32;
        for y in 0..height {
            for x in 0..width {
                let (xf, yf) = (x as f32, y as f32);
                let mut v =
                    128.0 + 60.0 * ((xf + 4.0 * tf) / 20.0).sin() * ((yf + 2.0 * tf) / 15.0).cos();
                let sx = (t * 3) % width.max(1);
                let sy = (t * 2) % height.max(1);
                if x >= sx && x < sx + width / 8 && y >= sy && y < sy + height / 8 {
                    v = 230.0;
                }
                f.data[(y * width + x) as usize] = v as u8;
            }
        }
        let cw = width.div_ceil(2);
        for y in 0..height.div_ceil(2) {
            for x in 0..cw {
                let (xf, yf) = (x as f32, y as f32);
                let i = (y * cw + x) as usize;
                f.data[y_len + i] = (128.0 + 30.0 * ((xf + tf) / 25.0).sin()) as u8;
                f.data[y_len + c_len + i] = (128.0 + 30.0 * ((yf - tf) / 25.0).cos()) as u8;
            }
        }
        f.pts = Duration::from_millis(u64::from(t) * 1000 / 30);
        f
    }

    fn config(width: u32, height: u32, kbps: u32) -> Vp8Config {
        Vp8Config {
            width,
            height,
            fps: 30,
            bitrate_kbps: kbps,
            threads: 1,
        }
    }

    fn mean_abs_error(a: &[u8], b: &[u8]) -> f64 {
        assert_eq!(a.len(), b.len());
        let sum: u64 = a
            .iter()
            .zip(b)
            .map(|(x, y)| u64::from(x.abs_diff(*y)))
            .sum();
        sum as f64 / a.len() as f64
    }

    /// Xorshift64: deterministic and dependency-free randomness for fuzzing.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }
    }

    #[test]
    fn codec_types_are_send() {
        fn assert_send<T: Send>() {}
        assert_send::<Vp8Encoder>();
        assert_send::<Vp8Decoder>();
    }

    fn round_trip(width: u32, height: u32, kbps: u32) {
        let mut enc = Vp8Encoder::new(config(width, height, kbps)).expect("encoder");
        let mut dec = Vp8Decoder::new().expect("decoder");
        let mut errors = Vec::new();
        for t in 0..30 {
            let input = pattern(width, height, t);
            let packets = enc.encode(&input, false).expect("encode");
            assert_eq!(packets.len(), 1, "one packet per frame");
            assert_eq!(packets[0].pts, input.pts);
            let out = dec
                .decode(&packets[0].data)
                .expect("decode")
                .expect("a shown frame");
            assert_eq!((out.width, out.height), (width, height));
            assert!(out.is_well_formed());
            errors.push(mean_abs_error(input.y(), out.y()));
        }
        let mean = errors.iter().sum::<f64>() / errors.len() as f64;
        let worst = errors.iter().copied().fold(0.0, f64::max);
        assert!(
            mean < 8.0,
            "{width}x{height}: mean luma error {mean:.2} ({errors:?})"
        );
        assert!(
            worst < 15.0,
            "{width}x{height}: worst luma error {worst:.2}"
        );
    }

    #[test]
    fn round_trip_320x180() {
        round_trip(320, 180, 500);
    }

    #[test]
    fn round_trip_640x360() {
        round_trip(640, 360, 1000);
    }

    #[test]
    fn odd_sizes_round_trip() {
        let mut enc = Vp8Encoder::new(config(161, 91, 300)).expect("encoder");
        let mut dec = Vp8Decoder::new().expect("decoder");
        for t in 0..5 {
            let input = pattern(161, 91, t);
            for p in enc.encode(&input, false).expect("encode") {
                let out = dec.decode(&p.data).expect("decode").expect("frame");
                assert_eq!((out.width, out.height), (161, 91));
                assert!(out.is_well_formed());
                assert!(mean_abs_error(input.y(), out.y()) < 10.0);
            }
        }
    }

    #[test]
    fn keyframes_only_first_and_forced() {
        let mut enc = Vp8Encoder::new(config(320, 180, 500)).expect("encoder");
        for t in 0..40 {
            let forced = t == 15 || t == 31;
            let packets = enc.encode(&pattern(320, 180, t), forced).expect("encode");
            assert_eq!(packets.len(), 1);
            let expect_key = t == 0 || forced;
            assert_eq!(packets[0].keyframe, expect_key, "frame {t}");
        }
    }

    fn average_size(enc: &mut Vp8Encoder, frames: std::ops::Range<u32>) -> f64 {
        let mut total = 0usize;
        let n = frames.len();
        for t in frames {
            let (w, h) = (enc.config().width, enc.config().height);
            for p in enc.encode(&pattern(w, h, t), false).expect("encode") {
                total += p.data.len();
            }
        }
        total as f64 / n as f64
    }

    #[test]
    fn set_bitrate_changes_output_size() {
        let mut enc = Vp8Encoder::new(config(640, 360, 2000)).expect("encoder");
        average_size(&mut enc, 0..30);
        let high = average_size(&mut enc, 30..90);
        enc.set_bitrate(150).expect("set_bitrate");
        assert_eq!(enc.config().bitrate_kbps, 150);
        average_size(&mut enc, 90..120);
        let low = average_size(&mut enc, 120..180);
        // 2000 kbit/s at 30 fps is ~8.3 kB a frame, 150 kbit/s ~0.6 kB.
        assert!(
            low * 4.0 < high,
            "high {high:.0} B/frame, low {low:.0} B/frame"
        );
        assert!(enc.set_bitrate(0).is_err());
    }

    #[test]
    fn resolution_change_mid_stream() {
        let mut enc = Vp8Encoder::new(config(320, 180, 500)).expect("encoder");
        let mut dec = Vp8Decoder::new().expect("decoder");
        for (t, (w, h)) in (0..30).map(|t| {
            let size = if (10..20).contains(&t) {
                (640, 360)
            } else {
                (320, 180)
            };
            (t, size)
        }) {
            let packets = enc.encode(&pattern(w, h, t), false).expect("encode");
            assert_eq!(packets.len(), 1);
            assert_eq!(
                packets[0].keyframe,
                t == 0 || t == 10 || t == 20,
                "frame {t}"
            );
            let out = dec
                .decode(&packets[0].data)
                .expect("decode")
                .expect("frame");
            assert_eq!((out.width, out.height), (w, h), "frame {t}");
            assert_eq!((enc.config().width, enc.config().height), (w, h));
        }
    }

    #[test]
    fn malformed_frames_and_configs_are_rejected() {
        let mut enc = Vp8Encoder::new(config(320, 180, 500)).expect("encoder");
        let mut short = pattern(320, 180, 0);
        short.data.pop();
        let err = enc.encode(&short, false).expect_err("short frame");
        assert!(
            matches!(err, CodecError::MalformedVideoFrame { .. }),
            "{err}"
        );
        let empty = VideoFrame {
            width: 0,
            height: 0,
            data: Vec::new(),
            pts: Duration::ZERO,
        };
        assert!(enc.encode(&empty, false).is_err());
        // The encoder still works afterwards.
        assert_eq!(
            enc.encode(&pattern(320, 180, 1), false)
                .expect("encode")
                .len(),
            1
        );

        for bad in [
            config(0, 180, 500),
            config(320, 180, 0),
            config(20000, 16, 500),
        ] {
            let err = Vp8Encoder::new(bad).expect_err("invalid config");
            assert!(
                err.to_string()
                    .starts_with("VP8 encoder: invalid configuration: "),
                "{err}"
            );
        }
        let err = Vp8Encoder::new(Vp8Config {
            fps: 0,
            ..config(320, 180, 500)
        })
        .err();
        assert!(err.is_some());
    }

    #[test]
    fn timestamps_that_do_not_advance_still_encode() {
        let mut enc = Vp8Encoder::new(config(320, 180, 500)).expect("encoder");
        for t in 0..10 {
            let mut f = pattern(320, 180, t);
            f.pts = Duration::ZERO;
            assert_eq!(enc.encode(&f, false).expect("encode").len(), 1);
        }
    }

    /// Encodes a short stream: a keyframe followed by delta frames.
    fn sample_stream(n: u32) -> Vec<EncodedFrame> {
        let mut enc = Vp8Encoder::new(config(320, 180, 500)).expect("encoder");
        (0..n)
            .flat_map(|t| enc.encode(&pattern(320, 180, t), false).expect("encode"))
            .collect()
    }

    #[test]
    fn random_bytes_are_rejected() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut dec = Vp8Decoder::new().expect("decoder");
        assert!(dec.decode(&[]).is_err());
        for i in 0..3000 {
            let len = (rng.next() % 2048) as usize + usize::from(i % 3 == 0) * 20_000;
            let junk = rng.bytes(len);
            let result = dec.decode(&junk);
            assert!(result.is_err(), "input {i} ({len} bytes) was accepted");
        }
    }

    #[test]
    fn truncated_frames_are_rejected() {
        let stream = sample_stream(6);
        for (i, frame) in stream.iter().enumerate() {
            let full = &frame.data;
            let n = full.len();
            // Even one missing byte is detected (libvpx flags the frame as corrupt).
            for len in [0, 1, 3, 9, n / 4, n / 2, 3 * n / 4, n - 2, n - 1] {
                let mut dec = Vp8Decoder::new().expect("decoder");
                for earlier in &stream[..i] {
                    dec.decode(&earlier.data).expect("intact frame");
                }
                let result = dec.decode(&full[..len]);
                assert!(
                    result.is_err(),
                    "frame {i} truncated to {len} of {n} bytes was accepted"
                );
                // Whatever state the damage left, a keyframe repairs the decoder.
                dec.decode(&stream[0].data).expect("keyframe after damage");
            }
        }
    }

    #[test]
    fn fuzzed_frames_never_panic() {
        let stream = sample_stream(10);
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        let mut dec = Vp8Decoder::new().expect("decoder");
        let mut accepted = 0;
        for i in 0..3000 {
            let base = &stream[i % stream.len()].data;
            let mut data = base.clone();
            match rng.next() % 4 {
                0 => {
                    for _ in 0..=(rng.next() % 8) {
                        let pos = (rng.next() as usize) % data.len();
                        data[pos] ^= 1 << (rng.next() % 8);
                    }
                }
                1 => data.truncate((rng.next() as usize) % data.len()),
                2 => {
                    let len = (rng.next() % 4096) as usize;
                    data = rng.bytes(len);
                }
                _ => {
                    // Keep the 10-byte keyframe header but garble the rest.
                    let keep = data.len().min(10);
                    let tail = rng.bytes(data.len() - keep);
                    data.truncate(keep);
                    data.extend(tail);
                }
            }
            if let Ok(Some(frame)) = dec.decode(&data) {
                assert!(frame.is_well_formed());
                accepted += 1;
            }
            // Resynchronise now and then so deltas are tried against a valid reference too.
            if i % 50 == 0 {
                let _ = dec.decode(&stream[0].data);
            }
        }
        // Bit flips in the token data are undetectable in VP8, so some damaged frames decode.
        assert!(accepted < 3000);
    }

    #[test]
    fn oversized_keyframe_is_refused_before_allocation() {
        let stream = sample_stream(1);
        let mut data = stream[0].data.clone();
        // Width and height live in bytes 6..10 of a keyframe, 14 bits each.
        data[6..10].copy_from_slice(&[0xff, 0x3f, 0xff, 0x3f]);
        let mut dec = Vp8Decoder::new().expect("decoder");
        let err = dec.decode(&data).expect_err("16383x16383 keyframe");
        assert!(matches!(
            err,
            CodecError::Vp8FrameTooLarge {
                width: 16383,
                height: 16383,
                ..
            }
        ));
    }
}
