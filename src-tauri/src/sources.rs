//! Where the app's camera, screen and microphone come from: the devices chosen in the settings,
//! or `synthetic` sources (a moving, stamped test pattern and a speech-like tone) for machines
//! without devices and for tests. Every camera and screen frame is also shown in my own tile.

use std::sync::Arc;

use media::frame::VideoFrame;
use media::source::{AudioSource, MediaError, VideoSource};
use media::synthetic::{TestPattern, Tone};
use mesh::{MediaKind, Sources};

use crate::frames::{Compositor, SELF_SCREEN, SELF_VIDEO};
use crate::settings::Devices;

/// Capture settings of the call.
#[derive(Clone, Debug)]
pub struct Capture {
    /// Camera width.
    pub width: u32,
    /// Camera height.
    pub height: u32,
    /// Camera frame rate.
    pub fps: u32,
}

impl Default for Capture {
    fn default() -> Self {
        Capture {
            width: 640,
            height: 360,
            fps: 30,
        }
    }
}

/// The app's [`Sources`].
pub struct AppSources {
    devices: Devices,
    capture: Capture,
    preview: Arc<Compositor>,
    real: Arc<devices::DeviceSources>,
}

impl AppSources {
    /// Sources for `devices` (test sources, or the real devices of `real`), previewed in
    /// `preview`.
    pub fn new(
        devices: Devices,
        capture: Capture,
        preview: Arc<Compositor>,
        real: Arc<devices::DeviceSources>,
    ) -> Self {
        AppSources {
            devices,
            capture,
            preview,
            real,
        }
    }
}

/// The message for a device that cannot be used, with what the user can do about it.
fn missing(what: &str, choice: &str) -> MediaError {
    if choice == "none" {
        MediaError::NoDevice(format!("no {what} is selected (Settings → Devices)"))
    } else {
        MediaError::NoDevice(format!(
            "no {what} found on this computer; pick one (or the test source) in Settings → Devices"
        ))
    }
}

impl Sources for AppSources {
    fn video(&self, kind: MediaKind) -> Result<Box<dyn VideoSource>, MediaError> {
        let c = &self.capture;
        let (choice, what, key) = match kind {
            MediaKind::Screen => (&self.devices.display, "screen", SELF_SCREEN),
            _ => (&self.devices.camera, "camera", SELF_VIDEO),
        };
        let inner: Box<dyn VideoSource> = match (choice.as_str(), kind) {
            ("synthetic", MediaKind::Screen) => Box::new(TestPattern::new(
                c.width * 2,
                c.height * 2,
                (c.fps / 3).max(1),
            )),
            ("synthetic", _) => Box::new(TestPattern::new(c.width, c.height, c.fps)),
            ("none", _) => return Err(missing(what, "none")),
            (_, kind) => self.real.video(kind).map_err(|e| {
                MediaError::NoDevice(format!(
                    "{}; pick another {what} (or the test source) in Settings → Devices",
                    devices::message(&e)
                ))
            })?,
        };
        Ok(Box::new(Previewed {
            inner,
            preview: self.preview.clone(),
            key,
        }))
    }

    fn audio(&self) -> Result<Box<dyn AudioSource>, MediaError> {
        match self.devices.microphone.as_str() {
            "synthetic" => Ok(Box::new(Tone::speech_like())),
            "none" => Err(missing("microphone", "none")),
            _ => self.real.audio().map_err(|e| {
                MediaError::NoDevice(format!(
                    "{}; pick another microphone (or the test tone) in Settings → Devices",
                    devices::message(&e)
                ))
            }),
        }
    }
}

/// A video source whose frames also go to my own tile.
struct Previewed {
    inner: Box<dyn VideoSource>,
    preview: Arc<Compositor>,
    key: &'static str,
}

impl VideoSource for Previewed {
    fn next_frame(&mut self) -> Result<VideoFrame, MediaError> {
        let frame = self.inner.next_frame()?;
        self.preview.push(self.key, &frame);
        Ok(frame)
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}
