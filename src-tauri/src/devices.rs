//! The device pickers' choices, and the devices of a call: the `devices` crate's cameras,
//! microphones, speakers and screens, beside the test sources (`synthetic`) and `none`.

use serde::Serialize;

use crate::settings::Devices;
use crate::sources::Capture;

/// One choice in a device picker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeviceChoice {
    /// What the settings store.
    pub id: String,
    /// What the user reads.
    pub label: String,
}

/// Every picker's choices, and what could not be listed.
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
    /// Why a kind of device could not be listed, in words.
    pub problems: Vec<String>,
}

fn choice(id: &str, label: &str) -> DeviceChoice {
    DeviceChoice {
        id: id.into(),
        label: label.into(),
    }
}

fn picker(real: &[devices::DeviceInfo], test: Option<&str>, none: &str) -> Vec<DeviceChoice> {
    let mut v = vec![choice("default", "System default")];
    v.extend(real.iter().map(|d| choice(&d.id, &d.name)));
    if let Some(t) = test {
        v.push(choice("synthetic", t));
    }
    v.push(choice("none", none));
    v
}

/// The devices present now, plus the test sources and "none".
pub fn list() -> DeviceList {
    let real = devices::list_devices();
    DeviceList {
        cameras: picker(&real.cameras, Some("Test pattern"), "None"),
        microphones: picker(&real.microphones, Some("Test tone"), "None"),
        speakers: picker(&real.speakers, None, "None (do not play)"),
        displays: picker(&real.displays, Some("Test pattern (screen)"), "None"),
        problems: real.problems,
    }
}

fn pick(id: &str) -> devices::Pick {
    match id {
        "none" | "synthetic" => devices::Pick::Off,
        "default" | "" => devices::Pick::Default,
        other => devices::Pick::Named(other.to_owned()),
    }
}

/// The real devices the settings choose (test sources and `none` are handled by the caller).
pub fn sources(d: &Devices, capture: &Capture, noise_suppression: bool) -> devices::DeviceSources {
    let mut choice = devices::DeviceChoice {
        camera: pick(&d.camera),
        microphone: pick(&d.microphone),
        speaker: pick(&d.speaker),
        display: pick(&d.display),
        ..devices::DeviceChoice::default()
    };
    choice.camera_mode.width = capture.width;
    choice.camera_mode.height = capture.height;
    choice.camera_mode.fps = capture.fps;
    choice.processing.noise_suppression = noise_suppression;
    devices::DeviceSources::new(choice)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_picker_offers_default_and_none_and_test_sources_where_they_exist() {
        let l = list();
        for p in [&l.cameras, &l.microphones, &l.speakers, &l.displays] {
            assert_eq!(p[0].id, "default");
            assert_eq!(p.last().map(|c| c.id.as_str()), Some("none"));
        }
        assert!(l.cameras.iter().any(|c| c.id == "synthetic"));
        assert!(!l.speakers.iter().any(|c| c.id == "synthetic"));
        assert_eq!(pick("synthetic"), devices::Pick::Off);
        assert_eq!(pick("2"), devices::Pick::Named("2".into()));
    }
}
