//! Receive-side audio jitter buffer: turns 20 ms packets that arrive late, early, out of order,
//! twice or never into one packet (or a concealment request) per 20 ms playout tick.
//!
//! The buffer holds no clock: arrival and playout instants are passed in, so behaviour is a pure
//! function of its inputs and tests can replay any network timeline exactly.
//!
//! Delay control: the target delay tracks the spread of packet transit delays seen over the last
//! few seconds (the delay that would have been needed to play every one of them in time) plus
//! one frame of margin, between 40 and 200 ms. The actual delay follows the target by
//! concealing without consuming when the buffer runs dry or a packet is missing while the buffer
//! is shallower than the target (growing the delay), and by discarding at most one packet per
//! tick while the buffer is more than two frames deeper than the target (shrinking it).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// One packet's worth of audio time.
const FRAME: Duration = Duration::from_millis(20);
const FRAME_US: i64 = 20_000;
/// Bounds of the adaptive target: below 40 ms ordinary scheduling noise causes losses, above
/// 200 ms conversation starts to feel like a walkie-talkie.
pub const MIN_DELAY: Duration = Duration::from_millis(40);
/// Upper bound of the adaptive target delay.
pub const MAX_DELAY: Duration = Duration::from_millis(200);
/// Sequence-number span kept (1 s of audio); anything older is dropped to bound memory and delay.
const CAPACITY: i64 = 50;
/// How long a transit-delay observation influences the target: long enough to remember a
/// periodic hiccup (Wi-Fi scans), short enough to give the delay back after a one-off.
const JITTER_WINDOW: Duration = Duration::from_secs(5);
/// An arrival gap longer than this is a pause in sending (DTX, a sender stall), not network
/// jitter: the packet after it is assumed to have arrived as fast as the fastest recent one.
const TALKSPURT_GAP: Duration = Duration::from_millis(250);
/// Consecutive packets more than [`CAPACITY`] behind the newest that mean the sender restarted
/// its sequence numbers rather than the network replaying something ancient.
const STALE_RUN_RESTART: u32 = 3;
/// Extended sequence numbers start here so that packets "before" the first one stay positive.
const EXT_BASE: i64 = 1 << 32;

/// What to play for the current 20 ms tick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Playout {
    /// Decode and play this payload.
    Packet(Vec<u8>),
    /// No packet is available for this tick: run the decoder's loss concealment.
    Lost,
    /// The buffer is (re)filling to its target delay: play silence.
    Waiting,
}

/// Counters for diagnostics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Packets accepted into the buffer.
    pub received: u64,
    /// Packets handed out for playout.
    pub played: u64,
    /// Ticks answered with [`Playout::Lost`].
    pub concealed: u64,
    /// Sequence numbers given up on without ever having been played.
    pub lost: u64,
    /// Packets that arrived after their slot was played or given up (incl. played duplicates).
    pub late: u64,
    /// Packets that duplicated one still in the buffer.
    pub duplicates: u64,
    /// Packets dropped because they fell more than the capacity behind the newest one.
    pub overflow: u64,
    /// Packets discarded on purpose to bring the delay down to the target.
    pub discarded: u64,
    /// Sequence-number discontinuities (a jump of over a second either way) handled as a new
    /// stream.
    pub restarts: u64,
}

/// An adaptive jitter buffer for one audio stream of 20 ms packets numbered by RTP sequence.
#[derive(Debug, Default)]
pub struct JitterBuffer {
    packets: BTreeMap<i64, Vec<u8>>,
    /// Highest extended sequence number seen; the reference for unwrapping new ones.
    highest: Option<i64>,
    /// Next extended sequence number to play; kept while re-buffering so stale packets stay late.
    next_play: Option<i64>,
    playing: bool,
    buffering_since: Option<Instant>,
    underrun_ticks: u32,
    stale_run: u32,
    /// First arrival of the current talk spurt and its sequence number: the zero of the
    /// relative-delay scale.
    epoch: Option<(Instant, i64)>,
    last_arrival: Option<Instant>,
    /// Subtracted from relative delays so that pauses and restarts do not look like jitter.
    bias_us: i64,
    /// (arrival, relative transit delay µs), oldest first.
    delays: VecDeque<(Instant, i64)>,
    /// Spread (max - min) of the relative delays in `delays`.
    spread: Duration,
    stats: JitterStats,
}

impl JitterBuffer {
    /// An empty buffer with the minimum target delay.
    pub fn new() -> Self {
        Self::default()
    }

    /// [`JitterBuffer::push_at`] with the current time.
    pub fn push(&mut self, seq: u16, payload: Vec<u8>) {
        self.push_at(seq, payload, Instant::now());
    }

    /// [`JitterBuffer::pop_at`] with the current time.
    pub fn pop(&mut self) -> Playout {
        self.pop_at(Instant::now())
    }

    /// The current target delay: the recent transit-delay spread plus a frame, within bounds.
    pub fn target_delay(&self) -> Duration {
        (self.spread + FRAME).clamp(MIN_DELAY, MAX_DELAY)
    }

    /// Packets currently buffered.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// True when no packet is buffered.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// Counters since creation.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Accepts the packet `seq` that arrived at `now`.
    ///
    /// Late packets (their slot already played or given up) and duplicates are dropped. A jump
    /// of more than a second ahead (or several packets more than a second behind) is a new
    /// stream: the buffer restarts from it instead of concealing or dropping a second of audio.
    pub fn push_at(&mut self, seq: u16, payload: Vec<u8>, now: Instant) {
        let mut ext = self.unwrap_seq(seq);
        let mut restarted = false;
        if let Some(highest) = self.highest {
            let stale = ext < highest - CAPACITY;
            self.stale_run = if stale { self.stale_run + 1 } else { 0 };
            if ext > highest + CAPACITY || self.stale_run >= STALE_RUN_RESTART {
                self.restart();
                ext = self.unwrap_seq(seq);
                restarted = true;
            }
        }
        if self.next_play.is_some_and(|next| ext < next) {
            self.stats.late += 1;
            return;
        }
        if self.packets.contains_key(&ext) {
            self.stats.duplicates += 1;
            return;
        }
        self.observe_arrival(ext, now, restarted);
        let highest = self.highest.map_or(ext, |h| h.max(ext));
        self.highest = Some(highest);
        if !self.playing && self.buffering_since.is_none() {
            self.buffering_since = Some(now);
        }
        self.packets.insert(ext, payload);
        self.stats.received += 1;

        // Keep only the newest CAPACITY sequence numbers' worth of slots.
        let floor = highest + 1 - CAPACITY;
        while let Some(entry) = self.packets.first_entry() {
            if *entry.key() >= floor {
                break;
            }
            entry.remove();
            self.stats.overflow += 1;
        }
        if let Some(next) = self.next_play.filter(|&next| next < floor) {
            self.stats.lost += (floor - next) as u64;
            self.next_play = Some(floor);
        }
    }

    /// What to play for the 20 ms tick at `now`; call exactly once per tick.
    pub fn pop_at(&mut self, now: Instant) -> Playout {
        if !self.playing && !self.start_playing(now) {
            return Playout::Waiting;
        }
        let (Some(mut next), Some(highest)) = (self.next_play, self.highest) else {
            return Playout::Waiting;
        };
        let target = self.target_frames();

        // Too deep: skip holes for free, then sacrifice at most one packet per tick.
        while highest - next > target + 1 && !self.packets.contains_key(&next) {
            next += 1;
            self.stats.lost += 1;
        }
        if highest - next > target + 1 && self.packets.contains_key(&(next + 1)) {
            self.packets.remove(&next);
            next += 1;
            self.stats.discarded += 1;
        }
        self.next_play = Some(next);

        if let Some(payload) = self.packets.remove(&next) {
            self.next_play = Some(next + 1);
            self.underrun_ticks = 0;
            self.stats.played += 1;
            return Playout::Packet(payload);
        }
        self.stats.concealed += 1;
        if highest < next {
            // Nothing to play at all: conceal without consuming, which grows the delay by one
            // frame; after a long silence go back to buffering so a resuming stream gets its
            // full target delay again.
            self.underrun_ticks += 1;
            if FRAME * self.underrun_ticks >= MAX_DELAY {
                self.playing = false;
                self.buffering_since = None;
            }
        } else if highest - next >= target {
            // Deep enough that the packet had its chance: give up on it.
            self.next_play = Some(next + 1);
            self.stats.lost += 1;
        }
        // Otherwise the buffer is shallower than the target: wait one more tick for the packet.
        Playout::Lost
    }

    /// Forgets the old stream; statistics and the delay history survive.
    fn restart(&mut self) {
        let mut stats = self.stats;
        stats.lost += self.packets.len() as u64;
        stats.restarts += 1;
        *self = JitterBuffer {
            stats,
            delays: std::mem::take(&mut self.delays),
            spread: self.spread,
            bias_us: self.bias_us,
            last_arrival: self.last_arrival,
            ..Self::default()
        };
    }

    /// Starts playout once the first buffered packet has waited the target delay.
    fn start_playing(&mut self, now: Instant) -> bool {
        let Some(since) = self.buffering_since else {
            return false;
        };
        let Some(&first) = self.packets.keys().next() else {
            return false;
        };
        if now.saturating_duration_since(since) < self.target_delay() {
            return false;
        }
        self.playing = true;
        self.underrun_ticks = 0;
        self.next_play = Some(first);
        true
    }

    fn target_frames(&self) -> i64 {
        self.target_delay().as_micros().div_ceil(FRAME.as_micros()) as i64
    }

    /// Extends a 16-bit sequence number to the one nearest the highest seen so far.
    fn unwrap_seq(&self, seq: u16) -> i64 {
        match self.highest {
            None => EXT_BASE + i64::from(seq),
            Some(h) => h + i64::from(seq.wrapping_sub(h as u16) as i16),
        }
    }

    /// Records the packet's transit delay relative to the stream's first packet and derives
    /// the target delay from the spread of recent ones.
    fn observe_arrival(&mut self, ext: i64, now: Instant, restarted: bool) {
        let gap = self
            .last_arrival
            .is_some_and(|last| now.saturating_duration_since(last) > TALKSPURT_GAP);
        self.last_arrival = Some(self.last_arrival.map_or(now, |last| last.max(now)));
        let (t0, e0) = *self.epoch.get_or_insert((now, ext));
        let mut delay = signed_micros(t0, now) - (ext - e0) * FRAME_US - self.bias_us;
        while self
            .delays
            .front()
            .is_some_and(|&(at, _)| at.checked_add(JITTER_WINDOW).is_some_and(|end| end < now))
        {
            self.delays.pop_front();
        }
        let min = self.delays.iter().map(|&(_, d)| d).min();
        if let (true, Some(min)) = (gap || restarted, min) {
            self.bias_us += delay - min;
            delay = min;
        }
        self.delays.push_back((now, delay));
        let min = min.unwrap_or(delay).min(delay);
        let max = self.delays.iter().map(|&(_, d)| d).max().unwrap_or(delay);
        self.spread = Duration::from_micros((max - min).unsigned_abs());
    }
}

/// `now - t0` in microseconds, negative if the caller's clock went backwards.
fn signed_micros(t0: Instant, now: Instant) -> i64 {
    match now.checked_duration_since(t0) {
        Some(d) => d.as_micros() as i64,
        None => -(t0.duration_since(now).as_micros() as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives a buffer on a simulated clock: each 20 ms tick delivers some packets, then pops.
    /// Payloads hold the unwrapped sequence number, so playout order is checkable.
    struct Sim {
        jb: JitterBuffer,
        t0: Instant,
        tick: u32,
        out: Vec<Playout>,
    }

    impl Sim {
        fn new() -> Self {
            let (jb, t0) = (JitterBuffer::new(), Instant::now());
            Sim {
                jb,
                t0,
                tick: 0,
                out: Vec::new(),
            }
        }
        fn step(&mut self, seqs: &[u32]) {
            let now = self.t0 + FRAME * self.tick;
            for &s in seqs {
                self.jb.push_at(s as u16, s.to_be_bytes().to_vec(), now);
            }
            self.out.push(self.jb.pop_at(now));
            self.tick += 1;
        }
        fn run(&mut self, seqs: std::ops::Range<u32>) {
            seqs.for_each(|s| self.step(&[s]));
        }
        fn played(&self) -> Vec<u32> {
            let packets = self.out.iter().filter_map(|p| match p {
                Playout::Packet(b) => Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
                _ => None,
            });
            packets.collect()
        }
        fn lost(&self) -> usize {
            self.out.iter().filter(|p| **p == Playout::Lost).count()
        }
    }

    fn range(r: std::ops::Range<u32>) -> Vec<u32> {
        r.collect()
    }

    #[test]
    fn in_order_plays_everything_after_the_minimum_delay() {
        let mut sim = Sim::new();
        sim.run(0..100);
        assert_eq!(sim.out[..2], [Playout::Waiting, Playout::Waiting]);
        assert_eq!((sim.played(), sim.lost()), (range(0..98), 0));
        assert_eq!(sim.jb.target_delay(), MIN_DELAY);
    }

    #[test]
    fn reordered_packets_are_played_in_order() {
        let mut sim = Sim::new();
        for s in (0..100).step_by(2) {
            sim.step(&[s + 1]);
            sim.step(&[s]);
        }
        assert_eq!((sim.played(), sim.lost()), (range(0..97), 0));
    }

    #[test]
    fn a_lost_packet_is_concealed_once() {
        let mut sim = Sim::new();
        sim.run(0..30);
        sim.step(&[]);
        sim.run(31..60);
        let expected: Vec<u32> = (0..58).filter(|&s| s != 30).collect();
        assert_eq!((sim.played(), sim.lost()), (expected, 1));
        assert_eq!(sim.jb.stats().lost, 1);
    }

    #[test]
    fn duplicates_and_late_packets_are_dropped() {
        let mut sim = Sim::new();
        (0..20).for_each(|s| sim.step(&[s, s]));
        sim.step(&[3]); // long played
        assert_eq!(sim.played(), range(0..19));
        let stats = sim.jb.stats();
        assert_eq!((stats.duplicates, stats.late), (20, 1));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut sim = Sim::new();
        for s in (65_500..65_600).step_by(2) {
            // Reordered across the wrap, too: 65535 arrives after 0.
            sim.step(&[(s + 1) % 65_536]);
            sim.step(&[s % 65_536]);
        }
        let expected: Vec<u32> = (65_500..65_597).map(|s| s % 65_536).collect();
        assert_eq!((sim.played(), sim.lost()), (expected, 0));
    }

    #[test]
    fn burst_after_stall_is_played_whole_then_delay_recovers() {
        let mut sim = Sim::new();
        sim.run(0..50);
        (50..58).for_each(|_| sim.step(&[])); // network stall
        sim.step(&range(50..59));
        assert!(sim.jb.target_delay() >= Duration::from_millis(160));
        sim.run(59..400);
        // Nothing from the burst was lost: playout is contiguous until the delay is cut back.
        assert_eq!(sim.played()[..100], range(0..100)[..]);
        assert_eq!(sim.lost(), 6);
        // Five seconds later the stall is forgotten and the delay is back near the minimum.
        assert_eq!(sim.jb.target_delay(), MIN_DELAY);
        assert!(sim.jb.len() <= 3, "still {} buffered", sim.jb.len());
        assert!(sim.jb.stats().discarded > 0);
    }

    #[test]
    fn target_adapts_to_jitter_and_keeps_losses_low() {
        let mut sim = Sim::new();
        let mut rng = 0x1234_5678u32;
        let mut in_flight: Vec<(u32, u32)> = Vec::new(); // (arrival ms, seq)
        for tick in 0..1_000u32 {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            // 0..80 ms of jitter for 10 s, then a clean network.
            let jitter = if tick < 500 { rng % 80 } else { 0 };
            in_flight.push((tick * 20 + jitter, tick));
            let due: Vec<u32> = in_flight
                .iter()
                .filter(|a| a.0 <= tick * 20)
                .map(|a| a.1)
                .collect();
            in_flight.retain(|a| a.0 > tick * 20);
            sim.step(&due);
            if tick == 450 {
                let target = sim.jb.target_delay();
                assert!((80..=120).contains(&target.as_millis()), "{target:?}");
            }
        }
        let stats = sim.jb.stats();
        assert!(stats.lost + stats.late < 10, "{stats:?}");
        assert_eq!(sim.jb.target_delay(), MIN_DELAY);
        assert!(sim.jb.len() <= 3);
    }

    #[test]
    fn a_sending_pause_is_not_mistaken_for_jitter() {
        let mut sim = Sim::new();
        sim.run(0..50);
        (0..20).for_each(|_| sim.step(&[])); // 400 ms of DTX: no packets, no sequence gap
        sim.run(50..100);
        assert_eq!(sim.jb.target_delay(), MIN_DELAY);
        assert_eq!(sim.played(), range(0..98));
        assert_eq!(sim.jb.stats().lost, 0);
    }

    #[test]
    fn bounded_and_restarts_after_sequence_jumps() {
        let mut jb = JitterBuffer::new();
        let t0 = Instant::now();
        (0..200u16).for_each(|s| jb.push_at(s, vec![], t0));
        assert_eq!((jb.len(), jb.stats().overflow), (CAPACITY as usize, 150));

        let mut sim = Sim::new();
        sim.run(0..20);
        sim.run(30_000..30_040); // the sender restarted with new numbering
        sim.run(10_000..10_040); // ...and again, backwards this time
        let played = sim.played();
        assert!(sim.lost() <= 2, "{} concealed", sim.lost());
        assert!(
            played.contains(&30_010) && played.contains(&10_030),
            "{played:?}"
        );
        assert_eq!(sim.jb.stats().restarts, 2);
    }

    #[test]
    fn stream_end_goes_back_to_waiting_and_restarts() {
        let mut sim = Sim::new();
        sim.run(0..20);
        (0..20).for_each(|_| sim.step(&[]));
        assert_eq!(sim.out.last(), Some(&Playout::Waiting));
        assert!(sim.lost() <= 10);
        sim.run(20..40);
        assert_eq!(sim.played(), range(0..38));
    }
}
