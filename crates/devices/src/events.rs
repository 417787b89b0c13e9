//! What devices tell the app while a call runs: a device gone, a stream rebuilt, the user
//! speaking while muted. Sent on a broadcast channel so any number of listeners (the app's UI,
//! huddle-peer's printer) can follow; a listener that falls behind loses the oldest events, a
//! device never waits for a listener.

use tokio::sync::broadcast;

/// A kind of device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    Camera,
    Microphone,
    /// Speakers or headphones.
    Speaker,
    /// A screen (display) to share.
    Display,
}

impl DeviceKind {
    /// The word for users.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Camera => "camera",
            DeviceKind::Microphone => "microphone",
            DeviceKind::Speaker => "speaker",
            DeviceKind::Display => "display",
        }
    }
}

/// Something that happened to a device during a call.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum DeviceEvent {
    /// A device stopped working (unplugged, taken by another program) and could not be brought
    /// back. For a camera or display the stream has ended: the app should turn that stream off
    /// (`Mesh::set_stream(kind, false)`), which shows the camera-off tile to everyone. For a
    /// microphone the call keeps sending silence; for a speaker, nothing is heard.
    Lost {
        kind: DeviceKind,
        /// The device's name.
        name: String,
        /// What happened, in words for the user.
        message: String,
    },
    /// The audio system invalidated a stream (a sound server restart, a format change) and it
    /// was rebuilt; the call goes on.
    Rebuilt {
        kind: DeviceKind,
        /// The device now used.
        name: String,
    },
    /// A microphone or speaker switch mid-call took effect.
    Switched {
        kind: DeviceKind,
        /// The device now used.
        name: String,
    },
    /// The microphone is muted and hears someone speaking (after echo cancellation, so not the
    /// call's own audio): the "you are muted" hint. `speaking: false` when they stop.
    MutedSpeaking {
        /// Whether speech is heard now.
        speaking: bool,
    },
}

/// The sending side of the device events, cloned into every device.
#[derive(Clone, Debug)]
pub struct EventSender(broadcast::Sender<DeviceEvent>);

impl EventSender {
    /// A channel keeping the last 64 events for slow listeners.
    pub fn new() -> Self {
        EventSender(broadcast::channel(64).0)
    }

    /// Publishes `ev` (logged too; nobody listening is fine).
    pub fn send(&self, ev: DeviceEvent) {
        tracing::info!(?ev, "device event");
        let _ = self.0.send(ev);
    }

    /// A new listener, receiving events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<DeviceEvent> {
        self.0.subscribe()
    }
}

impl Default for EventSender {
    fn default() -> Self {
        Self::new()
    }
}
