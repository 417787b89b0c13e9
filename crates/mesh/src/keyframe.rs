//! Keyframe requests: from a remote receiver's RTCP (PLI, FIR) to the one encoder of the stream
//! it is about, at a bounded rate.
//!
//! In webrtc-rs 0.21 inbound RTCP belongs to the interceptors: the end of the chain drops it
//! unless an interceptor marked it `Attribute::DeliverToApplication`. A marked packet is routed by
//! its destination SSRC; for one of our senders it arrives as `TrackLocalEvent::OnRtcpPacket` on
//! that local track (`TrackLocal::poll`). [`KeyframeRequestsToApp`] is the interceptor that marks
//! PLI and FIR; the writer task of each outgoing track reads them (see `local::Feed::write_into`)
//! and asks the stream's [`Keyframes`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rtc::interceptor::{
    Attribute, AttributedPacket, Interceptor, Packet, StreamInfo, TaggedPacket,
};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;

/// The least time between two keyframes forced on behalf of remote requests, per stream.
pub const MIN_KEYFRAME_INTERVAL: Duration = Duration::from_millis(500);

/// Where [`KeyframeRequestsToApp`] sits: after every default interceptor (the jitter buffer, the
/// application-most named slot, is 13 000), so each of them has seen the RTCP first.
pub const KEYFRAME_REQUESTS_SLOT: usize = 14_000;

/// Whether an RTCP packet asks for a keyframe.
pub fn is_keyframe_request(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

/// Decides whether a keyframe request may force a keyframe: at most one per `interval`. A
/// request inside the interval is deferred to its end ([`KeyframeLimiter::due`]), not dropped:
/// a receiver that asks right after a keyframe may well have lost it (the first keyframe on a
/// new m-section goes nowhere until the exchange completes), and not every receiver repeats
/// its request soon (Firefox waits seconds; ours sends a PLI for every frame it cannot decode).
#[derive(Debug, Clone)]
pub struct KeyframeLimiter {
    interval: Duration,
    last: Option<Instant>,
    /// A request came inside the interval.
    deferred: bool,
}

impl KeyframeLimiter {
    /// A limiter allowing one keyframe per `interval`.
    pub fn new(interval: Duration) -> Self {
        KeyframeLimiter {
            interval,
            last: None,
            deferred: false,
        }
    }

    /// Whether a request at `now` may force a keyframe; if it may, it opens a new interval; if
    /// not, it is deferred.
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.interval => {
                self.deferred = true;
                false
            }
            _ => {
                self.last = Some(now);
                self.deferred = false;
                true
            }
        }
    }

    /// Whether a deferred request is due at `now` (its interval has passed); if it is, it
    /// forces a keyframe and opens a new interval.
    pub fn due(&mut self, now: Instant) -> bool {
        if !self.deferred {
            return false;
        }
        let waited = self
            .last
            .is_none_or(|last| now.saturating_duration_since(last) >= self.interval);
        if waited {
            self.last = Some(now);
            self.deferred = false;
        }
        waited
    }

    /// A keyframe was forced at `now` for another reason (a connection came up): it opens an
    /// interval (requests inside it wait for its end).
    pub fn forced(&mut self, now: Instant) {
        self.last = Some(now);
    }
}

/// One local stream's keyframe flag, read by its encoder, and the limiter for remote requests.
#[derive(Debug)]
pub struct Keyframes {
    wanted: AtomicBool,
    limiter: Mutex<KeyframeLimiter>,
    from_peers: AtomicU64,
}

impl Keyframes {
    /// A flag, initially `wanted`.
    pub fn new(wanted: bool) -> Self {
        Keyframes {
            wanted: AtomicBool::new(wanted),
            limiter: Mutex::new(KeyframeLimiter::new(MIN_KEYFRAME_INTERVAL)),
            from_peers: AtomicU64::new(0),
        }
    }

    /// Forces a keyframe whatever the rate (a connection came up or was renegotiated).
    pub fn force(&self) {
        self.lock().forced(Instant::now());
        self.wanted.store(true, Ordering::Relaxed);
    }

    /// A remote receiver asked (PLI/FIR): forces a keyframe unless one was forced less than
    /// [`MIN_KEYFRAME_INTERVAL`] ago, in which case the request waits for the interval to end
    /// (see [`Keyframes::take`]). True when it forced one now.
    pub fn requested_by_peer(&self) -> bool {
        if !self.lock().allow(Instant::now()) {
            return false;
        }
        self.from_peers.fetch_add(1, Ordering::Relaxed);
        self.wanted.store(true, Ordering::Relaxed);
        true
    }

    /// Keyframes forced on behalf of remote requests so far.
    pub fn forced_for_peers(&self) -> u64 {
        self.from_peers.load(Ordering::Relaxed)
    }

    /// For the encoder: whether the next frame must be a keyframe (clears the flag), also when
    /// a deferred remote request has become due.
    pub fn take(&self) -> bool {
        if self.wanted.swap(false, Ordering::Relaxed) {
            return true;
        }
        if self.lock().due(Instant::now()) {
            self.from_peers.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// Sets the flag without touching the limiter (a connection skipped frames).
    pub fn set(&self) {
        self.wanted.store(true, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, KeyframeLimiter> {
        // The limiter holds no invariant a panic could break half-way.
        self.limiter.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An interceptor that hands PLI and FIR to the application: each one found in an inbound RTCP
/// compound is passed on as a packet of its own marked `DeliverToApplication` (so it is routed by
/// its own media SSRC, to the local track it is about), while the compound itself goes on
/// unchanged for the end of the chain to deal with as it always does.
#[derive(Default)]
pub struct KeyframeRequestsToApp {
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
}

impl rtc::sansio::Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequestsToApp {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            for request in packets.iter().filter(|p| is_keyframe_request(p.as_ref())) {
                self.reads.push_back(TaggedPacket {
                    now: msg.now,
                    transport: msg.transport,
                    message: AttributedPacket::new(Packet::Rtcp(vec![request.clone()]))
                        .with(Attribute::DeliverToApplication),
                });
            }
        }
        self.reads.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.reads.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.writes.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.writes.pop_front()
    }
}

impl Interceptor for KeyframeRequestsToApp {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is the failure report
mod tests {
    use super::*;
    use rtc::rtcp::receiver_report::ReceiverReport;
    use rtc::sansio::Protocol;

    #[test]
    fn one_keyframe_per_interval() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut limiter = KeyframeLimiter::new(ms(500));
        assert!(limiter.allow(t0), "the first request is honoured");
        assert!(!limiter.allow(t0 + ms(1)));
        assert!(!limiter.allow(t0 + ms(499)));
        assert!(limiter.allow(t0 + ms(500)), "a new interval");
        assert!(!limiter.allow(t0 + ms(700)));
        // A request inside the interval is due at its end, once.
        assert!(!limiter.due(t0 + ms(999)));
        assert!(limiter.due(t0 + ms(1000)), "deferred, not dropped");
        assert!(!limiter.due(t0 + ms(1600)), "answered once");
        // A keyframe forced for a new connection opens an interval too.
        limiter.forced(t0 + ms(1700));
        assert!(!limiter.allow(t0 + ms(1800)));
        assert!(!limiter.due(t0 + ms(2100)));
        assert!(limiter.due(t0 + ms(2200)));
        assert!(limiter.allow(t0 + ms(2700)));
        // A clock that went backwards (an earlier `now` from another thread) is inside.
        assert!(!limiter.allow(t0 + ms(2500)));
    }

    #[test]
    fn keyframes_counts_only_honoured_peer_requests() {
        let k = Keyframes::new(false);
        assert!(!k.take());
        assert!(k.requested_by_peer());
        assert!(!k.requested_by_peer(), "rate-limited");
        assert!(k.take());
        assert!(
            !k.take(),
            "taken once; the second request waits for the interval"
        );
        assert_eq!(k.forced_for_peers(), 1);
        k.force();
        assert!(k.take(), "forcing ignores the limiter");
    }

    #[test]
    fn keyframe_requests_are_marked_one_by_one() {
        let pli = |ssrc| -> Box<dyn rtc::rtcp::Packet> {
            Box::new(PictureLossIndication {
                sender_ssrc: 1,
                media_ssrc: ssrc,
            })
        };
        let compound: Vec<Box<dyn rtc::rtcp::Packet>> =
            vec![Box::new(ReceiverReport::default()), pli(7), pli(9)];
        let mut i = KeyframeRequestsToApp::default();
        i.handle_read(TaggedPacket {
            now: Instant::now(),
            transport: Default::default(),
            message: AttributedPacket::new(Packet::Rtcp(compound)),
        })
        .unwrap();
        let out: Vec<TaggedPacket> = std::iter::from_fn(|| i.poll_read()).collect();
        assert_eq!(out.len(), 3, "two requests and the compound itself");
        for (msg, ssrc) in out.iter().zip([7, 9]) {
            assert!(msg.message.has(&Attribute::DeliverToApplication));
            let Packet::Rtcp(p) = &msg.message.packet else {
                panic!("not RTCP")
            };
            assert_eq!(p.len(), 1);
            assert_eq!(p[0].destination_ssrc(), vec![ssrc]);
        }
        assert!(!out[2].message.has(&Attribute::DeliverToApplication));
    }
}
