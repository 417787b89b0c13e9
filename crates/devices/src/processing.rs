//! Echo cancellation, noise suppression and automatic gain control between the speaker and the
//! microphone: the WebRTC audio processing module (AEC3, NS, AGC2) as ported to pure Rust by
//! `sonora` (see docs/decisions.md for why this one).
//!
//! The speaker side feeds every frame it is about to play to [`VoiceProcessor::render`] (the
//! "far end", what the microphone will hear back as echo); the microphone side runs every
//! captured frame through [`VoiceProcessor::capture`], which removes that echo. Both sides share
//! one processor through [`SharedProcessor`]. The module works on 10 ms blocks; Huddle's frames
//! are 20 ms, so each frame is two blocks.

use std::sync::{Arc, Mutex, MutexGuard};

use media::SAMPLE_RATE;
use sonora::config::{
    AdaptiveDigital, EchoCanceller, GainController2, HighPassFilter, NoiseSuppression,
    NoiseSuppressionLevel,
};
use sonora::{AudioProcessing, Config, StreamConfig};

/// 10 ms at 48 kHz: the processing module's block.
pub const BLOCK: usize = SAMPLE_RATE as usize / 100;

/// Which stages run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ProcessingSettings {
    /// Remove the speaker's sound from the microphone.
    pub echo_cancellation: bool,
    /// Remove steady background noise (fans, hum).
    pub noise_suppression: bool,
    /// Bring the voice to a steady level.
    pub gain_control: bool,
}

impl Default for ProcessingSettings {
    /// Everything on, as browsers do.
    fn default() -> Self {
        ProcessingSettings {
            echo_cancellation: true,
            noise_suppression: true,
            gain_control: true,
        }
    }
}

impl ProcessingSettings {
    /// Nothing on: the microphone as it is.
    pub fn off() -> Self {
        ProcessingSettings {
            echo_cancellation: false,
            noise_suppression: false,
            gain_control: false,
        }
    }

    fn config(self) -> Config {
        Config {
            high_pass_filter: Some(HighPassFilter::default()),
            echo_canceller: self.echo_cancellation.then(EchoCanceller::default),
            noise_suppression: self.noise_suppression.then(|| NoiseSuppression {
                level: NoiseSuppressionLevel::Moderate,
                ..Default::default()
            }),
            gain_controller2: self.gain_control.then(|| GainController2 {
                adaptive_digital: Some(AdaptiveDigital::default()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// The audio processing of one call: far-end reference in, cleaned microphone out.
pub struct VoiceProcessor {
    apm: AudioProcessing,
    settings: ProcessingSettings,
    delay_ms: i32,
    scratch: [i16; BLOCK],
}

impl VoiceProcessor {
    /// A processor running `settings` on 48 kHz mono.
    pub fn new(settings: ProcessingSettings) -> Self {
        let stream = StreamConfig::new(SAMPLE_RATE, 1);
        let apm = AudioProcessing::builder()
            .config(settings.config())
            .capture_config(stream)
            .render_config(stream)
            .build();
        VoiceProcessor {
            apm,
            settings,
            delay_ms: 0,
            scratch: [0; BLOCK],
        }
    }

    /// The stages running now.
    pub fn settings(&self) -> ProcessingSettings {
        self.settings
    }

    /// Changes the stages without losing what the echo canceller has learnt.
    pub fn apply(&mut self, settings: ProcessingSettings) {
        if settings != self.settings {
            self.settings = settings;
            self.apm.apply_config(settings.config());
        }
    }

    /// Turns noise suppression on or off.
    pub fn set_noise_suppression(&mut self, on: bool) {
        let s = ProcessingSettings {
            noise_suppression: on,
            ..self.settings
        };
        self.apply(s);
    }

    /// A hint of the delay between playing a sample and hearing it back in the microphone
    /// (output buffer + acoustic path + input buffer). AEC3 finds the true delay itself; the
    /// hint only gives it a starting point.
    pub fn set_delay_hint_ms(&mut self, ms: u32) {
        self.delay_ms = i32::try_from(ms).unwrap_or(500).min(500);
    }

    /// Records `samples` (48 kHz mono, any multiple of 10 ms) as about to be played.
    pub fn render(&mut self, samples: &[i16]) {
        for block in samples.chunks_exact(BLOCK) {
            if let Err(e) = self.apm.process_render_i16(block, &mut self.scratch) {
                tracing::debug!(error = ?e, "render block refused");
            }
        }
    }

    /// Cleans `samples` (48 kHz mono, any multiple of 10 ms) in place.
    pub fn capture(&mut self, samples: &mut [i16]) {
        for block in samples.chunks_exact_mut(BLOCK) {
            // Required before each capture block when echo cancellation runs.
            let _ = self.apm.set_stream_delay_ms(self.delay_ms);
            self.scratch.copy_from_slice(block);
            if let Err(e) = self.apm.process_capture_i16(&self.scratch, block) {
                tracing::debug!(error = ?e, "capture block refused");
            }
        }
    }
}

/// One processor shared by a call's speaker (render side) and microphone (capture side).
#[derive(Clone)]
pub struct SharedProcessor(Arc<Mutex<VoiceProcessor>>);

impl SharedProcessor {
    /// A shared processor running `settings`.
    pub fn new(settings: ProcessingSettings) -> Self {
        SharedProcessor(Arc::new(Mutex::new(VoiceProcessor::new(settings))))
    }

    /// Locks it (a panic elsewhere leaves at worst one half-processed block: keep going).
    pub fn lock(&self) -> MutexGuard<'_, VoiceProcessor> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for SharedProcessor {
    fn default() -> Self {
        Self::new(ProcessingSettings::default())
    }
}
