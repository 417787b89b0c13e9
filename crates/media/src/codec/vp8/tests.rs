//! VP8 through both ends: what the encoder makes, the decoder reads back, and what the network
//! may do to it in between (loss, truncation, forged headers) the decoder survives.

use std::time::Duration;

use super::{Vp8Config, Vp8Decoder, Vp8Encoder};
use crate::codec::{CodecError, EncodedFrame};
use crate::frame::{plane_sizes, VideoFrame};

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
