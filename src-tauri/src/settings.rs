//! The user's settings, kept as one JSON file in the app's config folder.
//!
//! Loading never fails the app: a missing file gives the defaults, a damaged one is set aside
//! (renamed `.bad`) with a warning, so a bad edit cannot lock the user out.

use std::path::{Path, PathBuf};

use devices::DeviceChoice;
use serde::{Deserialize, Serialize};

/// Which database carries the signaling.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum Database {
    /// huddle-db in this process, on loopback only: rooms on this computer.
    Embedded,
    /// huddle-db in this process, reachable from the LAN so others can join my rooms.
    Host {
        /// TCP port to listen on (all interfaces).
        port: u16,
        /// A database secret every client must send (optional on a trusted LAN).
        #[serde(default)]
        secret: Option<String>,
    },
    /// Another database: a real Firebase RTDB, or a Huddle host on the LAN.
    Remote {
        /// `https://<project>.firebaseio.com` or `http://host:port`.
        url: String,
        /// An ID token or database secret, sent as `auth=`.
        #[serde(default)]
        auth: Option<String>,
    },
}

/// One STUN or TURN server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServerSetting {
    /// `stun:host:port` or `turn:host:port?transport=udp`.
    pub urls: Vec<String>,
    /// TURN user name.
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub credential: String,
}

/// Which device feeds each stream (stored as strings: a device id from the device list,
/// `default`, `synthetic` for a generated test pattern or tone, or `none`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Devices {
    pub camera: DeviceChoice,
    pub microphone: DeviceChoice,
    pub speaker: DeviceChoice,
    /// The screen to share.
    pub display: DeviceChoice,
}

/// A room joined lately, for the tray's quick-join and the home screen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentRoom {
    pub id: signal::RoomId,
    /// Its display name.
    pub name: String,
    /// Private rooms ask for their secret again (it is never stored).
    #[serde(default)]
    pub secured: bool,
    /// The database it lives in, when not the configured one (joined from an invite link).
    #[serde(default)]
    pub db: Option<String>,
}

/// Everything the user can set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// My peer id in rooms, made once: it lets me recognise the rooms I created.
    pub peer_id: signal::PeerId,
    /// Display name shown to others.
    pub name: String,
    /// Where signaling goes.
    pub database: Database,
    /// STUN/TURN servers; empty is fine on a LAN.
    pub ice_servers: Vec<IceServerSetting>,
    pub devices: Devices,
    /// Noise suppression on the microphone.
    pub noise_suppression: bool,
    /// Send H.264 to the participants who prefer it too (VP8 with everyone else).
    pub prefer_h264: bool,
    /// Join with the microphone on.
    pub start_with_audio: bool,
    /// Join with the camera on.
    pub start_with_video: bool,
    /// Most recent first, at most [`MAX_RECENT`].
    pub recent: Vec<RecentRoom>,
}

/// How many recent rooms are kept.
pub const MAX_RECENT: usize = 8;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            peer_id: signal::new_peer_id(),
            name: default_name(),
            database: Database::Embedded,
            ice_servers: Vec::new(),
            devices: Devices::default(),
            noise_suppression: true,
            prefer_h264: false,
            start_with_audio: true,
            start_with_video: true,
            recent: Vec::new(),
        }
    }
}

fn default_name() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty() && u != "root")
        .unwrap_or_else(|| "Guest".into())
}

/// A setting that cannot be used, in words for the settings form.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    /// Name empty or too long.
    #[error("your display name needs 1 to 100 characters")]
    Name,
    /// The URL is not http(s).
    #[error("the database address must start with http:// or https://")]
    Url,
    /// Port 0 or below 1024.
    #[error("pick a port between 1024 and 65535 to host rooms")]
    Port,
    /// An ICE server URL that is not stun:/turn:/turns:.
    #[error("ICE server addresses start with stun:, turn: or turns: ({0})")]
    Ice(String),
}

impl Settings {
    /// Checks what the user typed before it is saved.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let n = self.name.trim().chars().count();
        if n == 0 || n > 100 {
            return Err(SettingsError::Name);
        }
        match &self.database {
            Database::Embedded => {}
            Database::Host { port, .. } if *port < 1024 => return Err(SettingsError::Port),
            Database::Host { .. } => {}
            Database::Remote { url, .. } => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(SettingsError::Url);
                }
            }
        }
        for s in &self.ice_servers {
            for u in &s.urls {
                if !["stun:", "turn:", "turns:"]
                    .iter()
                    .any(|p| u.starts_with(p))
                {
                    return Err(SettingsError::Ice(u.clone()));
                }
            }
        }
        Ok(())
    }

    /// Puts `room` first in the recent list (replacing an older entry of the same room).
    pub fn remember(&mut self, room: RecentRoom) {
        self.recent
            .retain(|r| !(r.id == room.id && r.db == room.db));
        self.recent.insert(0, room);
        self.recent.truncate(MAX_RECENT);
    }

    /// Drops a room from the recent list (it was destroyed).
    pub fn forget(&mut self, room_id: &str) {
        self.recent.retain(|r| r.id != room_id);
    }
}

/// Where the settings live.
pub struct Store {
    path: PathBuf,
}

impl Store {
    /// Settings in `dir/settings.json`.
    pub fn new(dir: &Path) -> Self {
        Store {
            path: dir.join("settings.json"),
        }
    }

    /// The saved settings, or the defaults.
    pub fn load(&self) -> Settings {
        match std::fs::read(&self.path) {
            Ok(bytes) => match serde_json::from_slice::<Settings>(&bytes) {
                Ok(s) => s,
                Err(e) => {
                    let bad = self.path.with_extension("json.bad");
                    tracing::warn!(error = %e, moved_to = %bad.display(), "settings file is damaged; starting from the defaults");
                    let _ = std::fs::rename(&self.path, bad);
                    Settings::default()
                }
            },
            Err(_) => Settings::default(),
        }
    }

    /// Saves atomically (write a temporary file, then rename), so a crash leaves the old or
    /// the new settings, never half of them.
    pub fn save(&self, settings: &Settings) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let json = serde_json::to_vec_pretty(settings).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn saved_settings_come_back_and_damaged_ones_are_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert_eq!(store.load().name, Settings::default().name);
        let mut s = Settings {
            peer_id: "abcdefgh12345678".into(),
            name: "Ann".into(),
            database: Database::Remote {
                url: "https://x.firebaseio.com".into(),
                auth: Some("tok".into()),
            },
            ..Settings::default()
        };
        s.remember(RecentRoom {
            id: "r1".into(),
            name: "Standup".into(),
            secured: false,
            db: None,
        });
        store.save(&s).unwrap();
        assert_eq!(store.load(), s);

        std::fs::write(dir.path().join("settings.json"), b"{not json").unwrap();
        assert_eq!(store.load().recent, Vec::new());
        assert!(dir.path().join("settings.json.bad").exists());
    }

    #[test]
    fn recent_rooms_are_unique_newest_first_and_bounded() {
        let mut s = Settings::default();
        for i in 0..12 {
            s.remember(RecentRoom {
                id: format!("r{}", i % 10).into(),
                name: format!("Room {i}"),
                secured: false,
                db: None,
            });
        }
        assert_eq!(s.recent.len(), MAX_RECENT);
        assert_eq!(s.recent[0].id, "r1");
        assert_eq!(s.recent[0].name, "Room 11");
        assert_eq!(s.recent[1].id, "r0");
        s.forget("r1");
        assert_eq!(s.recent[0].id, "r0");
    }

    #[test]
    fn validation_explains_what_is_wrong() {
        let mut s = Settings {
            name: "  ".into(),
            ..Settings::default()
        };
        assert_eq!(s.validate(), Err(SettingsError::Name));
        s.name = "Ann".into();
        s.database = Database::Remote {
            url: "ftp://x".into(),
            auth: None,
        };
        assert_eq!(s.validate(), Err(SettingsError::Url));
        s.database = Database::Host {
            port: 80,
            secret: None,
        };
        assert_eq!(s.validate(), Err(SettingsError::Port));
        s.database = Database::Embedded;
        s.ice_servers = vec![IceServerSetting {
            urls: vec!["http://stun".into()],
            ..Default::default()
        }];
        assert!(matches!(s.validate(), Err(SettingsError::Ice(_))));
        s.ice_servers[0].urls = vec!["stun:stun.example.org:3478".into()];
        assert_eq!(s.validate(), Ok(()));
    }
}
