//! The speaker path: the call's mixed 48 kHz audio, handed over every 20 ms by the engine's
//! playout task ([`media::source::AudioSink`]), is recorded as the echo canceller's far end, converted to
//! the device's rate, and queued in a small FIFO that the device's real-time callback drains.
//!
//! The FIFO is the last jitter stage: the engine's 20 ms ticks come from a tokio timer and wobble
//! by a few milliseconds while the device consumes at a perfectly even pace, so playback starts
//! only once [`PRIME`] is queued, restarts priming after an underrun, and drops the oldest audio
//! when more than [`MAX_QUEUE`] piles up (the two clocks drift apart by a few ppm).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use media::source::AudioSink;
use media::{AudioFrame, SAMPLE_RATE};

use crate::processing::SharedProcessor;
use crate::resample::{i16_to_f32, StreamResampler};

/// Queued audio needed before playback (re)starts.
pub const PRIME: Duration = Duration::from_millis(40);
/// Most audio kept queued; beyond it the oldest is dropped.
pub const MAX_QUEUE: Duration = Duration::from_millis(200);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PlayoutStats {
    /// Device-rate samples played from the call.
    pub played: u64,
    /// Device-rate samples of silence played because nothing was queued.
    pub underrun_samples: u64,
    /// Underruns (playback ran dry).
    pub underruns: u64,
    /// Device-rate samples dropped because too much was queued.
    pub dropped: u64,
}

/// The queue between the engine's playout clock and the device's callback, at the device rate.
pub struct PlayoutFifo {
    rate: u32,
    resampler: Option<StreamResampler>,
    queue: VecDeque<f32>,
    priming: bool,
    stats: PlayoutStats,
}

impl PlayoutFifo {
    /// A FIFO for a device playing at `rate` Hz.
    pub fn new(rate: u32) -> Self {
        let resampler = match StreamResampler::new(SAMPLE_RATE, rate) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(error = %e, "speaker rate unusable; playing nothing");
                None
            }
        };
        PlayoutFifo {
            rate,
            resampler,
            queue: VecDeque::new(),
            priming: true,
            stats: PlayoutStats::default(),
        }
    }

    /// The device rate.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    fn samples(&self, d: Duration) -> usize {
        (u128::from(self.rate) * d.as_micros() / 1_000_000) as usize
    }

    /// Queues 48 kHz mono samples.
    pub fn push(&mut self, samples: &[i16]) {
        let Some(r) = self.resampler.as_mut() else {
            return;
        };
        let f: Vec<f32> = samples.iter().map(|&s| i16_to_f32(s)).collect();
        r.push(&f);
        let n = r.available();
        self.queue.extend(r.pop_up_to(n));
        let max = self.samples(MAX_QUEUE);
        if self.queue.len() > max {
            let excess = self.queue.len() - max;
            self.queue.drain(..excess);
            self.stats.dropped += excess as u64;
        }
    }

    /// Fills a device buffer of `channels` interleaved channels (the mono signal on each).
    pub fn pull(&mut self, out: &mut [f32], channels: usize) {
        let channels = channels.max(1);
        if self.priming && self.queue.len() >= self.samples(PRIME) {
            self.priming = false;
        }
        for frame in out.chunks_mut(channels) {
            let s = if self.priming {
                self.stats.underrun_samples += 1;
                0.0
            } else if let Some(s) = self.queue.pop_front() {
                self.stats.played += 1;
                s
            } else {
                self.priming = true;
                self.stats.underruns += 1;
                self.stats.underrun_samples += 1;
                0.0
            };
            frame.fill(s);
        }
    }

    pub fn queued(&self) -> Duration {
        Duration::from_micros(self.queue.len() as u64 * 1_000_000 / u64::from(self.rate.max(1)))
    }

    /// The counters so far.
    pub fn stats(&self) -> PlayoutStats {
        self.stats
    }
}

/// A FIFO shared by the engine side ([`Speaker`]) and the device callback.
#[derive(Clone)]
pub struct SharedFifo(Arc<Mutex<PlayoutFifo>>);

impl SharedFifo {
    /// A shared FIFO for a device at `rate` Hz.
    pub fn new(rate: u32) -> Self {
        SharedFifo(Arc::new(Mutex::new(PlayoutFifo::new(rate))))
    }

    /// Locks it; a panic elsewhere must not silence the call.
    pub fn lock(&self) -> MutexGuard<'_, PlayoutFifo> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the FIFO with one for a device at `rate` Hz (a rebuilt or switched device),
    /// keeping the counters.
    pub fn reset(&self, rate: u32) {
        let mut fifo = self.lock();
        let stats = fifo.stats;
        *fifo = PlayoutFifo::new(rate);
        fifo.stats = stats;
    }
}

/// The call's speaker: an [`AudioSink`] for `MeshConfig::audio_sink`.
pub struct Speaker {
    name: String,
    fifo: SharedFifo,
    processor: Option<SharedProcessor>,
    /// Keeps the device driver alive for as long as the sink lives.
    _driver: Option<Box<dyn Send>>,
}

impl Speaker {
    /// A speaker feeding `fifo` (drained by a device driver or a synthetic device), telling
    /// `processor` what it plays. `driver` lives as long as the speaker.
    pub fn new(
        name: impl Into<String>,
        fifo: SharedFifo,
        processor: Option<SharedProcessor>,
        driver: Option<Box<dyn Send>>,
    ) -> Self {
        Speaker {
            name: name.into(),
            fifo,
            processor,
            _driver: driver,
        }
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn stats(&self) -> PlayoutStats {
        self.fifo.lock().stats()
    }
}

impl AudioSink for Speaker {
    fn play(&mut self, frame: &AudioFrame) {
        if let Some(p) = &self.processor {
            p.lock().render(&frame.samples);
        }
        self.fifo.lock().push(&frame.samples);
    }
}
