//! What I send: one stream per kind (camera, microphone, screen), each fed by ONE encoder per
//! codec in use whose output is broadcast to every connection using that codec. Each connection
//! packetizes the same encoded frames into a track of its own (a webrtc-rs 0.21 local track
//! delivers to only one PeerConnection), so a source is encoded once per codec whatever the
//! number of peers; only the cheap RTP packetizing is per peer. An encoder runs only while some
//! connection takes its codec: a room of VP8 peers never pays for H.264.
//!
//! - [`video`]: the encoder thread of a camera or screen (one encoder per codec in use);
//! - [`audio`]: the microphone's encoder thread (Opus, one for everyone);
//! - [`feed`]: one connection's copy of a stream, written into that connection's track.
//!
//! This file holds what the three share: the encoded unit, one codec's broadcast, and the
//! [`LocalStream`] handle the room task keeps per kind.

mod audio;
mod feed;
mod video;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use media::codec::VideoCodec;
use tokio::sync::broadcast;

use crate::event::MediaKind;
use crate::keyframe::Keyframes;

pub use audio::start_audio;
pub use feed::{new_track, Feed, LinkState};
pub use video::start_video;

/// One encoded frame or audio packet.
#[derive(Clone, Debug)]
pub struct Encoded {
    pub data: Bytes,
    /// How long it lasts.
    pub duration: Duration,
    /// A video keyframe (audio packets say true: every one stands alone).
    pub keyframe: bool,
}

/// One codec's output of a stream: the broadcast of its encoded frames and its keyframe flag.
#[derive(Clone)]
struct Output {
    tx: broadcast::Sender<Encoded>,
    keyframe: Arc<Keyframes>,
}

impl Output {
    fn new(capacity: usize, keyframe_wanted: bool) -> Self {
        Output {
            tx: broadcast::channel(capacity).0,
            keyframe: Arc::new(Keyframes::new(keyframe_wanted)),
        }
    }
}

/// A running local stream: its encoders (one per video codec in use; audio has one) and the
/// broadcast of what each produces.
pub struct LocalStream {
    pub kind: MediaKind,
    /// Audio: the one output. Video: one per codec, in [`VideoCodec::ALL`] order.
    outputs: Vec<(VideoCodec, Output)>,
    bitrate_kbps: Arc<AtomicU32>,
    /// Set when the stream is dropped; its encoder thread checks it between frames.
    stop: Arc<AtomicBool>,
}

impl LocalStream {
    /// Sets the encoder's target bitrate (video; audio ignores it).
    pub fn set_bitrate_kbps(&self, kbps: u32) {
        self.bitrate_kbps.store(kbps, Ordering::Relaxed);
    }

    /// The encoder's target bitrate.
    pub fn bitrate_kbps(&self) -> u32 {
        self.bitrate_kbps.load(Ordering::Relaxed)
    }

    /// Asks the encoder of `codec` for a keyframe (a peer using it connected, or lost a
    /// picture). Audio has no keyframes and ignores it.
    pub fn request_keyframe(&self, codec: VideoCodec) {
        if let Some(out) = self.output(codec) {
            out.keyframe.force();
        }
    }

    fn output(&self, codec: VideoCodec) -> Option<&Output> {
        match self.kind {
            MediaKind::Audio => None,
            _ => self
                .outputs
                .iter()
                .find(|(c, _)| *c == codec)
                .map(|(_, o)| o),
        }
    }

    /// The keyframe flag of `codec`'s encoder and its rate limit for remote requests.
    #[cfg(test)]
    pub fn keyframes(&self, codec: VideoCodec) -> &Arc<Keyframes> {
        &self
            .outputs
            .iter()
            .find(|(c, _)| *c == codec)
            .unwrap()
            .1
            .keyframe
    }

    /// A new connection's feed of this stream, encoded with `codec` (audio ignores it).
    pub fn subscribe(&self, codec: VideoCodec) -> Feed {
        let out = self.output(codec).or(self.outputs.first().map(|(_, o)| o));
        let (tx, keyframe) = match out {
            Some(o) => (o.tx.clone(), o.keyframe.clone()),
            // Unreachable: every stream has an output; a closed channel just ends the feed.
            None => (broadcast::channel(1).0, Arc::new(Keyframes::new(false))),
        };
        Feed {
            kind: self.kind,
            codec,
            rx: tx.subscribe(),
            keyframe,
        }
    }
}

impl Drop for LocalStream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
