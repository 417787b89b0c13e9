//! Mixing the remote participants' audio into one playout stream, and the loudness measures used
//! for "who is speaking" indicators.

use crate::frame::{AudioFrame, SAMPLES_PER_FRAME};

/// Level reported for digital silence (and anything quieter), so the value stays finite.
pub const SILENCE_DBFS: f32 = -100.0;

/// Sums `frames` sample by sample, saturating at the i16 limits.
///
/// Saturation (hard clipping) rather than wrapping: an overflowing sum that wrapped would flip
/// sign and produce a loud crack, while a clipped peak is barely audible. The result takes the
/// first frame's `pts`; a frame with the wrong number of samples contributes what it has, and
/// the output always has exactly [`SAMPLES_PER_FRAME`] samples. No frames gives silence.
pub fn mix(frames: &[&AudioFrame]) -> AudioFrame {
    let mut acc = [0i32; SAMPLES_PER_FRAME];
    for frame in frames {
        for (sum, &sample) in acc.iter_mut().zip(&frame.samples) {
            *sum += i32::from(sample);
        }
    }
    AudioFrame {
        samples: acc
            .iter()
            .map(|&s| s.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16)
            .collect(),
        pts: frames.first().map(|f| f.pts).unwrap_or_default(),
    }
}

/// RMS level of `frame` in dBFS, relative to a full-scale square wave (so a full-scale sine reads
/// about -3 dBFS); [`SILENCE_DBFS`] for silence or an empty frame.
pub fn level_dbfs(frame: &AudioFrame) -> f32 {
    if frame.samples.is_empty() {
        return SILENCE_DBFS;
    }
    let energy: f64 = frame
        .samples
        .iter()
        .map(|&s| f64::from(s) * f64::from(s))
        .sum();
    let rms = (energy / frame.samples.len() as f64).sqrt() / 32768.0;
    if rms <= 0.0 {
        return SILENCE_DBFS;
    }
    ((20.0 * rms.log10()) as f32).max(SILENCE_DBFS)
}

/// Default speaking threshold: above room noise from a typical laptop microphone, well below
/// conversational speech.
pub const DEFAULT_THRESHOLD_DBFS: f32 = -45.0;
/// Default hangover in 20 ms frames (300 ms): bridges the gaps between words and syllables.
pub const DEFAULT_HANGOVER_FRAMES: u32 = 15;

/// A level-based voice-activity detector for one participant, fed once per 20 ms frame.
///
/// It reports speaking as soon as a frame exceeds the threshold and keeps doing so for a hangover
/// after the last loud frame, so the speaking indicator does not flicker in short pauses.
#[derive(Clone, Debug)]
pub struct VoiceActivity {
    threshold_dbfs: f32,
    hangover_frames: u32,
    /// Quiet frames still to be reported as speaking.
    remaining: u32,
    speaking: bool,
}

impl Default for VoiceActivity {
    fn default() -> Self {
        Self::new()
    }
}

impl VoiceActivity {
    /// A detector with a -45 dBFS threshold and a 300 ms hangover.
    pub fn new() -> Self {
        Self::with_params(DEFAULT_THRESHOLD_DBFS, DEFAULT_HANGOVER_FRAMES)
    }

    /// A detector with a custom threshold (dBFS) and hangover (in 20 ms frames).
    pub fn with_params(threshold_dbfs: f32, hangover_frames: u32) -> Self {
        VoiceActivity {
            threshold_dbfs,
            hangover_frames,
            remaining: 0,
            speaking: false,
        }
    }

    /// Feeds the level of the next 20 ms frame; returns whether the participant is speaking.
    pub fn update(&mut self, level_dbfs: f32) -> bool {
        self.speaking = if level_dbfs > self.threshold_dbfs {
            self.remaining = self.hangover_frames;
            true
        } else if self.remaining > 0 {
            self.remaining -= 1;
            true
        } else {
            false
        };
        self.speaking
    }

    /// Whether the last [`VoiceActivity::update`] reported speaking.
    pub fn is_speaking(&self) -> bool {
        self.speaking
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn constant(value: i16, pts_ms: u64) -> AudioFrame {
        AudioFrame {
            samples: vec![value; SAMPLES_PER_FRAME],
            pts: Duration::from_millis(pts_ms),
        }
    }

    #[test]
    fn mix_sums_and_saturates_without_wrapping() {
        let (a, b, c) = (
            constant(20_000, 40),
            constant(20_000, 60),
            constant(-30_000, 0),
        );
        assert_eq!(mix(&[&a, &b]).samples, vec![i16::MAX; SAMPLES_PER_FRAME]);
        assert_eq!(mix(&[&c, &c]).samples, vec![i16::MIN; SAMPLES_PER_FRAME]);
        let m = mix(&[&a, &c]);
        assert_eq!(m.samples, vec![-10_000; SAMPLES_PER_FRAME]);
        assert_eq!(m.pts, Duration::from_millis(40));
        // Clipping happens once, on the total, not pairwise: 20k + 20k - 30k = 10k.
        assert_eq!(mix(&[&a, &b, &c]).samples[0], 10_000);
    }

    #[test]
    fn mix_of_nothing_or_short_frames_is_well_formed() {
        assert_eq!(mix(&[]), AudioFrame::silence(Duration::ZERO));
        let short = AudioFrame {
            samples: vec![5; 10],
            pts: Duration::ZERO,
        };
        let m = mix(&[&short]);
        assert_eq!(m.samples.len(), SAMPLES_PER_FRAME);
        assert_eq!((m.samples[9], m.samples[10]), (5, 0));
    }

    #[test]
    fn levels() {
        assert_eq!(
            level_dbfs(&AudioFrame::silence(Duration::ZERO)),
            SILENCE_DBFS
        );
        assert_eq!(
            level_dbfs(&AudioFrame {
                samples: vec![],
                pts: Duration::ZERO
            }),
            SILENCE_DBFS
        );
        assert!(level_dbfs(&constant(i16::MIN, 0)).abs() < 0.01);
        assert!((level_dbfs(&constant(3277, 0)) + 20.0).abs() < 0.01);
        assert!((level_dbfs(&constant(1, 0)) + 90.3).abs() < 0.1);
    }

    #[test]
    fn voice_activity_hangover_bridges_short_pauses() {
        let mut vad = VoiceActivity::new();
        assert!(!vad.update(-60.0));
        assert!(vad.update(-20.0));
        assert!(vad.is_speaking());
        // 15 quiet frames (300 ms) still count as speaking; the 16th does not.
        for i in 0..15 {
            assert!(vad.update(-70.0), "quiet frame {i}");
        }
        assert!(!vad.update(-70.0));
        assert!(!vad.is_speaking());
        // A pause shorter than the hangover never drops out.
        assert!(vad.update(-30.0));
        for _ in 0..10 {
            assert!(vad.update(-80.0));
        }
        assert!(vad.update(-30.0));
        assert!(vad.update(SILENCE_DBFS));
    }

    #[test]
    fn voice_activity_threshold_is_configurable() {
        let mut vad = VoiceActivity::with_params(-30.0, 0);
        assert!(!vad.update(-35.0));
        assert!(vad.update(-25.0));
        assert!(!vad.update(-35.0));
    }
}
