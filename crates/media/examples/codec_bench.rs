//! Per-frame cost of the VP8, H.264 and Opus wrappers, single-threaded, printed as a markdown
//! table. The video encoders are built the way calls build them ([`VideoCodec::encoder`]).
//!
//! Run with `cargo run --release -p media --example codec_bench`. Debug builds are meaningless
//! here: libvpx itself is always optimised, but the frame copies around it are not.

use std::time::{Duration, Instant};

use media::codec::{EncoderSettings, OpusDecoder, OpusEncoder, VideoCodec};
use media::frame::plane_sizes;
use media::{AudioFrame, VideoFrame, SAMPLES_PER_FRAME, SAMPLE_RATE};

const VIDEO_FRAMES: u32 = 150;
const AUDIO_FRAMES: usize = 500;

/// A drifting smooth pattern with a moving block and a little per-pixel noise, so rate control
/// sees motion and texture roughly like a webcam picture rather than a trivially static one.
fn pattern(width: u32, height: u32, t: u32, seed: &mut u64) -> VideoFrame {
    let mut f = VideoFrame::black(width, height);
    let (y_len, c_len) = plane_sizes(width, height);
    let tf = t as f32;
    let (sx, sy) = ((t * 4) % width, (t * 2) % height);
    for y in 0..height {
        let cy = ((y as f32 + 2.0 * tf) / 15.0).cos();
        for x in 0..width {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            let noise = (*seed % 7) as f32 - 3.0;
            let mut v = 128.0 + 60.0 * ((x as f32 + 4.0 * tf) / 20.0).sin() * cy + noise;
            if x >= sx && x < sx + width / 6 && y >= sy && y < sy + height / 6 {
                v = if (x / 4 + y / 4) % 2 == 0 {
                    220.0
                } else {
                    40.0
                };
            }
            f.data[(y * width + x) as usize] = v.clamp(0.0, 255.0) as u8;
        }
    }
    let cw = width.div_ceil(2);
    for y in 0..height.div_ceil(2) {
        for x in 0..cw {
            let i = (y * cw + x) as usize;
            f.data[y_len + i] = (128.0 + 30.0 * ((x as f32 + tf) / 25.0).sin()) as u8;
            f.data[y_len + c_len + i] = (128.0 + 30.0 * ((y as f32 - tf) / 25.0).cos()) as u8;
        }
    }
    f.pts = Duration::from_micros(u64::from(t) * 1_000_000 / 30);
    f
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct VideoResult {
    enc_ms: f64,
    enc_max_ms: f64,
    dec_ms: f64,
    kbps: f64,
}

fn bench_video(
    codec: VideoCodec,
    width: u32,
    height: u32,
    kbps: u32,
) -> Result<VideoResult, Box<dyn std::error::Error>> {
    let mut enc = codec.encoder(&EncoderSettings {
        width,
        height,
        fps: 30,
        bitrate_kbps: kbps,
    })?;
    let mut dec = codec.decoder()?;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let (mut enc_total, mut enc_max, mut dec_total) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut bytes, mut decoded) = (0usize, 0u32);
    for t in 0..VIDEO_FRAMES {
        let frame = pattern(width, height, t, &mut seed);
        let start = Instant::now();
        let packets = enc.encode(&frame, false)?;
        let took = start.elapsed();
        enc_total += took;
        enc_max = enc_max.max(took);
        for p in packets {
            bytes += p.data.len();
            let start = Instant::now();
            let out = dec.decode(&p.data)?;
            dec_total += start.elapsed();
            if out.is_none() {
                return Err("decoder produced no frame".into());
            }
            decoded += 1;
        }
    }
    let n = f64::from(VIDEO_FRAMES);
    Ok(VideoResult {
        enc_ms: ms(enc_total) / n,
        enc_max_ms: ms(enc_max),
        // Per decoded frame: rate control may skip a frame, which then costs no decode.
        dec_ms: ms(dec_total) / f64::from(decoded.max(1)),
        kbps: bytes as f64 * 8.0 / (n / 30.0) / 1000.0,
    })
}

fn bench_opus(bitrate_bps: i32) -> Result<(f64, f64, f64), Box<dyn std::error::Error>> {
    let mut enc = OpusEncoder::new(bitrate_bps)?;
    let mut dec = OpusDecoder::new()?;
    let (mut enc_total, mut dec_total, mut bytes) = (Duration::ZERO, Duration::ZERO, 0usize);
    for k in 0..AUDIO_FRAMES {
        let samples = (0..SAMPLES_PER_FRAME)
            .map(|i| {
                let t = (k * SAMPLES_PER_FRAME + i) as f32 / SAMPLE_RATE as f32;
                let w = 2.0 * std::f32::consts::PI * 440.0 * t;
                (6000.0 * w.sin() + 2000.0 * (3.0 * w).sin()) as i16
            })
            .collect();
        let frame = AudioFrame {
            samples,
            pts: Duration::from_millis(k as u64 * 20),
        };
        let start = Instant::now();
        let packet = enc.encode(&frame)?;
        enc_total += start.elapsed();
        bytes += packet.len();
        let start = Instant::now();
        dec.decode(Some(&packet), frame.pts)?;
        dec_total += start.elapsed();
    }
    let n = AUDIO_FRAMES as f64;
    Ok((
        ms(enc_total) / n,
        ms(dec_total) / n,
        bytes as f64 * 8.0 / (n * 0.02) / 1000.0,
    ))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "{VIDEO_FRAMES} frames per video run (30 fps, 1 thread, as calls configure them: VP8 \
         realtime CBR cpu-used -6, H.264 OpenH264 camera real-time bitrate mode, low \
         complexity); {AUDIO_FRAMES} Opus frames of 20 ms\n"
    );
    println!("| codec | input | target | achieved | encode ms/frame (max) | decode ms/frame |");
    println!("|---|---|---|---|---|---|");
    for codec in VideoCodec::ALL {
        for (w, h, kbps) in [(640, 360, 1000), (1280, 720, 2500)] {
            let r = bench_video(codec, w, h, kbps)?;
            println!(
                "| {codec} | {w}x{h} | {kbps} kbit/s | {:.0} kbit/s | {:.2} ({:.2}) | {:.2} |",
                r.kbps, r.enc_ms, r.enc_max_ms, r.dec_ms
            );
        }
    }
    let (enc_ms, dec_ms, kbps) = bench_opus(32_000)?;
    println!(
        "| Opus | 48 kHz mono, 20 ms | 32 kbit/s | {kbps:.0} kbit/s | {enc_ms:.3} | {dec_ms:.3} |"
    );
    Ok(())
}
