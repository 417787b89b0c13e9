//! Reconnect policy as a small pure function: exponential backoff with full jitter, so many
//! clients that lost the same server do not all come back in the same millisecond.

use std::time::Duration;

/// Backoff state for one connection.
#[derive(Clone, Debug)]
pub struct Backoff {
    attempt: u32,
    base: Duration,
    max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_millis(200), Duration::from_secs(10))
    }
}

impl Backoff {
    /// Delays start at `base` and double up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            attempt: 0,
            base,
            max,
        }
    }

    /// The delay before the next attempt; `unit_random` in `[0, 1)` picks within the window.
    pub fn next_delay(&mut self, unit_random: f64) -> Duration {
        let window = self
            .base
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        // Never zero: a tight loop against a dead server helps nobody.
        window
            .mul_f64(unit_random.clamp(0.0, 1.0))
            .max(self.base / 4)
    }

    /// A connection worked: start again from the base delay.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_double_up_to_the_cap_and_reset() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let full: Vec<u128> = (0..6)
            .map(|_| b.next_delay(0.999_999).as_millis())
            .collect();
        assert_eq!(full, [99, 199, 399, 799, 999, 999]);
        b.reset();
        assert_eq!(b.next_delay(0.5), Duration::from_millis(50));
        assert_eq!(
            b.next_delay(0.0),
            Duration::from_millis(25),
            "floor of base/4"
        );
    }
}
