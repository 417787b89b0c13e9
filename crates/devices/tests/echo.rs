//! Echo cancellation on generated speech through a synthetic room: echo return loss enhancement
//! (ERLE) after convergence, and what is left of the near-end talker during double talk.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use devices::processing::{ProcessingSettings, VoiceProcessor};
use devices::resample::{f32_to_i16, i16_to_f32};
use devices::signals::{speech, EchoPath};

const RATE: u32 = 48_000;
const FRAME: usize = 960;

struct Run {
    mic: Vec<f32>,
    out: Vec<f32>,
    near: Vec<f32>,
}

/// Plays `far` through the speaker side and captures echo + `near` through the microphone side,
/// frame by frame as a call does.
fn run(settings: ProcessingSettings, far: &[f32], near: &[f32]) -> Run {
    let mut apm = VoiceProcessor::new(settings);
    apm.set_delay_hint_ms(60);
    let mut room = EchoPath::laptop(RATE);
    let (mut mic_all, mut out_all) = (Vec::new(), Vec::new());
    for (f, n) in far.chunks_exact(FRAME).zip(near.chunks_exact(FRAME)) {
        let far_i16: Vec<i16> = f.iter().map(|&s| f32_to_i16(s)).collect();
        apm.render(&far_i16);
        let echo = room.process(f);
        let mic: Vec<f32> = echo.iter().zip(n).map(|(e, s)| e + s).collect();
        let mut frame: Vec<i16> = mic.iter().map(|&s| f32_to_i16(s)).collect();
        apm.capture(&mut frame);
        mic_all.extend(mic);
        out_all.extend(frame.iter().map(|&s| i16_to_f32(s)));
    }
    Run {
        mic: mic_all,
        out: out_all,
        near: near.to_vec(),
    }
}

fn energy(x: &[f32]) -> f64 {
    x.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / x.len().max(1) as f64
}

fn db(ratio: f64) -> f64 {
    10.0 * ratio.max(1e-30).log10()
}

fn secs(a: f64, b: f64) -> std::ops::Range<usize> {
    (a * f64::from(RATE)) as usize..(b * f64::from(RATE)) as usize
}

/// 0-12 s the far end talks alone; 12-17 s both talk; 17-20 s only the near end talks.
fn scenario() -> (Vec<f32>, Vec<f32>) {
    let far = speech(20.0, RATE, 120.0, 1);
    let near_talker = speech(20.0, RATE, 210.0, 2);
    let far: Vec<f32> = far
        .iter()
        .enumerate()
        .map(|(i, &s)| if i < secs(0.0, 17.0).end { s } else { 0.0 })
        .collect();
    let near: Vec<f32> = near_talker
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            if i >= secs(12.0, 12.0).start {
                s * 0.5
            } else {
                0.0
            }
        })
        .collect();
    (far, near)
}

fn echo_only() -> ProcessingSettings {
    ProcessingSettings {
        echo_cancellation: true,
        noise_suppression: false,
        gain_control: false,
    }
}

#[test]
fn echo_is_cancelled_by_25_db_and_near_speech_survives() {
    let (far, near) = scenario();
    let r = run(echo_only(), &far, &near);
    let conv = secs(4.0, 12.0);
    let erle = db(energy(&r.mic[conv.clone()]) / energy(&r.out[conv.clone()]));
    eprintln!("ERLE after convergence: {erle:.1} dB");
    assert!(erle >= 25.0, "ERLE {erle:.1} dB < 25 dB");

    // Double talk: compare with the same near-end speech processed with no far end at all.
    let alone = run(echo_only(), &vec![0.0; far.len()], &near);
    let dt = secs(12.5, 17.0);
    let kept = db(energy(&r.out[dt.clone()]) / energy(&alone.out[dt.clone()]));
    // How much of the output is the near talker: correlation with the undisturbed output.
    let (a, b) = (&r.out[dt.clone()], &alone.out[dt.clone()]);
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let corr = dot / (energy(a) * energy(b)).sqrt() / a.len() as f64;
    eprintln!("double talk: near-end level {kept:+.1} dB, correlation {corr:.2}");
    assert!(kept > -6.0, "near end lost {kept:.1} dB in double talk");
    assert!(
        corr > 0.75,
        "near end distorted in double talk (correlation {corr:.2})"
    );

    // Near end alone after the far end stops: passes almost untouched.
    let solo = secs(17.5, 20.0);
    let solo_kept = db(energy(&r.out[solo.clone()]) / energy(&r.near[solo]));
    eprintln!("near end alone: {solo_kept:+.1} dB");
    assert!(solo_kept > -3.0, "near end alone lost {solo_kept:.1} dB");
}

#[test]
fn without_echo_cancellation_the_echo_stays() {
    let (far, near) = scenario();
    let r = run(ProcessingSettings::off(), &far, &near);
    let conv = secs(4.0, 12.0);
    let erle = db(energy(&r.mic[conv.clone()]) / energy(&r.out[conv]));
    assert!(
        erle.abs() < 1.0,
        "nothing should remove echo, got {erle:.1} dB"
    );
}

#[test]
fn full_processing_keeps_the_echo_out() {
    // Noise suppression and gain control on as well (the default): gain control must not
    // bring the residual echo back up.
    let (far, near) = scenario();
    let r = run(ProcessingSettings::default(), &far, &near);
    let conv = secs(4.0, 12.0);
    let erle = db(energy(&r.mic[conv.clone()]) / energy(&r.out[conv]));
    eprintln!("ERLE with NS and AGC: {erle:.1} dB");
    assert!(
        erle >= 25.0,
        "ERLE {erle:.1} dB < 25 dB with full processing"
    );
}
