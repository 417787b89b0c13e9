//! The device list for the pickers, and opening a chosen device.

use media::source::{AudioSource, MediaError, VideoSource};
use mesh::MediaKind;
use serde::Serialize;

use crate::sources::Capture;

/// One choice in a device picker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeviceChoice {
    /// What the settings store.
    pub id: String,
    /// What the user reads.
    pub label: String,
}

/// Every picker's choices.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DeviceList {
    /// Cameras.
    pub cameras: Vec<DeviceChoice>,
    /// Microphones.
    pub microphones: Vec<DeviceChoice>,
    /// Speakers.
    pub speakers: Vec<DeviceChoice>,
    /// Screens.
    pub displays: Vec<DeviceChoice>,
}

fn choice(id: &str, label: &str) -> DeviceChoice {
    DeviceChoice {
        id: id.into(),
        label: label.into(),
    }
}

/// The devices present now, plus the test sources and "none".
pub fn list() -> DeviceList {
    let mut l = DeviceList::default();
    for (v, what) in [
        (&mut l.cameras, "Test pattern"),
        (&mut l.microphones, "Test tone"),
        (&mut l.displays, "Test pattern (screen)"),
    ] {
        v.push(choice("default", "System default"));
        v.push(choice("synthetic", what));
        v.push(choice("none", "None"));
    }
    l.speakers.push(choice("default", "System default"));
    l.speakers.push(choice("none", "None (mute playback)"));
    l
}

/// Opens a camera or screen.
pub fn open_video(
    kind: MediaKind,
    choice: &str,
    _capture: &Capture,
) -> Result<Box<dyn VideoSource>, MediaError> {
    let what = if kind == MediaKind::Screen {
        "screen capture"
    } else {
        "camera"
    };
    Err(MediaError::NoDevice(format!(
        "no {what} is available on this computer ({choice}); pick the test source in Settings → Devices"
    )))
}

/// Opens a microphone.
pub fn open_audio(choice: &str) -> Result<Box<dyn AudioSource>, MediaError> {
    Err(MediaError::NoDevice(format!(
        "no microphone is available on this computer ({choice}); pick the test tone in Settings → Devices"
    )))
}

/// The speaker sink for the call's mixed audio (`None`: decoded and measured, not played).
pub fn speaker(choice: &str) -> Option<mesh::SharedAudioSink> {
    if choice != "none" {
        tracing::info!(
            choice,
            "no speaker output is available; remote audio is not played"
        );
    }
    None
}
