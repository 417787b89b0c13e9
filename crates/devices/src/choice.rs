//! What feeds one stream: the device choice the app's settings store and huddle-peer's flags
//! name, one type for both.

use serde::{Deserialize, Serialize};

/// Which device feeds one stream (camera, microphone, speaker or display).
///
/// Stored and passed as a string, the form the settings file has always had: `default`,
/// `synthetic`, `none`, or a device id from [`crate::list_devices`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum DeviceChoice {
    /// The system's default (for cameras and displays: the first one).
    #[default]
    Default,
    /// A [`crate::DeviceInfo::id`]; for audio devices a (unique part of a) name works too.
    Named(String),
    /// A generated source instead of a device: the stamped test pattern or the speech-like
    /// tone (`media::synthetic`). There is no synthetic speaker: for a speaker it plays nothing.
    Synthetic,
    /// Nothing of this kind.
    Off,
}

impl DeviceChoice {
    /// Whether a real device is meant (default or named).
    pub fn is_device(&self) -> bool {
        matches!(self, DeviceChoice::Default | DeviceChoice::Named(_))
    }

    /// The name or id of the device asked for, when one is named.
    pub fn selector(&self) -> Option<String> {
        match self {
            DeviceChoice::Named(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// A huddle-peer flag: `synthetic`, `none`, `WORD` (the default device) or `WORD:ID`,
    /// where `WORD` names the kind (`camera`, `mic`, `display`).
    pub fn from_flag(s: &str, device_word: &str) -> Result<Self, String> {
        match s.split_once(':') {
            _ if s == "synthetic" => Ok(DeviceChoice::Synthetic),
            _ if s == "none" => Ok(DeviceChoice::Off),
            _ if s == device_word => Ok(DeviceChoice::Default),
            Some((w, name)) if w == device_word && !name.is_empty() => {
                Ok(DeviceChoice::Named(name.to_owned()))
            }
            _ => Err(format!(
                "expected synthetic, none, {device_word} or {device_word}:ID (see --list-devices)"
            )),
        }
    }
}

impl From<&str> for DeviceChoice {
    fn from(s: &str) -> Self {
        match s {
            "default" | "" => DeviceChoice::Default,
            "synthetic" => DeviceChoice::Synthetic,
            "none" => DeviceChoice::Off,
            id => DeviceChoice::Named(id.to_owned()),
        }
    }
}

impl From<String> for DeviceChoice {
    fn from(s: String) -> Self {
        DeviceChoice::from(s.as_str())
    }
}

impl From<DeviceChoice> for String {
    fn from(c: DeviceChoice) -> Self {
        c.to_string()
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeviceChoice::Default => "default",
            DeviceChoice::Named(id) => id,
            DeviceChoice::Synthetic => "synthetic",
            DeviceChoice::Off => "none",
        })
    }
}

impl std::str::FromStr for DeviceChoice {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(DeviceChoice::from(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_form_is_the_settings_string() {
        for (s, c) in [
            ("default", DeviceChoice::Default),
            ("synthetic", DeviceChoice::Synthetic),
            ("none", DeviceChoice::Off),
            ("/dev/video2", DeviceChoice::Named("/dev/video2".into())),
        ] {
            assert_eq!(DeviceChoice::from(s), c);
            assert_eq!(c.to_string(), s);
            let json = serde_json::to_string(&c).unwrap_or_default();
            assert_eq!(json, format!("\"{s}\""));
            assert_eq!(serde_json::from_str::<DeviceChoice>(&json).ok(), Some(c));
        }
        assert_eq!(DeviceChoice::from(""), DeviceChoice::Default);
    }

    #[test]
    fn peer_flags_name_the_kind() {
        assert_eq!(
            DeviceChoice::from_flag("camera", "camera"),
            Ok(DeviceChoice::Default)
        );
        assert_eq!(
            DeviceChoice::from_flag("camera:2", "camera"),
            Ok(DeviceChoice::Named("2".into()))
        );
        assert_eq!(
            DeviceChoice::from_flag("none", "mic"),
            Ok(DeviceChoice::Off)
        );
        assert!(DeviceChoice::from_flag("camera:", "camera").is_err());
        assert!(DeviceChoice::from_flag("mic", "camera").is_err());
    }
}
