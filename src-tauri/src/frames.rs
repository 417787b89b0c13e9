//! Video to the UI: the latest decoded frame of every tile, scaled to the tile's size and
//! bundled into one binary message per display tick.
//!
//! Why this shape (measured, see the platform notes): the webview draws ~120 I420 messages/s in
//! all, and a channel that is fed faster than the page draws queues without limit. So:
//! - latest frame wins: a tile holds one pending frame; a newer one replaces it;
//! - one message carries every tile that has something new;
//! - back-pressure: a new bundle goes out only after the page has acknowledged the previous
//!   one (it acks after drawing), and no faster than [`MIN_INTERVAL`];
//! - frames are scaled down to the size the page says each tile is shown at.
//!
//! The page acknowledges with the capture times of what it drew, which gives the latency from
//! capture to screen (the stamp in the pixels, see `media::stamp`) per tile.
//!
//! Bundle layout (little endian): `u32` tile count, then per tile `u16` key length, key (UTF-8),
//! `u16` width, `u16` height, `f64` capture ms since the epoch (NaN when unknown), then the Y, U
//! and V planes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::fmt;

use media::frame::VideoFrame;
use media::MediaKind;
use serde::{Deserialize, Serialize};
use signal::PeerId;
use tokio::sync::Notify;

use crate::scale::{target_size, Scaler};

/// At most one bundle per this interval (60 per second).
pub const MIN_INTERVAL: Duration = Duration::from_millis(16);
/// A bundle not acknowledged within this time is considered lost (the page reloaded).
const ACK_TIMEOUT: Duration = Duration::from_millis(1000);
/// Latency samples kept per tile.
const SAMPLES: usize = 4096;

/// Whose picture a tile shows.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TileOwner {
    /// My own preview.
    Me,
    Peer(PeerId),
}

/// A tile: whose, and which picture (camera or screen). The page knows it as a string,
/// `self:video` or `<peer id>:screen` (the tile's `data-key`), made only here.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileKey {
    pub owner: TileOwner,
    pub kind: MediaKind,
}

impl TileKey {
    pub fn mine(kind: MediaKind) -> Self {
        TileKey {
            owner: TileOwner::Me,
            kind,
        }
    }

    pub fn peer(peer: &PeerId, kind: MediaKind) -> Self {
        TileKey {
            owner: TileOwner::Peer(peer.clone()),
            kind,
        }
    }
}

impl fmt::Display for TileOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TileOwner::Me => f.write_str("self"),
            TileOwner::Peer(p) => f.write_str(p.as_str()),
        }
    }
}

impl fmt::Display for TileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.owner, self.kind.as_str())
    }
}

/// What the page drew from the last bundle.
#[derive(Clone, Debug, Deserialize)]
pub struct Drawn {
    pub key: String,
    /// Capture time of the drawn frame (from the bundle), if known.
    pub capture_ms: Option<f64>,
}

/// Drawing figures of one tile, since the last reset.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TileStats {
    pub key: String,
    pub drawn: u64,
    /// Frames drawn per second over the measured span.
    pub fps: f64,
    /// Capture-to-drawn latency, median, ms.
    pub latency_p50_ms: Option<f64>,
    /// Capture-to-drawn latency, 95th percentile, ms.
    pub latency_p95_ms: Option<f64>,
    /// Frames replaced before they were sent (the page was slower than the sender).
    pub replaced: u64,
}

struct Pending {
    frame: VideoFrame,
    capture_ms: Option<u64>,
}

#[derive(Default)]
struct Counters {
    drawn: u64,
    replaced: u64,
    latencies: VecDeque<f64>,
}

struct Inner {
    pending: HashMap<String, Pending>,
    sizes: HashMap<String, (u32, u32)>,
    in_flight: Option<Instant>,
    last_sent: Option<Instant>,
    counters: BTreeMap<String, Counters>,
    since: Instant,
    scaler: Scaler,
}

/// The frame compositor; shared by the decode threads (push) and the sender task.
pub struct Compositor {
    inner: Mutex<Inner>,
    wake: Notify,
}

impl Default for Compositor {
    fn default() -> Self {
        Compositor {
            inner: Mutex::new(Inner {
                pending: HashMap::new(),
                sizes: HashMap::new(),
                in_flight: None,
                last_sent: None,
                counters: BTreeMap::new(),
                since: Instant::now(),
                scaler: Scaler::default(),
            }),
            wake: Notify::new(),
        }
    }
}

impl Compositor {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new frame for tile `key` (replacing one not yet sent).
    pub fn push(&self, key: &TileKey, frame: &VideoFrame) {
        self.push_keyed(key.to_string(), frame);
    }

    fn push_keyed(&self, key: String, frame: &VideoFrame) {
        let capture_ms = media::stamp::read(frame).map(|s| s.capture_ms);
        let mut inner = self.lock();
        let replaced = inner
            .pending
            .insert(
                key.clone(),
                Pending {
                    frame: frame.clone(),
                    capture_ms,
                },
            )
            .is_some();
        if replaced {
            inner.counters.entry(key).or_default().replaced += 1;
        }
        drop(inner);
        self.wake.notify_one();
    }

    /// The page's tile sizes in device pixels (tiles not listed are not shown: their frames
    /// are dropped rather than sent).
    pub fn set_sizes(&self, sizes: HashMap<String, (u32, u32)>) {
        let mut inner = self.lock();
        inner.pending.retain(|k, _| sizes.contains_key(k));
        inner.sizes = sizes;
        drop(inner);
        self.wake.notify_one();
    }

    /// Forgets a tile's pending frame (its picture stopped).
    pub fn remove(&self, key: &TileKey) {
        self.retain_pending(|k| *k != key.to_string());
    }

    /// Forgets every tile of `owner` (a peer left).
    pub fn remove_owner(&self, owner: &TileOwner) {
        let prefix = format!("{owner}:");
        self.retain_pending(|k| !k.starts_with(&prefix));
    }

    /// Forgets every tile (the call ended).
    pub fn clear(&self) {
        self.retain_pending(|_| false);
    }

    fn retain_pending(&self, keep: impl Fn(&String) -> bool) {
        let mut inner = self.lock();
        inner.pending.retain(|k, _| keep(k));
    }

    /// The page drew the last bundle.
    pub fn ack(&self, drawn: &[Drawn], now_ms: f64) {
        let mut inner = self.lock();
        inner.in_flight = None;
        for d in drawn {
            let c = inner.counters.entry(d.key.clone()).or_default();
            c.drawn += 1;
            if let Some(cap) = d.capture_ms.filter(|c| c.is_finite() && *c > 0.0) {
                if c.latencies.len() == SAMPLES {
                    c.latencies.pop_front();
                }
                c.latencies.push_back((now_ms - cap).max(0.0));
            }
        }
        drop(inner);
        self.wake.notify_one();
    }

    /// The next bundle, if one may be sent now; otherwise how long to wait before asking again
    /// (`None`: wait for a new frame or an ack).
    pub fn next_bundle(&self, now: Instant) -> Result<Vec<u8>, Option<Duration>> {
        let mut inner = self.lock();
        if let Some(sent) = inner.in_flight {
            if now.duration_since(sent) < ACK_TIMEOUT {
                return Err(Some(ACK_TIMEOUT - now.duration_since(sent)));
            }
            inner.in_flight = None;
        }
        if inner.pending.is_empty() {
            return Err(None);
        }
        if let Some(last) = inner.last_sent {
            let since = now.duration_since(last);
            if since < MIN_INTERVAL {
                return Err(Some(MIN_INTERVAL - since));
            }
        }
        let tiles: Vec<(String, Pending)> = inner.pending.drain().collect();
        let mut out = Vec::new();
        out.extend_from_slice(&(tiles.len() as u32).to_le_bytes());
        for (key, p) in tiles {
            let (tw, th) = inner.sizes.get(&key).copied().unwrap_or((0, 0));
            let (w, h) = target_size(p.frame.width, p.frame.height, tw, th);
            let frame = inner.scaler.scale(&p.frame, w, h);
            let kb = key.as_bytes();
            out.extend_from_slice(&(kb.len() as u16).to_le_bytes());
            out.extend_from_slice(kb);
            out.extend_from_slice(&(frame.width as u16).to_le_bytes());
            out.extend_from_slice(&(frame.height as u16).to_le_bytes());
            let cap = p.capture_ms.map(|c| c as f64).unwrap_or(f64::NAN);
            out.extend_from_slice(&cap.to_le_bytes());
            out.extend_from_slice(&frame.data);
        }
        inner.in_flight = Some(now);
        inner.last_sent = Some(now);
        Ok(out)
    }

    /// Sends bundles with `send` until it returns false (the page went away for good).
    pub async fn run(self: Arc<Self>, send: impl Fn(Vec<u8>) -> bool) {
        loop {
            match self.next_bundle(Instant::now()) {
                Ok(bundle) => {
                    if !send(bundle) {
                        return;
                    }
                }
                Err(Some(wait)) => {
                    let _ = tokio::time::timeout(wait, self.wake.notified()).await;
                }
                Err(None) => self.wake.notified().await,
            }
        }
    }

    /// Drawing figures per tile; `reset` starts a new measuring span.
    pub fn stats(&self, reset: bool) -> Vec<TileStats> {
        let mut inner = self.lock();
        let span = inner.since.elapsed().as_secs_f64().max(1e-3);
        let out = inner
            .counters
            .iter()
            .map(|(key, c)| {
                let mut l: Vec<f64> = c.latencies.iter().copied().collect();
                l.sort_by(f64::total_cmp);
                let pct = |p: f64| {
                    (!l.is_empty()).then(|| l[((l.len() - 1) as f64 * p).round() as usize])
                };
                TileStats {
                    key: key.clone(),
                    drawn: c.drawn,
                    fps: c.drawn as f64 / span,
                    latency_p50_ms: pct(0.5),
                    latency_p95_ms: pct(0.95),
                    replaced: c.replaced,
                }
            })
            .collect();
        if reset {
            inner.counters.clear();
            inner.since = Instant::now();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn video_of(peer: &str) -> TileKey {
        TileKey::peer(&PeerId::from(peer), MediaKind::Video)
    }

    #[test]
    fn tile_keys_are_the_strings_the_page_knows() {
        assert_eq!(TileKey::mine(MediaKind::Screen).to_string(), "self:screen");
        assert_eq!(video_of("p1").to_string(), "p1:video");
    }

    fn parse(bundle: &[u8]) -> Vec<(String, u16, u16, f64)> {
        let n = u32::from_le_bytes(bundle[0..4].try_into().unwrap());
        let mut at = 4;
        let mut out = Vec::new();
        for _ in 0..n {
            let kl = u16::from_le_bytes(bundle[at..at + 2].try_into().unwrap()) as usize;
            at += 2;
            let key = String::from_utf8(bundle[at..at + kl].to_vec()).unwrap();
            at += kl;
            let w = u16::from_le_bytes(bundle[at..at + 2].try_into().unwrap());
            let h = u16::from_le_bytes(bundle[at + 2..at + 4].try_into().unwrap());
            let cap = f64::from_le_bytes(bundle[at + 4..at + 12].try_into().unwrap());
            at += 12;
            let (ys, cs) = media::frame::plane_sizes(w.into(), h.into());
            at += ys + 2 * cs;
            out.push((key, w, h, cap));
        }
        assert_eq!(at, bundle.len(), "no trailing bytes");
        out
    }

    #[test]
    fn latest_frame_wins_and_the_next_bundle_waits_for_the_ack() {
        let c = Compositor::default();
        let t0 = Instant::now();
        c.set_sizes(HashMap::from([
            ("a:video".to_string(), (320, 180)),
            ("b:video".to_string(), (640, 360)),
        ]));
        let mut pattern = media::synthetic::TestPattern::new(640, 360, 30);
        c.push(&video_of("a"), &pattern.frame_at(1, 1000));
        c.push(&video_of("a"), &pattern.frame_at(2, 2000));
        c.push(&video_of("b"), &pattern.frame_at(3, 3000));
        let mut tiles = parse(&c.next_bundle(t0).unwrap());
        tiles.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(tiles.len(), 2, "one message for both tiles");
        assert_eq!(
            tiles[0],
            ("a:video".into(), 320, 180, 2000.0),
            "scaled, latest"
        );
        assert_eq!(tiles[1], ("b:video".into(), 640, 360, 3000.0));

        c.push(&video_of("a"), &pattern.frame_at(4, 4000));
        let later = t0 + Duration::from_millis(100);
        assert!(matches!(c.next_bundle(later), Err(Some(_))), "unacked");
        c.ack(
            &[Drawn {
                key: "a:video".into(),
                capture_ms: Some(2000.0),
            }],
            2040.0,
        );
        assert_eq!(parse(&c.next_bundle(later).unwrap()).len(), 1);
        let stats = c.stats(false);
        let a = stats.iter().find(|s| s.key == "a:video").unwrap();
        assert_eq!((a.drawn, a.replaced), (1, 1));
        assert_eq!(a.latency_p50_ms, Some(40.0));
    }

    #[test]
    fn hidden_tiles_are_not_sent_and_a_lost_ack_expires() {
        let c = Compositor::default();
        let t0 = Instant::now();
        c.set_sizes(HashMap::from([("a:video".to_string(), (0, 0))]));
        let f = VideoFrame::black(320, 180);
        c.push(&video_of("a"), &f);
        assert!(c.next_bundle(t0).is_ok());
        c.push(&video_of("a"), &f);
        assert!(c.next_bundle(t0 + Duration::from_millis(500)).is_err());
        assert!(c.next_bundle(t0 + ACK_TIMEOUT).is_ok(), "ack lost: resend");
        c.set_sizes(HashMap::new());
        c.push(&video_of("gone"), &f);
        c.set_sizes(HashMap::new());
        assert_eq!(
            c.next_bundle(t0 + 3 * ACK_TIMEOUT).unwrap_err(),
            None,
            "nothing to send for tiles the page does not show"
        );
    }
}
