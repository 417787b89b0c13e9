//! A [`VideoSource`] fed by a capture thread. Camera and screen capture libraries hold handles
//! that are not `Send` (scrap's X11 connection is an `Rc`), so each device lives on a thread of
//! its own and hands finished I420 frames over a one-slot channel: when the encoder is behind,
//! the capture thread drops its frame instead of queueing stale ones.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

use media::source::{MediaError, VideoSource};
use media::VideoFrame;

/// The receiving end: what the engine's encoder thread pulls from.
pub struct ThreadSource {
    description: String,
    frames: Receiver<Result<VideoFrame, MediaError>>,
}

/// The capture thread's end.
pub struct FrameSender(SyncSender<Result<VideoFrame, MediaError>>);

/// What happened to a frame offered to the encoder.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    Sent,
    /// The encoder still has the previous one: this one was dropped.
    Busy,
    /// Nobody pulls any more (the stream was turned off): the capture thread should end.
    Closed,
}

impl FrameSender {
    /// Offers a frame without waiting.
    pub fn offer(&self, frame: VideoFrame) -> Offer {
        match self.0.try_send(Ok(frame)) {
            Ok(()) => Offer::Sent,
            Err(TrySendError::Full(_)) => Offer::Busy,
            Err(TrySendError::Disconnected(_)) => Offer::Closed,
        }
    }

    /// Ends the stream with `err` (waits for the slot: the encoder must see why).
    pub fn fail(&self, err: MediaError) {
        let _ = self.0.send(Err(err));
    }
}

/// A connected pair.
pub fn channel(description: impl Into<String>) -> (FrameSender, ThreadSource) {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    (
        FrameSender(tx),
        ThreadSource {
            description: description.into(),
            frames: rx,
        },
    )
}

impl VideoSource for ThreadSource {
    fn next_frame(&mut self) -> Result<VideoFrame, MediaError> {
        match self.frames.recv() {
            Ok(r) => r,
            Err(_) => Err(MediaError::Ended),
        }
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}
