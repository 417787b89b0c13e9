//! Firebase push IDs: 8 characters of millisecond timestamp and 12 random ones, in an alphabet that
//! sorts in ASCII order, so IDs sort by creation time. Within one millisecond the random part is
//! incremented, so IDs from one generator are strictly increasing.

use rand::Rng;

const ALPHABET: &[u8; 64] = b"-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";

/// Generates increasing push IDs.
#[derive(Default)]
pub struct PushIds {
    last_ms: u64,
    last_rand: [u8; 12],
}

impl PushIds {
    /// The next ID for time `now_ms`.
    pub fn next(&mut self, now_ms: u64) -> String {
        let now_ms = now_ms.max(self.last_ms);
        if now_ms == self.last_ms {
            // Increment the random part as a base-64 number (carrying leftwards).
            for digit in self.last_rand.iter_mut().rev() {
                if *digit == 63 {
                    *digit = 0;
                } else {
                    *digit += 1;
                    break;
                }
            }
        } else {
            let mut rng = rand::rng();
            for digit in self.last_rand.iter_mut() {
                *digit = rng.random_range(0..64);
            }
            self.last_ms = now_ms;
        }
        let mut id = [0u8; 20];
        let mut t = now_ms;
        for slot in id[..8].iter_mut().rev() {
            *slot = ALPHABET[(t % 64) as usize];
            t /= 64;
        }
        for (slot, d) in id[8..].iter_mut().zip(self.last_rand) {
            *slot = ALPHABET[d as usize];
        }
        id.iter().map(|&b| b as char).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_20_chars_and_strictly_increasing() {
        let mut g = PushIds::default();
        let mut prev = String::new();
        for i in 0..2000u64 {
            let id = g.next(1_700_000_000_000 + i / 100);
            assert_eq!(id.len(), 20);
            assert!(id > prev, "{id} <= {prev}");
            assert!(crate::path::validate_key(&id).is_ok());
            prev = id;
        }
    }
}
