//! The microphone path: device chunks (any rate, any channel count, any chunk size) become
//! 20 ms mono 48 kHz frames, cleaned by the call's [`VoiceProcessor`](crate::processing), with
//! mute and the "muted but speaking" hint.
//!
//! [`MicPipeline`] is the pure part (push chunks in, pop frames out) so tests drive it with
//! generated audio; [`Microphone`] is the [`AudioSource`] the engine pulls from, fed by a
//! channel that a device driver (cpal, see `audio_io`) or a synthetic device fills.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use media::mixer::{level_dbfs, VoiceActivity};
use media::source::{AudioSource, MediaError, Pacer};
use media::{AudioFrame, SAMPLES_PER_FRAME, SAMPLE_RATE};

use crate::events::{DeviceEvent, EventSender};
use crate::processing::SharedProcessor;
use crate::resample::{downmix_into, f32_to_i16, ResampleError, StreamResampler};

/// Audio as a device delivered it: interleaved float samples at the device's rate.
#[derive(Clone, Debug, PartialEq)]
pub struct InputChunk {
    /// Samples per second per channel.
    pub rate: u32,
    /// Channels, interleaved.
    pub channels: u16,
    /// The samples, -1.0..=1.0.
    pub samples: Vec<f32>,
}

/// Frames of sustained speech before the muted hint fires (200 ms: a cough is not speech).
const MUTED_SPEECH_FRAMES: u32 = 10;

/// Live controls of a microphone, shared with the app: mute, noise suppression, level.
#[derive(Clone)]
pub struct MicControl {
    muted: Arc<AtomicBool>,
    level_centi_db: Arc<AtomicI32>,
    processor: Option<SharedProcessor>,
}

impl MicControl {
    /// Controls for a microphone whose audio runs through `processor` (if any).
    pub fn new(processor: Option<SharedProcessor>) -> Self {
        MicControl {
            muted: Arc::new(AtomicBool::new(false)),
            level_centi_db: Arc::new(AtomicI32::new(-10_000)),
            processor,
        }
    }

    /// Mutes (silence is sent, the microphone keeps listening for the hint) or unmutes.
    pub fn set_muted(&self, muted: bool) {
        self.muted.store(muted, Ordering::Relaxed);
    }

    pub fn is_muted(&self) -> bool {
        self.muted.load(Ordering::Relaxed)
    }

    /// Turns noise suppression on or off (no effect without a processor).
    pub fn set_noise_suppression(&self, on: bool) {
        if let Some(p) = &self.processor {
            p.lock().set_noise_suppression(on);
        }
    }

    /// Whether noise suppression runs.
    pub fn noise_suppression(&self) -> bool {
        self.processor
            .as_ref()
            .is_some_and(|p| p.lock().settings().noise_suppression)
    }

    /// The level of the last frame after processing, in dBFS (-100 for silence), for a meter.
    pub fn level_dbfs(&self) -> f32 {
        self.level_centi_db.load(Ordering::Relaxed) as f32 / 100.0
    }
}

/// Chunks in, processed 48 kHz frames out.
pub struct MicPipeline {
    resampler: Option<StreamResampler>,
    channels: u16,
    mono: Vec<f32>,
    control: MicControl,
    vad: VoiceActivity,
    loud_frames: u32,
    hinting: bool,
    events: EventSender,
    frames: u64,
}

impl MicPipeline {
    /// A pipeline reporting to `events`, controlled by `control`.
    pub fn new(control: MicControl, events: EventSender) -> Self {
        MicPipeline {
            resampler: None,
            channels: 1,
            mono: Vec::new(),
            control,
            vad: VoiceActivity::new(),
            loud_frames: 0,
            hinting: false,
            events,
            frames: 0,
        }
    }

    /// Adds a chunk; a change of rate or channel count (another device) restarts the converter.
    pub fn push(&mut self, chunk: &InputChunk) -> Result<(), ResampleError> {
        let same = self
            .resampler
            .as_ref()
            .is_some_and(|r| r.from_rate() == chunk.rate)
            && self.channels == chunk.channels;
        if !same {
            self.resampler = Some(StreamResampler::new(chunk.rate, SAMPLE_RATE)?);
            self.channels = chunk.channels;
        }
        self.mono.clear();
        downmix_into(&chunk.samples, usize::from(chunk.channels), &mut self.mono);
        if let Some(r) = self.resampler.as_mut() {
            r.push(&self.mono);
        }
        Ok(())
    }

    /// The next 20 ms frame, once enough audio came in.
    pub fn pop(&mut self) -> Option<AudioFrame> {
        let samples = self.resampler.as_mut()?.pop(SAMPLES_PER_FRAME)?;
        let mut samples: Vec<i16> = samples.into_iter().map(f32_to_i16).collect();
        if let Some(p) = &self.control.processor {
            p.lock().capture(&mut samples);
        }
        let pts = Duration::from_millis(20) * u32::try_from(self.frames).unwrap_or(u32::MAX);
        self.frames += 1;
        let mut frame = AudioFrame { samples, pts };
        self.observe(&frame);
        if self.control.is_muted() {
            frame.samples.fill(0);
        }
        Some(frame)
    }

    /// Level meter and the muted-speaking hint, on the processed (echo-free) audio.
    fn observe(&mut self, frame: &AudioFrame) {
        let level = level_dbfs(frame);
        self.control
            .level_centi_db
            .store((level * 100.0) as i32, Ordering::Relaxed);
        let speaking = self.vad.update(level);
        let loud = level > media::mixer::DEFAULT_THRESHOLD_DBFS;
        self.loud_frames = if loud { self.loud_frames + 1 } else { 0 };
        let muted = self.control.is_muted();
        if !self.hinting && muted && self.loud_frames >= MUTED_SPEECH_FRAMES {
            self.hinting = true;
            self.events
                .send(DeviceEvent::MutedSpeaking { speaking: true });
        } else if self.hinting && (!speaking || !muted) {
            self.hinting = false;
            self.events
                .send(DeviceEvent::MutedSpeaking { speaking: false });
        }
    }

    /// Drops buffered audio (after a device switch).
    pub fn clear(&mut self) {
        if let Some(r) = self.resampler.as_mut() {
            r.clear();
        }
    }
}

/// How long the device may stay silent before the source fills in with silence.
const STALL: Duration = Duration::from_millis(100);

/// A microphone as an [`AudioSource`]: pulls chunks from a device driver's channel.
///
/// When the device stops delivering (unplugged, being rebuilt) it sends paced silence, so the
/// call and the encoder keep going; it ends only when the driver is gone for good.
pub struct Microphone {
    name: String,
    chunks: Receiver<InputChunk>,
    pipeline: MicPipeline,
    silence: Option<Pacer>,
    /// Keeps the device driver alive for as long as the source lives.
    _driver: Option<Box<dyn Send>>,
}

impl Microphone {
    /// A source reading `chunks` (from a driver or a synthetic device) through `pipeline`.
    /// `driver` is kept alive with the source and dropped (stopping the device) with it.
    pub fn new(
        name: impl Into<String>,
        chunks: Receiver<InputChunk>,
        pipeline: MicPipeline,
        driver: Option<Box<dyn Send>>,
    ) -> Self {
        Microphone {
            name: name.into(),
            chunks,
            pipeline,
            silence: None,
            _driver: driver,
        }
    }
}

impl Microphone {
    /// A frame if one can be made from what the device delivered so far, without waiting (for
    /// callers that poll, and tests driving a synthetic device in lockstep).
    pub fn try_frame(&mut self) -> Option<AudioFrame> {
        while let Ok(chunk) = self.chunks.try_recv() {
            if let Err(e) = self.pipeline.push(&chunk) {
                tracing::warn!(error = %e, "microphone chunk refused");
            }
        }
        self.pipeline.pop()
    }
}

impl AudioSource for Microphone {
    fn next_frame(&mut self) -> Result<AudioFrame, MediaError> {
        loop {
            if let Some(frame) = self.pipeline.pop() {
                self.silence = None;
                return Ok(frame);
            }
            let wait = if self.silence.is_some() {
                Duration::ZERO
            } else {
                STALL
            };
            match self.chunks.recv_timeout(wait) {
                Ok(chunk) => {
                    if let Err(e) = self.pipeline.push(&chunk) {
                        return Err(MediaError::Unsupported(e.to_string()));
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    let pacer = self.silence.get_or_insert_with(|| Pacer::from_fps(50));
                    let tick = pacer.wait();
                    if self
                        .chunks
                        .try_recv()
                        .map(|c| self.pipeline.push(&c))
                        .is_ok()
                    {
                        continue;
                    }
                    return Ok(AudioFrame::silence(pacer.pts(tick)));
                }
                Err(RecvTimeoutError::Disconnected) => return Err(MediaError::Ended),
            }
        }
    }

    fn describe(&self) -> String {
        format!("microphone {}", self.name)
    }
}
