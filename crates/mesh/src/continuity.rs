//! Which received video frames may be decoded and shown: after a loss, none until a keyframe.
//!
//! Reassembly (`SampleBuilder`) only hands out frames whose own packets all arrived, but a frame
//! that was lost whole, or given up half-way, leaves no trace in what comes next. VP8 (and
//! H.264) delta frames then decode "fine" against the wrong reference: the picture is garbage
//! until the next keyframe, and the decoder cannot tell. So the receiver checks that the RTP
//! sequence numbers of consecutive frames are contiguous; after a gap it holds every delta frame
//! back (the last good picture stays on screen, as libwebrtc does) and asks for a keyframe until
//! one arrives. Pure: the receive task feeds it packets and frames.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How often a receiver waiting for a keyframe repeats its request (PLI): a request or the
/// keyframe answering it may be lost too. The sender honours one per 500 ms.
pub const PLI_REPEAT: Duration = Duration::from_millis(300);
/// Frames whose sequence ranges are remembered (about 4 s at 30 fps): more than reassembly holds.
const TRACKED_FRAMES: usize = 128;

/// The verdict on one reassembled frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Hand it to the decoder.
    pub decode: bool,
    /// Send a keyframe request now.
    pub request_keyframe: bool,
}

/// Tracks sequence-number continuity between the frames of one video track.
#[derive(Debug)]
pub struct Continuity {
    /// (RTP timestamp, first and last sequence number seen with it), oldest first.
    frames: VecDeque<(u32, u16, u16)>,
    /// Last sequence number of the last frame handed on (decoded or held back).
    last_end: Option<u16>,
    /// No intact reference picture: only a keyframe may be decoded.
    broken: bool,
    last_request: Option<Instant>,
    /// Frames held back so far.
    pub held_back: u64,
}

impl Default for Continuity {
    fn default() -> Self {
        Self::new()
    }
}

/// `a` comes after `b` in sequence-number order (wrapping).
fn after(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

impl Continuity {
    /// A track that has shown nothing yet: it starts from a keyframe.
    pub fn new() -> Self {
        Continuity {
            frames: VecDeque::new(),
            last_end: None,
            broken: true,
            last_request: None,
            held_back: 0,
        }
    }

    /// A media packet (non-empty payload) with this timestamp and sequence number arrived.
    pub fn packet(&mut self, timestamp: u32, seq: u16) {
        if let Some(entry) = self.frames.iter_mut().rev().find(|f| f.0 == timestamp) {
            if after(entry.1, seq) {
                entry.1 = seq;
            }
            if after(seq, entry.2) {
                entry.2 = seq;
            }
            return;
        }
        if self.frames.len() >= TRACKED_FRAMES {
            self.frames.pop_front();
        }
        self.frames.push_back((timestamp, seq, seq));
    }

    /// Reassembly produced the frame with this timestamp; `dropped` packets were thrown away
    /// before it (an incomplete frame) and `keyframe` says whether it is one. Decide.
    pub fn frame(&mut self, timestamp: u32, keyframe: bool, dropped: u16, now: Instant) -> Verdict {
        let range = self.frames.iter().position(|f| f.0 == timestamp).map(|i| {
            let range = (self.frames[i].1, self.frames[i].2);
            self.frames.drain(..=i);
            range
        });
        let contiguous = match (range, self.last_end) {
            (Some((first, _)), Some(end)) => first == end.wrapping_add(1),
            // The frame's packets were never seen (cannot happen) or nothing came before.
            _ => false,
        };
        if let Some((_, last)) = range {
            self.last_end = Some(last);
        }
        if keyframe {
            self.broken = false;
        } else if !contiguous || dropped > 0 {
            self.broken = true;
        }
        if !self.broken {
            return Verdict {
                decode: true,
                request_keyframe: false,
            };
        }
        self.held_back += 1;
        Verdict {
            decode: false,
            request_keyframe: self.request_due(now),
        }
    }

    /// The decoder refused a frame: nothing after it can be trusted until a keyframe. True when
    /// a keyframe request should go out now.
    pub fn undecodable(&mut self, now: Instant) -> bool {
        self.broken = true;
        self.request_due(now)
    }

    fn request_due(&mut self, now: Instant) -> bool {
        match self.last_request {
            Some(at) if now.saturating_duration_since(at) < PLI_REPEAT => false,
            _ => {
                self.last_request = Some(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(c: &mut Continuity, ts: u32, seqs: std::ops::RangeInclusive<u16>) {
        for s in seqs {
            c.packet(ts, s);
        }
    }

    #[test]
    fn frames_after_a_gap_wait_for_a_keyframe_asking_at_a_bounded_rate() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut c = Continuity::new();
        // A delta frame first: nothing to decode it against.
        feed(&mut c, 100, 10..=11);
        let v = c.frame(100, false, 0, t0);
        assert!(!v.decode && v.request_keyframe);
        // The keyframe, then contiguous deltas (across the sequence-number wrap).
        feed(&mut c, 200, 12..=20);
        assert!(c.frame(200, true, 0, t0 + ms(350)).decode);
        feed(&mut c, 300, 21..=21);
        assert!(c.frame(300, false, 0, t0 + ms(380)).decode);
        // Frame 400 (22..=23) is lost whole: 500 decodes "fine" but must not be shown.
        feed(&mut c, 500, 24..=24);
        let v = c.frame(500, false, 0, t0 + ms(400));
        assert!(!v.decode && v.request_keyframe);
        feed(&mut c, 600, 25..=25);
        let v = c.frame(600, false, 0, t0 + ms(480));
        assert!(!v.decode && !v.request_keyframe, "asked 80 ms ago");
        feed(&mut c, 700, 26..=26);
        let v = c.frame(700, false, 0, t0 + ms(750));
        assert!(!v.decode && v.request_keyframe, "asked again");
        feed(&mut c, 800, 27..=30);
        assert!(c.frame(800, true, 0, t0 + ms(800)).decode);
        // Packets dropped by reassembly (a frame given up half-way) break the chain too.
        feed(&mut c, 900, 31..=31);
        assert!(!c.frame(900, false, 2, t0 + ms(830)).decode);
        assert_eq!(c.held_back, 5);
        // Wrapping sequence numbers and packets out of order.
        let mut c = Continuity::new();
        feed(&mut c, 1, 65534..=65535);
        assert!(c.frame(1, true, 0, t0).decode);
        c.packet(2, 1);
        c.packet(2, 0);
        assert!(c.frame(2, false, 0, t0).decode);
        assert!(c.undecodable(t0 + ms(1000)));
        c.packet(3, 2);
        assert!(!c.frame(3, false, 0, t0 + ms(1001)).decode);
    }
}
