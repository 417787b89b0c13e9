//! Deterministic speech-like test signals and a synthetic room echo, shared by the tests, the
//! benchmark and the example (no recordings needed, identical on every machine).

use std::f64::consts::PI;

/// A voice-like signal: a glottal pulse train (harmonics of a wandering pitch) shaped by two
/// formants, chopped into syllables (~4 per second) with noise bursts for consonants. Different
/// `seed`s and pitches give talkers that do not correlate with each other.
pub fn speech(seconds: f64, rate: u32, pitch_hz: f64, seed: u64) -> Vec<f32> {
    let n = (seconds * f64::from(rate)) as usize;
    let fs = f64::from(rate);
    let mut rng = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut noise = move || {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((rng >> 33) as f64 / (1u64 << 31) as f64) * 2.0 - 1.0
    };
    let syllable = 0.23 + (seed % 7) as f64 * 0.01;
    let mut phase = 0.0;
    let mut out = Vec::with_capacity(n);
    // Two resonators (formants) on the pulse train.
    let (mut a1, mut a2, mut b1, mut b2) = (0.0, 0.0, 0.0, 0.0);
    for i in 0..n {
        let t = i as f64 / fs;
        let pitch = pitch_hz * (1.0 + 0.15 * (2.0 * PI * 0.7 * t + seed as f64).sin());
        phase += pitch / fs;
        let pulse = if phase >= 1.0 {
            phase -= 1.0;
            1.0
        } else {
            0.0
        };
        let s_pos = (t / syllable).fract();
        let voiced = if s_pos < 0.7 {
            (PI * s_pos / 0.7).sin()
        } else {
            0.0
        };
        let consonant = if (0.72..0.8).contains(&s_pos) {
            0.15 * noise()
        } else {
            0.0
        };
        let formant = |f: f64, bw: f64| {
            let r = (-PI * bw / fs).exp();
            (2.0 * r * (2.0 * PI * f / fs).cos(), -r * r)
        };
        let (c1, d1) = formant(500.0 + 200.0 * (t * 1.3 + seed as f64).sin(), 80.0);
        let (c2, d2) = formant(1500.0 + 400.0 * (t * 0.9).cos(), 120.0);
        let x = pulse * voiced;
        let y1 = x + c1 * a1 + d1 * a2;
        a2 = a1;
        a1 = y1;
        let y2 = x + c2 * b1 + d2 * b2;
        b2 = b1;
        b1 = y2;
        out.push(((y1 * 0.02 + y2 * 0.015) + consonant) as f32);
    }
    // Normalise to a talking level (peaks around -6 dBFS).
    let peak = out.iter().fold(0.0f32, |m, s| m.max(s.abs())).max(1e-9);
    out.iter().map(|s| s / peak * 0.5).collect()
}

/// A small room between speaker and microphone: a delay, a few reflections, the speaker's
/// and microphone's band limits (a one-pole low-pass), and an attenuation.
#[derive(Clone, Debug)]
pub struct EchoPath {
    /// Direct-path delay in samples.
    pub delay: usize,
    /// (extra delay in samples, gain) of each reflection, the direct path included.
    pub taps: Vec<(usize, f32)>,
    /// One-pole low-pass coefficient (0: none).
    pub lowpass: f32,
    history: Vec<f32>,
    lp: f32,
}

impl EchoPath {
    /// A typical laptop: 60 ms of delay (buffers and air), echo about 10 dB below the far end.
    pub fn laptop(rate: u32) -> Self {
        let ms = |m: f64| (m * f64::from(rate) / 1000.0) as usize;
        EchoPath {
            delay: ms(60.0),
            taps: vec![
                (0, 0.35),
                (ms(2.5), 0.18),
                (ms(7.0), -0.12),
                (ms(15.0), 0.06),
            ],
            lowpass: 0.35,
            history: Vec::new(),
            lp: 0.0,
        }
    }

    /// Feeds far-end samples in, returns what the microphone hears of them.
    pub fn process(&mut self, far: &[f32]) -> Vec<f32> {
        let span = self.delay + self.taps.iter().map(|t| t.0).max().unwrap_or(0) + 1;
        let mut out = Vec::with_capacity(far.len());
        for &x in far {
            self.history.push(x);
            let n = self.history.len();
            let mut y = 0.0;
            for &(d, g) in &self.taps {
                let back = self.delay + d;
                if back < n {
                    y += g * self.history[n - 1 - back];
                }
            }
            self.lp = self.lp * self.lowpass + y * (1.0 - self.lowpass);
            out.push(self.lp);
            if self.history.len() > 4 * span {
                let drop = self.history.len() - span;
                self.history.drain(..drop);
            }
        }
        out
    }
}
