//! The microphone and speaker objects the app uses, driven by synthetic devices in place of a
//! sound card: playout through the FIFO at a device rate, an echo path from that playout back
//! into the microphone, and the "muted but speaking" hint.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::mpsc;
use std::time::Duration;

use devices::events::{DeviceEvent, EventSender};
use devices::mic::{InputChunk, MicControl, MicPipeline, Microphone};
use devices::processing::{ProcessingSettings, SharedProcessor};
use devices::signals::{speech, EchoPath};
use devices::speaker::{PlayoutFifo, SharedFifo, Speaker, PRIME};
use media::source::AudioSink;
use media::source::AudioSource;
use media::AudioFrame;

fn frames_of(x: &[f32]) -> Vec<AudioFrame> {
    x.chunks_exact(960)
        .enumerate()
        .map(|(i, c)| AudioFrame {
            samples: c
                .iter()
                .map(|&s| devices::resample::f32_to_i16(s))
                .collect(),
            pts: Duration::from_millis(20 * i as u64),
        })
        .collect()
}

fn energy(x: &[f32]) -> f64 {
    x.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / x.len().max(1) as f64
}

#[test]
fn playout_fifo_primes_converts_and_bounds_latency() {
    let mut fifo = PlayoutFifo::new(44_100);
    let tone: Vec<i16> = (0..960)
        .map(|i| {
            ((i as f64 * 2.0 * std::f64::consts::PI * 441.0 / 48_000.0).sin() * 10_000.0) as i16
        })
        .collect();
    // Nothing queued: silence, counted as underrun, no panic.
    let mut out = vec![1.0f32; 2 * 441];
    fifo.pull(&mut out, 2);
    assert!(out.iter().all(|&s| s == 0.0));
    // One 20 ms frame is less than the 40 ms prime: still silence.
    fifo.push(&tone);
    fifo.pull(&mut out, 2);
    assert!(out.iter().all(|&s| s == 0.0));
    fifo.push(&tone);
    fifo.push(&tone);
    assert!(fifo.queued() >= PRIME);
    fifo.pull(&mut out, 2);
    // Stereo device: both channels carry the mono signal.
    assert!(out.chunks(2).all(|c| c[0] == c[1]));
    assert!(out.iter().any(|&s| s.abs() > 0.2));
    // A burst of 1 s (the engine stalled, then caught up) is cut to the 200 ms bound.
    for _ in 0..50 {
        fifo.push(&tone);
    }
    assert!(
        fifo.queued() <= Duration::from_millis(201),
        "{:?}",
        fifo.queued()
    );
    assert!(fifo.stats().dropped > 0);
}

/// The app's Speaker plays into a synthetic 44.1 kHz stereo device; what the device plays
/// reaches a synthetic microphone through a room; the app's Microphone (48 kHz out) removes it.
#[test]
fn speaker_to_microphone_echo_is_removed_end_to_end() {
    let processor = SharedProcessor::new(ProcessingSettings {
        echo_cancellation: true,
        noise_suppression: false,
        gain_control: false,
    });
    let fifo = SharedFifo::new(44_100);
    let mut speaker = Speaker::new(
        "synthetic speaker",
        fifo.clone(),
        Some(processor.clone()),
        None,
    );
    let control = MicControl::new(Some(processor));
    let (tx, rx) = mpsc::sync_channel(1000);
    let mut mic = Microphone::new(
        "synthetic mic",
        rx,
        MicPipeline::new(control, EventSender::new()),
        None,
    );
    let far = speech(10.0, 48_000, 130.0, 5);
    let mut room = EchoPath::laptop(44_100);
    let (mut heard, mut sent) = (Vec::new(), Vec::new());
    for frame in frames_of(&far) {
        speaker.play(&frame);
        // The device asks for 20 ms at its rate, stereo.
        let mut out = vec![0.0f32; 2 * 882];
        fifo.lock().pull(&mut out, 2);
        let mono: Vec<f32> = out.chunks(2).map(|c| c[0]).collect();
        let echo = room.process(&mono);
        heard.extend_from_slice(&echo);
        tx.send(InputChunk {
            rate: 44_100,
            channels: 1,
            samples: echo,
        })
        .unwrap();
        while let Some(f) = mic.try_frame() {
            sent.extend(f.samples.iter().map(|&s| devices::resample::i16_to_f32(s)));
        }
    }
    assert!(speaker.stats().played > 44_100 * 9, "{:?}", speaker.stats());
    let tail = |x: &[f32], rate: usize| x[rate * 4..rate * 9].to_vec();
    let erle = 10.0 * (energy(&tail(&heard, 44_100)) / energy(&tail(&sent, 48_000))).log10();
    eprintln!("speaker -> room -> microphone ERLE: {erle:.1} dB");
    assert!(erle >= 25.0, "echo reduced by only {erle:.1} dB");
}

#[test]
fn muted_microphone_sends_silence_and_hints_when_speech_is_heard() {
    let events = EventSender::new();
    let mut rx = events.subscribe();
    let control = MicControl::new(None);
    let mut mic = MicPipeline::new(control.clone(), events);
    let talk = speech(3.0, 48_000, 180.0, 3);
    control.set_muted(true);
    let mut out_energy = 0.0;
    for chunk in talk.chunks(480) {
        mic.push(&InputChunk {
            rate: 48_000,
            channels: 1,
            samples: chunk.to_vec(),
        })
        .unwrap();
        while let Some(f) = mic.pop() {
            out_energy += f.samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
        }
    }
    assert_eq!(out_energy, 0.0, "a muted microphone sent sound");
    assert_eq!(
        rx.try_recv().unwrap(),
        DeviceEvent::MutedSpeaking { speaking: true }
    );
    // Silence: the hint is withdrawn once the talking stops.
    for _ in 0..50 {
        mic.push(&InputChunk {
            rate: 48_000,
            channels: 1,
            samples: vec![0.0; 960],
        })
        .unwrap();
        while mic.pop().is_some() {}
    }
    assert_eq!(
        rx.try_recv().unwrap(),
        DeviceEvent::MutedSpeaking { speaking: false }
    );
    assert!(rx.try_recv().is_err(), "one hint per stretch of speech");
    // Unmuted speech is sent and raises no hint.
    control.set_muted(false);
    let mut sent = 0.0;
    for chunk in talk.chunks(480) {
        mic.push(&InputChunk {
            rate: 48_000,
            channels: 1,
            samples: chunk.to_vec(),
        })
        .unwrap();
        while let Some(f) = mic.pop() {
            sent += f.samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
        }
    }
    assert!(sent > 0.0);
    assert!(rx.try_recv().is_err());
}

#[test]
fn a_stalled_device_gives_paced_silence_and_a_gone_driver_ends_the_source() {
    let (tx, rx) = mpsc::sync_channel(4);
    let mut mic = Microphone::new(
        "synthetic mic",
        rx,
        MicPipeline::new(MicControl::new(None), EventSender::new()),
        None,
    );
    let start = std::time::Instant::now();
    for _ in 0..5 {
        let f = mic.next_frame().unwrap();
        assert_eq!(f.samples.len(), 960);
        assert!(f.samples.iter().all(|&s| s == 0));
    }
    // 100 ms of grace, then 20 ms per frame: the call is not flooded with silence.
    assert!(
        start.elapsed() >= Duration::from_millis(170),
        "{:?}",
        start.elapsed()
    );
    drop(tx);
    assert!(matches!(
        mic.next_frame(),
        Err(media::source::MediaError::Ended)
    ));
}
