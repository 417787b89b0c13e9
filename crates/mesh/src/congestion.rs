//! Send-side congestion control: Google Congestion Control (from webrtc-rs's interceptors) runs
//! on every connection, and the ONE encoder of each source follows the weakest connection's
//! estimate, because the same encoded frames go to everyone (and webrtc-rs paces each
//! connection to its estimate: an encoder above it would only fill the pacer's queue).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rtc::interceptor::{BandwidthEstimator, EstimatorStats, Gcc, PacketReport};

/// Lowest video bitrate we ask of the encoder.
pub const MIN_VIDEO_KBPS: u32 = 50;
/// Highest.
pub const MAX_VIDEO_KBPS: u32 = 2_500;
/// What audio and RTP/RTCP overhead take out of an estimate before video gets the rest.
pub const RESERVED_KBPS: u32 = 64;

/// A connection's current estimate, in bits per second, readable from any thread.
#[derive(Clone, Debug)]
pub struct Estimate(Arc<AtomicU64>);

impl Estimate {
    /// The latest target bitrate in bits per second.
    pub fn bps(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// GCC, publishing its target after every update that can move it.
pub struct Reporting<E: BandwidthEstimator> {
    inner: E,
    target: Arc<AtomicU64>,
}

impl<E: BandwidthEstimator> Reporting<E> {
    fn publish(&self) {
        self.target
            .store(self.inner.target_bitrate().to_bits(), Ordering::Relaxed);
    }
}

impl<E: BandwidthEstimator> BandwidthEstimator for Reporting<E> {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        self.inner.on_reports(now, reports);
        self.publish();
    }

    fn target_bitrate(&self) -> f64 {
        self.inner.target_bitrate()
    }

    fn handle_timeout(&mut self, now: Instant) {
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

/// A GCC estimator for one connection (starting at `start_kbps`) and the handle to read it.
pub fn gcc(start_kbps: u32) -> (Reporting<Gcc>, Estimate) {
    let to_bps = |kbps: u32| f64::from(kbps) * 1000.0;
    let inner = Gcc::new(
        to_bps(start_kbps + RESERVED_KBPS),
        to_bps(MIN_VIDEO_KBPS + RESERVED_KBPS),
        to_bps(MAX_VIDEO_KBPS + RESERVED_KBPS) * 1.5,
    );
    let target = Arc::new(AtomicU64::new(inner.target_bitrate().to_bits()));
    (
        Reporting {
            inner,
            target: target.clone(),
        },
        Estimate(target),
    )
}

/// The video bitrate for the one encoder, given every connection's estimate (bps): the weakest
/// connection's, less what audio and overhead need, within our bounds. `None` with no peers.
pub fn encoder_kbps(estimates_bps: impl IntoIterator<Item = f64>) -> Option<u32> {
    let weakest = estimates_bps
        .into_iter()
        .filter(|b| b.is_finite() && *b > 0.0)
        .reduce(f64::min)?;
    let video = (weakest / 1000.0) as u32;
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
            Some(600 - RESERVED_KBPS)
        );
        assert_eq!(encoder_kbps([50_000.0]), Some(MIN_VIDEO_KBPS));
        assert_eq!(encoder_kbps([90_000_000.0]), Some(MAX_VIDEO_KBPS));
        assert_eq!(
            encoder_kbps([f64::NAN, 800_000.0]),
            Some(800 - RESERVED_KBPS)
        );
    }

    #[test]
    fn a_new_estimator_publishes_its_starting_rate() {
        let (est, handle) = gcc(800);
        assert!((handle.bps() - est.target_bitrate()).abs() < 1.0);
        assert!(handle.bps() >= 800_000.0);
    }
}
