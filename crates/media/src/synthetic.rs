//! Device-free sources for tests, benchmarks and headless calls: a moving, stamped video test
//! pattern and tone/"speech" audio. Both are deterministic functions of the frame number, so a
//! receiver-side test can regenerate exactly what was sent.

use std::f32::consts::PI;
use std::time::Duration;

use crate::frame::{plane_sizes, AudioFrame, VideoFrame, SAMPLES_PER_FRAME, SAMPLE_RATE};
use crate::source::{AudioSource, MediaError, Pacer, Sources, VideoSource};
use crate::stamp::{self, Stamp};
use crate::stream::MediaKind;

/// (Y, U, V) of the classic colour bars, BT.601 limited range.
const BARS: [(u8, u8, u8); 8] = [
    (235, 128, 128), // white
    (210, 16, 146),  // yellow
    (170, 166, 16),  // cyan
    (145, 54, 34),   // green
    (106, 202, 222), // magenta
    (81, 90, 240),   // red
    (41, 240, 110),  // blue
    (16, 128, 128),  // black
];

/// [`Sources`] that need no device: a [`TestPattern`] camera and screen and a speech-like
/// [`Tone`]. The screen is larger and slower than the camera, as real ones are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyntheticSources {
    /// The camera's size and rate; the screen is twice the size at a third of the rate.
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

impl SyntheticSources {
    /// A camera of `width`x`height` at `fps`.
    pub fn new(width: u32, height: u32, fps: u32) -> Self {
        SyntheticSources { width, height, fps }
    }
}

impl Sources for SyntheticSources {
    fn video(&self, kind: MediaKind) -> Result<Box<dyn VideoSource>, MediaError> {
        Ok(match kind {
            MediaKind::Screen => Box::new(TestPattern::new(
                self.width * 2,
                self.height * 2,
                (self.fps / 3).max(1),
            )),
            _ => Box::new(TestPattern::new(self.width, self.height, self.fps)),
        })
    }

    fn audio(&self) -> Result<Box<dyn AudioSource>, MediaError> {
        Ok(Box::new(Tone::speech_like()))
    }
}

/// A moving colour-bar video source with a [`stamp`] in every frame.
///
/// Diagonal bars shift about 1/80 of the width per frame (at least 4 pixels) and a white box bounces around, so any two
/// consecutive frames differ clearly and a frozen stream is obvious both to eyes and to pixel
/// comparisons; the stamp carries the frame number and capture time for latency measurement.
pub struct TestPattern {
    width: u32,
    height: u32,
    fps: u32,
    /// One bar period plus a row's width of luma, so any shifted row is a single contiguous copy.
    luma_strip: Vec<u8>,
    u_strip: Vec<u8>,
    v_strip: Vec<u8>,
    /// Bar pattern period in luma pixels (even).
    period: usize,
    /// Pixels the bars move per frame; even so the half-resolution chroma moves in whole samples.
    speed: usize,
    pacer: Pacer,
    emitted: u32,
}

impl TestPattern {
    /// A `width` x `height` pattern at `fps` frames per second.
    ///
    /// Dimensions below 2 are raised to 2 and `fps` to at least 1, so a bad config yields a
    /// usable (if odd) picture rather than a panic; frames narrower than
    /// [`stamp::MIN_WIDTH`] carry no stamp.
    pub fn new(width: u32, height: u32, fps: u32) -> Self {
        let (width, height, fps) = (width.max(2), height.max(2), fps.max(1));
        let bar_width = ((width as usize / BARS.len()) & !1).max(2);
        let period = bar_width * BARS.len();
        let chroma_width = width.div_ceil(2) as usize;
        let luma_strip = (0..width as usize + period)
            .map(|i| BARS[(i / bar_width) % BARS.len()].0)
            .collect();
        // Chroma sample j covers luma pixels 2j and 2j+1, which lie in the same (even-width) bar.
        let chroma = |pick: fn(&(u8, u8, u8)) -> u8| -> Vec<u8> {
            (0..chroma_width + period / 2)
                .map(|j| pick(&BARS[(2 * j / bar_width) % BARS.len()]))
                .collect()
        };
        TestPattern {
            width,
            height,
            fps,
            luma_strip,
            u_strip: chroma(|c| c.1),
            v_strip: chroma(|c| c.2),
            period,
            speed: ((width as usize / 80) & !1).max(4),
            pacer: Pacer::from_fps(fps),
            emitted: 0,
        }
    }

    /// Frame `n` of the pattern, stamped with `n` and `capture_ms`, without waiting.
    ///
    /// Its `pts` is `n / fps` seconds. Cheap (row copies and fills only) so benchmarks measure the
    /// pipeline rather than the generator.
    pub fn frame_at(&mut self, n: u32, capture_ms: u64) -> VideoFrame {
        let (w, h) = (self.width as usize, self.height as usize);
        let (cw, ch) = (
            self.width.div_ceil(2) as usize,
            self.height.div_ceil(2) as usize,
        );
        let (y_size, c_size) = plane_sizes(self.width, self.height);
        let mut data = vec![0u8; y_size + 2 * c_size];
        let shift = (n as usize % self.period) * self.speed;

        let (y_plane, chroma) = data.split_at_mut(y_size);
        let (u_plane, v_plane) = chroma.split_at_mut(c_size);
        for (y, row) in y_plane.chunks_exact_mut(w).enumerate() {
            let off = (y + shift) % self.period;
            row.copy_from_slice(&self.luma_strip[off..off + w]);
        }
        for (cy, (u_row, v_row)) in u_plane
            .chunks_exact_mut(cw)
            .zip(v_plane.chunks_exact_mut(cw))
            .enumerate()
        {
            let off = ((2 * cy + shift) % self.period) / 2;
            u_row.copy_from_slice(&self.u_strip[off..off + cw]);
            v_row.copy_from_slice(&self.v_strip[off..off + cw]);
        }

        // The bouncing box stays below the stamp band so it never corrupts the stamp's blocks.
        let top = (stamp::band_height(self.width) as usize + 2).min(h);
        let size = ((h / 4) & !1).max(2).min(w).min(h - top);
        let bx = bounce((n as usize).wrapping_mul(6), w - size) & !1;
        let by = (top + bounce((n as usize).wrapping_mul(4), h - top - size)) & !1;
        for row in y_plane.chunks_exact_mut(w).skip(by).take(size) {
            row[bx..bx + size].fill(235);
        }
        for cy in by / 2..((by + size) / 2).min(ch) {
            let span = cy * cw + bx / 2..cy * cw + ((bx + size) / 2).min(cw);
            u_plane[span.clone()].fill(128);
            v_plane[span].fill(128);
        }

        let mut frame = VideoFrame {
            width: self.width,
            height: self.height,
            data,
            pts: Duration::from_secs(u64::from(n)) / self.fps,
        };
        stamp::write(
            &mut frame,
            Stamp {
                frame_no: n,
                capture_ms,
            },
        );
        frame
    }
}

/// A triangle wave: 0, 1, ..., range, range-1, ..., 0, ... (0 when `range` is 0).
fn bounce(t: usize, range: usize) -> usize {
    if range == 0 {
        return 0;
    }
    let phase = t % (2 * range);
    if phase <= range {
        phase
    } else {
        2 * range - phase
    }
}

impl VideoSource for TestPattern {
    /// Frame numbers count frames actually delivered, so a receiver seeing a gap knows the
    /// frame was lost downstream; `pts` follows the pacer's schedule, including any skipped
    /// slots, and the stamp's capture time is taken just before the picture is drawn.
    fn next_frame(&mut self) -> Result<VideoFrame, MediaError> {
        let tick = self.pacer.wait();
        let n = self.emitted;
        self.emitted = self.emitted.wrapping_add(1);
        let mut frame = self.frame_at(n, stamp::now_ms());
        frame.pts = self.pacer.pts(tick);
        Ok(frame)
    }

    fn describe(&self) -> String {
        format!(
            "test pattern {}x{} @ {} fps",
            self.width, self.height, self.fps
        )
    }
}

/// How the tone's loudness varies over time.
#[derive(Clone, Copy, Debug)]
enum Envelope {
    Steady,
    Speech,
}

/// Peak amplitude of -12 dBFS: loud enough to be clearly "speaking", with headroom for mixing.
const TONE_PEAK: f32 = 32767.0 * 0.251_188_64;
/// Speech-like pattern: 1.5 s of syllables, then a 1 s pause.
const SPEECH_CYCLE: u64 = SAMPLE_RATE as u64 * 5 / 2;
const SPEECH_TALK: u64 = SAMPLE_RATE as u64 * 3 / 2;
/// Syllables per second, the typical rate of conversational speech.
const SYLLABLE_HZ: f32 = 4.0;
/// Relative loudness of successive syllables, so the signal is not perfectly periodic.
const SYLLABLE_GAIN: [f32; 6] = [1.0, 0.6, 0.85, 0.5, 0.9, 0.7];

/// A synthetic audio source: a sine tone, optionally shaped like speech.
pub struct Tone {
    /// Frequency in milli-hertz, so the phase can be computed exactly from the sample index.
    freq_mhz: u64,
    envelope: Envelope,
    pacer: Pacer,
    emitted: u64,
}

impl Tone {
    /// A steady sine at `freq_hz` (clamped to 0..=24000 Hz) with a -12 dBFS peak.
    pub fn new(freq_hz: f32) -> Self {
        let freq_mhz = (freq_hz.clamp(0.0, SAMPLE_RATE as f32 / 2.0) * 1000.0).round() as u64;
        Tone {
            freq_mhz,
            envelope: Envelope::Steady,
            pacer: Pacer::new(FRAME),
            emitted: 0,
        }
    }

    /// A 220 Hz tone whose loudness rises and falls like syllables (~4 per second) for 1.5 s,
    /// then pauses for 1 s, repeating: something for voice-activity detection to find and lose.
    pub fn speech_like() -> Self {
        Tone {
            envelope: Envelope::Speech,
            ..Self::new(220.0)
        }
    }

    /// Frame `n` (samples `960n ..960n+960`), without waiting; `pts` is `n * 20 ms`.
    ///
    /// The phase is a function of the absolute sample index, so consecutive frames join without
    /// a click whatever order they are generated in.
    pub fn frame_at(&mut self, n: u64) -> AudioFrame {
        let first = n.saturating_mul(SAMPLES_PER_FRAME as u64);
        let cycle = u128::from(SAMPLE_RATE) * 1000;
        let samples = (first..first + SAMPLES_PER_FRAME as u64)
            .map(|i| {
                let phase =
                    (u128::from(self.freq_mhz) * u128::from(i) % cycle) as f32 / cycle as f32;
                let gain = match self.envelope {
                    Envelope::Steady => 1.0,
                    Envelope::Speech => speech_gain(i),
                };
                ((2.0 * PI * phase).sin() * TONE_PEAK * gain).round() as i16
            })
            .collect();
        AudioFrame {
            samples,
            pts: FRAME.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX)),
        }
    }
}

const FRAME: Duration = Duration::from_millis(20);

/// Loudness (0..=1) of the speech-like envelope at absolute sample `i`.
fn speech_gain(i: u64) -> f32 {
    let in_cycle = i % SPEECH_CYCLE;
    if in_cycle >= SPEECH_TALK {
        return 0.0;
    }
    let t = in_cycle as f32 / SAMPLE_RATE as f32;
    let syllable = (t * SYLLABLE_HZ) as usize % SYLLABLE_GAIN.len();
    // sin^2 gives one smooth swell per syllable, touching zero briefly between syllables.
    let swell = (PI * SYLLABLE_HZ * t).sin();
    swell * swell * SYLLABLE_GAIN[syllable]
}

impl AudioSource for Tone {
    /// Frames are numbered by delivery, so the waveform stays continuous even if the pacer had
    /// to skip slots; `pts` follows the pacer's schedule.
    fn next_frame(&mut self) -> Result<AudioFrame, MediaError> {
        let tick = self.pacer.wait();
        let n = self.emitted;
        self.emitted += 1;
        let mut frame = self.frame_at(n);
        frame.pts = self.pacer.pts(tick);
        Ok(frame)
    }

    fn describe(&self) -> String {
        let hz = self.freq_mhz as f64 / 1000.0;
        match self.envelope {
            Envelope::Steady => format!("{hz} Hz tone"),
            Envelope::Speech => format!("speech-like {hz} Hz tone"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mixer::{level_dbfs, VoiceActivity};

    #[test]
    fn frames_are_well_formed_stamped_and_moving() {
        for (w, h) in [(160, 90), (320, 180), (640, 360), (1280, 720), (321, 181)] {
            let mut p = TestPattern::new(w, h, 30);
            let a = p.frame_at(10, 1_000);
            let b = p.frame_at(11, 1_033);
            assert!(a.is_well_formed() && b.is_well_formed(), "{w}x{h}");
            assert_eq!(
                stamp::read(&a),
                Some(Stamp {
                    frame_no: 10,
                    capture_ms: 1_000
                })
            );
            assert_eq!(
                stamp::read(&b),
                Some(Stamp {
                    frame_no: 11,
                    capture_ms: 1_033
                })
            );
            // Below the stamp band, a clear share of the picture changes between frames.
            let band = (stamp::band_height(w) * w) as usize;
            let changed = a.y()[band..]
                .iter()
                .zip(&b.y()[band..])
                .filter(|(p, q)| p != q)
                .count();
            assert!(
                changed * 20 > a.y().len() - band,
                "{w}x{h}: only {changed} pixels moved"
            );
            assert_eq!(a.pts, Duration::from_nanos(333_333_333));
        }
    }

    #[test]
    fn generation_is_deterministic_and_tiny_sizes_do_not_panic() {
        let mut p = TestPattern::new(640, 360, 30);
        assert_eq!(p.frame_at(5, 7), p.frame_at(5, 7));
        for (w, h) in [(0, 0), (1, 1), (2, 2), (3, 7), (17, 3)] {
            let f = TestPattern::new(w, h, 0).frame_at(u32::MAX, 0);
            assert!(f.is_well_formed(), "{w}x{h}");
        }
    }

    #[test]
    fn video_source_paces_and_counts() {
        let mut p = TestPattern::new(320, 180, 100);
        let t0 = std::time::Instant::now();
        let frames: Vec<_> = (0..3).map(|_| p.next_frame().unwrap()).collect();
        assert!(t0.elapsed() >= Duration::from_millis(20));
        let numbers: Vec<_> = frames
            .iter()
            .map(|f| stamp::read(f).unwrap().frame_no)
            .collect();
        assert_eq!(numbers, [0, 1, 2]);
        assert!(p.describe().contains("320x180"));
    }

    #[test]
    fn tone_is_about_minus_12_dbfs_peak_and_phase_continuous() {
        let mut t = Tone::new(1000.0);
        let a = t.frame_at(0);
        let b = t.frame_at(1);
        let peak = a.samples.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!((8100..=8300).contains(&peak), "peak {peak}");
        // A -12 dBFS-peak sine has an RMS of about -15 dBFS.
        assert!((level_dbfs(&a) + 15.0).abs() < 0.5, "{}", level_dbfs(&a));
        // Continuous: the step across the frame boundary is no bigger than within a frame.
        let max_step = |s: &[i16]| s.windows(2).map(|w| (w[1] - w[0]).abs()).max().unwrap();
        let join = (b.samples[0] - a.samples[959]).abs();
        assert!(join <= max_step(&a.samples) + 1, "join {join}");
        assert_eq!(b.pts, Duration::from_millis(20));
        assert_eq!(t.frame_at(1), b);
    }

    #[test]
    fn speech_like_toggles_voice_activity_without_flicker() {
        let mut t = Tone::speech_like();
        let mut vad = VoiceActivity::new();
        // Two full 2.5 s cycles of 20 ms frames.
        let states: Vec<bool> = (0..250)
            .map(|n| vad.update(level_dbfs(&t.frame_at(n))))
            .collect();
        let toggles = states.windows(2).filter(|w| w[0] != w[1]).count();
        // On at the start of each talk spurt, off once per pause: no flicker between syllables.
        assert_eq!(toggles, 4, "{states:?}");
        assert!(states[10..70].iter().all(|&s| s));
        assert!(states[95..120].iter().all(|&s| !s));
    }

    #[test]
    fn audio_source_paces() {
        let mut t = Tone::new(440.0);
        let t0 = std::time::Instant::now();
        for _ in 0..3 {
            assert_eq!(t.next_frame().unwrap().samples.len(), SAMPLES_PER_FRAME);
        }
        assert!(t0.elapsed() >= Duration::from_millis(40));
        assert_eq!(t.describe(), "440 Hz tone");
    }

    /// Prints (does not assert) generation cost; run with
    /// `cargo test --release -p media generation_timing -- --nocapture`.
    #[test]
    fn generation_timing() {
        let mut p = TestPattern::new(640, 360, 30);
        let rounds = 200u32;
        let t0 = std::time::Instant::now();
        for n in 0..rounds {
            std::hint::black_box(p.frame_at(n, 0));
        }
        let video = t0.elapsed() / rounds;
        let mut t = Tone::speech_like();
        let t0 = std::time::Instant::now();
        for n in 0..u64::from(rounds) {
            std::hint::black_box(t.frame_at(n));
        }
        let audio = t0.elapsed() / rounds;
        let frame = p.frame_at(1, 2);
        let t0 = std::time::Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(stamp::read(std::hint::black_box(&frame)));
        }
        let read = t0.elapsed() / rounds;
        println!("640x360: TestPattern::frame_at {video:?}, stamp::read {read:?}; Tone::frame_at {audio:?}");
    }
}
