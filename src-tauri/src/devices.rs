//! The devices of the app: the pickers' entries (the `devices` crate's cameras, microphones,
//! speakers and screens, beside the test sources and "none"), and the sources a call or the
//! pre-join preview opens from the settings' [`Devices`], every camera and screen frame also
//! shown in my own tile.

use std::sync::Arc;

use devices::{DeviceChoice, DeviceSetup, DeviceSources};
use serde::Serialize;

use crate::frames::{Compositor, TileKey};
use crate::settings::Devices;

/// Capture settings of the call (tests and benchmarks set smaller ones).
#[derive(Clone, Debug)]
pub struct Capture {
    pub width: u32,
    pub height: u32,
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

/// One entry of a device picker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PickerEntry {
    /// What the settings store (a [`DeviceChoice`] in its string form).
    pub id: String,
    /// What the user reads.
    pub label: String,
}

/// Every picker's entries, and what could not be listed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Pickers {
    pub cameras: Vec<PickerEntry>,
    pub microphones: Vec<PickerEntry>,
    pub speakers: Vec<PickerEntry>,
    pub displays: Vec<PickerEntry>,
    /// Why a kind of device could not be listed, in words.
    pub problems: Vec<String>,
}

fn entry(choice: DeviceChoice, label: &str) -> PickerEntry {
    PickerEntry {
        id: choice.to_string(),
        label: label.into(),
    }
}

/// "System default" only where there is a device for it to be: offered with none, every join
/// would fail to open it.
fn picker(real: &[devices::DeviceInfo], test: Option<&str>, none: &str) -> Vec<PickerEntry> {
    let mut v = Vec::new();
    if !real.is_empty() {
        v.push(entry(DeviceChoice::Default, "System default"));
    }
    v.extend(
        real.iter()
            .map(|d| entry(DeviceChoice::Named(d.id.clone()), &d.name)),
    );
    if let Some(t) = test {
        v.push(entry(DeviceChoice::Synthetic, t));
    }
    v.push(entry(DeviceChoice::Off, none));
    v
}

/// The devices present now, plus the test sources and "none".
pub fn pickers() -> Pickers {
    let real = devices::list_devices();
    Pickers {
        cameras: picker(&real.cameras, Some("Test pattern"), "None"),
        microphones: picker(&real.microphones, Some("Test tone"), "None"),
        speakers: picker(&real.speakers, None, "None (do not play)"),
        displays: picker(&real.displays, Some("Test pattern (screen)"), "None"),
        problems: real.problems,
    }
}

/// Something the screen-share picker offers: a whole display, one window, or the test pattern.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ShareTarget {
    /// What `share_screen` takes: a display number, `window:<id>`, or `synthetic`.
    pub id: String,
    /// `display`, `window` or `test`.
    pub kind: &'static str,
    /// What the user reads (the window's title).
    pub label: String,
    /// A picture of it now, as a `data:image/png` URL (none when it cannot be captured).
    pub thumbnail: Option<String>,
}

/// Thumbnails fit in this box (16:9, the size a picker card shows them at on a HiDPI screen).
const THUMB: (u32, u32) = (320, 180);

/// Everything that can be shared now, with a current thumbnail of each: the displays, the
/// windows (except `own_window`, Huddle's own: sharing it would show the others their own
/// tiles), and the test pattern when the settings choose it. Blocking (it talks to the window
/// system): call it off the async runtime.
pub fn share_targets(test_pattern: bool, own_window: Option<u32>) -> Vec<ShareTarget> {
    let mut out = Vec::new();
    for d in devices::screen::list().unwrap_or_default() {
        out.push(ShareTarget {
            id: d.index.to_string(),
            kind: "display",
            label: format!("Entire screen {} ({}x{})", d.index + 1, d.width, d.height),
            thumbnail: devices::screen::capture(d.index)
                .ok()
                .and_then(|p| png_url(&p)),
        });
    }
    let windows: Vec<_> = devices::window::list()
        .unwrap_or_default()
        .into_iter()
        .filter(|w| Some(w.id) != own_window)
        .collect();
    let ids: Vec<u32> = windows.iter().map(|w| w.id).collect();
    for (w, pic) in windows.into_iter().zip(devices::window::capture_many(&ids)) {
        out.push(ShareTarget {
            id: format!("{}{}", devices::window::CHOICE_PREFIX, w.id),
            kind: "window",
            label: w.title,
            thumbnail: pic.ok().and_then(|p| png_url(&p)),
        });
    }
    if test_pattern {
        out.push(ShareTarget {
            id: DeviceChoice::Synthetic.to_string(),
            kind: "test",
            label: "Test pattern (screen)".into(),
            thumbnail: None,
        });
    }
    out
}

/// A picture as a small PNG in a data URL.
fn png_url(p: &devices::window::Picture) -> Option<String> {
    use base64::Engine as _;
    let t = p.scaled_to_fit(THUMB.0, THUMB.1);
    let mut rgba = t.bgra;
    for px in rgba.chunks_exact_mut(4) {
        px.swap(0, 2);
    }
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, t.width, t.height);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().ok()?;
        w.write_image_data(&rgba).ok()?;
    }
    Some(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

/// The sources the settings choose; every camera and screen frame also goes to my own tile in
/// `preview`.
pub fn sources(
    d: &Devices,
    capture: &Capture,
    noise_suppression: bool,
    preview: Arc<Compositor>,
) -> DeviceSources {
    let mut setup = DeviceSetup {
        camera: d.camera.clone(),
        microphone: d.microphone.clone(),
        speaker: d.speaker.clone(),
        display: d.display.clone(),
        ..DeviceSetup::default()
    };
    setup.camera_mode.width = capture.width;
    setup.camera_mode.height = capture.height;
    setup.camera_mode.fps = capture.fps;
    setup.processing.noise_suppression = noise_suppression;
    DeviceSources::new(setup).with_video_tap(Arc::new(move |kind, frame| {
        preview.push(&TileKey::mine(kind), frame);
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_picker_offers_default_and_none_and_test_sources_where_they_exist() {
        let l = pickers();
        let real = devices::list_devices();
        for (p, present) in [
            (&l.cameras, &real.cameras),
            (&l.microphones, &real.microphones),
            (&l.speakers, &real.speakers),
            (&l.displays, &real.displays),
        ] {
            assert_eq!(
                p[0].id == "default",
                !present.is_empty(),
                "the system default is offered where a device exists: {p:?}"
            );
            assert_eq!(p.last().map(|c| c.id.as_str()), Some("none"));
        }
        let one = devices::DeviceInfo {
            id: "hw0".into(),
            name: "Mic".into(),
            default: true,
        };
        assert_eq!(
            picker(std::slice::from_ref(&one), None, "None")
                .iter()
                .map(|e| e.id.as_str())
                .collect::<Vec<_>>(),
            ["default", "hw0", "none"]
        );
        assert_eq!(
            picker(&[], Some("Test"), "None")
                .iter()
                .map(|e| e.id.as_str())
                .collect::<Vec<_>>(),
            ["synthetic", "none"]
        );
        assert!(l.cameras.iter().any(|c| c.id == "synthetic"));
        assert!(!l.speakers.iter().any(|c| c.id == "synthetic"));
        assert_eq!(DeviceChoice::from("synthetic"), DeviceChoice::Synthetic);
        assert_eq!(DeviceChoice::from("2"), DeviceChoice::Named("2".into()));
    }
}
