//! Where raw frames come from and where mixed sound goes: the source traits every capture path
//! implements (synthetic ones and real devices), the [`Sources`] a call opens them from, the
//! [`AudioSink`] it plays into, their error type, and the pacing clock sources share.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::frame::{AudioFrame, VideoFrame};
use crate::stream::MediaKind;

/// Why a source could not produce a frame.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The requested capture device does not exist or is not available to this process.
    #[error("no such media device: {0}")]
    NoDevice(String),
    /// The source has delivered its last frame (a file played out, a device unplugged cleanly).
    #[error("the media source has ended")]
    Ended,
    /// The device exists but failed while opening or capturing.
    #[error("media device error: {0}")]
    Device(String),
    /// The source was asked for something it cannot do (an unsupported size, rate or format).
    #[error("unsupported media configuration: {0}")]
    Unsupported(String),
}

/// A stream of raw pictures, delivered in real time.
///
/// `next_frame` blocks until the next frame is due, so a sender loop can simply call it in a loop
/// without its own timer; that keeps every source (device or synthetic) paced the same way.
pub trait VideoSource: Send {
    /// Waits for and returns the next picture.
    fn next_frame(&mut self) -> Result<VideoFrame, MediaError>;
    /// A short human-readable description for logs and the device picker.
    fn describe(&self) -> String;
}

/// A stream of 20 ms mono 48 kHz audio frames, delivered in real time.
///
/// Like [`VideoSource`], `next_frame` blocks until the next frame is due.
pub trait AudioSource: Send {
    /// Waits for and returns the next 20 ms of audio.
    fn next_frame(&mut self) -> Result<AudioFrame, MediaError>;
    /// A short human-readable description for logs and the device picker.
    fn describe(&self) -> String;
}

/// Where a call's media comes from: the engine opens a source when a stream starts and drops
/// it when the stream stops, so a device is open only while it is used.
pub trait Sources: Send + Sync {
    /// A camera ([`MediaKind::Video`]) or screen ([`MediaKind::Screen`]) source.
    fn video(&self, kind: MediaKind) -> Result<Box<dyn VideoSource>, MediaError>;
    /// A microphone source.
    fn audio(&self) -> Result<Box<dyn AudioSource>, MediaError>;
}

/// Where the mix of everyone's audio goes (speakers, or a recorder in tests).
///
/// `play` is called once per 20 ms on the call's playout task with exactly 960 samples (silence
/// when nobody sends audio), so it must not block: a device sink should copy into its own ring
/// buffer and return.
pub trait AudioSink: Send {
    /// Plays (or queues) 20 ms of mixed audio.
    fn play(&mut self, frame: &AudioFrame);
}

/// An [`AudioSink`] shared between the app and the engine.
pub type SharedAudioSink = Arc<Mutex<dyn AudioSink>>;

/// Real-time pacing for a fixed frame rate.
///
/// Due times are computed from the start instant (`start + n * period`) rather than by adding
/// the period to the previous wake-up, so sleep overshoot never accumulates into drift. When the
/// caller falls behind by more than one period (a stalled thread, a slow encoder) the pacer skips
/// the missed slots instead of returning them back-to-back: a burst of stale frames would only
/// add latency downstream.
#[derive(Clone, Debug)]
pub struct Pacer {
    period: Duration,
    start: Option<Instant>,
    next_tick: u64,
}

impl Pacer {
    /// A pacer producing one tick per `period`; the clock starts at the first tick.
    ///
    /// A zero period is raised to one nanosecond so the tick arithmetic stays well defined.
    pub fn new(period: Duration) -> Self {
        Pacer {
            period: period.max(Duration::from_nanos(1)),
            start: None,
            next_tick: 0,
        }
    }

    /// A pacer for `fps` frames per second (`fps` is raised to at least 1).
    pub fn from_fps(fps: u32) -> Self {
        Self::new(Duration::from_secs(1) / fps.max(1))
    }

    /// The configured period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The time of `tick` relative to the pacer's start, i.e. the frame's presentation time.
    pub fn pts(&self, tick: u64) -> Duration {
        nanos_to_duration(self.period.as_nanos().saturating_mul(u128::from(tick)))
    }

    /// Decides which tick comes next at `now` and how long to wait for it, without sleeping.
    ///
    /// Separate from [`Pacer::wait`] so the scheduling policy can be tested deterministically.
    pub fn schedule(&mut self, now: Instant) -> (u64, Duration) {
        let start = *self.start.get_or_insert(now);
        let due = start + self.pts(self.next_tick);
        if now > due + self.period {
            // More than a whole frame late: resume at the slot `now` falls in.
            let elapsed = now.duration_since(start).as_nanos();
            let slot = elapsed / self.period.as_nanos();
            self.next_tick = u64::try_from(slot).unwrap_or(u64::MAX);
        }
        let tick = self.next_tick;
        let wait = (start + self.pts(tick)).saturating_duration_since(now);
        self.next_tick = tick.saturating_add(1);
        (tick, wait)
    }

    /// Sleeps until the next tick is due and returns its number.
    pub fn wait(&mut self) -> u64 {
        let (tick, wait) = self.schedule(Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        tick
    }
}

fn nanos_to_duration(nanos: u128) -> Duration {
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn first_tick_is_immediate_and_later_ticks_do_not_drift() {
        let mut p = Pacer::new(20 * MS);
        let t0 = Instant::now();
        assert_eq!(p.schedule(t0), (0, Duration::ZERO));
        // The caller woke 3 ms late for tick 1; tick 2 is still due at 40 ms, not 43 ms.
        assert_eq!(p.schedule(t0 + 23 * MS), (1, Duration::ZERO));
        assert_eq!(p.schedule(t0 + 25 * MS), (2, 15 * MS));
        assert_eq!(p.pts(2), 40 * MS);
    }

    #[test]
    fn falling_far_behind_skips_instead_of_bursting() {
        let mut p = Pacer::new(20 * MS);
        let t0 = Instant::now();
        p.schedule(t0);
        // Stalled for 105 ms: ticks 1..=4 are gone, we resume with the slot we are in.
        let (tick, wait) = p.schedule(t0 + 105 * MS);
        assert_eq!((tick, wait), (5, Duration::ZERO));
        assert_eq!(p.schedule(t0 + 106 * MS), (6, 14 * MS));
    }

    #[test]
    fn slightly_late_is_caught_up_not_skipped() {
        let mut p = Pacer::new(20 * MS);
        let t0 = Instant::now();
        p.schedule(t0);
        assert_eq!(p.schedule(t0 + 35 * MS), (1, Duration::ZERO));
        assert_eq!(p.schedule(t0 + 36 * MS), (2, 4 * MS));
    }

    #[test]
    fn wait_paces_in_real_time() {
        // On a loaded machine this thread may be descheduled for longer than a period, and the
        // pacer then rightly skips ticks; what must hold is that no tick is handed out early.
        let mut p = Pacer::new(5 * MS);
        let t0 = Instant::now();
        let mut last = None;
        for _ in 0..4 {
            let tick = p.wait();
            assert!(last.is_none_or(|l| tick > l), "ticks go forward");
            assert!(t0.elapsed() >= p.pts(tick), "tick {tick} handed out early");
            last = Some(tick);
        }
        assert!(t0.elapsed() >= 15 * MS);
    }

    #[test]
    fn errors_read_well() {
        assert_eq!(
            MediaError::NoDevice("FaceTime HD".into()).to_string(),
            "no such media device: FaceTime HD"
        );
        assert_eq!(MediaError::Ended.to_string(), "the media source has ended");
    }
}
