//! Every device the app can offer in its pickers, with ids and human names.

use cpal::traits::{DeviceTrait, HostTrait};

use crate::audio_io::device_name;

/// One device in a picker.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DeviceInfo {
    /// What to pass back in a [`crate::DeviceChoice`] (`DeviceChoice::Named`) or to `huddle-peer`:
    /// the camera or display index, or the audio device's id.
    pub id: String,
    /// A name for people.
    pub name: String,
    /// Whether the system uses it by default.
    pub default: bool,
}

/// The devices present now, by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeviceList {
    pub cameras: Vec<DeviceInfo>,
    pub microphones: Vec<DeviceInfo>,
    /// Speakers and headphones.
    pub speakers: Vec<DeviceInfo>,
    /// Displays that can be shared.
    pub displays: Vec<DeviceInfo>,
    /// Why a kind could not be listed (no camera system, no X11 session...), in words for users.
    pub problems: Vec<String>,
}

/// Lists every camera, microphone, speaker and display present now. Never fails: a kind that
/// cannot be listed is empty and says why in `problems`. Call it again to see devices plugged
/// in since.
pub fn list_devices() -> DeviceList {
    let mut out = DeviceList::default();
    match crate::camera::list() {
        Ok(cams) => {
            out.cameras = cams
                .into_iter()
                .enumerate()
                .map(|(i, (index, name))| DeviceInfo {
                    id: index.to_string(),
                    name,
                    default: i == 0,
                })
                .collect()
        }
        Err(e) => out.problems.push(crate::message(&e)),
    }
    let host = cpal::default_host();
    let default_in = host.default_input_device().and_then(|d| d.id().ok());
    let default_out = host.default_output_device().and_then(|d| d.id().ok());
    for (devices, default, slot, what) in [
        (
            host.input_devices().map(|d| d.collect::<Vec<_>>()),
            default_in,
            &mut out.microphones,
            "microphones",
        ),
        (
            host.output_devices().map(|d| d.collect::<Vec<_>>()),
            default_out,
            &mut out.speakers,
            "speakers",
        ),
    ] {
        match devices {
            Ok(devices) => {
                *slot = devices
                    .iter()
                    .filter_map(|d| {
                        let id = d.id().ok()?;
                        let name = offered_audio_name(&id.to_string(), &device_name(d))?;
                        Some(DeviceInfo {
                            id: id.to_string(),
                            name,
                            default: default.as_ref() == Some(&id),
                        })
                    })
                    .collect();
            }
            Err(e) => out.problems.push(format!("cannot list {what}: {e}")),
        }
    }
    match crate::screen::list() {
        Ok(displays) => {
            out.displays = displays
                .into_iter()
                .map(|d| DeviceInfo {
                    id: d.index.to_string(),
                    name: format!("Display {} ({}x{})", d.index, d.width, d.height),
                    default: d.primary,
                })
                .collect()
        }
        Err(e) => out.problems.push(crate::message(&e)),
    }
    out
}

/// The name an audio device is offered under, or `None` for one nobody can use in a call:
/// ALSA's `null` plugin ("Discard all samples (playback) or generate zero samples (capture)")
/// records silence and plays into nothing. A multi-line ALSA description ("HDA Intel PCH, ALC3246
/// Analog" then "Front speakers") is shown on one line.
pub fn offered_audio_name(id: &str, description: &str) -> Option<String> {
    let pcm = id.rsplit(':').next().unwrap_or(id);
    if pcm == "null" {
        return None;
    }
    let name = description
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" – ");
    Some(if name.is_empty() { id.to_owned() } else { name })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_devices_nobody_can_use_are_not_offered_and_names_fit_one_line() {
        assert_eq!(
            offered_audio_name(
                "alsa:null",
                "Discard all samples (playback) or generate zero samples (capture)"
            ),
            None
        );
        assert_eq!(
            offered_audio_name(
                "alsa:front:CARD=PCH,DEV=0",
                "HDA Intel PCH, ALC3246 Analog\nFront speakers"
            ),
            Some("HDA Intel PCH, ALC3246 Analog – Front speakers".into())
        );
        assert_eq!(
            offered_audio_name("alsa:pulse", ""),
            Some("alsa:pulse".into())
        );
        assert_eq!(
            offered_audio_name("wasapi:{0.0.1}", "Speakers (Realtek)"),
            Some("Speakers (Realtek)".into())
        );
    }
}
