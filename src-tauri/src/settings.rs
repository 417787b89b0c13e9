//! The user's settings, kept as one JSON file in the app's config folder.
//!
//! Loading never fails the app: a missing file gives the defaults, a damaged one is set aside
//! (renamed `.bad`) with a warning, so a bad edit cannot lock the user out.

use std::path::{Path, PathBuf};

use devices::DeviceChoice;
use serde::{Deserialize, Serialize};
use signal::auth::FirebaseConfig;

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
        /// Admin: a database secret, sent as `auth=`. It bypasses all rules, so with it the
        /// app does not sign in (and its peer id is made up per connection).
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
    /// The Firebase web app config as pasted from the Firebase console (JavaScript or JSON):
    /// its `apiKey` signs in to a Firebase-hosted database, its `databaseURL` fills the
    /// remote URL. Not secret (it ships in every web app); the credentials it leads to are
    /// kept in the data folder, never here.
    pub firebase_config: String,
    /// Display name shown to others; empty until the user chooses it (the first run asks).
    pub name: String,
    /// Where signaling goes.
    pub database: Database,
    /// STUN/TURN servers; empty is fine on a LAN.
    pub ice_servers: Vec<IceServerSetting>,
    /// Connect only through a TURN relay, so the others never learn my address.
    #[serde(default)]
    pub relay_only: bool,
    pub devices: Devices,
    /// Noise suppression on the microphone.
    pub noise_suppression: bool,
    /// A short sound when someone joins or leaves the call.
    pub sounds: bool,
    /// Send H.264 to the participants who prefer it too (VP8 with everyone else).
    pub prefer_h264: bool,
    /// Join with the microphone on.
    pub start_with_audio: bool,
    /// Join with the camera on.
    pub start_with_video: bool,
    /// Most recent first, at most [`MAX_RECENT`].
    pub recent: Vec<RecentRoom>,
}

/// The port hosting uses when none is known (the settings form offers it too).
pub const DEFAULT_HOST_PORT: u16 = 9443;

/// How many recent rooms are kept.
pub const MAX_RECENT: usize = 8;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            firebase_config: String::new(),
            name: String::new(),
            database: Database::Embedded,
            ice_servers: Vec::new(),
            relay_only: false,
            devices: Devices::default(),
            noise_suppression: true,
            sounds: true,
            prefer_h264: false,
            start_with_audio: true,
            start_with_video: true,
            recent: Vec::new(),
        }
    }
}

/// The name the first run offers: the OS account's full name, where it has one (the part of a
/// Unix GECOS field before its first comma), else nothing: a login name like `jdoe` or `root`
/// is not what people want to be called, and a made-up "Guest" is how two people end up with
/// the same name.
pub fn suggested_name() -> String {
    name_from_account(
        &whoami::fallible::username().unwrap_or_default(),
        &whoami::fallible::realname().unwrap_or_default(),
    )
}

fn name_from_account(login: &str, full: &str) -> String {
    let full = full.split(',').next().unwrap_or_default().trim();
    if full.is_empty() || full == login {
        return String::new();
    }
    full.chars().take(100).collect()
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
    /// Relay only, with no TURN server to relay through.
    #[error("\"relay only\" needs a TURN server (turn:host:port user password) under Network")]
    RelayOnlyWithoutTurn,
    /// The pasted Firebase config cannot be used.
    #[error("the Firebase config: {0}")]
    FirebaseConfig(String),
    /// A Firebase-hosted database without the config that holds its API key.
    #[error("a Firebase database needs its web app config: paste it from the Firebase console (Project settings > General > Your apps)")]
    NoFirebaseConfig,
}

impl Settings {
    /// The pasted Firebase config, read.
    pub fn parsed_firebase_config(&self) -> Option<Result<FirebaseConfig, SettingsError>> {
        let text = self.firebase_config.trim();
        (!text.is_empty()).then(|| {
            FirebaseConfig::parse(text).map_err(|e| SettingsError::FirebaseConfig(e.to_string()))
        })
    }

    /// The API key of the pasted Firebase config, if it reads.
    pub fn firebase_api_key(&self) -> Option<String> {
        self.parsed_firebase_config()?.ok().map(|c| c.api_key)
    }

    /// Reads the pasted Firebase config before saving: an unreadable one is refused, and a
    /// readable one fills in the remote database URL when none is typed (or selects it, when
    /// the mode is still the built-in database and the config is new).
    pub fn apply_firebase_config(&mut self) -> Result<(), SettingsError> {
        let Some(parsed) = self.parsed_firebase_config() else {
            return Ok(());
        };
        let config = parsed?;
        let db_url = config.database_url().to_owned();
        if let Database::Remote { url, .. } = &mut self.database {
            if url.trim().is_empty() {
                *url = db_url;
            }
        }
        Ok(())
    }

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
                if let Some(Err(e)) = self.parsed_firebase_config() {
                    return Err(e);
                }
                let secret = matches!(&self.database, Database::Remote { auth: Some(a), .. } if !a.is_empty());
                if signal::auth::is_firebase_hosted(url)
                    && !secret
                    && self.firebase_api_key().is_none()
                {
                    return Err(SettingsError::NoFirebaseConfig);
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
        let has_turn = self
            .ice_servers
            .iter()
            .flat_map(|s| &s.urls)
            .any(|u| u.starts_with("turn"));
        if self.relay_only && !has_turn {
            return Err(SettingsError::RelayOnlyWithoutTurn);
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
    fn the_first_run_offers_a_full_name_never_a_login_name() {
        assert_eq!(name_from_account("ann", "Ann Smith,,,"), "Ann Smith");
        assert_eq!(name_from_account("ann", " Ann Smith ,Room 4"), "Ann Smith");
        assert_eq!(
            name_from_account("root", "root"),
            "",
            "no full name: nothing"
        );
        assert_eq!(name_from_account("jdoe", ""), "");
        assert_eq!(name_from_account("jdoe", ",,,"), "");
        assert_eq!(name_from_account("x", &"n".repeat(300)).len(), 100);
        assert_eq!(Settings::default().name, "", "no made-up name until chosen");
        assert_eq!(Settings::default().validate(), Err(SettingsError::Name));
    }

    #[test]
    fn saved_settings_come_back_and_damaged_ones_are_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert_eq!(store.load().name, Settings::default().name);
        let mut s = Settings {
            firebase_config: "{apiKey: 'k', databaseURL: 'https://x.firebaseio.com'}".into(),
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
        s.database = Database::Remote {
            url: "https://x.firebaseio.com".into(),
            auth: None,
        };
        assert_eq!(s.validate(), Err(SettingsError::NoFirebaseConfig));
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
        let mut relay = Settings {
            name: "Ann".into(),
            relay_only: true,
            ..Settings::default()
        };
        assert_eq!(relay.validate(), Err(SettingsError::RelayOnlyWithoutTurn));
        relay.ice_servers = vec![IceServerSetting {
            urls: vec!["turn:turn.example.org:3478".into()],
            username: "u".into(),
            credential: "p".into(),
        }];
        assert_eq!(relay.validate(), Ok(()));
        s.ice_servers[0].urls = vec!["stun:stun.example.org:3478".into()];
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn a_pasted_firebase_config_gives_the_api_key_and_fills_the_url() {
        let pasted = r#"
// Import the functions you need from the SDKs you need
import { initializeApp } from "firebase/app";
const firebaseConfig = {
  apiKey: "AIzaSyExample-Key_123",
  authDomain: "huddle-test.firebaseapp.com",
  databaseURL: "https://huddle-test-default-rtdb.europe-west1.firebasedatabase.app",
  projectId: "huddle-test",
  appId: "1:123:web:abc",
};
const app = initializeApp(firebaseConfig);
"#;
        let mut s = Settings {
            name: "Ann".into(),
            firebase_config: pasted.into(),
            database: Database::Remote {
                url: String::new(),
                auth: None,
            },
            ..Settings::default()
        };
        s.apply_firebase_config().unwrap();
        assert_eq!(
            s.database,
            Database::Remote {
                url: "https://huddle-test-default-rtdb.europe-west1.firebasedatabase.app".into(),
                auth: None,
            }
        );
        assert_eq!(
            s.firebase_api_key().as_deref(),
            Some("AIzaSyExample-Key_123")
        );
        assert_eq!(s.validate(), Ok(()));

        // A URL the user typed is kept.
        s.database = Database::Remote {
            url: "https://other.firebaseio.com".into(),
            auth: None,
        };
        s.apply_firebase_config().unwrap();
        assert!(
            matches!(&s.database, Database::Remote { url, .. } if url == "https://other.firebaseio.com")
        );

        // A config without apiKey is refused, in words.
        s.firebase_config = "{ databaseURL: 'https://x.firebaseio.com' }".into();
        let err = s.apply_firebase_config().unwrap_err();
        assert!(
            matches!(&err, SettingsError::FirebaseConfig(m) if m.contains("apiKey")),
            "{err}"
        );
        assert!(s.validate().is_err());

        // Settings saved before sign-in (with a peer_id) still load.
        let old: Settings =
            serde_json::from_str(r#"{"peer_id":"abcdefgh12345678","name":"Ann"}"#).unwrap();
        assert_eq!(old.name, "Ann");
    }
}
