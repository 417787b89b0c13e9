//! VP8 encoding, tuned for interactive calls the way WebRTC tunes libvpx: one pass, constant
//! bitrate, no look-ahead, error resilient, fast speed preset, and keyframes only when asked for
//! (a receiver's picture-loss indication) or after a long safety interval.

// The workspace denies unsafe code; the VP8 module is the only place that talks to libvpx over
// FFI, so it is the one exemption, and every unsafe block says why it is sound.
#![allow(unsafe_code)]

use std::mem::MaybeUninit;
use std::os::raw::{c_int, c_ulong};
use std::time::Duration;

use vpx_sys::{
    vp8e_enc_control_id, vp8e_token_partitions, vpx_codec_cx_pkt_kind, vpx_codec_enc_cfg_t,
    vpx_codec_enc_config_default, vpx_codec_enc_config_set, vpx_codec_enc_init_ver,
    vpx_codec_encode, vpx_codec_err_t, vpx_codec_get_cx_data, vpx_codec_iter_t, vpx_codec_vp8_cx,
    vpx_enc_frame_flags_t, vpx_enc_pass, vpx_image_t, vpx_img_fmt, vpx_img_wrap, vpx_kf_mode,
    vpx_rational, vpx_rc_mode, VPX_DL_REALTIME, VPX_EFLAG_FORCE_KF, VPX_ENCODER_ABI_VERSION,
    VPX_ERROR_RESILIENT_DEFAULT, VPX_FRAME_IS_KEY,
};

use super::context::{err_string, Context};
use crate::codec::prologue::{self, Resizable};
use crate::codec::{CodecError, EncodedFrame};
use crate::frame::{plane_sizes, VideoFrame};

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
        prologue::prepare(self, frame)?;
        let mut ticks = self.timestamp(frame.pts);
        if ticks > MAX_TICKS {
            *self = self.reopened(self.cfg.width, self.cfg.height)?;
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

impl Resizable for Vp8Encoder {
    const NAME: &'static str = "VP8";

    fn size(&self) -> (u32, u32) {
        (self.cfg.width, self.cfg.height)
    }

    fn reopened(&self, width: u32, height: u32) -> Result<Self, CodecError> {
        let mut next = Vp8Encoder::new(Vp8Config {
            width,
            height,
            ..self.cfg.clone()
        })?;
        next.set_frame_dropping(self.drop_threshold)?;
        Ok(next)
    }
}
