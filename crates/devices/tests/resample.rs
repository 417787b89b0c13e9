//! Device rates to 48 kHz: a sine keeps its frequency and level, and the stream is continuous
//! across device chunks of any size and across 960-sample frame borders (no clicks).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::f64::consts::PI;

use devices::events::EventSender;
use devices::mic::{InputChunk, MicControl, MicPipeline};
use devices::resample::StreamResampler;

const F: f64 = 1000.0;
const AMP: f64 = 0.5;

fn sine(rate: u32, n: usize, channels: usize) -> Vec<f32> {
    (0..n)
        .flat_map(|i| {
            let s = (AMP * (2.0 * PI * F * i as f64 / f64::from(rate)).sin()) as f32;
            std::iter::repeat_n(s, channels)
        })
        .collect()
}

/// Least-squares fit of `a*sin + b*cos` at frequency `f`: (amplitude, worst residual, rms residual).
fn fit(x: &[f64], f: f64, rate: f64) -> (f64, f64, f64) {
    let (mut ss, mut cc, mut sc, mut xs, mut xc) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (i, &v) in x.iter().enumerate() {
        let w = 2.0 * PI * f * i as f64 / rate;
        let (s, c) = (w.sin(), w.cos());
        ss += s * s;
        cc += c * c;
        sc += s * c;
        xs += v * s;
        xc += v * c;
    }
    let det = ss * cc - sc * sc;
    let a = (xs * cc - xc * sc) / det;
    let b = (xc * ss - xs * sc) / det;
    let mut worst: f64 = 0.0;
    let mut energy = 0.0;
    for (i, &v) in x.iter().enumerate() {
        let w = 2.0 * PI * f * i as f64 / rate;
        let r = v - (a * w.sin() + b * w.cos());
        worst = worst.max(r.abs());
        energy += r * r;
    }
    (
        (a * a + b * b).sqrt(),
        worst,
        (energy / x.len() as f64).sqrt(),
    )
}

/// Frequency from the number of rising zero crossings.
fn frequency(x: &[f64], rate: f64) -> f64 {
    let ups: Vec<usize> = (1..x.len())
        .filter(|&i| x[i - 1] < 0.0 && x[i] >= 0.0)
        .collect();
    let (first, last) = (ups[0], ups[ups.len() - 1]);
    (ups.len() - 1) as f64 * rate / (last - first) as f64
}

const CHUNKS: [usize; 6] = [441, 512, 17, 1024, 333, 960];

#[test]
fn sine_survives_44k1_16k_96k_to_48k() {
    for rate in [44_100u32, 16_000, 96_000, 48_000] {
        let input = sine(rate, rate as usize * 2, 1);
        let mut r = StreamResampler::new(rate, 48_000).unwrap();
        let mut out = Vec::new();
        let mut pos = 0;
        for &n in CHUNKS.iter().cycle() {
            if pos >= input.len() {
                break;
            }
            let end = (pos + n).min(input.len());
            r.push(&input[pos..end]);
            pos = end;
            while let Some(frame) = r.pop(960) {
                out.extend(frame.into_iter().map(f64::from));
            }
        }
        // Two seconds in, at least 1.9 s out (the converter holds back a block).
        assert!(
            out.len() >= 48_000 * 19 / 10,
            "{rate}: only {} samples",
            out.len()
        );
        let steady = &out[4_800..]; // past the filter's start-up
        let f = frequency(steady, 48_000.0);
        let (amp, worst, rms) = fit(steady, F, 48_000.0);
        assert!((f - F).abs() < 0.5, "{rate}: frequency {f:.2} Hz");
        assert!(
            (amp / AMP - 1.0).abs() < 0.01,
            "{rate}: level changed by {:.3} dB",
            20.0 * (amp / AMP).log10()
        );
        // Residual below -60 dB of the tone everywhere: no click at any chunk or frame border.
        assert!(
            worst < AMP * 1e-3 && rms < AMP * 3e-4,
            "{rate}: residual worst {worst:.2e}, rms {rms:.2e}"
        );
    }
}

#[test]
fn microphone_pipeline_makes_exact_frames_from_stereo_device_chunks() {
    let control = MicControl::new(None);
    let mut mic = MicPipeline::new(control.clone(), EventSender::new());
    let rate = 44_100;
    let input = sine(rate, rate as usize, 2);
    let mut frames = Vec::new();
    let mut pos = 0;
    for &n in CHUNKS.iter().cycle() {
        if pos >= input.len() {
            break;
        }
        let end = (pos + 2 * n).min(input.len());
        mic.push(&InputChunk {
            rate,
            channels: 2,
            samples: input[pos..end].to_vec(),
        })
        .unwrap();
        pos = end;
        while let Some(f) = mic.pop() {
            frames.push(f);
        }
    }
    assert!(frames.len() >= 48, "{} frames from 1 s", frames.len());
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.samples.len(), 960);
        assert_eq!(f.pts.as_millis(), 20 * i as u128);
    }
    let all: Vec<f64> = frames
        .iter()
        .flat_map(|f| f.samples.iter().map(|&s| f64::from(s) / 32768.0))
        .collect();
    let (amp, worst, _) = fit(&all[4_800..], F, 48_000.0);
    assert!((amp / AMP - 1.0).abs() < 0.01, "level {amp}");
    // i16 quantisation adds ~3e-5; anything like a click would be orders above.
    assert!(worst < 1e-3, "worst residual {worst:.2e}");
    assert!(
        control.level_dbfs() > -10.0,
        "meter {}",
        control.level_dbfs()
    );

    // A device switch to another rate mid-stream: frames keep coming at 48 kHz.
    let more = sine(16_000, 16_000, 1);
    mic.push(&InputChunk {
        rate: 16_000,
        channels: 1,
        samples: more,
    })
    .unwrap();
    let mut n = 0;
    while mic.pop().is_some() {
        n += 1;
    }
    assert!(n >= 45, "{n} frames after switching to 16 kHz");
}

#[test]
fn bad_rates_are_refused_in_words() {
    let err = StreamResampler::new(0, 48_000).err().unwrap();
    assert!(
        err.to_string().contains("between 8 kHz and 384 kHz"),
        "{err}"
    );
}
