//! A frame number and capture time drawn into the picture itself, so a receiver can measure
//! glass-to-glass latency and spot frozen or skipped video from decoded pixels alone, with no side
//! channel that the codec or transport might reorder or strip.
//!
//! The 120-bit code (a magic byte, the 96 stamp bits and a CRC-16) is painted as a grid of
//! 40 x 3 black/white luma blocks across the top of the frame. Block edges are proportional to
//! the width (square blocks, `width / 40` pixels), so a stamp painted at 1280x720 still reads
//! after the sender scales the frame down to 640x360. Each block is read from its inner pixels
//! only and thresholded at mid-grey, which shrugs off quantisation noise, blur and ringing.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::frame::{plane_sizes, VideoFrame};

/// What a stamp carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// The sender's frame counter; gaps reveal dropped frames, repeats reveal frozen video.
    pub frame_no: u32,
    /// Wall-clock capture time in ms since the Unix epoch, so two processes on one machine (or
    /// two NTP-synced machines) can subtract it from their own [`now_ms`].
    pub capture_ms: u64,
}

/// Blocks per row; with [`ROWS`] rows this gives exactly the 120 code bits.
const COLS: u32 = 40;
/// Rows of blocks.
const ROWS: u32 = 3;
/// Code bytes: magic, frame_no (4), capture_ms (8), CRC-16 (2).
const CODE_BYTES: usize = 15;
/// Lets an unstamped frame that happens to pass the CRC (1 in 65536) still be rejected.
const MAGIC: u8 = 0xB4;
/// Below this width blocks would be under 4 pixels and the inner-pixel trick stops working.
pub const MIN_WIDTH: u32 = 160;
const BLACK: u8 = 16;
const WHITE: u8 = 235;
const MID_GREY: u32 = 128;

/// Milliseconds since the Unix epoch on the wall clock (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Height in pixels of the band at the top of the frame that [`write`] overwrites.
pub fn band_height(width: u32) -> u32 {
    edge(width, ROWS)
}

/// Paints `stamp` over the top [`band_height`] rows of `frame` (luma blocks, neutral chroma).
///
/// Frames narrower than [`MIN_WIDTH`], too short for the band, or malformed are left untouched:
/// stamping is a diagnostic, and failing a capture pipeline over it would be worse.
pub fn write(frame: &mut VideoFrame, stamp: Stamp) {
    if !fits(frame) {
        return;
    }
    let code = encode(stamp);
    let w = frame.width;
    let width = w as usize;
    let y_plane = frame.y_mut();
    for bit in 0..COLS * ROWS {
        let (row, col) = (bit / COLS, bit % COLS);
        let set = code[(bit / 8) as usize] & (0x80 >> (bit % 8)) != 0;
        let level = if set { WHITE } else { BLACK };
        let (x0, x1) = (edge(w, col) as usize, edge(w, col + 1) as usize);
        for y in edge(w, row)..edge(w, row + 1) {
            let start = y as usize * width;
            y_plane[start + x0..start + x1].fill(level);
        }
    }
    // Neutral chroma under the band keeps the blocks pure black/white (and cheap to encode).
    let (y_size, c_size) = plane_sizes(frame.width, frame.height);
    let chroma_rows = band_height(frame.width).div_ceil(2) as usize;
    let chroma_band = chroma_rows * frame.chroma_width() as usize;
    frame.data[y_size..y_size + chroma_band].fill(128);
    frame.data[y_size + c_size..y_size + c_size + chroma_band].fill(128);
}

/// Reads a stamp painted by [`write`], or `None` if the frame carries none (or it was too damaged
/// to pass the checksum).
pub fn read(frame: &VideoFrame) -> Option<Stamp> {
    if !fits(frame) {
        return None;
    }
    let mut code = [0u8; CODE_BYTES];
    let width = frame.width as usize;
    let y_plane = frame.y();
    for bit in 0..COLS * ROWS {
        let (row, col) = (bit / COLS, bit % COLS);
        let (x0, x1) = inner(edge(frame.width, col), edge(frame.width, col + 1));
        let (y0, y1) = inner(edge(frame.width, row), edge(frame.width, row + 1));
        let mut sum = 0u32;
        for y in y0..y1 {
            let start = y as usize * width;
            sum += y_plane[start + x0 as usize..start + x1 as usize]
                .iter()
                .map(|&p| u32::from(p))
                .sum::<u32>();
        }
        let count = (x1 - x0) * (y1 - y0);
        if sum > MID_GREY * count {
            code[(bit / 8) as usize] |= 0x80 >> (bit % 8);
        }
    }
    decode(&code)
}

/// Pixel offset of grid line `i`; proportional to the width so the grid survives rescaling.
fn edge(width: u32, i: u32) -> u32 {
    // u64: width * i overflows u32 only for absurd widths, but we do not trust the header.
    (u64::from(width) * u64::from(i) / u64::from(COLS)) as u32
}

/// The inner part of a block, away from edges where blur and ringing mix in the neighbours.
fn inner(start: u32, end: u32) -> (u32, u32) {
    let margin = ((end - start) / 4).max(1);
    (start + margin, end - margin)
}

fn fits(frame: &VideoFrame) -> bool {
    frame.is_well_formed() && frame.width >= MIN_WIDTH && frame.height >= band_height(frame.width)
}

fn encode(stamp: Stamp) -> [u8; CODE_BYTES] {
    let mut code = [0u8; CODE_BYTES];
    code[0] = MAGIC;
    code[1..5].copy_from_slice(&stamp.frame_no.to_be_bytes());
    code[5..13].copy_from_slice(&stamp.capture_ms.to_be_bytes());
    let crc = crc16(&code[..13]);
    code[13..15].copy_from_slice(&crc.to_be_bytes());
    code
}

fn decode(code: &[u8; CODE_BYTES]) -> Option<Stamp> {
    let crc = u16::from_be_bytes([code[13], code[14]]);
    if code[0] != MAGIC || crc != crc16(&code[..13]) {
        return None;
    }
    let mut frame_no = [0u8; 4];
    frame_no.copy_from_slice(&code[1..5]);
    let mut capture_ms = [0u8; 8];
    capture_ms.copy_from_slice(&code[5..13]);
    Some(Stamp {
        frame_no: u32::from_be_bytes(frame_no),
        capture_ms: u64::from_be_bytes(capture_ms),
    })
}

/// CRC-16/CCITT-FALSE; bitwise because it runs over 13 bytes once per frame.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc = 0xFFFFu16;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic xorshift32 so degradation tests are reproducible.
    struct Rng(u32);
    impl Rng {
        fn next(&mut self) -> u32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 17;
            self.0 ^= self.0 << 5;
            self.0
        }
    }

    /// A frame with busy content everywhere, so the stamp must stand out from it.
    fn busy_frame(width: u32, height: u32, rng: &mut Rng) -> VideoFrame {
        let mut f = VideoFrame::black(width, height);
        for p in f.data.iter_mut() {
            *p = (rng.next() >> 24) as u8;
        }
        f
    }

    fn add_noise(frame: &mut VideoFrame, amplitude: i32, rng: &mut Rng) {
        for p in frame.y_mut() {
            let noise = (rng.next() % (2 * amplitude as u32 + 1)) as i32 - amplitude;
            *p = (i32::from(*p) + noise).clamp(0, 255) as u8;
        }
    }

    fn box_blur(frame: &mut VideoFrame) {
        let (w, h) = (frame.width as i32, frame.height as i32);
        let src = frame.y().to_vec();
        let dst = frame.y_mut();
        for y in 0..h {
            for x in 0..w {
                let mut sum = 0u32;
                for dy in -1..=1 {
                    for dx in -1..=1 {
                        let (sx, sy) = ((x + dx).clamp(0, w - 1), (y + dy).clamp(0, h - 1));
                        sum += u32::from(src[(sy * w + sx) as usize]);
                    }
                }
                dst[(y * w + x) as usize] = (sum / 9) as u8;
            }
        }
    }

    fn half_size(frame: &VideoFrame) -> VideoFrame {
        let (w, h) = (frame.width / 2, frame.height / 2);
        let mut out = VideoFrame::black(w, h);
        let src = frame.y();
        let sw = frame.width as usize;
        for y in 0..h as usize {
            for x in 0..w as usize {
                let s = u32::from(src[2 * y * sw + 2 * x])
                    + u32::from(src[2 * y * sw + 2 * x + 1])
                    + u32::from(src[(2 * y + 1) * sw + 2 * x])
                    + u32::from(src[(2 * y + 1) * sw + 2 * x + 1]);
                out.y_mut()[y * w as usize + x] = (s / 4) as u8;
            }
        }
        out
    }

    fn random_stamp(rng: &mut Rng) -> Stamp {
        Stamp {
            frame_no: rng.next(),
            capture_ms: (u64::from(rng.next()) << 32) | u64::from(rng.next()),
        }
    }

    #[test]
    fn round_trips_on_clean_frames_at_many_sizes() {
        let mut rng = Rng(1);
        for (w, h) in [
            (160, 90),
            (161, 91),
            (320, 180),
            (640, 360),
            (1280, 720),
            (1920, 1080),
        ] {
            let mut f = busy_frame(w, h, &mut rng);
            let stamp = random_stamp(&mut rng);
            write(&mut f, stamp);
            assert_eq!(read(&f), Some(stamp), "{w}x{h}");
        }
    }

    #[test]
    fn survives_noise_then_blur_and_blur_then_noise() {
        let mut rng = Rng(7);
        for (w, h) in [(320, 180), (640, 360)] {
            for i in 0..20 {
                let mut f = busy_frame(w, h, &mut rng);
                let stamp = random_stamp(&mut rng);
                write(&mut f, stamp);
                if i % 2 == 0 {
                    add_noise(&mut f, 40, &mut rng);
                    box_blur(&mut f);
                } else {
                    box_blur(&mut f);
                    add_noise(&mut f, 40, &mut rng);
                }
                assert_eq!(read(&f), Some(stamp), "{w}x{h} #{i}");
            }
        }
    }

    #[test]
    fn survives_downscaling() {
        let mut rng = Rng(3);
        let mut f = busy_frame(1280, 720, &mut rng);
        let stamp = Stamp {
            frame_no: 4242,
            capture_ms: now_ms(),
        };
        write(&mut f, stamp);
        let half = half_size(&f);
        assert_eq!(read(&half), Some(stamp));
        assert_eq!(read(&half_size(&half)), Some(stamp));
    }

    #[test]
    fn unstamped_and_tiny_frames_read_as_none() {
        let mut rng = Rng(11);
        assert_eq!(read(&VideoFrame::black(640, 360)), None);
        for _ in 0..50 {
            assert_eq!(read(&busy_frame(320, 180, &mut rng)), None);
        }
        let mut tiny = VideoFrame::black(80, 45);
        let before = tiny.clone();
        write(
            &mut tiny,
            Stamp {
                frame_no: 1,
                capture_ms: 2,
            },
        );
        assert_eq!(tiny, before);
        assert_eq!(read(&tiny), None);
        let malformed = VideoFrame {
            data: vec![0; 10],
            ..VideoFrame::black(320, 180)
        };
        assert_eq!(read(&malformed), None);
    }

    #[test]
    fn a_flipped_bit_is_rejected() {
        let mut f = VideoFrame::black(320, 180);
        write(
            &mut f,
            Stamp {
                frame_no: 9,
                capture_ms: 123_456,
            },
        );
        // Invert the block holding bit 60 (row 1, column 20).
        let (x0, x1) = (edge(320, 20) as usize, edge(320, 21) as usize);
        for y in edge(320, 1)..edge(320, 2) {
            for p in &mut f.y_mut()[y as usize * 320 + x0..y as usize * 320 + x1] {
                *p = 255 - *p;
            }
        }
        assert_eq!(read(&f), None);
    }

    #[test]
    fn now_ms_is_after_2020() {
        assert!(now_ms() > 1_577_836_800_000);
    }

    /// Stamps read back after a real VP8 round trip, out of `frames`.
    fn vp8_round_trip(width: u32, height: u32, kbps: u32, frames: u32) -> u32 {
        use crate::codec::vp8::{Vp8Config, Vp8Decoder, Vp8Encoder};
        use crate::synthetic::TestPattern;
        let cfg = Vp8Config {
            width,
            height,
            fps: 30,
            bitrate_kbps: kbps,
            threads: 1,
        };
        let mut encoder = Vp8Encoder::new(cfg).unwrap();
        let mut decoder = Vp8Decoder::new().unwrap();
        let mut pattern = TestPattern::new(width, height, 30);
        let mut read_back = 0;
        for n in 0..frames {
            let stamp = Stamp {
                frame_no: n,
                capture_ms: 1_700_000_000_000 + u64::from(n) * 33,
            };
            let frame = pattern.frame_at(n, stamp.capture_ms);
            for encoded in encoder.encode(&frame, n == 0).unwrap() {
                let decoded = decoder.decode(&encoded.data).unwrap().unwrap();
                if read(&decoded) == Some(stamp) {
                    read_back += 1;
                }
            }
        }
        read_back
    }

    #[test]
    fn survives_vp8_at_320x180_300kbps() {
        assert_eq!(vp8_round_trip(320, 180, 300, 60), 60);
    }

    #[test]
    fn survives_vp8_at_other_sizes() {
        assert_eq!(vp8_round_trip(160, 90, 100, 30), 30);
        assert_eq!(vp8_round_trip(640, 360, 300, 30), 30);
    }
}
