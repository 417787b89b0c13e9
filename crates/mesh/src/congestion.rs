//! Send-side congestion control: Google Congestion Control (from webrtc-rs's interceptors) runs
//! on every connection, and the ONE encoder of each source follows the weakest connection's
//! estimate, because the same encoded frames go to everyone (and webrtc-rs paces each
//! connection to its estimate: an encoder above it would only fill the pacer's queue).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::interceptor::{BandwidthEstimator, EstimatorStats, Gcc, PacketReport};

/// Lowest video bitrate we ask of the encoder.
pub const MIN_VIDEO_KBPS: u32 = 50;
pub const MAX_VIDEO_KBPS: u32 = 2_500;
/// What audio and RTP/RTCP overhead take out of an estimate before video gets the rest.
pub const RESERVED_KBPS: u32 = 64;
/// Share of the estimate the encoder may use. The pacer sends at the estimate; an encoder at the
/// same rate would keep whatever queued up (after a loss of path, a keyframe) standing forever.
pub const ENCODER_SHARE: f64 = 0.85;
/// Where a fresh estimate starts: video at 600 kbit/s, a middle ground that probes up quickly on
/// a good path and backs off within a second or two on a poor one.
const START_KBPS: u32 = 600;

/// The estimate may exceed what the receiver acknowledged by this factor (plus
/// [`ACKED_HEADROOM_BPS`]), as in libwebrtc. webrtc-rs 0.21's GCC has no such bound: while the
/// encoder sends less than the estimate (a simple picture, a low frame rate) nothing pushes
/// back, the estimate climbs far above the path, and the pacer, which paces at the estimate,
/// then bursts the next keyframe into the bottleneck faster than it drains (measured with
/// `scripts/bench-congestion.sh 300kbit`: estimates up to 640 kbit/s, keyframes cut, video
/// frozen for seconds).
pub const ACKED_FACTOR: f64 = 1.5;
/// See [`ACKED_FACTOR`].
pub const ACKED_HEADROOM_BPS: f64 = 10_000.0;
/// How much acknowledged traffic the bound looks at, and the least it needs to say anything.
const ACKED_WINDOW: Duration = Duration::from_secs(1);
const ACKED_MIN_SPAN: Duration = Duration::from_millis(500);

/// The rate the receiver acknowledged over the last second, from congestion feedback.
#[derive(Debug, Default)]
struct Acked {
    /// (when reported, bytes that arrived).
    reports: VecDeque<(Instant, usize)>,
    since: Option<Instant>,
}

impl Acked {
    fn add(&mut self, now: Instant, bytes: usize) {
        self.since.get_or_insert(now);
        self.reports.push_back((now, bytes));
        while self
            .reports
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > ACKED_WINDOW)
        {
            self.reports.pop_front();
        }
    }

    /// Bits per second, once feedback has covered enough time to say.
    fn bps(&self, now: Instant) -> Option<f64> {
        let since = self.since?;
        if now.saturating_duration_since(since) < ACKED_MIN_SPAN {
            return None;
        }
        let span = now
            .saturating_duration_since(since)
            .min(ACKED_WINDOW)
            .as_secs_f64();
        let bytes: usize = self
            .reports
            .iter()
            .filter(|(at, _)| now.saturating_duration_since(*at) <= ACKED_WINDOW)
            .map(|(_, b)| b)
            .sum();
        Some(bytes as f64 * 8.0 / span)
    }
}

/// A connection's current estimate, readable from any thread, and restartable.
#[derive(Clone, Debug)]
pub struct Estimate {
    target: Arc<AtomicU64>,
    restart: Arc<AtomicBool>,
}

impl Estimate {
    /// The latest target bitrate in bits per second.
    pub fn bps(&self) -> f64 {
        f64::from_bits(self.target.load(Ordering::Relaxed))
    }

    /// The path changed (the link came back after a loss): estimate afresh instead of climbing
    /// slowly from the collapse the outage caused, as libwebrtc does on a route change.
    pub fn restart(&self) {
        self.restart.store(true, Ordering::Relaxed);
    }
}

/// An estimator that publishes its target after every update that can move it.
/// It also bounds the estimate by what the receiver acknowledged (see [`ACKED_FACTOR`]).
pub struct Reporting<E: BandwidthEstimator> {
    inner: E,
    fresh: fn() -> E,
    target: Arc<AtomicU64>,
    restart: Arc<AtomicBool>,
    acked: Acked,
    /// The bound from the last update (infinite until feedback says something).
    ceiling: f64,
    floor: f64,
}

impl<E: BandwidthEstimator> Reporting<E> {
    fn publish(&self) {
        let bps = self.target_bitrate();
        self.target.store(bps.to_bits(), Ordering::Relaxed);
    }

    fn maybe_restart(&mut self) {
        if self.restart.swap(false, Ordering::Relaxed) {
            self.inner = (self.fresh)();
            self.acked = Acked::default();
            self.ceiling = f64::INFINITY;
        }
    }
}

impl<E: BandwidthEstimator> BandwidthEstimator for Reporting<E> {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        self.maybe_restart();
        self.inner.on_reports(now, reports);
        let arrived = reports.iter().filter(|r| r.arrived).map(|r| r.size).sum();
        self.acked.add(now, arrived);
        if let Some(acked) = self.acked.bps(now) {
            self.ceiling = (acked * ACKED_FACTOR + ACKED_HEADROOM_BPS).max(self.floor);
        }
        self.publish();
    }

    fn target_bitrate(&self) -> f64 {
        self.inner.target_bitrate().min(self.ceiling)
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.maybe_restart();
        self.inner.handle_timeout(now);
        self.publish();
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }

    fn stats(&self) -> EstimatorStats {
        self.inner.stats()
    }
}

fn fresh_gcc() -> Gcc {
    let to_bps = |kbps: u32| f64::from(kbps) * 1000.0;
    Gcc::new(
        to_bps(START_KBPS + RESERVED_KBPS),
        to_bps(MIN_VIDEO_KBPS + RESERVED_KBPS),
        to_bps(MAX_VIDEO_KBPS + RESERVED_KBPS) * 1.5,
    )
}

/// A GCC estimator for one connection and the handle to read (and restart) it.
pub fn gcc() -> (Reporting<Gcc>, Estimate) {
    let inner = fresh_gcc();
    let target = Arc::new(AtomicU64::new(inner.target_bitrate().to_bits()));
    let restart = Arc::new(AtomicBool::new(false));
    let estimate = Estimate {
        target: target.clone(),
        restart: restart.clone(),
    };
    let reporting = Reporting {
        inner,
        fresh: fresh_gcc,
        target,
        restart,
        acked: Acked::default(),
        ceiling: f64::INFINITY,
        floor: f64::from(MIN_VIDEO_KBPS + RESERVED_KBPS) * 1000.0,
    };
    (reporting, estimate)
}

/// The video bitrate for the one encoder, given every connection's estimate (bps): a share of
/// the weakest connection's, less what audio and overhead need, within our bounds. `None` with
/// no peers.
pub fn encoder_kbps(estimates_bps: impl IntoIterator<Item = f64>) -> Option<u32> {
    let weakest = estimates_bps
        .into_iter()
        .filter(|b| b.is_finite() && *b > 0.0)
        .reduce(f64::min)?;
    let video = (weakest * ENCODER_SHARE / 1000.0) as u32;
    Some(
        video
            .saturating_sub(RESERVED_KBPS)
            .clamp(MIN_VIDEO_KBPS, MAX_VIDEO_KBPS),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weakest_connection_sets_the_encoder_rate_within_bounds() {
        assert_eq!(encoder_kbps([]), None);
        assert_eq!(
            encoder_kbps([2_000_000.0, 600_000.0, 1_200_000.0]),
            Some(510 - RESERVED_KBPS)
        );
        assert_eq!(encoder_kbps([50_000.0]), Some(MIN_VIDEO_KBPS));
        assert_eq!(encoder_kbps([90_000_000.0]), Some(MAX_VIDEO_KBPS));
        assert_eq!(
            encoder_kbps([f64::NAN, 800_000.0]),
            Some(680 - RESERVED_KBPS)
        );
    }

    #[test]
    fn an_estimator_publishes_its_rate_and_restarts_at_the_start_rate() {
        let (mut est, handle) = gcc();
        let start = handle.bps();
        assert!((start - est.target_bitrate()).abs() < 1.0);
        assert!(start >= f64::from(START_KBPS) * 1000.0);
        // As if an outage had driven it to the floor.
        est.inner = Gcc::new(100_000.0, 100_000.0, 1_000_000.0);
        est.publish();
        assert!(handle.bps() < start);
        handle.restart();
        est.handle_timeout(Instant::now());
        assert!(
            (handle.bps() - start).abs() < start * 0.1,
            "{} vs {start}",
            handle.bps()
        );
    }

    #[test]
    fn the_estimate_stays_within_reach_of_what_was_acknowledged() {
        use rtc::rtcp::transport_feedbacks::cc_feedback_report::Ecn;
        let (mut est, handle) = gcc();
        let t0 = Instant::now();
        let start = handle.bps();
        // 200 kbit/s acknowledged for a second and a half: 25 reports of 1000 bytes per 100 ms.
        for step in 0..15u64 {
            let now = t0 + Duration::from_millis(step * 100);
            let reports: Vec<PacketReport> = (0..25u64)
                .map(|i| PacketReport {
                    ssrc: 1,
                    id: step * 25 + i,
                    rtp_sequence_number: (step * 25 + i) as u16,
                    is_twcc: true,
                    twcc_sequence_number: (step * 25 + i) as u16,
                    size: 100,
                    arrived: true,
                    departure: now,
                    arrival: Some(Duration::from_millis(step * 100 + i)),
                    ecn: Ecn::default(),
                })
                .collect();
            est.on_reports(now, &reports);
        }
        let bound = 200_000.0 * ACKED_FACTOR + ACKED_HEADROOM_BPS;
        assert!(
            handle.bps() <= bound * 1.1 && handle.bps() < start,
            "{} vs bound {bound}",
            handle.bps()
        );
        // A restart forgets the bound: a new path may carry more.
        handle.restart();
        est.handle_timeout(t0 + Duration::from_secs(2));
        assert!((handle.bps() - start).abs() < start * 0.1);
    }
}
