//! Bounded retransmission: NACK only as long as an answer can still help, and count what the
//! send path refuses.
//!
//! webrtc-rs 0.21's NACK generator re-asks for every missing packet of its 512-packet window
//! every 100 ms, without limit, and its responder answers from a 1024-packet history whatever
//! the packet's age. After an outage (hundreds of packets sent into a dead link) or on a lossy
//! bottleneck that became a retransmission storm: each round put hundreds of stale packets into
//! the pacer's 48-packet queue, the pacer refused the fresh media behind them, which made new
//! gaps, which were NACKed in turn. Measured with `scripts/bench-outage.sh` (see
//! docs/benchmarks.md): video came back damaged for the rest of the run.
//!
//! So: the generator asks for a packet at most [`MAX_NACKS_PER_PACKET`] times, and
//! [`StaleRetransmissions`], between the responder and the pacer, drops a retransmission whose
//! original left more than [`MAX_RETRANSMIT_AGE`] ago: the receiver's reassembly has given up on
//! that frame by then (see `remote`), and only a keyframe repairs the picture.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::interceptor::{Interceptor, PacerInterceptor, Packet, StreamInfo, TaggedPacket};

/// How often the receiver asks again for one missing packet.
pub const MAX_NACKS_PER_PACKET: u16 = 2;
/// The oldest packet worth retransmitting: the receiver waits 200 ms (of media time) for a lost
/// packet before it gives its frame up; a little slack covers the pacer's queue.
pub const MAX_RETRANSMIT_AGE: Duration = Duration::from_millis(300);
/// Packets remembered per stream (a power of two; more than the responder's 1024 history).
const HISTORY: usize = 2048;
/// Where [`StaleRetransmissions`] sits: between the pacer (3 000) and the NACK responder
/// (4 000), so it sees originals on their way to the pacer and the responder's resends.
pub const STALE_RETRANSMISSIONS_SLOT: usize = 3_500;

/// What the send path of one connection refused or repeated, for logs and benchmarks.
#[derive(Debug, Default)]
pub struct SendCounters {
    /// Packets resent in answer to a NACK.
    pub retransmitted: AtomicU64,
    /// Resends dropped because the original was too old to help.
    pub stale_dropped: AtomicU64,
    /// Packets the pacer refused because its queue was full.
    pub pacer_refused: AtomicU64,
}

/// Drops retransmissions of packets first sent more than [`MAX_RETRANSMIT_AGE`] ago.
pub struct StaleRetransmissions {
    /// Per SSRC: when each sequence number (slot `seq % HISTORY`) first went by.
    first_sent: HashMap<u32, Vec<Option<(u16, Instant)>>>,
    counters: Arc<SendCounters>,
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
}

impl StaleRetransmissions {
    /// A filter reporting into `counters`.
    pub fn new(counters: Arc<SendCounters>) -> Self {
        StaleRetransmissions {
            first_sent: HashMap::new(),
            counters,
            reads: VecDeque::new(),
            writes: VecDeque::new(),
        }
    }

    /// Whether an outgoing RTP packet may go on: originals always; a resend while young.
    fn admit(&mut self, ssrc: u32, seq: u16, now: Instant) -> bool {
        let history = self
            .first_sent
            .entry(ssrc)
            .or_insert_with(|| vec![None; HISTORY]);
        let slot = &mut history[usize::from(seq) % HISTORY];
        match slot {
            Some((s, first)) if *s == seq => {
                if now.saturating_duration_since(*first) > MAX_RETRANSMIT_AGE {
                    self.counters.stale_dropped.fetch_add(1, Ordering::Relaxed);
                    false
                } else {
                    self.counters.retransmitted.fetch_add(1, Ordering::Relaxed);
                    true
                }
            }
            _ => {
                *slot = Some((seq, now));
                true
            }
        }
    }
}

impl rtc::sansio::Protocol<TaggedPacket, TaggedPacket, ()> for StaleRetransmissions {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.reads.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.reads.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtp(rtp) = &msg.message.packet {
            if !self.admit(rtp.header.ssrc, rtp.header.sequence_number, msg.now) {
                return Ok(());
            }
        }
        self.writes.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.writes.pop_front()
    }
}

impl Interceptor for StaleRetransmissions {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.first_sent.remove(&info.ssrc);
    }
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// webrtc-rs's pacer, with its refusals (queue full) published to [`SendCounters`].
pub struct CountingPacer {
    inner: PacerInterceptor,
    counters: Arc<SendCounters>,
}

impl CountingPacer {
    /// Wraps `inner`.
    pub fn new(inner: PacerInterceptor, counters: Arc<SendCounters>) -> Self {
        CountingPacer { inner, counters }
    }
}

impl rtc::sansio::Protocol<TaggedPacket, TaggedPacket, ()> for CountingPacer {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.inner.handle_read(msg)
    }
    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.inner.poll_read()
    }
    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        let result = self.inner.handle_write(msg);
        self.counters
            .pacer_refused
            .store(self.inner.dropped(), Ordering::Relaxed);
        result
    }
    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.inner.poll_write()
    }
    fn handle_event(&mut self, evt: ()) -> Result<(), Self::Error> {
        self.inner.handle_event(evt)
    }
    fn poll_event(&mut self) -> Option<()> {
        self.inner.poll_event()
    }
    fn handle_timeout(&mut self, now: Instant) -> Result<(), Self::Error> {
        self.inner.handle_timeout(now)
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        self.inner.poll_timeout()
    }
    fn close(&mut self) -> Result<(), Self::Error> {
        self.inner.close()
    }
}

impl Interceptor for CountingPacer {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        self.inner.bind_local_stream(info)
    }
    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.inner.unbind_local_stream(info)
    }
    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        self.inner.bind_remote_stream(info)
    }
    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        self.inner.unbind_remote_stream(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn young_resends_pass_and_stale_ones_are_dropped() {
        let counters = Arc::new(SendCounters::default());
        let mut f = StaleRetransmissions::new(counters.clone());
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        assert!(f.admit(1, 10, t0), "an original");
        assert!(f.admit(1, 11, t0), "another");
        assert!(f.admit(2, 10, t0), "the same number on another stream");
        assert!(f.admit(1, 10, t0 + ms(100)), "a young resend");
        assert!(!f.admit(1, 11, t0 + ms(301)), "a stale resend");
        // A later number sharing the slot replaces it.
        assert!(f.admit(1, 10u16.wrapping_add(HISTORY as u16), t0 + ms(400)));
        assert!(f.admit(1, 10, t0 + ms(500)), "slot reused: an original");
        assert_eq!(counters.retransmitted.load(Ordering::Relaxed), 1);
        assert_eq!(counters.stale_dropped.load(Ordering::Relaxed), 1);
    }
}
