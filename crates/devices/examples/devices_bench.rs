//! Cost of the device paths per frame: pixel conversion to I420 per picture, resampling and
//! echo cancellation per 10 ms of audio, the unchanged-screen check. Prints a Markdown table.
//!
//! Run: `cargo run --release -p devices --example devices_bench`

use std::time::{Duration, Instant};

use devices::convert::{mjpeg_to_i420, to_i420, PixelFormat, RawPicture};
use devices::processing::{ProcessingSettings, VoiceProcessor};
use devices::resample::{f32_to_i16, StreamResampler};
use devices::screen::ChangeGate;
use devices::signals::{speech, EchoPath};

/// Mean time of `f` over enough runs to take ~0.5 s (at least 5).
fn time(mut f: impl FnMut()) -> Duration {
    f();
    let start = Instant::now();
    let mut n = 0u32;
    while n < 5 || start.elapsed() < Duration::from_millis(500) {
        f();
        n += 1;
    }
    start.elapsed() / n
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn picture(w: usize, h: usize, bpp: usize) -> Vec<u8> {
    (0..w * h * bpp)
        .map(|i| ((i * 7 + i / (w * bpp) * 13) % 251) as u8)
        .collect()
}

fn main() {
    println!("| what | size | per frame |");
    println!("|---|---|---|");
    for (w, h) in [(640usize, 360usize), (1280, 720), (1920, 1080)] {
        for (format, bpp) in [
            (PixelFormat::Bgra, 4),
            (PixelFormat::Rgb24, 3),
            (PixelFormat::Yuyv, 2),
        ] {
            let data = picture(w, h, bpp);
            let pic = RawPicture {
                format,
                width: w as u32,
                height: h as u32,
                stride: 0,
                data: &data,
            };
            let t = time(|| {
                let _ = to_i420(&pic, Duration::ZERO);
            });
            println!("| {format:?} -> I420 | {w}x{h} | {} |", ms(t));
        }
        let nv12 = picture(w, h * 3 / 2, 1);
        let pic = RawPicture {
            format: PixelFormat::Nv12,
            width: w as u32,
            height: h as u32,
            stride: 0,
            data: &nv12,
        };
        println!(
            "| Nv12 -> I420 | {w}x{h} | {} |",
            ms(time(|| {
                let _ = to_i420(&pic, Duration::ZERO);
            }))
        );
        // A camera-like (smooth) picture: noise would make an unrealistically large JPEG.
        let rgb: Vec<u8> = (0..w * h)
            .flat_map(|i| {
                let (x, y) = (i % w, i / w);
                [
                    (x * 255 / w) as u8,
                    (y * 255 / h) as u8,
                    ((x + y) % 256) as u8,
                ]
            })
            .collect();
        let mut jpeg = Vec::new();
        if jpeg_encoder::Encoder::new(&mut jpeg, 85)
            .encode(&rgb, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
            .is_ok()
        {
            println!(
                "| MJPEG (q85) decode -> I420 | {w}x{h} | {} |",
                ms(time(|| {
                    let _ = mjpeg_to_i420(&jpeg, Duration::ZERO);
                }))
            );
        }
        let screen = picture(w, h, 4);
        let mut gate = ChangeGate::new();
        gate.decide(&screen, Instant::now());
        println!(
            "| unchanged-screen check (BGRA compare) | {w}x{h} | {} |",
            ms(time(|| {
                let _ = gate.decide(&screen, Instant::now());
            }))
        );
    }

    println!();
    println!("| audio, per 10 ms of mono audio | per 10 ms |");
    println!("|---|---|");
    for rate in [44_100u32, 16_000, 96_000] {
        let mut r = StreamResampler::new(rate, 48_000).unwrap_or_else(|e| panic!("{e}"));
        let block = vec![0.25f32; rate as usize / 100];
        let t = time(|| {
            r.push(&block);
            let _ = r.pop_up_to(480);
        });
        println!("| resample {rate} Hz -> 48 kHz | {} |", ms(t));
    }
    let far = speech(4.0, 48_000, 120.0, 1);
    let mut room = EchoPath::laptop(48_000);
    let mic = room.process(&far);
    let far: Vec<i16> = far.iter().map(|&s| f32_to_i16(s)).collect();
    let mic: Vec<i16> = mic.iter().map(|&s| f32_to_i16(s)).collect();
    for (name, settings) in [
        (
            "echo cancellation",
            ProcessingSettings {
                echo_cancellation: true,
                noise_suppression: false,
                gain_control: false,
            },
        ),
        (
            "echo cancellation + noise suppression + gain control",
            ProcessingSettings::default(),
        ),
        (
            "noise suppression only",
            ProcessingSettings {
                echo_cancellation: false,
                noise_suppression: true,
                gain_control: false,
            },
        ),
    ] {
        let mut apm = VoiceProcessor::new(settings);
        let mut i = 0;
        let blocks = far.len() / 480;
        let t = time(|| {
            let k = (i % blocks) * 480;
            apm.render(&far[k..k + 480]);
            let mut m = mic[k..k + 480].to_vec();
            apm.capture(&mut m);
            i += 1;
        });
        println!("| {name} (render + capture) | {} |", ms(t));
    }
}
