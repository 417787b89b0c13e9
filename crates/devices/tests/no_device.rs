//! The no-device paths on a machine without camera, sound card or X display (this CI box):
//! every request gets an error in words, nothing panics, and the app learns which streams it
//! can still send.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use devices::{DeviceChoice, DeviceSetup, DeviceSources};
use media::source::MediaError;
use media::source::Sources;
use media::MediaKind;
use media::StreamConfig;

fn no_display() {
    // This test binary never starts an X server; make sure an inherited DISPLAY cannot help.
    std::env::remove_var("DISPLAY");
}

#[test]
fn cameras_and_displays_missing_are_reported_in_words() {
    no_display();
    let list = devices::list_devices();
    assert!(
        list.cameras.is_empty(),
        "this machine has no camera: {list:?}"
    );
    assert!(list.displays.is_empty());
    assert!(
        list.problems
            .iter()
            .any(|p| p.contains("needs an X11 session")),
        "{list:?}"
    );

    let sources = DeviceSources::new(DeviceSetup::default());
    let err = sources.video(MediaKind::Video).err().unwrap();
    assert!(matches!(err, MediaError::NoDevice(_)), "{err}");
    assert_eq!(err.to_string(), "no such media device: no camera found");
    let err = sources.video(MediaKind::Screen).err().unwrap();
    assert!(err.to_string().contains("no screen to capture"), "{err}");
    let err = devices::camera::open(3, DeviceSetup::default().camera_mode, Default::default())
        .err()
        .unwrap();
    assert!(err.to_string().contains("no camera found"), "{err}");

    // Joining with what is there: camera and screen dropped, each with its reason.
    let (usable, problems) = sources.usable(StreamConfig {
        audio: false,
        video: true,
        screen: true,
    });
    assert!(!usable.video && !usable.screen);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].starts_with("video: "), "{problems:?}");
    assert!(problems[1].starts_with("screen: "), "{problems:?}");
}

#[test]
fn nothing_chosen_and_bad_choices_are_errors_not_panics() {
    let sources = DeviceSources::new(DeviceSetup {
        camera: DeviceChoice::Off,
        microphone: DeviceChoice::Off,
        speaker: DeviceChoice::Off,
        display: DeviceChoice::Named("left".into()),
        ..Default::default()
    });
    assert_eq!(
        sources.video(MediaKind::Video).err().unwrap().to_string(),
        "no such media device: no camera chosen"
    );
    assert!(sources
        .audio()
        .err()
        .unwrap()
        .to_string()
        .contains("no microphone chosen"));
    assert!(sources
        .speaker()
        .err()
        .unwrap()
        .to_string()
        .contains("no speaker chosen"));
    assert!(sources
        .video(MediaKind::Screen)
        .err()
        .unwrap()
        .to_string()
        .contains("\"left\" is not a display number"));
    assert!(sources.switch_microphone(None).is_err());
    assert!(sources.switch_speaker(None).is_err());
    let named = DeviceSources::new(DeviceSetup {
        microphone: DeviceChoice::Named("no such microphone anywhere".into()),
        ..Default::default()
    });
    let err = named.audio().err().unwrap().to_string();
    assert!(err.contains("no microphone named"), "{err}");
}

/// cpal on a machine without a sound card sees only ALSA's `null` device and a default device
/// that does not open: the microphone is then dropped from the call with a reason, the speaker
/// refuses in words. (On a machine with a sound card this test has nothing to check.)
#[test]
fn a_default_sound_device_that_does_not_open_is_reported() {
    let list = devices::list_devices();
    if list.microphones.iter().any(|m| m.id != "alsa:null") {
        eprintln!("a real sound card is present: skipping");
        return;
    }
    let sources = DeviceSources::new(DeviceSetup::default());
    let err = sources.audio().err().unwrap().to_string();
    assert!(
        err.contains("microphone") && err.contains("not available"),
        "{err}"
    );
    let err = sources.speaker().err().unwrap().to_string();
    assert!(
        err.contains("speaker") && err.contains("not available"),
        "{err}"
    );
    let (usable, problems) = sources.usable(StreamConfig {
        audio: true,
        video: false,
        screen: false,
    });
    assert!(!usable.audio);
    assert!(
        problems[0].starts_with("audio: ") && problems[0].contains("not available"),
        "{problems:?}"
    );
}
