//! What I hear: every remote audio track's Opus packets go into a jitter buffer of their own;
//! ONE playout clock per call pops all of them every 20 ms, decodes (or conceals), mixes the
//! result into a single frame for the speaker, and tracks who is speaking.
//!
//! One clock for the whole call rather than one per peer, because the speaker consumes exactly
//! one frame per 20 ms however many people talk: per-peer clocks would drift apart and need a
//! second buffering stage before the mixer.
//!
//! The tick logic ([`AudioPlayout::tick`]) is a plain function of an [`Instant`], so tests drive
//! it on a simulated timeline; [`spawn`] only adds the tokio interval around it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use media::codec::opus::OpusDecoder;
use media::jitter::{JitterBuffer, Playout};
use media::mixer::{self, VoiceActivity, SILENCE_DBFS};
pub use media::source::{AudioSink, SharedAudioSink};
use media::AudioFrame;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use crate::event::MeshEvent;
use crate::MeshError;

/// One playout period: one Opus packet, one mixed frame.
const TICK: Duration = Duration::from_millis(20);

/// Playout counters of one peer, read for [`crate::PeerStats`].
#[derive(Debug, Default)]
pub struct PlayoutCounters {
    /// Frames decoded from received packets and played.
    pub played: AtomicU64,
    /// Frames synthesised by the decoder's loss concealment (packet missing or undecodable).
    pub concealed: AtomicU64,
}

/// One remote audio track being played.
struct Stream {
    /// Tells this registration apart from a later one under the same key, so a late
    /// [`StreamGuard`] of a replaced track cannot remove or feed its successor.
    generation: u64,
    jitter: JitterBuffer,
    decoder: OpusDecoder,
    counters: Arc<PlayoutCounters>,
}

/// The speaking state of one remote participant (whatever the number of their audio tracks).
#[derive(Default)]
struct Voice {
    vad: VoiceActivity,
    /// What the user was last told, so an event is emitted on a change and only then.
    reported: bool,
}

#[derive(Default)]
struct Registry {
    /// Keyed by (peer id, track SSRC).
    streams: BTreeMap<(String, u32), Stream>,
    voices: BTreeMap<String, Voice>,
    next_generation: u64,
}

/// The registry of a call's remote audio streams: receive tasks push packets in, the playout
/// task pops them out. Cloning gives another handle to the same registry.
///
/// A std mutex rather than an async one: every critical section is short and never awaits
/// (a push, or one tick's pops and decodes, well under a millisecond for a handful of peers).
#[derive(Clone, Default)]
pub struct AudioStreams {
    inner: Arc<Mutex<Registry>>,
}

impl AudioStreams {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock leaves at worst a half-popped tick: keep playing.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts playing the audio track `ssrc` of `peer_id`; the stream lives until the returned
    /// guard is dropped (the track ended) or [`AudioStreams::remove_peer`] is called.
    pub fn register(
        &self,
        peer_id: &str,
        ssrc: u32,
        counters: Arc<PlayoutCounters>,
    ) -> Result<StreamGuard, MeshError> {
        let decoder = OpusDecoder::new()?;
        let mut reg = self.lock();
        reg.next_generation += 1;
        let generation = reg.next_generation;
        let key = (peer_id.to_owned(), ssrc);
        let stream = Stream {
            generation,
            jitter: JitterBuffer::new(),
            decoder,
            counters,
        };
        reg.streams.insert(key.clone(), stream);
        reg.voices.entry(peer_id.to_owned()).or_default();
        Ok(StreamGuard {
            streams: self.clone(),
            key,
            generation,
        })
    }

    /// Forgets every stream of `peer_id` and its speaking state at once (the peer left), without
    /// a last "stopped speaking" event: the departure says it already.
    pub fn remove_peer(&self, peer_id: &str) {
        let mut reg = self.lock();
        reg.streams.retain(|(peer, _), _| peer != peer_id);
        reg.voices.remove(peer_id);
    }

    /// Forgets everything (the call ended, or every connection restarts).
    pub fn clear(&self) {
        let mut reg = self.lock();
        reg.streams.clear();
        reg.voices.clear();
    }

    /// Number of streams being played.
    pub fn len(&self) -> usize {
        self.lock().streams.len()
    }

    /// True when no stream is being played.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One registered remote audio track: feeds its packets in, and unregisters it when dropped.
pub struct StreamGuard {
    streams: AudioStreams,
    key: (String, u32),
    generation: u64,
}

impl StreamGuard {
    /// Queues the Opus packet `payload` with RTP sequence number `seq`, arrived at `now`.
    /// Ignored once the stream was removed (its peer left while packets were in flight).
    pub fn push(&self, seq: u16, payload: Vec<u8>, now: Instant) {
        let mut reg = self.streams.lock();
        if let Some(s) = reg.streams.get_mut(&self.key) {
            if s.generation == self.generation {
                s.jitter.push_at(seq, payload, now);
            }
        }
    }
}

impl Drop for StreamGuard {
    /// The track ended: stop playing it. Its participant's speaking state stays until the
    /// hangover runs out, so the user still gets the "stopped speaking" event.
    fn drop(&mut self) {
        let mut reg = self.streams.lock();
        if reg
            .streams
            .get(&self.key)
            .is_some_and(|s| s.generation == self.generation)
        {
            reg.streams.remove(&self.key);
        }
    }
}

/// The call's playout clock: pops, decodes, mixes and measures once per tick.
pub struct AudioPlayout {
    streams: AudioStreams,
    sink: Option<SharedAudioSink>,
    ticks: u64,
}

impl AudioPlayout {
    /// Plays `streams` into `sink` (or only decodes and measures them when there is none).
    pub fn new(streams: AudioStreams, sink: Option<SharedAudioSink>) -> Self {
        AudioPlayout {
            streams,
            sink,
            ticks: 0,
        }
    }

    /// One 20 ms tick at `now`: every stream gives one frame (decoded, concealed, or nothing
    /// while its buffer fills), the frames are mixed and played, and a
    /// [`MeshEvent::AudioLevel`] is offered to `emit` for every participant whose speaking
    /// state changed. `emit` returns false when the event could not be delivered (the app is
    /// behind); it is then offered again next tick rather than lost, so the app's picture of
    /// who speaks cannot get stuck. Returns the mix (also what the sink got).
    pub fn tick(&mut self, now: Instant, emit: &mut dyn FnMut(MeshEvent) -> bool) -> AudioFrame {
        // The playout clock's own timeline: frame n of the call is at n * 20 ms.
        let pts = TICK.saturating_mul(u32::try_from(self.ticks).unwrap_or(u32::MAX));
        self.ticks += 1;
        let mut frames = Vec::new();
        {
            let mut guard = self.streams.lock();
            let reg = &mut *guard;
            let mut levels: BTreeMap<&str, f32> = BTreeMap::new();
            for ((peer_id, _), stream) in reg.streams.iter_mut() {
                let Some(frame) = stream.next_frame(now, pts) else {
                    continue;
                };
                // A participant with several audio tracks is as loud as the loudest one.
                let level = mixer::level_dbfs(&frame);
                let entry = levels.entry(peer_id.as_str()).or_insert(SILENCE_DBFS);
                *entry = entry.max(level);
                frames.push(frame);
            }
            for (peer_id, voice) in reg.voices.iter_mut() {
                // A stream that is (re)buffering, or gone, counts as silence.
                let level = levels
                    .get(peer_id.as_str())
                    .copied()
                    .unwrap_or(SILENCE_DBFS);
                let speaking = voice.vad.update(level);
                if speaking != voice.reported {
                    let ev = MeshEvent::AudioLevel {
                        peer_id: peer_id.as_str().into(),
                        level_dbfs: level,
                        speaking,
                    };
                    if emit(ev) {
                        voice.reported = speaking;
                    }
                }
            }
            // A participant whose tracks all ended is forgotten once they were reported silent.
            let Registry {
                streams, voices, ..
            } = reg;
            voices.retain(|peer_id, voice| {
                voice.reported || streams.keys().any(|(peer, _)| peer == peer_id)
            });
        }
        let refs: Vec<&AudioFrame> = frames.iter().collect();
        let mut mix = mixer::mix(&refs);
        mix.pts = pts;
        if let Some(sink) = &self.sink {
            // A sink that panicked once is still the best place for the next frame.
            let mut sink = sink.lock().unwrap_or_else(|e| e.into_inner());
            sink.play(&mix);
        }
        mix
    }
}

impl Stream {
    /// This tick's frame of the stream, or None while its buffer fills.
    fn next_frame(&mut self, now: Instant, pts: Duration) -> Option<AudioFrame> {
        let decoded = match self.jitter.pop_at(now) {
            Playout::Waiting => return None,
            Playout::Packet(packet) => match self.decoder.decode(Some(&packet), pts) {
                Ok(frame) => {
                    self.counters.played.fetch_add(1, Ordering::Relaxed);
                    return Some(frame);
                }
                Err(e) => {
                    // Garbage or a non-20 ms packet from the network: conceal it instead.
                    tracing::debug!(error = %e, "undecodable audio packet; concealing");
                    self.decoder.decode(None, pts)
                }
            },
            Playout::Lost => self.decoder.decode(None, pts),
        };
        match decoded {
            Ok(frame) => {
                self.counters.concealed.fetch_add(1, Ordering::Relaxed);
                Some(frame)
            }
            Err(e) => {
                tracing::debug!(error = %e, "audio concealment failed");
                None
            }
        }
    }
}

/// The running playout task; dropping this stops it (the call ended).
pub struct PlayoutTask(tokio::task::JoinHandle<()>);

impl Drop for PlayoutTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts the call's playout task: [`AudioPlayout::tick`] every 20 ms, level events to `events`.
pub fn spawn(mut playout: AudioPlayout, events: mpsc::Sender<MeshEvent>) -> PlayoutTask {
    PlayoutTask(tokio::spawn(async move {
        let mut clock = tokio::time::interval(TICK);
        // After a stall (a suspended laptop, a starved runtime) resume at the normal pace instead
        // of bursting the missed ticks: the jitter buffers absorb the gap, the speaker would not.
        clock.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            clock.tick().await;
            // Never wait for the app here: a full event queue must not stall the audio. Only a
            // full queue is "not delivered"; with nobody listening there is nobody to retry for.
            playout.tick(Instant::now(), &mut |ev| {
                !matches!(events.try_send(ev), Err(mpsc::error::TrySendError::Full(_)))
            });
        }
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is the failure report
mod tests {
    use super::*;
    use media::codec::opus::OpusEncoder;
    use media::synthetic::Tone;
    use media::SAMPLES_PER_FRAME;

    /// A sink that keeps everything it was given.
    #[derive(Default)]
    struct Recorder(Vec<AudioFrame>);

    impl AudioSink for Recorder {
        fn play(&mut self, frame: &AudioFrame) {
            self.0.push(frame.clone());
        }
    }

    /// One sender: a tone, Opus-encoded packet by packet, with RTP-like sequence numbers.
    struct Sender {
        tone: Tone,
        enc: OpusEncoder,
        first_seq: u16,
    }

    impl Sender {
        fn new(tone: Tone, first_seq: u16) -> Self {
            Sender {
                tone,
                enc: OpusEncoder::new(32_000).unwrap(),
                first_seq,
            }
        }
        /// Packet `n` of the stream and its sequence number.
        fn packet(&mut self, n: u64) -> (u16, Vec<u8>) {
            let packet = self.enc.encode(&self.tone.frame_at(n)).unwrap();
            (self.first_seq.wrapping_add(n as u16), packet)
        }
    }

    struct Harness {
        streams: AudioStreams,
        playout: AudioPlayout,
        sink: Arc<Mutex<Recorder>>,
        t0: Instant,
        tick: u32,
        events: Vec<MeshEvent>,
    }

    impl Harness {
        fn new() -> Self {
            let streams = AudioStreams::new();
            let sink = Arc::new(Mutex::new(Recorder::default()));
            let playout = AudioPlayout::new(streams.clone(), Some(sink.clone() as SharedAudioSink));
            Harness {
                streams,
                playout,
                sink,
                t0: Instant::now(),
                tick: 0,
                events: Vec::new(),
            }
        }
        fn now(&self) -> Instant {
            self.t0 + TICK * self.tick
        }
        /// Runs the tick at the current simulated time, then advances it.
        fn tick(&mut self) -> AudioFrame {
            let now = self.now();
            let events = &mut self.events;
            let mix = self.playout.tick(now, &mut |ev| {
                events.push(ev);
                true
            });
            self.tick += 1;
            mix
        }
        fn played(&self) -> usize {
            self.sink.lock().unwrap().0.len()
        }
        fn transitions(&self, peer: &str) -> Vec<bool> {
            self.events
                .iter()
                .filter_map(|ev| match ev {
                    MeshEvent::AudioLevel {
                        peer_id, speaking, ..
                    } if peer_id == peer => Some(*speaking),
                    _ => None,
                })
                .collect()
        }
    }

    #[test]
    fn two_streams_mix_into_one_frame_per_tick_with_concealment_for_the_lost_packet() {
        let mut h = Harness::new();
        let (ca, cb) = (
            Arc::new(PlayoutCounters::default()),
            Arc::new(PlayoutCounters::default()),
        );
        let a = h.streams.register("alice", 1, ca.clone()).unwrap();
        let b = h.streams.register("bob", 2, cb.clone()).unwrap();
        // Alice sends ticks 0..100 and loses packet 30; Bob sends ticks 50..150, his sequence
        // numbers wrap, and his packets 80 and 81 arrive swapped.
        let mut alice = Sender::new(Tone::new(440.0), 100);
        let mut bob = Sender::new(Tone::new(660.0), 65_500);
        let mut levels = Vec::new();
        for t in 0..200u64 {
            let now = h.now();
            if t < 100 && t != 30 {
                let (seq, p) = alice.packet(t);
                a.push(seq, p, now);
            }
            if (50..150).contains(&t) {
                let n = match t {
                    80 => 81,
                    81 => 80,
                    n => n,
                };
                let (seq, p) = bob.packet(n);
                b.push(seq, p, now);
            }
            let mix = h.tick();
            assert_eq!(mix.samples.len(), SAMPLES_PER_FRAME);
            levels.push(mixer::level_dbfs(&mix));
            if t == 45 {
                // Only the lost packet was concealed so far; Bob has not started.
                assert_eq!(ca.concealed.load(Ordering::Relaxed), 1);
                assert_eq!(ca.played.load(Ordering::Relaxed), 43);
            }
            if t == 140 {
                // The swapped pair arrived within the buffer delay: nothing concealed.
                assert_eq!(cb.concealed.load(Ordering::Relaxed), 0);
            }
        }
        assert_eq!(h.played(), 200, "one frame per tick");
        let sink = h.sink.lock().unwrap();
        assert!(sink.0.iter().all(|f| f.samples.len() == SAMPLES_PER_FRAME));
        // Nothing is played until the buffer holds its target delay (40 ms).
        assert_eq!(levels[0], SILENCE_DBFS);
        // From then on someone is always audible until Bob's last packet: Alice alone (the
        // concealed tick included, as the codec continues her tone), both, then Bob alone.
        for (t, level) in levels.iter().enumerate().take(150).skip(5) {
            assert!(*level > -30.0, "tick {t}: {level} dBFS");
        }
        // Once both streams ran dry and concealment faded out, the mix is silent.
        assert!(levels[199] < -60.0, "{}", levels[199]);
        assert_eq!(ca.played.load(Ordering::Relaxed), 99);
        assert_eq!(cb.played.load(Ordering::Relaxed), 100);
        // A steady tone starts speaking once and stops once.
        assert_eq!(h.transitions("alice"), [true, false]);
        assert_eq!(h.transitions("bob"), [true, false]);
    }

    #[test]
    fn speaking_changes_are_reported_once_each_for_speech() {
        let mut h = Harness::new();
        let counters = Arc::new(PlayoutCounters::default());
        let talker = h.streams.register("talker", 7, counters.clone()).unwrap();
        let quiet = h
            .streams
            .register("quiet", 8, Arc::new(PlayoutCounters::default()))
            .unwrap();
        let mut speech = Sender::new(Tone::speech_like(), 0);
        // A silent (zero-amplitude) tone for the participant who never speaks.
        let mut silence = Sender::new(Tone::new(0.0), 0);
        // Three 2.5 s cycles of 1.5 s syllables and 1 s of pause.
        for t in 0..375u64 {
            let now = h.now();
            let (seq, p) = speech.packet(t);
            talker.push(seq, p, now);
            let (seq, p) = silence.packet(t);
            quiet.push(seq, p, now);
            h.tick();
        }
        assert_eq!(h.played(), 375);
        assert_eq!(
            h.transitions("talker"),
            [true, false, true, false, true, false]
        );
        assert!(h.transitions("quiet").is_empty());
        for ev in &h.events {
            if let MeshEvent::AudioLevel {
                level_dbfs,
                speaking: true,
                ..
            } = ev
            {
                assert!(*level_dbfs > -45.0, "{level_dbfs}");
            }
        }
        assert!(counters.played.load(Ordering::Relaxed) >= 370);
        assert_eq!(counters.concealed.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn undelivered_events_are_offered_again_and_streams_go_away() {
        let mut h = Harness::new();
        let counters = Arc::new(PlayoutCounters::default());
        let guard = h.streams.register("p", 1, counters.clone()).unwrap();
        let mut tone = Sender::new(Tone::new(300.0), 0);
        let mut offered = 0;
        for t in 0..10u64 {
            let (seq, p) = tone.packet(t);
            guard.push(seq, p, h.now());
            let now = h.now();
            // The app is behind: nothing gets through.
            h.playout.tick(now, &mut |_| {
                offered += 1;
                false
            });
            h.tick += 1;
        }
        assert!(offered >= 5, "offered on every tick until delivered");
        let (seq, p) = tone.packet(10);
        guard.push(seq, p, h.now());
        h.tick();
        assert_eq!(
            h.transitions("p"),
            [true],
            "delivered once, when it could be"
        );

        // The track ends: the stream goes, and the participant is reported silent once the
        // hangover ran out, then forgotten.
        drop(guard);
        assert!(h.streams.is_empty());
        for _ in 0..30 {
            h.tick();
        }
        assert_eq!(h.transitions("p"), [true, false]);
        assert!(h.streams.lock().voices.is_empty());

        // A peer that leaves is removed at once, with no event; its old guard cannot touch a
        // new registration under the same key.
        let old = h.streams.register("q", 1, counters.clone()).unwrap();
        let (seq, p) = tone.packet(11);
        old.push(seq, p, h.now());
        for _ in 0..5 {
            h.tick();
        }
        let before = h.events.len();
        h.streams.remove_peer("q");
        let new = h.streams.register("q", 1, counters.clone()).unwrap();
        drop(old);
        assert_eq!(
            h.streams.len(),
            1,
            "the old guard left the new stream alone"
        );
        drop(new);
        h.streams.remove_peer("q");
        for _ in 0..30 {
            h.tick();
        }
        assert_eq!(h.events.len(), before);
    }

    #[tokio::test]
    async fn the_task_ticks_without_a_sink_and_stops_when_dropped() {
        let streams = AudioStreams::new();
        let counters = Arc::new(PlayoutCounters::default());
        let guard = streams.register("p", 1, counters.clone()).unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let task = spawn(AudioPlayout::new(streams.clone(), None), tx);
        let mut tone = Sender::new(Tone::new(300.0), 0);
        for n in 0..15 {
            let (seq, p) = tone.packet(n);
            guard.push(seq, p, Instant::now());
            tokio::time::sleep(TICK).await;
        }
        // Decoded and measured even with nobody to play to.
        assert!(counters.played.load(Ordering::Relaxed) >= 5);
        let ev = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert!(
            matches!(ev, Ok(Some(MeshEvent::AudioLevel { speaking: true, .. }))),
            "{ev:?}"
        );
        drop(task);
        // Aborted: the task's sender is dropped, so the channel closes.
        let end = tokio::time::timeout(Duration::from_secs(5), async {
            while rx.recv().await.is_some() {}
        })
        .await;
        assert!(end.is_ok(), "the playout task stopped");
    }
}
