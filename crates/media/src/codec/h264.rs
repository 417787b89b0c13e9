//! H.264 (Constrained Baseline) encoding and decoding through OpenH264, built from source by
//! the `openh264` crate.
//!
//! H.264 is the optional codec: a call uses it only when both sides ask for it (OpenH264 built
//! from source carries no patent licence, see the platform notes). It is tuned the way a call
//! wants it, like [`super::vp8`]: real-time camera usage, bitrate rate control that may skip a
//! frame rather than overshoot, one slice per frame (the RTP payloader fragments it), no periodic
//! IDR (keyframes come when a receiver asks), and SPS/PPS repeated with every IDR so a receiver
//! that joins late can start from any keyframe.

// The workspace denies unsafe code; the one exemption here is the runtime bitrate change, which
// the safe wrapper does not offer (see `set_bitrate`).
#![allow(unsafe_code)]

use std::time::Duration;

use openh264::decoder::Decoder;
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Profile,
    RateControlMode, UsageType,
};
use openh264::formats::{YUVSlices, YUVSource};
use openh264::{OpenH264API, Timestamp};
use openh264_sys2::{
    SBitrateInfo, ENCODER_OPTION, ENCODER_OPTION_BITRATE, ENCODER_OPTION_MAX_BITRATE, LAYER_NUM,
    SPATIAL_LAYER_0, SPATIAL_LAYER_ALL,
};

use super::prologue::{self, Resizable};
use super::{CodecError, EncodedFrame};
use crate::frame::VideoFrame;

/// The largest picture the decoder accepts, as for VP8 (level 5.2's frame size).
pub const MAX_DECODE_PIXELS: u64 = super::vp8::MAX_DECODE_PIXELS;

/// OpenH264's own limit for the longer and the shorter side.
const MAX_SIDES: (u32, u32) = (3840, 2160);

/// Settings of an [`H264Encoder`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct H264Config {
    /// Picture width in pixels (up to 3840; an odd width loses its last column).
    pub width: u32,
    /// Picture height in pixels (up to 2160; an odd height loses its last row).
    pub height: u32,
    /// Nominal frame rate (rate control budgets bits per frame from it).
    pub fps: u32,
    /// Target bitrate in kbit/s.
    pub bitrate_kbps: u32,
}

impl H264Config {
    fn validate(&self) -> Result<(), CodecError> {
        let invalid = |msg: String| Err(CodecError::H264InvalidConfig(msg));
        let (long, short) = (self.width.max(self.height), self.width.min(self.height));
        if self.width < 2 || self.height < 2 || long > MAX_SIDES.0 || short > MAX_SIDES.1 {
            return invalid(format!(
                "size {}x{} outside 2x2..=3840x2160",
                self.width, self.height
            ));
        }
        if self.fps == 0 {
            return invalid("frame rate must be at least 1".into());
        }
        if self.bitrate_kbps == 0 || self.bitrate_kbps > 100_000 {
            return invalid(format!(
                "bitrate {} kbit/s outside 1..=100000",
                self.bitrate_kbps
            ));
        }
        Ok(())
    }

    fn encoder_config(&self) -> EncoderConfig {
        EncoderConfig::new()
            .bitrate(BitRate::from_bps(self.bitrate_kbps * 1000))
            .max_frame_rate(FrameRate::from_hz(self.fps as f32))
            .usage_type(UsageType::CameraVideoRealTime)
            .rate_control_mode(RateControlMode::Bitrate)
            .skip_frames(true)
            .profile(Profile::Baseline)
            .complexity(Complexity::Low)
            .intra_frame_period(IntraFramePeriod::from_num_frames(0))
            .num_threads(1)
    }
}

/// A real-time H.264 encoder.
pub struct H264Encoder {
    cfg: H264Config,
    inner: Encoder,
    base_pts: Option<Duration>,
}

impl std::fmt::Debug for H264Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Encoder")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl H264Encoder {
    /// Starts an encoder; its first frame is an IDR.
    pub fn new(mut cfg: H264Config) -> Result<Self, CodecError> {
        cfg.validate()?;
        (cfg.width, cfg.height) = <Self as Resizable>::coded_size(cfg.width, cfg.height);
        let inner = Encoder::with_api_config(OpenH264API::from_source(), cfg.encoder_config())
            .map_err(|e| CodecError::H264InvalidConfig(e.to_string()))?;
        Ok(H264Encoder {
            cfg,
            inner,
            base_pts: None,
        })
    }

    /// The current settings.
    pub fn config(&self) -> &H264Config {
        &self.cfg
    }

    /// Changes the target bitrate without restarting the encoder (no IDR is produced).
    pub fn set_bitrate(&mut self, kbps: u32) -> Result<(), CodecError> {
        if kbps == 0 || kbps > 100_000 {
            return Err(CodecError::H264InvalidConfig(format!(
                "bitrate {kbps} kbit/s outside 1..=100000"
            )));
        }
        let set = |inner: &mut Encoder, option: ENCODER_OPTION, layer: LAYER_NUM| {
            let mut info = SBitrateInfo {
                iLayer: layer,
                iBitrate: (kbps * 1000) as i32,
            };
            // SAFETY: the encoder was initialised by its constructor, both options take a
            // pointer to an `SBitrateInfo`, and `info` lives on the stack for the duration of
            // the call, which only reads it.
            let rc = unsafe {
                inner
                    .raw_api()
                    .set_option(option, (&raw mut info).cast::<std::ffi::c_void>())
            };
            if rc == 0 {
                Ok(())
            } else {
                Err(CodecError::H264InvalidConfig(format!(
                    "bitrate {kbps} kbit/s refused (code {rc})"
                )))
            }
        };
        // OpenH264 checks the layer's target against the layer's ceiling (set to the starting
        // target): going up, raise the ceilings first; going down, lower the target first.
        let ceilings = |inner: &mut Encoder| {
            set(inner, ENCODER_OPTION_MAX_BITRATE, SPATIAL_LAYER_0)?;
            set(inner, ENCODER_OPTION_MAX_BITRATE, SPATIAL_LAYER_ALL)
        };
        if kbps > self.cfg.bitrate_kbps {
            ceilings(&mut self.inner)?;
            set(&mut self.inner, ENCODER_OPTION_BITRATE, SPATIAL_LAYER_ALL)?;
        } else {
            set(&mut self.inner, ENCODER_OPTION_BITRATE, SPATIAL_LAYER_ALL)?;
            ceilings(&mut self.inner)?;
        }
        self.cfg.bitrate_kbps = kbps;
        Ok(())
    }

    /// Compresses one frame; `force_keyframe` answers a receiver's picture-loss indication.
    ///
    /// Returns the Annex B bitstream of the frame (an IDR carries its SPS and PPS), or nothing
    /// when rate control skipped it. A new frame size restarts the stream with an IDR.
    pub fn encode(
        &mut self,
        frame: &VideoFrame,
        force_keyframe: bool,
    ) -> Result<Vec<EncodedFrame>, CodecError> {
        prologue::prepare(self, frame)?;
        let (w, h) = (self.cfg.width, self.cfg.height);
        if force_keyframe {
            self.inner.force_intra_frame();
        }
        let base = *self.base_pts.get_or_insert(frame.pts);
        let ms = frame.pts.saturating_sub(base).as_millis();
        let timestamp = Timestamp::from_millis(u64::try_from(ms).unwrap_or(u64::MAX));
        // The even-sized top-left of the frame, read in place through the frame's own strides.
        let (stride, cstride) = (frame.width as usize, frame.chroma_width() as usize);
        let (rows, crows) = (h as usize, h as usize / 2);
        let yuv = YUVSlices::new(
            (
                &frame.y()[..stride * rows],
                &frame.u()[..cstride * crows],
                &frame.v()[..cstride * crows],
            ),
            (w as usize, h as usize),
            (stride, cstride, cstride),
        );
        let stream = self
            .inner
            .encode_at(&yuv, timestamp)
            .map_err(|e| CodecError::H264Encode(e.to_string()))?;
        let keyframe = match stream.frame_type() {
            FrameType::Skip | FrameType::Invalid => return Ok(Vec::new()),
            FrameType::IDR => true,
            FrameType::I | FrameType::P | FrameType::IPMixed => false,
        };
        let data = stream.to_vec();
        if data.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![EncodedFrame {
            data,
            keyframe,
            pts: frame.pts,
        }])
    }
}

impl Resizable for H264Encoder {
    const NAME: &'static str = "H.264";

    /// 4:2:0 H.264 codes whole chroma samples: an odd size is cropped to even.
    fn coded_size(width: u32, height: u32) -> (u32, u32) {
        (width & !1, height & !1)
    }

    fn size(&self) -> (u32, u32) {
        (self.cfg.width, self.cfg.height)
    }

    fn reopened(&self, width: u32, height: u32) -> Result<Self, CodecError> {
        H264Encoder::new(H264Config {
            width,
            height,
            ..self.cfg.clone()
        })
    }
}

/// An H.264 decoder producing I420 frames.
pub struct H264Decoder {
    inner: Decoder,
}

impl std::fmt::Debug for H264Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Decoder").finish_non_exhaustive()
    }
}

impl H264Decoder {
    /// A decoder waiting for its first IDR.
    pub fn new() -> Result<Self, CodecError> {
        let inner = Decoder::new().map_err(|e| CodecError::H264Decode(e.to_string()))?;
        Ok(H264Decoder { inner })
    }

    /// Decodes one access unit (Annex B: start codes between NAL units).
    ///
    /// Returns `Ok(None)` when the input holds no picture (parameter sets only). Damage is an
    /// error: the caller drops the frame and asks for a keyframe. The frame's `pts` is zero: the
    /// caller stamps it from the RTP timestamp.
    pub fn decode(&mut self, data: &[u8]) -> Result<Option<VideoFrame>, CodecError> {
        if data.is_empty() {
            return Err(CodecError::H264CorruptFrame("empty input".into()));
        }
        let decoded = self
            .inner
            .decode(data)
            .map_err(|e| CodecError::H264CorruptFrame(e.to_string()))?;
        let Some(yuv) = decoded else {
            return Ok(None);
        };
        let (w, h) = yuv.dimensions();
        let (width, height) = (
            u32::try_from(w).unwrap_or(u32::MAX),
            u32::try_from(h).unwrap_or(u32::MAX),
        );
        if u64::from(width) * u64::from(height) > MAX_DECODE_PIXELS || w == 0 || h == 0 {
            return Err(CodecError::H264FrameTooLarge {
                width,
                height,
                max_pixels: MAX_DECODE_PIXELS,
            });
        }
        let (ys, us, vs) = yuv.strides();
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut out = VideoFrame::black(width, height);
        let planes = [
            (yuv.y(), ys, w, h, 0),
            (yuv.u(), us, cw, ch, w * h),
            (yuv.v(), vs, cw, ch, w * h + cw * ch),
        ];
        for (src, stride, pw, ph, offset) in planes {
            // OpenH264 hands out planes of `stride` bytes per row; a plane shorter than its
            // rows would be a decoder bug, reported rather than read past.
            if stride < pw || src.len() < stride * (ph - 1) + pw {
                return Err(CodecError::H264CorruptFrame(format!(
                    "decoder returned a {w}x{h} picture with short planes"
                )));
            }
            for row in 0..ph {
                let from = &src[row * stride..row * stride + pw];
                let at = offset + row * pw;
                out.data[at..at + pw].copy_from_slice(from);
            }
        }
        Ok(Some(out))
    }
}

/// Whether an Annex B access unit starts a new picture chain: it holds an IDR slice (type 5).
/// Junk gives false, never a panic.
pub fn is_keyframe(data: &[u8]) -> bool {
    nal_types(data).any(|t| t == 5)
}

/// The NAL unit types of an Annex B stream, in order.
fn nal_types(data: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        // Find the next 00 00 01 (a 4-byte start code ends with the same three bytes).
        while i + 3 < data.len() {
            if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
                let header = data[i + 3];
                i += 4;
                return Some(header & 0x1f);
            }
            i += 1;
        }
        None
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is the failure report
mod tests {
    use super::*;
    use crate::stamp;
    use crate::synthetic::TestPattern;

    /// Frames of the moving test pattern, numbered from 0, without pacing.
    struct Frames(TestPattern, u32);

    impl Frames {
        fn new(w: u32, h: u32) -> Self {
            Frames(TestPattern::new(w, h, 30), 0)
        }

        fn next_frame(&mut self) -> Result<VideoFrame, ()> {
            self.1 += 1;
            Ok(self
                .0
                .frame_at(self.1 - 1, 1_000_000 + u64::from(self.1) * 33))
        }
    }

    fn config(w: u32, h: u32) -> H264Config {
        H264Config {
            width: w,
            height: h,
            fps: 30,
            bitrate_kbps: 600,
        }
    }

    #[test]
    fn frames_survive_a_round_trip_with_their_stamp() {
        let mut source = Frames::new(320, 180);
        let mut enc = H264Encoder::new(config(320, 180)).unwrap();
        let mut dec = H264Decoder::new().unwrap();
        let mut decoded = 0;
        for i in 0..30 {
            let frame = source.next_frame().unwrap();
            let out = enc.encode(&frame, false).unwrap();
            for (n, e) in out.iter().enumerate() {
                assert_eq!(
                    e.keyframe,
                    i == 0 && n == 0,
                    "only the first frame is an IDR"
                );
                assert_eq!(is_keyframe(&e.data), e.keyframe);
                let picture = dec.decode(&e.data).unwrap().unwrap();
                assert_eq!((picture.width, picture.height), (320, 180));
                assert!(picture.is_well_formed());
                let read = stamp::read(&picture).expect("the stamp survives H.264");
                assert_eq!(read.frame_no, stamp::read(&frame).unwrap().frame_no);
                decoded += 1;
            }
        }
        assert!(decoded >= 25, "only {decoded} of 30 frames came out");
    }

    #[test]
    fn a_forced_keyframe_is_an_idr_a_late_decoder_can_start_from() {
        let mut source = Frames::new(160, 96);
        let mut enc = H264Encoder::new(config(160, 96)).unwrap();
        for _ in 0..5 {
            enc.encode(&source.next_frame().unwrap(), false).unwrap();
        }
        let idr = enc.encode(&source.next_frame().unwrap(), true).unwrap();
        assert!(idr[0].keyframe);
        // Parameter sets travel with every IDR: a decoder that saw nothing before decodes it.
        let mut late = H264Decoder::new().unwrap();
        assert!(late.decode(&idr[0].data).unwrap().is_some());
    }

    /// A peer that connects asks for a keyframe right after the stream's first IDR: rate
    /// control, still paying for that IDR, must not skip the requested one (it would cost the
    /// joiner a frame interval).
    #[test]
    fn a_keyframe_asked_for_right_after_the_first_comes_at_once() {
        let mut source = Frames::new(640, 360);
        let mut enc = H264Encoder::new(H264Config {
            bitrate_kbps: 300,
            ..config(640, 360)
        })
        .unwrap();
        assert!(enc.encode(&source.next_frame().unwrap(), false).unwrap()[0].keyframe);
        for _ in 0..3 {
            let out = enc.encode(&source.next_frame().unwrap(), true).unwrap();
            assert!(
                out.first().is_some_and(|e| e.keyframe),
                "the IDR was skipped"
            );
        }
    }

    #[test]
    fn the_bitrate_changes_live_and_steers_the_size() {
        let mut source = Frames::new(320, 180);
        let mut enc = H264Encoder::new(config(320, 180)).unwrap();
        let mut bytes = |enc: &mut H264Encoder, n: usize| -> usize {
            (0..n)
                .flat_map(|_| enc.encode(&source.next_frame().unwrap(), false).unwrap())
                .filter(|e| !e.keyframe)
                .map(|e| e.data.len())
                .sum()
        };
        bytes(&mut enc, 30);
        enc.set_bitrate(1500).unwrap();
        let high = bytes(&mut enc, 60);
        enc.set_bitrate(100).unwrap();
        bytes(&mut enc, 30);
        let low = bytes(&mut enc, 60);
        eprintln!("non-IDR bytes over 60 frames: {high} at 1500 kbit/s, {low} at 100 kbit/s");
        assert!(
            low * 2 < high,
            "100 kbit/s gave {low} bytes, 1500 gave {high}"
        );
        assert!(enc.set_bitrate(0).is_err());
    }

    #[test]
    fn a_new_size_restarts_with_an_idr() {
        let mut enc = H264Encoder::new(config(160, 96)).unwrap();
        let mut small = Frames::new(160, 96);
        let mut big = Frames::new(320, 180);
        enc.encode(&small.next_frame().unwrap(), false).unwrap();
        enc.encode(&small.next_frame().unwrap(), false).unwrap();
        let out = enc.encode(&big.next_frame().unwrap(), false).unwrap();
        assert!(out[0].keyframe);
        let mut dec = H264Decoder::new().unwrap();
        let picture = dec.decode(&out[0].data).unwrap().unwrap();
        assert_eq!((picture.width, picture.height), (320, 180));
    }

    #[test]
    fn an_odd_size_is_cropped_to_even() {
        let mut enc = H264Encoder::new(config(161, 97)).unwrap();
        let mut odd = Frames::new(161, 97);
        let out = enc.encode(&odd.next_frame().unwrap(), false).unwrap();
        let picture = H264Decoder::new()
            .unwrap()
            .decode(&out[0].data)
            .unwrap()
            .unwrap();
        assert_eq!((picture.width, picture.height), (160, 96));
        // The same size again does not restart the encoder.
        let out = enc.encode(&odd.next_frame().unwrap(), false).unwrap();
        assert!(out.iter().all(|e| !e.keyframe));
    }

    #[test]
    fn bad_settings_and_frames_are_refused_in_words() {
        for bad in [config(0, 90), config(1, 96), config(4000, 100)] {
            let e = H264Encoder::new(bad).unwrap_err();
            assert!(e.to_string().contains("size"), "{e}");
        }
        let e = H264Encoder::new(H264Config {
            fps: 0,
            ..config(160, 96)
        })
        .unwrap_err();
        assert!(e.to_string().contains("frame rate"), "{e}");
        let mut enc = H264Encoder::new(config(160, 96)).unwrap();
        let mut frame = VideoFrame::black(160, 96);
        frame.data.truncate(100);
        assert!(matches!(
            enc.encode(&frame, false),
            Err(CodecError::MalformedVideoFrame { .. })
        ));
    }

    #[test]
    fn garbage_and_truncation_are_errors_not_crashes() {
        let mut source = Frames::new(160, 96);
        let mut enc = H264Encoder::new(config(160, 96)).unwrap();
        let idr = enc.encode(&source.next_frame().unwrap(), false).unwrap();
        let mut dec = H264Decoder::new().unwrap();
        assert!(dec.decode(&[]).is_err());
        // Random bytes, with and without start codes, and a truncated IDR: whatever OpenH264
        // makes of them, it answers (an error or no picture) instead of crashing.
        let mut seed = 0x1234_5678_u32;
        for round in 0..200 {
            let len = 1 + (round * 37) % 3000;
            let mut junk: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    (seed >> 24) as u8
                })
                .collect();
            if round % 2 == 0 {
                junk.splice(0..0, [0, 0, 0, 1]);
            }
            let _ = dec.decode(&junk);
            assert!(!is_keyframe(&junk[..junk.len().min(3)]));
        }
        let half = &idr[0].data[..idr[0].data.len() / 2];
        let mut fresh = H264Decoder::new().unwrap();
        let _ = fresh.decode(half);
        // After all that, a real IDR still decodes.
        let idr = enc.encode(&source.next_frame().unwrap(), true).unwrap();
        assert!(dec.decode(&idr[0].data).unwrap().is_some());
    }
}
