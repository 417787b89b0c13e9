//! The words every layer shares for what a participant sends: the three kinds of media and
//! which of them are on. They live here, at the bottom, because the signaling records, the
//! engine, the devices and the app all speak of them.

use serde::{Deserialize, Serialize};

/// A kind of media a participant sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Audio,
    Video,
    Screen,
}

impl MediaKind {
    /// Every kind, in the order records and events list them.
    pub const ALL: [MediaKind; 3] = [MediaKind::Audio, MediaKind::Video, MediaKind::Screen];

    /// The name used as track id, in records and in events.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Screen => "screen",
        }
    }

    /// From a track id: the kind's name, optionally followed by `-` and a suffix that makes
    /// it unique (ours are `video-1a2b3c4d`).
    pub fn from_track_id(id: &str) -> Option<Self> {
        let name = id.split_once('-').map_or(id, |(name, _)| name);
        MediaKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The device behind it, as a user calls it ("cannot start the camera").
    pub fn device_name(self) -> &'static str {
        match self {
            MediaKind::Audio => "microphone",
            MediaKind::Video => "camera",
            MediaKind::Screen => "screen sharing",
        }
    }
}

impl std::fmt::Display for MediaKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which kinds a participant sends. Stored in the occupant record as
/// `{"audio": bool, "video": bool, "screen": bool}` (docs/protocol.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamConfig {
    pub audio: bool,
    pub video: bool,
    pub screen: bool,
}

impl StreamConfig {
    pub const NONE: StreamConfig = StreamConfig {
        audio: false,
        video: false,
        screen: false,
    };

    /// Whether `kind` is on.
    pub fn get(&self, kind: MediaKind) -> bool {
        *self.slot(kind)
    }

    /// Turns `kind` on or off.
    pub fn set(&mut self, kind: MediaKind, on: bool) {
        *self.slot_mut(kind) = on;
    }

    /// This with `kind` on or off.
    pub fn with(mut self, kind: MediaKind, on: bool) -> Self {
        self.set(kind, on);
        self
    }

    /// Every kind with whether it is on, in [`MediaKind::ALL`]'s order.
    pub fn iter(&self) -> impl Iterator<Item = (MediaKind, bool)> + '_ {
        MediaKind::ALL.into_iter().map(|k| (k, self.get(k)))
    }

    /// The kinds that are on.
    pub fn on(&self) -> impl Iterator<Item = MediaKind> + '_ {
        self.iter().filter_map(|(k, on)| on.then_some(k))
    }

    /// A config with each kind set by `f`.
    pub fn from_fn(mut f: impl FnMut(MediaKind) -> bool) -> Self {
        let mut c = StreamConfig::NONE;
        for k in MediaKind::ALL {
            c.set(k, f(k));
        }
        c
    }

    fn slot(&self, kind: MediaKind) -> &bool {
        match kind {
            MediaKind::Audio => &self.audio,
            MediaKind::Video => &self.video,
            MediaKind::Screen => &self.screen,
        }
    }

    fn slot_mut(&mut self, kind: MediaKind) -> &mut bool {
        match kind {
            MediaKind::Audio => &mut self.audio,
            MediaKind::Video => &mut self.video,
            MediaKind::Screen => &mut self.screen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn track_ids_name_their_kind() {
        assert_eq!(MediaKind::from_track_id("video"), Some(MediaKind::Video));
        assert_eq!(
            MediaKind::from_track_id("screen-00c0ffee"),
            Some(MediaKind::Screen)
        );
        assert_eq!(MediaKind::from_track_id("audio-1"), Some(MediaKind::Audio));
        assert_eq!(MediaKind::from_track_id("camera-1"), None);
        assert_eq!(MediaKind::from_track_id(""), None);
    }

    #[test]
    fn a_config_is_read_and_set_by_kind() {
        let mut c = StreamConfig::NONE.with(MediaKind::Video, true);
        assert!(c.get(MediaKind::Video) && !c.get(MediaKind::Audio));
        c.set(MediaKind::Screen, true);
        c.set(MediaKind::Video, false);
        assert_eq!(c.on().collect::<Vec<_>>(), [MediaKind::Screen]);
        assert_eq!(
            StreamConfig::from_fn(|k| k != MediaKind::Audio),
            StreamConfig {
                audio: false,
                video: true,
                screen: true
            }
        );
    }

    #[test]
    fn the_record_form_is_three_named_flags() {
        let c = StreamConfig::NONE.with(MediaKind::Audio, true);
        assert_eq!(
            serde_json::to_string(&c).ok().as_deref(),
            Some(r#"{"audio":true,"video":false,"screen":false}"#)
        );
        assert_eq!(
            serde_json::to_string(&MediaKind::Screen).ok().as_deref(),
            Some(r#""screen""#)
        );
    }
}
